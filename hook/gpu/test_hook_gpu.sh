#!/usr/bin/env bash
# Real-GPU tier of the hook (needs an NVIDIA GPU, its driver, gcc and python3 with PyTorch).
#   test_hook_gpu.sh BUILD_DIR HEADERS_DIR
# Prints name=value lines; exits non-zero when a limit does not hold, the SM error exceeds 5, a
# limited launch costs more than 10 % over an unlimited one, oversubscription or MPS fails.
# MIG runs only on a GPU already in MIG mode (with the repository's .venv for the plugin code).
set -euo pipefail
build="$(cd "$1" && pwd)"; hdr="$2"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
hook="$build/libvgpu.so"
fail=0
command -v nvidia-smi >/dev/null || { echo "gpu_tier=no-nvidia-smi"; exit 1; }
python3 -c "import torch; assert torch.cuda.is_available()" || { echo "gpu_tier=no-torch-cuda"; exit 1; }
gcc -O2 -I"$hdr/cuda12" -o "$work/gpu_bench" "$here/gpu_bench.c" -ldl
echo "gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader -i 0 | tr ' ' '_')"

# Run with the hook as HAMi's plugin would configure a container, fresh region per run.
hooked() { env LD_PRELOAD="$hook" CUDA_VISIBLE_DEVICES=0 \
  CUDA_DEVICE_MEMORY_SHARED_CACHE="$work/region.$RANDOM$RANDOM" "$@"; }

# 1. PyTorch under a 3000 MiB limit, plain cudaMalloc and expandable segments (cuMemCreate).
for conf in "" "expandable_segments:True"; do
  tag=$([ -z "$conf" ] && echo malloc || echo vmm)
  hooked CUDA_DEVICE_MEMORY_LIMIT=3000m PYTORCH_CUDA_ALLOC_CONF="$conf" python3 - "$tag" <<'PY' | tee "$work/torch.$tag"
import sys, torch
tag = sys.argv[1]
free, total = torch.cuda.mem_get_info()
chunks, granted = [], 0
try:
    while granted < 8192:
        chunks.append(torch.empty(256 << 20, dtype=torch.uint8, device="cuda"))
        granted += 256
    oom = 0
except torch.cuda.OutOfMemoryError:
    oom = 1
free2, total2 = torch.cuda.mem_get_info()
print(f"gpu_torch_{tag}_mem_get_info_total_mib={total >> 20}")
print(f"gpu_torch_{tag}_granted_mib={granted}")
print(f"gpu_torch_{tag}_oom_at_limit={oom}")
print(f"gpu_torch_{tag}_free_at_limit_mib={free2 >> 20}")
ok = total >> 20 == 3000 and oom and 3000 - 512 < granted <= 3000 and free2 >> 20 < 512
print(f"gpu_torch_{tag}_limit_ok={int(ok)}")
PY
  grep -q "_limit_ok=1" "$work/torch.$tag" || fail=1
done

# 2. nvidia-smi in the container view while a process holds 1 GiB.
region="$work/region.smi"
env LD_PRELOAD="$hook" CUDA_VISIBLE_DEVICES=0 CUDA_DEVICE_MEMORY_SHARED_CACHE="$region" \
  CUDA_DEVICE_MEMORY_LIMIT=3000m python3 -c "
import time, torch
x = torch.empty(1 << 30, dtype=torch.uint8, device='cuda'); torch.cuda.synchronize()
open('$work/holding', 'w').close(); time.sleep(20)" &
holder=$!
for _ in $(seq 100); do [ -f "$work/holding" ] && break; sleep 0.2; done
smi=$(env LD_PRELOAD="$hook" CUDA_DEVICE_MEMORY_SHARED_CACHE="$region" CUDA_DEVICE_MEMORY_LIMIT=3000m \
  nvidia-smi --query-gpu=memory.total,memory.used --format=csv,noheader,nounits -i 0)
kill "$holder" 2>/dev/null || true; wait "$holder" 2>/dev/null || true
smi_total=$(echo "$smi" | cut -d, -f1 | tr -d ' '); smi_used=$(echo "$smi" | cut -d, -f2 | tr -d ' ')
echo "gpu_nvidia_smi_total_mib=$smi_total"
echo "gpu_nvidia_smi_used_mib=$smi_used"
[ "$smi_total" = 3000 ] && [ "$smi_used" -ge 1024 ] && [ "$smi_used" -le 1100 ] || fail=1

# 3. SM limits with a compute-bound kernel: throughput relative to the unlimited run.
base=$("$work/gpu_bench" spin 4)
echo "gpu_spin_kernels_per_s_unlimited=$base"
worst=0
for pct in 10 30 50 70 90; do
  rate=$(hooked CUDA_DEVICE_SM_LIMIT=$pct GPU_CORE_UTILIZATION_POLICY=force "$work/gpu_bench" spin 4)
  util=$(python3 -c "print(f'{100 * $rate / $base:.2f}')")
  echo "gpu_sm_limit_${pct}_pct=$util"
  worst=$(python3 -c "print(f'{max($worst, abs($util - $pct)):.2f}')")
done
echo "gpu_sm_limit_error_pts=$worst"
python3 -c "import sys; sys.exit($worst > 5)" || fail=1

# 4. Launch overhead of an unthrottled launch, same binary with and without the hook.
without=$("$work/gpu_bench" launch)
with=$(hooked CUDA_DEVICE_MEMORY_LIMIT=3000m "$work/gpu_bench" launch)
echo "gpu_launch_ns_without_hook=$without"
echo "gpu_launch_ns_with_hook=$with"
echo "gpu_launch_overhead_ns=$(python3 -c "print(f'{$with - $without:.1f}')")"

# 5. A limited launch (SM limit 90 %, force; empty kernels never reach it): the limiter measures
#    GPU time on a sample of launches only. Target: at most 10 % over the unlimited launch.
limited=$(hooked CUDA_DEVICE_MEMORY_LIMIT=3000m CUDA_DEVICE_SM_LIMIT=90 \
  GPU_CORE_UTILIZATION_POLICY=force "$work/gpu_bench" launch)
echo "gpu_launch_ns_limited=$limited"
pct=$(python3 -c "print(f'{100 * ($limited - $without) / $without:.1f}')")
echo "gpu_launch_limited_overhead_pct=$pct"
python3 -c "import sys; sys.exit($pct > 10)" || fail=1

# 6. Context and module memory count: at the limit, what the driver really holds for the process
#    (nvidia-smi, outside the hook) stays under the limit (a context alone is hundreds of MiB).
hooked CUDA_DEVICE_MEMORY_LIMIT=2048m python3 - "$work/ctx.pid" <<'PY' &
import os, sys, time, torch
chunks = []
try:
    while True:
        chunks.append(torch.empty(64 << 20, dtype=torch.uint8, device="cuda"))
except torch.cuda.OutOfMemoryError:
    pass
torch.cuda.synchronize()
open(sys.argv[1], "w").write(str(os.getpid()))
time.sleep(15)
PY
ctxproc=$!
for _ in $(seq 150); do [ -s "$work/ctx.pid" ] && break; sleep 0.2; done
real=$(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits \
  | awk -F', ' -v p="$(cat "$work/ctx.pid" 2>/dev/null)" '$1 == p {print $2}')
kill "$ctxproc" 2>/dev/null || true; wait "$ctxproc" 2>/dev/null || true
echo "gpu_ctx_real_used_at_limit_mib=${real:-unknown}"
[ -n "$real" ] && [ "$real" -le 2048 ] && [ "$real" -ge 1536 ] || fail=1

# 7. Oversubscription: a limit of 1.25 x the device with CUDA_OVERSUBSCRIBE; what does not fit is
#    backed by host memory (managed), usable from kernels.
phys=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits -i 0 | tr -d ' ')
over=$((phys * 5 / 4))
hooked CUDA_DEVICE_MEMORY_LIMIT=${over}m CUDA_OVERSUBSCRIBE=true python3 - "$phys" <<'PY' | tee "$work/over"
import sys, torch
phys = int(sys.argv[1])
chunks, granted = [], 0
try:
    while True:
        t = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
        t.fill_(1)
        chunks.append(t)
        granted += 1024
except (torch.cuda.OutOfMemoryError, RuntimeError):
    pass
torch.cuda.synchronize()
ok = granted > phys and all(int(c[-1]) == 1 for c in chunks[-2:])
print(f"gpu_oversubscribe_granted_mib={granted}")
print(f"gpu_oversubscribe_ok={int(ok)}")
PY
grep -q "gpu_oversubscribe_ok=1" "$work/over" || fail=1

# 8. MIG: only where GPU 0 is already in MIG mode (turning it on needs a GPU reset, which this
#    tier never does); the plugin's NVML MIG code makes a 1g instance and destroys it again.
mig=$(nvidia-smi --query-gpu=mig.mode.current --format=csv,noheader -i 0 2>/dev/null || true)
py="$here/../../.venv/bin/python"
if [ "$mig" != "Enabled" ]; then
  echo "gpu_mig=not-enabled"
elif [ ! -x "$py" ]; then
  echo "gpu_mig=no-venv"
else
  "$py" - <<'PY' || fail=1
import pynvml, hami_rustcore
from hami_plugin_nvidia.mig import profile_table
from hami_plugin_nvidia.nvml import NvmlMig
pynvml.nvmlInit()
h = pynvml.nvmlDeviceGetHandleByIndex(0)
uuid = pynvml.nvmlDeviceGetUUID(h)
uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
mig = NvmlMig()
table = profile_table(mig.model(uuid))
name = next(n for n, (_, slices, _p) in table.items() if slices == 1)
taken = {(i.start, i.size) for i in mig.instances(uuid)}
free = [p for p in table[name][2] if not any(p[0] < s + z and s < p[0] + p[1] for s, z in taken)]
inst = mig.create(uuid, name, *free[0])
listed = any(i.mig_uuid == inst.mig_uuid for i in mig.instances(uuid))
mig.destroy(uuid, inst.gpu_instance_id)
gone = all(i.gpu_instance_id != inst.gpu_instance_id for i in mig.instances(uuid))
print(f"gpu_mig_profile={name}")
print(f"gpu_mig_create_ok={int(listed and inst.mig_uuid.startswith('MIG-'))}")
print(f"gpu_mig_destroy_ok={int(gone)}")
assert listed and gone
PY
fi

# 9. MPS: two processes under one control daemon (a private pipe directory), each pinned to half
#    the SMs and 2 GiB; the second cannot allocate past its pinned limit.
if command -v nvidia-cuda-mps-control >/dev/null; then
  export CUDA_MPS_PIPE_DIRECTORY="$work/mps" CUDA_MPS_LOG_DIRECTORY="$work/mps-log"
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  nvidia-cuda-mps-control -d
  mps_ok=1
  for i in 1 2; do
    CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=50 CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=2048M python3 -c "
import torch
a = torch.empty(1536 << 20, dtype=torch.uint8, device='cuda')
try:
    b = torch.empty(1024 << 20, dtype=torch.uint8, device='cuda'); print('over')
except torch.cuda.OutOfMemoryError:
    print('capped')" > "$work/mps.$i" 2>&1 &
  done
  wait
  for i in 1 2; do grep -q capped "$work/mps.$i" || mps_ok=0; done
  echo quit | nvidia-cuda-mps-control || true
  unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
  echo "gpu_mps_two_processes_capped=$mps_ok"
  [ "$mps_ok" = 1 ] || fail=1
else
  echo "gpu_mps=no-control-daemon"
fi
echo "gpu_hami_core_overhead=not-built (no network on the lent machine)"
echo "gpu_tier_ok=$((1 - fail))"
exit $fail
