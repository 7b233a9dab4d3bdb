"""`kms-aks changes` on real previews: what the PR comment (and the sandbox) says a change does.

The previews in tests/fixtures/sandbox/ were recorded by the real Pulumi CLI against the Azure stand-in
(`make sandbox-fixtures`, tests/fixtures/sandbox/record.py), one folder per change made to a deployed dev stack,
with the guard's verdict as CI's guard printed it. The expected values below are the changes the recording made
(a node count 2 -> 3, a pinned key version, a renamed key, a secret webhook), not the renderer's output.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from kms_aks_tools.change_summary import render, summarize, to_markdown
from kms_aks_tools.cli.console import make_console
from kms_aks_tools.cli.main import main
from kms_aks_tools.guard import Preview, load_preview
from kms_aks_tools.guard_verdict import GuardVerdict
from tests.fixtures.sandbox.record import NEW_VERSION, WEBHOOK_URL, guard_output

FIXTURES = Path(__file__).parent / "fixtures" / "sandbox"
SCENARIOS = ("create", "node-count", "key-version", "key-rename", "webhook")
CLUSTER = "azure-native:containerservice:ManagedCluster"
KEY = "azure-native:keyvault:Key"
KEY_URI = "https://kv-kmsaks-dev-01.vault.azure.net/keys/aks-kms-dev"


def preview(name: str) -> Preview:
    return load_preview(str(FIXTURES / name / "preview.json"))


def guard_text(name: str) -> str:
    return (FIXTURES / name / "guard.txt").read_text()


def table_rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("| ") and not line.startswith(("| op ", "| ---"))]


PASSED = GuardVerdict(status="passed", steps=1)


def cells(row: str) -> list[str]:
    """A Markdown table row's cells, split as GitHub splits them (at `|` not escaped)."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]]


@pytest.fixture
def changes_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`kms-aks changes <args>` in this process, as the console script runs it (it needs no policy pack)."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        capsys.readouterr()
        code = main(["changes", *args])
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(["kms-aks", "changes", *args], code, captured.out, captured.err)

    return run


def raw(name: str) -> dict:
    return json.loads((FIXTURES / name / "preview.json").read_text())


def test_every_recorded_scenario_is_there() -> None:
    for name in SCENARIOS:
        assert (FIXTURES / name / "preview.json").is_file(), name
        assert (FIXTURES / name / "guard.txt").is_file(), name


@pytest.mark.parametrize("name", SCENARIOS)
def test_each_recorded_guard_output_is_what_the_guard_prints_today(name: str) -> None:
    """The renderer's tests read guard.txt as the PR shows it: a guard that now says something else (a new rule, a
    new gate) makes them test a comment CI no longer posts. Fix: `python tests/fixtures/sandbox/record.py
    --guard-only` (or `make sandbox-fixtures`), and review the difference."""
    assert guard_output(FIXTURES / name / "preview.json") == guard_text(name), (
        f"tests/fixtures/sandbox/{name}/guard.txt drifted from the guard's output"
    )
    assert guard_text(name).startswith("plan guard: out/dev/preview.json: "), "CI's repo-relative path"


def test_a_first_deploy_lists_every_resource_created_and_no_paths() -> None:
    recorded = preview("create")
    changes = summarize(recorded)
    created = [step for step in raw("create")["steps"] if step["op"] == "create"]
    assert [c.op for c in changes] == ["create"] * len(created)
    assert {(c.type, c.name) for c in changes} >= {(CLUSTER, "aks-cluster"), (KEY, "kms-key")}
    # A created resource has no changed paths; a created grant shows what it grants, to whom, where.
    grants = {"azure-native:keyvault:AccessPolicy", "azure-native:authorization:RoleAssignment"}
    assert all(c.properties == () for c in changes if c.type not in grants)
    assert all(c.properties for c in changes if c.type in grants)
    markdown = to_markdown(recorded, stack="dev", verdict=PASSED, guard_output=guard_text("create"))
    assert len(table_rows(markdown)) == len(created)
    assert f"#### What this change does: {len(created)} to create" in markdown


def test_a_node_count_change_is_one_update_of_the_cluster_with_its_path_and_values() -> None:
    recorded = preview("node-count")
    markdown = to_markdown(recorded, stack="dev", verdict=PASSED, guard_output=guard_text("node-count"))
    rows = table_rows(markdown)
    assert len(rows) == 1
    # No column that would be empty: nothing is replaced, so no "replaced because of".
    assert cells(rows[0]) == ["update", "`aks-cluster` ManagedCluster", "`agentPoolProfiles[0].count`: `2` → `3`"]
    # The guard's own text, folded.
    assert "<summary>the plan guard's full text</summary>" in markdown and "plan guard: passed" in markdown


def test_a_key_id_change_shows_the_old_and_new_key_id_beside_the_guards_refusal() -> None:
    recorded = preview("key-version")
    (change,) = [c for c in summarize(recorded) if c.type == CLUSTER]
    key_id = next(p for p in change.properties if p.path == "securityProfile.azureKeyVaultKms.keyId")
    assert key_id.kind == "update"
    assert key_id.new == f"{KEY_URI}/{NEW_VERSION}"
    assert key_id.old is not None and key_id.old.startswith(f"{KEY_URI}/") and key_id.old != key_id.new
    markdown = to_markdown(recorded, stack="dev", guard_output=guard_text("key-version"))
    # Shortened to vault/key/version prefix, the whole id on hover.
    old_short = f"kv-kmsaks-dev-01/aks-kms-dev/{key_id.old.rsplit('/', 1)[-1][:8]}…"
    assert f'<code title="{key_id.old}">{old_short}</code> → <code title="{key_id.new}">' in markdown
    assert "REFUSED [kms-key-change]" in markdown and "plan guard: refused" in markdown


def test_a_key_rename_is_one_replace_row_with_its_reasons() -> None:
    recorded = preview("key-rename")
    steps_of_the_key = [s["op"] for s in raw("key-rename")["steps"] if s["urn"].endswith("::kms-key")]
    changes = summarize(recorded)
    keys = [c for c in changes if c.type == KEY]
    assert len(keys) == 1, "one row for the replacement, however many steps the engine shows for it"
    assert keys[0].op == "replace" and "replace" in steps_of_the_key
    assert "keyName" in keys[0].replace_reasons
    rename = next(p for p in keys[0].properties if p.path == "keyName")
    assert (rename.kind, rename.old, rename.new) == ("update-replace", "aks-kms-dev", "aks-kms-dev-2")
    row = next(r for r in table_rows(to_markdown(recorded, stack="dev")) if "`kms-key`" in r)
    assert cells(row)[0] == "**replace**" and cells(row)[3] == "`keyName`"
    assert cells(row)[2] == "`keyName` (forces replacement): `aks-kms-dev` → `aks-kms-dev-2`"


def test_a_secret_stays_masked_in_the_recording_the_markdown_and_the_terminal() -> None:
    recorded = preview("webhook")
    assert WEBHOOK_URL not in (FIXTURES / "webhook" / "preview.json").read_text()
    markdown = to_markdown(recorded, stack="dev", guard_output=guard_text("webhook"))
    console = make_console()
    with console.capture() as captured:
        render(recorded, console, stack="dev", guard_output=guard_text("webhook"))
    for text in (markdown, captured.get()):
        assert WEBHOOK_URL not in text and "sandbox-recording-token" not in text
    (group,) = [c for c in summarize(recorded) if c.type == "azure-native:monitor:ActionGroup"]
    assert group.op == "update"
    (receiver,) = group.properties
    assert (receiver.path, receiver.kind, receiver.old) == ("webhookReceivers[0]", "add", "(absent)")
    assert receiver.new is not None and '"serviceUri": "[secret]"' in receiver.new
    assert "&quot;serviceUri&quot;: &quot;[secret]&quot;" in markdown


def test_secrets_shown_with_show_secrets_are_masked_too() -> None:
    # `pulumi preview --show-secrets` writes a secret as the engine's signature object around its plaintext.
    document = raw("node-count")
    cluster = next(s for s in document["steps"] if s["urn"].endswith("::aks-cluster"))
    count = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "plaintext-token"}
    cluster["newState"]["inputs"]["agentPoolProfiles"][0]["count"] = count
    markdown = to_markdown(Preview.model_validate(document), stack="dev")
    assert "plaintext-token" not in markdown
    assert "`agentPoolProfiles[0].count`: `2` → `[secret]`" in markdown


def test_a_value_cannot_split_the_table_or_format_the_comment() -> None:
    document = raw("node-count")
    cluster = next(s for s in document["steps"] if s["urn"].endswith("::aks-cluster"))
    cluster["newState"]["inputs"]["agentPoolProfiles"][0]["count"] = "a | b <img src=x> **bold**"
    (row,) = table_rows(to_markdown(Preview.model_validate(document), stack="dev"))
    assert len(cells(row)) == 3
    # In a code span nothing is HTML or emphasis; only `|` needs its backslash (GitHub splits cells at it).
    assert "`a \\| b <img src=x> **bold**`" in row


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_command_writes_the_comment_file_and_prints_the_same_content(
    name: str, tmp_path: Path, changes_cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    source = FIXTURES / name
    out = tmp_path / "comment.md"
    args = [str(source / "preview.json"), "--guard-output", str(source / "guard.txt"), "--stack", "dev"]
    written = changes_cli(*args, "--markdown", str(out))
    assert written.returncode == 0, written.stderr
    markdown = out.read_text()
    # Without the guard's verdict as data (--guard-json), the comment does not claim one.
    assert markdown.startswith("### dev: the plan guard failed, nothing judged, nothing applied\n")
    printed = changes_cli(*args)
    assert printed.returncode == 0
    for change in summarize(preview(name)):
        assert f"`{change.name}`" in markdown and f" {change.name}  {change.type}" in printed.stdout
    verdict = guard_text(name).rstrip().splitlines()[-1]
    assert verdict.split(". ")[0] in markdown and guard_text(name).rstrip() in printed.stdout


def test_bad_input_is_named_with_exit_2_and_nothing_written(
    tmp_path: Path, changes_cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    not_json = tmp_path / "preview.json"
    not_json.write_text("Previewing update (dev):\n")
    out = tmp_path / "comment.md"
    result = changes_cli(str(not_json), "--markdown", str(out))
    assert result.returncode == 2
    assert "is not JSON" in result.stderr
    missing = changes_cli(
        str(FIXTURES / "node-count" / "preview.json"), "--guard-output", str(tmp_path / "no-guard.txt")
    )
    assert missing.returncode == 2 and "cannot read the guard's output" in missing.stderr
    assert not out.exists()
