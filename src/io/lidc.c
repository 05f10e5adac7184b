/* lidc.c - LIDC LidcReadMessage XML -> dx_lidc_read (see lidc.h).
 *
 * libxml2 builds the tree (no network, no entity expansion); we walk it
 * matching local names without case, so namespaces and the Uid/UID spelling
 * variants do not matter. Anything unknown is ignored: the schema has grown
 * fields over the years and we only need the ones in lidc.h. */
#include "io/lidc.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

const char *const dx_lidc_char_names[DX_LIDC_NCHARS] = {
    "subtlety", "internalStructure", "calcification", "sphericity", "margin",
    "lobulation", "spiculation", "texture", "malignancy"};

/* Coordinates beyond this are not pixels of any CT image; reject early so the
 * rasteriser never does arithmetic near INT_MAX. */
#define LIDC_COORD_MAX 1000000

static int is_elem(const xmlNode *n, const char *name) {
    return n && n->type == XML_ELEMENT_NODE && n->name && !strcasecmp((const char *)n->name, name);
}

/* Trimmed text content of an element into buf (truncated to len-1). */
static void elem_text(const xmlNode *n, char *buf, size_t len) {
    buf[0] = 0;
    xmlChar *t = xmlNodeGetContent(n);
    if (!t) return;
    const char *s = (const char *)t;
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    size_t l = strlen(s);
    while (l && (s[l - 1] == ' ' || s[l - 1] == '\t' || s[l - 1] == '\n' || s[l - 1] == '\r')) l--;
    if (l >= len) l = len - 1;
    memcpy(buf, s, l);
    buf[l] = 0;
    xmlFree(t);
}

static dx_status elem_long(const xmlNode *n, long lo, long hi, long *out, int *present, dx_err *err) {
    char buf[64];
    elem_text(n, buf, sizeof buf);
    *present = 0;
    *out = 0;
    if (!buf[0]) return DX_OK;
    char *end;
    errno = 0;
    long v = strtol(buf, &end, 10);
    /* some exporters write "3.0"; accept an all-zero fraction */
    if (*end == '.') {
        char *p = end + 1;
        while (*p == '0') p++;
        if (!*p) end = p;
    }
    if (errno || *end || v < lo || v > hi)
        return dx_fail(err, DX_EFORMAT, "line %d: <%s> value '%s' is not an integer in [%ld,%ld]",
                       (int)xmlGetLineNo(n), (const char *)n->name, buf, lo, hi);
    *out = v;
    *present = 1;
    return DX_OK;
}

static dx_status elem_double(const xmlNode *n, double *out, dx_err *err) {
    char buf[64];
    elem_text(n, buf, sizeof buf);
    *out = NAN;
    if (!buf[0]) return DX_OK;
    char *end;
    double v = strtod(buf, &end);
    if (*end || !isfinite(v))
        return dx_fail(err, DX_EFORMAT, "line %d: <%s> value '%s' is not a number", (int)xmlGetLineNo(n),
                       (const char *)n->name, buf);
    *out = v;
    return DX_OK;
}

/* Grows *arr (of *n items of size sz) by one zeroed item; returns it or NULL. */
static void *push(void **arr, int *n, int *cap, size_t sz) {
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 4;
        void *p = realloc(*arr, (size_t)nc * sz);
        if (!p) return NULL;
        *arr = p;
        *cap = nc;
    }
    void *it = (char *)*arr + (size_t)(*n) * sz;
    memset(it, 0, sz);
    (*n)++;
    return it;
}

static dx_status parse_point(const xmlNode *n, dx_lidc_pt *p, dx_err *err) {
    int hx = 0, hy = 0, pr;
    long v;
    for (const xmlNode *c = n->children; c; c = c->next) {
        if (is_elem(c, "xCoord")) {
            if (elem_long(c, -LIDC_COORD_MAX, LIDC_COORD_MAX, &v, &pr, err)) return err ? err->code : DX_EFORMAT;
            p->x = (int)v;
            hx = pr;
        } else if (is_elem(c, "yCoord")) {
            if (elem_long(c, -LIDC_COORD_MAX, LIDC_COORD_MAX, &v, &pr, err)) return err ? err->code : DX_EFORMAT;
            p->y = (int)v;
            hy = pr;
        }
    }
    if (!hx || !hy)
        return dx_fail(err, DX_EFORMAT, "line %d: <%s> without xCoord/yCoord", (int)xmlGetLineNo(n),
                       (const char *)n->name);
    return DX_OK;
}

static dx_status parse_roi(const xmlNode *n, dx_lidc_roi *r, dx_err *err) {
    int cap = 0;
    r->z = NAN;
    r->inclusion = 1; /* absent inclusion: the region itself (the common case) */
    for (const xmlNode *c = n->children; c; c = c->next) {
        if (is_elem(c, "imageZposition")) {
            if (elem_double(c, &r->z, err)) return err ? err->code : DX_EFORMAT;
        } else if (is_elem(c, "imageSOP_UID")) {
            elem_text(c, r->sop_uid, sizeof r->sop_uid);
        } else if (is_elem(c, "inclusion")) {
            char b[16];
            elem_text(c, b, sizeof b);
            if (!strcasecmp(b, "TRUE") || !strcmp(b, "1")) r->inclusion = 1;
            else if (!strcasecmp(b, "FALSE") || !strcmp(b, "0")) r->inclusion = 0;
            else return dx_fail(err, DX_EFORMAT, "line %d: <inclusion> '%s' is not TRUE/FALSE", (int)xmlGetLineNo(c), b);
        } else if (is_elem(c, "edgeMap")) {
            dx_lidc_pt *p = push((void **)&r->pts, &r->npts, &cap, sizeof *p);
            if (!p) return dx_fail(err, DX_ENOMEM, "edgeMap points");
            if (parse_point(c, p, err)) return err ? err->code : DX_EFORMAT;
        }
    }
    return DX_OK;
}

static dx_status parse_nodule(const xmlNode *n, dx_lidc_nodule *nod, dx_err *err) {
    int cap = 0;
    for (const xmlNode *c = n->children; c; c = c->next) {
        if (is_elem(c, "noduleID")) {
            elem_text(c, nod->id, sizeof nod->id);
        } else if (is_elem(c, "characteristics")) {
            for (const xmlNode *k = c->children; k; k = k->next) {
                if (k->type != XML_ELEMENT_NODE) continue;
                for (int i = 0; i < DX_LIDC_NCHARS; i++) {
                    if (!is_elem(k, dx_lidc_char_names[i])) continue;
                    long v;
                    int pr;
                    if (elem_long(k, 0, 6, &v, &pr, err)) return err ? err->code : DX_EFORMAT;
                    nod->chars[i] = (int)v;
                    if (v) nod->has_chars = 1;
                }
            }
        } else if (is_elem(c, "roi")) {
            dx_lidc_roi *r = push((void **)&nod->rois, &nod->nroi, &cap, sizeof *r);
            if (!r) return dx_fail(err, DX_ENOMEM, "roi");
            if (parse_roi(c, r, err)) return err ? err->code : DX_EFORMAT;
        }
    }
    return DX_OK;
}

static dx_status parse_nonnodule(const xmlNode *n, dx_lidc_nonnodule *nn, dx_err *err) {
    int has_locus = 0;
    nn->z = NAN;
    for (const xmlNode *c = n->children; c; c = c->next) {
        if (is_elem(c, "nonNoduleID")) elem_text(c, nn->id, sizeof nn->id);
        else if (is_elem(c, "imageSOP_UID")) elem_text(c, nn->sop_uid, sizeof nn->sop_uid);
        else if (is_elem(c, "imageZposition")) {
            if (elem_double(c, &nn->z, err)) return err ? err->code : DX_EFORMAT;
        } else if (is_elem(c, "locus")) {
            if (parse_point(c, &nn->locus, err)) return err ? err->code : DX_EFORMAT;
            has_locus = 1;
        }
    }
    if (!has_locus) return dx_fail(err, DX_EFORMAT, "line %d: <nonNodule> without <locus>", (int)xmlGetLineNo(n));
    return DX_OK;
}

static dx_status parse_session(const xmlNode *n, dx_lidc_session *s, dx_err *err) {
    int cap_nod = 0, cap_non = 0;
    for (const xmlNode *c = n->children; c; c = c->next) {
        if (is_elem(c, "servicingRadiologistID")) {
            elem_text(c, s->reader_id, sizeof s->reader_id);
        } else if (is_elem(c, "unblindedReadNodule")) {
            dx_lidc_nodule *nod = push((void **)&s->nodules, &s->nnod, &cap_nod, sizeof *nod);
            if (!nod) return dx_fail(err, DX_ENOMEM, "unblindedReadNodule");
            if (parse_nodule(c, nod, err)) return err ? err->code : DX_EFORMAT;
        } else if (is_elem(c, "nonNodule")) {
            dx_lidc_nonnodule *nn = push((void **)&s->nonnodules, &s->nnon, &cap_non, sizeof *nn);
            if (!nn) return dx_fail(err, DX_ENOMEM, "nonNodule");
            if (parse_nonnodule(c, nn, err)) return err ? err->code : DX_EFORMAT;
        }
    }
    return DX_OK;
}

static dx_status parse_doc(dx_lidc_read *out, xmlDoc *doc, dx_err *err) {
    const xmlNode *root = xmlDocGetRootElement(doc);
    if (!root) return dx_fail(err, DX_EFORMAT, "empty XML document");
    if (is_elem(root, "IdriReadMessage"))
        return dx_fail(err, DX_EUNSUPPORTED, "chest radiograph read (IdriReadMessage), not a CT read");
    if (!is_elem(root, "LidcReadMessage"))
        return dx_fail(err, DX_EFORMAT, "root element <%s> is not LidcReadMessage", (const char *)root->name);
    int cap = 0;
    for (const xmlNode *c = root->children; c; c = c->next) {
        if (is_elem(c, "ResponseHeader")) {
            for (const xmlNode *h = c->children; h; h = h->next) {
                if (is_elem(h, "SeriesInstanceUid")) elem_text(h, out->series_uid, sizeof out->series_uid);
                else if (is_elem(h, "StudyInstanceUID")) elem_text(h, out->study_uid, sizeof out->study_uid);
            }
        } else if (is_elem(c, "readingSession")) {
            dx_lidc_session *s = push((void **)&out->sessions, &out->nsess, &cap, sizeof *s);
            if (!s) return dx_fail(err, DX_ENOMEM, "readingSession");
            if (parse_session(c, s, err)) return err ? err->code : DX_EFORMAT;
        }
    }
    if (!out->series_uid[0]) return dx_fail(err, DX_EFORMAT, "ResponseHeader has no SeriesInstanceUid");
    return DX_OK;
}

dx_status dx_lidc_parse_memory(dx_lidc_read *out, const char *buf, size_t len, dx_err *err) {
    memset(out, 0, sizeof *out);
    if (len > (size_t)1 << 30) return dx_fail(err, DX_ENOMEM, "XML of %zu bytes is too large", len);
    /* NONET: never fetch the xsi:schemaLocation; no NOENT: entities stay
     * unexpanded (no XXE). HUGE is off, so libxml2's depth/size caps apply. */
    xmlDoc *doc = xmlReadMemory(buf, (int)len, "lidc.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) {
        const xmlError *e = xmlGetLastError();
        return dx_fail(err, DX_EFORMAT, "not well-formed XML%s%s (line %d)", e && e->message ? ": " : "",
                       e && e->message ? e->message : "", e ? e->line : 0);
    }
    dx_status st = parse_doc(out, doc, err);
    xmlFreeDoc(doc);
    if (st) dx_lidc_read_free(out);
    /* strip the newline libxml2 puts at the end of its messages */
    if (st && err) {
        size_t l = strlen(err->msg);
        while (l && err->msg[l - 1] == '\n') err->msg[--l] = 0;
    }
    return st;
}

dx_status dx_lidc_parse_file(dx_lidc_read *out, const char *path, dx_err *err) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return dx_fail(err, DX_EIO, "open %s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 65536;
            char *p = realloc(buf, cap);
            if (!p) {
                free(buf);
                fclose(f);
                return dx_fail(err, DX_ENOMEM, "reading %s", path);
            }
            buf = p;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return dx_fail(err, DX_EIO, "read %s", path);
    }
    dx_status st = dx_lidc_parse_memory(out, buf, len, err);
    free(buf);
    if (st) return dx_fail_prefix(err, "%s", path);
    return DX_OK;
}

static void session_free(dx_lidc_session *s) {
    for (int i = 0; i < s->nnod; i++) {
        for (int j = 0; j < s->nodules[i].nroi; j++) free(s->nodules[i].rois[j].pts);
        free(s->nodules[i].rois);
    }
    free(s->nodules);
    free(s->nonnodules);
}

void dx_lidc_read_free(dx_lidc_read *r) {
    if (!r) return;
    for (int i = 0; i < r->nsess; i++) session_free(&r->sessions[i]);
    free(r->sessions);
    memset(r, 0, sizeof *r);
}

static int same_roi(const dx_lidc_roi *a, const dx_lidc_roi *b) {
    if (a->npts != b->npts || a->inclusion != b->inclusion || strcmp(a->sop_uid, b->sop_uid)) return 0;
    if (!(a->z == b->z || (isnan(a->z) && isnan(b->z)))) return 0;
    return !a->npts || !memcmp(a->pts, b->pts, (size_t)a->npts * sizeof *a->pts);
}

static int same_session(const dx_lidc_session *a, const dx_lidc_session *b) {
    if (strcmp(a->reader_id, b->reader_id) || a->nnod != b->nnod || a->nnon != b->nnon) return 0;
    for (int i = 0; i < a->nnod; i++) {
        const dx_lidc_nodule *x = &a->nodules[i], *y = &b->nodules[i];
        if (x->nroi != y->nroi || x->has_chars != y->has_chars || memcmp(x->chars, y->chars, sizeof x->chars))
            return 0;
        for (int j = 0; j < x->nroi; j++)
            if (!same_roi(&x->rois[j], &y->rois[j])) return 0;
    }
    for (int i = 0; i < a->nnon; i++) {
        const dx_lidc_nonnodule *x = &a->nonnodules[i], *y = &b->nonnodules[i];
        if (x->locus.x != y->locus.x || x->locus.y != y->locus.y || strcmp(x->sop_uid, y->sop_uid)) return 0;
    }
    return 1;
}

dx_status dx_lidc_merge(dx_lidc_read *dst, dx_lidc_read *src, int *n_dup, dx_err *err) {
    if (n_dup) *n_dup = 0;
    if (strcmp(dst->series_uid, src->series_uid))
        return dx_fail(err, DX_EINVAL, "merging reads of different series %s and %s", dst->series_uid,
                       src->series_uid);
    dx_lidc_session *p = realloc(dst->sessions, (size_t)(dst->nsess + src->nsess + 1) * sizeof *p);
    if (!p) return dx_fail(err, DX_ENOMEM, "merging sessions");
    dst->sessions = p;
    int n0 = dst->nsess;
    for (int i = 0; i < src->nsess; i++) {
        int dup = 0;
        for (int j = 0; j < n0 && !dup; j++) dup = same_session(&dst->sessions[j], &src->sessions[i]);
        if (dup) {
            session_free(&src->sessions[i]);
            if (n_dup) (*n_dup)++;
        } else {
            dst->sessions[dst->nsess++] = src->sessions[i];
        }
    }
    if (!dst->study_uid[0]) memcpy(dst->study_uid, src->study_uid, sizeof dst->study_uid);
    free(src->sessions);
    memset(src, 0, sizeof *src);
    return DX_OK;
}

int dx_lidc_sniff_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char buf[4097];
    size_t n = fread(buf, 1, 4096, f);
    fclose(f);
    buf[n] = 0;
    for (size_t i = 0; i < n; i++)
        if (!buf[i]) buf[i] = ' ';
    return strstr(buf, "LidcReadMessage") != NULL;
}
