"""The README and docs/ name only what exists: make targets, `kms-aks` subcommands, stack config keys, links.

Commands are read from code (fenced blocks and `inline code`), where a reader copies them from; config keys
(`kms-aks:<key>.<key>`) from anywhere in the text, since prose names them too. Keys are checked against the
pydantic model of `kms_aks/config/stack.py`, walked at every depth.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

from kms_aks.config.base import model_at
from kms_aks.config.stack import StackConfig
from kms_aks_tools.cli.registry import SUBCOMMANDS
from kms_aks_tools.offline.mock_engine import ROOT

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
# The pages this project's documentation is split into (issue 11).
REQUIRED_PAGES = {
    "docs/configuration.md",
    "docs/policies.md",
    "docs/rotation.md",
    "docs/private-key-vault.md",
    "docs/ci-and-state.md",
    "docs/limitations.md",
}
MAX_README_CHARS = 12_000


def _code(text: str) -> str:
    """Every fenced block and inline code span of a Markdown page, one per line."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)
    without_fences = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.M | re.S)
    return "\n".join([*fenced, *re.findall(r"`([^`\n]+)`", without_fences)])


@cache
def make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_readme_is_short() -> None:
    assert len(README.read_text()) <= MAX_README_CHARS


def test_the_docs_pages_exist() -> None:
    assert {_page_id(p) for p in DOCS} >= REQUIRED_PAGES


def test_the_readme_links_every_docs_page() -> None:
    linked = set(re.findall(r"\]\((docs/[\w.-]+\.md)", README.read_text()))
    assert linked >= REQUIRED_PAGES | {_page_id(p) for p in DOCS}


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_make_target_named_exists(page: Path) -> None:
    named = set(re.findall(r"(?:^|[\s(`$])make[ \t]+(?:-\S+[ \t]+)*([a-z][a-z-]*)\b", _code(page.read_text()), re.M))
    assert named - make_targets() == set(), f"{_page_id(page)} names make targets the Makefile lacks"


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_kms_aks_subcommand_named_exists(page: Path) -> None:
    named = set(re.findall(r"(?:^|[\s/`])kms-aks[ \t]+([a-z][a-z-]*)\b", _code(page.read_text()), re.M))
    assert named - set(SUBCOMMANDS) == set(), f"{_page_id(page)} names kms-aks subcommands that do not exist"


def _config_keys(text: str) -> set[str]:
    # `kms-aks:index:<Type>` is a type token, not a config key; `kms-aks::` is inside URNs.
    found = re.findall(r"(?<![\w:/-])kms-aks:([a-zA-Z][a-zA-Z0-9]*(?:\.[a-zA-Z][a-zA-Z0-9]*)*)", text)
    return {key for key in found if key != "index"}


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_config_key_named_exists(page: Path) -> None:
    keys = _config_keys(page.read_text())
    unknown = sorted(key for key in keys if not _key_exists(key))
    assert unknown == [], f"{_page_id(page)} names config keys the config model lacks"


def _key_exists(key: str) -> bool:
    *parents, last = key.split(".")
    model = model_at(parents, StackConfig)
    if model is None:
        return False
    return last in {field.alias or name for name, field in model.model_fields.items()}


def test_the_key_check_can_fail() -> None:
    assert _key_exists("kmsKey.rotation.expireAfterDays")
    assert _key_exists("cluster.systemNodePool.count")
    assert not _key_exists("kmsKey.szie")
    assert not _key_exists("cluster.identity")
    assert _config_keys("set `kms-aks:kmsKey.size: 3072`; a kms-aks:index:KmsAksCluster") == {"kmsKey.size"}


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_links_resolve(page: Path) -> None:
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        missing_anchor = bool(anchor) and resolved.suffix == ".md" and anchor not in _anchors(resolved)
        if not resolved.exists() or missing_anchor:
            broken.append(target)
    assert broken == [], f"{_page_id(page)}: broken links"


def _reference_keys() -> list[str]:
    """The first column of docs/configuration.md's reference table."""
    text = (ROOT / "docs" / "configuration.md").read_text()
    return re.findall(r"^\| `([a-zA-Z][\w.]*)` \|", text, re.M)


def test_the_config_reference_names_only_real_keys_and_every_top_level_one() -> None:
    keys = _reference_keys()
    assert len(keys) > 20
    assert [key for key in keys if not _key_exists(key)] == []
    top_level = {key.split(".")[0] for key in keys}
    model = model_at([], StackConfig)
    assert model is not None
    assert {field.alias or name for name, field in model.model_fields.items()} <= top_level


# Files the tools write (not in the repository, but named as outputs): the sandbox's PR comment.
GENERATED_PAGES = {"comment.md"}
# How a page describes the conditions it was written under rather than the project (other work on the machine,
# its caches): a reader of the repository cannot check these, and they age at once.
WRITING_CONDITIONS = re.compile(
    r"other helpers|other sessions|this session|session's|shared (?:Go )?caches?|other builds|shared with other",
    re.I,
)


def _tracked(*patterns: str) -> list[Path]:
    import subprocess

    listed = subprocess.run(["git", "ls-files", *patterns], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / line for line in listed.stdout.splitlines() if not line.startswith("tests/fixtures/")]


def test_sources_and_docs_cite_only_files_in_the_repository() -> None:
    # The project's sources and docs (the tests name generated files of their own, e.g. a rendered comment).
    files = [p for p in _tracked("*.py", "*.md", "*.go", "*.sh") if p.relative_to(ROOT).parts[0] != "tests"]
    names = {path.name for path in _tracked()} | {p.name for p in files}
    cited: dict[str, list[str]] = {}
    for path in files:
        text = path.read_text(encoding="utf-8")
        if path.name != "test_docs.py":
            assert "/work/" not in text, f"{path.relative_to(ROOT)} cites a path outside the repository (/work/)"
        for name in re.findall(r"\b([A-Za-z0-9_-]+\.md)\b", text):
            cited.setdefault(name, []).append(str(path.relative_to(ROOT)))
    missing = {name: where for name, where in cited.items() if name not in names | GENERATED_PAGES}
    assert missing == {}, f"cited but not in the repository: {missing}"


def test_docs_describe_the_project_not_the_conditions_they_were_written_under() -> None:
    files = [*PAGES, *_tracked("kms_aks_tools/*.py", "kms_aks_tools/**/*.py", "testbed/*.py")]
    found = [
        f"{path.relative_to(ROOT)}: {match[0]!r}"
        for path in files
        for match in WRITING_CONDITIONS.finditer(path.read_text(encoding="utf-8"))
    ]
    assert found == []
