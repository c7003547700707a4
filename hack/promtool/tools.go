//go:build tools

// Package tools pins promtool, which checks and unit-tests podnet's alerting rules; built by hack/build-promtool.sh.
package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"
