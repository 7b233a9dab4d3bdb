"""How the guard shows its verdict: the text a reviewer reads (`render`), and the verdict as data for `--json`
(`verdict_of`, in the shape of `kms_aks_tools.guard_verdict`, which the PR comment is rendered from), with what to
do about each finding (`how_to_proceed`).
"""

from __future__ import annotations

import re
from typing import Any

from rich.console import Console
from rich.text import Text

from azure_facts.engine import stack_from_urn
from azure_facts.findings import Finding
from kms_aks_tools.guard.check import GuardResult
from kms_aks_tools.guard.common import ROTATION_GATE_RULE
from kms_aks_tools.guard.overrides import KeyRotationOverride, Override, ReencryptionWaiver
from kms_aks_tools.guard_verdict import AllowedChange, GuardVerdict, StaleOverride, VerdictFinding
from kms_aks_tools.preview.model import Preview


def _summary(preview: Preview) -> str:
    if preview.changeSummary:
        return ", ".join(f"{op} {count}" for op, count in sorted(preview.changeSummary.items()))
    return "no changeSummary"


def _what_override_names(override: Override) -> str:
    if isinstance(override, KeyRotationOverride):
        return f"keyRotations: newKeyId {override.newKeyId}"
    if isinstance(override, ReencryptionWaiver):
        return f"reencryptionWaivers: currentKeyId {override.currentKeyId}"
    return f"transitions: {override.rule} at {override.at}"


def render(result: GuardResult, preview: Preview, source: str, console: Console) -> None:
    """Print each finding with its URN and property path, then the overrides used and unused."""
    console.print(Text(f"plan guard: {source}: {result.steps} steps ({_summary(preview)})", style="bold"))
    for finding in result.findings:
        console.print(Text.assemble(("REFUSED ", "bold red"), (f"[{finding.rule}] ", "red"), finding.urn))
        console.print(Text(f"    at {finding.path}"))
        console.print(Text(f"    {finding.message}"))
    for finding, override in result.allowed:
        console.print(Text.assemble(("ALLOWED ", "bold yellow"), (f"[{finding.rule}] ", "yellow"), finding.urn))
        if finding.new_key_id is not None:
            console.print(Text(f"    at {finding.path}: new key id {finding.new_key_id}"))
        elif finding.current_key_id is not None:
            console.print(Text(f"    at {finding.path}: leaving current key {finding.current_key_id} without a record"))
        else:
            console.print(Text(f"    at {finding.path}"))
        console.print(Text(f"    by override: {override.reason}"))
    for override, why in result.stale_overrides:
        console.print(Text.assemble(("STALE OVERRIDE ", "bold yellow"), override.urn))
        console.print(Text(f"    {_what_override_names(override)} matched nothing: {why}. Remove it."))
    if result.findings:
        count = len(result.findings)
        console.print(
            Text(
                f"plan guard: refused, {count} finding{'s' if count != 1 else ''}. "
                "Destructive ops on a cluster, vault or key, disabling KMS, its network access and unrecognised "
                "types are never overridable; a key rotation needs an override naming the URN and the new key id "
                "(and a re-encryption record of the current key); a grant, vault access, cluster identity or "
                "protect change made in the safe order needs a transition override naming it; a Key's create-time "
                "settings change on the data plane, then `pulumi refresh`.",
                style="bold red",
            )
        )
    elif result.allowed:
        count = len(result.allowed)
        rotations = any(isinstance(o, KeyRotationOverride) for _, o in result.allowed)
        console.print(
            Text(
                f"plan guard: passed, with {count} change{'s' if count != 1 else ''} allowed by override."
                + (" Re-encrypt every secret after `pulumi up` (kms-aks reencrypt)." if rotations else ""),
                style="bold green",
            )
        )
    else:
        console.print(Text("plan guard: passed, no irreversible KMS change in this plan.", style="bold green"))


REASON_PLACEHOLDER = "<why this change is safe now>"
_DATA_PLANE = re.compile(r"on the data plane: (.+?); then `pulumi refresh`")
# What to do, per rule that no override can excuse.
_NOT_OVERRIDABLE = {
    "destructive-op": "not overridable: change the program so the resource stays in place (same name and type)",
    "kms-disabled": "not overridable: keep KMS enabled on this cluster",
    "kms-key-removed": "not overridable: keep a versioned key id on this cluster",
    "kms-network-access-change": "not overridable: keep keyVaultNetworkAccess as it is (docs/private-key-vault.md)",
    "unrecognised-type": "not overridable: declare the resource with a type token the guard knows",
    "type-change": "not overridable: keep the resource's type; move API versions only within the same type",
    "unrecognised-op": "not overridable: the guard refuses an op it does not know; review the plan by hand",
    "unverifiable-update": "not overridable: preview with `.ci/pulumi-stack preview`, which records old and new state",
    "kms-key-unknown": "pin the new versioned key id in the stack config (kms-aks:kmsKey.version), push, then "
    "override that exact id (docs/rotation.md)",
}


def how_to_proceed(finding: Finding) -> tuple[str, dict[str, list[dict[str, Any]]] | None]:
    """One line saying what to do about `finding`, and the overrides-file entry that would excuse it (or None)."""
    stack = stack_from_urn(finding.urn)
    if finding.rule == "kms-key-change" and finding.new_key_id is not None:
        entry = {"urn": finding.urn, "newKeyId": finding.new_key_id, "reason": REASON_PLACEHOLDER}
        return (
            "a planned rotation: add this keyRotations entry to guard-overrides.yaml, push, and after `pulumi up` "
            f"run `kms-aks reencrypt --stack {stack} --context <kube-context>`",
            {"keyRotations": [entry]},
        )
    if finding.rule == "kms-key-change":
        return _NOT_OVERRIDABLE["kms-key-unknown"], None
    if finding.rule == ROTATION_GATE_RULE:
        entry = {"urn": finding.urn, "currentKeyId": finding.current_key_id, "reason": REASON_PLACEHOLDER}
        return (
            f"run `kms-aks reencrypt --stack {stack} --key-id {finding.current_key_id} --context <kube-context>`, "
            f"commit rotations/{stack}.yaml and push "
            "(only if no Secret can be under an older key: this reencryptionWaivers entry instead)",
            {"reencryptionWaivers": [entry]},
        )
    if finding.rule == "key-create-time-change":
        command = _DATA_PLANE.search(finding.message)
        if command is None or " with the new settings" in command.group(1):
            # Type, size, curve, operations: fixed per version; only a new version (a planned rotation) has them.
            return (
                "not overridable: create a new key version with the new settings (`az keyvault key create`), pin it "
                "and follow the planned rotation (docs/rotation.md)",
                None,
            )
        return f"not overridable: make the change with `{command.group(1)}`, then `pulumi refresh` and push", None
    if finding.overridable:
        entry = {"urn": finding.urn, "rule": finding.rule, "at": finding.path, "reason": REASON_PLACEHOLDER}
        return (
            "only as the planned step of the safe order (the finding says which): add this transitions entry to "
            "guard-overrides.yaml and push",
            {"transitions": [entry]},
        )
    return _NOT_OVERRIDABLE.get(finding.rule, "not overridable: change the program so this finding goes away"), None


def verdict_of(result: GuardResult) -> GuardVerdict:
    """The guard's result in the shape of `kms_aks_tools.guard_verdict` (what `--json` writes)."""
    findings = []
    for finding in result.findings:
        proceed, override = how_to_proceed(finding)
        findings.append(
            VerdictFinding(
                rule=finding.rule,
                urn=finding.urn,
                path=finding.path,
                message=finding.message,
                proceed=proceed,
                override=override,
            )
        )
    return GuardVerdict(
        status="refused" if result.findings else "passed",
        steps=result.steps,
        findings=findings,
        allowed=[
            AllowedChange(rule=f.rule, urn=f.urn, path=f.path, reason=override.reason) for f, override in result.allowed
        ],
        stale=[StaleOverride(urn=o.urn, names=_what_override_names(o), why=why) for o, why in result.stale_overrides],
    )
