"""Running the CLI in-process and checking the bad-input contract: one line, non-zero exit, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from protgan.cli import main


def run_cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `protgan ARGS` run in this process."""
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else 1), out, err


def run_cli_subprocess(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "protgan", *args], capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code != 0, "bad input must exit non-zero"
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one error line, got: {err!r}"
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"
