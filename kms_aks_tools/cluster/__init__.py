"""Cluster tools: what works on a running Kubernetes cluster after `pulumi up` (`kms-aks reencrypt`,
`kms-aks key-status`), the records they leave for review (records.py), and the real Kubernetes control plane
they are proven on in the e2e scenarios (docs/real-cluster.md): etcd, kube-apiserver with KMS v2 encryption of
Secrets, our KMS plugin and a Key Vault data-plane stand-in; and how to read etcd's bytes."""

from kms_aks_tools.cluster.controlplane import ControlPlane, ControlPlaneError, build_binaries
from kms_aks_tools.cluster.envelope import Envelope, envelope_key_id, parse_envelope

__all__ = [
    "ControlPlane",
    "ControlPlaneError",
    "Envelope",
    "build_binaries",
    "envelope_key_id",
    "parse_envelope",
]
