"""`kms-aks guard`: refuse a `pulumi preview --json` plan that can cut a cluster off its KMS key.

    kms-aks guard PREVIEW.json [--overrides FILE] [--allow-key-rotation URN=KEY_ID ...] [--records DIR]
        [--json FILE]

The command only: its options, its output (text, and with `--json` the structured findings the PR comment is
rendered from) and its exit status. The judgement is `kms_aks_tools.guard` (`check`, the closure, one module
per rule in `guard/rules/`, `overrides`); the text and the verdict as data are `guard/render.py`.

Exit status: 0 when the plan is clean, 1 when there are findings, 2 when the input is unusable. Nothing passes by
default: input the guard cannot read is a refusal, never a pass.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from rich.text import Text

from kms_aks_tools.cli.console import make_console
from kms_aks_tools.cli.exits import EXIT_BAD_INPUT
from kms_aks_tools.cli.options import subcommand_parser
from kms_aks_tools.guard.check import check_preview
from kms_aks_tools.guard.overrides import Override, load_override_file, parse_override_flag
from kms_aks_tools.guard.records import Records
from kms_aks_tools.guard.render import render, verdict_of
from kms_aks_tools.guard_verdict import GuardVerdict, dump_verdict
from kms_aks_tools.preview.model import BadInput, load_preview


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


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))
