"""The fleet project (fleet/) under the real Pulumi CLI and engine, against the Azure stand-in.

It creates what it needs in the session's backend itself (test_real_cli.py changes and destroys dev and prod):
two kms-aks stacks made from the shipped dev and prod files (other names and regions), deployed by the real
program, and one stack whose cluster runs without KMS. The fleet's StackReferences read them from that backend.
The fleet is previewed and applied with the workflows' own commands (`.ci/pulumi-stack fleet-preview|fleet-up`).
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from kms_aks_tools.offline.fake_azure import fleet as fleet_types
from tests.e2e.conftest import Workspace

MEMBERS = {"fleet-eu": ("dev", "westeurope", "canary"), "fleet-us": ("prod", "eastus", "us")}
NO_KMS = "fleet-nokms"
FLEET_DIR = "fleet"


def _type(urn: str) -> str:
    return urn.split("::")[2].split("$")[-1]


def _kms_aks_stack(space: Workspace, name: str, source: str, location: str) -> None:
    """A kms-aks stack like `source` with its own names and region, deployed by the real program."""
    document = yaml.safe_load(space.stack_file(source).read_text())
    document.pop("encryptionsalt", None)
    config = document["config"]
    config["azure-native:location"] = config["kms-aks:location"] = location
    config["kms-aks:keyVault"]["name"] = f"kv-{name}"
    config["kms-aks:kmsKey"]["name"] = f"key-{name}"
    config["kms-aks:cluster"]["name"] = f"aks-{name}"
    config["kms-aks:resourceGroupName"] = f"rg-{name}"
    space.stack_file(name).write_text(yaml.safe_dump(document, sort_keys=False))
    assert space.pulumi("stack", "init", name, "--secrets-provider", "passphrase").returncode == 0
    up = space.pulumi("up", "--stack", name, "--yes", "--skip-preview")
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr


def _stack_without_kms(space: Workspace) -> None:
    """A kms-aks stack whose cluster runs without KMS (its exports say so): imported, as one found in the wild."""
    assert space.pulumi("stack", "init", NO_KMS, "--secrets-provider", "passphrase").returncode == 0
    exported = space.export(NO_KMS)
    cluster_id = (
        "/subscriptions/6b1d2f5e-3c4a-4e8b-9a7d-1f2e3d4c5b6a/resourceGroups/rg-legacy/providers/"
        "Microsoft.ContainerService/managedClusters/aks-legacy"
    )
    exported["deployment"]["resources"] = [
        {
            "urn": f"urn:pulumi:{NO_KMS}::kms-aks::pulumi:pulumi:Stack::kms-aks-{NO_KMS}",
            "custom": False,
            "type": "pulumi:pulumi:Stack",
            "outputs": {
                "clusterResourceId": cluster_id,
                "kmsEnabled": False,
                "kmsKeyId": "https://kv-legacy.vault.azure.net/keys/k/0123456789abcdef0123456789abcdef",
            },
        }
    ]
    state = space.path / "nokms-state.json"
    state.write_text(json.dumps(exported))
    imported = space.pulumi("stack", "import", "--stack", NO_KMS, "--file", str(state))
    assert imported.returncode == 0, imported.stderr


def _fleet_stack(space: Workspace, name: str, members: list[dict[str, str]], stages: list[dict]) -> None:
    config = {
        "kms-aks-fleet:location": "westeurope",
        "kms-aks-fleet:members": members,
        "kms-aks-fleet:stages": stages,
        "kms-aks-fleet:autoUpgrade": {"channel": "Stable", "nodeImageSelection": "Consistent"},
    }
    (space.path / FLEET_DIR / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump({"config": config}, sort_keys=False))
    created = space.pulumi("stack", "init", name, "--cwd", FLEET_DIR, "--secrets-provider", "passphrase")
    assert created.returncode == 0, created.stderr


def _fleet_export(space: Workspace, stack: str) -> dict[str, dict]:
    result = space.pulumi("stack", "export", "--stack", stack, "--cwd", FLEET_DIR)
    assert result.returncode == 0, result.stderr
    resources = json.loads(result.stdout)["deployment"].get("resources", [])
    return {r["urn"]: r for r in resources if not r["type"].startswith("pulumi:")}


@pytest.fixture(scope="module")
def members(workspace: Workspace) -> dict[str, dict]:
    """The member stacks, deployed once; their exports as the fleet will read them."""
    exports = {}
    for name, (source, location, _) in MEMBERS.items():
        _kms_aks_stack(workspace, name, source, location)
        output = workspace.pulumi("stack", "output", "--stack", name, "--json")
        assert output.returncode == 0, output.stderr
        exports[name] = json.loads(output.stdout)
    _stack_without_kms(workspace)
    return exports


def test_the_member_stacks_export_what_the_fleet_reads(members: dict[str, dict]) -> None:
    for name, exports in members.items():
        assert exports["kmsEnabled"] is True, name
        assert exports["clusterResourceId"].endswith(f"/managedClusters/aks-{name}")
        assert exports["kmsKeyId"].startswith(f"https://kv-{name}.vault.azure.net/keys/key-{name}/")
        # Neither shipped key has a fixed expiry on its first version: the export is absent (None is not exported).
        assert "kmsKeyExpiresOn" not in exports


def test_the_fleet_is_previewed_and_applied_with_members_groups_stages_and_auto_upgrade(
    workspace: Workspace, members: dict[str, dict]
) -> None:
    _fleet_stack(
        workspace,
        "e2e",
        [{"stack": name, "group": group} for name, (_, _, group) in MEMBERS.items()],
        [
            {"name": "canary", "groups": ["canary"], "afterStageWaitSeconds": 600},
            {"name": "us", "groups": ["us"]},
        ],
    )
    assert workspace.ci("check-secrets", "e2e", FLEET_DIR).returncode == 0
    out = workspace.out / "fleet-e2e"
    previewed = workspace.ci("fleet-preview", "e2e", str(out))
    assert previewed.returncode == 0, previewed.stdout[-3000:] + previewed.stderr
    steps = json.loads((out / "preview.json").read_text())["steps"]
    ours = [s for s in steps if not _type(s["urn"]).startswith("pulumi:")]
    created = sorted(_type(s["urn"]) for s in ours if s["op"] == "create")
    assert created == sorted(
        [
            "azure-native:resources:ResourceGroup",
            "kms-aks:index:KmsFleet",
            fleet_types.FLEET,
            fleet_types.FLEET_MEMBER,
            fleet_types.FLEET_MEMBER,
            fleet_types.UPDATE_STRATEGY,
            fleet_types.AUTO_UPGRADE_PROFILE,
        ]
    )
    # The StackReferences are reads, resolved in the preview already.
    assert {s["op"] for s in steps if _type(s["urn"]) == "pulumi:pulumi:StackReference"} <= {"read", "same"}

    applied = workspace.ci("fleet-up", "e2e", str(out))
    assert applied.returncode == 0, applied.stdout[-3000:] + applied.stderr
    state = _fleet_export(workspace, "e2e")
    by_type: dict[str, list[dict]] = {}
    for resource in state.values():
        by_type.setdefault(resource["type"], []).append(resource)
    component = by_type["kms-aks:index:KmsFleet"][0]
    fleet = by_type[fleet_types.FLEET][0]
    assert "hubProfile" not in fleet["inputs"]
    assert re.fullmatch(
        r"/subscriptions/[^/]+/resourceGroups/rg-kms-aks-fleet-e2e/providers/Microsoft\.ContainerService/fleets/"
        r"fleet-kms-aks-e2e",
        fleet["id"],
    )
    joined = {m["inputs"]["fleetMemberName"]: m for m in by_type[fleet_types.FLEET_MEMBER]}
    assert set(joined) == set(MEMBERS)
    for name, member in joined.items():
        assert member["inputs"]["clusterResourceId"] == members[name]["clusterResourceId"]
        assert member["inputs"]["group"] == MEMBERS[name][2]
        assert member["id"] == f"{fleet['id']}/members/{name}"
        assert member["parent"] == component["urn"]
    strategy = by_type[fleet_types.UPDATE_STRATEGY][0]
    assert [(s["name"], s.get("afterStageWaitInSeconds")) for s in strategy["outputs"]["strategy"]["stages"]] == [
        ("canary", 600),
        ("us", 0),
    ]
    profile = by_type[fleet_types.AUTO_UPGRADE_PROFILE][0]
    assert profile["inputs"]["updateStrategyId"] == strategy["id"] == f"{fleet['id']}/updateStrategies/staged"
    assert profile["outputs"]["channel"] == "Stable"
    assert profile["id"] == f"{fleet['id']}/autoUpgradeProfiles/auto"
    assert fleet_types.UPDATE_RUN not in by_type


def test_a_group_change_is_an_update_in_place(workspace: Workspace) -> None:
    path = workspace.path / FLEET_DIR / "Pulumi.e2e.yaml"
    original = path.read_text()
    document = yaml.safe_load(original)
    config = document["config"]
    config["kms-aks-fleet:members"][1]["group"] = "us-east"
    config["kms-aks-fleet:stages"][1]["groups"] = ["us-east"]
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    try:
        out = workspace.out / "fleet-e2e-group"
        result = workspace.ci("fleet-preview", "e2e", str(out))
    finally:
        path.write_text(original)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    changed = {
        (_type(s["urn"]), s["op"])
        for s in json.loads((out / "preview.json").read_text())["steps"]
        if s["op"] not in ("same", "read") and not _type(s["urn"]).startswith("pulumi:")
    }
    # FleetMember.group and the strategy are mutable (x-ms-mutability includes update): no replacement.
    assert changed == {(fleet_types.FLEET_MEMBER, "update"), (fleet_types.UPDATE_STRATEGY, "update")}


def test_a_member_with_kms_off_is_refused_at_preview_and_up_creates_nothing(
    workspace: Workspace, members: dict[str, dict]
) -> None:
    _fleet_stack(
        workspace,
        "refused",
        [{"stack": "fleet-eu", "group": "canary"}, {"stack": NO_KMS, "group": "legacy"}],
        [{"name": "canary", "groups": ["canary"]}, {"name": "legacy", "groups": ["legacy"]}],
    )
    result = workspace.ci("fleet-preview", "refused", str(workspace.out / "fleet-refused"))
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert f"stack '{NO_KMS}': KMS etcd encryption is off on its cluster" in output
    assert "stack 'fleet-eu'" not in output, "the good member is not named"
    assert "Traceback" not in output
    # Even `up` without a reviewed plan creates nothing: the check runs before the first registration.
    up = workspace.pulumi("up", "--stack", "refused", "--cwd", FLEET_DIR, "--yes", "--skip-preview")
    assert up.returncode != 0
    assert _fleet_export(workspace, "refused") == {}


def test_a_member_whose_stack_does_not_exist_is_refused_with_one_message(
    workspace: Workspace, members: dict[str, dict]
) -> None:
    _fleet_stack(
        workspace,
        "missing",
        [{"stack": "fleet-eu", "group": "canary"}, {"stack": "no-such-stack", "group": "eu"}],
        [{"name": "canary", "groups": ["canary"]}, {"name": "eu", "groups": ["eu"]}],
    )
    result = workspace.pulumi("preview", "--stack", "missing", "--cwd", FLEET_DIR)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "no-such-stack" in output
    assert "Traceback" not in output
    up = workspace.pulumi("up", "--stack", "missing", "--cwd", FLEET_DIR, "--yes", "--skip-preview")
    assert up.returncode != 0
    assert _fleet_export(workspace, "missing") == {}
