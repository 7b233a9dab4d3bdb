"""The analyzer protocol as the CLI speaks it, over a channel to a running pack: the requests the engine sends for
the recorded resources (`Analyze` with a resource's inputs, `AnalyzeStack` with every resource), and the calls."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import grpc
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from kms_aks_tools.offline.policy_pack.config import PolicyConfigEntry, reconcile_policy_config
from kms_aks_tools.offline.policy_pack.results import (
    ENFORCEMENT_LEVELS,
    AnalysisResult,
    AnalyzerInfo,
    analysis_result,
    analyzer_info,
)
from kms_aks_tools.offline.recording import RecordedResource

DEFAULT_RPC_TIMEOUT = 600.0

# What AnalyzeStack sends as a resource's properties. The engine sends the provider's outputs, which for
# azure-native are the inputs echoed plus computed values; "inputs+outputs" lays each top-level input over
# the recorded outputs, which is that, and lets a test's mutation of the inputs show in the stack view.
StackProperties = Literal["inputs", "outputs", "inputs+outputs"]


class PolicyPackError(RuntimeError):
    """The pack did not start, crashed, or failed a call; the message carries the pack's stderr."""


def to_struct(properties: Mapping[str, Any]) -> struct_pb2.Struct:
    """Properties as the protobuf Struct the engine sends (numbers become floats, as on the wire)."""
    struct = struct_pb2.Struct()
    try:
        struct.update(properties)
    except (TypeError, ValueError):
        raise TypeError(f"not representable as resource properties: {_first_bad_value(properties, '')}") from None
    return struct


def _first_bad_value(value: Any, path: str) -> str:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path or '.'}: key {key!r} is not a string"
            found = _first_bad_value(item, f"{path}.{key}")
            if found:
                return found
        return ""
    if isinstance(value, list | tuple):
        for position, item in enumerate(value):
            found = _first_bad_value(item, f"{path}[{position}]")
            if found:
                return found
        return ""
    if value is None or isinstance(value, str | bool | int | float):
        return ""
    return f"{path}: {type(value).__name__} {value!r}"


def stack_properties(resource: RecordedResource, properties: StackProperties = "inputs+outputs") -> dict[str, Any]:
    """The properties AnalyzeStack sends for `resource` (see `StackProperties`)."""
    if properties == "inputs":
        return resource.inputs
    if properties == "outputs":
        return resource.outputs
    return _overlay(resource.outputs, resource.inputs)


def _overlay(outputs: Mapping[str, Any], inputs: Mapping[str, Any]) -> dict[str, Any]:
    # Top-level properties: every input as given, plus the outputs the inputs do not have (ids, names,
    # principal ids, key URIs). Not deeper: an input a mutation removed must not reappear from the outputs.
    return {**outputs, **inputs}


def _options(resource: RecordedResource) -> analyzer_pb2.AnalyzerResourceOptions:
    return analyzer_pb2.AnalyzerResourceOptions(
        protect=resource.protect,
        ignoreChanges=list(resource.ignore_changes),
        parent=resource.parent,
    )


def _provider(
    resource: RecordedResource, resources_by_urn: Mapping[str, RecordedResource] | None
) -> analyzer_pb2.AnalyzerProviderResource | None:
    # A provider reference is "<provider urn>::<provider id>"; a URN is "urn:pulumi:<stack>::<project>::<type>::<name>".
    if not resource.provider:
        return None
    urn = resource.provider.rpartition("::")[0] or resource.provider
    parts = urn.split("::", 3)
    provider = analyzer_pb2.AnalyzerProviderResource(
        urn=urn,
        type=parts[2].rsplit("$", 1)[-1] if len(parts) > 2 else "",
        name=parts[3] if len(parts) > 3 else "",
    )
    recorded = (resources_by_urn or {}).get(urn)
    if recorded is not None:
        provider.properties.CopyFrom(to_struct(recorded.inputs))
    return provider


def analyze_request(
    resource: RecordedResource, resources_by_urn: Mapping[str, RecordedResource] | None = None
) -> analyzer_pb2.AnalyzeRequest:
    """The `Analyze` request the engine sends for `resource`: its inputs and options."""
    request = analyzer_pb2.AnalyzeRequest(
        type=resource.type,
        urn=resource.urn,
        name=resource.name,
        properties=to_struct(resource.inputs),
        options=_options(resource),
    )
    provider = _provider(resource, resources_by_urn)
    if provider is not None:
        request.provider.CopyFrom(provider)
    return request


def analyzer_resource(
    resource: RecordedResource,
    properties: StackProperties = "inputs+outputs",
    resources_by_urn: Mapping[str, RecordedResource] | None = None,
) -> analyzer_pb2.AnalyzerResource:
    """One resource of an `AnalyzeStack` request: properties, options, parent and dependencies."""
    message = analyzer_pb2.AnalyzerResource(
        type=resource.type,
        urn=resource.urn,
        name=resource.name,
        properties=to_struct(stack_properties(resource, properties)),
        options=_options(resource),
        parent=resource.parent,
        dependencies=list(resource.dependencies),
    )
    for key, urns in resource.property_dependencies.items():
        message.propertyDependencies[key].urns.extend(urns)
    provider = _provider(resource, resources_by_urn)
    if provider is not None:
        message.provider.CopyFrom(provider)
    return message


def analyze_stack_request(
    resources: Sequence[RecordedResource], properties: StackProperties = "inputs+outputs"
) -> analyzer_pb2.AnalyzeStackRequest:
    """The `AnalyzeStack` request for a whole recorded stack."""
    by_urn = {r.urn: r for r in resources} if any(r.provider for r in resources) else None
    return analyzer_pb2.AnalyzeStackRequest(resources=[analyzer_resource(r, properties, by_urn) for r in resources])


# -------------------------------------------------------------------------------------------- client


class PolicyClient:
    """The analyzer protocol, as the CLI speaks it, over a channel to a running pack."""

    def __init__(
        self,
        channel: grpc.Channel,
        *,
        timeout: float | None = DEFAULT_RPC_TIMEOUT,
        diagnostics: Callable[[], str] | None = None,
    ) -> None:
        """`diagnostics` returns text (the pack's stderr) to add to the message of a failed call."""
        self._stub = analyzer_pb2_grpc.AnalyzerStub(channel)
        self._timeout = timeout
        self._diagnostics = diagnostics
        self._info: AnalyzerInfo | None = None

    def _call(self, method: str, request: Any) -> Any:
        try:
            return getattr(self._stub, method)(request, timeout=self._timeout)
        except grpc.RpcError as error:
            detail = error.details() if hasattr(error, "details") else str(error)
            stderr = self._diagnostics() if self._diagnostics else ""
            code = error.code().name if hasattr(error, "code") else "ERROR"
            raise PolicyPackError(
                f"{method} failed ({code}): {detail}" + (f"\npolicy pack stderr:\n{stderr}" if stderr else "")
            ) from None

    def get_analyzer_info(self, *, refresh: bool = False) -> AnalyzerInfo:
        """The pack's name, version and policies (cached; `refresh` asks again)."""
        if self._info is None or refresh:
            self._info = analyzer_info(self._call("GetAnalyzerInfo", empty_pb2.Empty()))
        return self._info

    def configure(self, config: Mapping[str, Any] | None = None) -> dict[str, PolicyConfigEntry]:
        """Sends the reconciled config of every policy (see `reconcile_policy_config`); returns it.

        Every policy gets an explicit level: a PolicyConfig without one would read as advisory (enum 0).
        `configure()` with no config restores every default.
        """
        reconciled = reconcile_policy_config(self.get_analyzer_info(), config)
        request = analyzer_pb2.ConfigureAnalyzerRequest()
        for name, entry in reconciled.items():
            policy_config = request.policyConfig[name]
            policy_config.enforcementLevel = ENFORCEMENT_LEVELS[entry.enforcement_level]
            policy_config.properties.update(dict(entry.properties))
        self._call("Configure", request)
        return reconciled

    def analyze(self, resource: RecordedResource | analyzer_pb2.AnalyzeRequest) -> AnalysisResult:
        """`Analyze` one resource (its inputs), as the engine does before each step."""
        request = resource if isinstance(resource, analyzer_pb2.AnalyzeRequest) else analyze_request(resource)
        return analysis_result(self._call("Analyze", request), request.urn)

    def analyze_stack(
        self,
        resources: Sequence[RecordedResource] | analyzer_pb2.AnalyzeStackRequest,
        *,
        properties: StackProperties = "inputs+outputs",
    ) -> AnalysisResult:
        """`AnalyzeStack` over every resource, as the engine does once after the last step."""
        request = (
            resources
            if isinstance(resources, analyzer_pb2.AnalyzeStackRequest)
            else analyze_stack_request(resources, properties)
        )
        return analysis_result(self._call("AnalyzeStack", request))

    def check(
        self,
        resources: Sequence[RecordedResource],
        *,
        properties: StackProperties = "inputs+outputs",
        analyze: Callable[[RecordedResource], bool] = lambda _: True,
    ) -> AnalysisResult:
        """What a `pulumi preview --policy-pack` reports: `Analyze` for each resource, then `AnalyzeStack`.

        `analyze` picks the resources sent to `Analyze` one by one (all by default); `AnalyzeStack` sees them all.
        """
        result = AnalysisResult()
        by_urn = {r.urn: r for r in resources} if any(r.provider for r in resources) else None
        for resource in filter(analyze, resources):
            result.extend(self.analyze(analyze_request(resource, by_urn)))
        result.extend(self.analyze_stack(resources, properties=properties))
        return result
