#!/usr/bin/env bash
# test_version.sh - `dinox --version`, `dinox version` and `dinox info` print
# every field (version, git commit, build type, compiler, backends, oneDNN
# version and ISA, OpenMP threads); the commit is the source tree's HEAD when
# built from a git checkout; eval.json and the report record the same version
# string (tests/test_eval_e2e.sh runs the evaluation; here only the CLI).
set -euo pipefail
: "${DINOX:?}" "${DINOX_SOURCE_DIR:?}"
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

v=$("$DINOX" --version)
echo "$v"
[ "$("$DINOX" version)" = "$v" ] && ok "dinox version = dinox --version" || bad "dinox version differs from --version"
field() { sed -n "s/^$1: *//p" <<<"$v"; }
want_version=$(sed -n 's/^project(dinox VERSION \([0-9.]*\).*/\1/p' "$DINOX_SOURCE_DIR/CMakeLists.txt")
[ "$(head -1 <<<"$v")" = "dinox $want_version" ] && ok "version $want_version" || bad "first line is not 'dinox $want_version'"
for k in "git commit" "build type" "options" "compiler" "backends" "oneDNN" "oneDNN ISA" "OpenMP" "codecs"; do
    val=$(field "$k")
    [ -n "$val" ] && ok "$k: $val" || bad "no '$k:' line"
done
grep -qw cpu <<<"$(field backends)" && ok "cpu backend listed" || bad "cpu backend not listed"
grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+ ' <<<"$(field oneDNN)" && ok "oneDNN version x.y.z" || bad "oneDNN version not x.y.z"
grep -Eq '^[0-9]+ threads' <<<"$(field OpenMP)" && ok "OpenMP thread count" || bad "OpenMP thread count missing"
n=$(OMP_NUM_THREADS=3 "$DINOX" --version | sed -n 's/^OpenMP: *\([0-9]*\) threads.*/\1/p')
[ "$n" = 3 ] && ok "OMP_NUM_THREADS=3 reported" || bad "OMP_NUM_THREADS=3 reported as '$n'"
grep -Eq '^(GCC|Clang) [0-9]' <<<"$(field compiler)" && ok "compiler named" || bad "compiler not named"

# the commit: HEAD of the source tree when it is a git checkout (the tree's own
# .git, not a parent repository's), else "unknown"
commit=$(field "git commit")
top=$(git -C "$DINOX_SOURCE_DIR" rev-parse --show-toplevel 2>/dev/null || true)
if [ -n "$top" ] && [ "$(readlink -f "$top")" = "$(readlink -f "$DINOX_SOURCE_DIR")" ]; then
    head=$(git -C "$DINOX_SOURCE_DIR" rev-parse HEAD)
    short=$(git -C "$DINOX_SOURCE_DIR" rev-parse --short HEAD)
    c=${commit%-dirty}
    if [ ${#c} -ge 7 ] && [ "${head#"$c"}" != "$head" ] && [ "${c#"$short"}" != "$c" ]; then
        ok "git commit $commit is HEAD ($short)"
    else
        bad "git commit '$commit' is not HEAD $short (reconfigure/rebuild?)"
    fi
else
    [ "$commit" = unknown ] && ok "no git checkout: commit 'unknown'" || bad "no git checkout but commit '$commit'"
fi

i=$("$DINOX" info)
[ "$(head -n "$(wc -l <<<"$v")" <<<"$i")" = "$v" ] && ok "info starts with the version fields" || bad "info differs from --version"
grep -q '^CPU: ' <<<"$i" && ok "info names the CPU" || bad "info has no CPU line"
"$DINOX" --help | grep -q '^  version ' && ok "version in --help" || bad "version not in --help"
"$DINOX" version --help | grep -q 'usage: dinox info' && ok "version --help" || bad "version --help"
if "$DINOX" version extra >/dev/null 2>&1; then bad "extra argument accepted"; else ok "extra argument refused"; fi
exit $((fails > 0))
