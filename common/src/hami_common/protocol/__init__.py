"""HAMi's wire protocol between the scheduler extender and the device plugins: annotation keys
and the node allocation lock; and volcano's (`volcano`), for the NVIDIA plugin's volcano mode."""
