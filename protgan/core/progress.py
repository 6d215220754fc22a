"""Progress of every long loop, in a terminal and in a log file.

In a terminal: rich bars (one per stage). When stdout is not a terminal (SLURM, nohup, CI, a pipe) or
with `--log-format plain`: one plain line per stage at most every `--log-interval` seconds, plus the
first and the last update of each stage, e.g.

    2026-12-01 21:05:13 train-gan train 1200/20000 6.0% 12.3 step/s ETA 22m45s | D 0.512 G 1.234 D(x) 0.71

Under torchrun only rank 0 reports. Loops call `Reporter.update(stage, done, total, **figures)` (or
the plain `callback` with the engines' (stage, done, total) signature) and `Reporter.log(message)`.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Optional

from protgan.core.errors import ProtganError
from protgan.core.options import option

LOG_FORMATS = ("auto", "rich", "plain")


@dataclass
class LogOptions:
    """The progress options every long command takes."""

    log_format: str = option("auto", "Progress output: auto (bars in a terminal, plain lines when stdout is a file "
                                     "or a pipe), rich or plain.", choices=LOG_FORMATS, affects_run=False)
    log_interval: float = option(30.0, "Seconds between plain progress lines (0: every update).", affects_run=False)


def is_rank0() -> bool:
    """True outside torchrun and on its rank 0 (read from the environment: no torch needed)."""
    return int(os.environ.get("RANK", "0") or 0) == 0


def format_seconds(s: float) -> str:
    if s != s or s == float("inf"):
        return "?"
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def format_figures(figures: dict[str, Any]) -> str:
    parts = []
    for k, v in figures.items():
        if v is None:
            continue
        if isinstance(v, float):
            v = f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"
        parts.append(f"{k} {v}")
    return "  ".join(parts)


class _Stage:
    def __init__(self, name: str, done: int, total: Optional[int]) -> None:
        self.name, self.total = name, total
        self.t0, self.done0, self.done = time.monotonic(), done, done
        self.last_line = -float("inf")
        self.figures: dict[str, Any] = {}

    def rate(self) -> float:
        dt = time.monotonic() - self.t0
        return (self.done - self.done0) / dt if dt > 0 else 0.0


class Reporter:
    """Progress of one command: `with Reporter("train-gan", console, opts) as r: r.update(...)`."""

    def __init__(self, command: str, console: Any = None, options: LogOptions | None = None, *,
                 unit: str = "it", transient: bool = True, enabled: bool | None = None) -> None:
        options = options or LogOptions()
        if options.log_format not in LOG_FORMATS:
            raise ProtganError(f"--log-format {options.log_format!r}: expected one of {', '.join(LOG_FORMATS)}")
        if options.log_interval < 0:
            raise ProtganError(f"--log-interval {options.log_interval}: must be >= 0 seconds")
        self.command, self.unit, self.interval = command, unit, options.log_interval
        self.enabled = is_rank0() if enabled is None else enabled
        if console is None:
            from rich.console import Console

            console = Console()
        self.console = console
        fmt = options.log_format
        self.plain = fmt == "plain" or (fmt == "auto" and not console.is_terminal)
        self.transient = transient
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        self._stage: _Stage | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    # ------------------------------------------------------------------------------------- context
    def __enter__(self) -> "Reporter":
        if self.enabled and not self.plain:
            from rich.progress import (
                BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
            )

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[figures]}"),
                                 console=self.console, transient=self.transient)
            self._bar.__enter__()
        elif self.enabled and self.interval > 0:
            # a line every --log-interval even when a stage makes no progress for a while (one epoch, one
            # compare cell): a log file always shows the job is alive and where it is
            self._heartbeat = threading.Thread(target=self._beat, name="progress-heartbeat", daemon=True)
            self._heartbeat.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(min(self.interval, 5.0)):
            with self._lock:
                st = self._stage
                if st is not None and st.last_line != float("inf") and time.monotonic() - st.last_line >= self.interval:
                    self._line(st)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        if self._stage is not None and self.plain and self.enabled and exc[0] is None:
            self._line(self._stage, final=True)
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None

    # ------------------------------------------------------------------------------------ reporting
    def log(self, message: str) -> None:
        """A message line (above the bars in a terminal)."""
        if not self.enabled:
            return
        target = self._bar.console if self._bar is not None else self.console
        target.print(message, highlight=False, soft_wrap=True)
        self._flush()

    def figures(self, **figures: Any) -> None:
        """Set the current stage's own figures (losses, KID, F1...) shown with its next update."""
        if self._stage is not None:
            self._stage.figures.update(figures)
            if self._bar is not None:
                self._bar.update(self._tasks[self._stage.name], figures=format_figures(self._stage.figures))

    def update(self, stage: str, done: int, total: Optional[int] = None, **figures: Any) -> None:
        if not self.enabled:
            return
        st = self._stage
        if st is None or st.name != stage:
            if st is not None and self.plain:
                self._line(st, final=True)
            st = self._stage = _Stage(stage, done, total)
            if self._bar is not None:
                for t in self._tasks.values():
                    self._bar.remove_task(t)
                self._tasks = {stage: self._bar.add_task(f"{self.command} {stage}".strip(), total=total,
                                                         figures="")}
        st.done, st.total = done, total if total is not None else st.total
        st.figures.update(figures)
        if self._bar is not None:
            self._bar.update(self._tasks[stage], completed=done, total=st.total,
                             figures=format_figures(st.figures))
        elif self.plain:
            with self._lock:
                now = time.monotonic()
                finished = st.total is not None and done >= st.total
                if st.last_line != float("inf") and (finished or now - st.last_line >= self.interval):
                    self._line(st)

    def callback(self, stage: str, done: int, total: int) -> None:
        """The engines' progress signature: (stage, done, total)."""
        self.update(stage, done, total)

    # -------------------------------------------------------------------------------------- plain
    def _line(self, st: _Stage, final: bool = False) -> None:
        if final and st.last_line == float("inf"):
            return  # already printed at completion
        now = time.monotonic()
        rate = st.rate()
        parts = [datetime.now().strftime("%Y-%m-%d %H:%M:%S"), self.command, st.name]
        if st.total:
            parts.append(f"{st.done}/{st.total} {100.0 * st.done / st.total:.1f}%")
        else:
            parts.append(str(st.done))
        if rate > 0:
            parts.append(f"{rate:.3g} {self.unit}/s")
        if st.total and rate > 0 and st.done < st.total:
            parts.append(f"ETA {format_seconds((st.total - st.done) / rate)}")
        else:
            parts.append(f"elapsed {format_seconds(now - st.t0)}")
        text = " ".join(parts)
        figs = format_figures(st.figures)
        if figs:
            text += " | " + figs
        self.console.print(text, highlight=False, soft_wrap=True, markup=False)
        self._flush()
        done = st.total is not None and st.done >= st.total
        st.last_line = float("inf") if done else now

    def _flush(self) -> None:
        try:
            self.console.file.flush()
        except (AttributeError, OSError, ValueError):
            sys.stdout.flush()


ProgressFn = Callable[[str, int, int], None]
