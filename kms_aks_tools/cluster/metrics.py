"""kube-apiserver's KMS v2 envelope metrics, parsed with prometheus_client's text parser.

The series (k8s.io/apiserver v0.34.4, `pkg/storage/value/encrypt/envelope/metrics/metrics.go`):
- `apiserver_envelope_encryption_key_id_hash_total{transformation_type, provider_name, key_id_hash,
  apiserver_id_hash}`: how often each key id was used, `from_storage` (reads) or `to_storage` (writes);
- `apiserver_envelope_encryption_key_id_hash_last_timestamp_seconds{same labels}`: when it was last used;
- `apiserver_envelope_encryption_key_id_hash_status_last_timestamp_seconds{provider_name, key_id_hash,
  apiserver_id_hash}`: when the plugin's Status last reported that key id.
Labels carry `metric_key_id_hash(key id)` (keys.py), never the key id itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

PREFIX = "apiserver_envelope_encryption_key_id_hash_"
STATUS = PREFIX + "status_last_timestamp_seconds"
TOTAL = PREFIX + "total"
LAST_USED = PREFIX + "last_timestamp_seconds"


@dataclass(frozen=True)
class KeyIdHashSample:
    metric: str  # STATUS, TOTAL or LAST_USED
    provider: str
    key_id_hash: str  # sha256:<hex of sha256 of the key id>
    transformation_type: str  # from_storage / to_storage; "" for STATUS
    value: float


def key_id_hash_samples(metrics_text: str) -> list[KeyIdHashSample]:
    """Every sample of the three key-id-hash series in a /metrics text."""
    samples = []
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name in (STATUS, TOTAL, LAST_USED):
                samples.append(
                    KeyIdHashSample(
                        metric=sample.name,
                        provider=sample.labels.get("provider_name", ""),
                        key_id_hash=sample.labels.get("key_id_hash", ""),
                        transformation_type=sample.labels.get("transformation_type", ""),
                        value=sample.value,
                    )
                )
    return samples


def status_key_id_hash(metrics_text: str, provider: str) -> str | None:
    """The key id hash the provider's Status reported last (the API server's current key), if any."""
    status = [s for s in key_id_hash_samples(metrics_text) if s.metric == STATUS and s.provider == provider]
    return max(status, key=lambda s: s.value).key_id_hash if status else None
