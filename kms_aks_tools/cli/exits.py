"""The documented exit codes of `kms-aks`: the same three for every subcommand, and each subcommand's meaning; and
the one base of every mistake a user can fix (`UserError`), which ends in EXIT_BAD_INPUT."""

from __future__ import annotations

EXIT_OK, EXIT_BLOCKED, EXIT_BAD_INPUT = 0, 1, 2


class UserError(Exception):
    """A mistake the user can fix (an unknown stack, an unreadable or refused file, a cluster that cannot be used):
    its message names what is wrong and what is allowed. A subcommand prints it and exits EXIT_BAD_INPUT, with no
    traceback; `kms_aks_tools.cli.main` does so for any that a subcommand lets through."""


EXIT_CODES_HELP = {
    "plan": "exit codes:\n  0  clean, or advisory findings only\n  1  blocked: a mandatory policy violation\n"
    "  2  bad input: unknown stack, invalid stack config or YAML, broken policy config, program error",
    "guard": "exit codes:\n  0  clean: no irreversible KMS change\n  1  findings: an irreversible KMS change\n"
    "  2  bad input: unreadable preview, bad override (nothing passes by default)",
    "rotate-check": "exit codes:\n  0  expiry and rotation fit together (warnings allowed)\n"
    "  1  refused: the key's expiry does not leave time to rotate\n  2  bad input: unknown stack, invalid config",
    "check-config": "exit codes:\n  0  the stack config is valid\n"
    "  2  bad input: invalid YAML or config, unknown stack",
    "changes": "exit codes:\n  0  rendered\n"
    "  1  rendered, and the guard failed (--guard-json: a bad-input verdict, or none): the comment says so\n"
    "  2  bad input: unreadable preview or guard output, unwritable --markdown file",
    "sandbox": "exit codes:\n  0  done: deployed, previewed with the pack and the guard passing, destroyed\n"
    "  1  blocked: the policy pack or the plan guard refused, or the CLI failed (its output says why)\n"
    "  2  bad input: unknown stack, invalid stack config, no Go to build the CLI, sandbox busy",
    "reencrypt": "exit codes:\n"
    "  0  every Secret rewritten under the stack's key; record appended to rotations/<stack>.yaml\n"
    "  1  some Secrets failed (each named with the reason; a rerun retries them), or the key changed mid-pass\n"
    "  2  bad input: unknown stack or context, unreachable API server, refused credentials, missing rights,\n"
    "     a cluster whose current key is not the stack's (nothing written)",
    "scan": "exit codes:\n  0  only the documented findings\n  1  a finding beyond the documented ones\n"
    "  2  bad input: no report, not checkov's JSON, a report that checked nothing",
    "key-status": "exit codes:\n  0  the current key is the stack's and has a complete re-encryption record\n"
    "  1  it is not the stack's key, or it has no complete record (run kms-aks reencrypt)\n"
    "  2  bad input: unknown stack or context, unreachable API server, refused credentials",
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
