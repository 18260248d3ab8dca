"""The vendor-neutral device-plugin framework.

- `backend`: the `DeviceBackend` protocol a vendor's hardware adapter implements;
- `vendor`: the `VendorPolicy` protocol (names, register annotation, Allocate answers);
- `devices`: the device table, virtual IDs ``<uuid>-<i>``, ListAndWatch lists;
- `server`: the DevicePlugin gRPC service and the upstream lifecycle (serve, self-dial,
  register, re-register when kubelet restarts);
- `registrar`: the node's register annotations, patched when they differ;
- `allocator`: HAMi's allocation protocol (pod lookup, entries, bind-phase, node lock), and
  `PodAllocator`, what the service asks of any protocol (the NVIDIA plugin's volcano mode has
  its own);
- `runtime`: all of it for one plugin on one node;
- `testing`: the fake backend and device specs shared by tests and e2e;
- `api`: the kubelet device plugin API v1beta1 (generated messages, typed services).
"""
