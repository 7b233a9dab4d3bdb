"""The stand-in's Fleet Manager types over real gRPC: ARM ids and azure-native's replace rules, on the inputs the
fleet program really registers (tests/test_fleet.py records them under the mock engine)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import yaml
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from kms_aks_tools.offline.fake_azure import fleet as fleet_types
from kms_aks_tools.offline.mock_engine import ROOT
from kms_aks_tools.offline.recording import RecordedResource, RecordedStack
from kms_aks_tools.standin.provider import Standin, running_standin
from kms_aks_tools.standin.wire import from_struct, to_struct
from tests.engine import run_config


@pytest.fixture(scope="module")
def fleet_stack(dev_stack: RecordedStack, prod_stack: RecordedStack) -> RecordedStack:
    stacks = {f"organization/kms-aks/{s.stack}": s.outputs for s in (dev_stack, prod_stack)}
    config = yaml.safe_load((ROOT / "fleet" / "Pulumi.platform.yaml").read_text())["config"]
    recorded = run_config(
        config, stack="platform", program=ROOT / "fleet" / "__main__.py", project="kms-aks-fleet", stacks=stacks
    )
    assert recorded.error is None, recorded.error
    return recorded


@pytest.fixture(scope="module")
def standin() -> Iterator[Standin]:
    with running_standin(sleep_cap=0.1) as running:
        yield running


@pytest.fixture
def stub(standin: Standin) -> provider_pb2_grpc.ResourceProviderStub:
    standin.cloud.states.clear()  # every test starts from an empty cloud
    return provider_pb2_grpc.ResourceProviderStub(grpc.insecure_channel(f"127.0.0.1:{standin.ports['azure-native']}"))


def _checked(stub: Any, r: RecordedResource, inputs: dict) -> Any:
    """The inputs as the engine holds them: after the provider's Check (its defaults applied), as in a real run."""
    response = stub.Check(provider_pb2.CheckRequest(urn=r.urn, type=r.type, news=to_struct(inputs)))
    assert not response.failures, response.failures
    return response.inputs


def _create(stub: Any, r: RecordedResource) -> Any:
    return stub.Create(
        provider_pb2.CreateRequest(urn=r.urn, type=r.type, name=r.name, properties=_checked(stub, r, r.inputs))
    )


def _diff(stub: Any, r: RecordedResource, created: Any, news: dict) -> Any:
    return stub.Diff(
        provider_pb2.DiffRequest(
            id=created.id,
            urn=r.urn,
            type=r.type,
            name=r.name,
            olds=created.properties,
            old_inputs=_checked(stub, r, r.inputs),
            news=_checked(stub, r, news),
        )
    )


def test_create_answers_with_the_arm_ids_of_the_fleet_spec(stub: Any, fleet_stack: RecordedStack) -> None:
    created = {r.type: _create(stub, r) for r in fleet_stack.resources if r.custom}
    fleet = created[fleet_types.FLEET].id
    assert fleet.endswith("/resourceGroups/rg-kms-aks-fleet-platform/providers/Microsoft.ContainerService/fleets/"
                          "fleet-kms-aks-platform")
    assert created[fleet_types.UPDATE_STRATEGY].id == f"{fleet}/updateStrategies/staged"
    assert created[fleet_types.AUTO_UPGRADE_PROFILE].id == f"{fleet}/autoUpgradeProfiles/auto"
    outputs = from_struct(created[fleet_types.FLEET].properties)
    assert outputs["azureApiVersion"] == "2024-05-02-preview" and "hubProfile" not in outputs
    assert "fleetName" not in from_struct(created[fleet_types.AUTO_UPGRADE_PROFILE].properties)


@pytest.mark.parametrize(
    ("type_token", "change", "replaces"),
    [
        (fleet_types.FLEET_MEMBER, {"group": "eu-2"}, []),
        (
            fleet_types.FLEET_MEMBER,
            {"clusterResourceId": "/subscriptions/s/resourceGroups/r/providers/Microsoft.ContainerService/"
             "managedClusters/other"},
            ["clusterResourceId"],
        ),
        (fleet_types.FLEET_MEMBER, {"fleetName": "another-fleet"}, ["fleetName"]),
        (fleet_types.FLEET, {"location": "northeurope"}, ["location"]),
        (fleet_types.FLEET, {"tags": {"team": "platform"}}, []),
        (fleet_types.UPDATE_STRATEGY, {"strategy": {"stages": [{"name": "all", "groups": [{"name": "eu"}]}]}}, []),
        (
            fleet_types.AUTO_UPGRADE_PROFILE,
            {"updateStrategyId": "/subscriptions/s/resourceGroups/r/providers/Microsoft.ContainerService/fleets/f/"
             "updateStrategies/other"},
            ["updateStrategyId"],
        ),
        (fleet_types.AUTO_UPGRADE_PROFILE, {"channel": "Rapid"}, []),
    ],
)
def test_diff_follows_the_create_only_properties(
    stub: Any, fleet_stack: RecordedStack, type_token: str, change: dict, replaces: list[str]
) -> None:
    resource = next(r for r in fleet_stack.resources if r.type == type_token)
    created = _create(stub, resource)
    news = {**copy.deepcopy(resource.inputs), **change}
    diff = _diff(stub, resource, created, news)
    assert diff.changes == provider_pb2.DiffResponse.DIFF_SOME
    assert sorted(diff.replaces) == replaces
    assert set(diff.diffs) == set(change)


def test_a_hub_dns_prefix_change_replaces_the_fleet(stub: Any, fleet_stack: RecordedStack) -> None:
    fleet = next(r for r in fleet_stack.resources if r.type == fleet_types.FLEET)
    with_hub = copy.deepcopy(fleet)
    with_hub.inputs["hubProfile"] = {"dnsPrefix": "hub-a"}
    created = _create(stub, with_hub)
    diff = _diff(stub, with_hub, created, {**with_hub.inputs, "hubProfile": {"dnsPrefix": "hub-b"}})
    assert list(diff.replaces) == ["hubProfile.dnsPrefix"]
