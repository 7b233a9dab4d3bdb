"""`kms-aks` in an 80- and a 120-column terminal: lines wrapped by words at the width, verdicts visible.

The commands run with a terminal's settings (`TTY_COMPATIBLE=1`: rich treats the output as a terminal; `COLUMNS`:
its width), as a user sees them in tmux; in-process (the `kms_aks` fixture), as rich reads them when each command
makes its console. The words checked are the guard's and the plan's
own messages (from `--json` and the recorded preview), not the rendered text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from rich.console import Console

from kms_aks_tools import guard
from kms_aks_tools.cli.every_stack import render
from kms_aks_tools.cli.rows import StackRow
from tests.conftest import KmsAks

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "tests" / "fixtures" / "recorded"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@pytest.fixture
def in_terminal(kms_aks: KmsAks, monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[str]]:
    def run(width: int, *args: str) -> list[str]:
        """`kms-aks <args>`'s output lines as a terminal `width` columns wide shows them (colours removed)."""
        for name, value in {"TTY_COMPATIBLE": "1", "COLUMNS": str(width), "LINES": "50", "LANG": "C.UTF-8"}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("NO_COLOR", raising=False)
        result = kms_aks(*args)
        return ANSI.sub("", result.stdout + result.stderr).splitlines()

    return run


def assert_words_whole(lines: list[str], texts: list[str], width: int) -> None:
    """Every word of `texts` that fits in a line is whole on some line: nothing was cut mid-word."""
    assert all(len(line.rstrip()) <= width for line in lines), max(lines, key=len)
    for text in texts:
        for word in text.split():
            if len(word) <= width - 12:  # a word longer than a line (a URN) can only be folded
                assert any(word in line for line in lines), f"{word!r} is split across lines at {width} columns"


@pytest.mark.parametrize("width", [80, 120])
def test_the_guards_findings_wrap_by_words(in_terminal: Callable[..., list[str]], width: int) -> None:
    source = RECORDED / "prod-key-rotation.json"
    lines = in_terminal(width, "guard", str(source), "--records", str(ROOT / "tests" / "no-records"))
    preview = guard.load_preview(str(source))
    result = guard.check_preview(preview, records=guard.Records(directory=ROOT / "tests" / "no-records"))
    assert len(result.findings) == 2
    assert_words_whole(lines, [f.message for f in result.findings], width)
    # The fix command whole, not "--cont / ext".
    assert any("--context <kube-context>" in line for line in lines)


@pytest.mark.parametrize("width", [80, 120])
def test_plan_wraps_by_words_and_ends_with_its_verdict(
    in_terminal: Callable[..., list[str]], width: int, tmp_path: Path
) -> None:
    out = tmp_path / "plan.json"
    lines = in_terminal(width, "plan", "--stack", "prod", "--json", str(out))
    plan = json.loads(out.read_text())
    assert_words_whole(lines, plan["warnings"] + [v["message"] for v in plan["violations"]], width)
    # The tree's notes wrap instead of being cut: the key's caveat is there to its last word.
    assert any(line.rstrip().endswith("(docs/rotation.md)") for line in lines)
    # The last line is the verdict, and the one warning that matters sits right above it.
    assert lines[-1].startswith(f"prod: {plan['verdict']} (")
    warning = next(i for i, line in enumerate(lines) if line.startswith("warning:"))
    assert len(lines) - warning < 10
    # prod protects its KMS resources: only their protection is shown, not "protected: no" on every alert.
    protected_lines = [line for line in lines if "protected: " in line]
    kms = [r for r in plan["resources"] if r["custom"] and "protected" in r["highlights"]]
    assert 0 < len(protected_lines) < len(kms)


def test_a_throwaway_stack_says_once_that_nothing_is_protected(in_terminal: Callable[..., list[str]]) -> None:
    lines = in_terminal(120, "plan", "--stack", "dev")
    assert not any("protected: no" in line for line in lines)
    assert any("(0 protected from deletion: a throwaway stack)" in line for line in lines)
    assert lines[-1].startswith("dev: ") and "nothing protected from deletion" in lines[-1]


ROWS = [
    StackRow(
        stack="dev",
        location="westeurope",
        key_id="https://kv-kmsaks-dev-01.vault.azure.net/keys/aks-kms-dev",
        key_expiry="2027-12-01",
        days_left=359,
        policy="advisory",
        rotation="fit with warnings",
    ),
    StackRow(
        stack="prod",
        location="westeurope",
        key_id="https://kv-kmsaks-prod-01.vault.azure.net/keys/aks-kms-prod/619bfcceb95109918d91a4c3ccc33da4",
        key_expiry="2027-12-01",
        days_left=359,
        policy="blocked",
        rotation="refused",
        exit_code=1,
    ),
]


@pytest.mark.parametrize("width", [80, 120])
def test_plan_all_keeps_every_verdict_column_whole(width: int) -> None:
    console = Console(width=width, force_terminal=True, no_color=True, highlight=False)
    with console.capture() as captured:
        render("plan", ROWS, date(2026, 12, 7), console)
    lines = ANSI.sub("", captured.get()).splitlines()
    header = next(line for line in lines if "policy" in line)
    assert all(column in header for column in ("stack", "policy", "rotation", "exit"))
    for row in ROWS:
        (line,) = [line for line in lines if line.startswith(f" {row.stack} ")]
        assert f" {row.policy} " in line and f" {row.rotation} " in line and f" {row.exit_code} " in line
    assert all(len(line.rstrip()) <= width for line in lines)
