"""The vendor-neutral DRA (Dynamic Resource Allocation) kubelet-plugin framework.

- `api`: the kubelet DRA plugin API v1 and plugin registration (generated from upstream protos,
  typed gRPC wiring);
- `server`: the `DraDriver` protocol, the gRPC services over it, and the two sockets kubelet
  dials (registration in ``plugins_registry``, the driver's in ``plugins/<driver>``);
- `slices`: the node's ResourceSlice, published when it differs;
- `claims`: what the scheduler allocated to a claim (``status.allocation``), for one driver;
- `cdi`: CDI specs written per claim, atomically;
- `checkpoint`: the prepared claims, on disk, so prepare and unprepare stay idempotent across
  restarts.
"""
