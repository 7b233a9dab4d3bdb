"""`kms-aks sandbox`: the whole workflow rehearsed offline, under the real Pulumi CLI, against the Azure stand-in.

    kms-aks sandbox up      --stack dev    # the workflows' preview (pack + guard), then `up` of that exact plan
    kms-aks sandbox preview --stack dev    # after editing Pulumi.dev.yaml: what CI's PR check would show
    kms-aks sandbox destroy --stack dev    # delete the stack's resources from the stand-in, drop the stack
    kms-aks sandbox key-version --stack dev  # a new version of the stack's KMS key (as `az keyvault key rotate`)
    kms-aks sandbox status                 # what the sandbox holds
    kms-aks sandbox reset                  # forget everything (state, stand-in cloud, project copy)

Everything lives in `.sandbox/` (ignored by git): `state/` (a file backend), `azure.json` (the stand-in's cloud,
saved between commands by `kms_aks_tools.standin.saved`), `project/` (a copy of the project, refreshed from yours
on every command, because `pulumi stack init` writes to the stack file), `secrets/` (the sandbox's passphrase
provider lines, which never go into your stack file) and `out/<stack>/` (preview.json, plan.json, guard.txt and
comment.md, as CI's artifact has them). The commands are the workflows' own (`.ci/pulumi-stack`), run with the
environment `make e2e` gives them (`kms_aks_tools.offline.realcli`); the first run builds the CLI (needs Go). See
docs/sandbox.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.text import Text

from kms_aks_tools.cli.console import make_console
from kms_aks_tools.cli.exits import EXIT_BAD_INPUT
from kms_aks_tools.cli.options import add_project_option, subcommand_parser
from kms_aks_tools.project.stack_file import ProjectNotFoundError, find_project
from kms_aks_tools.sandbox.actions import (
    action_destroy,
    action_key_version,
    action_preview,
    action_reset,
    action_status,
    action_up,
)
from kms_aks_tools.sandbox.home import Sandbox, SandboxError

ACTIONS = ("up", "preview", "destroy", "status", "reset", "key-version")


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of `kms-aks sandbox`."""
    parser.add_argument("action", choices=ACTIONS, help="up | preview | destroy | status | reset | key-version")
    parser.add_argument("--stack", default="dev", help="stack name (Pulumi.<stack>.yaml; default dev)")
    add_project_option(parser)  # the sandbox is the found project's .sandbox/
    parser.set_defaults(run=run)
    return parser


def build_parser() -> argparse.ArgumentParser:
    return configure_parser(
        subcommand_parser("sandbox", "Rehearse offline: the real Pulumi CLI against the Azure stand-in.")
    )


def run(args: argparse.Namespace) -> int:
    console = make_console()
    started = time.monotonic()
    try:
        sandbox = Sandbox.of(find_project(args.cwd or Path.cwd()))
        if args.action == "status":
            code = action_status(sandbox, console)
        elif args.action == "reset":
            code = action_reset(sandbox, console)
        elif args.action == "key-version":
            code = action_key_version(sandbox, args.stack, console)
        else:
            action = {"up": action_up, "preview": action_preview, "destroy": action_destroy}[args.action]
            code = action(sandbox, args.stack, console)
    except (SandboxError, ProjectNotFoundError) as error:
        make_console(stderr=True).print(Text.assemble(("sandbox: ", "bold red"), str(error)))
        return EXIT_BAD_INPUT
    if args.action in ("up", "preview", "destroy"):
        console.print(f"sandbox {args.action}: {time.monotonic() - started:.0f} s")
    return code


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
