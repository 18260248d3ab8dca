"""NVIDIA device plugin and node monitor."""
