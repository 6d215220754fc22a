"""Command-line entry point: `protgan COMMAND ...` (also `python -m protgan`)."""

from __future__ import annotations

import sys

import click

from protgan.cli.app import app, err_console
from protgan.core.errors import ProtganError

# Each module registers its command(s) on `app` when imported.
from protgan.cli import info as _info  # noqa: F401,E402
from protgan.cli import cache as _cache  # noqa: F401,E402
from protgan.cli import classify as _classify  # noqa: F401,E402
from protgan.cli import predict as _predict  # noqa: F401,E402
from protgan.cli import demo_data as _demo_data  # noqa: F401,E402
from protgan.cli import enhance as _enhance  # noqa: F401,E402
from protgan.cli import train_gan as _train_gan  # noqa: F401,E402
from protgan.cli import synth as _synth  # noqa: F401,E402
from protgan.cli import fid as _fid  # noqa: F401,E402
from protgan.cli import evaluate as _evaluate  # noqa: F401,E402
from protgan.cli import compare as _compare  # noqa: F401,E402
from protgan.cli import demo as _demo  # noqa: F401,E402


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: bad input is one line on stderr and exit 2; Ctrl-C exits 130; --debug shows tracebacks."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        rc = app(args=args, prog_name="protgan", standalone_mode=False)
    except ProtganError as e:
        if debug:
            raise
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except click.exceptions.Abort:
        err_console.print("interrupted", highlight=False)
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted", highlight=False)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    sys.exit(rc if isinstance(rc, int) else 0)
