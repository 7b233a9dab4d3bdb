"""The PR comment of every recorded preview, rendered as GitHub renders it (cmark-gfm) and read as HTML.

tests/fixtures/recorded/ holds real `pulumi preview --json` outputs of the CLI against the stand-in (`make
fixtures`). For each, the guard judges it as CI's guard does (`--json`: the verdict as data), the comment is
written from that verdict and the preview, and the rendered HTML is checked for what a reviewer needs: the verdict
first, every finding with a "to proceed" line, tables no value can break, no code line too long to read in a
comment, no local path and no whole subscription id. Expected numbers come from the preview's JSON and the
guard's result, not from the renderer.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from kms_aks_tools import guard
from kms_aks_tools.change_summary import MARKER, code, to_markdown
from kms_aks_tools.cli.console import make_console, shorten_ids
from kms_aks_tools.commands import guard as guard_command
from kms_aks_tools.guard_verdict import GuardVerdict, load_verdict
from tests.comment_html import MAX_CODE_LINE, first_line, outside_details, parse, tables, text

RECORDED = Path(__file__).parent / "fixtures" / "recorded"
PREVIEWS = sorted(p.stem for p in RECORDED.glob("*.json"))
SUBSCRIPTION = re.compile(r"/subscriptions/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ROOT = Path(__file__).resolve().parents[1]


def judged(name: str, project: Path) -> tuple[guard.Preview | None, GuardVerdict, str]:
    """The guard on a recorded preview, as `kms-aks guard --json` runs it in the project `project`."""
    source = str(RECORDED / f"{name}.json")
    console = make_console()
    with console.capture() as captured:
        try:
            preview = guard.load_preview(source)
            result = guard.check_preview(preview, records=guard.Records(directory=project / "rotations"))
        except guard.BadInput as error:
            return None if "not JSON" in str(error) else preview, GuardVerdict(status="bad-input", error=str(error)), ""
        guard_command.render(result, preview, source, console)
    return preview, guard_command.verdict_of(result), captured.get()


def changed_steps(name: str) -> int:
    """Rows the table must have: the steps that are not `same`, one per replacement."""
    steps = json.loads((RECORDED / f"{name}.json").read_text())["steps"]
    replaced = {s["urn"] for s in steps if s["op"] == "replace"}
    return sum(
        1
        for s in steps
        if s["op"] != "same" and not (s["op"] in ("create-replacement", "delete-replaced") and s["urn"] in replaced)
    )


def rule_of(item: ElementTree.Element) -> str | None:
    """The rule a finding's list item opens with (bold code), in a tight or a loose list."""
    opening = item.find("strong/code") if item.find("strong/code") is not None else item.find("p/strong/code")
    return None if opening is None else text(opening)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "rotations").mkdir()
    return tmp_path


@pytest.mark.parametrize("name", PREVIEWS)
def test_each_recorded_preview_comment_reads_verdict_first_as_github_renders_it(name: str, project: Path) -> None:
    stack = name.split("-", 1)[0]
    preview, verdict, guard_text = judged(name, project)
    markdown = to_markdown(preview, stack=stack, verdict=verdict, guard_output=guard_text, root=project)
    root = parse(markdown)

    # The verdict is the first thing shown, as a heading.
    heading = first_line(root)
    assert heading.tag == "h3"
    if verdict.status == "refused":
        count = len(verdict.findings)
        assert (
            text(heading) == f"{stack}: refused by the plan guard, {count} finding{'s' * (count != 1)}, nothing applied"
        )
    elif verdict.status == "passed":
        assert text(heading).startswith(f"{stack}: passed the plan guard")
    else:
        assert text(heading) == f"{stack}: the plan guard failed, nothing judged, nothing applied"
        assert "to proceed:" in text(root)

    # Every finding: one item (rule, resource, why) with a "to proceed" line under it.
    items = [li for ul in root.findall("ul") for li in ul.findall("li") if rule_of(li) is not None]
    assert [rule_of(li) for li in items] == [f.rule for f in verdict.findings]
    for item, finding in zip(items, verdict.findings, strict=True):
        proceed = [text(li) for li in item.iter("li") if text(li).startswith("to proceed:")]
        assert len(proceed) == 1, text(item)
        assert finding.urn.rsplit("::", 1)[-1] in text(item)

    # The change table: one row per change, every row as wide as the header, no column empty in every row.
    if preview is not None and changed_steps(name) == 0:
        assert tables(root) == [] and "No changes" in text(root)
    elif preview is not None:
        (table,) = tables(root)
        assert len(table.rows) == changed_steps(name)
        assert all(len(row) == len(table.header) for row in table.rows), table.rows
        for column, title in enumerate(table.header):
            assert any(row[column].strip() for row in table.rows), f"column {title!r} is empty in every row"

    # Nothing a reviewer sees unfolded is a code line over 120 characters.
    for element in outside_details(root):
        if element.tag == "pre":
            assert max(len(line) for line in text(element).splitlines()) <= MAX_CODE_LINE
        if element.tag == "code":
            assert len(text(element)) <= MAX_CODE_LINE, text(element)

    # No local path, anywhere; no whole subscription id in what is shown (hover titles keep the whole value).
    visible = text(root)  # hover titles (attributes) keep the whole value; the shown text does not
    assert str(project) not in markdown and str(ROOT) not in markdown
    assert re.search(r"(?<![\w.:/])/(tmp|home|work|Users|var|root)/", markdown) is None
    assert SUBSCRIPTION.search(visible) is None, SUBSCRIPTION.search(visible)
    # The marker that makes each push edit this stack's comment ends it.
    assert markdown.rstrip().endswith(MARKER.format(stack=stack))


def test_a_refused_rotation_names_the_command_and_the_override_and_keeps_the_path_relative(project: Path) -> None:
    preview, verdict, guard_text = judged("prod-key-rotation", project)
    markdown = to_markdown(preview, stack="prod", verdict=verdict, guard_output=guard_text, root=project)
    root = parse(markdown)
    shown = text(root)
    assert [f.rule for f in verdict.findings] == ["kms-key-change", "rotation-without-reencryption"]
    # The command names the cluster's current key (the stack file may already pin the next one).
    assert re.search(
        r"to proceed: run kms-aks reencrypt --stack prod --key-id \S+ --context <kube-context>, "
        r"commit rotations/prod\.yaml",
        shown,
    ), shown
    assert "rotations/prod.yaml" in shown and str(project) not in markdown
    # The override to add, folded, with the exact URN and key id the guard names.
    override = next(d for d in root.iter("details") if "guard-overrides.yaml" in text(d.find("summary")))
    cluster = verdict.findings[0]
    assert f"urn: {cluster.urn}" in text(override) or f"urn: '{cluster.urn}'" in text(override)
    assert cluster.override is not None and cluster.override["keyRotations"][0]["newKeyId"] in text(override)


def test_grants_created_or_deleted_show_role_principal_and_scope(project: Path) -> None:
    preview, verdict, guard_text = judged("prod-permission-model-access-policy", project)
    (table,) = tables(parse(to_markdown(preview, stack="prod", verdict=verdict, guard_output=guard_text)))
    deleted = next(row for row in table.rows if row[0] == "delete")
    created = next(row for row in table.rows if row[0] == "create")
    assert "kms-crypto-user" in deleted[1]
    assert "role: Key Vault Crypto User" in deleted[2]
    assert "principal: 101977a4…" in deleted[2] and "scope: …/vaults/kv-kmsaks-prod-01/keys/aks-kms-prod" in deleted[2]
    assert "kms-access-policy" in created[1] and "key permissions: encrypt, decrypt" in created[2]
    assert "principal: 101977a4…" in created[2]


def test_a_multi_line_value_stays_in_its_row_and_its_whole_value_is_on_hover(project: Path) -> None:
    preview, verdict, guard_text = judged("dev-cluster-rename", project)
    markdown = to_markdown(preview, stack="dev", verdict=verdict, guard_output=guard_text)
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    (alert,) = [row for row in rows if "monitoring-kms-access-failing" in row]
    assert "criteria.allOf[0].query" in alert and "\\n" in alert
    (table,) = tables(parse(markdown))
    assert len(table.rows) == changed_steps("dev-cluster-rename") == 15


def test_values_are_code_spans_shortened_with_the_whole_value_on_hover() -> None:
    key_id = "https://kv-kmsaks-prod-01.vault.azure.net/keys/aks-kms-prod/0123456789abcdef0123456789abcdef"
    shown = parse(f"| a |\n| --- |\n| {code(key_id)} |\n")
    (cell,) = shown.iter("code")
    assert text(cell) == "kv-kmsaks-prod-01/aks-kms-prod/01234567…" and cell.get("title") == key_id
    assert code("plain") == "`plain`"
    hostile = "a | b\n<img src=x> `tick`"
    (row,) = tables(parse(f"| a | b |\n| --- | --- |\n| {code(hostile)} | x |\n"))[0].rows
    assert row == ["a | b\\n<img src=x> `tick`", "x"]
    assert shorten_ids("/subscriptions/6b1d2f5e-3c4a-4e8b-9a7d-1f2e3d4c5b6a/x") == "/subscriptions/6b1d2f5e…/x"


def _changes(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kms_aks_tools.change_summary", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


def test_a_guard_that_failed_says_so_in_the_comment_and_the_command_fails(project: Path) -> None:
    # As CI runs them: the guard on a malformed overrides file writes a bad-input verdict; the comment says the
    # guard failed, and `kms-aks changes` exits 1 so the job fails.
    preview = str(RECORDED / "dev-node-count.json")
    overrides = project / "guard-overrides.yaml"
    overrides.write_text("transitions:\n  - urn: 'urn:pulumi:dev::kms-aks::x::y'\n    rule: nope\n")
    verdict_file = project / "guard.json"
    code_ = guard_command.main([preview, "--overrides", str(overrides), "--json", str(verdict_file)])
    assert code_ == 2
    verdict = load_verdict(verdict_file)
    assert verdict.status == "bad-input" and verdict.error and "transitions.0" in verdict.error
    comment = project / "comment.md"
    result = _changes(
        preview, "--stack", "dev", "--guard-json", str(verdict_file), "--markdown", str(comment), cwd=ROOT
    )
    assert result.returncode == 1, result.stderr
    root = parse(comment.read_text())
    assert text(first_line(root)) == "dev: the plan guard failed, nothing judged, nothing applied"
    assert "transitions.0" in text(root) and str(project) not in comment.read_text()
    # No verdict at all (the guard never ran to the end): the same, naming the missing file.
    missing = _changes(
        preview, "--stack", "dev", "--guard-json", str(project / "none.json"), "--markdown", str(comment), cwd=ROOT
    )
    assert missing.returncode == 1
    assert "the guard wrote no verdict" in comment.read_text()
    # A preview that is not JSON at all (the guard failed on it too): the comment says so, exit 2.
    not_json = ROOT / "tests" / "fixtures" / "preview" / "bad-not-json.json"
    unreadable = _changes(
        str(not_json), "--stack", "dev", "--guard-json", str(verdict_file), "--markdown", str(comment), cwd=ROOT
    )
    assert unreadable.returncode == 2, unreadable.stderr
    root = parse(comment.read_text())
    assert text(first_line(root)) == "dev: the plan guard failed, nothing judged, nothing applied"
    assert "the preview cannot be read: " in text(root) and "is not JSON" in text(root)
    assert tables(root) == [] and str(ROOT) not in comment.read_text()


def test_a_passing_guard_gives_exit_0_and_a_passed_first_line(project: Path) -> None:
    preview = str(RECORDED / "dev-node-count.json")
    verdict_file = project / "guard.json"
    assert guard_command.main([preview, "--json", str(verdict_file)]) == 0
    comment = project / "comment.md"
    result = _changes(
        preview, "--stack", "dev", "--guard-json", str(verdict_file), "--markdown", str(comment), cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert text(first_line(parse(comment.read_text()))) == "dev: passed the plan guard (1 to update, 22 unchanged)"
