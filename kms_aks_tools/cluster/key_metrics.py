"""What the API server's envelope-encryption metrics say about KMS keys: the current one and the ones it used.

kube-apiserver (k8s.io/apiserver pkg/storage/value/encrypt/envelope/metrics, v0.34.4) exports, per KMS v2
provider, with `key_id_hash` = `sha256:<hex>` of the plugin's key id (kms_aks_tools.cluster.keys):

- `apiserver_envelope_encryption_key_id_hash_status_last_timestamp_seconds{key_id_hash}`: when the plugin's
  Status call last returned this key id. Status is polled about once a minute; the newest one is the key the
  API server writes with now.
- `apiserver_envelope_encryption_key_id_hash_total{transformation_type, key_id_hash}` and
  `..._last_timestamp_seconds`: how often, and when last, an object was read (`from_storage`) or written
  (`to_storage`) under that key. A read under a key other than the current one is data still stored under it:
  the previous slot, as far as anything shows it.

The series live in the API server's memory: a restart empties them, and each API server of an HA control
plane has its own (`apiserver_id_hash`). An LRU of 100 label sets per metric bounds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kms_aks_tools.cluster.metrics import LAST_USED, PREFIX, STATUS, TOTAL, key_id_hash_samples

FROM_STORAGE, TO_STORAGE = "from_storage", "to_storage"


@dataclass
class KeyUse:
    """How often, and when last, the API server read or wrote data under one key."""

    count: int = 0
    last: datetime | None = None


@dataclass
class EnvelopeMetrics:
    """The envelope metrics of one scrape. `served` False: the API server did not give them (`reason` says why)."""

    served: bool
    reason: str | None = None
    status: dict[str, datetime] = field(default_factory=dict)  # key_id_hash -> last Status returning it
    reads: dict[str, KeyUse] = field(default_factory=dict)  # from_storage
    writes: dict[str, KeyUse] = field(default_factory=dict)  # to_storage

    @property
    def current(self) -> str | None:
        """The key the newest Status call returned: the one the API server encrypts with now."""
        return max(self.status, key=lambda h: self.status[h], default=None)

    def reported_hashes(self) -> list[str]:
        """Every key hash the metrics name: Status ones newest first, then the others, sorted."""
        by_status = sorted(self.status, key=lambda h: self.status[h], reverse=True)
        others = sorted((set(self.reads) | set(self.writes)) - set(by_status))
        return by_status + others


def _timestamp(value: float) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value > 0 else None


def parse_metrics(text: str) -> EnvelopeMetrics:
    """The key-id series of a Prometheus text exposition, per key hash (metrics.key_id_hash_samples reads them)."""
    # An API server's exposition is thousands of lines; only the key-id families go to the parser.
    lines = [line for line in text.splitlines() if PREFIX in line]
    result = EnvelopeMetrics(served=True)
    if not any(not line.startswith("#") for line in lines):
        result.served = False
        result.reason = (
            "the API server serves metrics but no apiserver_envelope_encryption_key_id_hash_* series: it has no "
            "KMS v2 provider, or has not used it since it started"
        )
        return result
    for sample in key_id_hash_samples("\n".join(lines) + "\n"):
        if not sample.key_id_hash:
            continue
        if sample.metric == STATUS:
            seen = _timestamp(sample.value)
            previous = result.status.get(sample.key_id_hash)
            if seen is not None and (previous is None or seen > previous):
                result.status[sample.key_id_hash] = seen
            continue
        table = {FROM_STORAGE: result.reads, TO_STORAGE: result.writes}.get(sample.transformation_type)
        if table is None:
            continue
        use = table.setdefault(sample.key_id_hash, KeyUse())
        if sample.metric == TOTAL:
            use.count += int(sample.value)
        elif sample.metric == LAST_USED:
            last = _timestamp(sample.value)
            if last is not None and (use.last is None or last > use.last):
                use.last = last
    return result


def fetch_metrics(cluster: Any) -> EnvelopeMetrics:
    """Scrapes the API server's `/metrics` (a `connection.Cluster`) through the client's own request path."""
    from kubernetes.client.rest import ApiException

    from kms_aks_tools.cluster.connection import request_raw

    try:
        text = request_raw(cluster, "GET", "/metrics", accept="text/plain").decode("utf-8", errors="replace")
    except ApiException as error:
        why = {401: "the credentials were refused", 403: "this user may not read /metrics", 404: "not served"}
        return EnvelopeMetrics(
            served=False,
            reason=f"GET /metrics: HTTP {error.status} ({why.get(error.status or 0, error.reason)})",
        )
    return parse_metrics(text)
