/* eval_tb.c - see eval_tb.h. */
#include "eval/eval_tb.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/dx_file.h"
#include "eval/eval_json.h"
#include "train/tbevents.h"


/* eval.json field -> TensorBoard tag (index >= 0: element of a [lo, hi] pair) */
static const struct { const char *key; int index; const char *tag; } SCALARS[] = {
    {"probe.test_auc", -1, "eval/probe_test_auc"},
    {"probe.test_auc_ci", 0, "eval/probe_test_auc_ci_lo"},
    {"probe.test_auc_ci", 1, "eval/probe_test_auc_ci_hi"},
    {"baselines.size_only_auc", -1, "eval/size_only_auc"},
    {"baselines.random_init_auc", -1, "eval/random_init_auc"},
    {"baselines.radiomics_auc", -1, "eval/radiomics_auc"},
    {"comparisons.ssl_minus_random_init_auc.difference", -1, "eval/ssl_minus_random_init_auc"},
    {"comparisons.features_plus_diameter_minus_diameter_auc.difference", -1, "eval/features_plus_diameter_minus_diameter_auc"},
    {"comparisons.radiomics_minus_diameter_auc.difference", -1, "eval/radiomics_minus_diameter_auc"},
    {"comparisons.attention_in_nodule.ratio", -1, "eval/attention_in_nodule"},
    {"knn.test_accuracy", -1, "eval/knn_test_accuracy"},
    {"seg.test_dice", -1, "eval/seg_test_dice"},
    {"seg.test_iou", -1, "eval/seg_test_iou"},
    {"collapse.patch_cosine", -1, "eval/collapse_patch_cosine"},
    {"collapse.effective_rank", -1, "eval/collapse_effective_rank"},
    {"collapse.separability_auc", -1, "eval/collapse_separability_auc"},
};
#define N_SCALARS ((int)(sizeof SCALARS / sizeof SCALARS[0]))
static const char *const TRACK[] = {"patch_cosine", "effective_rank", "separability_auc", "probe_test_auc",
                                    "knn_test_accuracy"};
#define N_TRACK ((int)(sizeof TRACK / sizeof TRACK[0]))

/* width and height from a PNG's IHDR; 0 if it is not one */
static int png_size(const unsigned char *p, size_t n, int *w, int *h) {
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n < 24 || memcmp(p, sig, 8) || memcmp(p + 12, "IHDR", 4)) return 0;
    *w = (int)((uint32_t)p[16] << 24 | (uint32_t)p[17] << 16 | (uint32_t)p[18] << 8 | p[19]);
    *h = (int)((uint32_t)p[20] << 24 | (uint32_t)p[21] << 16 | (uint32_t)p[22] << 8 | p[23]);
    return *w > 0 && *h > 0;
}

dx_status dx_eval_tb_write(const char *logdir, const char *eval_dir, int64_t step, dx_err *err) {
    char path[2100];
    snprintf(path, sizeof path, "%s/eval.json", eval_dir);
    char *text = dx_read_file(path, NULL);
    cJSON *ev = text ? cJSON_Parse(text) : NULL;
    free(text);
    snprintf(path, sizeof path, "%s/collapse_track.json", eval_dir);
    text = dx_read_file(path, NULL);
    cJSON *track = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!ev && !cJSON_IsArray(track)) {
        cJSON_Delete(track);
        return DX_OK;
    }
    dx_tb_writer w;
    dx_status s = dx_tb_open(&w, logdir, err);
    if (s) {
        cJSON_Delete(ev), cJSON_Delete(track);
        return s;
    }
    const double now = (double)time(NULL);
    if (ev) {
        const char *tags[N_SCALARS];
        float vals[N_SCALARS];
        for (int i = 0; i < N_SCALARS; i++) {
            tags[i] = SCALARS[i].tag;
            const char *k = SCALARS[i].key; /* NaN (absent): skipped by the writer */
            vals[i] = (float)(SCALARS[i].index < 0 ? dx_json_num(ev, k) : dx_json_num_item(ev, k, SCALARS[i].index));
        }
        s = dx_tb_scalars(&w, step, now, tags, vals, N_SCALARS, err);
        for (int i = 0; !s && i < 8; i++) { /* the attention overlays, in the order eval wrote them */
            size_t n;
            snprintf(path, sizeof path, "%s/attention/att_%d.png", eval_dir, i);
            unsigned char *png = (unsigned char *)dx_read_file(path, &n);
            int pw, ph;
            if (png && png_size(png, n, &pw, &ph)) {
                char tag[64];
                snprintf(tag, sizeof tag, "eval/attention/%d", i);
                s = dx_tb_image_png(&w, step, now, tag, png, n, ph, pw, err);
            }
            free(png);
            if (!png) break;
        }
    }
    if (!s && cJSON_IsArray(track)) {
        char tags_buf[N_TRACK][48];
        const char *tags[N_TRACK];
        for (int k = 0; k < N_TRACK; k++) snprintf(tags_buf[k], sizeof tags_buf[k], "eval_track/%s", TRACK[k]), tags[k] = tags_buf[k];
        for (const cJSON *e = track->child; e && !s; e = e->next) {
            float vals[N_TRACK];
            for (int k = 0; k < N_TRACK; k++) vals[k] = (float)dx_json_num(e, TRACK[k]);
            s = dx_tb_scalars(&w, (int64_t)dx_json_num(e, "step"), now, tags, vals, N_TRACK, err);
        }
    }
    if (!s) s = dx_tb_flush(&w, err);
    dx_tb_close(&w);
    cJSON_Delete(ev);
    cJSON_Delete(track);
    return s;
}
