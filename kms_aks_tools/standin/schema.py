"""azure-native's Check: the defaults it applies and the schema constraints it refuses, per resource type.

How azure-native's Check works (pulumi/pulumi-azure-native `provider/pkg/provider/provider.go`: `Check`,
`applyDefaults`, `getDefaultName`, `getDefaultLocation`, `validateType`, `validateProperty`):
- defaults first (`applyDefaults`), for every PUT parameter of the resource's metadata:
  - auto-naming: a parameter with an `autoName` strategy that the inputs leave unset keeps the old inputs' value
    (and their `__createBeforeDelete`), else gets `random` (the URN name plus 8 characters from [0-9a-f], drawn
    from the engine's random seed: `resource.NewUniqueName(randomSeed, name, 8, 0, nil)`, and
    `__createBeforeDelete: true`), `uuid` (a UUID from 32 seeded hex characters, `__createBeforeDelete: true`)
    or `copy` (the URN name as is, no marker);
  - auto-location: a body with a `location` property the inputs leave unset gets the old inputs' location, else
    the provider's `location` config, else the resource group's location (unknown while the group's name is);
  - `azureApiVersion` (3.x): the API version of the resource's metadata, when the inputs leave it unset;
- then validation, each failure a `CheckFailure` with only a reason (no property path), in azure-native's words:
  `missing required property '<path>'` (for `location` with the `pulumi config set azure-native:location` hint),
  `'<path>' should be of type '<type>' but got a string|a number|an array`, `'<path>' is too short (n): at least
  m characters required`, `... is too long ...`, `'<path>' does not match expression '<pattern>'`, `'<path>' must
  be an integer but got <f>`, `'<path>' is too low (<v> < <min>)`, `... is too high ...`. Unknown values are not
  validated; booleans are never type-checked (validateProperty has no case for them); a map is validated only
  against a `$ref` type; enum values are NOT checked by Check (ARM refuses them at PUT time: `arm.py`).

The tables below are azure-native's metadata for the types that matter for KMS, written down from the REST specs
azure-native generates it from (each table cites its spec). Only the properties the program sets, the required
ones and the KMS-relevant ones are listed: a property missing from a table is not validated (as an unknown
property is not, in azure-native). Types without a table get the old path-parameter check (`rules.RULES`).
Add a type by adding one `ResourceSchema` to `SCHEMAS` (a Fleet module can `SCHEMAS.update(...)`).
"""

from __future__ import annotations

import functools
import importlib.util
import random
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azure_facts.engine import name_from_urn
from kms_aks_tools.standin.wire import UNKNOWN

CREATE_BEFORE_DELETE = "__createBeforeDelete"


@dataclass(frozen=True)
class Prop:
    """One property's constraints (azure-native's `AzureAPIProperty`)."""

    type: str = ""  # "string", "integer", "number", "boolean", "array", "object" or "" (a typed object / any)
    ref: Shape | None = None  # a typed object's shape (`$ref`)
    items: Prop | None = None  # an array's items
    min_length: int | None = None
    max_length: int | None = None
    pattern: str = ""
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[str, ...] = ()  # the values ARM accepts; not Check's business (see module doc)
    any: bool = False  # `pulumi.json#/Any`: never validated


@dataclass(frozen=True)
class Shape:
    """A body or object type: its properties by SDK name and the required ones."""

    properties: dict[str, Prop] = field(default_factory=dict)
    required: tuple[str, ...] = ()


@dataclass(frozen=True)
class Param:
    """A PUT path parameter by SDK name."""

    name: str
    value: Prop = field(default_factory=lambda: Prop(type="string"))
    required: bool = True
    auto_name: str = ""  # "random", "uuid", "copy" or "" (never auto-named)


@dataclass(frozen=True)
class ResourceSchema:
    params: tuple[Param, ...]
    body: Shape
    source: str
    custom: bool = False  # an azure-native custom resource: its metadata has no API version

    @property
    def auto_location(self) -> bool:
        return "location" in self.body.properties


STRING = Prop(type="string")
BOOLEAN = Prop(type="boolean")
INTEGER = Prop(type="integer")
TAGS = Prop(type="object")  # additionalProperties: string; a map without $ref is not validated
STRINGS = Prop(type="array", items=STRING)


def _enum(*values: str) -> Prop:
    return Prop(type="string", enum=values)


def _object(required: tuple[str, ...] = (), **properties: Prop) -> Prop:
    return Prop(ref=Shape(properties=properties, required=required))


# Common path parameters. resourceGroupName: common-types/resource-management/v5/types.json
# `ResourceGroupNameParameter` (minLength 1, maxLength 90, pattern ^[-\w\._\(\)]+$).
RESOURCE_GROUP_NAME = Param(
    "resourceGroupName", Prop(type="string", min_length=1, max_length=90, pattern=r"^[-\w\._\(\)]+$")
)
# keyvault.json / keys.json 2024-11-01: parameter `vaultName`, pattern ^[a-zA-Z0-9-]{3,24}$.
VAULT_NAME_VALUE = Prop(type="string", pattern=r"^[a-zA-Z0-9-]{3,24}$")

_ACCESS_POLICY_ENTRY = _object(
    ("tenantId", "objectId", "permissions"),
    tenantId=STRING,
    objectId=STRING,
    applicationId=STRING,
    permissions=_object(
        keys=Prop(
            type="array",
            items=_enum(
                "all",
                "encrypt",
                "decrypt",
                "wrapKey",
                "unwrapKey",
                "sign",
                "verify",
                "get",
                "list",
                "create",
                "update",
                "import",
                "delete",
                "backup",
                "restore",
                "recover",
                "purge",
                "release",
                "rotate",
                "getrotationpolicy",
                "setrotationpolicy",
            ),
        ),
        secrets=STRINGS,
        certificates=STRINGS,
        storage=STRINGS,
    ),
)

SCHEMAS: dict[str, ResourceSchema] = {
    # resources.json 2024-03-01 ResourceGroups_CreateOrUpdate; auto-named `random` (the recorded
    # upgrade-keyvault gRPC log: Check named "rg" "rg8979559d", with __createBeforeDelete).
    "azure-native:resources:ResourceGroup": ResourceSchema(
        params=(Param("resourceGroupName", RESOURCE_GROUP_NAME.value, auto_name="random"),),
        body=Shape({"location": STRING, "tags": TAGS, "managedBy": STRING}, required=("location",)),
        source="resources.json 2024-03-01 ResourceGroup (required: location)",
    ),
    # keyvault.json 2024-11-01 Vaults_CreateOrUpdate: VaultCreateOrUpdateParameters (required location,
    # properties), VaultProperties (required tenantId, sku), Sku (required family, name; family enum A, name enum
    # standard|premium), NetworkRuleSet (bypass AzureServices|None, defaultAction Allow|Deny). Auto-named
    # `random` (recorded upgrade-keyvault log: "vault" -> "vault0e651f7a", __createBeforeDelete).
    "azure-native:keyvault:Vault": ResourceSchema(
        params=(RESOURCE_GROUP_NAME, Param("vaultName", VAULT_NAME_VALUE, auto_name="random")),
        body=Shape(
            {
                "location": STRING,
                "tags": TAGS,
                "properties": _object(
                    ("tenantId", "sku"),
                    tenantId=STRING,
                    sku=_object(("family", "name"), family=_enum("A"), name=_enum("standard", "premium")),
                    accessPolicies=Prop(type="array", items=_ACCESS_POLICY_ENTRY),
                    enabledForDeployment=BOOLEAN,
                    enabledForDiskEncryption=BOOLEAN,
                    enabledForTemplateDeployment=BOOLEAN,
                    enableSoftDelete=BOOLEAN,
                    softDeleteRetentionInDays=INTEGER,
                    enableRbacAuthorization=BOOLEAN,
                    enablePurgeProtection=BOOLEAN,
                    createMode=_enum("recover", "default"),
                    publicNetworkAccess=STRING,
                    networkAcls=_object(
                        bypass=_enum("AzureServices", "None"),
                        defaultAction=_enum("Allow", "Deny"),
                        ipRules=Prop(type="array", items=_object(("value",), value=STRING)),
                        virtualNetworkRules=Prop(type="array", items=_object(("id",), id=STRING)),
                    ),
                ),
            },
            required=("location", "properties"),
        ),
        source="keyvault.json 2024-11-01 VaultCreateOrUpdateParameters",
    ),
    # keys.json 2024-11-01 Keys_CreateIfNotExist: KeyCreateParameters (required properties); KeyProperties kty
    # enum EC|EC-HSM|RSA|RSA-HSM, keySize int32, keyOps enum, curveName enum; KeyAttributes nbf/exp (SDK names
    # notBefore/expires) int64. keyName pattern ^[a-zA-Z0-9-]{1,127}$. Auto-named `copy`: the recorded
    # upgrade-keyvault log's Check gave Key "key" keyName "key", with no __createBeforeDelete.
    "azure-native:keyvault:Key": ResourceSchema(
        params=(
            RESOURCE_GROUP_NAME,
            Param("vaultName", VAULT_NAME_VALUE),
            Param("keyName", Prop(type="string", pattern=r"^[a-zA-Z0-9-]{1,127}$"), auto_name="copy"),
        ),
        body=Shape(
            {
                "tags": TAGS,
                "properties": _object(
                    kty=_enum("EC", "EC-HSM", "RSA", "RSA-HSM"),
                    keySize=INTEGER,
                    keyOps=Prop(
                        type="array",
                        items=_enum(
                            "encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", "import", "release"
                        ),
                    ),
                    curveName=_enum("P-256", "P-384", "P-521", "P-256K"),
                    attributes=_object(enabled=BOOLEAN, notBefore=INTEGER, expires=INTEGER, exportable=BOOLEAN),
                    rotationPolicy=_object(
                        attributes=_object(expiryTime=STRING),
                        lifetimeActions=Prop(
                            type="array",
                            items=_object(
                                trigger=_object(timeAfterCreate=STRING, timeBeforeExpiry=STRING),
                                action=_object(type=_enum("rotate", "notify")),
                            ),
                        ),
                    ),
                ),
            },
            required=("properties",),
        ),
        source="keys.json 2024-11-01 KeyCreateParameters",
    ),
    # ManagedIdentity.json 2023-01-31 UserAssignedIdentities_CreateOrUpdate: Identity is a TrackedResource
    # (required location). Auto-named `random` like every top-level resource of a resource group (the recorded
    # Vault and ResourceGroup).
    "azure-native:managedidentity:UserAssignedIdentity": ResourceSchema(
        params=(RESOURCE_GROUP_NAME, Param("resourceName", auto_name="random")),
        body=Shape({"location": STRING, "tags": TAGS}, required=("location",)),
        source="ManagedIdentity.json 2023-01-31 Identity (TrackedResource: location required)",
    ),
    # A custom resource (provider/pkg/resources/customresources/custom_keyvault_accesspolicy.go): PUT parameters
    # resourceGroupName and vaultName (path, required, no auto-name), a body whose required properties are
    # resourceGroupName, vaultName and policy, and whose `policy` has `Type: "#/types/...AccessPolicyEntry"` and
    # no `$ref`: so its inside is never validated (validateProperty skips a map without $ref), and a non-object
    # policy gets "should be of type '#/types/azure-native:keyvault:AccessPolicyEntry'". No API version.
    "azure-native:keyvault:AccessPolicy": ResourceSchema(
        params=(Param("resourceGroupName"), Param("vaultName")),
        body=Shape(
            {"policy": Prop(type="#/types/azure-native:keyvault:AccessPolicyEntry")},
            required=("resourceGroupName", "vaultName", "policy"),
        ),
        source="custom_keyvault_accesspolicy.go Meta.PutParameters",
        custom=True,
    ),
    # authorization-RoleAssignmentsCalls.json 2022-04-01 RoleAssignments_Create: path scope and roleAssignmentName
    # (auto-named `uuid`); RoleAssignmentCreateParameters.properties is flattened, its required roleDefinitionId and
    # principalId are top-level SDK inputs (the SDK raises "Missing required property 'principal_id'" too);
    # principalType enum.
    "azure-native:authorization:RoleAssignment": ResourceSchema(
        params=(Param("scope"), Param("roleAssignmentName", auto_name="uuid")),
        body=Shape(
            {
                "principalId": STRING,
                "roleDefinitionId": STRING,
                "principalType": _enum("User", "Group", "ServicePrincipal", "ForeignGroup", "Device"),
                "description": STRING,
                "condition": STRING,
                "conditionVersion": STRING,
                "delegatedManagedIdentityResourceId": STRING,
            },
            required=("principalId", "roleDefinitionId"),
        ),
        source="authorization-RoleAssignmentsCalls.json 2022-04-01 RoleAssignmentProperties",
    ),
    # managedClusters.json 2025-09-01 ManagedClusters_CreateOrUpdate: resourceName minLength 1, maxLength 63,
    # pattern ^[a-zA-Z0-9]$|^[a-zA-Z0-9][-_a-zA-Z0-9]{0,61}[a-zA-Z0-9]$ (auto-named `random`); ManagedCluster is a
    # TrackedResource (required location); agent pool `name` required with pattern ^[a-z][a-z0-9]{0,11}$,
    # osDiskSizeGB 0..2048; AzureKeyVaultKms.keyVaultNetworkAccess enum Public|Private; identity type enum.
    "azure-native:containerservice:ManagedCluster": ResourceSchema(
        params=(
            RESOURCE_GROUP_NAME,
            Param(
                "resourceName",
                Prop(
                    type="string",
                    min_length=1,
                    max_length=63,
                    pattern=r"^[a-zA-Z0-9]$|^[a-zA-Z0-9][-_a-zA-Z0-9]{0,61}[a-zA-Z0-9]$",
                ),
                auto_name="random",
            ),
        ),
        body=Shape(
            {
                "location": STRING,
                "tags": TAGS,
                "dnsPrefix": STRING,
                "kubernetesVersion": STRING,
                "supportPlan": _enum("KubernetesOfficial", "AKSLongTermSupport"),
                "enableRBAC": BOOLEAN,
                "disableLocalAccounts": BOOLEAN,
                "sku": _object(name=_enum("Base", "Automatic"), tier=_enum("Premium", "Standard", "Free")),
                "identity": _object(
                    type=_enum("SystemAssigned", "UserAssigned", "None"),
                    # azure-native turns the spec's map of identities into a list of ids on input.
                    userAssignedIdentities=STRINGS,
                ),
                "securityProfile": _object(
                    azureKeyVaultKms=_object(
                        enabled=BOOLEAN,
                        keyId=STRING,
                        keyVaultNetworkAccess=_enum("Public", "Private"),
                        keyVaultResourceId=STRING,
                    ),
                    workloadIdentity=_object(enabled=BOOLEAN),
                    imageCleaner=_object(enabled=BOOLEAN, intervalHours=INTEGER),
                    defender=_object(
                        logAnalyticsWorkspaceResourceId=STRING, securityMonitoring=_object(enabled=BOOLEAN)
                    ),
                ),
                "aadProfile": _object(
                    managed=BOOLEAN, enableAzureRBAC=BOOLEAN, tenantID=STRING, adminGroupObjectIDs=STRINGS
                ),
                "oidcIssuerProfile": _object(enabled=BOOLEAN),
                "autoUpgradeProfile": _object(
                    upgradeChannel=_enum("rapid", "stable", "patch", "node-image", "none"),
                    nodeOSUpgradeChannel=_enum("None", "Unmanaged", "NodeImage", "SecurityPatch"),
                ),
                "networkProfile": _object(
                    networkPlugin=_enum("azure", "kubenet", "none"),
                    networkPluginMode=_enum("overlay"),
                    networkPolicy=_enum("none", "calico", "azure", "cilium"),
                    networkDataplane=_enum("azure", "cilium"),
                    loadBalancerSku=_enum("standard", "basic"),
                    outboundType=_enum(
                        "loadBalancer", "userDefinedRouting", "managedNATGateway", "userAssignedNATGateway", "none"
                    ),
                ),
                "apiServerAccessProfile": _object(
                    authorizedIPRanges=STRINGS, enableVnetIntegration=BOOLEAN, subnetId=STRING
                ),
                "agentPoolProfiles": Prop(
                    type="array",
                    items=_object(
                        ("name",),
                        name=Prop(type="string", pattern=r"^[a-z][a-z0-9]{0,11}$"),
                        count=INTEGER,
                        maxPods=INTEGER,
                        vmSize=STRING,
                        osDiskSizeGB=Prop(type="integer", minimum=0, maximum=2048),
                        mode=_enum("System", "User", "Gateway"),
                        osType=_enum("Linux", "Windows"),
                        type=_enum("VirtualMachineScaleSets", "AvailabilitySet", "VirtualMachines"),
                        enableEncryptionAtHost=BOOLEAN,
                        enableNodePublicIP=BOOLEAN,
                        availabilityZones=STRINGS,
                        nodeTaints=STRINGS,
                        vnetSubnetID=STRING,
                    ),
                ),
            },
            required=("location",),
        ),
        source="managedClusters.json 2025-09-01 ManagedCluster",
    ),
}


# ---------------------------------------------------------------------------------------------- defaults


def new_unique_name(seed: bytes, prefix: str, length: int) -> str:
    """`prefix` plus `length` characters of [0-9a-f], a function of the engine's random seed when there is one.

    The shape of pulumi's `resource.NewUniqueName(randomSeed, prefix, length, 0, nil)`. The stream differs: Go's is
    lukechampine.com/frand (ChaCha8) over SHA-256(seed); this is Python's seeded generator. What matters to the
    engine holds: the same seed gives the same name (an update plan's `up` gets the name its preview showed).
    """
    draw = random.Random(seed) if seed else random.SystemRandom()
    return prefix + "".join(draw.choice("0123456789abcdef") for _ in range(length))


def default_name(strategy: str, urn: str, seed: bytes) -> tuple[str, bool]:
    """(name, randomly named) for an auto-named parameter the inputs and the old inputs leave unset."""
    name = name_from_urn(urn)
    if strategy == "random":
        return new_unique_name(seed, name, 8), True
    if strategy == "uuid":
        return str(uuid.UUID(hex=new_unique_name(seed, "", 32))), True
    return name, False  # "copy"


@functools.cache
def api_version(type_token: str) -> str:
    """The API version azure-native uses for `type_token`: the installed SDK's own docstring says it
    ("Uses Azure REST API version 2024-11-01."). "" when the type is not in the SDK."""
    parts = type_token.split(":")
    if len(parts) != 3 or parts[0] != "azure-native":
        return ""
    spec = importlib.util.find_spec("pulumi_azure_native")
    if spec is None or not spec.submodule_search_locations:
        return ""
    module = re.sub(r"(?<!^)(?=[A-Z])", "_", parts[2]).lower()
    source = Path(next(iter(spec.submodule_search_locations))) / parts[1].split("/")[0] / f"{module}.py"
    if not source.is_file():
        return ""
    found = re.search(r"Uses Azure REST API version ([0-9]{4}-[0-9]{2}-[0-9]{2}(?:-preview)?)", source.read_text())
    return found.group(1) if found else ""


def apply_defaults(
    type_token: str,
    schema: ResourceSchema,
    urn: str,
    seed: bytes,
    olds: dict[str, Any],
    news: dict[str, Any],
    resource_group_location: Any = None,
    config_location: str | None = None,
) -> None:
    """azure-native's `applyDefaults`, in place on `news`. `config_location` is the provider's `azure-native:location`
    config; `resource_group_location` the group's location as ARM knows it (None when ARM has none), or UNKNOWN
    while the group's name is unknown."""
    for param in schema.params:
        if param.auto_name and news.get(param.name) is None:
            if param.name in olds:
                news[param.name] = olds[param.name]
                if isinstance(olds.get(CREATE_BEFORE_DELETE), bool):
                    news[CREATE_BEFORE_DELETE] = olds[CREATE_BEFORE_DELETE]
            else:
                news[param.name], randomly = default_name(param.auto_name, urn, seed)
                if randomly:
                    news[CREATE_BEFORE_DELETE] = True
    if schema.auto_location and news.get("location") is None:
        if "location" in olds:
            news["location"] = olds["location"]
        elif config_location:
            news["location"] = config_location
        elif resource_group_location is not None:
            news["location"] = resource_group_location
    if not schema.custom and news.get("azureApiVersion") is None:
        version = api_version(type_token)
        if version:
            news["azureApiVersion"] = version


# ---------------------------------------------------------------------------------------------- validation


def check_failures(schema: ResourceSchema, values: dict[str, Any]) -> list[str]:
    """The reasons azure-native's Check gives for `values` (plain values: `wire.plain`; unknowns skipped)."""
    reasons: list[str] = []
    for param in schema.params:
        if param.name in values:
            reasons += _validate_property(param.name, param.value, values[param.name])
        elif param.required:
            reasons.append(f"missing required property '{param.name}'")
    reasons += _validate_type("", schema.body, values)
    return reasons


def _validate_type(context: str, shape: Shape, values: dict[str, Any]) -> list[str]:
    reasons = []
    for name in shape.required:
        if name not in values:
            path = f"{context}.{name}" if context else name
            reason = f"missing required property '{path}'"
            if path == "location":
                reason += (
                    ". Either set it explicitly or configure it with 'pulumi config set azure-native:location <value>'."
                )
            reasons.append(reason)
    for name in sorted(shape.properties):
        if name in values:
            path = f"{context}.{name}" if context else name
            reasons += _validate_property(path, shape.properties[name], values[name])
    return reasons


def _validate_property(context: str, prop: Prop, value: Any) -> list[str]:
    if value == UNKNOWN or prop.any:
        return []
    if isinstance(value, dict):
        return _validate_type(context, prop.ref, value) if prop.ref is not None else []
    if isinstance(value, list):
        if prop.type != "array":
            return [f"'{context}' should be of type '{prop.type}' but got an array"]
        items = prop.items or Prop(any=True)
        return [r for i, item in enumerate(value) for r in _validate_property(f"{context}[{i}]", items, item)]
    if isinstance(value, str):
        if prop.type != "string":
            return [f"'{context}' should be of type '{prop.type}' but got a string"]
        reasons = []
        if prop.min_length is not None and len(value) < prop.min_length:
            reasons.append(f"'{context}' is too short ({len(value)}): at least {prop.min_length} characters required")
        if prop.max_length is not None and len(value) > prop.max_length:
            reasons.append(f"'{context}' is too long ({len(value)}): at most {prop.max_length} characters allowed")
        if prop.pattern and not re.search(prop.pattern, value, re.ASCII):
            reasons.append(f"'{context}' does not match expression '{prop.pattern}'")
        return reasons
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if prop.type not in ("number", "integer"):
            return [f"'{context}' should be of type '{prop.type}' but got a number"]
        reasons = []
        number = float(value)
        if prop.type == "integer" and 1e-9 < abs(number) % 1 < 1 - 1e-9:
            reasons.append(f"'{context}' must be an integer but got {number:f}")
        if prop.minimum is not None and number < prop.minimum:
            reasons.append(f"'{context}' is too low ({number:f} < {prop.minimum:f})")
        if prop.maximum is not None and number > prop.maximum:
            reasons.append(f"'{context}' is too high ({number:f} > {prop.maximum:f})")
        return reasons
    return []  # booleans and nulls: azure-native's validateProperty has no case for them


# ---------------------------------------------------------------------------------------------- enums (ARM, at PUT)


def enum_violations(schema: ResourceSchema, values: dict[str, Any]) -> list[str]:
    """Values (plain: `wire.plain`) outside a property's enum: ARM's 400 at PUT time (azure-native's Check lets
    them through)."""
    return _enum_type("", schema.body, values)


def _enum_type(context: str, shape: Shape, values: dict[str, Any]) -> list[str]:
    found = []
    for name in sorted(shape.properties):
        if name in values:
            found += _enum_property(f"{context}.{name}" if context else name, shape.properties[name], values[name])
    return found


def _enum_property(context: str, prop: Prop, value: Any) -> list[str]:
    if isinstance(value, dict) and prop.ref is not None:
        return _enum_type(context, prop.ref, value)
    if isinstance(value, list) and prop.items is not None:
        return [v for i, item in enumerate(value) for v in _enum_property(f"{context}[{i}]", prop.items, item)]
    # ARM parses enums case-insensitively ("Standard" and "standard" are one SKU).
    allowed = {v.lower() for v in prop.enum}
    if isinstance(value, str) and prop.enum and value != UNKNOWN and value.lower() not in allowed:
        return [f"'{context}' is '{value}'; allowed: {', '.join(prop.enum)}"]
    return []
