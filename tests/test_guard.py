"""The plan guard against `pulumi preview --json` fixtures: each refusal, clean plans, overrides, bad input."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kms_aks_tools import guard
from kms_aks_tools.recording import UNKNOWN
from tests.cli import TERMINAL
from tests.conftest import KmsAks

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "preview"

CLUSTER_URN = "urn:pulumi:prod::kms-aks::kms-aks:index:KmsCluster$azure-native:containerservice:ManagedCluster::aks"
VAULT_URN = "urn:pulumi:prod::kms-aks::kms-aks:index:KmsCluster$azure-native:keyvault:Vault::vault"
KEY_URN = "urn:pulumi:prod::kms-aks::kms-aks:index:KmsCluster$azure-native:keyvault:Key::etcd-key"
IDENTITY_URN = (
    "urn:pulumi:prod::kms-aks::kms-aks:index:KmsCluster$azure-native:managedidentity:UserAssignedIdentity::kms-identity"
)
KEY_V1 = "https://kv-kms-aks-prod.vault.azure.net/keys/etcd-kms/7c1b0e54c8d34f0e9a55b3f4f3b1d2a1"
KEY_V2 = "https://kv-kms-aks-prod.vault.azure.net/keys/etcd-kms/a9e3f0c27b5d4e1f8c6a2b9d0e7f1c35"
KEY_V3 = "https://kv-kms-aks-prod.vault.azure.net/keys/etcd-kms/00000000000000000000000000000003"

KEY_ID = "securityProfile.azureKeyVaultKms.keyId"
ENABLED = "securityProfile.azureKeyVaultKms.enabled"
NETWORK = "securityProfile.azureKeyVaultKms.keyVaultNetworkAccess"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = guard.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refused(out: str) -> list[str]:
    """The `REFUSED [rule] URN` headline of each finding, as printed."""
    return [line for line in out.splitlines() if line.startswith("REFUSED ")]


def fixture(name: str) -> Path:
    path = FIXTURES / name
    assert path.is_file(), path
    return path


def load(name: str) -> dict[str, Any]:
    return json.loads(fixture(name).read_text())


def write(tmp_path: Path, doc: Any, name: str = "preview.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def cluster_step(doc: dict[str, Any]) -> dict[str, Any]:
    (step,) = [s for s in doc["steps"] if s["urn"] == CLUSTER_URN and s["op"] != "same"] or [
        s for s in doc["steps"] if s["urn"] == CLUSTER_URN
    ]
    return step


# --------------------------------------------------------------------------------------------------
# Clean plans pass
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["clean-node-count.json", "no-changes.json", "create-stack.json"])
def test_clean_plan_passes(capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, out, err = run(capsys, fixture(name))
    assert code == 0, out + err
    assert refused(out) == []
    assert "passed" in out
    assert err == ""


def test_clean_fixture_really_changes_the_cluster() -> None:
    # The "clean" case must be a real update of the cluster, or passing it would prove nothing.
    step = cluster_step(load("clean-node-count.json"))
    assert step["op"] == "update"
    assert step["oldState"]["inputs"]["agentPoolProfiles"][0]["count"] == 3
    assert step["newState"]["inputs"]["agentPoolProfiles"][0]["count"] == 5
    assert step["oldState"]["inputs"]["securityProfile"] == step["newState"]["inputs"]["securityProfile"]


# --------------------------------------------------------------------------------------------------
# Each refusal
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("key-rotation.json", [("kms-key-change", CLUSTER_URN, KEY_ID)]),
        ("key-unknown.json", [("kms-key-unknown", CLUSTER_URN, KEY_ID)]),
        ("kms-disabled.json", [("kms-disabled", CLUSTER_URN, ENABLED)]),
        (
            "kms-removed.json",
            [
                ("kms-key-removed", CLUSTER_URN, KEY_ID),
                ("kms-disabled", CLUSTER_URN, "securityProfile.azureKeyVaultKms"),
            ],
        ),
        ("network-access.json", [("kms-network-access-change", CLUSTER_URN, NETWORK)]),
        ("identity-change.json", [("identity-change", CLUSTER_URN, "identity")]),
        ("identity-type-change.json", [("identity-change", CLUSTER_URN, "identity")]),
        ("cluster-delete.json", [("destructive-op", CLUSTER_URN, "op=delete")]),
        (
            "cluster-replace.json",
            [
                ("destructive-op", CLUSTER_URN, "op=create-replacement"),
                ("destructive-op", CLUSTER_URN, "op=replace"),
                ("destructive-op", CLUSTER_URN, "op=delete-replaced"),
            ],
        ),
        ("vault-delete.json", [("destructive-op", VAULT_URN, "op=delete")]),
        (
            "key-replace.json",
            [
                ("destructive-op", KEY_URN, "op=create-replacement"),
                ("destructive-op", KEY_URN, "op=replace"),
                ("destructive-op", KEY_URN, "op=delete-replaced"),
            ],
        ),
        (
            "identity-replace.json",
            [
                ("destructive-op", IDENTITY_URN, "op=create-replacement"),
                ("destructive-op", IDENTITY_URN, "op=replace"),
                ("destructive-op", IDENTITY_URN, "op=delete-replaced"),
            ],
        ),
        ("detailed-diff-only.json", [("kms-key-change", CLUSTER_URN, KEY_ID)]),
        ("key-masked-secret.json", [("kms-key-change", CLUSTER_URN, KEY_ID)]),
        (
            "versioned-type-key-change.json",
            [
                (
                    "kms-key-change",
                    CLUSTER_URN.replace("containerservice:", "containerservice/v20250801:"),
                    KEY_ID,
                )
            ],
        ),
        (
            "rotate-and-disable.json",
            [("kms-key-change", CLUSTER_URN, KEY_ID), ("kms-disabled", CLUSTER_URN, ENABLED)],
        ),
    ],
)
def test_refusal_prints_each_finding_with_urn_and_path(
    capsys: pytest.CaptureFixture[str], name: str, expected: list[tuple[str, str, str]]
) -> None:
    code, out, err = run(capsys, fixture(name))
    assert code == 1, out + err
    lines = out.splitlines()
    headlines = refused(out)
    assert sorted(headlines) == sorted(f"REFUSED [{rule}] {urn}" for rule, urn, _ in expected)
    for rule, urn, path in expected:
        index = lines.index(f"REFUSED [{rule}] {urn}") if len(expected) == 1 else None
        if index is not None:
            assert lines[index + 1] == f"    at {path}"
        else:
            assert f"    at {path}" in lines
    assert "refused" in lines[-1]


def test_unknown_key_id_says_the_new_version_must_be_pinned(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, fixture("key-unknown.json"))
    assert code == 1
    assert "unknown key id" in out
    assert "pin the new versioned key id in the stack config" in out


def test_key_change_message_shows_old_and_new_key(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, fixture("key-rotation.json"))
    assert f"{KEY_V1} -> {KEY_V2}" in out


def test_replacement_reasons_are_shown(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, fixture("key-replace.json"))
    assert "replaceReasons: properties.keySize" in out


# --------------------------------------------------------------------------------------------------
# Variations built from the fixtures
# --------------------------------------------------------------------------------------------------


def _variant(tmp_path: Path, base: str, mutate: Any) -> Path:
    doc = copy.deepcopy(load(base))
    mutate(doc)
    return write(tmp_path, doc)


def test_explicit_public_network_access_equals_the_default(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def mutate(doc: dict[str, Any]) -> None:
        step = cluster_step(doc)
        del step["oldState"]["inputs"]["securityProfile"]["azureKeyVaultKms"]["keyVaultNetworkAccess"]

    code, out, _ = run(capsys, _variant(tmp_path, "clean-node-count.json", mutate))
    assert code == 0, out


def test_network_access_change_to_unknown_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def mutate(doc: dict[str, Any]) -> None:
        cluster_step(doc)["newState"]["inputs"]["securityProfile"]["azureKeyVaultKms"]["keyVaultNetworkAccess"] = (
            UNKNOWN
        )

    code, out, _ = run(capsys, _variant(tmp_path, "clean-node-count.json", mutate))
    assert code == 1
    assert refused(out) == [f"REFUSED [kms-network-access-change] {CLUSTER_URN}"]


def test_whole_kms_block_unknown_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def mutate(doc: dict[str, Any]) -> None:
        cluster_step(doc)["newState"]["inputs"]["securityProfile"]["azureKeyVaultKms"] = UNKNOWN

    code, out, _ = run(capsys, _variant(tmp_path, "clean-node-count.json", mutate))
    assert code == 1
    rules = {line.split("]")[0] for line in refused(out)}
    assert {"REFUSED [kms-key-unknown", "REFUSED [kms-disabled", "REFUSED [kms-network-access-change"} <= rules


def test_enabling_kms_in_place_is_a_key_change_the_override_can_allow(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def mutate(doc: dict[str, Any]) -> None:
        step = cluster_step(doc)
        del step["oldState"]["inputs"]["securityProfile"]
        step["newState"]["inputs"]["securityProfile"]["azureKeyVaultKms"]["keyId"] = KEY_V2

    path = _variant(tmp_path, "clean-node-count.json", mutate)
    code, out, _ = run(capsys, path)
    assert code == 1
    assert refused(out) == [f"REFUSED [kms-key-change] {CLUSTER_URN}"]
    assert "KMS enabled in place" in out
    code, out, _ = run(capsys, path, "--allow-key-rotation", f"{CLUSTER_URN}={KEY_V2}")
    assert code == 0, out


def test_identity_ids_compare_case_insensitively_and_map_equals_list(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def mutate(doc: dict[str, Any]) -> None:
        step = cluster_step(doc)
        # Old state with outputs only (map form), new inputs with the same id in other case (list form).
        step["oldState"]["inputs"] = {}
        ids = step["newState"]["inputs"]["identity"]["userAssignedIdentities"]
        step["newState"]["inputs"]["identity"]["userAssignedIdentities"] = [i.upper() for i in ids]
        step["newState"]["inputs"]["identity"]["type"] = "userAssigned"

    code, out, _ = run(capsys, _variant(tmp_path, "clean-node-count.json", mutate))
    assert code == 0, out


def test_a_second_identity_added_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def mutate(doc: dict[str, Any]) -> None:
        ids = cluster_step(doc)["newState"]["inputs"]["identity"]["userAssignedIdentities"]
        ids.append(ids[0] + "-2")

    code, out, _ = run(capsys, _variant(tmp_path, "clean-node-count.json", mutate))
    assert code == 1
    assert refused(out) == [f"REFUSED [identity-change] {CLUSTER_URN}"]


def test_detailed_diff_on_parent_block_without_states_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def mutate(doc: dict[str, Any]) -> None:
        cluster_step(doc)["detailedDiff"] = {"securityProfile.azureKeyVaultKms": {"kind": "delete"}}

    code, out, _ = run(capsys, _variant(tmp_path, "detailed-diff-only.json", mutate))
    assert code == 1
    assert "    at securityProfile.azureKeyVaultKms" in out.splitlines()
    assert {line.split("]")[0] for line in refused(out)} == {
        "REFUSED [kms-key-change",
        "REFUSED [kms-disabled",
        "REFUSED [kms-network-access-change",
    }


def test_detailed_diff_without_states_elsewhere_passes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def mutate(doc: dict[str, Any]) -> None:
        step = cluster_step(doc)
        step["detailedDiff"] = {"agentPoolProfiles[0].count": {"kind": "update", "inputDiff": True}}
        step["diffReasons"] = ["agentPoolProfiles"]

    code, out, _ = run(capsys, _variant(tmp_path, "detailed-diff-only.json", mutate))
    assert code == 0, out


def test_diff_reasons_alone_are_enough_to_refuse(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def mutate(doc: dict[str, Any]) -> None:
        step = cluster_step(doc)
        del step["detailedDiff"]
        step["diffReasons"] = ["identity"]

    code, out, _ = run(capsys, _variant(tmp_path, "detailed-diff-only.json", mutate))
    assert code == 1
    assert refused(out) == [f"REFUSED [identity-change] {CLUSTER_URN}"]


def test_update_with_no_diff_detail_at_all_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def mutate(doc: dict[str, Any]) -> None:
        step = cluster_step(doc)
        del step["detailedDiff"]
        del step["diffReasons"]

    code, out, _ = run(capsys, _variant(tmp_path, "detailed-diff-only.json", mutate))
    assert code == 1
    assert refused(out) == [f"REFUSED [unverifiable-update] {CLUSTER_URN}"]


def test_unknown_op_on_a_guarded_type_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def mutate(doc: dict[str, Any]) -> None:
        for step in doc["steps"]:
            if step["urn"] == KEY_URN:
                step["op"] = "discard-replaced"

    code, out, _ = run(capsys, _variant(tmp_path, "no-changes.json", mutate))
    assert code == 1
    assert refused(out) == [f"REFUSED [unrecognised-op] {KEY_URN}"]
    assert "    at op=discard-replaced" in out.splitlines()


def test_type_is_taken_from_the_urn_when_the_step_has_none(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def mutate(doc: dict[str, Any]) -> None:
        for step in doc["steps"]:
            step.pop("type", None)
            if step["urn"] == VAULT_URN:
                step["op"] = "delete"
                del step["newState"]

    code, out, _ = run(capsys, _variant(tmp_path, "no-changes.json", mutate))
    assert code == 1
    assert refused(out) == [f"REFUSED [destructive-op] {VAULT_URN}"]


def test_updating_an_unguarded_resource_passes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def mutate(doc: dict[str, Any]) -> None:
        for step in doc["steps"]:
            if step["type"] == "azure-native:resources:ResourceGroup":
                step["op"] = "update"

    code, out, _ = run(capsys, _variant(tmp_path, "no-changes.json", mutate))
    assert code == 0, out


# --------------------------------------------------------------------------------------------------
# Overrides
# --------------------------------------------------------------------------------------------------


def _override_file(tmp_path: Path, entries: list[dict[str, str]], suffix: str = ".yaml") -> Path:
    path = tmp_path / f"guard-overrides{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps({"keyRotations": entries}))
    else:
        lines = ["# Reviewed in the pull request that rotates the key.", "keyRotations:"]
        for entry in entries:
            lines.append(f"  - urn: '{entry['urn']}'")
            lines.extend(f"    {k}: '{v}'" for k, v in entry.items() if k != "urn")
        path.write_text("\n".join(lines) + "\n")
    return path


ROTATION = {"urn": CLUSTER_URN, "newKeyId": KEY_V2, "reason": "Quarterly rotation, CHG-1234"}


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_matching_override_file_allows_the_rotation(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, suffix: str
) -> None:
    overrides = _override_file(tmp_path, [ROTATION], suffix)
    code, out, err = run(capsys, fixture("key-rotation.json"), "--overrides", overrides)
    assert code == 0, out + err
    assert refused(out) == []
    assert f"ALLOWED [kms-key-change] {CLUSTER_URN}" in out.splitlines()
    assert "by override: Quarterly rotation, CHG-1234" in out
    assert "STALE" not in out


def test_matching_flag_allows_the_rotation(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, fixture("key-rotation.json"), "--allow-key-rotation", f"{CLUSTER_URN}={KEY_V2}")
    assert code == 0, out
    assert f"ALLOWED [kms-key-change] {CLUSTER_URN}" in out.splitlines()


def test_override_with_another_key_id_is_refused_and_reported_stale(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    overrides = _override_file(tmp_path, [{**ROTATION, "newKeyId": KEY_V3}])
    code, out, _ = run(capsys, fixture("key-rotation.json"), "--overrides", overrides)
    assert code == 1
    assert refused(out) == [f"REFUSED [kms-key-change] {CLUSTER_URN}"]
    assert f"STALE OVERRIDE {CLUSTER_URN}" in out.splitlines()
    assert f"the preview plans key id {KEY_V2}" in out


def test_override_for_the_old_key_id_does_not_match(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, fixture("key-rotation.json"), "--allow-key-rotation", f"{CLUSTER_URN}={KEY_V1}")
    assert code == 1
    assert refused(out) == [f"REFUSED [kms-key-change] {CLUSTER_URN}"]


def test_override_for_another_urn_is_refused_and_reported_stale(capsys: pytest.CaptureFixture[str]) -> None:
    other = CLUSTER_URN.replace("urn:pulumi:prod::", "urn:pulumi:dev::")
    code, out, _ = run(capsys, fixture("key-rotation.json"), "--allow-key-rotation", f"{other}={KEY_V2}")
    assert code == 1
    assert refused(out) == [f"REFUSED [kms-key-change] {CLUSTER_URN}"]
    assert f"STALE OVERRIDE {other}" in out.splitlines()


def test_override_cannot_excuse_disabling_kms(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    overrides = _override_file(tmp_path, [ROTATION])
    code, out, _ = run(capsys, fixture("rotate-and-disable.json"), "--overrides", overrides)
    assert code == 1
    assert refused(out) == [f"REFUSED [kms-disabled] {CLUSTER_URN}"]
    assert f"ALLOWED [kms-key-change] {CLUSTER_URN}" in out.splitlines()


@pytest.mark.parametrize(
    "name",
    ["kms-disabled.json", "network-access.json", "identity-change.json", "cluster-replace.json"],
)
def test_override_excuses_nothing_but_the_key_change(capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, out, _ = run(capsys, fixture(name), "--allow-key-rotation", f"{CLUSTER_URN}={KEY_V2}")
    assert code == 1
    assert refused(out)
    assert "ALLOWED" not in out
    assert f"STALE OVERRIDE {CLUSTER_URN}" in out.splitlines()


def test_override_cannot_name_an_unknown_key(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, fixture("key-unknown.json"), "--allow-key-rotation", f"{CLUSTER_URN}={KEY_V2}")
    assert code == 1
    assert refused(out) == [f"REFUSED [kms-key-unknown] {CLUSTER_URN}"]


def test_override_cannot_excuse_a_change_seen_only_in_the_detailed_diff(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, fixture("detailed-diff-only.json"), "--allow-key-rotation", f"{CLUSTER_URN}={KEY_V2}")
    assert code == 1
    assert refused(out) == [f"REFUSED [kms-key-change] {CLUSTER_URN}"]


def test_stale_override_on_a_clean_plan_is_reported_but_passes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, fixture("clean-node-count.json"), "--allow-key-rotation", f"{CLUSTER_URN}={KEY_V2}")
    assert code == 0, out
    assert f"STALE OVERRIDE {CLUSTER_URN}" in out.splitlines()
    assert "no key id change for this URN" in out


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{**ROTATION, "newKeyId": "https://kv-kms-aks-prod.vault.azure.net/keys/etcd-kms"}], "not a versioned"),
        ([{**ROTATION, "reason": "   "}], "reason"),
        ([{"urn": CLUSTER_URN, "newKeyId": KEY_V2}], "reason"),
        ([{**ROTATION, "urn": VAULT_URN}], "only a ManagedCluster"),
        ([{**ROTATION, "urn": "aks"}], "not a Pulumi URN"),
    ],
)
def test_malformed_override_entry_is_bad_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, entries: list[dict[str, str]], message: str
) -> None:
    overrides = _override_file(tmp_path, entries, ".json")
    code, out, err = run(capsys, fixture("key-rotation.json"), "--overrides", overrides)
    assert code == 2
    assert message in err
    assert "ALLOWED" not in out


@pytest.mark.parametrize(
    "content",
    [
        "allowAll: true\n",
        "keyRotations: []\nskipChecks: [kms-disabled]\n",
        "- urn: x\n",
        "keyRotations: [unclosed\n",
    ],
)
def test_override_file_has_no_blanket_switch(capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str) -> None:
    overrides = tmp_path / "guard-overrides.yaml"
    overrides.write_text(content)
    code, out, err = run(capsys, fixture("kms-disabled.json"), "--overrides", overrides)
    assert code == 2
    assert "overrides file" in err
    assert out == ""
    assert "Traceback" not in err


@pytest.mark.parametrize("flag", ["no-equals-sign", f"{CLUSTER_URN}=", f"={KEY_V2}"])
def test_malformed_flag_is_bad_input(capsys: pytest.CaptureFixture[str], flag: str) -> None:
    code, _, err = run(capsys, fixture("key-rotation.json"), "--allow-key-rotation", flag)
    assert code == 2
    assert "--allow-key-rotation" in err


# --------------------------------------------------------------------------------------------------
# Bad input: clear message, exit 2, never a pass
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bad-not-json.json", "is not JSON"),
        ("bad-wrong-shape.json", "steps: Field required"),
        ("bad-empty-steps.json", "no steps at all"),
        ("bad-step-without-op.json", "steps.0.op: Field required"),
        ("bad-preview-errors.json", "the preview reported errors"),
    ],
)
def test_bad_input_fixture(capsys: pytest.CaptureFixture[str], name: str, message: str) -> None:
    code, out, err = run(capsys, fixture(name))
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
            json.dumps({"steps": [{"op": "update", "urn": CLUSTER_URN, "detailedDiff": {"x": {"kind": "moved"}}}]}),
            "detailedDiff.x.kind",
        ),
    ],
)
def test_bad_input_content(capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str, message: str) -> None:
    code, out, err = run(capsys, write(tmp_path, content))
    assert code == 2
    assert message in err
    assert out == ""


def test_missing_file_is_bad_input(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, tmp_path / "nope.json")
    assert code == 2
    assert "cannot read" in err


def test_binary_file_is_bad_input(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "preview.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    code, _, err = run(capsys, path)
    assert code == 2
    assert "cannot read" in err


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
    )


def test_cli_exit_codes_and_output() -> None:
    clean = _cli(str(fixture("clean-node-count.json")))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    refusal = _cli(str(fixture("network-access.json")))
    assert refusal.returncode == 1
    assert f"REFUSED [kms-network-access-change] {CLUSTER_URN}" in refusal.stdout.splitlines()
    assert f"    at {NETWORK}" in refusal.stdout.splitlines()
    bad = _cli(str(fixture("bad-not-json.json")))
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert "is not JSON" in bad.stderr


def test_cli_reads_stdin(kms_aks: KmsAks) -> None:
    result = kms_aks("guard", "-", stdin=fixture("kms-disabled.json").read_text())
    assert result.returncode == 1
    assert f"REFUSED [kms-disabled] {CLUSTER_URN}" in result.stdout.splitlines()
    empty = kms_aks("guard", "-", stdin="")
    assert empty.returncode == 2


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
        (CLUSTER_URN, "azure-native:containerservice:ManagedCluster"),
        ("urn:pulumi:dev::kms-aks::azure-native:keyvault:Key::k", "azure-native:keyvault:Key"),
        ("urn:pulumi:dev::kms-aks::a:b:C$d:e:F$azure-native:keyvault:Vault::v::x", "azure-native:keyvault:Vault"),
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


def test_the_same_override_in_file_and_flag_is_not_stale(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    overrides = _override_file(tmp_path, [ROTATION])
    code, out, _ = run(
        capsys,
        fixture("key-rotation.json"),
        "--overrides",
        overrides,
        "--allow-key-rotation",
        f"{CLUSTER_URN}={KEY_V2}",
    )
    assert code == 0, out
    assert "STALE" not in out
    assert out.count("ALLOWED ") == 1


# --------------------------------------------------------------------------------------------------
# An existing Key's create-time settings: shown for what ARM does with them
# --------------------------------------------------------------------------------------------------

SETTINGS_KEY_URN = "urn:pulumi:prod::kms-aks::kms-aks:index:KeyVaultWithKey$azure-native:keyvault:Key::prod-key"


def test_changed_key_expiry_is_refused_as_a_deployment_that_fails(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, fixture("key-expiry-change.json"))
    assert code == 1
    assert refused(out) == [f"REFUSED [key-create-time-change] {SETTINGS_KEY_URN}"]
    assert "    at properties.attributes.expires" in out.splitlines()
    assert "the preview calls this an update, but the key's expiry 2028-01-01T00:00:00Z -> 2029-01-01T00:00:00Z" in out
    assert "KeyCreationParametersDidNotMatchExistingKey" in out and "Keys_CreateIfNotExist" in out
    # The path that works: the data plane on the current version, then refresh.
    assert (
        "az keyvault key set-attributes --vault-name kv-kms-aks-prod --name etcd-kms --expires 2029-01-01T00:00:00Z"
        in out
    )
    assert "`pulumi refresh`" in out


def test_changed_rotation_policy_is_refused_as_not_applied(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, fixture("key-rotation-policy-change.json"))
    assert code == 1
    assert refused(out) == [f"REFUSED [key-create-time-change] {SETTINGS_KEY_URN}"]
    assert "    at properties.rotationPolicy" in out.splitlines()
    assert "rotation policy" in out and "is not applied" in out
    assert "az keyvault key rotation-policy update --vault-name kv-kms-aks-prod --name etcd-kms" in out
    assert "KeyCreationParametersDidNotMatchExistingKey" not in out


def test_key_settings_change_is_found_from_the_detailed_diff_alone(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def strip_states(doc: dict[str, Any]) -> None:
        for step in doc["steps"]:
            if step["op"] == "update":
                step.pop("oldState")
                step.pop("newState")

    code, out, _ = run(capsys, _variant(tmp_path, "key-rotation-policy-change.json", strip_states))
    assert code == 1
    lines = out.splitlines()
    assert "    at properties.rotationPolicy.attributes.expiryTime" in lines
    assert "    at properties.rotationPolicy.lifetimeActions[0].trigger.timeAfterCreate" in lines


def test_key_size_change_points_at_a_new_version(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def bigger(doc: dict[str, Any]) -> None:
        step = doc["steps"][1]
        step["newState"]["inputs"]["properties"]["attributes"] = step["oldState"]["inputs"]["properties"]["attributes"]
        step["newState"]["inputs"]["properties"]["keySize"] = 4096

    code, out, _ = run(capsys, _variant(tmp_path, "key-expiry-change.json", bigger))
    assert code == 1
    assert "    at properties.keySize" in out.splitlines()
    assert "key size 3072 -> 4096 is not applied" in out
    assert "az keyvault key create --vault-name kv-kms-aks-prod --name etcd-kms" in out


def test_a_key_rotation_override_does_not_excuse_a_key_settings_change(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, fixture("key-expiry-change.json"), "--allow-key-rotation", f"{CLUSTER_URN}={KEY_V2}")
    assert code == 1
    assert refused(out) == [f"REFUSED [key-create-time-change] {SETTINGS_KEY_URN}"]
