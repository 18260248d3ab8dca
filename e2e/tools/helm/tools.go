//go:build tools

// Package tools pins the helm main package.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
