"""`kms-aks`: the operator's command line. Each subcommand has exact exit codes, so CI can act on them.

`kms-aks --help` lists the subcommands (`kms_aks_tools.cli.registry`) and the exit codes; `kms-aks <subcommand>
--help` gives each one's options and exit codes. argparse is the one place they are written.

The subcommands that read a stack find the project as `pulumi` does: the nearest Pulumi.yaml from the working
directory (or `--cwd`) upward, never the checkout kms-aks was installed from.

The Makefile's `make plan`, `make guard`, `make rotate-check`, `make check-config` and `make sandbox-*` are
shortcuts for these.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from rich.markup import escape

from kms_aks_tools.cli import every_stack
from kms_aks_tools.cli.console import make_console
from kms_aks_tools.cli.exits import EXIT_BAD_INPUT, EXIT_CODES, EXIT_CODES_HELP, UserError
from kms_aks_tools.cli.registry import SUBCOMMANDS


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with `only`, just that subcommand's options are built (and its module imported)."""
    parser = argparse.ArgumentParser(
        prog="kms-aks",
        description="Plan, guard and check an AKS cluster with KMS etcd encryption, offline.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="<subcommand>")
    for name, subcommand in SUBCOMMANDS.items():
        sub = subparsers.add_parser(
            name,
            help=subcommand.summary,
            description=subcommand.summary,
            epilog=EXIT_CODES_HELP[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if only is None or only == name:
            importlib.import_module(subcommand.module).configure_parser(sub)
            if subcommand.every_stack:
                every_stack.add_all_options(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(only=argv[0] if argv and argv[0] in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    if getattr(args, "all", False):
        return every_stack.run(args, args.command)
    misplaced = every_stack.misplaced_options(args)
    if misplaced:
        make_console().print(f"[bold red]error:[/] {', '.join(misplaced)} only with --all (every stack)")
        return EXIT_BAD_INPUT
    try:
        return args.run(args)
    except UserError as error:  # a subcommand's own handling comes first; none ends in a traceback
        make_console().print(f"[bold red]error:[/] {escape(str(error))}")
        return EXIT_BAD_INPUT


def entry_point() -> None:
    """The console script: flush, then skip interpreter teardown (the SDK's gRPC threads cost a fifth of a
    second and have nothing left to do)."""
    try:
        code = main()
    except KeyboardInterrupt:
        code = 130
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry_point()
