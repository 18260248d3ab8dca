"""The web UI's pages: server-rendered HTML, one small stylesheet, no script. Every value from
the cluster is escaped (`esc`), and every link built with quoted path segments (`seg`).

Rows carry ``data-*`` attributes (``data-node``, ``data-device``, ``data-pod``,
``data-reason``) so that tests and scripts can read a page without parsing its text.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from hami_extender.ui.view import NodeRow, PodOnDevice, Snapshot

T = TypeVar("T")
PER_PAGE = 50

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:10px 20px;display:flex;gap:24px;align-items:center}
header a{color:#cfd6e4;text-decoration:none}header a.on{color:#fff;font-weight:600}
header .brand{font-weight:700;color:#fff}main{padding:16px 20px;max-width:1400px}
h1{font-size:20px;margin:4px 0 12px}h2{font-size:16px;margin:20px 0 8px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:16px}
.card{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:10px 14px;min-width:150px}
.card b{display:block;font-size:20px}.card span{color:#5b6475;font-size:12px}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #dde1e8}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #eceff3;vertical-align:top}
th{background:#eef1f5;font-weight:600;font-size:12px;color:#3b4456}
td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
.bar{display:inline-block;width:90px;height:8px;background:#e4e8ee;border-radius:4px;
margin-right:6px;vertical-align:middle;overflow:hidden}.bar i{display:block;height:100%;
background:#3d7be0}.bar.hot i{background:#d9822b}.bar.full i{background:#c23b3b}
form.search{display:flex;gap:8px;margin:0 0 12px}form.search input{padding:5px 8px;width:260px}
.pager{margin:10px 0;display:flex;gap:12px;align-items:center;color:#5b6475}
.reason{color:#a33;font-weight:600}.muted{color:#5b6475}.ok{color:#2b7a3d}
code{background:#eef1f5;padding:1px 4px;border-radius:3px;font-size:12px}
td.pods div{white-space:nowrap}ul.steps{margin:0;padding-left:18px}
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def seg(value: str) -> str:
    """A path segment of a link."""
    return quote(value, safe="")


def size(mib: int) -> str:
    if mib >= 1024 * 1024:
        return f"{mib / 1024 / 1024:.1f} TiB"
    return f"{mib / 1024:.1f} GiB" if mib >= 1024 else f"{mib} MiB"


def share(used: int, total: int) -> str:
    """Cores in percent-of-a-device units: ``80 of 800``."""
    return f"{used} of {total}"


def bar(used: int, total: int) -> str:
    pct = 0.0 if total <= 0 else min(100.0, used * 100.0 / total)
    hot = " full" if pct >= 95 else " hot" if pct >= 75 else ""
    return f'<span class="bar{hot}"><i style="width:{pct:.0f}%"></i></span>{pct:.0f}%'


def paged(items: Sequence[T], page: int, per: int = PER_PAGE) -> tuple[Sequence[T], int, int]:
    """The page's items, the page number (clamped) and the page count."""
    pages = max(1, math.ceil(len(items) / per))
    page = min(max(1, page), pages)
    return items[(page - 1) * per : page * per], page, pages


def pager(path: str, page: int, pages: int, total: int, **params: str) -> str:
    def link(p: int, text: str) -> str:
        query = urlencode({**{k: v for k, v in params.items() if v}, "page": str(p)})
        return f'<a href="{path}?{esc(query)}">{text}</a>'

    prev = link(page - 1, "&larr; previous") if page > 1 else ""
    nxt = link(page + 1, "next &rarr;") if page < pages else ""
    return f'<div class="pager">{prev}<span>page {page} of {pages} ({total})</span>{nxt}</div>'


def layout(title: str, body: str, active: str) -> str:
    nav = "".join(
        f'<a href="{href}"{" class=on" if key == active else ""}>{label}</a>'
        for key, href, label in (("nodes", "/ui", "Nodes"), ("pending", "/ui/pending",
                                                                "Pending pods"))
    )  # fmt: skip
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)} - '
        f"hami-rs</title><meta name=viewport content='width=device-width'><style>{CSS}</style>"
        f'</head><body><header><span class="brand">hami-rs</span>{nav}</header><main>'
        f"{body}</main></body></html>"
    )


def search(path: str, q: str, placeholder: str, sort: str = "") -> str:
    hidden = f'<input type="hidden" name="sort" value="{esc(sort)}">' if sort else ""
    return (
        f'<form class="search" method="get" action="{path}"><input name="q" value="{esc(q)}" '
        f'placeholder="{esc(placeholder)}">{hidden}<button>Search</button></form>'
    )


SORTS = {
    "name": ("name", lambda n: n.name),
    "promised": ("most memory promised", lambda n: (-n.memory_promised_mib, n.name)),
    "free": ("most memory free", lambda n: (-n.memory_free_mib, n.name)),
}


def overview(snap: Snapshot, pending: int, q: str, page: int, sort: str) -> str:
    mem, mem_p, cores, cores_p, containers = snap.totals()
    nodes = [n for n in snap.nodes if q.lower() in n.name.lower()] if q else snap.nodes
    if sort in SORTS and sort != "name":
        nodes = sorted(nodes, key=SORTS[sort][1])
    shown, page, pages = paged(nodes, page)
    cards = "".join(f'<div class="card"><b>{v}</b><span>{k}</span></div>' for k, v in (
        ("nodes", len(snap.nodes)), ("devices", snap.devices),
        ("memory promised", f"{size(mem_p)} of {size(mem)}"),
        ("cores promised", share(cores_p, cores)), ("containers placed", containers),
        ("pending pods", f'<a href="/ui/pending">{pending}</a>'),
    ))  # fmt: skip
    rows = "".join(_node_row(n) for n in shown)
    sorts = " ".join(
        f'<a href="/ui?{esc(urlencode({"q": q, "sort": key}))}">{label}</a>'
        if key != (sort or "name") else f"<b>{label}</b>"
        for key, (label, _) in SORTS.items()
    )  # fmt: skip
    body = (
        f"<h1>Nodes and devices</h1><div class=cards>{cards}</div>"
        f"{search('/ui', q, 'node name contains...', sort)}"
        f'<div class="muted">sort by: {sorts}</div>'
        f"{pager('/ui', page, pages, len(nodes), q=q, sort=sort)}"
        "<table id=nodes><tr><th>node</th><th>devices</th><th>memory promised</th>"
        "<th>memory free</th><th>cores promised</th><th>containers</th></tr>"
        f"{rows}</table>{pager('/ui', page, pages, len(nodes), q=q, sort=sort)}"
    )
    return layout("Nodes", body, "nodes")


def _node_row(n: NodeRow) -> str:
    return (
        f'<tr data-node="{esc(n.name)}"><td><a href="/ui/nodes/{seg(n.name)}">{esc(n.name)}</a>'
        f"</td><td class=num>{len(n.devices)}</td><td class=num>"
        f"{bar(n.memory_promised_mib, n.memory_mib)} {size(n.memory_promised_mib)} of "
        f"{size(n.memory_mib)}</td><td class=num>{size(n.memory_free_mib)}</td><td class=num>"
        f"{bar(n.cores_promised, n.cores)} {share(n.cores_promised, n.cores)}</td>"
        f"<td class=num>{n.containers}</td></tr>"
    )


def node_page(node: NodeRow, pods: dict[str, list[PodOnDevice]]) -> str:
    rows = []
    for d in node.devices:
        holders = pods.get(d.uuid, [])
        listed = (
            "".join(
                f'<div data-pod="{esc(p.namespace)}/{esc(p.name)}"><a href="/ui/pods/'
                f'{seg(p.namespace)}/{seg(p.name)}">{esc(p.namespace)}/{esc(p.name)}</a> '
                f"<span class=muted>container {p.container_index}: {size(p.memory_mib)}, "
                f"{p.cores}%{'' if p.bound else ', reserved'}</span></div>"
                for p in sorted(holders, key=lambda p: (p.namespace, p.name, p.container_index))
            )
            or '<span class="muted">none</span>'
        )
        state = ("<span class=ok>healthy</span>" if d.healthy else "<span class=reason>"
                 "unhealthy</span>") + (" (cordoned)" if d.cordoned else "")  # fmt: skip
        rows.append(
            f'<tr data-device="{esc(d.uuid)}"><td class=num>{d.index}</td><td><code>'
            f"{esc(d.uuid)}</code><div class=muted>{esc(d.type)}</div></td><td>{state}</td>"
            f"<td class=num>{bar(d.memory_promised_mib, d.memory_mib)} "
            f"{size(d.memory_promised_mib)} of {size(d.memory_mib)}<div class=muted>"
            f"{size(d.memory_free_mib)} free</div></td><td class=num>"
            f"{bar(d.cores_promised, d.cores)} {share(d.cores_promised, d.cores)}</td>"
            f"<td class=num>{d.containers} of {d.slots}</td><td class=pods>{listed}</td></tr>"
        )
    body = (
        f"<h1>Node {esc(node.name)}</h1><p class=muted>{len(node.devices)} devices; "
        f"{size(node.memory_promised_mib)} of {size(node.memory_mib)} promised, "
        f"{size(node.memory_free_mib)} free; cores {share(node.cores_promised, node.cores)} "
        "promised (100 = a whole device)</p><table id=devices><tr><th>#</th><th>device</th>"
        "<th>health</th><th>memory promised</th><th>cores promised</th><th>containers</th>"
        f"<th>pods on it</th></tr>{''.join(rows)}</table>"
    )
    return layout(f"Node {node.name}", body, "nodes")


def age(created: str) -> str:
    try:
        seconds = time.time() - datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return "-"
    for unit, span in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= span:
            return f"{int(seconds // span)}{unit}"
    return f"{max(0, int(seconds))}s"


def pending_page(rows: Sequence[tuple[Any, str, str]], q: str, page: int) -> str:
    """``rows``: (`PendingPod`, reason, summary)."""
    shown, page, pages = paged(rows, page)
    lines = "".join(
        f'<tr data-pod="{esc(p.namespace)}/{esc(p.name)}" data-reason="{esc(reason)}"><td><a '
        f'href="/ui/pods/{seg(p.namespace)}/{seg(p.name)}">{esc(p.namespace)}/{esc(p.name)}</a>'
        f"</td><td class=num>{age(p.created)}</td><td class=reason>{esc(reason)}</td>"
        f"<td>{esc(summary)}</td></tr>"
        for p, reason, summary in shown
    )
    body = (
        f"<h1>Pending pods</h1>{search('/ui/pending', q, 'namespace/name contains...')}"
        f"{pager('/ui/pending', page, pages, len(rows), q=q)}<table id=pending><tr><th>pod</th>"
        f"<th>age</th><th>reason</th><th>why</th></tr>{lines}</table>"
        + ("" if rows else "<p class=muted>No pod of this scheduler is waiting.</p>")
    )
    return layout("Pending pods", body, "pending")


def _step(step: dict[str, Any]) -> str:
    when = datetime.fromtimestamp(float(step.get("time", 0)), UTC).strftime("%H:%M:%S")
    what = f"{esc(step.get('step'))} <b>{esc(step.get('outcome'))}</b>"
    if step.get("node"):
        what += f" on {esc(step['node'])}"
    if step.get("devices"):
        what += f" <code>{esc(step['devices'])}</code>"
    reasons = step.get("reasons") or {}
    if reasons:
        what += " - " + ", ".join(f"{esc(r)} x{n}" for r, n in sorted(reasons.items()))
    if step.get("error") or step.get("message"):
        what += f" <div class=muted>{esc(step.get('error') or step.get('message'))}</div>"
    return f"<li>{when} {what}</li>"


def pod_page(
    namespace: str, name: str, record: dict[str, Any] | None, *, status: str, reason: str,
    traces_url: str,
) -> str:  # fmt: skip
    """``status``: where the pod stands (``pending``, ``placed on node X``, ...)."""
    title = f"{namespace}/{name}"
    if record is None:
        body = (f"<h1>Pod {esc(title)}</h1><p>No decision recorded for this pod by this "
                "extender: it was not filtered yet, asks for no devices, or was forgotten "
                "(oldest first). A pod whose GPUs come through DRA claims is placed by "
                "kube-scheduler alone: <code>kubectl hami explain</code> and the explanation "
                "API show where its claims were allocated.</p>")  # fmt: skip
        return layout(title, body, "pending")
    steps = record.get("steps") or []
    trace_id = next((s["trace_id"] for s in reversed(steps) if s.get("trace_id")), "")
    trace = "<span class=muted>none recorded</span>"
    if trace_id and traces_url:
        base = traces_url.rstrip("/")
        trace = (f'<code>{esc(trace_id)}</code> <a id=trace href="{esc(base)}/trace/'
                 f'{esc(trace_id)}">open the trace</a> (<a href="{esc(base)}/api/v3/traces/'
                 f'{esc(trace_id)}">as JSON</a>)')  # fmt: skip
    elif trace_id:
        trace = f"<code>{esc(trace_id)}</code> (start the extender with --traces-url to link it)"
    last: dict[str, Any] = next((s for s in reversed(steps) if s.get("step") == "filter"), {})
    failed = last.get("failed") or {}
    per_node = "".join(
        f'<tr data-node="{esc(n)}"><td>{esc(n)}</td><td class=reason>{esc(r)}</td></tr>'
        for n, r in sorted(failed.items())
    )
    more = last.get("failed_truncated")
    body = (
        f'<h1>Pod {esc(title)}</h1><div class=cards><div class="card"><b data-status>'
        f"{esc(status)}</b><span>status</span></div>"
        + (f'<div class="card"><b class=reason data-reason>{esc(reason)}</b><span>reason'
           "</span></div>" if reason else "")
        + f'</div><p id=summary>{esc(record.get("summary", ""))}</p><p>Trace: {trace}</p>'
        f"<h2>Steps</h2><ul class=steps>{''.join(_step(s) for s in steps)}</ul>"
        + (f"<h2>Why each node said no (last filter)</h2><table id=failed><tr><th>node</th>"
           f"<th>reason</th></tr>{per_node}</table>" if per_node else "")
        + (f"<p class=muted>and {more} more nodes</p>" if more else "")
    )  # fmt: skip
    return layout(title, body, "pending")


def not_found(what: str) -> str:
    return layout("Not found", f"<h1>Not found</h1><p>{esc(what)}</p>", "")
