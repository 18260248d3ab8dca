"""Cambricon MLU device plugin."""
