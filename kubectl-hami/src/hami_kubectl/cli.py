"""``kubectl hami``: installed with the Python packages as the ``kubectl-hami`` console script,
so kubectl finds it on the PATH as a plugin.

    kubectl hami explain POD [-n NS]      why it is pending, or where it landed; its trace
    kubectl hami top nodes [NODE]         per device: memory and cores promised against used
    kubectl hami top pods [POD] [-A]      per container device: the same

``-o json|yaml|wide``. Credentials as kubectl and the services find them (``--kubeconfig``,
``--context``, ``KUBECONFIG``, in-cluster, ``~/.kube/config``; exec plugins and OIDC), through
`hami_common.k8s.load_config`. What is used comes from Prometheus (``--prometheus-url`` or
``HAMI_PROMETHEUS_URL``), each node's reason at the last filter from the extender
(``--extender-url``/``HAMI_EXTENDER_URL``, ``--extender-ca``/``HAMI_EXTENDER_CA``), trace links
from ``--traces-url``/``HAMI_TRACES_URL`` (Jaeger's query URL).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hami_common.k8s import ApiError, ConfigError, KubeClient, NotFound, load_config
from hami_common.settings.main import package_version

from hami_kubectl import explain, top
from hami_kubectl.output import dump
from hami_kubectl.remote import Extender, Prometheus, RemoteError
from hami_kubectl.state import load


def _common(p: argparse.ArgumentParser, env: Mapping[str, str], *, nested: bool) -> None:
    """The flags every verb takes; ``nested`` (a verb's own parser): their defaults stay
    unset, so a flag given before the verb is not overwritten by the verb's default."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if nested else value

    p.add_argument(
        "-n", "--namespace", default=default(None), help="the namespace (default: the context's)"
    )
    p.add_argument(
        "-o",
        "--output",
        choices=["json", "yaml", "wide"],
        default=default(None),
        help="output format (default: a table)",
    )
    p.add_argument(
        "--kubeconfig",
        type=Path,
        default=default(None),
        help="kubeconfig file (default: KUBECONFIG, in-cluster, ~/.kube/config)",
    )
    p.add_argument("--context", default=default(None), help="kubeconfig context")
    p.add_argument(
        "--prometheus-url",
        default=default(env.get("HAMI_PROMETHEUS_URL", "")),
        help="Prometheus scraping the monitors (env HAMI_PROMETHEUS_URL)",
    )
    p.add_argument(
        "--extender-url",
        default=default(env.get("HAMI_EXTENDER_URL", "")),
        help="the extender, for its explanations (env HAMI_EXTENDER_URL)",
    )
    p.add_argument(
        "--extender-ca",
        type=Path,
        default=default(Path(env["HAMI_EXTENDER_CA"]) if env.get("HAMI_EXTENDER_CA") else None),
        help="CA file of the extender's certificate (env HAMI_EXTENDER_CA)",
    )
    p.add_argument("--traces-url", default=default(env.get("HAMI_TRACES_URL", "")),
                   help="Jaeger's query URL, for trace links (env HAMI_TRACES_URL)")  # fmt: skip


def parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="kubectl hami",
        description="Why a pod is pending or where it landed; promised against used per device "
        "and per pod.",
    )
    _common(root, env, nested=False)
    root.add_argument("--version", action="version",
                      version=f"kubectl-hami {package_version('hami-kubectl')}")  # fmt: skip
    verbs = root.add_subparsers(dest="verb", required=True)
    ex = verbs.add_parser("explain", help="why a pod is pending, or where it landed and on "
                          "which devices, with its trace")  # fmt: skip
    _common(ex, env, nested=True)
    ex.add_argument("pod")
    topp = verbs.add_parser("top", help="memory and cores promised against used")
    what = topp.add_subparsers(dest="what", required=True)
    tn = what.add_parser("nodes", aliases=["node"], help="per device")
    _common(tn, env, nested=True)
    tn.add_argument("name", nargs="?", default="")
    tp = what.add_parser("pods", aliases=["pod"], help="per container device")
    _common(tp, env, nested=True)
    tp.add_argument("name", nargs="?", default="")
    tp.add_argument("-A", "--all-namespaces", action="store_true")
    return root


async def _run(args: argparse.Namespace) -> str:
    config = load_config(args.kubeconfig, args.context)
    namespace = args.namespace or config.namespace
    fmt = args.output or "table"
    prom = Prometheus(args.prometheus_url) if args.prometheus_url else None
    async with KubeClient(config, user_agent="kubectl-hami") as client:
        if args.verb == "explain":
            extender = Extender(args.extender_url, args.extender_ca) if args.extender_url else None
            doc: Any = await explain.explain(client, namespace, args.pod, extender=extender,
                                             traces_url=args.traces_url)  # fmt: skip
            return explain.describe(doc) if fmt in ("table", "wide") else dump(doc, fmt)
        cluster = await load(client)
    if args.what in ("nodes", "node"):
        doc = await asyncio.to_thread(top.nodes, cluster, prom, args.name)
        return top.nodes_table(doc, fmt == "wide") if fmt in ("table", "wide") else dump(doc, fmt)
    scope = None if args.all_namespaces else namespace
    doc = await asyncio.to_thread(top.pods, cluster, prom, scope, args.name)
    if fmt in ("table", "wide"):
        return top.pods_table(doc, args.all_namespaces, fmt == "wide")
    return dump(doc, fmt)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = parser(os.environ if env is None else env).parse_args(argv)
    try:
        print(asyncio.run(_run(args)))
    except NotFound as exc:
        print(f"Error from server (NotFound): {exc}", file=sys.stderr)
        return 1
    except (ConfigError, RemoteError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ApiError as exc:
        print(f"Error from server: {exc}", file=sys.stderr)
        return 1
    return 0


def run() -> None:
    """The console script."""
    sys.exit(main())
