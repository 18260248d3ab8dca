"""Golden AdmissionReview answers: the exact JSON patch the API server applies, per case.

Each case posts a review to the app and compares the answer, with its patch decoded and the
admission span's traceparent replaced by ``<traceparent>``, to ``golden/<case>.json``.
Regenerate with ``UPDATE_GOLDEN=1 ./just test-py`` and review the diff.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from hami_common.settings.testing import device_config_text, vnpus
from hami_common.telemetry import in_memory_tracing
from hami_webhook.app import create_app
from hami_webhook.dra import InMemoryTemplateSink
from hami_webhook.patch import apply_patch
from hami_webhook.quota import InMemoryQuotaSource, QuotaState
from hami_webhook.settings import WebhookSettings
from hami_webhook.testing import container, decoded_patch, pod, review

GOLDEN = Path(__file__).parent / "golden"
TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
GPU = {"nvidia.com/gpu": "1"}

DEVICE_CONFIG = """
nvidia:
  gpuCorePolicy: force
  overwriteEnv: true
  runtimeClassName: nvidia
"""

# Two chips of HAMi's chart (v2.10 layout), for the Ascend cases (with --enable-ascend).
VENDOR_CONFIG = device_config_text(
    vnpus=vnpus("910B3", "Ascend910",
                extra={"910B3": {"runtimeClassName": "ascend", "overwriteEnv": True}})
)  # fmt: skip
ASCEND = ["--device-config-file", "{vendor_config}", "--enable-ascend"]

_RUNNING = pod(container(limits={"nvidia.com/gpu": "1", "nvidia.com/gpucores": "100"}))
_DEBUGGER = {"name": "debugger", "image": "busybox", "env": [{"name": "A", "value": "1"}]}


def _debugged(debugger: dict[str, Any]) -> dict[str, Any]:
    """An UPDATE of pods/ephemeralcontainers adding `debugger` to a running GPU pod."""
    new = json.loads(json.dumps(_RUNNING))
    new["spec"]["ephemeralContainers"] = [debugger]
    return review(new, operation="UPDATE", sub_resource="ephemeralcontainers", old=_RUNNING)


CASES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "bare-gpu-exclusive": (review(pod(container(limits=GPU))), []),
    "gpumem-gets-default-count": (
        review(pod(container(limits={"nvidia.com/gpumem": "3000", "nvidia.com/gpucores": "30"}))),
        [],
    ),
    "percentage-100-exclusive": (
        review(
            pod(container(limits={"nvidia.com/gpu": "2", "nvidia.com/gpumem-percentage": "100"}))
        ),
        [],
    ),
    "priority-env-existing-annotations": (
        review(
            pod(
                container(
                    limits={
                        "nvidia.com/gpu": "1",
                        "nvidia.com/gpumem": "1024",
                        "nvidia.com/priority": "1",
                    },
                    env=[{"name": "A", "value": "1"}],
                ),
                annotations={"team": "ml"},
                schedulerName="default-scheduler",
            )
        ),
        [],
    ),
    "mixed-pod-device-config": (
        review(
            pod(
                container("gpu", limits=GPU),
                container("sidecar"),
                init=[container("init", limits={"nvidia.com/gpumem": "100"})],
            )
        ),
        ["--device-config-file", "{device_config}"],
    ),
    "no-devices-no-patch": (review(pod(container())), []),
    "v1beta1": (review(pod(container(limits=GPU)), api_version="admission.k8s.io/v1beta1"), []),
    "refused-privileged": (review(pod(container(limits=GPU, privileged=True))), []),
    "refused-node-name": (review(pod(container(limits=GPU), nodeName="gpu-1")), []),
    "refused-percentage": (
        review(
            pod(container(limits={"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "101"}))
        ),
        [],
    ),
    "refused-quota": (
        review(
            pod(
                container(limits={"nvidia.com/gpu": "1", "nvidia.com/gpumem": "5000"}),
                namespace="team",
            )
        ),
        [],
    ),
    "refused-no-containers": (review(pod()), []),
    "refused-gpumem-bytes": (
        review(pod(container(limits={"nvidia.com/gpu": "1", "nvidia.com/gpumem": "4Gi"}))),
        [],
    ),
    "warning-gpucores-clamped": (
        review(pod(container(limits={"nvidia.com/gpu": "1", "nvidia.com/gpucores": "150"}))),
        [],
    ),
    "ascend-template-memory-rounded": (
        review(
            pod(
                container(
                    limits={"huawei.com/Ascend910B3": "1", "huawei.com/Ascend910B3-memory": "2000"}
                ),
                container("sidecar"),
            )
        ),
        ASCEND,
    ),
    "ascend-910c-one-is-a-module": (
        review(
            pod(
                container(
                    limits={"huawei.com/Ascend910C": "1"}, requests={"huawei.com/Ascend910C": "1"}
                )
            )
        ),
        ASCEND,
    ),
    "ascend-hami-core-kept-as-written": (
        review(
            pod(
                container(
                    limits={
                        "huawei.com/Ascend910B3": "1",
                        "huawei.com/Ascend910B3-memory": "28672",
                        "huawei.com/Ascend910B3-core": "40",
                    }
                ),
                annotations={"huawei.com/vnpu-mode": "hami-core"},
            )
        ),
        ASCEND,
    ),
    "refused-ascend-core-in-template-mode": (
        review(
            pod(
                container(
                    limits={"huawei.com/Ascend910B3": "1", "huawei.com/Ascend910B3-core": "40"}
                )
            )
        ),
        ASCEND,
    ),
    "refused-ascend-memory-too-large": (
        review(
            pod(
                container(
                    limits={"huawei.com/Ascend910B3": "1", "huawei.com/Ascend910B3-memory": "70000"}
                )
            )
        ),
        ASCEND,
    ),
    "cambricon-taken-over": (
        review(
            pod(
                container(
                    limits={
                        "cambricon.com/vmlu": "1",
                        "cambricon.com/mlu.smlu.vmemory": "20",
                        "cambricon.com/mlu.smlu.vcore": "10",
                    }
                )
            )
        ),
        [],
    ),
    "dra-share-becomes-a-claim": (
        review(
            pod(
                container(
                    "main",
                    limits={
                        "nvidia.com/gpu": "1",
                        "nvidia.com/gpumem": "3000",
                        "nvidia.com/gpucores": "30",
                    },
                ),
                container("sidecar"),
            )
        ),
        ["--dra"],
    ),
    "ephemeral-gets-no-devices": (_debugged(_DEBUGGER), []),
    "ephemeral-refused-privileged": (
        _debugged({**_DEBUGGER, "securityContext": {"privileged": True}}),
        [],
    ),
}


async def _answer(case: dict[str, Any], argv: list[str]) -> dict[str, Any]:
    settings = WebhookSettings.load(["--no-namespace-check", *argv])
    provider, _ = in_memory_tracing("hami-webhook")
    quota = InMemoryQuotaSource({"team": {"nvidia.com/gpumem": QuotaState(8000, 4000)}})
    app = create_app(settings, tracer_provider=provider, quota=quota,
                     templates=InMemoryTemplateSink())  # fmt: skip
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://webhook") as client:
        response = await client.post("/webhook", json=case)
    assert response.status_code == 200
    answer: dict[str, Any] = response.json()
    return answer


def _normalise(value: Any) -> Any:
    if isinstance(value, str) and TRACEPARENT.match(value):
        return "<traceparent>"
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_answer(name: str, tmp_path: Path) -> None:
    case, argv = CASES[name]
    config = tmp_path / "device-config.yaml"
    config.write_text(DEVICE_CONFIG)
    vendor_config = tmp_path / "vendor-config.yaml"
    vendor_config.write_text(VENDOR_CONFIG)
    files = {"device_config": config, "vendor_config": vendor_config}
    answer = asyncio.run(_answer(case, [a.format(**files) for a in argv]))
    patch = decoded_patch(answer)
    apply_patch(case["request"]["object"], patch)  # the patch applies to what was sent
    response = dict(answer["response"])
    if "patch" in response:
        response["patch"] = patch
    got = _normalise({**answer, "response": response})
    path = GOLDEN / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
    assert path.exists(), f"no golden file {path}; run with UPDATE_GOLDEN=1 and review it"
    assert got == json.loads(path.read_text())
