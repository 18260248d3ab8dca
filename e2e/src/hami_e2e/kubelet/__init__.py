"""kubelet's device-manager role, for fake nodes (kubelet itself cannot run here).

`DeviceManager` serves the Registration service on ``<dir>/kubelet.sock``, connects to every
plugin that registers, follows its ListAndWatch, publishes the node's capacity and allocatable
for the resource as kubelet does, and, when a pod is bound to its node, calls ``Allocate`` for
each container's requested count, recording the answers in `DeviceManager.allocations`. All of
it is real gRPC over real unix sockets. `hami_e2e.kubelet.dra.DraManager` plays kubelet's DRA
manager (driver registration, NodePrepareResources/NodeUnprepareResources) for DRA drivers.
"""

from hami_e2e.kubelet.manager import Allocation, DeviceManager, PluginEndpoint

__all__ = ["Allocation", "DeviceManager", "PluginEndpoint"]
