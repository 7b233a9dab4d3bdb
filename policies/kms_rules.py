"""The rules of the kms-aks policy pack: plain functions over resource properties as the engine passes them.

Nothing here imports Pulumi or a cloud SDK, so the rules can be unit-tested on plain dicts and imported
without side effects. `kms_pack.py` adapts them to the CrossGuard SDK; `__main__.py` only builds the pack.

Properties are camelCase, exactly as the engine holds them. A rule must read two shapes of each resource:
- `Analyze` gets the inputs (`properties.kty` on a Key, a list of identity ids on a cluster);
- `AnalyzeStack` gets the provider's outputs (a Key's `kty` at the top level, a cluster's identities as a
  map id -> {principalId, clientId}, a vault's `name` instead of `vaultName`).

Unknown values (preview) are the engine's sentinel strings. A rule never passes because a value is unknown:
it either decides from the dependency graph (a `keyId` unknown because it comes from a Key created in the
same run) or returns an `UNDECIDED` finding, which the pack reports as "could not decide".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import Any

import azure_facts as facts

# ------------------------------------------------------------------------------------------- type tokens

CLUSTER = "azure-native:containerservice:ManagedCluster"
VAULT = "azure-native:keyvault:Vault"
KEY = "azure-native:keyvault:Key"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
ACCESS_POLICY = "azure-native:keyvault:AccessPolicy"
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
PRIVATE_ENDPOINT = "azure-native:network:PrivateEndpoint"
PRIVATE_ENDPOINT_CONNECTION = "azure-native:keyvault:PrivateEndpointConnection"
SECRET = "kubernetes:core/v1:Secret"
# azure-native 3.x's diagnostic settings (Microsoft.Insights/diagnosticSettings); 2.x called it insights.
DIAGNOSTIC_SETTING = "azure-native:monitor:DiagnosticSetting"

# The resources whose properties the stack rules read. Everything else (thousands of Secrets, say) is only
# counted by type, so a stack policy never converts the properties of resources it does not look at.
RELEVANT_TYPES = frozenset(
    {
        CLUSTER,
        VAULT,
        KEY,
        IDENTITY,
        ACCESS_POLICY,
        ROLE_ASSIGNMENT,
        PRIVATE_ENDPOINT,
        PRIVATE_ENDPOINT_CONNECTION,
        DIAGNOSTIC_SETTING,
    }
)

# ------------------------------------------------------------------------------------------ Azure facts

# Role ids, DNS suffixes, id patterns and the KMS v2 threshold: the project's one place for Azure facts, the only
# project package the pack imports (tests/test_pack_imports.py). Crypto User is what KMS needs; KMS_CRYPTO_ROLES
# adds Crypto Officer and Administrator, supersets that also carry the keys/encrypt + keys/decrypt data actions.
KEY_VAULT_CRYPTO_USER = facts.KEY_VAULT_CRYPTO_USER_ROLE
KMS_CRYPTO_ROLES = facts.KMS_CRYPTO_ROLES
# Management-plane role AKS needs on a private vault to create its private endpoint.
KEY_VAULT_CONTRIBUTOR = facts.KEY_VAULT_CONTRIBUTOR_ROLE

KMS_KEY_OPERATIONS = frozenset({"encrypt", "decrypt"})
KMS_KEY_TYPES = frozenset({"RSA", "RSA-HSM"})
HSM_KEY_TYPE = "RSA-HSM"
MIN_KEY_SIZE = 2048
# Key Vault's default RSA size when `keySize` is not given.
DEFAULT_RSA_KEY_SIZE = 2048
# Kubernetes 1.27 and later use KMS v2, which has no 2000-secret limit.
KMS_V2_MIN_VERSION = facts.KMS_V2_MIN_KUBERNETES_VERSION
DEFAULT_MAX_SECRETS = 2000

# Any Key Vault key URL, with or without a version, so that a versionless one can be named in a message.
_KEY_URL = facts.KEY_URL
_KEY_VERSION = facts.KEY_VERSION
VERSIONED_KEY_ID_PATTERN = facts.VERSIONED_KEY_ID_PATTERN
_KUBERNETES_VERSION = re.compile(r"^v?(\d+)\.(\d+)")

# The engine's sentinels for values not known until a resource is created (pulumi_policy/proxy.py).
UNKNOWN_SENTINELS = frozenset(
    {
        "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",  # boolean
        "3eeb2bf0-c639-47a8-9e75-3b44932eb421",  # number
        "04da6b54-80e4-46f7-96ec-b56ff0331ba9",  # string
        "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",  # array
        "030794c1-ac77-496b-92df-f27374a8bd58",  # asset
        "e48ece36-62e2-4504-bad9-02848725956a",  # archive
        "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",  # object
    }
)


def is_unknown(value: Any) -> bool:
    """Whether `value` is an engine sentinel for a value not known until the resource is created."""
    return isinstance(value, str) and value in UNKNOWN_SENTINELS


# --------------------------------------------------------------------------------------------- findings


class Outcome(Enum):
    """What a rule concluded about one thing it checked."""

    VIOLATION = "violation"
    # A value the rule needs is unknown (preview) and the dependency graph does not settle it.
    UNDECIDED = "undecided"
    # The policy has nothing to check here (and says why).
    NOT_APPLICABLE = "not-applicable"


@dataclass(frozen=True, slots=True)
class Finding:
    """One conclusion of a rule: a violation to report, or why it could not decide, or why it does not apply.

    `urn` is the resource the finding is about; None means the resource being analyzed (resource policies)
    or the stack as a whole (stack policies).
    """

    message: str
    urn: str | None = None
    outcome: Outcome = Outcome.VIOLATION


def _violation(message: str, urn: str | None = None) -> Finding:
    return Finding(message, urn, Outcome.VIOLATION)


def _undecided(message: str, urn: str | None = None) -> Finding:
    return Finding(message, urn, Outcome.UNDECIDED)


def _not_applicable(message: str) -> Finding:
    return Finding(message, None, Outcome.NOT_APPLICABLE)


# ------------------------------------------------------------------------------------- property access


def dig(value: Any, *path: str) -> Any:
    """The value at `path`, None when absent; an unknown on the way is returned as the unknown itself.

    So `dig(props, "securityProfile", "azureKeyVaultKms", "keyId")` is the keyId, None, or a sentinel.
    """
    for key in path:
        if value is None or is_unknown(value):
            return value
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _first(*values: Any) -> Any:
    """The first value that is present (not None); unknowns count as present."""
    return next((v for v in values if v is not None), None)


def _text(value: Any) -> str | None:
    """A known, non-empty string, else None."""
    return value if isinstance(value, str) and value and not is_unknown(value) else None


def _lower(value: Any) -> str | None:
    text = _text(value)
    return text.lower() if text is not None else None


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return []


@dataclass(frozen=True, slots=True)
class KeyRef:
    """A parsed Key Vault key URL."""

    vault: str
    name: str
    version: str | None

    @property
    def versioned(self) -> bool:
        return self.version is not None and _KEY_VERSION.match(self.version) is not None


def parse_key_url(value: Any) -> KeyRef | None:
    """`https://<vault>.vault.azure.net/keys/<name>[/<version>]`, or None when `value` is not one."""
    text = _text(value)
    match = _KEY_URL.match(text.strip()) if text else None
    if match is None:
        return None
    return KeyRef(match["vault"].lower(), match["name"].lower(), match["version"] or None)


def arm_segments(resource_id: Any) -> dict[str, str]:
    """An ARM id's name/value pairs with lower-cased names: {"resourcegroups": ..., "vaults": ..., ...}.

    Values keep their case; Azure compares them case-insensitively, so callers lower() before comparing.
    """
    text = _text(resource_id)
    if not text:
        return {}
    parts = text.strip("/").split("/")
    return {parts[i].lower(): parts[i + 1] for i in range(0, len(parts) - 1, 2)}


def vault_name_of_resource_id(resource_id: Any) -> str | None:
    """The vault name in a Key Vault (or key) resource id, lower-cased."""
    segments = arm_segments(resource_id)
    if segments.get("providers", "").lower() != "microsoft.keyvault":
        return None
    vault = segments.get("vaults")
    return vault.lower() if vault else None


def kubernetes_minor(version: Any) -> tuple[int, int] | None:
    """(major, minor) of "1.26", "1.27.3" or "v1.30"; None when it is not a version."""
    text = _text(version)
    match = _KUBERNETES_VERSION.match(text) if text else None
    return (int(match[1]), int(match[2])) if match else None


# ---------------------------------------------------------------------------------- resources and stack


# Compared by identity: a resource's properties are dicts, and one URN is one resource anyway.
@dataclass(frozen=True, slots=True, eq=False)
class Res:
    """A resource as a stack rule sees it: plain properties (inputs or outputs) and its place in the graph."""

    type: str
    urn: str
    props: Mapping[str, Any]
    name: str = ""
    protect: bool = False
    dependencies: tuple[str, ...] = ()
    property_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def deps_of(self, *properties: str) -> tuple[str, ...]:
        """URNs the given top-level properties depend on (the engine's `propertyDependencies`)."""
        if len(properties) == 1:
            return tuple(self.property_dependencies.get(properties[0], ()))
        return tuple(u for p in properties for u in self.property_dependencies.get(p, ()))

    @property
    def label(self) -> str:
        """`<type> "<name>"` for messages."""
        return f'{self.type} "{self.name or self.urn.rsplit("::", 1)[-1]}"'


def _kms_settings(cluster: Res) -> Any:
    return dig(cluster.props, "securityProfile", "azureKeyVaultKms")


def _vault_name(vault: Res) -> str | None:
    return _lower(_first(vault.props.get("vaultName"), vault.props.get("name")))


def _key_name(key: Res) -> str | None:
    return _lower(_first(key.props.get("keyName"), key.props.get("name")))


def _key_vault_name(key: Res) -> str | None:
    vault = _lower(key.props.get("vaultName"))
    if vault is None:
        ref = parse_key_url(key.props.get("keyUri"))
        vault = ref.vault if ref else None
    return vault


def _key_property(key: Res, name: str) -> Any:
    # Inputs nest key settings under `properties`; azure-native's outputs flatten them.
    return _first(dig(key.props, "properties", name), key.props.get(name))


def _identity_name(identity: Res) -> str | None:
    return _lower(_first(identity.props.get("resourceName"), identity.props.get("name")))


def _identity_type(cluster: Res) -> Any:
    return dig(cluster.props, "identity", "type")


def _is_user_assigned(identity_type: Any) -> bool:
    return isinstance(identity_type, str) and identity_type.replace(" ", "").lower() == "userassigned"


def _cluster_identity_refs(props: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """The cluster's user-assigned identity ids (a list on input, a map's keys on output), and the output map."""
    assigned = dig(props, "identity", "userAssignedIdentities")
    if isinstance(assigned, Mapping):
        return list(assigned.keys()), dict(assigned)
    if is_unknown(assigned):
        return [assigned], {}
    return _as_list(assigned), {}


class StackIndex:
    """The stack's resources indexed once, so that every rule is a handful of dictionary lookups.

    `resources` are at least the resources of `RELEVANT_TYPES` (others only count and link dependencies);
    `type_counts` counts every resource of the stack by type (default: counts `resources`); `dependencies_of`
    gives the direct dependencies of any URN in the stack (default: those of `resources`), for the transitive
    "does the cluster wait for its grant" check.
    """

    def __init__(
        self,
        resources: Iterable[Res],
        type_counts: Mapping[str, int] | None = None,
        dependencies_of: Callable[[str], Iterable[str]] | None = None,
    ) -> None:
        self.by_urn: dict[str, Res] = {}
        self.by_type: dict[str, list[Res]] = {t: [] for t in RELEVANT_TYPES}
        counts: dict[str, int] = {}
        self._dependencies: dict[str, tuple[str, ...]] = {}
        for res in resources:
            counts[res.type] = counts.get(res.type, 0) + 1
            self._dependencies[res.urn] = res.dependencies
            if res.type in RELEVANT_TYPES:
                self.by_urn[res.urn] = res
                self.by_type[res.type].append(res)
        self.type_counts: Mapping[str, int] = type_counts if type_counts is not None else counts
        self._dependencies_of = dependencies_of

        self.vaults_by_name: dict[str, list[Res]] = {}
        for vault in self.by_type[VAULT]:
            name = _vault_name(vault)
            if name:
                self.vaults_by_name.setdefault(name, []).append(vault)
        self.keys_by_name: dict[tuple[str, str], list[Res]] = {}
        for key in self.by_type[KEY]:
            vault, name = _key_vault_name(key), _key_name(key)
            if vault and name:
                self.keys_by_name.setdefault((vault, name), []).append(key)
        self.identities_by_name: dict[str, list[Res]] = {}
        for identity in self.by_type[IDENTITY]:
            name = _identity_name(identity)
            if name:
                self.identities_by_name.setdefault(name, []).append(identity)

        # Grants, by the principal they name and by the identity their principal comes from.
        self.grants_by_principal: dict[str, list[Res]] = {}
        self.grants_by_identity_urn: dict[str, list[Res]] = {}
        for grant in (*self.by_type[ACCESS_POLICY], *self.by_type[ROLE_ASSIGNMENT]):
            principal_key = "policy" if grant.type == ACCESS_POLICY else "principalId"
            principal = _grant_principal(grant)
            if principal:
                self.grants_by_principal.setdefault(principal, []).append(grant)
            for urn in grant.deps_of(principal_key):
                self.grants_by_identity_urn.setdefault(urn, []).append(grant)

        # Private endpoints and private endpoint connections, by the vault they target.
        self.private_links_by_vault_name: dict[str, list[Res]] = {}
        self.private_links_by_vault_urn: dict[str, list[Res]] = {}
        self.private_links_unresolved: list[Res] = []
        for endpoint in self.by_type[PRIVATE_ENDPOINT]:
            self._index_private_endpoint(endpoint)
        for connection in self.by_type[PRIVATE_ENDPOINT_CONNECTION]:
            vault = connection.props.get("vaultName")
            self._index_private_link(connection, [vault], connection.deps_of("vaultName"))

    def _index_private_endpoint(self, endpoint: Res) -> None:
        connections: list[Any] = []
        for key in ("privateLinkServiceConnections", "manualPrivateLinkServiceConnections"):
            for source in (endpoint.props.get(key), dig(endpoint.props, "properties", key)):
                connections.extend(_as_list(source))
                if is_unknown(source):
                    connections.append(source)
        targets: list[Any] = []
        for connection in connections:
            if is_unknown(connection):
                targets.append(connection)
                continue
            if not isinstance(connection, Mapping):
                continue
            target = _first(
                connection.get("privateLinkServiceId"), dig(connection, "properties", "privateLinkServiceId")
            )
            groups = _first(connection.get("groupIds"), dig(connection, "properties", "groupIds"))
            known_groups = [g.lower() for g in _as_list(groups) if _text(g)]
            # "vault" is Key Vault's private link group; a known target that is not a vault is not our concern.
            if _text(target) is not None:
                if vault_name_of_resource_id(target) is not None:
                    targets.append(target)
            elif not known_groups or "vault" in known_groups:
                targets.append(target)
        if targets:
            self._index_private_link(
                endpoint,
                targets,
                endpoint.deps_of("privateLinkServiceConnections", "manualPrivateLinkServiceConnections"),
            )

    def _index_private_link(self, link: Res, targets: Sequence[Any], dependency_urns: Sequence[str]) -> None:
        resolved = False
        for target in targets:
            name = vault_name_of_resource_id(target) if _text(target) and "/" in target else _lower(target)
            if name:
                self.private_links_by_vault_name.setdefault(name, []).append(link)
                resolved = True
        for urn in dependency_urns:
            if urn in self.by_urn and self.by_urn[urn].type == VAULT:
                self.private_links_by_vault_urn.setdefault(urn, []).append(link)
                resolved = True
        if not resolved and any(is_unknown(t) for t in targets):
            self.private_links_unresolved.append(link)

    def dependencies_of(self, urn: str) -> Iterable[str]:
        if self._dependencies_of is not None:
            return self._dependencies_of(urn)
        return self._dependencies.get(urn, ())

    def depends_on(self, urn: str, targets: set[str]) -> bool:
        """Whether `urn` waits for any of `targets`, directly or through other resources (linear walk)."""
        seen: set[str] = set()
        todo = list(self.dependencies_of(urn))
        while todo:
            current = todo.pop()
            if current in targets:
                return True
            if current in seen:
                continue
            seen.add(current)
            todo.extend(self.dependencies_of(current))
        return False

    @property
    def kms_clusters(self) -> list[ClusterKms]:
        """Every ManagedCluster with KMS enabled (or not yet known), with its key, vault and identity resolved.

        Not cached on the index on purpose: ClusterKms refers to the index, and a cycle would keep the SDK's
        whole resource graph alive until the cyclic garbage collector runs (seconds, on a 10k stack)."""
        result = []
        for cluster in self.by_type[CLUSTER]:
            enabled = dig(_kms_settings(cluster), "enabled")
            if enabled is True or is_unknown(enabled) or is_unknown(_kms_settings(cluster)):
                result.append(ClusterKms(cluster, self))
        return result


def _grant_principal(grant: Res) -> str | None:
    if grant.type == ACCESS_POLICY:
        return _lower(dig(grant.props, "policy", "objectId"))
    return _lower(grant.props.get("principalId"))


class ClusterKms:
    """A KMS cluster and what its `keyId` and identity lead to in the stack."""

    def __init__(self, cluster: Res, index: StackIndex) -> None:
        self.cluster = cluster
        self.index = index
        settings = _kms_settings(cluster)
        self.settings: Mapping[str, Any] = settings if isinstance(settings, Mapping) else {}
        self.key_id: Any = settings if is_unknown(settings) else self.settings.get("keyId")
        self.key_ref = parse_key_url(self.key_id)
        self.dependency_keys = [
            index.by_urn[u]
            for u in cluster.deps_of("securityProfile")
            if u in index.by_urn and index.by_urn[u].type == KEY
        ]

    @cached_property
    def keys(self) -> list[Res]:
        """The stack's Key(s) that `keyId` names; when keyId is unknown, the Keys it depends on."""
        if self.key_ref is not None:
            named = self.index.keys_by_name.get((self.key_ref.vault, self.key_ref.name))
            if named:
                return named
            # A Key whose names are not known (inputs from outputs of other resources) cannot contradict keyId.
            return [k for k in self.dependency_keys if _key_matches(k, self.key_ref)]
        if is_unknown(self.key_id):
            return self.dependency_keys
        return []

    @property
    def key_unresolved(self) -> bool:
        """keyId is unknown and depends on no Key of this stack: which key it will be is not known."""
        return is_unknown(self.key_id) and not self.dependency_keys

    @cached_property
    def vault_name(self) -> str | None:
        if self.key_ref is not None:
            return self.key_ref.vault
        for key in self.keys:
            name = _key_vault_name(key)
            if name:
                return name
        return vault_name_of_resource_id(self.settings.get("keyVaultResourceId"))

    @cached_property
    def vault(self) -> Res | None:
        """The KMS key's vault, if it is in this stack."""
        if self.vault_name:
            found = self.index.vaults_by_name.get(self.vault_name)
            if found:
                return found[0]
        for key in self.keys:
            for urn in key.deps_of("vaultName"):
                res = self.index.by_urn.get(urn)
                if res is not None and res.type == VAULT:
                    return res
        return None

    @property
    def vault_label(self) -> str:
        if self.vault is not None:
            return self.vault.label
        return f'Key Vault "{self.vault_name}"' if self.vault_name else "the KMS key's vault"

    @property
    def network_access(self) -> Any:
        # AKS's default is Public.
        value = self.settings.get("keyVaultNetworkAccess")
        return "Public" if value is None else value

    @property
    def is_private(self) -> bool:
        return _lower(self.network_access) == "private"

    @cached_property
    def identity_refs(self) -> tuple[list[Any], dict[str, Any]]:
        return _cluster_identity_refs(self.cluster.props)

    @cached_property
    def identities(self) -> list[Res]:
        """The stack's user-assigned identities the cluster uses (by id, or by dependency when the id is unknown)."""
        refs, _ = self.identity_refs
        found: dict[str, Res] = {}
        # The identities whose outputs flow into `identity` are the ones it uses, known or not.
        for urn in self.cluster.deps_of("identity"):
            res = self.index.by_urn.get(urn)
            if res is not None and res.type == IDENTITY:
                found[urn] = res
        for ref in refs:
            segments = arm_segments(ref)
            name = segments.get("userassignedidentities")
            if not name:
                continue
            group = segments.get("resourcegroups", "").lower()
            for candidate in self.index.identities_by_name.get(name.lower(), []):
                candidate_group = _lower(candidate.props.get("resourceGroupName"))
                if not group or candidate_group is None or candidate_group == group:
                    found[candidate.urn] = candidate
        return list(found.values())

    @cached_property
    def principals(self) -> set[str]:
        """Known principal ids of the cluster's identity: from the identity resource or the cluster's outputs."""
        principals = {p for i in self.identities if (p := _lower(i.props.get("principalId")))}
        _, assigned = self.identity_refs
        for value in assigned.values():
            principal = _lower(dig(value, "principalId"))
            if principal:
                principals.add(principal)
        return principals

    @property
    def identity_label(self) -> str:
        if self.identities:
            return " and ".join(i.label for i in self.identities)
        refs, _ = self.identity_refs
        known = [r for r in refs if _text(r)]
        return f"identity {', '.join(known)}" if known else "the cluster's user-assigned identity"

    def kms_resources(self) -> list[Res]:
        """The key, vault and identity whose loss makes the cluster's secrets unreadable (those in this stack)."""
        resources = list(self.keys)
        if self.vault is not None:
            resources.append(self.vault)
        resources.extend(self.identities)
        return resources


# ====================================================================================== resource rules
# Each takes a ManagedCluster's input properties and the policy's config, and returns findings about it.


def _fix(stack_config: str | None, code: str) -> str:
    """The fix, as a sentence appended to a finding: the stack config first, then the code-level fix.

    `stack_config` names the `Pulumi.<stack>.yaml` key and value of this project (docs/configuration.md) that
    fixes it; None when this project's components always get it right and only code that builds the
    resources itself can break it. The pack imports nothing from the program: these are plain strings.
    """
    if stack_config is None:
        return f" Stack config: nothing to set, this project's components do it. In code: {code}."
    return f" Fix in Pulumi.<stack>.yaml: {stack_config}. In code: {code}."


def check_kms_enabled(props: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> list[Finding]:
    """KMS is on and has a key: `securityProfile.azureKeyVaultKms.enabled` true and `keyId` set."""
    kms = dig(props, "securityProfile", "azureKeyVaultKms")
    if is_unknown(kms):
        return [_undecided("securityProfile.azureKeyVaultKms is not known until the resources it depends on exist.")]
    enabled = dig(kms, "enabled")
    if is_unknown(enabled):
        return [_undecided("securityProfile.azureKeyVaultKms.enabled is not known during preview.")]
    findings = []
    if enabled is not True:
        state = "false" if enabled is False else "not set"
        findings.append(
            _violation(
                f"securityProfile.azureKeyVaultKms.enabled is {state}: etcd secrets would not be encrypted with "
                "the customer-managed key, and turning KMS off on a cluster that has it is not supported. "
                + _fix(
                    None,
                    "KmsAksCluster always enables KMS; on a raw ManagedCluster set azure_key_vault_kms="
                    "AzureKeyVaultKmsArgs(enabled=True, key_id=<the Key's key_uri_with_version>)",
                )
            )
        )
    key_id = dig(kms, "keyId")
    if key_id is None or (isinstance(key_id, str) and not key_id.strip()):
        findings.append(
            _violation(
                "securityProfile.azureKeyVaultKms.keyId is not set: KMS needs the versioned id of the key that "
                "encrypts etcd."
                + _fix(
                    "kms-aks:keyVault with kms-aks:kmsKey (the stack creates the key), or "
                    "kms-aks:existingKey.keyId: https://<vault>.vault.azure.net/keys/<name>/<version>",
                    "set keyId to the Key resource's key_uri_with_version",
                )
            )
        )
    return findings


def check_user_assigned_identity(props: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> list[Finding]:
    """The cluster identity is exactly one user-assigned identity (KMS cannot use a system-assigned one)."""
    identity = props.get("identity")
    if is_unknown(identity):
        return [_undecided("identity is not known during preview.")]
    identity_type = dig(identity, "type")
    if is_unknown(identity_type):
        return [_undecided("identity.type is not known during preview.")]
    fix = _fix(
        None,
        "KmsAksCluster always uses KmsIdentity's user-assigned identity; on a raw ManagedCluster set identity to "
        '{"type": "UserAssigned", "userAssignedIdentities": [<id of a managedidentity.UserAssignedIdentity>]}, '
        "created before the cluster and granted encrypt + decrypt on the KMS key",
    ).strip()
    if not _is_user_assigned(identity_type):
        shown = f'"{identity_type}"' if identity_type is not None else "not set"
        return [
            _violation(
                f"identity.type is {shown}: KMS needs a user-assigned managed identity. A system-assigned identity "
                "is created with the cluster, so it cannot hold the key permission that AKS checks while creating "
                f"the cluster (a dependency cycle). {fix}"
            )
        ]
    refs, _ = _cluster_identity_refs(props)
    if not refs:
        return [_violation(f"identity.userAssignedIdentities is empty. {fix}")]
    if len(refs) > 1:
        return [
            _violation(
                f"identity.userAssignedIdentities lists {len(refs)} identities; an AKS cluster takes exactly one "
                "control-plane identity, and it is the one KMS uses. Keep only the identity that holds the key grant."
            )
        ]
    return []


def check_key_id_versioned(props: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> list[Finding]:
    """`keyId` is a versioned Key Vault key id: https://<vault>.vault.azure.net/keys/<name>/<32-hex version>."""
    kms = dig(props, "securityProfile", "azureKeyVaultKms")
    key_id = dig(kms, "keyId")
    if is_unknown(key_id) or is_unknown(kms):
        # Only the stack policy sees whether the unknown comes from a Key of this stack; it says
        # "could not decide" when it does not. During `pulumi up` this policy sees the value.
        return [
            _not_applicable(
                "keyId is not known until the key exists; aks-kms-key-source checks where it comes from, and this "
                "policy checks its form when the value is known (pulumi up)."
            )
        ]
    if key_id is None or dig(kms, "enabled") is False:
        return []  # aks-kms-enabled reports a missing key or disabled KMS
    ref = parse_key_url(key_id)
    if ref is not None and ref.versioned:
        return []
    if ref is not None:
        problem = (
            "has no version" if ref.version is None else f'has "{ref.version}" where a 32-hex-digit version belongs'
        )
        return [
            _violation(
                f'keyId "{key_id}" {problem}: AKS KMS takes the key identifier with its version.'
                + _fix(
                    f"kms-aks:existingKey.keyId: https://{ref.vault}.vault.azure.net/keys/{ref.name}/<32-hex version> "
                    "(bring your own key), or kms-aks:kmsKey.version: <32-hex version> (a key this stack creates)",
                    "set keyId to the Key resource's key_uri_with_version output, or its keyUri plus a pinned version",
                )
            )
        ]
    return [
        _violation(
            f'keyId "{key_id}" is not a Key Vault key identifier.'
            + _fix(
                "kms-aks:existingKey.keyId: https://<vault>.vault.azure.net/keys/<name>/<32-hex version>",
                "set keyId to the Key resource's key_uri_with_version",
            )
        )
    ]


# ========================================================================================= stack rules
# Each takes the indexed stack and the policy's config, and returns findings with the URN they are about.


def _dedupe(findings: Iterable[Finding]) -> list[Finding]:
    return list(dict.fromkeys(findings))


def check_no_private_link(index: StackIndex, *, allow_private_key_vault: bool = False) -> list[Finding]:
    """No Private Link for the KMS vault; with `allow_private_key_vault`, what AKS needs for a private vault."""
    findings: list[Finding] = []
    for kms in index.kms_clusters:
        cluster = kms.cluster
        access = kms.network_access
        vault_resource_id = kms.settings.get("keyVaultResourceId")
        if is_unknown(access):
            findings.append(
                _undecided(f"{cluster.label}: keyVaultNetworkAccess is not known during preview.", cluster.urn)
            )
            continue
        public = _lower(access) == "public"
        if not allow_private_key_vault and not public:
            findings.append(
                _violation(
                    f'{cluster.label}: securityProfile.azureKeyVaultKms.keyVaultNetworkAccess is "{access}": a KMS '
                    "key vault behind Private Link is not supported by the AKS KMS integration this stack follows."
                    + _fix(
                        "kms-aks:keyVaultNetworkAccess: Public (and remove kms-aks:network); or, for current AKS "
                        'with a private vault, allow it in policies/config/<stack>.json: {"aks-kms-no-private-link": '
                        '{"allowPrivateKeyVault": true}} and meet its requirements (docs/private-key-vault.md)',
                        'set keyVaultNetworkAccess to "Public" and remove keyVaultResourceId',
                    ),
                    cluster.urn,
                )
            )
        if public and _text(vault_resource_id):
            findings.append(
                _violation(
                    f"{cluster.label}: keyVaultResourceId is set while keyVaultNetworkAccess is Public; AKS takes it "
                    "only for a private vault."
                    + _fix(
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
                    _undecided(f"{vault.label}: properties.publicNetworkAccess is not known during preview.", vault.urn)
                )
            elif _lower(network) == "disabled" and not (allow_private_key_vault and kms.is_private):
                reason = (
                    "AKS reaches a vault with keyVaultNetworkAccess Public over its public endpoint"
                    if allow_private_key_vault
                    else "a KMS key vault reachable only through Private Link is not supported"
                )
                findings.append(
                    _violation(
                        f'{vault.label} is the KMS vault of {cluster.label} and has publicNetworkAccess "{network}": '
                        f"{reason}."
                        + _fix(
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
                    _violation(
                        f"{link.label} is a {what} to {kms.vault_label}, the KMS vault of {cluster.label}: a KMS key "
                        "vault with Private Link is not supported by the AKS KMS integration this stack follows."
                        + _fix(
                            "kms-aks:keyVaultNetworkAccess: Public; this project never creates such a link, so it "
                            "comes from code added to the stack",
                            "remove it, or use another vault for what needs Private Link",
                        ),
                        link.urn,
                    )
                )
            for link in index.private_links_unresolved:
                findings.append(
                    _undecided(
                        f"{link.label}: its target is not known during preview, so whether it is a private link to "
                        f"{kms.vault_label} (the KMS vault) cannot be decided.",
                        link.urn,
                    )
                )
    return _dedupe(findings)


def _private_vault_requirements(kms: ClusterKms, vault_resource_id: Any) -> list[Finding]:
    cluster = kms.cluster
    findings = []
    if is_unknown(vault_resource_id):
        pass  # comes from a resource created in this run; its value is checked when known
    elif not _text(vault_resource_id):
        findings.append(
            _violation(
                f"{cluster.label}: keyVaultNetworkAccess is Private but keyVaultResourceId is not set."
                + _fix(
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
                _violation(
                    f'{cluster.label}: keyVaultResourceId "{vault_resource_id}" is not the resource id of the vault '
                    f'that holds the KMS key ("{kms.vault_name}"). Set it to that vault\'s resource id.',
                    cluster.urn,
                )
            )
    vnet = dig(cluster.props, "apiServerAccessProfile", "enableVnetIntegration")
    if is_unknown(vnet):
        findings.append(
            _undecided(f"{cluster.label}: apiServerAccessProfile.enableVnetIntegration is not known.", cluster.urn)
        )
    elif vnet is not True:
        findings.append(
            _violation(
                f"{cluster.label}: a private KMS key vault needs API server VNet integration (AKS rejects it with "
                '"Vnet integration should be enabled when KeyVault network access is Private").'
                + _fix(
                    "kms-aks:network (vnetAddressSpace, apiServerSubnetPrefix, nodeSubnetPrefix) with "
                    "kms-aks:keyVaultNetworkAccess: Private",
                    "set apiServerAccessProfile.enableVnetIntegration to true (with its subnetId)",
                ),
                cluster.urn,
            )
        )
    grants, undecided = _role_grants(kms, {KEY_VAULT_CONTRIBUTOR}, key_scope_ok=False)
    if not grants:
        if undecided:
            findings.append(_undecided(undecided, cluster.urn))
        else:
            findings.append(
                _violation(
                    f"{cluster.label}: with a private KMS vault, AKS creates the private endpoint itself and needs "
                    f'"Key Vault Contributor" ({KEY_VAULT_CONTRIBUTOR}) on {kms.vault_label} for '
                    f"{kms.identity_label}."
                    + _fix(
                        "kms-aks:keyVaultNetworkAccess: Private with kms-aks:network (KmsIdentity then grants it)",
                        "add an authorization.RoleAssignment with that role at the vault's scope, principalType "
                        '"ServicePrincipal", and make the cluster depend on it',
                    ),
                    cluster.urn,
                )
            )
    elif not kms.index.depends_on(cluster.urn, {g.urn for g in grants}):
        findings.append(
            _violation(
                f"{cluster.label} does not depend on {', '.join(g.label for g in grants)}: AKS creates the private "
                "endpoint while creating the cluster and fails if the Key Vault Contributor grant is missing or "
                "still propagating."
                + _fix(
                    None,
                    "KmsAksCluster waits for it with kms-aks:keyVaultNetworkAccess: Private; by hand add the grant "
                    "to the cluster's depends_on (pulumi.ResourceOptions(depends_on=[grant]))",
                ),
                cluster.urn,
            )
        )
    return findings


def check_secret_limit(
    index: StackIndex, *, max_secrets: int = DEFAULT_MAX_SECRETS, kms_v2_aware: bool = False
) -> list[Finding]:
    """At most `max_secrets` Kubernetes Secrets; with `kms_v2_aware`, only while a KMS cluster is below 1.27."""
    count = index.type_counts.get(SECRET, 0)
    if count <= max_secrets:
        return []
    fix = (
        f"Keep at most {max_secrets} {SECRET} resources in this stack (consolidate Secrets or move some to "
        "another stack)"
    )
    limit = f"{count} Kubernetes Secrets in this stack; AKS KMS (KMS v1) supports at most {max_secrets} per cluster"
    if not kms_v2_aware:
        return [
            _violation(
                f"{limit}."
                + _fix(
                    f'kms-aks:cluster.kubernetesVersion: "{KMS_V2_MIN_VERSION[0]}.{KMS_V2_MIN_VERSION[1]}" or later '
                    '(KMS v2, no such limit) with {"aks-kms-secret-limit": {"kmsV2Aware": true}} in '
                    "policies/config/<stack>.json",
                    f"{fix[0].lower()}{fix[1:]}",
                )
            )
        ]
    clusters = index.kms_clusters
    if not clusters:
        return [
            _violation(
                f"{limit}. No KMS cluster in this stack shows which Kubernetes version the Secrets go to, so the "
                f"KMS v1 limit applies. {fix}."
            )
        ]
    findings = []
    for kms in clusters:
        props = kms.cluster.props
        version = _first(props.get("kubernetesVersion"), props.get("currentKubernetesVersion"))
        if is_unknown(version):
            findings.append(
                _undecided(
                    f"{limit}; the Kubernetes version of {kms.cluster.label} is not known during preview.",
                    kms.cluster.urn,
                )
            )
            continue
        minor = kubernetes_minor(version)
        if minor is None or minor < KMS_V2_MIN_VERSION:
            shown = f'Kubernetes "{version}"' if version is not None else "no kubernetesVersion (AKS's default)"
            findings.append(
                _violation(
                    f"{limit}, and {kms.cluster.label} runs {shown}, which uses KMS v1."
                    + _fix(
                        f'kms-aks:cluster.kubernetesVersion: "{KMS_V2_MIN_VERSION[0]}.{KMS_V2_MIN_VERSION[1]}" or '
                        "later (KMS v2; quoted)",
                        f"set kubernetesVersion to {KMS_V2_MIN_VERSION[0]}.{KMS_V2_MIN_VERSION[1]} or later, or "
                        f"{fix[0].lower()}{fix[1:]}",
                    ),
                    kms.cluster.urn,
                )
            )
    return findings


def check_key_vault_fit(
    index: StackIndex, *, require_hsm: bool = False, min_key_size: int = MIN_KEY_SIZE
) -> list[Finding]:
    """The KMS key is an enabled RSA key of at least `min_key_size` bits with encrypt + decrypt, in a vault with
    soft delete and purge protection; with `require_hsm`, an RSA-HSM key in a premium vault."""
    findings: list[Finding] = []
    for kms in index.kms_clusters:
        if kms.key_unresolved:
            findings.append(
                _undecided(
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
    return _dedupe(findings)


def _key_fit(key: Res, kms: ClusterKms, require_hsm: bool, min_key_size: int) -> list[Finding]:
    findings = []
    of = f"{key.label} (the KMS key of {kms.cluster.label})"
    kty = _key_property(key, "kty")
    if is_unknown(kty):
        findings.append(_undecided(f"{of}: its key type is not known during preview.", key.urn))
    elif _text(kty) is None or kty.upper() not in KMS_KEY_TYPES:
        findings.append(
            _violation(
                f'{of} has key type "{kty}": AKS KMS wraps its data keys with RSA (EC keys fail).'
                + _fix(
                    "kms-aks:kmsKey.type: RSA (or RSA-HSM, with kms-aks:keyVault.sku: premium)",
                    'set properties.kty to "RSA", or "RSA-HSM" for an HSM-protected key',
                ),
                key.urn,
            )
        )
    elif require_hsm and kty.upper() != HSM_KEY_TYPE:
        findings.append(
            _violation(
                f'{of} has key type "{kty}", and this stack requires an HSM-protected key (requireHsm).'
                + _fix(
                    "kms-aks:kmsKey.type: RSA-HSM with kms-aks:keyVault.sku: premium",
                    'set properties.kty to "RSA-HSM" in a premium vault',
                )
                + " On a deployed stack a new type is a new key: roll it out as a planned rotation "
                "(docs/rotation.md).",
                key.urn,
            )
        )
    size = _key_property(key, "keySize")
    if is_unknown(size):
        findings.append(_undecided(f"{of}: its key size is not known during preview.", key.urn))
    else:
        bits = DEFAULT_RSA_KEY_SIZE if size is None else size
        if not isinstance(bits, int | float) or bits < min_key_size:
            findings.append(
                _violation(
                    f"{of} is {size}-bit; KMS needs an RSA key of at least {min_key_size} bits."
                    + _fix(
                        f"kms-aks:kmsKey.size: {max(min_key_size, 2048)} (2048, 3072 or 4096)",
                        f"set properties.keySize to {max(min_key_size, 2048)}, 3072 or 4096",
                    ),
                    key.urn,
                )
            )
    operations = _key_property(key, "keyOps")
    if is_unknown(operations):
        findings.append(_undecided(f"{of}: its key operations are not known during preview.", key.urn))
    elif operations:  # absent or empty: Key Vault permits every operation of the key type
        listed = {op.lower() for op in _as_list(operations) if _text(op)}
        missing = sorted(KMS_KEY_OPERATIONS - listed)
        if missing:
            findings.append(
                _violation(
                    f"{of} does not permit {' and '.join(missing)}: AKS KMS encrypts and decrypts with it."
                    + _fix(
                        None,
                        f"KeyVaultWithKey always permits both; on a raw Key add {missing} to properties.keyOps "
                        '(["encrypt", "decrypt"] is enough)',
                    ),
                    key.urn,
                )
            )
    enabled = dig(_key_property(key, "attributes"), "enabled")
    if enabled is False:
        findings.append(
            _violation(
                f"{of} is disabled: the cluster cannot decrypt its secrets."
                + _fix(
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
        return [_undecided(f"{of}: its properties are not known during preview.", vault.urn)]
    soft_delete = dig(settings, "enableSoftDelete")
    purge_protection = dig(settings, "enablePurgeProtection")
    if is_unknown(soft_delete) or is_unknown(purge_protection):
        findings.append(_undecided(f"{of}: soft delete or purge protection is not known during preview.", vault.urn))
    else:
        if soft_delete is False:
            findings.append(
                _violation(
                    f"{of} has soft delete off: a deleted key would be gone for good, and with it every secret in "
                    "etcd."
                    + _fix(
                        None,
                        "KeyVaultWithKey always turns it on; on a raw Vault set properties.enableSoftDelete to true",
                    ),
                    vault.urn,
                )
            )
        if purge_protection is not True:
            findings.append(
                _violation(
                    f"{of} has no purge protection: anyone with purge rights could destroy the key, and with it every "
                    "secret in etcd, before its retention period ends."
                    + _fix(
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
            findings.append(_undecided(f"{of}: its SKU is not known during preview.", vault.urn))
        elif _lower(sku) != "premium":
            findings.append(
                _violation(
                    f'{of} has SKU "{sku}"; HSM-protected keys (requireHsm) need a premium vault.'
                    + _fix("kms-aks:keyVault.sku: premium", 'set properties.sku.name to "premium"'),
                    vault.urn,
                )
            )
    default_action = dig(settings, "networkAcls", "defaultAction")
    if _lower(default_action) == "deny" and not kms.is_private:
        findings.append(
            _violation(
                f'{of} has networkAcls.defaultAction "Deny" ("selected networks"), which AKS KMS does not support '
                "with keyVaultNetworkAccess Public."
                + _fix(
                    "kms-aks:keyVaultNetworkAccess: Public with no firewall (the default)",
                    'set properties.networkAcls.defaultAction to "Allow"',
                ),
                vault.urn,
            )
        )
    return findings


def check_identity_grant(index: StackIndex) -> list[Finding]:
    """The cluster's identity holds encrypt + decrypt on the KMS key or vault, and the cluster waits for that grant."""
    findings: list[Finding] = []
    for kms in index.kms_clusters:
        cluster = kms.cluster
        identity_type = _identity_type(cluster)
        if is_unknown(identity_type):
            findings.append(_undecided(f"{cluster.label}: identity.type is not known during preview.", cluster.urn))
            continue
        if not _is_user_assigned(identity_type):
            continue  # aks-kms-user-assigned-identity reports it; there is no identity to grant before the cluster
        if kms.key_unresolved:
            findings.append(
                _undecided(
                    f"{cluster.label}: keyId is not known during preview and does not depend on a Key of this stack, "
                    "so the key its identity needs a grant on cannot be decided.",
                    cluster.urn,
                )
            )
            continue
        grants, reasons, undecided = _kms_grants(kms)
        if not grants:
            if undecided:
                findings.append(_undecided(undecided, cluster.urn))
                continue
            why = f" ({'; '.join(reasons)})" if reasons else ""
            findings.append(
                _violation(
                    f"{cluster.label}: {kms.identity_label} has no encrypt + decrypt grant on the KMS key in "
                    f"{kms.vault_label}{why}. AKS checks it while creating the cluster and fails with "
                    "AzureKeyVaultKmsValidateIdentityPermissionCustomerError."
                    + _fix(
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
                _violation(
                    f"{cluster.label} does not depend on {names}: without the dependency the cluster can be created "
                    "before the grant exists (or has propagated), and AKS fails with "
                    "AzureKeyVaultKmsValidateIdentityPermissionCustomerError."
                    + _fix(
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
    principal = _grant_principal(grant)
    if principal is None or not kms.principals or principal in kms.principals:
        return None
    return f"{grant.label} is for principal {principal}, not the cluster identity's {', '.join(sorted(kms.principals))}"


def _access_policy_verdict(grant: Res, kms: ClusterKms, rbac: bool | None) -> bool | str | None:
    other = _other_principal(grant, kms)
    if other:
        return other
    vault_name = _lower(grant.props.get("vaultName"))
    if vault_name is None:
        on_vault = kms.vault is not None and kms.vault.urn in grant.deps_of("vaultName")
        if not on_vault:
            return None if is_unknown(grant.props.get("vaultName")) else f"{grant.label} names no vault"
    elif kms.vault_name and vault_name != kms.vault_name:
        return f'{grant.label} is on vault "{vault_name}", not on the KMS vault'
    permissions = dig(grant.props, "policy", "permissions", "keys")
    if is_unknown(permissions):
        return None
    listed = {p.lower() for p in _as_list(permissions) if _text(p)}
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
    role_guid = (_text(role) or "").rstrip("/").rsplit("/", 1)[-1].lower()
    if role_guid not in roles:
        return f"{grant.label} assigns role {role_guid or 'none'}, not one that carries the needed permissions"
    principal_type = grant.props.get("principalType")
    if is_unknown(principal_type):
        return None
    if _lower(principal_type) != "serviceprincipal":
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
        vault_group = _lower(kms.vault.props.get("resourceGroupName")) if kms.vault is not None else None
        return group is None or vault_group is None or group.lower() == vault_group
    if kms.vault_name is None or vault_name_of_resource_id(scope) != kms.vault_name:
        return False
    key = segments.get("keys")
    if key is None:
        return True
    if not key_scope_ok:
        return False
    key_names = {_key_name(k) for k in kms.keys}
    if kms.key_ref is not None:
        key_names.add(kms.key_ref.name)
    return key.lower() in key_names


def _role_grants(kms: ClusterKms, roles: set[str], *, key_scope_ok: bool) -> tuple[list[Res], str | None]:
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


def normalize_key_id(key_id: str) -> str:
    """A key id as compared with pinned ids: trimmed, without a trailing slash, lower-cased (Key Vault is
    case-insensitive in vault and key names and the version is hex)."""
    return key_id.strip().rstrip("/").lower()


def check_key_source(index: StackIndex, *, pinned_key_ids: Iterable[str] = ()) -> list[Finding]:
    """The cluster's keyId comes from a Key of this stack (property dependency) or is a pinned key id."""
    pinned = {normalize_key_id(k) for k in pinned_key_ids if isinstance(k, str)}
    findings: list[Finding] = []
    for kms in index.kms_clusters:
        cluster = kms.cluster
        key_id = kms.key_id
        if is_unknown(key_id):
            if kms.key_unresolved:
                findings.append(
                    _undecided(
                        f"{cluster.label}: keyId is not known during preview and does not depend on a Key of this "
                        "stack, so where it comes from cannot be decided.",
                        cluster.urn,
                    )
                )
            continue
        if not _text(key_id):
            continue  # aks-kms-enabled reports a missing keyId
        if normalize_key_id(key_id) in pinned:
            continue
        pin = (
            "or, for a key managed outside this stack (bring your own key), pin it in this policy's config: "
            f'{{"aks-kms-key-source": {{"pinnedKeyIds": ["{key_id}"]}}}}'
        )
        if kms.dependency_keys:
            if kms.key_ref is None:
                continue  # aks-kms-key-id-versioned reports a malformed id
            matching = [k for k in kms.dependency_keys if _key_matches(k, kms.key_ref)]
            current = {v for v in (_current_version(k) for k in matching) if v is not None}
            if matching and (not current or (kms.key_ref.version or "").lower() in current):
                continue
            if matching:
                findings.append(
                    _violation(
                        f'{cluster.label}: keyId "{key_id}" names version {kms.key_ref.version} of key '
                        f'"{kms.key_ref.name}", but that Key\'s current version is {", ".join(sorted(current))}. '
                        "Moving the cluster to another key version is a key rotation, which must be planned "
                        "(docs/rotation.md) rather than happen by accident."
                        + _fix(
                            f"kms-aks:kmsKey.version: {kms.key_ref.version} for a planned rotation, with this id "
                            "pinned in policies/config/<stack>.json: "
                            f'{{"aks-kms-key-source": {{"pinnedKeyIds": ["{key_id}"]}}}}; or remove '
                            "kms-aks:kmsKey.version to follow the Key's current version",
                            "keep keyId on the Key's key_uri_with_version, or pin this exact id as above",
                        ),
                        cluster.urn,
                    )
                )
                continue
            names = ", ".join(k.label for k in kms.dependency_keys)
            findings.append(
                _violation(
                    f'{cluster.label}: keyId "{key_id}" names key "{kms.key_ref.name}" in vault "{kms.key_ref.vault}", '
                    f"but the cluster's securityProfile depends on {names}."
                    + _fix(
                        "kms-aks:kmsKey (the key this stack creates) or kms-aks:existingKey.keyId, not both",
                        f"set keyId from that Key's key_uri_with_version {pin}",
                    ),
                    cluster.urn,
                )
            )
            continue
        findings.append(
            _violation(
                f'{cluster.label}: keyId "{key_id}" is neither taken from a Key of this stack (securityProfile has no '
                "property dependency on an azure-native:keyvault:Key) nor pinned in this policy's config, so a key "
                "change would go unnoticed instead of being a planned rotation (docs/rotation.md)."
                + _fix(
                    "kms-aks:existingKey.keyId names a bring-your-own key; pin that id in "
                    f'policies/config/<stack>.json: {{"aks-kms-key-source": {{"pinnedKeyIds": ["{key_id}"]}}}}',
                    f"set keyId from the Key resource's key_uri_with_version, {pin}",
                ),
                cluster.urn,
            )
        )
    return findings


def _current_version(key: Res) -> str | None:
    """The version the Key resource has now (its `keyUriWithVersion` output), when known."""
    ref = parse_key_url(key.props.get("keyUriWithVersion"))
    return ref.version.lower() if ref is not None and ref.versioned and ref.version else None


def _key_matches(key: Res, ref: KeyRef) -> bool:
    vault, name = _key_vault_name(key), _key_name(key)
    # A Key whose names are not known yet cannot contradict the id.
    return (vault is None or vault == ref.vault) and (name is None or name == ref.name)


def check_deletion_protection(index: StackIndex) -> list[Finding]:
    """The KMS key, its vault and the cluster's identity are protected from deletion (`protect`)."""
    findings: list[Finding] = []
    for kms in index.kms_clusters:
        if kms.key_unresolved:
            findings.append(
                _undecided(
                    f"{kms.cluster.label}: keyId is not known during preview and does not depend on a Key of this "
                    "stack, so which key and vault must be protected cannot be decided.",
                    kms.cluster.urn,
                )
            )
        for res in kms.kms_resources():
            if res.protect:
                continue
            role = {KEY: "the KMS key", VAULT: "the KMS key's vault", IDENTITY: "the KMS identity"}[res.type]
            findings.append(
                _violation(
                    f"{res.label} is {role} of {kms.cluster.label} and is not protected: deleting it (a pulumi "
                    "destroy, a rename, a replace) makes every secret in the cluster's etcd unreadable; moving to "
                    "another key is a planned rotation (docs/rotation.md), never a delete."
                    + _fix(
                        "kms-aks:protectKmsResources: true",
                        "pass protect=True in its resource options (pulumi.ResourceOptions(protect=True))",
                    ),
                    res.urn,
                )
            )
    return _dedupe(findings)


# --------------------------------------------------------------------------------------- audit logging

# Key Vault's log category that records every key operation (encrypt, decrypt, ...), and the category groups that
# include it (https://learn.microsoft.com/azure/key-vault/general/logging, "Log categories": audit, allLogs).
AUDIT_EVENT_CATEGORY = "auditevent"
AUDIT_CATEGORY_GROUPS = frozenset({"audit", "alllogs"})
# Where a diagnostic setting can send logs; one is enough.
DIAGNOSTIC_DESTINATIONS = ("workspaceId", "storageAccountId", "eventHubAuthorizationRuleId", "marketplacePartnerId")
MONITORING_CONFIG_KEY = "kms-aks:monitoring"


def _is_vault_id(value: str, vault_name: str | None) -> bool:
    """Whether an ARM id is exactly a Key Vault (not a key or secret in it) named `vault_name`."""
    segments = value.strip("/").split("/")
    return (
        vault_name is not None
        and len(segments) == 8
        and segments[-4].lower() == "providers"
        and segments[-3].lower() == "microsoft.keyvault"
        and segments[-2].lower() == "vaults"
        and segments[-1].lower() == vault_name
    )


def _audit_setting_verdict(setting: Res, kms: ClusterKms) -> bool | str | None:
    """True when `setting` sends the KMS vault's AuditEvent somewhere; None when that is not known during preview;
    else why not (the empty string when it is about another resource)."""
    vault = kms.vault
    assert vault is not None
    uri = setting.props.get("resourceUri")
    if uri is None or is_unknown(uri):
        # Unknown during preview; absent from azure-native's outputs (it is a path parameter, not in ARM's
        # response), which is all AnalyzeStack gets for an unchanged resource. The engine's property
        # dependencies still say where it comes from.
        deps = setting.deps_of("resourceUri")
        if vault.urn in deps:
            pass  # the vault's id
        elif deps:
            return ""  # another resource's id
        else:
            return None
    elif _text(uri) is None or not _is_vault_id(uri, kms.vault_name):
        return ""
    logs = setting.props.get("logs")
    if is_unknown(logs):
        return None
    audit_logs: list[Any] = []
    undecided = False
    for entry in _as_list(logs):
        if is_unknown(entry) or not isinstance(entry, Mapping):
            undecided = undecided or is_unknown(entry)
            continue
        category, group = entry.get("category"), entry.get("categoryGroup")
        if is_unknown(category) or is_unknown(group):
            undecided = True
        elif _lower(category) == AUDIT_EVENT_CATEGORY or _lower(group) in AUDIT_CATEGORY_GROUPS:
            audit_logs.append(entry)
    enabled = [entry.get("enabled") for entry in audit_logs]
    if True not in enabled:
        if undecided or any(is_unknown(e) for e in enabled):
            return None
        if audit_logs:
            return f"{setting.label} has AuditEvent disabled (enabled: false)"
        return f"{setting.label} sends no AuditEvent (neither the category nor the audit or allLogs group)"
    destinations = [setting.props.get(d) for d in DIAGNOSTIC_DESTINATIONS]
    if any(_text(d) for d in destinations):
        return True
    if any(is_unknown(d) for d in destinations):
        # A destination taken from a resource of this stack (a workspace's id) is known once it exists.
        if any(setting.deps_of(d) for d in DIAGNOSTIC_DESTINATIONS if is_unknown(setting.props.get(d))):
            return True
        return None
    return (
        f"{setting.label} has no destination (workspaceId, storageAccountId, eventHubAuthorizationRuleId or "
        "marketplacePartnerId)"
    )


def check_vault_audit_logging(index: StackIndex) -> list[Finding]:
    """The KMS vault created in this stack has a diagnostic setting that sends AuditEvent (or the audit or allLogs
    group) somewhere, enabled, with resourceUri = that vault: every encrypt and decrypt by the KMS identity is then
    recorded, which is what the failed-access alert reads."""
    findings: list[Finding] = []
    settings = index.by_type[DIAGNOSTIC_SETTING]
    for kms in index.kms_clusters:
        if kms.key_unresolved:
            findings.append(
                _undecided(
                    f"{kms.cluster.label}: keyId is not known during preview and does not depend on a Key of this "
                    "stack, so which vault must record its key operations cannot be decided.",
                    kms.cluster.urn,
                )
            )
            continue
        vault = kms.vault
        if vault is None:
            findings.append(
                _not_applicable(
                    f"the KMS vault of {kms.cluster.label} ({kms.vault_label}) is not created in this stack; its "
                    "owner's audit logging applies."
                )
            )
            continue
        reasons: list[str] = []
        undecided: list[str] = []
        passed = False
        for setting in settings:
            verdict = _audit_setting_verdict(setting, kms)
            if verdict is True:
                passed = True
                break
            if verdict is None:
                undecided.append(setting.label)
            elif verdict:
                reasons.append(verdict)
        if passed:
            continue
        if undecided:
            findings.append(
                _undecided(
                    f"{vault.label}: whether {', '.join(undecided)} sends the vault's AuditEvent somewhere is not "
                    "known during preview.",
                    vault.urn,
                )
            )
            continue
        why = f" ({'; '.join(reasons)})" if reasons else " (no monitor.DiagnosticSetting has it as resourceUri)"
        findings.append(
            _violation(
                f"{vault.label} is the KMS vault of {kms.cluster.label} and does not send AuditEvent anywhere{why}: "
                "without it no encrypt or decrypt by the KMS identity is recorded, and failed key access raises no "
                f"alert. The program creates this setting from the stack config {MONITORING_CONFIG_KEY} (on by "
                "default; monitoring.workspaceResourceId picks an existing workspace): keep it. In code: a "
                'monitor.DiagnosticSetting with resource_uri=<the vault>.id, logs=[{category: "AuditEvent" (or '
                'categoryGroup "audit"), enabled: True}] and a destination such as workspace_id.',
                vault.urn,
            )
        )
    return _dedupe(findings)
