#!/usr/bin/env bash
# Real-GPU tier of the hook (needs an NVIDIA GPU, its driver, gcc and python3 with PyTorch).
#   test_hook_gpu.sh BUILD_DIR HEADERS_DIR
# Prints name=value lines; exits non-zero when a limit does not hold or the SM error exceeds 5.
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
echo "gpu_tier_ok=$((1 - fail))"
exit $fail
