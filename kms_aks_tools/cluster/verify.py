"""The verification pass: how many Secrets are stored under each KMS key, as the API server's own counters show.

A pass GETs every Secret by name, with no resourceVersion, and reads the API server's counters before and after
each window of GETs. What it relies on (k8s.io/apiserver v0.34.4):

- **A GET with no resourceVersion reads etcd.** `CacheDelegator.Get` (pkg/storage/cacher/delegator.go) sends a
  Get whose `ResourceVersion == ""` to the underlying storage, never to the watch cache. Since 1.34 every LIST,
  continue pages included, is served from the watch cache (ConsistentListFromCache GA), so listing decrypts
  nothing; the names are listed first, outside every window.
- **One decryption, one count, labelled with the key in the stored envelope.** kmsv2 `envelopeTransformer.
  TransformFromStorage` (pkg/storage/value/encrypt/envelope/kmsv2/envelope.go) calls `metrics.RecordKeyID(
  FromStorageLabel, provider, encryptedObject.KeyID, apiServerID)` after the DEK lookup, whether the DEK cache
  hit or not: `apiserver_envelope_encryption_key_id_hash_total{transformation_type="from_storage"}` counts one
  per value read, under the key id the envelope names.
- **One read, one transformation, labelled with the request's resource.** `prefixTransformers.
  TransformFromStorage` (pkg/storage/value/transformer.go) records `apiserver_storage_transformation_
  operations_total{resource, transformation_type="from_storage", transformer_prefix, status}` once per value,
  with the prefix it matched (`identity` for a Secret stored in plain text) and the resource of the request in
  its context (`getResourceFromContext`): `secrets` for a request on Secrets, empty for the API server's own
  background reads, which carry no request (the watch cache's re-initialisation, its consistency check, the
  watch events of others' writes). So in a window: the `resource="secrets"` reads must be exactly our GETs
  (more: another client's requests), and the key-id reads exactly the KMS ones among them (more: background
  reads). Then the per-key counts are exact. Otherwise a zero under every other key still proves that none of
  our GETs met one; a nonzero count is only an upper bound, and the window is tried again.
- **Each replica counts its own.** Every series carries `apiserver_id_hash` = `sha256:<hex>` of the API
  server's id (`getHash` in .../envelope/metrics/metrics.go); the id is the name of its identity Lease in
  kube-system, labelled `apiserver.kubernetes.io/identity=kube-apiserver` and renewed every 10 s
  (k8s.io/kubernetes pkg/controlplane/apiserver/server.go). The pass reads every live replica's counters on
  fresh connections (a load balancer spreads them) before and after each window and adds the differences.
- **Series reset.** A restart empties them (`process_start_time_seconds` moves); the key-id series live in an
  LRU of 100 label sets per replica (`cacheSize` in metrics.go), so a series can vanish and come back at 0.
  A window in which either may have happened is not trusted.

Secret data is never read into memory: the GETs ask for metadata only (`PartialObjectMetadata`), which still
reads and decrypts the whole stored value.

The replicas, one scrape of their counters and the difference between two scrapes: `replicas.py`.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import urllib3

from kms_aks_tools.cluster.connection import (
    Cluster,
    connection_problem,
    describe_api_error,
    request_raw,
)
from kms_aks_tools.cluster.reencryption_records import Verification as RecordEvidence
from kms_aks_tools.cluster.replicas import (
    ReplicaCounters,
    VerificationUnavailable,
    WindowDelta,
    WindowUntrusted,
    live_replicas,
    scrape_once,
    scrape_replicas,
    window_delta,
)
from kms_aks_tools.cluster.throttle import RateCap

KMS_V2_PREFIX = "k8s:enc:kms:v2:"
WINDOW_ATTEMPTS = 3
GET_RETRIES = 4
DEFAULT_WINDOW = 250
# Each window costs two full /metrics scrapes of every replica (the API server renders all its series each time),
# so a window that came out exact lets the next one double, up to this; one that needed a retry halves the next.
MAX_WINDOW = 4000
METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


def list_secret_names(cluster: Cluster, page_size: int) -> list[tuple[str, str]]:
    """Every Secret's (namespace, name), listed as metadata only, page by page (from the watch cache)."""
    names: list[tuple[str, str]] = []
    token: str | None = None
    while True:
        query = [("limit", str(page_size))] + ([("continue", token)] if token else [])
        page = json.loads(request_raw(cluster, "GET", "/api/v1/secrets", query=query, accept=METADATA_LIST))
        for item in page.get("items") or []:
            names.append((item["metadata"]["namespace"], item["metadata"]["name"]))
        token = (page.get("metadata") or {}).get("continue") or None
        if token is None:
            return names


@dataclass
class _Reads:
    read: int = 0
    deleted: int = 0
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # namespace, name, reason (HTTP 500s)
    lost: int = 0  # answered otherwise (timeouts, 429 after retries): not known to have reached storage
    throttled: int = 0  # 429s absorbed (each GET retried after its Retry-After)


def _get_one(cluster: Cluster, namespace: str, name: str, sleep: Any = time.sleep) -> tuple[str, str, int]:
    """`(outcome, reason, 429s absorbed)` of one GET, retried after each 429 or 503 as the server asks."""
    from kubernetes.client.rest import ApiException

    throttled = 0
    for attempt in range(GET_RETRIES + 1):
        try:
            request_raw(
                cluster,
                "GET",
                "/api/v1/namespaces/{namespace}/secrets/{name}",
                path_params={"namespace": namespace, "name": name},
                accept=METADATA,
            )
            return "read", "", throttled
        except ApiException as error:
            if error.status == 404:
                return "deleted", "", throttled
            if error.status in (429, 503) and attempt < GET_RETRIES:
                throttled += error.status == 429
                header = (getattr(error, "headers", None) or {}).get("Retry-After")
                try:
                    sleep(min(float(header), 30.0) if header else 0.5 * 2**attempt)
                except ValueError:
                    sleep(0.5 * 2**attempt)
                continue
            if error.status == 500:
                return "failed", describe_api_error(error), throttled
            return "lost", describe_api_error(error), throttled
        except (urllib3.exceptions.HTTPError, OSError) as error:
            return "lost", connection_problem(error) or str(error), throttled
    return "lost", "retries exhausted", throttled


def _read_window(cluster: Cluster, names: Sequence[tuple[str, str]], concurrency: int, rate: RateCap) -> _Reads:
    reads = _Reads()

    def read(ref: tuple[str, str]) -> tuple[tuple[str, str], tuple[str, str, int]]:
        time.sleep(rate.delay())
        return ref, _get_one(cluster, *ref)

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="verify") as pool:
        outcomes = pool.map(read, names)
        for (namespace, name), (outcome, reason, throttled) in outcomes:
            reads.throttled += throttled
            if outcome == "read":
                reads.read += 1
            elif outcome == "deleted":
                reads.deleted += 1
            elif outcome == "failed":
                reads.failed.append((namespace, name, reason))
            else:
                reads.lost += 1
    return reads


# ------------------------------------------------------------------------------------------- the pass


@dataclass
class Verification:
    """What a verification pass found. `verified`: the counters prove every Secret is under `expected_key`."""

    expected_key: str | None  # key_id_hash the Secrets should be under (the stack's), if known
    started_at: datetime
    finished_at: datetime | None = None
    reason: str | None = None  # why it is not verified; None when it is
    replicas: list[str] = field(default_factory=list)  # apiserver_id_hash of every replica read
    listed: int = 0
    read: int = 0
    deleted: int = 0
    unreadable: list[tuple[str, str, str]] = field(default_factory=list)
    by_key: Counter[str] = field(default_factory=Counter)  # key_id_hash -> Secrets read under it
    not_kms: int = 0  # Secrets stored under no KMS v2 key (plain text, another provider)
    exact: bool = True  # every window held only our reads: the counts are exact, else upper bounds
    windows: int = 0
    retried: int = 0
    throttled: int = 0  # 429s the GETs absorbed
    current_keys: set[str] = field(default_factory=set)  # the newest Status key of each replica at the end

    @property
    def verified(self) -> bool:
        return self.reason is None

    def under_other_keys(self) -> dict[str, int]:
        return {k: n for k, n in self.by_key.items() if n and k != self.expected_key}


def verify(
    cluster: Cluster,
    expected_key: str | None,
    *,
    window: int = DEFAULT_WINDOW,
    concurrency: int = 4,
    page_size: int = 500,
    rate: float = 0,
) -> Verification:
    """GETs every Secret in windows of `window`, reading every replica's counters around each window.

    `expected_key` is the key_id_hash every Secret must be under for the pass to prove it (None: count only).
    `rate`: the user's `--rate` cap holds for these GETs too (0: none).
    """
    result = Verification(expected_key=expected_key, started_at=_now())
    try:
        _verify(cluster, result, window, concurrency, page_size, RateCap(rate))
    except (VerificationUnavailable, WindowUntrusted) as error:
        result.reason = str(error)
    except (urllib3.exceptions.HTTPError, OSError) as error:
        result.reason = f"the API server could not be asked: {connection_problem(error) or error}"
    result.finished_at = _now()
    return result


def _now() -> datetime:
    return datetime.now(tz=UTC).replace(microsecond=0)


def _verify(
    cluster: Cluster, result: Verification, window: int, concurrency: int, page_size: int, rate: RateCap
) -> None:
    from kubernetes.client.rest import ApiException

    scrape_once(cluster)  # no rights on /metrics: say so before reading anything
    roster = live_replicas(cluster)
    try:
        names = list_secret_names(cluster, page_size)
    except (ApiException, urllib3.exceptions.HTTPError, OSError) as error:
        raise VerificationUnavailable(f"listing Secrets failed: {error}") from None
    result.listed = len(names)
    problems: list[str] = []
    before, why = _scrape(cluster, roster)
    start, size = 0, window
    while start < len(names):
        chunk = names[start : start + size]
        start += len(chunk)
        result.windows += 1
        for attempt in range(WINDOW_ATTEMPTS):
            if before is None:
                before, why = _scrape(cluster, roster)
                if before is None:
                    continue
            reads = _read_window(cluster, chunk, concurrency, rate)
            result.throttled += reads.throttled
            after, why = _scrape(cluster, roster)
            verdict = _judge_window(before, after, reads, result.expected_key, why)
            before = after
            if verdict.accepted or attempt == WINDOW_ATTEMPTS - 1:
                _add(result, reads, verdict)
                if not verdict.accepted:
                    problems.append(f"window {result.windows}: {verdict.problem}")
                size = next_window(size, window, retried=attempt > 0)
                break
            result.retried += 1
        else:
            problems.append(f"window {result.windows}: {why}")
        for replica in before or {}:
            roster.setdefault(replica, replica)
    if before is not None:
        result.replicas = sorted(before)
        result.current_keys = {c.current_key for c in before.values() if c.current_key}
    _conclude(result, problems)


def next_window(size: int, first: int, *, retried: bool) -> int:
    """The next window's size: twice this one's after an exact first try (up to MAX_WINDOW), half of it after a
    retry, never below the first window's size."""
    if retried:
        return max(first, size // 2)
    return max(first, min(size * 2, MAX_WINDOW))


def _scrape(cluster: Cluster, roster: dict[str, str]) -> tuple[dict[str, ReplicaCounters] | None, str | None]:
    try:
        return scrape_replicas(cluster, roster), None
    except WindowUntrusted as error:
        return None, str(error)


@dataclass
class _WindowVerdict:
    accepted: bool
    delta: WindowDelta | None
    exact: bool
    problem: str | None = None


def _judge_window(
    before: dict[str, ReplicaCounters],
    after: dict[str, ReplicaCounters] | None,
    reads: _Reads,
    expected_key: str | None,
    why: str | None = None,
) -> _WindowVerdict:
    if after is None:
        return _WindowVerdict(False, None, False, why or "the replicas' counters after a window could not be read")
    try:
        delta = window_delta(before, after)
    except WindowUntrusted as error:
        return _WindowVerdict(False, None, False, str(error))
    ours = reads.read + len(reads.failed)
    if reads.lost:
        return _WindowVerdict(False, delta, False, f"{reads.lost} GETs got no answer that shows they were read")
    if delta.secret_reads < ours:
        return _WindowVerdict(
            False,
            delta,
            False,
            f"the replicas read {delta.secret_reads} Secrets for {ours} GETs: a replica that answered was not counted",
        )
    requested_kms = sum(n for p, n in delta.by_prefix.items() if p.startswith(KMS_V2_PREFIX))
    key_reads = sum(delta.by_key.values())
    if key_reads < requested_kms:
        return _WindowVerdict(
            False, delta, False, f"the key counters show {key_reads} reads for {requested_kms} envelopes read"
        )
    if delta.secret_reads == ours and key_reads <= requested_kms + delta.errors:
        return _WindowVerdict(True, delta, True)
    # Others' reads are in the window: only a zero under every other key, and nothing unencrypted, still proves.
    others = {k for k, n in delta.by_key.items() if n and k != expected_key}
    plain = sum(n for p, n in delta.by_prefix.items() if not p.startswith(KMS_V2_PREFIX))
    if expected_key is not None and not others and not plain and not delta.errors:
        return _WindowVerdict(True, delta, False)
    return _WindowVerdict(
        False,
        delta,
        False,
        f"reads beyond ours in a window ({delta.secret_reads - ours} by other requests on Secrets, "
        f"{key_reads - requested_kms} in the background): its counts are upper bounds",
    )


def _add(result: Verification, reads: _Reads, verdict: _WindowVerdict) -> None:
    result.read += reads.read
    result.deleted += reads.deleted
    result.unreadable.extend(reads.failed)
    if verdict.delta is None:
        result.exact = False
        return
    if not verdict.exact:
        result.exact = False
    if verdict.exact or not verdict.accepted:
        result.by_key += verdict.delta.by_key
        result.not_kms += sum(n for p, n in verdict.delta.by_prefix.items() if not p.startswith(KMS_V2_PREFIX))
    else:
        # Accepted with others' reads in it: none of ours was under another key; ours are the expected key's.
        assert result.expected_key is not None
        result.by_key[result.expected_key] += reads.read


def _conclude(result: Verification, problems: list[str]) -> None:
    if problems:
        result.reason = problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
    elif result.unreadable:
        result.reason = f"{len(result.unreadable)} Secret(s) could not be read (HTTP 500)"
    elif result.not_kms:
        result.reason = f"{result.not_kms} Secret(s) are stored under no KMS v2 key"
    elif result.expected_key is None:
        result.reason = "no key to verify against"
    elif others := result.under_other_keys():
        result.reason = f"{sum(others.values())} Secret(s) are still under another key"
    elif result.current_keys != {result.expected_key}:
        result.reason = "the replicas' current key is not the expected one: " + ", ".join(
            sorted(result.current_keys) or ["none reported"]
        )


# ------------------------------------------------------------------------------------------- reporting


def evidence(result: Verification) -> RecordEvidence:
    """The record's `verification` block (reencryption_records.Verification): what the gate's
    `reencryption_records.judge` checks."""
    return RecordEvidence(
        status="verified" if result.verified else "unverified",
        reason=result.reason,
        keyIdHash=result.expected_key or "",
        apiServers=result.replicas,
        startedAt=result.started_at,
        finishedAt=result.finished_at or result.started_at,
        secretsListed=result.listed,
        secretsRead=result.read,
        deleted=result.deleted,
        readsByKey=dict(sorted(result.by_key.items())),
        notKms=result.not_kms,
        unreadable=len(result.unreadable),
        exact=result.exact,
        windows=result.windows,
        retriedWindows=result.retried,
    )


def summary(result: Verification, name: Any = lambda h: h) -> str:
    """One line: what was read, under which keys, on how many replicas; `name` turns a key hash into a name."""
    if result.listed == 0 and result.read == 0 and not result.verified:
        return f"not verified: {result.reason}"
    bound = "" if result.exact else "at most "
    others = result.under_other_keys()
    under = (
        "; ".join(f"{bound}{n} under {name(k)}" for k, n in sorted(others.items()))
        if others
        else "none under another key"
    )
    text = (
        f"{result.read} of {result.listed} Secrets read from etcd on {len(result.replicas)} API server replica(s) "
        f"in {result.windows} window(s) ({result.retried} retried): {under}"
    )
    if result.not_kms:
        text += f"; {bound}{result.not_kms} under no KMS key"
    if result.unreadable:
        text += f"; {len(result.unreadable)} unreadable"
    if result.throttled:
        text += f"; {result.throttled} 429s absorbed by the verification (each GET retried after its Retry-After)"
    return text + ("" if result.verified else f". Not verified: {result.reason}")
