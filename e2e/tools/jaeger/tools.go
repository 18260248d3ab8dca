//go:build tools

// Package tools pins the jaeger main package (Jaeger v2: an OpenTelemetry Collector build
// with an OTLP receiver, a trace store and the query API/UI).
package tools

import _ "github.com/jaegertracing/jaeger/cmd/jaeger"
