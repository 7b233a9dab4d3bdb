"""The layout's rules (docs/development.md, "Layers"): one home per concept, checked from the source (AST), so a
second copy fails here instead of drifting."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Where Python of this project lives (the virtualenvs and the Go build's caches excluded).
SOURCE_FOLDERS = ("azure_facts", "kms_aks", "kms_aks_tools", "components", "policies", "testbed", "bootstrap", "fleet")


def project_sources(root: Path = ROOT) -> list[Path]:
    files = [root / "__main__.py"]
    for folder in SOURCE_FOLDERS:
        files += [p for p in (root / folder).rglob("*.py") if "venv" not in p.parts and "site-packages" not in p.parts]
    return sorted(files)


def definitions(name: str, root: Path = ROOT) -> list[str]:
    """Every module (path from the root) that defines a function, class or name `name` at its top level (a
    method of that name, such as `StackKey.plugin_key_id`, is a property of something else)."""
    found = []
    for path in project_sources(root):
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = {node.name}
            elif isinstance(node, ast.Assign):
                names = {t.id for t in node.targets if isinstance(t, ast.Name)}
            else:
                continue
            if name in names:
                found.append(str(path.relative_to(root)))
    return found


# Each concept and its one home. A second definition anywhere (the pack included) fails.
ONE_HOME = {
    "normalize_key_id": "azure_facts/key_ids.py",
    "canonical_key_url": "azure_facts/key_ids.py",
    "plugin_key_id": "azure_facts/key_ids.py",
    "metric_key_id_hash": "azure_facts/key_ids.py",
    "plain_type": "azure_facts/tokens.py",
    "pinned_api_version": "azure_facts/tokens.py",
    "_API_VERSION": "azure_facts/tokens.py",  # the API-version regex, in both spellings
    "API_VERSION_PATTERN": "azure_facts/tokens.py",
}


@pytest.mark.parametrize("name", sorted(ONE_HOME))
def test_one_definition(name: str) -> None:
    assert definitions(name) == [ONE_HOME[name]]


def test_the_checker_sees_a_second_definition(tmp_path: Path) -> None:
    # The walk must see a copy wherever it is, or the test above passes vacuously.
    (tmp_path / "__main__.py").write_text("")
    copies = {"kms_aks_tools": "def normalize_key_id(k):\n    return k\n", "policies": "normalize_key_id = str\n"}
    for folder, text in copies.items():
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.py").write_text(text)
    assert definitions("normalize_key_id", tmp_path) == ["kms_aks_tools/x.py", "policies/x.py"]
