"""The kms-aks policies as CrossGuard policy objects, adapting the SDK's arguments to the rules in `kms_rules`.

Importing this module builds the policy objects and nothing else: the analyzer server starts only when
`__main__.py` constructs the `PolicyPack`.

Why the split between resource and stack policies: `Analyze` sees one resource's inputs and nothing of the
graph, so only checks of one resource on its own (a cluster's properties, any resource's type token) are resource
policies. Everything that relates the cluster to its key, vault, identity, grants or endpoints, or that needs
dependencies, is a stack policy. The pack has as many stack policies as there are separately configurable
concerns, and no more; they share one conversion of the stack per call (shared_stack_view.py; docs/policies.md,
Performance).

Every policy compares plain types (`kms_rules.plain_type`): a resource declared under a versioned module or a
parameterized package is judged as the plain type, and an unknown form of a KMS-relevant type is refused by
aks-kms-recognised-types.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import kms_rules as rules
from kms_rules import Finding, Outcome, StackIndex
from kms_rules.closure import check_closure, closure_records
from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

# Not re-exported by pulumi_policy's package: reading an unknown value through the SDK's proxies raises it.
from pulumi_policy.proxy import UnknownValueError

from azure_facts.kms_closure import CLOSURE_CANDIDATE_TYPES
from azure_facts.kms_closure import classify as closure_classify

PACK_NAME = "kms-aks"

# pulumi_policy rebuilds every resource of the stack, as nested dicts and proxies, once per stack policy.
# With the default thresholds (700, 10, 10) the cyclic garbage collector keeps rescanning those live
# objects: it doubled AnalyzeStack on a 10k-resource stack (7.2 s -> 3.8 s with these; peak memory the
# same, as the SDK's objects are freed by reference counting, not by the collector).
GC_THRESHOLDS = (50_000, 20, 100)
DOCS_URL = "https://learn.microsoft.com/azure/aks/use-kms-etcd-encryption"
# What the parameterized-package tokens are (`pulumi package add azure-native <module> <version>`).
TOKEN_FORMS_URL = (
    "https://www.pulumi.com/registry/packages/azure-native/version-guide/#accessing-any-api-version-via-local-packages"
)
_SOURCE = "AKS KMS etcd encryption (Microsoft, 2022) lists as a limitation"


def tune_garbage_collector() -> None:
    """Sets the analyzer process's garbage collector for the SDK's allocation pattern (see GC_THRESHOLDS).

    Called by __main__.py before the pack starts; importing this module changes nothing."""
    gc.set_threshold(*GC_THRESHOLDS)


# ------------------------------------------------------------------------------------ SDK <-> plain data


def to_plain(value: Any) -> Any:
    """The SDK's unknown-checking proxies as plain dicts and lists, with unknowns kept as sentinel strings.

    Reading a proxy raises on the first unknown value, which would abort a whole stack policy; the rules
    need to see unknowns and decide from the dependency graph instead.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        plain: dict[str, Any] = {}
        for key in value:
            try:
                item = value[key]
            except UnknownValueError as unknown:
                item = unknown.unknown_type_sentinel
            plain[key] = to_plain(item)
        return plain
    if isinstance(value, Sequence):
        items: list[Any] = []
        for position in range(len(value)):
            try:
                item = value[position]
            except UnknownValueError as unknown:
                item = unknown.unknown_type_sentinel
            items.append(to_plain(item))
        return items
    return value


def _res(resource: PolicyResource, plain_type: str) -> rules.Res:
    token = resource.resource_type
    return rules.Res(
        type=plain_type,
        token=token if token != plain_type else "",
        urn=resource.urn,
        props=to_plain(resource.props),
        name=resource.name,
        protect=bool(resource.opts.protect),
        dependencies=tuple(d.urn for d in resource.dependencies),
        property_dependencies={k: tuple(d.urn for d in v) for k, v in resource.property_dependencies.items()},
    )


def build_index(resources: Sequence[PolicyResource]) -> StackIndex:
    """Indexes the stack in one pass; converts the properties of the resource types the rules read only.

    Resources are indexed and counted by their plain type, whatever token form declared them; one whose token is an
    unknown form of a KMS-relevant type is left out of the index (counted under its token), and
    aks-kms-recognised-types refuses it.
    """
    counts: dict[str, int] = {}
    relevant: list[rules.Res] = []
    by_urn: dict[str, PolicyResource] = {}
    relevant_types = rules.RELEVANT_TYPES
    plain_type = rules.plain_type
    for resource in resources:
        resource_type = plain_type(resource.resource_type) or resource.resource_type
        counts[resource_type] = counts.get(resource_type, 0) + 1
        by_urn[resource.urn] = resource
        if resource_type in relevant_types:
            relevant.append(_res(resource, resource_type))

    def dependencies_of(urn: str) -> list[str]:
        resource = by_urn.get(urn)
        return [d.urn for d in resource.dependencies] if resource is not None else []

    return StackIndex(relevant, counts, dependencies_of)


def stack_index(resources: Sequence[PolicyResource]) -> StackIndex:
    """`build_index(resources)`, built once per AnalyzeStack call for all stack policies when the resources come
    with a place to keep it (shared_stack_view.StackView; the rules only read the index)."""
    shared = getattr(resources, "shared", None)
    if not isinstance(shared, dict):
        return build_index(resources)
    if "index" not in shared:
        shared["index"] = build_index(resources)
    return shared["index"]


# How to make a value the pack needs known at preview (docs/policies.md, "Decided at preview").
MAKE_IT_KNOWN = (
    "The pack decides at preview: during `pulumi up` a stack policy runs only after the resources exist "
    "(pulumi/pulumi#3366), so a mandatory rule refuses what it cannot see rather than decide it later. Make the value "
    "known at preview: literal names for the resource group and the vault (kms-aks:resourceGroupName, "
    "kms-aks:keyVault.name, passed as strings, not read from another resource's outputs), the permission model from "
    "config (kms-aks:keyVault.permissionModel or existingKey.permissionModel), a keyId taken from this stack's Key "
    "(key_uri_with_version) or pinned in pinnedKeyIds, grants scoped with the Key's or Vault's id."
)


def _refused_at_preview(message: str) -> str:
    return f"cannot be decided at preview, so it is refused: {message} {MAKE_IT_KNOWN}"


def _report(findings: Sequence[Finding], report_violation: ReportViolation, not_applicable: Callable[[str], None]):
    """Reports violations, and refuses what could not be decided (a violation at the policy's enforcement level:
    nothing mandatory is left to be decided after the preview); marks the policy not applicable when that is all
    there is to say."""
    violations = [f for f in findings if f.outcome is Outcome.VIOLATION]
    for finding in violations:
        report_violation(finding.message, finding.urn)
    undecided = [f for f in findings if f.outcome is Outcome.UNDECIDED]
    for finding in undecided:
        report_violation(_refused_at_preview(finding.message), finding.urn)
    reasons = [f.message for f in findings if f.outcome is Outcome.NOT_APPLICABLE]
    if reasons and not violations and not undecided:
        not_applicable(" ".join(dict.fromkeys(reasons)))


# ---------------------------------------------------------------------------------------------- config


def _config_bool(config: Mapping[str, Any], name: str, default: bool) -> bool:
    value = config.get(name, default)
    if not isinstance(value, bool):
        raise ValueError(f"policy config {name} must be true or false, not {value!r}")
    return value


def _config_int(config: Mapping[str, Any], name: str, default: int, minimum: int) -> int:
    value = config.get(name, default)
    # Config arrives as a protobuf Struct, where every number is a float.
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) or value < minimum:
        raise ValueError(f"policy config {name} must be a whole number of at least {minimum}, not {value!r}")
    return int(value)


def _config_strings(config: Mapping[str, Any], name: str) -> list[str]:
    value = config.get(name, [])
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"policy config {name} must be a list of strings, not {value!r}")
    return list(value)


# ------------------------------------------------------------------------------------------- adapters


def _resource_validation(
    check: Callable[[Mapping[str, Any], Mapping[str, Any]], list[Finding]],
) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if rules.plain_type(args.resource_type) != rules.CLUSTER:
            return
        findings = check(to_plain(args.props), args.get_config())
        _report(findings, report_violation, args.not_applicable)

    return validate


def _stack_validation(
    check: Callable[[StackIndex, Mapping[str, Any]], list[Finding]], *, needs_kms_cluster: bool = True
) -> Callable[[StackValidationArgs, ReportViolation], None]:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        # Config is read before the stack so that a bad config fails loudly even on an empty stack.
        config = args.get_config()
        index = stack_index(args.resources)
        if needs_kms_cluster and not index.kms_clusters:
            unread = sorted({r.resource_type for r in args.resources if rules.plain_type(r.resource_type) is None})
            refused = f" (aks-kms-recognised-types refuses {', '.join(unread)})" if unread else ""
            args.not_applicable(f"no ManagedCluster with KMS enabled in this stack{refused}")
        findings = check(index, config)
        _report(findings, report_violation, args.not_applicable)

    return validate


def _closure_candidate(token: str) -> bool:
    """Whether a resource could be a closure member or stand-in: only those have their properties converted."""
    canonical, stand_in = closure_classify(token)
    return stand_in is not None or canonical in CLOSURE_CANDIDATE_TYPES or token.startswith("azure:")


def _closure_validation(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    # The closure is computed once per AnalyzeStack call of this policy, in one pass over the stack.
    candidates = [r for r in args.resources if _closure_candidate(r.resource_type)]
    records = closure_records((r.resource_type, r.urn, to_plain(r.props)) for r in candidates)
    principal_sources = {
        r.urn: tuple(d.urn for d in r.property_dependencies.get("policy", []))
        for r in candidates
        if rules.plain_type(r.resource_type) == rules.ACCESS_POLICY
    }
    _report(check_closure(records, principal_sources=principal_sources), report_violation, args.not_applicable)


# ------------------------------------------------------------------------------------------- policies

KMS_ENABLED = ResourceValidationPolicy(
    name="aks-kms-enabled",
    display_name="AKS clusters encrypt etcd with KMS",
    description=(
        "Every AKS cluster encrypts its etcd secrets with a customer-managed Key Vault key: "
        "securityProfile.azureKeyVaultKms.enabled is true and keyId is set. "
        f'{_SOURCE} "Disabling KMS"; this blocks it (Azure Policy dbbdc317-9734-4dd8-9074-993b29c69008).'
    ),
    validate=_resource_validation(rules.check_kms_enabled),
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.CRITICAL,
    url=DOCS_URL,
)

USER_ASSIGNED_IDENTITY = ResourceValidationPolicy(
    name="aks-kms-user-assigned-identity",
    display_name="AKS KMS clusters use one user-assigned identity",
    description=(
        "The cluster identity is exactly one user-assigned managed identity. "
        f'{_SOURCE} "System-Assigned Managed Identity": it exists only once the cluster does, too late to hold '
        "the key permission AKS checks while creating the cluster."
    ),
    validate=_resource_validation(rules.check_user_assigned_identity),
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    url=DOCS_URL,
)

KEY_ID_VERSIONED = ResourceValidationPolicy(
    name="aks-kms-key-id-versioned",
    display_name="AKS KMS keyId is a versioned key id",
    description=(
        "securityProfile.azureKeyVaultKms.keyId is a versioned Key Vault key identifier "
        "(https://<vault>.vault.azure.net/keys/<name>/<version>), the only form AKS KMS accepts; a versionless id "
        "would let the key version, and so the key, change underneath the cluster."
    ),
    validate=_resource_validation(rules.check_key_id_versioned),
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    url=DOCS_URL,
)

RECOGNISED_TYPES = ResourceValidationPolicy(
    name="aks-kms-recognised-types",
    display_name="KMS resources declared in a type-token form the pack reads",
    description=(
        "A resource that names a ManagedCluster, Vault, Key, UserAssignedIdentity, RoleAssignment or AccessPolicy "
        "uses a type token the pack understands: the plain azure-native:<module>:<Name>, the versioned module "
        "azure-native:<module>/<version>:<Name>, or a package added with `pulumi package add azure-native <module> "
        "<version>` (azure-native_<module>_<version>:<module>[/<version>]:<Name>). Every other policy judges these "
        "forms as the plain type; a form it cannot read would make them skip the resource, so it is refused."
    ),
    validate=lambda args, report_violation: _report(
        rules.check_recognised_type(args.resource_type), report_violation, args.not_applicable
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.CRITICAL,
    url=TOKEN_FORMS_URL,
)

NO_PRIVATE_LINK = StackValidationPolicy(
    name="aks-kms-no-private-link",
    display_name="AKS KMS key vault without Private Link",
    description=(
        f'{_SOURCE} "Leveraging KeyVault with PrivateLink enabled". Blocks keyVaultNetworkAccess other than Public, '
        "publicNetworkAccess Disabled on the KMS vault, and private endpoints or private endpoint connections to it. "
        "With allowPrivateKeyVault (current AKS), requires instead keyVaultResourceId, API server VNet integration "
        "and a Key Vault Contributor grant for the cluster identity."
    ),
    validate=_stack_validation(
        lambda index, config: rules.check_no_private_link(
            index, allow_private_key_vault=_config_bool(config, "allowPrivateKeyVault", False)
        )
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=PolicyConfigSchema(
        properties={
            "allowPrivateKeyVault": {
                "type": "boolean",
                "default": False,
                "description": "Allow a private KMS vault (current AKS): keyVaultNetworkAccess Private with "
                "keyVaultResourceId, API server VNet integration and a Key Vault Contributor grant.",
            }
        }
    ),
    severity=Severity.HIGH,
    url=DOCS_URL,
)

SECRET_LIMIT = StackValidationPolicy(
    name="aks-kms-secret-limit",
    display_name="At most 2000 Kubernetes Secrets with AKS KMS",
    description=(
        f'{_SOURCE} "Using more than 2000 secrets in a cluster". Counts the stack\'s {rules.SECRET} resources '
        "against maxSecrets; with kmsV2Aware the limit applies only while a KMS cluster runs Kubernetes below 1.27 "
        "(KMS v1)."
    ),
    validate=_stack_validation(
        lambda index, config: rules.check_secret_limit(
            index,
            max_secrets=_config_int(config, "maxSecrets", rules.DEFAULT_MAX_SECRETS, 0),
            kms_v2_aware=_config_bool(config, "kmsV2Aware", False),
        ),
        needs_kms_cluster=False,
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=PolicyConfigSchema(
        properties={
            "maxSecrets": {
                "type": "integer",
                "minimum": 0,
                "default": rules.DEFAULT_MAX_SECRETS,
                "description": "The most Kubernetes Secrets the stack may declare.",
            },
            "kmsV2Aware": {
                "type": "boolean",
                "default": False,
                "description": "Apply the limit only while a KMS cluster in the stack runs Kubernetes below 1.27.",
            },
        }
    ),
    severity=Severity.MEDIUM,
    url=DOCS_URL,
)

KEY_VAULT_FIT = StackValidationPolicy(
    name="aks-kms-key-vault-fit",
    display_name="AKS KMS key and vault fit for KMS",
    description=(
        "The KMS key is an enabled RSA or RSA-HSM key of at least 2048 bits whose operations include encrypt and "
        "decrypt, in a vault with soft delete and purge protection (Azure Policy 0b60c0b2-2dc2-4e1c-b5c9-"
        "abbed971de53) that a public KMS cluster can reach. requireHsm demands an RSA-HSM key in a premium vault "
        "(Azure Policy 587c79fe-dd04-4a5e-9d0b-f89598c7261b)."
    ),
    validate=_stack_validation(
        lambda index, config: rules.check_key_vault_fit(
            index,
            require_hsm=_config_bool(config, "requireHsm", False),
            min_key_size=_config_int(config, "minKeySize", rules.MIN_KEY_SIZE, rules.MIN_KEY_SIZE),
        )
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=PolicyConfigSchema(
        properties={
            "requireHsm": {
                "type": "boolean",
                "default": False,
                "description": "Require an HSM-protected key: key type RSA-HSM in a premium vault.",
            },
            "minKeySize": {
                "type": "integer",
                "minimum": rules.MIN_KEY_SIZE,
                "default": rules.MIN_KEY_SIZE,
                "description": "The smallest RSA key size accepted, in bits.",
            },
        }
    ),
    severity=Severity.HIGH,
    url=DOCS_URL,
)

IDENTITY_GRANT = StackValidationPolicy(
    name="aks-kms-identity-grant",
    display_name="AKS KMS identity granted and waited for",
    description=(
        "The cluster's user-assigned identity has encrypt and decrypt on the KMS key: an access policy (vault in "
        "access-policy mode) or a Key Vault Crypto User role assignment (RBAC mode) in this stack, and the cluster "
        "depends on that grant, because AKS validates it while creating the cluster."
    ),
    validate=_stack_validation(lambda index, config: rules.check_identity_grant(index)),
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    url=DOCS_URL,
)

KEY_SOURCE = StackValidationPolicy(
    name="aks-kms-key-source",
    display_name="AKS KMS keyId from this stack or pinned",
    description=(
        f'{_SOURCE} "Changing of keys". The cluster\'s keyId comes from a Key of this stack (a property dependency) '
        "or equals a key id pinned in pinnedKeyIds, so that a key change is always a reviewed change; the plan guard "
        "blocks the change itself."
    ),
    validate=_stack_validation(
        lambda index, config: rules.check_key_source(index, pinned_key_ids=_config_strings(config, "pinnedKeyIds"))
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=PolicyConfigSchema(
        properties={
            "pinnedKeyIds": {
                "type": "array",
                "items": {"type": "string", "pattern": rules.VERSIONED_KEY_ID_PATTERN},
                "default": [],
                "description": "Versioned key ids a cluster may use without creating the Key in this stack "
                "(bring your own key).",
            }
        }
    ),
    severity=Severity.HIGH,
    url=DOCS_URL,
)

DELETION_PROTECTION = StackValidationPolicy(
    name="aks-kms-deletion-protection",
    display_name="AKS KMS key, vault and identity protected",
    description=(
        f'{_SOURCE} "Changing of keys": deleting the KMS key, its vault or the cluster identity leaves etcd '
        "unreadable. Those resources, when in this stack, have protect set."
    ),
    validate=_stack_validation(lambda index, config: rules.check_deletion_protection(index)),
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.CRITICAL,
    url=DOCS_URL,
)

VAULT_AUDIT_LOGGING = StackValidationPolicy(
    name="aks-kms-vault-audit-logging",
    display_name="AKS KMS vault records its key operations",
    description=(
        "The KMS vault created in this stack has a diagnostic setting (azure-native:monitor:DiagnosticSetting, "
        "resourceUri = the vault) that sends AuditEvent, or the audit or allLogs category group, enabled, to a "
        "workspace, storage account, event hub or partner: every encrypt and decrypt by the KMS identity is then "
        "recorded, and failed key access can raise an alert."
    ),
    validate=_stack_validation(lambda index, config: rules.check_vault_audit_logging(index)),
    # Observability, not a KMS limitation: a warning unless a stack's config makes it mandatory (prod.json does).
    enforcement_level=EnforcementLevel.ADVISORY,
    severity=Severity.MEDIUM,
    url="https://learn.microsoft.com/azure/key-vault/general/logging",
)

KMS_CLOSURE = StackValidationPolicy(
    name="aks-kms-closure",
    display_name="AKS KMS closure judged or refused",
    description=(
        "Everything a cluster's KMS depends on (the KMS closure: cluster, key, vault, identity, every grant that "
        "could give the identity key access, the groups that hold them, what fences the vault), computed by the "
        "same code as the plan guard's, is judged or refused: generic resources, ARM deployments and classic or "
        "unknown-package resources that could stand in for a member, second declarations of one Azure object, "
        "and grants Key Vault does not honour as written (compound identity, another tenant)."
    ),
    validate=_closure_validation,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.CRITICAL,
    url=DOCS_URL,
)

POLICIES = [
    KMS_ENABLED,
    USER_ASSIGNED_IDENTITY,
    KEY_ID_VERSIONED,
    RECOGNISED_TYPES,
    NO_PRIVATE_LINK,
    SECRET_LIMIT,
    KEY_VAULT_FIT,
    IDENTITY_GRANT,
    KEY_SOURCE,
    DELETION_PROTECTION,
    VAULT_AUDIT_LOGGING,
    KMS_CLOSURE,
]
