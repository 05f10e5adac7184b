/* test_radiomics.c - the hand-crafted nodule descriptors against closed forms.
 *
 * A cube of voxels: volume, sphericity pi^(1/3) 6^(2/3) / 6 = 0.806 for any side, HU
 * statistics, edge contrast read from neighbours outside the box. An anisotropic grid:
 * a 4 mm cube of 4 x 4 x 2 voxels has the same sphericity, and its positions' variances
 * are s^2 (n^2 - 1) / 12 per axis. A ramp of 100 HU values: numpy's percentile and the
 * solid share. A digitised ball and a 2:1:1 ellipsoid: sphericity of voxelised balls
 * (about 2/3: face counting overestimates a smooth surface by ~1.5) and elongation 0.5. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dx_test.h"
#include "eval/radiomics.h"

enum { N = 40 };

typedef struct vol {
    int16_t hu[N * N * N];
    uint8_t mk[N * N * N];
    const int16_t *hs[N];
    const uint8_t *ms[N];
} vol;

static void vol_init(vol *v, int16_t bg) {
    for (int i = 0; i < N * N * N; i++) v->hu[i] = bg, v->mk[i] = 0;
    for (int z = 0; z < N; z++) v->hs[z] = v->hu + (size_t)z * N * N, v->ms[z] = v->mk + (size_t)z * N * N;
}

static dx_status run(const vol *v, const double sp[3], int label, const int box[6], double out[DX_RADIOMICS_N],
                     int64_t *n) {
    dx_err e = {0};
    return dx_radiomics_box(v->hs, v->ms, N, N, N, sp, label, box, out, n, &e);
}

int main(void) {
    static vol v;
    double f[DX_RADIOMICS_N];
    int64_t n = 0;
    const double iso[3] = {1, 1, 1};
    const double cube_sph = cbrt(M_PI) * pow(6.0, 2.0 / 3.0) / 6.0;

    /* a 4^3 cube of 100 HU in -800 HU; the box is exactly the cube, the edge is outside it */
    vol_init(&v, -800);
    for (int z = 10; z < 14; z++)
        for (int y = 10; y < 14; y++)
            for (int x = 10; x < 14; x++) v.hu[(z * N + y) * N + x] = 100, v.mk[(z * N + y) * N + x] = 3;
    const int cube_box[6] = {10, 14, 10, 14, 10, 14};
    CHECK(run(&v, iso, 3, cube_box, f, &n) == DX_OK && n == 64, "cube: %lld voxels", (long long)n);
    CHECK_CLOSE(f[0], log(64.0), 1e-12, 0, "log volume");
    CHECK_CLOSE(f[1], 100, 1e-12, 0, "mean HU");
    CHECK_CLOSE(f[2], 0, 1e-9, 0, "sd HU");
    CHECK_CLOSE(f[3], 100, 0, 0, "p95 HU");
    CHECK_CLOSE(f[4], 1, 0, 0, "solid fraction");
    CHECK_CLOSE(f[5], cube_sph, 1e-12, 0, "sphericity of a cube 0.806");
    CHECK_CLOSE(f[6], 1, 1e-9, 0, "elongation of a cube");
    CHECK_CLOSE(f[7], 900, 1e-12, 0, "edge contrast from the neighbours outside the box");
    printf("cube: sphericity %.6f (closed form %.6f)\n", f[5], cube_sph);
    /* a wider box gives the same; another label is not found; a box that misses the cube */
    const int wide[6] = {0, N, 0, N, 0, N};
    double g[DX_RADIOMICS_N];
    CHECK(run(&v, iso, 3, wide, g, &n) == DX_OK && !memcmp(f, g, sizeof f), "the whole volume as the box: the same");
    CHECK(run(&v, iso, 4, wide, g, &n) == DX_ENOTFOUND && n == 0, "another label: not found");
    const int miss[6] = {20, 30, 20, 30, 20, 30};
    CHECK(run(&v, iso, 3, miss, g, &n) == DX_ENOTFOUND, "a box beside the nodule: not found");
    const double bad[3] = {1, 0, 1};
    CHECK(run(&v, bad, 3, wide, g, &n) == DX_EINVAL, "zero spacing refused");
    /* clipped box bounds */
    const int over[6] = {-5, N + 5, -5, N + 5, -5, N + 5};
    CHECK(run(&v, iso, 3, over, g, &n) == DX_OK && !memcmp(f, g, sizeof f), "a box past the volume is clipped");

    /* the same physical cube on a (1, 1, 2) mm grid: 4 x 4 x 2 voxels */
    vol_init(&v, -800);
    for (int z = 10; z < 12; z++)
        for (int y = 10; y < 14; y++)
            for (int x = 10; x < 14; x++) v.hu[(z * N + y) * N + x] = 100, v.mk[(z * N + y) * N + x] = 1;
    const double aniso[3] = {1, 1, 2};
    CHECK(run(&v, aniso, 1, wide, f, &n) == DX_OK && n == 32, "anisotropic cube: %lld voxels", (long long)n);
    CHECK_CLOSE(f[0], log(64.0), 1e-12, 0, "volume in mm^3, not voxels");
    CHECK_CLOSE(f[5], cube_sph, 1e-12, 0, "face areas in mm^2: a cube again");
    /* variances: x, y 1^2 (16 - 1) / 12 = 1.25; z 2^2 (4 - 1) / 12 = 1 */
    CHECK_CLOSE(f[6], sqrt(1.0 / 1.25), 1e-12, 0, "elongation from mm positions");

    /* a ramp: 100 voxels (a 10 x 10 slab) of HU -350 ... -251 */
    vol_init(&v, 0);
    for (int i = 0; i < 100; i++) {
        const int x = 5 + i % 10, y = 5 + i / 10;
        v.hu[(20 * N + y) * N + x] = (int16_t)(-350 + i), v.mk[(20 * N + y) * N + x] = 7;
    }
    CHECK(run(&v, iso, 7, wide, f, &n) == DX_OK && n == 100, "ramp");
    CHECK_CLOSE(f[1], -300.5, 1e-9, 0, "ramp mean");
    CHECK_CLOSE(f[2], sqrt((100.0 * 100 - 1) / 12), 1e-9, 0, "ramp sd");
    CHECK_CLOSE(f[3], -350 + 94.05, 1e-9, 0, "p95 by linear interpolation (numpy: 94.05 of 0..99)");
    CHECK_CLOSE(f[4], 0.49, 1e-12, 0, "solid share: -299 ... -251 are above -300");

    /* a digitised ball of radius 9 and an ellipsoid of semi-axes 12, 6, 6 */
    for (int shape = 0; shape < 2; shape++) {
        vol_init(&v, -850);
        const double a = shape ? 12 : 9, b = shape ? 6 : 9;
        for (int z = 0; z < N; z++)
            for (int y = 0; y < N; y++)
                for (int x = 0; x < N; x++) {
                    const double dx = (x - 19.5) / a, dy = (y - 19.5) / b, dz = (z - 19.5) / b;
                    if (dx * dx + dy * dy + dz * dz <= 1) v.mk[(z * N + y) * N + x] = 2, v.hu[(z * N + y) * N + x] = 30;
                }
        CHECK(run(&v, iso, 2, wide, f, &n) == DX_OK, "shape %d", shape);
        const double V = 4.0 / 3.0 * M_PI * a * b * b;
        printf("%s: %lld voxels (%.0f analytic), sphericity %.4f, elongation %.4f\n", shape ? "ellipsoid 12:6:6" : "ball r 9",
               (long long)n, V, f[5], f[6]);
        CHECK(fabs((double)n - V) < 0.03 * V, "voxel count near the analytic volume");
        if (!shape) {
            CHECK(f[5] > 0.62 && f[5] < 0.72, "voxelised ball: sphericity about 2/3 (%.4f)", f[5]);
            CHECK_CLOSE(f[6], 1, 1e-9, 0, "ball: elongation 1 (symmetric grid)");
        } else {
            CHECK(fabs(f[6] - 0.5) < 0.02, "ellipsoid 2:1:1: elongation %.4f near 0.5", f[6]);
        }
    }
    return dx_test_summary();
}
