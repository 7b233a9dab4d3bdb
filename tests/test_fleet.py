"""The fleet project (fleet/) under the mock engine: what it registers, with which properties, and what it refuses.

The member stacks' outputs are the real kms-aks program's (dev and prod recorded as after `pulumi up`), read
through the fleet's StackReferences as the engine reads them.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
import yaml

from kms_aks.config.base import ConfigError
from kms_aks.config.fleet import member_problems, parse_fleet_config
from kms_aks_tools.offline.fake_azure import fleet as fleet_types
from kms_aks_tools.offline.mock_engine import ROOT
from kms_aks_tools.offline.recording import UNKNOWN, RecordedStack
from tests.engine import run_config

PROGRAM = ROOT / "fleet" / "__main__.py"
STACK_FILE = ROOT / "fleet" / "Pulumi.platform.yaml"
COMPONENT = "kms-aks:index:KmsFleet"


def shipped_config() -> dict[str, Any]:
    return yaml.safe_load(STACK_FILE.read_text())["config"]


@pytest.fixture(scope="module")
def member_stacks(dev_stack: RecordedStack, prod_stack: RecordedStack) -> dict[str, dict[str, Any]]:
    # A None output is not in a stack's outputs (the SDK does not serialize it): as a StackReference sees them.
    return {
        f"organization/kms-aks/{s.stack}": {k: v for k, v in s.outputs.items() if v is not None}
        for s in (dev_stack, prod_stack)
    }


def run_fleet(
    stacks: dict[str, dict[str, Any]], *, config: dict[str, Any] | None = None, preview: bool = False
) -> RecordedStack:
    return run_config(
        config or shipped_config(),
        stack="platform",
        preview=preview,
        program=PROGRAM,
        project="kms-aks-fleet",
        stacks=stacks,
    )


def cloud(recorded: RecordedStack) -> list[Any]:
    return [r for r in recorded.resources if r.custom]


def test_the_shipped_fleet_registers_a_hubless_fleet_members_in_groups_a_staged_strategy_and_auto_upgrade(
    member_stacks: dict[str, dict[str, Any]], dev_stack: RecordedStack, prod_stack: RecordedStack
) -> None:
    recorded = run_fleet(member_stacks)
    assert recorded.error is None, recorded.error
    component = recorded.one(COMPONENT)
    fleet = recorded.one(fleet_types.FLEET)
    assert "hubProfile" not in fleet.inputs, "no hub unless the config asks for one"
    assert fleet.inputs["location"] == "westeurope"
    assert fleet.id.endswith("/providers/Microsoft.ContainerService/fleets/fleet-kms-aks-platform")
    members = {m.inputs["fleetMemberName"]: m for m in recorded.by_type(fleet_types.FLEET_MEMBER)}
    assert set(members) == {"dev", "prod"}
    # Each member's cluster is its kms-aks stack's cluster, in the group the config gives it.
    assert members["dev"].inputs["clusterResourceId"] == dev_stack.outputs["clusterResourceId"]
    assert members["prod"].inputs["clusterResourceId"] == prod_stack.outputs["clusterResourceId"]
    assert {name: m.inputs["group"] for name, m in members.items()} == {"dev": "canary", "prod": "eu"}
    assert members["dev"].id == f"{fleet.id}/members/dev"
    strategy = recorded.one(fleet_types.UPDATE_STRATEGY)
    assert strategy.inputs["strategy"]["stages"] == [
        {"name": "canary", "groups": [{"name": "canary"}], "afterStageWaitInSeconds": 3600},
        {"name": "eu", "groups": [{"name": "eu"}], "afterStageWaitInSeconds": 0},
    ]
    assert {m.urn for m in members.values()} <= set(strategy.dependencies), "groups exist before the strategy"
    profile = recorded.one(fleet_types.AUTO_UPGRADE_PROFILE)
    assert profile.inputs["channel"] == "Stable"
    assert profile.inputs["nodeImageSelection"] == {"type": "Consistent"}
    assert profile.inputs["disabled"] is False
    # The auto-upgrade runs follow the staged strategy: the profile names it.
    assert profile.inputs["updateStrategyId"] == strategy.id
    assert profile.id == f"{fleet.id}/autoUpgradeProfiles/auto"
    for resource in (fleet, strategy, profile, *members.values()):
        assert resource.parent == component.urn
    assert recorded.outputs["autoUpgradeProfileId"] == profile.id
    assert not recorded.by_type(fleet_types.UPDATE_RUN), "an UpdateRun made by Pulumi would stay Not started"


def test_in_preview_the_members_ids_are_known_from_the_stack_references(member_stacks: dict) -> None:
    recorded = run_fleet(member_stacks, preview=True)
    assert recorded.error is None, recorded.error
    ids = {m.inputs["clusterResourceId"] for m in recorded.by_type(fleet_types.FLEET_MEMBER)}
    assert UNKNOWN not in ids and len(ids) == 2


def test_a_hub_is_optional_config(member_stacks: dict) -> None:
    config = {**shipped_config(), "kms-aks-fleet:hub": {"dnsPrefix": "kms-fleet-hub"}}
    fleet = run_fleet(member_stacks, config=config).one(fleet_types.FLEET)
    assert fleet.inputs["hubProfile"] == {"dnsPrefix": "kms-fleet-hub"}
    assert fleet.outputs["hubProfile"]["fqdn"].startswith("kms-fleet-hub-")


@pytest.mark.parametrize("preview", [True, False], ids=["preview", "up"])
def test_a_member_with_kms_off_is_refused_with_one_message_and_nothing_is_registered(
    member_stacks: dict, preview: bool
) -> None:
    stacks = dict(member_stacks)
    stacks["organization/kms-aks/prod"] = {**stacks["organization/kms-aks/prod"], "kmsEnabled": False}
    recorded = run_fleet(stacks, preview=preview)
    assert recorded.error is not None
    assert "stack 'prod': KMS etcd encryption is off on its cluster" in recorded.error
    assert "'dev'" not in recorded.error, "only the refused member is named"
    assert [r.type for r in recorded.resources if r.type != "pulumi:pulumi:Stack"] == []


def test_a_member_whose_stack_does_not_exist_is_refused_and_nothing_is_registered(member_stacks: dict) -> None:
    stacks = {k: v for k, v in member_stacks.items() if not k.endswith("/prod")}
    recorded = run_fleet(stacks, preview=True)
    assert recorded.error is not None
    assert "stack 'prod' (organization/kms-aks/prod) cannot be read" in recorded.error
    assert 'unknown stack "organization/kms-aks/prod"' in recorded.error
    assert "Deploy that kms-aks stack first" in recorded.error
    # Checked before the first registration: not even the StackReferences or the component are registered.
    assert [r.type for r in recorded.resources if r.type != "pulumi:pulumi:Stack"] == []


TODAY = date(2026, 11, 30)
GOOD = {
    "clusterResourceId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c",
    "kmsEnabled": True,
    "kmsKeyId": "https://kv.vault.azure.net/keys/k/0123456789abcdef0123456789abcdef",
}


@pytest.mark.parametrize(
    ("outputs", "expected"),
    [
        (GOOD, None),
        ({**GOOD, "kmsKeyExpiresOn": "2027-01-01T00:00:00+00:00"}, None),
        ({**GOOD, "kmsEnabled": False}, "KMS etcd encryption is off"),
        ({**GOOD, "kmsEnabled": "true"}, "KMS etcd encryption is off"),  # fail closed: only a real true
        ({k: v for k, v in GOOD.items() if k != "kmsEnabled"}, "exports no kmsEnabled"),
        ({}, "exports no clusterResourceId, kmsEnabled, kmsKeyId"),
        ({**GOOD, "clusterResourceId": "/subscriptions/s/resourceGroups/rg"}, "is not an AKS cluster's ARM id"),
        ({**GOOD, "kmsKeyExpiresOn": "2026-11-30T00:00:00+00:00"}, "expired on 2026-11-30"),
        ({**GOOD, "kmsKeyExpiresOn": "soon"}, "is not an ISO 8601 date-time"),
    ],
)
def test_member_problems(outputs: dict, expected: str | None) -> None:
    problems = member_problems("eu-1", outputs, TODAY)
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0] and "stack 'eu-1'" in problems[0]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"members": []}, "kms-aks-fleet:members: List should have at least 1 item"),
        (
            {"members": [{"stack": "dev", "group": "canary"}, {"stack": "dev", "group": "canary"}]},
            "stack 'dev' is listed more than once",
        ),
        ({"members": [{"stack": "dev", "group": "Canary"}]}, "kms-aks-fleet:members.0.group: must be lower-case"),
        ({"members": [{"stack": "dev", "group": "us"}, {"stack": "prod", "group": "eu"}]}, "which no stage upgrades"),
        ({"stages": [{"name": "all", "groups": ["canary", "eu", "us"]}]}, "group 'us' (stage 'all') has no member"),
        (
            {"stages": [{"name": "a", "groups": ["canary", "eu"]}, {"name": "b", "groups": ["eu"]}]},
            "group 'eu' is in stage 'a' and in 'b'",
        ),
        (
            {"stages": [{"name": "a", "groups": ["canary", "eu"], "afterStageWaitSeconds": -1}]},
            "afterStageWaitSeconds: Input should be greater than or equal to 0",
        ),
        ({"autoUpgrade": {"channel": "stable"}}, "kms-aks-fleet:autoUpgrade.channel: Input should be 'Stable'"),
        ({"hub": {"dnsPrefix": "-x"}}, "kms-aks-fleet:hub.dnsPrefix: must be"),
        ({"fleetNmae": "x"}, "kms-aks-fleet:fleetNmae: unknown config key; allowed keys: autoUpgrade, fleetName"),
    ],
)
def test_bad_fleet_config_names_the_key_and_what_is_allowed(change: dict, expected: str) -> None:
    raw = {k.removeprefix("kms-aks-fleet:"): v for k, v in shipped_config().items()}
    with pytest.raises(ConfigError) as error:
        parse_fleet_config({**raw, **change})
    assert any(expected in problem for problem in error.value.problems), error.value.problems


def test_bad_fleet_config_under_the_program_is_one_message_and_nothing_registered(member_stacks: dict) -> None:
    config = {**shipped_config(), "kms-aks-fleet:stages": [{"name": "canary", "groups": ["canary"]}]}
    recorded = run_fleet(member_stacks, config=config, preview=True)
    assert recorded.error is not None and "group 'eu', which no stage upgrades" in recorded.error
    assert recorded.resources == [] or cloud(recorded) == []


def test_the_mock_stack_reference_fails_like_the_engine_for_an_unknown_stack() -> None:
    recorded = run_fleet({}, preview=True)
    assert recorded.error is not None and "unknown stack" in recorded.error
