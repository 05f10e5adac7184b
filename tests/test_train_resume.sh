#!/usr/bin/env bash
# test_train_resume.sh - a training run is resumable bit for bit, and killing it
# at any moment (also in the middle of a checkpoint write) leaves a loadable state.
#
#  1. run A: N steps straight.
#  2. run B: the same config, killed with SIGKILL at a random moment after its
#     first checkpoint, then `--resume` to N. A and B must end with byte-equal
#     student, teacher, Gram teacher and AdamW state.
#  3. run C: checkpoints every step, SIGKILLed at random moments again and again;
#     after every kill the newest valid checkpoint loads (`dinox export`), and the
#     run resumes and finishes.
set -euo pipefail
: "${DINOX:?}" "${DINOX_SOURCE_DIR:?}"
PY=/usr/bin/python3
DINOX=$(readlink -f "$DINOX")
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
"$DINOX" synth --out synth --patients 2 --size 128 --seed 5 --slices-max 24 >/dev/null 2>&1
"$DINOX" ingest synth --out store >/dev/null 2>&1
N=10
SET=(model.dim=32 model.depth=2 model.heads=2 model.registers=2 heads.dino_hidden=32 heads.dino_bottleneck=16
     heads.dino_k=64 heads.ibot_hidden=32 heads.ibot_bottleneck=16 heads.ibot_k=64 train.batch_size=4
     crops.local_count=2 crops.global_size=32 crops.local_size=16 train.epochs=1
     train.log_every=1 train.threads=2 gram.enabled=true gram.teacher_res_factor=2 model.drop_path=0.2)
train() { "$DINOX" train --quiet "$@" "${SET[@]}" train.epoch_length=$N; }

train -c "$DINOX_SOURCE_DIR/configs/demo.yaml" --store store --out A train.ckpt_every_steps=3 2>/dev/null

# B: kill -9 at a random point after the first checkpoint beyond step 0
# run dinox itself in the background, not the shell function: $! must be dinox's pid, or the
# kill below hits a subshell while dinox goes on (and the run directory lock refuses the resume)
"$DINOX" train --quiet -c "$DINOX_SOURCE_DIR/configs/demo.yaml" --store store --out B "${SET[@]}" train.epoch_length=$N \
    train.ckpt_every_steps=3 2>/dev/null &
pid=$!
while [ ! -e B/checkpoints/ckpt-0000000003.safetensors ] && kill -0 $pid 2>/dev/null; do sleep 0.05; done
sleep "0.$((RANDOM % 9))"
kill -9 $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
echo "B killed; checkpoints: $(ls B/checkpoints | tr '\n' ' ')"
train --resume B --store store 2>/dev/null

$PY - A/checkpoints B/checkpoints <<'PYEOF'
import json, os, struct, sys
def newest(d):
    return os.path.join(d, open(os.path.join(d, "latest")).read().strip())
def tensors(p):
    raw = open(p, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8:8 + n])
    meta = h.pop("__metadata__", {})
    return {k: raw[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]] for k, v in h.items()}, meta
a, ma = tensors(newest(sys.argv[1]))
b, mb = tensors(newest(sys.argv[2]))
assert set(a) == set(b), set(a) ^ set(b)
groups = {}
for k in a:
    g = k.split(".")[0]
    groups.setdefault(g, [0, 0])
    groups[g][0] += 1
    groups[g][1] += a[k] == b[k]
for g, (n, same) in sorted(groups.items()):
    print("%-8s %4d tensors, %4d byte-equal" % (g, n, same))
assert all(n == same for n, same in groups.values()), "resumed run differs from the straight run"
print("resume is bit-exact")
PYEOF

# C: a longer run, checkpoint every step, kill -9 again and again
NC=80
# C's arguments: resume once a checkpoint exists; a run killed before its first one starts again (slow starts: ASan, load)
c_args() {
  if [ -e C/checkpoints/latest ]; then args=(--resume C --store store)
  else rm -rf C; args=(-c "$DINOX_SOURCE_DIR/configs/demo.yaml" --store store --out C); fi
}
for round in 1 2 3 4 5 6; do
  c_args
  "$DINOX" train --quiet "${args[@]}" "${SET[@]}" train.epoch_length=$NC train.ckpt_every_steps=1 2>/dev/null &
  pid=$!
  sleep "$((RANDOM % 3)).$((RANDOM % 10))"
  kill -9 $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  if [ -e C/checkpoints/latest ]; then
    "$DINOX" export C --out "C$round.safetensors" 2>&1 | tail -1
  fi
done
c_args
echo "killed runs left checkpoints: $(ls C/checkpoints 2>/dev/null | tr '\n' ' ')"
"$DINOX" train --quiet "${args[@]}" "${SET[@]}" train.epoch_length=$NC train.ckpt_every_steps=1 2>/dev/null ||
  { echo "FAIL: finishing C (${args[*]}) failed"; exit 1; }
grep -q "(step $NC)" <("$DINOX" export C --out C_final.safetensors 2>&1) || { echo "C did not finish"; exit 1; }
# A write cut short (what SIGKILL or a full disk mid-write leaves): a truncated
# newest checkpoint that `latest` already names. Loading falls back to the previous one.
last=$(cat C/checkpoints/latest)
head -c 100000 "C/checkpoints/$last" > C/checkpoints/ckpt-0000000999.safetensors
echo ckpt-0000000999.safetensors > C/checkpoints/latest
"$DINOX" export C --out C_fallback.safetensors 2>"$work/fb.log"
grep -q "(step $NC)" "$work/fb.log" || { echo "no fallback to step $NC:"; cat "$work/fb.log"; exit 1; }
echo "truncated newest checkpoint: fell back to step $NC"
echo "test_train_resume: all checks passed"
