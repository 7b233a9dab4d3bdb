"""Helpers for the policy-pack tests: importing the rules, mutating recorded stacks without touching them, and a
client of the session's pack that asks each distinct question once.

Every mutation returns new `RecordedResource`s (dataclasses.replace with deep-copied properties); the
session-scoped recordings of the real program, and the generated Secrets, are shared by many tests and must never
change.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pulumi.runtime.proto import analyzer_pb2

from kms_aks_tools.offline.policy_pack import (
    POLICY_PACK_DIR,
    AnalysisResult,
    PolicyClient,
    PolicyPackProcess,
    StackProperties,
    analyze_stack_request,
    analyzer_resource,
)
from kms_aks_tools.offline.policy_pack.process import pack_channel
from kms_aks_tools.offline.recording import UNKNOWN, RecordedResource, RecordedStack
from tests import engine
from tests.graph import (
    ACCESS_POLICY,
    CLUSTER,
    IDENTITY,
    KEY,
    PRIVATE_ENDPOINT,
    PRIVATE_ENDPOINT_CONNECTION,
    ROLE_ASSIGNMENT,
    SECRET,
    VAULT,
)

# The pack's modules are top-level modules of its folder, as `python -m pulumi.policy <folder>` runs them.
if str(POLICY_PACK_DIR) not in sys.path:
    sys.path.insert(0, str(POLICY_PACK_DIR))

GRANT_TYPES = (ACCESS_POLICY, ROLE_ASSIGNMENT)

KMS = ("securityProfile", "azureKeyVaultKms")
_DELETE = object()

Resources = list[RecordedResource]


def resources_of(stack: RecordedStack | Sequence[RecordedResource]) -> Resources:
    return list(stack.resources if isinstance(stack, RecordedStack) else stack)


def one(resources: Iterable[RecordedResource], type_token: str) -> RecordedResource:
    found = [r for r in resources if r.type == type_token]
    assert len(found) == 1, f"expected one {type_token}, found {len(found)}"
    return found[0]


def _set(props: dict[str, Any], path: Sequence[str], value: Any, *, create: bool) -> bool:
    """Sets (or, with _DELETE, removes) props[path]; False when the parent path is absent and not created."""
    node = props
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            if not create:
                return False
            child = node[key] = {}
        node = child
    if value is _DELETE:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = copy.deepcopy(value)
    return True


def edited(
    resource: RecordedResource,
    edits: dict[tuple[str, ...], Any] | None = None,
    *,
    output_edits: dict[tuple[str, ...], Any] | None = None,
    **changes: Any,
) -> RecordedResource:
    """A copy of `resource` with property edits {path: value or DELETE} applied to its inputs and, where the
    path exists there too, to its outputs (so that every AnalyzeStack property mode sees the change);
    `output_edits` are for where the outputs' shape differs (a Key's flat `kty`); `changes` are fields."""
    inputs = copy.deepcopy(resource.inputs)
    outputs = copy.deepcopy(resource.outputs)
    for path, value in (edits or {}).items():
        _set(inputs, path, value, create=True)
        _set(outputs, path, value, create=False)
    for path, value in (output_edits or {}).items():
        _set(outputs, path, value, create=True)
    if "property_dependencies" in changes:
        changes["property_dependencies"] = dict(changes["property_dependencies"])
    return dataclasses.replace(resource, inputs=inputs, outputs=outputs, **changes)


DELETE = _DELETE


def replaced(
    resources: Iterable[RecordedResource],
    type_token: str,
    change: Callable[[RecordedResource], RecordedResource],
) -> Resources:
    """`resources` with every resource of `type_token` replaced by `change(resource)`."""
    return [change(r) if r.type == type_token else r for r in resources]


def without(resources: Iterable[RecordedResource], *type_tokens: str) -> Resources:
    return [r for r in resources if r.type not in type_tokens]


# ------------------------------------------------------------------------------------- named mutations


def kms_setting(resources: Resources, **settings: Any) -> Resources:
    """The cluster's securityProfile.azureKeyVaultKms with `settings` changed (DELETE removes one)."""
    return replaced(resources, CLUSTER, lambda c: edited(c, {(*KMS, k): v for k, v in settings.items()}))


def key_property(resources: Resources, **properties: Any) -> Resources:
    """The Key with `properties.<name>` changed on input and the flat `<name>` on output."""
    return replaced(
        resources,
        KEY,
        lambda k: edited(
            k,
            {("properties", name): v for name, v in properties.items()},
            output_edits={(name,): v for name, v in properties.items()},
        ),
    )


def vault_property(resources: Resources, **properties: Any) -> Resources:
    return replaced(resources, VAULT, lambda v: edited(v, {("properties", n): x for n, x in properties.items()}))


def unprotected(resources: Resources, type_token: str) -> Resources:
    return replaced(resources, type_token, lambda r: dataclasses.replace(r, protect=False))


def cluster_not_depending_on_grants(resources: Resources) -> Resources:
    # The grants and the propagation wait that follows them: without either edge the cluster waits for no grant.
    grants = {r.urn for r in resources if r.type in GRANT_TYPES or r.type == "time:index/sleep:Sleep"}
    return replaced(
        resources,
        CLUSTER,
        lambda c: dataclasses.replace(c, dependencies=tuple(d for d in c.dependencies if d not in grants)),
    )


def literal_key_id(resources: Resources, key_id: str) -> Resources:
    """keyId set to a literal: no property dependency on the stack's Key any more."""

    def change(cluster: RecordedResource) -> RecordedResource:
        deps = dict(cluster.property_dependencies)
        deps["securityProfile"] = ()
        key = one(resources, KEY).urn if any(r.type == KEY for r in resources) else None
        return edited(
            cluster,
            {(*KMS, "keyId"): key_id},
            property_dependencies=deps,
            dependencies=tuple(d for d in cluster.dependencies if d != key),
        )

    return replaced(resources, CLUSTER, change)


def unknown_key_id_without_dependency(resources: Resources) -> Resources:
    """A preview where keyId is unknown and comes from nothing of this stack."""
    return literal_key_id(resources, UNKNOWN)


def with_secrets(resources: Resources, count: int, namespace: str = "apps") -> Resources:
    """`resources` and `count` generated Secrets (the session's shared ones: never change them)."""
    stack = one(resources, "pulumi:pulumi:Stack")
    return resources + [secret(stack.urn, f"secret-{i}", namespace) for i in range(count)]


def kubernetes_version(resources: Resources, version: str) -> Resources:
    return replaced(
        resources,
        CLUSTER,
        lambda c: edited(c, {("kubernetesVersion",): version}, output_edits={("currentKubernetesVersion",): version}),
    )


# ---------------------------------------------------------------------------------------- new resources


def _urn(stack_urn: str, type_token: str, name: str) -> str:
    prefix = stack_urn.split("::pulumi:pulumi:Stack::", 1)[0]
    return f"{prefix}::{type_token}::{name}"


_SECRETS: dict[tuple[str, str, str], RecordedResource] = {}
_SECRET_IDS: set[int] = set()


def secret(stack_urn: str, name: str, namespace: str = "apps") -> RecordedResource:
    """A kubernetes:core/v1:Secret as the Kubernetes provider receives it: one object per session for the same
    arguments (tests add thousands at a time), shared, so never changed."""
    key = (stack_urn, name, namespace)
    if key not in _SECRETS:
        _SECRETS[key] = _new_secret(stack_urn, name, namespace)
        _SECRET_IDS.add(id(_SECRETS[key]))
    return _SECRETS[key]


def _new_secret(stack_urn: str, name: str, namespace: str) -> RecordedResource:
    inputs = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "shop"}},
        "type": "Opaque",
        "stringData": {
            "password": {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "x"}
        },
    }
    return RecordedResource(
        urn=_urn(stack_urn, SECRET, name),
        type=SECRET,
        name=name,
        custom=True,
        parent=stack_urn,
        inputs=inputs,
        outputs={},
    )


def private_endpoint(
    resources: Resources,
    *,
    manual: bool = False,
    target: str | None = None,
    depend_on_vault: bool = False,
    name: str = "kv-pe",
) -> RecordedResource:
    """A network:PrivateEndpoint to the stack's vault (its ARM id, or `target`), as another team might add."""
    stack = one(resources, "pulumi:pulumi:Stack")
    vault = one(resources, VAULT)
    target = vault.id if target is None else target
    field_name = "manualPrivateLinkServiceConnections" if manual else "privateLinkServiceConnections"
    return RecordedResource(
        urn=_urn(stack.urn, PRIVATE_ENDPOINT, name),
        type=PRIVATE_ENDPOINT,
        name=name,
        custom=True,
        parent=stack.urn,
        inputs={
            "resourceGroupName": vault.inputs.get("resourceGroupName", "rg"),
            "subnet": {
                "id": "/subscriptions/x/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/v/subnets/pe"
            },
            field_name: [{"name": "kv", "privateLinkServiceId": target, "groupIds": ["vault"]}],
        },
        outputs={},
        dependencies=(vault.urn,) if depend_on_vault else (),
        property_dependencies={field_name: (vault.urn,)} if depend_on_vault else {},
    )


def private_endpoint_connection(resources: Resources, name: str = "kv-pec") -> RecordedResource:
    stack = one(resources, "pulumi:pulumi:Stack")
    vault = one(resources, VAULT)
    return RecordedResource(
        urn=_urn(stack.urn, PRIVATE_ENDPOINT_CONNECTION, name),
        type=PRIVATE_ENDPOINT_CONNECTION,
        name=name,
        custom=True,
        parent=stack.urn,
        inputs={
            "resourceGroupName": vault.inputs["resourceGroupName"],
            "vaultName": vault.inputs["vaultName"],
            "privateEndpointConnectionName": "pe-conn",
            "privateLinkServiceConnectionState": {"status": "Approved"},
        },
        outputs={},
        dependencies=(vault.urn,),
        property_dependencies={"vaultName": (vault.urn,)},
    )


def role_assignment(
    resources: Resources, role_guid: str, scope: str, *, name: str, principal_type: str = "ServicePrincipal"
) -> RecordedResource:
    """A RoleAssignment for the stack's identity, wired like the program wires its grants."""
    stack = one(resources, "pulumi:pulumi:Stack")
    identity = one(resources, IDENTITY)
    inputs = {
        "principalId": identity.outputs["principalId"],
        "principalType": principal_type,
        "roleDefinitionId": f"/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/{role_guid}",
        "scope": scope,
    }
    return RecordedResource(
        urn=_urn(stack.urn, ROLE_ASSIGNMENT, name),
        type=ROLE_ASSIGNMENT,
        name=name,
        custom=True,
        parent=stack.urn,
        inputs=inputs,
        outputs=dict(inputs),
        dependencies=(identity.urn,),
        property_dependencies={"principalId": (identity.urn,), "scope": ()},
    )


# ------------------------------------------------------------------------------------------ type-token forms
# The same resources as a program declares them under another type-token form: azure-native v2's versioned modules,
# or a package added with `pulumi package add azure-native <module> <version>` (azure-native v3). Written out here
# from the provider's token scheme (provider_parameterize.go: package `azure-native_<module>_<version>`, tokens
# `<package>:<module>/<version>:<Name>`), not from azure_facts.tokens, so that the tests check the reading.

# One real API version of each module (what `pulumi package add` would be given); any other reads the same.
API_VERSIONS = {
    "containerservice": "v20240801",
    "keyvault": "v20230701",
    "managedidentity": "v20230131",
    "authorization": "v20220401",
    "network": "v20240501",
    "monitor": "v20210501preview",
    "resources": "v20240301",
    "operationalinsights": "v20230901",
    "eventgrid": "v20250215",
    "insights": "v20230311",
    "storage": "v20240101",
}
TOKEN_FORMS = ("versioned-module", "parameterized", "parameterized-without-module-version")


def token_in_form(token: str, form: str) -> str:
    """`token` (plain azure-native) written in `form`; other tokens unchanged."""
    if not token.startswith("azure-native:"):
        return token
    _, module, name = token.split(":")
    version = API_VERSIONS[module]
    if form == "versioned-module":
        return f"azure-native:{module}/{version}:{name}"
    if form == "parameterized":
        return f"azure-native_{module}_{version}:{module}/{version}:{name}"
    if form == "parameterized-without-module-version":
        return f"azure-native_{module}_{version}:{module}:{name}"
    raise ValueError(form)


def urn_with_type(urn: str, change: Callable[[str], str]) -> str:
    """`urn` with every type of its qualified type (`parent$type`) passed through `change`."""
    if not urn:
        return urn
    stack, project, qualified, name = urn.split("::", 3)
    return "::".join((stack, project, "$".join(change(t) for t in qualified.split("$")), name))


def retyped(
    resources: Iterable[RecordedResource], change: Callable[[str], str], *, only: str | None = None
) -> Resources:
    """`resources` with their type tokens passed through `change` (only those of type `only`, when given), and every
    URN, parent and dependency rewritten to match, as the engine would have recorded them. A resource the rewriting
    leaves as it was (a Kubernetes Secret under the stack) is returned as it is, like `replaced` does."""

    def new_type(token: str) -> str:
        return change(token) if only is None or token == only else token

    originals = list(resources)
    urns = {r.urn: urn_with_type(r.urn, new_type) for r in originals}

    def moved(urn: str) -> str:
        return urns.get(urn, urn)

    def retype(r: RecordedResource) -> RecordedResource:
        fields = {
            "type": new_type(r.type),
            "urn": moved(r.urn),
            "parent": moved(r.parent),
            "dependencies": tuple(moved(d) for d in r.dependencies),
            "property_dependencies": {k: tuple(moved(d) for d in v) for k, v in r.property_dependencies.items()},
        }
        unchanged = all(getattr(r, name) == value for name, value in fields.items())
        return r if unchanged else dataclasses.replace(r, **fields)

    return [retype(r) for r in originals]


def in_form(resources: Iterable[RecordedResource], form: str) -> Resources:
    """Every azure-native resource of `resources` declared under `form` ("plain" leaves them as they are)."""
    resources = list(resources)
    return resources if form == "plain" else retyped(resources, lambda t: token_in_form(t, form))


# --------------------------------------------------------------------------------- the session's pack, asked once


def shared(resource: RecordedResource) -> bool:
    """Whether `resource` is the session's, shared by every test and never changed: a recorded run's (tests/engine.py)
    or a generated Secret."""
    return engine.is_shared(resource) or id(resource) in _SECRET_IDS


class AskOnceClient(PolicyClient):
    """A client of the session's pack that sends each distinct `Analyze` and `AnalyzeStack` once per session and
    answers the same question again with the pack's first answer.

    The pack's answer depends on nothing but the request and the config last sent with `Configure`: pulumi-policy
    keeps no other state between calls, and the pack's stack view lives for one call. So a question is the pair of
    their serialized bytes, and a test gets the answer the same pack process gave those bytes: what it asserts is
    unchanged, and a pack changed to answer differently answers differently the first time it is asked. A failed call
    is not kept. (tests/test_policies_protocol.py sends about 7,000 calls, 700 of them different.)

    `AnalyzeStack` requests are built as `analyze_stack_request` builds them, except that a shared resource (`shared`)
    is converted once per session: it is the same object, unchanged, every time a test sends it.
    """

    _CACHED = ("Analyze", "AnalyzeStack")

    def __init__(self, pack: PolicyPackProcess) -> None:
        self._channel = pack_channel(pack.port)
        super().__init__(self._channel, diagnostics=pack.stderr)
        self._configured: bytes | None = None
        self._answers: dict[tuple[str, bytes, bytes], Any] = {}
        self._converted: dict[tuple[int, str], analyzer_pb2.AnalyzerResource] = {}

    def forget_configuration(self) -> None:
        """At a test's start: another client may have configured the pack since, so until the test configures it
        through this client, every call goes to the pack."""
        self._configured = None

    def _call(self, method: str, request: Any) -> Any:
        if method == "Configure":
            self._configured = None  # a Configure that fails leaves the pack's config unknown
            answer = super()._call(method, request)
            self._configured = request.SerializeToString(deterministic=True)
            return answer
        if method not in self._CACHED or self._configured is None:
            return super()._call(method, request)
        question = (method, self._configured, hashlib.sha256(request.SerializeToString(deterministic=True)).digest())
        if question not in self._answers:
            self._answers[question] = super()._call(method, request)
        return self._answers[question]

    def analyze_stack(
        self,
        resources: Sequence[RecordedResource] | analyzer_pb2.AnalyzeStackRequest,
        *,
        properties: StackProperties = "inputs+outputs",
    ) -> AnalysisResult:
        request = resources
        if not isinstance(resources, analyzer_pb2.AnalyzeStackRequest):
            request = self._stack_request(resources, properties)
        return super().analyze_stack(request)

    def _stack_request(
        self, resources: Sequence[RecordedResource], properties: StackProperties
    ) -> analyzer_pb2.AnalyzeStackRequest:
        """`analyze_stack_request(resources, properties)`, each shared resource converted once per session."""
        if any(r.provider for r in resources):
            return analyze_stack_request(resources, properties)  # a provider reference reads another resource
        return analyzer_pb2.AnalyzeStackRequest(resources=[self._resource(r, properties) for r in resources])

    def _resource(self, resource: RecordedResource, properties: StackProperties) -> analyzer_pb2.AnalyzerResource:
        if not shared(resource):
            return analyzer_resource(resource, properties)
        key = (id(resource), properties)
        if key not in self._converted:
            self._converted[key] = analyzer_resource(resource, properties)
        return self._converted[key]

    def close(self) -> None:
        self._channel.close()
