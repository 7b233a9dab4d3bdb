"""The stand-in's cloud saved to a file and loaded by a later stand-in (what `kms-aks sandbox` keeps between commands).

Over real gRPC, as the engine drives it: what one stand-in created, a second one started over the saved file
reads back, refuses to create again and deletes; the file is written atomically, private, and a file that is
not a saved cloud is named, never read as an empty cloud.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import grpc
import pytest
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from kms_aks_tools.offline.recording import RecordedResource, RecordedStack
from kms_aks_tools.standin.provider import Standin, running_standin
from kms_aks_tools.standin.saved import SavedCloudError, load_states, save_states
from kms_aks_tools.standin.wire import from_struct, to_struct


def _native(standin: Standin) -> provider_pb2_grpc.ResourceProviderStub:
    return provider_pb2_grpc.ResourceProviderStub(grpc.insecure_channel(f"127.0.0.1:{standin.ports['azure-native']}"))


def _of(stack: RecordedStack, type_token: str) -> RecordedResource:
    return next(r for r in stack.resources if r.type == type_token)


def _create(stub: provider_pb2_grpc.ResourceProviderStub, resource: RecordedResource) -> Any:
    return stub.Create(
        provider_pb2.CreateRequest(
            urn=resource.urn, type=resource.type, name=resource.name, properties=to_struct(resource.inputs)
        )
    )


def test_a_later_stand_in_reads_deletes_and_refuses_to_recreate_what_an_earlier_one_created(
    dev_stack: RecordedStack, tmp_path: Path
) -> None:
    saved = tmp_path / "azure.json"
    identity = _of(dev_stack, "azure-native:managedidentity:UserAssignedIdentity")
    group = _of(dev_stack, "azure-native:resources:ResourceGroup")
    with running_standin(sleep_cap=0) as first:
        created = _create(_native(first), identity)
        _create(_native(first), group)
        save_states(first.cloud.states, saved)
        before = dict(first.cloud.states)

    with running_standin(sleep_cap=0, states=load_states(saved)) as second:
        assert second.cloud.states == before
        native = _native(second)
        read = native.Read(
            provider_pb2.ReadRequest(id=created.id, urn=identity.urn, type=identity.type, properties=created.properties)
        )
        assert read.id == created.id
        assert from_struct(read.properties) == from_struct(created.properties)
        with pytest.raises(grpc.RpcError) as exists:
            _create(native, group)
        assert exists.value.code() == grpc.StatusCode.ALREADY_EXISTS
        native.Delete(provider_pb2.DeleteRequest(id=created.id, urn=identity.urn, type=identity.type))
        save_states(second.cloud.states, saved)

    remaining = load_states(saved)
    assert created.id not in remaining
    assert [type_token for type_token, _ in remaining.values()] == ["azure-native:resources:ResourceGroup"]


def test_no_file_is_an_empty_cloud(tmp_path: Path) -> None:
    assert load_states(tmp_path / "absent.json") == {}


def test_the_file_is_private_and_written_whole(tmp_path: Path) -> None:
    saved = tmp_path / "azure.json"
    save_states({"/subscriptions/x/resourceGroups/rg": ("azure-native:resources:ResourceGroup", {"name": "rg"})}, saved)
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    # A save that fails half-way (a value JSON cannot hold) leaves the previous cloud and no temporary file.
    with pytest.raises(TypeError):
        save_states({"/bad": ("azure-native:resources:ResourceGroup", {"name": object()})}, saved)
    assert load_states(saved) == {
        "/subscriptions/x/resourceGroups/rg": ("azure-native:resources:ResourceGroup", {"name": "rg"})
    }
    assert [p.name for p in tmp_path.iterdir()] == ["azure.json"]


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        json.dumps({"format": "something-else/1", "resources": []}),
        json.dumps({"format": "kms-aks-standin-cloud/1"}),
    ],
    ids=["not-json", "other-format", "no-resources"],
)
def test_a_file_that_is_not_a_saved_cloud_is_named(tmp_path: Path, content: str) -> None:
    saved = tmp_path / "azure.json"
    saved.write_text(content)
    with pytest.raises(SavedCloudError, match=r"azure\.json is not a saved stand-in cloud .*kms-aks sandbox reset"):
        load_states(saved)
