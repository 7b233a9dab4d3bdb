"""The subcommand table of `kms-aks`: each subcommand's module and one-line summary, and nothing else.

It imports nothing: `kms_aks_tools.cli.main` builds the command line from it, `kms_aks_tools.cli.every_stack` finds
a subcommand's `stack_row` through it, and each module is imported only when its subcommand runs.
"""

from __future__ import annotations

# Each subcommand's module and one-line summary. A module is imported only when its subcommand runs (or for
# `--help`): `kms-aks guard` needs neither the Pulumi SDK nor the program, and starts in a fraction of the time.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "plan": (
        "kms_aks_tools.commands.plan",
        "what a stack would create, in what order, and the policy pack's verdict (no Azure needed)",
    ),
    "guard": ("kms_aks_tools.guard", "refuse a `pulumi preview --json` plan that makes an irreversible KMS change"),
    "rotate-check": ("kms_aks_tools.commands.rotate_check", "whether each KMS key's expiry leaves time to rotate it"),
    "check-config": (
        "kms_aks_tools.commands.check_config",
        "validate Pulumi.<stack>.yaml as the program does, nothing else",
    ),
    "changes": (
        "kms_aks_tools.change_summary",
        "what a `pulumi preview --json` changes, beside the guard's verdict (the PR comment; --markdown)",
    ),
    "sandbox": (
        "kms_aks_tools.commands.sandbox",
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
