"""`kms-aks guard`: refuse a `pulumi preview --json` plan that can cut a cluster off its KMS key.

    kms-aks guard PREVIEW.json [--overrides FILE] [--allow-key-rotation URN=KEY_ID ...] [--records DIR]
        [--json FILE]

The command only: its options, its output (text, and with `--json` the structured findings the PR comment is
rendered from) and its exit status. The judgement is `kms_aks_tools.guard` (rules, closure, overrides).

Exit status: 0 when the plan is clean, 1 when there are findings, 2 when the input is unusable. Nothing passes by
default: input the guard cannot read is a refusal, never a pass.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from azure_facts.engine import stack_from_urn
from kms_aks_tools.cli.console import make_console
from kms_aks_tools.cli.exits import EXIT_BAD_INPUT
from kms_aks_tools.cli.options import subcommand_parser
from kms_aks_tools.guard.core import (
    ROTATION_GATE_RULE,
    Finding,
    GuardResult,
    KeyRotationOverride,
    Override,
    Records,
    ReencryptionWaiver,
    check_preview,
    load_override_file,
    parse_override_flag,
)
from kms_aks_tools.guard_verdict import AllowedChange, GuardVerdict, StaleOverride, VerdictFinding, dump_verdict
from kms_aks_tools.preview.model import BadInput, Preview, load_preview

# --------------------------------------------------------------------------------------------------
# Output and entry point
# --------------------------------------------------------------------------------------------------


def _summary(preview: Preview) -> str:
    if preview.changeSummary:
        return ", ".join(f"{op} {count}" for op, count in sorted(preview.changeSummary.items()))
    return "no changeSummary"


def _what_override_names(override: Override) -> str:
    if isinstance(override, KeyRotationOverride):
        return f"keyRotations: newKeyId {override.newKeyId}"
    if isinstance(override, ReencryptionWaiver):
        return f"reencryptionWaivers: currentKeyId {override.currentKeyId}"
    return f"transitions: {override.rule} at {override.at}"


def render(result: GuardResult, preview: Preview, source: str, console: Console) -> None:
    """Print each finding with its URN and property path, then the overrides used and unused."""
    console.print(Text(f"plan guard: {source}: {result.steps} steps ({_summary(preview)})", style="bold"))
    for finding in result.findings:
        console.print(Text.assemble(("REFUSED ", "bold red"), (f"[{finding.rule}] ", "red"), finding.urn))
        console.print(Text(f"    at {finding.path}"))
        console.print(Text(f"    {finding.message}"))
    for finding, override in result.allowed:
        console.print(Text.assemble(("ALLOWED ", "bold yellow"), (f"[{finding.rule}] ", "yellow"), finding.urn))
        if finding.new_key_id is not None:
            console.print(Text(f"    at {finding.path}: new key id {finding.new_key_id}"))
        elif finding.current_key_id is not None:
            console.print(Text(f"    at {finding.path}: leaving current key {finding.current_key_id} without a record"))
        else:
            console.print(Text(f"    at {finding.path}"))
        console.print(Text(f"    by override: {override.reason}"))
    for override, why in result.stale_overrides:
        console.print(Text.assemble(("STALE OVERRIDE ", "bold yellow"), override.urn))
        console.print(Text(f"    {_what_override_names(override)} matched nothing: {why}. Remove it."))
    if result.findings:
        count = len(result.findings)
        console.print(
            Text(
                f"plan guard: refused, {count} finding{'s' if count != 1 else ''}. "
                "Destructive ops on a cluster, vault or key, disabling KMS, its network access and unrecognised "
                "types are never overridable; a key rotation needs an override naming the URN and the new key id "
                "(and a re-encryption record of the current key); a grant, vault access, cluster identity or "
                "protect change made in the safe order needs a transition override naming it; a Key's create-time "
                "settings change on the data plane, then `pulumi refresh`.",
                style="bold red",
            )
        )
    elif result.allowed:
        count = len(result.allowed)
        rotations = any(isinstance(o, KeyRotationOverride) for _, o in result.allowed)
        console.print(
            Text(
                f"plan guard: passed, with {count} change{'s' if count != 1 else ''} allowed by override."
                + (" Re-encrypt every secret after `pulumi up` (kms-aks reencrypt)." if rotations else ""),
                style="bold green",
            )
        )
    else:
        console.print(Text("plan guard: passed, no irreversible KMS change in this plan.", style="bold green"))


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of `kms-aks guard`, shared by `kms_aks_tools.cli` and `python -m`."""
    parser.add_argument("preview", help="file written by `pulumi preview --json --show-sames` (`-` for stdin)")
    parser.add_argument(
        "--overrides",
        metavar="FILE",
        help="reviewable YAML/JSON file: keyRotations: [{urn, newKeyId, reason}], reencryptionWaivers: "
        "[{urn, currentKeyId, reason}], transitions: [{urn, rule, at, reason}]",
    )
    parser.add_argument(
        "--allow-key-rotation",
        metavar="URN=KEY_ID",
        action="append",
        default=[],
        help="allow exactly this cluster's key id to change to exactly this versioned key id (repeatable; "
        "quote it in single quotes: URNs contain `$`)",
    )
    parser.add_argument(
        "--records",
        metavar="DIR",
        type=Path,
        help="the re-encryption records' folder (<stack>.yaml files written by `kms-aks reencrypt`); default: "
        "rotations/ of the nearest folder at or above the working directory that holds a Pulumi.yaml",
    )
    parser.add_argument(
        "--json",
        dest="json_out",
        metavar="FILE",
        help="also write the verdict as JSON to FILE (kms_aks_tools.guard_verdict; the PR comment reads it), "
        "bad input included",
    )
    parser.set_defaults(run=run)
    return parser


def build_parser() -> argparse.ArgumentParser:
    description = "Refuse a `pulumi preview --json` plan that makes an irreversible or cutting KMS change."
    return configure_parser(subcommand_parser("guard", description))


def run(args: argparse.Namespace) -> int:
    """Run the guard; returns the exit status instead of raising, so tests can call it directly."""
    out = make_console()
    err = make_console(stderr=True)
    try:
        overrides: list[Override] = []
        if args.overrides:
            overrides.extend(load_override_file(args.overrides))
        overrides.extend(parse_override_flag(value) for value in args.allow_key_rotation)
        preview = load_preview(args.preview)
        records = Records(directory=args.records) if args.records is not None else Records()
        result = check_preview(preview, overrides, records)
    except BadInput as error:
        err.print(Text.assemble(("plan guard: bad input: ", "bold red"), str(error)))
        err.print(Text("plan guard: refused (exit 2). Nothing passes by default."))
        if getattr(args, "json_out", None):
            dump_verdict(GuardVerdict(status="bad-input", error=str(error)), args.json_out)
        return EXIT_BAD_INPUT
    render(result, preview, args.preview, out)
    if getattr(args, "json_out", None):
        dump_verdict(verdict_of(result), args.json_out)
    return result.exit_code


# --------------------------------------------------------------------------------------------------
# The verdict as data (`--json`): the PR comment's input
# --------------------------------------------------------------------------------------------------

REASON_PLACEHOLDER = "<why this change is safe now>"
_DATA_PLANE = re.compile(r"on the data plane: (.+?); then `pulumi refresh`")
# What to do, per rule that no override can excuse.
_NOT_OVERRIDABLE = {
    "destructive-op": "not overridable: change the program so the resource stays in place (same name and type)",
    "kms-disabled": "not overridable: keep KMS enabled on this cluster",
    "kms-key-removed": "not overridable: keep a versioned key id on this cluster",
    "kms-network-access-change": "not overridable: keep keyVaultNetworkAccess as it is (docs/private-key-vault.md)",
    "unrecognised-type": "not overridable: declare the resource with a type token the guard knows",
    "type-change": "not overridable: keep the resource's type; move API versions only within the same type",
    "unrecognised-op": "not overridable: the guard refuses an op it does not know; review the plan by hand",
    "unverifiable-update": "not overridable: preview with `.ci/pulumi-stack preview`, which records old and new state",
    "kms-key-unknown": "pin the new versioned key id in the stack config (kms-aks:kmsKey.version), push, then "
    "override that exact id (docs/rotation.md)",
}


def how_to_proceed(finding: Finding) -> tuple[str, dict[str, list[dict[str, Any]]] | None]:
    """One line saying what to do about `finding`, and the overrides-file entry that would excuse it (or None)."""
    stack = stack_from_urn(finding.urn)
    if finding.rule == "kms-key-change" and finding.new_key_id is not None:
        entry = {"urn": finding.urn, "newKeyId": finding.new_key_id, "reason": REASON_PLACEHOLDER}
        return (
            "a planned rotation: add this keyRotations entry to guard-overrides.yaml, push, and after `pulumi up` "
            f"run `kms-aks reencrypt --stack {stack} --context <kube-context>`",
            {"keyRotations": [entry]},
        )
    if finding.rule == "kms-key-change":
        return _NOT_OVERRIDABLE["kms-key-unknown"], None
    if finding.rule == ROTATION_GATE_RULE:
        entry = {"urn": finding.urn, "currentKeyId": finding.current_key_id, "reason": REASON_PLACEHOLDER}
        return (
            f"run `kms-aks reencrypt --stack {stack} --key-id {finding.current_key_id} --context <kube-context>`, "
            f"commit rotations/{stack}.yaml and push "
            "(only if no Secret can be under an older key: this reencryptionWaivers entry instead)",
            {"reencryptionWaivers": [entry]},
        )
    if finding.rule == "key-create-time-change":
        command = _DATA_PLANE.search(finding.message)
        if command is None or " with the new settings" in command.group(1):
            # Type, size, curve, operations: fixed per version; only a new version (a planned rotation) has them.
            return (
                "not overridable: create a new key version with the new settings (`az keyvault key create`), pin it "
                "and follow the planned rotation (docs/rotation.md)",
                None,
            )
        return f"not overridable: make the change with `{command.group(1)}`, then `pulumi refresh` and push", None
    if finding.overridable:
        entry = {"urn": finding.urn, "rule": finding.rule, "at": finding.path, "reason": REASON_PLACEHOLDER}
        return (
            "only as the planned step of the safe order (the finding says which): add this transitions entry to "
            "guard-overrides.yaml and push",
            {"transitions": [entry]},
        )
    return _NOT_OVERRIDABLE.get(finding.rule, "not overridable: change the program so this finding goes away"), None


def verdict_of(result: GuardResult) -> GuardVerdict:
    """The guard's result in the shape of `kms_aks_tools.guard_verdict` (what `--json` writes)."""
    findings = []
    for finding in result.findings:
        proceed, override = how_to_proceed(finding)
        findings.append(
            VerdictFinding(
                rule=finding.rule,
                urn=finding.urn,
                path=finding.path,
                message=finding.message,
                proceed=proceed,
                override=override,
            )
        )
    return GuardVerdict(
        status="refused" if result.findings else "passed",
        steps=result.steps,
        findings=findings,
        allowed=[
            AllowedChange(rule=f.rule, urn=f.urn, path=f.path, reason=override.reason) for f, override in result.allowed
        ],
        stale=[StaleOverride(urn=o.urn, names=_what_override_names(o), why=why) for o, why in result.stale_overrides],
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))
