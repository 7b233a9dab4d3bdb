"""Cluster tools: what works on a running Kubernetes cluster after `pulumi up` (`kms-aks reencrypt`,
`kms-aks key-status`): `connection` (the kubeconfig and the checks before any write), `keys` (the key the stack
pins; its spellings are `azure_facts.key_ids`), `key_metrics` and `metrics` (the API server's envelope metrics),
`reencryption_records` (the re-encryption records in `rotations/`); `reencrypt`'s parts: `rewrite` (the write
pass), `checkpoint`, `progress`, `throttle`, `verify` (the verification pass; `replicas` the API server replicas'
counters) and `pass_record` (the record a pass writes). The real control plane they are proven on is
the test bed (`testbed/`, not shipped)."""
