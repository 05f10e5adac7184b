/* test_augment.c - the image ops of the multi-crop pipeline against
 * independent references: PIL (mode F crop+resize, BICUBIC) for the
 * antialiased bicubic resize, torch (reflect pad + conv2d) for the Gaussian
 * blur, torch interpolate(bilinear, align_corners=False) for the bilinear
 * resize; RandomResizedCrop and window draws by their defining properties. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dx_rng.h"
#include "data/augment.h"
#include "data/window.h"
#include "dx_test.h"

#define PY "/usr/bin/python3"

/* per-process scratch files: other test runs may share /tmp */
static char IN[64], OUT[64];

static int have_py(const char *module) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, PY " -c 'import %s' 2>/dev/null", module);
    return system(cmd) == 0;
}

static void write_raw(const char *path, const float *x, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(x, sizeof(float), n, f);
    fclose(f);
}

static int read_raw(const char *path, float *x, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t r = fread(x, sizeof(float), n, f);
    fclose(f);
    return r == n ? 0 : -1;
}

static void fill_random(float *x, size_t n, uint64_t seed) {
    dx_rng r;
    dx_rng_init(&r, seed, DX_RNG_TEST, 0, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)dx_rng_uniform_range(&r, -1000, 1000);
}

/* One plane H x W, box, out size: compare with PIL. */
static void resize_case(int H, int W, dx_box b, int oh, int ow) {
    float *src = malloc(sizeof(float) * H * W), *got = malloc(sizeof(float) * oh * ow),
          *ref = malloc(sizeof(float) * oh * ow);
    fill_random(src, (size_t)H * W, (uint64_t)(H * 1000 + W));
    write_raw(IN, src, (size_t)H * W);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             PY " -c \"import numpy as np; from PIL import Image; "
                "a=np.fromfile('%s',dtype=np.float32).reshape(%d,%d); "
                "im=Image.fromarray(a,mode='F').crop((%d,%d,%d,%d)).resize((%d,%d),Image.BICUBIC); "
                "np.asarray(im,dtype=np.float32).tofile('%s')\"",
             IN, H, W, b.left, b.top, b.left + b.w, b.top + b.h, ow, oh, OUT);
    int rc = system(cmd);
    CHECK(rc == 0 && read_raw(OUT, ref, (size_t)oh * ow) == 0, "PIL reference failed");
    dx_resize_bicubic_aa(src, 1, H, W, b, got, oh, ow, NULL);
    double worst = 0;
    for (int i = 0; i < oh * ow; i++) worst = fmax(worst, fabs(got[i] - ref[i]));
    char what[128];
    snprintf(what, sizeof what, "resize %dx%d box(%d,%d,%d,%d) -> %dx%d max abs err (values +-1000)", H, W,
             b.top, b.left, b.h, b.w, oh, ow);
    CHECK(worst < 2e-3, "%s: %g", what, worst);
    printf("%s: %.3g\n", what, worst);
    free(src);
    free(got);
    free(ref);
}

static void blur_case(int H, int W, float sigma) {
    int C = 2;
    size_t n = (size_t)C * H * W;
    float *x = malloc(sizeof(float) * n), *ref = malloc(sizeof(float) * n);
    fill_random(x, n, 77);
    write_raw(IN, x, n);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             PY " -c \"import torch,numpy as np; import torch.nn.functional as F; "
                "a=torch.from_numpy(np.fromfile('%s',dtype=np.float32).reshape(1,%d,%d,%d)).double(); "
                "s=%.9g; t=torch.arange(-4,5,dtype=torch.float64); k=torch.exp(-0.5*(t/s)**2); k=k/k.sum(); "
                "k2=(k[:,None]*k[None,:]).expand(%d,1,9,9); "
                "y=F.conv2d(F.pad(a,(4,4,4,4),mode='reflect'),k2,groups=%d); "
                "y.float().numpy().tofile('%s')\"",
             IN, C, H, W, (double)sigma, C, C, OUT);
    int rc = system(cmd);
    CHECK(rc == 0 && read_raw(OUT, ref, n) == 0, "torch blur reference failed");
    dx_gaussian_blur(x, C, H, W, sigma, NULL);
    double worst = 0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(x[i] - ref[i]));
    CHECK(worst < 5e-3, "blur %dx%d sigma %g: max abs err %g (values +-1000)", H, W, sigma, worst);
    printf("blur %dx%d sigma %.2f vs torch: %.3g\n", H, W, sigma, worst);
    free(x);
    free(ref);
}

static void bilinear_case(int H, int W, int oh, int ow) {
    float *x = malloc(sizeof(float) * H * W), *got = malloc(sizeof(float) * oh * ow),
          *ref = malloc(sizeof(float) * oh * ow);
    fill_random(x, (size_t)H * W, 5);
    write_raw(IN, x, (size_t)H * W);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             PY " -c \"import torch,numpy as np; import torch.nn.functional as F; "
                "a=torch.from_numpy(np.fromfile('%s',dtype=np.float32).reshape(1,1,%d,%d)); "
                "F.interpolate(a,size=(%d,%d),mode='bilinear',align_corners=False).numpy().tofile('%s')\"",
             IN, H, W, oh, ow, OUT);
    int rc = system(cmd);
    CHECK(rc == 0 && read_raw(OUT, ref, (size_t)oh * ow) == 0, "torch bilinear reference failed");
    dx_resize_bilinear(x, 1, H, W, got, oh, ow);
    double worst = 0;
    for (int i = 0; i < oh * ow; i++) worst = fmax(worst, fabs(got[i] - ref[i]));
    CHECK(worst < 1e-3, "bilinear %dx%d -> %dx%d: %g", H, W, oh, ow, worst);
    printf("bilinear %dx%d -> %dx%d vs torch: %.3g\n", H, W, oh, ow, worst);
    free(x);
    free(got);
    free(ref);
}

int main(void) {
    snprintf(IN, sizeof IN, "/tmp/dx_aug_in.%d.raw", (int)getpid());
    snprintf(OUT, sizeof OUT, "/tmp/dx_aug_out.%d.raw", (int)getpid());
    /* ---- resize vs PIL ---- */
    if (have_py("PIL") && have_py("numpy")) {
        resize_case(60, 50, (dx_box){0, 0, 60, 50}, 60, 50);   /* identity */
        resize_case(120, 100, (dx_box){7, 11, 90, 77}, 32, 32); /* downscale ~2.8x, antialiased */
        resize_case(64, 64, (dx_box){10, 3, 17, 23}, 64, 64);   /* upscale */
        resize_case(80, 90, (dx_box){1, 2, 70, 41}, 24, 56);    /* mixed */
        resize_case(300, 300, (dx_box){0, 0, 300, 300}, 37, 37);
    } else {
        CHECK(0, "resize-vs-PIL: " PY " cannot import PIL + numpy (apt-get install python3-pil python3-numpy; "
                 "scripts/setup.sh does)");
    }
    if (have_py("torch")) {
        blur_case(16, 20, 0.7f);
        blur_case(32, 24, 1.9f);
        blur_case(9, 9, 0.1f);
        bilinear_case(40, 30, 20, 15);
        bilinear_case(17, 23, 29, 31);
    } else {
        CHECK(0, "blur/bilinear-vs-torch: " PY " cannot import torch (apt-get install python3-torch; "
                 "scripts/setup.sh does)");
    }

    /* constant images stay constant (weights normalised), whatever the box */
    float cst[50 * 40], outc[3 * 31 * 17];
    for (int i = 0; i < 50 * 40; i++) cst[i] = 42.5f;
    dx_resize_bicubic_aa(cst, 1, 50, 40, (dx_box){3, 4, 45, 13}, outc, 31, 17, NULL);
    double dev = 0;
    for (int i = 0; i < 31 * 17; i++) dev = fmax(dev, fabs(outc[i] - 42.5));
    CHECK(dev < 1e-4, "constant through resize: %g", dev);

    /* ---- RandomResizedCrop ---- */
    const float scale[2] = {0.32f, 1.0f}, ratio[2] = {3.0f / 4, 4.0f / 3};
    int n = 20000, fit = 1, same = 1;
    double sum_area = 0, sum_top = 0;
    for (int i = 0; i < n; i++) {
        dx_rng r, r2;
        dx_rng_init(&r, 9, DX_RNG_TEST, 1, i);
        dx_rng_init(&r2, 9, DX_RNG_TEST, 1, i);
        dx_box b = dx_rrc_params(&r, 200, 300, scale, ratio), b2 = dx_rrc_params(&r2, 200, 300, scale, ratio);
        same &= memcmp(&b, &b2, sizeof b) == 0;
        double a = (double)b.h * b.w / (200.0 * 300.0), ar = (double)b.w / b.h;
        /* rounding of w and h moves area/aspect slightly */
        if (b.top < 0 || b.left < 0 || b.top + b.h > 200 || b.left + b.w > 300 || a < 0.30 || a > 1.0 ||
            ar < 0.74 || ar > 1.35)
            fit = 0;
        sum_area += a;
        sum_top += (b.h < 200) ? (double)b.top / (200 - b.h) : 0.5;
    }
    CHECK(fit, "every RRC box inside the image with area and aspect in range");
    CHECK(same, "RRC is a function of its stream");
    /* mean accepted area of torchvision's algorithm on 200x300 (scale 0.32..1, 10 tries +
     * fallback), by a numpy simulation of 200k draws: 0.5176 */
    CHECK(fabs(sum_area / n - 0.5176) < 0.005, "mean area fraction %g", sum_area / n);
    CHECK(fabs(sum_top / n - 0.5) < 0.02, "top offset uniform: mean relative top %g", sum_top / n);
    /* fallback: nothing fits a 10 x 1000 strip at scale >= 0.9 -> centred crop, aspect clamped to 4/3 */
    dx_rng r;
    dx_rng_init(&r, 1, DX_RNG_TEST, 2, 0);
    const float big[2] = {0.9f, 1.0f};
    dx_box fb = dx_rrc_params(&r, 10, 1000, big, ratio);
    CHECK(fb.h == 10 && fb.w == 13 && fb.top == 0 && fb.left == (1000 - 13) / 2, "fallback box %d %d %d %d", fb.top,
          fb.left, fb.h, fb.w);
    dx_box fb2 = dx_rrc_params(&r, 1000, 10, big, ratio);
    CHECK(fb2.w == 10 && fb2.h == 13 && fb2.top == (1000 - 13) / 2, "fallback tall %d %d", fb2.h, fb2.w);
    const float one[2] = {1.0f, 1.0f}, sq[2] = {1.0f, 1.0f};
    dx_box full = dx_rrc_params(&r, 64, 64, one, sq);
    CHECK(full.top == 0 && full.left == 0 && full.h == 64 && full.w == 64, "scale 1 ratio 1 = whole image");

    /* ---- windows ---- */
    dx_window_spec ws[2] = {{1500, -600, 150, 400}, {400, 40, 60, 150}};
    int n_shift = 0, n_scale = 0, n_base1 = 0, in_range = 1;
    for (int i = 0; i < n; i++) {
        dx_rng_init(&r, 3, DX_RNG_TEST, 3, i);
        dx_window w = dx_window_draw(&r, ws, 2, 0.163f, 0.3f);
        const dx_window_spec *b = &ws[w.base];
        n_base1 += w.base == 1;
        if (w.level != b->level) n_shift++;
        if (w.width != b->width) n_scale++;
        if (fabsf(w.level - b->level) > b->level_jitter + 1e-3f || fabsf(w.width - b->width) > b->width_jitter + 1e-3f)
            in_range = 0;
    }
    double sd = sqrt(0.25 / n);
    CHECK(fabs((double)n_base1 / n - 0.5) < 4 * sd, "base window uniform: %g", (double)n_base1 / n);
    CHECK(fabs((double)n_shift / n - 0.163) < 4 * sqrt(0.163 * 0.837 / n), "shift probability %g", (double)n_shift / n);
    CHECK(fabs((double)n_scale / n - 0.3) < 4 * sqrt(0.21 / n), "scale probability %g", (double)n_scale / n);
    CHECK(in_range, "perturbed level/width inside the jitter ranges");
    /* level draws are uniform over [L0 - lj, L0 + lj]: mean and variance */
    double m = 0, v = 0;
    for (int i = 0; i < n; i++) {
        dx_rng_init(&r, 4, DX_RNG_TEST, 3, i);
        dx_window w = dx_window_draw(&r, ws + 1, 1, 1.0f, 0.0f);
        m += w.level;
        v += (w.level - 40.0) * (w.level - 40.0);
        CHECK(w.width == 400, "width kept with scale_p 0");
    }
    m /= n, v /= n;
    CHECK(fabs(m - 40) < 4 * 60 / sqrt(3.0 * n), "level mean %g", m);
    CHECK(fabs(v - 60.0 * 60 / 3) < 0.05 * 1200, "level variance %g (uniform: %g)", v, 60.0 * 60 / 3);
    float hu[6] = {-2000, 40 - 200, 40, 40 + 100, 40 + 200, 3000};
    dx_window_apply(hu, 6, (dx_window){40, 400, 1});
    CHECK(hu[0] == 0 && hu[1] == 0 && hu[2] == 0.5f && hu[3] == 0.75f && hu[4] == 1 && hu[5] == 1,
          "window maps [L-W/2, L+W/2] to [0,1] with clipping: %g %g %g %g %g %g", hu[0], hu[1], hu[2], hu[3], hu[4],
          hu[5]);
    float nz[3] = {0.5f, 0.75f, 0.25f};
    dx_normalize(nz, 3, 0.5f, 0.25f);
    CHECK(nz[0] == 0 && nz[1] == 1 && nz[2] == -1, "normalize");

    /* ---- flip, noise ---- */
    float fl[2 * 2 * 3] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    dx_flip_h(fl, 2, 2, 3);
    CHECK(fl[0] == 3 && fl[2] == 1 && fl[3] == 6 && fl[9] == 12 && fl[11] == 10, "flip mirrors rows");
    float *nb = calloc(100000, sizeof(float));
    dx_rng_init(&r, 5, DX_RNG_TEST, 0, 0);
    dx_add_noise(nb, 100000, 12.0f, &r);
    double nm = 0, nv = 0;
    for (int i = 0; i < 100000; i++) nm += nb[i], nv += nb[i] * nb[i];
    nm /= 100000, nv = nv / 100000 - nm * nm;
    CHECK(fabs(nm) < 0.2 && fabs(sqrt(nv) - 12) < 0.2, "noise mean %g sd %g", nm, sqrt(nv));
    free(nb);
    remove(IN);
    remove(OUT);
    return dx_test_summary();
}
