"""The policy pack started as the Pulumi CLI starts it and driven over the analyzer protocol, with the real
program's dev and prod stacks (recorded under the mock engine) and mutations of them.

The pack starts once per session (tests/conftest.py); each test sends its own `Configure` (every policy gets a
level), exactly as a `pulumi preview --policy-pack policies --policy-pack-config <file>` would. A question the
session has asked before (the same request under the same config) gets the pack's first answer (`AskOnceClient`).
"""

from __future__ import annotations

import ast
import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kms_aks_tools.offline.policy_pack import (
    POLICY_PACK_DIR,
    UNUSED_ENGINE_ADDRESS,
    AnalysisResult,
    PolicyClient,
    PolicyConfigError,
    PolicyPackError,
    PolicyPackProcess,
    load_policy_config,
    running_policy_pack,
)
from kms_aks_tools.offline.recording import UNKNOWN, RecordedResource, RecordedStack
from tests.policy_support import (
    ACCESS_POLICY,
    CLUSTER,
    DELETE,
    GRANT_TYPES,
    IDENTITY,
    KEY,
    KMS,
    ROLE_ASSIGNMENT,
    SECRET,
    TOKEN_FORMS,
    VAULT,
    Resources,
    cluster_not_depending_on_grants,
    edited,
    in_form,
    key_property,
    kms_setting,
    kubernetes_version,
    literal_key_id,
    one,
    private_endpoint,
    private_endpoint_connection,
    replaced,
    resources_of,
    retyped,
    role_assignment,
    token_in_form,
    unknown_key_id_without_dependency,
    unprotected,
    vault_property,
    with_secrets,
    without,
)

POLICY_NAMES = [
    "aks-kms-enabled",
    "aks-kms-user-assigned-identity",
    "aks-kms-key-id-versioned",
    "aks-kms-recognised-types",
    "aks-kms-no-private-link",
    "aks-kms-secret-limit",
    "aks-kms-key-vault-fit",
    "aks-kms-identity-grant",
    "aks-kms-key-source",
    "aks-kms-deletion-protection",
    "aks-kms-vault-audit-logging",
    "aks-kms-closure",
]
STACK_POLICIES = set(POLICY_NAMES[4:])
KEY_VAULT_CONTRIBUTOR = "f25e0fa2-a7c8-4377-a976-54943a77a395"
OTHER_KEY_ID = "https://kv-elsewhere-01.vault.azure.net/keys/borrowed/00112233445566778899aabbccddeeff"


@pytest.fixture
def client(ask_once_client: PolicyClient) -> PolicyClient:
    return ask_once_client  # the session's pack, each distinct question sent once (tests/conftest.py)


@pytest.fixture(params=["dev", "prod"])
def shipped(request: pytest.FixtureRequest) -> RecordedStack:
    return request.getfixturevalue(f"{request.param}_stack")


def check(client: PolicyClient, resources: Resources, config: dict[str, Any] | None = None, **options: Any):
    client.configure(config)
    # Generated Kubernetes Secrets (with_secrets) matter to the stack policy that counts them, and no resource
    # policy reads a Secret: one of them goes through Analyze, not 2001 (about 3 s a test).
    secrets = [r.urn for r in resources if r.type == SECRET][1:]
    skipped = set(secrets)
    return client.check(resources, analyze=lambda r: r.urn not in skipped, **options)


def stack_config(stack: RecordedStack, **extra: Any) -> dict[str, Any]:
    """The stack's shipped policy config with `extra` policy entries merged in."""
    config = load_policy_config(stack.stack)
    for name, value in extra.items():
        base = config.get(name, {})
        base = {"enforcementLevel": base} if isinstance(base, str) else dict(base)
        config[name] = {**base, **value} if isinstance(value, dict) else value
    return config


def mandatory_policies(result: AnalysisResult) -> set[str]:
    return {v.policy_name for v in result.mandatory}


# ------------------------------------------------------------------------------------- protocol basics


def test_analyzer_info_lists_every_policy_with_level_type_and_schema(client: PolicyClient) -> None:
    info = client.get_analyzer_info(refresh=True)
    assert info.name == "kms-aks"
    assert info.supports_config
    assert info.policy_names == POLICY_NAMES
    for policy in info.policies:
        # The audit-logging policy is observability: advisory unless a stack's config (prod.json) says mandatory.
        expected = "advisory" if policy.name == "aks-kms-vault-audit-logging" else "mandatory"
        assert policy.enforcement_level == expected, policy.name
        assert policy.policy_type == ("stack" if policy.name in STACK_POLICIES else "resource"), policy.name
        assert len(policy.description) > 80, policy.name
    assert info.policy("aks-kms-secret-limit").config_schema["maxSecrets"]["default"] == 2000
    assert info.policy("aks-kms-key-vault-fit").config_schema["requireHsm"]["default"] is False
    assert info.policy("aks-kms-no-private-link").config_schema["allowPrivateKeyVault"]["type"] == "boolean"
    assert info.policy("aks-kms-key-source").config_schema["pinnedKeyIds"]["type"] == "array"


def test_the_five_limitations_are_cited_in_the_descriptions(client: PolicyClient) -> None:
    descriptions = {p.name: p.description for p in client.get_analyzer_info().policies}
    assert '"Disabling KMS"' in descriptions["aks-kms-enabled"]
    assert '"System-Assigned Managed Identity"' in descriptions["aks-kms-user-assigned-identity"]
    assert '"Leveraging KeyVault with PrivateLink enabled"' in descriptions["aks-kms-no-private-link"]
    assert '"Using more than 2000 secrets in a cluster"' in descriptions["aks-kms-secret-limit"]
    assert '"Changing of keys"' in descriptions["aks-kms-key-source"]
    assert '"Changing of keys"' in descriptions["aks-kms-deletion-protection"]


def test_configure_reconciles_like_the_cli(client: PolicyClient) -> None:
    reconciled = client.configure({"all": "advisory", "aks-kms-secret-limit": {"maxSecrets": 10}})
    assert {e.enforcement_level for e in reconciled.values()} == {"advisory"}
    assert reconciled["aks-kms-secret-limit"].properties == {"maxSecrets": 10, "kmsV2Aware": False}
    assert reconciled["aks-kms-key-source"].properties == {"pinnedKeyIds": []}
    assert client.configure(None)["aks-kms-enabled"].enforcement_level == "mandatory"


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"aks-kms-no-such-policy": "mandatory"}, "no such policy"),
        ({"aks-kms-key-vault-fit": {"requireHSM": True}}, "unknown option 'requireHSM'"),
        ({"aks-kms-secret-limit": {"maxSecrets": "many"}}, "expected integer"),
        ({"aks-kms-secret-limit": {"maxSecrets": -1}}, "less than the minimum"),
        ({"aks-kms-key-vault-fit": {"minKeySize": 1024}}, "less than the minimum 2048"),
        ({"aks-kms-key-source": {"pinnedKeyIds": ["https://kv.vault.azure.net/keys/k"]}}, "does not match"),
        ({"aks-kms-enabled": "strict"}, "not a valid enforcement level"),
        ({"aks-kms-enabled": 3}, "must be an enforcement level or an object"),
    ],
)
def test_invalid_config_is_refused_before_it_reaches_the_pack(
    client: PolicyClient, config: dict[str, Any], problem: str
) -> None:
    with pytest.raises(PolicyConfigError, match=problem):
        client.configure(config)


def test_the_shipped_config_files_fit_the_pack(client: PolicyClient) -> None:
    for stack in ("dev", "prod"):
        client.configure(load_policy_config(stack))
    assert client.configure(load_policy_config("prod"))["aks-kms-key-vault-fit"].properties["requireHsm"] is True


# ---------------------------------------------------------------------------------------- shipped stacks


@pytest.mark.parametrize("properties", ["inputs", "outputs", "inputs+outputs"])
def test_shipped_stacks_have_no_mandatory_violation(
    client: PolicyClient, shipped: RecordedStack, properties: str
) -> None:
    result = check(client, shipped.resources, load_policy_config(shipped.stack), properties=properties)
    assert result.mandatory == []
    assert result.undecided == []


def test_shipped_previews_have_no_mandatory_violation_and_decide_everything(
    client: PolicyClient, dev_preview: RecordedStack, prod_preview: RecordedStack
) -> None:
    for stack in (dev_preview, prod_preview):
        # keyId and the identity ids are unknown in a first preview; they depend on this stack's resources.
        cluster = one(stack.resources, CLUSTER)
        assert cluster.inputs["securityProfile"]["azureKeyVaultKms"]["keyId"] == UNKNOWN
        result = check(client, stack.resources, load_policy_config(stack.stack))
        assert result.mandatory == []
        assert result.undecided == []


def test_dev_reports_its_unprotected_kms_resources_as_advisory(client: PolicyClient, dev_stack: RecordedStack) -> None:
    # dev lifts protection on purpose (throwaway stack); its policy config makes that a warning, not a block.
    result = check(client, dev_stack.resources, load_policy_config("dev"))
    flagged = {v.urn for v in result.by_policy("aks-kms-deletion-protection")}
    assert flagged == {one(dev_stack.resources, t).urn for t in (KEY, VAULT, IDENTITY)}
    assert {v.enforcement_level for v in result.violations} == {"advisory"}


def test_prod_passes_with_hsm_required(client: PolicyClient, prod_stack: RecordedStack) -> None:
    result = check(client, prod_stack.resources, load_policy_config("prod"))
    assert client.configure(load_policy_config("prod"))["aks-kms-key-vault-fit"].properties["requireHsm"]
    assert result.violations == []


# ----------------------------------------------------------------------------- one limitation each: blocked


def _set_identity_system_assigned(resources: Resources) -> Resources:
    return replaced(resources, CLUSTER, lambda c: edited(c, {("identity",): {"type": "SystemAssigned"}}))


def _drop_grants(resources: Resources) -> Resources:
    return without(resources, *GRANT_TYPES)


def _weak_grant(resources: Resources) -> Resources:
    def weaken(grant):
        if grant.type == ACCESS_POLICY:
            return edited(grant, {("policy", "permissions", "keys"): ["get", "wrapKey"]})
        reader = (
            "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/21090545-7ca7-4776-b22c-e363652d74d2"
        )
        return edited(grant, {("roleDefinitionId",): reader})

    return [weaken(r) if r.type in GRANT_TYPES else r for r in resources]


def _grant_for_someone_else(resources: Resources) -> Resources:
    # Only the principal changes; the grant still depends on the identity.
    other = "99999999-2222-3333-4444-555555555555"

    def retarget(grant):
        path = ("policy", "objectId") if grant.type == ACCESS_POLICY else ("principalId",)
        return edited(grant, {path: other})

    return [retarget(r) if r.type in GRANT_TYPES else r for r in resources]


def _key_id_names_another_key(resources: Resources) -> Resources:
    # Still depends on the stack's Key, but the id points elsewhere (a hand edit of the keyId).
    return kms_setting(resources, keyId=OTHER_KEY_ID)


def _versionless_key_id(resources: Resources) -> Resources:
    key = one(resources, KEY)
    return kms_setting(resources, keyId=key.outputs["keyUri"])


def _unprotect_all(resources: Resources) -> Resources:
    for type_token in (KEY, VAULT, IDENTITY):
        resources = unprotected(resources, type_token)
    return resources


OTHER_VERSION = "ffeeddccbbaa99887766554433221100"


def _key_id_other_version(resources: Resources) -> Resources:
    """The cluster's keyId moved to another version of the same Key, its dependency on the Key kept."""

    def move(cluster):
        key_id = dig_key_id(cluster)
        return edited(cluster, {(*KMS, "keyId"): key_id.rsplit("/", 1)[0] + "/" + OTHER_VERSION})

    return replaced(resources, CLUSTER, move)


def dig_key_id(cluster) -> str:
    return cluster.inputs["securityProfile"]["azureKeyVaultKms"]["keyId"]


MUTATIONS = {
    # limitation: disabling KMS
    "kms disabled": (lambda r: kms_setting(r, enabled=False), "aks-kms-enabled"),
    "kms settings removed": (
        lambda r: replaced(r, CLUSTER, lambda c: edited(c, {KMS: DELETE})),
        "aks-kms-enabled",
    ),
    "keyId removed": (lambda r: kms_setting(r, keyId=DELETE), "aks-kms-enabled"),
    # limitation: system-assigned identity
    "system-assigned identity": (_set_identity_system_assigned, "aks-kms-user-assigned-identity"),
    "versionless keyId": (_versionless_key_id, "aks-kms-key-id-versioned"),
    # limitation: Key Vault with Private Link
    "keyVaultNetworkAccess Private": (
        lambda r: kms_setting(r, keyVaultNetworkAccess="Private"),
        "aks-kms-no-private-link",
    ),
    "vault public network access disabled": (
        lambda r: vault_property(r, publicNetworkAccess="Disabled"),
        "aks-kms-no-private-link",
    ),
    "private endpoint to the vault": (lambda r: [*r, private_endpoint(r)], "aks-kms-no-private-link"),
    "manual private endpoint to the vault": (
        lambda r: [*r, private_endpoint(r, manual=True)],
        "aks-kms-no-private-link",
    ),
    "private endpoint wired to the vault": (
        lambda r: [*r, private_endpoint(r, target=UNKNOWN, depend_on_vault=True)],
        "aks-kms-no-private-link",
    ),
    "private endpoint connection on the vault": (
        lambda r: [*r, private_endpoint_connection(r)],
        "aks-kms-no-private-link",
    ),
    # limitation: more than 2000 secrets
    "2001 secrets": (lambda r: with_secrets(r, 2001), "aks-kms-secret-limit"),
    # key and vault fit for KMS
    "EC key": (lambda r: key_property(r, kty="EC", keySize=DELETE, curveName="P-256"), "aks-kms-key-vault-fit"),
    "1024-bit key": (lambda r: key_property(r, keySize=1024), "aks-kms-key-vault-fit"),
    "key without encrypt": (lambda r: key_property(r, keyOps=["decrypt", "sign"]), "aks-kms-key-vault-fit"),
    "disabled key": (lambda r: key_property(r, attributes={"enabled": False}), "aks-kms-key-vault-fit"),
    "no purge protection": (lambda r: vault_property(r, enablePurgeProtection=False), "aks-kms-key-vault-fit"),
    "no soft delete": (lambda r: vault_property(r, enableSoftDelete=False), "aks-kms-key-vault-fit"),
    "vault firewall denies": (
        lambda r: vault_property(r, networkAcls={"bypass": "AzureServices", "defaultAction": "Deny"}),
        "aks-kms-key-vault-fit",
    ),
    # the identity's grant
    "missing grant": (_drop_grants, "aks-kms-identity-grant"),
    "grant not depended on": (cluster_not_depending_on_grants, "aks-kms-identity-grant"),
    "grant without encrypt+decrypt": (_weak_grant, "aks-kms-identity-grant"),
    "grant for another principal": (_grant_for_someone_else, "aks-kms-identity-grant"),
    # limitation: changing of keys
    "keyId not from a stack Key nor pinned": (lambda r: literal_key_id(r, OTHER_KEY_ID), "aks-kms-key-source"),
    "keyId names another key": (_key_id_names_another_key, "aks-kms-key-source"),
    "keyId moved to another version of the stack's key": (_key_id_other_version, "aks-kms-key-source"),
    "key unprotected": (lambda r: unprotected(r, KEY), "aks-kms-deletion-protection"),
    "vault unprotected": (lambda r: unprotected(r, VAULT), "aks-kms-deletion-protection"),
    "identity unprotected": (lambda r: unprotected(r, IDENTITY), "aks-kms-deletion-protection"),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_each_mutation_of_prod_is_blocked_by_its_policy(
    client: PolicyClient, prod_stack: RecordedStack, mutation: str
) -> None:
    mutate, policy = MUTATIONS[mutation]
    resources = mutate(resources_of(prod_stack))
    result = check(client, resources, load_policy_config("prod"))
    assert policy in mandatory_policies(result), [v.detail for v in result]
    # The message says what to change, not only what is wrong: the stack config key (or that the components
    # always set it), then the code-level fix for people using the components or raw resources directly.
    details = [v.detail for v in result.by_policy(policy)]
    assert any(
        ("Fix in Pulumi.<stack>.yaml: kms-aks:" in d or "Stack config: nothing to set" in d) and " In code: " in d
        for d in details
    ), details


@pytest.mark.parametrize(
    "mutation",
    [m for m in MUTATIONS if not m.endswith("unprotected")],  # dev is unprotected by design (advisory there)
)
def test_each_mutation_of_dev_is_blocked_by_its_policy(
    client: PolicyClient, dev_stack: RecordedStack, mutation: str
) -> None:
    mutate, policy = MUTATIONS[mutation]
    result = check(client, mutate(resources_of(dev_stack)), load_policy_config("dev"))
    assert policy in mandatory_policies(result), [v.detail for v in result]


def test_unprotected_kms_resources_are_mandatory_without_the_dev_override(
    client: PolicyClient, dev_stack: RecordedStack
) -> None:
    result = check(client, dev_stack.resources, None)
    assert len([v for v in result.mandatory if v.policy_name == "aks-kms-deletion-protection"]) == 3


@pytest.mark.parametrize(
    "mutation",
    [
        "1024-bit key",
        "EC key",
        "key unprotected",
        "keyVaultNetworkAccess Private",
        "missing grant",
        "system-assigned identity",
    ],
)
def test_mutations_show_in_every_stack_property_mode(
    client: PolicyClient, prod_stack: RecordedStack, mutation: str
) -> None:
    mutate, policy = MUTATIONS[mutation]
    resources = mutate(resources_of(prod_stack))
    for properties in ("inputs", "outputs", "inputs+outputs"):
        result = check(client, resources, load_policy_config("prod"), properties=properties)
        assert policy in mandatory_policies(result), (properties, [v.detail for v in result])


def test_a_violating_resource_is_named_by_urn(client: PolicyClient, prod_stack: RecordedStack) -> None:
    resources = [*prod_stack.resources, private_endpoint(resources_of(prod_stack))]
    result = check(client, resources, load_policy_config("prod"))
    [violation] = result.by_policy("aks-kms-no-private-link")
    assert violation.urn == resources[-1].urn
    assert "In code: remove it" in violation.detail
    assert violation.message.startswith(violation.description)


def test_a_private_endpoint_to_another_vault_is_not_the_kms_vaults_business(
    client: PolicyClient, prod_stack: RecordedStack
) -> None:
    other = "/subscriptions/s/resourceGroups/rg-app/providers/Microsoft.KeyVault/vaults/kv-app-secrets"
    resources = [*prod_stack.resources, private_endpoint(resources_of(prod_stack), target=other)]
    assert check(client, resources, load_policy_config("prod")).violations == []


# --------------------------------------------------------------------------------- config and overrides


def test_a_policy_set_to_disabled_reports_nothing(client: PolicyClient, prod_stack: RecordedStack) -> None:
    resources = kms_setting(resources_of(prod_stack), enabled=False)
    assert "aks-kms-enabled" in mandatory_policies(check(client, resources, None))
    result = check(client, resources, {"aks-kms-enabled": "disabled"})
    assert result.by_policy("aks-kms-enabled") == []


def test_a_policy_set_to_advisory_warns_instead_of_blocking(client: PolicyClient, prod_stack: RecordedStack) -> None:
    resources = with_secrets(resources_of(prod_stack), 2001)
    result = client.configure({"aks-kms-secret-limit": {"enforcementLevel": "advisory"}}) and client.analyze_stack(
        resources
    )
    [violation] = result.by_policy("aks-kms-secret-limit")
    assert violation.enforcement_level == "advisory"
    assert result.mandatory == []


def test_all_sets_every_level(client: PolicyClient, prod_stack: RecordedStack) -> None:
    resources = _unprotect_all(kms_setting(resources_of(prod_stack), keyVaultNetworkAccess="Private"))
    resources = _set_identity_system_assigned(with_secrets(resources, 2001))
    result = check(client, resources, {"all": "advisory"})
    assert {v.policy_name for v in result.violations} >= {
        "aks-kms-user-assigned-identity",
        "aks-kms-no-private-link",
        "aks-kms-secret-limit",
        "aks-kms-deletion-protection",
    }
    assert result.mandatory == []


@pytest.mark.parametrize(("secrets", "blocked"), [(2000, False), (2001, True)])
def test_secret_limit_boundary(client: PolicyClient, prod_stack: RecordedStack, secrets: int, blocked: bool) -> None:
    client.configure(load_policy_config("prod"))
    result = client.analyze_stack(with_secrets(resources_of(prod_stack), secrets))
    assert bool(result.by_policy("aks-kms-secret-limit")) is blocked
    if blocked:
        assert "2001 Kubernetes Secrets" in result.by_policy("aks-kms-secret-limit")[0].detail


@pytest.mark.parametrize(("max_secrets", "blocked"), [(5, False), (4, True)])
def test_secret_limit_is_configurable(
    client: PolicyClient, prod_stack: RecordedStack, max_secrets: int, blocked: bool
) -> None:
    client.configure({"aks-kms-secret-limit": {"maxSecrets": max_secrets}})
    result = client.analyze_stack(with_secrets(resources_of(prod_stack), 5))
    assert bool(result.by_policy("aks-kms-secret-limit")) is blocked


@pytest.mark.parametrize(
    ("version", "kms_v2_aware", "blocked"),
    [
        ("1.26", True, True),
        ("1.26.10", True, True),
        ("1.27", True, False),
        ("1.33", True, False),
        ("1.27", False, True),
    ],
)
def test_secret_limit_kms_v2_boundary(
    client: PolicyClient, prod_stack: RecordedStack, version: str, kms_v2_aware: bool, blocked: bool
) -> None:
    resources = with_secrets(kubernetes_version(resources_of(prod_stack), version), 2001)
    client.configure({"aks-kms-secret-limit": {"kmsV2Aware": kms_v2_aware}})
    violations = client.analyze_stack(resources).by_policy("aks-kms-secret-limit")
    assert bool(violations) is blocked
    if blocked and kms_v2_aware:
        assert violations[0].urn == one(resources, CLUSTER).urn
        assert "1.27 or later" in violations[0].detail


def test_require_hsm_blocks_dev_and_passes_prod(
    client: PolicyClient, dev_stack: RecordedStack, prod_stack: RecordedStack
) -> None:
    dev = check(client, dev_stack.resources, stack_config(dev_stack, **{"aks-kms-key-vault-fit": {"requireHsm": True}}))
    flagged = {v.urn for v in dev.mandatory if v.policy_name == "aks-kms-key-vault-fit"}
    assert flagged == {one(dev_stack.resources, KEY).urn, one(dev_stack.resources, VAULT).urn}
    assert check(client, prod_stack.resources, load_policy_config("prod")).violations == []


def test_min_key_size_option(client: PolicyClient, dev_stack: RecordedStack) -> None:
    config = stack_config(dev_stack, **{"aks-kms-key-vault-fit": {"minKeySize": 3072}})
    assert "aks-kms-key-vault-fit" in mandatory_policies(check(client, dev_stack.resources, config))


def test_pinned_key_id_lets_a_key_from_elsewhere_through(client: PolicyClient, prod_stack: RecordedStack) -> None:
    resources = literal_key_id(resources_of(prod_stack), OTHER_KEY_ID)
    assert "aks-kms-key-source" in mandatory_policies(check(client, resources, load_policy_config("prod")))
    # Key Vault names and versions are case-insensitive.
    same_key = OTHER_KEY_ID.replace("kv-elsewhere-01", "KV-Elsewhere-01").replace("aabbccddeeff", "AABBCCDDEEFF")
    pinned = stack_config(prod_stack, **{"aks-kms-key-source": {"pinnedKeyIds": [same_key]}})
    assert check(client, resources, pinned).by_policy("aks-kms-key-source") == []


def _byok_prod(**declared: Any) -> tuple[RecordedStack, str]:
    from kms_aks_tools.offline.mock_engine import SUBSCRIPTION_ID
    from tests.engine import run_stack

    key_id = "https://kv-team-keys.vault.azure.net/keys/aks-etcd/0123456789abcdef0123456789abcdef"
    vault_id = (
        f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/rg-keys/providers/Microsoft.KeyVault/vaults/kv-team-keys"
    )
    byok = {"keyId": key_id, "keyVaultResourceId": vault_id, "permissionModel": "rbac", **declared}
    stack = run_stack("prod", config={"kms-aks:keyVault": None, "kms-aks:kmsKey": None, "kms-aks:existingKey": byok})
    assert stack.error is None, stack.error
    return stack, key_id


HSM_DECLARED = {"keyType": "RSA-HSM", "purgeProtection": True, "softDeleteRetentionDays": 90, "auditLogging": True}


def test_bring_your_own_key_stack_needs_its_key_pinned(client: PolicyClient) -> None:
    stack, key_id = _byok_prod(**HSM_DECLARED)
    assert mandatory_policies(check(client, stack.resources, load_policy_config("prod"))) == {"aks-kms-key-source"}
    pinned = stack_config(stack, **{"aks-kms-key-source": {"pinnedKeyIds": [key_id]}})
    assert check(client, stack.resources, pinned).violations == []


@pytest.mark.parametrize(
    ("declared", "refusal"),
    [
        (
            {"auditLogging": True},
            "has no declared key type or purge protection, and this stack requires an HSM-protected key",
        ),
        ({**HSM_DECLARED, "keyType": "RSA"}, 'is declared with key type "RSA", and this stack requires an HSM'),
    ],
)
def test_bring_your_own_key_on_an_hsm_stack_is_refused_until_its_properties_are_declared_and_fit(
    client: PolicyClient, declared: dict[str, Any], refusal: str
) -> None:
    # Issue 22, class 5: prod requires an HSM key (policies/config/prod.json); a key from outside the stack is
    # judged by what its stack config declares (kms-aks:existingKey), and refused until that is declared.
    stack, key_id = _byok_prod(**declared)
    config = stack_config(stack, **{"aks-kms-key-source": {"pinnedKeyIds": [key_id]}})
    found = check(client, stack.resources, config)
    [violation] = found.mandatory
    assert violation.policy_name == "aks-kms-key-vault-fit" and refusal in violation.message
    assert "kms-aks:existingKey" in violation.message
    # Without requireHsm (dev's pack config) the same software key passes: the declaration fits what dev requires.
    if "keyType" in declared:
        dev = {**config, "aks-kms-key-vault-fit": {"requireHsm": False}}
        assert check(client, stack.resources, dev).mandatory == []


def _private_vault_done_right(resources: Resources) -> Resources:
    vault = one(resources, VAULT)
    resources = replaced(
        resources,
        CLUSTER,
        lambda c: edited(
            c,
            {
                (*KMS, "keyVaultNetworkAccess"): "Private",
                (*KMS, "keyVaultResourceId"): vault.id,
                ("apiServerAccessProfile", "enableVnetIntegration"): True,
                ("apiServerAccessProfile", "subnetId"): "/subscriptions/s/resourceGroups/rg/providers/"
                "Microsoft.Network/virtualNetworks/v/subnets/apiserver",
            },
        ),
    )
    resources = vault_property(resources, publicNetworkAccess="Disabled")
    contributor = role_assignment(resources, KEY_VAULT_CONTRIBUTOR, vault.id, name="kms-kv-contributor")
    resources = [*resources, contributor, private_endpoint(resources)]
    return replaced(resources, CLUSTER, lambda c: edited(c, dependencies=(*c.dependencies, contributor.urn)))


def test_allow_private_key_vault_requires_what_aks_needs(client: PolicyClient, prod_stack: RecordedStack) -> None:
    allow = stack_config(prod_stack, **{"aks-kms-no-private-link": {"allowPrivateKeyVault": True}})
    private_only = kms_setting(resources_of(prod_stack), keyVaultNetworkAccess="Private")
    details = [v.detail for v in check(client, private_only, allow).by_policy("aks-kms-no-private-link")]
    assert any("keyVaultResourceId is not set" in d for d in details), details
    assert any("enableVnetIntegration" in d for d in details), details
    assert any("Key Vault Contributor" in d for d in details), details

    done_right = _private_vault_done_right(resources_of(prod_stack))
    assert check(client, done_right, allow).violations == []
    # The same stack without the option: Private Link is the limitation.
    blocked = check(client, done_right, load_policy_config("prod")).by_policy("aks-kms-no-private-link")
    assert {v.urn for v in blocked} >= {one(done_right, CLUSTER).urn, one(done_right, VAULT).urn}


def test_allow_private_key_vault_still_needs_a_reachable_vault_when_public(
    client: PolicyClient, prod_stack: RecordedStack
) -> None:
    allow = stack_config(prod_stack, **{"aks-kms-no-private-link": {"allowPrivateKeyVault": True}})
    resources = vault_property(resources_of(prod_stack), publicNetworkAccess="Disabled")
    [violation] = check(client, resources, allow).by_policy("aks-kms-no-private-link")
    assert violation.urn == one(resources, VAULT).urn


def test_rbac_grant_on_an_access_policy_vault_does_not_count(client: PolicyClient, prod_stack: RecordedStack) -> None:
    resources = vault_property(resources_of(prod_stack), enableRbacAuthorization=False)
    [violation] = check(client, resources, load_policy_config("prod")).by_policy("aks-kms-identity-grant")
    assert "uses access policies" in violation.detail


def test_grant_through_another_resource_counts_as_waited_for(client: PolicyClient, prod_stack: RecordedStack) -> None:
    # The cluster waits for a resource that waits for the grant: creation order still holds.
    resources = cluster_not_depending_on_grants(resources_of(prod_stack))
    grant = one(resources, ROLE_ASSIGNMENT)
    resources = replaced(resources, KEY, lambda k: edited(k, dependencies=(*k.dependencies, grant.urn)))
    assert check(client, resources, load_policy_config("prod")).violations == []


# --------------------------------------------------------------------------------------- unknown values


REFUSED_AT_PREVIEW = "cannot be decided at preview, so it is refused"


def refused_at_preview(result: Any) -> set[str]:
    """The policies that refused, mandatory, a value they could not see at preview (issue 22, class 7)."""
    return {v.policy_name for v in result.mandatory if REFUSED_AT_PREVIEW in v.message}


def test_unknown_key_id_from_nowhere_is_refused_at_preview_not_passed(
    client: PolicyClient, prod_preview: RecordedStack
) -> None:
    # Nothing mandatory is decided after the preview: during `pulumi up` a stack policy runs after the resources
    # exist (pulumi/pulumi#3366), so an unknown a mandatory rule needs is refused, saying how to make it known.
    result = check(client, unknown_key_id_without_dependency(resources_of(prod_preview)), load_policy_config("prod"))
    assert {"aks-kms-key-source", "aks-kms-key-vault-fit", "aks-kms-deletion-protection"} <= refused_at_preview(result)
    assert result.undecided == []
    assert all("pinnedKeyIds" in v.message for v in result.mandatory if REFUSED_AT_PREVIEW in v.message)


def test_unknown_enabled_flag_is_refused_at_preview(client: PolicyClient, prod_preview: RecordedStack) -> None:
    resources = kms_setting(resources_of(prod_preview), enabled=UNKNOWN)
    cluster = one(resources, CLUSTER)
    client.configure(load_policy_config("prod"))
    result = client.analyze(cluster)
    [violation] = result.by_policy("aks-kms-enabled")
    assert REFUSED_AT_PREVIEW in violation.message and violation.mandatory
    assert violation.urn == cluster.urn


def test_unknown_key_id_is_not_applicable_for_the_format_check(
    client: PolicyClient, prod_preview: RecordedStack
) -> None:
    client.configure(None)
    result = client.analyze(one(prod_preview.resources, CLUSTER))
    assert [n.policy_name for n in result.not_applicable] == ["aks-kms-key-id-versioned"]
    assert "aks-kms-key-source" in result.not_applicable[0].reason


def test_a_violation_is_still_reported_next_to_an_undecided_part(
    client: PolicyClient, prod_preview: RecordedStack
) -> None:
    resources = unknown_key_id_without_dependency(resources_of(prod_preview))
    resources = kms_setting(resources, keyVaultNetworkAccess="Private")
    resources = [*resources, private_endpoint(resources, target=UNKNOWN, name="pe-unknown")]
    result = check(client, resources, load_policy_config("prod"))
    link = result.by_policy("aks-kms-no-private-link")
    assert any(v.mandatory and REFUSED_AT_PREVIEW not in v.message for v in link)
    assert any(v.mandatory and REFUSED_AT_PREVIEW in v.message for v in link)


# ------------------------------------------------------------------------------------- type-token forms
# Each case of this file that blocks or passes a stack on the plain form, again with every azure-native resource
# declared under another form (tests/policy_support.py: versioned module, parameterized package). The verdict each
# case states (its policy, mandatory) must hold on every form, and the pack's whole answer must be the plain form's,
# resource for resource.

Verdict = tuple[str, str, str, bool]


def verdicts(result: AnalysisResult, plain_urn: dict[str, str] | None = None) -> set[Verdict]:
    """(policy, level, resource as its plain-form URN, could not decide) of every violation."""
    urns = plain_urn or {}
    return {(v.policy_name, v.enforcement_level, urns.get(v.urn, v.urn), v.could_not_decide) for v in result}


def check_in_form(
    client: PolicyClient, plain: Resources, form: str, config: dict[str, Any] | None, **options: Any
) -> tuple[AnalysisResult, dict[str, str]]:
    """The pack's answer on `plain` declared under `form`, and each form URN's plain URN."""
    formed = in_form(plain, form)
    assert one(formed, token_in_form(CLUSTER, form)).type != CLUSTER  # the form is really applied
    return check(client, formed, config, **options), {f.urn: p.urn for f, p in zip(formed, plain, strict=True)}


@pytest.mark.parametrize("form", TOKEN_FORMS)
@pytest.mark.parametrize("properties", ["inputs", "outputs", "inputs+outputs"])
def test_shipped_stacks_pass_on_every_token_form(
    client: PolicyClient, shipped: RecordedStack, form: str, properties: str
) -> None:
    result, plain_urn = check_in_form(client, shipped.resources, form, load_policy_config(shipped.stack))
    assert result.mandatory == [] and result.undecided == []
    # Not a pass by finding nothing: dev's unprotected key, vault and identity are still seen (advisory there).
    expected = (
        {
            ("aks-kms-deletion-protection", "advisory", one(shipped.resources, t).urn, False)
            for t in (KEY, VAULT, IDENTITY)
        }
        if shipped.stack == "dev"
        else set()
    )
    assert verdicts(result, plain_urn) == expected
    stack_policies_skipped = {n.policy_name for n in result.not_applicable} & STACK_POLICIES
    assert stack_policies_skipped == set(), [n.reason for n in result.not_applicable]


@pytest.mark.parametrize("form", TOKEN_FORMS)
def test_shipped_previews_decide_everything_on_every_token_form(
    client: PolicyClient, dev_preview: RecordedStack, prod_preview: RecordedStack, form: str
) -> None:
    for stack in (dev_preview, prod_preview):
        result, _ = check_in_form(client, stack.resources, form, load_policy_config(stack.stack))
        assert result.mandatory == [] and result.undecided == []
        # Decided, not skipped: every stack policy found the cluster (and dev's unprotected KMS resources).
        assert {n.policy_name for n in result.not_applicable} & STACK_POLICIES == set()
        if stack.stack == "dev":
            assert len(result.by_policy("aks-kms-deletion-protection")) == 3


_PLAIN_VERDICTS: dict[str, set[Verdict]] = {}


@pytest.mark.parametrize("form", TOKEN_FORMS)
@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_each_mutation_of_prod_is_blocked_on_every_token_form(
    client: PolicyClient, prod_stack: RecordedStack, mutation: str, form: str
) -> None:
    mutate, policy = MUTATIONS[mutation]
    plain = mutate(resources_of(prod_stack))
    result, plain_urn = check_in_form(client, plain, form, load_policy_config("prod"))
    assert policy in mandatory_policies(result), [v.detail for v in result]
    assert "aks-kms-recognised-types" not in {v.policy_name for v in result}
    if mutation not in _PLAIN_VERDICTS:
        _PLAIN_VERDICTS[mutation] = verdicts(check(client, plain, load_policy_config("prod")))
    assert verdicts(result, plain_urn) == _PLAIN_VERDICTS[mutation]


@pytest.mark.parametrize("form", TOKEN_FORMS)
def test_unknown_values_are_refused_at_preview_on_every_token_form(
    client: PolicyClient, prod_preview: RecordedStack, form: str
) -> None:
    plain = unknown_key_id_without_dependency(resources_of(prod_preview))
    result, plain_urn = check_in_form(client, plain, form, load_policy_config("prod"))
    assert {"aks-kms-key-source", "aks-kms-key-vault-fit", "aks-kms-deletion-protection"} <= refused_at_preview(result)
    assert verdicts(result, plain_urn) == verdicts(check(client, plain, load_policy_config("prod")))


@pytest.mark.parametrize("form", TOKEN_FORMS)
def test_a_violation_names_the_resource_by_the_token_it_was_declared_with(
    client: PolicyClient, prod_stack: RecordedStack, form: str
) -> None:
    result, _ = check_in_form(client, unprotected(resources_of(prod_stack), KEY), form, load_policy_config("prod"))
    [violation] = result.by_policy("aks-kms-deletion-protection")
    assert f'{token_in_form(KEY, form)} "' in violation.detail


# Tokens that name a KMS-relevant type in no form azure-native makes (or that the project reads), each with the
# plain type it looks like.
UNKNOWN_FORMS = {
    "azure-native v1's latest module": ("azure-native:containerservice/latest:ManagedCluster", CLUSTER),
    "module in another case": ("azure-native:ContainerService:ManagedCluster", CLUSTER),
    "resource name in another case": ("azure-native:keyvault:key", KEY),
    "package of another module": ("azure-native_containerservice_v20240801:keyvault:Vault", VAULT),
    "package and module versions differ": ("azure-native_keyvault_v20230701:keyvault/v20240401:Key", KEY),
    "package with dashes": (
        "azure-native-managedidentity-v20230131:managedidentity:UserAssignedIdentity",
        IDENTITY,
    ),
    "version as its own segment": ("azure-native:authorization:v20220401:RoleAssignment", ROLE_ASSIGNMENT),
    "underscore package name": ("azure_native:keyvault:AccessPolicy", ACCESS_POLICY),
}


@pytest.mark.parametrize("case", list(UNKNOWN_FORMS))
def test_an_unknown_form_of_a_kms_type_is_refused(
    client: PolicyClient, prod_stack: RecordedStack, dev_stack: RecordedStack, case: str
) -> None:
    token, plain_type = UNKNOWN_FORMS[case]
    # prod grants with a RoleAssignment, dev with an AccessPolicy: the stack that has the type.
    stack = prod_stack if any(r.type == plain_type for r in prod_stack.resources) else dev_stack
    resources = retyped(resources_of(stack), lambda _: token, only=plain_type)
    refused = [r for r in resources if r.type == token]
    assert refused
    result = check(client, resources, load_policy_config(stack.stack))
    found = result.by_policy("aks-kms-recognised-types")
    assert {v.urn for v in found} == {r.urn for r in refused}
    assert {v.enforcement_level for v in found} == {"mandatory"}
    for violation in found:
        # What is wrong (the token, what it looks like) and what is allowed (the forms), and how to fix it.
        assert token in violation.detail and plain_type in violation.detail
        assert "azure-native:<module>/<version>:<Name>" in violation.detail
        assert "azure-native_<module>_<version>:<module>/<version>:<Name>" in violation.detail
        assert "In code: declare it with the azure-native SDK" in violation.detail


@pytest.mark.parametrize("case", ["azure-native v1's latest module", "package of another module"])
def test_an_unknown_form_is_refused_in_preview_and_by_the_shipped_dev_config(
    client: PolicyClient, dev_preview: RecordedStack, case: str
) -> None:
    token, plain_type = UNKNOWN_FORMS[case]
    resources = retyped(resources_of(dev_preview), lambda _: token, only=plain_type)
    result = check(client, resources, load_policy_config("dev"))
    assert "aks-kms-recognised-types" in mandatory_policies(result)


def test_a_cluster_in_an_unknown_form_is_not_read_as_no_cluster(
    client: PolicyClient, prod_stack: RecordedStack
) -> None:
    # The stack policies cannot read it, and say so rather than "no cluster": the refusal is the verdict.
    token = UNKNOWN_FORMS["module in another case"][0]
    resources = retyped(resources_of(prod_stack), lambda _: token, only=CLUSTER)
    result = check(client, resources, load_policy_config("prod"))
    assert mandatory_policies(result) == {"aks-kms-recognised-types"}
    reasons = [n.reason for n in result.not_applicable if n.policy_name == "aks-kms-identity-grant"]
    assert reasons == [f"no ManagedCluster with KMS enabled in this stack (aks-kms-recognised-types refuses {token})"]


@pytest.mark.parametrize(
    "token",
    [
        "azure-native:network/latest:VirtualNetwork",  # not a KMS type, whatever its form
        "azure-native:keyvault:Secret",
        "kubernetes:core/v1:Secret",
        "kms-aks:index:KmsAksCluster",
    ],
)
def test_a_token_that_names_no_kms_type_is_not_refused(
    client: PolicyClient, prod_stack: RecordedStack, token: str
) -> None:
    resources = [*resources_of(prod_stack)]
    stack = one(resources, "pulumi:pulumi:Stack")
    extra = dataclasses.replace(
        one(resources, CLUSTER),
        type=token,
        urn=f"{stack.urn.split('::pulumi:pulumi:Stack::', 1)[0]}::{token}::extra",
        name="extra",
        inputs={},
        outputs={},
        dependencies=(),
        property_dependencies={},
    )
    result = check(client, [*resources, extra], load_policy_config("prod"))
    assert result.by_policy("aks-kms-recognised-types") == []


# -------------------------------------------------------------------------------------- the process


def _pack(tmp_path: Path, main: str) -> Path:
    # The shipped pack's virtualenv runs these packs, as the CLI would run a pack that names it.
    venv = POLICY_PACK_DIR / "venv"
    (tmp_path / "PulumiPolicy.yaml").write_text(f"runtime:\n  name: python\n  options:\n    virtualenv: {venv}\n")
    (tmp_path / "__main__.py").write_text(main)
    return tmp_path


def test_the_pack_runs_as_the_cli_runs_it(tmp_path: Path) -> None:
    pack = _pack(
        tmp_path,
        "import os, sys\nsys.stderr.write(f'cwd={os.getcwd()} argv={sys.argv}')\nraise SystemExit(3)\n",
    )
    process = PolicyPackProcess(pack)
    assert process.command[1:] == ["-u", "-m", "pulumi.policy", UNUSED_ENGINE_ADDRESS, str(pack.resolve())]
    with pytest.raises(PolicyPackError) as error:
        process.wait_ready(timeout=30)
    message = str(error.value)
    assert "exited with code 3 before printing its port" in message
    assert f"cwd={pack.resolve()}" in message


def test_a_pack_that_crashes_at_start_reports_its_stderr(tmp_path: Path) -> None:
    pack = _pack(tmp_path, "raise RuntimeError('the rules module is broken')\n")
    with pytest.raises(PolicyPackError, match="the rules module is broken"):
        PolicyPackProcess(pack).start().wait_ready(timeout=30)


def test_a_pack_that_prints_before_its_port_is_refused(tmp_path: Path) -> None:
    pack = _pack(tmp_path, "print('hello')\nimport time\ntime.sleep(60)\n")
    process = PolicyPackProcess(pack).start()
    with pytest.raises(PolicyPackError, match='printed "hello" where its port belongs'):
        process.wait_ready(timeout=30)
    assert process.returncode is not None  # ended, not left running


def test_a_pack_that_never_prints_a_port_times_out_and_is_ended(tmp_path: Path) -> None:
    pack = _pack(tmp_path, "import time\ntime.sleep(60)\n")
    process = PolicyPackProcess(pack).start()
    with pytest.raises(PolicyPackError, match="printed no port within 1 s"):
        process.wait_ready(timeout=1)
    assert process.returncode is not None


def test_a_folder_without_pulumi_policy_yaml_is_not_a_pack(tmp_path: Path) -> None:
    with pytest.raises(PolicyPackError, match=r"no PulumiPolicy\.yaml"):
        PolicyPackProcess(tmp_path).start()


def test_start_returns_before_the_pack_is_ready_and_close_ends_it() -> None:
    process = PolicyPackProcess().start()
    try:
        with pytest.raises(PolicyPackError, match="not ready"):
            _ = process.client
        with pytest.raises(PolicyPackError, match="already started"):
            process.start()
        client = process.wait_ready()
        assert client.get_analyzer_info().name == "kms-aks"
        pid = process.pid
    finally:
        process.close()
    assert process.returncode is not None
    assert pid is not None and not _alive(pid)


def test_the_context_manager_ends_the_process_on_error() -> None:
    before = set(_own_children())
    with pytest.raises(RuntimeError, match="boom"), running_policy_pack(stack="dev") as client:
        assert client.get_analyzer_info().policy_names == POLICY_NAMES
        started = set(_own_children()) - before
        assert any("pulumi.policy" in line for line in started), started
        raise RuntimeError("boom")
    assert set(_own_children()) - before == set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes; `ps` tells them apart.
    state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
    return bool(state) and not state.startswith("Z")


def _own_children() -> list[str]:
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(os.getpid())], capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if line.strip() and "ps -o" not in line]


def test_a_failed_call_carries_the_pack_stderr(client: PolicyClient) -> None:
    from pulumi.runtime.proto import analyzer_pb2

    client.configure(None)
    bad = analyzer_pb2.ConfigureAnalyzerRequest()
    bad.policyConfig["aks-kms-secret-limit"].enforcementLevel = analyzer_pb2.MANDATORY
    bad.policyConfig["aks-kms-secret-limit"].properties.update({"maxSecrets": "lots"})
    client._call("Configure", bad)  # the SDK takes any config; the policy refuses it when it runs
    with pytest.raises(PolicyPackError, match="maxSecrets must be a whole number"):
        client.analyze_stack([])
    client.configure(None)


# ----------------------------------------------------------------------------------------- config files


def test_load_policy_config_reads_the_stack_file() -> None:
    assert load_policy_config("prod") == {
        "aks-kms-recognised-types": "mandatory",
        "aks-kms-key-vault-fit": {"requireHsm": True},
        "aks-kms-vault-audit-logging": "mandatory",
    }
    assert load_policy_config("dev") == {
        "aks-kms-recognised-types": "mandatory",
        "aks-kms-deletion-protection": "advisory",
        "aks-kms-vault-audit-logging": "advisory",
    }


def test_load_policy_config_missing_file(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "dev.json").write_text("{}")
    with pytest.raises(
        PolicyConfigError, match=r"no policy config for staging: .*staging\.json does not exist \(configs: dev\)"
    ):
        load_policy_config("staging", tmp_path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"aks-kms-enabled": "mandatory",}', "not valid JSON: .* at line 1"),
        ('["aks-kms-enabled"]', "expected an object of policy names"),
        ('{"aks-kms-enabled": {"enforcementLevel": "blocking"}}', "'blocking' is not a valid enforcement level"),
    ],
)
def test_load_policy_config_broken_file(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(text)
    with pytest.raises(PolicyConfigError, match=problem):
        load_policy_config(path)
    with pytest.raises(PolicyConfigError, match=r"broken\.json"):
        load_policy_config(str(path))


def test_the_pack_main_only_builds_the_pack() -> None:
    # Importing __main__.py would block forever: read its syntax tree instead.
    main = ast.parse((Path(__file__).resolve().parent.parent / "policies" / "__main__.py").read_text())
    body = [node for node in main.body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
    imports = [node for node in body if isinstance(node, ast.Import | ast.ImportFrom)]
    calls = [
        ast.unparse(node.value.func) for node in body if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
    ]
    assert len(imports) + len(calls) == len(body), "only imports and calls"
    assert calls == ["tune_garbage_collector", "shared_stack_view.install", "PolicyPack"]
    modules = {n.module if isinstance(n, ast.ImportFrom) else n.names[0].name for n in imports}
    assert modules == {"kms_pack", "pulumi_policy", "shared_stack_view"}


def test_importing_the_pack_modules_has_no_side_effects() -> None:
    policies = Path(__file__).resolve().parent.parent / "policies"
    code = (
        f"import gc, sys; sys.path.insert(0, {str(policies)!r}); before = gc.get_threshold(); import kms_pack; "
        "assert gc.get_threshold() == before; kms_pack.tune_garbage_collector(); "
        "assert gc.get_threshold() == kms_pack.GC_THRESHOLDS; print(len(kms_pack.POLICIES))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "12"


def test_rules_module_imports_without_pulumi() -> None:
    # The rules are plain functions: importable with no Pulumi SDK on the path.
    policies = Path(__file__).resolve().parent.parent / "policies"
    code = (
        "import sys; sys.modules['pulumi'] = None; sys.modules['pulumi_policy'] = None; "
        f"sys.path.insert(0, {str(policies)!r}); import kms_rules; print(len(kms_rules.RELEVANT_TYPES))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "9"


def test_a_planned_version_pinned_in_the_policy_config_passes(client: PolicyClient, prod_stack: RecordedStack) -> None:
    resources = _key_id_other_version(resources_of(prod_stack))
    moved = dig_key_id(one(resources, CLUSTER))
    assert moved.endswith(OTHER_VERSION)
    blocked = check(client, resources, load_policy_config("prod"))
    assert "aks-kms-key-source" in mandatory_policies(blocked)
    assert any("current version is" in v.detail for v in blocked.by_policy("aks-kms-key-source"))
    pinned = check(client, resources, stack_config(prod_stack, **{"aks-kms-key-source": {"pinnedKeyIds": [moved]}}))
    assert "aks-kms-key-source" not in mandatory_policies(pinned)


# ------------------------------------------------------------------------------------- vault audit logging
# Built on the recorded stacks with the program's own diagnostic settings removed and one added by the test, so
# the verdicts do not depend on whether the program creates the setting.

DIAGNOSTIC_SETTING = "azure-native:monitor:DiagnosticSetting"
AUDIT = "aks-kms-vault-audit-logging"


def vault_diagnostics(resources: Resources, **changes: Any) -> Resources:
    """`resources` without diagnostic settings, plus one that sends the vault's AuditEvent to a workspace;
    `changes` override its inputs."""
    stack = one(resources, "pulumi:pulumi:Stack")
    vault = one(resources, VAULT)
    inputs = {
        "name": "kms-audit",
        "resourceUri": vault.id or UNKNOWN,
        "workspaceId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/log",
        "logs": [{"category": "AuditEvent", "enabled": True}],
        "metrics": [{"category": "AllMetrics", "enabled": True}],
        **changes,
    }
    prefix = stack.urn.split("::pulumi:pulumi:Stack::", 1)[0]
    setting = RecordedResource(
        urn=f"{prefix}::{DIAGNOSTIC_SETTING}::kms-vault-diagnostics",
        type=DIAGNOSTIC_SETTING,
        name="kms-vault-diagnostics",
        custom=True,
        parent=stack.urn,
        inputs=inputs,
        # As azure-native answers: resourceUri is a path parameter, not part of the outputs.
        outputs={k: v for k, v in inputs.items() if k != "resourceUri"},
        dependencies=(vault.urn,),
        property_dependencies={"resourceUri": (vault.urn,)},
    )
    return [*without(resources, DIAGNOSTIC_SETTING), setting]


def test_kms_vault_without_audit_logging_is_advisory_in_dev_and_mandatory_in_prod(
    client: PolicyClient, shipped: RecordedStack
) -> None:
    result = check(client, without(shipped.resources, DIAGNOSTIC_SETTING), load_policy_config(shipped.stack))
    found = result.by_policy(AUDIT)
    assert len(found) == 1
    assert found[0].urn == one(shipped.resources, VAULT).urn
    assert found[0].enforcement_level == ("mandatory" if shipped.stack == "prod" else "advisory")
    assert "kms-aks:monitoring" in found[0].detail


@pytest.mark.parametrize("properties", ["inputs", "outputs", "inputs+outputs"])
def test_kms_vault_with_audit_logging_passes(client: PolicyClient, shipped: RecordedStack, properties: str) -> None:
    resources = vault_diagnostics(shipped.resources)
    assert check(client, resources, load_policy_config(shipped.stack), properties=properties).by_policy(AUDIT) == []


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"logs": [{"category": "AuditEvent", "enabled": False}]}, "AuditEvent disabled"),
        ({"logs": [{"categoryGroup": "allLogs", "enabled": False}]}, "AuditEvent disabled"),
        ({"resourceUri": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-other"}, "no "),
        ({"workspaceId": None}, "has no destination"),
    ],
)
def test_kms_vault_audit_logging_mutations_are_violations(
    client: PolicyClient, prod_stack: RecordedStack, changes: dict[str, Any], reason: str
) -> None:
    resources = vault_diagnostics(prod_stack.resources, **changes)
    if "resourceUri" in changes:  # a literal id: no dependency on the vault either
        resources = replaced(
            resources, DIAGNOSTIC_SETTING, lambda r: dataclasses.replace(r, property_dependencies={}, dependencies=())
        )
    found = check(client, resources, load_policy_config("prod")).by_policy(AUDIT)
    assert [v.enforcement_level for v in found] == ["mandatory"]
    assert reason in found[0].detail


def test_kms_vault_audit_logging_unknown_in_preview_is_refused_where_mandatory(
    client: PolicyClient, prod_preview: RecordedStack
) -> None:
    resources = vault_diagnostics(prod_preview.resources, logs=UNKNOWN)
    found = check(client, resources, load_policy_config("prod")).by_policy(AUDIT)
    # prod makes audit logging mandatory: an unknown it needs is refused at preview.
    assert len(found) == 1 and REFUSED_AT_PREVIEW in found[0].message
    assert found[0].enforcement_level == "mandatory"
    # dev leaves it advisory: the same unknown is a warning there.
    [warning] = check(client, resources, load_policy_config("dev")).by_policy(AUDIT)
    assert warning.enforcement_level == "advisory" and REFUSED_AT_PREVIEW in warning.message
    # Known in the preview (the vault's id unknown but from the vault): decided, and passes.
    assert check(client, vault_diagnostics(prod_preview.resources), load_policy_config("prod")).by_policy(AUDIT) == []


def test_audit_logging_of_a_kms_vault_outside_the_stack_must_be_declared(
    client: PolicyClient, prod_stack: RecordedStack
) -> None:
    # Bring your own key: the vault is someone else's, and so is its logging; the stack declares it (issue 22, class
    # 5: prod's mandatory audit logging must not stop applying), and undeclared is refused at the policy's level.
    result = check(client, without(prod_stack.resources, VAULT, DIAGNOSTIC_SETTING), load_policy_config("prod"))
    [refusal] = [v for v in result.mandatory if v.policy_name == AUDIT]
    assert "outside this stack" in refusal.message and "kms-aks:existingKey.auditLogging: true" in refusal.message
