"""Command-line entry point: `protgan COMMAND ...` (also `python -m protgan`).

Start-up stays instant: the command modules import only typer, rich and the torch-free config modules
(whose fields generate the options); the engines (torch, timm, OpenCV) are imported inside each
command's body, once the options have been parsed and checked.
"""

from __future__ import annotations

import signal
import sys

from rich.markup import escape

from protgan.cli.app import app, err_console
from protgan.cli.usage import ABORTS, CLICK_EXCEPTIONS, NO_ARGS_IS_HELP, one_line
from protgan.core.errors import ProtganError, describe_os_error

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
    interrupted: list[int] = []

    def on_signal(signum: int, frame) -> None:
        # Ctrl-C and SIGTERM (SLURM's pre-emption) end any command the same clean way: KeyboardInterrupt
        # (atomic writes keep every file whole). train-gan and classify install their own handlers, which
        # stop at a step/batch boundary and save a resumable state.
        interrupted.append(signum)
        raise KeyboardInterrupt

    previous = {sig: _swap_handler(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        rc = app(args=args, prog_name="protgan", standalone_mode=False)
    except ProtganError as e:
        if debug:
            raise
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except ABORTS:
        err_console.print("interrupted", highlight=False)
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted", highlight=False)
        sys.exit(130)
    except CLICK_EXCEPTIONS as e:  # usage errors, whichever click typer raises (typer._click or click)
        if isinstance(e, NO_ARGS_IS_HELP):
            e.show()  # `protgan` / a group without arguments: its help
            sys.exit(0)
        if debug:
            raise
        err_console.print("[bold red]error:[/] " + escape(one_line(e)), highlight=False, soft_wrap=True)
        sys.exit(getattr(e, "exit_code", 2))
    except OSError as e:  # a file-system fault (read-only folder, a file where a folder should be, disk full)
        if debug or not (e.filename or e.errno):
            raise
        err_console.print("[bold red]error:[/] " + escape(describe_os_error(e)), highlight=False, soft_wrap=True)
        sys.exit(1)
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)
    if rc == 130 and interrupted:  # typer turned the KeyboardInterrupt into exit 130 without a word
        err_console.print("interrupted (run the same command again to resume)", highlight=False)
    sys.exit(rc if isinstance(rc, int) else 0)


def _swap_handler(sig: int, handler):
    try:
        return signal.signal(sig, handler)
    except ValueError:  # not the main thread (an embedding application): leave signals alone
        return None
