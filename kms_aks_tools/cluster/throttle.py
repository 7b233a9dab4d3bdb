"""How fast `kms-aks reencrypt` sends: as fast as the API server admits, slower as soon as it says so.

The API server protects its other clients itself, through API Priority and Fairness: a flow that exceeds its
priority level's share is queued, and past the queue answered 429 with Retry-After. A fixed low rate is
therefore the wrong brake: it makes every pass slow, and still knows nothing of what the server can take.
Instead the number of requests in flight adapts, as TCP's congestion window does (AIMD):

- additive increase: each time `limit` answers in a row came back without a sign of overload, one more request
  may be in flight, up to the cap (`--concurrency`);
- multiplicative decrease: a 429 halves the limit and holds every new request until its Retry-After has
  passed; a 5xx or a transport failure halves it too; latency rising to LATENCY_TOLERANCE times its recent
  average (the server queues: more in flight adds delay, not throughput) cuts it by a fifth, but never below
  LATENCY_FLOOR. One decrease per round trip: answers to requests sent before the last decrease do not
  decrease it again.
- an optional rate cap (`--rate`): requests evenly spaced, at most that many a second.

Nothing here knows Kubernetes: a failed request is judged by its `status` (and `headers["Retry-After"]`), as
the official client's ApiException carries them; any other exception is a transport failure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import Enum
from typing import TypeVar

T = TypeVar("T")

START_CONCURRENCY = 4
LATENCY_TOLERANCE = 2.0  # the last answers' latency over the longer-run average that means "the server queues"
LATENCY_DECREASE = 0.8
OVERLOAD_DECREASE = 0.5
# Latency alone never brings the limit below the start: on a shared machine latency also rises with other
# work, and the server's own word (429) is what takes it lower, to one.
LATENCY_FLOOR = START_CONCURRENCY
DEFAULT_RETRY_AFTER = 1.0  # a 429 without Retry-After: APF's own answer is 1 s
MAX_RETRY_AFTER = 30.0
SHORT_SMOOTHING = 0.2  # weight of the newest latency in the last answers' latency (about 5 answers)
LONG_SMOOTHING = 0.01  # ... and in the longer-run average (about 100 answers)


class Signal(Enum):
    OK = "ok"  # answered, and the answer says nothing of overload (2xx, and 404/409: the object's state)
    THROTTLED = "throttled"  # 429: the server's flow control rejected the request
    FAILED = "failed"  # 5xx or no answer: the server (or the way to it) is in trouble


def classify(error: BaseException) -> tuple[Signal, float | None]:
    """What a failed request says of the server's load, and the Retry-After it gave (seconds, capped)."""
    status = getattr(error, "status", None)
    if status == 429:
        return Signal.THROTTLED, retry_after(error)
    if isinstance(status, int) and 400 <= status < 500:
        return Signal.OK, None
    return Signal.FAILED, None


def retry_after(error: BaseException) -> float | None:
    """The Retry-After header of an answer, in seconds (at most MAX_RETRY_AFTER), or None if it gave none."""
    headers = getattr(error, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER) if value else None
    except ValueError:
        return None


class RateCap:
    """At most `rate` requests a second across threads, evenly spaced (no bursts); 0 means no cap."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.clock = clock
        self._next = clock()
        self._lock = threading.Lock()

    def delay(self) -> float:
        """Books the next slot; returns how long the caller must wait for it."""
        if not self.interval:
            return 0.0
        with self._lock:
            now = self.clock()
            slot = max(self._next, now)
            self._next = slot + self.interval
        return slot - now


class AdaptiveConcurrency:
    """How many requests may be in flight now: AIMD between 1 and `cap`, with Retry-After pauses."""

    def __init__(self, cap: int, *, start: int = START_CONCURRENCY, clock: Callable[[], float] = time.monotonic):
        self.cap = max(cap, 1)
        self.limit = float(min(max(start, 1), self.cap))
        self.clock = clock
        self.in_flight = 0
        self.throttled = 0  # 429s answered so far
        self.failed = 0  # 5xx and transport failures so far
        self.peak = self.limit
        self._paused_until = 0.0
        self._decreased_at = -1.0
        self._short: float | None = None
        self._long: float | None = None
        self._changed = threading.Condition()

    def acquire(self) -> float:
        """Blocks until a request may go (a slot free, no Retry-After pause on); returns its send time."""
        with self._changed:
            while True:
                now = self.clock()
                if now < self._paused_until:
                    self._changed.wait(self._paused_until - now)
                elif self.in_flight >= int(self.limit):
                    self._changed.wait(0.5)
                else:
                    self.in_flight += 1
                    return now

    def release(self, sent_at: float, signal: Signal, retry_after: float | None = None) -> None:
        """The answer to a request sent at `sent_at` came back (or failed): adapt the limit to it."""
        now = self.clock()
        with self._changed:
            self.in_flight -= 1
            fresh = sent_at >= self._decreased_at  # sent after the last decrease: its answer is news
            if signal is Signal.THROTTLED:
                self.throttled += 1
                pause = DEFAULT_RETRY_AFTER if retry_after is None else retry_after
                self._paused_until = max(self._paused_until, now + pause)
                if fresh:
                    self._decrease(OVERLOAD_DECREASE, 1, now)
            elif signal is Signal.FAILED:
                self.failed += 1
                if fresh:
                    self._decrease(OVERLOAD_DECREASE, 1, now)
            else:
                self._observe(now - sent_at, fresh, now)
            # Wake as many waiting requests as may go now, not all of them (a pause wakes them when it ends).
            free = int(self.limit) - self.in_flight
            if free > 0 and now >= self._paused_until:
                self._changed.notify(free)

    def _observe(self, latency: float, fresh: bool, now: float) -> None:
        if self._short is None or self._long is None:
            self._short = self._long = latency
        else:
            self._short += (latency - self._short) * SHORT_SMOOTHING
            self._long += (latency - self._long) * LONG_SMOOTHING
        if not fresh:
            return
        if self._short > LATENCY_TOLERANCE * self._long and self.limit > LATENCY_FLOOR:
            self._decrease(LATENCY_DECREASE, LATENCY_FLOOR, now)
        elif self.limit < self.cap:
            self.limit = min(self.cap, self.limit + 1.0 / self.limit)
            self.peak = max(self.peak, self.limit)

    def _decrease(self, factor: float, floor: int, now: float) -> None:
        self.limit = max(float(floor), self.limit * factor)
        self._decreased_at = now


class Throttle:
    """The adaptive concurrency and the rate cap together: `call(request)` sends one request when both allow."""

    def __init__(
        self,
        *,
        concurrency_cap: int,
        rate_cap: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.concurrency = AdaptiveConcurrency(concurrency_cap, clock=clock)
        self.rate = RateCap(rate_cap, clock=clock)
        self.sleep = sleep

    @property
    def throttled(self) -> int:
        return self.concurrency.throttled

    @property
    def limit(self) -> int:
        return int(self.concurrency.limit)

    def call(self, request: Callable[[], T]) -> T:
        """`request()` once a slot is free and the rate cap allows it; its answer (or failure) adapts the limit."""
        self.concurrency.acquire()
        wait = self.rate.delay()
        if wait > 0:
            self.sleep(wait)
        sent_at = self.concurrency.clock()
        try:
            result = request()
        except BaseException as error:
            signal, after = classify(error)
            self.concurrency.release(sent_at, signal, after)
            raise
        self.concurrency.release(sent_at, Signal.OK)
        return result

    def describe(self) -> str:
        """`<n> 429s absorbed, concurrency <limit> (peak <peak>)`: for progress lines and the summary."""
        adaptive = self.concurrency
        return f"{adaptive.throttled} 429s absorbed, concurrency {int(adaptive.limit)} (peak {int(adaptive.peak)})"
