#!/usr/bin/env bash
# test_ingest_empty.sh - an ingest that finds nothing to ingest fails clearly
# and creates nothing (issue 13 point 11): an empty folder, or one holding only
# files that are neither DICOM CT nor NIfTI, used to leave a store directory
# without an index behind (exit 0), which every later command then rejected.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

mkdir -p empty junk/sub
echo "not an image" >junk/sub/readme.txt
for d in empty junk; do
    "$DINOX" ingest "$d" --out "store_$d" --no-progress >/dev/null 2>"err_$d.log"
    rc=$?
    [ "$rc" != 0 ] && ok "$d: exit $rc" || bad "$d: exit 0"
    grep -q "no DICOM series or NIfTI volumes found under $d" "err_$d.log" &&
        ok "$d: $(grep 'no DICOM' "err_$d.log")" || bad "$d: message: $(tail -2 "err_$d.log")"
    [ ! -e "store_$d" ] && ok "$d: no store created" || bad "$d: store_$d created: $(find "store_$d" | tr '\n' ' ')"
done
# An existing store is left as it is (still no index, nothing written).
mkdir store_kept
"$DINOX" ingest empty --out store_kept --no-progress >/dev/null 2>err_kept.log
rc=$?
[ "$rc" != 0 ] && [ -z "$(ls -A store_kept)" ] && ok "existing store directory untouched" ||
    bad "existing store: exit $rc, holds $(ls -A store_kept | tr '\n' ' ')"

[ "$fails" = 0 ] && echo "all empty-ingest checks passed" || { echo "$fails check(s) failed"; exit 1; }
