"""The rules of the kms-aks policy pack: plain functions over resource properties as the engine passes them.

Nothing here imports Pulumi or a cloud SDK, so the rules can be unit-tested on plain dicts and imported
without side effects. `kms_pack.py` adapts them to the CrossGuard SDK; `__main__.py` only builds the pack.

- `model`: what every rule shares: the type tokens, findings (`Finding`, `Outcome`), property access (`dig`,
  unknowns), Key Vault ids (`parse_key_url`, `arm_segments`), and the stack as a stack rule sees it (`Res`,
  `StackIndex`, `ClusterKms`).
- one module per policy: `kms_enabled`, `user_assigned_identity`, `key_id_versioned` (resource rules, on a
  ManagedCluster's inputs); `recognised_types` (a resource rule, on every resource's type token); `private_link`,
  `secret_limit`, `key_vault_fit`, `identity_grant`, `key_source`, `deletion_protection`, `audit_logging` (stack
  rules, on the indexed stack).

Unknown values (preview) are the engine's sentinel strings. A rule never passes because a value is unknown:
it either decides from the dependency graph (a `keyId` unknown because it comes from a Key created in the
same run) or returns an `UNDECIDED` finding, which the pack reports as "could not decide".

This module re-exports the model and every rule, so `import kms_rules as rules; rules.check_...` reads as before.
"""

from __future__ import annotations

from azure_facts.tokens import plain_type
from kms_rules.audit_logging import (
    AUDIT_CATEGORY_GROUPS,
    AUDIT_EVENT_CATEGORY,
    DIAGNOSTIC_DESTINATIONS,
    MONITORING_CONFIG_KEY,
    check_vault_audit_logging,
)
from kms_rules.deletion_protection import check_deletion_protection
from kms_rules.identity_grant import check_identity_grant
from kms_rules.key_id_versioned import check_key_id_versioned
from kms_rules.key_source import check_key_source, normalize_key_id
from kms_rules.key_vault_fit import check_key_vault_fit
from kms_rules.kms_enabled import check_kms_enabled
from kms_rules.model import (
    ACCESS_POLICY,
    CLUSTER,
    DEFAULT_MAX_SECRETS,
    DEFAULT_RSA_KEY_SIZE,
    DIAGNOSTIC_SETTING,
    HSM_KEY_TYPE,
    IDENTITY,
    KEY,
    KEY_VAULT_CONTRIBUTOR,
    KEY_VAULT_CRYPTO_USER,
    KMS_CRYPTO_ROLES,
    KMS_KEY_OPERATIONS,
    KMS_KEY_TYPES,
    KMS_V2_MIN_VERSION,
    MIN_KEY_SIZE,
    PRIVATE_ENDPOINT,
    PRIVATE_ENDPOINT_CONNECTION,
    RELEVANT_TYPES,
    ROLE_ASSIGNMENT,
    SECRET,
    UNKNOWN_SENTINELS,
    VAULT,
    VERSIONED_KEY_ID_PATTERN,
    ClusterKms,
    Finding,
    KeyRef,
    Outcome,
    Res,
    StackIndex,
    arm_segments,
    dig,
    is_unknown,
    kubernetes_minor,
    parse_key_url,
    vault_name_of_resource_id,
)
from kms_rules.private_link import check_no_private_link
from kms_rules.recognised_types import check_recognised_type
from kms_rules.secret_limit import check_secret_limit
from kms_rules.user_assigned_identity import check_user_assigned_identity

__all__ = [
    "ACCESS_POLICY",
    "AUDIT_CATEGORY_GROUPS",
    "AUDIT_EVENT_CATEGORY",
    "CLUSTER",
    "DEFAULT_MAX_SECRETS",
    "DEFAULT_RSA_KEY_SIZE",
    "DIAGNOSTIC_DESTINATIONS",
    "DIAGNOSTIC_SETTING",
    "HSM_KEY_TYPE",
    "IDENTITY",
    "KEY",
    "KEY_VAULT_CONTRIBUTOR",
    "KEY_VAULT_CRYPTO_USER",
    "KMS_CRYPTO_ROLES",
    "KMS_KEY_OPERATIONS",
    "KMS_KEY_TYPES",
    "KMS_V2_MIN_VERSION",
    "MIN_KEY_SIZE",
    "MONITORING_CONFIG_KEY",
    "PRIVATE_ENDPOINT",
    "PRIVATE_ENDPOINT_CONNECTION",
    "RELEVANT_TYPES",
    "ROLE_ASSIGNMENT",
    "SECRET",
    "UNKNOWN_SENTINELS",
    "VAULT",
    "VERSIONED_KEY_ID_PATTERN",
    "ClusterKms",
    "Finding",
    "KeyRef",
    "Outcome",
    "Res",
    "StackIndex",
    "arm_segments",
    "check_deletion_protection",
    "check_identity_grant",
    "check_key_id_versioned",
    "check_key_source",
    "check_key_vault_fit",
    "check_kms_enabled",
    "check_no_private_link",
    "check_recognised_type",
    "check_secret_limit",
    "check_user_assigned_identity",
    "check_vault_audit_logging",
    "dig",
    "is_unknown",
    "kubernetes_minor",
    "normalize_key_id",
    "parse_key_url",
    "plain_type",
    "vault_name_of_resource_id",
]
