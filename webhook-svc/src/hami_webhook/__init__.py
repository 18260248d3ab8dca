"""Mutating admission webhook for accelerator-sharing pods."""
