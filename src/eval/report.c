/* report.c - the HTML report of a run (report.h). */
#include "eval/report.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/dx_file.h"
#include "core/dx_version.h"
#include "eval/eval_json.h"
#include "eval/image_out.h"
#include "train/config.h"

/* ---- small helpers -------------------------------------------------------- */

static void html_esc(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}


static cJSON *load_json(const char *path) {
    char *t = dx_read_file(path, NULL);
    if (!t) return NULL;
    cJSON *j = cJSON_Parse(t);
    free(t);
    return j;
}

/* Dotted lookup "probe.test_auc"; NULL if absent. */
static void num(FILE *f, double v, int prec) {
    if (isfinite(v)) fprintf(f, "%.*f", prec, v);
    else fputs("&ndash;", f);
}
/* "0.812 [0.75, 0.87]" from value + [lo, hi] array */
static void with_ci(FILE *f, const cJSON *o, const char *vk, const char *cik) {
    num(f, dx_json_num(o, vk), 3);
    const cJSON *ci = dx_json_at(o, cik);
    if (cJSON_IsArray(ci) && cJSON_GetArraySize(ci) == 2 && cJSON_IsNumber(cJSON_GetArrayItem(ci, 0))) {
        fputs(" <span class=ci>[", f);
        num(f, cJSON_GetArrayItem(ci, 0)->valuedouble, 3);
        fputs(", ", f);
        num(f, cJSON_GetArrayItem(ci, 1)->valuedouble, 3);
        fputs("]</span>", f);
    }
}

/* ---- SVG ------------------------------------------------------------------ */

static double nice_step(double range) {
    double e = pow(10, floor(log10(range))), r = range / e;
    return (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * e; /* 1-2-5 ticks */
}

void dx_svg_line_chart(FILE *f, const char *title, const double *x, const double *y, int n, int w, int h) {
    dx_svg_line_chart_range(f, title, x, y, n, w, h, NAN, NAN);
}

void dx_svg_line_chart_range(FILE *f, const char *title, const double *x, const double *y, int n, int w, int h,
                             double ymin, double ymax) {
    const int ml = 58, mr = 12, mt = 22, mb = 30;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    int finite = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) continue;
        finite++;
        x0 = fmin(x0, x[i]); x1 = fmax(x1, x[i]); y0 = fmin(y0, y[i]); y1 = fmax(y1, y[i]);
    }
    fprintf(f, "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">", w, h, w, h);
    fprintf(f, "<text x=\"%d\" y=\"15\" class=\"ttl\">", ml);
    html_esc(f, title);
    fputs("</text>", f);
    if (!finite) {
        fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"ax\">no finite values</text></svg>\n", ml, h / 2);
        return;
    }
    if (x1 == x0) { x0 -= 0.5; x1 += 0.5; }
    if (isfinite(ymin)) y0 = fmin(y0, ymin); /* the axis spans at least the quantity's natural range */
    if (isfinite(ymax)) y1 = fmax(y1, ymax);
    if (y1 == y0) { double d = fabs(y0) > 0 ? 0.05 * fabs(y0) : 0.5; y0 -= d; y1 += d; }
    const double pw = w - ml - mr, ph = h - mt - mb;
#define PX(v) (ml + ((v) - x0) / (x1 - x0) * pw)
#define PY(v) (mt + (1 - ((v) - y0) / (y1 - y0)) * ph)
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%.0f\" class=\"frame\"/>", ml, mt, pw, ph);
    double ys = nice_step((y1 - y0) * 0.25);
    for (double t = ceil(y0 / ys) * ys; t <= y1 + 1e-9 * ys; t += ys) {
        if (fabs(t) < 1e-9 * ys) t = 0; /* no "-6.9e-18" labels */
        fprintf(f, "<line x1=\"%d\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" class=\"gl\"/>", ml, ml + pw, PY(t), PY(t));
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" class=\"ax\" text-anchor=\"end\">%.6g</text>", ml - 4, PY(t) + 4, t);
    }
    double xs = nice_step((x1 - x0) * 0.25);
    for (double t = ceil(x0 / xs) * xs; t <= x1 + 1e-9 * xs; t += xs)
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" class=\"ax\" text-anchor=\"middle\">%.6g</text>", PX(t), h - 10, t);
    int open = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) {
            if (open) fputs("\"/>", f);
            open = 0;
            continue;
        }
        if (!open) fputs("<polyline class=\"line\" points=\"", f);
        fprintf(f, "%.1f,%.1f ", PX(x[i]), PY(y[i]));
        open = 1;
    }
    if (open) fputs("\"/>", f);
    if (finite == 1)
        for (int i = 0; i < n; i++)
            if (isfinite(x[i]) && isfinite(y[i])) fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" class=\"dot\"/>", PX(x[i]), PY(y[i]));
#undef PX
#undef PY
    fputs("</svg>\n", f);
}

/* ---- sections ------------------------------------------------------------- */

typedef struct series { char name[96]; double *y; } series;

/* mean of y[from..n) over the finite entries (NAN when none) */
static double mean_from(const double *y, int from, int n) {
    double s = 0;
    int k = 0;
    for (int t = from < 0 ? 0 : from; t < n; t++)
        if (y[t] == y[t]) s += y[t], k++;
    return k ? s / k : NAN;
}

/* means of y over the first and the last quarter of [from, n) */
static void quarter_means(const double *y, int from, int n, double *first, double *last) {
    const int q = (n - from + 3) / 4;
    *first = mean_from(y, from, from + q);
    *last = mean_from(y, n - q, n);
}

/* The run-health sentence of the device metrics (docs/training.md): peak
 * memory, busy and data-wait fractions against the mission's targets, and
 * the temperature and clock trend (first vs last quarter of the run). */
static void device_health(FILE *f, const series *s, int ns, int n) {
    int mem = -1, frac = -1, busy = -1, wait = -1, temp = -1, clk = -1;
    for (int k = 0; k < ns; k++) {
        if (!strcmp(s[k].name, "device/mem_peak_gb")) mem = k;
        if (!strcmp(s[k].name, "device/mem_peak_fraction")) frac = k;
        if (!strcmp(s[k].name, "device/busy_fraction")) busy = k;
        if (!strcmp(s[k].name, "perf/data_wait_fraction")) wait = k;
        if (!strcmp(s[k].name, "device/temp_c")) temp = k;
        if (!strcmp(s[k].name, "device/clock_mhz")) clk = k;
    }
    if (mem < 0 || n < 1) return;
    double peak = NAN, pf = NAN;
    for (int t = 0; t < n; t++) {
        if (s[mem].y[t] == s[mem].y[t] && !(s[mem].y[t] <= peak)) peak = s[mem].y[t];
        if (frac >= 0 && s[frac].y[t] == s[frac].y[t] && !(s[frac].y[t] <= pf)) pf = s[frac].y[t];
    }
    /* the first logged interval holds start-up (allocation, first-touch): left out of the means */
    const int from = n > 2 ? 1 : 0;
    fprintf(f, "<p class=note>run health: peak device memory %.2f GB", peak);
    if (pf == pf) fprintf(f, " (%.0f%% of the device)", 100 * pf);
    if (busy >= 0) {
        double b = mean_from(s[busy].y, from, n);
        fprintf(f, "; device busy %.1f%% of wall time (target &gt; 90%%: %s)", 100 * b, b > 0.9 ? "met" : "not met");
    } else {
        fputs("; device busy fraction not measured on this backend", f);
    }
    if (wait >= 0) fprintf(f, "; waiting for data %.1f%% of wall time", 100 * mean_from(s[wait].y, from, n));
    double a, z;
    if (temp >= 0) {
        quarter_means(s[temp].y, from, n, &a, &z);
        fprintf(f, "; temperature %.0f C in the first quarter, %.0f C in the last", a, z);
    }
    if (clk >= 0) {
        quarter_means(s[clk].y, from, n, &a, &z);
        fprintf(f, "; clock %.0f MHz, then %.0f MHz%s", a, z,
                z < 0.9 * a ? " &mdash; <b>the clock fell by more than 10%: throttling</b>" : "");
    }
    fputs(".</p>\n", f);
}

/* metrics.jsonl read once: every numeric key as a series over the logged
 * steps (NAN where a record lacks it), and the wall clock of the first and
 * last record for the Run section. */
typedef struct metrics {
    int found;         /* the file exists */
    int n, ns;         /* records, keys */
    double *steps;     /* [n] */
    series *s;         /* [ns] */
    double t0, t1;     /* "time" of the first and last record (NAN: none) */
} metrics;

static void metrics_free(metrics *m) {
    for (int k = 0; k < m->ns; k++) free(m->s[k].y);
    free(m->s);
    free(m->steps);
    memset(m, 0, sizeof *m);
}

static void metrics_load(metrics *m, const char *run_dir) {
    char path[2048];
    memset(m, 0, sizeof *m);
    m->t0 = m->t1 = NAN;
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    FILE *in = fopen(path, "r");
    if (!in) return;
    m->found = 1;
    int n = 0, cap = 256, ns = 0;
    double *steps = malloc(cap * sizeof *steps);
    series *s = NULL;
    char *line = NULL;
    size_t lcap = 0;
    while (getline(&line, &lcap, in) > 0) {
        cJSON *j = cJSON_Parse(line);
        if (!cJSON_IsObject(j)) { cJSON_Delete(j); continue; } /* a torn last line after a crash */
        const cJSON *sv = cJSON_GetObjectItemCaseSensitive(j, "step");
        if (!cJSON_IsNumber(sv)) { cJSON_Delete(j); continue; }
        if (n == cap) {
            cap *= 2;
            steps = realloc(steps, cap * sizeof *steps);
            for (int k = 0; k < ns; k++) s[k].y = realloc(s[k].y, cap * sizeof(double));
        }
        steps[n] = sv->valuedouble;
        const double t = dx_json_num(j, "time");
        if (t == t) {
            if (m->t0 != m->t0) m->t0 = t;
            m->t1 = t;
        }
        for (int k = 0; k < ns; k++) s[k].y[n] = NAN;
        for (const cJSON *it = j->child; it; it = it->next) {
            if (!strcmp(it->string, "step") || !strcmp(it->string, "time")) continue;
            if (!cJSON_IsNumber(it) && !cJSON_IsNull(it)) continue;
            int k = 0;
            while (k < ns && strcmp(s[k].name, it->string)) k++;
            if (k == ns) {
                s = realloc(s, (ns + 1) * sizeof *s);
                snprintf(s[ns].name, sizeof s[ns].name, "%s", it->string);
                s[ns].y = malloc(cap * sizeof(double));
                for (int t = 0; t < n; t++) s[ns].y[t] = NAN; /* key appears later in the run */
                ns++;
            }
            s[k].y[n] = cJSON_IsNumber(it) ? it->valuedouble : NAN;
        }
        cJSON_Delete(j);
        n++;
    }
    free(line);
    fclose(in);
    m->n = n, m->ns = ns, m->steps = steps, m->s = s;
}

static void curves(FILE *f, const metrics *m) {
    fputs("<h2>Training curves</h2>\n", f);
    if (!m->found) {
        fputs("<p class=note>no metrics.jsonl in the run directory</p>\n", f);
        return;
    }
    const int n = m->n, ns = m->ns;
    const double *steps = m->steps;
    const series *s = m->s;
    if (!n) fputs("<p class=note>metrics.jsonl has no records yet</p>\n", f);
    /* training health (docs/objective.md): say plainly when the objective did not learn */
    int alarm_from = -1, ent = -1, dg = -1, wt = -1, wc = -1;
    for (int k = 0; k < ns; k++) {
        if (!strcmp(s[k].name, "health/collapse_alarm"))
            for (int t = 0; t < n && alarm_from < 0; t++)
                if (s[k].y[t] == 1) alarm_from = t;
        if (!strcmp(s[k].name, "health/dino_teacher_entropy")) ent = k;
        if (!strcmp(s[k].name, "loss/dino_global")) dg = k;
        if (!strcmp(s[k].name, "health/dino_teacher_window_r2")) wt = k;
        if (!strcmp(s[k].name, "health/cls_window_r2")) wc = k;
    }
    if (alarm_from >= 0)
        fprintf(f, "<p class=alarm><b>Training collapsed.</b> From step %.0f the teacher's DINO targets were uniform "
                   "(per-sample entropy %.3f ln K at the last logged step): the DINO and iBOT heads gave no learning "
                   "signal, and the backbone learned from KoLeo%s alone. docs/objective.md explains the causes and the "
                   "settings that learn.</p>\n",
                steps[alarm_from], ent >= 0 ? s[ent].y[n - 1] : NAN, "/Gram");
    else if (ent >= 0 && n)
        fprintf(f, "<p class=note>training health: teacher target entropy %.3f ln K at the last logged step (1 = "
                   "uniform); DINO global loss %.4f; no collapse alarm.</p>\n",
                s[ent].y[n - 1], dg >= 0 ? s[dg].y[n - 1] : NAN);
    if (wt >= 0 && wc >= 0 && n && s[wt].y[n - 1] == s[wt].y[n - 1])
        fprintf(f, "<p class=note>window shortcut: the CT window each global crop was drawn with explains %.0f%% of "
                   "the variance of the teacher's DINO targets and %.0f%% of the teacher CLS at the last logged step "
                   "(health/dino_teacher_window_r2, health/cls_window_r2; about 1/(2 x batch) when they ignore the "
                   "window). A large share means the DINO loss is learning which window an image got, not its "
                   "anatomy (docs/objective.md).</p>\n",
                100 * s[wt].y[n - 1], 100 * s[wc].y[n - 1]);
    device_health(f, s, ns, n);
    if (n) {
        /* a key that is the same number at every logged step (a disabled loss at 0, a fixed
         * schedule) is named in one line instead of drawn as a flat panel */
        int n_const = 0;
        char *flat = calloc((size_t)ns + 1, 1);
        for (int k = 0; k < ns && flat; k++) {
            double v0 = NAN;
            int same = 1, any = 0;
            for (int t = 0; t < n && same; t++) {
                if (s[k].y[t] != s[k].y[t]) continue;
                if (!any) v0 = s[k].y[t], any = 1;
                else same = s[k].y[t] == v0;
            }
            flat[k] = any && same && n > 1;
            n_const += flat[k];
        }
        fprintf(f, "<p class=note>%d logged steps, %d numeric keys</p><div class=grid>\n", n, ns);
        for (int k = 0; k < ns; k++)
            if (!flat || !flat[k]) dx_svg_line_chart(f, s[k].name, steps, s[k].y, n, 330, 200);
        fputs("</div>\n", f);
        if (n_const) {
            fputs("<p class=note>constant over the run (not drawn): ", f);
            for (int k = 0, i = 0; k < ns; k++) {
                if (!flat[k]) continue;
                double v0 = NAN;
                for (int t = 0; t < n && v0 != v0; t++) v0 = s[k].y[t];
                fprintf(f, "%s", i++ ? ", " : "");
                html_esc(f, s[k].name);
                fprintf(f, " = %.6g%s", v0, v0 == 0 && !strncmp(s[k].name, "loss/", 5) ? " (term disabled)" : "");
            }
            fputs("</p>\n", f);
        }
        free(flat);
    }
}

static void probe_row(FILE *f, const char *name, const cJSON *p) {
    fputs("<tr><td>", f);
    html_esc(f, name);
    fputs("</td><td>", f);
    with_ci(f, p, "test_auc", "test_auc_ci");
    fputs("</td><td>", f);
    num(f, dx_json_num(p, "val_auc"), 3);
    fputs("</td><td>", f);
    num(f, dx_json_num(p, "C"), 4);
    fprintf(f, "</td><td>%.0f / %.0f / %.0f</td><td>%.0f</td></tr>\n", dx_json_num(p, "n_train"), dx_json_num(p, "n_val"), dx_json_num(p, "n_test"),
            dx_json_num(p, "n_test_malignant"));
}

/* One row of the paired-comparison table (the header before the first). */
static void paired_row(FILE *f, const cJSON *d, int folds, int *any) {
    if (!(*any)++) {
        if (folds > 0) /* the probe rows rest on out-of-fold scores of every labelled nodule */
            fprintf(f, "<h3>Paired comparisons on the same nodules (bootstrap over patients; probe rows: %d-fold "
                       "out-of-fold scores of every labelled nodule, attention: test nodules)</h3>\n", folds);
        else fputs("<h3>Paired comparisons on the same test nodules (bootstrap over test patients)</h3>\n", f);
        fputs("<table><tr><th>comparison</th><th>difference [95% CI]</th><th>P(difference &le; 0)</th><th>n</th></tr>\n", f);
    }
    fputs("<tr><td>", f);
    html_esc(f, dx_json_str(d, "what"));
    fputs("</td><td>", f);
    with_ci(f, d, "difference", "ci95");
    fputs("</td><td>", f);
    num(f, dx_json_num(d, "p_le0"), 3);
    fprintf(f, "</td><td>%.0f</td></tr>\n", dx_json_num(d, "n_test"));
}

/* The scientific question in plain sentences (eval.json "verdicts"), then the
 * paired differences they rest on. */
static void paired_table(FILE *f, const cJSON *ev) {
    const cJSON *v = dx_json_at(ev, "verdicts");
    if (cJSON_IsArray(v) && cJSON_GetArraySize(v)) {
        fputs("<h3>Verdict</h3>\n<ul class=verdict>\n", f);
        for (const cJSON *e = v->child; e; e = e->next)
            if (cJSON_IsString(e)) { fputs("<li>", f); html_esc(f, e->valuestring); fputs("</li>\n", f); }
        fputs("</ul>\n", f);
    }
    static const char *const K[] = {"ssl_minus_random_init_auc", "features_plus_diameter_minus_diameter_auc",
                                    "ssl_minus_diameter_auc", "radiomics_minus_diameter_auc",
                                    "features_plus_diameter_minus_radiomics_auc", "attention_in_nodule_ssl_minus_random_init"};
    int any = 0;
    const int folds = (int)(dx_json_at(ev, "probe.cv_folds") ? dx_json_num(ev, "probe.cv_folds") : 0);
    for (size_t k = 0; k < sizeof K / sizeof K[0]; k++) {
        char key[128];
        snprintf(key, sizeof key, "comparisons.%s", K[k]);
        const cJSON *d = dx_json_at(ev, key);
        if (!d) continue;
        paired_row(f, d, folds, &any);
    }
    const cJSON *al = dx_json_at(ev, "comparisons.main_minus_also_auc");
    for (const cJSON *d = cJSON_IsArray(al) ? al->child : NULL; d; d = d->next) {
        paired_row(f, d, folds, &any);
    }
    if (any) fputs("</table>\n", f);
    const cJSON *a = dx_json_at(ev, "comparisons.attention_in_nodule"), *ar = dx_json_at(ev, "comparisons.attention_in_nodule_random_init");
    if (a) {
        fputs("<p class=note>CLS attention inside the nodule (mass in the mask / the mask's share of the crop, 1 = chance, "
              "last block, test nodules): SSL ", f);
        with_ci(f, a, "ratio", "ci95");
        if (ar) { fputs(", random init ", f); with_ci(f, ar, "ratio", "ci95"); }
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(a, "per_head");
        if (cJSON_IsArray(h)) {
            fputs("; per head (SSL):", f);
            int k = 0;
            for (const cJSON *e = h->child; e; e = e->next, k++) { fprintf(f, " h%d ", k); num(f, cJSON_GetNumberValue(e), 2); }
        }
        fputs("</p>\n", f);
    }
}

/* ROC curves of the probe's test scores (eval.json "roc"), with the AUC of
 * each in the legend and the chance diagonal. */
static void roc_chart(FILE *f, const cJSON *ev) {
    static const struct { const char *key, *label, *auc, *colour; } C[] = {
        {"backbone", "SSL backbone", "probe.test_auc", "#1f6fb4"},
        {"features_plus_diameter", "backbone + diameter", "comparisons.features_plus_diameter_probe.test_auc", "#7b3fa0"},
        {"random_init", "random-init backbone", "baselines.random_init_auc", "#888888"},
        {"diameter", "nodule diameter alone", "baselines.size_only_auc", "#d9822b"},
        {"radiomics", "radiomics + diameter", "baselines.radiomics_auc", "#2a9d5c"},
    };
    const cJSON *roc = dx_json_at(ev, "roc");
    if (!cJSON_IsObject(roc) || !roc->child) return;
    const int W = 300, m = 36, side = W - 2 * m;
    fprintf(f, "<figure><svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\">", W + 200, W, W + 200, W);
    fprintf(f, "<text x=\"%d\" y=\"15\" class=\"ttl\">ROC, %s</text>", m,
            dx_json_num(ev, "probe.cv_folds") > 0 ? "out-of-fold scores of all labelled nodules" : "test nodules");
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" class=\"frame\"/>", m, m / 2 + 6, side, side);
    const int y0 = m / 2 + 6;
    for (int k = 0; k <= 4; k++) {
        double t = k / 4.0;
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" class=\"ax\" text-anchor=\"middle\">%.2g</text>", m + t * side, y0 + side + 12, t);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" class=\"ax\" text-anchor=\"end\">%.2g</text>", m - 3, y0 + (1 - t) * side + 3, t);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"ax\" text-anchor=\"middle\">false-positive rate</text>", m + side / 2, W - 2);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#bbb\" stroke-dasharray=\"4 3\"/>", m,
            y0 + side, m + side, y0);
    const int nc = (int)(sizeof C / sizeof C[0]);
    for (int c = nc - 1; c >= 0; c--) { /* the backbone's curve drawn last, on top */
        const cJSON *pts = cJSON_GetObjectItemCaseSensitive(roc, C[c].key);
        if (!cJSON_IsArray(pts)) continue;
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%s\" points=\"", C[c].colour, c ? "1.5" : "2.2");
        for (const cJSON *p = pts->child; p; p = p->next) {
            const cJSON *x = cJSON_GetArrayItem(p, 0), *y = cJSON_GetArrayItem(p, 1);
            if (cJSON_IsNumber(x) && cJSON_IsNumber(y))
                fprintf(f, "%.1f,%.1f ", m + x->valuedouble * side, y0 + (1 - y->valuedouble) * side);
        }
        fputs("\"/>", f);
    }
    for (int c = 0, row = 0; c < nc; c++) {
        if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(roc, C[c].key))) continue;
        const double auc = dx_json_num(ev, C[c].auc);
        fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"3\"/>", W - 20, W - 4,
                y0 + 10 + 18 * row, y0 + 10 + 18 * row, C[c].colour);
        fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"ax\">%s", W, y0 + 14 + 18 * row, C[c].label);
        if (isfinite(auc)) fprintf(f, " (AUC %.3f)", auc);
        fputs("</text>", f);
        row++;
    }
    fputs("</svg><figcaption>true-positive rate against false-positive rate of each probe's test scores; the dashed "
          "diagonal is chance</figcaption></figure>\n", f);
}

static void eval_tables(FILE *f, const cJSON *ev) {
    fputs("<h2>Evaluation</h2>\n<p class=note>backbone: ", f);
    html_esc(f, dx_json_str(ev, "model.source"));
    fprintf(f, " &middot; %s, dim %.0f, depth %.0f, heads %.0f, patch %.0f", dx_json_str(ev, "model.arch"),
            dx_json_num(ev, "model.dim"), dx_json_num(ev, "model.depth"), dx_json_num(ev, "model.heads"), dx_json_num(ev, "model.patch"));
    const double full = dx_json_num(ev, "model.full_depth");
    if (full == full) fprintf(f, " (<b>features after block %.0f of %.0f</b>)", dx_json_num(ev, "model.depth"), full);
    fputs(" &middot; store ", f);
    html_esc(f, dx_json_str(ev, "data.store"));
    fprintf(f, ": %.0f patients, %.0f nodules, %.0f labelled (%.0f malignant), crops %.0f px</p>\n", dx_json_num(ev, "data.n_patients"),
            dx_json_num(ev, "data.n_nodules"), dx_json_num(ev, "data.n_labelled"), dx_json_num(ev, "data.n_malignant"), dx_json_num(ev, "data.crop_size"));

    fputs("<h3>Malignancy probe (patient-level split, test AUC with 95% bootstrap CI over patients)</h3>\n"
          "<table><tr><th>model / features</th><th>test AUC [95% CI]</th><th>val AUC</th><th>C</th>"
          "<th>n train / val / test</th><th>test malignant</th></tr>\n", f);
    char name[160];
    snprintf(name, sizeof name, "backbone, %s (selected on val)", dx_json_str(ev, "probe.features"));
    probe_row(f, name, dx_json_at(ev, "probe"));
    static const char *const FT[] = {"cls", "mean", "concat", "nodule"};
    for (int t = 0; t < (int)(sizeof FT / sizeof FT[0]); t++) {
        char k[64];
        snprintf(k, sizeof k, "probe.by_features.%s", FT[t]);
        snprintf(name, sizeof name, "backbone, %s", FT[t]);
        if (dx_json_at(ev, k)) probe_row(f, name, dx_json_at(ev, k));
    }
    if (dx_json_at(ev, "baselines.size_only")) probe_row(f, "baseline: nodule diameter only", dx_json_at(ev, "baselines.size_only"));
    if (dx_json_at(ev, "baselines.radiomics"))
        probe_row(f, "baseline: hand-crafted radiomics of the consensus mask + diameter", dx_json_at(ev, "baselines.radiomics"));
    if (dx_json_at(ev, "baselines.random_init.probe")) {
        snprintf(name, sizeof name, "baseline: random-init backbone, %s", dx_json_str(ev, "baselines.random_init.features"));
        probe_row(f, name, dx_json_at(ev, "baselines.random_init.probe"));
    }
    const cJSON *ex = dx_json_at(ev, "baselines.extra");
    for (const cJSON *e = ex ? ex->child : NULL; e; e = e->next) {
        snprintf(name, sizeof name, "also: %.120s", dx_json_str(e, "source"));
        probe_row(f, name, dx_json_at(e, "probe"));
    }
    if (dx_json_at(ev, "comparisons.features_plus_diameter_probe"))
        probe_row(f, "backbone features + nodule diameter", dx_json_at(ev, "comparisons.features_plus_diameter_probe"));
    fputs("</table>\n", f);
    roc_chart(f, ev);
    paired_table(f, ev);

    fputs("<h3>k-NN, segmentation, collapse</h3>\n<table><tr><th>metric</th><th>backbone</th><th>random init</th></tr>\n", f);
    struct { const char *label, *k, *kr; int prec; } rows[] = {
        {"k-NN test accuracy (cosine)", "knn.test_accuracy", "knn.random_init_test_accuracy", 3},
        {"segmentation test Dice", "seg.test_dice", "seg.random_init_dice", 3},
        {"segmentation test IoU", "seg.test_iou", "seg.random_init_iou", 3},
        {"Dice, nodules &lt; 6 mm", "seg.dice_by_size.lt6mm.dice", NULL, 3},
        {"Dice, nodules 6-10 mm", "seg.dice_by_size.6to10mm.dice", NULL, 3},
        {"Dice, nodules &gt; 10 mm", "seg.dice_by_size.gt10mm.dice", NULL, 3},
        {"mean pairwise patch cosine", "collapse.patch_cosine", "collapse.random_init_patch_cosine", 4},
        {"effective rank of patch features", "collapse.effective_rank", "collapse.random_init_effective_rank", 2},
        {"nodule vs parenchyma patch AUC", "collapse.separability_auc", "collapse.random_init_separability_auc", 3},
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        fprintf(f, "<tr><td>%s</td><td>", rows[r].label);
        num(f, dx_json_num(ev, rows[r].k), rows[r].prec);
        fputs("</td><td>", f);
        if (rows[r].kr) num(f, dx_json_num(ev, rows[r].kr), rows[r].prec);
        fputs("</td></tr>\n", f);
    }
    fprintf(f, "</table>\n<p class=note>k = %.0f; segmentation: linear head on frozen patch features, bilinear upsampling, "
               "%.0f Adam steps on %.0f train crops, %.0f test crops.</p>\n",
            dx_json_num(ev, "knn.k"), dx_json_num(ev, "seg.steps"), dx_json_num(ev, "seg.n_train"), dx_json_num(ev, "seg.n_test"));
}

static void attention(FILE *f, const cJSON *ev, const char *eval_dir) {
    const cJSON *a = dx_json_at(ev, "attention");
    if (!cJSON_IsArray(a) || !cJSON_GetArraySize(a)) return;
    fputs("<h2>Attention maps</h2>\n<p class=note>Last block, CLS &rarr; patch attention. Columns: the CT crop (centre "
          "slice), PCA of the patch tokens (first three components as red, green, blue: regions the backbone tells apart "
          "get different colours), the mean over heads, then each head. Each attention map is min-max scaled over its "
          "crop, coloured", f);
    /* the colour bar of dx_overlay_heat, low to high */
    fputs(" <svg width=\"160\" height=\"14\" style=\"vertical-align:middle\">", f);
    for (int k = 0; k < 32; k++) { /* 32 steps, no gradient reference (the page refers to nothing) */
        float c[3];
        dx_heat_colormap((k + 0.5f) / 32, c);
        fprintf(f, "<rect x=\"%d\" width=\"5\" height=\"14\" fill=\"rgb(%d,%d,%d)\"/>", 5 * k, (int)(c[0] * 255 + 0.5f),
                (int)(c[1] * 255 + 0.5f), (int)(c[2] * 255 + 0.5f));
    }
    fputs("</svg> from its lowest to its "
          "highest value and blended over the slice. The cyan line is the consensus nodule outline.</p>\n", f);
    for (const cJSON *e = a->child; e; e = e->next) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", eval_dir, dx_json_str(e, "file"));
        size_t len;
        char *png = dx_read_file(path, &len);
        if (!png) continue;
        char *b64 = dx_base64((const uint8_t *)png, len);
        free(png);
        if (!b64) continue;
        fputs("<figure>", f);
        const cJSON *cols = cJSON_GetObjectItemCaseSensitive(e, "columns");
        if (cJSON_IsArray(cols) && cJSON_GetArraySize(cols) > 0) { /* the tiles' labels, one equal cell each */
            fputs("<div style=\"display:flex;font-size:11px;color:#555\">", f);
            for (const cJSON *c = cols->child; c; c = c->next) {
                fputs("<span style=\"flex:1;text-align:center\">", f);
                html_esc(f, cJSON_IsString(c) ? c->valuestring : "");
                fputs("</span>", f);
            }
            fputs("</div>", f);
        }
        fputs("<img alt=\"attention\" src=\"data:image/png;base64,", f);
        fputs(b64, f);
        fputs("\"><figcaption>", f);
        html_esc(f, dx_json_str(e, "patient_id"));
        fprintf(f, ", diameter %.1f mm, malignancy %.1f, %s split</figcaption></figure>\n", dx_json_num(e, "diameter_mm"),
                dx_json_num(e, "malignancy"), dx_json_str(e, "split"));
        free(b64);
    }
}

static const char *const TRACK_KEYS[] = {"patch_cosine", "effective_rank", "separability_auc", "probe_test_auc",
                                         "knn_test_accuracy"};
/* each diagnostic on an axis that includes its natural range, so that a drift
 * of 1e-6 is not drawn as a cliff (effective rank: from 1, its minimum) */
static const double TRACK_MIN[] = {0, 1, 0.5, 0.5, 0}, TRACK_MAX[] = {1, NAN, 1, 1, 1};
#define N_TRACK_KEYS ((int)(sizeof TRACK_KEYS / sizeof TRACK_KEYS[0]))

/* One chart of a collapse_track.json key over checkpoints; 0 if the dir has no track. */
static int track_chart(FILE *f, const char *eval_dir, int key_index, const char *title) {
    const char *key = TRACK_KEYS[key_index];
    char path[2048];
    snprintf(path, sizeof path, "%s/collapse_track.json", eval_dir);
    cJSON *t = load_json(path);
    if (!cJSON_IsArray(t) || !cJSON_GetArraySize(t)) { cJSON_Delete(t); return 0; }
    int n = cJSON_GetArraySize(t), i = 0;
    double *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    if (x && y) {
        for (const cJSON *e = t->child; e; e = e->next, i++) { x[i] = dx_json_num(e, "step"); y[i] = dx_json_num(e, key); }
        dx_svg_line_chart_range(f, title, x, y, n, 330, 200, TRACK_MIN[key_index], TRACK_MAX[key_index]);
    }
    free(x);
    free(y);
    cJSON_Delete(t);
    return 1;
}

/* The diagnostics over checkpoints; with --compare, each key's charts of every
 * evaluation side by side (e.g. Gram on vs off: does Gram anchoring keep the patch
 * features from becoming alike as training goes on?). */
static void track(FILE *f, const char *eval_dir, const char *const *compare, int n_compare) {
    char path[2048];
    snprintf(path, sizeof path, "%s/collapse_track.json", eval_dir);
    cJSON *t = load_json(path);
    int have = cJSON_IsArray(t) && cJSON_GetArraySize(t);
    int n = have ? cJSON_GetArraySize(t) : 0;
    cJSON_Delete(t);
    int others = 0;
    for (int c = 0; c < n_compare; c++) {
        snprintf(path, sizeof path, "%s/collapse_track.json", compare[c]);
        cJSON *u = load_json(path);
        others += cJSON_IsArray(u) && cJSON_GetArraySize(u);
        cJSON_Delete(u);
    }
    if (!have && !others) return;
    if (!others) {
        fprintf(f, "<h2>Collapse diagnostics over training</h2>\n<p class=note>%d checkpoints (EMA teacher)</p><div class=grid>\n", n);
        for (int k = 0; k < N_TRACK_KEYS; k++) track_chart(f, eval_dir, k, TRACK_KEYS[k]);
        fputs("</div>\n", f);
        return;
    }
    fputs("<h2>Collapse diagnostics over training, side by side</h2>\n<p class=note>EMA teacher at every checkpoint; "
          "one row per diagnostic, one chart per evaluation</p>\n", f);
    char title[512];
    for (int k = 0; k < N_TRACK_KEYS; k++) {
        fputs("<div class=grid>\n", f);
        snprintf(title, sizeof title, "%s: %.200s", TRACK_KEYS[k], eval_dir);
        track_chart(f, eval_dir, k, title);
        for (int c = 0; c < n_compare; c++) {
            snprintf(title, sizeof title, "%s: %.200s", TRACK_KEYS[k], compare[c]);
            track_chart(f, compare[c], k, title);
        }
        fputs("</div>\n", f);
    }
}

/* The ablation keys of the run an evaluation came from, if its config is found. */
static void ablation_cells(FILE *f, const char *dir) {
    char p[2048];
    const char *cand[2] = {"%s/config.yaml", "%s/../config.yaml"};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, cand[i], dir);
        struct stat sb;
        if (stat(p, &sb)) continue;
        dx_config c;
        dx_err e = {0};
        if (dx_config_resolve(&c, p, NULL, 0, &e)) break;
        fprintf(f, "<td>%s</td><td>%s</td><td>%s</td>", c.gram.enabled ? "on" : "off", c.data.fixed_window ? "fixed" : "random",
                c.data.stack25d ? "2.5D" : "2D");
        return;
    }
    fputs("<td>?</td><td>?</td><td>?</td>", f);
}

/* A comparison row's name: the run's folder name rather than the path
 * (".../gram_on/eval" -> "gram_on"); the whole path on hover. */
static void short_label(FILE *f, const char *path) {
    char b[1024];
    snprintf(b, sizeof b, "%s", path);
    size_t n = strlen(b);
    while (n > 1 && b[n - 1] == '/') b[--n] = 0;
    char *base = strrchr(b, '/');
    if (base && !strcmp(base + 1, "eval")) { /* RUN/eval: name the run */
        *base = 0;
        char *up = strrchr(b, '/');
        html_esc(f, up ? up + 1 : b);
        return;
    }
    html_esc(f, base ? base + 1 : b);
}

static void compare_row(FILE *f, const char *label, const char *dir, const cJSON *ev) {
    fputs("<tr><td title=\"", f);
    html_esc(f, label);
    fputs("\">", f);
    short_label(f, label);
    fputs("</td>", f);
    ablation_cells(f, dir);
    fputs("<td>", f);
    with_ci(f, ev, "probe.test_auc", "probe.test_auc_ci");
    fputs("</td>", f);
    const char *k[] = {"baselines.size_only_auc", "baselines.random_init_auc", "knn.test_accuracy", "seg.test_dice", "seg.test_iou",
                       "collapse.patch_cosine", "collapse.effective_rank"};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        fputs("<td>", f);
        num(f, dx_json_num(ev, k[i]), i == 6 ? 2 : 3);
        fputs("</td>", f);
    }
    fputs("</tr>\n", f);
}

/* What run this is: the model and recipe in brief, how far it got, how long
 * it took (first to last logged step, wall clock: a resumed run's pauses
 * included), the version, and the resolved config itself. */
static void run_section(FILE *f, const char *run_dir, const metrics *mt) {
    char p[2100];
    snprintf(p, sizeof p, "%s/config.yaml", run_dir);
    dx_config c;
    dx_err e = {0};
    int have_cfg = dx_config_resolve(&c, p, NULL, 0, &e) == DX_OK;
    char *yaml = have_cfg ? dx_read_file(p, NULL) : NULL;
    const double t0 = mt->t0, t1 = mt->t1, s1 = mt->n ? mt->steps[mt->n - 1] : NAN; /* first and last record */
    fputs("<h2>Run</h2>\n<table>", f);
    if (have_cfg) {
        dx_vit_config v;
        dx_err ve = {0};
        if (dx_config_vit(&c, &v, &ve) == DX_OK)
            fprintf(f, "<tr><td>backbone</td><td>%s: dim %d, depth %d, %d heads, patch %d, %d registers, %s %d</td></tr>",
                    v.arch, v.dim, v.depth, v.heads, v.patch, v.registers, v.ffn == DX_FFN_SWIGLU ? "SwiGLU" : "MLP",
                    v.ffn_hidden);
        fprintf(f, "<tr><td>recipe</td><td>batch %d, %d x %d px global + %d x %d px local crops, %s, Gram anchoring %s, "
                   "%s input, %s precision</td></tr>",
                c.train.batch_size, 2, c.crops.global_size, c.crops.local_count, c.crops.local_size,
                c.teacher.centering[0] == 's' ? "Sinkhorn-Knopp targets" : "softmax-centred targets",
                c.gram.enabled ? "on" : "off", c.data.stack25d ? "2.5D" : "2D", c.model.precision);
        fprintf(f, "<tr><td>steps</td><td>");
        if (s1 == s1) fprintf(f, "%.0f of %lld logged", s1 + 1, (long long)dx_config_total_steps(&c));
        else fprintf(f, "none logged of %lld", (long long)dx_config_total_steps(&c));
        fputs("</td></tr>", f);
    }
    if (t0 == t0 && t1 == t1) {
        time_t ts = (time_t)t0;
        struct tm tm;
        char when[64];
        strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", gmtime_r(&ts, &tm));
        long long d = (long long)(t1 - t0 + 0.5);
        fprintf(f, "<tr><td>duration</td><td>%lld:%02lld:%02lld from the first to the last logged step (started %s)</td></tr>",
                d / 3600, d / 60 % 60, d % 60, when);
    }
    fputs("<tr><td>version</td><td>", f);
    html_esc(f, dx_version_string());
    fputs("</td></tr></table>\n", f);
    if (yaml) {
        fputs("<details><summary>resolved config (config.yaml)</summary><pre>", f);
        html_esc(f, yaml);
        fputs("</pre></details>\n", f);
    }
    free(yaml);
}

static const char CSS[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}"
    "h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:28px}"
    "h3{font-size:15px}table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
    "th{background:#f2f2f2}.ci{color:#666}.note{color:#555}.alarm{color:#fff;background:#b00020;padding:8px 12px;border-radius:4px}.grid{display:flex;flex-wrap:wrap;gap:8px}"
    "svg.chart{background:#fff;border:1px solid #ddd}.ttl{font-size:12px;font-weight:600}.ax{font-size:10px;fill:#555}"
    ".frame{fill:none;stroke:#999}.gl{stroke:#e4e4e4}.line{fill:none;stroke:#1f6fb4;stroke-width:1.5}"
    ".dot{fill:#1f6fb4}figure{display:inline-block;margin:6px}figure img{image-rendering:pixelated;max-width:100%}"
    "figcaption{font-size:12px;color:#555}pre{font-size:11px;background:#f7f7f7;padding:6px;max-height:400px;overflow:auto}";

dx_status dx_report_write(const dx_report_opts *o, dx_err *err) {
    char eval_dir[2048], path[2100];
    if (o->eval_dir) snprintf(eval_dir, sizeof eval_dir, "%s", o->eval_dir);
    else if (o->run_dir) snprintf(eval_dir, sizeof eval_dir, "%s/eval", o->run_dir);
    else return dx_fail(err, DX_EINVAL, "report: neither a run nor an evaluation directory");
    snprintf(path, sizeof path, "%s/eval.json", eval_dir);
    cJSON *ev = load_json(path);
    /* the page is built in memory and replaced atomically (core/dx_file.h) */
    char *page = NULL;
    size_t page_len = 0;
    FILE *f = open_memstream(&page, &page_len);
    if (!f) { cJSON_Delete(ev); return dx_fail(err, DX_ENOMEM, "report %s: %s", o->out_path, strerror(errno)); }
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>dinox report</title><style>", f);
    fputs(CSS, f);
    fputs("</style></head><body>\n<h1>dinox report: ", f);
    html_esc(f, o->run_dir ? o->run_dir : eval_dir);
    fputs("</h1>\n", f);
    dx_status st = DX_OK;
    if (o->run_dir) {
        metrics m;
        metrics_load(&m, o->run_dir);
        run_section(f, o->run_dir, &m);
        curves(f, &m);
        metrics_free(&m);
    }
    if (!st) {
        if (ev) {
            eval_tables(f, ev);
            attention(f, ev, eval_dir);
        } else {
            fputs("<h2>Evaluation</h2><p class=note>no eval.json in ", f);
            html_esc(f, eval_dir);
            fputs(" (run <code>dinox eval --store STORE --run RUN_DIR --out RUN_DIR/eval</code>)</p>\n", f);
        }
        track(f, eval_dir, o->compare, o->n_compare);
        if (o->n_compare > 0) {
            fputs("<h2>Comparison</h2>\n<table><tr><th>evaluation</th><th>Gram</th><th>window</th><th>input</th>"
                  "<th>probe test AUC [95% CI]</th><th>size-only AUC</th><th>random-init AUC</th><th>k-NN acc</th>"
                  "<th>Dice</th><th>IoU</th><th>patch cosine</th><th>eff. rank</th></tr>\n", f);
            if (ev) compare_row(f, o->run_dir ? o->run_dir : eval_dir, o->run_dir ? o->run_dir : eval_dir, ev);
            for (int i = 0; i < o->n_compare; i++) {
                snprintf(path, sizeof path, "%s/eval.json", o->compare[i]);
                cJSON *c = load_json(path);
                if (!c) {
                    fputs("<tr><td>", f);
                    html_esc(f, o->compare[i]);
                    fputs("</td><td colspan=11>no readable eval.json</td></tr>\n", f);
                    continue;
                }
                compare_row(f, o->compare[i], o->compare[i], c);
                cJSON_Delete(c);
            }
            fputs("</table>\n", f);
        }
        fputs("<p class=note>generated by ", f);
        html_esc(f, dx_version_string());
        const cJSON *ev_version = ev ? cJSON_GetObjectItemCaseSensitive(ev, "dinox_version") : NULL;
        if (cJSON_IsString(ev_version)) {
            fputs("; evaluation by ", f);
            html_esc(f, ev_version->valuestring);
        }
        fputs("; self-contained (inline SVG and PNG, no scripts).</p>\n</body></html>\n", f);
    }
    cJSON_Delete(ev);
    int bad = ferror(f);
    bad |= fclose(f) != 0;
    if (!st && bad) st = dx_fail(err, DX_ENOMEM, "report %s: building the page failed", o->out_path);
    if (!st) {
        const void *parts[1] = {page};
        const size_t lens[1] = {page_len};
        st = dx_atomic_write(o->out_path, parts, lens, 1, err);
    }
    free(page);
    return st;
}
