"""The plan guard on previews recorded from the real Pulumi CLI (tests/fixtures/recorded/, `make fixtures`).

Every rule is checked on a real `pulumi preview --json --show-sames` of a change to a stack the real CLI created
against the stand-in: refused without its override, allowed with exactly its override; on the plain type tokens,
the v2 versioned-module form and both spellings of the v3 parameterized-package form; and refused on an unknown
form. Variations (masked secrets, missing states, unknown ops) are built from the recorded previews. The expected
verdicts below are written by hand from what each change does to the cluster's access to its key.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from azure_facts.engine import UNKNOWN
from kms_aks_tools import guard
from kms_aks_tools.commands import guard as guard_command
from tests.cli import TERMINAL
from tests.conftest import KmsAks

ROOT = Path(__file__).resolve().parent.parent
RECORDED = Path(__file__).resolve().parent / "fixtures" / "recorded"
BAD_INPUT = Path(__file__).resolve().parent / "fixtures" / "preview"

CLUSTER_T = "azure-native:containerservice:ManagedCluster"
VAULT_T = "azure-native:keyvault:Vault"
KEY_T = "azure-native:keyvault:Key"
IDENTITY_T = "azure-native:managedidentity:UserAssignedIdentity"
ACCESS_POLICY_T = "azure-native:keyvault:AccessPolicy"
ROLE_T = "azure-native:authorization:RoleAssignment"


def _urn(stack: str, component: str, type_: str, name: str) -> str:
    return f"urn:pulumi:{stack}::kms-aks::kms-aks:index:{component}${type_}::{name}"


DEV_CLUSTER = _urn("dev", "KmsAksCluster", CLUSTER_T, "aks-cluster")
DEV_VAULT = _urn("dev", "KeyVaultWithKey", VAULT_T, "kms-vault")
DEV_KEY = _urn("dev", "KeyVaultWithKey", KEY_T, "kms-key")
DEV_IDENTITY = _urn("dev", "KmsIdentity", IDENTITY_T, "kms-identity")
DEV_ACCESS_POLICY = _urn("dev", "KmsIdentity", ACCESS_POLICY_T, "kms-access-policy")
DEV_GROUP = "urn:pulumi:dev::kms-aks::azure-native:resources:ResourceGroup::rg"
PROD_GROUP = "urn:pulumi:prod::kms-aks::azure-native:resources:ResourceGroup::rg"
PROD_CLUSTER = _urn("prod", "KmsAksCluster", CLUSTER_T, "aks-cluster")
PROD_VAULT = _urn("prod", "KeyVaultWithKey", VAULT_T, "kms-vault")
PROD_KEY = _urn("prod", "KeyVaultWithKey", KEY_T, "kms-key")
PROD_IDENTITY = _urn("prod", "KmsIdentity", IDENTITY_T, "kms-identity")
PROD_ROLE = _urn("prod", "KmsIdentity", ROLE_T, "kms-crypto-user")

KEY_ID = "securityProfile.azureKeyVaultKms.keyId"
ENABLED = "securityProfile.azureKeyVaultKms.enabled"
NETWORK = "securityProfile.azureKeyVaultKms.keyVaultNetworkAccess"
NEW_VERSION = "0123456789abcdef0123456789abcdef"  # tests/e2e/record_previews.py pins it
GATE = "rotation-without-reencryption"

Expected = list[tuple[str, str, str]]

# What each recorded change must be refused for (rule, URN, path), written from what the change does.
EXPECTED: dict[str, Expected] = {
    "dev-create": [],
    "prod-create": [],
    "dev-no-change": [],
    "dev-node-count": [],
    "prod-no-change": [],
    "dev-key-rotation": [("kms-key-change", DEV_CLUSTER, KEY_ID), (GATE, DEV_CLUSTER, KEY_ID)],
    "prod-key-rotation": [("kms-key-change", PROD_CLUSTER, KEY_ID), (GATE, PROD_CLUSTER, KEY_ID)],
    "dev-kms-disabled": [("kms-disabled", DEV_CLUSTER, ENABLED)],
    "dev-kms-network-private": [("kms-network-access-change", DEV_CLUSTER, NETWORK)],
    "dev-cluster-identity-change": [("identity-change", DEV_CLUSTER, "identity")],
    "dev-cluster-rename": [
        # The cluster's and its identity's names change: both are replaced, and the grant follows the new principal.
        ("destructive-op", DEV_CLUSTER, "op=replace"),
        ("identity-change", DEV_CLUSTER, "identity"),
        ("destructive-op", DEV_IDENTITY, "op=replace"),
        ("kms-grant-replaced", DEV_ACCESS_POLICY, "op=replace"),
    ],
    # dev's key version is not pinned, so the cluster ignores keyId changes and stays `same` on the old key id:
    # the key's (and vault's) replacement is what cuts it off.
    "dev-vault-rename": [
        ("destructive-op", DEV_VAULT, "op=replace"),
        ("destructive-op", DEV_KEY, "op=replace"),
        ("kms-grant-replaced", DEV_ACCESS_POLICY, "op=replace"),
    ],
    "dev-key-rename": [("destructive-op", DEV_KEY, "op=replace")],
    "dev-key-type": [("key-create-time-change", DEV_KEY, "properties.kty")],
    "dev-key-expiry": [("key-create-time-change", DEV_KEY, "properties.attributes.expires")],
    "prod-rotation-policy": [("key-create-time-change", PROD_KEY, "properties.rotationPolicy")],
    "dev-permission-model-rbac": [
        ("vault-permission-model-change", DEV_VAULT, "properties.enableRbacAuthorization"),
        ("kms-grant-removed", DEV_ACCESS_POLICY, "op=delete"),
    ],
    "dev-permission-model-rbac-without-sames": [
        ("vault-permission-model-change", DEV_VAULT, "properties.enableRbacAuthorization"),
        ("kms-grant-removed", DEV_ACCESS_POLICY, "op=delete"),
    ],
    "prod-permission-model-access-policy": [
        ("vault-permission-model-change", PROD_VAULT, "properties.enableRbacAuthorization"),
        ("kms-grant-removed", PROD_ROLE, "op=delete"),
    ],
    "dev-access-policy-narrowed": [("kms-grant-narrowed", DEV_ACCESS_POLICY, "policy.permissions.keys")],
    "dev-access-policy-principal": [("kms-grant-replaced", DEV_ACCESS_POLICY, "op=replace")],
    "prod-role-change": [("kms-grant-moved", PROD_ROLE, "roleDefinitionId")],
    "prod-role-scope": [("kms-grant-replaced", PROD_ROLE, "op=replace")],
    "prod-role-principal": [("kms-grant-replaced", PROD_ROLE, "op=replace")],
    "dev-vault-public-network-disabled": [("vault-network-access-change", DEV_VAULT, "properties.publicNetworkAccess")],
    "dev-vault-acl-deny": [("vault-network-acls-change", DEV_VAULT, "properties.networkAcls")],
    "dev-vault-tenant": [("vault-tenant-change", DEV_VAULT, "properties.tenantId")],
    # Inline access policies written on the vault: the PUT replaces the list, the separate KMS grant with it.
    "dev-vault-inline-access-policies": [("vault-access-policies-change", DEV_VAULT, "properties.accessPolicies")],
    "dev-delete-all": [
        ("destructive-op", DEV_CLUSTER, "op=delete"),
        # The resource group holding them: Azure deletes everything in a deleted group (issue 21, class 4).
        ("destructive-op", DEV_GROUP, "op=delete"),
        ("destructive-op", DEV_VAULT, "op=delete"),
        ("destructive-op", DEV_KEY, "op=delete"),
        ("destructive-op", DEV_IDENTITY, "op=delete"),
        ("kms-grant-removed", DEV_ACCESS_POLICY, "op=delete"),
    ],
    "prod-unprotect": [
        ("protect-removed", PROD_VAULT, "protect"),
        ("protect-removed", PROD_KEY, "protect"),
        ("protect-removed", PROD_IDENTITY, "protect"),
    ],
}

# The rules a change made in the safe order meets, which a transition override may excuse (the documented table).
TRANSITION_RULES = {
    "identity-change",
    "kms-grant-removed",
    "kms-grant-replaced",
    "kms-grant-narrowed",
    "kms-grant-moved",
    "vault-permission-model-change",
    "vault-network-access-change",
    "vault-network-acls-change",
    "vault-tenant-change",
    "protect-removed",
}


def _excusable(rule: str, urn: str, path: str) -> bool:
    if rule in TRANSITION_RULES:
        return True
    # Deleting a user-assigned identity: the last step of an identity swap.
    return rule == "destructive-op" and f"${IDENTITY_T}::" in urn and path == "op=delete"


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def recorded(name: str) -> dict[str, Any]:
    path = RECORDED / f"{name}.json"
    assert path.is_file(), f"{path}: run `make fixtures`"
    return json.loads(path.read_text())


def write(tmp_path: Path, doc: Any, name: str = "preview.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def run(capsys: pytest.CaptureFixture[str], *args: Any) -> tuple[int, str, str]:
    code = guard_command.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refused(out: str) -> list[str]:
    """The `REFUSED [rule] URN` headline of each finding, as printed."""
    return [line for line in out.splitlines() if line.startswith("REFUSED ")]


def verdicts(result: guard.GuardResult) -> list[tuple[str, str, str]]:
    return sorted((f.rule, f.urn, f.path) for f in result.findings)


def judge(
    doc: dict[str, Any], overrides: list[guard.Override] | None = None, records: Path | None = None
) -> guard.GuardResult:
    return guard.check_preview(
        guard.Preview.model_validate(doc), overrides or [], guard.Records(directory=records or Path("/nonexistent"))
    )


def step_of(doc: dict[str, Any], urn: str) -> dict[str, Any]:
    (step,) = [s for s in doc["steps"] if s["urn"] == urn]
    return step


def current_key(doc: dict[str, Any], cluster: str) -> str:
    return step_of(doc, cluster)["oldState"]["inputs"]["securityProfile"]["azureKeyVaultKms"]["keyId"]


def new_key(doc: dict[str, Any], cluster: str) -> str:
    return step_of(doc, cluster)["newState"]["inputs"]["securityProfile"]["azureKeyVaultKms"]["keyId"]


def overrides_for(doc: dict[str, Any], expected: Expected) -> list[guard.Override]:
    """Exactly one override for each expected finding that can be excused (the user's reviewable file)."""
    entries: list[guard.Override] = []
    for rule, urn, path in expected:
        if rule == "kms-key-change":
            entries.append(guard.KeyRotationOverride(urn=urn, newKeyId=new_key(doc, urn), reason="planned"))
        elif rule == GATE:
            entries.append(guard.ReencryptionWaiver(urn=urn, currentKeyId=current_key(doc, urn), reason="first key"))
        elif _excusable(rule, urn, path):
            entries.append(guard.TransitionOverride(urn=urn, rule=rule, at=path, reason="planned step"))
    return entries


# --------------------------------------------------------------------------------------------------
# The recorded previews are the real CLI's format
# --------------------------------------------------------------------------------------------------


def test_every_recorded_preview_is_judged_here() -> None:
    on_disk = {p.stem for p in RECORDED.glob("*.json")}
    assert on_disk == set(EXPECTED) | {"dev-program-error"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_previews_have_the_real_cli_shape(name: str) -> None:
    doc = recorded(name)
    for step in doc["steps"]:
        assert "type" not in step, "the real CLI writes no step-level type"
        assert step["op"] not in {"create-replacement", "delete-replaced"}, "no replacement steps without the flag"
        for state in (step.get("oldState"), step.get("newState")):
            if state:
                assert state["urn"] == step["urn"]
                assert step["urn"].split("::")[2].split("$")[-1] == state["type"]
    components = {s["urn"].split("::")[2].split("$")[0] for s in doc["steps"] if "$" in s["urn"]}
    assert components <= {
        "kms-aks:index:KeyVaultWithKey",
        "kms-aks:index:KmsIdentity",
        "kms-aks:index:KmsAksCluster",
        "kms-aks:index:KmsMonitoring",
    }
    sames = [s for s in doc["steps"] if s["op"] == "same"]
    if name.endswith("without-sames"):
        # Only the root stack (always printed) and protect changes show as `same` without --show-sames.
        assert all(s["urn"].endswith("::kms-aks-dev") or "Stack" in s["urn"] for s in sames)
    elif not name.endswith("-create") and name != "dev-delete-all":
        assert len(sames) > 1


def test_a_protect_only_change_is_a_same_step_that_json_prints_anyway() -> None:
    # What the guard relies on: `pulumi preview --json` prints a `same` step whose protect changes even without
    # --show-sames (pkg/backend/display: shouldShow), with both states' protect flags.
    step = step_of(recorded("prod-unprotect"), PROD_KEY)
    assert step["op"] == "same"
    assert (step["oldState"]["protect"], step["newState"].get("protect", False)) == (True, False)


# --------------------------------------------------------------------------------------------------
# Each rule on a real preview: refused without its override, allowed with it
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_recorded_change_is_refused_for_exactly_its_findings(name: str) -> None:
    result = judge(recorded(name))
    assert verdicts(result) == sorted(EXPECTED[name])
    assert result.exit_code == (1 if EXPECTED[name] else 0)


@pytest.mark.parametrize("name", sorted(n for n, e in EXPECTED.items() if e))
def test_each_refusal_is_allowed_only_by_its_own_overrides(name: str) -> None:
    doc, expected = recorded(name), EXPECTED[name]
    entries = overrides_for(doc, expected)
    result = judge(doc, entries)
    left = sorted((r, u, p) for r, u, p in expected if not (r in {"kms-key-change", GATE} or _excusable(r, u, p)))
    assert verdicts(result) == left
    assert sorted((f.rule, f.urn, f.path) for f, _ in result.allowed) == sorted(set(expected) - set(left))
    assert result.stale_overrides == []
    # Each override excuses exactly its own finding: without any one of them, that finding is back.
    for dropped in entries:
        partial = judge(doc, [e for e in entries if e is not dropped])
        assert len(partial.findings) == len(left) + 1


@pytest.mark.parametrize("name", sorted(n for n, e in EXPECTED.items() if e))
def test_an_override_for_another_resource_or_path_excuses_nothing(name: str) -> None:
    doc, expected = recorded(name), EXPECTED[name]
    moved = [
        guard.TransitionOverride(urn=urn.replace("::kms-aks::", "::other-project::"), rule=rule, at=path, reason="x")
        for rule, urn, path in expected
        if _excusable(rule, urn, path)
    ] + [
        guard.TransitionOverride(urn=urn, rule=rule, at=path + ".elsewhere", reason="x")
        for rule, urn, path in expected
        if _excusable(rule, urn, path) and rule != "destructive-op"  # whose only path is op=delete
    ]
    result = judge(doc, moved)
    assert verdicts(result) == sorted(expected)
    assert len(result.stale_overrides) == len(moved)


def test_every_message_says_what_breaks_and_the_safe_way(capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("dev-permission-model-rbac", "prod-role-change", "dev-access-policy-narrowed"):
        for finding in judge(recorded(name)).findings:
            assert "Safe order" in finding.message or "Keep both" in finding.message, finding
            assert "encrypt" in finding.message and "transitions" in finding.message, finding
    [acl] = judge(recorded("dev-vault-acl-deny")).findings
    assert "selected networks" in acl.message and "Private" in acl.message
    [public] = judge(recorded("dev-vault-public-network-disabled")).findings
    assert "Public" in public.message and "docs/private-key-vault.md" in public.message
    [tenant] = judge(recorded("dev-vault-tenant")).findings
    assert "99999999-8888-7777-6666-555555555555" in tenant.message and "migration" in tenant.message
    [identity] = judge(recorded("dev-cluster-identity-change")).findings
    assert "Safe order" in identity.message and "id-aks-kms-dev-kms-2" in identity.message
    for finding in judge(recorded("prod-unprotect")).findings:
        assert "its own reviewed update" in finding.message


def test_the_cli_prints_refusals_and_allowances_of_a_real_preview(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    preview = write(tmp_path, recorded("dev-permission-model-rbac"))
    code, out, err = run(capsys, preview)
    assert code == 1, err
    lines = out.splitlines()
    assert refused(out) == [
        f"REFUSED [vault-permission-model-change] {DEV_VAULT}",
        f"REFUSED [kms-grant-removed] {DEV_ACCESS_POLICY}",
    ]
    assert lines[lines.index(f"REFUSED [kms-grant-removed] {DEV_ACCESS_POLICY}") + 1] == "    at op=delete"
    overrides = tmp_path / "guard-overrides.yaml"
    overrides.write_text(
        yaml.safe_dump(
            {
                "transitions": [
                    {
                        "urn": DEV_VAULT,
                        "rule": "vault-permission-model-change",
                        "at": "properties.enableRbacAuthorization",
                        "reason": "step 2 of the move to RBAC: the role assignment exists since CHG-1",
                    },
                    {"urn": DEV_ACCESS_POLICY, "rule": "kms-grant-removed", "at": "op=delete", "reason": "step 3"},
                ]
            }
        )
    )
    code, out, _ = run(capsys, preview, "--overrides", overrides)
    assert code == 0, out
    assert f"ALLOWED [kms-grant-removed] {DEV_ACCESS_POLICY}" in out.splitlines()
    assert "    by override: step 3" in out.splitlines()
    assert "passed, with 2 changes allowed by override" in out


# --------------------------------------------------------------------------------------------------
# Which grants are the KMS identity's: tied with --show-sames, refused when they cannot be cleared
# --------------------------------------------------------------------------------------------------

STRANGER = "22222222-3333-4444-5555-666666666666"


def _grant_of_a_stranger(doc: dict[str, Any]) -> dict[str, Any]:
    """The recorded access policy delete, as if the policy granted someone other than the KMS identity."""
    doc = copy.deepcopy(doc)
    step_of(doc, DEV_ACCESS_POLICY)["oldState"]["inputs"]["policy"]["objectId"] = STRANGER
    step_of(doc, DEV_ACCESS_POLICY)["oldState"]["outputs"]["policy"]["objectId"] = STRANGER
    return doc


def test_a_grant_of_another_principal_is_cleared_when_the_preview_shows_the_unchanged_resources() -> None:
    result = judge(_grant_of_a_stranger(recorded("dev-permission-model-rbac")))
    assert verdicts(result) == [("vault-permission-model-change", DEV_VAULT, "properties.enableRbacAuthorization")]


def test_without_show_sames_no_grant_can_be_cleared() -> None:
    result = judge(_grant_of_a_stranger(recorded("dev-permission-model-rbac-without-sames")))
    assert ("kms-grant-removed", DEV_ACCESS_POLICY, "op=delete") in verdicts(result)
    [finding] = [f for f in result.findings if f.rule == "kms-grant-removed"]
    assert "--show-sames" in finding.message


def test_the_kms_grant_is_tied_to_the_identity_through_the_clusters_identity() -> None:
    doc = recorded("dev-permission-model-rbac")
    identity = step_of(doc, DEV_IDENTITY)
    # A preview's `same` step carries the id and outputs in its oldState only; its newState has neither.
    assert "outputs" not in identity["newState"] and "id" not in identity["newState"]
    principal = identity["oldState"]["outputs"]["principalId"]
    assert step_of(doc, DEV_ACCESS_POLICY)["oldState"]["inputs"]["policy"]["objectId"] == principal
    [finding] = [f for f in judge(doc).findings if f.rule == "kms-grant-removed"]
    assert f"held by the KMS identity (principal {principal})" in finding.message
    # The cluster no longer names that identity: the grant is no longer the KMS identity's.
    cluster = step_of(doc, DEV_CLUSTER)
    for state in (cluster["oldState"], cluster["newState"]):
        state["inputs"]["identity"]["userAssignedIdentities"] = ["/subscriptions/x/other-identity"]
        if "identity" in state.get("outputs", {}):
            state["outputs"]["identity"]["userAssignedIdentities"] = {"/subscriptions/x/other-identity": {}}
    result = judge(doc)
    assert [f.rule for f in result.findings if f.rule.startswith("kms-grant")] == ["kms-grant-removed"]
    assert "is not in the preview" in next(f for f in result.findings if f.rule == "kms-grant-removed").message


def test_a_grant_whose_principal_is_unknown_counts_as_the_kms_identitys() -> None:
    doc = _grant_of_a_stranger(recorded("dev-permission-model-rbac"))
    step_of(doc, DEV_ACCESS_POLICY)["oldState"]["inputs"]["policy"]["objectId"] = UNKNOWN
    step_of(doc, DEV_ACCESS_POLICY)["oldState"]["outputs"] = {}
    assert ("kms-grant-removed", DEV_ACCESS_POLICY, "op=delete") in verdicts(judge(doc))


def test_adding_a_grant_or_keeping_both_permissions_passes() -> None:
    doc = recorded("dev-access-policy-narrowed")
    keys = step_of(doc, DEV_ACCESS_POLICY)["newState"]["inputs"]["policy"]["permissions"]
    keys["keys"] = ["Decrypt", "encrypt", "get"]  # case differs, one more permission: nothing dropped
    assert judge(doc).findings == []
    keys["keys"] = UNKNOWN
    assert verdicts(judge(doc)) == [("kms-grant-narrowed", DEV_ACCESS_POLICY, "policy.permissions.keys")]


def test_a_grant_change_seen_only_in_the_detailed_diff_is_refused_and_overridable() -> None:
    doc = recorded("prod-role-change")
    step = step_of(doc, PROD_ROLE)
    assert step["detailedDiff"] == {"roleDefinitionId": {"kind": "update", "inputDiff": True}}
    del step["oldState"], step["newState"]
    # Without states its principal cannot be read, so it counts as the KMS identity's grant.
    result = judge(doc)
    assert verdicts(result) == [("kms-grant-moved", PROD_ROLE, "roleDefinitionId")]
    assert "its principal cannot be read" in result.findings[0].message
    override = guard.TransitionOverride(urn=PROD_ROLE, rule="kms-grant-moved", at="roleDefinitionId", reason="r")
    assert judge(doc, [override]).findings == []


# --------------------------------------------------------------------------------------------------
# The rotation gate
# --------------------------------------------------------------------------------------------------


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _record(key_id: str, *, complete: bool = True, doc: dict[str, Any] | None = None) -> dict[str, Any]:
    """A record as `kms-aks reencrypt` writes it after a verified pass on the cluster of `doc` (default: the
    recorded dev rotation): its name and API server host from the preview's old state, the key's ids computed
    here from the URL (the plugin's: sha256 hex of the URL; the metric label: "sha256:" + sha256 hex of that)."""
    outputs = next(
        s["oldState"]["outputs"]
        for s in (doc or recorded("dev-key-rotation"))["steps"]
        if s["urn"].endswith("ManagedCluster::aks-cluster")
    )
    label = "sha256:" + _sha256(_sha256(key_id))
    return {
        "keyId": key_id,
        "pluginKeyId": _sha256(key_id),
        "complete": complete,
        "finishedAt": "2026-11-30T12:00:00Z",
        "durationSeconds": 12.5,
        "cluster": {"name": outputs["name"], "context": "dev-admin", "server": f"https://{outputs['fqdn']}:443"},
        "secrets": {"listed": 10, "rewritten": 10, "deleted": 0, "failed": 0},
        "apiServer": {"metricsServed": True},
        "verification": {
            "status": "verified" if complete else "unverified",
            "reason": None if complete else "GET /metrics: HTTP 403 (this user may not read /metrics)",
            "keyIdHash": label,
            "apiServers": ["sha256:" + "a" * 64, "sha256:" + "b" * 64],
            "startedAt": "2026-11-30T11:59:00Z",
            "finishedAt": "2026-11-30T11:59:30Z",
            "secretsListed": 10,
            "secretsRead": 10,
            "readsByKey": {label: 10},
            "exact": True,
        },
    }


def _records(directory: Path, stack: str, *records: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{stack}.yaml").write_text(yaml.safe_dump({"stack": stack, "records": list(records)}))
    return directory


@pytest.mark.parametrize(
    ("name", "cluster", "stack"),
    [("dev-key-rotation", DEV_CLUSTER, "dev"), ("prod-key-rotation", PROD_CLUSTER, "prod")],
)
def test_the_gate_refuses_a_rotation_away_from_a_key_without_a_record(
    tmp_path: Path, name: str, cluster: str, stack: str
) -> None:
    doc = recorded(name)
    current, new = current_key(doc, cluster), new_key(doc, cluster)
    assert new.endswith("/" + NEW_VERSION) and current != new
    rotation = guard.KeyRotationOverride(urn=cluster, newKeyId=new, reason="planned")
    result = judge(doc, [rotation], records=tmp_path / "rotations")
    assert verdicts(result) == [(GATE, cluster, KEY_ID)]
    [gate] = result.findings
    assert current in gate.message
    # The command names the current key: the stack file may pin the next one already (this very change).
    assert f"kms-aks reencrypt --stack {stack} --key-id {current} --context" in gate.message
    assert "docs/rotation.md" in gate.message and str(tmp_path / "rotations" / f"{stack}.yaml") in gate.message

    # Found around the working directory (as CI and the sandbox's copy of the project run it), the file is named
    # as the project's `rotations/<stack>.yaml`: the one to commit, never a copy's absolute path.
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "Pulumi.yaml").write_text("name: kms-aks\nruntime: python\n")
    found = guard.check_preview(guard.Preview.model_validate(doc), [rotation], guard.Records(start=copy))
    [gate] = found.findings
    assert f"no verified re-encryption record of this cluster in rotations/{stack}.yaml:" in gate.message
    assert str(copy) not in gate.message

    # A verified record of the current key on this cluster: the rotation override alone is enough.
    records = _records(tmp_path / "rotations", stack, _record(current, doc=doc))
    passed = judge(doc, [rotation], records=records)
    assert passed.findings == [] and [f.rule for f, _ in passed.allowed] == ["kms-key-change"]
    # The record alone is not the rotation override.
    assert verdicts(judge(doc, [], records=records)) == [("kms-key-change", cluster, KEY_ID)]


def test_an_incomplete_record_or_one_for_another_key_does_not_open_the_gate(tmp_path: Path) -> None:
    doc = recorded("dev-key-rotation")
    current, new = current_key(doc, DEV_CLUSTER), new_key(doc, DEV_CLUSTER)
    rotation = guard.KeyRotationOverride(urn=DEV_CLUSTER, newKeyId=new, reason="planned")
    for records in (
        _record(current, complete=False),
        _record(new),
        _record(current.rsplit("/", 1)[0] + "/" + "f" * 32),
    ):
        directory = _records(tmp_path / "rotations", "dev", records)
        assert verdicts(judge(doc, [rotation], records=directory)) == [(GATE, DEV_CLUSTER, KEY_ID)]


def _edited(record: dict[str, Any], **changes: Any) -> dict[str, Any]:
    edited = copy.deepcopy(record)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        target = edited
        for key in parents:
            target = target[key]
        target[last] = value
    return edited


def test_the_gate_trusts_a_record_only_with_its_evidence_for_this_key_and_this_cluster(tmp_path: Path) -> None:
    doc = recorded("dev-key-rotation")
    current, new = current_key(doc, DEV_CLUSTER), new_key(doc, DEV_CLUSTER)
    rotation = guard.KeyRotationOverride(urn=DEV_CLUSTER, newKeyId=new, reason="planned")
    good = _record(current)
    assert judge(doc, [rotation], records=_records(tmp_path / "ok", "dev", good)).findings == []
    older = current.rsplit("/", 1)[0] + "/" + "e" * 32
    older_label = "sha256:" + _sha256(_sha256(older))
    refused = {
        # A record of another key, its keyId edited to the current one: the ids no longer match the URL.
        "edited key id": (_edited(_record(older), keyId=current), "not the plugin key id of its keyId"),
        "edited key and plugin id": (
            _edited(_record(older), keyId=current, pluginKeyId=_sha256(current)),
            "not " + "sha256:" + _sha256(_sha256(current)),
        ),
        "no evidence": ({k: v for k, v in good.items() if k != "verification"}, "carries no evidence"),
        "unverified": (_record(current, complete=False), "unverified: GET /metrics: HTTP 403"),
        "reads under another key": (
            _edited(good, verification__readsByKey={**good["verification"]["readsByKey"], older_label: 2}),
            "2 Secret(s) read under other keys",
        ),
        "counts that do not add up": (_edited(good, verification__secretsRead=9), "does not add up"),
        "another cluster's name": (_edited(good, cluster__name="aks-kms-prod"), "about cluster aks-kms-prod"),
        "another API server": (
            _edited(good, cluster__server="https://aks-kms-dev-00000000.hcp.westeurope.azmk8s.io:443"),
            "about the API server aks-kms-dev-00000000",
        ),
        "no cluster name (an older record)": (_edited(good, cluster__name=None), "about cluster (unnamed)"),
    }
    for case, (record, why) in refused.items():
        result = judge(doc, [rotation], records=_records(tmp_path / case.replace(" ", "-"), "dev", record))
        assert verdicts(result) == [(GATE, DEV_CLUSTER, KEY_ID)], case
        assert why in result.findings[0].message, (case, result.findings[0].message)


def test_the_gate_refuses_a_record_when_the_preview_does_not_show_the_cluster(tmp_path: Path) -> None:
    doc = recorded("dev-key-rotation")
    current, new = current_key(doc, DEV_CLUSTER), new_key(doc, DEV_CLUSTER)
    rotation = guard.KeyRotationOverride(urn=DEV_CLUSTER, newKeyId=new, reason="planned")
    records = _records(tmp_path / "rotations", "dev", _record(current))
    for key, value in (("fqdn", "[secret]"), ("fqdn", UNKNOWN), ("name", None)):
        blind = copy.deepcopy(doc)
        for step in blind["steps"]:
            if step["urn"] == DEV_CLUSTER and step.get("oldState"):
                step["oldState"]["outputs"][key] = value
        result = judge(blind, [rotation], records=records)
        assert verdicts(result) == [(GATE, DEV_CLUSTER, KEY_ID)], (key, value)
        assert "cannot be seen" in result.findings[0].message


def test_the_waiver_excuses_exactly_that_cluster_and_current_key(tmp_path: Path) -> None:
    doc = recorded("dev-key-rotation")
    current, new = current_key(doc, DEV_CLUSTER), new_key(doc, DEV_CLUSTER)
    rotation = guard.KeyRotationOverride(urn=DEV_CLUSTER, newKeyId=new, reason="planned")
    waiver = guard.ReencryptionWaiver(urn=DEV_CLUSTER, currentKeyId=current, reason="the cluster's first key")
    assert judge(doc, [rotation, waiver]).findings == []
    # The waiver is not the rotation override.
    assert verdicts(judge(doc, [waiver])) == [("kms-key-change", DEV_CLUSTER, KEY_ID)]
    # Another current key, or another cluster: the gate stays shut and the waiver is stale.
    other_key = guard.ReencryptionWaiver(urn=DEV_CLUSTER, currentKeyId=new, reason="wrong")
    other_cluster = guard.ReencryptionWaiver(urn=PROD_CLUSTER, currentKeyId=current, reason="wrong")
    for wrong in (other_key, other_cluster):
        result = judge(doc, [rotation, wrong])
        assert verdicts(result) == [(GATE, DEV_CLUSTER, KEY_ID)]
        assert [o for o, _ in result.stale_overrides] == [wrong]


def test_the_records_are_found_from_the_project_root(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = recorded("dev-key-rotation")
    preview = write(tmp_path, doc)
    flag = f"{DEV_CLUSTER}={new_key(doc, DEV_CLUSTER)}"
    project = tmp_path / "project"
    (project / "deep" / "er").mkdir(parents=True)
    (project / "Pulumi.yaml").write_text("name: kms-aks\nruntime: python\n")
    monkeypatch.chdir(project / "deep" / "er")
    code, out, _ = run(capsys, preview, "--allow-key-rotation", flag)
    assert code == 1 and refused(out) == [f"REFUSED [{GATE}] {DEV_CLUSTER}"]
    # Named as the project's file (the one to commit), found from the project root above the working directory.
    assert "no verified re-encryption record of this cluster in rotations/dev.yaml:" in out.replace("\n    ", " ")
    _records(project / "rotations", "dev", _record(current_key(doc, DEV_CLUSTER)))
    code, out, _ = run(capsys, preview, "--allow-key-rotation", flag)
    assert code == 0, out
    # --records names the folder explicitly: an empty one has no record.
    code, out, _ = run(capsys, preview, "--allow-key-rotation", flag, "--records", tmp_path / "empty")
    assert code == 1


def test_without_a_project_the_gate_is_bad_input_only_when_it_is_needed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, write(tmp_path, recorded("dev-key-rotation")))
    assert code == 2 and "no Pulumi.yaml" in err and "--records" in err and out == ""
    code, out, _ = run(capsys, write(tmp_path, recorded("dev-node-count")))
    assert code == 0, out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("stack: dev\nrecords: [unclosed\n", "cannot be read as YAML"),
        ("stack: dev\nrecords:\n  - keyId: x\n", "records.0"),
        ("stack: prod\nrecords: []\n", "holds records of stack 'prod'"),
        ("stack: dev\nsurprise: 1\n", "surprise"),
    ],
)
def test_a_malformed_records_file_is_bad_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str, message: str
) -> None:
    (tmp_path / "rotations").mkdir()
    (tmp_path / "rotations" / "dev.yaml").write_text(content)
    code, out, err = run(capsys, write(tmp_path, recorded("dev-key-rotation")), "--records", tmp_path / "rotations")
    assert code == 2
    assert message in err and "Traceback" not in err
    assert out == ""


# --------------------------------------------------------------------------------------------------
# Every token form: judged as the plain form; an unknown form refused
# --------------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"azure-native:([a-z][a-zA-Z0-9]*):([A-Z][A-Za-z0-9]*)")
FORMS: dict[str, Callable[[re.Match[str]], str]] = {
    "plain": lambda m: m[0],
    "versioned-module": lambda m: f"azure-native:{m[1]}/v20240801:{m[2]}",
    "parameterized": lambda m: f"azure-native_{m[1]}_v20250901:{m[1]}/v20250901:{m[2]}",
    "parameterized-plain-module": lambda m: f"azure-native_{m[1]}_v20250901:{m[1]}:{m[2]}",
}


def in_form(value: Any, form: str) -> Any:
    """Every azure-native type token in the preview (URNs, parents, types, aliases) rewritten to `form`."""
    if isinstance(value, str):
        return _TOKEN.sub(FORMS[form], value)
    if isinstance(value, dict):
        return {in_form(k, form): in_form(v, form) for k, v in value.items()}
    if isinstance(value, list):
        return [in_form(v, form) for v in value]
    return value


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_rule_holds_on_each_token_form(name: str, form: str) -> None:
    doc = in_form(recorded(name), form)
    if form != "plain":
        assert _TOKEN.search(json.dumps(doc["steps"])) is None, "every token rewritten"
    expected = sorted((rule, in_form(urn, form), path) for rule, urn, path in EXPECTED[name])
    assert verdicts(judge(doc)) == expected
    # And each override, naming the URN in that form, allows it as on the plain form.
    entries = overrides_for(doc, [(r, u, p) for r, u, p in expected])
    left = [(r, u, p) for r, u, p in expected if not (r in {"kms-key-change", GATE} or _excusable(r, u, p))]
    assert verdicts(judge(doc, entries)) == sorted(left)


UNKNOWN_FORM = "azure-native:containerservice/latest:ManagedCluster"


@pytest.mark.parametrize("name", ["dev-no-change", "dev-key-rotation", "prod-unprotect", "dev-delete-all"])
def test_an_unknown_form_of_each_kms_type_is_refused_never_skipped(name: str) -> None:
    doc = in_form(recorded(name), "plain")
    text = json.dumps(doc)
    for plain in (CLUSTER_T, VAULT_T, KEY_T, IDENTITY_T, ACCESS_POLICY_T, ROLE_T):
        module, resource = plain.split(":")[1:]
        text = text.replace(plain, f"azure-native:{module}/latest:{resource}")  # no API version azure-native has
    doc = json.loads(text)
    result = judge(doc)
    unrecognised = {f.urn for f in result.findings if f.rule == "unrecognised-type" and f.path == "urn"}
    present = {s["urn"] for s in doc["steps"] if re.search(r"azure-native:[a-z]+/latest:", s["urn"])}
    assert present and unrecognised == present
    # The ordinary rules still apply to them, judged as the type they name.
    ordinary = sorted(
        (rule, urn if urn == DEV_GROUP else re.sub(r"azure-native:([a-z]+):", r"azure-native:\1/latest:", urn), path)
        for rule, urn, path in EXPECTED[name]
    )
    assert sorted(v for v in verdicts(result) if v[0] != "unrecognised-type") == ordinary
    # No override can excuse it.
    with pytest.raises(ValueError, match="cannot be overridden"):
        guard.TransitionOverride(urn=sorted(present)[0], rule="unrecognised-type", at="urn", reason="please")


def test_an_unknown_form_in_a_state_or_alias_is_refused() -> None:
    doc = recorded("dev-node-count")
    step = step_of(doc, DEV_CLUSTER)
    step["newState"]["type"] = UNKNOWN_FORM
    assert ("unrecognised-type", DEV_CLUSTER, "newState.type") in verdicts(judge(doc))
    doc = recorded("dev-node-count")
    step_of(doc, DEV_VAULT)["newState"]["aliases"] = [
        DEV_VAULT.replace("azure-native:keyvault:Vault", "azure-native:keyvault/v2023:Vault")
    ]
    assert verdicts(judge(doc)) == [("unrecognised-type", DEV_VAULT, "newState.aliases[0]")]


def test_an_alias_from_another_api_version_of_the_same_type_passes() -> None:
    doc = recorded("dev-node-count")
    step_of(doc, DEV_CLUSTER)["newState"]["aliases"] = [
        DEV_CLUSTER.replace(CLUSTER_T, "azure-native:containerservice/v20240801:ManagedCluster")
    ]
    assert judge(doc).findings == []


def test_a_kms_type_whose_old_and_new_types_differ_is_refused() -> None:
    doc = recorded("dev-node-count")
    step_of(doc, DEV_VAULT)["oldState"]["type"] = "azure-native:keyvault:ManagedHsm"
    assert verdicts(judge(doc)) == [("type-change", DEV_VAULT, "oldState.type")]
    doc = recorded("dev-node-count")
    step_of(doc, DEV_KEY)["newState"]["aliases"] = [DEV_KEY.replace(KEY_T, "azure-native:keyvault:Secret")]
    assert verdicts(judge(doc)) == [("type-change", DEV_KEY, "newState.aliases[0]")]


def test_a_step_level_type_is_read_and_must_agree(tmp_path: Path) -> None:
    doc = recorded("dev-node-count")
    step_of(doc, DEV_KEY)["type"] = "azure-native:resources:ResourceGroup"
    assert verdicts(judge(doc)) == [("type-change", DEV_KEY, "type")]


# --------------------------------------------------------------------------------------------------
# Variations of real previews: masked values, missing states, unknown ops
# --------------------------------------------------------------------------------------------------


def _variant(name: str, mutate: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    doc = copy.deepcopy(recorded(name))
    mutate(doc)
    return doc


def set_op(doc: dict[str, Any], step: dict[str, Any], op: str) -> None:
    """Give a step another op, and count it in the changeSummary as the CLI would (the guard compares them)."""
    summary = doc["changeSummary"]
    summary[step["op"]] -= 1
    summary[op] = summary.get(op, 0) + 1
    step["op"] = op


def _kms_block(step: dict[str, Any], state: str) -> dict[str, Any]:
    return step[state]["inputs"]["securityProfile"]["azureKeyVaultKms"]


def test_explicit_public_network_access_equals_the_default() -> None:
    def mutate(doc: dict[str, Any]) -> None:
        _kms_block(step_of(doc, DEV_CLUSTER), "oldState").pop("keyVaultNetworkAccess", None)
        _kms_block(step_of(doc, DEV_CLUSTER), "newState")["keyVaultNetworkAccess"] = "Public"

    assert judge(_variant("dev-node-count", mutate)).findings == []


def test_network_access_or_whole_kms_block_unknown_is_refused() -> None:
    def network(doc: dict[str, Any]) -> None:
        _kms_block(step_of(doc, DEV_CLUSTER), "newState")["keyVaultNetworkAccess"] = UNKNOWN

    assert verdicts(judge(_variant("dev-node-count", network))) == [("kms-network-access-change", DEV_CLUSTER, NETWORK)]

    def block(doc: dict[str, Any]) -> None:
        step_of(doc, DEV_CLUSTER)["newState"]["inputs"]["securityProfile"]["azureKeyVaultKms"] = UNKNOWN

    rules = {f.rule for f in judge(_variant("dev-node-count", block)).findings}
    assert {"kms-key-unknown", "kms-disabled", "kms-network-access-change"} <= rules


def test_enabling_kms_in_place_is_a_key_change_the_rotation_override_allows_without_the_gate() -> None:
    doc = recorded("dev-key-rotation")
    new = new_key(doc, DEV_CLUSTER)
    # KMS off before: neither the inputs nor the refreshed outputs hold a key (outputs with a key: class 8 below).
    del step_of(doc, DEV_CLUSTER)["oldState"]["inputs"]["securityProfile"]["azureKeyVaultKms"]
    del step_of(doc, DEV_CLUSTER)["oldState"]["outputs"]["securityProfile"]["azureKeyVaultKms"]
    result = judge(doc)
    assert verdicts(result) == [("kms-key-change", DEV_CLUSTER, KEY_ID)]
    assert "KMS enabled in place" in result.findings[0].message
    # No current key, so nothing can be stored under an older one: no gate.
    assert judge(doc, [guard.KeyRotationOverride(urn=DEV_CLUSTER, newKeyId=new, reason="r")]).findings == []


def test_identity_ids_compare_case_insensitively_and_map_equals_list() -> None:
    def mutate(doc: dict[str, Any]) -> None:
        step = step_of(doc, DEV_CLUSTER)
        ids = step["newState"]["inputs"]["identity"]["userAssignedIdentities"]
        step["newState"]["inputs"]["identity"]["userAssignedIdentities"] = [i.upper() for i in ids]
        step["newState"]["inputs"]["identity"]["type"] = "userAssigned"
        step["oldState"]["inputs"] = {}  # outputs only: the map form

    assert judge(_variant("dev-node-count", mutate)).findings == []


def test_a_second_identity_added_is_refused() -> None:
    def mutate(doc: dict[str, Any]) -> None:
        ids = step_of(doc, DEV_CLUSTER)["newState"]["inputs"]["identity"]["userAssignedIdentities"]
        ids.append(ids[0] + "-2")

    assert verdicts(judge(_variant("dev-node-count", mutate))) == [("identity-change", DEV_CLUSTER, "identity")]


def test_a_masked_key_id_falls_back_to_the_detailed_diff_and_cannot_be_overridden() -> None:
    doc = recorded("dev-key-rotation")
    new = new_key(doc, DEV_CLUSTER)

    def mask(doc: dict[str, Any]) -> None:
        step = step_of(doc, DEV_CLUSTER)
        for state in ("oldState", "newState"):
            _kms_block(step, state)["keyId"] = "[secret]"

    masked = _variant("dev-key-rotation", mask)
    result = judge(masked, [guard.KeyRotationOverride(urn=DEV_CLUSTER, newKeyId=new, reason="r")])
    assert [(f.rule, f.path) for f in result.findings] == [("kms-key-change", KEY_ID)]
    assert "masked" in result.findings[0].message


def test_states_missing_fall_back_to_the_detailed_diff_then_diff_reasons_then_refuse() -> None:
    def strip(doc: dict[str, Any]) -> None:
        step = step_of(doc, DEV_CLUSTER)
        del step["oldState"], step["newState"]

    doc = _variant("dev-key-rotation", strip)
    assert KEY_ID in step_of(doc, DEV_CLUSTER)["detailedDiff"]
    assert [(f.rule, f.path) for f in judge(doc).findings] == [("kms-key-change", KEY_ID)]
    del step_of(doc, DEV_CLUSTER)["detailedDiff"]
    step_of(doc, DEV_CLUSTER)["diffReasons"] = ["identity"]
    assert verdicts(judge(doc)) == [("identity-change", DEV_CLUSTER, "identity")]
    del step_of(doc, DEV_CLUSTER)["diffReasons"]
    assert verdicts(judge(doc)) == [("unverifiable-update", DEV_CLUSTER, "(whole resource)")]


def test_a_harmless_detailed_diff_without_states_passes() -> None:
    def strip(doc: dict[str, Any]) -> None:
        step = step_of(doc, DEV_CLUSTER)
        del step["oldState"], step["newState"]

    doc = _variant("dev-node-count", strip)
    assert set(step_of(doc, DEV_CLUSTER)["detailedDiff"]) == {"agentPoolProfiles[0].count"}
    assert judge(doc).findings == []


def test_a_vault_change_without_states_is_found_from_the_detailed_diff() -> None:
    def strip(doc: dict[str, Any]) -> None:
        step = step_of(doc, DEV_VAULT)
        del step["oldState"], step["newState"]

    result = judge(_variant("dev-vault-tenant", strip))
    assert [(f.rule, f.path) for f in result.findings] == [("vault-tenant-change", "properties.tenantId")]


@pytest.mark.parametrize("urn", [DEV_KEY, DEV_ACCESS_POLICY, DEV_IDENTITY])
def test_an_unknown_op_on_a_kms_type_is_refused(urn: str) -> None:
    def mutate(doc: dict[str, Any]) -> None:
        set_op(doc, step_of(doc, urn), "discard-replaced")

    assert verdicts(judge(_variant("dev-no-change", mutate))) == [("unrecognised-op", urn, "op=discard-replaced")]


def test_updating_an_unguarded_resource_passes() -> None:
    doc = recorded("dev-no-change")
    [action_group] = [s for s in doc["steps"] if "ActionGroup" in s["urn"]]
    set_op(doc, action_group, "update")
    action_group["newState"]["inputs"]["groupShortName"] = "renamed"
    assert judge(doc).findings == []


def test_a_key_settings_change_is_found_from_the_detailed_diff_alone() -> None:
    def strip(doc: dict[str, Any]) -> None:
        step = step_of(doc, PROD_KEY)
        del step["oldState"], step["newState"]

    paths = {f.path for f in judge(_variant("prod-rotation-policy", strip)).findings}
    assert paths and all(p.startswith("properties.rotationPolicy") for p in paths)


def test_key_create_time_messages_name_the_data_plane_path() -> None:
    [expiry] = judge(recorded("dev-key-expiry")).findings
    assert "KeyCreationParametersDidNotMatchExistingKey" in expiry.message
    assert (
        "az keyvault key set-attributes --vault-name kv-kmsaks-dev-01 --name aks-kms-dev --expires 2030-01-01T00:00:00Z"
        in expiry.message
    )
    [policy] = judge(recorded("prod-rotation-policy")).findings
    assert "az keyvault key rotation-policy update --vault-name kv-kmsaks-prod-01 --name aks-kms-prod" in policy.message
    [kty] = judge(recorded("dev-key-type")).findings
    assert "key type RSA -> RSA-HSM is not applied" in kty.message


def test_a_key_rotation_override_does_not_excuse_a_key_settings_change() -> None:
    doc = recorded("dev-key-expiry")
    override = guard.KeyRotationOverride(
        urn=DEV_CLUSTER, newKeyId=new_key(recorded("dev-key-rotation"), DEV_CLUSTER), reason="r"
    )
    result = judge(doc, [override])
    assert verdicts(result) == [("key-create-time-change", DEV_KEY, "properties.attributes.expires")]
    assert len(result.stale_overrides) == 1


# --------------------------------------------------------------------------------------------------
# The overrides file: each entry one change, a reason, nothing blanket
# --------------------------------------------------------------------------------------------------


def _overrides(tmp_path: Path, document: Any, suffix: str = ".yaml") -> Path:
    path = tmp_path / f"guard-overrides{suffix}"
    path.write_text(json.dumps(document) if suffix == ".json" else yaml.safe_dump(document))
    return path


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_rotation_with_its_override_and_waiver_passes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, suffix: str
) -> None:
    doc = recorded("prod-key-rotation")
    current, new = current_key(doc, PROD_CLUSTER), new_key(doc, PROD_CLUSTER)
    overrides = _overrides(
        tmp_path,
        {
            "keyRotations": [{"urn": PROD_CLUSTER, "newKeyId": new, "reason": "Quarterly rotation, CHG-1234"}],
            "reencryptionWaivers": [{"urn": PROD_CLUSTER, "currentKeyId": current, "reason": "first rotation"}],
        },
        suffix,
    )
    code, out, err = run(capsys, write(tmp_path, doc), "--overrides", overrides, "--records", tmp_path)
    assert code == 0, out + err
    lines = out.splitlines()
    assert f"ALLOWED [kms-key-change] {PROD_CLUSTER}" in lines and f"ALLOWED [{GATE}] {PROD_CLUSTER}" in lines
    assert f"    at {KEY_ID}: new key id {new}" in lines
    assert f"    at {KEY_ID}: leaving current key {current} without a record" in lines
    assert "Re-encrypt every secret after `pulumi up`" in out


def test_the_same_rotation_override_in_file_and_flag_is_not_stale(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = recorded("dev-key-rotation")
    new = new_key(doc, DEV_CLUSTER)
    overrides = _overrides(tmp_path, {"keyRotations": [{"urn": DEV_CLUSTER, "newKeyId": new, "reason": "r"}]})
    _records(tmp_path / "r", "dev", _record(current_key(doc, DEV_CLUSTER)))
    code, out, _ = run(
        capsys,
        write(tmp_path, doc),
        "--overrides",
        overrides,
        "--allow-key-rotation",
        f"{DEV_CLUSTER}={new}",
        "--records",
        tmp_path / "r",
    )
    assert code == 0, out
    assert "STALE" not in out and out.count("ALLOWED ") == 1


def test_a_stale_override_on_a_clean_plan_is_reported_but_passes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    overrides = _overrides(
        tmp_path,
        {
            "transitions": [
                {"urn": DEV_VAULT, "rule": "vault-tenant-change", "at": "properties.tenantId", "reason": "r"}
            ]
        },
    )
    code, out, _ = run(capsys, write(tmp_path, recorded("dev-node-count")), "--overrides", overrides)
    assert code == 0, out
    assert f"STALE OVERRIDE {DEV_VAULT}" in out.splitlines()
    assert "transitions: vault-tenant-change at properties.tenantId matched nothing" in out


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"keyRotations": [{"urn": DEV_CLUSTER, "newKeyId": "https://v.vault.azure.net/keys/k", "reason": "r"}]},
            "not a versioned",
        ),
        (
            {"keyRotations": [{"urn": DEV_CLUSTER, "newKeyId": f"https://v.vault.azure.net/keys/k/{NEW_VERSION}"}]},
            "reason",
        ),
        (
            {
                "keyRotations": [
                    {"urn": DEV_VAULT, "newKeyId": f"https://v.vault.azure.net/keys/k/{NEW_VERSION}", "reason": "r"}
                ]
            },
            "only a ManagedCluster",
        ),
        (
            {
                "reencryptionWaivers": [
                    {
                        "urn": DEV_CLUSTER,
                        "currentKeyId": f"https://v.vault.azure.net/keys/k/{NEW_VERSION}",
                        "reason": "  ",
                    }
                ]
            },
            "reason",
        ),
        (
            {
                "reencryptionWaivers": [
                    {"urn": "aks", "currentKeyId": f"https://v.vault.azure.net/keys/k/{NEW_VERSION}", "reason": "r"}
                ]
            },
            "not a Pulumi URN",
        ),
        (
            {"transitions": [{"urn": DEV_CLUSTER, "rule": "kms-disabled", "at": ENABLED, "reason": "r"}]},
            "cannot be overridden",
        ),
        (
            {"transitions": [{"urn": DEV_CLUSTER, "rule": "kms-network-access-change", "at": NETWORK, "reason": "r"}]},
            "cannot be overridden",
        ),
        (
            {"transitions": [{"urn": DEV_CLUSTER, "rule": "destructive-op", "at": "op=delete", "reason": "r"}]},
            "only for deleting a user-assigned identity",
        ),
        (
            {"transitions": [{"urn": DEV_IDENTITY, "rule": "destructive-op", "at": "op=replace", "reason": "r"}]},
            "only for deleting a user-assigned identity",
        ),
        ({"transitions": [{"urn": DEV_VAULT, "rule": "vault-tenant-change", "reason": "r"}]}, "at"),
        ({"transitions": [{"urn": DEV_VAULT, "rule": "vault-tenant-change", "at": "properties.tenantId"}]}, "reason"),
        (
            {"transitions": [{"urn": DEV_VAULT, "rule": "vault-tenant-change", "at": "x", "reason": "r", "all": True}]},
            "all",
        ),
        ({"allowAll": True}, "allowAll"),
        ({"keyRotations": [], "skipChecks": ["kms-disabled"]}, "skipChecks"),
    ],
)
def test_a_malformed_override_entry_is_bad_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, document: dict[str, Any], message: str
) -> None:
    code, out, err = run(
        capsys, write(tmp_path, recorded("dev-key-rotation")), "--overrides", _overrides(tmp_path, document)
    )
    assert code == 2
    assert message in err and "overrides file" in err and "Traceback" not in err
    assert out == ""


@pytest.mark.parametrize("content", ["- urn: x\n", "keyRotations: [unclosed\n"])
def test_an_override_file_that_is_not_the_mapping_is_bad_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str
) -> None:
    path = tmp_path / "guard-overrides.yaml"
    path.write_text(content)
    code, out, err = run(capsys, write(tmp_path, recorded("dev-kms-disabled")), "--overrides", path)
    assert code == 2 and "overrides file" in err and out == ""


@pytest.mark.parametrize(
    "flag", ["no-equals-sign", f"{DEV_CLUSTER}=", f"=https://v.vault.azure.net/keys/k/{NEW_VERSION}"]
)
def test_a_malformed_flag_is_bad_input(capsys: pytest.CaptureFixture[str], tmp_path: Path, flag: str) -> None:
    code, _, err = run(capsys, write(tmp_path, recorded("dev-key-rotation")), "--allow-key-rotation", flag)
    assert code == 2
    assert "--allow-key-rotation" in err


# --------------------------------------------------------------------------------------------------
# Bad input: clear message, exit 2, never a pass
# --------------------------------------------------------------------------------------------------


def test_a_failed_real_preview_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, RECORDED / "dev-program-error.json")
    assert code == 2
    assert "the preview reported errors" in err and "kms-aks:kmsKey.size" in err
    assert "passed" not in out + err


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bad-not-json.json", "is not JSON"),
        ("bad-wrong-shape.json", "steps: Field required"),
        ("bad-empty-steps.json", "no steps at all"),
        ("bad-step-without-op.json", "steps.0.op: Field required"),
    ],
)
def test_bad_input_fixture(capsys: pytest.CaptureFixture[str], name: str, message: str) -> None:
    code, out, err = run(capsys, BAD_INPUT / name)
    assert code == 2
    assert message in err
    assert "passed" not in out + err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("[]", "holds a JSON list"),
        ('"steps"', "holds a JSON str"),
        ('{"steps": {"op": "same"}}', "steps: Input should be a valid list"),
        ('{"steps": [{"op": "update", "urn": "aks"}]}', "has no type and its URN does not name one"),
        (
            json.dumps({"steps": [{"op": "update", "urn": DEV_CLUSTER, "detailedDiff": {"x": {"kind": "moved"}}}]}),
            "detailedDiff.x.kind",
        ),
    ],
)
def test_bad_input_content(capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str, message: str) -> None:
    code, out, err = run(capsys, write(tmp_path, content))
    assert code == 2
    assert message in err
    assert out == ""


def test_missing_or_binary_file_is_bad_input(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, tmp_path / "nope.json")
    assert code == 2 and "cannot read" in err
    path = tmp_path / "preview.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    code, _, err = run(capsys, path)
    assert code == 2 and "cannot read" in err


# --------------------------------------------------------------------------------------------------
# The CLI as CI runs it
# --------------------------------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, as CI calls it: the exit status must reach the shell."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "kms-aks"), "guard", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=TERMINAL,
        check=False,
        cwd=ROOT,
    )


def test_cli_exit_codes_and_output() -> None:
    clean = _cli(str(RECORDED / "dev-node-count.json"))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    refusal = _cli(str(RECORDED / "dev-kms-network-private.json"))
    assert refusal.returncode == 1
    assert f"REFUSED [kms-network-access-change] {DEV_CLUSTER}" in refusal.stdout.splitlines()
    assert f"    at {NETWORK}" in refusal.stdout.splitlines()
    bad = _cli(str(BAD_INPUT / "bad-not-json.json"))
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr and "is not JSON" in bad.stderr


def test_cli_reads_stdin(kms_aks: KmsAks) -> None:
    result = kms_aks("guard", "-", stdin=(RECORDED / "dev-kms-disabled.json").read_text())
    assert result.returncode == 1
    assert f"REFUSED [kms-disabled] {DEV_CLUSTER}" in result.stdout.splitlines()
    assert kms_aks("guard", "-", stdin="").returncode == 2


def test_cli_without_arguments_is_a_usage_error(kms_aks: KmsAks) -> None:
    result = kms_aks("guard")
    assert result.returncode == 2
    assert "usage: kms-aks guard" in result.stderr


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("urn", "expected"),
    [
        (DEV_CLUSTER, CLUSTER_T),
        ("urn:pulumi:dev::kms-aks::azure-native:keyvault:Key::k", KEY_T),
        ("urn:pulumi:dev::kms-aks::a:b:C$d:e:F$azure-native:keyvault:Vault::v::x", VAULT_T),
        ("aks", None),
        ("urn:pulumi:dev::kms-aks", None),
    ],
)
def test_type_from_urn(urn: str, expected: str | None) -> None:
    assert guard.type_from_urn(urn) == expected


def test_split_property_path() -> None:
    assert guard.split_property_path(KEY_ID) == ("securityProfile", "azureKeyVaultKms", "keyId")
    assert guard.split_property_path("identity.userAssignedIdentities[0]") == (
        "identity",
        "userAssignedIdentities",
        "0",
    )
    assert guard.split_property_path('tags["a.b"].c') == ("tags", "a.b", "c")


def test_records_are_those_of_the_project_around_the_working_directory(tmp_path: Path) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "a" / "b").mkdir(parents=True)
    elsewhere.mkdir()
    (project / "Pulumi.yaml").write_text("name: x\n")
    assert guard.Records(start=project / "a" / "b").path_for("dev") == project / "rotations" / "dev.yaml"
    with pytest.raises(guard.BadInput, match=r"no Pulumi\.yaml is in"):
        guard.Records(start=elsewhere).path_for("dev")
