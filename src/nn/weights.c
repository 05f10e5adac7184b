/* weights.c - see weights.h. */
#include "nn/weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/dx_safetensors.h"

/* Shapes equal once leading 1-dims are dropped. */
static int same_shape(const int64_t *a, int na, const int64_t *b, int nb) {
    while (na > 1 && a[0] == 1) { a++; na--; }
    while (nb > 1 && b[0] == 1) { b++; nb--; }
    if (na != nb) return 0;
    for (int i = 0; i < na; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

dx_status dx_weights_load(const dx_table *tab, dx_backend *be, float *w, const char *path,
                          const char *prefix, unsigned flags, dx_err *err) {
    dx_safetensors st;
    dx_status s = dx_st_open(&st, path, err);
    if (s) return s;
    if (!prefix) prefix = "";
    const size_t plen = strlen(prefix);
    char name[2 * DX_NAME_MAX];
    size_t max_numel = 0;
    for (int i = 0; i < tab->n; i++)
        if (tab->t[i].numel > max_numel) max_numel = tab->t[i].numel;
    float *host = malloc(max_numel * sizeof(float));
    if (!host) {
        dx_st_close(&st);
        return dx_fail(err, DX_ENOMEM, "weights staging buffer");
    }
    /* every file tensor under the prefix must be known, unless told otherwise */
    if (!(flags & DX_LOAD_IGNORE_EXTRA)) {
        for (int j = 0; j < st.n; j++) {
            if (strncmp(st.t[j].name, prefix, plen) != 0) continue;
            if (dx_table_find(tab, st.t[j].name + plen) < 0) {
                s = dx_fail(err, DX_ENOTFOUND, "%s: tensor '%s' is not part of this model (wrong --arch or options?)",
                            path, st.t[j].name);
                goto done;
            }
        }
    }
    for (int i = 0; i < tab->n; i++) {
        const dx_tensor_spec *ts = &tab->t[i];
        snprintf(name, sizeof name, "%s%s", prefix, ts->name);
        const dx_st_tensor *t = dx_st_find(&st, name);
        if (!t) {
            if ((ts->flags & DX_TF_BUFFER) && (flags & DX_LOAD_BUFFERS_OPTIONAL)) continue;
            s = dx_fail(err, DX_ENOTFOUND, "%s: missing tensor '%s'", path, name);
            goto done;
        }
        if (!same_shape(t->shape, t->ndim, ts->shape, ts->ndim)) {
            char a[128], b[128];
            s = dx_fail(err, DX_ESHAPE, "%s: tensor '%s' has shape %s in the file, %s expected", path, name,
                        dx_shape_str(t->shape, t->ndim, a, sizeof a), dx_shape_str(ts->shape, ts->ndim, b, sizeof b));
            goto done;
        }
        s = dx_st_to_f32(t, host, ts->numel, err);
        if (s) {
            dx_fail_prefix(err, "%s", path);
            goto done;
        }
        be->ops->upload(be, w + ts->offset, host, ts->numel * sizeof(float));
    }
done:
    free(host);
    dx_st_close(&st);
    return s;
}

dx_status dx_weights_save_host(const dx_table *tab, const float *host, const char *path, const char *prefix,
                               int with_buffers, const char *const *metadata, int n_meta, dx_err *err) {
    if (!prefix) prefix = "";
    dx_st_entry *e = calloc((size_t)tab->n + 1, sizeof *e);
    char (*names)[2 * DX_NAME_MAX] = calloc((size_t)tab->n + 1, sizeof *names);
    dx_status s = DX_OK;
    if (!e || !names) {
        s = dx_fail(err, DX_ENOMEM, "weights save buffers");
        goto done;
    }
    int n = 0;
    for (int i = 0; i < tab->n; i++) {
        const dx_tensor_spec *ts = &tab->t[i];
        if ((ts->flags & DX_TF_BUFFER) && !with_buffers) continue;
        snprintf(names[n], sizeof names[n], "%s%s", prefix, ts->name);
        e[n].name = names[n];
        e[n].dtype = DX_ST_F32;
        e[n].ndim = ts->ndim;
        e[n].shape = ts->shape;
        e[n].data = host + ts->offset;
        n++;
    }
    s = dx_st_write(path, e, n, metadata, n_meta, err);
done:
    free(e);
    free(names);
    return s;
}

dx_status dx_weights_save(const dx_table *tab, dx_backend *be, const float *w, const char *path,
                          const char *prefix, int with_buffers, const char *const *metadata,
                          int n_meta, dx_err *err) {
    float *host = malloc(tab->total * sizeof(float) + 1);
    if (!host) return dx_fail(err, DX_ENOMEM, "weights save buffers");
    be->ops->download(be, host, w, tab->total * sizeof(float));
    dx_status s = dx_weights_save_host(tab, host, path, prefix, with_buffers, metadata, n_meta, err);
    free(host);
    return s;
}
