"""The command line as a user meets it: `kms-aks --help`, the Makefile's shortcuts, and `$` in make arguments."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from kms_aks_tools.cli.registry import SUBCOMMANDS
from kms_aks_tools.offline.mock_engine import ROOT
from tests.cli import TERMINAL, run_kms_aks
from tests.conftest import KmsAks

CLUSTER_URN = (
    "urn:pulumi:prod::kms-aks::kms-aks:index:KmsAksCluster$azure-native:containerservice:ManagedCluster::aks-cluster"
)
KEY_ID = "https://kv-kmsaks-prod-01.vault.azure.net/keys/aks-kms-prod/0123456789abcdef0123456789abcdef"


def test_help_shows_the_real_usage_and_the_exit_codes() -> None:
    result = run_kms_aks("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: kms-aks [-h] <subcommand> ...")
    for name in SUBCOMMANDS:
        assert f"\n    {name}" in result.stdout
    assert "1  blocked by policy or findings" in result.stdout
    assert "2  bad input" in result.stdout


@pytest.mark.parametrize("subcommand", list(SUBCOMMANDS))
def test_each_subcommand_help_names_itself_and_its_exit_codes(subcommand: str, kms_aks: KmsAks) -> None:
    result = kms_aks(subcommand, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: kms-aks {subcommand} ")
    assert "make" not in result.stdout.split("\n")[0]
    assert "exit codes:\n  0  " in result.stdout
    assert "\n  2  bad input" in result.stdout


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "-s", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, env=TERMINAL)


def test_make_help_lists_every_target() -> None:
    result = _make("help")
    assert result.returncode == 0, result.stderr
    for target in ("plan", "test", "guard", "rotate-check", "check-config", "lint", "bench", "graphviz", "clean"):
        assert f"  make {target}:" in result.stdout
    assert _make().stdout == result.stdout, "help is the default goal"


def test_make_passes_urns_with_their_dollar_to_kms_aks() -> None:
    # KMS_AKS=printf prints each argument the shortcut would pass on, so the test needs no preview file.
    argument = f"{CLUSTER_URN}={KEY_ID}"
    result = _make("guard", "PREVIEW=preview.json", f"ARGS=--allow-key-rotation {argument}", "KMS_AKS=printf '[%s]\\n'")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[guard]", "[preview.json]", "[--allow-key-rotation]", f"[{argument}]"]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (["plan", "STACK=prod", "ARGS=--json plan.json"], ".venv/bin/kms-aks plan --stack prod --json plan.json"),
        (["check-config", "STACK=prod"], ".venv/bin/kms-aks check-config --stack prod"),
        (["rotate-check", "STACK=prod"], ".venv/bin/kms-aks rotate-check --stack prod"),
    ],
)
def test_make_targets_are_shortcuts_for_kms_aks(target: list[str], expected: str) -> None:
    result = subprocess.run(["make", "-n", *target], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert expected in [line.strip() for line in result.stdout.splitlines()]


NO_SDK_SUBCOMMANDS = ["guard", "reencrypt", "key-status", "check-config", "changes", "scan"]


@pytest.fixture(scope="module")
def help_imports() -> dict[str, dict[str, Any]]:
    """`kms-aks <subcommand> --help` for each subcommand that needs no program, then for plan, one after another in
    one fresh interpreter (as the console script starts): after each, the Pulumi SDK modules loaded so far.

    Modules only accumulate, so a subcommand whose help loads the SDK shows it after its own help (and the ones after
    it do too); one interpreter instead of one per subcommand saves a Python start and the CLI's imports each."""
    code = (
        "import contextlib, io, json, sys\n"
        "from kms_aks_tools.cli.main import main\n"
        "def sdk():\n"
        "    return sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0].startswith('pulumi')})\n"
        "seen = {}\n"
        f"for subcommand in {[*NO_SDK_SUBCOMMANDS, 'plan']!r}:\n"
        "    before = sdk()\n"
        "    code = None\n"
        "    with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "        try:\n"
        "            main([subcommand, '--help'])\n"
        "        except SystemExit as exit:\n"
        "            code = exit.code\n"
        "    seen[subcommand] = {'exit': code, 'usage': out.getvalue()[:200], 'before': before, 'after': sdk()}\n"
        "print(json.dumps(seen))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.mark.parametrize("subcommand", NO_SDK_SUBCOMMANDS)
def test_a_subcommand_that_needs_no_program_imports_no_pulumi_sdk_for_its_help(
    subcommand: str, help_imports: dict[str, dict[str, Any]]
) -> None:
    # In a fresh interpreter, as the console script runs: `--help` of a subcommand that neither runs the program nor
    # starts the pack loads no module of the Pulumi SDK (about a second of imports, and its serializer patch).
    seen = help_imports[subcommand]
    assert seen["exit"] == 0, seen
    assert seen["usage"].startswith(f"usage: kms-aks {subcommand} "), seen["usage"]
    assert seen["after"] == [], seen


def test_the_sdk_check_sees_the_sdk(help_imports: dict[str, dict[str, Any]]) -> None:
    # plan runs the program, so its --help may load the SDK: the check above would see it, in the same interpreter.
    seen = help_imports["plan"]
    assert seen["exit"] == 0 and seen["usage"].startswith("usage: kms-aks plan "), seen
    assert "pulumi" not in seen["before"] and "pulumi" in seen["after"], seen
