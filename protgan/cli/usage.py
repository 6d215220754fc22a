"""The exception classes the installed typer raises for usage errors, whatever its version.

typer < 0.20 raises the standalone `click` package's exceptions; newer typers vendor click as
`typer._click` and raise their own copies, which `except click.ClickException` does not catch.
Both are collected here so `protgan.cli.main` catches what is actually raised.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def _modules(*names: str) -> list[ModuleType]:
    found = []
    for name in names:
        try:
            found.append(importlib.import_module(name))
        except ImportError:
            continue
    return found


def _classes(attr: str, *module_names: str) -> tuple[type[BaseException], ...]:
    out: list[type[BaseException]] = []
    for module in _modules(*module_names):
        cls = getattr(module, attr, None)
        if isinstance(cls, type) and issubclass(cls, BaseException) and cls not in out:
            out.append(cls)
    return tuple(out)


# ClickException (UsageError, BadParameter, NoSuchOption, MissingParameter... derive from it)
CLICK_EXCEPTIONS = _classes("ClickException", "typer._click.exceptions", "click.exceptions")
USAGE_ERRORS = _classes("UsageError", "typer._click.exceptions", "click.exceptions")
NO_ARGS_IS_HELP = _classes("NoArgsIsHelpError", "typer._click.exceptions", "click.exceptions")
ABORTS = _classes("Abort", "typer.exceptions", "click.exceptions")
if not CLICK_EXCEPTIONS:  # pragma: no cover - typer always brings one of them
    raise ImportError("neither typer._click nor click provides ClickException")


def one_line(e: BaseException) -> str:
    """`protgan CMD: MESSAGE (see protgan CMD --help)` for a usage error; the message for other ones."""
    fmt = getattr(e, "format_message", None)
    message = " ".join((fmt() if callable(fmt) else str(e)).split())
    ctx = getattr(e, "ctx", None)
    if isinstance(e, USAGE_ERRORS) and ctx is not None:
        path = getattr(ctx, "command_path", "") or "protgan"
        return f"{path}: {message} (see {path} --help)"
    return message
