"""aks-kms-no-private-link: no Private Link for the KMS vault, or, with allowPrivateKeyVault, what AKS needs for a
private vault (keyVaultResourceId, API server VNet integration, a Key Vault Contributor grant the cluster waits for).

A stack rule: it takes the indexed stack and the policy's config, and returns findings with the URN they are about.
"""

from __future__ import annotations

from typing import Any

from kms_rules.identity_grant import role_grants
from kms_rules.model import (
    KEY_VAULT_CONTRIBUTOR,
    PRIVATE_ENDPOINT,
    ClusterKms,
    Finding,
    StackIndex,
    could_not_decide,
    dedupe,
    dig,
    how_to_fix,
    is_unknown,
    known_lower,
    known_text,
    vault_name_of_resource_id,
    violation,
)


def check_no_private_link(index: StackIndex, *, allow_private_key_vault: bool = False) -> list[Finding]:
    """No Private Link for the KMS vault; with `allow_private_key_vault`, what AKS needs for a private vault."""
    findings: list[Finding] = []
    for kms in index.kms_clusters:
        cluster = kms.cluster
        access = kms.network_access
        vault_resource_id = kms.settings.get("keyVaultResourceId")
        if is_unknown(access):
            findings.append(
                could_not_decide(f"{cluster.label}: keyVaultNetworkAccess is not known during preview.", cluster.urn)
            )
            continue
        public = known_lower(access) == "public"
        if not allow_private_key_vault and not public:
            findings.append(
                violation(
                    f'{cluster.label}: securityProfile.azureKeyVaultKms.keyVaultNetworkAccess is "{access}": a KMS '
                    "key vault behind Private Link is not supported by the AKS KMS integration this stack follows."
                    + how_to_fix(
                        "kms-aks:keyVaultNetworkAccess: Public (and remove kms-aks:network); or, for current AKS "
                        'with a private vault, allow it in policies/config/<stack>.json: {"aks-kms-no-private-link": '
                        '{"allowPrivateKeyVault": true}} and meet its requirements (docs/private-key-vault.md)',
                        'set keyVaultNetworkAccess to "Public" and remove keyVaultResourceId',
                    ),
                    cluster.urn,
                )
            )
        if public and known_text(vault_resource_id):
            findings.append(
                violation(
                    f"{cluster.label}: keyVaultResourceId is set while keyVaultNetworkAccess is Public; AKS takes it "
                    "only for a private vault."
                    + how_to_fix(
                        "kms-aks:keyVaultNetworkAccess: Public (this project then leaves keyVaultResourceId unset)",
                        "remove securityProfile.azureKeyVaultKms.keyVaultResourceId",
                    ),
                    cluster.urn,
                )
            )
        if allow_private_key_vault and kms.is_private:
            findings.extend(_private_vault_requirements(kms, vault_resource_id))

        vault = kms.vault
        if vault is not None:
            network = dig(vault.props, "properties", "publicNetworkAccess")
            if is_unknown(network):
                findings.append(
                    could_not_decide(
                        f"{vault.label}: properties.publicNetworkAccess is not known during preview.", vault.urn
                    )
                )
            elif known_lower(network) == "disabled" and not (allow_private_key_vault and kms.is_private):
                reason = (
                    "AKS reaches a vault with keyVaultNetworkAccess Public over its public endpoint"
                    if allow_private_key_vault
                    else "a KMS key vault reachable only through Private Link is not supported"
                )
                findings.append(
                    violation(
                        f'{vault.label} is the KMS vault of {cluster.label} and has publicNetworkAccess "{network}": '
                        f"{reason}."
                        + how_to_fix(
                            "kms-aks:keyVaultNetworkAccess: Public",
                            'set properties.publicNetworkAccess to "Enabled" on the vault',
                        ),
                        vault.urn,
                    )
                )

        if not allow_private_key_vault:
            links = list(index.private_links_by_vault_name.get(kms.vault_name or "", []))
            if vault is not None:
                links += index.private_links_by_vault_urn.get(vault.urn, [])
            for link in {link.urn: link for link in links}.values():
                what = "private endpoint" if link.type == PRIVATE_ENDPOINT else "private endpoint connection"
                findings.append(
                    violation(
                        f"{link.label} is a {what} to {kms.vault_label}, the KMS vault of {cluster.label}: a KMS key "
                        "vault with Private Link is not supported by the AKS KMS integration this stack follows."
                        + how_to_fix(
                            "kms-aks:keyVaultNetworkAccess: Public; this project never creates such a link, so it "
                            "comes from code added to the stack",
                            "remove it, or use another vault for what needs Private Link",
                        ),
                        link.urn,
                    )
                )
            for link in index.private_links_unresolved:
                findings.append(
                    could_not_decide(
                        f"{link.label}: its target is not known during preview, so whether it is a private link to "
                        f"{kms.vault_label} (the KMS vault) cannot be decided.",
                        link.urn,
                    )
                )
    return dedupe(findings)


def _private_vault_requirements(kms: ClusterKms, vault_resource_id: Any) -> list[Finding]:
    cluster = kms.cluster
    findings = []
    if is_unknown(vault_resource_id):
        pass  # comes from a resource created in this run; its value is checked when known
    elif not known_text(vault_resource_id):
        findings.append(
            violation(
                f"{cluster.label}: keyVaultNetworkAccess is Private but keyVaultResourceId is not set."
                + how_to_fix(
                    None,
                    "KmsAksCluster sets it with kms-aks:keyVaultNetworkAccess: Private; by hand set "
                    "securityProfile.azureKeyVaultKms.keyVaultResourceId to the KMS vault's resource id",
                ),
                cluster.urn,
            )
        )
    else:
        named = vault_name_of_resource_id(vault_resource_id)
        if named is None or (kms.vault_name and named != kms.vault_name):
            findings.append(
                violation(
                    f'{cluster.label}: keyVaultResourceId "{vault_resource_id}" is not the resource id of the vault '
                    f'that holds the KMS key ("{kms.vault_name}"). Set it to that vault\'s resource id.',
                    cluster.urn,
                )
            )
    vnet = dig(cluster.props, "apiServerAccessProfile", "enableVnetIntegration")
    if is_unknown(vnet):
        findings.append(
            could_not_decide(
                f"{cluster.label}: apiServerAccessProfile.enableVnetIntegration is not known.", cluster.urn
            )
        )
    elif vnet is not True:
        findings.append(
            violation(
                f"{cluster.label}: a private KMS key vault needs API server VNet integration (AKS rejects it with "
                '"Vnet integration should be enabled when KeyVault network access is Private").'
                + how_to_fix(
                    "kms-aks:network (vnetAddressSpace, apiServerSubnetPrefix, nodeSubnetPrefix) with "
                    "kms-aks:keyVaultNetworkAccess: Private",
                    "set apiServerAccessProfile.enableVnetIntegration to true (with its subnetId)",
                ),
                cluster.urn,
            )
        )
    grants, undecided = role_grants(kms, {KEY_VAULT_CONTRIBUTOR}, key_scope_ok=False)
    if not grants:
        if undecided:
            findings.append(could_not_decide(undecided, cluster.urn))
        else:
            findings.append(
                violation(
                    f"{cluster.label}: with a private KMS vault, AKS creates the private endpoint itself and needs "
                    f'"Key Vault Contributor" ({KEY_VAULT_CONTRIBUTOR}) on {kms.vault_label} for '
                    f"{kms.identity_label}."
                    + how_to_fix(
                        "kms-aks:keyVaultNetworkAccess: Private with kms-aks:network (KmsIdentity then grants it)",
                        "add an authorization.RoleAssignment with that role at the vault's scope, principalType "
                        '"ServicePrincipal", and make the cluster depend on it',
                    ),
                    cluster.urn,
                )
            )
    elif not kms.index.depends_on(cluster.urn, {g.urn for g in grants}):
        findings.append(
            violation(
                f"{cluster.label} does not depend on {', '.join(g.label for g in grants)}: AKS creates the private "
                "endpoint while creating the cluster and fails if the Key Vault Contributor grant is missing or "
                "still propagating."
                + how_to_fix(
                    None,
                    "KmsAksCluster waits for it with kms-aks:keyVaultNetworkAccess: Private; by hand add the grant "
                    "to the cluster's depends_on (pulumi.ResourceOptions(depends_on=[grant]))",
                ),
                cluster.urn,
            )
        )
    return findings
