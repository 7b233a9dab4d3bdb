"""The Azure stand-in over real gRPC, as the Pulumi engine drives it (no CLI needed).

One stand-in serves the module; each test starts from an empty cloud. Inputs are what the real program
registers under the SDK mock engine (`dev_stack`/`prod_stack`), so Create is checked against the very
outputs `mock_engine`'s builders gave for the same inputs.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterator
from importlib import metadata
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2
from pulumi.runtime.proto import plugin_pb2, provider_pb2, provider_pb2_grpc

from kms_aks_tools.recording import RecordedResource, RecordedStack
from kms_aks_tools.standin.wire import SECRET_SIG, SIG_KEY, UNKNOWN, from_struct, secret, to_struct, without_nulls
from kms_aks_tools.standin_provider import Standin, running_standin

Kind = provider_pb2.PropertyDiff


@pytest.fixture(scope="module")
def standin() -> Iterator[Standin]:
    with running_standin(sleep_cap=0.3) as running:
        yield running


@pytest.fixture(scope="module")
def stubs(standin: Standin) -> dict[str, provider_pb2_grpc.ResourceProviderStub]:
    return {
        package: provider_pb2_grpc.ResourceProviderStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        for package, port in standin.ports.items()
    }


@pytest.fixture(autouse=True)
def empty_cloud(standin: Standin) -> None:
    standin.cloud.states.clear()


def _stub(stubs: dict, type_token: str) -> provider_pb2_grpc.ResourceProviderStub:
    return stubs[type_token.split(":")[0]]


def _resource(stack: RecordedStack, type_token: str) -> RecordedResource:
    return next(r for r in stack.resources if r.type == type_token)


def _create(stubs: dict, r: RecordedResource, inputs: dict | None = None, preview: bool = False) -> Any:
    props = to_struct(r.inputs if inputs is None else inputs)
    request = provider_pb2.CreateRequest(urn=r.urn, type=r.type, name=r.name, properties=props, preview=preview)
    return _stub(stubs, r.type).Create(request)


def _create_all(stubs: dict, stack: RecordedStack) -> dict[str, Any]:
    return {r.urn: _create(stubs, r) for r in stack.resources if r.custom}


def _change(r: RecordedResource, created: Any, news: dict) -> dict[str, Any]:
    """The fields a Diff and an Update of `r` from its created state to `news` share."""
    return {
        "id": created.id,
        "urn": r.urn,
        "type": r.type,
        "name": r.name,
        "olds": created.properties,
        "old_inputs": to_struct(r.inputs),
        "news": to_struct(news),
    }


def _diff(stubs: dict, r: RecordedResource, created: Any, news: dict) -> provider_pb2.DiffResponse:
    return _stub(stubs, r.type).Diff(provider_pb2.DiffRequest(**_change(r, created, news)))


def _update(stubs: dict, r: RecordedResource, created: Any, news: dict) -> provider_pb2.UpdateResponse:
    return _stub(stubs, r.type).Update(provider_pb2.UpdateRequest(**_change(r, created, news)))



# ---------------------------------------------------------------------------------------------- plumbing


def test_handshake_attach_plugin_info_and_configure(stubs: dict) -> None:
    native = stubs["azure-native"]
    handshake = native.Handshake(provider_pb2.ProviderHandshakeRequest(engine_address="127.0.0.1:1"))
    assert handshake.accept_secrets and handshake.accept_resources
    assert native.Attach(plugin_pb2.PluginAttach(address="127.0.0.1:1")) == empty_pb2.Empty()
    assert native.GetPluginInfo(empty_pb2.Empty()).version == metadata.version("pulumi-azure-native")
    assert stubs["azuread"].GetPluginInfo(empty_pb2.Empty()).version == metadata.version("pulumi-azuread")
    configured = native.Configure(provider_pb2.ConfigureRequest(acceptSecrets=True, acceptResources=True))
    assert (configured.acceptSecrets, configured.supportsPreview, configured.acceptResources) == (True, True, True)


def test_debug_providers_value_names_every_package(standin: Standin) -> None:
    entries = dict(item.split(":") for item in standin.debug_providers.split(","))
    assert set(entries) == {"azure-native", "azuread", "time"}
    assert len(set(entries.values())) == 3


# ---------------------------------------------------------------------------------------------- create


@pytest.mark.parametrize("stack_fixture", ["dev_stack", "prod_stack"])
def test_create_gives_what_the_mock_engine_builders_give(
    stack_fixture: str, request: pytest.FixtureRequest, stubs: dict, standin: Standin
) -> None:
    stack: RecordedStack = request.getfixturevalue(stack_fixture)
    custom = [r for r in stack.resources if r.custom]
    assert {"azure-native:keyvault:Key", "azure-native:containerservice:ManagedCluster"} <= {r.type for r in custom}
    for r in custom:
        response = _create(stubs, r)
        assert response.id == r.id, r.type
        # Exactly the builder's outputs: azure-native 3.x keeps no `__inputs` in the state any more.
        assert from_struct(response.properties) == without_nulls(r.outputs), r.type
    assert set(standin.cloud.states) == {r.id for r in custom}


def test_preview_create_leaves_computed_outputs_unknown(dev_stack: RecordedStack, stubs: dict) -> None:
    key = _resource(dev_stack, "azure-native:keyvault:Key")
    identity = _resource(dev_stack, "azure-native:managedidentity:UserAssignedIdentity")
    cluster = _resource(dev_stack, "azure-native:containerservice:ManagedCluster")
    key_preview = from_struct(_create(stubs, key, preview=True).properties)
    # The outputs' shape: values the inputs give (flattened from `properties`), unknown what Azure computes.
    assert key_preview["kty"] == key.inputs["properties"]["kty"] == "RSA"
    assert key_preview["keySize"] == 2048
    assert key_preview["keyUri"] == key_preview["keyUriWithVersion"] == UNKNOWN
    assert "vaultName" not in key_preview  # a path parameter, never an output
    assert from_struct(_create(stubs, identity, preview=True).properties)["principalId"] == UNKNOWN
    cluster_preview = from_struct(_create(stubs, cluster, preview=True).properties)
    assert cluster_preview["fqdn"] == cluster_preview["identityProfile"] == UNKNOWN
    # A list of ids on input, a map on output: known type, unknown map.
    assert cluster_preview["identity"] == {"type": "UserAssigned", "userAssignedIdentities": UNKNOWN}
    assert cluster_preview["dnsPrefix"] == cluster.inputs["dnsPrefix"]


def test_preview_create_keeps_unknown_inputs_unknown(dev_stack: RecordedStack, stubs: dict) -> None:
    key = _resource(dev_stack, "azure-native:keyvault:Key")
    inputs = {**key.inputs, "properties": {**key.inputs["properties"], "kty": UNKNOWN}}
    assert from_struct(_create(stubs, key, inputs, preview=True).properties)["kty"] == UNKNOWN


def test_check_reports_a_missing_parent_path_parameter(dev_stack: RecordedStack, stubs: dict) -> None:
    key = _resource(dev_stack, "azure-native:keyvault:Key")
    news = {k: v for k, v in key.inputs.items() if k != "vaultName"}
    response = stubs["azure-native"].Check(provider_pb2.CheckRequest(urn=key.urn, type=key.type, news=to_struct(news)))
    assert [f.property for f in response.failures] == ["vaultName"]
    fine = stubs["azure-native"].Check(
        provider_pb2.CheckRequest(urn=key.urn, type=key.type, news=to_struct(key.inputs))
    )
    assert not fine.failures and from_struct(fine.inputs) == key.inputs


# ---------------------------------------------------------------------------------------------- diff


def test_unchanged_inputs_diff_none(dev_stack: RecordedStack, stubs: dict) -> None:
    created = _create_all(stubs, dev_stack)
    for r in dev_stack.resources:
        if r.custom:
            diff = _diff(stubs, r, created[r.urn], r.inputs)
            assert diff.changes == provider_pb2.DiffResponse.DIFF_NONE, r.type
            assert not diff.replaces and not diff.detailedDiff


def test_key_name_change_replaces_and_deletes_first(dev_stack: RecordedStack, stubs: dict) -> None:
    key = _resource(dev_stack, "azure-native:keyvault:Key")
    created = _create_all(stubs, dev_stack)[key.urn]
    diff = _diff(stubs, key, created, {**key.inputs, "keyName": "aks-kms-dev-2"})
    assert list(diff.replaces) == ["keyName"]
    assert diff.detailedDiff["keyName"].kind == Kind.UPDATE_REPLACE
    assert diff.deleteBeforeReplace  # a fixed name cannot exist twice
    assert list(diff.diffs) == ["keyName"]


def test_key_kty_change_is_an_in_place_update_as_in_azure_native(dev_stack: RecordedStack, stubs: dict) -> None:
    # keys.json has no x-ms-mutability on kty and Keyvault is not in replacement.go's forceNewMap.
    key = _resource(dev_stack, "azure-native:keyvault:Key")
    created = _create_all(stubs, dev_stack)[key.urn]
    news = copy.deepcopy(key.inputs)
    news["properties"]["kty"] = "RSA-HSM"
    diff = _diff(stubs, key, created, news)
    assert diff.changes == provider_pb2.DiffResponse.DIFF_SOME
    assert dict(diff.detailedDiff) == {"properties.kty": Kind(kind=Kind.UPDATE, inputDiff=True)}
    assert not diff.replaces and not diff.deleteBeforeReplace
    # ... and the re-PUT is refused by ARM's Keys_CreateIfNotExist.
    with pytest.raises(grpc.RpcError) as refused:
        _update(stubs, key, created, news)
    assert "KeyCreationParametersDidNotMatchExistingKey" in refused.value.details()


def test_cluster_location_replaces_node_count_and_tags_update(prod_stack: RecordedStack, stubs: dict) -> None:
    cluster = _resource(prod_stack, "azure-native:containerservice:ManagedCluster")
    created = _create_all(stubs, prod_stack)[cluster.urn]

    moved = _diff(stubs, cluster, created, {**cluster.inputs, "location": "northeurope"})
    assert list(moved.replaces) == ["location"] and moved.deleteBeforeReplace
    assert moved.detailedDiff["location"].kind == Kind.UPDATE_REPLACE

    same_place = _diff(stubs, cluster, created, {**cluster.inputs, "location": "West Europe"})
    assert same_place.changes == provider_pb2.DiffResponse.DIFF_NONE  # azure-native normalises locations

    scaled = copy.deepcopy(cluster.inputs)
    scaled["agentPoolProfiles"][0]["count"] = scaled["agentPoolProfiles"][0]["count"] + 1
    diff = _diff(stubs, cluster, created, scaled)
    assert dict(diff.detailedDiff) == {"agentPoolProfiles[0].count": Kind(kind=Kind.UPDATE, inputDiff=True)}
    assert not diff.replaces and list(diff.diffs) == ["agentPoolProfiles[0]"]

    tagged = _diff(stubs, cluster, created, {**cluster.inputs, "tags": {**cluster.inputs["tags"], "owner": "x"}})
    assert dict(tagged.detailedDiff) == {"tags.owner": Kind(kind=Kind.ADD, inputDiff=True)}
    assert not tagged.replaces

    network = copy.deepcopy(cluster.inputs)
    network["networkProfile"]["serviceCidr"] = "10.250.0.0/16"
    replaced = _diff(stubs, cluster, created, network)
    assert list(replaced.replaces) == ["networkProfile.serviceCidr"]


def test_role_assignment_principal_replaces_role_updates(prod_stack: RecordedStack, stubs: dict) -> None:
    grant = _resource(prod_stack, "azure-native:authorization:RoleAssignment")
    created = _create_all(stubs, prod_stack)[grant.urn]
    other = "00000000-0000-4000-8000-000000000001"
    assert list(_diff(stubs, grant, created, {**grant.inputs, "principalId": other}).replaces) == ["principalId"]
    assert list(_diff(stubs, grant, created, {**grant.inputs, "scope": "/subscriptions/x"}).replaces) == ["scope"]
    role = _diff(stubs, grant, created, {**grant.inputs, "roleDefinitionId": "/x/roleDefinitions/y"})
    assert role.changes == provider_pb2.DiffResponse.DIFF_SOME and not role.replaces


def test_access_policy_object_id_replaces(dev_stack: RecordedStack, stubs: dict) -> None:
    policy = _resource(dev_stack, "azure-native:keyvault:AccessPolicy")
    created = _create_all(stubs, dev_stack)[policy.urn]
    news = copy.deepcopy(policy.inputs)
    news["policy"]["objectId"] = "00000000-0000-4000-8000-000000000002"
    assert list(_diff(stubs, policy, created, news).replaces) == ["policy.objectId"]
    news = copy.deepcopy(policy.inputs)
    news["policy"]["permissions"]["keys"].append("get")
    diff = _diff(stubs, policy, created, news)
    assert not diff.replaces and dict(diff.detailedDiff) == {
        "policy.permissions.keys[2]": Kind(kind=Kind.ADD, inputDiff=True)
    }


# ---------------------------------------------------------------------------------------------- update


def test_key_expiry_change_fails_like_arm(dev_stack: RecordedStack, stubs: dict) -> None:
    key = _resource(dev_stack, "azure-native:keyvault:Key")
    _create_all(stubs, dev_stack)  # the vault first: the key reads its state
    with_expiry = copy.deepcopy(key.inputs)
    with_expiry["properties"]["attributes"]["expires"] = 1795824000
    stubs["azure-native"].Delete(provider_pb2.DeleteRequest(id=key.id, urn=key.urn, type=key.type))
    created = _create(stubs, key, with_expiry)
    key_with_expiry = RecordedResource(**{**key.__dict__, "inputs": with_expiry})
    later = copy.deepcopy(with_expiry)
    later["properties"]["attributes"]["expires"] = 1827360000
    diff = _diff(stubs, key_with_expiry, created, later)
    assert dict(diff.detailedDiff) == {"properties.attributes.expires": Kind(kind=Kind.UPDATE, inputDiff=True)}
    with pytest.raises(grpc.RpcError) as refused:
        _update(stubs, key_with_expiry, created, later)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "KeyCreationParametersDidNotMatchExistingKey" in refused.value.details()
    assert "doesn't match the given expiration date" in refused.value.details()


def test_key_change_arm_ignores_returns_the_old_key(dev_stack: RecordedStack, stubs: dict) -> None:
    key = _resource(dev_stack, "azure-native:keyvault:Key")
    created = _create_all(stubs, dev_stack)[key.urn]
    news = copy.deepcopy(key.inputs)
    news["properties"]["keyOps"] = ["wrapKey", "unwrapKey"]
    updated = from_struct(_update(stubs, key, created, news).properties)
    assert updated["keyOps"] == ["encrypt", "decrypt"]  # no write: the existing key comes back
    assert updated["keyUriWithVersion"] == from_struct(created.properties)["keyUriWithVersion"]


def test_cluster_update_in_place_stores_new_outputs(prod_stack: RecordedStack, stubs: dict, standin: Standin) -> None:
    cluster = _resource(prod_stack, "azure-native:containerservice:ManagedCluster")
    created = _create_all(stubs, prod_stack)[cluster.urn]
    scaled = copy.deepcopy(cluster.inputs)
    scaled["agentPoolProfiles"][0]["count"] = 5
    updated = from_struct(_update(stubs, cluster, created, scaled).properties)
    assert updated["agentPoolProfiles"][0]["count"] == 5
    assert standin.cloud.states[cluster.id][1]["agentPoolProfiles"][0]["count"] == 5


# ---------------------------------------------------------------------------------------------- read, delete


def test_read_returns_the_stored_state_and_delete_removes_it(dev_stack: RecordedStack, stubs: dict) -> None:
    identity = _resource(dev_stack, "azure-native:managedidentity:UserAssignedIdentity")
    created = _create(stubs, identity)
    native = stubs["azure-native"]
    read = native.Read(
        provider_pb2.ReadRequest(
            id=created.id,
            urn=identity.urn,
            type=identity.type,
            properties=created.properties,
            inputs=to_struct(identity.inputs),  # a refresh sends the inputs it has (azure-native 3.x: no __inputs)
        )
    )
    assert read.id == created.id
    assert from_struct(read.properties) == from_struct(created.properties)
    assert from_struct(read.inputs) == identity.inputs
    native.Delete(provider_pb2.DeleteRequest(id=created.id, urn=identity.urn, type=identity.type))
    gone = native.Read(provider_pb2.ReadRequest(id=created.id, urn=identity.urn, properties=created.properties))
    assert gone.id == ""  # a refresh drops it from the stack


def test_creating_an_existing_resource_fails_like_azure_native(dev_stack: RecordedStack, stubs: dict) -> None:
    group = _resource(dev_stack, "azure-native:resources:ResourceGroup")
    _create(stubs, group)
    with pytest.raises(grpc.RpcError) as exists:
        _create(stubs, group)
    assert exists.value.code() == grpc.StatusCode.ALREADY_EXISTS


# ---------------------------------------------------------------------------------------------- invoke, time, secrets


def test_invoke_answers_get_client_config(stubs: dict) -> None:
    native = stubs["azure-native"].Invoke(provider_pb2.InvokeRequest(tok="azure-native:authorization:getClientConfig"))
    assert set(from_struct(getattr(native, "return"))) == {"clientId", "objectId", "subscriptionId", "tenantId"}
    entra = stubs["azuread"].Invoke(provider_pb2.InvokeRequest(tok="azuread:index/getClientConfig:getClientConfig"))
    assert from_struct(getattr(entra, "return"))["tenantId"] == from_struct(getattr(native, "return"))["tenantId"]
    with pytest.raises(grpc.RpcError) as unknown:
        stubs["azure-native"].Invoke(provider_pb2.InvokeRequest(tok="azure-native:keyvault:getVault"))
    assert unknown.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_time_sleep_waits_but_capped(stubs: dict) -> None:
    urn = "urn:pulumi:dev::kms-aks::time:index/sleep:Sleep::grant-propagation"
    request = provider_pb2.CreateRequest(
        urn=urn, type="time:index/sleep:Sleep", name="grant-propagation", properties=to_struct({"createDuration": "2m"})
    )
    started = time.monotonic()
    created = stubs["time"].Create(request)
    waited = time.monotonic() - started
    assert 0.3 <= waited < 2.0  # 2m asked, capped at the module's 0.3 s
    assert from_struct(created.properties)["createDuration"] == "2m"


def test_secret_inputs_stay_secret_and_out_of_the_log(
    dev_stack: RecordedStack, stubs: dict, caplog: pytest.LogCaptureFixture
) -> None:
    group = _resource(dev_stack, "azure-native:resources:ResourceGroup")
    inputs = {**group.inputs, "tags": {**group.inputs.get("tags", {}), "token": secret("s3cr3t-value")}}
    with caplog.at_level(logging.INFO, logger="kms_aks_tools.standin"):
        created = _create(stubs, group, inputs)
    state = from_struct(created.properties)
    assert state["tags"][SIG_KEY] == SECRET_SIG  # the engine's top-level annotateSecrets would agree
    assert state["tags"]["value"]["token"] == "s3cr3t-value"
    assert caplog.records, "the stand-in logs every RPC"
    assert "s3cr3t-value" not in caplog.text


def test_check_autonames_like_azure_native_and_replacement_creates_first(
    prod_stack: RecordedStack, stubs: dict
) -> None:
    grant = _resource(prod_stack, "azure-native:authorization:RoleAssignment")
    native = stubs["azure-native"]
    assert "roleAssignmentName" not in grant.inputs
    checked = from_struct(
        native.Check(provider_pb2.CheckRequest(urn=grant.urn, type=grant.type, news=to_struct(grant.inputs))).inputs
    )
    name = checked["roleAssignmentName"]
    assert len(name) == 36 and checked["__createBeforeDelete"] is True  # AutoNameUuid
    again = native.Check(
        provider_pb2.CheckRequest(urn=grant.urn, type=grant.type, olds=to_struct(checked), news=to_struct(grant.inputs))
    )
    assert from_struct(again.inputs)["roleAssignmentName"] == name  # an existing resource keeps its name

    named = RecordedResource(**{**grant.__dict__, "inputs": checked})
    created = _create(stubs, named)
    assert created.id.endswith(f"/roleAssignments/{name}")
    assert "__createBeforeDelete" not in from_struct(created.properties)  # not part of the ARM body
    moved = _diff(stubs, named, created, {**checked, "principalId": "00000000-0000-4000-8000-000000000003"})
    assert list(moved.replaces) == ["principalId"]
    assert not moved.deleteBeforeReplace  # auto-named: the replacement is created first


def test_single_port_serves_every_package() -> None:
    with running_standin(sleep_cap=0.0, single_port=True) as single:
        assert len(set(single.ports.values())) == 1
        stub = provider_pb2_grpc.ResourceProviderStub(grpc.insecure_channel(f"127.0.0.1:{single.ports['azuread']}"))
        assert stub.GetPluginInfo(empty_pb2.Empty()).version == ""  # cannot tell which package asks
        urn = "urn:pulumi:dev::kms-aks::azuread:index/group:Group::admins"
        group = stub.Create(
            provider_pb2.CreateRequest(
                urn=urn, properties=to_struct({"displayName": "admins", "securityEnabled": True})
            )
        )
        assert from_struct(group.properties)["objectId"] == group.id
        config = stub.Invoke(provider_pb2.InvokeRequest(tok="azure-native:authorization:getClientConfig"))
        assert "subscriptionId" in from_struct(getattr(config, "return"))


def test_time_sleep_destroy_duration_is_capped_too(stubs: dict) -> None:
    urn = "urn:pulumi:dev::kms-aks::time:index/sleep:Sleep::wait"
    props = to_struct({"createDuration": "0s", "destroyDuration": "1h"})
    created = stubs["time"].Create(provider_pb2.CreateRequest(urn=urn, properties=props))
    started = time.monotonic()
    stubs["time"].Delete(provider_pb2.DeleteRequest(id=created.id, urn=urn, properties=created.properties))
    assert 0.3 <= time.monotonic() - started < 2.0


def test_preview_update_keeps_what_each_provider_keeps(dev_stack: RecordedStack, stubs: dict) -> None:
    created = _create_all(stubs, dev_stack)
    group = _resource(dev_stack, "azuread:index/group:Group")
    renamed = {**group.inputs, "displayName": "aks-admins-renamed"}
    request = provider_pb2.UpdateRequest(
        id=created[group.urn].id,
        urn=group.urn,
        olds=created[group.urn].properties,
        news=to_struct(renamed),
        preview=True,
    )
    planned = from_struct(stubs["azuread"].Update(request).properties)
    assert planned["objectId"] == created[group.urn].id and planned["displayName"] == "aks-admins-renamed"

    identity = _resource(dev_stack, "azure-native:managedidentity:UserAssignedIdentity")
    tagged = {**identity.inputs, "tags": {"stack": "dev", "owner": "x"}}
    request = provider_pb2.UpdateRequest(
        id=created[identity.urn].id,
        urn=identity.urn,
        olds=created[identity.urn].properties,
        news=to_struct(tagged),
        preview=True,
    )
    planned = from_struct(stubs["azure-native"].Update(request).properties)
    assert (
        planned["tags"] == tagged["tags"] and planned["name"] == from_struct(created[identity.urn].properties)["name"]
    )
    assert planned["principalId"] == UNKNOWN  # azure-native's PreviewOutputs: computed outputs are unknown


def test_auto_names_follow_the_engines_random_seed(dev_stack: RecordedStack, stubs: dict) -> None:
    # An update plan saves the seed: `up --plan` must get the name its preview showed.
    role = {"principalId": "p", "roleDefinitionId": "r", "scope": "/subscriptions/s"}
    urn = "urn:pulumi:dev::kms-aks::azure-native:authorization:RoleAssignment::grant"

    def name(seed: bytes) -> str:
        request = provider_pb2.CheckRequest(urn=urn, news=to_struct(role), randomSeed=seed)
        return from_struct(stubs["azure-native"].Check(request).inputs)["roleAssignmentName"]

    assert name(b"seed-1") == name(b"seed-1") != name(b"seed-2")
