"""The mock engine's monitor: every `RegisterResource` as the engine sees it, recorded (`RecordedResource`), with
where each unknown input value comes from.

The SDK serializes an unknown Output as one sentinel string, and the engine keeps dependencies per top-level
property only. `trace_unknowns()` (an explicit call: the mock engine makes it before it runs a program; importing
this module changes nothing) patches the SDK's serializer so that, while the mock engine runs a program, an
unknown Output is serialized as the sentinel tagged with the URNs of the resources it depends on; RecordingMonitor
takes the tags off before anything else sees the request (the mocks, the recording, the policy pack get the plain
sentinel) and keeps them per value path.
"""

from __future__ import annotations

import contextvars
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc as pulumi_rpc

from azure_facts.engine import type_from_urn
from kms_aks_tools.offline.mocks import AzureNativeMocks
from kms_aks_tools.offline.recording import UNKNOWN, RecordedResource

ROOT_STACK_TYPE = "pulumi:pulumi:Stack"

_TRACING_UNKNOWNS: contextvars.ContextVar[bool] = contextvars.ContextVar("kms_aks_tracing_unknowns", default=False)
_TAG = f"{UNKNOWN}#from:"
_SDK_SERIALIZE_PROPERTY = pulumi_rpc.serialize_property


async def _serialize_tracing_unknowns(value: Any, deps: Any, property_key: Any, *args: Any, **kwargs: Any) -> Any:
    serialized = await _SDK_SERIALIZE_PROPERTY(value, deps, property_key, *args, **kwargs)
    if serialized == UNKNOWN and _TRACING_UNKNOWNS.get() and isinstance(value, pulumi.Output):
        resources = (await value._data).resources
        urns = sorted({await resource.urn.future() or "" for resource in resources} - {""})
        return _TAG + ",".join(urns)
    return serialized


def trace_unknowns() -> None:
    """Has the SDK tag each unknown Output it serializes with its sources, while the mock engine runs a program
    (`_TRACING_UNKNOWNS`; elsewhere the SDK serializes as before). Idempotent: the mock engine calls it before
    each run."""
    pulumi_rpc.serialize_property = _serialize_tracing_unknowns


def tracing_unknowns() -> bool:
    """Whether the SDK's serializer is the tracing one (a program run by the mock engine has been)."""
    return pulumi_rpc.serialize_property is _serialize_tracing_unknowns


def _untag(value: Any, path: str, found: dict[str, tuple[str, ...]]) -> Any:
    if isinstance(value, str) and value.startswith(_TAG):
        found[path] = tuple(u for u in value[len(_TAG) :].split(",") if u)
        return UNKNOWN
    if isinstance(value, dict):
        return {key: _untag(item, f"{path}.{key}" if path else key, found) for key, item in value.items()}
    if isinstance(value, list):
        return [_untag(item, f"{path}.{index}", found) for index, item in enumerate(value)]
    return value


def _untag_struct(struct: Any) -> dict[str, tuple[str, ...]]:
    """Takes the tags off a request's properties (a protobuf Struct, in place); returns where they were."""
    found: dict[str, tuple[str, ...]] = {}
    plain = _untag(json_format.MessageToDict(struct), "", found)
    if found:
        struct.Clear()
        struct.update(plain)
    return found


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A MockMonitor that keeps every `RegisterResource` request with what the mocks answered."""

    def __init__(self, mocks: AzureNativeMocks) -> None:
        super().__init__(mocks)
        self.recorded: list[RecordedResource] = []

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        # The engine leaves the root stack's type out of a top-level resource's URN (resource/deploy/source_eval.go
        # and sdk/go/common/resource/urn.go in pulumi v3.274: no parent type when the parent is the root Stack);
        # the SDK's MockMonitor keeps it, so `urn:pulumi:dev::kms-aks::pulumi:pulumi:Stack$azure-native:...` here
        # would be `urn:pulumi:dev::kms-aks::azure-native:...` in every real preview, state file and guard input.
        if parent and type_from_urn(parent) == ROOT_STACK_TYPE:
            parent = ""
        return super().make_urn(parent, type_, name)

    def Invoke(self, request: Any) -> Any:
        _untag_struct(request.args)
        return super().Invoke(request)

    def ReadResource(self, request: Any) -> Any:
        _untag_struct(request.properties)
        return super().ReadResource(request)

    def RegisterResource(self, request: Any) -> Any:
        unknown_sources = _untag_struct(request.object)
        response = super().RegisterResource(request)
        self.recorded.append(
            RecordedResource(
                urn=response.urn,
                type=request.type,
                name=request.name,
                custom=bool(request.custom),
                parent=request.parent,
                inputs=json_format.MessageToDict(request.object),
                outputs=json_format.MessageToDict(response.object) if response.HasField("object") else {},
                id=response.id,
                dependencies=tuple(request.dependencies),
                property_dependencies={k: tuple(v.urns) for k, v in request.propertyDependencies.items()},
                protect=bool(request.protect),
                retain_on_delete=bool(request.retainOnDelete),
                ignore_changes=tuple(request.ignoreChanges),
                provider=request.provider,
                unknown_sources=unknown_sources,
            )
        )
        return response


