"""KMS v2 awareness: the Kubernetes version in config decides whether the 2000-secret limit applies, in the program's
own warning and in the policy pack's KMS-v2-aware option, on the real program recorded at 1.26 and at 1.27."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kms_aks_tools.offline.policy_pack import PolicyClient, load_policy_config
from kms_aks_tools.offline.recording import RecordedResource, RecordedStack
from kms_aks_tools.project.stack_file import load_stack_file
from tests.conftest import KmsAks
from tests.engine import run_stack
from tests.graph import CLUSTER
from tests.policy_support import SECRET, with_secrets

SECRET_LIMIT = "aks-kms-secret-limit"


def _at(version: str, *, preview: bool = False) -> RecordedStack:
    """prod recorded with its cluster at `version`."""
    cluster = {**load_stack_file("prod")["kms-aks:cluster"], "kubernetesVersion": version}
    recorded = run_stack("prod", config={"kms-aks:cluster": cluster}, preview=preview)
    assert recorded.error is None, recorded.error
    return recorded


@pytest.fixture(scope="module")
def at_1_26() -> RecordedStack:
    return _at("1.26")


@pytest.fixture(scope="module")
def at_1_27() -> RecordedStack:
    return _at("1.27")


@pytest.fixture
def client(pack_client: PolicyClient) -> PolicyClient:
    return pack_client  # the session's pack (tests/conftest.py)


# ---------------------------------------------------------------------------------------------- program


def test_below_1_27_the_program_warns_of_the_limit_and_the_upgrade(at_1_26: RecordedStack) -> None:
    assert at_1_26.one(CLUSTER).inputs["kubernetesVersion"] == "1.26"
    [warning] = [w for w in at_1_26.warnings if "kubernetesVersion" in w]
    assert warning.startswith("kms-aks:cluster.kubernetesVersion 1.26 is below 1.27, so KMS runs as KMS v1")
    assert "the 2000-secret limit applies (it applies only below 1.27" in warning
    assert "upgrading this cluster past 1.27 with KMS on needs KMS disabled first" in warning


@pytest.mark.parametrize("version", ["1.27", "1.33", "1.27.3"])
def test_from_1_27_there_is_no_kms_v1_warning(version: str) -> None:
    recorded = _at(version, preview=True)
    assert not [w for w in recorded.warnings if "kubernetesVersion" in w or "2000" in w]


def test_kms_aks_plan_prints_the_warning(kms_aks: KmsAks, tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.kms-v1.yaml"
    config = load_stack_file("dev")
    config["kms-aks:cluster"] = {**config["kms-aks:cluster"], "kubernetesVersion": "1.26"}
    stack.write_text(yaml.safe_dump({"config": config}))
    result = kms_aks("plan", "--stack", str(stack), "--policy-config", "policies/config/dev.json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning: kms-aks:cluster.kubernetesVersion 1.26 is below 1.27" in result.stdout
    assert "needs KMS disabled first" in result.stdout


# ---------------------------------------------------------------------------------------------- policy pack


def _secrets(stack: RecordedStack, count: int) -> list[RecordedResource]:
    resources = with_secrets(list(stack.resources), count)
    assert sum(r.type == SECRET for r in resources) == count
    return resources


def _limit(client: PolicyClient, resources: list[RecordedResource], **options: Any):
    config = load_policy_config("prod")
    config[SECRET_LIMIT] = {"enforcementLevel": "mandatory", **options}
    client.configure(config)
    # The secret limit is a stack policy: AnalyzeStack alone decides it (no need to Analyze 2001 secrets one by one).
    return client.analyze_stack(resources).by_policy(SECRET_LIMIT)


@pytest.mark.parametrize(
    ("stack", "kms_v2_aware", "blocked"),
    [
        ("at_1_26", True, True),
        ("at_1_27", True, False),
        ("at_1_26", False, True),
        ("at_1_27", False, True),
    ],
)
def test_kms_v2_aware_option_lifts_the_limit_from_1_27(
    client: PolicyClient, request: pytest.FixtureRequest, stack: str, kms_v2_aware: bool, blocked: bool
) -> None:
    recorded: RecordedStack = request.getfixturevalue(stack)
    violations = _limit(client, _secrets(recorded, 2001), kmsV2Aware=kms_v2_aware)
    assert bool(violations) is blocked
    assert all(v.mandatory for v in violations)
    if blocked and kms_v2_aware:
        [violation] = violations
        assert violation.urn == recorded.one(CLUSTER).urn
        assert 'runs Kubernetes "1.26", which uses KMS v1' in violation.detail


@pytest.mark.parametrize("stack", ["at_1_26", "at_1_27"])
def test_at_the_limit_nothing_is_blocked(client: PolicyClient, request: pytest.FixtureRequest, stack: str) -> None:
    recorded: RecordedStack = request.getfixturevalue(stack)
    assert _limit(client, _secrets(recorded, 2000), kmsV2Aware=True) == []


def test_kms_v2_aware_preview_decides_from_the_configured_version(client: PolicyClient) -> None:
    # The version comes from config, so it is known in a first preview too: no "could not decide".
    preview = _at("1.26", preview=True)
    assert preview.one(CLUSTER).inputs["kubernetesVersion"] == "1.26"
    violations = _limit(client, _secrets(preview, 2001), kmsV2Aware=True)
    assert [v.could_not_decide for v in violations] == [False]
