"""The web UI: nodes and devices, the pods on each device, pending pods and their reasons,
each pod's trace."""
