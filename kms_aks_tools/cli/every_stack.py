"""`kms-aks <subcommand> --all`: one subcommand over every `Pulumi.*.yaml` of a project, in parallel, as one table.

Options: the "every stack (--all)" group of `kms-aks plan --help` and `kms-aks rotate-check --help`.

Any subcommand the registry marks `every_stack` (its module defines `stack_row(stack_file, as_of) -> StackRow`) gets
`--all` (`kms_aks_tools.cli.main` adds the options): each stack runs in its own process
(`python -m kms_aks_tools.cli.every_stack --worker ...`), up to `--jobs` at once (default: the machine's cores), so
memory is bounded by the worker count and a stack that crashes its interpreter takes only its own row down. The
table has one row per stack: location, the whole key id, the key's expiry and days left, the policy verdict and the
rotation verdict (what the subcommand did not run says so), and the same rows as `--json`. The exit code is the
worst of the stacks' (2 bad input > 1 blocked/refused > 0).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import UTC, date, datetime
from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kms_aks_tools.cli.console import make_console, shorten_ids
from kms_aks_tools.cli.exits import EXIT_BAD_INPUT, EXIT_OK
from kms_aks_tools.cli.options import positive_int
from kms_aks_tools.cli.registry import SUBCOMMANDS
from kms_aks_tools.cli.rows import StackRow
from kms_aks_tools.project.stack_file import ProjectNotFoundError, find_project, stack_names

StackRowOf = Callable[[str, date], StackRow]


def row_function(subcommand: str) -> StackRowOf | None:
    """The subcommand's `stack_row` function, or None when it has no `--all`."""
    entry = SUBCOMMANDS.get(subcommand)
    if entry is None or not entry.every_stack:
        return None
    return importlib.import_module(entry.module).stack_row


# ------------------------------------------------------------------------------------------- options


def add_all_options(parser: argparse.ArgumentParser) -> None:
    """`--all` and its companions on a subcommand's parser (the options it already has are kept)."""
    group = parser.add_argument_group(
        "every stack (--all)",
        "every Pulumi.*.yaml of the project, each in its own process; one table (and --json); "
        "the exit code is the worst of the stacks'",
    )
    group.add_argument("--all", action="store_true", help="every Pulumi.*.yaml of the project, in parallel, one table")
    group.add_argument(
        "--jobs", type=positive_int, default=None, help="stacks at once with --all (default: the machine's cores)"
    )
    only_with_all = {"jobs": "--jobs"}
    existing = parser._option_string_actions  # argparse has no public "has this option"
    if "--json" not in existing:
        group.add_argument("--json", dest="json_out", help="with --all: write the table as JSON to FILE ('-': stdout)")
        only_with_all["json_out"] = "--json"
    if "--as-of" not in existing:
        group.add_argument("--as-of", type=_date, default=None, help="key expiry judged as of (default: today, UTC)")
        only_with_all["as_of"] = "--as-of"
    parser.set_defaults(only_with_all=only_with_all)


def misplaced_options(args: argparse.Namespace) -> list[str]:
    """The `--all` options given without `--all` (they would be ignored silently otherwise)."""
    if getattr(args, "all", False):
        return []
    return [flag for dest, flag in getattr(args, "only_with_all", {}).items() if getattr(args, dest, None)]


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


# What --all cannot do: options that write one stack's files, or judge one stack's inputs.
SINGLE_STACK_OPTIONS = {"graph": "--graph", "arm": "--arm", "applied": "--applied", "policy_config": "--policy-config"}


# ------------------------------------------------------------------------------------------- running


def stack_files(project: Path) -> list[Path]:
    """Every `Pulumi.<stack>.yaml` of `project`, in stack-name order."""
    return [project / f"Pulumi.{name}.yaml" for name in stack_names(project)]


def run_worker(subcommand: str, stack_file: Path, as_of: date) -> StackRow:
    """One stack in its own process; whatever happens to it (a crash included) ends up in its row."""
    name = stack_file.name.removeprefix("Pulumi.").removesuffix(".yaml")
    command = [
        sys.executable,
        "-m",
        "kms_aks_tools.cli.every_stack",
        "--worker",
        subcommand,
        str(stack_file),
        as_of.isoformat(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in reversed(result.stdout.splitlines()):
        if line.startswith("{"):
            try:
                return StackRow(**json.loads(line))
            except (json.JSONDecodeError, TypeError):
                break
    last = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
    return StackRow(stack=name, exit_code=EXIT_BAD_INPUT, error=f"the stack's process failed: {last}")


def run_all(subcommand: str, project: Path, *, as_of: date, jobs: int | None = None) -> list[StackRow]:
    """Runs `subcommand` for every stack of `project`, `jobs` processes at once; rows in stack-name order."""
    files = stack_files(project)
    workers = max(1, min(jobs or os.cpu_count() or 1, len(files) or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda path: run_worker(subcommand, path, as_of), files))


def worst_exit_code(rows: list[StackRow]) -> int:
    return max((row.exit_code for row in rows), default=EXIT_OK)


# Below this width a whole key id (about 100 characters) would squeeze the verdicts: it is shortened first.
WHOLE_KEY_ID_WIDTH = 180


def _expiry(row: StackRow) -> str:
    if row.key_expiry is None:
        return "-"
    return row.key_expiry if row.days_left is None else f"{row.key_expiry} ({row.days_left} days)"


def render(subcommand: str, rows: list[StackRow], as_of: date, console: Console) -> None:
    table = Table(title=f"kms-aks {subcommand} --all (as of {as_of})", box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0))
    # The verdicts never wrap; at 80 columns the key id (shortened, then folded) and the rest give way first.
    # The whole key id is in --json, and in the table when there is room for it.
    for column in ("stack", "location", "key id", "key expiry", "policy", "rotation", "exit"):
        verdict = column in ("stack", "policy", "rotation", "exit")
        table.add_column(column, no_wrap=verdict, overflow="fold" if column == "key id" else "ellipsis")
    styles = {0: "green", 1: "yellow", 2: "bold red"}
    whole = console.width >= WHOLE_KEY_ID_WIDTH
    for row in rows:
        key_id = row.key_id if whole or not row.key_id else shorten_ids(row.key_id)
        table.add_row(
            escape(row.stack),
            escape(row.location or "-"),
            escape(key_id or "-"),
            escape(_expiry(row)),
            escape(row.policy),
            escape(row.rotation),
            f"[{styles.get(row.exit_code, 'bold red')}]{row.exit_code}[/]",
        )
    console.print(table)
    for row in rows:
        if row.error:
            console.print(f"[bold red]{escape(row.stack)}:[/] {escape(row.error)}")
    worst = worst_exit_code(rows)
    console.print(f"{len(rows)} stack(s); exit code {worst} (the worst of the stacks')")


def document(subcommand: str, rows: list[StackRow], as_of: date) -> str:
    body = {
        "subcommand": subcommand,
        "asOf": as_of.isoformat(),
        "exitCode": worst_exit_code(rows),
        "stacks": [{_camel(k): v for k, v in asdict(row).items()} for row in rows],
    }
    return json.dumps(body, indent=2) + "\n"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def run(args: argparse.Namespace, subcommand: str) -> int:
    """`kms-aks <subcommand> --all`: the table (stderr when JSON goes to stdout), the JSON, the worst exit code."""
    json_out = getattr(args, "json_out", None)
    console = make_console(stderr=json_out == "-")
    refused = [flag for dest, flag in SINGLE_STACK_OPTIONS.items() if getattr(args, dest, None)]
    if refused:
        console.print(f"[bold red]error:[/] {', '.join(refused)} works on one stack (--stack), not with --all")
        return EXIT_BAD_INPUT
    try:
        project = find_project(args.cwd or Path.cwd())  # as every subcommand finds it (--cwd)
    except ProjectNotFoundError as error:
        console.print(f"[bold red]error:[/] {escape(str(error))}")
        return EXIT_BAD_INPUT
    if not stack_files(project):
        console.print(f"[bold red]error:[/] no Pulumi.<stack>.yaml in {escape(str(project))}")
        return EXIT_BAD_INPUT
    as_of = args.as_of or datetime.now(tz=UTC).date()
    rows = run_all(subcommand, project, as_of=as_of, jobs=args.jobs)
    render(subcommand, rows, as_of, console)
    if json_out:
        text = document(subcommand, rows, as_of)
        if json_out == "-":
            sys.stdout.write(text)
        else:
            Path(json_out).write_text(text)
            console.print(f"table written to {escape(json_out)}")
    return worst_exit_code(rows)


def _worker_main(subcommand: str, stack_file: str, as_of: str) -> int:
    """The worker process: one stack's row as one JSON line on stdout; never a traceback."""
    name = Path(stack_file).name.removeprefix("Pulumi.").removesuffix(".yaml")
    stack_row = row_function(subcommand)
    if stack_row is None:
        row = StackRow(stack=name, exit_code=EXIT_BAD_INPUT, error=f"kms-aks {subcommand} has no --all")
    else:
        try:
            row = stack_row(stack_file, date.fromisoformat(as_of))
        except Exception as error:  # a program or tool bug: this stack's row says so, the others still run
            row = StackRow(stack=name, exit_code=EXIT_BAD_INPUT, error=f"{type(error).__name__}: {error}")
    sys.stdout.write(json.dumps(asdict(row)) + "\n")
    return row.exit_code


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        code = _worker_main(*sys.argv[2:])
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # the SDK's gRPC threads have nothing left to do
    sys.stderr.write("usage: python -m kms_aks_tools.cli.every_stack --worker SUBCOMMAND STACK_FILE YYYY-MM-DD\n")
    sys.exit(EXIT_BAD_INPUT)
