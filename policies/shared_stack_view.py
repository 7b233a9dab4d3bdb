"""One view of the stack per `AnalyzeStack` call, shared by every stack policy of the pack, and resources
converted only when a policy reads them, in `AnalyzeStack` and `Analyze` alike.

pulumi-policy 1.x (checked on 1.21) deserializes every resource of the stack once *per stack policy*
inside `AnalyzeStack`. With six stack policies and 10,000 resources that is 60,000 conversions: 3.7 s of a
3.9 s call, next to 0.05 s of the policies' own work. `install()` replaces that method with the same steps,
in the same order, except that the resources are built once and each policy then runs on them with its own
enforcement level, config, violation reporting and unknown-value handling, exactly as before. The garbage
collector pauses for the call (see `_analyze_stack`).

Converting each resource once still cost most of a call: the stack policies read the properties of a few
resource types only (kms_rules.RELEVANT_TYPES: the cluster, its key, vault, identity and grants), and of the
rest only the type, URN and dependencies. So a resource's properties, options and provider are converted
from the request when a policy first reads them, by the SDK's own functions (`_Lazy`), and then kept for the
call. `Analyze` is replaced the same way: a policy that looks only at the type (every resource policy of this
pack, on anything but a cluster) converts nothing; each policy still gets its own arguments. Each stack policy
gets its own list of the shared resources (`StackView`), which also carries what the pack derives from them
once per call: the stack's index (kms_pack.stack_index), built by the first stack policy, read by the rest.

Sharing is safe because policies only read the resources (the rules work on plain copies).
Set KMS_AKS_POLICY_SHARED_STACK_VIEW=0 to run the SDK's own methods; the protocol tests compare both.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from functools import cached_property
from inspect import isawaitable
from typing import Any

from google.protobuf import json_format
from pulumi.runtime import proto
from pulumi_policy import policy as sdk
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy
from pulumi_policy.version import VERSION as SDK_VERSION

# The release whose AnalyzeStack and Analyze this module mirrors (tests/test_shared_stack_view.py compares them);
# requirements-sdk.txt pins exactly this release.
CHECKED_RELEASE = "1.21.0"
_SERVICER = sdk._PolicyAnalyzerServicer
# The SDK's private state this relies on; install() leaves the SDK alone when any of it is missing.
_NEEDED = (
    "_get_enforcement_level",
    "_create_report_violation",
    "_get_resource_options",
    "_map_enforcement_level",
    "_get_provider_resource",
    "_get_policy_config",
    "_configure_runtime_settings",
)


def _props(message: Any) -> Any:
    """A properties Struct as the SDK hands it to a policy: deserialized, in its unknown-checking proxy."""
    return unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(message)))


class _Lazy:
    """Properties, options and provider built from the request on first read, by the SDK's own steps, then kept."""

    _servicer: Any
    _request: Any

    @cached_property
    def props(self) -> Any:
        return _props(self._request.properties)

    @cached_property
    def opts(self) -> Any:
        return self._servicer._get_resource_options(self._request)

    @cached_property
    def provider(self) -> Any:
        return self._servicer._get_provider_resource(self._request)


class _LazyResource(_Lazy, sdk.PolicyResource):
    """A stack policy's resource: an `sdk.PolicyResource`, converted when read.

    Sets what the SDK's `__init__` sets, except the three attributes `_Lazy` answers (10,000 of these per call).
    """

    def __init__(self, servicer: Any, request: Any) -> None:
        self.resource_type = request.type
        self.urn = request.urn
        self.name = request.name
        self.parent = None
        self.dependencies = []
        self.property_dependencies = {}
        self._servicer = servicer
        self._request = request


class _LazyResourceArgs(_Lazy, sdk.ResourceValidationArgs):
    """A resource policy's arguments: `sdk.ResourceValidationArgs`, converted when read."""

    def __init__(self, servicer: Any, request: Any, config: Any, stack_tags: Any) -> None:
        super().__init__(request.type, None, request.urn, request.name, None, None, config, stack_tags)
        # The SDK's __init__ set placeholders for what _Lazy answers: drop them.
        for name in ("props", "opts", "provider"):
            del self.__dict__[name]
        self._servicer = servicer
        self._request = request


class StackView(list):
    """The stack's resources as one stack policy receives them: its own list of the call's shared resources, and
    `shared`, where the pack keeps what it derives from them once per call (kms_pack.stack_index)."""

    def __init__(self, resources: list[sdk.PolicyResource], shared: dict[str, Any]) -> None:
        super().__init__(resources)
        self.shared = shared


def _build_resources(servicer: Any, request: Any) -> list[sdk.PolicyResource]:
    """The stack's resources with parents and dependencies linked, as the SDK builds them."""
    resources: list[sdk.PolicyResource] = []
    by_urn: dict[str, sdk.PolicyResource] = {}
    for r in request.resources:
        resource = _LazyResource(servicer, r)
        resources.append(resource)
        by_urn[r.urn] = resource
    for resource, r in zip(resources, request.resources, strict=True):
        if r.parent in by_urn:
            resource.parent = by_urn[r.parent]
        resource.dependencies.extend(by_urn[d] for d in r.dependencies if d in by_urn)
        for key, urns in r.propertyDependencies.items():
            resource.property_dependencies[key] = [by_urn[d] for d in urns.urns if d in by_urn]
    return resources


def _analyze_stack(self: Any, request: Any, _context: Any) -> Any:
    # One call allocates a few objects per property of every resource and drops them all at its end.
    # Collections in between only rescan that growing live set, which makes a call grow faster than the
    # stack; the collector catches up after the call.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _analyze_stack_once(self, request)
    finally:
        if collecting:
            gc.enable()


def _analyze_stack_once(self: Any, request: Any) -> Any:
    self._configure_runtime_settings()
    response = proto.AnalyzeResponse()
    stack_tags = self._PolicyAnalyzerServicer__stack_tags
    resources: list[sdk.PolicyResource] | None = None
    shared: dict[str, Any] = {}

    for policy in self._PolicyAnalyzerServicer__policies:
        enforcement_level = self._get_enforcement_level(policy)
        if enforcement_level == sdk.EnforcementLevel.DISABLED or not isinstance(policy, sdk.StackValidationPolicy):
            continue
        if enforcement_level == sdk.EnforcementLevel.REMEDIATE:
            enforcement_level = sdk.EnforcementLevel.MANDATORY  # as the SDK: stack policies cannot remediate
        report_violation = self._create_report_violation(
            response, policy.name, policy.description, enforcement_level, policy.severity
        )
        if resources is None:
            resources = _build_resources(self, request)
        args = sdk.StackValidationArgs(StackView(resources, shared), self._get_policy_config(policy.name), stack_tags)
        _validate(self, response, policy, args, report_violation)
    return response


def _analyze(self: Any, request: Any, _context: Any) -> Any:
    """The SDK's `Analyze`, step for step, with each policy's arguments converted only where it reads them."""
    self._configure_runtime_settings()
    response = proto.AnalyzeResponse()
    stack_tags = self._PolicyAnalyzerServicer__stack_tags

    for policy in self._PolicyAnalyzerServicer__policies:
        enforcement_level = self._get_enforcement_level(policy)
        if enforcement_level == sdk.EnforcementLevel.DISABLED or not isinstance(policy, sdk.ResourceValidationPolicy):
            continue
        if not policy.has_validation():
            # As the SDK: a remediation-only policy is reported as not applicable.
            response.not_applicable.append(
                proto.PolicyNotApplicable(policy_name=policy.name, reason="Policy does not implement validate")
            )
            continue
        if enforcement_level == sdk.EnforcementLevel.REMEDIATE:
            enforcement_level = sdk.EnforcementLevel.MANDATORY  # as the SDK: a violation left after remediation
        report_violation = self._create_report_violation(
            response, policy.name, policy.description, enforcement_level, policy.severity
        )
        args = _LazyResourceArgs(self, request, self._get_policy_config(policy.name), stack_tags)
        _validate(self, response, policy, args, report_violation)
    return response


def _validate(self: Any, response: Any, policy: Any, args: Any, report_violation: Any) -> None:
    """Runs one policy on its arguments as the SDK's AnalyzeStack and Analyze do: awaited when it is a coroutine; an
    unknown value it meets during preview becomes an advisory diagnostic, and a policy that declares itself not
    applicable is reported so."""
    try:
        result = policy.validate(args, report_violation)
        if isawaitable(result):
            loop = asyncio.new_event_loop()
            loop.run_until_complete(asyncio.Task(result, loop=loop))
            loop.close()
    except UnknownValueError as error:
        pack_name = self._PolicyAnalyzerServicer__policy_pack_name
        pack_version = self._PolicyAnalyzerServicer__policy_pack_version
        response.diagnostics.append(
            proto.AnalyzeDiagnostic(
                policyName=policy.name,
                policyPackName=pack_name,
                policyPackVersion=pack_version,
                message=(
                    f"can't run policy '{policy.name}' from policy pack "
                    f"'{pack_name}@v{pack_version}' during preview: {error.message}"
                ),
                urn="",
                description=policy.description,
                enforcementLevel=self._map_enforcement_level(sdk.EnforcementLevel.ADVISORY),
            )
        )
    except sdk._NotApplicableError as error:
        response.not_applicable.append(proto.PolicyNotApplicable(policy_name=policy.name, reason=error.reason or ""))


def install() -> bool:
    """Replaces AnalyzeStack and Analyze with the methods above; returns whether it did.

    Only on the pulumi-policy release these copies were checked against: a later one may have changed the
    methods, and the SDK's own (slower) methods are always correct.
    """
    if os.environ.get("KMS_AKS_POLICY_SHARED_STACK_VIEW", "1") == "0":
        return False
    if SDK_VERSION != CHECKED_RELEASE:
        print(
            f"kms-aks: pulumi-policy {SDK_VERSION} is not {CHECKED_RELEASE}; using its own AnalyzeStack and "
            "Analyze (slower)",
            file=sys.stderr,
        )
        return False
    missing = [name for name in _NEEDED if not hasattr(_SERVICER, name)]
    missing += [name for name in ("_NotApplicableError", "ResourceValidationArgs") if not hasattr(sdk, name)]
    if missing:
        print(
            f"kms-aks: pulumi-policy internals changed ({missing}); using its own AnalyzeStack and Analyze",
            file=sys.stderr,
        )
        return False
    _SERVICER.AnalyzeStack = _analyze_stack
    _SERVICER.Analyze = _analyze
    return True
