"""The NVIDIA DRA driver (``--dra``): the same devices and hook limits as the device plugin,
allocated by kube-scheduler's DynamicResources plugin with consumable capacity.

- `devices`: the devices of the node's ResourceSlice (``memory``, ``cores`` and ``shares``
  capacities, several allocations allowed) and what a claim consumed of them;
- `driver`: prepare and unprepare of claims: the claim's allocation read from the API, checked
  against what is already prepared, turned into the hook's limits file and a CDI spec;
- `runtime`: the slice published (again on health changes) and the kubelet sockets served.
"""
