"""aks-kms-closure: the pack fails closed on the KMS closure (`azure_facts.kms_closure`, the plan guard's too).

A stack rule over the desired state. The closure is computed once per AnalyzeStack, by the same code the plan
guard runs on a preview, and this rule refuses, on it:

- a stand-in whose meaning the pack cannot establish: azure-native's generic `resources:Resource` or an ARM
  template `Deployment` touching Key Vault, AKS, managed identities or authorization; a classic-provider or
  unknown-package cluster (or classic key, vault, grant);
- a second declaration of one Azure object: two Vaults with one vault name (the last PUT wins in Azure, and
  deleting either deletes the vault); two AccessPolicies for one principal on one vault (Key Vault keeps one
  entry per object id: the AccessPolicyEntry docs, "The object ID must be unique for the list of access
  policies"); a closure vault's inline `properties.accessPolicies` beside a separate AccessPolicy on it (every
  vault update replaces the whole list: pulumi/pulumi-azure-native#594, "use stand-alone access policies or
  inline access policies, not both");
- grants Azure does not honour as written: an access policy with `applicationId` (a compound identity: it applies
  only when that application acts for the principal, never to the KMS identity calling alone); an access policy
  whose tenant is not the vault's ("All identities in the array must use the same tenant ID as the key vault's
  tenant ID", AccessPolicyEntry).

Each message says how to express the thing so that it can be judged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from azure_facts.kms_closure import Closure, Resource, compute, dig, unseen
from kms_rules.model import ACCESS_POLICY, VAULT, Finding, violation

RULE = "aks-kms-closure"


def check_closure(
    records: Iterable[Resource],
    closure: Closure | None = None,
    principal_sources: Mapping[str, tuple[str, ...]] | None = None,
) -> list[Finding]:
    """The refusals of `closure` (computed from `records` when not given).

    `principal_sources` maps an AccessPolicy's URN to the resources its `policy` takes values from (its property
    dependencies): at preview a new identity's principal is unknown, and two entries taking it from the same
    identity are one principal.
    """
    records = list(records)
    closure = closure if closure is not None else compute(records)
    findings: list[Finding] = []
    for member in closure.stand_ins():
        findings.append(
            violation(
                f"{member.because}. It could create, change or stand in for what a cluster's KMS depends on, and "
                "the pack cannot judge it, so it is refused. Declare it as the azure-native resource it stands for "
                "(containerservice.ManagedCluster, keyvault.Vault/Key/AccessPolicy, authorization.RoleAssignment).",
                member.urn,
            )
        )
    by_urn: dict[str, Resource] = {}
    for record in records:
        by_urn.setdefault(record.urn, record)
    vaults = [by_urn[u] for u, m in closure.members.items() if m.role == "vault" and u in by_urn]
    policies = [by_urn[u] for u, m in closure.members.items() if m.canonical == ACCESS_POLICY and u in by_urn]
    findings.extend(_second_declarations(vaults, policies, records, principal_sources or {}))
    findings.extend(_unhonoured_grants(vaults, policies))
    return findings


def _name(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) and not unseen(value) else None


def _second_declarations(
    vaults: list[Resource],
    policies: list[Resource],
    records: list[Resource],
    principal_sources: Mapping[str, tuple[str, ...]],
) -> Iterable[Finding]:
    closure_vaults = {_name(dig(v.properties, "vaultName")) for v in vaults} - {None}
    seen: dict[str, str] = {}
    for record in records:
        if record.type.rsplit(":", 1)[-1] != "Vault" or not record.type.startswith("azure-native"):
            continue
        name = _name(dig(record.properties, "vaultName"))
        if name is None or name not in closure_vaults:
            continue
        if name in seen and seen[name] != record.urn:
            yield violation(
                f"vault {name} is declared twice ({seen[name]} and this one). In Azure the last write wins, and "
                "deleting either resource deletes the KMS vault. Declare the vault once; read it elsewhere with "
                "keyvault.get_vault_output.",
                record.urn,
            )
        seen.setdefault(name, record.urn)
    entries: dict[tuple[str, Any], str] = {}
    separate: set[str] = set()
    for policy in policies:
        vault = _name(dig(policy.properties, "vaultName"))
        object_id = dig(policy.properties, "policy", "objectId")
        principal: Any = _name(object_id)
        if principal is None and unseen(object_id) and principal_sources.get(policy.urn):
            principal = ("taken from", tuple(sorted(principal_sources[policy.urn])))
        if vault is None:
            continue
        separate.add(vault)
        if principal is None:
            continue
        if (vault, principal) in entries and entries[(vault, principal)] != policy.urn:
            shown = principal if isinstance(principal, str) else f"(the principal of {', '.join(principal[1])})"
            yield violation(
                f"a second AccessPolicy for principal {shown} on vault {vault} (the first: "
                f"{entries[(vault, principal)]}). Key Vault keeps one entry per object id: the last write wins, "
                "and deleting either resource deletes the entry, the KMS grant with it. Declare one AccessPolicy "
                "per principal and vault, with every permission it needs.",
                policy.urn,
            )
        entries.setdefault((vault, principal), policy.urn)
    for vault in vaults:
        inline = dig(vault.properties, "properties", "accessPolicies")
        name = _name(dig(vault.properties, "vaultName"))
        # A created vault's outputs always list the effective entries, separate ones included: only the declared
        # inputs (preview, where this rule decides) show an inline list.
        created = dig(vault.properties, "properties", "provisioningState") is not None
        if inline is not None and not created and (name is None or name in separate):
            yield violation(
                f"vault {name or vault.urn} declares inline properties.accessPolicies beside separate AccessPolicy "
                "resources: every vault update replaces the whole list and drops the separate entries, the KMS "
                "identity's grant included (pulumi/pulumi-azure-native#594). Leave accessPolicies out of the Vault "
                "and declare every grant as its own keyvault.AccessPolicy.",
                vault.urn,
            )


def _unhonoured_grants(vaults: list[Resource], policies: list[Resource]) -> Iterable[Finding]:
    tenants: dict[str, Any] = {}
    for vault in vaults:
        if (name := _name(dig(vault.properties, "vaultName"))) is not None:
            tenants[name] = dig(vault.properties, "properties", "tenantId")
    for policy in policies:
        application = dig(policy.properties, "policy", "applicationId")
        if application is not None:
            yield violation(
                "this access policy names an applicationId: Key Vault treats it as a compound identity, honoured "
                "only when that application calls on behalf of the principal, so the KMS identity calling alone is "
                "not granted by it. Remove applicationId; grant the identity itself.",
                policy.urn,
            )
        vault = _name(dig(policy.properties, "vaultName"))
        tenant, vault_tenant = dig(policy.properties, "policy", "tenantId"), tenants.get(vault or "")
        if (
            isinstance(tenant, str)
            and isinstance(vault_tenant, str)
            and not unseen(tenant)
            and not unseen(vault_tenant)
            and tenant.lower() != vault_tenant.lower()
        ):
            yield violation(
                f"this access policy's tenant {tenant} is not its vault's tenant {vault_tenant}: Key Vault "
                "authenticates every entry against the vault's tenant, so the grant is never honoured. Use the "
                "vault's tenant id.",
                policy.urn,
            )


def closure_records(resources: Iterable[tuple[str, str, Mapping[str, Any]]]) -> list[Resource]:
    """(type token, URN, properties) of the desired state as closure records."""
    return [Resource(urn=urn, type=token, properties=props) for token, urn, props in resources]


__all__ = ["RULE", "VAULT", "check_closure", "closure_records"]
