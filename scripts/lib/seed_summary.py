"""seed_summary.py - the figures of several evaluated training runs (one per
training seed) side by side, with their mean, standard deviation and a 95%
t interval over the seeds.

usage: seed_summary.py RUN_DIR... [--versus RUN_DIR...] [--json OUT]
Each RUN_DIR has metrics.jsonl and eval/eval.json (dinox train, dinox eval).
The t interval treats the seeds as independent draws of the training run; with
n seeds it has n - 1 degrees of freedom, so with 2 or 3 seeds it is wide by
construction: that width is the honest statement.

Pooled figures (when every eval.json has nodule_scores, dinox eval since
2026-12-07): the mean over the runs of a paired AUC difference (SSL - random
init, features + diameter - diameter, features + diameter - radiomics + diameter
(eval.json since the radiomics baseline); with --versus, first arm - second arm),
with a two-level bootstrap that resamples the runs and the test patients
together, so the interval holds both the training seeds' variation and the
test sampling, which the t interval (the patients fixed) leaves out.

--versus: a second arm with the same seeds in the same order (e.g. Gram on
RUN_DIRs, then --versus the Gram-off ones). Each figure is then the difference
first arm - second arm of the runs of one seed, and the mean and t interval are
over those paired differences: the two runs of a seed share their data order
and initialisation, so the pairing removes most of the seed's own variation.
"""
import json
import math
import sys

# two-sided 95% quantiles of Student's t for 1..30 degrees of freedom
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042]


def last_mean(run, key, n=5):
    rows = [json.loads(line) for line in open(run + "/metrics.jsonl")]
    v = [r[key] for r in rows[-n:] if key in r]
    return sum(v) / len(v) if v else float("nan")


def prototypes(run):
    # heads.dino_k from the run's resolved config.yaml ("  dino_k: 1024  # ...")
    for line in open(run + "/config.yaml"):
        if line.strip().startswith("dino_k:"):
            return int(line.split(":")[1].split("#")[0])
    return 1024


def figures(run):
    e = json.load(open(run + "/eval/eval.json"))
    c, p, b = e.get("comparisons", {}), e.get("probe", {}), e.get("baselines", {})
    dino = (2 * last_mean(run, "loss/dino_global") + 16 * last_mean(run, "loss/dino_local")) / 18
    K = prototypes(run)

    def diff(name):
        d = c.get(name) or {}
        return d.get("difference"), d.get("ci95")

    att = c.get("attention_in_nodule") or {}
    att_d = c.get("attention_in_nodule_ssl_minus_random_init") or {}
    return {
        "DINO loss / ln K (last steps)": (dino / math.log(K), None),
        "malignancy probe AUC": (p.get("test_auc"), p.get("test_auc_ci")),
        "random-init AUC": (b.get("random_init_auc"), b.get("random_init_auc_ci")),
        "SSL - random init (paired)": diff("ssl_minus_random_init_auc"),
        "features + diameter - diameter (paired)": diff("features_plus_diameter_minus_diameter_auc"),
        "radiomics + diameter - diameter (paired)": diff("radiomics_minus_diameter_auc"),
        "features + diameter - radiomics + diameter (paired)": diff("features_plus_diameter_minus_radiomics_auc"),
        "CLS attention in nodule (1 = chance)": (att.get("ratio"), att.get("ci95")),
        "attention, SSL - random init (paired)": (att_d.get("difference"), att_d.get("ci95")),
        "segmentation Dice": ((e.get("seg") or {}).get("test_dice"), None),
        "patch feature cosine (dense collapse)": ((e.get("collapse") or {}).get("patch_cosine"), None),
        "patch feature effective rank": ((e.get("collapse") or {}).get("effective_rank"), None),
    }


def paired_figures(a, b):
    # first arm - second arm, figure by figure (no per-run interval: the two runs are separate evaluations)
    return {n: (None if a[n][0] is None or b[n][0] is None else a[n][0] - b[n][0], None) for n in a}


def auc(score, label):
    # Mann-Whitney AUC with ties counted half (average ranks)
    pairs = sorted((v, y) for v, y in zip(score, label) if v is not None)
    n1 = sum(1 for _, y in pairs if y > 0)
    n0 = len(pairs) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    rank_sum, i = 0.0, 0
    while i < len(pairs):
        j = i
        while j + 1 < len(pairs) and pairs[j + 1][0] == pairs[i][0]:
            j += 1
        r = (i + j) / 2 + 1
        rank_sum += r * sum(1 for k in range(i, j + 1) if pairs[k][1] > 0)
        i = j + 1
    return (rank_sum - n1 * (n1 + 1) / 2) / (n1 * n0)


def scores(run):
    ns = json.load(open(run + "/eval/eval.json")).get("nodule_scores")
    return ns if ns and ns.get("patient") else None


POOLED = [  # (figure, column of the first run, column of the second: same run, or the --versus run)
    ("SSL - random init", "backbone", "random_init"),
    ("features + diameter - diameter", "features_plus_diameter", "diameter"),
    ("features + diameter - radiomics + diameter", "features_plus_diameter", "radiomics"),
]


def pooled(first, second, versus, n_boot, seed=1):
    """The mean over seeds of a paired AUC difference, with a two-level bootstrap: each
    replicate draws the seeds (runs) with replacement and the patients (all their nodules)
    with replacement, the same patients for every run, and averages the runs' differences.
    Its interval holds both the training seeds' variation and the test patients' sampling,
    which a t interval over seeds (the patients fixed) leaves out."""
    import random
    base = first[0]
    if any(f["patient"] != base["patient"] or f["label"] != base["label"] for f in first + second):
        return None  # not the same nodules: nothing to pool
    pats = sorted(set(base["patient"]))
    rows_of = {p: [i for i, q in enumerate(base["patient"]) if q == p] for p in pats}
    label = base["label"]

    def diff(k, rows, a, b):
        sel_l = [label[i] for i in rows]
        fa = first[k].get(a)
        fb = (second[k] if versus else first[k]).get(b)
        if fa is None or fb is None:
            return float("nan")
        return auc([fa[i] for i in rows], sel_l) - auc([fb[i] for i in rows], sel_l)

    rng = random.Random(seed)
    out = {}
    n = len(first)
    every = list(range(len(label)))
    for name, a, b in ([("first arm - second arm", "backbone", "backbone")] if versus else POOLED):
        est = sum(diff(k, every, a, b) for k in range(n)) / n
        reps = []
        for _ in range(n_boot):
            ks = [rng.randrange(n) for _ in range(n)]
            rows = [i for _ in pats for i in rows_of[pats[rng.randrange(len(pats))]]]
            reps.append(sum(diff(k, rows, a, b) for k in ks) / n)
        reps = sorted(r for r in reps if r == r)
        if not reps:
            continue  # a column the runs do not all have (an eval.json older than the figure)
        lo, hi = reps[int(0.025 * len(reps))], reps[min(len(reps) - 1, int(0.975 * len(reps)))]
        out[name] = {"mean": est, "ci95": [lo, hi], "n_boot": len(reps), "runs": n, "nodules": len(label),
                     "patients": len(pats), "p_le0": sum(1 for r in reps if r <= 0) / len(reps)}
    return out


def main(argv):
    out = None
    if "--json" in argv:
        i = argv.index("--json")
        out = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    versus = None
    if "--versus" in argv:
        i = argv.index("--versus")
        argv, versus = argv[:i], argv[i + 1:]
    runs = argv
    if not runs or (versus is not None and len(versus) != len(runs)):
        print(__doc__)
        return 2
    per = [figures(r) for r in runs]
    if versus is not None:
        per = [paired_figures(a, figures(b)) for a, b in zip(per, versus)]
        runs = [f"{a} - {b}" for a, b in zip(runs, versus)]
    names = list(per[0])
    summary = {"runs": runs, "paired_arms": versus is not None, "figures": {}}
    w = max(len(n) for n in names)
    head = "mean difference [95% t CI]" if versus is not None else "mean over seeds [95% t CI]"
    print(f"{'':{w}}  " + "  ".join(f"{r:>24}" for r in runs) + f"  {head:>34}  sd")
    for n in names:
        vals = [f[n][0] for f in per]
        cells = []
        for f in per:
            v, ci = f[n]
            cells.append(f"{v:.3f}" + (f" [{ci[0]:+.3f},{ci[1]:+.3f}]" if ci else "") if v is not None else "-")
        xs = [v for v in vals if v is not None and not math.isnan(v)]
        m = sum(xs) / len(xs) if xs else float("nan")
        sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else float("nan")
        half = T975[min(len(xs) - 1, 30) - 1] * sd / math.sqrt(len(xs)) if len(xs) > 1 else float("nan")
        excl = sum(1 for f in per if f[n][1] and (f[n][1][0] > 0 or f[n][1][1] < 0)) if "paired" in n else None
        summary["figures"][n] = {"per_run": vals, "per_run_ci": [f[n][1] for f in per], "mean": m, "sd": sd,
                                 "t_ci95": [m - half, m + half], "runs_ci_excludes_0": excl}
        print(f"{n:{w}}  " + "  ".join(f"{c:>24}" for c in cells) + f"  {m:9.3f} [{m - half:+.3f}, {m + half:+.3f}]"
              f"  {sd:.3f}")
    # pooled over the runs: the seeds and the test patients resampled together (eval.json's nodule_scores)
    first = [scores(r) for r in (argv[:len(versus)] if versus is not None else runs)]
    second = [scores(r) for r in versus] if versus is not None else first
    if all(first) and all(second):
        pl = pooled(first, second, versus is not None, n_boot=1000)
        if pl:
            summary["pooled"] = pl
            print("\npooled over the runs (two-level bootstrap: seeds and test patients resampled together):")
            for name, v in pl.items():
                print(f"  {name:34}  {v['mean']:+.3f} [{v['ci95'][0]:+.3f}, {v['ci95'][1]:+.3f}]  "
                      f"(P(<= 0) {v['p_le0']:.3f}; {v['runs']} runs, {v['nodules']} nodules of {v['patients']} patients)")
    else:
        print("\n(no pooled figures: an eval.json without nodule_scores; re-run dinox eval)")
    if out:
        with open(out, "w") as fh:
            json.dump(summary, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
