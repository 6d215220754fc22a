"""Lazy package exports (PEP 562): `from protgan.gan import Generator` still works, but importing a
package (or a light module inside it, such as its config) no longer imports torch, OpenCV or timm
until a name that needs them is used. This is what keeps `protgan --help` instant."""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """(__getattr__, __dir__) for a package whose public `name` lives in module `exports[name]`."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # later look-ups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__


def exports_of(modules: dict[str, str]) -> dict[str, str]:
    """{"protgan.data.cache": "PackedCache build_cache", ...} -> {"PackedCache": "protgan.data.cache", ...}."""
    return {name: module for module, names in modules.items() for name in names.split()}
