#!/usr/bin/env bash
# test_synth_existing_out.sh - `dinox synth` refuses an output directory that
# already holds files (issue 13 point 11): a second run into the same tree
# used to add a second study to the existing patients (and rewrite
# ground_truth/lesions.csv with only the new one). The refusal names the
# directory and exits non-zero, leaving the tree as it was; an empty existing
# directory is fine, and --force writes into a non-empty one on purpose.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
syn() { "$DINOX" synth --patients 1 --size 128 --slices-max 4 "$@"; }
studies() { find "$1/LIDC-IDRI-0001" -mindepth 1 -maxdepth 1 -type d | wc -l; }

mkdir empty
syn --out empty --seed 1 >/dev/null 2>err0.log && ok "an empty existing directory is accepted" ||
    bad "empty directory refused: $(tail -1 err0.log)"
syn --out tree --seed 1 >/dev/null 2>err1.log || bad "first run failed: $(tail -1 err1.log)"
before=$(cd tree && find . -type f -exec md5sum {} + | sort)
syn --out tree --seed 2 >/dev/null 2>err2.log
rc=$?
[ "$rc" != 0 ] && ok "second run into the tree refused (exit $rc)" || bad "second run into a non-empty tree exit 0"
grep -q "tree" err2.log && grep -qi "not empty" err2.log && grep -q -- "--force" err2.log &&
    ok "message: $(head -1 err2.log)" || bad "unclear message: $(head -1 err2.log)"
[ "$(studies tree)" = 1 ] && ok "LIDC-IDRI-0001 still has one study" || bad "LIDC-IDRI-0001 has $(studies tree) studies"
[ "$(cd tree && find . -type f -exec md5sum {} + | sort)" = "$before" ] && ok "tree unchanged" || bad "tree changed"
syn --out tree --seed 2 --force >/dev/null 2>err3.log && ok "--force writes into it" ||
    bad "--force refused: $(tail -1 err3.log)"
[ "$(studies tree)" = 2 ] && ok "with --force the second study is added" || bad "--force: $(studies tree) studies"
: >file
syn --out file --seed 1 >/dev/null 2>err4.log && bad "a regular file as --out accepted" || ok "a regular file as --out refused"

[ "$fails" = 0 ] && echo "all synth output checks passed" || { echo "$fails check(s) failed"; exit 1; }
