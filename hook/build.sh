#!/usr/bin/env bash
# Build libvgpu.so, the fake driver libraries, the test programs and the bench for one flavour.
#   hook/build.sh OUT FLAVOUR HEADERS     FLAVOUR: release | asan | ubsan | tsan | cuda13
# cuda13 only compiles the library against the CUDA 13 headers (API compatibility check).
set -euo pipefail
out="$1"; flavour="$2"; hdr="$3"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cc="${CC:-gcc}"
inc="$hdr/cuda12"
warn=(-Wall -Wextra -Werror -Wno-missing-field-initializers -std=gnu11)
compat=(-include "$here/src/glibc_compat.h")
case "$flavour" in
  release) san=() ; opt=(-O2 "${compat[@]}") ;;
  cuda13)  san=() ; opt=(-O2 "${compat[@]}") ; inc="$hdr/cuda13" ;;
  asan)    san=(-fsanitize=address -fno-omit-frame-pointer) ; opt=(-O1 -g) ;;
  ubsan)   san=(-fsanitize=undefined -fno-sanitize-recover=all) ; opt=(-O1 -g) ;;
  tsan)    san=(-fsanitize=thread) ; opt=(-O1 -g) ;;
  *) echo "unknown flavour $flavour" >&2; exit 2 ;;
esac
mkdir -p "$out/obj" "$out/fake"
cflags=("${warn[@]}" -fPIC -fvisibility=hidden -D_GNU_SOURCE -I"$inc" -I"$here/src")
srcs=(tables init config log region account reconcile context ptrmap memory query launch limiter procaddr)
objs=()
for s in "${srcs[@]}"; do
  "$cc" "${cflags[@]}" "${opt[@]}" "${san[@]}" -c "$here/src/$s.c" -o "$out/obj/$s.o"
  objs+=("$out/obj/$s.o")
done
# The dlsym override must tail-call glibc: always optimised, never instrumented.
"$cc" "${cflags[@]}" -O2 "${compat[@]}" -foptimize-sibling-calls -c "$here/src/dlsym.c" -o "$out/obj/dlsym.o"
objs+=("$out/obj/dlsym.o")
"$cc" -E -P -x c -I"$inc" -I"$here/src" "$here/src/exports.map.in" | grep -v '^\s*$' > "$out/exports.map"
"$cc" -shared "${san[@]}" -Wl,--version-script="$out/exports.map" -Wl,-z,defs -Wl,-soname,libvgpu.so \
  -o "$out/libvgpu.so" "${objs[@]}" -ldl -lpthread
[ "$flavour" = cuda13 ] && exit 0

fflags=("${warn[@]}" -fPIC -fvisibility=hidden -I"$inc" -I"$here/src" -I"$here/fake" "${opt[@]}" "${san[@]}")
"$cc" "${fflags[@]}" -shared -Wl,-Bsymbolic -Wl,-soname,libcuda.so.1 -o "$out/fake/libcuda.so.1" \
  "$here/fake/fake_cuda.c" "$here/fake/fake_gpu.c" -lpthread
"$cc" "${fflags[@]}" -shared -Wl,-Bsymbolic -Wl,-soname,libnvidia-ml.so.1 -o "$out/fake/libnvidia-ml.so.1" \
  "$here/fake/fake_nvml.c" "$here/fake/fake_gpu.c" -lpthread
ln -sf libcuda.so.1 "$out/fake/libcuda.so"
ln -sf libnvidia-ml.so.1 "$out/fake/libnvidia-ml.so"

tflags=("${warn[@]}" -I"$inc" -I"$here/tests" -I"$here/src" "${opt[@]}" "${san[@]}")
for t in "$here"/tests/t_*.c; do
  name="$(basename "$t" .c)"
  "$cc" "${tflags[@]}" -o "$out/$name" "$t" -L"$out/fake" -lcuda -lnvidia-ml -ldl -lpthread \
    -lm -Wl,-rpath,'$ORIGIN/fake'
done
if [ "$flavour" = release ]; then
  "$cc" "${warn[@]}" -I"$inc" -I"$here/tests" -O2 -o "$out/bench_hook" "$here/bench/bench_hook.c" \
    -L"$out/fake" -lcuda -lnvidia-ml -ldl -lpthread -lm -lm -Wl,-rpath,'$ORIGIN/fake'
fi
