"""Options as data: a config dataclass field carries its default, its help text and its CLI name, so a
new option is one line in one place and the CLI is generated from the configs (protgan.cli).

    steps: int = option(20_000, "Generator updates (each also one D update).")
    channels: list[str] = option(help="red,green,blue by default (the paper's RGB).", factory=lambda: [...])
    class_index: int = option(0, "The class to train.", cli="--class")
    n_images: int = option(0, "Filled in: how many images train the class.", cli=None)   # not an option
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

_MISSING: Any = dataclasses.MISSING


def option(default: Any = _MISSING, help: str = "", *, cli: str | None | bool = True,  # noqa: A002
           factory: Callable[[], Any] | None = None, choices: tuple[str, ...] | None = None,
           argument: bool = False, affects_run: bool = True, multiple: bool = False, hidden: bool = False) -> Any:
    """A dataclass field with CLI metadata.

    cli: True = `--field-name`; a string = that flag (e.g. "--class"); None/False = not a CLI option
    (filled in by the program). choices: allowed values, shown in --help. argument: a positional
    argument instead of an option. affects_run: False for options that may differ on resume
    (device, workers, logging), so the run-folder check ignores them. multiple: a list field given as a
    repeatable option (`--cell A --cell B`) instead of one comma list. hidden: left out of --help.
    """
    meta = {"help": help, "cli": cli, "choices": choices, "argument": argument, "affects_run": affects_run,
            "multiple": multiple, "hidden": hidden}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def option_meta(f: dataclasses.Field) -> dict[str, Any]:
    """The metadata of a field made by `option` (defaults for a plain field: an option named after it)."""
    meta = dict(f.metadata) if f.metadata else {}
    meta.setdefault("help", "")
    meta.setdefault("cli", True)
    meta.setdefault("choices", None)
    meta.setdefault("argument", False)
    meta.setdefault("affects_run", True)
    meta.setdefault("multiple", False)
    meta.setdefault("hidden", False)
    return meta


def cli_flag(f: dataclasses.Field) -> str | None:
    """`--flag-name` of a field, or None when it is not a CLI option."""
    cli = option_meta(f)["cli"]
    if cli is True:
        return "--" + f.name.replace("_", "-")
    return cli or None


def per_invocation(cls: type) -> tuple[str, ...]:
    """Fields that may differ between the invocations of one run (`affects_run=False`): the same-options
    check on resume ignores them."""
    return tuple(f.name for f in dataclasses.fields(cls) if not option_meta(f)["affects_run"])
