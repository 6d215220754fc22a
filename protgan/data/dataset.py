"""The dataset layout every stage reads and writes (HPA Kaggle 2018):

    DIR/train.csv                       header `Id,Target`, Target = space-separated class indices
    DIR/train/{Id}_{channel}.{ext}      one grey image per channel (or directly in DIR/)

`open_dataset` validates the label table (one clear error per bad row) and indexes the image files
with one directory scan, so 31k Ids x 4 channels open in well under a second.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from protgan.data.channels import CHANNEL_ORDER
from protgan.data.classes import NUM_CLASSES
from protgan.data.imageio import IMAGE_EXTENSIONS
from protgan.core.errors import ProtganError
from protgan.core.atomic import write_text
from protgan.data.classes import class_name

LABEL_FILE = "train.csv"
IMAGE_SUBDIR = "train"
HEADER = ("Id", "Target")


def parse_target(text: str, where: str) -> tuple[int, ...]:
    """`"16 0"` -> (16, 0); errors name `where` (file and row)."""
    tokens = text.split()
    if not tokens:
        raise ProtganError(f"{where}: empty Target (every image needs at least one class)")
    out: list[int] = []
    for tok in tokens:
        try:
            value = int(tok)
        except ValueError:
            raise ProtganError(f"{where}: Target {text!r} has {tok!r}, not an integer class index") from None
        if not 0 <= value < NUM_CLASSES:
            raise ProtganError(f"{where}: class {value} out of range 0..{NUM_CLASSES - 1}")
        if value not in out:
            out.append(value)
    return tuple(out)


def read_label_table(path: str | os.PathLike) -> tuple[list[str], list[tuple[int, ...]]]:
    """Validated (ids, targets) from a `Id,Target` CSV. Row numbers in errors are file line numbers."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ProtganError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise ProtganError(f"{path}: not a UTF-8 text CSV") from None
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if header is None:
        raise ProtganError(f"{path}: empty file (expected header 'Id,Target')")
    if tuple(h.strip() for h in header) != HEADER:
        raise ProtganError(f"{path} row 1: header is {','.join(header)!r}, expected 'Id,Target'")
    ids: list[str] = []
    targets: list[tuple[int, ...]] = []
    first_row: dict[str, int] = {}
    for line_no, row in enumerate(rows, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        where = f"{path} row {line_no}"
        if len(row) != 2:
            raise ProtganError(f"{where}: expected 2 fields (Id,Target), found {len(row)}")
        id_, target = row[0].strip(), row[1]
        if not id_:
            raise ProtganError(f"{where}: empty Id")
        if id_ in first_row:
            raise ProtganError(f"{where}: duplicate Id {id_!r} (first at row {first_row[id_]})")
        first_row[id_] = line_no
        ids.append(id_)
        targets.append(parse_target(target, where))
    if not ids:
        raise ProtganError(f"{path}: no rows after the header")
    return ids, targets


def write_label_table(path: str | os.PathLike, ids: Sequence[str], targets: Sequence[Sequence[int]]) -> None:
    lines = ["Id,Target"] + [f"{i},{' '.join(str(c) for c in t)}" for i, t in zip(ids, targets)]
    write_text(path, "\n".join(lines) + "\n")


@dataclass
class ImageSet:
    """A dataset on disk: ids, their labels, and where each channel file of each id is."""

    root: Path
    image_dir: Path
    ids: list[str]
    targets: list[tuple[int, ...]]
    files: dict[str, dict[str, Path]] = field(repr=False)  # id -> channel -> path, found files only
    dropped_unlabelled: int = 0  # images left without a label by `restrict`

    def __len__(self) -> int:
        return len(self.ids)

    def path(self, id_: str, channel: str) -> Path:
        try:
            return self.files[id_][channel]
        except KeyError:
            raise ProtganError(
                f"{self.image_dir / f'{id_}_{channel}.png'}: missing {channel} channel for Id {id_!r}"
            ) from None

    def missing(self, channels: Iterable[str]) -> list[tuple[str, str]]:
        """(id, channel) pairs whose file does not exist."""
        chans = tuple(channels)
        return [(i, c) for i in self.ids for c in chans if c not in self.files.get(i, {})]

    def channels_found(self) -> tuple[str, ...]:
        """Channels that exist for at least one id, in the fixed order."""
        seen = {c for chans in self.files.values() for c in chans}
        return tuple(c for c in CHANNEL_ORDER if c in seen)

    def require_channels(self, channels: Iterable[str]) -> None:
        """Raise on the first id that lacks one of `channels` (training cannot skip files silently)."""
        missing = self.missing(channels)
        if missing:
            id_, ch = missing[0]
            more = f" (and {len(missing) - 1} more missing files)" if len(missing) > 1 else ""
            raise ProtganError(
                f"{self.image_dir / f'{id_}_{ch}.png'}: missing {ch} channel for Id {id_!r}{more}"
            )

    def label_matrix(self, classes: Sequence[int]) -> np.ndarray:
        """N x len(classes) float32 multi-hot, columns in the order of `classes`."""
        col = {c: j for j, c in enumerate(classes)}
        out = np.zeros((len(self.ids), len(classes)), np.float32)
        for i, t in enumerate(self.targets):
            for c in t:
                if c in col:
                    out[i, col[c]] = 1.0
        return out

    def restrict(self, classes: Sequence[int]) -> "ImageSet":
        """Labels outside `classes` dropped; images left with no label dropped and counted."""
        keep = set(classes)
        ids, targets = [], []
        for i, t in zip(self.ids, self.targets):
            t2 = tuple(c for c in t if c in keep)
            if t2:
                ids.append(i)
                targets.append(t2)
        return ImageSet(self.root, self.image_dir, ids, targets, self.files,
                        self.dropped_unlabelled + len(self.ids) - len(ids))

    def select(self, ids: Sequence[str]) -> "ImageSet":
        index = {i: k for k, i in enumerate(self.ids)}
        return ImageSet(self.root, self.image_dir, list(ids), [self.targets[index[i]] for i in ids],
                        self.files, self.dropped_unlabelled)

    def class_counts(self) -> np.ndarray:
        counts = np.zeros(NUM_CLASSES, np.int64)
        for t in self.targets:
            for c in t:
                counts[c] += 1
        return counts

    def require_classes(self, classes: Sequence[int]) -> None:
        """Raise for the first class of `classes` that has no image."""

        counts = self.class_counts()
        for c in classes:
            if counts[c] == 0:
                raise ProtganError(f"{self.root / LABEL_FILE}: class {c} ({class_name(c)}) has no images")


def index_image_files(image_dir: Path, ids: Iterable[str] | None = None) -> dict[str, dict[str, Path]]:
    """One scan of `image_dir`: {id: {channel: path}}. With several extensions for one file, .png wins."""
    rank = {ext: r for r, ext in enumerate(IMAGE_EXTENSIONS)}
    found: dict[str, dict[str, tuple[int, Path]]] = {}
    wanted = set(ids) if ids is not None else None
    with os.scandir(image_dir) as it:
        for entry in it:
            stem, dot, ext = entry.name.rpartition(".")
            ext = "." + ext.lower()
            if not dot or ext not in rank:
                continue
            id_, us, channel = stem.rpartition("_")
            if not us or channel not in CHANNEL_ORDER:
                continue
            if wanted is not None and id_ not in wanted:
                continue
            slot = found.setdefault(id_, {})
            if channel not in slot or rank[ext] < slot[channel][0]:
                slot[channel] = (rank[ext], Path(entry.path))
    return {i: {c: p for c, (_, p) in chans.items()} for i, chans in found.items()}


def open_dataset(root: str | os.PathLike) -> ImageSet:
    """Open a dataset folder in the HPA layout; raises ProtganError with one clear line."""
    root = Path(root)
    if not root.exists():
        raise ProtganError(f"{root}: directory does not exist")
    if not root.is_dir():
        raise ProtganError(f"{root}: not a directory")
    label_file = root / LABEL_FILE
    if not label_file.exists():
        if not any(root.iterdir()):
            raise ProtganError(f"{root}: empty folder (expected {LABEL_FILE} and images)")
        raise ProtganError(
            f"{root}: no {LABEL_FILE} (expected the HPA layout: {LABEL_FILE} + "
            f"{IMAGE_SUBDIR}/{{Id}}_{{channel}}.png)"
        )
    ids, targets = read_label_table(label_file)
    sub = root / IMAGE_SUBDIR
    image_dir = sub if sub.is_dir() else root
    files = index_image_files(image_dir, ids)
    return ImageSet(root, image_dir, ids, targets, files)
