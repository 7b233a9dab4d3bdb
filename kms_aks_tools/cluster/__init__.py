"""Cluster tools: what works on a running Kubernetes cluster after `pulumi up` (`kms-aks reencrypt`,
`kms-aks key-status`): `connection` (the kubeconfig and the checks before any write), `keys` (the stack's key in
its three spellings), `key_metrics` and `metrics` (the API server's envelope metrics), `records` (the
re-encryption records in `rotations/`). The real control plane they are proven on is the test bed (`testbed/`,
not shipped)."""
