"""`kms-aks plan` output is reproducible and whole: the same input gives the same bytes, and nothing is cut."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kms_aks_tools.offline.graph import critical_path, deployment_waves, stable_key
from kms_aks_tools.offline.mock_engine import ROOT
from kms_aks_tools.offline.recording import RecordedStack
from tests.conftest import KmsAks

KMS_AKS = str(Path(sys.executable).parent / "kms-aks")
# No COLUMNS: as in a CI log or `| cat`, where rich would otherwise assume 80 columns.
PIPE = {"PATH": "/usr/bin:/bin", "TERM": "dumb"}


def kms_aks_process(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([KMS_AKS, *args], cwd=ROOT, capture_output=True, timeout=120, env=PIPE, check=False)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_two_plans_are_byte_identical(kms_aks: KmsAks, stack: str) -> None:
    # Two runs in two processes, as two CI jobs would: the installed script, and this test process. Each
    # process has its own hash seed, so an order that came from a set or a race would differ. JSON goes to
    # stdout, the text plan to stderr.
    with ThreadPoolExecutor(1) as pool:
        other = pool.submit(kms_aks_process, "plan", "--stack", stack, "--json", "-")
        here = kms_aks("plan", "--stack", stack, "--json", "-")
        there = other.result()
    assert here.returncode == there.returncode == 0, there.stderr.decode()
    assert json.loads(here.stdout)["critical_path"], "the plan has a critical path to compare"
    assert there.stdout == here.stdout.encode()
    assert there.stderr == here.stderr.encode()


def test_piped_plan_shows_whole_key_ids(kms_aks: KmsAks, monkeypatch: pytest.MonkeyPatch) -> None:
    # Captured output is not a terminal, exactly like `kms-aks plan | cat`; no COLUMNS to lean on.
    monkeypatch.delenv("COLUMNS", raising=False)
    result = kms_aks("plan", "--stack", "prod", "--applied")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    # Each id is whole on its line: the versioned key id, and the key's resource id (the grant's scope).
    assert re.search(
        r"key id: https://kv-kmsaks-prod-01\.vault\.azure\.net/keys/aks-kms-prod/[0-9a-f]{32}$", text, re.M
    )
    assert re.search(
        r"scope: /subscriptions/[-0-9a-f]{36}/resourceGroups/rg-kms-aks-prod/providers/Microsoft\.KeyVault/vaults/"
        r"kv-kmsaks-prod-01/keys/aks-kms-prod$",
        text,
        re.M,
    )
    assert max(len(line) for line in text.splitlines()) > 80, "nothing here is longer than rich's default width"


def _reordered(stack: RecordedStack) -> RecordedStack:
    """The same stack as a different race between outputs would register it: every list reversed."""
    return RecordedStack(
        project=stack.project,
        stack=stack.stack,
        resources=[
            type(r)(**{**r.__dict__, "dependencies": tuple(reversed(r.dependencies))})
            for r in reversed(stack.resources)
        ],
    )


@pytest.mark.parametrize("fixture", ["dev_preview", "prod_preview"])
def test_waves_and_critical_path_ignore_registration_order(fixture: str, request: pytest.FixtureRequest) -> None:
    recorded: RecordedStack = request.getfixturevalue(fixture)
    reordered = _reordered(recorded)
    assert [r.urn for r in reordered.resources] != [r.urn for r in recorded.resources]
    names = [[r.name for r in wave] for wave in deployment_waves(recorded)]
    assert names == [[r.name for r in wave] for wave in deployment_waves(reordered)]
    assert [r.name for r in critical_path(recorded)] == [r.name for r in critical_path(reordered)]
    # The rule itself: each wave in architecture order, then name.
    for wave in deployment_waves(reordered):
        assert wave == sorted(wave, key=stable_key)
