"""The guard's judgement of a whole preview: read every step's type, compute the KMS closure, run the named rules
on each step of a KMS-relevant type or closure member, refuse every other change on the closure
(`unreviewed-kms-change`), run the rotation gate, then apply the overrides.

Nothing passes by default: input the guard cannot read is `BadInput` (exit 2), never a pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from azure_facts.findings import Finding
from azure_facts.property_paths import split_property_path
from azure_facts.tokens import KEY, KMS_RELEVANT_TYPES, MANAGED_CLUSTER, VAULT
from kms_aks_tools.cli.exits import EXIT_BLOCKED, EXIT_OK
from kms_aks_tools.cluster.reencryption_records import ClusterIdentity
from kms_aks_tools.guard.closure import closure_of
from kms_aks_tools.guard.common import EXTERNAL_CLUSTER_CONFIG, GRANT_TYPES
from kms_aks_tools.guard.identities import kms_grant_because, kms_identities
from kms_aks_tools.guard.overrides import Override, excuses, why_stale
from kms_aks_tools.guard.records import Records
from kms_aks_tools.guard.rules.destructive_op import op_findings
from kms_aks_tools.guard.rules.key_create_time_change import key_findings
from kms_aks_tools.guard.rules.kms_grant import grant_findings
from kms_aks_tools.guard.rules.kms_key_change import current_key_of
from kms_aks_tools.guard.rules.protect_removed import protect_finding
from kms_aks_tools.guard.rules.rotation_gate import cluster_identity, gate_findings
from kms_aks_tools.guard.rules.type_tokens import judge_types
from kms_aks_tools.guard.rules.unreviewed_kms_change import unreviewed_findings
from kms_aks_tools.guard.steps import JUDGED_PATHS, cluster_findings, vault_findings
from kms_aks_tools.preview.model import BadInput, Preview, Step, check_change_summary


@dataclass
class GuardResult:
    """What the guard concluded about one preview."""

    steps: int
    findings: list[Finding] = field(default_factory=list)
    allowed: list[tuple[Finding, Override]] = field(default_factory=list)
    stale_overrides: list[tuple[Override, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_BLOCKED if self.findings else EXIT_OK


def _external_cluster_config(preview: Preview) -> bool | None:
    """The stack config's `kms-aks:keyServesExternalCluster`, as the preview shows its config."""
    config = (preview.model_extra or {}).get("config")
    value = config.get(EXTERNAL_CLUSTER_CONFIG) if isinstance(config, dict) else None
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise BadInput(f"stack config {EXTERNAL_CLUSTER_CONFIG} is {value!r}; it takes true or false")


def check_preview(preview: Preview, overrides: Sequence[Override] = (), records: Records | None = None) -> GuardResult:
    """Judge a parsed preview. Raises `BadInput` for a preview (or records file) that cannot be judged.

    `records` locates the re-encryption records for the rotation gate (default: `rotations/` of the project
    around the working directory).
    """
    if not preview.steps:
        raise BadInput("the preview has no steps at all; an empty plan is refused, nothing passes by default")
    errors = [d for d in preview.diagnostics or [] if (d.severity or "").lower() == "error"]
    if errors:
        raise BadInput(
            "the preview reported errors, so its plan is incomplete: "
            + "; ".join(d.message.strip() or "(no message)" for d in errors[:3])
        )

    check_change_summary(preview)

    findings: dict[tuple[str, str, str], Finding] = {}
    judged: list[tuple[Step, str]] = []
    for step in preview.steps:
        resource_type, type_findings = judge_types(step)
        judged.append((step, resource_type))
        for finding in type_findings:
            findings.setdefault((finding.urn, finding.rule, finding.path), finding)
    closure = closure_of(judged, external_cluster=_external_cluster_config(preview))
    view = kms_identities(judged)
    if closure.external_cluster:
        view.gaps.append(
            "the stack holds a key vault but no cluster, so a cluster in another stack may use its key through this "
            f"grant (set {EXTERNAL_CLUSTER_CONFIG}: false in the stack config if none does)"
        )

    current_keys: dict[str, str] = {}
    clusters: dict[str, ClusterIdentity] = {}
    for step, resource_type in judged:
        member = closure.members.get(step.urn)
        if resource_type not in KMS_RELEVANT_TYPES and member is None:
            continue
        found = list(op_findings(step, resource_type, member))
        if resource_type == MANAGED_CLUSTER:
            found.extend(cluster_findings(step))
            if (current := current_key_of(step)) is not None:
                current_keys[step.urn] = current
                clusters[step.urn] = cluster_identity(step)
        elif resource_type == KEY:
            found.extend(key_findings(step))
        elif resource_type == VAULT:
            found.extend(vault_findings(step))
        elif resource_type in GRANT_TYPES:
            found.extend(grant_findings(step, resource_type, view))
        if (protect := protect_finding(step, resource_type)) is not None:
            found.append(protect)
        if member is not None and not (
            resource_type in GRANT_TYPES and kms_grant_because(step, resource_type, view) is None
        ):
            # A grant cleared of being the KMS identity's is judged whole by the grant rules.
            refused = [split_property_path(f.path) for f in found if not f.path.startswith("op=")]
            found.extend(unreviewed_findings(step, member, JUDGED_PATHS.get(resource_type, ()), refused))
        for finding in found:
            # A replacement shows up as several steps for one URN; report each property finding once.
            findings.setdefault((finding.urn, finding.rule, finding.path), finding)

    key_changes = [f for f in findings.values() if f.rule == "kms-key-change" and f.new_key_id is not None]
    for finding in gate_findings(key_changes, current_keys, clusters, records or Records()):
        findings.setdefault((finding.urn, finding.rule, finding.path), finding)

    result = GuardResult(steps=len(preview.steps))
    unique = list(dict.fromkeys(overrides))
    for finding in findings.values():
        match = next((o for o in unique if excuses(o, finding)), None)
        if match is None:
            result.findings.append(finding)
        else:
            result.allowed.append((finding, match))
    # Stale: an override that matches no finding. The same permission given twice (file and flag, with different
    # reasons) matches the same finding, so neither is stale.
    for override in unique:
        if not any(excuses(override, finding) for finding in findings.values()):
            result.stale_overrides.append((override, why_stale(override, findings.values())))
    return result
