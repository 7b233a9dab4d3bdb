"""The row a subcommand gives `--all` for one stack (`stack_row(stack_file, as_of) -> StackRow`), and nothing else:
the subcommands build it, `kms_aks_tools.cli.every_stack` collects and prints them."""

from __future__ import annotations

from dataclasses import dataclass

from kms_aks_tools.cli.exits import EXIT_OK

NOT_RUN = "not run"


@dataclass
class StackRow:
    """One stack's line in the table (and its object in `--json`)."""

    stack: str
    exit_code: int = EXIT_OK
    location: str | None = None
    key_id: str | None = None
    key_expiry: str | None = None  # ISO date, or a few words when there is no date ("never", "outside this stack")
    days_left: int | None = None
    policy: str = NOT_RUN  # clean, advisory, blocked
    rotation: str = NOT_RUN  # fit, fit with warnings, refused
    error: str | None = None
