"""The policy pack fails closed on the KMS closure (issue 22): the shipped stacks with one change a user could make
(another resource declared beside the program's, a grant written differently, a policy config) through the
running pack, as `kms-aks plan` calls it; and the pack and the guard compute one closure on the same stack.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from azure_facts.kms_closure import compute
from kms_aks_tools import guard
from kms_aks_tools.guard.closure import closure_of
from kms_aks_tools.offline.policy_pack import PolicyClient
from kms_aks_tools.offline.recording import RecordedResource, RecordedStack
from tests.policy_support import resources_of, with_secrets
from tests.test_guard import recorded

CLOSURE = "aks-kms-closure"
ACCESS_POLICY_T = "azure-native:keyvault:AccessPolicy"
VAULT_T = "azure-native:keyvault:Vault"
OTHER_PRINCIPAL = "0b5f3a7e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
OTHER_TENANT = "11111111-2222-3333-4444-555555555555"


@pytest.fixture
def client(policy_pack: Any) -> PolicyClient:
    policy_pack.client.configure(None)
    return policy_pack.client


def of_type(resources: list[RecordedResource], token: str) -> RecordedResource:
    [found] = [r for r in resources if r.type == token]
    return found


def added(resources: list[RecordedResource], like: RecordedResource, type_: str, name: str, inputs: dict[str, Any]):
    """A resource the user adds beside the program's (same parent and provider as `like`)."""
    urn = like.urn.rsplit("::", 2)[0] + f"::{type_}::{name}"
    resource = dataclasses.replace(
        like,
        urn=urn,
        type=type_,
        name=name,
        inputs=inputs,
        outputs=copy.deepcopy(inputs),
        dependencies=(),
        property_dependencies={},
        id="",
        protect=False,
    )
    return [*resources, resource]


def closure_violations(client: PolicyClient, resources: list[RecordedResource]) -> list[str]:
    return [v.message for v in client.analyze_stack(resources).by_policy(CLOSURE)]


def test_the_shipped_stacks_pass(client: PolicyClient, dev_stack: RecordedStack, prod_stack: RecordedStack) -> None:
    assert closure_violations(client, resources_of(dev_stack)) == []
    assert closure_violations(client, resources_of(prod_stack)) == []


def _vault_and_policy(stack: RecordedStack) -> tuple[list[RecordedResource], RecordedResource, RecordedResource]:
    resources = resources_of(stack)
    return resources, of_type(resources, VAULT_T), of_type(resources, ACCESS_POLICY_T)


# ------------------------------------------------------------------------ class 1: other ways to declare a member


def test_a_generic_resource_declaring_a_cluster_is_refused(client: PolicyClient, dev_stack: RecordedStack) -> None:
    resources, vault, _ = _vault_and_policy(dev_stack)
    resources = added(
        resources,
        vault,
        "azure-native:resources:Resource",
        "generic-aks",
        {
            "resourceProviderNamespace": "Microsoft.ContainerService",
            "resourceType": "managedClusters",
            "resourceName": "aks-2",
            "resourceGroupName": "rg-kms-aks-dev",
            "apiVersion": "2025-09-01",
            "identity": {"type": "SystemAssigned"},
            "properties": {"securityProfile": {}},
        },
    )
    [message] = closure_violations(client, resources)
    assert "Microsoft.ContainerService" in message and "containerservice.ManagedCluster" in message


def test_a_classic_provider_cluster_is_refused(client: PolicyClient, dev_stack: RecordedStack) -> None:
    resources, vault, _ = _vault_and_policy(dev_stack)
    resources = added(
        resources,
        vault,
        "azure:containerservice/kubernetesCluster:KubernetesCluster",
        "classic",
        {
            "resourceGroupName": "rg-kms-aks-dev",
            "dnsPrefix": "c",
            "identity": {"type": "SystemAssigned"},
        },
    )
    [message] = closure_violations(client, resources)
    assert "classic `azure` provider" in message


def test_an_arm_deployment_rewriting_access_policies_is_refused(client: PolicyClient, dev_stack: RecordedStack) -> None:
    resources, vault, _ = _vault_and_policy(dev_stack)
    template = {
        "resources": [
            {
                "type": "Microsoft.KeyVault/vaults/accessPolicies",
                "name": "kv-kmsaks-dev-01/replace",
                "properties": {"accessPolicies": []},
            }
        ]
    }
    resources = added(
        resources,
        vault,
        "azure-native:resources:Deployment",
        "arm",
        {
            "resourceGroupName": "rg-kms-aks-dev",
            "properties": {"mode": "Incremental", "template": template},
        },
    )
    [message] = closure_violations(client, resources)
    assert "ARM template deployment" in message and "microsoft.keyvault" in message


# ------------------------------------------------------------------------- class 2: two declarations of one object


def test_a_second_vault_with_the_same_name_is_refused(client: PolicyClient, dev_stack: RecordedStack) -> None:
    resources, vault, _ = _vault_and_policy(dev_stack)
    second = copy.deepcopy(vault.inputs)
    second["properties"]["publicNetworkAccess"] = "Disabled"
    [message] = closure_violations(client, added(resources, vault, VAULT_T, "kms-vault-again", second))
    assert "declared twice" in message


def test_a_second_access_policy_for_one_principal_is_refused(client: PolicyClient, dev_stack: RecordedStack) -> None:
    resources, _, policy = _vault_and_policy(dev_stack)
    narrower = copy.deepcopy(policy.inputs)
    narrower["policy"]["permissions"] = {"keys": ["get"]}
    [message] = closure_violations(client, added(resources, policy, ACCESS_POLICY_T, "kms-again", narrower))
    assert "one entry per object id" in message


def test_inline_access_policies_beside_a_separate_one_are_refused(
    client: PolicyClient, dev_stack: RecordedStack
) -> None:
    resources, vault, _ = _vault_and_policy(dev_stack)
    inline = dataclasses.replace(vault, inputs=copy.deepcopy(vault.inputs))
    inline.inputs["properties"]["accessPolicies"] = []
    resources = [inline if r is vault else r for r in resources]
    [message] = closure_violations(client, resources)
    assert "inline properties.accessPolicies" in message


# ------------------------------------------------------------------------------ class 3: grants Azure ignores


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ({"applicationId": "9f8e7d6c-5b4a-4321-8fed-cba987654321"}, "compound identity"),
        ({"tenantId": OTHER_TENANT}, "is not its vault's tenant"),
    ],
)
def test_a_grant_key_vault_does_not_honour_is_refused(
    client: PolicyClient, dev_stack: RecordedStack, edit: dict[str, str], expected: str
) -> None:
    resources, _, policy = _vault_and_policy(dev_stack)
    changed = dataclasses.replace(policy, inputs=copy.deepcopy(policy.inputs))
    changed.inputs["policy"].update(edit)
    [message] = closure_violations(client, [changed if r is policy else r for r in resources])
    assert expected in message


def test_control_a_reader_access_policy_for_another_principal_passes(
    client: PolicyClient, dev_stack: RecordedStack
) -> None:
    resources, _, policy = _vault_and_policy(dev_stack)
    reader = copy.deepcopy(policy.inputs)
    reader["policy"].update(objectId=OTHER_PRINCIPAL, permissions={"keys": ["get"], "secrets": ["get"]})
    assert closure_violations(client, added(resources, policy, ACCESS_POLICY_T, "reader", reader)) == []


# ------------------------------------------------------------------------------- class 6: policy config bounds


def test_max_secrets_above_2000_does_not_raise_the_kms_v1_limit(
    client: PolicyClient, prod_stack: RecordedStack
) -> None:
    client.configure({"aks-kms-secret-limit": {"maxSecrets": 5000}})
    result = client.analyze_stack(with_secrets(resources_of(prod_stack), 2100))
    [violation] = result.by_policy("aks-kms-secret-limit")
    assert "2100 Kubernetes Secrets" in violation.message and "at most 2000" in violation.message


# ---------------------------------------------------------------------------------- one closure for both gates


def test_the_pack_and_the_guard_compute_the_same_closure_on_the_same_stack(dev_stack: RecordedStack) -> None:
    import sys

    from kms_aks_tools.offline.policy_pack import POLICY_PACK_DIR

    sys.path.insert(0, str(POLICY_PACK_DIR))
    from kms_rules.closure import closure_records

    # The desired state as the pack receives it (inputs), through the pack's own adapter.
    from_pack = compute(closure_records((r.type, r.urn, r.inputs) for r in resources_of(dev_stack)))
    # The real CLI's preview of the same program and stack, through the guard's adapter.
    doc = recorded("dev-no-change")
    steps = guard.Preview.model_validate(doc).steps
    from_guard = closure_of([(s, guard.type_from_urn(s.urn) or "") for s in steps])
    roles = {u: m.role for u, m in from_guard.members.items()}
    assert roles and {u: m.role for u, m in from_pack.members.items()} == roles
    assert set(roles.values()) == {"cluster", "key", "vault", "identity", "grant", "resource-group"}


def test_the_closure_module_is_the_one_both_gates_import() -> None:
    root = Path(__file__).resolve().parent.parent
    pack = (root / "policies" / "kms_rules" / "closure.py").read_text()
    tool = (root / "kms_aks_tools" / "guard" / "closure.py").read_text()
    assert "from azure_facts.kms_closure import" in pack and "from azure_facts.kms_closure import" in tool


# ------------------------------------------------------------------------------- class 4: a key that cannot encrypt

DAY = 86_400
NOW = int(__import__("time").time())


@pytest.mark.parametrize(
    ("attributes", "policy", "expected"),
    [
        ({"expires": NOW - 30 * DAY}, None, "expired on"),
        ({"notBefore": NOW + 30 * DAY}, None, "is not valid until"),
        (
            {"expires": NOW + 30 * DAY},
            {"lifetimeActions": [{"action": {"type": "rotate"}, "trigger": {"timeAfterCreate": "P90D"}}]},
            "no later than its first automatic rotation",
        ),
    ],
)
def test_a_key_that_cannot_encrypt_is_refused(
    client: PolicyClient, dev_stack: RecordedStack, attributes: dict[str, int], policy: Any, expected: str
) -> None:
    resources = resources_of(dev_stack)
    key = of_type(resources, "azure-native:keyvault:Key")
    changed = dataclasses.replace(key, inputs=copy.deepcopy(key.inputs), outputs={})
    changed.inputs["properties"]["attributes"].update(attributes)
    if policy is not None:
        changed.inputs["properties"]["rotationPolicy"] = policy
    result = client.analyze_stack([changed if r is key else r for r in resources], properties="inputs")
    messages = [v.message for v in result.by_policy("aks-kms-key-vault-fit")]
    assert any(expected in m for m in messages), messages


def test_control_a_key_valid_past_its_first_rotation_passes(client: PolicyClient, dev_stack: RecordedStack) -> None:
    resources = resources_of(dev_stack)
    key = of_type(resources, "azure-native:keyvault:Key")
    changed = dataclasses.replace(key, inputs=copy.deepcopy(key.inputs), outputs={})
    changed.inputs["properties"]["attributes"].update({"expires": NOW + 400 * DAY, "notBefore": NOW - DAY})
    result = client.analyze_stack([changed if r is key else r for r in resources], properties="inputs")
    assert result.by_policy("aks-kms-key-vault-fit") == []
