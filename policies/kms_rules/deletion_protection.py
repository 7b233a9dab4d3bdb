"""aks-kms-deletion-protection: the KMS key, its vault and the cluster identity, when in this stack, are protected."""

from __future__ import annotations

from kms_rules.model import (
    IDENTITY,
    KEY,
    VAULT,
    Finding,
    StackIndex,
    could_not_decide,
    dedupe,
    how_to_fix,
    violation,
)


def check_deletion_protection(index: StackIndex) -> list[Finding]:
    """The KMS key, its vault and the cluster's identity are protected from deletion (`protect`)."""
    findings: list[Finding] = []
    for kms in index.kms_clusters:
        if kms.key_unresolved:
            findings.append(
                could_not_decide(
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
                violation(
                    f"{res.label} is {role} of {kms.cluster.label} and is not protected: deleting it (a pulumi "
                    "destroy, a rename, a replace) makes every secret in the cluster's etcd unreadable; moving to "
                    "another key is a planned rotation (docs/rotation.md), never a delete."
                    + how_to_fix(
                        "kms-aks:protectKmsResources: true",
                        "pass protect=True in its resource options (pulumi.ResourceOptions(protect=True))",
                    ),
                    res.urn,
                )
            )
    return dedupe(findings)
