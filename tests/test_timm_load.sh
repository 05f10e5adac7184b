#!/usr/bin/env bash
# test_timm_load.sh - exported weights in the real timm: a tiny run is exported
# twice, --format safetensors (DINOv3 names, through timm's own pretrained
# loader and its DINOv3 checkpoint filter) and --format timm (timm's names,
# load_state_dict strict=True); both timm models are built from the file's
# timm.model / timm.kwargs metadata alone and their forward_features tokens
# must equal `dinox embed`'s within 1e-5.
# timm comes from the virtual environment scripts/setup.sh makes
# (DINOX_PYENV, default ~/.cache/dinox/pyenv); without it: SKIPPED (exit 77).
source "$DINOX_SOURCE_DIR/tests/lib/common.sh"
pyenv_or_skip "import timm, safetensors" timm
"$DINOX" synth --out synth --patients 4 --size 128 --seed 1 >/dev/null 2>&1
"$DINOX" ingest synth --out store >/dev/null 2>&1
"$DINOX" train --quiet -c "$C" --store store --out run "${TINY[@]}" train.threads=2 train.epoch_length=4 2>/dev/null
"$DINOX" export run --out dinov3_names.safetensors 2>/dev/null || bad "export --format safetensors"
"$DINOX" export run --format timm --out timm_names.safetensors 2>/dev/null || bad "export --format timm"
$PY -c "import numpy as np; np.save('x.npy', np.random.RandomState(0).randn(2, 3, 48, 32).astype('f4'))"
"$DINOX" embed --weights dinov3_names.safetensors --input x.npy --output y.npy 2>/dev/null || bad "embed"
"$TPY" - >timm.txt 2>&1 <<'PYEOF'; rc=$?
import json, sys
import numpy as np, timm, torch
from safetensors import safe_open
from safetensors.torch import load_file
ref = np.load("y.npy")
x = torch.from_numpy(np.load("x.npy"))
fails = 0
for path, how in (("dinov3_names.safetensors", "pretrained_cfg_overlay"), ("timm_names.safetensors", "strict")):
    meta = safe_open(path, "pt").metadata()
    kw = json.loads(meta["timm.kwargs"])
    if how == "strict":
        m = timm.create_model(meta["timm.model"], pretrained=False, **kw)
        r = m.load_state_dict(load_file(path), strict=True)
        print("ok   %s: load_state_dict(strict=True): %s" % (path, r))
    else:
        m = timm.create_model(meta["timm.model"], pretrained=True, pretrained_cfg_overlay=dict(file=path), **kw)
    m.eval()
    with torch.no_grad():
        t = m.forward_features(x).numpy()
    d = float(abs(t - ref).max()) if t.shape == ref.shape else float("inf")
    ok = d <= 1e-5
    fails += not ok
    print("%s %s in timm %s (%s, %s): tokens %s vs dinox embed %s, max |diff| %.2e" % (
        "ok  " if ok else "FAIL", path, timm.__version__, meta["timm.model"], how, t.shape, ref.shape, d))
sys.exit(fails)
PYEOF
grep -v "huggingface_hub\|httpcore\|httpx" timm.txt  # timm's optional hub import may complain
[ "$rc" = 0 ] || bad "timm: exit $rc"
echo "# $fails failure(s)"
exit "$fail"
