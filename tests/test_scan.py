"""`make scan` passes or fails only on checkov findings beyond the ones docs/arm-export.md documents, shows
checkov's own report, and says which findings it accepted."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kms_aks_tools.commands.scan import documented_findings, judge
from tests.test_arm_export import CHECKOV_ARM_FALSE_POSITIVES, DEV_ALLOWED, PROD_ALLOWED

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "arm-export.md"


def report(failed: list[str], passed: int = 10) -> dict[str, Any]:
    return {
        "check_type": "arm",
        "results": {
            "failed_checks": [{"check_id": check, "resource": "Microsoft.KeyVault/vaults.kv"} for check in failed],
            "passed_checks": [{"check_id": f"CKV_AZURE_{n}"} for n in range(passed)],
        },
    }


@pytest.mark.parametrize(("stack", "allowed"), [("dev", DEV_ALLOWED), ("prod", PROD_ALLOWED)])
def test_the_docs_table_is_what_the_checkov_test_allows(stack: str, allowed: set[str]) -> None:
    assert set(documented_findings(DOCS.read_text(), stack)) == allowed | CHECKOV_ARM_FALSE_POSITIVES
    assert documented_findings(DOCS.read_text(), "staging") == {}


def test_documented_findings_pass_and_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report(["CKV_AZURE_109", "CKV_AZURE_40"])))
    assert judge(path, "dev", DOCS) == 0
    out = capsys.readouterr().out
    assert "accepted CKV_AZURE_109" in out and "accepted CKV_AZURE_40" in out
    assert "no finding beyond the documented ones" in out


def test_a_finding_beyond_them_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "report.json"
    # CKV_AZURE_40 (no key expiry) is documented for dev only: on prod it is a new finding.
    path.write_text(json.dumps(report(["CKV_AZURE_109", "CKV_AZURE_40"])))
    assert judge(path, "prod", DOCS) == 1
    out = capsys.readouterr().out
    assert "1 finding(s) beyond the documented ones" in out
    assert "CKV_AZURE_40 on Microsoft.KeyVault/vaults.kv" in out


@pytest.mark.parametrize("content", ["not json", json.dumps({"check_type": "terraform"}), json.dumps(report([], 0))])
def test_a_report_that_cannot_be_judged_is_bad_input(tmp_path: Path, content: str) -> None:
    path = tmp_path / "report.json"
    path.write_text(content)
    assert judge(path, "dev", DOCS) == 2
    assert judge(tmp_path / "missing.json", "dev", DOCS) == 2


def test_make_scan_on_dev_shows_checkovs_report_and_passes() -> None:
    result = subprocess.run(
        ["make", "-s", "scan", "STACK=dev"], cwd=ROOT, capture_output=True, text=True, timeout=900, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Check: CKV_AZURE_109" in result.stdout  # checkov's own report
    assert "accepted CKV_AZURE_109" in result.stdout
    assert "make scan: no finding beyond the documented ones" in result.stdout
