"""Bad stack config is refused before anything is registered, with every problem named by its key."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError
from pydantic_core import SchemaValidator, core_schema

from kms_aks.config.base import ConfigError
from kms_aks.config.stack import parse_stack_config
from kms_aks_tools.project.stack_file import load_stack_file, stack_names
from tests.engine import run_stack

DEV_CLUSTER = {"name": "aks-kms-dev", "kubernetesVersion": "1.33", "systemNodePool": {"count": 2}}
DEV_VAULT = {"name": "kv-kmsaks-dev-01", "sku": "standard", "permissionModel": "accessPolicy"}


def _refused(overrides: dict[str, Any]) -> str:
    """Runs the real program on dev with `overrides`; asserts it stopped before registering anything."""
    recorded = run_stack("dev", config=overrides)
    assert recorded.error is not None, "the program accepted a config it should refuse"
    registered = [r.type for r in recorded.resources if r.type != "pulumi:pulumi:Stack"]
    assert registered == [], f"resources were registered: {registered}"
    assert "Traceback" not in recorded.error
    return recorded.error


@pytest.mark.parametrize(
    ("overrides", "key", "explanation"),
    [
        (
            {"kms-aks:cluster": {**DEV_CLUSTER, "systemNodePool": {"count": "banana"}}},
            "cluster.systemNodePool.count",
            "valid integer (got 'banana')",
        ),
        (
            {"kms-aks:cluster": {**DEV_CLUSTER, "systemNodePool": {"count": 0}}},
            "cluster.systemNodePool.count",
            "greater than or equal to 1 (got 0)",
        ),
        ({"kms-aks:kmsKey": {"size": 1024}}, "kmsKey.size", "2048, 3072 or 4096 (got 1024)"),
        ({"kms-aks:kmsKey": {"type": "RSA-HSM"}}, "kmsKey.type", "needs kms-aks:keyVault.sku 'premium'"),
        (
            {"kms-aks:keyVault": {**DEV_VAULT, "softDeleteRetentionDays": 3}},
            "keyVault.softDeleteRetentionDays",
            "greater than or equal to 7 (got 3)",
        ),
        ({"kms-aks:kmsKey": {"type": "EC"}}, "kmsKey.type", "'RSA' or 'RSA-HSM' (got 'EC')"),
        (
            {
                "kms-aks:keyVault": None,
                "kms-aks:kmsKey": None,
                "kms-aks:existingKey": {
                    "keyId": "https://kv-team.vault.azure.net/keys/etcd",
                    "keyVaultResourceId": "/subscriptions/11111111-2222-3333-4444-555555555555"
                    "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-team",
                    "permissionModel": "rbac",
                },
            },
            "existingKey",
            "is not a versioned Key Vault key id",
        ),
        (
            {
                "kms-aks:keyVault": None,
                "kms-aks:kmsKey": None,
                "kms-aks:existingKey": {"keyId": "not a url", "keyVaultResourceId": "/x", "permissionModel": "rbac"},
            },
            "existingKey",
            "is not a versioned Key Vault key id",
        ),
        (
            {"kms-aks:keyVault": {**DEV_VAULT, "name": "kv_with_underscores"}},
            "keyVault.name",
            "3-24 characters, letters, digits and hyphens",
        ),
        ({"kms-aks:keyVault": {**DEV_VAULT, "name": "kv"}}, "keyVault.name", "3-24 characters"),
        (
            {"kms-aks:keyVault": {**DEV_VAULT, "name": "kv-this-name-is-far-too-long"}},
            "keyVault.name",
            "3-24 characters",
        ),
        ({"kms-aks:location": None}, "location", "required but not set"),
    ],
    ids=[
        "count-banana",
        "count-zero",
        "key-1024",
        "hsm-on-standard",
        "retention-3",
        "key-type-ec",
        "byok-unversioned",
        "byok-malformed",
        "vault-name-chars",
        "vault-name-short",
        "vault-name-long",
        "no-location",
    ],
)
def test_bad_config_is_refused_naming_its_key(overrides: dict[str, Any], key: str, explanation: str) -> None:
    error = _refused(overrides)
    line = next((line for line in error.splitlines() if f"kms-aks:{key}" in line), None)
    assert line is not None, f"no problem names kms-aks:{key}:\n{error}"
    assert explanation in line, line


def test_every_problem_is_reported_at_once() -> None:
    error = _refused(
        {
            "kms-aks:location": None,
            "kms-aks:keyVault": {"name": "k", "softDeleteRetentionDays": 3},
            "kms-aks:kmsKey": {"type": "RSA-HSM", "size": 1024},
            "kms-aks:cluster": {**DEV_CLUSTER, "systemNodePool": {"count": "banana"}},
            "kms-aks:clutser": {},
        }
    )
    for key in (
        "location",
        "keyVault.name",
        "keyVault.softDeleteRetentionDays",
        "kmsKey.size",
        "kmsKey.type",
        "cluster.systemNodePool.count",
        "clutser",
    ):
        assert f"kms-aks:{key}:" in error, f"{key} missing from:\n{error}"
    assert error.startswith("invalid stack config (7 problems)")


def test_wrong_types_are_not_coerced() -> None:
    base = load_stack_file("dev")
    raw = {key.removeprefix("kms-aks:"): value for key, value in base.items() if key.startswith("kms-aks:")}
    for cluster in (
        {**DEV_CLUSTER, "systemNodePool": {"count": True}},
        {**DEV_CLUSTER, "systemNodePool": {"count": 2.5}},
        {**DEV_CLUSTER, "systemNodePool": {"count": "3"}},
        {**DEV_CLUSTER, "kubernetesVersion": 1.33},
    ):
        with pytest.raises(ConfigError):
            parse_stack_config({**raw, "cluster": cluster})
    with pytest.raises(ConfigError, match="protectKmsResources"):
        parse_stack_config({**raw, "protectKmsResources": "yes"})


def test_unknown_keys_are_refused_with_the_allowed_ones() -> None:
    error = _refused({"kms-aks:keyvault": {"name": "kv-x"}})
    assert "kms-aks:keyvault: unknown config key; allowed keys:" in error
    assert "keyVault" in error
    nested = _refused({"kms-aks:cluster": {**DEV_CLUSTER, "nodeCount": 3}})
    assert "kms-aks:cluster.nodeCount: unknown setting" in nested


def test_byok_ids_must_name_the_same_vault() -> None:
    error = _refused(
        {
            "kms-aks:keyVault": None,
            "kms-aks:kmsKey": None,
            "kms-aks:existingKey": {
                "keyId": "https://kv-one.vault.azure.net/keys/etcd/0123456789abcdef0123456789abcdef",
                "keyVaultResourceId": "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg"
                "/providers/Microsoft.KeyVault/vaults/kv-two",
                "permissionModel": "rbac",
            },
        }
    )
    assert "kms-aks:existingKey: keyId names vault 'kv-one' but keyVaultResourceId names vault 'kv-two'" in error


def test_byok_cannot_be_mixed_with_a_new_vault() -> None:
    error = _refused(
        {
            "kms-aks:existingKey": {
                "keyId": "https://kv-one.vault.azure.net/keys/etcd/0123456789abcdef0123456789abcdef",
                "keyVaultResourceId": "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg"
                "/providers/Microsoft.KeyVault/vaults/kv-one",
                "permissionModel": "rbac",
            }
        }
    )
    assert "existingKey (bring your own key) cannot be combined with keyVault or kmsKey" in error


def test_rotation_must_come_before_expiry() -> None:
    error = _refused({"kms-aks:kmsKey": {"rotation": {"rotateAfterDays": 360, "expireAfterDays": 365}}})
    assert (
        "kms-aks:kmsKey.rotation: rotateAfterDays (360) must be at least 7 days shorter than expireAfterDays" in error
    )


def test_no_key_source_is_refused() -> None:
    error = _refused({"kms-aks:keyVault": None})
    assert "kms-aks:keyVault: required, unless kms-aks:existingKey brings your own key" in error


@pytest.mark.stacks
def test_every_stack_parses() -> None:
    assert {"dev", "prod"} <= set(stack_names())
    for stack in stack_names():
        raw = {k.removeprefix("kms-aks:"): v for k, v in load_stack_file(stack).items() if k.startswith("kms-aks:")}
        config = parse_stack_config(raw)
        assert config.cluster.kubernetes_version == "1.33"


# Each pattern given to pydantic as an unbounded pattern plus bounds checked in Python (kms_aks.config.matching),
# with values at and across every bound, on every kind of character the classes take or refuse.
_WORKSPACE = "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.OperationalInsights/workspaces/{}"
_SUBSCRIPTION = "00000000-0000-4000-8000-000000000000"
_BOUNDED_PATTERNS = {
    "ResourceGroupName": (
        r"^[-\w._()]{1,89}[-\w_()]$",
        [
            *(c * n for c in ("a", "é", "_", "(", "-", "٣") for n in (1, 2, 3, 89, 90, 91, 200)),
            *("a" * n + "." for n in (1, 88, 89, 90)),
            *("." * n + "a" for n in (1, 88, 89, 90)),
            *("rg-kms.aks(1)", "rg kms", "rg/kms", "rg\n", "rg\u200d", ""),
        ],
    ),
    "EmailAddress": (
        r"^[^@\s]{1,64}@[^@\s]{1,255}\.[A-Za-z]{2,}$",
        [
            *(f"{'a' * n}@contoso.com" for n in (0, 1, 63, 64, 65)),
            *(f"sre@{'b' * n}.com" for n in (0, 1, 254, 255, 256)),
            *(f"sre@{'b.' * n}com" for n in (1, 127, 128, 129)),
            *("sre@contoso.c", "sre@contoso.co1", "sré@kontoso.de", "sre@@contoso.com", "s re@contoso.com"),
            *("sre@contoso.com\n", "sre@contoso..com"),
        ],
    ),
    "WorkspaceResourceId": (
        r"^/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[-\w._()]{1,90}/providers/"
        r"Microsoft\.OperationalInsights/workspaces/[A-Za-z0-9][A-Za-z0-9-]{2,61}[A-Za-z0-9]$",
        [
            *(_WORKSPACE.format(_SUBSCRIPTION, "r" * n, "law-kms") for n in (0, 1, 89, 90, 91)),
            *(_WORKSPACE.format(_SUBSCRIPTION, "é" * n, "law-kms") for n in (90, 91)),
            _WORKSPACE.format(_SUBSCRIPTION, "rg.", "law-kms"),
            _WORKSPACE.format(_SUBSCRIPTION, "rg/x", "law-kms"),
            _WORKSPACE.format(_SUBSCRIPTION[:-1], "rg", "law-kms"),
            _WORKSPACE.format(_SUBSCRIPTION, "rg", "la"),
            _WORKSPACE.format(_SUBSCRIPTION, "rg", "law-kms") + "\n",
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(_BOUNDED_PATTERNS))
def test_patterns_checked_in_two_steps_accept_exactly_what_the_pattern_accepts(name: str) -> None:
    import kms_aks.config.stack as config
    from kms_aks.config.base import PATTERN_RULES

    pattern, values = _BOUNDED_PATTERNS[name]
    checked = TypeAdapter(getattr(config, name))
    whole = SchemaValidator(core_schema.str_schema(pattern=pattern, strict=True))
    accepted = 0
    for value in values:
        try:
            whole.validate_python(value)
        except ValidationError:
            with pytest.raises(ValidationError) as refused:
                checked.validate_python(value)
            # Refused with the whole pattern's rule, whichever step refused it.
            (error,) = refused.value.errors()
            assert error["type"] == "string_pattern_mismatch", value
            assert PATTERN_RULES[error["ctx"]["pattern"]] == PATTERN_RULES[pattern], value
        else:
            assert checked.validate_python(value) == value
            accepted += 1
    assert 0 < accepted < len(values)


def test_every_config_describes_its_errors_one_way_and_takes_key_vault_patterns_from_azure_facts() -> None:
    # One home each (issue 20): the error description in kms_aks/config/base.py, the vault, key and version
    # patterns in azure_facts (shared with the pack), never retyped in a config module.
    import ast
    from pathlib import Path

    import azure_facts

    package = Path(__file__).resolve().parents[1] / "kms_aks"
    describers = sorted(
        f"{path.relative_to(package)}:{node.name}"
        for path in package.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef) and "describe" in node.name
    )
    assert describers == ["config/base.py:describe"]
    for pattern in (azure_facts.VAULT_NAME_PATTERN, azure_facts.KEY_NAME_PATTERN, azure_facts.KEY_VERSION_PATTERN):
        for path in package.rglob("*.py"):
            assert pattern not in path.read_text(), (path, pattern)


_BYOK = {
    "keyId": "https://kv-team-keys.vault.azure.net/keys/aks-etcd/0123456789abcdef0123456789abcdef",
    "keyVaultResourceId": "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-keys/providers/"
    "Microsoft.KeyVault/vaults/kv-team-keys",
    "permissionModel": "rbac",
}


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        (
            {"keyType": "RSA-HSM", "purgeProtection": False},
            "kms-aks:existingKey.purgeProtection: false: a KMS key's vault must have purge protection",
        ),
        ({"keyType": "RSA-HSM"}, "purgeProtection is not declared beside keyType: declare both"),
        ({"purgeProtection": True}, "keyType is not declared beside purgeProtection: declare both"),
        ({"keyType": "EC", "purgeProtection": True}, "kms-aks:existingKey.keyType: Input should be 'RSA' or 'RSA-HSM'"),
        (
            {"keyType": "RSA", "purgeProtection": True, "softDeleteRetentionDays": 3},
            "kms-aks:existingKey.softDeleteRetentionDays: Input should be greater than or equal to 7",
        ),
        ({"auditLogging": "yes"}, "kms-aks:existingKey.auditLogging: must be a valid boolean, true or false"),
    ],
)
def test_a_bring_your_own_keys_declared_properties_are_validated_in_config(declared: dict, expected: str) -> None:
    base = {"location": "westeurope", "cluster": DEV_CLUSTER}
    with pytest.raises(ConfigError) as error:
        parse_stack_config({**base, "existingKey": {**_BYOK, **declared}})
    assert any(expected in problem for problem in error.value.problems), error.value.problems


def test_a_bring_your_own_keys_declared_properties_reach_the_cluster_as_tags() -> None:
    declared = {"keyType": "RSA-HSM", "purgeProtection": True, "softDeleteRetentionDays": 90, "auditLogging": True}
    stack = run_stack(
        "dev", config={"kms-aks:keyVault": None, "kms-aks:kmsKey": None, "kms-aks:existingKey": {**_BYOK, **declared}}
    )
    assert stack.error is None, stack.error
    [cluster] = [r for r in stack.resources if r.type == "azure-native:containerservice:ManagedCluster"]
    assert {k: v for k, v in cluster.inputs["tags"].items() if k.startswith("kms-aks-existing")} == {
        "kms-aks-existing-key-type": "RSA-HSM",
        "kms-aks-existing-vault-purge-protection": "true",
        "kms-aks-existing-vault-soft-delete-days": "90",
        "kms-aks-existing-vault-audit-logging": "true",
    }


def test_the_bring_your_own_key_example_in_the_docs_is_a_valid_declaration() -> None:
    # docs/configuration.md, "Bring your own key": the block a user copies into Pulumi.<stack>.yaml, read as the
    # stack file is read, then validated as the program validates it.
    import re
    from pathlib import Path

    import yaml

    page = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text()
    section = page.split("## Bring your own key", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"^```yaml\n(.*?)^```", section, re.M | re.S)
    declared = yaml.safe_load("config:\n" + block)["config"]["kms-aks:existingKey"]
    config = parse_stack_config({"location": "westeurope", "cluster": DEV_CLUSTER, "existingKey": declared})
    assert config.existing_key is not None
    assert (config.existing_key.key_type, config.existing_key.purge_protection) == ("RSA-HSM", True)
    assert config.existing_key.audit_logging is True
