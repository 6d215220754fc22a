"""protgan demo-data: determinism, labels that match the drawn patterns, label statistics, CLI, bad input."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from protgan.data import CHANNEL_ORDER, open_dataset, read_label_table, top_k_classes
from protgan.data.demo import (
    DRAWABLE_CLASSES,
    TOP5,
    demo_labels,
    generate_demo_dataset,
    label_set_distribution,
    label_stats,
    render_sample,
    resolve_demo_classes,
)
from protgan.core.errors import ProtganError
from tests.cli_helpers import assert_one_line_error, run_cli

REQUIRED = (0, 1, 2, 4, 5, 6, 7, 14, 19, 21, 23, 25)  # the 12 classes


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != "config.json"}


def test_same_seed_gives_byte_identical_files_whatever_the_workers(tmp_path: Path) -> None:
    a = generate_demo_dataset(tmp_path / "a", n=6, size=64, seed=3, classes="all", workers=1)
    b = generate_demo_dataset(tmp_path / "b", n=6, size=64, seed=3, classes="all", workers=2)
    fa, fb = _files(a), _files(b)
    assert len(fa) == 6 * 4 + 1
    assert fa == fb


def test_different_seeds_differ(tmp_path: Path) -> None:
    a = generate_demo_dataset(tmp_path / "a", n=3, size=64, seed=0)
    b = generate_demo_dataset(tmp_path / "b", n=3, size=64, seed=1)
    fa, fb = _files(a), _files(b)
    assert fa.keys() == fb.keys()
    for name in fa:
        if name.endswith(".png"):
            assert fa[name] != fb[name], name


def test_render_sample_shapes_masks_and_determinism() -> None:
    stack, masks = render_sample(7, 96, [25, 2])
    assert stack.shape == (4, 96, 96) and stack.dtype == np.uint8
    again, _ = render_sample(np.random.default_rng(7), 96, [25, 2])
    assert np.array_equal(stack, again)
    for key in ("cell", "nucleus", "nucleoli", "cytoplasm", "membrane"):
        assert masks[key].shape == (96, 96) and masks[key].dtype == bool
    assert masks["nucleus"].any() and masks["cytoplasm"].any()
    # nuclei sit inside cells, nucleoli inside nuclei, cytoplasm excludes nuclei
    assert (masks["nucleus"] & ~masks["cell"]).sum() <= 0.05 * masks["nucleus"].sum()
    assert not (masks["nucleoli"] & ~masks["nucleus"]).any()
    assert not (masks["cytoplasm"] & masks["nucleus"]).any()
    # blue is the nuclear stain: brighter in nuclei than in the cytoplasm
    blue = stack[2].astype(float)
    assert blue[masks["nucleus"]].mean() > 4 * blue[masks["cytoplasm"]].mean()


def _green_signal(label: int, seeds=range(4), size: int = 128) -> list[tuple[np.ndarray, dict]]:
    out = []
    for s in seeds:
        stack, masks = render_sample(1000 + s, size, [label])
        out.append((stack[1].astype(np.float32), masks))
    return out


def _bright_fraction(green: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of the bright green pixels (above half the 99.9th percentile) that lie in `mask`."""
    bright = green > 0.5 * np.percentile(green, 99.9)
    return float((bright & mask).sum() / max(bright.sum(), 1))


def _dilate(mask: np.ndarray, px: int = 1) -> np.ndarray:
    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * px + 1, 2 * px + 1), np.uint8)).astype(bool)


def test_nucleoli_images_have_green_in_nucleoli() -> None:
    for green, m in _green_signal(2):
        assert _bright_fraction(green, _dilate(m["nucleoli"])) > 0.7
        assert _bright_fraction(green, _dilate(m["nucleus"])) > 0.9


def test_plasma_membrane_images_have_green_on_cell_borders() -> None:
    for green, m in _green_signal(21):
        assert _bright_fraction(green, _dilate(m["membrane"])) > 0.7
        inner = m["cell"] & ~_dilate(m["membrane"], 3)
        assert green[m["membrane"]].mean() > 1.8 * green[inner].mean()


def test_cytosol_images_have_green_in_cytoplasm_not_nuclei() -> None:
    for green, m in _green_signal(25):
        assert green[m["cytoplasm"]].sum() > 0.8 * green.sum()
        assert green[m["cytoplasm"]].mean() > 3 * green[m["nucleus"]].mean()


def test_nuclear_classes_have_green_in_nuclei() -> None:
    for label in (0, 1, 4, 5):
        for green, m in _green_signal(label, seeds=range(2)):
            assert _bright_fraction(green, _dilate(m["nucleus"])) > 0.85, label


def test_cytoplasmic_classes_have_green_outside_nuclei() -> None:
    for label in (6, 7, 14, 23):
        for green, m in _green_signal(label, seeds=range(2)):
            assert _bright_fraction(green, m["cell"] & ~m["nucleus"]) > 0.75, label


def test_every_drawable_class_draws_a_different_green_pattern() -> None:
    # the same field (seed) with different labels: the green channel must change with the label
    stacks = {c: render_sample(5, 64, [c])[0] for c in DRAWABLE_CLASSES}
    greens = {c: st[1] for c, st in stacks.items()}
    for st in stacks.values():  # the field and the other channels do not depend on the label
        assert np.array_equal(np.delete(st, 1, axis=0), np.delete(stacks[0], 1, axis=0))
    keys = list(greens)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            assert not np.array_equal(greens[a], greens[b]), (a, b)


def test_labels_cardinality_and_subset() -> None:
    labels = demo_labels(400, 0, list(TOP5))
    assert all(1 <= len(t) <= 3 for t in labels)
    assert all(set(t) <= set(TOP5) for t in labels)
    assert any(len(t) >= 2 for t in labels)


def test_label_frequencies_follow_the_stored_table() -> None:
    counts = label_stats()["class_counts"]
    for spec in ("top5", "all"):
        classes = resolve_demo_classes(spec)
        sampled = Counter(c for t in demo_labels(600, 1, classes) for c in t)
        ref = sorted(classes, key=lambda c: -counts[c])
        got = sorted(classes, key=lambda c: -sampled[c])
        assert got[0] == ref[0] == 0  # Nucleoplasm is the most frequent
        rank_ref = np.argsort(np.argsort([-counts[c] for c in classes]))
        rank_got = np.argsort(np.argsort([-sampled[c] for c in classes]))
        rho = np.corrcoef(rank_ref, rank_got)[0, 1]
        assert rho > 0.8, (spec, rho)


def test_projected_distribution_keeps_pair_cooccurrence() -> None:
    # P(both 0 and 25) under the projected distribution equals the stored pair count over the kept images
    stats = label_stats()
    sets, probs = label_set_distribution((0, 25))
    p_pair = sum(p for s, p in zip(sets, probs) if set(s) == {0, 25})
    kept = sum(n for labels, n in stats["label_sets"] if {0, 25} & set(labels))
    assert p_pair == pytest.approx(stats["pair_counts"][0][25] / kept)


def test_stored_stats_match_the_real_table(shared_dir: Path) -> None:
    ids, targets = read_label_table(shared_dir / "hpa-sample" / "train.csv")
    stats = label_stats()
    assert stats["images"] == len(ids)
    assert stats["class_counts"] == [sum(c in t for t in targets) for c in range(28)]
    assert list(TOP5) == top_k_classes(targets, 5)


def test_class_resolution() -> None:
    assert resolve_demo_classes("top5") == list(TOP5)
    assert set(REQUIRED) <= set(resolve_demo_classes("all"))
    assert resolve_demo_classes("nucleoli,25") == [2, 25]
    with pytest.raises(ProtganError, match="cannot be drawn"):
        resolve_demo_classes("8")
    with pytest.raises(ProtganError, match="unknown class"):
        resolve_demo_classes("golgi-ish")


def test_cli_writes_the_layout_and_info_reads_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "demo"
    code, stdout, _ = run_cli(["demo-data", str(out), "--n", "5", "--size", "64", "--seed", "2"], capsys)
    assert code == 0
    ds = open_dataset(out)
    assert len(ds) == 5 and not ds.missing(CHANNEL_ORDER)
    assert (out / "config.json").exists()
    img = cv2.imread(str(ds.path(ds.ids[0], "green")), cv2.IMREAD_UNCHANGED)
    assert img.shape == (64, 64) and img.dtype == np.uint8
    code, stdout, _ = run_cli(["info", str(out)], capsys)
    assert code == 0 and "5 images" in stdout and "no problems found" in stdout


def test_rerun_resumes_and_restores_missing_files(tmp_path: Path) -> None:
    out = generate_demo_dataset(tmp_path / "d", n=4, size=64, seed=0)
    before = _files(out)
    victim = out / "train" / f"{open_dataset(out).ids[2]}_yellow.png"
    victim.unlink()
    (out / "train" / ".leftover_red.png.abc.tmp").write_bytes(b"partial")
    generate_demo_dataset(out, n=4, size=64, seed=0, workers=2)
    assert _files(out) == before


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--n", "0"], "--n"),
        (["--size", "16"], "--size"),
        (["--size", "4096"], "--size"),
        (["--classes", "8"], "Peroxisomes"),
        (["--classes", "nonsense"], "unknown class"),
        (["--seed", "-1"], "--seed"),
        (["--workers", "-2"], "--workers"),
    ],
)
def test_bad_options_give_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], needle: str) -> None:
    out = tmp_path / "x"
    code, _, err = run_cli(["demo-data", str(out), "--n", "2", "--size", "64", *args], capsys)
    assert_one_line_error(code, err, needle)
    assert not out.exists()


def test_refuses_foreign_or_different_folders(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    code, _, err = run_cli(["demo-data", str(foreign), "--n", "2", "--size", "64"], capsys)
    assert_one_line_error(code, err, "not a demo-data output")
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]

    out = tmp_path / "d"
    generate_demo_dataset(out, n=2, size=64)
    code, _, err = run_cli(["demo-data", str(out), "--n", "3", "--size", "64"], capsys)
    assert_one_line_error(code, err, "other options", "n 2")
    code, _, err = run_cli(["demo-data", str(out), "--n", "2", "--size", "64", "--workers", "2"], capsys)
    assert code == 0  # same options: accepted (nothing to do)
