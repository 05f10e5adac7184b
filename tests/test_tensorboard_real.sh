#!/usr/bin/env bash
# test_tensorboard_real.sh - dinox's event files read by TensorBoard's own
# EventAccumulator (tensorboard 2.21 from scripts/setup.sh's PyPI environment):
# a tiny run, then `dinox eval --run --track --attention 2` into it. Checks:
#   - the training scalars, at the logged steps;
#   - the resolved config in the Text plugin (= RUN_DIR/config.yaml, indented
#     as a markdown code block);
#   - the HParams plugin data decoded with tensorboard's own protobufs: the
#     experiment's hparam and metric names, this run's values (numbers,
#     booleans, text) equal to the config;
#   - the eval/* scalars at the checkpoint's step equal to eval.json, the
#     eval_track/* scalars at every checkpoint, the attention PNGs as images.
# Without the environment: SKIPPED (exit 77).
source "$DINOX_SOURCE_DIR/tests/lib/common.sh"
pyenv_or_skip "import tensorboard, google.protobuf" tensorboard
"$DINOX" synth --out synth --patients 12 --size 128 --seed 1 >/dev/null 2>&1
"$DINOX" ingest synth --out store >/dev/null 2>&1
"$DINOX" train --quiet -c "$C" --store store --out run "${TINY[@]}" train.threads=2 train.epoch_length=6 \
    train.ckpt_every_steps=3 2>/dev/null || bad "train"
"$DINOX" eval --store store --run run --out run/eval --size 32 --min-readers 2 --boot 100 --seg-steps 5 \
    --attention 2 --track --threads 2 >/dev/null 2>&1 || bad "eval"
"$TPY" - >tb.txt 2>&1 <<'PYEOF'; rc=$?
import json, sys
import yaml
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.plugins.hparams import plugin_data_pb2
from tensorboard.util import tensor_util
fails = 0
def check(ok, what):
    global fails
    print(("ok   " if ok else "FAIL ") + what)
    fails += not ok
a = ea.EventAccumulator("run", size_guidance={ea.SCALARS: 0, ea.IMAGES: 0, ea.TENSORS: 0})
a.Reload()
tags = a.Tags()
m = [json.loads(l) for l in open("run/metrics.jsonl")]
lt = a.Scalars("loss/total")
check([e.step for e in lt] == [r["step"] for r in m] and all(abs(e.value - r["loss/total"]) <= 1e-6 * abs(r["loss/total"])
      for e, r in zip(lt, m)), "loss/total: %d points at the logged steps, = metrics.jsonl" % len(lt))
# config text
txt = tensor_util.make_ndarray(a.Tensors("config")[0].tensor_proto).item().decode()
cfg = open("run/config.yaml").read()
check(txt == "".join("    " + l + "\n" for l in cfg.splitlines()), "Text plugin 'config' = config.yaml as a code block")
check("config" in a.PluginTagToContent("text"), "the config tag is registered with the text plugin")
# hparams
content = a.PluginTagToContent("hparams")
exp = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
ssi = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
names = [h.name for h in exp.hparam_infos]
metrics = [mi.name.tag for mi in exp.metric_infos]
check("model.dim" in names and "gram.enabled" in names and "eval/probe_test_auc" in metrics and "loss/total" in metrics,
      "HParams experiment: %d hparams, metrics %s" % (len(names), ", ".join(metrics[:4]) + ", ..."))
c = yaml.safe_load(cfg)
hp = ssi.hparams
check(set(hp) == set(names), "session values for every hparam of the experiment")
check(hp["model.dim"].number_value == c["model"]["dim"] and hp["optim.lr"].number_value == c["optim"]["lr"]
      and hp["gram.enabled"].bool_value == c["gram"]["enabled"] and hp["model.arch"].string_value == c["model"]["arch"],
      "session values = config (model.dim %g, optim.lr %g, gram.enabled %s, model.arch %s)" % (
          hp["model.dim"].number_value, hp["optim.lr"].number_value, hp["gram.enabled"].bool_value,
          hp["model.arch"].string_value))
# eval
ev = json.load(open("run/eval/eval.json"))
tr = json.load(open("run/eval/collapse_track.json"))
last = max(t["step"] for t in tr)
knn = a.Scalars("eval/knn_test_accuracy")
check(len(knn) == 1 and knn[0].step == last and abs(knn[0].value - ev["knn"]["test_accuracy"]) < 1e-6,
      "eval/knn_test_accuracy at step %d = eval.json" % knn[0].step)
dice = a.Scalars("eval/seg_test_dice")
check(abs(dice[0].value - ev["seg"]["test_dice"]) < 1e-6, "eval/seg_test_dice = eval.json (%.4f)" % dice[0].value)
pc = a.Scalars("eval_track/patch_cosine")
check([e.step for e in pc] == [t["step"] for t in tr] and all(abs(e.value - t["patch_cosine"]) < 1e-6 for e, t in zip(pc, tr)),
      "eval_track/patch_cosine at every checkpoint %s" % [e.step for e in pc])
ims = [t for t in tags["images"] if t.startswith("eval/attention/")]
im = a.Images(ims[0])[0] if ims else None
check(len(ims) == 2 and im.encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n" and im.width > 0,
      "attention images: %s (%dx%d PNG)" % (ims, im.width if im else 0, im.height if im else 0))
sys.exit(fails)
PYEOF
grep -v "huggingface_hub\|httpcore\|httpx" tb.txt
[ "$rc" = 0 ] || bad "TensorBoard checks: exit $rc"
echo "# $fails failure(s)"
exit "$fail"
