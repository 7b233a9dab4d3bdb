"""The Azure stand-in over real gRPC, as the Pulumi engine drives it (no CLI needed).

One stand-in serves the module; each test starts from an empty cloud. Inputs are what the real program
registers under the SDK mock engine (`dev_stack`/`prod_stack`), passed through the stand-in's Check first, as the
engine does. Expected values are literals from azure-native's source, its recorded gRPC logs, the ARM REST specs
and Azure's documented behaviour (each cited where it is used), never values read back from the stand-in's tables.
"""

from __future__ import annotations

import copy
import logging
import re
import time
from collections.abc import Iterator
from importlib import metadata
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2
from pulumi.runtime.proto import plugin_pb2, provider_pb2, provider_pb2_grpc

from kms_aks_tools.offline.recording import RecordedResource, RecordedStack
from kms_aks_tools.standin.provider import Standin, running_standin
from kms_aks_tools.standin.wire import SECRET_SIG, SIG_KEY, UNKNOWN, from_struct, secret, to_struct

Kind = provider_pb2.PropertyDiff
SEED = b"kms-aks test seed"
CLUSTER = "azure-native:containerservice:ManagedCluster"


# The cap the sleep tests measure. Every other test waits no time: the program's propagation wait (a
# time:index/sleep:Sleep) is in every stack these tests create, and 0.3 s a stack added seconds to the suite.
SLEEP_CAP = 0.3


@pytest.fixture(scope="module")
def standin() -> Iterator[Standin]:
    # Grants take effect at once here; the propagation tests set a delay themselves.
    with running_standin(sleep_cap=0.0, grant_propagation=0.0) as running:
        yield running


@pytest.fixture(scope="module")
def stubs(standin: Standin) -> dict[str, provider_pb2_grpc.ResourceProviderStub]:
    return {
        package: provider_pb2_grpc.ResourceProviderStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        for package, port in standin.ports.items()
    }


@pytest.fixture(autouse=True)
def empty_cloud(standin: Standin) -> Iterator[None]:
    standin.cloud.states.clear()
    standin.cloud.created_at.clear()
    standin.cloud.grant_propagation = 0.0
    standin.cloud.config_location = None
    standin.cloud.sleep_cap = 0.0
    yield


@pytest.fixture
def capped_sleeps(standin: Standin) -> None:
    standin.cloud.sleep_cap = SLEEP_CAP


def _stub(stubs: dict, type_token: str) -> provider_pb2_grpc.ResourceProviderStub:
    return stubs[type_token.split(":")[0]]


def _resource(stack: RecordedStack, type_token: str) -> RecordedResource:
    return next(r for r in stack.resources if r.type == type_token)


def _check(stubs: dict, r: RecordedResource, news: dict, olds: dict | None = None) -> Any:
    request = provider_pb2.CheckRequest(
        urn=r.urn, type=r.type, name=r.name, news=to_struct(news), olds=to_struct(olds or {}), randomSeed=SEED
    )
    return _stub(stubs, r.type).Check(request)


def _checked(stubs: dict, r: RecordedResource, news: dict, olds: dict | None = None) -> dict:
    """The inputs as the engine passes them on: through Check, which must not fail."""
    response = _check(stubs, r, news, olds)
    assert not response.failures, (r.urn, [f.reason for f in response.failures])
    return from_struct(response.inputs)


def _create(stubs: dict, r: RecordedResource, inputs: dict | None = None, preview: bool = False) -> Any:
    props = to_struct(_checked(stubs, r, r.inputs if inputs is None else inputs))
    request = provider_pb2.CreateRequest(urn=r.urn, type=r.type, name=r.name, properties=props, preview=preview)
    return _stub(stubs, r.type).Create(request)


def _create_all(stubs: dict, stack: RecordedStack, skip: set[str] | None = None) -> dict[str, Any]:
    """Creates the stack's custom resources in registration order (the order the engine's plan respects)."""
    return {r.urn: _create(stubs, r) for r in stack.resources if r.custom and r.type not in (skip or set())}


def _change(stubs: dict, r: RecordedResource, created: Any, news: dict, old: dict | None = None) -> dict[str, Any]:
    """The fields a Diff and an Update of `r` from its created state (inputs `old`) to `news` share."""
    old_inputs = _checked(stubs, r, r.inputs if old is None else old)
    return {
        "id": created.id,
        "urn": r.urn,
        "type": r.type,
        "name": r.name,
        "olds": created.properties,
        "old_inputs": to_struct(old_inputs),
        "news": to_struct(_checked(stubs, r, news, olds=old_inputs)),
    }


def _diff(stubs: dict, r: RecordedResource, created: Any, news: dict, old: dict | None = None) -> Any:
    return _stub(stubs, r.type).Diff(provider_pb2.DiffRequest(**_change(stubs, r, created, news, old)))


def _update(stubs: dict, r: RecordedResource, created: Any, news: dict, old: dict | None = None) -> Any:
    return _stub(stubs, r.type).Update(provider_pb2.UpdateRequest(**_change(stubs, r, created, news, old)))


def _refused(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as refused:
        call()
    return refused.value


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

SUBSCRIPTION = "6b1d2f5e-3c4a-4e8b-9a7d-1f2e3d4c5b6a"  # the mock engine's getClientConfig subscription


@pytest.mark.parametrize("stack_fixture", ["dev_stack", "prod_stack"])
def test_create_answers_with_arm_ids_and_outputs_as_azure_native_does(
    stack_fixture: str, request: pytest.FixtureRequest, stubs: dict, standin: Standin
) -> None:
    stack: RecordedStack = request.getfixturevalue(stack_fixture)
    created = _create_all(stubs, stack)
    by_type = {r.type: (r, created[r.urn]) for r in stack.resources if r.custom}
    vault_r, vault = by_type["azure-native:keyvault:Vault"]
    rg = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{vault_r.inputs['resourceGroupName']}"
    key_r, key = by_type["azure-native:keyvault:Key"]
    vault_name, key_name = vault_r.inputs["vaultName"], key_r.inputs["keyName"]
    # ARM ids: the PUT paths of keyvault.json / keys.json (2024-11-01).
    assert vault.id == f"{rg}/providers/Microsoft.KeyVault/vaults/{vault_name}"
    assert key.id == f"{vault.id}/keys/{key_name}"
    key_out = from_struct(key.properties)
    # Key outputs are flat (keys.json Key: kid -> keyUriWithVersion), the version 32 hex digits (getKeyVersion.json).
    assert key_out["keyUri"] == f"https://{vault_name}.vault.azure.net/keys/{key_name}"
    assert re.fullmatch(rf"https://{vault_name}\.vault\.azure\.net/keys/{key_name}/[0-9a-f]{{32}}",
                        key_out["keyUriWithVersion"])
    assert key_out["type"] == "Microsoft.KeyVault/vaults/keys"
    # azure-native 3.x keeps no `__inputs` in the state (provider.go checkpointObject).
    assert all("__inputs" not in from_struct(c.properties) for c in created.values())
    _, identity = by_type["azure-native:managedidentity:UserAssignedIdentity"]
    identity_out = from_struct(identity.properties)
    assert identity.id == f"{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{identity_out['name']}"
    cluster = from_struct(by_type[CLUSTER][1].properties)
    # The cluster's identity output maps each identity id to that identity's principal (managedClusters.json
    # UserAssignedIdentities: a map of ids to {principalId, clientId}, where the input was a list).
    assert cluster["identity"]["userAssignedIdentities"] == {
        identity.id: {"principalId": identity_out["principalId"], "clientId": identity_out["clientId"]}
    }
    assert cluster["securityProfile"]["azureKeyVaultKms"]["keyId"] == key_out["keyUriWithVersion"]
    # What the stand-in answered is what its ARM holds.
    for r in stack.resources:
        if r.custom and r.type.startswith("azure-native:"):
            assert standin.cloud.states[created[r.urn].id][0] == r.type


def test_preview_create_leaves_computed_outputs_unknown(dev_stack: RecordedStack, stubs: dict) -> None:
    key = _resource(dev_stack, "azure-native:keyvault:Key")
    identity = _resource(dev_stack, "azure-native:managedidentity:UserAssignedIdentity")
    cluster = _resource(dev_stack, CLUSTER)
    key_preview = from_struct(_create(stubs, key, preview=True).properties)
    # The outputs' shape: values the inputs give (flattened from `properties`), unknown what Azure computes.
    assert key_preview["kty"] == "RSA"
    assert key_preview["keySize"] == 2048
    assert key_preview["keyUri"] == key_preview["keyUriWithVersion"] == UNKNOWN
    assert "vaultName" not in key_preview  # a path parameter, never an output
    assert from_struct(_create(stubs, identity, preview=True).properties)["principalId"] == UNKNOWN
    cluster_preview = from_struct(_create(stubs, cluster, preview=True).properties)
    assert cluster_preview["fqdn"] == cluster_preview["identityProfile"] == UNKNOWN
    # A list of ids on input, a map on output: known type, unknown map.
    assert cluster_preview["identity"] == {"type": "UserAssigned", "userAssignedIdentities": UNKNOWN}
    assert cluster_preview["dnsPrefix"] == "aks-kms-dev"


def test_preview_create_keeps_unknown_inputs_unknown(dev_stack: RecordedStack, stubs: dict) -> None:
    key = _resource(dev_stack, "azure-native:keyvault:Key")
    inputs = {**key.inputs, "properties": {**key.inputs["properties"], "kty": UNKNOWN}}
    assert from_struct(_create(stubs, key, inputs, preview=True).properties)["kty"] == UNKNOWN


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


@pytest.mark.usefixtures("capped_sleeps")
def test_time_sleep_waits_but_capped(stubs: dict) -> None:
    urn = "urn:pulumi:dev::kms-aks::time:index/sleep:Sleep::grant-propagation"
    request = provider_pb2.CreateRequest(
        urn=urn, type="time:index/sleep:Sleep", name="grant-propagation", properties=to_struct({"createDuration": "2m"})
    )
    started = time.monotonic()
    created = stubs["time"].Create(request)
    waited = time.monotonic() - started
    assert SLEEP_CAP <= waited < 2.0  # 2m asked, capped
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


@pytest.mark.usefixtures("capped_sleeps")
def test_time_sleep_destroy_duration_is_capped_too(stubs: dict) -> None:
    urn = "urn:pulumi:dev::kms-aks::time:index/sleep:Sleep::wait"
    props = to_struct({"createDuration": "0s", "destroyDuration": "1h"})
    created = stubs["time"].Create(provider_pb2.CreateRequest(urn=urn, properties=props))
    started = time.monotonic()
    stubs["time"].Delete(provider_pb2.DeleteRequest(id=created.id, urn=urn, properties=created.properties))
    assert SLEEP_CAP <= time.monotonic() - started < 2.0


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


# ---------------------------------------------------------------------------------------------- Check: defaults
# pulumi/pulumi-azure-native provider/pkg/provider/testdata/recorded/TestProviderUpgrade/upgrade-keyvault/2.76.0/
# grpc.json: the provider's own recorded Check exchanges (provider config azure-native:location=westus2). 2.76 is a
# v2 provider, so its answers carry no `azureApiVersion` (a 3.x default, checked separately below), and its random
# names came from an unseeded generator: the replay checks their shape, not their characters.
RECORDED_LOCATION = "westus2"
RECORDED_CHECKS = [
    (
        "urn:pulumi:test::upgrade-keyvault::azure-native:resources:ResourceGroup::rg",
        {},
        {"__createBeforeDelete": True, "location": "westus2", "resourceGroupName": "rg8979559d"},
    ),
    (
        "urn:pulumi:test::upgrade-keyvault::azure-native:keyvault:Vault::vault",
        {
            "properties": {
                "accessPolicies": [
                    {
                        "objectId": "d244a8da-9934-46fc-8624-05cf44c8f3a0",
                        "permissions": {
                            "keys": ["Get", "Create", "Delete", "List", "Recover", "Purge"],
                            "secrets": ["Get", "List", "Set", "Delete", "Recover", "Purge"],
                        },
                        "tenantId": "706143bc-e1d4-4593-aee2-c9dc60ab9be7",
                    }
                ],
                "sku": {"family": "A", "name": "standard"},
                "tenantId": "706143bc-e1d4-4593-aee2-c9dc60ab9be7",
            },
            "resourceGroupName": "rg8979559d",
        },
        {"__createBeforeDelete": True, "location": "westus2", "vaultName": "vault0e651f7a"},
    ),
    (
        "urn:pulumi:test::upgrade-keyvault::azure-native:keyvault:Key::key",
        {"properties": {"kty": "RSA"}, "resourceGroupName": "rg8979559d", "vaultName": "vault0e651f7a"},
        {"keyName": "key"},
    ),
]


def _random_name_shape(recorded: str) -> str:
    """A recorded random auto-name as a pattern: its URN name, then 8 characters of [0-9a-f]."""
    return re.escape(recorded[:-8]) + "[0-9a-f]{8}" if re.search("[0-9a-f]{8}$", recorded) else re.escape(recorded)


@pytest.mark.parametrize(("urn", "news", "added"), RECORDED_CHECKS, ids=["ResourceGroup", "Vault", "Key"])
def test_check_replays_azure_natives_recorded_answers(
    stubs: dict, standin: Standin, urn: str, news: dict, added: dict
) -> None:
    native = stubs["azure-native"]
    native.Configure(provider_pb2.ConfigureRequest(variables={"azure-native:config:location": RECORDED_LOCATION}))
    response = native.Check(provider_pb2.CheckRequest(urn=urn, news=to_struct(news), randomSeed=SEED))
    assert not response.failures
    inputs = from_struct(response.inputs)
    inputs.pop("azureApiVersion")  # the 3.x default, absent from a 2.76 recording
    assert {k: v for k, v in inputs.items() if k not in added} == news  # the program's inputs, untouched
    assert set(inputs) - set(news) == set(added)
    for key, value in added.items():
        if key.endswith("Name") and "__createBeforeDelete" in added:
            assert re.fullmatch(_random_name_shape(value), inputs[key]), (key, inputs[key])
        else:
            assert inputs[key] == value, key  # copy-named Key: exactly the URN's name, no create-before-delete


def test_check_defaults_azure_api_version_to_the_sdks_api_version(dev_stack: RecordedStack, stubs: dict) -> None:
    # 3.x applyDefaults: azureApiVersion = the metadata's API version; the SDK's docstrings name the same version
    # ("Uses Azure REST API version 2024-11-01" in pulumi_azure_native/keyvault/key.py, 3.x).
    expected = {
        "azure-native:keyvault:Vault": "2024-11-01",
        "azure-native:keyvault:Key": "2024-11-01",
        "azure-native:managedidentity:UserAssignedIdentity": "2023-01-31",
        CLUSTER: "2025-09-01",
    }
    for type_token, version in expected.items():
        assert _checked(stubs, _resource(dev_stack, type_token), _resource(dev_stack, type_token).inputs)[
            "azureApiVersion"
        ] == version, type_token
    # A custom resource's metadata has no API version (custom_keyvault_accesspolicy.go): nothing is added.
    policy = _resource(dev_stack, "azure-native:keyvault:AccessPolicy")
    assert _checked(stubs, policy, policy.inputs) == policy.inputs


def test_check_takes_a_missing_location_from_the_resource_group(dev_stack: RecordedStack, stubs: dict) -> None:
    group = _resource(dev_stack, "azure-native:resources:ResourceGroup")
    identity = _resource(dev_stack, "azure-native:managedidentity:UserAssignedIdentity")
    without = {k: v for k, v in identity.inputs.items() if k != "location"}
    # No resource group in ARM yet, no provider config: azure-native's location failure, with its hint.
    missing = _check(stubs, identity, without)
    assert [f.reason for f in missing.failures] == [
        "missing required property 'location'. Either set it explicitly or configure it with "
        "'pulumi config set azure-native:location <value>'."
    ]
    assert [f.property for f in missing.failures] == [""]  # azure-native sets only the reason
    _create(stubs, group, {**group.inputs, "location": "northeurope"})
    assert _checked(stubs, identity, without)["location"] == "northeurope"
    # While the group's name is unknown (preview), so is the location.
    assert _checked(stubs, identity, {**without, "resourceGroupName": UNKNOWN})["location"] == UNKNOWN
    # An existing resource keeps its old location.
    assert _checked(stubs, identity, without, olds={**identity.inputs, "location": "eastus"})["location"] == "eastus"


def test_check_autonames_a_role_assignment_with_a_uuid_and_creates_its_replacement_first(
    prod_stack: RecordedStack, stubs: dict
) -> None:
    grant = _resource(prod_stack, "azure-native:authorization:RoleAssignment")
    native = stubs["azure-native"]
    assert "roleAssignmentName" not in grant.inputs
    checked = from_struct(
        native.Check(provider_pb2.CheckRequest(urn=grant.urn, type=grant.type, news=to_struct(grant.inputs))).inputs
    )
    name = checked["roleAssignmentName"]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", name)  # AutoNameUuid
    assert checked["__createBeforeDelete"] is True
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


def test_a_copy_named_key_is_replaced_delete_first(dev_stack: RecordedStack, stubs: dict) -> None:
    # AutoNameCopy sets no __createBeforeDelete (getDefaultName returns randomlyNamed=false): a Key named by the
    # provider still cannot exist twice, so its replacement deletes first.
    key = _resource(dev_stack, "azure-native:keyvault:Key")
    unnamed = {k: v for k, v in key.inputs.items() if k != "keyName"}
    checked = _checked(stubs, key, unnamed)
    assert checked["keyName"] == key.name and "__createBeforeDelete" not in checked
    _create_all(stubs, dev_stack, skip={CLUSTER, "azure-native:keyvault:Key"})
    named = RecordedResource(**{**key.__dict__, "inputs": unnamed})
    created = _create(stubs, named)
    moved = _diff(stubs, named, created, {**unnamed, "vaultName": "kv-other-01"})
    assert list(moved.replaces) == ["vaultName"] and moved.deleteBeforeReplace


# ---------------------------------------------------------------------------------------------- Check: refusals
# The reasons are azure-native's own format strings (provider.go validateType / validateProperty); the constraints
# are the REST specs' (cited in kms_aks_tools/standin/schema.py and repeated here as literals).


def _reasons(stubs: dict, r: RecordedResource, news: dict) -> list[str]:
    return [f.reason for f in _check(stubs, r, news).failures]


def test_check_refuses_missing_required_properties(dev_stack: RecordedStack, stubs: dict) -> None:
    vault = _resource(dev_stack, "azure-native:keyvault:Vault")
    no_tenant = copy.deepcopy(vault.inputs)
    del no_tenant["properties"]["tenantId"]
    del no_tenant["properties"]["sku"]["family"]
    # keyvault.json: VaultProperties requires tenantId and sku, Sku requires family and name.
    assert sorted(_reasons(stubs, vault, no_tenant)) == [
        "missing required property 'properties.sku.family'",
        "missing required property 'properties.tenantId'",
    ]
    key = _resource(dev_stack, "azure-native:keyvault:Key")
    no_vault = {k: v for k, v in key.inputs.items() if k not in ("vaultName", "properties")}
    assert _reasons(stubs, key, no_vault) == [
        "missing required property 'vaultName'",
        "missing required property 'properties'",  # KeyCreateParameters requires properties
    ]
    grant = _resource(dev_stack, "azure-native:keyvault:AccessPolicy")
    assert _reasons(stubs, grant, {k: v for k, v in grant.inputs.items() if k != "policy"}) == [
        "missing required property 'policy'"
    ]


def test_check_refuses_wrong_types_with_azure_natives_words(prod_stack: RecordedStack, stubs: dict) -> None:
    key = _resource(prod_stack, "azure-native:keyvault:Key")
    typed = copy.deepcopy(key.inputs)
    typed["properties"]["keySize"] = "3072"
    typed["properties"]["keyOps"] = "encrypt"
    assert sorted(_reasons(stubs, key, typed)) == [
        "'properties.keyOps' should be of type 'array' but got a string",
        "'properties.keySize' should be of type 'integer' but got a string",
    ]
    typed["properties"]["keySize"] = 3072.5
    typed["properties"]["keyOps"] = ["encrypt", "decrypt"]
    assert _reasons(stubs, key, typed) == ["'properties.keySize' must be an integer but got 3072.500000"]
    cluster = _resource(prod_stack, CLUSTER)
    assert _reasons(stubs, cluster, {**cluster.inputs, "dnsPrefix": ["a"]}) == [
        "'dnsPrefix' should be of type 'string' but got an array"
    ]
    # A boolean is never type-checked (validateProperty has no case for it); neither is an unknown value.
    assert _reasons(stubs, cluster, {**cluster.inputs, "dnsPrefix": True}) == []
    assert _reasons(stubs, cluster, {**cluster.inputs, "dnsPrefix": UNKNOWN}) == []


def test_check_refuses_names_and_sizes_outside_the_specs_constraints(prod_stack: RecordedStack, stubs: dict) -> None:
    vault = _resource(prod_stack, "azure-native:keyvault:Vault")
    assert _reasons(stubs, vault, {**vault.inputs, "vaultName": "kv_prod"}) == [
        "'vaultName' does not match expression '^[a-zA-Z0-9-]{3,24}$'"
    ]
    key = _resource(prod_stack, "azure-native:keyvault:Key")
    assert _reasons(stubs, key, {**key.inputs, "keyName": "aks.kms"}) == [
        "'keyName' does not match expression '^[a-zA-Z0-9-]{1,127}$'"
    ]
    cluster = _resource(prod_stack, CLUSTER)
    long_name = "a" * 64
    assert _reasons(stubs, cluster, {**cluster.inputs, "resourceName": long_name}) == [
        "'resourceName' is too long (64): at most 63 characters allowed",
        "'resourceName' does not match expression "
        "'^[a-zA-Z0-9]$|^[a-zA-Z0-9][-_a-zA-Z0-9]{0,61}[a-zA-Z0-9]$'",
    ]
    pools = copy.deepcopy(cluster.inputs)
    pools["agentPoolProfiles"][0]["name"] = "System"
    pools["agentPoolProfiles"][0]["osDiskSizeGB"] = 4096
    assert sorted(_reasons(stubs, cluster, pools)) == [
        "'agentPoolProfiles[0].name' does not match expression '^[a-z][a-z0-9]{0,11}$'",
        "'agentPoolProfiles[0].osDiskSizeGB' is too high (4096.000000 > 2048.000000)",
    ]
    group = _resource(prod_stack, "azure-native:resources:ResourceGroup")
    assert _reasons(stubs, group, {**group.inputs, "resourceGroupName": ""}) == [
        "'resourceGroupName' is too short (0): at least 1 characters required",
        "'resourceGroupName' does not match expression '^[-\\w\\._\\(\\)]+$'",
    ]


def test_an_enum_value_passes_check_and_arm_refuses_it_at_create(dev_stack: RecordedStack, stubs: dict) -> None:
    # azure-native's Check has no enum validation; ARM does (keys.json JsonWebKeyType: EC, EC-HSM, RSA, RSA-HSM).
    _create_all(stubs, dev_stack, skip={CLUSTER, "azure-native:keyvault:Key"})
    key = _resource(dev_stack, "azure-native:keyvault:Key")
    odd = copy.deepcopy(key.inputs)
    odd["properties"]["kty"] = "RSA-4096"
    assert _reasons(stubs, key, odd) == []
    refused = _refused(lambda: _create(stubs, key, odd))
    assert "Status=400" in refused.details() and "'properties.kty' is 'RSA-4096'" in refused.details()
    assert "RSA-HSM" in refused.details()
    odd["properties"]["kty"] = "rsa"  # ARM parses enums case-insensitively
    assert _create(stubs, key, odd).id.endswith(f"/keys/{key.inputs['keyName']}")


# ---------------------------------------------------------------------------------------------- AKS KMS at PUT
# Microsoft's "Troubleshoot KMS etcd encryption" (AKS): AKS validates the KMS identity's permission at create time
# and fails with AzureKeyVaultKmsValidateIdentityPermissionCustomerError when the grant is missing or late.

GRANTS = {"azure-native:keyvault:AccessPolicy", "azure-native:authorization:RoleAssignment"}
WAIT = "time:index/sleep:Sleep"


@pytest.mark.parametrize("stack_fixture", ["dev_stack", "prod_stack"])
def test_a_kms_cluster_without_its_identitys_grant_is_refused(
    stack_fixture: str, request: pytest.FixtureRequest, stubs: dict, standin: Standin
) -> None:
    stack: RecordedStack = request.getfixturevalue(stack_fixture)
    _create_all(stubs, stack, skip={CLUSTER, *GRANTS})
    cluster = _resource(stack, CLUSTER)
    refused = _refused(lambda: _create(stubs, cluster))
    assert 'Code="AzureKeyVaultKmsValidateIdentityPermissionCustomerError"' in refused.details()
    assert not any(t == CLUSTER for t, _ in standin.cloud.states.values()), "nothing half-created"


def test_a_grant_takes_effect_only_after_the_propagation_delay(
    prod_stack: RecordedStack, stubs: dict, standin: Standin
) -> None:
    standin.cloud.grant_propagation = 0.4
    _create_all(stubs, prod_stack, skip={CLUSTER, *GRANTS, WAIT})
    for r in prod_stack.resources:
        if r.type in GRANTS:
            _create(stubs, r)
    cluster = _resource(prod_stack, CLUSTER)
    early = _refused(lambda: _create(stubs, cluster))  # the race the propagation wait exists for
    assert "AzureKeyVaultKmsValidateIdentityPermissionCustomerError" in early.details()
    time.sleep(0.45)
    assert _create(stubs, cluster).id.endswith(f"/managedClusters/{cluster.inputs['resourceName']}")


def test_an_rbac_grant_counts_at_key_or_vault_scope_and_only_for_a_crypto_role(
    prod_stack: RecordedStack, stubs: dict
) -> None:
    _create_all(stubs, prod_stack, skip={CLUSTER, *GRANTS})
    cluster = _resource(prod_stack, CLUSTER)
    grant = next(
        r for r in prod_stack.resources
        if r.type == "azure-native:authorization:RoleAssignment"
        and r.inputs["roleDefinitionId"].endswith("/12338af0-0e69-4776-bea7-57ae8d297424")  # Key Vault Crypto User
    )
    vault = _resource(prod_stack, "azure-native:keyvault:Vault")
    vault_id = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{vault.inputs['resourceGroupName']}" \
        f"/providers/Microsoft.KeyVault/vaults/{vault.inputs['vaultName']}"
    reader = "/providers/Microsoft.Authorization/roleDefinitions/21090545-7ca7-4776-b22c-e363652d74d2"  # KV Reader
    _create(stubs, grant, {**grant.inputs, "scope": vault_id, "roleDefinitionId": f"/subscriptions/x{reader}"})
    wrong_role = _refused(lambda: _create(stubs, cluster))
    assert "AzureKeyVaultKmsValidateIdentityPermissionCustomerError" in wrong_role.details()
    at_vault = RecordedResource(**{**grant.__dict__, "urn": grant.urn + "-vault"})
    second_name = "3f6c9a58-1b2d-4e7f-8a9b-0c1d2e3f4a5b"  # a second assignment needs a name of its own
    _create(stubs, at_vault, {**grant.inputs, "scope": vault_id, "roleAssignmentName": second_name})
    assert _create(stubs, cluster).id


def test_a_key_version_the_vault_does_not_hold_is_refused(dev_stack: RecordedStack, stubs: dict) -> None:
    _create_all(stubs, dev_stack, skip={CLUSTER})
    cluster = _resource(dev_stack, CLUSTER)
    key_id = cluster.inputs["securityProfile"]["azureKeyVaultKms"]["keyId"]
    for wrong in (f"{key_id.rsplit('/', 1)[0]}/0123456789abcdef0123456789abcdef", key_id.rsplit("/", 1)[0]):
        inputs = copy.deepcopy(cluster.inputs)
        inputs["securityProfile"]["azureKeyVaultKms"]["keyId"] = wrong
        refused = _refused(lambda inputs=inputs: _create(stubs, cluster, inputs))
        # Key Vault's own error for a key it does not hold.
        assert 'Code="KeyNotFound"' in refused.details()
        assert f"A key with (name/id) {wrong} was not found in this key vault" in refused.details()


def test_a_version_made_by_key_vaults_rotate_after_the_key_exists_is_accepted(
    dev_stack: RecordedStack, stubs: dict, standin: Standin
) -> None:
    from kms_aks_tools.standin.key_versions import KeyVersionError, new_key_version, versions

    _create_all(stubs, dev_stack, skip={CLUSTER})
    cluster = _resource(dev_stack, CLUSTER)
    key_id = cluster.inputs["securityProfile"]["azureKeyVaultKms"]["keyId"]
    vault, name = key_id.split("//")[1].split(".")[0], key_id.split("/keys/")[1].split("/")[0]
    with pytest.raises(KeyVersionError, match=f"no key {name}-other in vault {vault}"):
        new_key_version(standin.cloud.states, vault, f"{name}-other")
    with standin.cloud.lock:
        rotated = new_key_version(standin.cloud.states, vault, name)
    assert rotated.rsplit("/", 1)[0] == key_id.rsplit("/", 1)[0] and rotated != key_id
    assert re.fullmatch(r"[0-9a-f]{32}", rotated.rsplit("/", 1)[1])
    [key_arm_id] = [rid for rid, (t, _) in standin.cloud.states.items() if t == "azure-native:keyvault:Key"]
    assert versions(standin.cloud.states, key_arm_id) == [key_id, rotated]
    inputs = copy.deepcopy(cluster.inputs)
    inputs["securityProfile"]["azureKeyVaultKms"]["keyId"] = rotated
    created = _create(stubs, cluster, inputs).id  # the version exists now: AKS takes it
    # A version of a key that is gone is no key (deleting a key deletes its versions).
    del standin.cloud.states[created], standin.cloud.states[key_arm_id]
    refused = _refused(lambda: _create(stubs, cluster, inputs))
    assert 'Code="KeyNotFound"' in refused.details()


def test_public_to_private_on_an_existing_kms_cluster_is_refused(dev_stack: RecordedStack, stubs: dict) -> None:
    created = _create_all(stubs, dev_stack)
    cluster = _resource(dev_stack, CLUSTER)
    private = copy.deepcopy(cluster.inputs)
    kms = private["securityProfile"]["azureKeyVaultKms"]
    kms.update(keyVaultNetworkAccess="Private", keyVaultResourceId="/subscriptions/x/vaults/v")
    private["apiServerAccessProfile"] = {**private.get("apiServerAccessProfile", {}), "enableVnetIntegration": True}
    refused = _refused(lambda: _update(stubs, cluster, created[cluster.urn], private))
    assert "from Public to Private is not supported while KMS is enabled: disable KMS first" in refused.details()
    # Disabling KMS in one update is allowed (and the switch after it is a fresh enable).
    disabled = copy.deepcopy(cluster.inputs)
    disabled["securityProfile"]["azureKeyVaultKms"]["enabled"] = False
    assert _update(stubs, cluster, created[cluster.urn], disabled)


def test_a_private_kms_vault_needs_vnet_integration(dev_stack: RecordedStack, stubs: dict) -> None:
    _create_all(stubs, dev_stack, skip={CLUSTER})
    cluster = _resource(dev_stack, CLUSTER)
    private = copy.deepcopy(cluster.inputs)
    private["securityProfile"]["azureKeyVaultKms"].update(
        keyVaultNetworkAccess="Private", keyVaultResourceId="/subscriptions/x/vaults/v"
    )
    private["apiServerAccessProfile"] = {"enableVnetIntegration": False}
    refused = _refused(lambda: _create(stubs, cluster, private))
    # AKS's HTTP 400 text for a private vault without API server VNet integration.
    assert "Vnet integration should be enabled when KeyVault network access is Private" in refused.details()
