//go:build tools

// Package tools pins the Kubernetes binaries the test tiers build (scripts/setup-kube.sh builds
// them version-stamped from the k8s.io/kubernetes version in go.mod).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
