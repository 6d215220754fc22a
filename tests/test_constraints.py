"""constraints.txt (the exact versions `make` installs) agrees with pyproject.toml's ranges and with the
environment the tests run in: dependency drift (a new typer that vendors click, say) shows up here."""

from __future__ import annotations

import os
import re

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
packaging = pytest.importorskip("packaging.requirements")
from packaging.requirements import Requirement  # noqa: E402


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep, f"constraints.txt: {line!r} is not NAME==VERSION"
        pins[_norm(name)] = version.strip()
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return [Requirement(r) for r in reqs]


def test_every_dependency_is_pinned_inside_its_range() -> None:
    pins = _pins()
    for req in _requirements():
        name = _norm(req.name)
        assert name in pins, f"{req.name} (pyproject.toml) has no pin in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"constraints.txt pins {req.name}=={pins[name]} outside pyproject's {req.specifier}"


def test_makefile_installs_with_the_constraints() -> None:
    make = (ROOT / "Makefile").read_text()
    assert "-c constraints.txt" in make and "constraints.txt" in make.split("$(STAMP):", 1)[1].splitlines()[0]


@pytest.mark.skipif(bool(os.environ.get("PROTGAN_UNPINNED")), reason="make test-latest: newest versions on purpose")
def test_installed_versions_are_the_pinned_ones() -> None:
    pins = _pins()
    drift = []
    for req in _requirements():
        try:
            have = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            drift.append(f"{req.name} not installed")
            continue
        want = pins[_norm(req.name)]
        if have.split("+")[0] != want.split("+")[0]:
            drift.append(f"{req.name} {have} != {want}")
    assert not drift, "installed versions differ from constraints.txt (run `make install`, or " \
                      "`make test-latest` then `make constraints` to move the pins): " + "; ".join(drift)
