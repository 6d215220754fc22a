"""Loading .pt files without running code, and the plain-data RNG states that make that possible.

Every checkpoint protgan reads goes through `load_weights`: `torch.load(..., weights_only=True)`, which
unpickles only tensors and plain containers (dict, list, tuple, str, numbers, None). A `.pt` from a
colleague whose pickle would call `os.system` is refused before anything in it runs. Checkpoints
written by protgan before this rule held numpy/python RNG states that need the full unpickler: those
get a one-line error naming the converter (`python -m protgan.core.safeload OLD.pt`, for a trusted file).
"""

from __future__ import annotations

import argparse
import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from protgan.core.errors import ProtganError

CONVERT_HINT = "python -m protgan.core.safeload"


def load_weights(path: str | os.PathLike, map_location: str | torch.device = "cpu", what: str = "checkpoint") -> Any:
    """torch.load(path, weights_only=True) with one-line errors; never the unsafe unpickler."""
    path = Path(path)
    if path.is_dir():
        raise ProtganError(f"{path}: is a folder, not a {what} file")
    if not path.is_file():
        raise ProtganError(f"{path}: {what} not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "global" not in str(e).lower():  # not a pickle of objects at all: garbage, a truncated file
            raise ProtganError(f"{path}: not a readable {what} ({' '.join(str(e).split())[:160]})") from None
        # weights_only refused a global: an old protgan checkpoint (numpy RNG state) or a file that runs code
        first = str(e).strip().splitlines()
        detail = next((ln.strip() for ln in first if "GLOBAL" in ln or "Unsupported" in ln), "")
        raise ProtganError(
            f"{path}: this {what} needs the unsafe unpickler (it holds Python objects, not only tensors"
            f"{': ' + detail[:120] if detail else ''}); it was not loaded. If it is an older protgan checkpoint "
            f"you trust, convert it once with `{CONVERT_HINT} {path}`") from None
    except Exception as e:  # noqa: BLE001 - a truncated file, not a zip/pickle at all, ...
        reason = " ".join(str(e).split())[:160]
        raise ProtganError(f"{path}: not a readable {what} ({type(e).__name__}: {reason})") from None


# ------------------------------------------------------------------------------ RNG states as plain data
def rng_state() -> dict[str, Any]:
    """Every RNG state (python, numpy, torch CPU and CUDA) as tensors, lists, ints, floats and strings."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [int(version), [int(v) for v in internal], gauss],
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, np.uint32).astype(np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss))
    n = state["numpy"]
    keys = n["keys"].cpu().numpy() if isinstance(n["keys"], torch.Tensor) else np.asarray(n["keys"])
    np.random.set_state((n["kind"], keys.astype(np.uint32), int(n["pos"]), int(n["has_gauss"]),
                         float(n["cached_gaussian"])))
    # RNG states must be CPU byte tensors; a checkpoint loaded with map_location="cuda" moved them.
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([t.cpu() for t in state["cuda"]])


def plain(obj: Any) -> Any:
    """obj with numpy arrays/scalars and RNG tuples turned into tensors and plain Python (for old checkpoints)."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        out = [plain(v) for v in obj]
        return out if isinstance(obj, list) else tuple(out)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.astype(np.int64) if obj.dtype == np.uint32 else obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _convert_rng(rng: Any) -> Any:
    if not isinstance(rng, dict) or not isinstance(rng.get("numpy"), tuple):
        return plain(rng)
    kind, keys, pos, has_gauss, cached = rng["numpy"]
    version, internal, gauss = rng["python"]
    out = plain(rng)
    out["python"] = [int(version), [int(v) for v in internal], gauss]
    out["numpy"] = {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys).astype(np.int64)),
                    "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}
    return out


def convert_legacy(src: str | os.PathLike, dst: str | os.PathLike | None = None) -> Path:
    """Rewrite a TRUSTED older protgan checkpoint so that weights_only=True loads it. Runs the full
    unpickler on `src`: only for files you made yourself."""
    from protgan.core.atomic import atomic_path  # lazy: keep this module's import light for the loaders

    src = Path(src)
    dst = Path(dst) if dst is not None else src
    state = torch.load(src, map_location="cpu", weights_only=False)  # the one unsafe load: asked for by name
    if isinstance(state, dict) and "rng" in state:
        state["rng"] = _convert_rng(state["rng"])
    state = plain(state)
    with atomic_path(dst, suffix=".pt.tmp") as tmp:
        torch.save(state, tmp)
    torch.load(dst, map_location="cpu", weights_only=True)  # check
    return dst


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=CONVERT_HINT, description="Convert TRUSTED older protgan checkpoints (the full unpickler runs on "
        "them) so that protgan's safe loader (torch.load weights_only=True) reads them.")
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    args = parser.parse_args(argv)
    if not args.yes:
        try:
            answer = input(f"Unpickle {len(args.paths)} file(s)? This runs any code they hold; only for your own "
                           f"checkpoints [y/N] ")
        except EOFError:  # no terminal to ask (a pipe, a batch job): no consent
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            raise SystemExit("not converted (pass --yes to convert without asking)")
    for p in args.paths:
        print(f"converted {convert_legacy(p)}")


if __name__ == "__main__":
    main()
