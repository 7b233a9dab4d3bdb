"""aks-kms-secret-limit: at most 2000 Kubernetes Secrets (KMS v1), or only below Kubernetes 1.27 with kmsV2Aware.

A stack rule: it takes the indexed stack and the policy's config, and returns findings with the URN they are about.
"""

from __future__ import annotations

from kms_rules.model import (
    DEFAULT_MAX_SECRETS,
    KMS_V2_MIN_VERSION,
    SECRET,
    Finding,
    StackIndex,
    could_not_decide,
    first_present,
    how_to_fix,
    is_unknown,
    kubernetes_minor,
    violation,
)


def check_secret_limit(
    index: StackIndex, *, max_secrets: int = DEFAULT_MAX_SECRETS, kms_v2_aware: bool = False
) -> list[Finding]:
    """At most `max_secrets` Kubernetes Secrets; with `kms_v2_aware`, only while a KMS cluster is below 1.27.

    KMS v1 holds at most 2000 Secrets whatever the config says: a `max_secrets` above that is capped for every
    cluster that may run KMS v1 (issue 22: `maxSecrets: 5000` let 2,100 Secrets through on a v1 cluster).
    """
    count = index.type_counts.get(SECRET, 0)
    capped = max_secrets > DEFAULT_MAX_SECRETS
    max_secrets = min(max_secrets, DEFAULT_MAX_SECRETS)
    if count <= max_secrets:
        return []
    fix = (
        f"Keep at most {max_secrets} {SECRET} resources in this stack (consolidate Secrets or move some to "
        "another stack)"
    )
    limit = f"{count} Kubernetes Secrets in this stack; AKS KMS (KMS v1) supports at most {max_secrets} per cluster"
    if capped:
        limit += " (maxSecrets above 2000 does not raise KMS v1's limit)"
    if not kms_v2_aware:
        return [
            violation(
                f"{limit}."
                + how_to_fix(
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
            violation(
                f"{limit}. No KMS cluster in this stack shows which Kubernetes version the Secrets go to, so the "
                f"KMS v1 limit applies. {fix}."
            )
        ]
    findings = []
    for kms in clusters:
        props = kms.cluster.props
        version = first_present(props.get("kubernetesVersion"), props.get("currentKubernetesVersion"))
        if is_unknown(version):
            findings.append(
                could_not_decide(
                    f"{limit}; the Kubernetes version of {kms.cluster.label} is not known during preview.",
                    kms.cluster.urn,
                )
            )
            continue
        minor = kubernetes_minor(version)
        if minor is None or minor < KMS_V2_MIN_VERSION:
            shown = f'Kubernetes "{version}"' if version is not None else "no kubernetesVersion (AKS's default)"
            findings.append(
                violation(
                    f"{limit}, and {kms.cluster.label} runs {shown}, which uses KMS v1."
                    + how_to_fix(
                        f'kms-aks:cluster.kubernetesVersion: "{KMS_V2_MIN_VERSION[0]}.{KMS_V2_MIN_VERSION[1]}" or '
                        "later (KMS v2; quoted)",
                        f"set kubernetesVersion to {KMS_V2_MIN_VERSION[0]}.{KMS_V2_MIN_VERSION[1]} or later, or "
                        f"{fix[0].lower()}{fix[1:]}",
                    ),
                    kms.cluster.urn,
                )
            )
    return findings
