"""`kms-aks plan`: what a stack would create, and whether the policy pack lets it, with no Azure and no CLI.

Options and exit codes: `kms-aks plan --help` (argparse is the one place they are written).

It runs the real program for `Pulumi.<stack>.yaml` under the mock engine while the real policy pack starts
in parallel (as the Pulumi CLI starts it), sends every resource through the pack (`Analyze` each,
`AnalyzeStack` once) with `policies/config/<stack>.json` when present, and prints the plan.

By default the program runs as in `pulumi preview`: values the providers compute (ids, key versions,
principal ids) are unknown, exactly what the pack sees in a PR check. `--applied` runs it as `pulumi up`
would, with the values the mock providers answer.

The same input always gives the same text and the same JSON, byte for byte (see `kms_aks_tools.offline.graph`).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

from azure_facts.tokens import (
    ACCESS_POLICY,
    KEY,
    MANAGED_CLUSTER,
    ROLE_ASSIGNMENT,
    USER_ASSIGNED_IDENTITY,
    VAULT,
    plain_type,
)
from kms_aks.config.base import ConfigError
from kms_aks_tools.cli.console import make_console
from kms_aks_tools.cli.exits import EXIT_BAD_INPUT, EXIT_BLOCKED, EXIT_OK
from kms_aks_tools.cli.options import add_project_option, subcommand_parser
from kms_aks_tools.cli.rows import StackRow
from kms_aks_tools.offline.arm_export import to_arm_template
from kms_aks_tools.offline.plan import Plan, PlanError, build_plan, short_type
from kms_aks_tools.offline.policy_pack import (
    PolicyPackError,
)
from kms_aks_tools.project.stack_file import find_project

# The types whose loss makes the cluster's Secrets unreadable: their protection is worth a line each.
KMS_TYPES = frozenset({MANAGED_CLUSTER, VAULT, KEY, USER_ASSIGNED_IDENTITY, ACCESS_POLICY, ROLE_ASSIGNMENT})


def _plain(token: str) -> str:
    return plain_type(token) or token


def _shown_highlights(resource: dict[str, Any], throwaway: bool) -> dict[str, str]:
    """What the tree shows of a resource: its highlights, protection only where it says something (a KMS
    resource's; nothing on a throwaway stack, whose summary says it once)."""
    shown = dict(resource["highlights"])
    protected = shown.pop("protected", None)
    if protected is not None and not throwaway and _plain(resource["type"]) in KMS_TYPES:
        shown["protected"] = protected
    return shown


def render(plan: Plan, console: Console) -> None:
    """The plan as a reviewer reads it: resources, order, then warnings, policy findings and the verdict last."""
    by_urn = {r["urn"]: r for r in plan.resources}
    root = next((r for r in plan.resources if r["type"] == "pulumi:pulumi:Stack"), None)
    cloud = [r for r in plan.resources if r["custom"]]
    throwaway = not any(r["protect"] for r in cloud)
    tree = Tree(f"[bold]stack {escape(plan.stack)}[/] ({plan.mode})")
    nodes: dict[str, Tree] = {root["urn"]: tree} if root else {}
    for resource in plan.resources:
        if resource is root:
            continue
        parent = nodes.get(resource["parent"], tree)
        style = "bold cyan" if not resource["custom"] else "green"
        label = f"[{style}]{escape(resource['name'])}[/] [dim]{escape(resource['type'])}[/]"
        node = parent.add(label)
        for key, value in _shown_highlights(resource, throwaway).items():
            node.add(f"[dim]{escape(key)}:[/] {escape(value)}")
        nodes[resource["urn"]] = node
    console.print(tree)
    components = [r for r in plan.resources if not r["custom"] and r is not root]
    protected = sum(1 for r in cloud if r["protect"])
    protection = f"{protected} protected from deletion" + (": a throwaway stack" if throwaway else "")
    console.print(f"[bold]{len(cloud)} cloud resources to create[/] ({protection}), in {len(components)} components")

    console.print("[bold]Deployment order[/] (each wave can be created in parallel)")
    for index, wave in enumerate(plan.waves, start=1):
        console.print(f"  wave {index}: {escape(', '.join(wave))}")
    console.print(f"Critical path ({len(plan.critical_path)}): {escape(' -> '.join(plan.critical_path))}")

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
    # The warnings next to the verdict, where they are read, not above a screen of tree.
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    config = f" with {plan.policy_config}" if plan.policy_config else " (default policy config: see the warning above)"
    verdict = {
        "clean": "[bold green]policy pack: no violations[/]",
        "advisory": "[bold yellow]policy pack: advisory findings only[/]",
        "blocked": "[bold red]policy pack: mandatory violations: this stack would be blocked[/]",
    }[plan.verdict]
    console.print(f"{verdict}{escape(config)}")


def verdict_summary(plan: Plan) -> str:
    """The last line of `plan` (after the files it wrote): the stack, its verdict and what to look at, counted."""
    throwaway = not any(r["protect"] for r in plan.resources if r["custom"])
    counts: dict[str, int] = {}
    for violation in plan.violations:
        counts[violation["enforcementLevel"]] = counts.get(violation["enforcementLevel"], 0) + 1
    parts = [f"{count} {level}" for level, count in counts.items()] or ["no policy findings"]
    if plan.warnings:
        parts.append(f"{len(plan.warnings)} warning{'s' if len(plan.warnings) != 1 else ''}")
    if throwaway:
        parts.append("nothing protected from deletion")
    style = {"clean": "bold green", "advisory": "bold yellow", "blocked": "bold red"}[plan.verdict]
    return f"[{style}]{escape(plan.stack)}: {plan.verdict}[/] ({', '.join(parts)})"


# The KMS chain: what the cluster's Secrets depend on, highlighted in the graph (vault -> key -> grant -> wait ->
# cluster, and the identity the grant is for).
KMS_CHAIN_TYPES = KMS_TYPES | {"time:index/sleep:Sleep"}
GRAPH_FONT = "Helvetica"


def reduced_dependencies(plan: Plan) -> dict[str, list[str]]:
    """Each resource's dependencies less those implied by another (the transitive reduction): `rg -> kms-key`
    goes when `rg -> kms-vault -> kms-key` is there. The dependency graph is acyclic (the engine refuses a cycle)."""
    deps = {r["urn"]: list(r["dependencies"]) for r in plan.resources}
    reach: dict[str, set[str]] = {}

    def reachable(urn: str) -> set[str]:
        """Everything `urn` waits for, directly or not."""
        if urn not in reach:
            reach[urn] = set()
            for dep in deps.get(urn, []):
                reach[urn] |= {dep, *reachable(dep)}
        return reach[urn]

    return {
        urn: [d for d in direct if not any(d in reachable(other) for other in direct if other != d)]
        for urn, direct in deps.items()
    }


def to_dot(plan: Plan) -> str:
    """The dependency graph of cloud resources in DOT, grouped by component, edges reduced, the KMS chain
    highlighted and its unprotected resources marked."""
    by_urn = {r["urn"]: r for r in plan.resources}
    kms = {r["urn"] for r in plan.resources if r["custom"] and _plain(r["type"]) in KMS_CHAIN_TYPES}
    lines = [
        "digraph plan {",
        "  rankdir=LR;",
        f'  graph [fontname="{GRAPH_FONT}", labelloc=t, label="{plan.stack}: an arrow points from a resource to what '
        "waits for it (implied arrows left out). Red: the KMS chain the cluster's Secrets depend on. Bold: protected "
        'from deletion. Dashed: a KMS resource NOT protected."];',
        f'  node [shape=box, fontname="{GRAPH_FONT}"];',
        f'  edge [fontname="{GRAPH_FONT}", color="#57606a"];',
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
            # The component's type first: two components may share a name (`kms`), never a type and name.
            lines.append(f'    label="{short_type(owner["type"])}: {owner["name"]}"; style=rounded; color="#8c959f";')
        for member in members:
            attributes = [f'label="{member["name"]}\\n{short_type(member["type"])}"']
            if member["urn"] in kms:
                attributes += ['color="#cf222e"', 'fillcolor="#ffebe9"']
                if not member["protect"] and _plain(member["type"]) in KMS_TYPES:
                    attributes[0] = f'label="{member["name"]}\\n{short_type(member["type"])}\\nNOT protected"'
                    attributes.append('style="filled,dashed"')
                else:
                    attributes.append('style="filled,bold"' if member["protect"] else "style=filled")
            elif member["protect"]:
                attributes.append("style=bold")
            lines.append(f'    "{member["urn"]}" [{", ".join(attributes)}];')
        if is_component:
            lines.append("  }")
    for urn, deps in reduced_dependencies(plan).items():
        for dep in deps:
            chain = ' [color="#cf222e", penwidth=2]' if dep in kms and urn in kms else ""
            lines.append(f'  "{dep}" -> "{urn}"{chain};')
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
    """The options of `kms-aks plan`, shared by `kms_aks_tools.cli.main` and `python -m kms_aks_tools.commands.plan`."""
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
        return EXIT_BAD_INPUT
    except (PlanError, PolicyPackError) as error:
        console.print(f"[bold red]error:[/] {escape(str(error))}")
        return EXIT_BAD_INPUT

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
    console.print(verdict_summary(plan))
    return EXIT_BLOCKED if plan.verdict == "blocked" else EXIT_OK


def stack_row(stack_file: str, as_of: date) -> Any:
    """`plan --all`'s row for one stack (`kms_aks_tools.cli.every_stack`): the plan's policy verdict, and the rotation
    verdict of the same preview recording (no second run of the program)."""
    from kms_aks_tools.offline.rotation import check_rotation, key_expiry, key_id_of, rotation_verdict
    from kms_aks_tools.project.stack_config import stack_config_from_file

    name = Path(stack_file).name.removeprefix("Pulumi.").removesuffix(".yaml")
    # The stack file's own project (`--all --cwd OTHER`): its program, its pack and its policy config.
    root = Path(stack_file).resolve().parent
    try:
        plan, recorded = build_plan(stack_file, root=root)
        config = stack_config_from_file(stack_file, root)
    except (PlanError, PolicyPackError, ConfigError, FileNotFoundError, ValueError) as error:
        return StackRow(stack=name, exit_code=EXIT_BAD_INPUT, error=str(error))
    report = check_rotation(recorded, config, as_of=as_of)
    expiry, days_left = key_expiry(report)
    return StackRow(
        stack=name,
        exit_code=EXIT_BLOCKED if plan.verdict == "blocked" else EXIT_OK,
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
