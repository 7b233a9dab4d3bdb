"""How a `kms-aks reencrypt` pass shows its progress: a bar on a terminal, a line every so many Secrets off one."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from kms_aks_tools.cluster.checkpoint import Counts
from kms_aks_tools.cluster.throttle import Throttle


class ProgressReport:
    """A rich progress bar with counts, the current rate, the 429s absorbed and an ETA on a terminal; off one, a
    plain line with the same figures every `every` Secrets. The rate is the last RATE_WINDOW seconds'."""

    RATE_WINDOW = 5.0

    def __init__(
        self,
        console: Console,
        *,
        every: int,
        done: int,
        total: int | None,
        started: float,
        throttle: Throttle | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.every = every
        self.done = done
        self.throttle = throttle
        self.clock = clock
        self.samples: deque[tuple[float, int]] = deque([(started, done)])
        self.next_line = (done // every + 1) * every if every > 0 else 0
        self.bar: Progress | None = None
        if console.is_terminal:
            self.bar = Progress(
                TextColumn("[bold]reencrypt[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("Secrets {task.fields[rate]:.0f}/s, {task.fields[throttled]} 429s absorbed"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )
            self.task = self.bar.add_task("rewrite", total=total, completed=done, rate=0.0, throttled=0)
            self.bar.start()

    def set_total(self, total: int | None) -> None:
        if self.bar is not None and total is not None:
            self.bar.update(self.task, total=max(total, self.done))

    def rate(self) -> float:
        """Secrets a second over the last RATE_WINDOW seconds (since the start while it is shorter)."""
        now, done = self.samples[-1]
        then, done_then = self.samples[0]
        return (done - done_then) / (now - then) if now > then else 0.0

    def advance(self, counts: Counts, failed: int, total: int | None) -> None:
        self.done += 1
        now = self.clock()
        if now - self.samples[-1][0] >= 0.25:  # a sample every quarter second, RATE_WINDOW seconds kept
            self.samples.append((now, self.done))
            while len(self.samples) > 2 and now - self.samples[1][0] >= self.RATE_WINDOW:
                self.samples.popleft()
        throttled = self.throttle.throttled if self.throttle is not None else 0
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done, rate=self.rate(), throttled=throttled)
            return
        if self.every > 0 and self.done >= self.next_line:
            self.next_line += self.every
            of = f"/{total}" if total is not None else ""
            adaptive = f", {self.throttle.describe()}" if self.throttle is not None else ""
            self.console.print(
                f"reencrypt: {self.done}{of} Secrets (rewritten {counts.rewritten}, unchanged {counts.unchanged}, "
                f"deleted {counts.deleted}, failed {failed}), {self.rate():.1f}/s{adaptive}"
            )

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
