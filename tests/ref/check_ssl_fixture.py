"""check_ssl_fixture.py - reads ssl_tiny.safetensors back, rebuilds student,
teacher and Gram teacher from the file alone (config + sched metadata, init.*,
init_gram.*, step<s>.* inputs) and reruns the 10 steps of ssl_ref.py:
in float64 (must reproduce every stored value to float32 rounding) and in
float32 (prints the error scale a float32 implementation should expect,
measured with the same metrics as tests/test_ssl_parity.c).

    /usr/bin/python3 tests/ref/check_ssl_fixture.py [--dir tests/fixtures]
Exit 0 = the float64 rerun matches.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ssl_ref as S  # noqa: E402
import st  # noqa: E402
import vit_ref as V  # noqa: E402


def normwise(a, ref):
    a, ref = a.double().flatten(), torch.as_tensor(ref).double().flatten()
    r = ref.abs().max().item()
    d = (a - ref).abs().max().item()
    return d / r if r > 0 else d


def rerun(t, cfg, sched, dtype, autocast_bf16=False, trace=None):
    """trace: a list that gets (losses, norms) of every step."""
    vcfg = V.VitConfig(dim=cfg["dim"], depth=cfg["depth"], heads=cfg["heads"],
                       registers=cfg["registers"], patch=cfg["patch"], ffn="mlp",
                       ffn_ratio=cfg["ffn_hidden"] / cfg["dim"], ln_eps=cfg["ln_eps"],
                       mask_k_bias=cfg["mask_k_bias"], rope_base=cfg["rope_base"])
    dh, ih = cfg["dino_head"], cfg["ibot_head"]
    heads = ((dh["hidden"], dh["bottleneck"], dh["prototypes"]),
             (ih["hidden"], ih["bottleneck"], ih["prototypes"]))
    student = S.SslModel(vcfg, *heads).to(dtype)
    student.load_state_dict({k: torch.from_numpy(t["init." + k]).to(dtype)
                             for k in student.state_dict()})
    teacher = S.SslModel(vcfg, *heads).to(dtype)
    teacher.load_state_dict(student.state_dict())
    gram = V.DinoVit(vcfg).to(dtype)
    gram.load_state_dict({k: torch.from_numpy(t["init_gram.backbone." + k]).to(dtype)
                          for k in gram.state_dict()})
    for p in list(teacher.parameters()) + list(gram.parameters()):
        p.requires_grad_(False)
    opt = S.make_optimizer(student, cfg)
    worst = {"loss0": 0.0, "loss": 0.0, "gnorm0": 0.0, "gnorm": 0.0, "after1.student": 0.0,
             "after1.teacher": 0.0, "after10.student": 0.0}
    for s in range(len(sched["lr"])):
        b = {k: torch.from_numpy(t["step%d.%s" % (s, k)]).to(dtype) for k in ("global", "local", "gram")}
        b["masks"] = torch.from_numpy(t["step%d.masks" % s])
        sc = {k: v[s] for k, v in sched.items()}
        losses, norms, _ = S.ssl_step(student, teacher, gram, opt, b, sc, cfg, autocast_bf16)
        if trace is not None:
            trace.append((losses, norms))
        for got, key, w in ((losses, "loss", "loss"), (norms, "gnorm", "gnorm")):
            ref = t["step%d.%s" % (s, key)].astype("float64")
            rel = max(abs(g - r) / max(abs(r), 1e-6) for g, r in zip(got, ref))
            worst[w + ("0" if s == 0 else "")] = max(worst[w + ("0" if s == 0 else "")], rel)
        snaps = []
        if s == 0:
            snaps = [("after1.student", student), ("after1.teacher", teacher)]
        if s == len(sched["lr"]) - 1:
            snaps = [("after10.student", student)]
        for pre, m in snaps:
            for n, p in m.named_parameters():
                worst[pre] = max(worst[pre], normwise(p.detach(), t[pre + "." + n]))
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "fixtures"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    t, meta = st.load(os.path.join(a.dir, "ssl_tiny.safetensors"))
    cfg, sched = json.loads(meta["config"]), json.loads(meta["sched"])
    ok = True
    for dtype, tol in ((torch.float64, 1e-6), (torch.float32, None)):
        w = rerun(t, cfg, sched, dtype)
        print("%-8s " % str(dtype).split(".")[1] + "  ".join("%s %.2e" % kv for kv in w.items()))
        if tol is not None and max(w.values()) > tol:
            ok = False
            print("float64 rerun does not reproduce the stored values")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
