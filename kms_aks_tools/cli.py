"""`kms-aks`: the operator's command line. Each subcommand has exact exit codes, so CI can act on them.

    kms-aks plan [--stack dev] [--cwd DIR] [--json FILE|-] [--graph FILE] [--policy-config FILE] [--applied]
                 [--arm FILE]
    kms-aks guard PREVIEW.json [--overrides FILE] [--allow-key-rotation 'URN=KEY_ID'] [--records DIR] [--json FILE]
    kms-aks rotate-check [--stack dev] [--cwd DIR] [--as-of YYYY-MM-DD]
    kms-aks check-config [--stack dev] [--cwd DIR]
    kms-aks changes PREVIEW.json [--guard-json guard.json] [--guard-output guard.txt] [--markdown FILE|-] [--stack dev]
    kms-aks sandbox up|preview|destroy|status|reset [--stack dev]
    kms-aks plan --all | rotate-check --all [--jobs N] [--cwd DIR] [--json FILE|-]   (every Pulumi.*.yaml)
    kms-aks reencrypt --stack prod [--kubeconfig FILE] [--context NAME] [--dry-run]
    kms-aks key-status --stack prod [--kubeconfig FILE] [--context NAME]

The subcommands that read a stack find the project as `pulumi` does: the nearest Pulumi.yaml from the working
directory (or `--cwd`) upward, never the checkout kms-aks was installed from.

The Makefile's `make plan`, `make guard`, `make rotate-check`, `make check-config` and `make sandbox-*` are shortcuts
for these.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from rich.markup import escape

from kms_aks_tools import every_stack
from kms_aks_tools.output import EXIT_BAD_INPUT, EXIT_CODES_HELP, EXIT_OK, add_project_option, make_console

# Each subcommand's module and one-line summary. A module is imported only when its subcommand runs (or for
# `--help`): `kms-aks guard` needs neither the Pulumi SDK nor the program, and starts in a fraction of the time.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "plan": (
        "kms_aks_tools.plan",
        "what a stack would create, in what order, and the policy pack's verdict (no Azure needed)",
    ),
    "guard": ("kms_aks_tools.guard", "refuse a `pulumi preview --json` plan that makes an irreversible KMS change"),
    "rotate-check": ("kms_aks_tools.rotation", "whether each KMS key's expiry leaves time to rotate it"),
    "check-config": ("kms_aks_tools.cli", "validate Pulumi.<stack>.yaml as the program does, nothing else"),
    "changes": (
        "kms_aks_tools.change_summary",
        "what a `pulumi preview --json` changes, beside the guard's verdict (the PR comment; --markdown)",
    ),
    "sandbox": (
        "kms_aks_tools.sandbox",
        "rehearse offline: the real Pulumi CLI against the Azure stand-in (up, preview, destroy, status, reset)",
    ),
    "reencrypt": (
        "kms_aks_tools.cluster.reencrypt",
        "rewrite every Secret of a cluster under its current KMS key, then record it in rotations/<stack>.yaml",
    ),
    "key-status": (
        "kms_aks_tools.cluster.key_status",
        "the KMS key the stack pins, the one the API server uses and reads with, and its re-encryption record",
    ),
}

EXIT_CODES = (
    "exit codes (every subcommand):\n"
    "  0  ok\n"
    "  1  blocked by policy or findings (plan: a mandatory violation; guard: an irreversible KMS change;\n"
    "     rotate-check: a key that expires before it can be rotated; reencrypt: some Secrets failed;\n"
    "     key-status: the current key is not the stack's or has no re-encryption record)\n"
    "  2  bad input: usage, unknown stack, invalid YAML or stack config, unreadable files; an unreachable\n"
    "     cluster, an unknown context, refused credentials (nothing written)\n"
    "run `kms-aks <subcommand> --help` for each subcommand's options"
)


def check_config(args: argparse.Namespace) -> int:
    """Validates `Pulumi.<stack>.yaml` as the program does, without running it: every problem, then exit 2."""
    from kms_aks.config import ConfigError, parse_stack_config, read_project_config
    from kms_aks_tools.mock_engine import with_secret_stand_ins
    from kms_aks_tools.stack_file import check_stack, find_project, load_stack_file

    console = make_console()
    stack = args.stack
    try:
        root = find_project(args.cwd or Path.cwd())
        check_stack(stack, root)
        raw, _, _ = with_secret_stand_ins(load_stack_file(stack, root))
        config = parse_stack_config(read_project_config(raw), provider_location=raw.get("azure-native:location"))
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


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with `only`, just that subcommand's options are built (and its module imported)."""
    parser = argparse.ArgumentParser(
        prog="kms-aks",
        description="Plan, guard and check an AKS cluster with KMS etcd encryption, offline.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="<subcommand>")
    for name, (module, summary) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=EXIT_CODES_HELP[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if only is None or only == name:
            loaded = importlib.import_module(module)
            loaded.configure_parser(sub)
            # A subcommand that can summarize one stack as a table row also runs over every stack (--all).
            if hasattr(loaded, "stack_row"):
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
    return args.run(args)


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
