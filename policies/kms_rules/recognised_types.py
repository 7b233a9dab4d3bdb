"""aks-kms-recognised-types: a resource that names a KMS-relevant type (ManagedCluster, Vault, Key,
UserAssignedIdentity, RoleAssignment, AccessPolicy) does so in a type-token form the pack can read.

Every other policy finds its resources by their plain type (`azure_facts.tokens.plain_type`): a cluster declared
under a form no rule understands would be no cluster to them, and every KMS check would pass by not applying. This
rule turns that silence into a refusal. A resource rule: it takes the type token of each resource the engine analyzes.
"""

from __future__ import annotations

from azure_facts import tokens
from kms_rules.model import Finding, how_to_fix, violation


def check_recognised_type(token: str) -> list[Finding]:
    """A violation when `token` names a KMS-relevant type in a form azure_facts.tokens does not understand."""
    try:
        tokens.canonical_type(token)
    except tokens.UnrecognisedKmsToken as error:
        module, name = error.canonical.split(":")[1:]
        return [
            violation(
                f"{error}"
                + how_to_fix(
                    None,
                    f"declare it with the azure-native SDK, under its default API version "
                    f"(pulumi_azure_native.{module}.{name}, type {error.canonical}) or under another one added with "
                    f"`pulumi package add azure-native {module} <version>` "
                    f"(type azure-native_{module}_<version>:{module}/<version>:{name}); docs/policies.md, Type tokens",
                )
            )
        ]
    return []
