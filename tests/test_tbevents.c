/* test_tbevents.c - TensorBoard event encoding (CRC32C against published
 * vectors, exact Event bytes, records re-read and CRC-checked), the run
 * directory (config.yaml reloads identically, metrics.jsonl parsed back with
 * cJSON, resume appends) and the progress line. With DX_TB_OUT=DIR it also
 * writes a known event file there for tests/test_tbevents_py.sh, which checks it
 * with an independent Python reader. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dx_test.h"
#include "train/config.h"
#include "train/rundir.h"
#include "train/tbevents.h"

static unsigned char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(len + 1);
    *n = fread(b, 1, len, f);
    b[*n] = 0;
    fclose(f);
    return b;
}

static uint32_t le32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

/* Counts records of an event file, checking both CRCs of each; -1 on damage. */
static int count_records(const char *path) {
    size_t n, o = 0;
    unsigned char *b = read_file(path, &n);
    if (!b) return -1;
    int k = 0;
    while (o < n) {
        if (o + 12 > n) { k = -1; break; }
        uint64_t len = 0;
        for (int i = 0; i < 8; i++) len |= (uint64_t)b[o + i] << (8 * i);
        if (le32(b + o + 8) != dx_tb_mask_crc(dx_crc32c(0, b + o, 8)) || o + 12 + len + 4 > n) { k = -1; break; }
        if (le32(b + o + 12 + len) != dx_tb_mask_crc(dx_crc32c(0, b + o + 12, len))) { k = -1; break; }
        o += 12 + len + 4;
        k++;
    }
    free(b);
    return k;
}

static void write_known(const char *dir) {
    dx_tb_writer w;
    dx_err e;
    if (dx_tb_open(&w, dir, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return;
    }
    for (int s = 0; s < 10; s++) {
        const char *tags[3] = {"loss/total", "lr", "bad"};
        float v[3] = {1.0f / (s + 1), s * 1e-4f, NAN};
        dx_tb_scalars(&w, s * 10, 1.7e9 + s, tags, v, 3, &e);
    }
    dx_tb_close(&w);
}

int main(void) {
    if (getenv("DX_TB_OUT")) {
        write_known(getenv("DX_TB_OUT"));
        return 0;
    }
    /* CRC-32C check values (RFC 3720 B.4 and the common "123456789") */
    CHECK(dx_crc32c(0, "123456789", 9) == 0xE3069283u, "crc32c check value");
    unsigned char z[32], ff[32];
    memset(z, 0, 32), memset(ff, 0xff, 32);
    CHECK(dx_crc32c(0, z, 32) == 0x8A9136AAu, "crc32c 32 zeros %08x", dx_crc32c(0, z, 32));
    CHECK(dx_crc32c(0, ff, 32) == 0x62A8AB43u, "crc32c 32 ones %08x", dx_crc32c(0, ff, 32));
    CHECK(dx_crc32c(dx_crc32c(0, "1234", 4), "56789", 5) == 0xE3069283u, "crc32c incremental");

    /* exact Event bytes */
    uint8_t buf[256];
    size_t n = dx_tb_encode_event(buf, sizeof buf, 1.0, 5, NULL, NULL, NULL, 0);
    const uint8_t want0[] = {0x09, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F, 0x10, 0x05};
    CHECK(n == sizeof want0 && !memcmp(buf, want0, n), "Event{wall_time 1, step 5} bytes");
    const char *tag[1] = {"a"};
    float val[1] = {2.0f};
    n = dx_tb_encode_event(buf, sizeof buf, 0.0, 300, NULL, tag, val, 1);
    /* step 300 = varint ac 02; summary (2a 0a) { value (0a 08) { tag (0a 01 'a') simple_value (15 00 00 00 40) } } */
    const uint8_t want1[] = {0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0xac, 0x02, 0x2a, 0x0a, 0x0a, 0x08,
                             0x0a, 0x01, 'a', 0x15, 0x00, 0x00, 0x00, 0x40};
    CHECK(n == sizeof want1 && !memcmp(buf, want1, n), "Event with one scalar: bytes (n=%zu)", n);
    CHECK(dx_tb_encode_event(buf, 10, 0.0, 300, NULL, tag, val, 1) == 0, "overflow reported");

    /* run directory */
    char dir[] = "/tmp/dx_rundir_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char run[256], path[512];
    snprintf(run, sizeof run, "%s/a/b/run1", dir);
    dx_config cfg, back;
    dx_err e;
    const char *ov[] = {"optim.lr=3e-4", "train.batch_size=7"};
    dx_config_resolve(&cfg, NULL, ov, 2, &e);
    dx_rundir rd;
    CHECK(dx_rundir_open(&rd, run, &cfg, 0, &e) == DX_OK, "rundir open: %s", e.msg);
    snprintf(path, sizeof path, "%s/config.yaml", run);
    CHECK(dx_config_resolve(&back, path, NULL, 0, &e) == DX_OK && back.optim.lr == 3e-4f && back.train.batch_size == 7,
          "config.yaml reloads: %s", e.msg);
    snprintf(path, sizeof path, "%s/checkpoints", run);
    CHECK(access(path, W_OK) == 0, "checkpoints dir");
    for (int s = 0; s < 3; s++) {
        dx_metric m[4] = {{"loss/total", 10.0 - s}, {"loss/dino", 0.5 * s}, {"lr", 1e-4 * s}, {"grad_norm", s == 1 ? NAN : 2.0}};
        CHECK(dx_rundir_log(&rd, s * 10, m, 4, &e) == DX_OK, "log: %s", e.msg);
    }
    char tbpath[1024];
    snprintf(tbpath, sizeof tbpath, "%s", rd.tb.path);
    dx_rundir_close(&rd);
    /* version, the run's hparams and config text (a new run), 3 scalar records */
    CHECK(count_records(tbpath) == 6, "event file: version + hparams + config + 3 records, CRCs valid (%d)",
          count_records(tbpath));

    snprintf(path, sizeof path, "%s/metrics.jsonl", run);
    size_t len;
    char *txt = (char *)read_file(path, &len);
    int lines = 0, ok = 1;
    for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        cJSON *j = cJSON_Parse(line);
        if (!j) { ok = 0; continue; }
        ok &= cJSON_GetObjectItem(j, "step")->valuedouble == lines * 10;
        ok &= fabs(cJSON_GetObjectItem(j, "loss/total")->valuedouble - (10.0 - lines)) < 1e-9;
        ok &= fabs(cJSON_GetObjectItem(j, "lr")->valuedouble - 1e-4 * lines) < 1e-12;
        ok &= cJSON_GetObjectItem(j, "time")->valuedouble > 1.6e9;
        ok &= cJSON_GetObjectItem(j, "mem/rss_mb")->valuedouble > 0.1;
        cJSON *rf = cJSON_GetObjectItem(j, "mem/rss_file_mb");
        ok &= rf && rf->valuedouble > 0 && rf->valuedouble <= cJSON_GetObjectItem(j, "mem/rss_mb")->valuedouble;
        cJSON *g = cJSON_GetObjectItem(j, "grad_norm");
        ok &= lines == 1 ? cJSON_IsNull(g) : (g && g->valuedouble == 2.0);
        cJSON_Delete(j);
    }
    free(txt);
    CHECK(lines == 3 && ok, "metrics.jsonl: 3 valid lines with the logged values, NaN as null");

    /* resume: appends, keeps config.yaml, records a changed config */
    const char *ov2[] = {"optim.lr=1e-4"};
    dx_config_resolve(&cfg, NULL, ov2, 1, &e);
    CHECK(dx_rundir_open(&rd, run, &cfg, 1, &e) == DX_OK, "resume open: %s", e.msg);
    dx_metric m1 = {"loss/total", 1.5};
    dx_rundir_log(&rd, 30, &m1, 1, &e);
    snprintf(tbpath, sizeof tbpath, "%s", rd.tb.path);
    dx_rundir_close(&rd);
    CHECK(count_records(tbpath) == 2, "resumed event file: version + 1 record, no second hparams/config (%d)",
          count_records(tbpath));
    txt = (char *)read_file(path, &len);
    lines = 0;
    for (char *p = txt; *p; p++) lines += *p == '\n';
    CHECK(lines == 4 && strstr(txt, "\"step\": 30"), "resume appends to metrics.jsonl");
    free(txt);
    snprintf(path, sizeof path, "%s/config.yaml", run);
    dx_config_resolve(&back, path, NULL, 0, &e);
    CHECK(back.optim.lr == 3e-4f, "original config.yaml kept on resume");
    snprintf(path, sizeof path, "%s/config.resume.yaml", run);
    dx_config_resolve(&back, path, NULL, 0, &e);
    CHECK(back.optim.lr == 1e-4f, "changed config recorded as config.resume.yaml");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
    snprintf(path, sizeof path, "/proc/self/statm/x");
    CHECK(dx_rundir_open(&rd, path, NULL, 0, &e) == DX_EIO, "unwritable run dir is an error: %s", e.msg);

    /* progress line */
    dx_metric terms[2] = {{"loss", 8.12345}, {"dino", 4.1}};
    dx_progress p = {.step = 119, .total = 300, .elapsed_s = 60, .start_step = 0, .img_per_s = 58.1,
                     .lr = 2.3e-4, .terms = terms, .n_terms = 2, .rss_bytes = (size_t)412000000};
    char line[512];
    dx_progress_format(line, sizeof line, &p);
    CHECK(strcmp(line, "step 119 (120/300 done, 40.0%) | loss 8.123 dino 4.1 | lr 2.30e-04 | 58.1 img/s | ETA 0:01:30 | "
                       "RSS 412 MB") == 0,
          "progress: %s", line);
    p.start_step = 100; /* resumed at 100: 20 steps in 60 s -> 180 steps left = 9 min */
    dx_progress_format(line, sizeof line, &p);
    CHECK(strstr(line, "ETA 0:09:00") != NULL, "ETA after resume: %s", line);
    p.stop_at = 160; /* --stop-at 160: 40 steps left at 3 s each */
    dx_progress_format(line, sizeof line, &p);
    CHECK(strstr(line, "ETA 0:02:00 to step 160 (--stop-at)") != NULL, "ETA with --stop-at: %s", line);
    p.stop_at = 400; /* beyond the run: the run's end counts */
    dx_progress_format(line, sizeof line, &p);
    CHECK(strstr(line, "| ETA 0:09:00 |") != NULL, "ETA with --stop-at past the end: %s", line);
    CHECK(dx_rss_bytes() > 100000, "RSS from /proc/self/statm: %zu", dx_rss_bytes());
    CHECK(dx_rss_file_bytes() > 0 && dx_rss_file_bytes() <= dx_rss_bytes(), "file-backed RSS %zu of %zu",
          dx_rss_file_bytes(), dx_rss_bytes());
    /* a run whose RSS is mostly the mapped store says so; a small file part is not mentioned (above) */
    p.stop_at = 0, p.rss_bytes = (size_t)14600000000, p.rss_file_bytes = (size_t)13900000000;
    dx_progress_format(line, sizeof line, &p);
    CHECK(strstr(line, "| RSS 14600 MB (13900 MB of it mapped files)") != NULL, "mapped store in the RSS: %s", line);
    p.rss_file_bytes = (size_t)90000000;
    dx_progress_format(line, sizeof line, &p);
    CHECK(strstr(line, "mapped") == NULL, "a small file part is not mentioned: %s", line);
    return dx_test_summary();
}
