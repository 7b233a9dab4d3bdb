"""The ResourceProvider servicer: azure-native, azuread and pulumiverse-time answered from the mock layer.

Protocol: pulumi/pulumi `proto/pulumi/provider.proto`; how the engine attaches to a running provider
(`PULUMI_DEBUG_PROVIDERS`, Handshake then Attach): `pkg/resource/plugin/provider_plugin.go`, `NewProvider`.
Outputs come from `kms_aks_tools.offline.mocks` (`AzureNativeMocks.build`, `preview_outputs`, `call`): the
same builders the SDK mock engine uses. Each RPC decodes its request's properties once (`wire.decode`: plain
values, a secret as `Secret`), works on those, and encodes its answer once (`wire.encode`). The mocks' `states`
is the stand-in's "ARM": it lives as long as the process, so successive CLI runs see the same cloud.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from importlib import metadata
from typing import Any

import grpc
from google.protobuf import empty_pb2
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime.proto import plugin_pb2, provider_pb2, provider_pb2_grpc

from azure_facts.engine import name_from_urn, type_from_urn
from kms_aks_tools.offline.mocks import AzureNativeMocks, preview_outputs
from kms_aks_tools.standin import arm, rules, schema
from kms_aks_tools.standin.wire import UNKNOWN, Secret, contains_unknown, decode, encode, mark_secrets, plain

LOG = logging.getLogger("kms_aks_tools.standin")

# The Python SDK each served package matches; GetPluginInfo reports the installed version.
PACKAGES = {"azure-native": "pulumi-azure-native", "azuread": "pulumi-azuread", "time": "pulumiverse-time"}

# pulumiverse-time's Sleep really waits `createDuration`; the stand-in waits at most this long (seconds),
# enough to show the wait in a run's timing without making e2e runs slow.
SLEEP_CAP_SECONDS = 3.0
# How long after its creation a grant (role assignment, access policy) takes effect in the stand-in's Azure: RBAC and
# access policies propagate before AKS can use them. Defaults to half the sleep cap, so a program whose cluster
# waits for the propagation wait (a Sleep of at least that long) is created after its grants take effect, and one
# that does not wait is refused as Azure refuses it.
GRANT_PROPAGATION_FRACTION = 0.5

# azure-native v2 kept a resource's inputs in its state under this secret key; v3 no longer does
# (`checkpointObject`: "In v2, we stored the inputs in an `__inputs` field of the state; removed in v3") and
# turned on SendOldInputs, so the engine sends old inputs with Diff/Update/Read. Read only as a fallback.
_INPUTS = "__inputs"
_CREATE_BEFORE_DELETE = schema.CREATE_BEFORE_DELETE  # set by azure-native's Check when it auto-names randomly


def package_version(package: str) -> str:
    try:
        return metadata.version(PACKAGES[package])
    except (KeyError, metadata.PackageNotFoundError):
        return ""  # the engine accepts an empty version (no semver to parse)


def type_of(urn: str, type_token: str = "") -> str:
    """The resource type: the request's `type`, else the last type in the URN (`...::parent$type::name`)."""
    return type_token or type_from_urn(urn) or ""


def name_of(urn: str, name: str = "") -> str:
    return name or name_from_urn(urn)


class ArmError(Exception):
    """An error the real provider would return (surfaced to the engine as the RPC's failure)."""


class Cloud:
    """The in-memory ARM shared by every package's servicer: the mocks, their states, one lock."""

    def __init__(
        self,
        sleep_cap: float = SLEEP_CAP_SECONDS,
        grant_propagation: float | None = None,
        states: dict[str, tuple[str, dict[str, Any]]] | None = None,
    ) -> None:
        self.mocks = AzureNativeMocks(preview=False)
        # A cloud saved by an earlier process (`standin.saved.load_states`), else an empty one.
        self.mocks.states.update(states or {})
        self.lock = threading.RLock()
        self.sleep_cap = sleep_cap
        self.grant_propagation = (
            sleep_cap * GRANT_PROPAGATION_FRACTION if grant_propagation is None else grant_propagation
        )
        self.created_at: dict[str, float] = {}  # id -> time.monotonic() of its creation
        self.config_location: str | None = None  # azure-native's `location` provider config, once configured

    def resource_group_location(self, name: Any) -> Any:
        """The location ARM knows for resource group `name` (unknown while the name is; None if ARM has none)."""
        if contains_unknown(name):
            return UNKNOWN
        for typ, outputs in self.states.values():
            if typ == "azure-native:resources:ResourceGroup" and outputs.get("name") == name:
                return outputs.get("location")
        return None

    @property
    def states(self) -> dict[str, tuple[str, dict[str, Any]]]:
        return self.mocks.states


def _duration_seconds(text: Any) -> float:
    # Go durations as pulumiverse-time takes them: "30s", "1m30s", "2h", "500ms".
    if not isinstance(text, str) or not text:
        return 0.0
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    parts = re.findall(r"([0-9.]+)(ms|us|µs|ns|h|m|s)", text)
    return sum(float(number) * units[unit] for number, unit in parts)


class StandinProvider(provider_pb2_grpc.ResourceProviderServicer):
    """One package (`azure-native`, `azuread` or `time`) of the stand-in, over the shared `Cloud`.

    With `package=None` one servicer answers every package (single-port mode): resource and invoke
    requests name their package in their type token; only GetPluginInfo cannot tell, and reports no
    version then.
    """

    def __init__(self, package: str | None, cloud: Cloud) -> None:
        self.package = package or "*"
        self.cloud = cloud
        self.engine_address = ""

    # ------------------------------------------------------------------------------------------ plumbing

    def _log(self, rpc: str, urn: str = "", detail: str = "") -> None:
        # Types, URNs and operations only: never property values (they may hold secrets).
        LOG.info("%s %s %s %s", self.package, rpc, urn, detail)

    @staticmethod
    def _fail(context: grpc.ServicerContext, message: str, code: grpc.StatusCode = grpc.StatusCode.UNKNOWN) -> None:
        context.abort(code, message)

    @staticmethod
    def _checkpoint(type_token: str, outputs: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
        # The state is the outputs, secrets re-marked (azure-native 3.x stores no `__inputs`); it is marshalled
        # with SkipNulls, so a null output is absent from the state.
        return mark_secrets(outputs, inputs)

    # ------------------------------------------------------------------------------------------ lifecycle

    def Handshake(self, request: provider_pb2.ProviderHandshakeRequest, context: Any) -> Any:
        self.engine_address = request.engine_address
        self._log("Handshake", detail=f"engine={request.engine_address}")
        return provider_pb2.ProviderHandshakeResponse(accept_secrets=True, accept_resources=True, accept_outputs=False)

    def Attach(self, request: plugin_pb2.PluginAttach, context: Any) -> Any:
        self.engine_address = request.address
        self._log("Attach", detail=f"engine={request.address}")
        return empty_pb2.Empty()

    def GetPluginInfo(self, request: Any, context: Any) -> Any:
        self._log("GetPluginInfo")
        return plugin_pb2.PluginInfo(version=package_version(self.package) if self.package in PACKAGES else "")

    def GetSchema(self, request: provider_pb2.GetSchemaRequest, context: Any) -> Any:
        # The engine asks only for `pulumi package`/codegen; a minimal schema names the package.
        self._log("GetSchema")
        import json

        name = self.package if self.package in PACKAGES else "azure-native"
        schema = {"name": name, "version": package_version(name) or "0.0.0"}
        return provider_pb2.GetSchemaResponse(schema=json.dumps(schema))

    def CheckConfig(self, request: provider_pb2.CheckRequest, context: Any) -> Any:
        self._log("CheckConfig", request.urn)
        return provider_pb2.CheckResponse(inputs=request.news)

    def DiffConfig(self, request: provider_pb2.DiffRequest, context: Any) -> Any:
        self._log("DiffConfig", request.urn)
        olds = plain(decode(request.old_inputs) or decode(request.olds))
        news = plain(decode(request.news))
        changed = sorted(k for k in olds.keys() | news.keys() if olds.get(k) != news.get(k))
        if not changed:
            return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_NONE)
        return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_SOME, diffs=changed)

    def Configure(self, request: provider_pb2.ConfigureRequest, context: Any) -> Any:
        self._log("Configure", request.urn)
        location = request.variables.get("azure-native:config:location")
        if self.package in ("azure-native", "*") and location:
            self.cloud.config_location = location  # Check's second source of a default location
        return provider_pb2.ConfigureResponse(
            acceptSecrets=True, supportsPreview=True, acceptResources=True, acceptOutputs=False
        )

    def Cancel(self, request: Any, context: Any) -> Any:
        self._log("Cancel")
        return empty_pb2.Empty()

    # ------------------------------------------------------------------------------------------ resources

    def Check(self, request: provider_pb2.CheckRequest, context: Any) -> Any:
        type_token = type_of(request.urn, request.type)
        self._log("Check", request.urn)
        news = decode(request.news, skip_nulls=True)
        failures: list[str] = []
        spec = schema.SCHEMAS.get(type_token) or _path_schema(type_token)
        if spec is not None:
            # azure-native's Check: defaults (auto-name, location, azureApiVersion), then the schema's refusals.
            olds = decode(request.olds, skip_nulls=True)
            with self.cloud.lock:
                group_location = self.cloud.resource_group_location(news.get("resourceGroupName"))
            schema.apply_defaults(
                type_token,
                spec,
                request.urn,
                request.randomSeed,
                olds,
                news,
                resource_group_location=group_location,
                config_location=self.cloud.config_location,
            )
            failures = schema.check_failures(spec, plain(news))
            if failures:
                self._log("Check", request.urn, f"{len(failures)} failure(s)")
        return provider_pb2.CheckResponse(
            inputs=encode(news), failures=[provider_pb2.CheckFailure(reason=reason) for reason in failures]
        )

    def Diff(self, request: provider_pb2.DiffRequest, context: Any) -> Any:
        type_token = type_of(request.urn, request.type)
        olds_state = plain(decode(request.olds))
        old_inputs = plain(decode(request.old_inputs)) or olds_state.get(_INPUTS, {})
        old_outputs = {k: v for k, v in olds_state.items() if k != _INPUTS}
        news = plain(decode(request.news, skip_nulls=True))
        # Check records `__createBeforeDelete: true` when it auto-named the resource (`getDefaultName`).
        create_before_delete = old_inputs.get(_CREATE_BEFORE_DELETE, rules.autonamed(type_token, old_inputs))
        old_inputs = {k: v for k, v in old_inputs.items() if not k.startswith("__")}
        news = {k: v for k, v in news.items() if not k.startswith("__")}
        if "azureApiVersion" not in old_inputs and "azureApiVersion" in old_outputs:
            # v2-to-v3 migration in azure-native's Diff: a state whose inputs predate the default takes its API
            # version from the outputs, so the new default is no change.
            old_inputs["azureApiVersion"] = old_outputs["azureApiVersion"]
        for path in request.ignoreChanges:
            _ignore(path, old_inputs, news)

        rule = rules.rules_for(type_token, news)
        if type_token.startswith("azure-native:"):
            rules.apply_azure_specific_diff(old_inputs, news)
        detailed = rules.detailed_diff(old_inputs, news, rule.replace_keys)
        for path, kind in list(detailed.items()):
            # azure-native's Diff: a property newly set to the value the resource already has is no replace.
            if kind == rules.Kind.ADD_REPLACE and path in news and old_outputs.get(path) == news[path]:
                detailed[path] = rules.Kind.ADD
        replaces = sorted(p for p, k in detailed.items() if rules.is_replacement(k))
        # azure-native: deleteBeforeReplace whenever something replaces, unless the name was auto-named;
        # bridged providers (azuread, time) leave it to the resource option.
        delete_before_replace = bool(replaces) and type_token.startswith("azure-native:") and not create_before_delete
        changes = provider_pb2.DiffResponse.DIFF_SOME if detailed else provider_pb2.DiffResponse.DIFF_NONE
        self._log(
            "Diff",
            request.urn,
            f"changes={'some' if detailed else 'none'} replaces={replaces} dbr={delete_before_replace}",
        )
        return provider_pb2.DiffResponse(
            changes=changes,
            replaces=replaces,
            # azure-native lists `strings.Split(path, ".")[0]` of every detailed path (diff.go).
            diffs=sorted({p.split(".", 1)[0] for p in detailed}),
            detailedDiff={p: provider_pb2.PropertyDiff(kind=k, inputDiff=True) for p, k in detailed.items()},
            hasDetailedDiff=True,
            deleteBeforeReplace=delete_before_replace,
        )

    def Create(self, request: provider_pb2.CreateRequest, context: Any) -> Any:
        type_token = type_of(request.urn, request.type)
        inputs = decode(request.properties, skip_nulls=True)
        plain_inputs = _body(inputs)
        if request.preview:
            self._log("Create", request.urn, "preview")
            # The outputs' shape with the inputs' values and unknown for everything computed (azure-native's
            # `PreviewOutputs`, mirrored by mocks.preview_outputs).
            name = name_of(request.urn, request.name)
            args = pulumi_mocks.MockResourceArgs(type_token, name, plain_inputs, custom=True)
            with self.cloud.lock:
                created = self.cloud.mocks.try_build(args)
            return provider_pb2.CreateResponse(properties=encode(preview_outputs(inputs, created)))
        if type_token == "time:index/sleep:Sleep":
            self._sleep(request.urn, plain_inputs.get("createDuration"), "createDuration")
        args = pulumi_mocks.MockResourceArgs(type_token, name_of(request.urn, request.name), plain_inputs, custom=True)
        with self.cloud.lock:
            self._arm_checks(context, request.urn, type_token, plain_inputs, None)
            try:
                resource_id, outputs = self.cloud.mocks.build(args)
            except (KeyError, TypeError, ValueError) as error:
                self._fail(context, f"{type_token}: cannot create {request.urn}: {type(error).__name__}: {error}")
            if resource_id in self.cloud.states and type_token.startswith("azure-native:"):
                # azure-native refuses to adopt an existing resource (`azureCanCreate`): import it instead.
                self._fail(
                    context,
                    f'resource "{resource_id}" already exists; to import it into the stack, use '
                    f"`pulumi import {type_token} <name> {resource_id}`",
                    grpc.StatusCode.ALREADY_EXISTS,
                )
            self.cloud.states[resource_id] = (type_token, outputs)
            self.cloud.created_at[resource_id] = time.monotonic()
        self._log("Create", request.urn, f"id={resource_id}")
        return provider_pb2.CreateResponse(
            id=resource_id, properties=encode(self._checkpoint(type_token, outputs, inputs), skip_nulls=True)
        )

    def Read(self, request: provider_pb2.ReadRequest, context: Any) -> Any:
        type_token = type_of(request.urn, request.type)
        with self.cloud.lock:
            found = self.cloud.states.get(request.id)
        if found is None:
            self._log("Read", request.urn, f"id={request.id} gone")
            return provider_pb2.ReadResponse(id="")  # 404: the engine drops the resource on refresh
        _, outputs = found
        old_state = decode(request.properties)
        inputs = decode(request.inputs) or old_state.get(_INPUTS) or {}
        if isinstance(inputs, Secret):
            inputs = inputs.value or {}
        self._log("Read", request.urn, f"id={request.id}")
        return provider_pb2.ReadResponse(
            id=request.id,
            properties=encode(self._checkpoint(type_token, outputs, inputs), skip_nulls=True),
            inputs=encode(inputs),
        )

    def Update(self, request: provider_pb2.UpdateRequest, context: Any) -> Any:
        type_token = type_of(request.urn, request.type)
        news = decode(request.news, skip_nulls=True)
        olds_state = decode(request.olds)
        if request.preview:
            self._log("Update", request.urn, "preview")
            if not type_token.startswith("azure-native:"):
                # Bridged Terraform providers (azuread, time) plan an update from the prior state: computed
                # attributes such as a group's objectId keep their known values.
                return provider_pb2.UpdateResponse(properties=encode({**olds_state, **news}))
            # azure-native: PreviewOutputs(new inputs), keeping the old `name` and `location` (stable outputs).
            outputs = preview_outputs(news, olds_state)
            for stable in ("name", "location"):
                if stable in olds_state:
                    outputs[stable] = olds_state[stable]
            return provider_pb2.UpdateResponse(properties=encode(outputs))
        plain_news = _body(news)
        with self.cloud.lock:
            found = self.cloud.states.get(request.id)
            if found is None:
                self._fail(context, f"{type_token}: {request.id} not found (404): it was deleted outside the stack")
            if type_token == "azure-native:keyvault:Key":
                # The Key's Update re-sends the same PUT as Create: ARM's Keys_CreateIfNotExist.
                try:
                    rules.key_reput(found[1], plain_news)
                except rules.KeyCreationParametersDidNotMatch as error:
                    self._log("Update", request.urn, "KeyCreationParametersDidNotMatchExistingKey")
                    self._fail(context, str(error), grpc.StatusCode.INVALID_ARGUMENT)
                outputs = found[1]  # no write: ARM answers with the existing key
            else:
                old_inputs = _body(decode(request.old_inputs, skip_nulls=True))
                self._arm_checks(context, request.urn, type_token, plain_news, old_inputs)
                args = pulumi_mocks.MockResourceArgs(
                    type_token, name_of(request.urn, request.name), plain_news, custom=True
                )
                resource_id, outputs = self.cloud.mocks.build(args)
                if resource_id != request.id:
                    self._fail(context, f"{type_token}: an update cannot move {request.id} to {resource_id}")
                self.cloud.states[request.id] = (type_token, outputs)
        self._log("Update", request.urn, f"id={request.id}")
        return provider_pb2.UpdateResponse(
            properties=encode(self._checkpoint(type_token, outputs, news), skip_nulls=True)
        )

    def Delete(self, request: provider_pb2.DeleteRequest, context: Any) -> Any:
        if type_of(request.urn, request.type) == "time:index/sleep:Sleep":
            state = plain(decode(request.properties))
            self._sleep(request.urn, state.get("destroyDuration"), "destroyDuration")
        with self.cloud.lock:
            gone = self.cloud.states.pop(request.id, None)
            self.cloud.created_at.pop(request.id, None)
        # azure-native treats a 404 on DELETE as done.
        self._log("Delete", request.urn, f"id={request.id}{'' if gone else ' (already gone)'}")
        return empty_pb2.Empty()

    def Invoke(self, request: provider_pb2.InvokeRequest, context: Any) -> Any:
        self._log("Invoke", detail=request.tok)
        args = plain(decode(request.args, skip_nulls=True))
        try:
            result = self.cloud.mocks.call(pulumi_mocks.MockCallArgs(request.tok, args, ""))
        except NotImplementedError as error:
            self._fail(context, str(error), grpc.StatusCode.UNIMPLEMENTED)
        return provider_pb2.InvokeResponse(**{"return": encode(result)})

    def _arm_checks(
        self, context: Any, urn: str, type_token: str, inputs: dict[str, Any], old_inputs: dict[str, Any] | None
    ) -> None:
        """Fails the RPC with ARM's answer where ARM refuses this PUT (`arm`); call with the cloud's lock held."""
        spec = schema.SCHEMAS.get(type_token)
        try:
            invalid = schema.enum_violations(spec, inputs) if spec else []
            if invalid:
                raise arm.ArmRefusal(400, "BadRequest", "Invalid value(s): " + "; ".join(invalid))
            if type_token == "azure-native:containerservice:ManagedCluster":
                arm.check_managed_cluster(
                    inputs, old_inputs, self.cloud.states, self.cloud.created_at, self.cloud.grant_propagation
                )
        except arm.ArmRefusal as refusal:
            self._log("Create" if old_inputs is None else "Update", urn, f"refused: {refusal.code}")
            self._fail(context, str(refusal))

    def _sleep(self, urn: str, duration: Any, what: str) -> None:
        # pulumiverse-time waits the whole duration; the stand-in caps it and says so in its log.
        wanted = _duration_seconds(duration)
        waited = min(wanted, self.cloud.sleep_cap)
        self._log("Sleep", urn, f"{what}={duration} waits {waited:.1f}s (capped at {self.cloud.sleep_cap}s)")
        time.sleep(waited)


def _body(inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs a builder sees: plain values, without the provider's internal `__` keys."""
    return {k: v for k, v in plain(inputs).items() if not k.startswith("__")}


def _path_schema(type_token: str) -> schema.ResourceSchema | None:
    """For an azure-native type without a table in `schema.SCHEMAS`: its PUT path parameters (`rules.RULES`) are
    required, the last one (the resource's own name) auto-named `random`; the body is not validated. A type
    `rules.RULES` does not list either still gets Check's `azureApiVersion` default."""
    if not type_token.startswith("azure-native:"):
        return None
    rule = rules.RULES.get(type_token)
    if rule is None or not rule.path:
        return schema.ResourceSchema(params=(), body=schema.Shape(), source="no metadata known: defaults only")
    *parents, own = rule.path
    params = [schema.Param(name) for name in parents if "." not in name]
    if "." not in own:
        params.append(schema.Param(own, auto_name="random"))
    return schema.ResourceSchema(params=tuple(params), body=schema.Shape(), source=f"path of {rule.source}")


def _ignore(path: str, olds: dict[str, Any], news: dict[str, Any]) -> None:
    """`ignoreChanges`: the new value at a (dotted) path becomes the old one."""
    keys = path.split(".")
    old, new = olds, news
    for key in keys[:-1]:
        if not isinstance(old.get(key), dict) or not isinstance(new.get(key), dict):
            return
        old, new = old[key], new[key]
    if keys[-1] in old:
        new[keys[-1]] = old[keys[-1]]
    else:
        new.pop(keys[-1], None)


__all__ = ["PACKAGES", "Cloud", "StandinProvider", "package_version"]
