#!/usr/bin/env bash
# test_ingest_symlinks.sh - the ingest walk visits each directory and each file
# once, whatever links point at them (issue 13 point 4):
#  - two symlinks back to the parent (t/a/l1 -> .., t/a/l2 -> ..) used to make
#    the walk branch twice per level down to the depth cap (2^64 paths, memory
#    growing to GBs); the ingest must finish quickly in bounded memory;
#  - a symlinked directory and a symlinked file that point at what the walk
#    already saw must not add the series twice or its slices as duplicates.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
"$DINOX" synth --out syn --patients 1 --size 128 --slices-max 6 --seed 4 >/dev/null 2>&1 || { echo "FAIL synth"; exit 1; }
series=$(dirname "$(find syn -name '1-001.dcm' | head -1)")
mkdir -p t/a
cp "$series"/* t/a/
ln -s .. t/a/l1
ln -s .. t/a/l2
ln -s a t/again                 # the same directory under a second name
ln -s a/1-003.dcm t/copy.dcm    # a slice the walk meets again

# A bounded run: 60 s and (outside sanitizer builds, whose shadow memory needs a
# huge address space) 2 GiB of address space.
limit=""
"$DINOX" --version | grep -q '^options:.*asan' || limit="ulimit -v 2097152;"
bash -c "$limit exec timeout 60 \"$DINOX\" ingest t --out store --no-progress" >out.log 2>err.log
rc=$?
if [ "$rc" = 0 ]; then ok "ingest through two symlink loops finished (exit 0)"
elif [ "$rc" = 124 ]; then bad "ingest through two symlink loops did not finish in 60 s"
else bad "ingest exit $rc: $(tail -3 err.log)"; fi
n=$("$DINOX" store list store 2>/dev/null | tail -n +2 | grep -vc '^total:')
[ "$n" = 1 ] && ok "the series is stored once" || bad "store lists $n series (want 1)"
grep -q "added 1 series (6 slices" err.log && ok "6 slices, as in the input" ||
    bad "not 'added 1 series (6 slices': $(grep added err.log)"
grep -q "duplicate" err.log && bad "duplicate slices reported: $(grep duplicate err.log)" ||
    ok "no duplicate slices (the symlinked file was not read twice)"

# Re-running finds the series stored.
[ "$rc" = 124 ] && { echo "$fails check(s) failed"; exit 1; }
bash -c "$limit exec timeout 60 \"$DINOX\" ingest t --out store --no-progress" >/dev/null 2>err2.log
rc=$?
[ "$rc" = 0 ] && grep -q "1 already stored" err2.log && ok "re-run: 1 already stored" ||
    bad "re-run exit $rc: $(grep -E 'added|ingest:' err2.log | tail -2)"

[ "$fails" = 0 ] && echo "all symlink checks passed" || { echo "$fails check(s) failed"; exit 1; }
