"""`kms-aks scan`: checkov's findings on a stack's ARM export, less the ones docs/arm-export.md accepts.

Options and exit codes: `kms-aks scan --help` (argparse is the one place they are written).

checkov's own report is printed before this runs (`make scan` shows it). This reads checkov's JSON report of the
same run, takes the documented findings from the table in docs/arm-export.md (`| CKV_AZURE_109 | dev, prod |
...`), says which findings were accepted and why they may be, and fails on any other.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from rich.markup import escape

from kms_aks_tools.cli.console import make_console
from kms_aks_tools.cli.exits import EXIT_BAD_INPUT, EXIT_BLOCKED, EXIT_OK, UserError
from kms_aks_tools.cli.options import add_project_option, subcommand_parser
from kms_aks_tools.project.stack_file import find_project

DOCS = Path("docs") / "arm-export.md"
# A row of the accepted-findings table: | CKV_AZURE_109 | dev, prod | what | why |
_ROW = re.compile(r"^\|\s*(CKV\w+)\s*\|\s*([^|]+?)\s*\|\s*([^|]+?)\s*\|", re.M)


class ScanReportError(UserError, ValueError):
    """The checkov report is missing or not one this can judge."""


def documented_findings(docs_text: str, stack: str) -> dict[str, str]:
    """The check ids docs/arm-export.md accepts for `stack`, each with the finding it describes."""
    accepted: dict[str, str] = {}
    for check_id, stacks, what in _ROW.findall(docs_text):
        if stack in {s.strip() for s in stacks.split(",")}:
            accepted[check_id] = what
    return accepted


def failed_checks(report: Any) -> tuple[list[tuple[str, str]], int]:
    """(check id, resource) of every failed ARM check in checkov's JSON report, and how many checks passed."""
    reports = report if isinstance(report, list) else [report]
    arm = [r for r in reports if isinstance(r, dict) and r.get("check_type") == "arm"]
    if len(arm) != 1 or not isinstance(arm[0].get("results"), dict):
        raise ScanReportError("not a checkov JSON report of one ARM scan (checkov --framework arm -o json)")
    results = arm[0]["results"]
    failed = [(str(c.get("check_id")), str(c.get("resource"))) for c in results.get("failed_checks", [])]
    return failed, len(results.get("passed_checks", []))


def judge(report_path: Path, stack: str, docs_path: Path) -> int:
    console = make_console()
    try:
        report = json.loads(report_path.read_text())
        failed, passed = failed_checks(report)
    except (OSError, json.JSONDecodeError, ScanReportError) as error:
        console.print(f"[bold red]error:[/] checkov report {escape(str(report_path))}: {escape(str(error))}")
        return EXIT_BAD_INPUT
    if passed == 0:
        # A scan that checked nothing would pass vacuously.
        console.print(f"[bold red]error:[/] checkov passed no check on {escape(stack)}'s export: nothing was scanned")
        return EXIT_BAD_INPUT
    accepted = documented_findings(docs_path.read_text(), stack)
    known = [(check, resource) for check, resource in failed if check in accepted]
    new = [(check, resource) for check, resource in failed if check not in accepted]
    console.print(
        f"[bold]make scan {escape(stack)}[/]: checkov passed {passed} checks and failed {len(failed)}; "
        f"{len(known)} failure(s) are documented in {DOCS} and accepted:"
    )
    for check in sorted({c for c, _ in known}):
        console.print(f"  accepted {check}: {escape(accepted[check])}")
    if new:
        console.print(
            f"[bold red]{len(new)} finding(s) beyond the documented ones[/] (fix them, or document why in {DOCS}):"
        )
        for check, resource in sorted(new):
            console.print(f"  [bold red]{escape(check)}[/] on {escape(resource)}")
        return EXIT_BLOCKED
    console.print("[bold green]make scan: no finding beyond the documented ones[/]")
    return EXIT_OK


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of `kms-aks scan`."""
    parser.add_argument("report", type=Path, help="checkov's JSON report (-o json) of the stack's ARM export")
    parser.add_argument("--stack", required=True, help="the stack the export is of (the docs' table names stacks)")
    parser.add_argument(
        "--docs", type=Path, default=None, help=f"the accepted findings (default: the project's {DOCS})"
    )
    add_project_option(parser)
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        docs = args.docs or find_project(args.cwd or Path.cwd()) / DOCS
    except FileNotFoundError as error:
        make_console().print(f"[bold red]error:[/] {escape(str(error))}")
        return EXIT_BAD_INPUT
    return judge(args.report, args.stack, docs)


def main(argv: list[str] | None = None) -> int:
    return run(configure_parser(subcommand_parser("scan", __doc__.split("\n\n")[0])).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
