#!/usr/bin/env bash
# check-test-tools.sh - every external command and Python module that the
# tests, fuzzers and benchmarks run is present, belongs to a Debian package,
# and that package is the one named in scripts/setup.sh's PKGS (or comes with
# it as a dependency, e.g. /usr/bin/python3 from python3-minimal via python3).
# A tool installed by hand, from pip or from /usr/local fails here, naming the
# package to add. Run by scripts/test.sh before ctest. Exit 0 all good, 1 not.
# Usage: scripts/check-test-tools.sh [SETUP_SCRIPT]   (default scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
SETUP=${1:-scripts/setup.sh}
PY=/usr/bin/python3

# what          package in PKGS      used by
COMMANDS=(
  "dump2dcm     dcmtk                tests/peers/dicom_peers.py"
  "dcmconv      dcmtk                tests/peers/dicom_peers.py"
  "dcmcrle      dcmtk                tests/peers/dicom_peers.py"
  "dcmcjpls     dcmtk                tests/peers/dicom_peers.py"
  "img2dcm      dcmtk                tests/peers/dicom_peers.py"
  "gdcmconv     libgdcm-tools        tests/peers/dicom_peers.py"
  "gdcminfo     libgdcm-tools        tests/peers/dicom_peers.py, tests/test_synth_e2e.sh"
  "gdcmraw      libgdcm-tools        tests/peers/dicom_peers.py, tests/test_synth_e2e.sh"
  "dciodvfy     dicom3tools          tests/test_synth_e2e.sh"
  "xmllint      libxml2-utils        tests/test_synth_e2e.sh"
  "chromium     chromium             tests/test_eval_e2e.sh"
  "/usr/bin/python3 python3          tests, tests/ref, bench (always this path)"
  "clang        clang                fuzz/ (scripts/test.sh stage 4)"
  "git          git                  tests/test_version.sh"
  "bc           bc                   bench/bench_ingest.sh"
  "/usr/bin/time time                 bench/bench_plan_memory.sh"
  "mpirun       openmpi-bin          tests/test_distributed.sh, bench/bench_distributed.sh"
)
MODULES=(
  "numpy        python3-numpy        tests/ref, tests/peers, tests/*.sh, bench"
  "torch        python3-torch        tests/ref, tests/test_augment.c, bench"
  "sklearn      python3-sklearn      tests/ref/eval_peer.py, tools/realism_report.py"
  "scipy        python3-scipy        tests/data/lidc/pylidc_ref.py"
  "matplotlib   python3-matplotlib   tests/test_synth_e2e.sh, tests/data/lidc/pylidc_ref.py"
  "pydicom      python3-pydicom      tests/peers/dicom_peers.py"
  "PIL          python3-pil          tests/test_augment.c"
  "nibabel      python3-nibabel      tests/test_store_nifti.sh"
)
# data files the tests read directly
FILES=(
  "/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm  python3-pydicom  tests/test_dicom.c"
)

pkgs=$(sed -n '/^PKGS=(/,/^)/p' "$SETUP" | sed 's/#.*//; s/PKGS=(//; s/)//' | tr -s ' \n' '\n' | sed '/^$/d')
in_pkgs() { grep -qx "$1" <<<"$pkgs"; }
# does package $1 bring in package $2 (itself, or its dependency closure)?
declare -A closure=()
brings() {
  [ "$1" = "$2" ] && return 0
  if [ -z "${closure[$1]+x}" ]; then
    closure[$1]=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
      --no-replaces --no-enhances "$1" 2>/dev/null | sed -n 's/^ *|\{0,1\}\(Pre\)\{0,1\}Depends: <\{0,1\}\([^ >:]*\).*/\2/p' | sort -u)
  fi
  grep -qx "$2" <<<"${closure[$1]}"
}
owner() { dpkg -S "$1" 2>/dev/null | head -1 | cut -d: -f1 | cut -d, -f1 || true; }

fails=0
fail() { echo "check-test-tools: FAIL $*"; fails=$((fails + 1)); }
check_path() { # kind name path package users
  local kind=$1 name=$2 path=$3 pkg=$4 users=$5 own
  own=$(owner "$path")
  [ -n "$own" ] || own=$(owner "$(readlink -f "$path")")
  if [ -z "$own" ]; then
    fail "$kind $name ($path) belongs to no Debian package (installed by hand?): remove it and install $pkg"
  elif ! brings "$pkg" "$own"; then
    fail "$kind $name ($path) comes from package $own, not from $pkg (needed by $users)"
  else
    echo "ok   $kind $name: $path ($own)"
  fi
}

for e in "${COMMANDS[@]}"; do
  read -r name pkg users <<<"$e"
  in_pkgs "$pkg" || fail "package $pkg (for command $name, used by $users) is not in PKGS in $SETUP"
  path=$(command -v "$name" 2>/dev/null || true) # an absolute name: that file, as the tests call it
  if [ -z "$path" ]; then fail "command $name not found: install $pkg (used by $users)"; continue; fi
  check_path command "$name" "$path" "$pkg" "$users"
done
for e in "${MODULES[@]}"; do
  read -r name pkg users <<<"$e"
  in_pkgs "$pkg" || fail "package $pkg (for Python module $name, used by $users) is not in PKGS in $SETUP"
  path=$("$PY" -c "import $name, sys; sys.stdout.write($name.__file__)" 2>/dev/null || true)
  if [ -z "$path" ]; then fail "$PY cannot import $name: install $pkg (used by $users)"; continue; fi
  check_path module "$name" "$path" "$pkg" "$users"
done
for e in "${FILES[@]}"; do
  read -r path pkg users <<<"$e"
  in_pkgs "$pkg" || fail "package $pkg (for $path, used by $users) is not in PKGS in $SETUP"
  if [ ! -e "$path" ]; then fail "$path missing: install $pkg (used by $users)"; continue; fi
  check_path file "$(basename "$path")" "$path" "$pkg" "$users"
done
if ((fails)); then
  echo "check-test-tools: $fails problem(s); add the packages named above to PKGS in $SETUP and re-run it"
  exit 1
fi
echo "check-test-tools: every command and Python module the tests use comes from $SETUP's PKGS"
