"""An instant CLI: --help, every command's --help, `info` and option errors import neither torch nor timm,
and the options generated from the configs keep the names, defaults and conversions users rely on."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_dataset

COMMANDS = ("info", "cache", "enhance", "train-gan", "synth", "fid", "classify", "compare", "predict", "demo-data", "demo")
HEAVY = ("torch", "timm", "torchvision")

_PROBE = """
import contextlib, io, json, sys
from protgan.cli import main
out = []
for args in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            main(args)
            code = None
        except SystemExit as e:
            code = e.code
    out.append({"code": code, "stderr": err.getvalue(), "heavy": [m for m in %r if m in sys.modules]})
print(json.dumps(out))
""" % (HEAVY,)


def probe(cases: list[list[str]]) -> list[dict]:
    """Run `protgan ARGS` for each case, in order, in one fresh interpreter: exit code, stderr and the
    heavy modules imported so far (so the first case that imports torch is the one named)."""
    proc = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(cases)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_help_info_and_option_errors_do_not_import_torch(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "d", [(0,), (25,), (0, 21)], size=16)
    cases = [["--help"], ["info", str(data)], ["info", str(data), "--classes", "top5"]]
    cases += [[c, "--help"] for c in COMMANDS]
    cases += [
        ["train-gan", "--data", str(data), "--out", str(tmp_path / "r"), "--class", "0", "--steps", "x"],  # wrong type
        ["train-gan", "--bogus"],  # unknown option
        ["train-gan", "--data", str(data), "--out", str(tmp_path / "r"), "--class", "0", "--steps", "0"],  # range
        ["train-gan", "--data", str(data), "--out", str(tmp_path / "r"), "--class", "Nucleus"],  # unknown class
        ["synth", "--runs", str(tmp_path), "--out", str(tmp_path / "s"), "--batch", "zero"],
        ["enhance", str(data), "--out", str(tmp_path / "e"), "--apply", "magic"],
        ["classify", "--data", str(data)],  # --out missing
    ]
    for args, r in zip(cases, probe(cases)):
        assert r["heavy"] == [], f"protgan {' '.join(args)} imported {r['heavy']}"
        if args[-1] == "--help" or args[0] == "info":
            assert r["code"] in (0, None), (args, r["stderr"])
        else:
            assert r["code"] == 2, (args, r)
            lines = [ln for ln in r["stderr"].splitlines() if ln.strip()]
            assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in r["stderr"], (args, lines)


def test_usage_errors_are_one_line_in_process(capsys: pytest.CaptureFixture) -> None:
    from tests.cli_helpers import assert_one_line_error, run_cli

    code, _, err = run_cli(["train-gan", "--bogus"], capsys)
    assert_one_line_error(code, err, "--bogus", "protgan train-gan --help")
    code, _, err = run_cli(["fid", "--real", "a", "--fake", "b", "--kid-subsets", "many"], capsys)
    assert_one_line_error(code, err, "--kid-subsets")
    code, _, err = run_cli(["enhance"], capsys)  # missing argument
    assert_one_line_error(code, err, "DATA")


# ------------------------------------------------------------------------------ the generated options
def _command_params(name: str) -> dict:
    import typer.main

    from protgan.cli import app

    group = typer.main.get_command(app)
    return {p.name: p for p in group.commands[name].params}


def test_every_config_field_is_an_option_with_its_default_and_help() -> None:
    from protgan.core.options import option_meta
    from protgan.classify.config import ClassifyConfig
    from protgan.enhance.config import EnhanceConfig
    from protgan.evaluation.config import FidConfig
    from protgan.experiments.config import CompareConfig, DemoConfig
    from protgan.gan.config import SynthConfig, TrainGanConfig

    for command, cls, own in (("train-gan", TrainGanConfig, {"class_index"}), ("synth", SynthConfig, set()),
                              ("fid", FidConfig, set()), ("classify", ClassifyConfig, set()),
                              ("compare", CompareConfig, set()), ("enhance", EnhanceConfig, set()),
                              ("demo", DemoConfig, set())):
        params = _command_params(command)
        for f in dataclasses.fields(cls):
            meta = option_meta(f)
            if not meta["cli"] or f.name in own:
                continue
            assert meta["help"], f"{cls.__name__}.{f.name} has no help text"
            assert f.name in params, f"{command}: no option for {f.name}"
            p = params[f.name]
            assert p.help == meta["help"]
            if f.default is not dataclasses.MISSING and f.default is not None and not isinstance(f.default, bool) \
                    and (command, f.name) != ("train-gan", "classes"):  # None there: "given or not" picks a fan-out
                expect = ",".join(map(str, f.default)) if isinstance(f.default, (list, tuple)) else f.default
                assert p.default == expect, (command, f.name, p.default, expect)
        for name in ("log_format", "log_interval"):
            assert name in params


def test_option_names_users_have_are_kept() -> None:
    expect = {
        "train-gan": ["--class", "--data", "--out", "--steps", "--batch-size", "--lr-g", "--lr-d", "--amp", "--no-amp",
                      "--compile", "--eval-every", "--eval-images", "--eval-features", "--gpus", "--jobs", "--sync-bn",
                      "--lr-scaling", "--diffaug", "--keep", "--tensorboard"],
        "classify": ["--data", "--out", "--collect", "--focal-alpha", "--pretrained", "--no-pretrained", "--amp",
                     "--no-amp", "--keep-checkpoints", "--tensorboard"],
        "compare": ["--cell", "--collect", "--all-arms", "--pretrained", "--no-pretrained", "--keep-checkpoints"],
        "synth": ["--use-ema", "--no-ema", "--skip-missing", "--filter-by", "--amp"],
        "fid": ["--class", "--classes", "--features"],
        "enhance": ["--compare", "--apply", "--select-by"],
        "demo": ["--quick", "--tiny", "--jobs", "--out"],
    }
    for command, flags in expect.items():
        names = {o for p in _command_params(command).values() for o in (*p.opts, *p.secondary_opts)}
        missing = [f for f in flags if f not in names]
        assert not missing, f"{command}: {missing}"


def test_generated_values_convert_to_the_config_types(tmp_path: Path) -> None:
    """Comma lists become lists, `none` an Optional number's None, repeatable options lists, flags bools."""
    from protgan.cli.options import with_config
    from protgan.core.options import option
    import typer
    from typer.testing import CliRunner

    @dataclasses.dataclass
    class Cfg:
        data: str = option(help="positional", argument=True)
        names: list[str] = option(help="comma list", factory=lambda: ["a", "b"])
        sizes: list[int] = option(help="ints", factory=list)
        alpha: float | None = option(None, "optional number")
        cells: list[str] = option(help="repeatable", cli="--cell", multiple=True, factory=list)
        on: bool = option(True, "flag on by default")
        off: bool = option(False, "flag off by default")
        hidden_field: int = option(0, "not an option", cli=None)

    seen = {}
    app = typer.Typer()

    @app.command()
    @with_config(Cfg)
    def run(*, opts) -> None:
        seen["cfg"] = opts.build(Cfg)

    @app.command()
    def other() -> None:
        pass

    runner = CliRunner()
    result = runner.invoke(app, ["run", "D", "--names", "x, y", "--sizes", "1,2", "--alpha", "none", "--cell", "p",
                                 "--cell", "q", "--no-on", "--off"])
    assert result.exit_code == 0, result.output
    assert seen["cfg"] == Cfg("D", ["x", "y"], [1, 2], None, ["p", "q"], False, True, 0)
    result = runner.invoke(app, ["run", "D", "--alpha", "0.25"])
    assert result.exit_code == 0 and seen["cfg"] == Cfg("D", ["a", "b"], [], 0.25, [], True, False, 0)
    assert runner.invoke(app, ["run", "D", "--hidden-field", "1"]).exit_code != 0
