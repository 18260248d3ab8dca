"""The real kube-apiserver calls a MutatingWebhookConfiguration on pod CREATE and applies its
patch: the path our admission webhook takes."""

import asyncio
import base64
import time
from pathlib import Path
from typing import Any

import pytest
from hami_common.k8s import MUTATING_WEBHOOK_CONFIGURATIONS, PODS, ApiError, Forbidden
from hami_e2e.backend import Cluster
from hami_e2e.components import free_port
from hami_e2e.pki import CertificateAuthority
from hami_e2e.webhook_server import AdmissionWebhookServer

pytestmark = pytest.mark.e2e


def mutate(request: dict[str, Any]) -> tuple[bool, list[dict[str, Any]] | None]:
    pod = request["object"]
    if pod["metadata"].get("labels", {}).get("refuse") == "yes":
        return False, None
    return True, [
        {"op": "add", "path": "/metadata/annotations", "value": {"e2e.hami.io/mutated": "yes"}},
        {"op": "replace", "path": "/spec/schedulerName", "value": "hami-scheduler"},
    ]


def webhook_config(name: str, url: str, ca_bundle: str, namespace: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "pods.e2e.hami.io",
                "clientConfig": {"url": f"{url}/mutate", "caBundle": ca_bundle},
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                    }
                ],
                # Only this test's namespace, so other tests' pods never reach this webhook.
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "timeoutSeconds": 5,
            }
        ],
    }


def pod(name: str, **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]},
    }


def test_mutating_webhook_is_called_on_pod_create_and_its_patch_applied(
    kube_cluster: Cluster, kube_namespace: str, tmp_path: Path
) -> None:
    name = f"e2e-{kube_namespace}"

    async def main(server: AdmissionWebhookServer) -> dict[str, Any]:
        async with kube_cluster.client() as kube:
            await kube.create(
                MUTATING_WEBHOOK_CONFIGURATIONS,
                webhook_config(name, server.url, server.ca_bundle, kube_namespace),
            )
            try:
                # The API server picks up new webhook configurations within a moment.
                deadline = time.monotonic() + 30
                while True:
                    created = await kube.create(PODS, pod("probe"), namespace=kube_namespace)
                    if server.reviews:
                        break
                    await kube.delete(PODS, "probe", namespace=kube_namespace)
                    assert time.monotonic() < deadline, "the webhook was never called"
                    await asyncio.sleep(0.5)
                with pytest.raises(Forbidden, match="refused by the e2e webhook"):
                    await kube.create(PODS, pod("no", refuse="yes"), namespace=kube_namespace)
                return created
            finally:
                await kube.delete(MUTATING_WEBHOOK_CONFIGURATIONS, name)

    with AdmissionWebhookServer(tmp_path, mutate) as server:
        created = asyncio.run(main(server))
    assert created["metadata"]["annotations"]["e2e.hami.io/mutated"] == "yes"
    assert created["spec"]["schedulerName"] == "hami-scheduler"
    review = server.reviews[0]["request"]
    assert review["operation"] == "CREATE"
    assert review["kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert review["namespace"] == kube_namespace
    assert server.reviews[-1]["request"]["object"]["metadata"]["labels"] == {"refuse": "yes"}


def test_an_unreachable_webhook_with_failure_policy_fail_blocks_creation(
    kube_cluster: Cluster, kube_namespace: str, tmp_path: Path
) -> None:
    name = f"e2e-down-{kube_namespace}"
    ca = CertificateAuthority(tmp_path)
    url = f"https://127.0.0.1:{free_port()}"  # nothing listens there

    async def main() -> str:
        async with kube_cluster.client() as kube:
            await kube.create(
                MUTATING_WEBHOOK_CONFIGURATIONS,
                webhook_config(name, url, base64.b64encode(ca.pem).decode(), kube_namespace),
            )
            try:
                deadline = time.monotonic() + 30
                while True:
                    error: ApiError | None = None
                    try:
                        await kube.create(PODS, pod("x"), namespace=kube_namespace)
                    except ApiError as exc:
                        error = exc
                    if error is not None:
                        return error.message
                    await kube.delete(PODS, "x", namespace=kube_namespace)
                    assert time.monotonic() < deadline, "pods kept being admitted"
                    await asyncio.sleep(0.5)
            finally:
                await kube.delete(MUTATING_WEBHOOK_CONFIGURATIONS, name)

    assert "failed calling webhook" in asyncio.run(main())
