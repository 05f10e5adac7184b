/* tbevents.c - TFRecord framing + hand-encoded Event protobufs (see tbevents.h). */
#include "train/tbevents.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint32_t dx_crc32c(uint32_t crc, const void *data, size_t n) {
    /* table built on the stack per call: event records are small and rare */
    uint32_t t[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
        t[i] = c;
    }
    const uint8_t *p = data;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = t[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

uint32_t dx_tb_mask_crc(uint32_t c) { return ((c >> 15) | (c << 17)) + 0xa282ead8u; }

/* ---- protobuf encoding ------------------------------------------------------ */

typedef struct { uint8_t *p; size_t n, cap; int overflow; } pbuf;

static void put(pbuf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) { b->overflow = 1; return; }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

/* protobuf varint / little-endian bytes of v into t; returns the length
 * (shared by the fixed-buffer and the growable encoder) */
static int varint_bytes(uint64_t v, uint8_t t[10]) {
    int n = 0;
    do {
        t[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) t[n] |= 0x80;
        n++;
    } while (v);
    return n;
}

static void le_bytes(uint64_t v, int bytes, uint8_t t[8]) {
    for (int i = 0; i < bytes; i++) t[i] = (uint8_t)(v >> (8 * i));
}

static void put_varint(pbuf *b, uint64_t v) {
    uint8_t t[10];
    put(b, t, (size_t)varint_bytes(v, t));
}

static size_t varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) v >>= 7, n++;
    return n;
}

static void put_le(pbuf *b, uint64_t v, int bytes) {
    uint8_t t[8];
    le_bytes(v, bytes, t);
    put(b, t, (size_t)bytes);
}

size_t dx_tb_encode_event(uint8_t *buf, size_t cap, double wall_time, int64_t step, const char *file_version,
                          const char *const *tags, const float *values, int n) {
    pbuf b = {buf, 0, cap, 0};
    uint64_t bits;
    memcpy(&bits, &wall_time, 8);
    put_varint(&b, (1 << 3) | 1); /* wall_time: fixed64 */
    put_le(&b, bits, 8);
    put_varint(&b, (2 << 3) | 0); /* step: varint (two's complement for negatives) */
    put_varint(&b, (uint64_t)step);
    if (file_version) {
        size_t l = strlen(file_version);
        put_varint(&b, (3 << 3) | 2);
        put_varint(&b, l);
        put(&b, file_version, l);
    }
    if (n > 0) {
        /* Summary length = sum over values of (tag byte + len varint + Value bytes) */
        size_t sum_len = 0;
        for (int i = 0; i < n; i++) {
            size_t tl = strlen(tags[i]);
            size_t vl = 1 + varint_len(tl) + tl + 1 + 4;
            sum_len += 1 + varint_len(vl) + vl;
        }
        put_varint(&b, (5 << 3) | 2);
        put_varint(&b, sum_len);
        for (int i = 0; i < n; i++) {
            size_t tl = strlen(tags[i]);
            size_t vl = 1 + varint_len(tl) + tl + 1 + 4;
            put_varint(&b, (1 << 3) | 2); /* Summary.value */
            put_varint(&b, vl);
            put_varint(&b, (1 << 3) | 2); /* Value.tag */
            put_varint(&b, tl);
            put(&b, tags[i], tl);
            put_varint(&b, (2 << 3) | 5); /* Value.simple_value: fixed32 */
            uint32_t fb;
            memcpy(&fb, &values[i], 4);
            put_le(&b, fb, 4);
        }
    }
    return b.overflow ? 0 : b.n;
}

/* ---- file ------------------------------------------------------------------ */

static dx_status write_record(dx_tb_writer *w, const uint8_t *data, size_t n, dx_err *err) {
    uint8_t hdr[12];
    for (int i = 0; i < 8; i++) hdr[i] = (uint8_t)((uint64_t)n >> (8 * i));
    uint32_t hc = dx_tb_mask_crc(dx_crc32c(0, hdr, 8));
    for (int i = 0; i < 4; i++) hdr[8 + i] = (uint8_t)(hc >> (8 * i));
    uint32_t dc = dx_tb_mask_crc(dx_crc32c(0, data, n));
    uint8_t ft[4];
    for (int i = 0; i < 4; i++) ft[i] = (uint8_t)(dc >> (8 * i));
    if (fwrite(hdr, 1, 12, w->f) != 12 || fwrite(data, 1, n, w->f) != n || fwrite(ft, 1, 4, w->f) != 4)
        return dx_fail(err, DX_EIO, "write %s: %s", w->path, strerror(errno));
    return DX_OK;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

dx_status dx_tb_open(dx_tb_writer *w, const char *dir, dx_err *err) {
    char host[64] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    double t = now_s();
    snprintf(w->path, sizeof w->path, "%s/events.out.tfevents.%lld.%s.%d", dir, (long long)t, host, (int)getpid());
    w->f = fopen(w->path, "wb");
    if (!w->f) return dx_fail(err, DX_EIO, "create %s: %s", w->path, strerror(errno));
    uint8_t buf[128];
    size_t n = dx_tb_encode_event(buf, sizeof buf, t, 0, "brain.Event:2", NULL, NULL, 0);
    dx_status s = write_record(w, buf, n, err);
    if (!s) s = dx_tb_flush(w, err);
    if (s) dx_tb_close(w);
    return s;
}

dx_status dx_tb_scalars(dx_tb_writer *w, int64_t step, double wall_time, const char *const *tags,
                        const float *values, int n, dx_err *err) {
    if (!w->f) return dx_fail(err, DX_EINVAL, "tb writer is closed");
    const char **t = malloc(sizeof(char *) * (n + 1));
    float *v = malloc(sizeof(float) * (n + 1));
    size_t cap = 64;
    int m = 0;
    if (!t || !v) {
        free(t);
        free(v);
        return dx_fail(err, DX_ENOMEM, "tb: out of memory");
    }
    for (int i = 0; i < n; i++)
        if (isfinite(values[i])) {
            t[m] = tags[i], v[m] = values[i], m++;
            cap += strlen(tags[i]) + 32;
        }
    uint8_t *buf = malloc(cap);
    dx_status s = DX_OK;
    size_t len = buf ? dx_tb_encode_event(buf, cap, wall_time, step, NULL, t, v, m) : 0;
    if (!len) s = dx_fail(err, DX_ENOMEM, "tb: encoding failed");
    else s = write_record(w, buf, len, err);
    free(buf);
    free(t);
    free(v);
    return s;
}

/* ---- nested messages: text, images, hparams ------------------------------------
 * Built inside out in growable buffers (messages nest, and every length prefix
 * must be known before its message). Field numbers from tensorflow's
 * summary.proto / tensor.proto and tensorboard's hparams api.proto:
 *   Value          { tag = 1; Image image = 4; TensorProto tensor = 8; SummaryMetadata metadata = 9; }
 *   Image          { int32 height = 1; int32 width = 2; int32 colorspace = 3; bytes encoded_image_string = 4; }
 *   SummaryMetadata{ PluginData plugin_data = 1 { string plugin_name = 1; bytes content = 2; } }
 *   TensorProto    { DataType dtype = 1; TensorShapeProto tensor_shape = 2; repeated float float_val = 5;
 *                    repeated bytes string_val = 8; }      DT_FLOAT = 1, DT_STRING = 7
 *   HParamsPluginData { int32 version = 1; Experiment experiment = 2; SessionStartInfo session_start_info = 3; }
 *   Experiment     { repeated HParamInfo hparam_infos = 4 { string name = 1; };
 *                    repeated MetricInfo metric_infos = 5 { MetricName name = 1 { string tag = 2; } }; }
 *   SessionStartInfo { map<string, google.protobuf.Value> hparams = 1; double start_time_secs = 5; }
 *   google.protobuf.Value { double number_value = 2; string string_value = 3; bool bool_value = 4; } */

typedef struct { uint8_t *p; size_t n, cap; int oom; } dbuf;

static void d_put(dbuf *b, const void *d, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) { b->oom = 1; return; }
        b->p = q, b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void d_varint(dbuf *b, uint64_t v) {
    uint8_t t[10];
    d_put(b, t, (size_t)varint_bytes(v, t));
}

static void d_bytes(dbuf *b, int field, const void *d, size_t n) {
    d_varint(b, ((uint64_t)field << 3) | 2);
    d_varint(b, n);
    d_put(b, d, n);
}
static void d_str(dbuf *b, int field, const char *s) { d_bytes(b, field, s, strlen(s)); }
static void d_msg(dbuf *b, int field, dbuf *m) { /* appends and frees m */
    d_bytes(b, field, m->p, m->n);
    b->oom |= m->oom;
    free(m->p);
    *m = (dbuf){0};
}
static void d_int(dbuf *b, int field, uint64_t v) {
    d_varint(b, ((uint64_t)field << 3) | 0);
    d_varint(b, v);
}
static void d_double(dbuf *b, int field, double v) {
    uint64_t bits;
    memcpy(&bits, &v, 8);
    d_varint(b, ((uint64_t)field << 3) | 1);
    uint8_t t[8];
    le_bytes(bits, 8, t);
    d_put(b, t, 8);
}

static void plugin_metadata(dbuf *value, const char *plugin, const dbuf *content) {
    dbuf pd = {0}, md = {0};
    d_str(&pd, 1, plugin);
    d_bytes(&pd, 2, content ? content->p : NULL, content ? content->n : 0);
    d_msg(&md, 1, &pd);
    d_msg(value, 9, &md);
}

/* Wraps the Value messages into an Event at (step, wall) and writes it. */
static dx_status write_values(dx_tb_writer *w, int64_t step, double wall, dbuf *values, dx_err *err) {
    if (!w->f) { free(values->p); return dx_fail(err, DX_EINVAL, "tb writer is closed"); }
    dbuf ev = {0};
    d_double(&ev, 1, wall);
    d_int(&ev, 2, (uint64_t)step);
    d_msg(&ev, 5, values);
    dx_status s = ev.oom ? dx_fail(err, DX_ENOMEM, "tb: out of memory") : write_record(w, ev.p, ev.n, err);
    free(ev.p);
    return s;
}

dx_status dx_tb_text(dx_tb_writer *w, int64_t step, double wall_time, const char *tag, const char *markdown,
                     dx_err *err) {
    dbuf v = {0}, t = {0}, shape = {0}, sum = {0};
    d_str(&v, 1, tag);
    d_int(&t, 1, 7);        /* DT_STRING */
    d_msg(&t, 2, &shape);   /* scalar: no dims */
    d_str(&t, 8, markdown);
    d_msg(&v, 8, &t);
    plugin_metadata(&v, "text", NULL);
    d_msg(&sum, 1, &v);
    return write_values(w, step, wall_time, &sum, err);
}

dx_status dx_tb_image_png(dx_tb_writer *w, int64_t step, double wall_time, const char *tag, const void *png,
                          size_t n, int height, int width, dx_err *err) {
    dbuf v = {0}, im = {0}, sum = {0};
    d_str(&v, 1, tag);
    d_int(&im, 1, (uint64_t)height);
    d_int(&im, 2, (uint64_t)width);
    d_int(&im, 3, 3); /* RGB */
    d_bytes(&im, 4, png, n);
    d_msg(&v, 4, &im);
    d_msg(&sum, 1, &v);
    return write_values(w, step, wall_time, &sum, err);
}

/* one hparams Value: tag, plugin "hparams" with HParamsPluginData, and a
 * scalar float tensor 0 (TensorBoard's own writer attaches one too) */
static void hparams_value(dbuf *sum, const char *tag, dbuf *plugin_data) {
    dbuf v = {0}, t = {0}, shape = {0};
    d_str(&v, 1, tag);
    d_int(&t, 1, 1); /* DT_FLOAT */
    d_msg(&t, 2, &shape);
    float zero = 0;
    d_bytes(&t, 5, &zero, 4); /* packed repeated float */
    d_msg(&v, 8, &t);
    plugin_metadata(&v, "hparams", plugin_data);
    free(plugin_data->p);
    *plugin_data = (dbuf){0};
    d_msg(sum, 1, &v);
}

dx_status dx_tb_hparams(dx_tb_writer *w, double wall_time, const char *const *names, const char *const *values,
                        int n, const char *const *metric_tags, int n_metrics, dx_err *err) {
    dbuf sum = {0}, exp = {0}, pd = {0}, ssi = {0};
    /* the experiment: which hparams and metrics the dashboard shows */
    for (int i = 0; i < n; i++) {
        dbuf hi = {0};
        d_str(&hi, 1, names[i]);
        d_msg(&exp, 4, &hi);
    }
    for (int i = 0; i < n_metrics; i++) {
        dbuf mi = {0}, mn = {0};
        d_str(&mn, 2, metric_tags[i]);
        d_msg(&mi, 1, &mn);
        d_msg(&exp, 5, &mi);
    }
    d_int(&pd, 1, 0);
    d_msg(&pd, 2, &exp);
    hparams_value(&sum, "_hparams_/experiment", &pd);
    /* this run's values: numbers as numbers, true/false as booleans, the rest as text */
    for (int i = 0; i < n; i++) {
        dbuf entry = {0}, val = {0};
        char *end;
        double x = strtod(values[i], &end);
        if (!strcmp(values[i], "true") || !strcmp(values[i], "false")) d_int(&val, 4, values[i][0] == 't');
        else if (*values[i] && !*end && isfinite(x)) d_double(&val, 2, x);
        else d_str(&val, 3, values[i]);
        d_str(&entry, 1, names[i]);
        d_msg(&entry, 2, &val);
        d_msg(&ssi, 1, &entry);
    }
    d_double(&ssi, 5, wall_time);
    d_int(&pd, 1, 0);
    d_msg(&pd, 3, &ssi);
    hparams_value(&sum, "_hparams_/session_start_info", &pd);
    return write_values(w, 0, wall_time, &sum, err);
}

dx_status dx_tb_flush(dx_tb_writer *w, dx_err *err) {
    if (w->f && fflush(w->f) != 0) return dx_fail(err, DX_EIO, "flush %s: %s", w->path, strerror(errno));
    return DX_OK;
}

void dx_tb_close(dx_tb_writer *w) {
    if (w->f) fclose(w->f);
    w->f = NULL;
}
