"""The Makefile as a newcomer meets it: `make help` lists every target with its own help, nothing installs
without a line saying what and why, and what the docs tell you to generate is ignored by git."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAKEFILE = (ROOT / "Makefile").read_text()


def targets() -> list[str]:
    """Every target a user can name: the rules of the Makefile, less special ones (.PHONY) and file stamps."""
    return [
        name for name in re.findall(r"^([A-Za-z0-9][A-Za-z0-9_.-]*):(?!=)", MAKEFILE, re.M) if not name.startswith(".")
    ]


def help_blocks() -> dict[str, list[str]]:
    """Each `## target: ...` comment with its continuation lines (`##   ...`), as the Makefile writes them."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in MAKEFILE.splitlines():
        if match := re.match(r"^## ([^:\s]+): (.*)$", line):
            current = blocks.setdefault(match[1], [match[2]])
        elif line.startswith("##  ") and current is not None:
            current.append(line[2:].strip())
        else:
            current = None
    return blocks


def make_help() -> str:
    result = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_help_lists_every_target_digits_included() -> None:
    shown = re.findall(r"^  make ([^:\s]+):", make_help(), re.M)
    assert "e2e" in targets()
    assert sorted(shown) == sorted(targets())
    assert sorted(help_blocks()) == sorted(targets()), "every target needs a `## target: what it does` line"


def test_each_help_line_is_printed_under_its_own_target() -> None:
    shown = make_help().splitlines()
    for target, lines in help_blocks().items():
        start = shown.index(f"  make {target}: {lines[0]}")
        following = [line.strip() for line in shown[start + 1 : start + len(lines)]]
        assert following == lines[1:], target
        after = shown[start + len(lines)] if start + len(lines) < len(shown) else "  make "
        assert after.startswith("  make "), f"{target}: another target's help follows it: {after!r}"


def _recipe(target_pattern: str) -> str:
    match = re.search(rf"^{target_pattern}:.*\n((?:\t.*\n)+)", MAKEFILE, re.M)
    assert match, target_pattern
    return match[1]


@pytest.mark.parametrize("stamp", [r"\$\(VENV\)/\.installed", r"\$\(SCAN_VENV\)/\.installed", r"\$\(POLICY_VENV\)"])
def test_every_install_first_says_what_it_installs_and_why(stamp: str) -> None:
    recipe = _recipe(stamp)
    assert re.search(r"pip install|-m venv|policy-venv", recipe), "not an install step"
    first = recipe.splitlines()[0].strip()
    assert first.startswith('@echo "Installing '), f"{stamp}: the first line must say what is installed: {first}"


def test_no_other_recipe_installs_silently() -> None:
    stamps = {"$(VENV)/.installed", "$(SCAN_VENV)/.installed", "$(POLICY_VENV)", "graphviz"}
    for name, recipe in re.findall(r"^(\S+):.*\n((?:\t.*\n)+)", MAKEFILE, re.M):
        if name not in stamps:
            assert not re.search(r"pip install|-m venv|apt-get install", recipe), name


def _generated_by_the_docs() -> set[str]:
    """Files the README, docs and `make help` tell the user to write (`--json plan.json`, ...)."""
    pages = [ROOT / "README.md", ROOT / "Makefile", *sorted((ROOT / "docs").glob("*.md"))]
    text = "\n".join(page.read_text() for page in pages)
    found = set(re.findall(r"--(?:json|graph|arm) ([\w./-]+\.(?:json|dot|svg|png))", text))
    found |= set(re.findall(r"out/[\w.${}-]+", text))
    return {name.replace("$(STACK)", "dev").replace("${STACK}", "dev") for name in found}


def test_what_the_docs_generate_is_ignored_by_git() -> None:
    generated = _generated_by_the_docs()
    assert {"plan.json", "plan.arm.json"} <= generated, generated
    for name in [*sorted(generated), "out/dev.checkov.json", "out/dev.arm.json"]:
        ignored = subprocess.run(["git", "check-ignore", "-q", name], cwd=ROOT, check=False)
        assert ignored.returncode == 0, f"{name} is generated but not ignored by git (.gitignore)"


@pytest.mark.parametrize("command", ["reencrypt", "key-status"])
def test_the_cluster_commands_have_targets_in_make_help(command: str) -> None:
    assert re.search(rf"^  make {command}: ", make_help(), re.M), f"make help lists no {command}"
    assert f"@$(KMS_AKS) {command} --stack $(STACK) $(SAFE_ARGS)" in _recipe(command)
    dry = subprocess.run(
        ["make", "-n", command, "STACK=prod", "ARGS=--context sandbox-prod"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert f"kms-aks {command} --stack prod --context sandbox-prod" in dry.stdout
