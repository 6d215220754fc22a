"""The run-folder contract every stage follows: where it may write, one run at a time, same options.

    claim = claim_run_folder(out, inputs={"--data": data}, writes=("config.json", "checkpoints"))
    with claim:                     # the lock: RUN/.protgan.lock (pid, host, time), released at the end
        check_same_options(...)     # a resume with other training options is refused, naming them

- `check_out_path`: `--out` that is an existing file, sits under a file, or is not writable: one line.
- `check_inputs`: never write inside an input dataset (out equal to or inside an input folder), and never
  write over one (an input inside out, under a name the stage writes; `writes=None`: anything inside).
- `RunLock`: O_EXCL lock file. A live holder refuses with one line; a stale lock left by a dead process on
  this host is taken over with a warning; a lock from another host is refused (its process cannot be checked).
- `check_same_options`: saved vs new option dicts; keys that may differ (device, workers, options marked
  `affects_run=False` in `core.options.option`) are skipped; keys missing from an older run are no change.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from protgan.core import distributed
from protgan.core.errors import ProtganError
from protgan.core.options import option_meta

LOCK_FILE = ".protgan.lock"
# options of any stage that describe how (not what) it runs: they may differ between invocations of one run
PER_INVOCATION = frozenset({"device", "workers", "resume", "debug", "out"})

Warn = Callable[[str], None]


# ------------------------------------------------------------------------------------------ where
def _first_existing(path: Path) -> Path:
    for p in [path, *path.parents]:
        if p.exists():
            return p
    return Path("/")


def check_out_path(out: str | os.PathLike, flag: str = "--out") -> Path:
    """`out` usable as a folder to create or write into; one line naming the path otherwise."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ProtganError(f"{flag} {out}: is an existing file, not a folder")
    base = _first_existing(out.absolute())
    if not base.is_dir():
        raise ProtganError(f"{flag} {out}: {base} is a file, so no folder can be made under it")
    if not os.access(base, os.W_OK | os.X_OK):
        what = "the folder is" if base == out.absolute() else f"{base} is"
        raise ProtganError(f"{flag} {out}: not writable ({what} read-only for this user)")
    return out


def check_out_file(out: str | os.PathLike, flag: str = "--out") -> Path:
    """`out` usable as a file to write: not a folder, its folder creatable and writable."""
    out = Path(out)
    if out.is_dir():
        raise ProtganError(f"{flag} {out}: is a folder; give a file name (e.g. {out / 'predictions.csv'})")
    parent = out.absolute().parent
    check_out_path(parent, flag=f"{flag} {out}: folder")
    if out.exists() and not os.access(out, os.W_OK):
        raise ProtganError(f"{flag} {out}: not writable (the file is read-only for this user)")
    return out


def _within(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def check_inputs(out: str | os.PathLike,
                 inputs: Mapping[str, str | os.PathLike | None] | Iterable[tuple[str, str | os.PathLike | None]],
                 writes: Sequence[str] | None = None) -> None:
    """Refuse `out` equal to or inside an input folder, or an input that writing `out` would overwrite.
    `inputs`: {flag: path} or (flag, path) pairs (one flag may name several folders)."""
    out_r = Path(out).resolve()
    pairs = inputs.items() if isinstance(inputs, Mapping) else inputs
    for flag, path in pairs:
        if path is None or str(path) == "":
            continue
        src = Path(path).resolve()
        if _within(out_r, src):
            where = "is" if out_r == src else "is inside"
            raise ProtganError(f"--out {out}: {where} the input {flag} {path}; protgan never writes inside an "
                               f"input dataset (choose another --out)")
        if _within(src, out_r):
            first = src.relative_to(out_r).parts[0] if src != out_r else ""
            if writes is None or first in writes:
                raise ProtganError(f"--out {out}: holds the input {flag} {path}, which this run would write over "
                                   f"(choose another --out)")


# ------------------------------------------------------------------------------------------- lock
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    except OSError:
        return False
    return True


class RunLock:
    """RUN/.protgan.lock held while a run writes RUN (a context manager; re-entrant in one object)."""

    def __init__(self, folder: str | os.PathLike, what: str = "run", warn: Warn | None = None) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.what = what
        self.warn = warn or (lambda message: None)
        self.held = False
        self.active = distributed.is_main()  # torchrun: rank 0 holds the lock for the whole group

    def _write(self) -> bool:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "what": self.what}
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
        return True

    def _holder(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def acquire(self) -> "RunLock":
        if self.held or not self.active:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._write():
                self.held = True
                return self
            holder = self._holder()
            pid, host = holder.get("pid"), holder.get("host")
            if not holder:  # being written right now, or garbage: look again, then treat as stale
                time.sleep(0.05)
                holder = self._holder()
                pid, host = holder.get("pid"), holder.get("host")
            same_host = host == socket.gethostname()
            if holder and (not same_host or (isinstance(pid, int) and _pid_alive(pid))):
                since = f" since {holder.get('time')}" if holder.get("time") else ""
                raise ProtganError(
                    f"{self.folder}: another {holder.get('what', 'run')} is writing this folder (pid {pid} on "
                    f"{host}{since}); wait for it, use another --out, or delete {self.path} if that process is gone")
            self.warn(f"{self.path}: stale lock of pid {pid} on {host} (no longer running): taken over")
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        raise ProtganError(f"{self.path}: could not take the lock (another run keeps taking it)")

    def release(self) -> None:
        if self.held:
            try:
                if self._holder().get("pid") == os.getpid():
                    self.path.unlink()
            except FileNotFoundError:
                pass
            self.held = False

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


# ---------------------------------------------------------------------------------- same options
def run_independent_fields(config_cls: type) -> set[str]:
    """Fields of an options dataclass marked affects_run=False (core.options.option)."""
    if not dataclasses.is_dataclass(config_cls):
        return set()
    return {f.name for f in dataclasses.fields(config_cls) if not option_meta(f)["affects_run"]}


def _norm(key: str, value: Any, path_keys: Iterable[str]) -> Any:
    if value is not None and key in path_keys and str(value) != "":
        return str(Path(value).resolve())
    if isinstance(value, tuple):
        return list(value)
    return value


def option_differences(saved: Mapping[str, Any], new: Mapping[str, Any], may_differ: Iterable[str] = (),
                       path_keys: Iterable[str] = ()) -> list[str]:
    """`key=OLD, not NEW` for each option that differs (keys absent from `saved`: added since, no change)."""
    skip = set(may_differ) | PER_INVOCATION
    path_keys = set(path_keys)
    diffs = []
    for key, value in new.items():
        if key in skip or key not in saved:
            continue
        old, now = _norm(key, saved[key], path_keys), _norm(key, value, path_keys)
        if old != now:
            diffs.append(f"{key}={saved[key]!r}, not {value!r}")
    return diffs


def check_same_options(where: str | os.PathLike, saved: Mapping[str, Any], new: Mapping[str, Any],
                       may_differ: Iterable[str] = (), path_keys: Iterable[str] = (),
                       hint: str = "use another --out, or --resume never to start over") -> None:
    """Refuse to continue a run made with other options, naming every one that differs."""
    diffs = option_differences(saved, new, may_differ, path_keys)
    if diffs:
        raise ProtganError(f"{where}: this run was trained with {'; '.join(diffs)} ({hint})")


def read_saved_options(path: str | os.PathLike) -> dict[str, Any] | None:
    """RUN/config.json as a dict, None when absent; one line when unreadable."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ProtganError(f"{path}: unreadable ({type(e).__name__}); delete it or use another --out") from None
    if not isinstance(saved, dict):
        raise ProtganError(f"{path}: not a protgan config.json; use another --out")
    return saved


# ------------------------------------------------------------------------------------------- claim
def claim_run_folder(out: str | os.PathLike, inputs: Mapping[str, str | os.PathLike | None] | None = None,
                     writes: Sequence[str] | None = None, what: str = "run", warn: Warn | None = None) -> RunLock:
    """Check `out` (a folder: usable, not inside an input, not over one) and return its lock (not yet taken)."""
    check_out_path(out)
    check_inputs(out, inputs or {}, writes)
    return RunLock(out, what=what, warn=warn)
