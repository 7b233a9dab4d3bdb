"""The pack's shared stack view (policies/shared_stack_view.py) answers AnalyzeStack exactly as pulumi-policy's
own method does, only faster: both are run side by side over the protocol on the same stacks."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from kms_aks_tools.policy_client import PolicyClient, PolicyPackProcess, analyze_stack_request, load_policy_config
from kms_aks_tools.recording import RecordedStack
from tests.policy_support import (
    IDENTITY,
    private_endpoint,
    resources_of,
    unprotected,
    vault_property,
    with_secrets,
)

SHARED_PACK_STDERR: list = []


def _pack(shared: str) -> Iterator[PolicyClient]:
    with PolicyPackProcess(env={**os.environ, "KMS_AKS_POLICY_SHARED_STACK_VIEW": shared}).start() as pack:
        if shared == "1":
            SHARED_PACK_STDERR[:] = [pack.stderr]
        yield pack.wait_ready()


@pytest.fixture(scope="module")
def shared_pack() -> Iterator[PolicyClient]:
    yield from _pack("1")


@pytest.fixture(scope="module")
def sdk_pack() -> Iterator[PolicyClient]:
    yield from _pack("0")


def _stacks(prod_stack: RecordedStack, dev_preview: RecordedStack) -> dict[str, list]:
    prod = resources_of(prod_stack)
    dev_preview = resources_of(dev_preview)
    broken = with_secrets(vault_property(unprotected(prod, IDENTITY), enablePurgeProtection=False), 2001)
    return {
        "prod": prod,
        "dev-preview": dev_preview,
        "many-violations": [*broken, private_endpoint(broken)],
    }


@pytest.mark.parametrize("config_stack", ["dev", "prod"])
def test_same_answers_as_the_sdk(
    shared_pack: PolicyClient,
    sdk_pack: PolicyClient,
    config_stack: str,
    prod_stack: RecordedStack,
    dev_preview: RecordedStack,
) -> None:
    config = load_policy_config(config_stack)
    shared_pack.configure(config)
    sdk_pack.configure(config)
    for name, resources in _stacks(prod_stack, dev_preview).items():
        request = analyze_stack_request(resources)
        ours = shared_pack.analyze_stack(request)
        theirs = sdk_pack.analyze_stack(request)
        assert ours.violations == theirs.violations, name
        assert ours.not_applicable == theirs.not_applicable, name
        if name == "many-violations":
            assert {v.policy_name for v in ours.mandatory} >= {
                "aks-kms-secret-limit",
                "aks-kms-key-vault-fit",
                "aks-kms-no-private-link",
            }


def test_the_pack_really_runs_the_shared_view(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without this, a silent fallback to the SDK's method would make the comparison above vacuous.
    import shared_stack_view  # the pack's folder is on sys.path (tests.policy_support)
    from pulumi_policy import policy as sdk

    monkeypatch.setattr(sdk._PolicyAnalyzerServicer, "AnalyzeStack", sdk._PolicyAnalyzerServicer.AnalyzeStack)
    monkeypatch.delenv("KMS_AKS_POLICY_SHARED_STACK_VIEW", raising=False)
    assert shared_stack_view.install() is True
    assert sdk._PolicyAnalyzerServicer.AnalyzeStack is shared_stack_view._analyze_stack

    monkeypatch.setattr(shared_stack_view, "SDK_VERSION", "1.22.0")
    monkeypatch.setattr(sdk._PolicyAnalyzerServicer, "AnalyzeStack", "sdk method")
    assert shared_stack_view.install() is False
    assert sdk._PolicyAnalyzerServicer.AnalyzeStack == "sdk method"


def test_shared_pack_logs_no_fallback(shared_pack: PolicyClient, prod_stack: RecordedStack) -> None:
    shared_pack.configure(load_policy_config("prod"))
    shared_pack.analyze_stack(analyze_stack_request(resources_of(prod_stack)))
    assert "using its own AnalyzeStack" not in SHARED_PACK_STDERR[0]()
