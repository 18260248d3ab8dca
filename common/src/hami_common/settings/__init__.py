"""Typed settings: the service settings base and HAMi's device ConfigMap model."""

from hami_common.settings.device_config import (
    AscendChipConfig,
    AscendTemplate,
    AscendVnpus,
    CambriconConfig,
    DeviceConfig,
    MigProfileAllowlistEntry,
    NodeConfigFile,
    NvidiaConfig,
    NvidiaNodeConfig,
    load_device_config,
    load_node_config,
    parse_device_config,
)
from hami_common.settings.errors import SettingsError
from hami_common.settings.service import ServiceSettings
from hami_common.settings.vendors import VendorTable, VendorValue, ascend_entry, core_vendor_table

__all__ = [
    "AscendChipConfig",
    "AscendTemplate",
    "AscendVnpus",
    "CambriconConfig",
    "DeviceConfig",
    "MigProfileAllowlistEntry",
    "NodeConfigFile",
    "NvidiaConfig",
    "NvidiaNodeConfig",
    "ServiceSettings",
    "SettingsError",
    "VendorTable",
    "VendorValue",
    "ascend_entry",
    "core_vendor_table",
    "load_device_config",
    "load_node_config",
    "parse_device_config",
]
