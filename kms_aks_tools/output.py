"""Terminal output shared by every `kms-aks` subcommand: one console setup and the documented exit codes."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from rich.console import Console

# Off a terminal (a pipe, a CI log) rich would assume 80 columns and break long lines such as key ids in the
# middle. A fixed wide width keeps every line whole, and the same for every run, so logs diff cleanly.
PIPE_WIDTH = 400

EXIT_OK, EXIT_BLOCKED, EXIT_BAD_INPUT = 0, 1, 2

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
    "key-status": "exit codes:\n  0  the current key is the stack's and has a complete re-encryption record\n"
    "  1  it is not the stack's key, or it has no complete record (run kms-aks reencrypt)\n"
    "  2  bad input: unknown stack or context, unreachable API server, refused credentials",
}


_KEY_ID = re.compile(r"https://([a-z0-9-]+)\.vault\.azure\.net/keys/([A-Za-z0-9-]+)(?:/([0-9a-fA-F]{32}))?")
SUBSCRIPTION_ID = re.compile(r"(/subscriptions/)([0-9a-fA-F]{8})-[0-9a-fA-F-]{27}", re.IGNORECASE)
_GUID = re.compile(r"\b([0-9a-fA-F]{8})-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")


def shorten_ids(text: str) -> str:
    """Ids as a reader tells them apart: a key id as vault/key/first 8 digits of its version, a subscription id
    and any other GUID as its first 8 hex digits. For display only: the whole value stays in JSON and on hover."""
    text = _KEY_ID.sub(lambda m: f"{m[1]}/{m[2]}" + (f"/{m[3][:8]}…" if m[3] else ""), text)
    text = SUBSCRIPTION_ID.sub(lambda m: f"{m[1]}{m[2]}…", text)
    return _GUID.sub(lambda m: f"{m[1]}…", text)


def make_console(*, stderr: bool = False) -> Console:
    """On a terminal, rich wraps every line by words at the terminal's width (a long line left to the terminal
    would be cut mid-word, and a tree's or table's cell cut short); elsewhere a fixed wide width, nothing wrapped."""
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        console.width = PIPE_WIDTH
        console.soft_wrap = True
    return console


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
