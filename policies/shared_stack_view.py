"""One view of the stack per `AnalyzeStack` call, shared by every stack policy of the pack.

pulumi-policy 1.x (checked on 1.21) deserializes every resource of the stack once *per stack policy*
inside `AnalyzeStack`. With six stack policies and 10,000 resources that is 60,000 conversions: 3.7 s of a
3.9 s call, next to 0.05 s of the policies' own work. `install()` replaces that one method with the same
steps, in the same order, except that the resources are built once and each policy then runs on them with
its own enforcement level, config, violation reporting and unknown-value handling, exactly as before. The
garbage collector pauses for the call (see `_analyze_stack`).

Sharing is safe because policies only read the resources (the rules work on plain copies).
Set KMS_AKS_POLICY_SHARED_STACK_VIEW=0 to run the SDK's own method; the protocol tests compare both.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from inspect import isawaitable
from typing import Any

from google.protobuf import json_format
from pulumi.runtime import proto
from pulumi_policy import policy as sdk
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy
from pulumi_policy.version import VERSION as SDK_VERSION

# The release whose AnalyzeStack this module mirrors (tests/test_shared_stack_view.py compares the two);
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


def _build_resources(servicer: Any, request: Any) -> list[sdk.PolicyResource]:
    """The stack's resources with parents and dependencies linked, as the SDK builds them."""
    resources: list[sdk.PolicyResource] = []
    links: list[tuple[sdk.PolicyResource, Any]] = []
    by_urn: dict[str, sdk.PolicyResource] = {}
    for r in request.resources:
        props = unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(r.properties)))
        resource = sdk.PolicyResource(
            r.type,
            props,
            r.urn,
            r.name,
            servicer._get_resource_options(r),
            servicer._get_provider_resource(r),
            None,
            [],
            {},
        )
        resources.append(resource)
        links.append((resource, r))
        by_urn[r.urn] = resource
    for resource, r in links:
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
    pack_name = self._PolicyAnalyzerServicer__policy_pack_name
    pack_version = self._PolicyAnalyzerServicer__policy_pack_version
    stack_tags = self._PolicyAnalyzerServicer__stack_tags
    resources: list[sdk.PolicyResource] | None = None

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
        args = sdk.StackValidationArgs(list(resources), self._get_policy_config(policy.name), stack_tags)
        try:
            result = policy.validate(args, report_violation)
            if isawaitable(result):
                loop = asyncio.new_event_loop()
                loop.run_until_complete(asyncio.Task(result, loop=loop))
                loop.close()
        except UnknownValueError as error:
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
            response.not_applicable.append(
                proto.PolicyNotApplicable(policy_name=policy.name, reason=error.reason or "")
            )
    return response


def install() -> bool:
    """Makes AnalyzeStack build the stack once per call; returns whether it did.

    Only on the pulumi-policy release this copy was checked against: a later one may have changed the
    method, and the SDK's own (slower) method is always correct.
    """
    if os.environ.get("KMS_AKS_POLICY_SHARED_STACK_VIEW", "1") == "0":
        return False
    if SDK_VERSION != CHECKED_RELEASE:
        print(
            f"kms-aks: pulumi-policy {SDK_VERSION} is not {CHECKED_RELEASE}; using its own AnalyzeStack (slower)",
            file=sys.stderr,
        )
        return False
    missing = [name for name in _NEEDED if not hasattr(_SERVICER, name)]
    if missing or not hasattr(sdk, "_NotApplicableError"):
        print(f"kms-aks: pulumi-policy internals changed ({missing}); using its own AnalyzeStack", file=sys.stderr)
        return False
    _SERVICER.AnalyzeStack = _analyze_stack
    return True
