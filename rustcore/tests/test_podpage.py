"""`load_pod_page` through the binding: one page of the API's pod list, from its bytes into the
state; what comes back for the extender; malformed pages and pods; the GIL let go meanwhile."""

from __future__ import annotations

import re
import sys
import threading
import time
from typing import Any

import hami_rustcore as hc
import orjson
import pytest

ALLOCATED = "hami.io/vgpu-devices-allocated"


def node(c: hc.Cluster, name: str, n: int = 4) -> None:
    c.set_node(name, [hc.Device(f"{name}-g{i}", 10, 16384, 100, "T4", index=i) for i in range(n)])


def pod(uid: str, text: str | None = "n1-g0,NVIDIA,1000,10:;", *, phase: str = "Running",
        bound: bool = True, init: int = 0, ns: str | None = "ns") -> dict[str, Any]:  # fmt: skip
    ann = {"hami.io/vgpu-node": "n1", "hami.io/bind-phase": "success"}
    if text is not None:
        ann[ALLOCATED] = text
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "cuda"}]}
    if bound:
        spec["nodeName"] = "n1"
    if init:
        spec["initContainers"] = [{"name": f"i{i}"} for i in range(init)]
    meta: dict[str, Any] = {"uid": uid, "name": f"p-{uid}", "annotations": ann}
    if ns is not None:
        meta["namespace"] = ns
    return {"metadata": meta, "spec": spec, "status": {"phase": phase}}


def page(items: list[Any], token: str | None = None, version: str = "42") -> bytes:
    meta: dict[str, Any] = {"resourceVersion": version}
    if token is not None:
        meta["continue"] = token
    return orjson.dumps({"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": items})


def test_a_mixed_page() -> None:
    c = hc.Cluster()
    node(c, "n1")
    items = [
        pod("a"),
        pod("b", "n1-g1,NVIDIA,2000,20:;", ns=None),
        pod("done", phase="Succeeded"),
        pod("bad", "n1-g2,NVIDIA,lots,10:;"),
        pod("init", init=1),
        pod("unbound", bound=False),
        pod("mine", "n1-g3,NVIDIA,500,5:;"),
        {"metadata": {"name": "no-uid"}},
    ]
    got = hc.load_pod_page(c, page(items, token="next"), {"mine": object()})
    assert (got.continue_token, got.resource_version) == ("next", "42")
    assert got.loaded == [("a", "ns/p-a"), ("b", "default/p-b")]
    assert got.finished == ["done"]
    [(uid, ns, name, error)] = got.invalid
    assert (uid, ns, name) == ("bad", "ns", "p-bad")
    assert "Usedmem" in error
    assert [orjson.loads(o) for o in got.others] == [items[4], items[5], items[6]]
    assert c.pod_count() == 2
    assert [u.usedmem for u in c.usage()] == [1000, 2000, 0, 0]
    b = c.pod("b")
    assert b is not None
    assert (b.namespace, b.node, b.reserved_at, b.init_count) == ("default", "n1", None, 0)


def test_the_last_page_and_an_empty_one() -> None:
    c = hc.Cluster()
    got = hc.load_pod_page(c, page([], token=""))
    assert (got.continue_token, got.resource_version) == (None, "42")
    assert (got.loaded, got.finished, got.invalid, got.others) == ([], [], [], [])
    assert "loaded=0" in repr(got)


def test_a_page_replaces_earlier_allocations_of_the_same_pods() -> None:
    c = hc.Cluster()
    node(c, "n1")
    c.upsert_pod("a", "ns", "p-a", "n1", "n1-g0,NVIDIA,9000,10:;", reserved_at=1.0)
    hc.load_pod_page(c, page([pod("a", "n1-g1,NVIDIA,1000,10:;")]))
    assert [u.usedmem for u in c.usage()] == [0, 1000, 0, 0]
    alloc = c.pod("a")
    assert alloc is not None
    assert alloc.reserved_at is None  # listed and bound: no longer a reservation


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"<html>502 Bad Gateway</html>", "(page)"),
        (b'{"items": 5}', "items"),
        (b'{"metadata": {"continue": 1}, "items": []}', "metadata"),
        (b"", "(page)"),
        (b'{"items": [{"metadata": {"uid": "a"}}', "items"),
    ],
)
def test_a_malformed_page_is_a_decode_error_and_applies_nothing(body: bytes, field: str) -> None:
    c = hc.Cluster()
    node(c, "n1")
    with pytest.raises(hc.DecodeError, match=rf"pod list page: {re.escape(field)} at line"):
        hc.load_pod_page(c, body)
    truncated = page([pod("a"), pod("b", "n1-g1,NVIDIA,1000,10:;")])[:-40]
    with pytest.raises(hc.DecodeError):
        hc.load_pod_page(c, truncated)
    assert c.pod_count() == 0


def test_arguments_are_checked() -> None:
    c = hc.Cluster()
    with pytest.raises(TypeError):
        hc.load_pod_page(c, "not bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        hc.load_pod_page(c, page([]), [1])  # type: ignore[list-item]


def test_the_gil_is_released_while_a_page_is_read() -> None:
    """Another Python thread keeps running while large pages are decoded."""
    c = hc.Cluster()
    node(c, "n1")
    big = page([pod(f"u{i}", "n1-g0,NVIDIA,1,1:;") | {"x": "y" * 4000} for i in range(2000)])
    ticks = 0
    stop = threading.Event()

    def tick() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(10.0)  # without a release, the ticker never gets in
    try:
        ticker = threading.Thread(target=tick)
        ticker.start()
        time.sleep(0.01)
        before = ticks
        for _ in range(5):
            hc.load_pod_page(c, big)
        during = ticks - before
        stop.set()
        ticker.join()
    finally:
        sys.setswitchinterval(switch)
    assert c.pod_count() == 2000
    assert during > 100, during
