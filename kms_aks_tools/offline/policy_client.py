"""The policy pack, run exactly as the Pulumi CLI runs it and driven over the analyzer protocol.

The CLI starts `python -u -m pulumi.policy <engine-address> <pack-dir>` in the pack's folder, reads the port
the pack prints on stdout, then calls `GetAnalyzerInfo`, `Configure`, `Analyze` once per resource (its inputs)
and `AnalyzeStack` once (every resource's outputs, with parents and dependencies). This module does the same
with the resources the mock engine recorded, so tests, `make plan` and the benchmark exercise the real pack.

    with running_policy_pack(stack="dev") as client:
        result = client.check(recorded.resources)
        for violation in result.mandatory: ...

For `make plan`, start the pack first and let it boot while the program runs:

    pack = PolicyPackProcess().start()        # returns at once
    recorded = run_stack("dev")
    client = pack.wait_ready()                 # the port, a connected channel
    ...
    pack.close()                               # or use `with PolicyPackProcess() as pack:`

The engine address: `pulumi.policy` takes it as its first argument and never dials it (it only logs to the
engine when PULUMI_* settings point it at one; otherwise it logs to stderr), so a placeholder is passed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import grpc
import yaml
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from kms_aks_tools.cli.exits import UserError
from kms_aks_tools.offline.recording import RecordedResource
from kms_aks_tools.project.stack_file import PACKAGE_ROOT

ROOT = PACKAGE_ROOT
POLICY_PACK_DIR = ROOT / "policies"

# pulumi.policy never connects to it; a port nothing listens on makes that visible if it ever did.
UNUSED_ENGINE_ADDRESS = "127.0.0.1:0"
# The pack's server accepts 400 MB (pulumi_policy's own limit); a 100k-resource AnalyzeStack is ~40 MB.
MAX_MESSAGE_BYTES = 400 * 1024 * 1024
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]
DEFAULT_START_TIMEOUT = 60.0
DEFAULT_RPC_TIMEOUT = 600.0
_STDERR_KEEP = 64 * 1024

EnforcementLevel = Literal["advisory", "mandatory", "remediate", "disabled"]
ENFORCEMENT_LEVELS: dict[str, int] = {
    "advisory": analyzer_pb2.ADVISORY,
    "mandatory": analyzer_pb2.MANDATORY,
    "remediate": analyzer_pb2.REMEDIATE,
    "disabled": analyzer_pb2.DISABLED,
}
_LEVEL_NAMES = {number: name for name, number in ENFORCEMENT_LEVELS.items()}
_SEVERITY_NAMES = {
    analyzer_pb2.POLICY_SEVERITY_LOW: "low",
    analyzer_pb2.POLICY_SEVERITY_MEDIUM: "medium",
    analyzer_pb2.POLICY_SEVERITY_HIGH: "high",
    analyzer_pb2.POLICY_SEVERITY_CRITICAL: "critical",
}
# The prefix pulumi_policy gives a diagnostic when a policy could not run because a value is unknown.
_COULD_NOT_DECIDE = "can't run policy"

# What AnalyzeStack sends as a resource's properties. The engine sends the provider's outputs, which for
# azure-native are the inputs echoed plus computed values; "inputs+outputs" lays each top-level input over
# the recorded outputs, which is that, and lets a test's mutation of the inputs show in the stack view.
StackProperties = Literal["inputs", "outputs", "inputs+outputs"]


class PolicyPackError(RuntimeError):
    """The pack did not start, crashed, or failed a call; the message carries the pack's stderr."""


class PolicyConfigError(UserError, ValueError):
    """A policy config file or mapping is missing, not JSON, or does not fit the pack's policies."""


# -------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class PolicyViolation:
    """One diagnostic of the pack: a violation, or a policy saying it could not decide (advisory)."""

    policy_name: str
    enforcement_level: str
    urn: str
    message: str
    description: str = ""
    policy_pack: str = ""
    severity: str = ""

    @property
    def mandatory(self) -> bool:
        return self.enforcement_level == "mandatory"

    @property
    def could_not_decide(self) -> bool:
        """The policy could not run on unknown (preview) values; pulumi_policy reports that as advisory."""
        return _COULD_NOT_DECIDE in self.message

    @property
    def detail(self) -> str:
        """The message without the policy description that pulumi_policy puts in front of it."""
        prefix = f"{self.description}\n"
        return self.message[len(prefix) :] if self.description and self.message.startswith(prefix) else self.message


@dataclass(frozen=True)
class NotApplicable:
    """A policy that had nothing to check, and why."""

    policy_name: str
    reason: str
    urn: str = ""


@dataclass
class AnalysisResult:
    """What `Analyze`/`AnalyzeStack` answered. Iterating it yields the violations."""

    violations: list[PolicyViolation] = field(default_factory=list)
    not_applicable: list[NotApplicable] = field(default_factory=list)

    def __iter__(self) -> Iterator[PolicyViolation]:
        return iter(self.violations)

    def __len__(self) -> int:
        return len(self.violations)

    @property
    def mandatory(self) -> list[PolicyViolation]:
        return [v for v in self.violations if v.mandatory]

    @property
    def advisory(self) -> list[PolicyViolation]:
        return [v for v in self.violations if v.enforcement_level == "advisory"]

    @property
    def undecided(self) -> list[PolicyViolation]:
        return [v for v in self.violations if v.could_not_decide]

    def by_policy(self, policy_name: str) -> list[PolicyViolation]:
        return [v for v in self.violations if v.policy_name == policy_name]

    def extend(self, other: AnalysisResult) -> None:
        self.violations.extend(other.violations)
        self.not_applicable.extend(other.not_applicable)


@dataclass(frozen=True)
class PolicyInfo:
    """A policy as `GetAnalyzerInfo` describes it."""

    name: str
    description: str
    enforcement_level: str
    policy_type: Literal["resource", "stack", "unknown"]
    config_schema: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    display_name: str = ""


@dataclass(frozen=True)
class AnalyzerInfo:
    """The pack as `GetAnalyzerInfo` describes it."""

    name: str
    version: str
    policies: tuple[PolicyInfo, ...]
    supports_config: bool

    def policy(self, name: str) -> PolicyInfo:
        for policy in self.policies:
            if policy.name == name:
                return policy
        raise KeyError(f"policy pack {self.name} has no policy {name!r}")

    @property
    def policy_names(self) -> list[str]:
        return [p.name for p in self.policies]


@dataclass(frozen=True)
class PolicyConfigEntry:
    """One policy's reconciled config: its enforcement level and its options (defaults filled in)."""

    enforcement_level: str
    properties: Mapping[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------- policy config


def policy_config_path(stack: str, pack_dir: Path = POLICY_PACK_DIR) -> Path:
    """Where the policy config of `stack` lives: `policies/config/<stack>.json`."""
    return Path(pack_dir) / "config" / f"{stack}.json"


def load_policy_config(stack: str | os.PathLike[str], pack_dir: Path = POLICY_PACK_DIR) -> dict[str, Any]:
    """The policy-pack config JSON of a stack (`dev`), or of a path to a `.json` file, parsed and checked
    like the CLI's `--policy-pack-config`: each value is an enforcement level or an object."""
    path = Path(stack) if str(stack).endswith(".json") else policy_config_path(str(stack), pack_dir)
    if not path.is_file():
        known = sorted(p.stem for p in (Path(pack_dir) / "config").glob("*.json"))
        raise PolicyConfigError(
            f"no policy config for {stack}: {path} does not exist (configs: {', '.join(known) or 'none'})"
        )
    text = path.read_text()
    if not text.strip():
        return {}  # the CLI accepts an empty file as "no config"
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise PolicyConfigError(
            f"{path}: not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        ) from None
    try:
        return _checked_config(config)
    except PolicyConfigError as error:
        raise PolicyConfigError(f"{path}: {error}") from None


def _checked_config(config: Any) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise PolicyConfigError(f"expected an object of policy names, got {type(config).__name__}")
    for name, value in config.items():
        if isinstance(value, str):
            level = value
        elif isinstance(value, dict):
            level = value.get("enforcementLevel")
        else:
            raise PolicyConfigError(f"{name!r}: {value!r} is not valid; must be an enforcement level or an object")
        if level is not None and level not in ENFORCEMENT_LEVELS:
            raise PolicyConfigError(
                f"{name!r}: {level!r} is not a valid enforcement level ({', '.join(ENFORCEMENT_LEVELS)})"
            )
    return config


def reconcile_policy_config(info: AnalyzerInfo, config: Mapping[str, Any] | None) -> dict[str, PolicyConfigEntry]:
    """Every policy's enforcement level and options, as the CLI computes them before `Configure`:
    the policy's default level and schema defaults, then `"all"`, then each policy's own entry; validated
    against the policy's config schema.

    Stricter than the CLI: an unknown policy name or option is an error, since a typo would silently drop
    a requirement (say, `requireHSM` for `requireHsm`)."""
    config = _checked_config(dict(config or {}))
    result: dict[str, PolicyConfigEntry] = {}
    for policy in info.policies:
        defaults = {k: v["default"] for k, v in policy.config_schema.items() if "default" in v}
        result[policy.name] = PolicyConfigEntry(policy.enforcement_level, defaults)

    all_level = config.get("all")
    if isinstance(all_level, dict):
        if set(all_level) - {"enforcementLevel"}:
            raise PolicyConfigError('"all" takes only an enforcement level')
        all_level = all_level.get("enforcementLevel")
    if all_level is not None:
        result = {name: PolicyConfigEntry(all_level, entry.properties) for name, entry in result.items()}

    errors: list[str] = []
    for name, value in config.items():
        if name == "all":
            continue
        if name not in result:
            errors.append(f"{name}: the pack has no such policy (policies: {', '.join(info.policy_names)})")
            continue
        entry = result[name]
        if isinstance(value, str):
            result[name] = PolicyConfigEntry(value, entry.properties)
            continue
        options = {k: v for k, v in value.items() if k != "enforcementLevel"}
        result[name] = PolicyConfigEntry(
            value.get("enforcementLevel", entry.enforcement_level), {**entry.properties, **options}
        )

    for policy in info.policies:
        properties = result[policy.name].properties
        for option in policy.required:
            if option not in properties:
                errors.append(f"{policy.name}: {option} is required")
        for option, value in properties.items():
            schema = policy.config_schema.get(option)
            if schema is None:
                known = ", ".join(policy.config_schema) or "none"
                errors.append(f"{policy.name}: unknown option {option!r} (options: {known})")
                continue
            errors.extend(f"{policy.name}: {problem}" for problem in _schema_problems(value, schema, option))
    if errors:
        raise PolicyConfigError("invalid policy config:\n  " + "\n  ".join(errors))
    return result


def _schema_problems(value: Any, schema: Mapping[str, Any], path: str) -> list[str]:
    """The JSON Schema keywords the pack's config schemas use: type, enum, minimum, maximum, pattern, items."""
    expected = schema.get("type")
    checks: dict[str, Callable[[Any], bool]] = {
        "boolean": lambda v: isinstance(v, bool),
        "integer": lambda v: isinstance(v, int | float) and not isinstance(v, bool) and float(v).is_integer(),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "string": lambda v: isinstance(v, str),
        "array": lambda v: isinstance(v, list | tuple),
        "object": lambda v: isinstance(v, dict),
    }
    if expected in checks and not checks[expected](value):
        return [f"{path}: expected {expected}, got {value!r}"]
    problems = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if "minimum" in schema and isinstance(value, int | float) and value < schema["minimum"]:
        problems.append(f"{path}: {value!r} is less than the minimum {schema['minimum']}")
    if "maximum" in schema and isinstance(value, int | float) and value > schema["maximum"]:
        problems.append(f"{path}: {value!r} is more than the maximum {schema['maximum']}")
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        problems.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if "items" in schema and isinstance(value, list | tuple):
        for position, item in enumerate(value):
            problems.extend(_schema_problems(item, schema["items"], f"{path}[{position}]"))
    return problems


# ------------------------------------------------------------------------------------------ conversion


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


def _result(response: analyzer_pb2.AnalyzeResponse, urn: str = "") -> AnalysisResult:
    # Resource policies report without a URN; the engine attributes them to the analyzed resource.
    return AnalysisResult(
        violations=[
            PolicyViolation(
                policy_name=d.policyName,
                enforcement_level=_LEVEL_NAMES.get(d.enforcementLevel, str(d.enforcementLevel)),
                urn=d.urn or urn,
                message=d.message,
                description=d.description,
                policy_pack=d.policyPackName,
                severity=_SEVERITY_NAMES.get(d.severity, ""),
            )
            for d in response.diagnostics
        ],
        not_applicable=[NotApplicable(n.policy_name, n.reason, urn) for n in response.not_applicable],
    )


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
            info = self._call("GetAnalyzerInfo", empty_pb2.Empty())
            types: dict[int, Literal["resource", "stack", "unknown"]] = {
                analyzer_pb2.POLICY_TYPE_RESOURCE: "resource",
                analyzer_pb2.POLICY_TYPE_STACK: "stack",
            }
            self._info = AnalyzerInfo(
                name=info.name,
                version=info.version,
                supports_config=info.supportsConfig,
                policies=tuple(
                    PolicyInfo(
                        name=p.name,
                        description=p.description,
                        enforcement_level=_LEVEL_NAMES.get(p.enforcementLevel, "advisory"),
                        policy_type=types.get(p.policy_type, "unknown"),
                        config_schema=json_format.MessageToDict(p.configSchema.properties),
                        required=tuple(p.configSchema.required),
                        display_name=p.displayName,
                    )
                    for p in info.policies
                ),
            )
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
        return _result(self._call("Analyze", request), request.urn)

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
        return _result(self._call("AnalyzeStack", request))

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


# ------------------------------------------------------------------------------------------- process


def resolve_python(pack_dir: Path = POLICY_PACK_DIR) -> str:
    """The interpreter the Pulumi CLI runs the pack with, resolved as its Python toolchain does, no fallback.

    `virtualenv: <dir>` in PulumiPolicy.yaml: `<pack>/<dir>/bin/python`, which must exist: for `--policy-pack
    <dir>` the CLI installs nothing, it starts that interpreter (python/toolchain/pip.go, Command). Without the
    option: `python3`, else `python`, from PATH. A missing virtualenv is a PolicyPackError saying how to create
    it, where a silent fallback to this interpreter would pass here and fail in CI.
    """
    manifest = Path(pack_dir) / "PulumiPolicy.yaml"
    try:
        document = yaml.safe_load(manifest.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise PolicyPackError(f"{manifest}: cannot read the policy pack manifest: {error}") from None
    runtime = document.get("runtime")
    options = runtime.get("options") if isinstance(runtime, dict) else None
    virtualenv = options.get("virtualenv") if isinstance(options, dict) else None
    if not virtualenv:
        found = shutil.which("python3") or shutil.which("python")
        if found is None:
            raise PolicyPackError("no python3 or python on PATH to run the policy pack with")
        return found
    venv = Path(pack_dir) / str(virtualenv)
    for candidate in (venv / "bin" / "python", venv / "Scripts" / "python.exe"):
        if candidate.is_file():
            return str(candidate)
    raise PolicyPackError(
        f"the policy pack's virtualenv {venv} does not exist: {manifest.name} sets `virtualenv: {virtualenv}`, so "
        f"the Pulumi CLI runs the pack with {venv / 'bin' / 'python'}. Create it with `.ci/pulumi-stack policy-venv` "
        "(make does this), or `pulumi install` in the pack's folder."
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    # The pack holds no state worth a graceful stop: SIGKILL ends it at once, where SIGTERM would wait
    # about 0.2 s for gRPC's server shutdown on every `make plan`.
    if process.poll() is None:
        process.kill()
        process.wait()
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


class PolicyPackProcess:
    """The pack as a subprocess started like the CLI starts it; `start()` returns at once, `wait_ready()`
    waits for the port and connects. `close()` (or leaving the `with` block) always ends the process."""

    def __init__(
        self,
        pack_dir: Path | str = POLICY_PACK_DIR,
        *,
        python: str | os.PathLike[str] | None = None,
        engine_address: str = UNUSED_ENGINE_ADDRESS,
        env: Mapping[str, str] | None = None,
        rpc_timeout: float | None = DEFAULT_RPC_TIMEOUT,
    ) -> None:
        self.pack_dir = Path(pack_dir).resolve()
        self._python = str(python) if python is not None else None
        self.engine_address = engine_address
        self._env = dict(env) if env is not None else None
        self._rpc_timeout = rpc_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize | None = None
        self._ready = threading.Event()
        self._port_line: bytes | None = None
        self._stdout_rest = bytearray()
        self._stderr = bytearray()
        self._stderr_done = threading.Event()
        self._channel: grpc.Channel | None = None
        self._client: PolicyClient | None = None

    @property
    def command(self) -> list[str]:
        """The command line, as the CLI's python analyzer shim runs it."""
        python = self._python or resolve_python(self.pack_dir)
        return [python, "-u", "-m", "pulumi.policy", self.engine_address, str(self.pack_dir)]

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def returncode(self) -> int | None:
        return self._process.poll() if self._process else None

    @property
    def port(self) -> int | None:
        line = self._port_line
        return int(line) if line is not None and line.strip().isdigit() else None

    def stderr(self) -> str:
        """What the pack wrote to stderr so far (the last 64 KB)."""
        return self._stderr.decode(errors="replace")

    def start(self) -> PolicyPackProcess:
        """Starts the pack and returns without waiting for it."""
        if self._process is not None:
            raise PolicyPackError("the policy pack is already started")
        if not (self.pack_dir / "PulumiPolicy.yaml").is_file():
            raise PolicyPackError(f"{self.pack_dir} is not a policy pack: it has no PulumiPolicy.yaml")
        try:
            self._process = subprocess.Popen(
                self.command,
                cwd=self.pack_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self._env,
            )
        except OSError as error:
            raise PolicyPackError(f"cannot start the policy pack ({' '.join(self.command)}): {error}") from None
        # A safety net: the process ends with this object or the interpreter even without close().
        self._finalizer = weakref.finalize(self, _stop, self._process)
        threading.Thread(target=self._read_stdout, name="policy-pack-stdout", daemon=True).start()
        threading.Thread(target=self._read_stderr, name="policy-pack-stderr", daemon=True).start()
        return self

    def _read_stdout(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        stream = self._process.stdout
        try:
            # Like the CLI: the first line of stdout is the port.
            self._port_line = stream.readline()
            self._ready.set()
            while chunk := stream.read1(65536):
                self._stdout_rest.extend(chunk[-_STDERR_KEEP:])
        except (OSError, ValueError):
            pass  # the stream was closed by close()
        finally:
            self._ready.set()

    def _read_stderr(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        try:
            while chunk := self._process.stderr.read1(65536):
                self._stderr.extend(chunk)
                if len(self._stderr) > _STDERR_KEEP:
                    del self._stderr[: len(self._stderr) - _STDERR_KEEP]
        except (OSError, ValueError):
            pass
        finally:
            self._stderr_done.set()

    def _failure(self, what: str) -> PolicyPackError:
        if self.returncode is not None:
            self._stderr_done.wait(timeout=5)
        stderr = self.stderr().strip()
        output = bytes(self._stdout_rest).decode(errors="replace").strip()
        message = f"policy pack {self.pack_dir} {what}"
        if stderr:
            message += f"\nstderr:\n{stderr}"
        if output:
            message += f"\nstdout:\n{output}"
        return PolicyPackError(message)

    def wait_ready(self, timeout: float = DEFAULT_START_TIMEOUT) -> PolicyClient:
        """Waits for the port, connects and returns the client; ends the process if it does not come up."""
        if self._client is not None:
            return self._client
        if self._process is None:
            self.start()
        if not self._ready.wait(timeout):
            self.close()
            raise self._failure(f"printed no port within {timeout:.0f} s")
        port = self.port
        if port is None:
            line = (self._port_line or b"").decode(errors="replace").strip()
            # A pack that printed nothing is exiting: wait for its exit code and stderr. One that printed
            # something else is refused as it is, without waiting for an exit that may never come.
            if not line:
                with suppress(subprocess.TimeoutExpired):
                    self._process.wait(timeout=5)  # type: ignore[union-attr]
            code = self.returncode
            what = (
                f"exited with code {code} before printing its port"
                if code is not None and not line
                else f'printed "{line}" where its port belongs'
            )
            self.close()
            raise self._failure(what)
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=_CHANNEL_OPTIONS)
        # Ready when it answers a call. grpc.channel_ready_future would leave a thread polling the channel's state
        # every 0.2 s, which close() then waits for: a fifth of a second on every `kms-aks plan`.
        try:
            analyzer_pb2_grpc.AnalyzerStub(self._channel).GetPluginInfo(
                empty_pb2.Empty(), timeout=timeout, wait_for_ready=True
            )
        except grpc.RpcError as error:
            if error.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
                self.close()
                raise self._failure(f"did not accept connections on port {port} within {timeout:.0f} s") from None
        self._client = PolicyClient(self._channel, timeout=self._rpc_timeout, diagnostics=self.stderr)
        return self._client

    @property
    def client(self) -> PolicyClient:
        """The connected client (`wait_ready()` first)."""
        if self._client is None:
            raise PolicyPackError("the policy pack is not ready: call wait_ready() first")
        return self._client

    def close(self) -> None:
        """Closes the channel and ends the process."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        self._client = None
        if self._finalizer is not None:
            self._finalizer()  # runs _stop once

    def __enter__(self) -> PolicyPackProcess:
        self.wait_ready()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


@contextmanager
def running_policy_pack(
    pack_dir: Path | str = POLICY_PACK_DIR,
    *,
    stack: str | None = None,
    config: Mapping[str, Any] | None = None,
    timeout: float = DEFAULT_START_TIMEOUT,
    **process_options: Any,
) -> Iterator[PolicyClient]:
    """A started, configured pack: `config`, else the config file of `stack`, else every default."""
    if config is None and stack is not None:
        config = load_policy_config(stack, Path(pack_dir))
    process = PolicyPackProcess(pack_dir, **process_options).start()
    try:
        client = process.wait_ready(timeout)
        client.configure(config)
        yield client
    finally:
        process.close()
