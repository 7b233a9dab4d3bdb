"""`kms-aks rotate-check`: each KMS key's expiry and rotation policy, and whether they leave time to rotate.

Options and exit codes: `kms-aks rotate-check --help` (argparse is the one place they are written).

An expired key version breaks the cluster, and AKS keeps using the version its `keyId` names until an operator
moves it (this project pins it; docs/rotation.md). So every version must stay valid until its successor
exists and the cluster has been moved to it and its secrets re-encrypted. This runs the real program for the
stack under the mock engine, as `pulumi preview` would, finds the key(s) each KMS cluster uses, and:

- refuses (exit 1) versions that expire no later than they are rotated (rotation policy `expiryTime` not longer
  than its rotate trigger), leave less than a week between the two, or a fixed first-version expiry
  (`kmsKey.expiresOn`) that is past or comes before the first automatic rotation;
- warns when nothing rotates a key that expires, and when a protected (prod-like) stack's key has neither an
  expiry nor a rotation policy, or is a bring-your-own key whose expiry this stack cannot see.

A key created in the run is taken to be created on `--as-of` (default: today), which is exact for a new stack
and errs on the side of refusing for an existing key (created earlier, so rotated earlier).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kms_aks.config.base import ConfigError
from kms_aks_tools.cli.console import make_console
from kms_aks_tools.cli.exits import EXIT_BAD_INPUT
from kms_aks_tools.cli.options import add_project_option, subcommand_parser
from kms_aks_tools.cli.rows import StackRow
from kms_aks_tools.offline.rotation import (
    KeyRotation,
    RotationCheckError,
    RotationReport,
    key_expiry,
    key_id_of,
    rotation_verdict,
    run_rotation_check,
)
from kms_aks_tools.project.stack_config import stack_config_from_file
from kms_aks_tools.project.stack_file import find_project


def _policy_text(info: KeyRotation) -> str:
    if info.source == "existing":
        return "managed outside this stack"
    parts = []
    if info.rotate_after_days is not None:
        parts.append(f"rotate {info.rotate_after_days} days after creation")
    elif info.rotate_before_expiry_days is not None:
        parts.append(f"rotate {info.rotate_before_expiry_days} days before expiry")
    if info.expire_after_days is not None:
        parts.append(f"versions expire after {info.expire_after_days} days")
    if info.notify_before_expiry_days is not None:
        parts.append(f"notify {info.notify_before_expiry_days} days before expiry")
    return "; ".join(parts) or "none"


def render(report: RotationReport, console: Console) -> None:
    """A table of the keys, then each finding, then the verdict."""
    table = Table(title=f"KMS keys of stack {escape(report.stack)} (as of {report.as_of})", show_lines=True)
    for column in ("key", "cluster", "version used", "first version expires", "rotation policy", "window"):
        table.add_column(column)
    for info in report.keys:
        version = info.pinned_version or "creation version (unpinned)"
        if info.source == "created" and info.pinned_version:
            version = f"{info.pinned_version} (pinned)"
        table.add_row(
            escape(f"{info.name} ({info.source})"),
            escape(info.cluster),
            escape(version),
            str(info.expires_on) if info.expires_on else "not set",
            escape(_policy_text(info)),
            f"{info.window_days} days" if info.window_days is not None else "-",
        )
    if report.keys:
        console.print(table)
    else:
        console.print(f"stack {escape(report.stack)}: no KMS cluster, no key to check")
    for info in report.keys:
        for note in info.notes:
            console.print(f"[dim]{escape(info.name)}:[/] {escape(note)}")
    for info, finding in report.warnings:
        console.print(f"[yellow]warning:[/] {escape(info.name)}: {escape(finding.message)}")
    for info, finding in report.refusals:
        console.print(f"[bold red]refused:[/] {escape(info.name)}: {escape(finding.message)}")
    if report.refusals:
        console.print(f"[bold red]rotate-check: {len(report.refusals)} refusal(s): fix the key's expiry or rotation[/]")
    else:
        console.print("[bold green]rotate-check: expiry and rotation fit together[/]")


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of `kms-aks rotate-check`, shared by `kms_aks_tools.cli.main` and `python -m`."""
    parser.add_argument("--stack", default="dev", help="stack name (Pulumi.<stack>.yaml) or a path to such a file")
    add_project_option(parser)
    parser.add_argument(
        "--as-of", type=_date, default=None, help="judge as of this date (YYYY-MM-DD; default: today, UTC)"
    )
    parser.set_defaults(run=run)
    return parser


def build_parser() -> argparse.ArgumentParser:
    return configure_parser(subcommand_parser("rotate-check", __doc__.split("\n\n")[0]))


def run(args: argparse.Namespace) -> int:
    console = make_console()
    as_of = args.as_of or datetime.now(tz=UTC).date()
    try:
        report = run_rotation_check(args.stack, as_of=as_of, root=find_project(args.cwd or Path.cwd()))
    except (RotationCheckError, FileNotFoundError) as error:
        console.print(f"[bold red]error:[/] {escape(str(error))}")
        return EXIT_BAD_INPUT
    render(report, console)
    return report.exit_code


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


def stack_row(stack_file: str, as_of: date) -> Any:
    """`rotate-check --all`'s row for one stack (`kms_aks_tools.cli.every_stack`)."""

    name = Path(stack_file).name.removeprefix("Pulumi.").removesuffix(".yaml")
    root = Path(stack_file).resolve().parent  # the stack file's own project (`--all --cwd OTHER`): its program
    try:
        report = run_rotation_check(stack_file, as_of=as_of, root=root)
        config = stack_config_from_file(stack_file, root)
    except (RotationCheckError, ConfigError, FileNotFoundError, ValueError) as error:
        return StackRow(stack=name, exit_code=EXIT_BAD_INPUT, error=str(error))
    expiry, days_left = key_expiry(report)
    return StackRow(
        stack=name,
        exit_code=report.exit_code,
        location=config.location,
        key_id=key_id_of(config),
        key_expiry=expiry,
        days_left=days_left,
        rotation=rotation_verdict(report),
    )


if __name__ == "__main__":
    sys.exit(main())
