/* window.c - random CT windowing (see window.h) and the fixed normalisation. */
#include "data/window.h"

dx_window dx_window_draw(dx_rng *r, const dx_window_spec *w, int n, float shift_p, float scale_p) {
    int i = (int)dx_rng_below(r, (uint32_t)n);
    double shift_coin = dx_rng_uniform(r);
    double level = dx_rng_uniform_range(r, w[i].level - w[i].level_jitter, w[i].level + w[i].level_jitter);
    double scale_coin = dx_rng_uniform(r);
    double width = dx_rng_uniform_range(r, w[i].width - w[i].width_jitter, w[i].width + w[i].width_jitter);
    dx_window out = {w[i].level, w[i].width, i};
    if (shift_coin < shift_p) out.level = (float)level;
    if (scale_coin < scale_p) out.width = (float)width;
    return out;
}

dx_window dx_window_base(const dx_window_spec *w, int i) {
    return (dx_window){w[i].level, w[i].width, i};
}

void dx_window_apply(float *x, size_t n, dx_window w) {
    float lo = w.level - 0.5f * w.width, inv = 1.0f / w.width;
    for (size_t i = 0; i < n; i++) {
        float v = (x[i] - lo) * inv;
        x[i] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
}

void dx_normalize(float *x, size_t n, float mean, float std) {
    float inv = 1.0f / std;
    for (size_t i = 0; i < n; i++) x[i] = (x[i] - mean) * inv;
}
