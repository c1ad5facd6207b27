//go:build tools

// Package tools pins the Kubernetes binaries the test tiers build (scripts/setup-kube.sh builds
// them version-stamped from the k8s.io/kubernetes version in go.mod): the control plane of the
// Kubernetes tier, and the node components (kubelet, scheduler, controller manager, kube-proxy)
// the cluster tier adds to run pods.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
