"""Options and parsers shared by the `kms-aks` subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path

from kms_aks_tools.cli.exits import EXIT_CODES_HELP


def subcommand_parser(subcommand: str, description: str) -> argparse.ArgumentParser:
    """The parser of one subcommand run on its own (`python -m kms_aks_tools.<module>`), as `kms-aks` shows it."""
    return argparse.ArgumentParser(
        prog=f"kms-aks {subcommand}",
        description=description,
        epilog=EXIT_CODES_HELP[subcommand],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_project_option(parser: argparse.ArgumentParser) -> None:
    """`--cwd`: the folder to find the project from, as `pulumi --cwd` (default: the working directory)."""
    parser.add_argument(
        "--cwd",
        type=Path,
        default=None,
        help="run as if started in this folder: the project is the nearest Pulumi.yaml from there upward "
        "(default: the working directory, as `pulumi` finds it)",
    )


def positive_int(value: str) -> int:
    """An argparse type: a whole number of at least 1 (a count, a page size, a number of jobs)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number
