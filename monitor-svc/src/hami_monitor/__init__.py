"""hami-monitor: the node monitor (HAMi's vGPUmonitor on the wire: its metrics and port)."""
