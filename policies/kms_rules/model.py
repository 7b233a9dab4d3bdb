"""The shared resource model of the kms-aks rules: type tokens, findings, property access, Key Vault ids, and the
stack as the stack rules see it (`Res`, `StackIndex`, `ClusterKms`).

Properties are camelCase, exactly as the engine holds them. A rule must read two shapes of each resource:
- `Analyze` gets the inputs (`properties.kty` on a Key, a list of identity ids on a cluster);
- `AnalyzeStack` gets the provider's outputs (a Key's `kty` at the top level, a cluster's identities as a
  map id -> {principalId, clientId}, a vault's `name` instead of `vaultName`).

Unknown values (preview) are the engine's sentinel strings (`is_unknown`): a rule never passes because a value is
unknown; it decides from the dependency graph or returns a `could_not_decide` finding.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import azure_facts as facts
from azure_facts import tokens

# Findings and property paths have one home each (azure_facts), shared with the guard and the tools; the rules
# take them from here.
from azure_facts.findings import Finding as Finding
from azure_facts.findings import Outcome as Outcome
from azure_facts.findings import could_not_decide as could_not_decide
from azure_facts.findings import not_applicable as not_applicable
from azure_facts.findings import violation as violation
from azure_facts.property_paths import UNKNOWN_SENTINELS as UNKNOWN_SENTINELS
from azure_facts.property_paths import dig as dig
from azure_facts.property_paths import is_unknown as is_unknown

# ------------------------------------------------------------------------------------------- type tokens
# The plain form of each type. A resource may reach the pack under another form of the same type (a versioned
# module, a package added with `pulumi package add azure-native <module> <version>`); `plain_type` reads every
# form the project understands (azure_facts.tokens.plain_type), and the rules only ever compare plain types.

CLUSTER = tokens.MANAGED_CLUSTER
VAULT = tokens.VAULT
KEY = tokens.KEY
IDENTITY = tokens.USER_ASSIGNED_IDENTITY
ACCESS_POLICY = tokens.ACCESS_POLICY
ROLE_ASSIGNMENT = tokens.ROLE_ASSIGNMENT
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

# --------------------------------------------------------------------------------------------- findings


def how_to_fix(stack_config: str | None, code: str) -> str:
    """The fix, as a sentence appended to a finding: the stack config first, then the code-level fix.

    `stack_config` names the `Pulumi.<stack>.yaml` key and value of this project (docs/configuration.md) that
    fixes it; None when this project's components always get it right and only code that builds the
    resources itself can break it. The pack imports nothing from the program: these are plain strings.
    """
    if stack_config is None:
        return f" Stack config: nothing to set, this project's components do it. In code: {code}."
    return f" Fix in Pulumi.<stack>.yaml: {stack_config}. In code: {code}."


def dedupe(findings: Iterable[Finding]) -> list[Finding]:
    return list(dict.fromkeys(findings))


# ------------------------------------------------------------------------------------- property access


def first_present(*values: Any) -> Any:
    """The first value that is present (not None); unknowns count as present."""
    return next((v for v in values if v is not None), None)


def known_text(value: Any) -> str | None:
    """A known, non-empty string, else None."""
    return value if isinstance(value, str) and value and not is_unknown(value) else None


def known_lower(value: Any) -> str | None:
    text = known_text(value)
    return text.lower() if text is not None else None


def as_list(value: Any) -> list[Any]:
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
    text = known_text(value)
    match = _KEY_URL.match(text.strip()) if text else None
    if match is None:
        return None
    return KeyRef(match["vault"].lower(), match["name"].lower(), match["version"] or None)


def arm_segments(resource_id: Any) -> dict[str, str]:
    """An ARM id's name/value pairs with lower-cased names: {"resourcegroups": ..., "vaults": ..., ...}.

    Values keep their case; Azure compares them case-insensitively, so callers lower() before comparing.
    """
    text = known_text(resource_id)
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
    text = known_text(version)
    match = _KUBERNETES_VERSION.match(text) if text else None
    return (int(match[1]), int(match[2])) if match else None


# ---------------------------------------------------------------------------------- resources and stack


# Compared by identity: a resource's properties are dicts, and one URN is one resource anyway.
@dataclass(frozen=True, slots=True, eq=False)
class Res:
    """A resource as a stack rule sees it: plain properties (inputs or outputs) and its place in the graph.

    `type` is the plain type (`plain_type`), which every rule compares; `token` is the type token the program
    declared it with, when another form, for messages.
    """

    type: str
    urn: str
    props: Mapping[str, Any]
    name: str = ""
    protect: bool = False
    dependencies: tuple[str, ...] = ()
    property_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    token: str = ""

    def deps_of(self, *properties: str) -> tuple[str, ...]:
        """URNs the given top-level properties depend on (the engine's `propertyDependencies`)."""
        if len(properties) == 1:
            return tuple(self.property_dependencies.get(properties[0], ()))
        return tuple(u for p in properties for u in self.property_dependencies.get(p, ()))

    @property
    def label(self) -> str:
        """`<type token> "<name>"` for messages: the token as declared, so the reader finds it in the program."""
        return f'{self.token or self.type} "{self.name or self.urn.rsplit("::", 1)[-1]}"'


def kms_settings(cluster: Res) -> Any:
    return dig(cluster.props, "securityProfile", "azureKeyVaultKms")


def vault_name_of(vault: Res) -> str | None:
    return known_lower(first_present(vault.props.get("vaultName"), vault.props.get("name")))


def key_name_of(key: Res) -> str | None:
    return known_lower(first_present(key.props.get("keyName"), key.props.get("name")))


def key_vault_name_of(key: Res) -> str | None:
    vault = known_lower(key.props.get("vaultName"))
    if vault is None:
        ref = parse_key_url(key.props.get("keyUri"))
        vault = ref.vault if ref else None
    return vault


def key_property(key: Res, name: str) -> Any:
    # Inputs nest key settings under `properties`; azure-native's outputs flatten them.
    return first_present(dig(key.props, "properties", name), key.props.get(name))


def key_matches(key: Res, ref: KeyRef) -> bool:
    vault, name = key_vault_name_of(key), key_name_of(key)
    # A Key whose names are not known yet cannot contradict the id.
    return (vault is None or vault == ref.vault) and (name is None or name == ref.name)


def identity_name_of(identity: Res) -> str | None:
    return known_lower(first_present(identity.props.get("resourceName"), identity.props.get("name")))


def identity_type_of(cluster: Res) -> Any:
    return dig(cluster.props, "identity", "type")


def is_user_assigned(identity_type: Any) -> bool:
    return isinstance(identity_type, str) and identity_type.replace(" ", "").lower() == "userassigned"


def cluster_identity_refs(props: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """The cluster's user-assigned identity ids (a list on input, a map's keys on output), and the output map."""
    assigned = dig(props, "identity", "userAssignedIdentities")
    if isinstance(assigned, Mapping):
        return list(assigned.keys()), dict(assigned)
    if is_unknown(assigned):
        return [assigned], {}
    return as_list(assigned), {}


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
            name = vault_name_of(vault)
            if name:
                self.vaults_by_name.setdefault(name, []).append(vault)
        self.keys_by_name: dict[tuple[str, str], list[Res]] = {}
        for key in self.by_type[KEY]:
            vault, name = key_vault_name_of(key), key_name_of(key)
            if vault and name:
                self.keys_by_name.setdefault((vault, name), []).append(key)
        self.identities_by_name: dict[str, list[Res]] = {}
        for identity in self.by_type[IDENTITY]:
            name = identity_name_of(identity)
            if name:
                self.identities_by_name.setdefault(name, []).append(identity)

        # Grants, by the principal they name and by the identity their principal comes from.
        self.grants_by_principal: dict[str, list[Res]] = {}
        self.grants_by_identity_urn: dict[str, list[Res]] = {}
        for grant in (*self.by_type[ACCESS_POLICY], *self.by_type[ROLE_ASSIGNMENT]):
            principal_key = "policy" if grant.type == ACCESS_POLICY else "principalId"
            principal = grant_principal(grant)
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
                connections.extend(as_list(source))
                if is_unknown(source):
                    connections.append(source)
        targets: list[Any] = []
        for connection in connections:
            if is_unknown(connection):
                targets.append(connection)
                continue
            if not isinstance(connection, Mapping):
                continue
            target = first_present(
                connection.get("privateLinkServiceId"), dig(connection, "properties", "privateLinkServiceId")
            )
            groups = first_present(connection.get("groupIds"), dig(connection, "properties", "groupIds"))
            known_groups = [g.lower() for g in as_list(groups) if known_text(g)]
            # "vault" is Key Vault's private link group; a known target that is not a vault is not our concern.
            if known_text(target) is not None:
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
            name = vault_name_of_resource_id(target) if known_text(target) and "/" in target else known_lower(target)
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
            enabled = dig(kms_settings(cluster), "enabled")
            if enabled is True or is_unknown(enabled) or is_unknown(kms_settings(cluster)):
                result.append(ClusterKms(cluster, self))
        return result


def grant_principal(grant: Res) -> str | None:
    if grant.type == ACCESS_POLICY:
        return known_lower(dig(grant.props, "policy", "objectId"))
    return known_lower(grant.props.get("principalId"))


class ClusterKms:
    """A KMS cluster and what its `keyId` and identity lead to in the stack."""

    def __init__(self, cluster: Res, index: StackIndex) -> None:
        self.cluster = cluster
        self.index = index
        settings = kms_settings(cluster)
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
            return [k for k in self.dependency_keys if key_matches(k, self.key_ref)]
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
            name = key_vault_name_of(key)
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
        return known_lower(self.network_access) == "private"

    @cached_property
    def identity_refs(self) -> tuple[list[Any], dict[str, Any]]:
        return cluster_identity_refs(self.cluster.props)

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
                candidate_group = known_lower(candidate.props.get("resourceGroupName"))
                if not group or candidate_group is None or candidate_group == group:
                    found[candidate.urn] = candidate
        return list(found.values())

    @cached_property
    def principals(self) -> set[str]:
        """Known principal ids of the cluster's identity: from the identity resource or the cluster's outputs."""
        principals = {p for i in self.identities if (p := known_lower(i.props.get("principalId")))}
        _, assigned = self.identity_refs
        for value in assigned.values():
            principal = known_lower(dig(value, "principalId"))
            if principal:
                principals.add(principal)
        return principals

    @property
    def identity_label(self) -> str:
        if self.identities:
            return " and ".join(i.label for i in self.identities)
        refs, _ = self.identity_refs
        known = [r for r in refs if known_text(r)]
        return f"identity {', '.join(known)}" if known else "the cluster's user-assigned identity"

    def kms_resources(self) -> list[Res]:
        """The key, vault and identity whose loss makes the cluster's secrets unreadable (those in this stack)."""
        resources = list(self.keys)
        if self.vault is not None:
            resources.append(self.vault)
        resources.extend(self.identities)
        return resources
