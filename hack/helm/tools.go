//go:build tools

// Package tools pins helm; built by hack/build-kube.sh into the same cache as the Kubernetes binaries.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
