"""Usage errors (unknown option, missing argument or option, wrong type) are one line and exit 2 for every
command, whichever click the installed typer raises (typer >= 0.20 vendors it as typer._click)."""

from __future__ import annotations

import pytest
import typer

from protgan.cli import app
from protgan.cli.usage import CLICK_EXCEPTIONS, USAGE_ERRORS
from tests.cli_helpers import assert_one_line_error, run_cli

COMMANDS = typer.main.get_command(app).commands


def _annotation(param) -> type | None:
    """int/float of a click parameter, for this typer's click (type.name) or typer's own (type_descriptor)."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None:
        return getattr(descriptor, "annotation", None)
    name = getattr(getattr(param, "type", None), "name", "")
    return {"integer": int, "float": float}.get(name)


def _number_option(cmd) -> str | None:
    for p in cmd.params:
        if getattr(p, "opts", None) and p.opts[0].startswith("--") and _annotation(p) in (int, float) \
                and not getattr(p, "is_flag", False):
            return p.opts[0]
    return None


def _required(cmd) -> list:
    return [p for p in cmd.params if p.required]


def test_the_exception_classes_are_the_raised_ones() -> None:
    # what typer raises for an unknown option must be one of the classes main() catches
    with pytest.raises(CLICK_EXCEPTIONS) as exc:
        app(args=["info", "--bogus"], prog_name="protgan", standalone_mode=False)
    assert isinstance(exc.value, USAGE_ERRORS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_unknown_option(command: str, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run_cli([command, "--no-such-option-xyz"], capsys)
    assert code == 2
    assert_one_line_error(code, err, command, "--no-such-option-xyz")


@pytest.mark.parametrize("command", sorted(c for c in COMMANDS if _required(COMMANDS[c])))
def test_missing_argument(command: str, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run_cli([command], capsys)
    assert code == 2
    assert_one_line_error(code, err, command, "Missing")


@pytest.mark.parametrize("command", sorted(c for c in COMMANDS if _number_option(COMMANDS[c])))
def test_wrong_type(command: str, capsys: pytest.CaptureFixture) -> None:
    flag = _number_option(COMMANDS[command])
    code, _, err = run_cli([command, flag, "abc"], capsys)
    assert code == 2
    assert_one_line_error(code, err, command, flag)


def test_every_command_is_covered_by_a_case() -> None:
    # a command with neither a required parameter nor a number option would test only the unknown option
    thin = [c for c in COMMANDS if not _required(COMMANDS[c]) and not _number_option(COMMANDS[c])]
    assert len(COMMANDS) >= 11 and len(thin) <= 2, thin


def test_no_arguments_shows_help(capsys: pytest.CaptureFixture) -> None:
    code, out, err = run_cli([], capsys)
    assert code == 0 and "train-gan" in out + err
