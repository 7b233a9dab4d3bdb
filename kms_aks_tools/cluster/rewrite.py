"""The write pass of `kms-aks reencrypt`: every Secret listed a page at a time and replaced with itself, as fast as
the API server admits, the checkpoint saved after each page (the command, its options and its record:
`kms_aks_tools.cluster.reencrypt`)."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from rich.console import Console

from kms_aks_tools.cluster.checkpoint import Checkpoint, Counts, Failure, save_checkpoint
from kms_aks_tools.cluster.connection import (
    REQUEST_TIMEOUT,
    Cluster,
    connection_problem,
    describe_api_error,
    request_raw,
)
from kms_aks_tools.cluster.progress import ProgressReport
from kms_aks_tools.cluster.throttle import DEFAULT_RETRY_AFTER, Throttle, retry_after

T = TypeVar("T")

FIELD_MANAGER = "kms-aks-reencrypt"
# A cap, not a pace: the pass starts at throttle.START_CONCURRENCY requests in flight and adapts up to it. The
# connection pool has as many connections (a smaller pool would open and drop a TLS connection per request).
DEFAULT_CONCURRENCY = 16
DEFAULT_RATE = 0.0  # no cap: the API server's Priority and Fairness says when to slow down (429)
DEFAULT_PAGE_SIZE = 250
DEFAULT_PROGRESS_EVERY = 500
MAX_CONFLICT_RETRIES = 5
MAX_THROTTLED_RETRIES = 10  # 429s for one request, each after its Retry-After (client-go's own bound)
MAX_TRANSIENT_RETRIES = 4  # 5xx and transport failures for one request, 0.5 s doubling
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})


# ------------------------------------------------------------------------------------------- one Secret


class Outcome(Enum):
    REWRITTEN = "rewritten"
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    FAILED = "failed"


@dataclass(frozen=True)
class Result:
    namespace: str
    name: str
    outcome: Outcome
    reason: str = ""
    conflicts: int = 0  # 409s answered by a fresh read and a retry


def _json(response: Any) -> dict[str, Any]:
    return json.loads(response.data)


class Rewriter:
    """Replaces one Secret with itself: retries a conflict with a fresh read, and a transient error after a pause."""

    def __init__(self, cluster: Cluster, throttle: Throttle, *, sleep: Callable[[float], None] = time.sleep):
        self.cluster = cluster
        self.core = cluster.core
        self.throttle = throttle
        self.sleep = sleep

    def read(self, namespace: str, name: str) -> dict[str, Any]:
        return _json(
            self.throttle.call(
                lambda: self.core.read_namespaced_secret(
                    name, namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
                )
            )
        )

    def replace(self, body: dict[str, Any], namespace: str, name: str) -> dict[str, Any]:
        return json.loads(
            self.throttle.call(
                lambda: request_raw(
                    self.cluster,
                    "PUT",
                    "/api/v1/namespaces/{namespace}/secrets/{name}",
                    path_params={"namespace": namespace, "name": name},
                    query=[("fieldManager", FIELD_MANAGER)],
                    body=body,
                )
            )
        )

    def rewrite(self, secret: dict[str, Any] | None, namespace: str, name: str) -> Result:
        from kubernetes.client.rest import ApiException

        conflicts = throttled = transient = 0
        body = secret
        while True:
            try:
                if body is None:
                    body = self.read(namespace, name)
                sent = body["metadata"]["resourceVersion"]
                answer = self.replace(body, namespace, name)
            except ApiException as error:
                if error.status == 404:
                    return Result(namespace, name, Outcome.DELETED, conflicts=conflicts)
                if error.status == 409 and conflicts < MAX_CONFLICT_RETRIES:
                    conflicts += 1
                    body = None  # written meanwhile: read it again, so the other writer's update is what we send
                    continue
                if error.status == 429 and throttled < MAX_THROTTLED_RETRIES:
                    throttled += 1  # the throttle holds every request until the Retry-After has passed
                    continue
                if error.status in TRANSIENT_STATUSES and transient < MAX_TRANSIENT_RETRIES:
                    transient += 1
                    self.sleep(max(_backoff(transient), retry_after(error) or 0.0))
                    continue
                reason = describe_api_error(error)
                if error.status == 409:
                    reason += f" (still conflicting after {MAX_CONFLICT_RETRIES} fresh reads)"
                return Result(namespace, name, Outcome.FAILED, reason, conflicts)
            except (urllib3.exceptions.HTTPError, OSError) as error:
                if transient < MAX_TRANSIENT_RETRIES:
                    transient += 1
                    self.sleep(_backoff(transient))
                    continue
                return Result(namespace, name, Outcome.FAILED, connection_problem(error) or str(error), conflicts)
            written = answer.get("metadata", {}).get("resourceVersion") != sent
            return Result(namespace, name, Outcome.REWRITTEN if written else Outcome.UNCHANGED, conflicts=conflicts)


def _backoff(attempt: int) -> float:
    """The pause before retrying a 5xx or a transport failure: 0.5 s doubling per attempt."""
    return 0.5 * 2 ** (attempt - 1)


# ------------------------------------------------------------------------------------------- the pass


@dataclass
class Options:
    concurrency: int = DEFAULT_CONCURRENCY
    rate: float = DEFAULT_RATE
    page_size: int = DEFAULT_PAGE_SIZE
    progress_every: int = DEFAULT_PROGRESS_EVERY


class ListingError(Exception):
    """Listing a page failed for good (after retries): the pass stops; the checkpoint holds the pages done."""


def list_pages(
    cluster: Cluster,
    page_size: int,
    token: str | None,
    throttle: Throttle | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_expired: Callable[[], None] | None = None,
) -> Iterator[tuple[list[dict[str, Any]], str | None, int | None]]:
    """Each page of Secrets in all namespaces: (items, the next page's continue token, remaining count).

    A continue token expires once etcd has compacted past its revision (the API server compacts every 5
    minutes), unless the API server still serves the list from its watch cache's snapshot. It then answers
    410 Gone with a fresh token that lists on from the same key at the newest revision (`on_expired` is
    called), which suits a rewrite: whatever was written since is already under the current key, and no
    Secret before that key is listed again. 429 is retried after its Retry-After, 5xx after a backoff.
    """
    from kubernetes.client.rest import ApiException

    transient = throttled = expired = 0

    def request() -> Any:
        return cluster.core.list_secret_for_all_namespaces(
            limit=page_size, _continue=token or None, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
        )

    while True:
        try:
            response = throttle.call(request) if throttle is not None else request()
        except ApiException as error:
            fresh = _expired_continue(error) if error.status == 410 and token else None
            if fresh is not None and expired < MAX_TRANSIENT_RETRIES:
                expired += 1
                token = fresh
                if on_expired is not None:
                    on_expired()
                continue
            if error.status == 429 and throttled < MAX_THROTTLED_RETRIES:
                throttled += 1
                if throttle is None:
                    sleep(retry_after(error) or DEFAULT_RETRY_AFTER)
                continue
            if error.status in TRANSIENT_STATUSES and transient < MAX_TRANSIENT_RETRIES:
                transient += 1
                sleep(max(_backoff(transient), retry_after(error) or 0.0))
                continue
            raise ListingError(f"listing Secrets failed: {describe_api_error(error)}") from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            if transient < MAX_TRANSIENT_RETRIES:
                transient += 1
                sleep(_backoff(transient))
                continue
            raise ListingError(f"listing Secrets failed: {connection_problem(error) or error}") from None
        transient = throttled = expired = 0
        page = _json(response)
        metadata = page.get("metadata") or {}
        token = metadata.get("continue") or None
        yield page.get("items") or [], token, metadata.get("remainingItemCount")
        if token is None:
            return


def read_ahead(pages: Iterator[T]) -> Iterator[T]:
    """`pages`, each fetched by a thread while the caller works on the one before: at most two pages held
    besides the caller's. An exception of the listing reaches the caller at the page it stopped at."""
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def fetch() -> None:
        try:
            for page in pages:
                while not stop.is_set():
                    try:
                        handoff.put(("page", page), timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            handoff.put(("end", None))
        except BaseException as error:  # handed to the caller, who raises it
            handoff.put(("error", error))

    worker = threading.Thread(target=fetch, name="reencrypt-list", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        worker.join(timeout=5)


def _expired_continue(error: Any) -> str | None:
    try:
        status = json.loads(error.body or "{}")
    except ValueError:
        return None
    return (status.get("metadata") or {}).get("continue") or None


@dataclass
class PassResult:
    checkpoint: Checkpoint
    stopped_by: str | None = None  # why listing stopped before the end (the checkpoint holds the pages done)

    @property
    def complete(self) -> bool:
        return self.stopped_by is None and self.checkpoint.listingDone and not self.checkpoint.failures


class ReencryptionPass:
    """One pass over every Secret, continuing `checkpoint`; saves it to `path` after each page."""

    def __init__(self, cluster: Cluster, checkpoint: Checkpoint, path: Path, options: Options, console: Console):
        self.cluster = cluster
        self.checkpoint = checkpoint
        self.path = path
        self.options = options
        self.console = console
        self.throttle = Throttle(concurrency_cap=options.concurrency, rate_cap=options.rate)
        self.rewriter = Rewriter(cluster, self.throttle)

    def _record(self, result: Result, counts: Counts, failures: list[Failure]) -> None:
        counts.conflicts += result.conflicts
        if result.outcome is Outcome.REWRITTEN:
            counts.rewritten += 1
        elif result.outcome is Outcome.UNCHANGED:
            counts.unchanged += 1
        elif result.outcome is Outcome.DELETED:
            counts.deleted += 1
        else:
            failures.append(Failure(namespace=result.namespace, name=result.name, reason=result.reason))

    def run(self) -> PassResult:
        state = self.checkpoint
        started = time.monotonic()
        elapsed_before = state.elapsedSeconds
        done = state.counts.listed - len(state.failures)
        progress = ProgressReport(
            self.console,
            every=self.options.progress_every,
            done=max(done, 0),
            total=state.estimatedTotal,
            started=started,
            throttle=self.throttle,
        )
        throttled_before = state.counts.throttled

        def save() -> None:
            state.elapsedSeconds = elapsed_before + (time.monotonic() - started)
            state.counts.throttled = throttled_before + self.throttle.throttled
            save_checkpoint(self.path, state)

        def token_expired() -> None:
            state.counts.tokensExpired += 1

        try:
            with ThreadPoolExecutor(max_workers=self.options.concurrency, thread_name_prefix="reencrypt") as pool:
                if state.failures:
                    # Secrets that failed in an earlier run: each is read again and retried.
                    retry, state.failures = state.failures, []
                    futures = [pool.submit(self.rewriter.rewrite, None, f.namespace, f.name) for f in retry]
                    for future in as_completed(futures):
                        self._record(future.result(), state.counts, state.failures)
                    save()
                if not state.listingDone:
                    pages = read_ahead(
                        list_pages(
                            self.cluster,
                            self.options.page_size,
                            state.continueToken,
                            self.throttle,
                            on_expired=token_expired,
                        )
                    )
                    for items, token, remaining in pages:
                        if remaining is not None:
                            state.estimatedTotal = state.counts.listed + len(items) + int(remaining)
                        elif token is None:
                            state.estimatedTotal = state.counts.listed + len(items)
                        progress.set_total(state.estimatedTotal)
                        # The page's outcomes are counted apart and merged once the whole page is done, so that
                        # the checkpoint never counts half a page: a kill mid-page redoes the page.
                        counts, failures = Counts(listed=len(items)), []
                        futures = [
                            pool.submit(
                                self.rewriter.rewrite,
                                item,
                                item["metadata"]["namespace"],
                                item["metadata"]["name"],
                            )
                            for item in items
                        ]
                        del items
                        for future in as_completed(futures):
                            self._record(future.result(), counts, failures)
                            merged = state.counts.model_copy(
                                update={
                                    k: getattr(state.counts, k) + getattr(counts, k)
                                    for k in ("rewritten", "unchanged", "deleted")
                                }
                            )
                            progress.advance(merged, len(state.failures) + len(failures), state.estimatedTotal)
                        for key in ("listed", "rewritten", "unchanged", "deleted", "conflicts"):
                            setattr(state.counts, key, getattr(state.counts, key) + getattr(counts, key))
                        state.failures.extend(failures)
                        state.continueToken = token
                        state.listingDone = token is None
                        state.pagesDone += 1
                        save()
        except ListingError as error:
            stopped_by = str(error)
        else:
            stopped_by = None
        finally:
            progress.stop()
        state.elapsedSeconds = elapsed_before + (time.monotonic() - started)
        state.counts.throttled = throttled_before + self.throttle.throttled
        return PassResult(state, stopped_by)
