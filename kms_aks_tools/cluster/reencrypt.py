"""`kms-aks reencrypt`: rewrite every Secret of a cluster, so that each one is stored under its current KMS key.

    kms-aks reencrypt --stack prod [--kubeconfig FILE] [--context NAME] [--dry-run]
                      [--concurrency 16] [--rate 0] [--page-size 250] [--checkpoint FILE]

After a key change, AKS's KMS plugin keeps two key slots: the new (current) key and the previous one. Secrets
written before the change stay under the previous key until they are written again, and a second key change
drops that key with them. The API server encrypts with the current key on every write, and writes a Secret
whose stored form is under another key even when nothing changed (its read is "stale"); a Secret already
under the current key is not written again (k8s.io/apiserver pkg/storage/etcd3/store.go, GuaranteedUpdate).
So a rewrite is a plain replace of each Secret with what was read.

- Secrets are listed a page at a time (`limit`/`continue`): memory stays flat however many there are.
- Each Secret is replaced with the resourceVersion it was read with. On 409 Conflict (someone wrote it
  meanwhile) it is read again and retried, so no update is lost; 404 (deleted meanwhile) is skipped and
  counted; 429 is retried after its Retry-After, 5xx with backoff. The Secret is sent back exactly as the API
  server gave it (plain JSON, never through the client's models, which would drop fields they do not know).
- As fast as the API server admits (kms_aks_tools.cluster.throttle): the requests in flight adapt to its
  answers (more while they come back quickly, fewer on a 429, a 5xx or rising latency); `--concurrency` and
  `--rate` are caps a user may set. The next page is listed while the current one is rewritten.
- A checkpoint file, written after each page, lets a rerun continue after a kill: it skips the pages done and
  retries the Secrets that failed. A Secret rewritten again after an interrupted page is not written twice,
  since it is already under the current key; it is counted as `unchanged`.
- After a complete pass, where the API server serves its envelope metrics, the current key must be the
  stack's (kms_aks_tools.cluster.key_metrics). Then a verification pass GETs every Secret and reads the API
  server's counters around it (kms_aks_tools.cluster.verify); a record goes to `rotations/<stack>.yaml` to
  commit: `complete` with that evidence, or `unverified` (with the reason) where the counters cannot prove it.

Secret data is never printed: progress and errors name Secrets by namespace and name only.

Exit codes: 0 every Secret rewritten, verified, and the record written; 1 some Secrets failed (each named, with
the reason), listing stopped midway (a rerun continues), the key changed during the pass, or the rewrite could
not be verified (an `unverified` record is written, which the rotation gate refuses); 2 bad input, an
unreachable cluster, an unknown context, refused credentials or missing rights, or a cluster whose current
key is not the stack's: nothing written.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any, Literal, TypeVar

import urllib3
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from azure_facts.key_ids import NotAVersionedKeyId, metric_key_id_hash, plugin_key_id
from kms_aks_tools.cli.console import make_console
from kms_aks_tools.cli.exits import EXIT_BAD_INPUT, EXIT_BLOCKED, EXIT_OK
from kms_aks_tools.cli.options import add_project_option, positive_int, subcommand_parser
from kms_aks_tools.cluster import verify
from kms_aks_tools.cluster.connection import (
    REQUEST_TIMEOUT,
    Cluster,
    ClusterInputError,
    connect,
    connection_problem,
    describe_api_error,
    preflight,
    request_raw,
)
from kms_aks_tools.cluster.key_metrics import EnvelopeMetrics, fetch_metrics
from kms_aks_tools.cluster.keys import StackKey, StackKeyError, load_stack_key, stack_project
from kms_aks_tools.cluster.reencryption_records import (
    ApiServerReport,
    ClusterRef,
    RecordError,
    RecordFile,
    ReencryptionRecord,
    SecretCounts,
    append_record,
    load_records,
)
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
CHECKPOINT_FORMAT = 1


# ------------------------------------------------------------------------------------------- checkpoint


class Failure(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace: str
    name: str
    reason: str


class Counts(BaseModel):
    """What the pass did so far. `unchanged`: replaced, but the API server wrote nothing (already current)."""

    model_config = ConfigDict(extra="forbid")

    listed: int = 0
    rewritten: int = 0
    unchanged: int = 0
    deleted: int = 0
    conflicts: int = 0
    throttled: int = 0  # 429s absorbed (each retried after its Retry-After)
    tokensExpired: int = 0  # continue tokens that expired (410, etcd compacted): listed on from a fresh one


class Checkpoint(BaseModel):
    """Where a pass is: saved after each page, so that a rerun continues there. Holds no Secret data."""

    model_config = ConfigDict(extra="forbid")

    format: Literal[1] = CHECKPOINT_FORMAT
    stack: str
    keyId: str
    context: str
    server: str
    startedAt: datetime
    elapsedSeconds: float = Field(ge=0, default=0.0)
    continueToken: str | None = None
    listingDone: bool = False
    pagesDone: int = 0
    estimatedTotal: int | None = None
    counts: Counts = Field(default_factory=Counts)
    failures: list[Failure] = Field(default_factory=list)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: one message (exit 2)."""


def load_checkpoint(path: Path) -> Checkpoint | None:
    if not path.exists():
        return None
    try:
        return Checkpoint.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise CheckpointError(f"checkpoint {path} cannot be read: {error}") from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise CheckpointError(
            f"checkpoint {path} is not a kms-aks reencrypt checkpoint ({where}: {first['msg']}); "
            "delete it to start a new pass"
        ) from None


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Through a temporary file and a rename, so a kill never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as handle:
        handle.write(checkpoint.model_dump_json(indent=1))
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(path)


def default_checkpoint_path(stack_key: StackKey) -> Path:
    return stack_key.records_file.with_name(f"{stack_key.stack}.reencrypt-checkpoint.json")


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


# ------------------------------------------------------------------------------------------- progress


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


# ------------------------------------------------------------------------------------------- the command


def _rate(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (no limit) or more, not {value}")
    return number


def _page_size(value: str) -> int:
    number = positive_int(value)
    if number > 5000:
        raise argparse.ArgumentTypeError(f"at most 5000 Secrets a page (memory stays flat), not {number}")
    return number


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """`--stack`, `--kubeconfig`, `--context`, `--key-id`: shared by reencrypt and key-status."""
    parser.add_argument(
        "--stack",
        required=True,
        help="stack name (Pulumi.<stack>.yaml) or a path to such a file: the key it pins, and where its records go",
    )
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
    parser.add_argument("--context", help="kubeconfig context (default: its current context)")
    parser.add_argument(
        "--key-id",
        help="the versioned key id the cluster uses, for a stack that pins no version or already pins the next "
        "one (az aks show --query securityProfile.azureKeyVaultKms.keyId)",
    )
    add_project_option(parser)  # a stack name is the found project's; its records go to its rotations/


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of `kms-aks reencrypt`, shared by `kms_aks_tools.cli` and `python -m`."""
    add_cluster_arguments(parser)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="count the Secrets still under another key, as the API server's counters show them; write nothing",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=DEFAULT_CONCURRENCY,
        help=f"at most this many requests in flight; the pass adapts below it to what the API server admits "
        f"(default {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--rate",
        type=_rate,
        default=DEFAULT_RATE,
        help="at most this many API requests a second (default 0: no cap; the API server's 429s set the pace)",
    )
    parser.add_argument(
        "--page-size",
        type=_page_size,
        default=DEFAULT_PAGE_SIZE,
        help=f"Secrets listed per page (default {DEFAULT_PAGE_SIZE}; at most 5000)",
    )
    parser.add_argument(
        "--progress-every",
        type=positive_int,
        default=DEFAULT_PROGRESS_EVERY,
        help=f"off a terminal, a progress line every this many Secrets (default {DEFAULT_PROGRESS_EVERY})",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="checkpoint file (default: rotations/<stack>.reencrypt-checkpoint.json beside the records; not to commit)",
    )
    parser.add_argument(
        "--wait-for-key",
        type=float,
        default=90.0,
        metavar="SECONDS",
        help="wait this long for the API server to report the stack's key as current before giving up (default 90: "
        "it polls its KMS plugin's Status about once a minute)",
    )
    parser.set_defaults(run=run)
    return parser


def build_parser() -> argparse.ArgumentParser:
    return configure_parser(subcommand_parser("reencrypt", __doc__.split("\n\n")[0]))


def _key_name(key_hash: str | None, stack_key: StackKey) -> str:
    if key_hash is None:
        return "none reported"
    if key_hash == stack_key.metric_hash:
        return f"{stack_key.key_id} (the stack's)"
    return f"{key_hash} (not the stack's key {stack_key.key_id})"


def _recorded_name(key_hash: str, records: RecordFile) -> str:
    """A metric key hash as its URL where a record of the stack names that key (the hash is shown too)."""
    for record in records.records:
        if metric_key_id_hash(plugin_key_id(record.keyId)) == key_hash:
            return f"{record.keyId} ({key_hash})"
    return key_hash


def _wait_for_stack_key(
    cluster: Cluster, stack_key: StackKey, records: RecordFile, wait: float, console: Console
) -> EnvelopeMetrics:
    """The metrics once they show the stack's key as current, or as they are when `wait` seconds have passed."""
    deadline = time.monotonic() + max(wait, 0.0)
    metrics = fetch_metrics(cluster)
    told = False
    while metrics.served and metrics.current not in (None, stack_key.metric_hash) and time.monotonic() < deadline:
        if not told:
            console.print(
                f"reencrypt: the API server's current key is {_recorded_name(metrics.current, records)}, not the "
                f"stack's; waiting up to "
                f"{wait:g} s for its next KMS Status poll"
            )
            told = True
        time.sleep(min(5.0, max(deadline - time.monotonic(), 0.0)))
        metrics = fetch_metrics(cluster)
    return metrics


def run(args: argparse.Namespace) -> int:
    console = make_console()
    try:
        return _run(args, console)
    except (StackKeyError, NotAVersionedKeyId, ClusterInputError, CheckpointError, RecordError) as error:
        console.print(f"[bold red]error:[/] {escape(str(error))}")
        return EXIT_BAD_INPUT
    except ListingError as error:  # --dry-run's listing; a pass reports its own
        console.print(f"[bold red]error:[/] {escape(str(error))}")
        return EXIT_BLOCKED


def _run(args: argparse.Namespace, console: Console) -> int:
    stack_key = load_stack_key(args.stack, key_id=args.key_id, root=stack_project(args.stack, args.cwd))
    if stack_key.key_id is None and not args.dry_run:
        raise StackKeyError(f"{stack_key.unpinned_reason}; the record names the key its Secrets were rewritten under")
    # A broken records file is refused before any write; its keys name a hash the metrics report.
    records = load_records(stack_key.records_file, stack_key.stack)
    checkpoint_path = args.checkpoint or default_checkpoint_path(stack_key)
    existing = load_checkpoint(checkpoint_path)
    cluster = connect(args.kubeconfig, args.context, pool_size=args.concurrency)
    try:
        preflight(cluster, verbs=("list", "get") if args.dry_run else ("list", "get", "update"))
        if args.dry_run:
            return _dry_run(cluster, stack_key, args.concurrency, console, rate=args.rate)
        assert stack_key.key_id is not None
        metrics = _wait_for_stack_key(cluster, stack_key, records, args.wait_for_key, console)
        if metrics.served and metrics.current is not None and metrics.current != stack_key.metric_hash:
            raise ClusterInputError(
                f"the API server {cluster.server} (context {cluster.context!r}) encrypts with key "
                f"{_recorded_name(metrics.current, records)}, not the key "
                f"{'given by --key-id' if stack_key.given else f'stack {stack_key.stack} pins'} ({stack_key.key_id}, "
                f"{stack_key.metric_hash}): is this the stack's cluster, and has `pulumi up` applied the key? "
                "Nothing was rewritten"
            )
        checkpoint = _resume_or_start(existing, checkpoint_path, stack_key, cluster, console)
        options = Options(args.concurrency, args.rate, args.page_size, args.progress_every)
        result = ReencryptionPass(cluster, checkpoint, checkpoint_path, options, console).run()
        return _finish(result, cluster, stack_key, checkpoint_path, console, args.concurrency, rate=args.rate)
    finally:
        cluster.close()


def _resume_or_start(
    existing: Checkpoint | None, path: Path, stack_key: StackKey, cluster: Cluster, console: Console
) -> Checkpoint:
    assert stack_key.key_id is not None
    if existing is not None:
        if existing.server != cluster.server or existing.stack != stack_key.stack:
            raise CheckpointError(
                f"checkpoint {path} belongs to stack {existing.stack} on {existing.server}, not stack "
                f"{stack_key.stack} on {cluster.server}: pass another --checkpoint, or delete it"
            )
        if plugin_key_id(existing.keyId) == stack_key.plugin_key_id:
            done = existing.counts.listed
            console.print(
                f"reencrypt: continuing the pass started {existing.startedAt:%Y-%m-%d %H:%M:%SZ} ({done} Secrets "
                f"listed in {existing.pagesDone} pages, {len(existing.failures)} to retry) from {path}"
            )
            return existing
        console.print(f"reencrypt: {path} is for key {existing.keyId}; starting a new pass for {stack_key.key_id}")
    return Checkpoint(
        stack=stack_key.stack,
        keyId=stack_key.key_id,
        context=cluster.context,
        server=cluster.server,
        startedAt=datetime.now(tz=UTC).replace(microsecond=0),
    )


def _dry_run(cluster: Cluster, stack_key: StackKey, concurrency: int, console: Console, *, rate: float = 0) -> int:
    """The verification pass alone: how many Secrets are not under the stack's key, as the counters show."""
    checked = verify.verify(cluster, stack_key.metric_hash, concurrency=concurrency, rate=rate)
    names = {stack_key.metric_hash: f"{stack_key.key_id} (the stack's)"} if stack_key.metric_hash else {}
    console.print(f"reencrypt --dry-run: {escape(verify.summary(checked, lambda h: names.get(h, h)))}")
    if checked.reason is not None and checked.read == 0:
        console.print(
            f"reencrypt --dry-run: {checked.listed} Secrets listed on {cluster.server} (context {cluster.context}); "
            "which of them a pass would rewrite cannot be told; nothing was written"
        )
        return EXIT_OK
    pending = sum(checked.under_other_keys().values()) + checked.not_kms
    bound = "" if checked.exact else "at most "
    console.print(
        f"reencrypt --dry-run: {bound}{pending} Secrets would be rewritten on {cluster.server} (context "
        f"{cluster.context}); nothing was written"
    )
    return EXIT_OK


def _summary(state: Checkpoint) -> str:
    c = state.counts
    seconds = state.elapsedSeconds
    rate = (c.rewritten + c.unchanged) / seconds if seconds > 0 else 0.0
    return (
        f"{c.listed} Secrets listed: {c.rewritten} rewritten, {c.unchanged} already under the current key, "
        f"{c.deleted} deleted meanwhile (skipped), {len(state.failures)} failed, in {seconds:.1f} s ({rate:.1f}/s); "
        f"{c.conflicts} conflicts resolved by a fresh read; {c.throttled} 429s absorbed (each retried after its "
        f"Retry-After); {c.tokensExpired} expired continue tokens (410) listed on from a fresh one"
    )


def _finish(
    result: PassResult,
    cluster: Cluster,
    stack_key: StackKey,
    path: Path,
    console: Console,
    concurrency: int = 4,
    *,
    rate: float = 0,
) -> int:
    state = result.checkpoint
    console.print(f"reencrypt: {_summary(state)}")
    if result.stopped_by is not None:
        console.print(
            f"[bold red]reencrypt: {escape(result.stopped_by)}[/]; {state.pagesDone} pages are done and saved in "
            f"{path}: rerun the same command to continue. No record was written"
        )
        return EXIT_BLOCKED
    if not result.complete:
        shown = state.failures[:100]
        for failure in shown:
            console.print(
                f"[bold red]failed:[/] {escape(failure.namespace)}/{escape(failure.name)}: {escape(failure.reason)}"
            )
        if len(state.failures) > len(shown):
            console.print(f"... and {len(state.failures) - len(shown)} more, all listed in {path}")
        console.print(
            f"[bold red]reencrypt: {len(state.failures)} Secret(s) not rewritten[/]; fix the cause and rerun the "
            f"same command: it retries just those ({path}). No record was written"
        )
        return EXIT_BLOCKED
    assert stack_key.key_id is not None and stack_key.metric_hash is not None
    metrics = fetch_metrics(cluster)
    if metrics.served and metrics.current != stack_key.metric_hash:
        path.unlink(missing_ok=True)
        console.print(
            f"[bold red]reencrypt: the API server's current key changed during the pass[/]: it now reports "
            f"{_key_name(metrics.current, stack_key)}. Secrets rewritten before the change are under the stack's "
            "key, the others under the new one. No record was written; pin the key the cluster uses and rerun"
        )
        return EXIT_BLOCKED
    report = ApiServerReport(
        metricsServed=metrics.served,
        currentKeyMatches=(metrics.current == stack_key.metric_hash) if metrics.served else None,
        currentKeyIdHash=metrics.current,
        reportedKeyIdHashes=metrics.reported_hashes(),
    )
    console.print("reencrypt: verifying: every Secret read again from etcd, counted by the API server's own metrics")
    checked = verify.verify(cluster, stack_key.metric_hash, concurrency=concurrency, rate=rate)
    proven = checked.verified and metrics.served and metrics.current == stack_key.metric_hash
    record = ReencryptionRecord(
        keyId=stack_key.key_id,
        pluginKeyId=plugin_key_id(stack_key.key_id),
        complete=proven,
        finishedAt=datetime.now(tz=UTC).replace(microsecond=0),
        durationSeconds=round(state.elapsedSeconds, 1),
        cluster=ClusterRef(name=stack_key.cluster_name, context=cluster.context, server=cluster.server),
        secrets=SecretCounts(
            listed=state.counts.listed,
            rewritten=state.counts.rewritten,
            unchanged=state.counts.unchanged,
            deleted=state.counts.deleted,
            failed=0,
        ),
        apiServer=report,
        verification=verify.evidence(checked),
    )
    append_record(stack_key.records_file, stack_key.stack, record)
    path.unlink(missing_ok=True)
    if metrics.served:
        console.print(
            f"reencrypt: the API server reports {stack_key.key_id} as its current key "
            f"({metric_key_id_hash(plugin_key_id(stack_key.key_id))})"
        )
    else:
        console.print(f"reencrypt: [yellow]the current key could not be confirmed[/]: {escape(metrics.reason or '')}")
    names = {stack_key.metric_hash: "the stack's key"}
    console.print(f"reencrypt: verification: {escape(verify.summary(checked, lambda h: names.get(h, h)))}")
    if not proven:
        console.print(
            f"[bold red]reencrypt: every Secret was rewritten, but that could not be verified[/]; the record "
            f"appended to {stack_key.records_file} says `unverified`, and the rotation gate refuses it (commit it "
            "only with a reencryptionWaivers entry whose reason says why; docs/rotation.md)"
        )
        return EXIT_BLOCKED
    console.print(
        f"[bold green]reencrypt: every Secret is under {escape(stack_key.key_id)}[/], as the API server's counters "
        f"show; record appended to {stack_key.records_file}: commit it"
    )
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
