"""bench/gpu.py --smoke: every part of the GPU benchmark runs at tiny sizes on the CPU, so the script
cannot rot before a GPU arrives (the figures themselves are not checked: speed is bench's, not a test's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "--smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, env={**__import__("os").environ,
                                                                            "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["smoke"] and result["device"] == "cpu"
    rows = result["rows"]
    parts = {r["part"] for r in rows}
    assert parts == {"gan", "classify", "loader", "fid", "torchrun"}
    errors = [r for r in rows if "error" in r and not (r["part"] == "fid" and r["features"] == "inception")]
    assert errors == [], errors  # inception may lack its weights offline: a recorded skip
    assert all(r["img_per_s"] > 0 for r in rows if r["part"] in ("gan", "classify"))
    gan = {(r["arch"], r["variant"]) for r in rows if r["part"] == "gan"}
    assert {("dcgan", "fp32"), ("dcgan", "bf16+channels_last")} <= gan
    assert next(r for r in rows if r["part"] == "loader" and r["variant"] == "cache")["vs_png"] > 0
    assert next(r for r in rows if r["part"] == "torchrun")["busbw_gb_per_s"] > 0
    assert "part" in proc.stdout.splitlines()[0]  # the table
