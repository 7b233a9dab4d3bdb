"""The API server's replicas and their counters, as the verification pass reads them (`verify`): who the live
replicas are (their identity Leases), one scrape of a replica's /metrics, and what changed between two scrapes.
What the counters mean, and why a window of reads is trusted or not, is in `verify`'s docstring."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import urllib3
from prometheus_client.parser import text_string_to_metric_families

from kms_aks_tools.cluster.connection import (
    REQUEST_TIMEOUT,
    Cluster,
    connection_problem,
    describe_api_error,
    request_raw,
)
from kms_aks_tools.cluster.metrics import PREFIX, STATUS, TOTAL, key_id_hash_samples

IDENTITY_LEASE_SELECTOR = "apiserver.kubernetes.io/identity=kube-apiserver"
LEASE_NAMESPACE = "kube-system"
# A Lease is renewed every 10 s; one not renewed for a minute (its holder is gone: a restarted replica gets a
# new id when its host name changes) is not waited for. Its absence from the metrics is still caught: our reads
# would then exceed what the replicas read, and the window is not trusted.
LIVE_LEASE_SECONDS = 60.0
TRANSFORMATIONS = "apiserver_storage_transformation_operations_total"
PROCESS_START = "process_start_time_seconds"
LRU_LABEL_SETS = 100
SCRAPES_PER_REPLICA = 8


def apiserver_id_hash(apiserver_id: str) -> str:
    """The `apiserver_id_hash` label of a replica whose identity Lease is named `apiserver_id` (`getHash`)."""
    return "sha256:" + hashlib.sha256(apiserver_id.encode()).hexdigest()


class VerificationUnavailable(Exception):
    """The pass cannot be made at all (no metrics, no Leases): the reason goes into the record as `unverified`."""


class WindowUntrusted(Exception):
    """The counters of one window cannot be compared (a replica missing, restarted, a series reset)."""


# ------------------------------------------------------------------------------------------- one replica's counters


@dataclass(frozen=True)
class ReplicaCounters:
    """The counters of one API server replica, from one scrape of its /metrics."""

    replica: str  # apiserver_id_hash
    started: float  # process_start_time_seconds: moves on a restart
    current_key: str | None  # key_id_hash of its newest KMS Status
    key_reads: dict[str, float]  # key_id_hash -> from_storage count (every resource under KMS v2)
    secret_reads: dict[str, float]  # transformer_prefix -> from_storage of Secrets, status OK
    secret_read_errors: float  # from_storage of Secrets that failed (e.g. a DEK that cannot be decrypted)
    label_sets: int  # key-id total series of this replica: the LRU evicts only once it holds 100


# The lines of the three series a window compares, with their HELP and TYPE lines: a /metrics answer holds
# thousands of others, and picking these out with one scan is most of what parsing a scrape costs.
_WANTED = re.compile(rf"^(?:# (?:HELP|TYPE) )?(?:{PREFIX}|{TRANSFORMATIONS}|{PROCESS_START}).*$", re.MULTILINE)


def parse_replica(text: str) -> ReplicaCounters:
    """A replica's counters from its /metrics text; `WindowUntrusted` when the scrape names no single replica."""
    wanted = "\n".join(_WANTED.findall(text)) + "\n"
    samples = key_id_hash_samples(wanted)
    replicas = {s.apiserver_id_hash for s in samples if s.apiserver_id_hash}
    if len(replicas) != 1:
        raise WindowUntrusted(
            "a /metrics answer named no API server replica (no apiserver_id_hash on its envelope series: the API "
            "server has not called its KMS plugin's Status, or runs without APIServerIdentity)"
            if not replicas
            else f"a /metrics answer named {len(replicas)} API server replicas"
        )
    [replica] = replicas
    status = {s.key_id_hash: s.value for s in samples if s.metric == STATUS}
    reads: dict[str, float] = {}
    label_sets = 0
    for s in samples:
        if s.metric == TOTAL:
            label_sets += 1
            if s.transformation_type == "from_storage":
                reads[s.key_id_hash] = reads.get(s.key_id_hash, 0.0) + s.value
    secret_reads: dict[str, float] = {}
    errors = 0.0
    started = 0.0
    for family in text_string_to_metric_families(wanted):
        for sample in family.samples:
            if sample.name == PROCESS_START:
                started = sample.value
            elif (
                sample.name == TRANSFORMATIONS
                and sample.labels.get("resource") == "secrets"
                and sample.labels.get("transformation_type") == "from_storage"
            ):
                if sample.labels.get("status") == "OK":
                    prefix = sample.labels.get("transformer_prefix", "")
                    secret_reads[prefix] = secret_reads.get(prefix, 0.0) + sample.value
                else:
                    errors += sample.value
    return ReplicaCounters(
        replica=replica,
        started=started,
        current_key=max(status, key=lambda h: status[h], default=None),
        key_reads=reads,
        secret_reads=secret_reads,
        secret_read_errors=errors,
        label_sets=label_sets,
    )


def _delta(before: dict[str, float], after: dict[str, float], what: str, replica: str) -> Counter[str]:
    delta: Counter[str] = Counter()
    for label in before.keys() | after.keys():
        if label in before and label not in after:
            raise WindowUntrusted(f"replica {replica}: the {what} series {label} vanished (evicted or reset)")
        change = after[label] - before.get(label, 0.0)
        if change < 0:
            raise WindowUntrusted(f"replica {replica}: the {what} series {label} went down (a counter reset)")
        if change:
            delta[label] = int(change)
    return delta


@dataclass
class WindowDelta:
    """What every replica read between two scrapes: per key, per prefix, and the failed reads."""

    by_key: Counter[str] = field(default_factory=Counter)
    by_prefix: Counter[str] = field(default_factory=Counter)
    errors: int = 0

    @property
    def secret_reads(self) -> int:
        return sum(self.by_prefix.values()) + self.errors


def window_delta(before: dict[str, ReplicaCounters], after: dict[str, ReplicaCounters]) -> WindowDelta:
    """The differences summed over replicas; `WindowUntrusted` where they cannot be trusted."""
    if before.keys() != after.keys():
        raise WindowUntrusted(
            f"the replicas answering changed during the window ({len(before)} before, {len(after)} after)"
        )
    total = WindowDelta()
    for replica, old in before.items():
        new = after[replica]
        if new.started != old.started:
            raise WindowUntrusted(f"replica {replica} restarted during the window")
        if max(old.label_sets, new.label_sets) >= LRU_LABEL_SETS:
            raise WindowUntrusted(
                f"replica {replica} holds {LRU_LABEL_SETS} key-id label sets, the LRU's bound: a series may have "
                "been evicted and started again at 0"
            )
        total.by_key += _delta(old.key_reads, new.key_reads, "key", replica)
        total.by_prefix += _delta(old.secret_reads, new.secret_reads, "transformation", replica)
        errors = new.secret_read_errors - old.secret_read_errors
        if errors < 0:
            raise WindowUntrusted(f"replica {replica}: the failed-read counter went down (a counter reset)")
        total.errors += int(errors)
    return total


# ------------------------------------------------------------------------------------------- the cluster side


def scrape_once(cluster: Cluster) -> str:
    """One GET /metrics on a connection of its own (`Connection: close`): behind a load balancer, the next
    scrape may reach another replica. `VerificationUnavailable` when the API server will not serve it."""
    from kubernetes.client.rest import ApiException

    try:
        return request_raw(cluster, "GET", "/metrics", accept="text/plain", headers={"Connection": "close"}).decode(
            "utf-8", errors="replace"
        )
    except ApiException as error:
        why = {401: "the credentials were refused", 403: "this user may not read /metrics", 404: "not served"}
        raise VerificationUnavailable(
            f"GET /metrics: HTTP {error.status} ({why.get(error.status or 0, error.reason)})"
        ) from None
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise WindowUntrusted(f"GET /metrics failed: {connection_problem(error) or error}") from None


def live_replicas(cluster: Cluster) -> dict[str, str]:
    """apiserver_id_hash -> Lease name of every replica whose identity Lease was renewed within a minute of
    the newest one (the API server's own clock: no skew with this machine's)."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    try:
        leases = client.CoordinationV1Api(cluster.api).list_namespaced_lease(
            LEASE_NAMESPACE, label_selector=IDENTITY_LEASE_SELECTOR, _request_timeout=REQUEST_TIMEOUT
        )
    except ApiException as error:
        raise VerificationUnavailable(
            f"the API servers' identity Leases (kube-system, {IDENTITY_LEASE_SELECTOR}) cannot be listed: "
            f"{describe_api_error(error)}"
        ) from None
    renewed = {
        lease.metadata.name: lease.spec.renew_time or lease.spec.acquire_time
        for lease in leases.items
        if lease.metadata and lease.metadata.name and lease.spec
    }
    known = {name: at for name, at in renewed.items() if at is not None}
    if not known:
        raise VerificationUnavailable(
            "the API server publishes no identity Lease (kube-system, "
            f"{IDENTITY_LEASE_SELECTOR}): its replicas cannot be told apart, so their counters cannot be added up"
        )
    newest = max(known.values())
    return {
        apiserver_id_hash(name): name
        for name, at in known.items()
        if (newest - at).total_seconds() <= LIVE_LEASE_SECONDS
    }


def scrape_replicas(cluster: Cluster, roster: Iterable[str]) -> dict[str, ReplicaCounters]:
    """The counters of every replica in `roster` (and of any other that answers), each from its first scrape."""
    wanted = set(roster)
    seen: dict[str, ReplicaCounters] = {}
    attempts = SCRAPES_PER_REPLICA * max(len(wanted), 1)
    for _ in range(attempts):
        counters = parse_replica(scrape_once(cluster))
        seen.setdefault(counters.replica, counters)
        if wanted <= seen.keys():
            return seen
    missing = sorted(wanted - seen.keys())
    raise WindowUntrusted(
        f"replica(s) {', '.join(missing)} with a live identity Lease did not answer /metrics in {attempts} "
        "scrapes through this endpoint"
    )
