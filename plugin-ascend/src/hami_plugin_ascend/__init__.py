"""Huawei Ascend device plugin."""
