/* dx_table.c - see dx_table.h. */
#include "dx_table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dx_table_init(dx_table *tab) { memset(tab, 0, sizeof *tab); }

void dx_table_free(dx_table *tab) {
    free(tab->t);
    memset(tab, 0, sizeof *tab);
}

int dx_table_add(dx_table *tab, const char *name, int ndim, const int64_t *shape, unsigned flags,
                 dx_err *err) {
    if (ndim < 1 || ndim > DX_MAX_DIMS) return -dx_fail(err, DX_EINVAL, "%s: bad ndim %d", name, ndim);
    if (strlen(name) >= DX_NAME_MAX) return -dx_fail(err, DX_EINVAL, "tensor name too long: %s", name);
    if (dx_table_find(tab, name) >= 0) return -dx_fail(err, DX_EINVAL, "duplicate tensor %s", name);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0) return -dx_fail(err, DX_EINVAL, "%s: non-positive dim", name);
        numel *= (size_t)shape[i];
    }
    if (tab->n == tab->cap) {
        int cap = tab->cap ? tab->cap * 2 : 64;
        dx_tensor_spec *t = realloc(tab->t, (size_t)cap * sizeof *t);
        if (!t) return -dx_fail(err, DX_ENOMEM, "tensor table");
        tab->t = t;
        tab->cap = cap;
    }
    dx_tensor_spec *s = &tab->t[tab->n];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->ndim = ndim;
    memcpy(s->shape, shape, (size_t)ndim * sizeof *shape);
    s->numel = numel;
    s->offset = tab->total;
    s->flags = flags;
    s->lr_mult = 1.0f;
    s->wd_mult = (flags & DX_TF_NO_WD) ? 0.0f : 1.0f;
    /* Round the END up, not numel: a tensor that follows a packed one starts
     * unaligned, and only rounding its end re-aligns the tensor after it. */
    tab->total = (flags & DX_TF_PACKED)
                     ? tab->total + numel
                     : (tab->total + numel + DX_TABLE_ALIGN - 1) / DX_TABLE_ALIGN * DX_TABLE_ALIGN;
    return tab->n++;
}

int dx_table_find(const dx_table *tab, const char *name) {
    for (int i = 0; i < tab->n; i++)
        if (strcmp(tab->t[i].name, name) == 0) return i;
    return -1;
}

dx_status dx_table_append(dx_table *dst, const dx_table *src, const char *prefix, size_t *base,
                          dx_err *err) {
    *base = dst->total;
    char name[DX_NAME_MAX];
    for (int i = 0; i < src->n; i++) {
        const dx_tensor_spec *s = &src->t[i];
        if (snprintf(name, sizeof name, "%s%s", prefix, s->name) >= (int)sizeof name)
            return dx_fail(err, DX_EINVAL, "tensor name too long: %s%s", prefix, s->name);
        int k = dx_table_add(dst, name, s->ndim, s->shape, s->flags, err);
        if (k < 0) return -k;
        dst->t[k].lr_mult = s->lr_mult;
        dst->t[k].wd_mult = s->wd_mult;
        /* same order, same padding rules: offsets shift by base exactly */
        if (dst->t[k].offset != *base + s->offset)
            return dx_fail(err, DX_EINVAL, "table append: layout of %s does not line up", name);
    }
    return DX_OK;
}

size_t dx_table_numel_trainable(const dx_table *tab) {
    size_t n = 0;
    for (int i = 0; i < tab->n; i++)
        if (!(tab->t[i].flags & DX_TF_BUFFER)) n += tab->t[i].numel;
    return n;
}

const char *dx_shape_str(const int64_t *shape, int ndim, char *buf, size_t len) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, len - k, "[");
    for (int i = 0; i < ndim && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (k < len) snprintf(buf + k, len - k, "]");
    return buf;
}
