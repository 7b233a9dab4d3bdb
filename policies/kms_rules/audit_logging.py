"""aks-kms-vault-audit-logging: the KMS vault created in this stack sends AuditEvent somewhere, enabled."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from azure_facts import EXISTING_VAULT_AUDIT_LOGGING_TAG
from kms_rules.model import (
    DIAGNOSTIC_SETTING,
    ClusterKms,
    Finding,
    Res,
    StackIndex,
    as_list,
    could_not_decide,
    dedupe,
    dig,
    is_unknown,
    known_lower,
    known_text,
    not_applicable,
    violation,
)

# Key Vault's log category that records every key operation (encrypt, decrypt, ...), and the category groups that
# include it (https://learn.microsoft.com/azure/key-vault/general/logging, "Log categories": audit, allLogs).
AUDIT_EVENT_CATEGORY = "auditevent"
AUDIT_CATEGORY_GROUPS = frozenset({"audit", "alllogs"})
# Where a diagnostic setting can send logs; one is enough.
DIAGNOSTIC_DESTINATIONS = ("workspaceId", "storageAccountId", "eventHubAuthorizationRuleId", "marketplacePartnerId")
MONITORING_CONFIG_KEY = "kms-aks:monitoring"


def _is_vault_id(value: str, vault_name: str | None) -> bool:
    """Whether an ARM id is exactly a Key Vault (not a key or secret in it) named `vault_name`."""
    segments = value.strip("/").split("/")
    return (
        vault_name is not None
        and len(segments) == 8
        and segments[-4].lower() == "providers"
        and segments[-3].lower() == "microsoft.keyvault"
        and segments[-2].lower() == "vaults"
        and segments[-1].lower() == vault_name
    )


def _audit_setting_verdict(setting: Res, kms: ClusterKms) -> bool | str | None:
    """True when `setting` sends the KMS vault's AuditEvent somewhere; None when that is not known during preview;
    else why not (the empty string when it is about another resource)."""
    vault = kms.vault
    assert vault is not None
    uri = setting.props.get("resourceUri")
    if uri is None or is_unknown(uri):
        # Unknown during preview; absent from azure-native's outputs (it is a path parameter, not in ARM's
        # response), which is all AnalyzeStack gets for an unchanged resource. The engine's property
        # dependencies still say where it comes from.
        deps = setting.deps_of("resourceUri")
        if vault.urn in deps:
            pass  # the vault's id
        elif deps:
            return ""  # another resource's id
        else:
            return None
    elif known_text(uri) is None or not _is_vault_id(uri, kms.vault_name):
        return ""
    logs = setting.props.get("logs")
    if is_unknown(logs):
        return None
    audit_logs: list[Any] = []
    undecided = False
    for entry in as_list(logs):
        if is_unknown(entry) or not isinstance(entry, Mapping):
            undecided = undecided or is_unknown(entry)
            continue
        category, group = entry.get("category"), entry.get("categoryGroup")
        if is_unknown(category) or is_unknown(group):
            undecided = True
        elif known_lower(category) == AUDIT_EVENT_CATEGORY or known_lower(group) in AUDIT_CATEGORY_GROUPS:
            audit_logs.append(entry)
    enabled = [entry.get("enabled") for entry in audit_logs]
    if True not in enabled:
        if undecided or any(is_unknown(e) for e in enabled):
            return None
        if audit_logs:
            return f"{setting.label} has AuditEvent disabled (enabled: false)"
        return f"{setting.label} sends no AuditEvent (neither the category nor the audit or allLogs group)"
    destinations = [setting.props.get(d) for d in DIAGNOSTIC_DESTINATIONS]
    if any(known_text(d) for d in destinations):
        return True
    if any(is_unknown(d) for d in destinations):
        # A destination taken from a resource of this stack (a workspace's id) is known once it exists.
        if any(setting.deps_of(d) for d in DIAGNOSTIC_DESTINATIONS if is_unknown(setting.props.get(d))):
            return True
        return None
    return (
        f"{setting.label} has no destination (workspaceId, storageAccountId, eventHubAuthorizationRuleId or "
        "marketplacePartnerId)"
    )


def _outside_vault_audit_logging(kms: ClusterKms) -> Finding:
    """A vault from outside the stack (bring your own key) is its owner's, and so are its diagnostic settings, which
    the pack cannot see: the stack declares them (kms-aks:existingKey.auditLogging, carried on the cluster as a tag).
    Undeclared is a finding at this policy's level, so where audit logging is mandatory (prod) it is refused."""
    of = f"the KMS vault of {kms.cluster.label} ({kms.vault_label}, outside this stack)"
    declared = dig(kms.cluster.props, "tags", EXISTING_VAULT_AUDIT_LOGGING_TAG)
    if is_unknown(declared):
        return could_not_decide(f"{of}: its declared auditLogging (the cluster's tags) is not known.", kms.cluster.urn)
    if known_lower(declared) == "true":
        return not_applicable(f"{of}: its owner sends AuditEvent somewhere, as the stack declares.")
    fix = (
        "Ask the vault's owner for a diagnostic setting that sends the vault's AuditEvent log (or the audit group) "
        "to a destination, then declare it in the stack config: kms-aks:existingKey.auditLogging: true "
        "(docs/configuration.md, Bring your own key)."
    )
    if declared is None:
        return violation(
            f"{of}: whether it records every encrypt and decrypt by the KMS identity is not declared. {fix}",
            kms.cluster.urn,
        )
    return violation(
        f"{of} is declared without audit logging (auditLogging: {declared}): no encrypt or decrypt by the KMS "
        f"identity is recorded, and failed key access raises no alert. {fix}",
        kms.cluster.urn,
    )


def check_vault_audit_logging(index: StackIndex) -> list[Finding]:
    """The KMS vault created in this stack has a diagnostic setting that sends AuditEvent (or the audit or allLogs
    group) somewhere, enabled, with resourceUri = that vault: every encrypt and decrypt by the KMS identity is then
    recorded, which is what the failed-access alert reads."""
    findings: list[Finding] = []
    settings = index.by_type[DIAGNOSTIC_SETTING]
    for kms in index.kms_clusters:
        if kms.key_unresolved:
            findings.append(
                could_not_decide(
                    f"{kms.cluster.label}: keyId is not known during preview and does not depend on a Key of this "
                    "stack, so which vault must record its key operations cannot be decided.",
                    kms.cluster.urn,
                )
            )
            continue
        vault = kms.vault
        if vault is None:
            findings.append(_outside_vault_audit_logging(kms))
            continue
        reasons: list[str] = []
        undecided: list[str] = []
        passed = False
        for setting in settings:
            verdict = _audit_setting_verdict(setting, kms)
            if verdict is True:
                passed = True
                break
            if verdict is None:
                undecided.append(setting.label)
            elif verdict:
                reasons.append(verdict)
        if passed:
            continue
        if undecided:
            findings.append(
                could_not_decide(
                    f"{vault.label}: whether {', '.join(undecided)} sends the vault's AuditEvent somewhere is not "
                    "known during preview.",
                    vault.urn,
                )
            )
            continue
        why = f" ({'; '.join(reasons)})" if reasons else " (no monitor.DiagnosticSetting has it as resourceUri)"
        findings.append(
            violation(
                f"{vault.label} is the KMS vault of {kms.cluster.label} and does not send AuditEvent anywhere{why}: "
                "without it no encrypt or decrypt by the KMS identity is recorded, and failed key access raises no "
                f"alert. The program creates this setting from the stack config {MONITORING_CONFIG_KEY} (on by "
                "default; monitoring.workspaceResourceId picks an existing workspace): keep it. In code: a "
                'monitor.DiagnosticSetting with resource_uri=<the vault>.id, logs=[{category: "AuditEvent" (or '
                'categoryGroup "audit"), enabled: True}] and a destination such as workspace_id.',
                vault.urn,
            )
        )
    return dedupe(findings)
