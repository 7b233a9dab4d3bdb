"""The record a complete `kms-aks reencrypt` pass appends to `rotations/<stack>.yaml`: what the pass counted, what
the API server reported as its current key, and the verification pass's evidence (`reencryption_records` holds its
model and the gate's judgement of it)."""

from __future__ import annotations

from datetime import UTC, datetime

from azure_facts.key_ids import plugin_key_id
from kms_aks_tools.cluster import verify
from kms_aks_tools.cluster.checkpoint import Checkpoint
from kms_aks_tools.cluster.connection import Cluster
from kms_aks_tools.cluster.key_metrics import EnvelopeMetrics
from kms_aks_tools.cluster.keys import StackKey
from kms_aks_tools.cluster.reencryption_records import ApiServerReport, ClusterRef, ReencryptionRecord, SecretCounts


def pass_record(
    state: Checkpoint,
    cluster: Cluster,
    stack_key: StackKey,
    metrics: EnvelopeMetrics,
    checked: verify.Verification,
) -> ReencryptionRecord:
    """The record of a pass that rewrote every Secret (`state`): `complete` only when the verification pass proved
    it and the API server reports the stack's key as current; `unverified` evidence otherwise."""
    assert stack_key.key_id is not None
    report = ApiServerReport(
        metricsServed=metrics.served,
        currentKeyMatches=(metrics.current == stack_key.metric_hash) if metrics.served else None,
        currentKeyIdHash=metrics.current,
        reportedKeyIdHashes=metrics.reported_hashes(),
    )
    proven = checked.verified and metrics.served and metrics.current == stack_key.metric_hash
    return ReencryptionRecord(
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
