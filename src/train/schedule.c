/* schedule.c - schedules, parameter-group multipliers, loss weights, clipping. */
#include "train/schedule.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Schedules must equal the numpy arrays of the reference bit for bit: numpy
 * never fuses a*b + c, so neither may we. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* np.linspace(start, stop, num, endpoint)[i] for 0 <= i < num */
static double np_linspace_at(double start, double stop, int64_t num, int endpoint, int64_t i) {
    int64_t div = endpoint ? num - 1 : num;
    double delta = stop - start;
    double y = (double)i;
    if (div > 0) {
        double step = delta / (double)div;
        if (step == 0)
            y = y / (double)div * delta;
        else
            y = y * step;
    } else {
        y = y * delta;
    }
    y = y + start;
    if (endpoint && num > 1 && i == num - 1) y = stop;
    return y;
}

dx_status dx_cosine_schedule_check(const dx_cosine_schedule *s, dx_err *err) {
    if (s->warmup < 0 || s->freeze < 0 || s->zero_first < 0 || s->total < s->warmup + s->freeze)
        return dx_fail(err, DX_EINVAL,
                       "cosine schedule: total %lld < warmup %lld + freeze %lld (or negative)",
                       (long long)s->total, (long long)s->warmup, (long long)s->freeze);
    return DX_OK;
}

double dx_cosine_schedule_at(const dx_cosine_schedule *s, int64_t it) {
    if (it < 0) it = 0;
    if (it >= s->total) return s->final;
    if (it < s->zero_first) return 0.0;
    if (it < s->freeze) return 0.0;
    it -= s->freeze;
    if (it < s->warmup) return np_linspace_at(s->start_warmup, s->base, s->warmup, 1, it);
    it -= s->warmup;
    int64_t len = s->total - s->warmup - s->freeze;
    double ang = M_PI * (double)it;
    ang = ang / (double)len;
    double amp = 0.5 * (s->base - s->final);
    return s->final + amp * (1.0 + cos(ang));
}

static int64_t lwcd_cosine(const dx_lwcd_schedule *s) {
    return s->cosine < 0 ? s->total - s->warmup : s->cosine;
}

dx_status dx_lwcd_schedule_check(const dx_lwcd_schedule *s, dx_err *err) {
    int64_t C = lwcd_cosine(s);
    if (s->warmup < 0 || C < 0 || s->warmup + C > s->total)
        return dx_fail(err, DX_EINVAL,
                       "linear_warmup_cosine_decay: warmup %lld + cosine %lld > total %lld",
                       (long long)s->warmup, (long long)C, (long long)s->total);
    return DX_OK;
}

double dx_lwcd_schedule_at(const dx_lwcd_schedule *s, int64_t it) {
    int64_t W = s->warmup, C = lwcd_cosine(s);
    if (it < 0) it = 0;
    if (it < W) return np_linspace_at(s->start, s->peak, W, 0, it);
    it -= W;
    if (it < C) {
        double t = np_linspace_at(0.0, M_PI, C, 1, it);
        double c = cos(t);
        c = (c + 1.0) / 2.0;
        return (s->peak - s->end) * c + s->end;
    }
    return s->end;
}

/* ---- parameter groups ------------------------------------------------------ */

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

void dx_param_mult_of(const char *name, int depth, double decay, double patch_embed_mult,
                      dx_param_mult *out) {
    int layer_id = depth + 1;
    if (depth > 0) { /* backbone: force_is_backbone */
        if (strstr(name, "pos_embed") || strstr(name, "patch_embed") ||
            strstr(name, "mask_token") || strstr(name, "cls_token") ||
            strstr(name, "storage_tokens")) {
            layer_id = 0;
        } else {
            const char *b = strstr(name, "blocks.");
            if (b && !strstr(name, "residual.")) layer_id = atoi(b + 7) + 1;
        }
    }
    out->layer_id = layer_id;
    out->lr_mult = pow(decay, (double)(depth + 1 - layer_id));
    out->wd_mult = 1.0;
    out->is_last_layer = strstr(name, "last_layer") != NULL;
    if (ends_with(name, "bias") || strstr(name, "norm") || strstr(name, "gamma") ||
        strstr(name, "fourier_w"))
        out->wd_mult = 0.0;
    if (strstr(name, "patch_embed")) out->lr_mult *= patch_embed_mult;
}

double dx_clip_factor(double norm, double clip) {
    double f = clip / (norm + 1e-6);
    return f < 1.0 ? f : 1.0;
}

/* ---- total objective -------------------------------------------------------- */

void dx_loss_weights_default(dx_loss_weights *w) {
    w->w_dino = 1.0;
    w->w_koleo = 0.1;
    w->w_ibot = 1.0;
    w->w_gram = 0.0;
    w->local_weight = 1.0;
    w->n_global = 2;
    w->n_local = 8;
    w->global_ignore_diag = 1;
    w->use_gram = 0;
}

void dx_loss_coefs(const dx_loss_weights *w, dx_loss_terms *coef) {
    double G = w->n_global, L = w->n_local;
    double n_glob = w->global_ignore_diag ? G * (G - 1) : G * G;
    double n_loc = G * L;
    double s_glob = n_glob / (n_glob + n_loc);
    double s_loc = n_loc / (n_glob + n_loc);
    coef->dino_local = w->w_dino * s_loc * w->local_weight;
    coef->dino_global = w->w_dino * s_glob;
    coef->koleo = w->w_koleo * G;
    coef->ibot = w->w_ibot;
    coef->gram = w->use_gram ? w->w_gram : 0.0;
}

double dx_loss_total(const dx_loss_terms *L, const dx_loss_weights *w, dx_loss_terms *contrib) {
    dx_loss_terms c, k;
    dx_loss_coefs(w, &k);
    c.dino_local = k.dino_local * L->dino_local;
    c.dino_global = k.dino_global * L->dino_global;
    c.koleo = k.koleo * L->koleo;
    c.ibot = k.ibot * L->ibot;
    c.gram = w->use_gram ? k.gram * L->gram : 0.0;
    if (contrib) *contrib = c;
    return c.dino_local + c.dino_global + c.koleo + c.ibot + c.gram;
}
