"""Rotation step 2 (docs/rotation.md): a new key version set in the stack config but not pinned in the policy
config is caught by the plan the docs tell the user to run at that step, not only after `pulumi up`."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import KmsAks

ROOT = Path(__file__).resolve().parent.parent
VERSION = "0123456789abcdef0123456789abcdef"
KEY_ID = f"https://kv-kmsaks-prod-01.vault.azure.net/keys/aks-kms-prod/{VERSION}"


def step_two() -> str:
    text = (ROOT / "docs" / "rotation.md").read_text()
    match = re.search(r"^2\. \*\*(.*?)(?=^3\. )", text, re.M | re.S)
    assert match, "docs/rotation.md has no step 2"
    return " ".join(match[1].split())


def rotated_prod(tmp_path: Path) -> Path:
    prod = (ROOT / "Pulumi.prod.yaml").read_text()
    assert "    size: 3072\n" in prod
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(prod.replace("    size: 3072\n", f"    size: 3072\n    version: {VERSION}\n"))
    return path


def test_the_docs_step_names_the_plan_that_catches_it() -> None:
    assert "`make plan STACK=<stack>`" in step_two()
    assert "pinnedKeyIds" in step_two()


def test_an_unpinned_version_blocks_the_preview_plan(tmp_path: Path, kms_aks: KmsAks) -> None:
    result = kms_aks("plan", "--stack", str(rotated_prod(tmp_path)), "--policy-config", "policies/config/prod.json")
    assert result.returncode == 1, result.stdout
    assert "stack prod (preview)" in result.stdout
    assert "aks-kms-key-source on aks-cluster" in result.stdout
    assert f'"pinnedKeyIds": ["{KEY_ID}"]' in result.stdout
    assert "policy pack: mandatory violations" in result.stdout


def test_the_pinned_version_passes(tmp_path: Path, kms_aks: KmsAks) -> None:
    config = json.loads((ROOT / "policies" / "config" / "prod.json").read_text())
    config["aks-kms-key-source"] = {"pinnedKeyIds": [KEY_ID]}
    pinned = tmp_path / "prod-pinned.json"
    pinned.write_text(json.dumps(config))
    result = kms_aks("plan", "--stack", str(rotated_prod(tmp_path)), "--policy-config", str(pinned))
    assert result.returncode == 0, result.stdout
    assert "aks-kms-key-source on" not in result.stdout
