/* synth_contour.c - LIDC-style contour of a binary region on one slice.
 *
 * LIDC edgeMaps are dense 8-connected chains of boundary pixels drawn just
 * outside the nodule: pylidc fills the polygon through the pixel centres and
 * then removes the contour pixels themselves. So the chain we write is the
 * Moore-neighbour trace of the region dilated by its 4-neighbours: its pixels
 * are outside neighbours of the region, and filling it minus the chain gives
 * the region back up to notches (holes are not modelled). */
#include <stdlib.h>
#include <string.h>

#include "synth/synth_internal.h"

/* clockwise with y down, starting west */
static const int OX[8] = {-1, -1, 0, 1, 1, 1, 0, -1};
static const int OY[8] = {0, -1, -1, -1, 0, 1, 1, 1};

static int dir_of(int dx, int dy) {
    for (int d = 0; d < 8; d++)
        if (OX[d] == dx && OY[d] == dy) return d;
    return 0;
}

int synth_trace_outer(const uint8_t *img, int w, int h, int sx, int sy, int *xs, int *ys, int maxpts) {
    (void)sx, (void)sy;
    uint8_t *d = calloc((size_t)w * h, 1);
    if (!d || maxpts < 2) { free(d); return 0; }
    for (int y = 1; y < h - 1; y++)
        for (int x = 1; x < w - 1; x++) {
            if (!img[(size_t)y * w + x]) continue;
            /* 4-neighbour (cross) dilation: a 3x3 one would put diagonal-only
             * neighbours inside the traced polygon and grow every mark */
            d[(size_t)y * w + x] = d[(size_t)(y - 1) * w + x] = d[(size_t)(y + 1) * w + x] = 1;
            d[(size_t)y * w + x - 1] = d[(size_t)y * w + x + 1] = 1;
        }
    int s = -1;
    for (int i = 0; i < w * h && s < 0; i++)
        if (d[i]) s = i;
    if (s < 0) { free(d); return 0; }
    int cx = s % w, cy = s / w;
    int n = 0;
    xs[n] = cx, ys[n] = cy, n++;
    int bdir = 0; /* backtrack: west of the start, background by raster order */
    int x0 = cx, y0 = cy;
    for (int guard = 0; guard < 4 * w * h; guard++) {
        int found = -1;
        for (int i = 1; i <= 8; i++) {
            int dd = (bdir + i) & 7;
            int px = cx + OX[dd], py = cy + OY[dd];
            if (px < 0 || py < 0 || px >= w || py >= h) continue;
            if (d[(size_t)py * w + px]) { found = dd; break; }
        }
        if (found < 0) break; /* isolated pixel */
        int nxp = cx + OX[found], nyp = cy + OY[found];
        /* closed: back at the start and about to repeat the first step */
        if (cx == x0 && cy == y0 && n > 1 && nxp == xs[1] && nyp == ys[1]) break;
        int prev = (found + 7) & 7; /* last background neighbour checked */
        int bx = cx + OX[prev], by = cy + OY[prev];
        cx = nxp, cy = nyp;
        bdir = dir_of(bx - cx, by - cy);
        xs[n] = cx, ys[n] = cy, n++;
        if (n >= maxpts - 1) break;
    }
    if (n > 1 && (xs[n - 1] != x0 || ys[n - 1] != y0)) xs[n] = x0, ys[n] = y0, n++;
    free(d);
    return n;
}
