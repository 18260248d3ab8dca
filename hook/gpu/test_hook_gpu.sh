#!/usr/bin/env bash
# Real-GPU tier of the hook (needs an NVIDIA GPU, its driver, gcc and python3 with PyTorch; the
# parts that do not use PyTorch still run without it).
#   test_hook_gpu.sh BUILD_DIR HEADERS_DIR
# Prints name=value lines; exits non-zero when a limit does not hold, the SM error exceeds 5, a
# limited launch costs more than 10 % over an unlimited one, oversubscription (any allocation
# path) or MPS (hand-started or the plugin's daemon) fails. MIG (dynamic, and the static mixed
# and single strategies) runs only on a GPU already in MIG mode, with the repository's .venv for
# the plugin code. plugin-nvidia/tests/test_gpu_tier.py keeps this script honest on a CPU.
set -euo pipefail
build="$(cd "$1" && pwd)"; hdr="$2"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
hook="$build/libvgpu.so"
fail=0
# Where an unexpected failure stops the run (set -e), say where: the lines so far still count.
trap 'echo "gpu_tier_aborted_at_line=$LINENO"' ERR
command -v nvidia-smi >/dev/null || { echo "gpu_tier=no-nvidia-smi"; exit 1; }
have_torch=1
python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null \
  || { echo "gpu_torch=no-torch-cuda"; have_torch=0; fail=1; }
gcc -O2 -I"$hdr/cuda12" -o "$work/gpu_bench" "$here/gpu_bench.c" -ldl
# Arithmetic on what the runs printed; "nan" when a run printed nothing (the checks then fail).
calc() { python3 -c "print($1)" 2>/dev/null || echo nan; }
echo "gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader -i 0 | tr ' ' '_')"

# Run with the hook as HAMi's plugin would configure a container, fresh region per run.
hooked() { env LD_PRELOAD="$hook" CUDA_VISIBLE_DEVICES=0 \
  CUDA_DEVICE_MEMORY_SHARED_CACHE="$work/region.$RANDOM$RANDOM" "$@"; }

# 1. PyTorch under a 3000 MiB limit, plain cudaMalloc and expandable segments (cuMemCreate).
[ "$have_torch" = 1 ] && for conf in "" "expandable_segments:True"; do
  tag=$([ -z "$conf" ] && echo malloc || echo vmm)
  hooked CUDA_DEVICE_MEMORY_LIMIT=3000m PYTORCH_CUDA_ALLOC_CONF="$conf" python3 - "$tag" <<'PY' | tee "$work/torch.$tag" || true
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
if [ "$have_torch" = 1 ]; then
region="$work/region.smi"
env LD_PRELOAD="$hook" CUDA_VISIBLE_DEVICES=0 CUDA_DEVICE_MEMORY_SHARED_CACHE="$region" \
  CUDA_DEVICE_MEMORY_LIMIT=3000m python3 -c "
import time, torch
x = torch.empty(1 << 30, dtype=torch.uint8, device='cuda'); torch.cuda.synchronize()
open('$work/holding', 'w').close(); time.sleep(20)" &
holder=$!
for _ in $(seq 100); do [ -f "$work/holding" ] && break; sleep 0.2; done
smi=$(env LD_PRELOAD="$hook" CUDA_DEVICE_MEMORY_SHARED_CACHE="$region" CUDA_DEVICE_MEMORY_LIMIT=3000m \
  nvidia-smi --query-gpu=memory.total,memory.used --format=csv,noheader,nounits -i 0) || smi=","
kill "$holder" 2>/dev/null || true; wait "$holder" 2>/dev/null || true
smi_total=$(echo "$smi" | cut -d, -f1 | tr -d ' '); smi_used=$(echo "$smi" | cut -d, -f2 | tr -d ' ')
echo "gpu_nvidia_smi_total_mib=$smi_total"
echo "gpu_nvidia_smi_used_mib=$smi_used"
[ "$smi_total" = 3000 ] && [ "$smi_used" -ge 1024 ] && [ "$smi_used" -le 1100 ] || fail=1
fi

# 3. SM limits with a compute-bound kernel: throughput relative to the unlimited run.
base=$("$work/gpu_bench" spin 4) || base=0
echo "gpu_spin_kernels_per_s_unlimited=$base"
worst=0
for pct in 10 30 50 70 90; do
  rate=$(hooked CUDA_DEVICE_SM_LIMIT=$pct GPU_CORE_UTILIZATION_POLICY=force "$work/gpu_bench" spin 4) \
    || rate=0
  util=$(calc "f'{100 * $rate / $base:.2f}'")
  echo "gpu_sm_limit_${pct}_pct=$util"
  worst=$(calc "f'{max($worst, abs($util - $pct)):.2f}'")
done
echo "gpu_sm_limit_error_pts=$worst"
python3 -c "import sys; sys.exit(not $worst <= 5)" 2>/dev/null || fail=1

# 4. Launch overhead of an unthrottled launch, same binary with and without the hook.
without=$("$work/gpu_bench" launch) || without=nan
with=$(hooked CUDA_DEVICE_MEMORY_LIMIT=3000m "$work/gpu_bench" launch) || with=nan
echo "gpu_launch_ns_without_hook=$without"
echo "gpu_launch_ns_with_hook=$with"
echo "gpu_launch_overhead_ns=$(calc "f'{$with - $without:.1f}'")"

# 5. A limited launch (SM limit 90 %, force; empty kernels never reach it): the limiter measures
#    GPU time on a sample of launches only. Target: at most 10 % over the unlimited launch.
limited=$(hooked CUDA_DEVICE_MEMORY_LIMIT=3000m CUDA_DEVICE_SM_LIMIT=90 \
  GPU_CORE_UTILIZATION_POLICY=force "$work/gpu_bench" launch) || limited=nan
echo "gpu_launch_ns_limited=$limited"
pct=$(calc "f'{100 * ($limited - $without) / $without:.1f}'")
echo "gpu_launch_limited_overhead_pct=$pct"
python3 -c "import sys; sys.exit(not $pct <= 10)" 2>/dev/null || fail=1

# 6. Context and module memory count: at the limit, what the driver really holds for the process
#    (nvidia-smi, outside the hook) stays under the limit (a context alone is hundreds of MiB).
if [ "$have_torch" = 1 ]; then
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
fi

# 7. Oversubscription: a limit 4 GiB past the device with CUDA_OVERSUBSCRIBE; what does not fit
#    is backed by host memory (managed), usable from kernels.
phys=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits -i 0 | tr -d ' ') || phys=0
over=$((phys + 4096))
[ "$have_torch" = 1 ] && { timeout 120 env LD_PRELOAD="$hook" CUDA_VISIBLE_DEVICES=0 \
  CUDA_DEVICE_MEMORY_SHARED_CACHE="$work/region.over" CUDA_DEVICE_MEMORY_LIMIT=${over}m \
  CUDA_OVERSUBSCRIBE=true python3 - "$phys" <<'PY' | tee "$work/over" || true; }
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
[ "$have_torch" = 0 ] || grep -q "gpu_oversubscribe_ok=1" "$work/over" || fail=1

# 7b. Oversubscription through every path the hook spills (gpu_bench oversub, one process each):
#     1 GiB units past the device until the limit refuses one, every unit written by cuMemsetD32
#     and a kernel and read back; what the driver shows as host-backed (managed pointers, VMM
#     handles off the device) must be what the region records as spilled (the monitor's reader,
#     hami_common.shm.region), and nothing once freed. A route that runs past 90 s (host-backed
#     memory too slow to touch) ends the part: the others would too, and the tier must stay short.
cat > "$work/spill_reader.py" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[1])
from hami_common.shm.region import read_region
route, phase = sys.argv[2], os.environ["PHASE"]
dev = read_region(os.environ["CUDA_DEVICE_MEMORY_SHARED_CACHE"]).devices[0]
want = int(os.environ["EXPECT_SPILLED_BYTES"]) if phase == "held" else 0
print(f"gpu_oversubscribe_{route}_region_spilled_{phase}_mib={dev.spilled_bytes >> 20}")
sys.exit(int(dev.spilled_bytes != want))
PY
timed_out=""
for route in alloc pitch async pool vmm; do
  if [ -n "$timed_out" ]; then
    echo "gpu_oversubscribe_${route}=skipped-after-${timed_out}-timed-out"
    echo "gpu_oversubscribe_${route}_ok=0"
    fail=1; continue
  fi
  rc=0
  timeout 90 env LD_PRELOAD="$hook" CUDA_VISIBLE_DEVICES=0 CUDA_OVERSUBSCRIBE=true \
    CUDA_DEVICE_MEMORY_SHARED_CACHE="$work/region.over.$route" CUDA_DEVICE_MEMORY_LIMIT=${over}m \
    "$work/gpu_bench" oversub "$route" "$phys" -- \
    python3 "$work/spill_reader.py" "$repo/common/src" "$route" > "$work/over.$route" 2>&1 || rc=$?
  cat "$work/over.$route"
  [ "$rc" = 124 ] && { timed_out=$route; echo "gpu_oversubscribe_${route}=timed-out"; }
  if ! grep -q "^gpu_oversubscribe_${route}_ok=1" "$work/over.$route"; then
    fail=1
    grep -q "^gpu_oversubscribe_${route}_ok=" "$work/over.$route" \
      || echo "gpu_oversubscribe_${route}_ok=0"
  fi
done

# 8. MIG: only where GPU 0 is already in MIG mode (turning it on needs a GPU reset, which this
#    tier never does); the plugin's NVML MIG code makes a 1g instance, the plugin's static MIG
#    enumeration (NvmlBackend.discover + static_mig.plan, as at startup) lists what the mixed and
#    single strategies would advertise with it there, then the instance is destroyed again.
mig=$(nvidia-smi --query-gpu=mig.mode.current --format=csv,noheader -i 0 2>/dev/null || true)
py="$here/../../.venv/bin/python"
if [ "$mig" != "Enabled" ]; then
  echo "gpu_mig=not-enabled"
elif [ ! -x "$py" ]; then
  echo "gpu_mig=no-venv"
else
  "$py" - <<'PY' || fail=1
from hami_plugin_nvidia.mig import profile_table
from hami_plugin_nvidia.nvml import NvmlBackend, NvmlMig
from hami_plugin_nvidia.static_mig import StaticMigError, plan
backend = NvmlBackend()
devices = backend.discover()
uuid = next(d.uuid for d in devices if d.index == 0)
mig = NvmlMig()
table = profile_table(mig.model(uuid))
name = next(n for n, (_, slices, _p) in table.items() if slices == 1)
taken = {(i.start, i.size) for i in mig.instances(uuid)}
free = [p for p in table[name][2] if not any(p[0] < s + z and s < p[0] + p[1] for s, z in taken)]
inst = mig.create(uuid, name, *free[0])
try:
    listed = any(i.mig_uuid == inst.mig_uuid for i in mig.instances(uuid))
    mig_gpus = [d for d in devices if d.mode == "mig"]
    every = {i.mig_uuid for d in mig_gpus for i in mig.instances(d.uuid)}
    mixed = plan("mixed", devices, mig)
    assert mixed is not None
    served = set()
    mixed_ok = True
    for res in mixed.resources("nvidia.com/gpu", "nvidia-gpu.sock"):
        assert res.listed is not None
        ids = [d.uuid for d in res.listed(devices)]
        print(f"gpu_static_mig_mixed_resource={res.resource_name}:{len(ids)}")
        mixed_ok &= res.resource_name.startswith("nvidia.com/mig-") and bool(ids)
        served |= set(ids)
    mixed_ok &= served == every and inst.mig_uuid in served
    print(f"gpu_static_mig_mixed_ok={int(mixed_ok)}")
    kinds = {(d.model, i.profile) for d in mig_gpus for i in mig.instances(d.uuid)}
    fits = len(mig_gpus) == len(devices) and len(kinds) == 1
    try:
        single = plan("single", devices, mig)
        assert single is not None
        [res] = single.resources("nvidia.com/gpu", "nvidia-gpu.sock")
        assert res.listed is not None
        ids = {d.uuid for d in res.listed(devices)}
        print(f"gpu_static_mig_single_resource={res.resource_name}:{len(ids)}")
        single_ok = fits and res.resource_name == "nvidia.com/gpu" and ids == every
    except StaticMigError as exc:
        print("gpu_static_mig_single=refused:" + str(exc).replace(" ", "_")[:200])
        single_ok = not fits  # refused exactly when the node is not one kind of MIG device
    print(f"gpu_static_mig_single_ok={int(single_ok)}")
finally:
    mig.destroy(uuid, inst.gpu_instance_id)
gone = all(i.gpu_instance_id != inst.gpu_instance_id for i in mig.instances(uuid))
backend.close()
print(f"gpu_mig_profile={name}")
print(f"gpu_mig_create_ok={int(listed and inst.mig_uuid.startswith('MIG-'))}")
print(f"gpu_mig_destroy_ok={int(gone)}")
assert listed and gone and mixed_ok and single_ok
PY
fi

# 9. MPS: two processes under one control daemon (a private pipe directory), each pinned to half
#    the SMs and 2 GiB; the second cannot allocate past its pinned limit.
if [ "$have_torch" = 0 ]; then
  echo "gpu_mps=no-torch"
elif command -v nvidia-cuda-mps-control >/dev/null; then
  export CUDA_MPS_PIPE_DIRECTORY="$work/mps" CUDA_MPS_LOG_DIRECTORY="$work/mps-log"
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  mps_ok=1
  nvidia-cuda-mps-control -d || mps_ok=0
  for i in 1 2; do
    CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=50 CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=2048M \
      timeout 120 python3 -c "
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
  for _ in $(seq 50); do
    pgrep -x nvidia-cuda-mps-server >/dev/null || pgrep -x nvidia-cuda-mps-control >/dev/null \
      || break
    sleep 0.2
  done
  echo "gpu_mps_two_processes_capped=$mps_ok"
  [ "$mps_ok" = 1 ] || fail=1
  # 9b. The plugin's own MPS code (hami_plugin_nvidia.mps, stdlib only): MpsDaemons.ensure starts
  #     GPU 0's control daemon as the plugin does (its pipe folder under the MPS root, the chart's
  #     /dev/shm), two clients get the env Allocate gives a container of 50 cores and 2048 MiB
  #     (mps_env) and GPU 0 only, then stop_all sends quit.
  PYTHONPATH="$repo/plugin-nvidia/src" python3 - "$work/mps-plugin" <<'PY' || fail=1
import os, subprocess, sys
from pathlib import Path
from hami_plugin_nvidia.mps import MpsDaemons, MpsError, mps_env
uuid = subprocess.run(["nvidia-smi", "--query-gpu=uuid", "--format=csv,noheader", "-i", "0"],
                      capture_output=True, text=True, check=True).stdout.strip()
daemons = MpsDaemons(Path(sys.argv[1]), shm_dir=Path("/dev/shm"))
client = (
    "import torch\n"
    "print('sms=%d' % torch.cuda.get_device_properties(0).multi_processor_count)\n"
    "a = torch.empty(1536 << 20, dtype=torch.uint8, device='cuda')\n"
    "try:\n"
    "    b = torch.empty(1024 << 20, dtype=torch.uint8, device='cuda'); print('over')\n"
    "except torch.cuda.OutOfMemoryError:\n"
    "    print('capped')\n"
)
outs, joined, procs = [], False, []
try:
    pipe = daemons.ensure(uuid)
    env = {**mps_env(50, [2048], pipe), "CUDA_VISIBLE_DEVICES": uuid}
    print("gpu_mps_plugin_env=" + env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] + ":"
          + env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"])
    procs = [subprocess.Popen([sys.executable, "-c", client], env={**os.environ, **env},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    joined = daemons.alive(uuid)
except (MpsError, subprocess.TimeoutExpired) as exc:
    print("gpu_mps_plugin_error=" + str(exc).replace(" ", "_")[:200])
    for p in procs:
        p.kill()
finally:
    daemons.stop_all()
ok = joined and len(outs) == 2 and all("capped" in o for o in outs)
for i, o in enumerate(outs):
    sms = [line for line in o.splitlines() if line.startswith("sms=")]
    print(f"gpu_mps_plugin_client{i}_{sms[0] if sms else 'sms=unknown'}")
print(f"gpu_mps_plugin_two_processes_capped={int(ok)}")
sys.exit(0 if ok else 1)
PY
else
  echo "gpu_mps=no-control-daemon"
fi
echo "gpu_hami_core_overhead=not-built (no network on the lent machine)"
echo "gpu_tier_ok=$((1 - fail))"
exit $fail
