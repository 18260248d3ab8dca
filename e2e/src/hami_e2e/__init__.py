"""Local Kubernetes control plane built from upstream, and the end-to-end suites."""
