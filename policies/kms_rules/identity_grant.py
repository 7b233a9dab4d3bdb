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
    scope = grant.props.get("scope")
    if is_unknown(scope):
        targets = {k.urn for k in kms.keys} if key_scope_ok else set()
        if kms.vault is not None:
            targets.add(kms.vault.urn)
        return True if targets & set(grant.deps_of("scope")) else None
    segments = arm_segments(scope)
    if not segments:
        return False
    if "providers" not in segments:
        # A subscription or resource group scope covers everything in it.
        group = segments.get("resourcegroups")
        vault_group = known_lower(kms.vault.props.get("resourceGroupName")) if kms.vault is not None else None
        return group is None or vault_group is None or group.lower() == vault_group
    if kms.vault_name is None or vault_name_of_resource_id(scope) != kms.vault_name:
        return False
    key = segments.get("keys")
    if key is None:
        return True
    if not key_scope_ok:
        return False
    key_names = {key_name_of(k) for k in kms.keys}
    if kms.key_ref is not None:
        key_names.add(kms.key_ref.name)
    return key.lower() in key_names


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
