"""The test bed (not shipped: `pip install .` leaves it out): the real Kubernetes control plane the cluster tools
(`kms_aks_tools.cluster`) are proven on in the e2e scenarios (docs/real-cluster.md): etcd, kube-apiserver with
KMS v2 encryption of Secrets, our KMS plugin and a Key Vault data-plane stand-in (`keyvault`); and how to read
etcd's bytes (`envelope`). It may import kms_aks_tools; nothing in kms_aks_tools imports it."""

from testbed.controlplane import ControlPlane, ControlPlaneError, build_binaries
from testbed.envelope import Envelope, envelope_key_id, parse_envelope

__all__ = [
    "ControlPlane",
    "ControlPlaneError",
    "Envelope",
    "build_binaries",
    "envelope_key_id",
    "parse_envelope",
]
