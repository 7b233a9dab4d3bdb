"""Planned key rotation: the version pin in config, rotation of a bring-your-own key, the plan guard letting exactly
that change through, and `kms-aks rotate-check` judging each key's expiry against its rotation."""

from __future__ import annotations

import dataclasses
import subprocess
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from kms_aks.config.stack import parse_stack_config, read_project_config
from kms_aks_tools.cli.exits import EXIT_BAD_INPUT, EXIT_BLOCKED, EXIT_OK
from kms_aks_tools.guard import KeyRotationOverride, Preview, ReencryptionWaiver, check_preview
from kms_aks_tools.offline.mock_engine import ROOT
from kms_aks_tools.offline.recording import RecordedResource, RecordedStack
from kms_aks_tools.offline.rotation import (
    RotationCheckError,
    RotationReport,
    check_rotation,
    duration_days,
    run_rotation_check,
)
from kms_aks_tools.project.stack_file import load_stack_file
from tests.cli import UNKNOWN_STACK, project_stacks
from tests.conftest import KmsAks
from tests.engine import run_stack
from tests.graph import CLUSTER, KEY, ROLE_ASSIGNMENT

STACKS = Path(__file__).parent / "stacks"
EXPIRES_EARLY = str(STACKS / "Pulumi.rotation-expires-early.yaml")
KEY_ID_PATH = "securityProfile.azureKeyVaultKms.keyId"
AS_OF = date(2026, 6, 1)

BYOK_VAULT_ID = (
    "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-keys/providers/Microsoft.KeyVault"
    "/vaults/kv-team-keys"
)
BYOK_V1 = "https://kv-team-keys.vault.azure.net/keys/aks-etcd/0123456789abcdef0123456789abcdef"
BYOK_V2 = "https://kv-team-keys.vault.azure.net/keys/aks-etcd/fedcba9876543210fedcba9876543210"
PROD_KEY = {"name": "aks-kms-prod", "type": "RSA-HSM", "size": 3072}
PROD_ROTATION = {"rotateAfterDays": 335, "expireAfterDays": 395, "notifyBeforeExpiryDays": 30}


def _byok(key_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "kms-aks:keyVault": None,
        "kms-aks:kmsKey": None,
        "kms-aks:existingKey": {"keyId": key_id, "keyVaultResourceId": BYOK_VAULT_ID, "permissionModel": "rbac"},
        **extra,
    }


def _run(stack: str, config: dict[str, Any] | None = None, *, preview: bool = False) -> RecordedStack:
    recorded = run_stack(stack, config=config, preview=preview)
    assert recorded.error is None, recorded.error
    return recorded


def _report(stack: str, config: dict[str, Any] | None = None, *, as_of: date = AS_OF) -> RotationReport:
    """rotate-check's judgement of `stack` with config overrides, on the recorded preview."""
    recorded = _run(stack, config, preview=True)
    raw = load_stack_file(stack)
    for key, value in (config or {}).items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return check_rotation(recorded, parse_stack_config(read_project_config(raw)), as_of=as_of)


def _update_step(old: RecordedStack, new: RecordedStack) -> dict[str, Any]:
    """The cluster's step in a `pulumi preview --json` that moves `old` to `new`."""
    before, after = old.one(CLUSTER), new.one(CLUSTER)
    assert before.urn == after.urn
    return {
        "op": "update",
        "urn": after.urn,
        "oldState": {"urn": before.urn, "type": CLUSTER, "inputs": before.inputs, "outputs": before.outputs},
        "newState": {"urn": after.urn, "type": CLUSTER, "inputs": after.inputs},
        "diffReasons": ["securityProfile"],
    }


# ------------------------------------------------------------------------------------------- the pin


def test_an_unpinned_key_keeps_the_cluster_on_its_creation_version(prod_stack: RecordedStack) -> None:
    # Key Vault's automatic rotation (prod's rotation policy) or a refresh cannot move the cluster.
    assert prod_stack.one(CLUSTER).ignore_changes == (KEY_ID_PATH,)


def test_moving_the_pinned_version_is_one_reviewed_key_change() -> None:
    v1, v2 = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
    old = _run("prod", {"kms-aks:kmsKey": {**PROD_KEY, "rotation": PROD_ROTATION, "version": v1}})
    new = _run("prod", {"kms-aks:kmsKey": {**PROD_KEY, "rotation": PROD_ROTATION, "version": v2}})
    key_uri = new.one(KEY).outputs["keyUri"]
    cluster = new.one(CLUSTER)
    assert cluster.ignore_changes == ()
    assert cluster.inputs["securityProfile"]["azureKeyVaultKms"]["keyId"] == f"{key_uri}/{v2}"
    # The key itself and its grant do not change: a new version is not a new key.
    assert old.one(KEY).inputs == new.one(KEY).inputs
    assert old.one(ROLE_ASSIGNMENT).inputs == new.one(ROLE_ASSIGNMENT).inputs

    preview = Preview.model_validate({"steps": [_update_step(old, new)]})
    # The rotation gate (tests/test_guard.py) is waived here: this test is about the pin and the override.
    waiver = ReencryptionWaiver(urn=cluster.urn, currentKeyId=f"{key_uri}/{v1}", reason="no record in this test")
    [finding] = check_preview(preview, [waiver]).findings
    assert (finding.rule, finding.new_key_id) == ("kms-key-change", f"{key_uri}/{v2}")
    override = KeyRotationOverride(urn=cluster.urn, newKeyId=f"{key_uri}/{v2}", reason="yearly rotation")
    allowed = check_preview(preview, [override, waiver])
    assert allowed.findings == [] and len(allowed.allowed) == 2


def test_bring_your_own_key_is_rotated_by_changing_its_key_id() -> None:
    old, new = _run("prod", _byok(BYOK_V1)), _run("prod", _byok(BYOK_V2))
    cluster = new.one(CLUSTER)
    # A BYOK key id is always versioned, so it is always pinned: the config change reaches the cluster.
    assert old.one(CLUSTER).ignore_changes == () and cluster.ignore_changes == ()
    assert cluster.inputs["securityProfile"]["azureKeyVaultKms"]["keyId"] == BYOK_V2
    # The grant is at the key's scope, which a new version does not change.
    assert old.one(ROLE_ASSIGNMENT).inputs == new.one(ROLE_ASSIGNMENT).inputs

    preview = Preview.model_validate({"steps": [_update_step(old, new)]})
    waiver = ReencryptionWaiver(urn=cluster.urn, currentKeyId=BYOK_V1, reason="no record in this test")
    assert [f.rule for f in check_preview(preview, [waiver]).findings] == ["kms-key-change"]
    right = KeyRotationOverride(urn=cluster.urn, newKeyId=BYOK_V2, reason="CHG-1234")
    assert check_preview(preview, [right, waiver]).findings == []
    # An override for another key id excuses nothing.
    wrong = KeyRotationOverride(urn=cluster.urn, newKeyId=BYOK_V1, reason="CHG-1234")
    result = check_preview(preview, [wrong, waiver])
    assert [f.rule for f in result.findings] == ["kms-key-change"]
    assert len(result.stale_overrides) == 1


# ------------------------------------------------------------------------------------------- rotate-check


def test_duration_days_reads_key_vault_durations() -> None:
    assert duration_days("P395D") == 395
    assert duration_days("P3M") == 90
    assert duration_days("P1Y") == 365
    assert duration_days("P2W") == 14
    assert duration_days("P1Y2M10D") == 365 + 60 + 10
    for bad in ("P", "395", "PT12H", None, 7):
        assert duration_days(bad) is None


def test_prod_rotation_policy_leaves_sixty_days_to_rotate() -> None:
    report = _report("prod")
    [key] = report.keys
    assert (key.name, key.source, key.cluster) == ("aks-kms-prod", "created", "aks-cluster")
    assert (key.rotate_after_days, key.expire_after_days, key.notify_before_expiry_days) == (335, 395, 30)
    assert key.window_days == 60
    assert key.expires_on is None
    assert key.findings == []
    assert any("keeps the version it was created with" in n for n in key.notes)
    assert report.exit_code == EXIT_OK


def test_dev_has_neither_and_is_a_throwaway_stack() -> None:
    [key] = _report("dev").keys
    assert key.findings == []
    assert any("unprotected" in n for n in key.notes)


def test_a_protected_key_with_neither_expiry_nor_rotation_is_a_warning() -> None:
    report = _report("dev", {"kms-aks:protectKmsResources": True})
    [(_, finding)] = report.warnings
    assert "neither an expiry nor a rotation policy on a protected stack" in finding.message
    assert "kms-aks:kmsKey.rotation" in finding.message
    assert report.exit_code == EXIT_OK


def test_expires_on_before_the_first_rotation_is_refused() -> None:
    report = run_rotation_check(EXPIRES_EARLY, as_of=AS_OF)
    [(key, finding)] = report.refusals
    assert key.expires_on == date(2027, 3, 1)
    # Created on 2026-06-01 (as of), rotated 335 days later.
    assert "kms-aks:kmsKey.expiresOn 2027-03-01 comes before the first automatic rotation on 2027-05-02" in (
        finding.message
    )
    assert report.exit_code == EXIT_BLOCKED


def test_expires_on_just_after_the_first_rotation_leaves_too_little_time() -> None:
    key = {**PROD_KEY, "rotation": PROD_ROTATION, "expiresOn": "2027-05-05"}
    [(_, finding)] = _report("prod", {"kms-aks:kmsKey": key}).refusals
    assert "only 3 days after the first automatic rotation on 2027-05-02" in finding.message


def test_expires_on_well_after_the_first_rotation_passes() -> None:
    key = {**PROD_KEY, "rotation": PROD_ROTATION, "expiresOn": "2027-06-01"}
    report = _report("prod", {"kms-aks:kmsKey": key})
    assert report.refusals == [] and report.warnings == []


def test_an_expired_first_version_is_refused() -> None:
    key = {**PROD_KEY, "rotation": PROD_ROTATION, "expiresOn": "2026-05-01"}
    [(_, finding)] = _report("prod", {"kms-aks:kmsKey": key}).refusals
    assert "expires on 2026-05-01, on or before 2026-06-01" in finding.message


def test_expires_on_without_rotation_warns_with_the_deadline() -> None:
    key = {**PROD_KEY, "expiresOn": "2027-06-01"}
    report = _report("prod", {"kms-aks:kmsKey": key})
    [(_, finding)] = report.warnings
    assert "expires on 2027-06-01 (365 days after 2026-06-01) and no rotation policy replaces it" in finding.message
    assert report.exit_code == EXIT_OK


def _key_policy(recorded: RecordedStack, policy: dict[str, Any]) -> RecordedStack:
    """The stack with its Key's rotation policy replaced, as another team's code or a hand edit could write it."""

    def change(resource: RecordedResource) -> RecordedResource:
        if resource.type != KEY:
            return resource
        properties = {**resource.inputs["properties"], "rotationPolicy": policy}
        return dataclasses.replace(resource, inputs={**resource.inputs, "properties": properties})

    return dataclasses.replace(recorded, resources=[change(r) for r in recorded.resources])


def _rotation_policy(expiry: str, **trigger: str) -> dict[str, Any]:
    return {
        "attributes": {"expiryTime": expiry},
        "lifetimeActions": [{"action": {"type": "rotate"}, "trigger": trigger}],
    }


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (
            _rotation_policy("P30D", timeAfterCreate="P60D"),
            "versions expire 30 days after creation but are rotated only after 60 days",
        ),
        (_rotation_policy("P90D", timeAfterCreate="P88D"), "a version expires 2 days after it is rotated"),
        (_rotation_policy("P90D", timeBeforeExpiry="P3D"), "a version expires 3 days after it is rotated"),
    ],
)
def test_a_rotation_policy_that_expires_versions_too_soon_is_refused(
    prod_preview: RecordedStack, policy: dict[str, Any], expected: str
) -> None:
    config = parse_stack_config(read_project_config(load_stack_file("prod")))
    report = check_rotation(_key_policy(prod_preview, policy), config, as_of=AS_OF)
    [(_, finding)] = report.refusals
    assert expected in finding.message
    assert report.exit_code == EXIT_BLOCKED


def test_a_before_expiry_trigger_counts_from_the_expiry(prod_preview: RecordedStack) -> None:
    config = parse_stack_config(read_project_config(load_stack_file("prod")))
    report = check_rotation(
        _key_policy(prod_preview, _rotation_policy("P365D", timeBeforeExpiry="P30D")), config, as_of=AS_OF
    )
    [key] = report.keys
    assert (key.rotation_interval_days, key.window_days) == (335, 30)
    assert report.refusals == []


def test_expiry_without_a_rotate_action_warns(prod_preview: RecordedStack) -> None:
    config = parse_stack_config(read_project_config(load_stack_file("prod")))
    notify_only = {
        "attributes": {"expiryTime": "P180D"},
        "lifetimeActions": [{"action": {"type": "notify"}, "trigger": {"timeBeforeExpiry": "P30D"}}],
    }
    report = check_rotation(_key_policy(prod_preview, notify_only), config, as_of=AS_OF)
    [(_, finding)] = report.warnings
    assert "versions expire 180 days after creation and nothing rotates them automatically" in finding.message
    assert "notifies 30 days before" in finding.message


def test_a_pinned_version_is_shown() -> None:
    version = "0123456789abcdef0123456789abcdef"
    [key] = _report("dev", {"kms-aks:kmsKey": {"name": "aks-kms-dev", "version": version}}).keys
    assert key.pinned_version == version
    assert any(f"pinned to version {version}" in n for n in key.notes)


def test_a_protected_bring_your_own_key_is_a_warning_it_cannot_see() -> None:
    report = _report("prod", _byok(BYOK_V1))
    [key] = report.keys
    assert (key.source, key.key_id, key.pinned_version) == ("existing", BYOK_V1, "0123456789abcdef0123456789abcdef")
    [(_, finding)] = report.warnings
    assert "outside this stack, so this check cannot see them" in finding.message
    assert f"az keyvault key show --id {BYOK_V1}" in finding.message
    assert report.exit_code == EXIT_OK


def test_the_config_itself_refuses_expiry_shorter_than_rotation(tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.rotation-inverted.yaml"
    key = {**PROD_KEY, "rotation": {"rotateAfterDays": 400, "expireAfterDays": 395}}
    stack.write_text(yaml.safe_dump({"config": {**load_stack_file("prod"), "kms-aks:kmsKey": key}}))
    with pytest.raises(RotationCheckError, match=r"kms-aks:kmsKey\.rotation: rotateAfterDays \(400\)"):
        run_rotation_check(str(stack), as_of=AS_OF)


# ------------------------------------------------------------------------------------------- the command


def test_rotate_check_shows_prod_and_passes(kms_aks: KmsAks) -> None:
    result = kms_aks("rotate-check", "--stack", "prod", "--as-of", "2026-06-01")
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert "KMS keys of stack prod (as of 2026-06-01)" in result.stdout
    assert "aks-kms-prod (created)" in result.stdout
    assert "rotate 335 days after creation; versions expire after 395 days" in result.stdout
    assert "60 days" in result.stdout
    assert "rotate-check: expiry and rotation fit together" in result.stdout


def test_rotate_check_refuses_an_expiry_before_the_first_rotation(kms_aks: KmsAks) -> None:
    result = kms_aks("rotate-check", "--stack", EXPIRES_EARLY, "--as-of", "2026-06-01")
    assert result.returncode == EXIT_BLOCKED, result.stdout + result.stderr
    assert "refused: aks-kms-rot: kms-aks:kmsKey.expiresOn 2027-03-01 comes before" in result.stdout
    assert "rotate-check: 1 refusal(s)" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.stacks
def test_rotate_check_bad_input_exits_2(kms_aks: KmsAks) -> None:
    unknown = kms_aks("rotate-check", "--stack", UNKNOWN_STACK)
    assert unknown.returncode == EXIT_BAD_INPUT
    assert f"unknown stack '{UNKNOWN_STACK}'; stacks: {project_stacks()}" in unknown.stdout
    bad_config = kms_aks("rotate-check", "--stack", str(STACKS / "Pulumi.bad-node-count.yaml"))
    assert bad_config.returncode == EXIT_BAD_INPUT
    assert "kms-aks:cluster.systemNodePool.count" in bad_config.stdout
    assert "Traceback" not in bad_config.stdout + bad_config.stderr
    bad_date = kms_aks("rotate-check", "--stack", "prod", "--as-of", "tomorrow")
    assert bad_date.returncode == 2
    assert "not a date (YYYY-MM-DD): 'tomorrow'" in bad_date.stderr


def test_make_rotate_check_runs_the_module_for_the_stack() -> None:
    result = subprocess.run(
        ["make", "-n", "rotate-check", "STACK=prod", "ARGS=--as-of 2027-01-01"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert ".venv/bin/kms-aks rotate-check --stack prod --as-of 2027-01-01" in result.stdout
