"""The named rules each closure type is judged by, and what they watch: a cluster's five KMS settings, a Vault's
five access settings. A value the preview masks is judged by the detailed diff instead (`detailed_diff`), never
read as absent.

`JUDGED_PATHS` is what the named rules judge on each type: a change at or below one of these paths is theirs to
pass or refuse; any other change on a closure member is on the known-safe list or refused as
`unreviewed-kms-change`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from azure_facts.findings import Finding
from azure_facts.property_paths import Path, hides, lookup
from azure_facts.tokens import ACCESS_POLICY, KEY, MANAGED_CLUSTER, ROLE_ASSIGNMENT, VAULT
from kms_aks_tools.guard.common import (
    ACCESS_POLICY_KEYS,
    CHANGE_OPS,
    ENABLED_PATH,
    GRANT_FIELDS,
    IDENTITY_PATH,
    KEY_ID_PATH,
    NETWORK_ACCESS_PATH,
    NON_DESTRUCTIVE_OPS,
    PRIVATE_VAULT_PATH,
)
from kms_aks_tools.guard.detailed_diff import diff_findings
from kms_aks_tools.guard.rules import (
    vault_access_policies_change,
    vault_network_access_change,
    vault_network_acls_change,
    vault_permission_model_change,
    vault_tenant_change,
)
from kms_aks_tools.guard.rules.identity_change import identity_finding
from kms_aks_tools.guard.rules.kms_disabled import enabled_finding
from kms_aks_tools.guard.rules.kms_key_change import key_id_finding, observed_key_id
from kms_aks_tools.guard.rules.kms_network_access_change import network_access_finding
from kms_aks_tools.guard.rules.kms_private_vault_change import private_vault_finding
from kms_aks_tools.preview.model import Step

CLUSTER_RULE_PATHS: dict[str, Path] = {
    "kms-key-change": KEY_ID_PATH,
    "kms-disabled": ENABLED_PATH,
    "kms-network-access-change": NETWORK_ACCESS_PATH,
    "kms-private-vault-change": PRIVATE_VAULT_PATH,
    "identity-change": IDENTITY_PATH,
}

# The Vault's rules, in the order their findings are reported.
VAULT_RULES = (
    vault_access_policies_change,
    vault_permission_model_change,
    vault_network_access_change,
    vault_network_acls_change,
    vault_tenant_change,
)
VAULT_RULE_PATHS: dict[str, Path] = {rule.RULE: rule.PATH for rule in VAULT_RULES}

JUDGED_PATHS: dict[str, tuple[Path, ...]] = {
    MANAGED_CLUSTER: tuple(CLUSTER_RULE_PATHS.values()),
    VAULT: tuple(VAULT_RULE_PATHS.values()),
    KEY: (("properties",), ("tags",)),  # key-create-time-change judges every setting of an existing key
    ACCESS_POLICY: (*GRANT_FIELDS[ACCESS_POLICY], ACCESS_POLICY_KEYS),
    ROLE_ASSIGNMENT: tuple(GRANT_FIELDS[ROLE_ASSIGNMENT]),
}


def _cluster_state_findings(
    step: Step, old_props: Mapping[str, Any], new_props: Mapping[str, Any]
) -> Iterator[Finding]:
    """Compare old and new values; a rule whose values are masked secrets is handed to the detailed diff."""
    urn = step.urn
    guarded = CLUSTER_RULE_PATHS.items()
    old_key, new_key = observed_key_id(step, old_props), lookup(new_props, KEY_ID_PATH)
    if hides(old_key, new_key):
        yield from diff_findings(step, only="kms-key-change", reason="its values are masked secrets", guarded=guarded)
    elif finding := key_id_finding(urn, old_key, new_key):
        yield finding

    if hides(lookup(old_props, ENABLED_PATH), lookup(new_props, ENABLED_PATH)):
        yield from diff_findings(step, only="kms-disabled", reason="its values are masked secrets", guarded=guarded)
    elif finding := enabled_finding(urn, old_props, new_props, step.oldState.outputs if step.oldState else None):
        yield finding

    for rule, judge, reason in (
        ("kms-network-access-change", network_access_finding, "its values are masked"),
        ("kms-private-vault-change", private_vault_finding, "its values are masked"),
        ("identity-change", identity_finding, "its values are masked secrets"),
    ):
        old, new = lookup(old_props, CLUSTER_RULE_PATHS[rule]), lookup(new_props, CLUSTER_RULE_PATHS[rule])
        if hides(old, new):
            yield from diff_findings(step, only=rule, reason=reason, guarded=guarded)
        elif finding := judge(urn, old, new):
            yield finding


def cluster_findings(step: Step) -> Iterator[Finding]:
    """The cluster's KMS settings: key id, enabled, network access, private vault, identity."""
    if step.op not in CHANGE_OPS and step.op in NON_DESTRUCTIVE_OPS:
        return  # a create has nothing existing to break; same/read/refresh/import change nothing
    if step.op in {"delete", "delete-replaced"}:
        return  # the op itself is the finding; there is no new state to compare
    old_props = step.oldState.properties() if step.oldState else None
    new_props = step.newState.properties() if step.newState else None
    if old_props is not None and new_props is not None:
        yield from _cluster_state_findings(step, old_props, new_props)
    else:
        yield from diff_findings(
            step, reason="the preview carries no old/new state for it", guarded=CLUSTER_RULE_PATHS.items()
        )


def vault_findings(step: Step) -> Iterator[Finding]:
    """The Vault's settings that decide whether the KMS identity reaches the key."""
    if step.op not in CHANGE_OPS:
        return  # create/same change nothing existing; delete and unknown ops are destructive_op's
    old_props = step.oldState.properties() if step.oldState else None
    new_props = step.newState.properties() if step.newState else None
    guarded = VAULT_RULE_PATHS.items()
    if old_props is None or new_props is None:
        yield from diff_findings(
            step, reason="the preview carries no old/new state for it", guarded=guarded, subject="key vault"
        )
        return
    values = {rule.RULE: (lookup(old_props, rule.PATH), lookup(new_props, rule.PATH)) for rule in VAULT_RULES}
    masked = {name: hides(*pair) for name, pair in values.items()}
    for name in (n for n, hidden in masked.items() if hidden):
        yield from diff_findings(step, only=name, reason="its values are masked", guarded=guarded, subject="key vault")
    for rule in VAULT_RULES:
        if not masked[rule.RULE] and (finding := rule.judge(step.urn, *values[rule.RULE])) is not None:
            yield finding
