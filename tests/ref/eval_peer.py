#!/usr/bin/python3
"""eval_peer.py - independent peer for the evaluation statistics of dinox eval.

Writes random inputs (float32 .npy) into a directory, runs the hidden
`dinox eval --selftest DIR --out RES.json` on them, and compares each result
with scikit-learn / numpy / torch computed here on the same inputs:

  AUC (ties)            sklearn.metrics.roc_auc_score
  bootstrap CI / SE     DeLong's variance (independent, analytic) for i.i.d.
                        items, and for patient clusters the clustered
                        DeLong (Obuchowski) variance
  L2 logistic regr.     sklearn LogisticRegression (lbfgs, tight tol) + KKT residual
  cosine k-NN           sklearn KNeighborsClassifier(metric="cosine", brute)
  Dice / IoU            sklearn f1_score / jaccard_score on flattened masks
  effective rank        numpy SVD of the column-centred matrix (RankMe)
  mean pairwise cosine  numpy O(n^2) loop
  eigenvalues           numpy.linalg.eigvalsh (repeated and zero eigenvalues)
  bilinear upsampling   torch.nn.functional.interpolate(bilinear, align_corners=False)
  probe protocol        StandardScaler on train, C grid on val AUC, test AUC

usage: eval_peer.py DINOX WORKDIR      (exit 1 on any mismatch)
"""
import json
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, jaccard_score, roc_auc_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

fails = 0


def check(ok, what):
    global fails
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        fails += 1


def save(d, name, a):
    np.save(os.path.join(d, name + ".npy"), np.asarray(a, dtype=np.float32))


def delong_se(s, y, g=None):
    """DeLong's AUC standard error; with clusters g, Obuchowski's clustered
    version (structural components summed per cluster)."""
    s = np.asarray(s, float)
    y = np.asarray(y).astype(bool)
    pos, neg = s[y], s[~y]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    auc = psi.mean()
    v10 = psi.mean(axis=1)  # per positive
    v01 = psi.mean(axis=0)  # per negative
    if g is None:
        return auc, np.sqrt(v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg))
    g = np.asarray(g)
    gp, gn = g[y], g[~y]
    ids = np.unique(g)
    K = len(ids)
    m, n = len(pos), len(neg)
    # cluster sums of structural components
    V10 = np.array([v10[gp == k].sum() for k in ids])
    V01 = np.array([v01[gn == k].sum() for k in ids])
    mk = np.array([(gp == k).sum() for k in ids])
    nk = np.array([(gn == k).sum() for k in ids])
    S10 = K / ((K - 1) * m) * ((V10 - mk * auc) ** 2).sum()
    S01 = K / ((K - 1) * n) * ((V01 - nk * auc) ** 2).sum()
    S11 = K / (K - 1) * ((V10 - mk * auc) * (V01 - nk * auc)).sum()
    return auc, np.sqrt(S10 / m + S01 / n + 2 * S11 / (m * n))


def run(dinox, d):
    res = os.path.join(d, "res.json")
    subprocess.run([dinox, "eval", "--selftest", d, "--out", res], check=True)
    with open(res) as f:
        return json.load(f)


def clean(d):
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))


def main():
    dinox, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(20261122)

    # ---- AUC, k-NN, Dice/IoU, erank, cosine, eig, bilinear in one call -----
    clean(work)
    n = 301
    y = (rng.random(n) < 0.4).astype(np.float32)
    s = np.round(rng.normal(size=n) + 0.8 * y, 1).astype(np.float32)  # rounded: many ties
    save(work, "auc_s", s)
    save(work, "auc_y", y)

    Xk = rng.normal(size=(120, 16)).astype(np.float32)
    yk = (Xk[:, 0] + 0.5 * rng.normal(size=120) > 0).astype(np.float32)
    Qk = rng.normal(size=(57, 16)).astype(np.float32)
    save(work, "knn_X", Xk)
    save(work, "knn_y", yk)
    save(work, "knn_Q", Qk)
    save(work, "knn_k", [7])

    m, h, w = 6, 24, 20
    a = rng.random((m, h, w)) < 0.3
    b = np.logical_xor(a, rng.random((m, h, w)) < 0.1)
    a[4] = False
    b[4] = False  # both empty: Dice = IoU = 1 by definition
    a[5] = False  # one empty: 0
    save(work, "seg_a", a)
    save(work, "seg_b", b)

    # low-rank-ish matrix with a decaying spectrum
    U = rng.normal(size=(500, 24))
    Xe = (U * (0.8 ** np.arange(24))) @ rng.normal(size=(24, 40)) + 0.01 * rng.normal(size=(500, 40)) + 3.0
    save(work, "er_X", Xe)

    Xc = rng.normal(size=(3, 37, 12)) + np.array([0.0, 1.0, 3.0])[:, None, None]
    save(work, "cos_X", Xc)

    # symmetric PSD with repeated and zero eigenvalues (like a rank-deficient scatter matrix)
    Qm, _ = np.linalg.qr(rng.normal(size=(60, 60)))
    lam = np.concatenate([[50, 20, 20, 20, 5], rng.uniform(0.1, 3, 35), np.zeros(20)])
    A = (Qm * lam) @ Qm.T
    A = (A + A.T) / 2
    save(work, "eig_A", A)

    bil = rng.normal(size=(5, 7)).astype(np.float32)
    save(work, "bil_in", bil)
    save(work, "bil_size", [37, 23])

    r = run(dinox, work)

    ref = roc_auc_score(y.astype(np.float64), s.astype(np.float64))
    check(abs(r["auc"] - ref) < 1e-12, "AUC with ties: dinox %.12f sklearn %.12f" % (r["auc"], ref))

    knn = KNeighborsClassifier(n_neighbors=7, metric="cosine", algorithm="brute").fit(Xk, yk.astype(int))
    pk = knn.predict(Qk)
    check(list(pk) == r["knn_pred"], "cosine k-NN (k=7) predictions equal sklearn's (%d queries)" % len(pk))

    fa = a.reshape(m, -1)
    fb = b.reshape(m, -1)
    dice = [f1_score(fb[i], fa[i], zero_division=1.0) for i in range(m)]
    iou = [jaccard_score(fb[i], fa[i], zero_division=1.0) for i in range(m)]
    check(np.allclose(r["dice"], dice, rtol=0, atol=1e-12), "Dice vs sklearn f1_score: %s" % np.round(dice, 4))
    check(np.allclose(r["iou"], iou, rtol=0, atol=1e-12), "IoU vs sklearn jaccard_score: %s" % np.round(iou, 4))

    X32 = np.load(os.path.join(work, "er_X.npy")).astype(np.float64)
    sv = np.linalg.svd(X32 - X32.mean(0), compute_uv=False)
    p = sv / sv.sum()
    p = p[p > 0]
    er = float(np.exp(-(p * np.log(p)).sum()))
    check(abs(r["erank_host"] - er) < 1e-9 * er, "effective rank (host) %.10f vs numpy SVD %.10f" % (r["erank_host"], er))
    check(abs(r["erank_backend"] - er) < 2e-3 * er, "effective rank (backend GEMM, fp32) %.6f vs numpy %.6f" % (r["erank_backend"], er))

    Xc32 = np.load(os.path.join(work, "cos_X.npy")).astype(np.float64)
    cs = []
    for k in range(Xc32.shape[0]):
        u = Xc32[k] / np.linalg.norm(Xc32[k], axis=1, keepdims=True)
        tot, cnt = 0.0, 0
        for i in range(u.shape[0]):
            for j in range(u.shape[0]):
                if i != j:
                    tot += float(u[i] @ u[j])
                    cnt += 1
        cs.append(tot / cnt)
    check(np.allclose(r["cosine"], cs, rtol=0, atol=1e-10), "mean pairwise cosine vs O(n^2) numpy: %s" % np.round(cs, 5))

    A32 = np.load(os.path.join(work, "eig_A.npy")).astype(np.float64)
    ev = np.sort(np.linalg.eigvalsh(A32))[::-1]
    check(np.allclose(r["eigvals"], ev, rtol=0, atol=1e-10), "eigenvalues (repeated, zero) vs numpy eigvalsh (max diff %.2e)" % np.max(np.abs(np.array(r["eigvals"]) - ev)))

    tb = F.interpolate(torch.from_numpy(bil)[None, None], size=(37, 23), mode="bilinear", align_corners=False)[0, 0].numpy()
    check(np.allclose(np.array(r["bilinear"]).reshape(37, 23), tb, rtol=0, atol=1e-5),
          "bilinear 5x7 -> 37x23 vs torch interpolate (max diff %.2e)" % np.max(np.abs(np.array(r["bilinear"]).reshape(37, 23) - tb)))

    # ---- bootstrap SE / CI vs DeLong (i.i.d. items, then patient clusters) ---
    for clustered in (False, True):
        clean(work)
        n = 400
        if clustered:
            # 100 patients x 4 nodules: labels mostly shared within a patient (15% flipped)
            # and a patient effect on the scores, so positives are correlated within a
            # patient and the clustered variance is ~1.3x the i.i.d. one
            g = np.repeat(np.arange(100), 4)
            eff = np.repeat(rng.normal(size=100), 4)
            yb = (np.repeat(rng.random(100) < 0.4, 4) ^ (rng.random(n) < 0.15)).astype(np.float32)
        else:
            g = np.arange(n)
            eff = np.zeros(n)
            yb = (rng.random(n) < 0.4).astype(np.float32)
        sb = (rng.normal(size=n) + 1.0 * yb + 1.0 * eff).astype(np.float32)
        save(work, "bs_s", sb)
        save(work, "bs_y", yb)
        save(work, "bs_g", g)
        bo = run(dinox, work)["boot"]
        auc, se = delong_se(sb.astype(float), yb, g if clustered else None)
        what = "patient-clustered" if clustered else "i.i.d."
        if clustered:
            _, se_naive = delong_se(sb.astype(float), yb)
            check(se / se_naive > 1.1 and abs(bo["se"] / se - 1) < abs(bo["se"] / se_naive - 1),
                  "clusters matter here (i.i.d. DeLong SE %.4f) and the bootstrap follows the clustered SE" % se_naive)
        check(abs(bo["se"] / se - 1) < 0.12,
              "bootstrap SE %.4f vs %s DeLong SE %.4f (%s)" % (bo["se"], "clustered" if clustered else "", se, what))
        check(abs(bo["lo"] - (auc - 1.96 * se)) < 0.02 and abs(bo["hi"] - (auc + 1.96 * se)) < 0.02,
              "bootstrap 95%% CI [%.3f, %.3f] vs AUC +- 1.96 SE [%.3f, %.3f] (%s)"
              % (bo["lo"], bo["hi"], auc - 1.96 * se, auc + 1.96 * se, what))

    # ---- logistic regression: several shapes and C --------------------------
    for (n, d, C) in [(200, 10, 1.0), (200, 10, 0.01), (40, 60, 0.5), (150, 5, 100.0)]:
        clean(work)
        X = rng.normal(size=(n, d)).astype(np.float32)
        wt = rng.normal(size=d)
        yy = (X @ wt + 0.5 + rng.normal(size=n) > 0).astype(np.float32)
        save(work, "lr_X", X)
        save(work, "lr_y", yy)
        save(work, "lr_C", [C])
        r = run(dinox, work)
        Xd = X.astype(np.float64)
        C32 = float(np.float32(C))
        sk = LogisticRegression(C=C32, tol=1e-12, max_iter=100000).fit(Xd, yy.astype(int))
        cw = np.array(r["logreg_coef"])
        cb = r["logreg_intercept"]
        # KKT of 0.5|w|^2 + C sum logloss: w = -C X^T (p - y), sum (p - y) = 0
        pr = 1 / (1 + np.exp(-(Xd @ cw + cb)))
        kkt = max(np.max(np.abs(cw + C32 * Xd.T @ (pr - yy))), abs(C32 * np.sum(pr - yy)))
        scale = max(1.0, np.max(np.abs(sk.coef_[0])))
        diff = max(np.max(np.abs(cw - sk.coef_[0])), abs(cb - sk.intercept_[0])) / scale
        check(diff < 1e-4 and kkt < 1e-6 * max(1.0, C32 * n),
              "logreg n=%d d=%d C=%g: max |coef diff| / scale %.2e vs sklearn, KKT residual %.2e (%d Newton steps)"
              % (n, d, C, diff, kkt, r["logreg_iters"]))

    # ---- logistic regression with an unpenalised last column (the diameter beside the features) ----
    # peer: sklearn (its Newton solver: lbfgs stalls on the rescaled column) with that column multiplied
    # by 1e4, which divides its penalty by 1e8
    for (n, d, C) in [(200, 20, 0.01), (120, 40, 0.001)]:
        clean(work)
        X = rng.normal(size=(n, d)).astype(np.float32)
        yy = (1.5 * X[:, -1] + 0.3 * X[:, 0] + rng.normal(size=n) > 0).astype(np.float32)
        save(work, "lr_X", X)
        save(work, "lr_y", yy)
        save(work, "lr_C", [C])
        save(work, "lr_free", [1])
        r = run(dinox, work)
        Xd = X.astype(np.float64)
        C32 = float(np.float32(C))
        Xs = Xd.copy()
        Xs[:, -1] *= 1e4
        sk = LogisticRegression(C=C32, tol=1e-12, max_iter=1000, solver="newton-cholesky").fit(Xs, yy.astype(int))
        skw = sk.coef_[0].copy()
        skw[-1] *= 1e4
        cw = np.array(r["logreg_coef"])
        cb = r["logreg_intercept"]
        pr = 1 / (1 + np.exp(-(Xd @ cw + cb)))
        gl = C32 * Xd.T @ (pr - yy)
        kkt = max(np.max(np.abs(cw[:-1] + gl[:-1])), abs(gl[-1]), abs(C32 * np.sum(pr - yy)))
        scale = max(1.0, np.max(np.abs(skw)))
        diff = max(np.max(np.abs(cw - skw)), abs(cb - sk.intercept_[0])) / scale
        pen = LogisticRegression(C=C32, tol=1e-12, max_iter=100000).fit(Xd, yy.astype(int)).coef_[0][-1]
        check(diff < 1e-4 and kkt < 1e-6 * max(1.0, C32 * n) and abs(cw[-1]) > 2 * abs(pen),
              "logreg n=%d d=%d C=%g, last column unpenalised: max |coef diff| / scale %.2e vs sklearn, KKT %.2e, "
              "its weight %.3f (penalised: %.3f)" % (n, d, C, diff, kkt, cw[-1], pen))

    # ---- probe protocol ------------------------------------------------------
    clean(work)
    n, d = 180, 12
    groups = rng.integers(0, 60, size=n)
    split = np.where(groups < 36, 0, np.where(groups < 48, 1, 2))  # split by group (patient)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 5, size=d) + rng.normal(size=d)
    z = X[:, 0] / 3 - X[:, 1] + 2.5 * rng.normal(size=n)
    yy = (z > 0).astype(np.float32)
    yy[rng.random(n) < 0.1] = -1  # excluded rows
    save(work, "pr_X", X)
    save(work, "pr_y", yy)
    save(work, "pr_split", split)
    save(work, "pr_group", groups)
    r = run(dinox, work)["probe"]
    X32 = np.load(os.path.join(work, "pr_X.npy")).astype(np.float64)
    keep = yy >= 0
    tr, va, te = keep & (split == 0), keep & (split == 1), keep & (split == 2)
    sc = StandardScaler().fit(X32[tr])
    best, bestC = -1, 1.0
    for C in [1e-4, 1e-3, 1e-2, 1e-1, 1, 10]:
        mdl = LogisticRegression(C=C, tol=1e-12, max_iter=100000).fit(sc.transform(X32[tr]), yy[tr].astype(int))
        a_ = roc_auc_score(yy[va], mdl.decision_function(sc.transform(X32[va])))
        if a_ > best + 1e-12:
            best, bestC = a_, C
    mdl = LogisticRegression(C=bestC, tol=1e-12, max_iter=100000).fit(sc.transform(X32[tr]), yy[tr].astype(int))
    ta = roc_auc_score(yy[te], mdl.decision_function(sc.transform(X32[te])))
    check(r["C"] == bestC and abs(r["val_auc"] - best) < 1e-9 and abs(r["test_auc"] - ta) < 1e-9,
          "probe: C %g/%g, val AUC %.6f/%.6f, test AUC %.6f/%.6f (dinox/sklearn)" % (r["C"], bestC, r["val_auc"], best, r["test_auc"], ta))
    check(r["ci_lo"] <= r["test_auc"] <= r["ci_hi"] and r["ci_hi"] - r["ci_lo"] > 0.01,
          "probe: bootstrap CI [%.3f, %.3f] brackets the test AUC" % (r["ci_lo"], r["ci_hi"]))

    print("%d failures" % fails)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
