#!/usr/bin/env bash
# test_train_plan.sh - `dinox train` runs the memory plan before allocating
# (issue 16): a config whose plan exceeds the usable memory exits non-zero at
# once with the plan's breakdown and the largest batch that fits, creating no
# run directory, on a new run and on a resume; the batch it names does fit
# (dinox plan agrees); a config that fits trains.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
"$DINOX" synth --out synth --patients 2 --size 128 --seed 4 --slices-max 24 >/dev/null 2>&1
"$DINOX" ingest synth --out store >/dev/null 2>&1 || { echo "ingest failed"; exit 1; }
SET=("${TINY[@]}" train.threads=1 train.epoch_length=2)
# a model that certainly does not fit in this machine's memory: ViT-L at 512 px, batch 4096
HUGE=(model.arch=vit_large crops.global_size=512 crops.local_size=112 train.batch_size=4096)
"$DINOX" train --quiet -c "$C" --store store --out huge "${SET[@]}" "${HUGE[@]}" 2>huge.txt; rc=$?
[ $rc -ne 0 ] || bad "a config that does not fit was accepted"
# the plan's message (not an allocation failure: the model needs terabytes) shows it refused before allocating
grep -q "the memory plan says this config does not fit" huge.txt || bad "no plan message: $(cat huge.txt)"
for part in parameters gradients AdamW "EMA teacher" activations "per image" loader "checkpoint staging"; do
  grep -q "$part" huge.txt || bad "the refusal lacks the '$part' line of the breakdown"
done
[ ! -e huge ] || bad "the refusal created the run directory"
# teacher passes over all 8192 crops at once: the refusal names train.teacher_chunk and what it saves, and
# dinox plan agrees on the saving (its JSON)
saving=$(sed -n 's/.*set train.teacher_chunk=8 (saves \([0-9.]*\) GB).*/\1/p' huge.txt)
if [ -n "$saving" ]; then
  "$DINOX" plan -c "$C" --device cpu --json "${SET[@]}" "${HUGE[@]}" >huge.json 2>/dev/null
  "$DINOX" plan -c "$C" --device cpu --json "${SET[@]}" "${HUGE[@]}" train.teacher_chunk=8 >chunk.json 2>/dev/null
  /usr/bin/python3 - "$saving" <<'PY' || bad "train.teacher_chunk=8 does not save the $saving GB the refusal names"
import json, sys
a, b = json.load(open("huge.json")), json.load(open("chunk.json"))
named = float(sys.argv[1]) * 1e9
assert b["teacher_chunk"] == 8 and a["teacher_chunk"] == 8192, (a["teacher_chunk"], b["teacher_chunk"])
assert abs((a["total_bytes"] - b["total_bytes"]) - named) < 0.01e9, (a["total_bytes"] - b["total_bytes"], named)
assert b["teacher_chunk_saving_bytes"] == 0
# the activation parts add up to the activations, and chunking shrinks only the teacher passes and the Gram scratch
for j in (a, b):
    assert sum(j["acts_parts"].values()) == j["acts_bytes"], (sum(j["acts_parts"].values()), j["acts_bytes"])
changed = {k for k in a["acts_parts"] if a["acts_parts"][k] != b["acts_parts"][k]}
assert changed <= {"EMA teacher pass", "Gram teacher pass", "Gram and KoLeo scratch"}, changed
assert b["acts_parts"]["EMA teacher pass"] < a["acts_parts"]["EMA teacher pass"]
PY
else
  bad "the refusal does not name train.teacher_chunk: $(cat huge.txt)"
fi
best=$(sed -n 's/.*The largest batch that fits is \([0-9]*\).*/\1/p' huge.txt)
if [ -n "$best" ]; then
  # the batch the refusal names must be one the planner accepts for the same memory
  mem=$(sed -n 's/.*needs [0-9.]* GB at its peak, \([0-9.]*\) GB usable.*/\1/p' huge.txt)
  "$DINOX" plan -c "$C" --mem-gb "$mem" --tflops 1 "${SET[@]}" "${HUGE[@]}" train.batch_size="$best" >/dev/null 2>&1 ||
    bad "dinox plan says batch $best does not fit in $mem GB either"
  "$DINOX" plan -c "$C" --mem-gb "$mem" --tflops 1 "${SET[@]}" "${HUGE[@]}" train.batch_size=$((best + 1)) >/dev/null 2>&1 &&
    bad "batch $((best + 1)) also fits: the named batch is not the largest"
else
  grep -q "Not even batch 1 fits" huge.txt || bad "no largest batch in the refusal"
fi
# a run that fits trains; its resume with a batch that does not fit is refused before touching it
"$DINOX" train --quiet -c "$C" --store store --out run "${SET[@]}" 2>/dev/null || bad "the tiny config did not train"
before=$(sha256sum run/checkpoints/* | sha256sum)
"$DINOX" train --quiet --resume run --store store train.batch_size=65536 crops.local_count=8 2>resume.txt; rc=$?
[ $rc -ne 0 ] && grep -q "does not fit" resume.txt || bad "resume with a batch that does not fit: exit $rc, $(cat resume.txt)"
[ "$before" = "$(sha256sum run/checkpoints/* | sha256sum)" ] || bad "the refused resume changed the checkpoints"
# the student in passes: a batch that does not fit in one pass but does in passes is refused with the
# train.micro_batch that fits, which dinox plan accepts at that memory (the next larger divisor it does not),
# and a run with passes trains
MB=(model.arch=vit_small crops.global_size=224 crops.local_size=96 crops.local_count=8 train.batch_size=16)
"$DINOX" plan -c "$C" --device cpu --json "${SET[@]}" "${MB[@]}" >mb0.json 2>/dev/null
"$DINOX" plan -c "$C" --device cpu --json "${SET[@]}" "${MB[@]}" train.micro_batch=2 >mb2.json 2>/dev/null
mem=$(/usr/bin/python3 -c '
import json; a, b = json.load(open("mb0.json")), json.load(open("mb2.json"))
assert b["micro_batch"] == 2 and a["micro_batch"] == 16 and b["total_bytes"] < a["total_bytes"]
print("%.3f" % ((a["total_bytes"] + b["total_bytes"]) / 2 / 0.92 / 1e9))') || bad "micro_batch plans: $(cat mb0.json mb2.json)"
"$DINOX" plan -c "$C" --mem-gb "${mem:-1}" --tflops 1 "${SET[@]}" "${MB[@]}" >mbp.txt 2>&1; rc=$?
m=$(sed -n 's/.*batch 16 fits with train.micro_batch=\([0-9]*\).*/\1/p' mbp.txt)
if [ $rc -eq 3 ] && [ -n "$m" ] && [ "$m" -ge 2 ] && [ "$m" -lt 16 ]; then
  "$DINOX" plan -c "$C" --mem-gb "$mem" --tflops 1 "${SET[@]}" "${MB[@]}" train.micro_batch="$m" >/dev/null 2>&1 ||
    bad "dinox plan says train.micro_batch=$m does not fit in $mem GB"
  next=$((m + 1)); while [ $((16 % next)) -ne 0 ]; do next=$((next + 1)); done
  "$DINOX" plan -c "$C" --mem-gb "$mem" --tflops 1 "${SET[@]}" "${MB[@]}" train.micro_batch=$next >/dev/null 2>&1 &&
    bad "train.micro_batch=$next also fits in $mem GB: $m is not the largest"
else
  bad "plan at $mem GB: exit $rc, no micro_batch named: $(cat mbp.txt)"
fi
"$DINOX" train --quiet -c "$C" --store store --out mbrun "${SET[@]}" train.micro_batch=2 loss.koleo_group=2 2>mbrun.txt &&
  grep -q '"loss/total"' mbrun/metrics.jsonl || bad "a run with train.micro_batch=2 did not train: $(cat mbrun.txt)"
"$DINOX" train --quiet -c "$C" --store store --out mbbad "${SET[@]}" train.micro_batch=3 2>mbbad.txt &&
  bad "train.micro_batch=3 of batch 4 was accepted"
grep -q "train.micro_batch 3" mbbad.txt || bad "micro_batch 3 refused without naming it: $(cat mbbad.txt)"
# dinox plan --stage: a table per stage and the total against --days, naming the stage to shorten
ST=(--stage "low:train.epochs=9" --stage "high:train.epochs=1 crops.global_size=64 crops.local_size=32")
"$DINOX" plan -c "$C" --device h200 "${ST[@]}" --days 1000 "${SET[@]}" >st.txt 2>&1; rc=$?
[ $rc -eq 0 ] && grep -q "^  low " st.txt && grep -q "^  high " st.txt && grep -q "fits the budget" st.txt ||
  bad "plan --stage within the budget: exit $rc: $(cat st.txt)"
grep -q "efficiency is the fraction" st.txt || bad "plan does not explain its efficiency factor"
"$DINOX" plan -c "$C" --mem-gb 64 --tflops 0.00001 "${ST[@]}" --days 0.001 "${SET[@]}" >st2.txt 2>&1; rc=$?
[ $rc -eq 3 ] && grep -q "OVER the budget" st2.txt && grep -Eq "shorten stage low|even without stage low" st2.txt ||
  bad "plan --stage over the budget: exit $rc: $(cat st2.txt)"
"$DINOX" plan -c "$C" --stage "nocolon" "${SET[@]}" >/dev/null 2>&1; [ $? -eq 2 ] || bad "--stage without NAME: accepted"
[ $fail -eq 0 ] && echo "test_train_plan: all checks passed"
exit $fail
