"""The pack's rules as plain functions, on hand-written resources in the shapes the engine passes:
inputs (what `Analyze` sees) and azure-native outputs (what `AnalyzeStack` sees), with unknowns."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import tests.policy_support  # noqa: F401  (puts the pack's folder on sys.path)
from kms_aks_tools.offline.recording import UNKNOWN

import kms_rules as rules  # isort: skip
from kms_rules import Outcome, Res, StackIndex  # isort: skip

SUB = "00000000-0000-0000-0000-000000000001"
RG = "rg-kms"
VAULT_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/kv-kms-01"
KEY_ARM_ID = f"{VAULT_ID}/keys/etcd"
KEY_ID = "https://kv-kms-01.vault.azure.net/keys/etcd/0123456789abcdef0123456789abcdef"
IDENTITY_ID = (
    f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-kms"
)
PRINCIPAL = "11111111-2222-3333-4444-555555555555"
CRYPTO_USER = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{rules.KEY_VAULT_CRYPTO_USER}"
URN = "urn:pulumi:dev::kms-aks::"


def urn(type_token: str, name: str) -> str:
    return f"{URN}{type_token}::{name}"


def cluster_props(**kms: Any) -> dict[str, Any]:
    settings = {"enabled": True, "keyId": KEY_ID, "keyVaultNetworkAccess": "Public", **kms}
    return {
        "resourceName": "aks-kms",
        "kubernetesVersion": "1.33",
        "identity": {"type": "UserAssigned", "userAssignedIdentities": [IDENTITY_ID]},
        "securityProfile": {"azureKeyVaultKms": {k: v for k, v in settings.items() if v is not None}},
    }


def vault(**properties: Any) -> Res:
    props = {
        "tenantId": "t",
        "sku": {"family": "A", "name": "standard"},
        "enableSoftDelete": True,
        "enablePurgeProtection": True,
        "enableRbacAuthorization": True,
        "publicNetworkAccess": "Enabled",
        "networkAcls": {"bypass": "AzureServices", "defaultAction": "Allow"},
        **properties,
    }
    return Res(
        rules.VAULT,
        urn(rules.VAULT, "vault"),
        {"vaultName": "kv-kms-01", "resourceGroupName": RG, "properties": props},
        "vault",
        protect=True,
    )


def key(*, outputs: bool = False, **properties: Any) -> Res:
    props = {"kty": "RSA", "keySize": 2048, "keyOps": ["encrypt", "decrypt"], "attributes": {"enabled": True}}
    props.update(properties)
    if outputs:  # azure-native's Key outputs are flat, and name the key `name`
        shape = {"name": "etcd", "keyUri": "https://kv-kms-01.vault.azure.net/keys/etcd", **props}
    else:
        shape = {"keyName": "etcd", "vaultName": "kv-kms-01", "resourceGroupName": RG, "properties": props}
    return Res(
        rules.KEY,
        urn(rules.KEY, "key"),
        shape,
        "key",
        protect=True,
        property_dependencies={"vaultName": (urn(rules.VAULT, "vault"),)},
    )


def identity(*, outputs: bool = True) -> Res:
    props: dict[str, Any] = {"resourceName": "id-kms", "resourceGroupName": RG}
    if outputs:
        props = {"name": "id-kms", "principalId": PRINCIPAL, "clientId": "c"}
    return Res(rules.IDENTITY, urn(rules.IDENTITY, "identity"), props, "identity", protect=True)


def access_policy(keys: list[str] | None = None, object_id: str = PRINCIPAL, vault_name: str = "kv-kms-01") -> Res:
    return Res(
        rules.ACCESS_POLICY,
        urn(rules.ACCESS_POLICY, "grant"),
        {
            "vaultName": vault_name,
            "resourceGroupName": RG,
            "policy": {"objectId": object_id, "tenantId": "t", "permissions": {"keys": keys or ["encrypt", "decrypt"]}},
        },
        "grant",
        property_dependencies={"policy": (urn(rules.IDENTITY, "identity"),), "vaultName": (urn(rules.VAULT, "vault"),)},
    )


def role_assignment(
    role: str = CRYPTO_USER,
    scope: str = KEY_ARM_ID,
    principal: str = PRINCIPAL,
    principal_type: str | None = "ServicePrincipal",
    *,
    urn_name: str = "grant",
    scope_from_key: bool = True,
) -> Res:
    props = {"principalId": principal, "roleDefinitionId": role, "scope": scope}
    if principal_type is not None:
        props["principalType"] = principal_type
    return Res(
        rules.ROLE_ASSIGNMENT,
        urn(rules.ROLE_ASSIGNMENT, urn_name),
        props,
        urn_name,
        property_dependencies={
            "principalId": (urn(rules.IDENTITY, "identity"),),
            "scope": (urn(rules.KEY, "key"),) if scope_from_key else (),
        },
    )


def cluster(props: dict[str, Any] | None = None, *, grant: bool = True, key_dependency: bool = True) -> Res:
    deps = [urn(rules.KEY, "key"), urn(rules.IDENTITY, "identity")]
    if grant:
        deps.append(urn(rules.ROLE_ASSIGNMENT, "grant"))
        deps.append(urn(rules.ACCESS_POLICY, "grant"))
    return Res(
        rules.CLUSTER,
        urn(rules.CLUSTER, "cluster"),
        props or cluster_props(),
        "cluster",
        dependencies=tuple(deps),
        property_dependencies={
            "securityProfile": (urn(rules.KEY, "key"),) if key_dependency else (),
            "identity": (urn(rules.IDENTITY, "identity"),),
        },
    )


def stack(*resources: Res, counts: dict[str, int] | None = None) -> StackIndex:
    return StackIndex(resources, counts)


def healthy(**replace: Res) -> list[Res]:
    parts = {"cluster": cluster(), "vault": vault(), "key": key(), "identity": identity(), "grant": role_assignment()}
    parts.update(replace)
    return [r for r in parts.values() if r is not None]


def violations(findings: list[rules.Finding]) -> list[str]:
    return [f.message for f in findings if f.outcome is Outcome.VIOLATION]


def outcomes(findings: list[rules.Finding]) -> set[Outcome]:
    return {f.outcome for f in findings}


# ------------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (KEY_ID, ("kv-kms-01", "etcd", "0123456789abcdef0123456789abcdef", True)),
        (
            "https://KV-KMS-01.vault.azure.net/keys/Etcd/0123456789ABCDEF0123456789abcdef",
            ("kv-kms-01", "etcd", "0123456789ABCDEF0123456789abcdef", True),
        ),
        ("https://kv-kms-01.vault.azure.net/keys/etcd", ("kv-kms-01", "etcd", None, False)),
        ("https://kv-kms-01.vault.azure.net/keys/etcd/", ("kv-kms-01", "etcd", None, False)),
        ("https://kv-kms-01.vault.azure.cn:443/keys/etcd/latest", ("kv-kms-01", "etcd", "latest", False)),
    ],
)
def test_parse_key_url(url: str, expected: tuple[Any, ...]) -> None:
    ref = rules.parse_key_url(url)
    assert ref is not None
    assert (ref.vault, ref.name, ref.version, ref.versioned) == expected


@pytest.mark.parametrize(
    "value", ["", UNKNOWN, None, 42, "https://example.com/keys/etcd/1", "https://kv.vault.azure.net/secrets/s/1"]
)
def test_parse_key_url_refuses_what_is_not_a_key_url(value: Any) -> None:
    assert rules.parse_key_url(value) is None


def test_arm_segments_and_vault_names() -> None:
    assert rules.arm_segments(KEY_ARM_ID)["keys"] == "etcd"
    assert rules.vault_name_of_resource_id(KEY_ARM_ID) == "kv-kms-01"
    assert rules.vault_name_of_resource_id(IDENTITY_ID) is None
    assert rules.vault_name_of_resource_id(UNKNOWN) is None


@pytest.mark.parametrize(
    ("version", "minor"),
    [("1.26", (1, 26)), ("1.27.3", (1, 27)), ("v1.30", (1, 30)), ("latest", None), (UNKNOWN, None)],
)
def test_kubernetes_minor(version: str, minor: tuple[int, int] | None) -> None:
    assert rules.kubernetes_minor(version) == minor


def test_every_unknown_sentinel_is_unknown() -> None:
    assert rules.is_unknown(UNKNOWN)
    assert len(rules.UNKNOWN_SENTINELS) == 7
    assert not rules.is_unknown("04da6b54")


# ------------------------------------------------------------------------------------ resource rules


def test_kms_enabled() -> None:
    assert rules.check_kms_enabled(cluster_props()) == []
    assert len(violations(rules.check_kms_enabled(cluster_props(enabled=False)))) == 1
    missing = rules.check_kms_enabled({"identity": {"type": "UserAssigned"}})
    assert len(violations(missing)) == 2  # not enabled, no keyId
    assert "keyId is not set" in violations(rules.check_kms_enabled(cluster_props(keyId=" ")))[0]
    # An unknown keyId is wired to something; an unknown switch is undecided.
    assert rules.check_kms_enabled(cluster_props(keyId=UNKNOWN)) == []
    assert outcomes(rules.check_kms_enabled(cluster_props(enabled=UNKNOWN))) == {Outcome.UNDECIDED}
    assert outcomes(rules.check_kms_enabled({"securityProfile": {"azureKeyVaultKms": UNKNOWN}})) == {Outcome.UNDECIDED}


@pytest.mark.parametrize(
    ("identity_value", "problem"),
    [
        ({"type": "SystemAssigned"}, "dependency cycle"),
        ({"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": [IDENTITY_ID]}, "dependency cycle"),
        (None, "identity.type is not set"),
        ({"type": "UserAssigned", "userAssignedIdentities": []}, "is empty"),
        ({"type": "UserAssigned", "userAssignedIdentities": [IDENTITY_ID, IDENTITY_ID + "2"]}, "exactly one"),
    ],
)
def test_user_assigned_identity_violations(identity_value: Any, problem: str) -> None:
    props = cluster_props()
    props["identity"] = identity_value
    [message] = violations(rules.check_user_assigned_identity(props))
    assert problem in message
    assert "UserAssigned" in message or "Keep only" in message


def test_user_assigned_identity_accepts_input_list_output_map_and_unknown_ids() -> None:
    assert rules.check_user_assigned_identity(cluster_props()) == []
    output_shape = cluster_props()
    output_shape["identity"]["userAssignedIdentities"] = {IDENTITY_ID: {"principalId": PRINCIPAL, "clientId": "c"}}
    assert rules.check_user_assigned_identity(output_shape) == []
    preview = cluster_props()
    preview["identity"]["userAssignedIdentities"] = [UNKNOWN]
    assert rules.check_user_assigned_identity(preview) == []
    preview["identity"]["type"] = UNKNOWN
    assert outcomes(rules.check_user_assigned_identity(preview)) == {Outcome.UNDECIDED}


@pytest.mark.parametrize(
    ("key_id", "problem"),
    [
        ("https://kv-kms-01.vault.azure.net/keys/etcd", "has no version"),
        ("https://kv-kms-01.vault.azure.net/keys/etcd/latest", '"latest" where a 32-hex-digit version belongs'),
        (
            "/subscriptions/x/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv/keys/etcd",
            "not a Key Vault key identifier",
        ),
    ],
)
def test_key_id_versioned_violations(key_id: str, problem: str) -> None:
    [message] = violations(rules.check_key_id_versioned(cluster_props(keyId=key_id)))
    assert problem in message
    assert "Fix in Pulumi.<stack>.yaml: kms-aks:existingKey.keyId: https://" in message
    assert "In code: set keyId to the Key resource's key_uri_with_version" in message


def test_key_id_versioned_passes_and_defers_unknowns() -> None:
    assert rules.check_key_id_versioned(cluster_props()) == []
    assert rules.check_key_id_versioned(cluster_props(keyId=None)) == []  # aks-kms-enabled's business
    assert outcomes(rules.check_key_id_versioned(cluster_props(keyId=UNKNOWN))) == {Outcome.NOT_APPLICABLE}


# -------------------------------------------------------------------------------------------- index


def test_the_index_relates_cluster_key_vault_identity_by_value_and_by_dependency() -> None:
    index = stack(*healthy())
    [kms] = index.kms_clusters
    assert [k.name for k in kms.keys] == ["key"]
    assert kms.vault is not None and kms.vault.name == "vault"
    assert [i.name for i in kms.identities] == ["identity"]
    assert kms.principals == {PRINCIPAL}

    # Preview: keyId and identity ids unknown; the dependencies carry the relation.
    preview = cluster_props(keyId=UNKNOWN)
    preview["identity"]["userAssignedIdentities"] = [UNKNOWN]
    [kms] = stack(*healthy(cluster=cluster(preview))).kms_clusters
    assert [k.name for k in kms.keys] == ["key"] and not kms.key_unresolved
    assert kms.vault is not None and [i.name for i in kms.identities] == ["identity"]


def test_clusters_without_kms_are_left_to_aks_kms_enabled() -> None:
    index = stack(*healthy(cluster=cluster(cluster_props(enabled=False))))
    assert index.kms_clusters == []
    assert rules.check_deletion_protection(index) == []


def test_dependency_walk_is_transitive() -> None:
    a = Res("t", "a", {}, dependencies=("b",))
    b = Res("t", "b", {}, dependencies=("c",))
    c = Res("t", "c", {}, dependencies=("a",))  # a cycle must not hang the walk
    index = StackIndex([a, b, c])
    assert index.depends_on("a", {"c"})
    assert not index.depends_on("a", {"d"})


# ------------------------------------------------------------------------------------- private link


def test_no_private_link_passes_the_public_setup() -> None:
    assert rules.check_no_private_link(stack(*healthy())) == []


def test_private_network_access_and_vault_resource_id_on_public() -> None:
    index = stack(*healthy(cluster=cluster(cluster_props(keyVaultNetworkAccess="Private"))))
    [message] = violations(rules.check_no_private_link(index))
    assert 'keyVaultNetworkAccess is "Private"' in message
    assert "Fix in Pulumi.<stack>.yaml: kms-aks:keyVaultNetworkAccess: Public (and remove kms-aks:network)" in message
    assert '"allowPrivateKeyVault": true' in message
    assert 'In code: set keyVaultNetworkAccess to "Public"' in message
    index = stack(*healthy(cluster=cluster(cluster_props(keyVaultResourceId=VAULT_ID))))
    [message] = violations(rules.check_no_private_link(index))
    assert "Fix in Pulumi.<stack>.yaml: kms-aks:keyVaultNetworkAccess: Public" in message
    assert "In code: remove securityProfile.azureKeyVaultKms.keyVaultResourceId" in message


@pytest.mark.parametrize("nested", [False, True])
@pytest.mark.parametrize("field", ["privateLinkServiceConnections", "manualPrivateLinkServiceConnections"])
def test_private_endpoint_to_the_kms_vault(field: str, nested: bool) -> None:
    connection: dict[str, Any] = {"privateLinkServiceId": VAULT_ID.upper(), "groupIds": ["vault"]}
    if nested:  # the ARM shape, in case a resource passes it through
        connection = {"name": "c", "properties": connection}
    endpoint = Res(rules.PRIVATE_ENDPOINT, urn(rules.PRIVATE_ENDPOINT, "pe"), {field: [connection]}, "pe")
    [finding] = rules.check_no_private_link(stack(*healthy(), endpoint))
    assert finding.urn == endpoint.urn and finding.outcome is Outcome.VIOLATION


def test_private_endpoint_known_by_dependency_or_undecided() -> None:
    connections = [{"privateLinkServiceId": UNKNOWN, "groupIds": ["vault"]}]
    wired = Res(
        rules.PRIVATE_ENDPOINT,
        urn(rules.PRIVATE_ENDPOINT, "pe"),
        {"privateLinkServiceConnections": connections},
        property_dependencies={"privateLinkServiceConnections": (urn(rules.VAULT, "vault"),)},
    )
    assert outcomes(rules.check_no_private_link(stack(*healthy(), wired))) == {Outcome.VIOLATION}
    loose = Res(
        rules.PRIVATE_ENDPOINT, urn(rules.PRIVATE_ENDPOINT, "pe"), {"privateLinkServiceConnections": connections}
    )
    assert outcomes(rules.check_no_private_link(stack(*healthy(), loose))) == {Outcome.UNDECIDED}
    # A private endpoint to a storage account is no concern of the KMS vault.
    blob = Res(
        rules.PRIVATE_ENDPOINT,
        urn(rules.PRIVATE_ENDPOINT, "pe"),
        {"privateLinkServiceConnections": [{"privateLinkServiceId": UNKNOWN, "groupIds": ["blob"]}]},
    )
    assert rules.check_no_private_link(stack(*healthy(), blob)) == []


def test_private_endpoint_connection_on_the_kms_vault() -> None:
    connection = Res(
        rules.PRIVATE_ENDPOINT_CONNECTION, urn(rules.PRIVATE_ENDPOINT_CONNECTION, "pec"), {"vaultName": "KV-KMS-01"}
    )
    [finding] = rules.check_no_private_link(stack(*healthy(), connection))
    assert finding.urn == connection.urn
    other = Res(
        rules.PRIVATE_ENDPOINT_CONNECTION, urn(rules.PRIVATE_ENDPOINT_CONNECTION, "pec"), {"vaultName": "kv-app"}
    )
    assert rules.check_no_private_link(stack(*healthy(), other)) == []


def test_vault_public_network_access_disabled() -> None:
    [finding] = rules.check_no_private_link(stack(*healthy(vault=vault(publicNetworkAccess="Disabled"))))
    assert finding.urn == urn(rules.VAULT, "vault")
    assert "Fix in Pulumi.<stack>.yaml: kms-aks:keyVaultNetworkAccess: Public." in finding.message
    assert 'In code: set properties.publicNetworkAccess to "Enabled"' in finding.message
    unknown = rules.check_no_private_link(stack(*healthy(vault=vault(publicNetworkAccess=UNKNOWN))))
    assert outcomes(unknown) == {Outcome.UNDECIDED}


def test_allow_private_key_vault_requirements() -> None:
    private = cluster_props(keyVaultNetworkAccess="Private", keyVaultResourceId=VAULT_ID)
    private["apiServerAccessProfile"] = {"enableVnetIntegration": True, "subnetId": "s"}
    contributor = role_assignment(
        role=f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{rules.KEY_VAULT_CONTRIBUTOR}",
        scope=VAULT_ID,
    )
    contributor = Res(contributor.type, urn(rules.ROLE_ASSIGNMENT, "contributor"), contributor.props, "contributor")
    waiting = cluster(private)
    waiting = dataclasses.replace(waiting, dependencies=(*waiting.dependencies, contributor.urn))
    resources = [*healthy(cluster=waiting, vault=vault(publicNetworkAccess="Disabled")), contributor]
    assert rules.check_no_private_link(stack(*resources), allow_private_key_vault=True) == []
    # The cluster must wait for it: AKS creates the endpoint while creating the cluster.
    not_waiting = [*healthy(cluster=cluster(private), vault=vault(publicNetworkAccess="Disabled")), contributor]
    [message] = violations(rules.check_no_private_link(stack(*not_waiting), allow_private_key_vault=True))
    assert "does not depend on" in message and "contributor" in message
    # Contributor at the key's scope does not let AKS create the vault's private endpoint.
    at_key = Res(contributor.type, contributor.urn, {**contributor.props, "scope": KEY_ARM_ID}, "contributor")
    [message] = violations(rules.check_no_private_link(stack(*resources[:-1], at_key), allow_private_key_vault=True))
    assert "Key Vault Contributor" in message

    bare = cluster_props(keyVaultNetworkAccess="Private")
    messages = violations(
        rules.check_no_private_link(stack(*healthy(cluster=cluster(bare))), allow_private_key_vault=True)
    )
    assert len(messages) == 3
    wrong = cluster_props(keyVaultNetworkAccess="Private", keyVaultResourceId=VAULT_ID.replace("kv-kms-01", "kv-other"))
    assert any(
        "is not the resource id of the vault" in m
        for m in violations(
            rules.check_no_private_link(stack(*healthy(cluster=cluster(wrong))), allow_private_key_vault=True)
        )
    )


# ------------------------------------------------------------------------------------------- secrets


@pytest.mark.parametrize(("count", "blocked"), [(0, False), (2000, False), (2001, True)])
def test_secret_limit_counts_the_stack(count: int, blocked: bool) -> None:
    index = stack(*healthy(), counts={rules.SECRET: count})
    assert bool(violations(rules.check_secret_limit(index))) is blocked


def test_secret_limit_kms_v2_aware() -> None:
    def run(version: Any) -> list[rules.Finding]:
        props = cluster_props()
        props["kubernetesVersion"] = version
        index = stack(*healthy(cluster=cluster(props)), counts={rules.SECRET: 2001})
        return rules.check_secret_limit(index, kms_v2_aware=True)

    assert run("1.27") == []
    assert outcomes(run("1.26")) == {Outcome.VIOLATION}
    assert outcomes(run(None)) == {Outcome.VIOLATION}  # AKS's default version changes over time
    assert outcomes(run(UNKNOWN)) == {Outcome.UNDECIDED}
    # No KMS cluster to tell the version: the limit applies.
    no_cluster = stack(counts={rules.SECRET: 2001})
    assert outcomes(rules.check_secret_limit(no_cluster, kms_v2_aware=True)) == {Outcome.VIOLATION}


def test_secret_limit_reads_the_output_version_too() -> None:
    props = cluster_props()
    del props["kubernetesVersion"]
    props["currentKubernetesVersion"] = "1.29.2"
    index = stack(*healthy(cluster=cluster(props)), counts={rules.SECRET: 2500})
    assert rules.check_secret_limit(index, kms_v2_aware=True) == []


# ---------------------------------------------------------------------------------------- key and vault


@pytest.mark.parametrize("outputs", [False, True])
def test_key_vault_fit_passes_in_both_shapes(outputs: bool) -> None:
    assert rules.check_key_vault_fit(stack(*healthy(key=key(outputs=outputs)))) == []


@pytest.mark.parametrize("outputs", [False, True])
@pytest.mark.parametrize(
    ("properties", "problem"),
    [
        ({"kty": "EC", "curveName": "P-256"}, 'key type "EC"'),
        ({"kty": "oct-HSM"}, 'key type "oct-HSM"'),
        ({"keySize": 1024}, "is 1024-bit"),
        ({"keyOps": ["sign", "verify"]}, "does not permit decrypt and encrypt"),
        ({"keyOps": ["wrapKey", "decrypt"]}, "does not permit encrypt"),
        ({"attributes": {"enabled": False}}, "is disabled"),
    ],
)
def test_key_vault_fit_key_problems(outputs: bool, properties: dict[str, Any], problem: str) -> None:
    [finding] = rules.check_key_vault_fit(stack(*healthy(key=key(outputs=outputs, **properties))))
    assert problem in finding.message and finding.urn == urn(rules.KEY, "key")


def test_key_vault_fit_defaults_follow_key_vault() -> None:
    # No keySize: Key Vault makes 2048-bit RSA. No keyOps: every operation of the key type is permitted.
    assert rules.check_key_vault_fit(stack(*healthy(key=key(keySize=None, keyOps=None)))) == []
    assert violations(rules.check_key_vault_fit(stack(*healthy(key=key(keySize=None))), min_key_size=3072))


@pytest.mark.parametrize(
    ("properties", "problem"),
    [
        ({"enablePurgeProtection": False}, "no purge protection"),
        ({"enablePurgeProtection": None}, "no purge protection"),
        ({"enableSoftDelete": False}, "soft delete off"),
        ({"networkAcls": {"defaultAction": "Deny"}}, '"Deny"'),
    ],
)
def test_key_vault_fit_vault_problems(properties: dict[str, Any], problem: str) -> None:
    [finding] = rules.check_key_vault_fit(stack(*healthy(vault=vault(**properties))))
    assert problem in finding.message and finding.urn == urn(rules.VAULT, "vault")


def test_key_vault_fit_require_hsm() -> None:
    messages = violations(rules.check_key_vault_fit(stack(*healthy()), require_hsm=True))
    assert len(messages) == 2 and any("RSA-HSM" in m for m in messages) and any("premium" in m for m in messages)
    hsm = healthy(key=key(kty="RSA-HSM"), vault=vault(sku={"family": "A", "name": "Premium"}))
    assert rules.check_key_vault_fit(stack(*hsm), require_hsm=True) == []


def test_key_vault_fit_unknowns() -> None:
    assert outcomes(rules.check_key_vault_fit(stack(*healthy(key=key(kty=UNKNOWN))))) == {Outcome.UNDECIDED}
    unresolved = cluster(cluster_props(keyId=UNKNOWN), key_dependency=False)
    assert outcomes(rules.check_key_vault_fit(stack(*healthy(cluster=unresolved)))) == {Outcome.UNDECIDED}


def test_key_vault_fit_with_a_key_outside_the_stack_checks_nothing() -> None:
    byok = cluster(cluster_props(keyId="https://kv-team.vault.azure.net/keys/k/0123456789abcdef0123456789abcdef"))
    assert rules.check_key_vault_fit(stack(byok, identity(), role_assignment())) == []


# ------------------------------------------------------------------------------------------- grants


def test_identity_grant_role_assignment_at_key_vault_or_group_scope() -> None:
    for scope in (KEY_ARM_ID, VAULT_ID, f"/subscriptions/{SUB}/resourceGroups/{RG}", f"/subscriptions/{SUB}"):
        assert rules.check_identity_grant(stack(*healthy(grant=role_assignment(scope=scope)))) == [], scope


@pytest.mark.parametrize(
    ("grant", "problem"),
    [
        (
            role_assignment(role=CRYPTO_USER.replace(rules.KEY_VAULT_CRYPTO_USER, rules.KEY_VAULT_CONTRIBUTOR)),
            "assigns role",
        ),
        (role_assignment(principal_type="User"), 'principalType "User"'),
        (role_assignment(principal_type=None), "principalType"),
        (role_assignment(scope=f"{VAULT_ID}/keys/other"), "does not cover the KMS key"),
        (role_assignment(scope=VAULT_ID.replace("kv-kms-01", "kv-other")), "does not cover the KMS key"),
        (role_assignment(scope=f"/subscriptions/{SUB}/resourceGroups/rg-other"), "does not cover the KMS key"),
    ],
)
def test_identity_grant_role_assignment_problems(grant: Res, problem: str) -> None:
    found = violations(rules.check_identity_grant(stack(*healthy(grant=grant))))
    # The cluster's refusal (no usable grant); a scope that does not contain the key is also refused on the grant.
    [message] = [m for m in found if "AzureKeyVaultKmsValidateIdentityPermissionCustomerError" in m]
    assert problem in message
    assert "Key Vault Crypto User" in message and "AzureKeyVaultKmsValidateIdentityPermissionCustomerError" in message


OTHER_SUB = "00000000-0000-0000-0000-0000000000ff"


@pytest.mark.parametrize(
    ("scope", "why"),
    [
        (f"/subscriptions/{OTHER_SUB}", f"is in subscription {OTHER_SUB}, but the KMS vault is in subscription {SUB}"),
        (VAULT_ID.replace(SUB, OTHER_SUB), "is in subscription"),
        (f"/subscriptions/{SUB}/resourceGroups/rg-unrelated", f"but the KMS vault is in resource group {RG}"),
        (f"/subscriptions/{SUB}/resourceGroups/rg-unrelated/providers/Microsoft.KeyVault/vaults/kv-kms-01", "rg-kms"),
    ],
)
def test_a_crypto_role_scoped_where_it_does_not_contain_the_key_is_refused_on_the_grant(scope: str, why: str) -> None:
    # Issue 22, class 3: Azure RBAC applies a role at its scope and below it only (scope-overview); a Crypto User
    # assignment in another subscription or an unrelated resource group does not reach the key, even beside a good one.
    good = role_assignment()
    other = role_assignment(scope=scope, urn_name="second-grant")
    found = violations(rules.check_identity_grant(stack(*healthy(grant=good), other)))
    [message] = found
    assert why in message and "does not honour for the KMS key" in message
    assert "the key (scope=key.id), the vault, its resource group, its subscription, or a management group" in message


@pytest.mark.parametrize(
    "scope",
    [
        "/providers/Microsoft.Management/managementGroups/platform",
        f"/subscriptions/{SUB}",
        f"/subscriptions/{SUB}/resourceGroups/{RG}",
        VAULT_ID,
        KEY_ARM_ID,
    ],
)
def test_a_crypto_role_at_a_scope_that_contains_the_key_passes(scope: str) -> None:
    # The controls: the key, its vault, group, subscription, and a management group (which Azure applies to every
    # subscription below it; not refused as outside the stack).
    assert rules.check_identity_grant(stack(*healthy(grant=role_assignment(scope=scope)))) == [], scope


def test_a_crypto_role_whose_scope_cannot_be_resolved_at_preview_is_refused() -> None:
    unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the engine's unknown string (pulumi_policy/proxy.py)
    assert unknown in rules.UNKNOWN_SENTINELS
    unknown_scope = role_assignment(scope=unknown, urn_name="second-grant", scope_from_key=False)
    found = rules.check_identity_grant(stack(*healthy(grant=role_assignment()), unknown_scope))
    # Undecided here; the pack refuses every undecided finding (tests/test_pack_program_changes.py, class 7).
    assert [f.outcome for f in found] == [Outcome.UNDECIDED]
    assert "cannot be decided at preview" in found[0].message and "scope=key.id" in found[0].message


def test_identity_grant_access_policy() -> None:
    access_mode = {"vault": vault(enableRbacAuthorization=False)}
    assert rules.check_identity_grant(stack(*healthy(grant=access_policy(), **access_mode))) == []
    assert rules.check_identity_grant(stack(*healthy(grant=access_policy(["all"]), **access_mode))) == []
    [message] = violations(rules.check_identity_grant(stack(*healthy(grant=access_policy(["get"]), **access_mode))))
    assert "not encrypt and decrypt" in message
    [message] = violations(rules.check_identity_grant(stack(*healthy(grant=access_policy()))))
    assert "uses RBAC, which ignores access policies" in message
    [message] = violations(
        rules.check_identity_grant(stack(*healthy(grant=access_policy(vault_name="kv-other"), **access_mode)))
    )
    assert 'on vault "kv-other"' in message


def test_identity_grant_for_another_principal_does_not_count() -> None:
    other = role_assignment(principal="99999999-2222-3333-4444-555555555555")
    other = Res(other.type, other.urn, other.props, other.name)  # no dependency on the identity either
    [message] = violations(rules.check_identity_grant(stack(*healthy(grant=other))))
    assert "has no encrypt + decrypt grant" in message


def test_identity_grant_edited_to_another_principal_does_not_count() -> None:
    # Still wired to the identity (property dependency), but the principal it names is someone else's.
    other = "99999999-2222-3333-4444-555555555555"
    [message] = violations(rules.check_identity_grant(stack(*healthy(grant=role_assignment(principal=other)))))
    assert f"is for principal {other}" in message
    access_mode = {"vault": vault(enableRbacAuthorization=False)}
    [message] = violations(
        rules.check_identity_grant(stack(*healthy(grant=access_policy(object_id=other), **access_mode)))
    )
    assert f"is for principal {other}" in message


def test_identity_grant_must_be_waited_for() -> None:
    [message] = violations(rules.check_identity_grant(stack(*healthy(cluster=cluster(grant=False)))))
    assert "does not depend on" in message and "depends_on" in message


def test_identity_grant_in_preview_relates_by_dependency() -> None:
    preview = cluster_props(keyId=UNKNOWN)
    preview["identity"]["userAssignedIdentities"] = [UNKNOWN]
    grant = role_assignment(principal=UNKNOWN, scope=UNKNOWN)
    assert (
        rules.check_identity_grant(
            stack(*healthy(cluster=cluster(preview), grant=grant, identity=identity(outputs=False)))
        )
        == []
    )
    # Unknown principal with no dependency on the identity: cannot be decided, not passed.
    loose = Res(grant.type, grant.urn, grant.props, grant.name)
    findings = rules.check_identity_grant(
        stack(*healthy(cluster=cluster(preview), grant=loose, identity=identity(outputs=False)))
    )
    assert outcomes(findings) == {Outcome.VIOLATION}  # nothing relates this grant to the identity at all


def test_identity_grant_uses_the_principal_from_cluster_outputs() -> None:
    # The identity lives elsewhere; the cluster's outputs still name its principal.
    props = cluster_props()
    props["identity"]["userAssignedIdentities"] = {IDENTITY_ID: {"principalId": PRINCIPAL, "clientId": "c"}}
    grant = Res(rules.ROLE_ASSIGNMENT, urn(rules.ROLE_ASSIGNMENT, "grant"), role_assignment().props, "grant")
    assert rules.check_identity_grant(stack(cluster(props), vault(), key(), grant)) == []


def test_identity_grant_skips_system_assigned() -> None:
    props = cluster_props()
    props["identity"] = {"type": "SystemAssigned"}
    assert rules.check_identity_grant(stack(*healthy(cluster=cluster(props)))) == []


# --------------------------------------------------------------------------------------- key source


def test_key_source() -> None:
    assert rules.check_key_source(stack(*healthy())) == []
    literal = cluster(key_dependency=False)
    [message] = violations(rules.check_key_source(stack(*healthy(cluster=literal))))
    assert "pinnedKeyIds" in message and "key_uri_with_version" in message
    assert rules.check_key_source(stack(*healthy(cluster=literal)), pinned_key_ids=[KEY_ID.upper() + "/"]) == []
    other = "https://kv-other.vault.azure.net/keys/etcd/0123456789abcdef0123456789abcdef"
    [message] = violations(rules.check_key_source(stack(*healthy(cluster=cluster(cluster_props(keyId=other))))))
    assert 'names key "etcd" in vault "kv-other"' in message


def test_key_source_takes_the_default_port_for_the_same_key() -> None:
    # Settled on purpose (issue 20): the pack compares key ids as the guard and the re-encryption records do
    # (azure_facts.key_ids.normalize_key_id), so https's default port written out names the same key. Before, the
    # pack kept `:443` and could call a pinned key "not pinned" that the tools took for the same key.
    literal = cluster(key_dependency=False)
    with_port = KEY_ID.replace(".vault.azure.net/", ".vault.azure.net:443/")
    assert rules.check_key_source(stack(*healthy(cluster=literal)), pinned_key_ids=[with_port]) == []
    ported = cluster(cluster_props(keyId=with_port), key_dependency=False)
    assert rules.check_key_source(stack(*healthy(cluster=ported)), pinned_key_ids=[KEY_ID]) == []
    # Another port is another endpoint: not the pinned key.
    other_port = KEY_ID.replace(".vault.azure.net/", ".vault.azure.net:8443/")
    [message] = violations(rules.check_key_source(stack(*healthy(cluster=literal)), pinned_key_ids=[other_port]))
    assert "pinnedKeyIds" in message


def test_key_source_unknowns() -> None:
    assert rules.check_key_source(stack(*healthy(cluster=cluster(cluster_props(keyId=UNKNOWN))))) == []
    loose = cluster(cluster_props(keyId=UNKNOWN), key_dependency=False)
    assert outcomes(rules.check_key_source(stack(*healthy(cluster=loose)))) == {Outcome.UNDECIDED}


# ------------------------------------------------------------------------------------ deletion protection


def test_deletion_protection() -> None:
    assert rules.check_deletion_protection(stack(*healthy())) == []
    bare = healthy(
        key=Res(rules.KEY, key().urn, key().props, "key", property_dependencies=key().property_dependencies),
        vault=Res(rules.VAULT, vault().urn, vault().props, "vault"),
        identity=Res(rules.IDENTITY, identity().urn, identity().props, "identity"),
    )
    findings = rules.check_deletion_protection(stack(*bare))
    assert {f.urn for f in findings} == {key().urn, vault().urn, identity().urn}
    for finding in findings:
        assert "Fix in Pulumi.<stack>.yaml: kms-aks:protectKmsResources: true." in finding.message
        assert "In code: pass protect=True in its resource options" in finding.message
        assert "planned rotation (docs/rotation.md)" in finding.message
        assert "not supported" not in finding.message


# ------------------------------------------------------------------------------- vault audit logging

WORKSPACE_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.OperationalInsights/workspaces/log-kms"


def diagnostic_setting(
    *,
    resource_uri: Any = VAULT_ID,
    logs: Any = None,
    uri_dependency: bool = False,
    name: str = "kv-diagnostics",
    **destinations: Any,
) -> Res:
    """A monitor:DiagnosticSetting as azure-native passes it (flat properties), by default AuditEvent to a workspace."""
    props: dict[str, Any] = {
        "resourceUri": resource_uri,
        "logs": [{"category": "AuditEvent", "enabled": True}] if logs is None else logs,
        "metrics": [{"category": "AllMetrics", "enabled": True}],
    }
    props.update(destinations if destinations else {"workspaceId": WORKSPACE_ID})
    return Res(
        rules.DIAGNOSTIC_SETTING,
        urn(rules.DIAGNOSTIC_SETTING, name),
        props,
        name,
        property_dependencies={"resourceUri": (urn(rules.VAULT, "vault"),) if uri_dependency else ()},
    )


def audit(*extra: Res) -> list[rules.Finding]:
    return rules.check_vault_audit_logging(stack(cluster(), key(), vault(), identity(), *extra))


@pytest.mark.parametrize(
    "setting",
    [
        diagnostic_setting(),
        diagnostic_setting(logs=[{"categoryGroup": "audit", "enabled": True}]),
        diagnostic_setting(logs=[{"categoryGroup": "allLogs", "enabled": True}]),
        diagnostic_setting(resource_uri=VAULT_ID.upper()),  # ARM ids are case-insensitive
        diagnostic_setting(storageAccountId=f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/x/storageAccounts/s"),
        diagnostic_setting(eventHubAuthorizationRuleId="/subscriptions/s/resourceGroups/r/providers/x/rules/y"),
        diagnostic_setting(marketplacePartnerId="/subscriptions/s/resourceGroups/r/providers/x/monitors/m"),
        # Preview: the vault's id and the workspace's id are unknown, and come from the vault and a workspace.
        diagnostic_setting(resource_uri=UNKNOWN, uri_dependency=True, workspaceId=UNKNOWN),
        # azure-native's outputs: no resourceUri (a path parameter), but the dependency on the vault.
        diagnostic_setting(resource_uri=None, uri_dependency=True),
    ],
)
def test_audit_logging_passes(setting: Res) -> None:
    if setting.props.get("workspaceId") == UNKNOWN:
        setting = dataclasses.replace(
            setting,
            property_dependencies={**setting.property_dependencies, "workspaceId": (urn("ws", "log"),)},
        )
    assert audit(setting) == []


@pytest.mark.parametrize(
    ("setting", "reason"),
    [
        (None, "no monitor.DiagnosticSetting has it as resourceUri"),
        (diagnostic_setting(logs=[{"category": "AuditEvent", "enabled": False}]), "AuditEvent disabled"),
        (diagnostic_setting(logs=[{"category": "AzurePolicyEvaluationDetails", "enabled": True}]), "sends no"),
        (diagnostic_setting(logs=[]), "sends no AuditEvent"),
        (diagnostic_setting(workspaceId=None), "has no destination"),
        (diagnostic_setting(resource_uri=f"{VAULT_ID}/keys/etcd"), "no monitor.DiagnosticSetting"),
        (diagnostic_setting(resource_uri=VAULT_ID.replace("kv-kms-01", "kv-other")), "no monitor.DiagnosticSetting"),
    ],
)
def test_audit_logging_violations(setting: Res | None, reason: str) -> None:
    findings = audit(*([setting] if setting else []))
    assert [f.outcome for f in findings] == [Outcome.VIOLATION]
    assert findings[0].urn == urn(rules.VAULT, "vault")
    assert reason in findings[0].message
    # The message names the fix: the stack config key, and the code-level fix.
    assert "kms-aks:monitoring" in findings[0].message and "resource_uri=<the vault>.id" in findings[0].message


@pytest.mark.parametrize(
    "setting",
    [
        diagnostic_setting(logs=UNKNOWN),
        diagnostic_setting(logs=[{"category": UNKNOWN, "enabled": True}]),
        diagnostic_setting(logs=[{"category": "AuditEvent", "enabled": UNKNOWN}]),
        diagnostic_setting(resource_uri=UNKNOWN),  # from nothing of this stack
        diagnostic_setting(resource_uri=None),  # outputs without resourceUri and no dependency to tell
        diagnostic_setting(workspaceId=UNKNOWN),  # from nothing of this stack
    ],
)
def test_audit_logging_undecided_when_unknown(setting: Res) -> None:
    findings = audit(setting)
    assert [f.outcome for f in findings] == [Outcome.UNDECIDED]
    assert setting.label in findings[0].message


def test_audit_logging_of_another_resource_does_not_count() -> None:
    # resourceUri unknown but taken from another resource (the cluster's diagnostics): not the vault's.
    other = dataclasses.replace(
        diagnostic_setting(resource_uri=UNKNOWN), property_dependencies={"resourceUri": (urn(rules.CLUSTER, "c"),)}
    )
    assert [f.outcome for f in audit(other)] == [Outcome.VIOLATION]
    assert [f.outcome for f in audit(other, diagnostic_setting())] == []


def test_audit_logging_of_a_vault_outside_the_stack_is_what_the_stack_declares() -> None:
    # Bring your own key: the pack cannot see the owner's diagnostic settings; the stack declares them on the
    # cluster (kms-aks:existingKey.auditLogging), and undeclared or false is a finding at the policy's level.
    def declared(value: Any) -> list[Outcome]:
        props = {**cluster_props(), "tags": {} if value is None else {"kms-aks-existing-vault-audit-logging": value}}
        return [f.outcome for f in rules.check_vault_audit_logging(stack(cluster(props), identity()))]

    assert declared("true") == [Outcome.NOT_APPLICABLE]
    assert declared(None) == [Outcome.VIOLATION]
    assert declared("false") == [Outcome.VIOLATION]
    assert declared(UNKNOWN) == [Outcome.UNDECIDED]
    unresolved = cluster(cluster_props(keyId=UNKNOWN), key_dependency=False)
    assert [f.outcome for f in rules.check_vault_audit_logging(stack(unresolved, vault()))] == [Outcome.UNDECIDED]


# ------------------------------------------------------------------------------------------- type tokens


@pytest.mark.parametrize(
    ("token", "plain"),
    [
        ("azure-native:containerservice:ManagedCluster", "azure-native:containerservice:ManagedCluster"),
        ("azure-native:containerservice/v20240801:ManagedCluster", "azure-native:containerservice:ManagedCluster"),
        (
            "azure-native_keyvault_v20230701:keyvault/v20230701:Key",
            "azure-native:keyvault:Key",
        ),
        ("azure-native_keyvault_v20230701:keyvault:Vault", "azure-native:keyvault:Vault"),
        ("azure-native:network/v20240501:PrivateEndpoint", "azure-native:network:PrivateEndpoint"),
        ("kubernetes:core/v1:Secret", "kubernetes:core/v1:Secret"),
        ("azure-native:containerservice/latest:ManagedCluster", None),  # an unknown form of a KMS type
        ("azure-native:keyvault:key", None),
    ],
)
def test_plain_type_reads_every_form(token: str, plain: str | None) -> None:
    assert rules.plain_type(token) == plain
    assert bool(rules.check_recognised_type(token)) is (plain is None)


def test_the_refusal_says_what_is_wrong_what_is_allowed_and_how_to_fix_it() -> None:
    [finding] = rules.check_recognised_type("azure-native_containerservice_v20240801:keyvault:Vault")
    assert finding.outcome is Outcome.VIOLATION
    assert "'azure-native_containerservice_v20240801:keyvault:Vault'" in finding.message
    assert "looks like a Vault (azure-native:keyvault:Vault)" in finding.message
    assert "versioned module `azure-native:<module>/<version>:<Name>`" in finding.message
    assert "In code: declare it with the azure-native SDK" in finding.message
    assert "pulumi package add azure-native keyvault <version>" in finding.message


def test_a_resource_is_labelled_with_the_token_it_was_declared_with() -> None:
    declared = dataclasses.replace(vault(), token="azure-native:keyvault/v20230701:Vault")
    assert declared.label == 'azure-native:keyvault/v20230701:Vault "vault"'
    assert vault().label == 'azure-native:keyvault:Vault "vault"'
