"""Terminal output shared by every `kms-aks` subcommand: one console setup, and ids shortened for display."""

from __future__ import annotations

import re

from rich.console import Console

# Off a terminal (a pipe, a CI log) rich would assume 80 columns and break long lines such as key ids in the
# middle. A fixed wide width keeps every line whole, and the same for every run, so logs diff cleanly.
PIPE_WIDTH = 400


_KEY_ID = re.compile(r"https://([a-z0-9-]+)\.vault\.azure\.net/keys/([A-Za-z0-9-]+)(?:/([0-9a-fA-F]{32}))?")
SUBSCRIPTION_ID = re.compile(r"(/subscriptions/)([0-9a-fA-F]{8})-[0-9a-fA-F-]{27}", re.IGNORECASE)
_GUID = re.compile(r"\b([0-9a-fA-F]{8})-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")


def make_console(*, stderr: bool = False) -> Console:
    """On a terminal, rich wraps every line by words at the terminal's width (a long line left to the terminal
    would be cut mid-word, and a tree's or table's cell cut short); elsewhere a fixed wide width, nothing wrapped."""
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        console.width = PIPE_WIDTH
        console.soft_wrap = True
    return console


def shorten_ids(text: str) -> str:
    """Ids as a reader tells them apart: a key id as vault/key/first 8 digits of its version, a subscription id
    and any other GUID as its first 8 hex digits. For display only: the whole value stays in JSON and on hover."""
    text = _KEY_ID.sub(lambda m: f"{m[1]}/{m[2]}" + (f"/{m[3][:8]}…" if m[3] else ""), text)
    text = SUBSCRIPTION_ID.sub(lambda m: f"{m[1]}{m[2]}…", text)
    return _GUID.sub(lambda m: f"{m[1]}…", text)
