"""The write loop of `kms-aks reencrypt` without a cluster: the adaptive concurrency (AIMD on 429, 5xx and
latency, Retry-After honoured), the rate cap, the retries of one Secret, the listing's 410/429 handling and
its read-ahead, and the progress line's rate. On a real API server (APF's 429s, 410 after compaction, a KMS
plugin outage, the rate cap against apiserver_request_total): tests/e2e_k8s/test_reencrypt_faults.py."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client.rest import ApiException
from rich.console import Console

from kms_aks_tools.cluster import rewrite
from kms_aks_tools.cluster.checkpoint import Counts
from kms_aks_tools.cluster.connection import connect
from kms_aks_tools.cluster.progress import ProgressReport
from kms_aks_tools.cluster.rewrite import (
    MAX_THROTTLED_RETRIES,
    MAX_TRANSIENT_RETRIES,
    ListingError,
    Outcome,
    Rewriter,
    list_pages,
    read_ahead,
)
from kms_aks_tools.cluster.throttle import AdaptiveConcurrency, RateCap, Signal, Throttle, classify


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def api_error(status: int, *, retry_after: str | None = None, body: dict[str, Any] | None = None) -> ApiException:
    error = ApiException(status=status, reason="x", body=json.dumps(body or {}))
    error.headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return error


# ------------------------------------------------------------------------------------------- AIMD


def answer(adaptive: AdaptiveConcurrency, clock: Clock, latency: float, signal: Signal = Signal.OK, **kw: Any) -> None:
    sent = adaptive.acquire()
    clock.now += latency
    adaptive.release(sent, signal, **kw)


def test_quick_answers_add_one_request_in_flight_per_window_up_to_the_cap() -> None:
    clock = Clock()
    adaptive = AdaptiveConcurrency(16, start=4, clock=clock)
    for _ in range(4):  # one window at limit 4: +1/4 each
        answer(adaptive, clock, 0.01)
    assert adaptive.limit == pytest.approx(4 + 1 / 4 + 1 / 4.25 + 1 / (4.25 + 1 / 4.25) + 1 / adaptive.limit, abs=0.05)
    assert 4.9 < adaptive.limit < 5.0
    for _ in range(500):
        answer(adaptive, clock, 0.01)
    assert adaptive.limit == 16 and adaptive.peak == 16, "the cap bounds it"


def test_a_429_halves_the_limit_once_per_round_trip_and_holds_every_request_for_its_retry_after() -> None:
    clock = Clock()
    adaptive = AdaptiveConcurrency(16, start=8, clock=clock)
    sent = [adaptive.acquire() for _ in range(8)]
    clock.now += 0.01
    adaptive.release(sent[0], Signal.THROTTLED, 2.0)
    assert adaptive.limit == 4 and adaptive.throttled == 1
    # The other seven were sent before the decrease: their 429s are counted, not halved again.
    for t in sent[1:]:
        adaptive.release(t, Signal.THROTTLED, 2.0)
    assert adaptive.limit == 4 and adaptive.throttled == 8

    # Nothing goes before the Retry-After has passed: acquire() waits (a thread, with the real Condition).
    started = threading.Event()
    acquired: list[float] = []

    def worker() -> None:
        started.set()
        acquired.append(adaptive.acquire())

    thread = threading.Thread(target=worker)
    thread.start()
    started.wait()
    thread.join(timeout=0.3)
    assert thread.is_alive() and not acquired, "held during the Retry-After"
    clock.now += 2.0
    with adaptive._changed:
        adaptive._changed.notify_all()
    thread.join(timeout=5)
    assert acquired == [clock.now]

    adaptive.release(acquired[0], Signal.THROTTLED, None)  # sent after the decrease: halves again
    assert adaptive.limit == 2
    clock.now += 1.0  # a 429 without Retry-After holds requests for APF's own 1 s
    for _ in range(3):
        answer(adaptive, clock, 0.5, Signal.THROTTLED, retry_after=0.0)
    assert adaptive.limit == 1, "a 429 may bring it down to one request in flight, below the latency floor"


def test_a_5xx_or_a_transport_failure_halves_it_too() -> None:
    clock = Clock()
    adaptive = AdaptiveConcurrency(16, start=10, clock=clock)
    answer(adaptive, clock, 0.01, Signal.FAILED)
    assert adaptive.limit == 5 and adaptive.failed == 1


def test_rising_latency_cuts_the_limit_to_the_start_at_most_and_steady_latency_lets_it_grow_again() -> None:
    clock = Clock()
    adaptive = AdaptiveConcurrency(32, start=4, clock=clock)
    for _ in range(200):
        answer(adaptive, clock, 0.010)
    grown = adaptive.limit
    assert grown > 12
    answer(adaptive, clock, 0.200)  # one slow answer: the last answers' latency over twice the average, one cut
    assert adaptive.limit == pytest.approx(grown * 0.8)
    for _ in range(20):
        answer(adaptive, clock, 0.200)
    assert 4 <= adaptive.limit < 5, "cut on each fresh answer while latency rises; latency alone stops at the start"
    for _ in range(400):
        answer(adaptive, clock, 0.200)  # slow, but no longer rising: the average has caught up
    assert adaptive.limit > 8


def test_answers_that_say_nothing_of_load_keep_it_growing() -> None:
    assert classify(api_error(409)) == (Signal.OK, None)
    assert classify(api_error(404)) == (Signal.OK, None)
    assert classify(api_error(429, retry_after="3")) == (Signal.THROTTLED, 3.0)
    assert classify(api_error(429, retry_after="999")) == (Signal.THROTTLED, 30.0), "Retry-After is capped"
    assert classify(api_error(503)) == (Signal.FAILED, None)
    assert classify(ConnectionResetError()) == (Signal.FAILED, None)


def test_the_rate_cap_spaces_requests_evenly_and_zero_means_none() -> None:
    clock = Clock()
    cap = RateCap(10, clock=clock)
    assert [round(cap.delay(), 3) for _ in range(4)] == [0.0, 0.1, 0.2, 0.3]
    clock.now += 5
    assert cap.delay() == 0.0, "an idle spell earns no burst: the next slot is now, then 0.1 s apart"
    assert round(cap.delay(), 3) == 0.1
    assert RateCap(0, clock=clock).delay() == 0.0


def test_throttle_call_sleeps_for_the_rate_cap_and_reports_the_answer() -> None:
    clock = Clock()
    slept: list[float] = []
    throttle = Throttle(concurrency_cap=4, rate_cap=2, clock=clock, sleep=slept.append)
    assert throttle.call(lambda: "a") == "a"
    with pytest.raises(ApiException):
        throttle.call(lambda: (_ for _ in ()).throw(api_error(429, retry_after="1")))
    assert slept == [0.5] and throttle.throttled == 1 and throttle.limit == 2
    assert throttle.concurrency.in_flight == 0, "a failed request gives its slot back"


# ------------------------------------------------------------------------------------------- one Secret


def secret(name: str, rv: str = "10") -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": rv}, "data": {"k": "dg=="}}


def rewriter_with(
    monkeypatch: pytest.MonkeyPatch, answers: list[Any], reads: list[dict[str, Any]] | None = None
) -> tuple[Rewriter, list[float], list[dict[str, Any]]]:
    """A Rewriter whose PUTs answer `answers` in turn (an exception is raised) and whose GETs return `reads`."""
    sent: list[dict[str, Any]] = []

    def put(_cluster: Any, method: str, _path: str, **kw: Any) -> bytes:
        assert method == "PUT"
        sent.append(kw["body"])
        outcome = answers.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return json.dumps(outcome).encode()

    pending = list(reads or [])

    def read(*_a: Any, **_k: Any) -> Any:
        return SimpleNamespace(data=json.dumps(pending.pop(0)).encode())

    monkeypatch.setattr(rewrite, "request_raw", put)
    cluster = SimpleNamespace(core=SimpleNamespace(read_namespaced_secret=read))
    slept: list[float] = []
    throttle = Throttle(concurrency_cap=4, rate_cap=0, sleep=slept.append)
    return Rewriter(cluster, throttle, sleep=slept.append), slept, sent  # type: ignore[arg-type]


def test_a_429_is_retried_after_the_throttle_pause_without_a_backoff_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rewriter, slept, sent = rewriter_with(monkeypatch, [api_error(429, retry_after="0"), secret("a", "11")])
    result = rewriter.rewrite(secret("a"), "ns", "a")
    assert result.outcome is Outcome.REWRITTEN
    assert len(sent) == 2 and sent[0] == sent[1] == secret("a"), "the same body, the same resourceVersion"
    assert slept == [] and rewriter.throttle.throttled == 1


def test_429s_past_client_gos_bound_fail_the_secret_with_the_servers_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    errors = [api_error(429, retry_after="0") for _ in range(MAX_THROTTLED_RETRIES + 1)]
    rewriter, _, sent = rewriter_with(monkeypatch, errors)
    result = rewriter.rewrite(secret("a"), "ns", "a")
    assert result.outcome is Outcome.FAILED and result.reason.startswith("HTTP 429")
    assert len(sent) == MAX_THROTTLED_RETRIES + 1


def test_a_5xx_backs_off_doubling_then_fails_named(monkeypatch: pytest.MonkeyPatch) -> None:
    errors = [api_error(500) for _ in range(MAX_TRANSIENT_RETRIES + 1)]
    rewriter, slept, _ = rewriter_with(monkeypatch, errors)
    result = rewriter.rewrite(secret("a"), "ns", "a")
    assert result.outcome is Outcome.FAILED and result.reason == "HTTP 500 x"
    assert slept == [0.5, 1.0, 2.0, 4.0]


def test_a_503_with_retry_after_waits_at_least_that_long(monkeypatch: pytest.MonkeyPatch) -> None:
    rewriter, slept, _ = rewriter_with(monkeypatch, [api_error(503, retry_after="3"), secret("a", "10")])
    assert rewriter.rewrite(secret("a"), "ns", "a").outcome is Outcome.UNCHANGED
    assert slept == [3.0]


def test_a_conflict_reads_the_secret_again_and_sends_what_the_server_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = secret("a", "12")
    rewriter, _, sent = rewriter_with(monkeypatch, [api_error(409), secret("a", "13")], reads=[fresh])
    result = rewriter.rewrite(secret("a"), "ns", "a")
    assert result.outcome is Outcome.REWRITTEN and result.conflicts == 1
    assert sent == [secret("a"), fresh]


# ------------------------------------------------------------------------------------------- listing


def fake_lister(answers: list[Any], seen: list[str | None]) -> Any:
    def list_secret_for_all_namespaces(**kw: Any) -> Any:
        seen.append(kw["_continue"])
        outcome = answers.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return SimpleNamespace(data=json.dumps(outcome).encode())

    return SimpleNamespace(core=SimpleNamespace(list_secret_for_all_namespaces=list_secret_for_all_namespaces))


def page(names: list[str], token: str | None) -> dict[str, Any]:
    return {"items": [secret(n) for n in names], "metadata": {"continue": token} if token else {}}


def test_an_expired_continue_token_lists_on_from_the_fresh_token_the_410_carries() -> None:
    gone = api_error(410, body={"kind": "Status", "metadata": {"continue": "fresh"}, "reason": "Expired"})
    seen: list[str | None] = []
    cluster = fake_lister([page(["a"], "t1"), gone, page(["b"], "t2"), page(["c"], None)], seen)
    expired: list[int] = []
    pages = list(list_pages(cluster, 1, None, on_expired=lambda: expired.append(1)))  # type: ignore[arg-type]
    assert [[i["metadata"]["name"] for i in items] for items, _, _ in pages] == [["a"], ["b"], ["c"]]
    assert seen == [None, "t1", "fresh", "t2"] and expired == [1]


def test_a_410_without_a_fresh_token_stops_the_listing() -> None:
    cluster = fake_lister([page(["a"], "t1"), api_error(410, body={"kind": "Status", "message": "too old"})], [])
    with pytest.raises(ListingError, match="HTTP 410 x: too old"):
        list(list_pages(cluster, 1, None))  # type: ignore[arg-type]


def test_a_listing_429_without_a_throttle_sleeps_its_retry_after() -> None:
    slept: list[float] = []
    cluster = fake_lister([api_error(429, retry_after="2"), page(["a"], None)], [])
    assert len(list(list_pages(cluster, 1, None, sleep=slept.append))) == 1  # type: ignore[arg-type]
    assert slept == [2.0]


def test_read_ahead_yields_in_order_and_hands_the_listings_error_on() -> None:
    def pages() -> Iterator[int]:
        yield 1
        yield 2
        raise ListingError("listing Secrets failed: HTTP 500")

    got: list[int] = []
    with pytest.raises(ListingError, match="HTTP 500"):
        for value in read_ahead(pages()):
            got.append(value)
    assert got == [1, 2]


def test_read_ahead_fetches_the_next_page_while_the_caller_works_and_holds_no_more_than_that() -> None:
    fetched: list[int] = []

    def pages() -> Iterator[int]:
        for n in range(5):
            fetched.append(n)
            yield n

    iterator = read_ahead(pages())
    assert next(iterator) == 0
    wait_until(lambda: len(fetched) >= 3)
    assert fetched == [0, 1, 2], "page 1 in the hand-off, page 2 fetched and waiting; no further"
    assert list(iterator) == [1, 2, 3, 4]


def wait_until(condition: Callable[[], bool]) -> None:
    done = threading.Event()
    for _ in range(200):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("condition not met")


# ------------------------------------------------------------------------------------------- progress and pool


def test_the_progress_line_shows_the_current_rate_and_the_429s_absorbed() -> None:
    clock = Clock()
    out = io.StringIO()
    throttle = Throttle(concurrency_cap=8, rate_cap=0, clock=clock)
    throttle.concurrency.throttled = 3
    report = ProgressReport(
        Console(file=out, force_terminal=False, width=400),
        every=100,
        done=0,
        total=400,
        started=clock.now,
        throttle=throttle,
        clock=clock,
    )
    for _ in range(100):  # 100 Secrets in 10 s, then 100 in 1 s: the window's rate, not the average since start
        clock.now += 0.1
        report.advance(Counts(), 0, 400)
    for _ in range(100):
        clock.now += 0.01
        report.advance(Counts(), 0, 400)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("10.0/s, 3 429s absorbed, concurrency 4 (peak 4)")
    rate = float(lines[1].split("), ")[1].split("/s")[0])
    assert 25 < rate < 40, lines[1]  # (100 + 100) Secrets over the last 5 s + ~1 s


def test_the_connection_pool_holds_as_many_connections_as_requests_may_be_in_flight(tmp_path: Any) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    cluster = connect(str(kubeconfig), None, pool_size=rewrite.DEFAULT_CONCURRENCY)
    try:
        configuration = cluster.api.configuration
        assert configuration.connection_pool_maxsize == rewrite.DEFAULT_CONCURRENCY == 16
        assert configuration.retries is False, "no retries below ours (urllib3 would retry a PUT on its own)"
        assert cluster.api.rest_client.pool_manager.connection_pool_kw["maxsize"] == 16
    finally:
        cluster.close()


def test_the_kubeconfigs_refresh_hook_runs_once_per_interval_not_before_every_request(tmp_path: Any) -> None:
    from kms_aks_tools.cluster.connection import _at_most_every

    calls: list[Any] = []
    hook = _at_most_every(60.0, calls.append)
    for _ in range(100):
        hook("configuration")
    assert calls == ["configuration"], "the first request checks the credentials; the next 99 do not"
    again = _at_most_every(0.0, calls.append)
    again("a")
    again("b")
    assert calls[1:] == ["a", "b"]
