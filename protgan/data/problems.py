"""Finding what is wrong with a dataset's files without stopping at the first problem (`protgan info`)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from protgan.data.dataset import ImageSet
from protgan.data.imageio import read_channel_raw
from protgan.core.errors import ProtganError

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"


@dataclass(frozen=True)
class Problem:
    path: Path
    what: str  # "missing", "empty", "truncated", "unreadable"
    detail: str


def quick_check(path: Path) -> Problem | None:
    """Cheap checks that catch the usual damage (zero bytes, cut-off PNG) without decoding."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return Problem(path, "missing", "file not found")
    if size == 0:
        return Problem(path, "empty", "empty file (0 bytes)")
    if path.suffix.lower() == ".png":
        with open(path, "rb") as f:
            head = f.read(8)
            f.seek(max(0, size - 12))
            tail = f.read()
        if head != _PNG_SIGNATURE:
            return Problem(path, "unreadable", "not a PNG file (bad signature)")
        if not tail.endswith(_PNG_END):
            return Problem(path, "truncated", "truncated PNG (no IEND chunk)")
    return None


def deep_check(path: Path) -> Problem | None:
    """Full decode."""
    try:
        read_channel_raw(path)
    except ProtganError as e:
        msg = str(e).split(": ", 1)[-1]
        kind = "truncated" if "truncated" in msg else "empty" if "empty" in msg else "unreadable"
        return Problem(path, kind, msg)
    return None


def find_problems(ds: ImageSet, channels: Iterable[str], deep: bool = False, workers: int = 8) -> list[Problem]:
    """Missing channel files and damaged images for every id, in id order."""
    chans = tuple(channels)
    problems: list[Problem] = []
    paths: list[Path] = []
    for id_ in ds.ids:
        have = ds.files.get(id_, {})
        for c in chans:
            if c in have:
                paths.append(have[c])
            else:
                problems.append(Problem(ds.image_dir / f"{id_}_{c}.png", "missing", f"missing {c} channel for Id {id_!r}"))
    check = deep_check if deep else quick_check
    with ThreadPoolExecutor(max_workers=workers) as pool:
        problems.extend(p for p in pool.map(check, paths) if p is not None)
    return problems


def require_readable(ds: ImageSet, channels: Iterable[str], flag: str = "--data", shown: int = 50) -> None:
    """Before a long run: every file it will read passes `quick_check` (present, header, not cut off); the
    bad ones are listed together in one line (the first `shown` by name)."""
    problems = find_problems(ds, channels)
    if not problems:
        return
    names = ", ".join(f"{p.path.name} ({p.detail})" for p in problems[:shown])
    more = f" and {len(problems) - shown} more" if len(problems) > shown else ""
    raise ProtganError(f"{flag} {ds.root}: {len(problems)} damaged or missing images, nothing trained: {names}{more} "
                       f"(fix or remove them; `protgan info {ds.root}` lists them)")
