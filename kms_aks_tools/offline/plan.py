"""The plan of a stack, with no Azure and no CLI: the real program under the mock engine (`mock_engine`), every
resource through the real policy pack (`policy_pack`), the deployment waves and critical path (`graph`).

`build_plan` returns the `Plan` that `kms-aks plan` prints and writes as `--json` (`kms_aks_tools.commands.plan`).
The same input always gives the same plan, byte for byte (see `kms_aks_tools.offline.graph`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from azure_facts import ROLE_NAMES
from azure_facts.tokens import plain_type
from kms_aks.config.base import ConfigError
from kms_aks_tools.cli.exits import UserError
from kms_aks_tools.offline.graph import cloud_dependencies, critical_path, deployment_waves, stable_key
from kms_aks_tools.offline.mock_engine import ROOT, run_stack
from kms_aks_tools.offline.policy_pack import (
    PolicyConfigError,
    PolicyPackProcess,
    PolicyViolation,
    load_policy_config,
    policy_config_path,
)
from kms_aks_tools.offline.recording import UNKNOWN, RecordedResource, RecordedStack, redact_secrets
from kms_aks_tools.project.stack_config import stack_config_from_file
from kms_aks_tools.project.stack_file import check_stack

KEY_CREATE_TIME_NOTE = (
    "type, size, ops, expiry and rotation policy are set when the key is created; on an existing key a change is "
    "not applied (an expiry change fails the deployment): change them on the data plane, then `pulumi refresh` "
    "(docs/rotation.md)"
)


class PlanError(UserError):
    """A problem the user can fix (unknown stack, broken policy config, invalid stack config)."""


@dataclass
class Plan:
    """Everything `make plan` found, in the shape `--json` writes."""

    stack: str
    mode: str
    policy_config: str | None
    resources: list[dict[str, Any]] = field(default_factory=list)
    waves: list[list[str]] = field(default_factory=list)
    critical_path: list[str] = field(default_factory=list)
    violations: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    verdict: str = "clean"


# ------------------------------------------------------------------------------------------- properties


def _get(data: dict[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _known(value: Any, resource: RecordedResource, path: str, names: dict[str, str]) -> str:
    if value == UNKNOWN:
        # The resources this very value is computed from; the engine's dependencies of the whole top-level
        # property would also name what its other values need (prod's securityProfile: the key, and through
        # Defender the workspace). Sorted, so the same input prints the same text.
        urns = resource.unknown_sources.get(path, resource.property_dependencies.get(path.split(".")[0], ()))
        sources = sorted({names[u] for u in urns if u in names})
        return f"(known after apply{', from ' + ', '.join(sources) if sources else ''})"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # the wire carries every number as a double
    if isinstance(value, list):
        return ", ".join(_known(v, resource, f"{path}.{i}", names) for i, v in enumerate(value))
    return str(value)


def _system_pool(inputs: dict[str, Any]) -> dict[str, str]:
    # Which OS disk the nodes get (Ephemeral where the VM size's local disk holds it) and host encryption.
    pools = _get(inputs, "agentPoolProfiles") or []
    if not pools or not isinstance(pools[0], dict):
        return {}
    system = pools[0]
    size = system.get("osDiskSizeGB")
    size_text = f"{int(size)} GB" if isinstance(size, int | float) else "default size"
    return {
        "OS disk": f"{system.get('osDiskType', 'AKS default')} ({size_text})",
        "encryption at host": "yes" if system.get("enableEncryptionAtHost") else "no",
    }


def _diagnostic_categories(inputs: dict[str, Any]) -> dict[str, str]:
    shown = {"logs": ", ".join(str(e.get("category")) for e in _get(inputs, "logs") or []) or "none"}
    metrics = _get(inputs, "metrics") or []
    if metrics:
        shown["metrics"] = ", ".join(str(e.get("category")) for e in metrics)
    return shown


def _receivers(inputs: dict[str, Any]) -> dict[str, str]:
    # Counts only: a webhook URL may carry a token.
    emails, webhooks = (len(_get(inputs, key) or []) for key in ("emailReceivers", "webhookReceivers"))
    return {"receivers": f"{emails} email, {webhooks} webhook"}


def _key_expiry(inputs: dict[str, Any]) -> dict[str, str]:
    expires = _get(inputs, "properties.attributes.expires")
    if isinstance(expires, int | float) and not isinstance(expires, bool):
        return {"expires": datetime.fromtimestamp(expires, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")}
    return {}


def _create_time_only(inputs: dict[str, Any]) -> dict[str, str]:
    # ARM's Keys_CreateIfNotExist applies these only when it creates the key (guard: key-create-time-change).
    return {"create-time only": KEY_CREATE_TIME_NOTE}


def _role(inputs: dict[str, Any]) -> dict[str, str]:
    role = str(_get(inputs, "roleDefinitionId") or "").rsplit("/", 1)[-1]
    return {"role": ROLE_NAMES.get(role, role)}


def _delegations(inputs: dict[str, Any]) -> dict[str, str]:
    delegations = _get(inputs, "delegations") or []
    return {"delegated to": ", ".join(str(d.get("serviceName")) for d in delegations)} if delegations else {}


# What the plan shows of each type, in order: (label, property path) for an input shown as it is, or a function of
# the (redacted) inputs for what one path cannot say.
Highlight = tuple[str, str] | Callable[[dict[str, Any]], dict[str, str]]
HIGHLIGHTS: dict[str, tuple[Highlight, ...]] = {
    "azure-native:containerservice:ManagedCluster": (
        ("KMS enabled", "securityProfile.azureKeyVaultKms.enabled"),
        ("key id", "securityProfile.azureKeyVaultKms.keyId"),
        ("network access", "securityProfile.azureKeyVaultKms.keyVaultNetworkAccess"),
        ("key vault id", "securityProfile.azureKeyVaultKms.keyVaultResourceId"),
        ("identity type", "identity.type"),
        ("kubernetes", "kubernetesVersion"),
        ("API server VNet integration", "apiServerAccessProfile.enableVnetIntegration"),
        ("local accounts disabled", "disableLocalAccounts"),
        _system_pool,
        ("secret rotation", "addonProfiles.azureKeyvaultSecretsProvider.config.enableSecretRotation"),
        ("Container Insights", "addonProfiles.omsagent.enabled"),
        ("Defender", "securityProfile.defender.securityMonitoring.enabled"),
    ),
    "time:index/sleep:Sleep": (("wait", "createDuration"),),
    "azure-native:monitor:DiagnosticSetting": (_diagnostic_categories,),
    "azure-native:eventgrid:SystemTopicEventSubscription": (
        ("events", "filter.includedEventTypes"),
        ("delivered as", "destination.endpointType"),
        ("severity", "destination.severity"),
    ),
    "azure-native:monitor:ActionGroup": (_receivers,),
    "azure-native:monitor:ScheduledQueryRule": (("severity", "severity"), ("every", "evaluationFrequency")),
    "azure-native:operationalinsights:Workspace": (("retention days", "retentionInDays"),),
    "azure-native:keyvault:Vault": (
        ("vault SKU", "properties.sku.name"),
        ("RBAC", "properties.enableRbacAuthorization"),
        ("purge protection", "properties.enablePurgeProtection"),
        ("soft delete days", "properties.softDeleteRetentionInDays"),
        ("public network access", "properties.publicNetworkAccess"),
    ),
    "azure-native:keyvault:Key": (
        ("key type", "properties.kty"),
        ("key size", "properties.keySize"),
        ("key ops", "properties.keyOps"),
        _key_expiry,
        ("rotation expiry", "properties.rotationPolicy.attributes.expiryTime"),
        _create_time_only,
    ),
    "azure-native:keyvault:AccessPolicy": (
        ("key permissions", "policy.permissions.keys"),
        ("object id", "policy.objectId"),
    ),
    "azure-native:authorization:RoleAssignment": (_role, ("scope", "scope"), ("principal type", "principalType")),
    "azure-native:resources:ResourceGroup": (("location", "location"),),
    "azure-native:network:VirtualNetwork": (("address space", "addressSpace.addressPrefixes"),),
    "azure-native:network:Subnet": (("prefix", "addressPrefix"), _delegations),
}


def highlights(resource: RecordedResource, names: dict[str, str]) -> dict[str, str]:
    """The properties a KMS reviewer looks at first, per resource type (`HIGHLIGHTS`, by plain type, whatever token
    form declared it: a cluster from a versioned module or a `pulumi package add` package reads as any cluster)."""
    inputs = redact_secrets(resource.inputs)
    shown: dict[str, str] = {}
    for highlight in HIGHLIGHTS.get(plain_type(resource.type) or resource.type, ()):
        if callable(highlight):
            shown.update(highlight(inputs))
            continue
        label, path = highlight
        value = _get(inputs, path)
        if value is not None:
            shown[label] = _known(value, resource, path, names)
    if resource.custom:
        shown["protected"] = "yes" if resource.protect else "no"
    return shown


def short_type(type_token: str) -> str:
    return type_token.split(":")[-1].split("/")[-1]


# ------------------------------------------------------------------------------------------- building


def build_plan(
    stack: str,
    *,
    policy_config: Path | None = None,
    applied: bool = False,
    pack_dir: Path | None = None,
    root: Path = ROOT,
) -> tuple[Plan, RecordedStack]:
    """Runs the program of the project in `root` and its pack; raises PlanError for anything the user must fix.

    The pack is `root`'s `policies/` unless `pack_dir` names another.
    """
    pack_dir = pack_dir or root / "policies"
    try:
        stack_name = check_stack(stack, root)
        # The same validation as the program's, before the pack starts: a config mistake costs no process.
        config = stack_config_from_file(stack, root)
    except (FileNotFoundError, ValueError) as error:
        raise PlanError(str(error)) from None
    except ConfigError as error:
        raise PlanError(f"stack {stack_name}: {error}") from None
    config_path = policy_config or policy_config_path(stack_name, pack_dir)
    try:
        pack_config = load_policy_config(config_path, pack_dir) if policy_config or config_path.is_file() else {}
    except PolicyConfigError as error:
        raise PlanError(f"policy config: {error}") from None
    missing_config = None if policy_config or config_path.is_file() else config_path

    # The pack boots (a Python process importing pulumi_policy) while the program runs.
    pack = PolicyPackProcess(pack_dir).start()
    try:
        recorded = run_stack(stack, preview=not applied, root=root)
        if recorded.error is not None:
            raise PlanError(f"stack {stack_name}: {recorded.error}")
        client = pack.wait_ready()
        try:
            client.configure(pack_config)
        except PolicyConfigError as error:
            raise PlanError(f"policy config {config_path}: {error}") from None
        result = client.check(recorded.resources)
        pinned_version = config.kms_key.version if config.kms_key and not config.existing_key else None
        if pinned_version and not applied:
            result.violations += _key_source_as_deployed(stack, root, client)
    finally:
        pack.close()

    names = {r.urn: r.name for r in recorded.resources}
    deps = cloud_dependencies(recorded)
    plan = Plan(
        stack=stack_name,
        mode="applied" if applied else "preview",
        policy_config=_relative(config_path, root) if pack_config or policy_config else None,
        warnings=list(recorded.warnings),
    )
    if missing_config is not None:
        plan.warnings.append(missing_policy_config_note(missing_config, root))
    if pinned_version and not applied:
        plan.warnings.append(
            f"kms-aks:kmsKey.version pins version {pinned_version}: a stack that rotates is deployed, so its preview "
            f"knows the key id; {KEY_SOURCE_POLICY} was also checked with the key id known, as that preview checks "
            "it (docs/rotation.md, step 2)"
        )
    waves = deployment_waves(recorded)
    for resource in _in_deployment_order(recorded, waves):
        plan.resources.append(
            {
                "urn": resource.urn,
                "type": resource.type,
                "name": resource.name,
                "parent": resource.parent,
                "custom": resource.custom,
                "protect": resource.protect,
                "dependencies": deps.get(resource.urn, []),
                "highlights": highlights(resource, names),
                "inputs": _sorted_keys(redact_secrets(resource.inputs)),
            }
        )
    plan.waves = [[r.name for r in wave] for wave in waves]
    plan.critical_path = [r.name for r in critical_path(recorded)]
    # The pack answers in the order resources reached it; sort so that two runs print the same.
    plan.violations = sorted(
        (_violation(v, names) for v in result.violations),
        key=lambda v: (LEVEL_ORDER.get(v["enforcementLevel"], 9), v["policy"], v["resource"], v["urn"], v["message"]),
    )
    if any(v.mandatory for v in result.violations):
        plan.verdict = "blocked"
    elif result.violations:
        plan.verdict = "advisory"
    return plan, recorded


KEY_SOURCE_POLICY = "aks-kms-key-source"


def _key_source_as_deployed(stack: str, root: Path, client: Any) -> list[PolicyViolation]:
    """The pack's key-source verdict with the key id known, as in `pulumi preview` of a deployed stack.

    In this plan's preview everything is new, so a key id built from the vault's URI and a pinned version is
    unknown and the pack passes it: the unpinned version of rotation step 2 would show only after `pulumi up`.
    A stack that pins a version exists already; its real preview knows the key id, and so the pack's
    `aks-kms-key-source` sees it. Running the program as applied gives that key id.
    """
    deployed = run_stack(stack, preview=False, root=root)
    if deployed.error is not None:
        return []  # the preview run reported the same program error already
    return [
        violation
        for violation in client.check(deployed.resources).violations
        if violation.policy_name == KEY_SOURCE_POLICY and not violation.could_not_decide
    ]


LEVEL_ORDER = {"mandatory": 0, "advisory": 1, "remediate": 2, "disabled": 3}


def _sorted_keys(value: Any) -> Any:
    """Inputs with every mapping's keys sorted: the wire's key order is not stable from run to run."""
    if isinstance(value, dict):
        return {key: _sorted_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(item) for item in value]
    return value


def _relative(path: Path, root: Path) -> str:
    resolved, base = path.resolve(), root.resolve()
    return str(resolved.relative_to(base)) if resolved.is_relative_to(base) else str(path)


def missing_policy_config_note(path: Path, root: Path) -> str:
    """What to do when a stack has no policy config: CI's `--policy-pack-config` would fail on the missing file."""
    shown = _relative(path, root)
    others = sorted(p.name for p in path.parent.glob("*.json")) if path.parent.is_dir() else []
    prod, dev = _relative(path.parent / "prod.json", root), _relative(path.parent / "dev.json", root)
    start = (
        f"start from a copy of {prod} (a protected stack) or {dev} (a throwaway one): cp {prod} {shown}"
        if {"prod.json", "dev.json"} <= set(others)
        else f"write it (policy name -> enforcement level; existing: {', '.join(others) or 'none'})"
    )
    return (
        f"no policy config {shown}: this plan ran the pack with its default levels, and the workflows' "
        f"`pulumi preview --policy-pack-config {shown}` fails without it; {start} (docs/policies.md)"
    )


def _in_deployment_order(recorded: RecordedStack, waves: list[list[RecordedResource]]) -> list[RecordedResource]:
    """Parents before children; siblings by wave (a component by its last child), then name.

    Registration order is a race between outputs, so it would make the plan differ from run to run.
    """
    rank = {r.urn: index for index, wave in enumerate(waves) for r in wave}
    for resource in reversed(recorded.resources):  # children register after their parent
        if resource.parent and resource.urn in rank:
            rank[resource.parent] = max(rank.get(resource.parent, rank[resource.urn]), rank[resource.urn])
    children: dict[str, list[RecordedResource]] = {}
    for resource in recorded.resources:
        children.setdefault(resource.parent, []).append(resource)
    ordered: list[RecordedResource] = []

    def visit(parent: str) -> None:
        for child in sorted(children.get(parent, []), key=lambda r: (rank.get(r.urn, 0), *stable_key(r))):
            ordered.append(child)
            visit(child.urn)

    visit("")
    return ordered


def _violation(violation: PolicyViolation, names: dict[str, str]) -> dict[str, str]:
    return {
        "policy": violation.policy_name,
        "enforcementLevel": violation.enforcement_level,
        "urn": violation.urn,
        "resource": names.get(violation.urn, violation.urn or "(stack)"),
        "message": violation.detail,
    }


# ------------------------------------------------------------------------------------------- output
