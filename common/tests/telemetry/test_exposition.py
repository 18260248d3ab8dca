"""The text format writer: what Prometheus' own parser reads back."""

from __future__ import annotations

from hami_common.telemetry.exposition import Family, label_text, render
from prometheus_client.parser import text_string_to_metric_families


def test_round_trip_with_escapes() -> None:
    f = Family("hami_x", "A gauge")
    f.add(label_text(("a", "b"), ('say "hi"\\', "two\nlines")), 1.5)
    f.add(label_text(("a", "b"), ("plain", "")), 7)
    empty = Family("hami_empty", "No samples")
    [x, e] = text_string_to_metric_families(render([f, empty]))
    assert [(s.labels, s.value) for s in x.samples] == [
        ({"a": 'say "hi"\\', "b": "two\nlines"}, 1.5),
        ({"a": "plain", "b": ""}, 7.0),
    ]
    assert (x.type, x.documentation, e.samples) == ("gauge", "A gauge", [])
