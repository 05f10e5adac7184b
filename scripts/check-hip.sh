#!/usr/bin/env bash
# check-hip.sh - compile the GPU backend's sources (src/backend/gpu/*.cu, the
# same files nvcc builds) as HIP for AMD gfx1151 (Strix Halo) and gfx1100 into
# real AMDGPU code objects, warning-free, on a Debian 12 machine without ROCm.
#
# How (no ROCm install, nothing written outside the output folder):
#   - the compiler is Debian 12's own clang-19 (+ lld-19 for the device link,
#     llvm-19 for llvm-readelf), installed from apt when missing;
#   - the HIP, hipBLAS, hipBLASLt and HSA headers come from Debian's ROCm 6.4/7.1
#     packages (suite sid) and the AMDGPU device libraries (ocml/ockl bitcode,
#     LLVM 17, which clang-19 can read; LLVM 21's cannot) from trixie's
#     rocm-device-libs-17: the .debs are fetched from deb.debian.org, checked
#     against the SHA256 of the suite's package index, and unpacked with
#     dpkg-deb -x into OUT/sysroot (cached in ~/.cache/dinox/hip-debs, so a
#     second run needs no network);
#   - each .cu is compiled twice: the device side for every --offload-arch into
#     an unbundled code object (an ELF for the amdgcn-amd-amdhsa target), and
#     the host side (x86-64 object) so the runtime/BLAS calls are type-checked
#     against the HIP headers too. -Werror: a warning fails the check.
#   - each code object is read back with llvm-readelf: machine AMDGPU, target
#     gfx1151 / gfx1100 in its notes, wave size 32, and one kernel descriptor
#     (.kd) per __global__ kernel that the source defines; a source that uses
#     the tile abstraction (gpu_tile.cuh) must hold v_wmma_f32_16x16x16_bf16
#     instructions (llvm-objdump).
# Linking libdinox against libamdhip64/hipBLASLt needs a ROCm machine
# (-DDINOX_HIP=ON there); this check proves the source compiles for the target.
#
# Usage: scripts/check-hip.sh [OUT]   (default: build-hip)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-build-hip}
ARCHS=${DINOX_HIP_ARCHS:-"gfx1151 gfx1100"}
CACHE=${DINOX_HIP_DEB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dinox/hip-debs}
MIRROR=${DINOX_DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$OUT" "$CACHE"
OUT=$(cd "$OUT" && pwd)

# The build-only toolchain: Debian 12's clang-19.
source scripts/lib/apt.sh
apt_ensure check-hip clang-19 lld-19 llvm-19
CLANG=/usr/lib/llvm-19/bin/clang++
READELF=/usr/lib/llvm-19/bin/llvm-readelf
OBJDUMP=/usr/lib/llvm-19/bin/llvm-objdump

# suite:package pairs unpacked into the sysroot (headers and device bitcode only).
DEBS=(
  sid:libamdhip64-dev sid:libhsa-runtime-dev sid:libhipblas-dev sid:libhipblas-common-dev
  sid:libhipblaslt-dev trixie:rocm-device-libs-17
)
index() { # SUITE -> path of its uncompressed Packages index (fetched once per run)
  local f="$OUT/Packages.$1"
  if [ ! -s "$f" ]; then
    if curl -fsS "$MIRROR/dists/$1/main/binary-amd64/Packages.xz" -o "$f.xz" 2>/dev/null; then
      xz -dc "$f.xz" >"$f" && rm -f "$f.xz"
    else
      : >"$f"
    fi
  fi
  echo "$f"
}
SYSROOT="$OUT/sysroot"
rm -rf "$SYSROOT"; mkdir -p "$SYSROOT"
: >"$OUT/packages.txt"
for sp in "${DEBS[@]}"; do
  suite=${sp%%:*}; pkg=${sp#*:}
  rec=$(awk -v RS= -v p="$pkg" '$0 ~ "(^|\n)Package: " p "\n"' "$(index "$suite")")
  file=$(sed -n 's/^Filename: //p' <<<"$rec" | head -1)
  sha=$(sed -n 's/^SHA256: //p' <<<"$rec" | head -1)
  ver=$(sed -n 's/^Version: //p' <<<"$rec" | head -1)
  if [ -n "$file" ]; then
    deb="$CACHE/$(basename "$file")"
    if [ ! -s "$deb" ] || [ "$(sha256sum "$deb" | cut -d' ' -f1)" != "$sha" ]; then
      echo "check-hip: fetching $pkg $ver ($suite)"
      curl -fsS "$MIRROR/$file" -o "$deb.part"
      [ "$(sha256sum "$deb.part" | cut -d' ' -f1)" = "$sha" ] ||
        { echo "check-hip: FAIL: $pkg: SHA256 differs from the $suite index" >&2; exit 1; }
      mv "$deb.part" "$deb"
    fi
  else # no network: the newest cached copy
    deb=$(ls -t "$CACHE/${pkg}_"*.deb 2>/dev/null | head -1 || true)
    [ -n "$deb" ] || { echo "check-hip: FAIL: $pkg: not in the $suite index and not cached in $CACHE" >&2; exit 1; }
    ver="$(basename "$deb") (cached)"
  fi
  dpkg-deb -x "$deb" "$SYSROOT"
  echo "$pkg $ver $suite" >>"$OUT/packages.txt"
done
BITCODE=$(dirname "$(find "$SYSROOT" -name ocml.bc | head -1)")
[ -d "$BITCODE" ] || { echo "check-hip: FAIL: no ocml.bc in the unpacked device libraries" >&2; exit 1; }

FLAGS=(-x hip -std=c++17 -O2 -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare -Werror
       --hip-path="$SYSROOT/usr" --rocm-device-lib-path="$BITCODE"
       -DDX_GPU_HIP -DDINOX_HAVE_HIP=1 -Isrc -Isrc/backend)
offload=(); for a in $ARCHS; do offload+=(--offload-arch="$a"); done
echo "check-hip: $("$CLANG" --version | head -1); targets: $ARCHS"
fail=0
for src in src/backend/gpu/*.cu; do
  name=$(basename "$src" .cu)
  # host side: x86-64 object, the HIP runtime and BLAS calls type-checked
  if ! "$CLANG" "${FLAGS[@]}" "${offload[@]}" --cuda-host-only -c "$src" -o "$OUT/$name.host.o" 2>"$OUT/$name.host.log"; then
    cat "$OUT/$name.host.log"; echo "check-hip: FAIL: $name (host side)"; fail=1; continue
  fi
  # device side: one code object per target
  for a in $ARCHS; do
    co="$OUT/$name.$a.co"
    if ! "$CLANG" "${FLAGS[@]}" --offload-arch="$a" --cuda-device-only --no-gpu-bundle-output \
         -c "$src" -o "$co" 2>"$OUT/$name.$a.log"; then
      cat "$OUT/$name.$a.log"; echo "check-hip: FAIL: $name ($a)"; fail=1; continue
    fi
    hdr=$("$READELF" -h "$co")
    notes=$("$READELF" --notes "$co")
    grep -q "Machine: *EM_AMDGPU" <<<"$hdr" && grep -q "Flags:.*$a" <<<"$hdr" || { echo "check-hip: FAIL: $co is not an AMDGPU object"; fail=1; }
    grep -q "amdgcn-amd-amdhsa--$a" <<<"$notes" || { echo "check-hip: FAIL: $co does not target $a"; fail=1; }
    want=$(grep -c "__global__" "$src" || true)
    got=$("$READELF" --dyn-syms -W "$co" | awk '$NF ~ /\.kd$/' | wc -l)
    waves=$({ grep -o "\.wavefront_size: *[0-9]*" <<<"$notes" || true; } | awk '{print $2}' | sort -u | tr '\n' ' ')
    # a templated kernel gives one descriptor per instantiation: at least one per definition
    if [ "$got" -lt "$want" ]; then
      echo "check-hip: FAIL: $co has $got kernel descriptors for $want __global__ definitions"; fail=1
    fi
    if [ "$want" -gt 0 ] && [ "${waves% }" != "32" ]; then
      echo "check-hip: FAIL: $co wave size '${waves% }' (RDNA3 builds are wave32)"; fail=1
    fi
    # the tile abstraction (gpu_tile.cuh) must reach the matrix units: WMMA instructions in the object
    if grep -q "gpu_tile.cuh" "$src"; then
      nw=$("$OBJDUMP" -d --mcpu="$a" "$co" | grep -c "v_wmma_f32_16x16x16_bf16" || true)
      [ "$nw" -gt 0 ] || { echo "check-hip: FAIL: $co has no v_wmma_f32_16x16x16_bf16 instruction"; fail=1; }
      echo "check-hip: $name $a: $nw v_wmma_f32_16x16x16_bf16 instructions"
    fi
    printf 'check-hip: %-14s %-8s %7d bytes, %3d kernels (%d __global__ definitions), wave %s\n' \
      "$name" "$a" "$(stat -c %s "$co")" "$got" "$want" "${waves:-n/a }"
  done
done
if [ "$fail" -ne 0 ]; then echo "check-hip: FAILED"; exit 1; fi
echo "check-hip: every GPU source compiles for $ARCHS, warning-free (packages: $OUT/packages.txt)"
