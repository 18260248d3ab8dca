"""The README's first command: `./just demo` runs `python -m hami_e2e.demo`. This runs that same
module as a process, on its own cluster, and checks what it prints for every pod."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hami_e2e.demo import EXAMPLES, Example, Outcome, check, span_counts, summary


def blocks(out: str) -> dict[str, str]:
    """Each pod's block of the output, by pod name."""
    found = re.split(r"^== ", out, flags=re.MULTILINE)[1:]
    return {block.split(":", 1)[0]: block for block in found}


@pytest.mark.e2e
@pytest.mark.timeout(400)
def test_demo_prints_every_pods_outcome_and_exits_0(tmp_path: Path) -> None:
    env = {**os.environ, "HAMI_E2E_BACKEND": "local"}
    done = subprocess.run(
        [sys.executable, "-m", "hami_e2e.demo", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=360, env=env, check=False,
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, f"demo failed ({done.returncode}):\n{out}\n{done.stderr[-3000:]}"
    assert "Traceback" not in out + done.stderr
    assert out.rstrip().splitlines()[-1] == "demo: 6 of 8 pods running, 2 pending with reasons"
    assert "UNEXPECTED" not in out
    # where to see it work, while it runs
    assert re.search(r"^  web UI: https://127\.0\.0\.1:\d+/ui  \(", out, re.MULTILINE), out
    assert re.search(r"^  Prometheus: http://127\.0\.0\.1:\d+  \(the dashboard \S+/dashboards/"
                     r"hami-rs\.json reads it", out, re.MULTILINE), out  # fmt: skip
    assert re.search(r"^  traces \(Jaeger\): http://127\.0\.0\.1:\d+", out, re.MULTILINE), out
    assert len(re.findall(r"^  node monitor of demo-gpu-[01]: http://", out, re.MULTILINE)) == 2
    shown = blocks(out)
    assert set(shown) == {ex.name for ex in EXAMPLES}
    for ex in EXAMPLES:
        block = shown[ex.name]
        assert f"(expected: {ex.expected};" in block
        spans = "admission, filter" if ex.reason else "admission, filter, bind, Allocate"
        assert re.search(rf"   trace: [0-9a-f]{{32}} \({spans}", block), block
        assert re.search(r"     http://127\.0\.0\.1:\d+/trace/[0-9a-f]{32}  \(as JSON: ", block)
        if ex.reason:
            assert "outcome: Pending on node -" in block, block
            assert f"pending: no node fits (2 nodes rejected: 8 {ex.reason})" in block, block
            assert "reasons per node: {" in block, block
            assert "devices (" not in block, block
            assert " env " not in block, block
        elif ex.vendor == "ascend":
            assert "outcome: Running on node demo-npu-0 " in block, block
            assert "devices (hami.io/Ascend910B3-devices-allocated): " in block, block
            assert ",Ascend910B3,16384,0:;" in block, block
            assert re.search(r"env ASCEND_VISIBLE_DEVICES=[0-3]\n", block), block
            assert "env ASCEND_VNPU_SPECS=vir05_1c_16g" in block, block
            assert '"huawei.com/Ascend910B3-memory": "16384"' in block, block  # the webhook's
            assert "explain: bound to node demo-npu-0" in block, block
        elif ex.vendor == "cambricon":
            assert "outcome: Running on node demo-mlu-0 " in block, block
            mlu = r"devices \(hami.io/cambricon-mlu-devices-allocated\): demo-mlu-0-cambricon-mlu-"
            assert re.search(mlu + r"[01],MLU,5120,10:;", block), block
            assert re.search(r"device nodes: /dev/cambricon_dev[01], /dev/cambricon-smlu", block)
            assert "explain: bound to node demo-mlu-0" in block, block
        else:
            assert re.search(r"outcome: Running on node demo-gpu-[01] ", block), block
            assert "devices (hami.io/vgpu-devices-allocated): GPU-" in block, block
            assert "env NVIDIA_VISIBLE_DEVICES=GPU-" in block, block
            assert f"env CUDA_DEVICE_MEMORY_LIMIT_0={ex.devices[0][0]}m" in block, block
            assert re.search(r"explain: bound to node demo-gpu-[01]", block), block


def _outcome(ex: Example, phase: str, devices: str, reasons: dict[str, int]) -> Outcome:
    pod = {
        "metadata": {"annotations": {"hami.io/vgpu-devices-allocated": devices}},
        "spec": {"nodeName": "n" if phase == "Running" else None},
        "status": {"phase": phase},
    }
    why = {"steps": [{"step": "filter", "reasons": reasons}]}
    spans = ["admission", "filter"] + (["bind", "Allocate"] if phase == "Running" else [])
    return Outcome(ex, pod, {"NVIDIA_VISIBLE_DEVICES": "GPU-a"}, why, spans=spans)  # fmt: skip


def test_an_outcome_other_than_expected_is_reported() -> None:
    one_gpu, a100 = EXAMPLES[0], EXAMPLES[4]
    placed = "GPU-a,NVIDIA,3000,30:;"
    assert check(_outcome(one_gpu, "Running", placed, {})) == []
    assert check(_outcome(one_gpu, "Running", "GPU-a,NVIDIA,2000,30:;", {})) == [
        "expected devices [(3000, 30)], got [(2000, 30)]"
    ]
    assert check(_outcome(a100, "Pending", "", {"CardTypeMismatch": 2})) == []
    untraced = _outcome(one_gpu, "Running", placed, {})
    untraced.spans = ["admission", "filter", "bind"]
    assert check(untraced) == [
        "expected the trace to hold admission, filter, bind, Allocate, Jaeger has "
        "admission, filter, bind"
    ]
    assert span_counts(["admission", "filter", "filter", "filter"]) == "admission, filter x3"
    wrong = _outcome(a100, "Pending", "", {"CardInsufficientMemory": 2})
    wrong.problems = check(wrong)
    assert wrong.problems == [
        "expected every node to fail with CardTypeMismatch, the extender recorded "
        '{"CardInsufficientMemory": 2}'
    ]
    assert summary([wrong]) == (
        "demo: 0 of 1 pods running, 1 pending with reasons; 1 not as expected: a100-only"
    )
