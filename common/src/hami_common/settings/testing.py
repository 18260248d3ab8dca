"""Device configs for the tests and the e2e harness: HAMi's chart chips, in one place.

`CHART_CHIPS` holds three ``vnpus`` entries of HAMi's chart
(charts/hami/templates/scheduler/device-configmap.yaml, v2.10 layout) by DCMI chip name;
`vnpus` builds the ``vnpus:`` section of some of them (with a chip's extra keys), and
`device_config_text` a device-config file's text (JSON, which YAML reads as is).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

Json = dict[str, Any]
Template = tuple[str, int, int, int]


def chip(
    names: tuple[str, str], sizes: tuple[int, int, int], templates: list[Template], **extra: Any
) -> Json:
    """A ``vnpus`` entry: ``(chipName, commonWord)``, ``(memoryAllocatable, memoryCapacity,
    aiCore)`` and the templates ``(name, MiB, aiCore, aiCPU)``; ``extra``: more keys."""
    (name, cw), (mem, cap, core) = names, sizes
    res = f"huawei.com/{cw}"
    return {
        "chipName": name, "commonWord": cw, "resourceName": res,
        "resourceMemoryName": f"{res}-memory", "resourceCoreName": f"{res}-core",
        "memoryAllocatable": mem, "memoryCapacity": cap, "aiCore": core, "aiCPU": 7,
        "templates": [{"name": n, "memory": m, "aiCore": c, "aiCPU": p}
                      for n, m, c, p in templates],
        **extra,
    }  # fmt: skip


_910_TEMPLATES = [("vir05_1c_16g", 16384, 5, 1), ("vir10_3c_32g", 32768, 10, 3)]

CHART_CHIPS: Mapping[str, Json] = {
    c["chipName"]: c
    for c in (
        chip(("910B3", "Ascend910B3"), (65536, 65536, 20), _910_TEMPLATES),
        chip(("310P3", "Ascend310P"), (21527, 24576, 8),
             [("vir01", 3072, 1, 1), ("vir02", 6144, 2, 2), ("vir04", 12288, 4, 4)]),
        chip(("Ascend910", "Ascend910C"), (65536, 65536, 20), _910_TEMPLATES, superPod=True),
    )
}  # fmt: skip


def vnpus(
    *chip_names: str, soft: bool = False, extra: Mapping[str, Mapping[str, Any]] | None = None
) -> Json:
    """The ``vnpus:`` section with the chart chips ``chip_names`` (all three by default), in
    that order; ``soft``: ``hamiVnpuCore``; ``extra``: more keys per chip name."""
    names = chip_names or tuple(CHART_CHIPS)
    unknown = [n for n in names if n not in CHART_CHIPS]
    if unknown:
        raise ValueError(f"no chart chip named {unknown[0]!r}; known: {', '.join(CHART_CHIPS)}")
    return {
        "hamiVnpuCore": soft,
        "configs": [{**CHART_CHIPS[n], **(extra or {}).get(n, {})} for n in names],
    }


def device_config_text(**sections: Any) -> str:
    """A device-config file's text with these sections (``vnpus=vnpus(...)``, ``nvidia={...}``)."""
    return json.dumps(sections, indent=2)
