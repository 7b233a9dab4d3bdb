"""`rotation-without-reencryption` (the rotation gate): a key id change away from a current key that has no
re-encryption record `reencryption_records.judge` trusts.

Protects the Secrets still stored under the older key: AKS keeps two key slots (current and previous), so after
a rotation the current key becomes the previous one and the older one is dropped. The record must be complete,
carry the API server's evidence for that key, and name this cluster (its name and API server host in the old
state). A re-encryption waiver naming the current key excuses it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from azure_facts.engine import UNKNOWN, stack_from_urn
from azure_facts.findings import Finding
from azure_facts.property_paths import hides
from kms_aks_tools.cluster.reencryption_records import ClusterIdentity, server_host, trusted_record
from kms_aks_tools.guard.common import ROTATION_GATE_RULE
from kms_aks_tools.guard.records import Records
from kms_aks_tools.preview.model import Step


def gate_findings(
    key_changes: Iterable[Finding],
    current_keys: Mapping[str, str],
    clusters: Mapping[str, ClusterIdentity],
    records: Records,
) -> Iterator[Finding]:
    """A key id change away from a current key without a re-encryption record `reencryption_records.judge` trusts."""
    for change in key_changes:
        current = current_keys.get(change.urn)
        if current is None:
            continue  # KMS enabled in place: no current key, nothing stored under an older one
        stack = stack_from_urn(change.urn)
        found, record_file = records.load(stack)
        trusted, verdicts = trusted_record(record_file, current, clusters[change.urn])
        if trusted is not None:
            continue
        why = " Its records were refused: " + "; ".join(v.reason for v in verdicts[:3]) + "." if verdicts else ""
        path = records.shown(found)
        yield Finding(
            rule=ROTATION_GATE_RULE,
            urn=change.urn,
            path=change.path,
            message=(
                f"the cluster's current key {current} has no verified re-encryption record of this cluster in "
                f"{path}: some Secrets may still be stored under the previous key.{why} AKS keeps two key slots "
                f"(current and previous); after this change {current} becomes the previous key and the older one "
                "is dropped, with every Secret still under it unreadable. First rewrite every Secret under the "
                f"current key: `kms-aks reencrypt --stack {stack} --key-id {current} --context <kube-context>`, and "
                f"commit the record it writes ({path}); then preview again (docs/rotation.md). Only if no Secret "
                f"can be under an older key (e.g. the cluster has only ever used this one), add {{urn, currentKeyId: "
                f"'{current}', reason}} to reencryptionWaivers in the overrides file; the rotation override is needed "
                "as well."
            ),
            current_key_id=current,
        )


def cluster_identity(step: Step) -> ClusterIdentity:
    """The cluster a re-encryption record must name: its resource name and API server hosts, from the old state
    (outputs `name`, `fqdn`, `privateFQDN`). What is masked, unknown or absent is None: the record is refused."""
    outputs = (step.oldState.outputs if step.oldState else None) or {}

    def plain(key: str) -> str | None:
        value = outputs.get(key)
        return value if isinstance(value, str) and value and value != UNKNOWN and not hides(value) else None

    hosts = frozenset(server_host(h) for h in (plain("fqdn"), plain("privateFQDN")) if h)
    return ClusterIdentity(name=plain("name"), hosts=hosts or None)
