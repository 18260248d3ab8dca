"""Shared library: settings, Kubernetes adapter, telemetry, device-plugin framework."""
