//go:build tools

// Package tools pins kubectl's main package (k8s.io/kubernetes/cmd/kubectl, the same k8s.io/kubernetes as
// kube-apiserver) so that `go mod tidy` keeps its dependencies.
package tools

import _ "k8s.io/kubernetes/cmd/kubectl"
