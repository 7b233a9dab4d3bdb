"""aks-kms-identity-grant: the cluster's identity holds encrypt + decrypt on the KMS key (an access policy or a
role assignment that fits the vault's permission model), and the cluster waits for that grant.

The grant checks (`role_grants`) also serve aks-kms-no-private-link's Key Vault Contributor requirement.
"""

from __future__ import annotations

from kms_rules.model import (
    ACCESS_POLICY,
    KEY_VAULT_CRYPTO_USER,
    KMS_CRYPTO_ROLES,
    KMS_KEY_OPERATIONS,
    ROLE_ASSIGNMENT,
    ClusterKms,
    Finding,
    Res,
    StackIndex,
    arm_segments,
    as_list,
    could_not_decide,
    dig,
    grant_principal,
    how_to_fix,
    identity_type_of,
    is_unknown,
    is_user_assigned,
    key_name_of,
    known_lower,
    known_text,
    vault_name_of_resource_id,
    violation,
)


def check_identity_grant(index: StackIndex) -> list[Finding]:
    """The cluster's identity holds encrypt + decrypt on the KMS key or vault, and the cluster waits for that grant."""
    findings: list[Finding] = []
    for kms in index.kms_clusters:
        cluster = kms.cluster
        identity_type = identity_type_of(cluster)
        if is_unknown(identity_type):
            findings.append(
                could_not_decide(f"{cluster.label}: identity.type is not known during preview.", cluster.urn)
            )
            continue
        if not is_user_assigned(identity_type):
            continue  # aks-kms-user-assigned-identity reports it; there is no identity to grant before the cluster
        findings.extend(check_grant_scopes(kms))
        if kms.key_unresolved:
            findings.append(
                could_not_decide(
                    f"{cluster.label}: keyId is not known during preview and does not depend on a Key of this stack, "
                    "so the key its identity needs a grant on cannot be decided.",
                    cluster.urn,
                )
            )
            continue
        grants, reasons, undecided = _kms_grants(kms)
        if not grants:
            if undecided:
                findings.append(could_not_decide(undecided, cluster.urn))
                continue
            why = f" ({'; '.join(reasons)})" if reasons else ""
            findings.append(
                violation(
                    f"{cluster.label}: {kms.identity_label} has no encrypt + decrypt grant on the KMS key in "
                    f"{kms.vault_label}{why}. AKS checks it while creating the cluster and fails with "
                    "AzureKeyVaultKmsValidateIdentityPermissionCustomerError."
                    + how_to_fix(
                        None,
                        "KmsIdentity grants it for kms-aks:keyVault.permissionModel accessPolicy or rbac; by hand add "
                        'a keyvault.AccessPolicy for the identity\'s principalId with key permissions ["encrypt", '
                        '"decrypt"] (vault in access-policy mode), or an authorization.RoleAssignment of "Key Vault '
                        f'Crypto User" ({KEY_VAULT_CRYPTO_USER}) with principalType "ServicePrincipal" at the key\'s '
                        "scope (vault in RBAC mode)",
                    ),
                    cluster.urn,
                )
            )
            continue
        if not index.depends_on(cluster.urn, {g.urn for g in grants}):
            names = ", ".join(g.label for g in grants)
            findings.append(
                violation(
                    f"{cluster.label} does not depend on {names}: without the dependency the cluster can be created "
                    "before the grant exists (or has propagated), and AKS fails with "
                    "AzureKeyVaultKmsValidateIdentityPermissionCustomerError."
                    + how_to_fix(
                        None,
                        "KmsAksCluster waits for KmsIdentity's grants; by hand add the grant to the cluster's "
                        "depends_on (pulumi.ResourceOptions(depends_on=[grant]))",
                    ),
                    cluster.urn,
                )
            )
    return findings


def _candidate_grants(kms: ClusterKms) -> list[Res]:
    found: dict[str, Res] = {}
    for principal in kms.principals:
        for grant in kms.index.grants_by_principal.get(principal, []):
            found[grant.urn] = grant
    for identity in kms.identities:
        for grant in kms.index.grants_by_identity_urn.get(identity.urn, []):
            found[grant.urn] = grant
    return list(found.values())


def _vault_rbac_mode(kms: ClusterKms) -> bool | None:
    """True for an RBAC vault, False for access-policy mode, None when unknown or not in the stack."""
    if kms.vault is None:
        return None
    rbac = dig(kms.vault.props, "properties", "enableRbacAuthorization")
    if is_unknown(rbac):
        return None
    return rbac is True


def _kms_grants(kms: ClusterKms) -> tuple[list[Res], list[str], str | None]:
    """(grants that give the identity encrypt + decrypt on the KMS key, why others do not, undecided message)."""
    rbac = _vault_rbac_mode(kms)
    grants: list[Res] = []
    reasons: list[str] = []
    undecided: str | None = None
    for grant in _candidate_grants(kms):
        if grant.type == ACCESS_POLICY:
            verdict = _access_policy_verdict(grant, kms, rbac)
        else:
            verdict = _role_assignment_verdict(grant, kms, rbac, KMS_CRYPTO_ROLES, key_scope_ok=True)
        if verdict is True:
            grants.append(grant)
        elif verdict is None:
            undecided = (
                f"{grant.label}: whether it grants the KMS key to the cluster's identity is not known during preview."
            )
        else:
            reasons.append(verdict)
    if not grants and undecided is None and not kms.identities and not kms.principals:
        refs, _ = kms.identity_refs
        if any(is_unknown(r) for r in refs):
            undecided = (
                f"{kms.cluster.label}: its identity is not known during preview and does not depend on a "
                "user-assigned identity of this stack."
            )
    return grants, reasons, undecided


def _other_principal(grant: Res, kms: ClusterKms) -> str | None:
    """Why the grant is not for the cluster's identity, when both principals are known and differ."""
    principal = grant_principal(grant)
    if principal is None or not kms.principals or principal in kms.principals:
        return None
    return f"{grant.label} is for principal {principal}, not the cluster identity's {', '.join(sorted(kms.principals))}"


def _access_policy_verdict(grant: Res, kms: ClusterKms, rbac: bool | None) -> bool | str | None:
    other = _other_principal(grant, kms)
    if other:
        return other
    vault_name = known_lower(grant.props.get("vaultName"))
    if vault_name is None:
        on_vault = kms.vault is not None and kms.vault.urn in grant.deps_of("vaultName")
        if not on_vault:
            return None if is_unknown(grant.props.get("vaultName")) else f"{grant.label} names no vault"
    elif kms.vault_name and vault_name != kms.vault_name:
        return f'{grant.label} is on vault "{vault_name}", not on the KMS vault'
    permissions = dig(grant.props, "policy", "permissions", "keys")
    if is_unknown(permissions):
        return None
    listed = {p.lower() for p in as_list(permissions) if known_text(p)}
    if "all" not in listed and not listed >= KMS_KEY_OPERATIONS:
        return f"{grant.label} grants keys {sorted(listed)}, not encrypt and decrypt"
    if rbac is True:
        return f"{grant.label} is an access policy, but {kms.vault_label} uses RBAC, which ignores access policies"
    return True


def _role_assignment_verdict(
    grant: Res, kms: ClusterKms, rbac: bool | None, roles: frozenset[str] | set[str], *, key_scope_ok: bool
) -> bool | str | None:
    """True when the role assignment gives the cluster's identity one of `roles` over the KMS key (or, without
    `key_scope_ok`, over its vault); else why not, or None when that is not known during preview.

    `rbac` is the vault's permission model: a vault in access-policy mode ignores data-plane role assignments.
    """
    other = _other_principal(grant, kms)
    if other:
        return other
    role = grant.props.get("roleDefinitionId")
    if is_unknown(role):
        return None
    role_guid = (known_text(role) or "").rstrip("/").rsplit("/", 1)[-1].lower()
    if role_guid not in roles:
        return f"{grant.label} assigns role {role_guid or 'none'}, not one that carries the needed permissions"
    principal_type = grant.props.get("principalType")
    if is_unknown(principal_type):
        return None
    if known_lower(principal_type) != "serviceprincipal":
        return (
            f'{grant.label} has principalType "{principal_type}"; a managed identity is a "ServicePrincipal" (without '
            "it, ARM may not find a just-created identity)"
        )
    scope_ok = _scope_covers(grant, kms, key_scope_ok=key_scope_ok)
    if scope_ok is None:
        return None
    if not scope_ok:
        return f"{grant.label} is scoped to {grant.props.get('scope')}, which does not cover the KMS key"
    if rbac is False and key_scope_ok:
        return (
            f"{grant.label} is an RBAC role, but {kms.vault_label} uses access policies, which ignore data-plane roles"
        )
    return True


def _scope_covers(grant: Res, kms: ClusterKms, *, key_scope_ok: bool) -> bool | None:
    """Whether the grant's scope contains the KMS key (or, without `key_scope_ok`, its vault); None when that
    cannot be decided from what the preview shows (`scope_verdict` says why)."""
    covers, _ = scope_verdict(grant, kms, key_scope_ok=key_scope_ok)
    return covers


def stack_subscription(kms: ClusterKms) -> str | None:
    """The subscription that holds the KMS vault, as far as the stack shows it (lower case), else None.

    The vault's ARM id when known (a deployed stack, or a private cluster's keyVaultResourceId). For a vault this
    stack creates, otherwise the one subscription every role definition id of the stack names: the program builds
    them from the deploying client's subscription (authorization.get_client_config), the one it creates the vault
    in; two different subscriptions there leave it unknown. A vault outside the stack (bring your own key) may be in
    any subscription: unknown unless its id is shown.
    """
    private_id = arm_segments(kms.settings.get("keyVaultResourceId")).get("subscriptions")
    if private_id:
        return private_id.lower()
    if kms.vault is None:
        return None
    vault_id = arm_segments(kms.vault.props.get("id")).get("subscriptions")
    if vault_id:
        return vault_id.lower()
    named = {
        sub.lower()
        for grant in kms.index.by_type[ROLE_ASSIGNMENT]
        for sub in [arm_segments(grant.props.get("roleDefinitionId")).get("subscriptions")]
        if sub
    }
    return named.pop() if len(named) == 1 else None


def _vault_group(kms: ClusterKms) -> str | None:
    """The KMS vault's resource group (lower case) when the stack shows it; None when unknown.

    A created vault's outputs (what a stack policy sees after `up` created it) carry no resourceGroupName: there
    the group named by the vault's id, or by the grant's own scope, stands (the verdict was given on the inputs at
    preview, where an unknown group is refused).
    """
    if kms.vault is not None:
        group = kms.vault.props.get("resourceGroupName")
        if group is None and not is_unknown(group):
            group = arm_segments(kms.vault.props.get("id")).get("resourcegroups") or ""
        return known_lower(group) if group != "" else ""
    return known_lower(arm_segments(kms.settings.get("keyVaultResourceId")).get("resourcegroups"))


def scope_verdict(grant: Res, kms: ClusterKms, *, key_scope_ok: bool) -> tuple[bool | None, str]:
    """(whether the grant's scope contains the KMS key, or its vault without `key_scope_ok`; why).

    Azure RBAC scopes are a parent-child hierarchy, management group > subscription > resource group > resource,
    and a role assigned at a scope applies to everything below it (learn.microsoft.com/azure/role-based-access-
    control/scope-overview). So a scope contains the key when it is the key, its vault, the vault's resource group,
    the vault's subscription, or a management group. A management group's members are not visible in a stack: it
    is taken to contain the key (Azure applies it to every subscription below it). None when the scope, or what
    it must be compared with, is not known at preview.
    """
    scope = grant.props.get("scope")
    if is_unknown(scope):
        targets = {k.urn for k in kms.keys} if key_scope_ok else set()
        if kms.vault is not None:
            targets.add(kms.vault.urn)
        if targets & set(grant.deps_of("scope")):
            return True, "the scope is taken from the KMS key or vault"
        return None, "its scope is not known at preview and is not taken from the KMS key or vault"
    segments = arm_segments(scope)
    text = (known_text(scope) or "").rstrip("/").lower()
    if text.startswith("/providers/microsoft.management/managementgroups/"):
        return True, "a management group contains every subscription below it"
    if not segments or "subscriptions" not in segments:
        return False, f"scope {scope!r} is not a subscription, resource group, resource or management group"
    subscription, group = stack_subscription(kms), segments.get("resourcegroups")
    vault_group = _vault_group(kms)
    if subscription is not None and segments["subscriptions"].lower() != subscription:
        return False, (
            f"scope {scope} is in subscription {segments['subscriptions']}, but the KMS vault is in subscription "
            f"{subscription}"
        )
    if group is not None and vault_group and group.lower() != vault_group:
        return False, f"scope {scope} is resource group {group}, but the KMS vault is in resource group {vault_group}"
    if "providers" in segments:
        # A vault's name is unique in Azure (its DNS name), so a resource scope naming it is the vault or below it.
        if kms.vault_name is None or vault_name_of_resource_id(scope) != kms.vault_name:
            return False, f"scope {scope} is another resource, not the KMS vault {kms.vault_name} or its key"
        key = segments.get("keys")
        if key is None:
            return True, "the vault contains the key"
        if not key_scope_ok:
            return False, f"scope {scope} is a key, not the vault"
        key_names = {key_name_of(k) for k in kms.keys}
        if kms.key_ref is not None:
            key_names.add(kms.key_ref.name)
        if key.lower() in key_names:
            return True, "the scope is the key"
        return False, f"scope {scope} is key {key}, not the KMS key"
    if subscription is None:
        return None, (
            f"scope {scope} names subscription {segments['subscriptions']}, and which subscription holds the KMS "
            "vault is not known at preview"
        )
    if group is None:
        return True, "the vault's subscription contains it"
    if vault_group is None:
        return None, (
            f"scope {scope} names resource group {group}, and the KMS vault's resource group is not known at preview"
        )
    return True, "the vault's resource group contains it"


SCOPE_FIX = (
    "Scope it where it contains the KMS key: the key (scope=key.id), the vault, its resource group, its "
    "subscription, or a management group above it"
)


def check_grant_scopes(kms: ClusterKms) -> list[Finding]:
    """Refuses a key-access role assignment for the KMS identity whose scope does not contain the KMS key, or
    cannot be shown to at preview: Azure does not honour it for the key, whatever it looks like in the stack."""
    findings: list[Finding] = []
    for grant in _candidate_grants(kms):
        if grant.type != ROLE_ASSIGNMENT or _other_principal(grant, kms):
            continue
        role = known_text(grant.props.get("roleDefinitionId"))
        role_guid = (role or "").rstrip("/").rsplit("/", 1)[-1].lower()
        if role is not None and role_guid not in KMS_CRYPTO_ROLES:
            continue
        covers, why = scope_verdict(grant, kms, key_scope_ok=True)
        if covers is True:
            continue
        if covers is False:
            findings.append(
                violation(
                    f"{grant.label} gives the KMS identity a key-access role that Azure does not honour for the KMS "
                    f"key: {why}. {SCOPE_FIX}.",
                    grant.urn,
                )
            )
        else:
            # Refused by the pack as every undecided finding is (nothing mandatory is decided after the preview).
            findings.append(
                could_not_decide(
                    f"{grant.label}: whether its scope contains the KMS key cannot be decided at preview ({why}). "
                    f"{SCOPE_FIX}, with the scope taken from the Key or Vault resource (scope=key.id, vault.id) or "
                    "written with literal subscription, resource group and vault names.",
                    grant.urn,
                )
            )
    return findings


def role_grants(kms: ClusterKms, roles: set[str], *, key_scope_ok: bool) -> tuple[list[Res], str | None]:
    grants, undecided = [], None
    for grant in _candidate_grants(kms):
        if grant.type != ROLE_ASSIGNMENT:
            continue
        verdict = _role_assignment_verdict(grant, kms, None, roles, key_scope_ok=key_scope_ok)
        if verdict is True:
            grants.append(grant)
        elif verdict is None:
            undecided = (
                f"{grant.label}: whether it grants Key Vault Contributor on the KMS vault is not known during preview."
            )
    return grants, undecided
