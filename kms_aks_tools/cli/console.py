"""Terminal output shared by every `kms-aks` subcommand: one console setup."""

from __future__ import annotations

from rich.console import Console

# Off a terminal (a pipe, a CI log) rich would assume 80 columns and break long lines such as key ids in the
# middle. A fixed wide width keeps every line whole, and the same for every run, so logs diff cleanly.
PIPE_WIDTH = 400


def make_console(*, stderr: bool = False) -> Console:
    """A console that wraps nothing it should not: soft wrap on a terminal, a fixed wide width elsewhere."""
    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = PIPE_WIDTH
    return console
