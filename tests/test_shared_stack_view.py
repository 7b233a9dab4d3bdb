"""The pack's shared stack view (policies/shared_stack_view.py) answers AnalyzeStack and Analyze exactly as
pulumi-policy's own methods do, only faster: both are run side by side over the protocol on the same stacks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from google.protobuf import json_format
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from kms_aks_tools.offline.policy_pack import (
    POLICY_PACK_DIR,
    PolicyClient,
    PolicyPackProcess,
    analyze_request,
    analyze_stack_request,
    load_policy_config,
)
from kms_aks_tools.offline.policy_pack.process import pack_channel
from kms_aks_tools.offline.recording import RecordedStack
from tests.policy_support import (
    CLUSTER,
    IDENTITY,
    in_form,
    kms_setting,
    private_endpoint,
    resources_of,
    retyped,
    unknown_key_id_without_dependency,
    unprotected,
    vault_property,
    with_secrets,
    without,
)

SHARED_PACK_STDERR: list = []
SWITCH = "KMS_AKS_POLICY_SHARED_STACK_VIEW"


@dataclass
class Pack:
    """A running pack: the client, and a raw stub whose answers are the protobuf messages themselves."""

    client: PolicyClient
    stub: analyzer_pb2_grpc.AnalyzerStub


def _connected(process: PolicyPackProcess) -> Iterator[Pack]:
    client = process.wait_ready()
    channel = pack_channel(process.port)
    try:
        yield Pack(client, analyzer_pb2_grpc.AnalyzerStub(channel))
    finally:
        channel.close()


def _pack(shared: str) -> Iterator[Pack]:
    with PolicyPackProcess(env={**os.environ, SWITCH: shared}).start() as process:
        if shared == "1":
            SHARED_PACK_STDERR[:] = [process.stderr]
        yield from _connected(process)


def _started_with_the_shared_view(process: PolicyPackProcess) -> bool:
    # What the process really got (the session's pack inherits the environment of the moment it started).
    environ = Path(f"/proc/{process.pid}/environ").read_bytes().split(b"\0")
    return f"{SWITCH}=0".encode() not in environ


@pytest.fixture(scope="module")
def shared_pack(policy_pack: PolicyPackProcess) -> Iterator[Pack]:
    """The session's pack (one process fewer to start), unless the session runs the SDK's methods: then its own."""
    if not _started_with_the_shared_view(policy_pack):
        yield from _pack("1")
        return
    SHARED_PACK_STDERR[:] = [policy_pack.stderr]
    yield from _connected(policy_pack)


@pytest.fixture(scope="module")
def sdk_pack() -> Iterator[Pack]:
    yield from _pack("0")


@pytest.fixture(scope="module")
def stacks(prod_stack: RecordedStack, dev_preview: RecordedStack) -> dict[str, list]:
    """The stacks both packs judge: the shipped ones, and ones that reach every branch of AnalyzeStack."""
    prod = resources_of(prod_stack)
    dev_preview = resources_of(dev_preview)
    broken = with_secrets(vault_property(unprotected(prod, IDENTITY), enablePurgeProtection=False), 2001)
    return {
        "prod": prod,
        "dev-preview": dev_preview,
        "many-violations": [*broken, private_endpoint(broken)],
        # keyId unknown and from nothing of this stack: the stack policies cannot decide ("can't run policy"),
        # after reporting the violations they could decide (secret-limit).
        "could-not-decide": with_secrets(unknown_key_id_without_dependency(dev_preview), 2001),
        # No KMS cluster: every stack policy that needs one says it does not apply.
        "not-applicable": without(prod, CLUSTER),
        # Other type-token forms: read as the plain types, in parents and dependencies too.
        "versioned-module": in_form([*broken, private_endpoint(broken)], "versioned-module"),
        "parameterized-preview": in_form(dev_preview, "parameterized"),
        # An unknown form of the cluster's type: no cluster the stack policies can read, and they say why.
        "unknown-form": retyped(prod, lambda _: "azure-native:containerservice/latest:ManagedCluster", only=CLUSTER),
        # Clusters the resource policies refuse: KMS off; a key id without its version.
        "kms-off": kms_setting(prod, enabled=False),
        "versionless-key-id": kms_setting(prod, keyId="https://kv-kmsaks-prod-01.vault.azure.net/keys/aks-kms"),
    }


@pytest.fixture(scope="module")
def stack_requests(stacks: dict[str, list]) -> dict[str, analyzer_pb2.AnalyzeStackRequest]:
    """Each stack's `AnalyzeStack` request, built once for both configs."""
    return {name: analyze_stack_request(resources) for name, resources in stacks.items()}


@pytest.fixture(scope="module")
def resource_requests(stacks: dict[str, list]) -> dict[str, list[analyzer_pb2.AnalyzeRequest]]:
    """Each stack's `Analyze` requests, built once for both configs: every resource, but of the thousands of generated
    Secrets only a few."""
    requests: dict[str, list[analyzer_pb2.AnalyzeRequest]] = {}
    for name, resources in stacks.items():
        by_urn = {r.urn: r for r in resources}
        per_type: dict[str, int] = {}
        requests[name] = []
        for resource in resources:
            per_type[resource.type] = per_type.get(resource.type, 0) + 1
            if per_type[resource.type] <= 3:
                requests[name].append(analyze_request(resource, by_urn))
    return requests


@pytest.mark.parametrize("config_stack", ["dev", "prod"])
def test_same_answers_as_the_sdk(
    shared_pack: Pack, sdk_pack: Pack, stack_requests: dict[str, analyzer_pb2.AnalyzeStackRequest], config_stack: str
) -> None:
    config = load_policy_config(config_stack)
    shared_pack.client.configure(config)
    sdk_pack.client.configure(config)
    seen_not_applicable = False
    for name, request in stack_requests.items():
        ours = shared_pack.stub.AnalyzeStack(request)
        theirs = sdk_pack.stub.AnalyzeStack(request)
        # Whole responses, every field of every diagnostic (message, URN, enforcement level, severity, pack
        # name and version, description) and every not-applicable entry, in order.
        assert json_format.MessageToDict(ours) == json_format.MessageToDict(theirs), name
        assert ours == theirs, name
        # The pack never leaves a value undecided (issue 22: what it cannot see at preview is refused), so the SDK's
        # "can't run policy" branch is not reached: the refusals are plain violations, compared like any other.
        assert not [d for d in theirs.diagnostics if "can't run policy" in d.message], name
        seen_not_applicable |= bool(theirs.not_applicable)
        if name == "could-not-decide":
            refused = [d for d in theirs.diagnostics if "cannot be decided at preview, so it is refused" in d.message]
            assert any(d.enforcementLevel == analyzer_pb2.MANDATORY for d in refused)
            assert any(d.policyName == "aks-kms-secret-limit" for d in theirs.diagnostics)
        if name == "not-applicable":
            assert {n.policy_name for n in theirs.not_applicable} >= {"aks-kms-identity-grant", "aks-kms-key-source"}
        if name == "unknown-form":
            assert any("aks-kms-recognised-types refuses" in n.reason for n in theirs.not_applicable)
        if name in ("many-violations", "versioned-module"):
            assert {d.policyName for d in theirs.diagnostics if d.enforcementLevel == analyzer_pb2.MANDATORY} >= {
                "aks-kms-secret-limit",
                "aks-kms-key-vault-fit",
                "aks-kms-no-private-link",
            }
    # The comparison covers the not-applicable branch the copied method has besides violations.
    assert seen_not_applicable


@pytest.mark.parametrize("config_stack", ["dev", "prod"])
def test_same_resource_answers_as_the_sdk(
    shared_pack: Pack,
    sdk_pack: Pack,
    resource_requests: dict[str, list[analyzer_pb2.AnalyzeRequest]],
    config_stack: str,
) -> None:
    config = load_policy_config(config_stack)
    shared_pack.client.configure(config)
    sdk_pack.client.configure(config)
    violations: set[str] = set()
    not_applicable: set[str] = set()
    for name, requests in resource_requests.items():
        for request in requests:
            ours = shared_pack.stub.Analyze(request)
            theirs = sdk_pack.stub.Analyze(request)
            assert json_format.MessageToDict(ours) == json_format.MessageToDict(theirs), (name, request.urn)
            assert ours == theirs, (name, request.urn)
            violations.update(d.policyName for d in theirs.diagnostics)
            not_applicable.update(n.policy_name for n in theirs.not_applicable)
    # The comparison covers the resource policies' violations and their not-applicable answers.
    assert violations >= {"aks-kms-enabled", "aks-kms-key-id-versioned", "aks-kms-recognised-types"}, violations
    assert "aks-kms-key-id-versioned" in not_applicable, not_applicable


def test_the_pack_really_runs_the_shared_view(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without this, a silent fallback to the SDK's method would make the comparison above vacuous.
    import shared_stack_view  # the pack's folder is on sys.path (tests.policy_support)
    from pulumi_policy import policy as sdk

    monkeypatch.setattr(sdk._PolicyAnalyzerServicer, "AnalyzeStack", sdk._PolicyAnalyzerServicer.AnalyzeStack)
    monkeypatch.setattr(sdk._PolicyAnalyzerServicer, "Analyze", sdk._PolicyAnalyzerServicer.Analyze)
    monkeypatch.delenv("KMS_AKS_POLICY_SHARED_STACK_VIEW", raising=False)
    assert shared_stack_view.install() is True
    assert sdk._PolicyAnalyzerServicer.AnalyzeStack is shared_stack_view._analyze_stack
    assert sdk._PolicyAnalyzerServicer.Analyze is shared_stack_view._analyze

    monkeypatch.setattr(shared_stack_view, "SDK_VERSION", "1.22.0")
    monkeypatch.setattr(sdk._PolicyAnalyzerServicer, "AnalyzeStack", "sdk method")
    monkeypatch.setattr(sdk._PolicyAnalyzerServicer, "Analyze", "sdk resource method")
    assert shared_stack_view.install() is False
    assert sdk._PolicyAnalyzerServicer.AnalyzeStack == "sdk method"
    assert sdk._PolicyAnalyzerServicer.Analyze == "sdk resource method"


def test_shared_pack_logs_no_fallback(shared_pack: Pack, prod_stack: RecordedStack) -> None:
    shared_pack.client.configure(load_policy_config("prod"))
    shared_pack.client.analyze_stack(analyze_stack_request(resources_of(prod_stack)))
    assert "using its own AnalyzeStack" not in SHARED_PACK_STDERR[0]()


def test_pulumi_policy_is_pinned_to_the_mirrored_release() -> None:
    # The copy is only known to be right for one release: the pack's venv must get exactly that one.
    import shared_stack_view

    pins = (POLICY_PACK_DIR / "requirements-sdk.txt").read_text().split()
    assert f"pulumi-policy=={shared_stack_view.CHECKED_RELEASE}" in pins
