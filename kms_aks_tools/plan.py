"""`kms-aks plan`: what a stack would create, and whether the policy pack lets it, with no Azure and no CLI.

    kms-aks plan --stack dev [--policy-config FILE] [--json FILE|-] [--graph FILE] [--applied] [--arm FILE]

It runs the real program for `Pulumi.<stack>.yaml` under the mock engine while the real policy pack starts
in parallel (as the Pulumi CLI starts it), sends every resource through the pack (`Analyze` each,
`AnalyzeStack` once) with `policies/config/<stack>.json` when present, and prints the plan.

By default the program runs as in `pulumi preview`: values the providers compute (ids, key versions,
principal ids) are unknown, exactly what the pack sees in a PR check. `--applied` runs it as `pulumi up`
would, with the values the mock providers answer.

Exit codes: 0 clean or advisory only, 1 a mandatory violation, 2 bad input, bad config or a program error.
The same input always gives the same text and the same JSON, byte for byte (see `kms_aks_tools.graph`).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

from azure_facts import ROLE_NAMES
from kms_aks.config import ConfigError, parse_stack_config, read_project_config
from kms_aks_tools.arm_export import to_arm_template
from kms_aks_tools.graph import cloud_dependencies, critical_path, deployment_waves, stable_key
from kms_aks_tools.mock_engine import ROOT, run_stack, with_secret_stand_ins
from kms_aks_tools.output import add_project_option, make_console, subcommand_parser
from kms_aks_tools.policy_client import (
    PolicyConfigError,
    PolicyPackError,
    PolicyPackProcess,
    PolicyViolation,
    load_policy_config,
    policy_config_path,
)
from kms_aks_tools.recording import UNKNOWN, RecordedResource, RecordedStack, redact_secrets
from kms_aks_tools.stack_file import check_stack, find_project, load_stack_file
from kms_aks_tools.type_tokens import plain_type

EXIT_OK, EXIT_MANDATORY, EXIT_ERROR = 0, 1, 2

KEY_CREATE_TIME_NOTE = (
    "type, size, ops, expiry and rotation policy are set when the key is created; on an existing key a change is "
    "not applied (an expiry change fails the deployment): change them on the data plane, then `pulumi refresh` "
    "(docs/rotation.md)"
)


class PlanError(Exception):
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


def highlights(resource: RecordedResource, names: dict[str, str]) -> dict[str, str]:
    """The properties a KMS reviewer looks at first, per resource type (the plain type, whatever token form
    declared it: a cluster from a versioned module or a `pulumi package add` package reads as any cluster)."""
    inputs = redact_secrets(resource.inputs)
    resource_type = plain_type(resource.type)
    shown: dict[str, str] = {}

    def put(label: str, path: str) -> None:
        value = _get(inputs, path)
        if value is not None:
            shown[label] = _known(value, resource, path, names)

    if resource_type == "azure-native:containerservice:ManagedCluster":
        put("KMS enabled", "securityProfile.azureKeyVaultKms.enabled")
        put("key id", "securityProfile.azureKeyVaultKms.keyId")
        put("network access", "securityProfile.azureKeyVaultKms.keyVaultNetworkAccess")
        put("key vault id", "securityProfile.azureKeyVaultKms.keyVaultResourceId")
        put("identity type", "identity.type")
        put("kubernetes", "kubernetesVersion")
        put("API server VNet integration", "apiServerAccessProfile.enableVnetIntegration")
        put("local accounts disabled", "disableLocalAccounts")
        pools = _get(inputs, "agentPoolProfiles") or []
        if pools and isinstance(pools[0], dict):
            # Which OS disk the nodes get (Ephemeral where the VM size's local disk holds it) and host encryption.
            system = pools[0]
            size = system.get("osDiskSizeGB")
            size_text = f"{int(size)} GB" if isinstance(size, int | float) else "default size"
            shown["OS disk"] = f"{system.get('osDiskType', 'AKS default')} ({size_text})"
            shown["encryption at host"] = "yes" if system.get("enableEncryptionAtHost") else "no"
        put("secret rotation", "addonProfiles.azureKeyvaultSecretsProvider.config.enableSecretRotation")
        put("Container Insights", "addonProfiles.omsagent.enabled")
        put("Defender", "securityProfile.defender.securityMonitoring.enabled")
    elif resource_type == "time:index/sleep:Sleep":
        put("wait", "createDuration")
    elif resource_type == "azure-native:monitor:DiagnosticSetting":
        shown["logs"] = ", ".join(str(e.get("category")) for e in _get(inputs, "logs") or []) or "none"
        metrics = _get(inputs, "metrics") or []
        if metrics:
            shown["metrics"] = ", ".join(str(e.get("category")) for e in metrics)
    elif resource_type == "azure-native:eventgrid:SystemTopicEventSubscription":
        put("events", "filter.includedEventTypes")
        put("delivered as", "destination.endpointType")
        put("severity", "destination.severity")
    elif resource_type == "azure-native:monitor:ActionGroup":
        # Counts only: a webhook URL may carry a token.
        shown["receivers"] = (
            f"{len(_get(inputs, 'emailReceivers') or [])} email, {len(_get(inputs, 'webhookReceivers') or [])} webhook"
        )
    elif resource_type == "azure-native:monitor:ScheduledQueryRule":
        put("severity", "severity")
        put("every", "evaluationFrequency")
    elif resource_type == "azure-native:operationalinsights:Workspace":
        put("retention days", "retentionInDays")
    elif resource_type == "azure-native:keyvault:Vault":
        put("vault SKU", "properties.sku.name")
        put("RBAC", "properties.enableRbacAuthorization")
        put("purge protection", "properties.enablePurgeProtection")
        put("soft delete days", "properties.softDeleteRetentionInDays")
        put("public network access", "properties.publicNetworkAccess")
    elif resource_type == "azure-native:keyvault:Key":
        put("key type", "properties.kty")
        put("key size", "properties.keySize")
        put("key ops", "properties.keyOps")
        expires = _get(inputs, "properties.attributes.expires")
        if isinstance(expires, int | float) and not isinstance(expires, bool):
            shown["expires"] = datetime.fromtimestamp(expires, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
        put("rotation expiry", "properties.rotationPolicy.attributes.expiryTime")
        # ARM's Keys_CreateIfNotExist applies these only when it creates the key (guard: key-create-time-change).
        shown["create-time only"] = KEY_CREATE_TIME_NOTE
    elif resource_type == "azure-native:keyvault:AccessPolicy":
        put("key permissions", "policy.permissions.keys")
        put("object id", "policy.objectId")
    elif resource_type == "azure-native:authorization:RoleAssignment":
        role = str(_get(inputs, "roleDefinitionId") or "").rsplit("/", 1)[-1]
        shown["role"] = ROLE_NAMES.get(role, role)
        put("scope", "scope")
        put("principal type", "principalType")
    elif resource_type == "azure-native:resources:ResourceGroup":
        put("location", "location")
    elif resource_type == "azure-native:network:VirtualNetwork":
        put("address space", "addressSpace.addressPrefixes")
    elif resource_type == "azure-native:network:Subnet":
        put("prefix", "addressPrefix")
        delegations = _get(inputs, "delegations") or []
        if delegations:
            shown["delegated to"] = ", ".join(str(d.get("serviceName")) for d in delegations)
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
        raw, _, _ = with_secret_stand_ins(load_stack_file(stack, root))
        # The same validation as the program's, before the pack starts: a config mistake costs no process.
        config = parse_stack_config(read_project_config(raw), provider_location=raw.get("azure-native:location"))
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


def render(plan: Plan, console: Console) -> None:
    """The plan as a reviewer reads it: resources, order, then the policy verdict."""
    by_urn = {r["urn"]: r for r in plan.resources}
    root = next((r for r in plan.resources if r["type"] == "pulumi:pulumi:Stack"), None)
    tree = Tree(f"[bold]stack {escape(plan.stack)}[/] ({plan.mode})")
    nodes: dict[str, Tree] = {root["urn"]: tree} if root else {}
    for resource in plan.resources:
        if resource is root:
            continue
        parent = nodes.get(resource["parent"], tree)
        style = "bold cyan" if not resource["custom"] else "green"
        label = f"[{style}]{escape(resource['name'])}[/] [dim]{escape(resource['type'])}[/]"
        node = parent.add(label)
        for key, value in resource["highlights"].items():
            node.add(f"[dim]{escape(key)}:[/] {escape(value)}")
        nodes[resource["urn"]] = node
    console.print(tree)
    cloud = [r for r in plan.resources if r["custom"]]
    components = [r for r in plan.resources if not r["custom"] and r is not root]
    protected = sum(1 for r in cloud if r["protect"])
    console.print(
        f"[bold]{len(cloud)} cloud resources to create[/] ({protected} protected from deletion), "
        f"in {len(components)} components"
    )

    console.print("[bold]Deployment order[/] (each wave can be created in parallel)")
    for index, wave in enumerate(plan.waves, start=1):
        console.print(f"  wave {index}: {escape(', '.join(wave))}")
    console.print(f"Critical path ({len(plan.critical_path)}): {escape(' -> '.join(plan.critical_path))}")

    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")

    styles = {"mandatory": "bold red", "advisory": "yellow", "remediate": "magenta", "disabled": "dim"}
    for level, style in styles.items():
        group = [v for v in plan.violations if v["enforcementLevel"] == level]
        if group:
            console.print(f"[{style}]{level} policy violations ({len(group)})[/]")
        for violation in group:
            resource = by_urn.get(violation["urn"])
            where = resource["name"] if resource else violation["resource"]
            console.print(f"  [{style}]{escape(violation['policy'])}[/] on [bold]{escape(where)}[/]")
            console.print(f"    {escape(violation['message'])}")
    config = f" with {plan.policy_config}" if plan.policy_config else " (default policy config: see the warning above)"
    verdict = {
        "clean": "[bold green]policy pack: no violations[/]",
        "advisory": "[bold yellow]policy pack: advisory findings only[/]",
        "blocked": "[bold red]policy pack: mandatory violations: this stack would be blocked[/]",
    }[plan.verdict]
    console.print(f"{verdict}{escape(config)}")


def to_dot(plan: Plan) -> str:
    """The dependency graph of cloud resources in DOT, grouped by component."""
    by_urn = {r["urn"]: r for r in plan.resources}
    lines = [
        "digraph plan {",
        "  rankdir=LR;",
        f'  label="{plan.stack}: arrows point from a resource to what waits for it; bold: protected from deletion";',
        '  node [shape=box, fontname="Helvetica"];',
    ]
    groups: dict[str, list[dict[str, Any]]] = {}
    for resource in plan.resources:
        if resource["custom"]:
            groups.setdefault(resource["parent"], []).append(resource)
    for index, (parent, members) in enumerate(groups.items()):
        owner = by_urn.get(parent)
        is_component = owner is not None and owner["type"] != "pulumi:pulumi:Stack"
        if is_component:
            lines.append(f"  subgraph cluster_{index} {{")
            lines.append(f'    label="{owner["name"]} ({short_type(owner["type"])})";')
        for member in members:
            shape = ", style=bold" if member["protect"] else ""
            lines.append(f'    "{member["urn"]}" [label="{member["name"]}\\n{short_type(member["type"])}"{shape}];')
        if is_component:
            lines.append("  }")
    for resource in plan.resources:
        for dep in resource["dependencies"]:
            lines.append(f'  "{dep}" -> "{resource["urn"]}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_graph(plan: Plan, target: Path, console: Console) -> None:
    """Always writes DOT; renders SVG/PNG only with graphviz's `dot`, and never installs anything itself.

    Without `dot`, the DOT file sits next to the asked-for target and the message says how to render it;
    the exit code stays the plan's (the graph is an extra, the policy verdict is the point).
    """
    dot = to_dot(plan)
    dot_file = target if target.suffix not in (".svg", ".png") else target.with_suffix(".dot")
    dot_file.write_text(dot)
    if dot_file == target:
        console.print(f"dependency graph written to {escape(str(target))} (DOT)")
        return
    if shutil.which("dot") is None:
        render = shlex.join(["dot", f"-T{target.suffix[1:]}", str(dot_file), "-o", str(target)])
        console.print(
            f"graphviz `dot` not found: wrote DOT to {escape(str(dot_file))}. To render {escape(target.suffix)}, "
            f"install graphviz (`make graphviz`, `sudo apt-get install graphviz` or `brew install graphviz`), "
            f"then run: {escape(render)}"
        )
        return
    subprocess.run(["dot", f"-T{target.suffix[1:]}", "-o", str(target)], input=dot.encode(), check=True)
    console.print(f"dependency graph written to {escape(str(target))} (DOT beside it: {escape(str(dot_file))})")


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of `kms-aks plan`; `kms_aks_tools.cli` and `python -m kms_aks_tools.plan` share them."""
    parser.add_argument("--stack", default="dev", help="stack name (Pulumi.<stack>.yaml) or a path to such a file")
    add_project_option(parser)
    parser.add_argument(
        "--policy-config", type=Path, help="policy-pack config JSON (default: policies/config/<stack>.json)"
    )
    parser.add_argument(
        "--json", dest="json_out", help="write the plan and verdicts as JSON to this file ('-' for stdout)"
    )
    parser.add_argument(
        "--graph",
        type=Path,
        help="write the dependency graph as DOT; .svg/.png also renders it when graphviz's `dot` is installed",
    )
    parser.add_argument("--applied", action="store_true", help="values as after `pulumi up` instead of preview")
    parser.add_argument(
        "--arm", type=Path, metavar="FILE", help="write the planned resources as an ARM template (docs/arm-export.md)"
    )
    parser.set_defaults(run=run)
    return parser


def build_parser() -> argparse.ArgumentParser:
    return configure_parser(subcommand_parser("plan", __doc__.split("\n\n")[0]))


def run(args: argparse.Namespace) -> int:
    # With JSON on stdout, the human-readable plan goes to stderr so the JSON stays parseable.
    console = make_console(stderr=args.json_out == "-")
    try:
        root = find_project(args.cwd or Path.cwd())
        plan, recorded = build_plan(args.stack, policy_config=args.policy_config, applied=args.applied, root=root)
    except FileNotFoundError as error:
        console.print(f"[bold red]error:[/] {escape(str(error))}")
        return EXIT_ERROR
    except (PlanError, PolicyPackError) as error:
        console.print(f"[bold red]error:[/] {escape(str(error))}")
        return EXIT_ERROR

    render(plan, console)
    if args.json_out:
        document = json.dumps(asdict(plan), indent=2, default=str)
        if args.json_out == "-":
            sys.stdout.write(document + "\n")
        else:
            Path(args.json_out).write_text(document + "\n")
            console.print(f"plan written to {escape(args.json_out)}")
    if args.graph:
        write_graph(plan, args.graph, console)
    if args.arm:
        args.arm.write_text(json.dumps(to_arm_template(recorded), indent=2) + "\n")
        console.print(f"ARM template written to {args.arm}")
    return EXIT_MANDATORY if plan.verdict == "blocked" else EXIT_OK


def stack_row(stack_file: str, as_of: date) -> Any:
    """`plan --all`'s row for one stack (`kms_aks_tools.every_stack`): the plan's policy verdict, and the rotation
    verdict of the same preview recording (no second run of the program)."""
    from kms_aks_tools.every_stack import StackRow
    from kms_aks_tools.rotation import check_rotation, key_expiry, key_id_of, rotation_verdict, stack_config

    name = Path(stack_file).name.removeprefix("Pulumi.").removesuffix(".yaml")
    # The stack file's own project (`--all --cwd OTHER`): its program, its pack and its policy config.
    root = Path(stack_file).resolve().parent
    try:
        plan, recorded = build_plan(stack_file, root=root)
        config = stack_config(stack_file, root)
    except (PlanError, PolicyPackError, ConfigError, FileNotFoundError, ValueError) as error:
        return StackRow(stack=name, exit_code=EXIT_ERROR, error=str(error))
    report = check_rotation(recorded, config, as_of=as_of)
    expiry, days_left = key_expiry(report)
    return StackRow(
        stack=name,
        exit_code=EXIT_MANDATORY if plan.verdict == "blocked" else EXIT_OK,
        location=config.location,
        key_id=key_id_of(config),
        key_expiry=expiry,
        days_left=days_left,
        policy=plan.verdict,
        rotation=rotation_verdict(report),
    )


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    exit_code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is written and the pack is stopped; skipping interpreter teardown (the SDK's modules,
    # gRPC threads) saves a fifth of a second on every run.
    os._exit(exit_code)
