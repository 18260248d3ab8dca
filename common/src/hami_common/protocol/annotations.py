"""Annotation and label keys of HAMi's protocol (v2.10), in one place.

Vendor-specific keys (register, to-allocate, allocated, selectors) come from the Rust core's
vendor specs (`hami_rustcore.Cluster.vendor_specs()`); the keys here are shared by every vendor.
"""

from __future__ import annotations

# Pod, written at filter time by the extender.
VGPU_NODE = "hami.io/vgpu-node"
"""Annotation and label: the node the devices were reserved on."""
VGPU_TIME = "hami.io/vgpu-time"
"""Unix seconds of the reservation."""
MIG_ALLOCATIONS = "hami.io/vgpu-mig-allocations"
"""The MIG instances reserved for a pod (profile and placement per device; the plugin adds the
instance's UUID and GPU/compute instance ids)."""

# Pod, written at bind time by the extender and after Allocate by the device plugin.
BIND_PHASE = "hami.io/bind-phase"
BIND_TIME = "hami.io/bind-time"
PHASE_ALLOCATING = "allocating"
PHASE_SUCCESS = "success"
PHASE_FAILED = "failed"

# Node.
NODE_LOCK = "hami.io/mutex.lock"
"""`<RFC3339>,<namespace>,<pod>`: the pod whose devices are being allocated on the node."""
DEVICE_CORDON = "hami.io/device-cordon"
"""Comma-separated device UUIDs that take no new allocation."""
NODE_HANDSHAKE = "hami.io/node-handshake"
NVIDIA_PAIR_SCORE = "hami.io/node-nvidia-score"

# Pod, user-written policies.
NODE_SCHEDULER_POLICY = "hami.io/node-scheduler-policy"
GPU_SCHEDULER_POLICY = "hami.io/gpu-scheduler-policy"
DEVICE_SCORING_WEIGHTS = "hami.io/device-scoring-weights"
