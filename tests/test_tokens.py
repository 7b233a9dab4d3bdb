"""azure_facts.tokens: every form of a KMS-relevant azure-native token reads as its plain type; an unknown form
of one is refused, never passed as "some other resource"."""

from __future__ import annotations

import pytest

from azure_facts.tokens import UnrecognisedKmsToken, canonical_type, is_kms_relevant, parse


@pytest.mark.parametrize(
    ("token", "plain", "api_version", "form"),
    [
        ("azure-native:containerservice:ManagedCluster", "azure-native:containerservice:ManagedCluster", None, "plain"),
        (
            "azure-native:containerservice/v20240801:ManagedCluster",
            "azure-native:containerservice:ManagedCluster",
            "v20240801",
            "versioned-module",
        ),
        (
            "azure-native_containerservice_v20250901:containerservice/v20250901:ManagedCluster",
            "azure-native:containerservice:ManagedCluster",
            "v20250901",
            "parameterized",
        ),
        (
            "azure-native_containerservice_v20250901:containerservice:ManagedCluster",
            "azure-native:containerservice:ManagedCluster",
            "v20250901",
            "parameterized",
        ),
        (
            "azure-native_keyvault_v20240401preview:keyvault/v20240401preview:Key",
            "azure-native:keyvault:Key",
            "v20240401preview",
            "parameterized",
        ),
        ("azure-native:keyvault/v20230701:Vault", "azure-native:keyvault:Vault", "v20230701", "versioned-module"),
        (
            "azure-native:authorization/v20220401:RoleAssignment",
            "azure-native:authorization:RoleAssignment",
            "v20220401",
            "versioned-module",
        ),
    ],
)
def test_each_form_reads_as_the_plain_type(token: str, plain: str, api_version: str | None, form: str) -> None:
    parsed = parse(token)
    assert parsed is not None
    assert (parsed.canonical, parsed.api_version, parsed.form) == (plain, api_version, form)
    assert canonical_type(token) == plain
    assert is_kms_relevant(token)


@pytest.mark.parametrize(
    "token",
    [
        "azure-native:ContainerService:ManagedCluster",  # not a token azure-native makes (module case)
        "azure-native:containerservice:managedCluster",
        "azure-native_containerservice_v20250901:keyvault:Key",  # the package names another module
        "azure-native_keyvault_v20240401:keyvault/v20230701:Key",  # the package names another version
        "azure-native:keyvault/latest:Vault",
        "azure:keyvault/key:Key",  # the classic provider's key: not understood, so not skipped either
        "azure-native-preview:managedidentity:UserAssignedIdentity",
    ],
)
def test_an_unknown_form_of_a_kms_type_is_refused(token: str) -> None:
    with pytest.raises(UnrecognisedKmsToken, match="in no form kms-aks understands"):
        canonical_type(token)


@pytest.mark.parametrize(
    "token",
    [
        "azure-native:recoveryservices:Vault",  # a Recovery Services vault, not a Key Vault
        "azure-native:keyvault:Secret",
        "azure-native:network/v20240101:VirtualNetwork",
        "kubernetes:core/v1:Secret",
        "pulumi:pulumi:Stack",
        "pulumi:providers:azure-native",
        "kms-aks:index:KmsAksCluster",
        "time:index/sleep:Sleep",
    ],
)
def test_other_types_are_not_kms_relevant(token: str) -> None:
    assert not is_kms_relevant(token)
