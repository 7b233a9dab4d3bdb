"""docs/policies.md shows the shipped policy configs as they are, every policy of the pack included."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = (ROOT / "docs" / "policies.md").read_text()


def shown_configs() -> dict[str, object]:
    """Each "`policies/config/<stack>.json`, ...:" followed by a JSON block, parsed."""
    found = re.findall(r"^`(policies/config/[\w-]+\.json)`[^`]*?:\n\n```json\n(.*?)```", PAGE, re.M | re.S)
    return {path: json.loads(block) for path, block in found}


@pytest.mark.stacks
def test_the_docs_examples_are_the_shipped_configs() -> None:
    shown = shown_configs()
    shipped = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "policies" / "config").glob("*.json"))
    # The page shows the configs the project ships (dev's and prod's); a team's own stack added by
    # docs/configuration.md gets a config the page need not show. Every config shown is a shipped file.
    assert {"policies/config/dev.json", "policies/config/prod.json"} <= set(shown)
    assert set(shown) <= set(shipped)
    for path, config in shown.items():
        assert config == json.loads((ROOT / path).read_text()), path
    assert all("aks-kms-vault-audit-logging" in config for config in shown.values())  # type: ignore[operator]


def test_every_policy_of_the_pack_has_a_section() -> None:
    names = set(re.findall(r'name="(aks-kms-[\w-]+)"', (ROOT / "policies" / "kms_pack.py").read_text()))
    assert "aks-kms-vault-audit-logging" in names
    sections = set(re.findall(r"^### `(aks-kms-[\w-]+)`", PAGE, re.M))
    assert sorted(names - sections) == []
