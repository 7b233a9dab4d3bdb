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

from prometheus_client.parser import text_string_to_metric_families

PREFIX = "apiserver_envelope_encryption_key_id_hash"
STATUS_TIMESTAMP = f"{PREFIX}_status_last_timestamp_seconds"
USE_TOTAL = f"{PREFIX}_total"
USE_TIMESTAMP = f"{PREFIX}_last_timestamp_seconds"
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

    @property
    def current_seen_at(self) -> datetime | None:
        current = self.current
        return self.status[current] if current else None

    def reported_hashes(self) -> list[str]:
        """Every key hash the metrics name: Status ones newest first, then the others, sorted."""
        by_status = sorted(self.status, key=lambda h: self.status[h], reverse=True)
        others = sorted((set(self.reads) | set(self.writes)) - set(by_status))
        return by_status + others


def _timestamp(value: float) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value > 0 else None


def parse_metrics(text: str) -> EnvelopeMetrics:
    """The envelope-encryption series of a Prometheus text exposition (other series are skipped unparsed)."""
    # The full exposition of an API server is thousands of lines; only the key-id families are parsed.
    lines = [line for line in text.splitlines() if PREFIX in line]
    result = EnvelopeMetrics(served=True)
    if not any(not line.startswith("#") for line in lines):
        result.served = False
        result.reason = (
            "the API server serves metrics but no apiserver_envelope_encryption_key_id_hash_* series: it has no "
            "KMS v2 provider, or has not used it since it started"
        )
        return result
    for family in text_string_to_metric_families("\n".join(lines) + "\n"):
        for sample in family.samples:
            key_hash = sample.labels.get("key_id_hash", "")
            if not key_hash:
                continue
            if sample.name == STATUS_TIMESTAMP:
                seen = _timestamp(sample.value)
                if seen is not None and (key_hash not in result.status or seen > result.status[key_hash]):
                    result.status[key_hash] = seen
                continue
            kind = sample.labels.get("transformation_type")
            table = {FROM_STORAGE: result.reads, TO_STORAGE: result.writes}.get(kind or "")
            if table is None:
                continue
            use = table.setdefault(key_hash, KeyUse())
            if sample.name == USE_TOTAL:
                use.count += int(sample.value)
            elif sample.name == USE_TIMESTAMP:
                last = _timestamp(sample.value)
                if last is not None and (use.last is None or last > use.last):
                    use.last = last
    return result


def fetch_metrics(api_client: Any) -> EnvelopeMetrics:
    """Scrapes the API server's `/metrics` through the client's own request path (its auth, TLS and proxy)."""
    from kubernetes.client.rest import ApiException

    try:
        response = api_client.call_api(
            "/metrics",
            "GET",
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=(5, 30),
        )
    except ApiException as error:
        why = {401: "the credentials were refused", 403: "this user may not read /metrics", 404: "not served"}
        return EnvelopeMetrics(
            served=False,
            reason=f"GET /metrics: HTTP {error.status} ({why.get(error.status or 0, error.reason)})",
        )
    body = response[0] if isinstance(response, tuple) else response
    return parse_metrics(body.data.decode("utf-8", errors="replace"))
