"""The Typer app every command module registers on. Commands stay thin: parse, call a package, print."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    name="protgan",
    help="Contrast enhancement, per-class DCGANs and multilabel classifiers for HPA fluorescence images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
console = Console(stderr=False)
err_console = Console(stderr=True)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
) -> None:
    """protgan: enhance -> train-gan -> synth -> classify, on data in the HPA Kaggle layout."""
