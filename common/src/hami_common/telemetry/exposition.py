"""The Prometheus text format, written directly, for collectors with many series: the monitor
(100 containers x 8 devices is ~5,000 lines a scrape) and the extender's per-device and per-pod
gauges (5,000 nodes x 8 devices and 40,000 pods is ~400,000), which prometheus_client's generic
writer formats at ~10-15 us a line; here a line is one f-string, and a series' label text is
built once for all its families. Validated by Prometheus' own parser in the tests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def label_text(names: Sequence[str], values: Sequence[str]) -> str:
    """``a="1",b="2"``: the inside of a sample's braces."""
    return ",".join(f'{n}="{escape(v)}"' for n, v in zip(names, values, strict=True))


class Family:
    """One gauge family: its samples as text lines."""

    __slots__ = ("doc", "lines", "name")

    def __init__(self, name: str, doc: str) -> None:
        self.name, self.doc = name, doc
        self.lines: list[str] = []

    def add(self, labels: str, value: float) -> None:
        """A sample; ``labels`` from `label_text`."""
        self.lines.append(f"{self.name}{{{labels}}} {value}")


def render(families: Iterable[Family]) -> str:
    out = []
    for f in families:
        out.append(f"# HELP {f.name} {f.doc}\n# TYPE {f.name} gauge\n")
        if f.lines:
            out.append("\n".join(f.lines))
            out.append("\n")
    return "".join(out)
