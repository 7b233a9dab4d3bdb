"""The subcommand table of `kms-aks`: each subcommand's module and one-line summary, and nothing else.

It imports nothing: `kms_aks_tools.cli.main` builds the command line from it, `kms_aks_tools.cli.every_stack` finds
a subcommand's `stack_row` through it, and each module is imported only when its subcommand runs.
"""

from __future__ import annotations

from typing import NamedTuple


class Subcommand(NamedTuple):
    """Where a subcommand lives and what it says of itself.

    `module` defines `configure_parser(parser)`, which sets `run`; with `every_stack`, it also defines
    `stack_row(stack_file, as_of) -> StackRow`, and the subcommand takes `--all` (`kms_aks_tools.cli.every_stack`).
    """

    module: str
    summary: str
    every_stack: bool = False


# A module is imported only when its subcommand runs (or for its `--help`): `kms-aks guard` needs neither the Pulumi
# SDK nor the program, and starts in a fraction of the time.
SUBCOMMANDS: dict[str, Subcommand] = {
    "plan": Subcommand(
        "kms_aks_tools.commands.plan",
        "what a stack would create, in what order, and the policy pack's verdict (no Azure needed)",
        every_stack=True,
    ),
    "guard": Subcommand(
        "kms_aks_tools.guard", "refuse a `pulumi preview --json` plan that makes an irreversible KMS change"
    ),
    "rotate-check": Subcommand(
        "kms_aks_tools.commands.rotate_check",
        "whether each KMS key's expiry leaves time to rotate it",
        every_stack=True,
    ),
    "check-config": Subcommand(
        "kms_aks_tools.commands.check_config",
        "validate Pulumi.<stack>.yaml as the program does, nothing else",
    ),
    "changes": Subcommand(
        "kms_aks_tools.change_summary",
        "what a `pulumi preview --json` changes, beside the guard's verdict (the PR comment; --markdown)",
    ),
    "sandbox": Subcommand(
        "kms_aks_tools.commands.sandbox",
        "rehearse offline: the real Pulumi CLI against the Azure stand-in (up, preview, destroy, status, reset)",
    ),
    "reencrypt": Subcommand(
        "kms_aks_tools.cluster.reencrypt",
        "rewrite every Secret of a cluster under its current KMS key, then record it in rotations/<stack>.yaml",
    ),
    "key-status": Subcommand(
        "kms_aks_tools.cluster.key_status",
        "the KMS key the stack pins, the one the API server uses and reads with, and its re-encryption record",
    ),
    "scan": Subcommand(
        "kms_aks_tools.commands.scan",
        "checkov's findings on a stack's ARM export, less the ones docs/arm-export.md accepts (make scan's verdict)",
    ),
}
