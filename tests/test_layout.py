"""The import contract: packages depend downhill only (DESIGN.md, README's developer section).

    cli -> experiments -> {gan, classify, enhance} -> evaluation -> data -> core

gan, classify and enhance never import each other; a package never imports one above it. Imports of
protgan modules inside functions are allowed only in cli (start-up time) or with a `# lazy:` comment
saying why.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1] / "protgan"
LAYER = {"core": 0, "data": 1, "evaluation": 2, "enhance": 3, "gan": 3, "classify": 3, "experiments": 4, "cli": 5}


def package_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "protgan" else None


def protgan_imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, imported module, inside a function) for every `protgan` import of a file."""
    tree = ast.parse(path.read_text())
    inner = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
             for n in ast.walk(f)}
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names if node.module == "protgan"]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            if name.startswith("protgan"):
                out.append((node.lineno, name, id(node) in inner))
    return out


def violations() -> list[str]:
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent)
        own = rel.parts[1] if len(rel.parts) > 2 else None
        if own is None:  # protgan/__init__.py, protgan/__main__.py
            continue
        if own not in LAYER:
            bad.append(f"{rel}: package {own!r} has no layer in the import contract")
            continue
        lines = path.read_text().split("\n")
        for lineno, module, in_function in protgan_imports(path):
            target = package_of(module)
            if target is None or target == own:
                pass
            elif target not in LAYER:
                bad.append(f"{rel}:{lineno}: imports {module}, a module outside the layered packages")
            elif LAYER[target] >= LAYER[own]:
                bad.append(f"{rel}:{lineno}: {own} (layer {LAYER[own]}) imports {module} (layer {LAYER[target]})")
            if in_function and own != "cli" and "# lazy:" not in lines[lineno - 1]:
                bad.append(f"{rel}:{lineno}: imports {module} inside a function (hoist it, or say `# lazy: why`)")
    return bad


def test_packages_depend_downhill_only():
    assert violations() == []


def test_no_loose_modules_at_the_top():
    loose = sorted(p.name for p in ROOT.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert loose == [], "every module belongs to a package of the contract"


def test_contract_catches_an_uphill_import(tmp_path, monkeypatch):
    """The checker itself can fail: an uphill and a sideways import are reported."""
    pkg = tmp_path / "protgan"
    for name, body in {"data/x.py": "from protgan.gan import train\n",
                       "gan/y.py": "from protgan.classify import train\n",
                       "classify/z.py": "def f():\n    from protgan.data import open_dataset\n"}.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(body)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", pkg)
    found = violations()
    assert len(found) == 3, found
    assert any("data (layer 1) imports protgan.gan" in v for v in found)
    assert any("gan (layer 3) imports protgan.classify" in v for v in found)
    assert any("inside a function" in v for v in found)
