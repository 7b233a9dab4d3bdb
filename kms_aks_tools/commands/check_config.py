"""`kms-aks check-config`: validate `Pulumi.<stack>.yaml` as the program does, without running it."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape

from kms_aks_tools.cli.console import make_console
from kms_aks_tools.cli.exits import EXIT_BAD_INPUT, EXIT_OK
from kms_aks_tools.cli.options import add_project_option


def check_config(args: argparse.Namespace) -> int:
    """Validates `Pulumi.<stack>.yaml` as the program does, without running it: every problem, then exit 2."""
    from kms_aks.config.base import ConfigError
    from kms_aks_tools.project.stack_config import stack_config_from_file
    from kms_aks_tools.project.stack_file import check_stack, find_project

    console = make_console()
    stack = args.stack
    try:
        root = find_project(args.cwd or Path.cwd())
        check_stack(stack, root)
        config = stack_config_from_file(stack, root)
    except (FileNotFoundError, ValueError, ConfigError) as error:
        console.print(f"[bold red]error:[/] {escape(str(error))}")
        return EXIT_BAD_INPUT
    source = "existingKey" if config.existing_key else f"keyVault {config.key_vault.name if config.key_vault else '?'}"
    console.print(f"[bold green]stack config valid[/]: {escape(stack)} ({config.location}, {escape(source)})")
    return EXIT_OK


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of `kms-aks check-config`."""
    parser.add_argument("--stack", default="dev", help="stack name (Pulumi.<stack>.yaml) or a path to such a file")
    add_project_option(parser)
    parser.set_defaults(run=check_config)
    return parser
