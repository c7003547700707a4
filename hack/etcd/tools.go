//go:build tools

// Package tools pins etcd; its own module because etcd's dependency set differs from Kubernetes'.
package tools

import _ "go.etcd.io/etcd/server/v3"
