/* test_table.c - the named tensor table (src/core/dx_table.c): layout
 * (64-byte aligned starts, PACKED pairs, no overlap), flags and multipliers,
 * lookup, error cases leaving the table untouched, growth, dx_table_append,
 * dx_shape_str, and the ViT-S/16 parameter count of the DINOv3 spec (§11.2). */
#include <stdint.h>

#include "core/dx_table.h"
#include "dx_test.h"

/* Every tensor inside [0, total), no two overlapping (offsets are increasing by construction). */
static int layout_ok(const dx_table *t) {
    for (int i = 0; i < t->n; i++) {
        if (t->t[i].offset + t->t[i].numel > t->total) return 0;
        if (i && t->t[i].offset < t->t[i - 1].offset + t->t[i - 1].numel) return 0;
    }
    return 1;
}

static void test_layout(void) {
    dx_table t;
    dx_err err = {0};
    dx_table_init(&t);
    CHECK(t.n == 0 && t.total == 0 && t.t == NULL, "init empty");
    int64_t s5[1] = {5}, s16[1] = {16}, s17[1] = {17}, s3[1] = {3}, s2x3[2] = {2, 3};
    CHECK(dx_table_add(&t, "a", 1, s5, 0, &err) == 0, "index 0");
    CHECK(dx_table_add(&t, "b", 1, s16, 0, &err) == 1, "index 1");
    CHECK(dx_table_add(&t, "c", 1, s17, 0, &err) == 2, "index 2");
    CHECK(dx_table_add(&t, "d", 2, s2x3, 0, &err) == 3, "index 3");
    CHECK(t.t[0].offset == 0 && t.t[1].offset == 16 && t.t[2].offset == 32 && t.t[3].offset == 64,
          "offsets 0 16 32 64: %zu %zu %zu %zu", t.t[0].offset, t.t[1].offset, t.t[2].offset, t.t[3].offset);
    CHECK(t.total == 80 && t.t[3].numel == 6, "total %zu", t.total);

    /* PACKED: the next tensor follows immediately; the one after that is aligned again */
    int w1 = dx_table_add(&t, "w1", 1, s5, DX_TF_PACKED, &err);
    int w2 = dx_table_add(&t, "w2", 1, s3, 0, &err);
    int nx = dx_table_add(&t, "next", 1, s3, 0, &err);
    CHECK(w1 >= 0 && w2 >= 0 && nx >= 0, "adds: %s", err.msg);
    CHECK(t.t[w1].offset == 80 && t.t[w2].offset == 85, "w2 right after w1: %zu %zu", t.t[w1].offset, t.t[w2].offset);
    CHECK(t.t[nx].offset % DX_TABLE_ALIGN == 0, "tensor after a packed pair starts aligned: offset %zu",
          t.t[nx].offset);
    CHECK(t.total % DX_TABLE_ALIGN == 0, "total stays a multiple of %d: %zu", DX_TABLE_ALIGN, t.total);
    for (int i = 0; i < t.n; i++)
        if (i == 0 || !(t.t[i - 1].flags & DX_TF_PACKED))
            CHECK(t.t[i].offset % DX_TABLE_ALIGN == 0, "%s aligned (offset %zu)", t.t[i].name, t.t[i].offset);
    CHECK(layout_ok(&t), "no overlap, all inside total");
    dx_table_free(&t);
    CHECK(t.n == 0 && t.t == NULL && t.total == 0, "free resets");
}

static void test_flags_and_lookup(void) {
    dx_table t;
    dx_err err = {0};
    dx_table_init(&t);
    int64_t s[2] = {4, 8}, v[1] = {8};
    int w = dx_table_add(&t, "blocks.0.attn.qkv.weight", 2, s, 0, &err);
    int b = dx_table_add(&t, "blocks.0.attn.qkv.bias", 1, v, DX_TF_NO_WD, &err);
    int m = dx_table_add(&t, "blocks.0.attn.qkv.bias_mask", 1, v, DX_TF_BUFFER | DX_TF_NO_WD, &err);
    int h = dx_table_add(&t, "head.last_layer.weight", 2, s, DX_TF_LAST_LAYER, &err);
    CHECK(t.t[w].wd_mult == 1.0f && t.t[w].lr_mult == 1.0f, "weight: wd 1, lr 1");
    CHECK(t.t[b].wd_mult == 0.0f && t.t[b].lr_mult == 1.0f, "NO_WD: wd 0");
    CHECK(t.t[m].flags == (DX_TF_BUFFER | DX_TF_NO_WD) && t.t[h].flags == DX_TF_LAST_LAYER, "flags kept");
    CHECK(dx_table_numel_trainable(&t) == 32 + 8 + 32, "trainable excludes buffers: %zu", dx_table_numel_trainable(&t));
    CHECK(dx_table_find(&t, "blocks.0.attn.qkv.bias") == b && dx_table_find(&t, "head.last_layer.weight") == h,
          "find");
    CHECK(dx_table_find(&t, "blocks.0.attn.qkv") == -1 && dx_table_find(&t, "") == -1, "no prefix matches");
    float buf[256];
    CHECK(dx_table_ptr(&t, buf, b) == buf + t.t[b].offset, "ptr = base + offset");
    dx_table_free(&t);
}

static void test_errors(void) {
    dx_table t;
    dx_err err = {0};
    dx_table_init(&t);
    int64_t s[5] = {2, 2, 2, 2, 2};
    CHECK(dx_table_add(&t, "x", 1, s, 0, &err) == 0, "first");
    size_t total = t.total;
    int r = dx_table_add(&t, "x", 1, s, 0, &err);
    CHECK(r == -DX_EINVAL && err.code == DX_EINVAL && strstr(err.msg, "duplicate"), "duplicate: %d %s", r, err.msg);
    r = dx_table_add(&t, "y", 0, s, 0, &err);
    CHECK(r == -DX_EINVAL, "ndim 0: %s", err.msg);
    r = dx_table_add(&t, "y", DX_MAX_DIMS + 1, s, 0, &err);
    CHECK(r == -DX_EINVAL, "ndim 5: %s", err.msg);
    int64_t z[2] = {3, 0}, ng[1] = {-4};
    CHECK(dx_table_add(&t, "z", 2, z, 0, &err) == -DX_EINVAL, "zero dim: %s", err.msg);
    CHECK(dx_table_add(&t, "n", 1, ng, 0, &err) == -DX_EINVAL, "negative dim: %s", err.msg);
    char name[DX_NAME_MAX + 1];
    memset(name, 'k', DX_NAME_MAX);
    name[DX_NAME_MAX] = '\0';
    CHECK(dx_table_add(&t, name, 1, s, 0, &err) == -DX_EINVAL, "96-char name refused: %s", err.msg);
    name[DX_NAME_MAX - 1] = '\0';
    r = dx_table_add(&t, name, 1, s, 0, &err);
    CHECK(r == 1 && strcmp(t.t[1].name, name) == 0, "95-char name kept whole");
    CHECK(t.n == 2 && t.total == total + DX_TABLE_ALIGN, "failed adds changed nothing (n %d total %zu)", t.n, t.total);
    CHECK(dx_table_add(&t, "w", 4, s, 0, &err) == 2 && t.t[2].numel == 16, "rank 4 ok");
    dx_table_free(&t);
}

static void test_growth(void) {
    dx_table t;
    dx_err err = {0};
    dx_table_init(&t);
    int64_t s[1] = {3};
    int ok = 1;
    for (int i = 0; i < 300; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "t%03d", i);
        ok &= dx_table_add(&t, nm, 1, s, 0, &err) == i;
    }
    for (int i = 0; i < 300; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "t%03d", i);
        ok &= dx_table_find(&t, nm) == i && t.t[i].offset == (size_t)i * DX_TABLE_ALIGN;
    }
    CHECK(ok && t.n == 300 && t.cap >= 300, "300 tensors across reallocations");
    CHECK(layout_ok(&t), "layout after growth");
    dx_table_free(&t);
}

static void test_append(void) {
    dx_table src, dst;
    dx_err err = {0};
    dx_table_init(&src);
    dx_table_init(&dst);
    int64_t a[2] = {3, 7}, b[1] = {40};
    dx_table_add(&src, "w", 2, a, 0, &err);
    dx_table_add(&src, "b", 1, b, DX_TF_NO_WD, &err);
    src.t[0].lr_mult = 0.2f;
    dx_table_add(&dst, "first", 1, b, 0, &err);
    size_t base = 12345;
    dx_status s = dx_table_append(&dst, &src, "teacher.", &base, &err);
    CHECK(s == DX_OK, "append: %s", err.msg);
    CHECK(base == 48, "base = previous total (%zu)", base);
    int iw = dx_table_find(&dst, "teacher.w"), ib = dx_table_find(&dst, "teacher.b");
    CHECK(iw == 1 && ib == 2, "prefixed names");
    if (iw == 1 && ib == 2) {
        CHECK(dst.t[iw].offset == base + src.t[0].offset && dst.t[ib].offset == base + src.t[1].offset,
              "offsets shifted by base");
        CHECK(dst.t[iw].lr_mult == 0.2f && dst.t[ib].wd_mult == 0.0f && dst.t[ib].flags == DX_TF_NO_WD,
              "multipliers and flags copied");
        CHECK(dst.t[iw].ndim == 2 && dst.t[iw].shape[1] == 7, "shape copied");
    }
    CHECK(dst.total == base + src.total, "total grows by src total");
    char longp[DX_NAME_MAX];
    memset(longp, 'p', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    CHECK(dx_table_append(&dst, &src, longp, &base, &err) == DX_EINVAL, "too-long prefixed name: %s", err.msg);
    CHECK(dx_table_append(&dst, &src, "teacher.", &base, &err) == DX_EINVAL, "duplicate append refused: %s", err.msg);
    dx_table_free(&src);
    dx_table_free(&dst);
}

static void test_shape_str(void) {
    char buf[64];
    int64_t s[4] = {384, 3, 16, 16};
    CHECK(strcmp(dx_shape_str(s, 4, buf, sizeof buf), "[384, 3, 16, 16]") == 0, "%s", buf);
    CHECK(strcmp(dx_shape_str(s, 1, buf, sizeof buf), "[384]") == 0, "%s", buf);
    CHECK(strcmp(dx_shape_str(s, 0, buf, sizeof buf), "[]") == 0, "%s", buf);
    int64_t big[2] = {INT64_MAX, -1};
    CHECK(strcmp(dx_shape_str(big, 2, buf, sizeof buf), "[9223372036854775807, -1]") == 0, "%s", buf);
    /* truncation: exact-size heap buffers so ASan catches any overrun */
    for (size_t len = 1; len < 20; len++) {
        char *b = malloc(len);
        dx_shape_str(s, 4, b, len);
        CHECK(strlen(b) < len && strncmp(b, "[384, 3, 16, 16]", strlen(b)) == 0, "len %zu: '%s'", len, b);
        free(b);
    }
}

/* ViT-S/16 as in dinov3-spec.md §11.2: 188 entries, 21,601,152 trainable parameters. */
static void test_vits16_count(void) {
    dx_table t;
    dx_err err = {0};
    dx_table_init(&t);
    const int64_t D = 384, F = 1536;
    int ok = 1;
#define ADD(name, flags, ...)                                                                          \
    do {                                                                                               \
        int64_t sh_[] = {__VA_ARGS__};                                                                 \
        ok &= dx_table_add(&t, name, (int)(sizeof sh_ / sizeof sh_[0]), sh_, flags, &err) >= 0;        \
    } while (0)
    ADD("cls_token", DX_TF_NO_WD, 1, 1, D);
    ADD("storage_tokens", DX_TF_NO_WD, 1, 4, D);
    ADD("mask_token", DX_TF_NO_WD, 1, D);
    ADD("patch_embed.proj.weight", 0, D, 3, 16, 16);
    ADD("patch_embed.proj.bias", DX_TF_NO_WD, D);
    ADD("rope_embed.periods", DX_TF_BUFFER, 16);
    for (int i = 0; i < 12; i++) {
        char n[DX_NAME_MAX];
#define BN(s) (snprintf(n, sizeof n, "blocks.%d." s, i), n)
        ADD(BN("norm1.weight"), DX_TF_NO_WD, D);
        ADD(BN("norm1.bias"), DX_TF_NO_WD, D);
        ADD(BN("attn.qkv.weight"), 0, 3 * D, D);
        ADD(BN("attn.qkv.bias"), DX_TF_NO_WD, 3 * D);
        ADD(BN("attn.qkv.bias_mask"), DX_TF_BUFFER, 3 * D);
        ADD(BN("attn.proj.weight"), 0, D, D);
        ADD(BN("attn.proj.bias"), DX_TF_NO_WD, D);
        ADD(BN("ls1.gamma"), DX_TF_NO_WD, D);
        ADD(BN("norm2.weight"), DX_TF_NO_WD, D);
        ADD(BN("norm2.bias"), DX_TF_NO_WD, D);
        ADD(BN("mlp.fc1.weight"), 0, F, D);
        ADD(BN("mlp.fc1.bias"), DX_TF_NO_WD, F);
        ADD(BN("mlp.fc2.weight"), 0, D, F);
        ADD(BN("mlp.fc2.bias"), DX_TF_NO_WD, D);
        ADD(BN("ls2.gamma"), DX_TF_NO_WD, D);
#undef BN
    }
    ADD("norm.weight", DX_TF_NO_WD, D);
    ADD("norm.bias", DX_TF_NO_WD, D);
#undef ADD
    CHECK(ok, "all adds: %s", err.msg);
    CHECK(t.n == 188, "188 entries, got %d", t.n);
    CHECK(dx_table_numel_trainable(&t) == 21601152, "trainable %zu, spec 21,601,152", dx_table_numel_trainable(&t));
    CHECK(layout_ok(&t), "ViT-S layout");
    dx_table_free(&t);
}

int main(void) {
    test_layout();
    test_flags_and_lookup();
    test_errors();
    test_growth();
    test_append();
    test_shape_str();
    test_vits16_count();
    return dx_test_summary();
}
