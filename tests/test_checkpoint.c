#define _GNU_SOURCE
/* test_checkpoint.c - checkpoint files: round trip of tensors and state,
 * the file read back by an independent reader (Python json + zlib + numpy),
 * retention (last K + milestones), `latest` pointer, fallback past a corrupt,
 * truncated or missing newest file with a logged reason, and injected write
 * failures (ENOSPC / EIO part-way) that must leave the previous checkpoint,
 * `latest` and the directory exactly as they were; the save streamed through
 * a copy function in chunks (the trainer's) writes the same bytes, and the
 * load through one fills the same values. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dx_log.h"
#include "core/dx_table.h"
#include "dx_test.h"
#include "io/checkpoint.h"

static int exists(const char *dir, const char *name) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static int count_files(const char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
    FILE *f = popen(cmd, "r");
    int n = -1;
    if (fscanf(f, "%d", &n) != 1) n = -1;
    pclose(f);
    return n;
}

static void read_latest(const char *dir, char *buf, size_t n) {
    char p[512];
    snprintf(p, sizeof p, "%s/latest", dir);
    FILE *f = fopen(p, "r");
    buf[0] = 0;
    if (f) {
        if (!fgets(buf, (int)n, f)) buf[0] = 0;
        fclose(f);
    }
}

/* a write(2) that fails with `fail_errno` once `budget` bytes have gone out */
typedef struct { size_t budget; int fail_errno; } fail_cfg;
static ssize_t failing_write(int fd, const void *buf, size_t n, void *user) {
    fail_cfg *c = user;
    if (c->budget == 0) {
        errno = c->fail_errno;
        return -1;
    }
    size_t k = n < c->budget ? n : c->budget;
    ssize_t r = write(fd, buf, k);
    if (r > 0) c->budget -= (size_t)r;
    return r;
}

/* a dx_ckpt_copy_fn standing in for a backend's download/upload: counts the
 * calls and the largest copy, so the test sees the chunking */
typedef struct { int calls; size_t largest; } copy_log;
static void logged_copy(void *ctx, float *dst, const float *src, size_t n) {
    copy_log *l = ctx;
    l->calls++;
    if (n > l->largest) l->largest = n;
    memcpy(dst, src, n * sizeof(float));
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    *len = b && fread(b, 1, (size_t)n, f) == (size_t)n ? (size_t)n : 0;
    fclose(f);
    return b;
}

static void flip_byte(const char *path, long off) {
    int fd = open(path, O_RDWR);
    unsigned char b;
    if (pread(fd, &b, 1, off) == 1) {
        b ^= 0x5a;
        if (pwrite(fd, &b, 1, off) != 1) perror("pwrite");
    }
    close(fd);
}

int main(void) {
    char dir[] = "/tmp/dx_ckpt_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    dx_err e;
    dx_err_clear(&e);

    /* a small table standing in for the model */
    dx_table tab;
    dx_table_init(&tab);
    int64_t s1[2] = {3, 5}, s2[1] = {7}, s3[4] = {2, 3, 2, 2};
    dx_table_add(&tab, "blocks.0.attn.qkv.weight", 2, s1, 0, &e);
    dx_table_add(&tab, "norm.bias", 1, s2, 0, &e);
    dx_table_add(&tab, "patch_embed.proj.weight", 4, s3, 0, &e);
    float *w = calloc(tab.total, sizeof(float)), *m = calloc(tab.total, sizeof(float));

    char *log = NULL;
    size_t loglen = 0;
    FILE *logf = open_memstream(&log, &loglen);
    dx_log_set_stream(logf);

    dx_ckpt_policy pol = {.keep_last = 3, .milestone_every = 4};
    dx_ckpt_tensor ent[16];
    for (int step = 1; step <= 10; step++) {
        for (size_t i = 0; i < tab.total; i++) w[i] = step * 1000.0f + i, m[i] = -(float)i * step;
        int n = dx_ckpt_entries_from_table(ent, 16, "student", &tab, w);
        n += dx_ckpt_entries_from_table(ent + n, 16 - n, "adam_m", &tab, m);
        char state[128];
        snprintf(state, sizeof state, "{\"step\": %d, \"seed\": 42, \"gram_refreshes\": %d}", step, step / 3);
        CHECK(dx_ckpt_save(dir, step, state, ent, n, &pol, &e) == DX_OK, "save %d: %s", step, e.msg);
    }
    /* last 3 (8, 9, 10) + milestones 4, 8 */
    CHECK(exists(dir, "ckpt-0000000010.safetensors") && exists(dir, "ckpt-0000000009.safetensors") &&
              exists(dir, "ckpt-0000000008.safetensors") && exists(dir, "ckpt-0000000004.safetensors"),
          "kept files");
    CHECK(!exists(dir, "ckpt-0000000007.safetensors") && !exists(dir, "ckpt-0000000003.safetensors") &&
              !exists(dir, "ckpt-0000000001.safetensors"),
          "old files removed");
    CHECK(count_files(dir) == 5, "4 checkpoints + latest, no temp files (%d)", count_files(dir));
    char lt[128];
    read_latest(dir, lt, sizeof lt);
    CHECK(strcmp(lt, "ckpt-0000000010.safetensors\n") == 0, "latest -> %s", lt);

    /* round trip */
    dx_ckpt ck;
    CHECK(dx_ckpt_open_latest(&ck, dir, &e) == DX_OK, "open latest: %s", e.msg);
    CHECK(ck.step == 10 && ck.n == 6 && strstr(ck.state_json, "\"gram_refreshes\": 3"), "step/state %lld %s",
          (long long)ck.step, ck.state_json);
    float *w2 = calloc(tab.total, sizeof(float)), *m2 = calloc(tab.total, sizeof(float));
    CHECK(dx_ckpt_load_table(&ck, "student", &tab, w2, &e) == DX_OK && dx_ckpt_load_table(&ck, "adam_m", &tab, m2, &e) == DX_OK,
          "load tables: %s", e.msg);
    int same = 1;
    for (int t = 0; t < tab.n; t++)
        for (size_t i = 0; i < tab.t[t].numel; i++) {
            size_t k = tab.t[t].offset + i;
            same &= w2[k] == w[k] && m2[k] == m[k];
        }
    CHECK(same, "tensor values round trip");
    const dx_ckpt_tensor *q = dx_ckpt_find(&ck, "student.patch_embed.proj.weight");
    CHECK(q && q->ndim == 4 && q->shape[0] == 2 && q->shape[3] == 2, "shape kept");
    CHECK(dx_ckpt_load_table(&ck, "teacher", &tab, w2, &e) == DX_ENOTFOUND && strstr(e.msg, "teacher.blocks.0"),
          "missing prefix: %s", e.msg);
    dx_table other;
    dx_table_init(&other);
    int64_t bad_shape[2] = {5, 3};
    dx_table_add(&other, "blocks.0.attn.qkv.weight", 2, bad_shape, 0, &e);
    CHECK(dx_ckpt_load_table(&ck, "student", &other, w2, &e) == DX_ESHAPE && strstr(e.msg, "[3, 5]"),
          "shape mismatch: %s", e.msg);
    dx_table_free(&other);
    dx_ckpt_close(&ck);

    /* an independent reader: Python json + zlib.crc32 + numpy */
    if (system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") == 0) {
        char cmd[2048];
        snprintf(cmd, sizeof cmd,
                 "/usr/bin/python3 -c \"import json,struct,zlib,numpy as np; "
                 "b=open('%s/ckpt-0000000009.safetensors','rb').read(); n=struct.unpack('<Q',b[:8])[0]; "
                 "h=json.loads(b[8:8+n]); d=b[8+n:]; md=h['__metadata__']; "
                 "assert md['step']=='9' and json.loads(md['state'])['seed']==42; "
                 "assert int(md['crc32'],16)==zlib.crc32(d) and int(md['data_bytes'])==len(d); "
                 "e=h['student.norm.bias']; a=np.frombuffer(d[e['data_offsets'][0]:e['data_offsets'][1]],'<f4'); "
                 "assert e['dtype']=='F32' and e['shape']==[7]; "
                 "assert (a==9000+np.arange(%zu,%zu)).all(), a\"",
                 dir, tab.t[1].offset, tab.t[1].offset + 7);
        CHECK(system(cmd) == 0, "Python reads the checkpoint (header, CRC, values)");
    } else {
        CHECK(0, "Python reader check: /usr/bin/python3 cannot import numpy (apt-get install python3-numpy; "
                 "scripts/setup.sh does)");
    }

    /* injected write failures: ENOSPC part-way through the data, EIO in the header */
    char before[128];
    read_latest(dir, before, sizeof before);
    int files_before = count_files(dir);
    fail_cfg fc = {.budget = 300, .fail_errno = ENOSPC};
    dx_ckpt_policy fpol = {.keep_last = 3, .milestone_every = 4, .write_fn = failing_write, .write_user = &fc};
    int n = dx_ckpt_entries_from_table(ent, 16, "student", &tab, w);
    dx_status st = dx_ckpt_save(dir, 11, "{}", ent, n, &fpol, &e);
    CHECK(st == DX_EIO && strstr(e.msg, strerror(ENOSPC)) && strstr(e.msg, "previous checkpoint is intact") &&
              strstr(e.msg, "step 11"),
          "ENOSPC reported: %s", e.msg);
    fc = (fail_cfg){.budget = 4, .fail_errno = EIO};
    st = dx_ckpt_save(dir, 11, "{}", ent, n, &fpol, &e);
    CHECK(st == DX_EIO && strstr(e.msg, strerror(EIO)), "EIO reported: %s", e.msg);
    read_latest(dir, lt, sizeof lt);
    CHECK(strcmp(lt, before) == 0 && count_files(dir) == files_before && !exists(dir, "ckpt-0000000011.safetensors"),
          "failed saves change nothing (latest %s, %d files)", lt, count_files(dir));
    CHECK(dx_ckpt_open_latest(&ck, dir, &e) == DX_OK && ck.step == 10, "still loads step 10");
    dx_ckpt_close(&ck);
    /* a failure while writing `latest` leaves the new file but the old pointer */
    size_t ck_bytes = 0;
    {
        /* the exact size of the step-11 file: save it once elsewhere */
        char d3[] = "/tmp/dx_ckpt3_XXXXXX", p[512], cmd[256];
        struct stat sb;
        mkdtemp(d3);
        dx_ckpt_policy p3 = {.keep_last = 1};
        dx_ckpt_save(d3, 11, "{}", ent, n, &p3, &e);
        snprintf(p, sizeof p, "%s/ckpt-0000000011.safetensors", d3);
        stat(p, &sb);
        ck_bytes = (size_t)sb.st_size;
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", d3);
        if (system(cmd) != 0) perror("rm");
    }
    fc = (fail_cfg){.budget = ck_bytes + 5, .fail_errno = ENOSPC}; /* the file fits, `latest` does not */
    st = dx_ckpt_save(dir, 11, "{}", ent, n, &fpol, &e);
    read_latest(dir, lt, sizeof lt);
    CHECK(st == DX_EIO && strstr(e.msg, "'latest' not updated") && strcmp(lt, before) == 0,
          "latest write failure: %s / %s", e.msg, lt);
    unlink(strcat(strcpy((char[512]){0}, dir), "/ckpt-0000000011.safetensors"));

    /* corrupt newest -> fallback with a logged reason */
    char p10[512], p9[512];
    snprintf(p10, sizeof p10, "%s/ckpt-0000000010.safetensors", dir);
    snprintf(p9, sizeof p9, "%s/ckpt-0000000009.safetensors", dir);
    struct stat sb;
    stat(p10, &sb);
    flip_byte(p10, (long)sb.st_size - 10);
    fflush(logf);
    size_t mark = loglen;
    CHECK(dx_ckpt_open_latest(&ck, dir, &e) == DX_OK && ck.step == 9, "fallback to 9 (got %lld)", (long long)ck.step);
    dx_ckpt_close(&ck);
    fflush(logf);
    CHECK(loglen > mark && strstr(log + mark, "ckpt-0000000010") && strstr(log + mark, "CRC-32 mismatch"),
          "fallback reason logged: %s", log + mark);
    CHECK(dx_ckpt_open(&ck, p10, &e) == DX_EFORMAT && strstr(e.msg, "CRC"), "direct open of the corrupt file: %s", e.msg);

    /* truncated 9 -> 8; corrupt header JSON in 8 -> 4 */
    if (truncate(p9, 100) != 0) perror("truncate");
    CHECK(dx_ckpt_open_latest(&ck, dir, &e) == DX_OK && ck.step == 8, "fallback past truncated 9 (%lld)", (long long)ck.step);
    dx_ckpt_close(&ck);
    char p8[512];
    snprintf(p8, sizeof p8, "%s/ckpt-0000000008.safetensors", dir);
    flip_byte(p8, 9); /* inside the header: '{' -> garbage */
    CHECK(dx_ckpt_open_latest(&ck, dir, &e) == DX_OK && ck.step == 4, "fallback to milestone 4 (%lld)", (long long)ck.step);
    dx_ckpt_close(&ck);
    /* a file that grew (appended junk) is also rejected */
    {
        char p4[512];
        snprintf(p4, sizeof p4, "%s/ckpt-0000000004.safetensors", dir);
        FILE *f = fopen(p4, "ab");
        fputs("junk", f);
        fclose(f);
        CHECK(dx_ckpt_open(&ck, p4, &e) == DX_EFORMAT && strstr(e.msg, "size"), "appended junk: %s", e.msg);
        CHECK(dx_ckpt_open_latest(&ck, dir, &e) == DX_EFORMAT && strstr(e.msg, "no usable checkpoint"),
              "all bad: %s", e.msg);
    }

    /* `latest` naming a missing file, then an empty dir */
    char d2[] = "/tmp/dx_ckpt2_XXXXXX";
    mkdtemp(d2);
    CHECK(dx_ckpt_open_latest(&ck, d2, &e) == DX_ENOTFOUND, "empty dir: %s", e.msg);
    n = dx_ckpt_entries_from_table(ent, 16, "student", &tab, w);
    dx_ckpt_policy p1 = {.keep_last = 1};
    dx_ckpt_save(d2, 5, NULL, ent, n, &p1, &e);
    dx_ckpt_save(d2, 6, NULL, ent, n, &p1, &e);
    CHECK(count_files(d2) == 2, "keep_last 1: one file + latest");
    char pl[512];
    snprintf(pl, sizeof pl, "%s/latest", d2);
    FILE *lf = fopen(pl, "w");
    fputs("ckpt-0000000099.safetensors\n", lf);
    fclose(lf);
    CHECK(dx_ckpt_open_latest(&ck, d2, &e) == DX_OK && ck.step == 6 && strcmp(ck.state_json, "{}") == 0,
          "latest to a missing file: falls back to the scan");
    dx_ckpt_close(&ck);
    CHECK(dx_ckpt_save(d2, 7, NULL, ent, 0, &p1, &e) == DX_OK, "empty checkpoint (state only)");
    CHECK(dx_ckpt_open_latest(&ck, d2, &e) == DX_OK && ck.step == 7 && ck.n == 0, "state-only checkpoint loads");
    dx_ckpt_close(&ck);
    strcpy(ent[1].name, ent[0].name);
    CHECK(dx_ckpt_save(d2, 8, NULL, ent, 2, &p1, &e) == DX_EINVAL && strstr(e.msg, "duplicate"), "duplicate names");
    CHECK(dx_ckpt_save("/nonexistent/dir", 1, NULL, ent, 1, &p1, &e) == DX_EIO, "bad dir: %s", e.msg);

    /* a flipped byte in the metadata (the training state string, offset 100 as in
     * issue 13, a tensor name): the header CRC rejects the file and the
     * previous checkpoint is used */
    {
        const char *state = "{\"next_step\":12,\"adam_t\":12,\"gram_refreshes\":0}";
        n = dx_ckpt_entries_from_table(ent, 16, "student", &tab, w);
        CHECK(dx_ckpt_save(d2, 11, state, ent, n, &p1, &e) == DX_OK, "save 11");
        dx_ckpt_policy p2 = {.keep_last = 2};
        CHECK(dx_ckpt_save(d2, 12, state, ent, n, &p2, &e) == DX_OK, "save 12");
        char p12[512];
        snprintf(p12, sizeof p12, "%s/ckpt-0000000012.safetensors", d2);
        FILE *f = fopen(p12, "rb");
        char head[4096] = {0};
        size_t got = fread(head, 1, sizeof head - 1, f);
        fclose(f);
        const char *at_state = memmem(head, got, "next_step", 9), *at_name = memmem(head, got, "student.", 8);
        CHECK(at_state && at_name, "found the state and a tensor name in the header");
        long offs[3] = {100, at_state ? (long)(at_state - head) + 2 : 100, at_name ? (long)(at_name - head) + 9 : 100};
        for (int k = 0; k < 3; k++) {
            flip_byte(p12, offs[k]);
            CHECK(dx_ckpt_open(&ck, p12, &e) == DX_EFORMAT && strstr(e.msg, "header CRC"),
                  "metadata byte %ld flipped: rejected (%s)", offs[k], e.msg);
            CHECK(dx_ckpt_open_latest(&ck, d2, &e) == DX_OK && ck.step == 11 && strcmp(ck.state_json, state) == 0,
                  "metadata byte %ld flipped: falls back to step 11 (got %lld)", offs[k], (long long)ck.step);
            dx_ckpt_close(&ck);
            flip_byte(p12, offs[k]); /* restore: XOR again */
            CHECK(dx_ckpt_open(&ck, p12, &e) == DX_OK, "restored file loads again: %s", e.msg);
            dx_ckpt_close(&ck);
        }
    }

    /* streamed through a copy function (the trainer's path: state in backend memory): a tensor of
     * 2.25 chunks and a small one give the same bytes as the save from host memory, through copies
     * of at most one chunk; an injected ENOSPC part-way leaves no file; loading through a put
     * function fills the same values */
    {
        char d3[] = "/tmp/dx_ckpt3_XXXXXX";
        CHECK(mkdtemp(d3) != NULL, "mkdtemp");
        dx_table big;
        dx_table_init(&big);
        const size_t per = DX_CKPT_CHUNK_BYTES / sizeof(float);
        int64_t sb1[2] = {(int64_t)(per / 4), 9}, sb2[1] = {5};
        dx_table_add(&big, "blocks.0.mlp.fc1.weight", 2, sb1, 0, &e);
        dx_table_add(&big, "norm.weight", 1, sb2, 0, &e);
        float *src = malloc(big.total * sizeof(float)), *back = calloc(big.total, sizeof(float));
        for (size_t i = 0; i < big.total; i++) src[i] = (float)i * 0.25f - 7.0f;
        dx_ckpt_tensor te[4];
        dx_ckpt_policy p1 = {.keep_last = 5};
        char ha[600], hb[600];
        snprintf(ha, sizeof ha, "%s/ckpt-0000000001.safetensors", d3);
        snprintf(hb, sizeof hb, "%s/ckpt-0000000002.safetensors", d3);
        int nt = dx_ckpt_entries_from_table(te, 4, "student", &big, src);
        CHECK(dx_ckpt_save(d3, 1, "{\"k\":1}", te, nt, &p1, &e) == DX_OK, "host save: %s", e.msg);
        copy_log lg = {0};
        nt = dx_ckpt_entries_from_table_read(te, 4, "student", &big, src, logged_copy, &lg);
        CHECK(dx_ckpt_save(d3, 2, "{\"k\":1}", te, nt, &p1, &e) == DX_OK, "streamed save: %s", e.msg);
        size_t la = 0, lb = 0;
        char *fa = slurp(ha, &la), *fb = slurp(hb, &lb);
        /* the files differ only in the step (metadata and its header CRC): compare with step 2's renamed */
        CHECK(fa && fb && la == lb && la > big.total * sizeof(float), "same size (%zu, %zu bytes)", la, lb);
        size_t hdr = 0;
        if (fa && la >= 8) memcpy(&hdr, fa, 8);
        CHECK(fa && fb && la == lb && hdr + 8 <= la && memcmp(fa + 8 + hdr, fb + 8 + hdr, la - 8 - hdr) == 0,
              "the streamed data section is byte-identical to the host save's (%zu bytes)", la - 8 - hdr);
        /* 2 passes (CRC, write) over 3 chunks of the big tensor and 1 of the small */
        CHECK(lg.calls == 8 && lg.largest == per, "read in %d copies of at most %zu floats (chunk %zu)", lg.calls,
              lg.largest, per);
        free(fa), free(fb);
        dx_ckpt ck3;
        copy_log lp = {0};
        dx_err_clear(&e);
        int same = dx_ckpt_open(&ck3, hb, &e) == DX_OK &&
                   dx_ckpt_load_table_via(&ck3, "student", &big, back, logged_copy, &lp, &e) == DX_OK;
        for (int i = 0; i < big.n && same; i++) /* the tensors (not the table's alignment gaps) */
            same = memcmp(back + big.t[i].offset, src + big.t[i].offset, big.t[i].numel * sizeof(float)) == 0;
        CHECK(same && lp.calls == 2, "the streamed checkpoint loads through a put function (%d copies): %s",
              lp.calls, e.msg);
        dx_ckpt_close(&ck3);
        fail_cfg f3 = {.budget = DX_CKPT_CHUNK_BYTES + 4096, .fail_errno = ENOSPC};
        dx_ckpt_policy p3 = {.keep_last = 5, .write_fn = failing_write, .write_user = &f3};
        dx_status s3 = dx_ckpt_save(d3, 3, "{}", te, nt, &p3, &e);
        char lt3[128];
        read_latest(d3, lt3, sizeof lt3);
        CHECK(s3 == DX_EIO && strstr(e.msg, "previous checkpoint is intact") && count_files(d3) == 3 &&
                  strcmp(lt3, "ckpt-0000000002.safetensors\n") == 0,
              "ENOSPC part-way through a streamed save: %s; %d files, latest %s", e.msg, count_files(d3), lt3);
        free(src), free(back);
        dx_table_free(&big);
        char rm3[128];
        snprintf(rm3, sizeof rm3, "rm -rf '%s'", d3);
        CHECK(system(rm3) == 0, "cleanup 3");
    }

    /* when a save is due */
    CHECK(dx_ckpt_due(99, 300, 100, 0, 0, 0) && !dx_ckpt_due(98, 300, 100, 0, 0, 0), "every 100 steps");
    CHECK(dx_ckpt_due(299, 300, 0, 0, 0, 0), "last step always");
    CHECK(dx_ckpt_due(5, 300, 0, 30, 1000 + 1800, 1000) && !dx_ckpt_due(5, 300, 0, 30, 1000 + 1799, 1000),
          "every 30 minutes");
    CHECK(!dx_ckpt_due(5, 300, 0, 0, 1e9, 0), "both off");

    dx_log_set_stream(stderr);
    fclose(logf);
    free(log);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", dir, d2);
    CHECK(system(cmd) == 0, "cleanup");
    free(w), free(m), free(w2), free(m2);
    dx_table_free(&tab);
    return dx_test_summary();
}
