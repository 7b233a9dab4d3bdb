"""The README's command table says what each subcommand takes, with its real defaults, and its quoting works in
a shell."""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

import pytest

from kms_aks_tools.cli import main as cli
from kms_aks_tools.cli.registry import SUBCOMMANDS
from kms_aks_tools.guard import BadInput, parse_override_flag

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
URN = "urn:pulumi:prod::kms-aks::kms-aks:index:KmsAksCluster$azure-native:containerservice:ManagedCluster::aks-cluster"
KEY_ID = "https://kv-kmsaks-prod-01.vault.azure.net/keys/aks-kms-prod/0123456789abcdef0123456789abcdef"


def table_row(subcommand: str) -> str:
    rows = re.findall(rf"^\| `kms-aks {subcommand} ([^`]*)` \|", README, re.M)
    assert len(rows) == 1, f"the README's command table has no single row for {subcommand}"
    return rows[0]


def subparser(subcommand: str) -> argparse.ArgumentParser:
    parser = cli.build_parser(only=subcommand)
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices[subcommand]


@pytest.mark.parametrize("subcommand", sorted(SUBCOMMANDS))
def test_the_table_names_every_option_of_each_subcommand(subcommand: str) -> None:
    row = table_row(subcommand)
    options = {o for a in subparser(subcommand)._actions for o in a.option_strings if o.startswith("--")}
    options.discard("--help")
    missing = sorted(o for o in options if not re.search(rf"{re.escape(o)}\b", row))
    assert missing == [], f"kms-aks {subcommand}: the README's table leaves out {missing}"


@pytest.mark.parametrize("subcommand", ["plan", "check-config", "rotate-check"])
def test_the_table_shows_the_real_default_stack(subcommand: str) -> None:
    shown = re.search(r"\[--stack (\w+)\]", table_row(subcommand))
    assert shown, subcommand
    assert shown[1] == subparser(subcommand).get_default("stack")


def test_the_readme_single_quotes_urns_for_make_and_the_shell() -> None:
    assert "ARGS='--allow-key-rotation URN=KEY_ID'" in README
    assert not re.search(r'ARGS="[^"]*URN', README), "a double-quoted URN loses its $... to the shell"


def test_a_urn_that_the_shell_ate_gets_a_hint() -> None:
    # What bash really makes of the URN in double quotes: $azure expands to nothing.
    eaten = subprocess.run(
        ["bash", "-c", f'printf %s "{URN}"'], capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"}
    ).stdout
    assert "$" not in eaten and eaten != URN
    with pytest.raises(BadInput) as refused:
        parse_override_flag(f"{eaten}={KEY_ID}")
    message = str(refused.value)
    assert "lost its `$...` part" in message
    assert "single quotes" in message
    # Single-quoted, it arrives whole and is accepted.
    whole = subprocess.run(["bash", "-c", f"printf %s '{URN}'"], capture_output=True, text=True, check=True).stdout
    assert parse_override_flag(f"{whole}={KEY_ID}").urn == URN
