"""aks-kms-key-vault-fit: the KMS key is an enabled RSA key that can encrypt and decrypt, in a vault with soft delete
and purge protection that a public KMS cluster can reach (and HSM-backed with requireHsm).

A stack rule: it takes the indexed stack and the policy's config, and returns findings with the URN they are about.
"""

from __future__ import annotations

from datetime import UTC, datetime

from azure_facts import EXISTING_KEY_TYPE_TAG, EXISTING_VAULT_PURGE_PROTECTION_TAG, EXISTING_VAULT_SOFT_DELETE_DAYS_TAG
from azure_facts.key_validity import (
    EXPIRED,
    NOT_YET_VALID,
    encrypt_blockers,
    rotation_triggers,
    unix_date,
)
from kms_rules.model import (
    DEFAULT_RSA_KEY_SIZE,
    HSM_KEY_TYPE,
    KMS_KEY_OPERATIONS,
    KMS_KEY_TYPES,
    MIN_KEY_SIZE,
    ClusterKms,
    Finding,
    Res,
    StackIndex,
    as_list,
    could_not_decide,
    dedupe,
    dig,
    how_to_fix,
    is_unknown,
    key_property,
    known_lower,
    known_text,
    violation,
)


def check_key_vault_fit(
    index: StackIndex, *, require_hsm: bool = False, min_key_size: int = MIN_KEY_SIZE
) -> list[Finding]:
    """The KMS key is an enabled RSA key of at least `min_key_size` bits with encrypt + decrypt, in a vault with
    soft delete and purge protection; with `require_hsm`, an RSA-HSM key in a premium vault."""
    findings: list[Finding] = []
    for kms in index.kms_clusters:
        if kms.key_unresolved:
            findings.append(
                could_not_decide(
                    f"{kms.cluster.label}: keyId is not known during preview and does not depend on a Key of this "
                    "stack, so the key cannot be checked.",
                    kms.cluster.urn,
                )
            )
            continue
        for key in kms.keys:
            findings.extend(_key_fit(key, kms, require_hsm, min_key_size))
        if kms.vault is not None:
            findings.extend(_vault_fit(kms.vault, kms, require_hsm))
        if not kms.keys and kms.vault is None and kms.key_ref is not None:
            findings.extend(_outside_key_fit(kms, require_hsm))
    return dedupe(findings)


DECLARE = (
    "Declare the key's properties in Pulumi.<stack>.yaml under kms-aks:existingKey (keyType: RSA-HSM, "
    "purgeProtection: true, softDeleteRetentionDays: <7-90>) after checking them on the key "
    "(`az keyvault key show --id <keyId> --query key.kty`, `az keyvault show --name <vault> --query "
    'properties.enablePurgeProtection`); docs/configuration.md, "Bring your own key"'
)


def _outside_key_fit(kms: ClusterKms, require_hsm: bool) -> list[Finding]:
    """A key from outside the stack (bring your own key) is judged by the properties the stack declares for it
    (kms-aks:existingKey, carried on the cluster as tags). Where the stack requires an HSM key, undeclared is refused:
    the guarantee cannot be shown otherwise."""
    tags = dig(kms.cluster.props, "tags")
    of = f"{kms.cluster.label}: its key {kms.key_ref.name} in vault {kms.key_ref.vault} (outside this stack)"
    if is_unknown(tags):
        return [
            could_not_decide(
                f"{of}: the cluster's tags, which carry the key's declared properties, are not known.", kms.cluster.urn
            )
        ]
    tags = tags if isinstance(tags, dict) else {}
    kty, purge = tags.get(EXISTING_KEY_TYPE_TAG), tags.get(EXISTING_VAULT_PURGE_PROTECTION_TAG)
    days = tags.get(EXISTING_VAULT_SOFT_DELETE_DAYS_TAG)
    findings: list[Finding] = []
    for name, value in ((EXISTING_KEY_TYPE_TAG, kty), (EXISTING_VAULT_PURGE_PROTECTION_TAG, purge)):
        if is_unknown(value):
            findings.append(could_not_decide(f"{of}: the declared {name} is not known.", kms.cluster.urn))
    if findings:
        return findings
    if kty is None and purge is None:
        if require_hsm:
            findings.append(
                violation(
                    f"{of} has no declared key type or purge protection, and this stack requires an HSM-protected "
                    f"key (requireHsm) in a purge-protected vault: the pack cannot see the key. {DECLARE}.",
                    kms.cluster.urn,
                )
            )
        return findings
    if kty is None or known_text(kty) is None or kty.upper() not in KMS_KEY_TYPES:
        findings.append(
            violation(f'{of} is declared with key type "{kty}"; KMS needs RSA or RSA-HSM. {DECLARE}.', kms.cluster.urn)
        )
    elif require_hsm and kty.upper() != HSM_KEY_TYPE:
        findings.append(
            violation(
                f'{of} is declared with key type "{kty}", and this stack requires an HSM-protected key (requireHsm): '
                "bring an RSA-HSM key (from a premium vault or a Managed HSM) and declare "
                "kms-aks:existingKey.keyType: RSA-HSM.",
                kms.cluster.urn,
            )
        )
    if known_lower(purge) != "true":
        findings.append(
            violation(
                f'{of} is declared with purgeProtection "{purge}": a KMS key\'s vault must have purge protection '
                f"(Azure Policy 0b60c0b2-2dc2-4e1c-b5c9-abbed971de53). {DECLARE}.",
                kms.cluster.urn,
            )
        )
    if days is not None and (not str(days).isdigit() or not 7 <= int(str(days)) <= 90):
        findings.append(
            violation(
                f'{of} is declared with softDeleteRetentionDays "{days}"; Key Vault allows 7 to 90.', kms.cluster.urn
            )
        )
    return findings


def _key_fit(key: Res, kms: ClusterKms, require_hsm: bool, min_key_size: int) -> list[Finding]:
    findings = []
    of = f"{key.label} (the KMS key of {kms.cluster.label})"
    kty = key_property(key, "kty")
    if is_unknown(kty):
        findings.append(could_not_decide(f"{of}: its key type is not known during preview.", key.urn))
    elif known_text(kty) is None or kty.upper() not in KMS_KEY_TYPES:
        findings.append(
            violation(
                f'{of} has key type "{kty}": AKS KMS wraps its data keys with RSA (EC keys fail).'
                + how_to_fix(
                    "kms-aks:kmsKey.type: RSA (or RSA-HSM, with kms-aks:keyVault.sku: premium)",
                    'set properties.kty to "RSA", or "RSA-HSM" for an HSM-protected key',
                ),
                key.urn,
            )
        )
    elif require_hsm and kty.upper() != HSM_KEY_TYPE:
        findings.append(
            violation(
                f'{of} has key type "{kty}", and this stack requires an HSM-protected key (requireHsm).'
                + how_to_fix(
                    "kms-aks:kmsKey.type: RSA-HSM with kms-aks:keyVault.sku: premium",
                    'set properties.kty to "RSA-HSM" in a premium vault',
                )
                + " On a deployed stack a new type is a new key: roll it out as a planned rotation "
                "(docs/rotation.md).",
                key.urn,
            )
        )
    size = key_property(key, "keySize")
    if is_unknown(size):
        findings.append(could_not_decide(f"{of}: its key size is not known during preview.", key.urn))
    else:
        bits = DEFAULT_RSA_KEY_SIZE if size is None else size
        if not isinstance(bits, int | float) or bits < min_key_size:
            findings.append(
                violation(
                    f"{of} is {size}-bit; KMS needs an RSA key of at least {min_key_size} bits."
                    + how_to_fix(
                        f"kms-aks:kmsKey.size: {max(min_key_size, 2048)} (2048, 3072 or 4096)",
                        f"set properties.keySize to {max(min_key_size, 2048)}, 3072 or 4096",
                    ),
                    key.urn,
                )
            )
    operations = key_property(key, "keyOps")
    if is_unknown(operations):
        findings.append(could_not_decide(f"{of}: its key operations are not known during preview.", key.urn))
    elif operations:  # absent or empty: Key Vault permits every operation of the key type
        listed = {op.lower() for op in as_list(operations) if known_text(op)}
        missing = sorted(KMS_KEY_OPERATIONS - listed)
        if missing:
            findings.append(
                violation(
                    f"{of} does not permit {' and '.join(missing)}: AKS KMS encrypts and decrypts with it."
                    + how_to_fix(
                        None,
                        f"KeyVaultWithKey always permits both; on a raw Key add {missing} to properties.keyOps "
                        '(["encrypt", "decrypt"] is enough)',
                    ),
                    key.urn,
                )
            )
    findings.extend(_key_validity(key, of))
    enabled = dig(key_property(key, "attributes"), "enabled")
    if enabled is False:
        findings.append(
            violation(
                f"{of} is disabled: the cluster cannot decrypt its secrets."
                + how_to_fix(
                    None, "KeyVaultWithKey creates it enabled; on a raw Key set properties.attributes.enabled to true"
                ),
                key.urn,
            )
        )
    return findings


def _vault_fit(vault: Res, kms: ClusterKms, require_hsm: bool) -> list[Finding]:
    findings = []
    of = f"{vault.label} (the vault of the KMS key of {kms.cluster.label})"
    settings = vault.props.get("properties")
    if is_unknown(settings):
        return [could_not_decide(f"{of}: its properties are not known during preview.", vault.urn)]
    soft_delete = dig(settings, "enableSoftDelete")
    purge_protection = dig(settings, "enablePurgeProtection")
    if is_unknown(soft_delete) or is_unknown(purge_protection):
        findings.append(
            could_not_decide(f"{of}: soft delete or purge protection is not known during preview.", vault.urn)
        )
    else:
        if soft_delete is False:
            findings.append(
                violation(
                    f"{of} has soft delete off: a deleted key would be gone for good, and with it every secret in "
                    "etcd."
                    + how_to_fix(
                        None,
                        "KeyVaultWithKey always turns it on; on a raw Vault set properties.enableSoftDelete to true",
                    ),
                    vault.urn,
                )
            )
        if purge_protection is not True:
            findings.append(
                violation(
                    f"{of} has no purge protection: anyone with purge rights could destroy the key, and with it every "
                    "secret in etcd, before its retention period ends."
                    + how_to_fix(
                        None,
                        "KeyVaultWithKey always turns it on; on a raw Vault set properties.enablePurgeProtection to "
                        "true (it cannot be turned off again)",
                    ),
                    vault.urn,
                )
            )
    if require_hsm:
        sku = dig(settings, "sku", "name")
        if is_unknown(sku):
            findings.append(could_not_decide(f"{of}: its SKU is not known during preview.", vault.urn))
        elif known_lower(sku) != "premium":
            findings.append(
                violation(
                    f'{of} has SKU "{sku}"; HSM-protected keys (requireHsm) need a premium vault.'
                    + how_to_fix("kms-aks:keyVault.sku: premium", 'set properties.sku.name to "premium"'),
                    vault.urn,
                )
            )
    default_action = dig(settings, "networkAcls", "defaultAction")
    if known_lower(default_action) == "deny" and not kms.is_private:
        findings.append(
            violation(
                f'{of} has networkAcls.defaultAction "Deny" ("selected networks"), which AKS KMS does not support '
                "with keyVaultNetworkAccess Public."
                + how_to_fix(
                    "kms-aks:keyVaultNetworkAccess: Public with no firewall (the default)",
                    'set properties.networkAcls.defaultAction to "Allow"',
                ),
                vault.urn,
            )
        )
    return findings


def _key_validity(key: Res, of: str) -> list[Finding]:
    """A key that cannot encrypt today, or on the day its first rotation is due (azure_facts.key_validity, the
    implementation `kms-aks rotate-check` shares)."""
    attributes = key_property(key, "attributes")
    expires, not_before = dig(attributes, "expires"), dig(attributes, "notBefore")
    if is_unknown(expires) or is_unknown(not_before):
        return [could_not_decide(f"{of}: its validity dates are not known during preview.", key.urn)]
    today = datetime.now(tz=UTC).date()
    after, before = rotation_triggers(key_property(key, "rotationPolicy"))
    created = unix_date(dig(attributes, "created")) or today
    findings = []
    for blocker in encrypt_blockers(
        as_of=today,
        expires=unix_date(expires),
        not_before=unix_date(not_before),
        created=created,
        rotate_after_days=after,
        rotate_before_expiry_days=before,
    ):
        if blocker.code == EXPIRED:
            why = f"expired on {blocker.day}: Key Vault refuses every operation with it"
        elif blocker.code == NOT_YET_VALID:
            why = f"is not valid until {blocker.day} (notBefore): Key Vault refuses every operation before it"
        else:
            why = (
                f"expires on {blocker.day}, no later than its first automatic rotation on {blocker.first_rotation}:"
                " the version the cluster uses expires before its successor exists"
            )
        findings.append(
            violation(
                f"{of} {why}, so the cluster could neither encrypt nor decrypt its Secrets."
                + how_to_fix(
                    "kms-aks:kmsKey.expiresOn later than the first rotation (or unset)",
                    "set properties.attributes.expires after the first rotation and notBefore in the past (or "
                    "leave them out)",
                ),
                key.urn,
            )
        )
    return findings
