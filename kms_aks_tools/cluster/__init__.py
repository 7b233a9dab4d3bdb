"""Cluster tools: what works on a running Kubernetes cluster after `pulumi up` (re-encryption, key status), the
records they leave for review, and the local control plane (etcd, kube-apiserver, a KMS v2 plugin) they are
proven on."""
