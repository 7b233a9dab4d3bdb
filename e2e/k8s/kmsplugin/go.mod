// Our KMS v2 plugin for the real control plane (docs/real-cluster.md): built on k8s.io/kms/pkg/service, the
// library real KMS plugins use; it wraps DEKs with the local Key Vault data-plane stand-in.
module kms-aks/e2e/k8s/kmsplugin

go 1.26

require k8s.io/kms v0.34.4

require (
	golang.org/x/net v0.38.0 // indirect
	golang.org/x/sys v0.31.0 // indirect
	golang.org/x/text v0.23.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20250303144028-a0af3efb3deb // indirect
	google.golang.org/grpc v1.72.1 // indirect
	google.golang.org/protobuf v1.36.5 // indirect
)
