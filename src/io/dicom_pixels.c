/* dicom_pixels.c - PixelData -> stored values (int32, before rescale), and
 * stored values -> HU.
 *
 * Native: 8/16-bit, little or big endian, any BitsStored/HighBit inside the
 * allocated word (value = (word >> (HighBit+1-BitsStored)) masked to
 * BitsStored bits, sign-extended when PixelRepresentation = 1).
 * Encapsulated (fragments): RLE Lossless (decoded here, PS3.5 Annex G),
 * JPEG 2000 via OpenJPEG, JPEG-LS via CharLS; the codec output goes through
 * the same mask/sign step so every path agrees on what "stored value" means.
 * Anything else is refused naming the transfer syntax UID. */
#include "io/dicom_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef DINOX_HAVE_OPENJPEG
#include <openjpeg-2.5/openjpeg.h> /* Debian keeps it versioned; CMake adds no include dir */
#endif
#ifdef DINOX_HAVE_CHARLS
#include <charls/charls.h>
#endif

/* A compressed frame may expand at most this much (RLE's bound is 64x; J2K of
 * flat CT reaches ~150x); beyond it the header is presumed forged. */
#define MAX_EXPANSION 1024
#define EXPANSION_SLACK ((size_t)1 << 20)

typedef struct frag {
    const uint8_t *p;
    size_t n;
} frag;

/* Mask to BitsStored after shifting out the bits below HighBit's field; sign-extend. */
static inline int32_t to_stored(uint32_t word, int shift, uint32_t mask, int bits_stored, int is_signed) {
    uint32_t v = (word >> shift) & mask;
    if (is_signed && bits_stored < 32 && (v >> (bits_stored - 1)) & 1u) return (int32_t)((int64_t)v - ((int64_t)1 << bits_stored));
    return (int32_t)v;
}

static dx_status check_layout(dx_dicom_file *f, const char *name, size_t *samples, dx_err *err) {
    if (f->rows <= 0 || f->cols <= 0)
        return dx_fail(err, DX_EFORMAT, "%s: Rows/Columns missing or zero (%d x %d)", name, f->rows, f->cols);
    if (f->samples_per_pixel != 1)
        return dx_fail(err, DX_EUNSUPPORTED, "%s: SamplesPerPixel %d (colour) is not supported; CT is 1",
                       name, f->samples_per_pixel);
    if (f->photometric[0] && strcmp(f->photometric, "MONOCHROME2") && strcmp(f->photometric, "MONOCHROME1"))
        return dx_fail(err, DX_EUNSUPPORTED, "%s: PhotometricInterpretation %s is not supported", name, f->photometric);
    if (f->bits_allocated != 8 && f->bits_allocated != 16)
        return dx_fail(err, DX_EUNSUPPORTED, "%s: BitsAllocated %d is not supported (8 or 16)", name,
                       f->bits_allocated);
    if (f->bits_stored == 0) f->bits_stored = f->bits_allocated;
    if (f->high_bit == 0 && f->bits_stored > 1) f->high_bit = f->bits_stored - 1;
    if (f->bits_stored < 1 || f->bits_stored > f->bits_allocated || f->high_bit >= f->bits_allocated ||
        f->high_bit + 1 < f->bits_stored)
        return dx_fail(err, DX_EFORMAT, "%s: inconsistent BitsAllocated/BitsStored/HighBit %d/%d/%d", name,
                       f->bits_allocated, f->bits_stored, f->high_bit);
    if (f->pixel_representation != 0 && f->pixel_representation != 1)
        return dx_fail(err, DX_EFORMAT, "%s: PixelRepresentation %d (must be 0 or 1)", name, f->pixel_representation);
    size_t s = (size_t)f->rows * (size_t)f->cols * (size_t)f->number_of_frames;
    if (f->number_of_frames > 65535 || s > DX_DICOM_MAX_SAMPLES)
        return dx_fail(err, DX_ENOMEM, "%s: %d x %d x %d frames exceeds the %zu-sample limit", name, f->rows, f->cols,
                       f->number_of_frames, DX_DICOM_MAX_SAMPLES);
    *samples = s;
    return DX_OK;
}

static dx_status decode_native(dx_dicom_file *f, const uint8_t *v, size_t n, size_t samples, const char *name,
                               dx_err *err) {
    size_t bps = (size_t)f->bits_allocated / 8;
    if (n < samples * bps)
        return dx_fail(err, DX_EFORMAT, "%s: PixelData has %zu bytes, %d x %d x %d frames x %zu bytes need %zu", name,
                       n, f->rows, f->cols, f->number_of_frames, bps, samples * bps);
    int shift = f->high_bit + 1 - f->bits_stored, bs = f->bits_stored, sg = f->pixel_representation;
    uint32_t mask = bs >= 32 ? 0xFFFFFFFFu : (1u << bs) - 1;
    int32_t *out = f->pixels;
    if (bps == 1) {
        for (size_t i = 0; i < samples; i++) out[i] = to_stored(v[i], shift, mask, bs, sg);
    } else if (f->big_endian) {
        for (size_t i = 0; i < samples; i++)
            out[i] = to_stored((uint32_t)v[2 * i] << 8 | v[2 * i + 1], shift, mask, bs, sg);
    } else {
        for (size_t i = 0; i < samples; i++)
            out[i] = to_stored((uint32_t)v[2 * i + 1] << 8 | v[2 * i], shift, mask, bs, sg);
    }
    return DX_OK;
}

/* Splits encapsulated PixelData (items after the Basic Offset Table) into
 * fragments. The parser already checked the item structure. */
static dx_status list_fragments(const uint8_t *v, size_t n, frag **out, int *n_out, const char *name, dx_err *err) {
    size_t pos = 0, cap = n / 8 + 1;
    frag *fr = malloc(cap * sizeof *fr);
    if (!fr) return dx_fail(err, DX_ENOMEM, "%s: fragment list", name);
    int k = 0, item = 0;
    while (pos + 8 <= n) {
        uint16_t g = (uint16_t)(v[pos + 1] << 8 | v[pos]), e = (uint16_t)(v[pos + 3] << 8 | v[pos + 2]);
        uint32_t len = (uint32_t)v[pos + 7] << 24 | (uint32_t)v[pos + 6] << 16 | (uint32_t)v[pos + 5] << 8 | v[pos + 4];
        pos += 8;
        if (g == 0xFFFE && e == 0xE0DD) break;
        if (g != 0xFFFE || e != 0xE000 || len > n - pos) {
            free(fr);
            return dx_fail(err, DX_EFORMAT, "%s: malformed pixel data fragment at offset %zu", name, pos - 8);
        }
        if (item++ > 0) fr[k++] = (frag){v + pos, len}; /* item 0 is the Basic Offset Table */
        pos += len;
    }
    *out = fr;
    *n_out = k;
    return DX_OK;
}

/* PackBits as DICOM RLE uses it: n in [0,127] copies n+1 bytes, n in
 * [-127,-1] repeats the next byte 1-n times, -128 is a no-op. */
static dx_status unpack_bits(const uint8_t *s, size_t n, uint8_t *dst, size_t want, const char *name, dx_err *err) {
    size_t i = 0, o = 0;
    while (o < want && i < n) {
        int8_t h = (int8_t)s[i++];
        if (h >= 0) {
            size_t c = (size_t)h + 1;
            if (c > n - i || c > want - o)
                return dx_fail(err, DX_EFORMAT, "%s: RLE literal run overruns its segment", name);
            memcpy(dst + o, s + i, c);
            i += c;
            o += c;
        } else if (h != -128) {
            size_t c = (size_t)(1 - h);
            if (i >= n || c > want - o) return dx_fail(err, DX_EFORMAT, "%s: RLE replicate run overruns its segment", name);
            memset(dst + o, s[i++], c);
            o += c;
        }
    }
    if (o < want) return dx_fail(err, DX_EFORMAT, "%s: RLE segment decodes to %zu bytes, %zu expected", name, o, want);
    return DX_OK;
}

static dx_status decode_rle_frame(dx_dicom_file *f, const uint8_t *b, size_t n, int32_t *out, const char *name,
                                  dx_err *err) {
    size_t npx = (size_t)f->rows * f->cols;
    int nseg_want = f->bits_allocated / 8;
    if (n < 64) return dx_fail(err, DX_EFORMAT, "%s: RLE frame of %zu bytes has no 64-byte header", name, n);
    uint32_t nseg = (uint32_t)b[3] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[1] << 8 | b[0];
    if ((int)nseg != nseg_want)
        return dx_fail(err, DX_EFORMAT, "%s: RLE frame has %u segments, BitsAllocated %d needs %d", name, nseg,
                       f->bits_allocated, nseg_want);
    uint8_t *seg = malloc(npx * nseg_want);
    if (!seg) return dx_fail(err, DX_ENOMEM, "%s: RLE buffer", name);
    for (int s = 0; s < nseg_want; s++) {
        const uint8_t *o = b + 4 + 4 * s;
        size_t start = (uint32_t)o[3] << 24 | (uint32_t)o[2] << 16 | (uint32_t)o[1] << 8 | o[0];
        size_t end = n;
        if (s + 1 < nseg_want) end = (uint32_t)o[7] << 24 | (uint32_t)o[6] << 16 | (uint32_t)o[5] << 8 | o[4];
        if (start < 64 || start > end || end > n) {
            free(seg);
            return dx_fail(err, DX_EFORMAT, "%s: RLE segment %d offsets [%zu, %zu) outside the %zu-byte frame", name, s,
                           start, end, n);
        }
        dx_status st = unpack_bits(b + start, end - start, seg + (size_t)s * npx, npx, name, err);
        if (st) {
            free(seg);
            return st;
        }
    }
    int shift = f->high_bit + 1 - f->bits_stored, bs = f->bits_stored, sg = f->pixel_representation;
    uint32_t mask = (1u << bs) - 1;
    for (size_t i = 0; i < npx; i++) {
        uint32_t w = nseg_want == 2 ? (uint32_t)seg[i] << 8 | seg[npx + i] : seg[i]; /* segment 0 = MSB */
        out[i] = to_stored(w, shift, mask, bs, sg);
    }
    free(seg);
    return DX_OK;
}

#ifdef DINOX_HAVE_OPENJPEG
typedef struct mem_stream {
    const uint8_t *p;
    size_t n, pos;
} mem_stream;

static OPJ_SIZE_T ms_read(void *buf, OPJ_SIZE_T nb, void *u) {
    mem_stream *m = u;
    if (m->pos >= m->n) return (OPJ_SIZE_T)-1;
    size_t c = m->n - m->pos < nb ? m->n - m->pos : nb;
    memcpy(buf, m->p + m->pos, c);
    m->pos += c;
    return c;
}
static OPJ_OFF_T ms_skip(OPJ_OFF_T nb, void *u) {
    mem_stream *m = u;
    if (nb < 0) {
        if ((size_t)-nb > m->pos) nb = -(OPJ_OFF_T)m->pos;
    } else if ((size_t)nb > m->n - m->pos) {
        nb = (OPJ_OFF_T)(m->n - m->pos);
    }
    m->pos += nb;
    return nb;
}
static OPJ_BOOL ms_seek(OPJ_OFF_T nb, void *u) {
    mem_stream *m = u;
    if (nb < 0 || (size_t)nb > m->n) return OPJ_FALSE;
    m->pos = (size_t)nb;
    return OPJ_TRUE;
}
static void quiet(const char *msg, void *u) { (void)msg, (void)u; }

/* Checks the codestream's SIZ marker before OpenJPEG sees it: one component,
 * the DICOM image size, and a sane tile count - OpenJPEG allocates per tile
 * and per component while reading the header, so a forged SIZ could
 * otherwise cost far more memory than the file is large. */
static int j2k_siz_ok(const uint8_t *b, size_t n, const dx_dicom_file *f) {
    size_t at = 0;
    for (; at + 4 <= n && at < 4096; at++) /* JP2 wrapper: find the codestream */
        if (b[at] == 0xFF && b[at + 1] == 0x4F && b[at + 2] == 0xFF && b[at + 3] == 0x51) break;
    if (at + 4 + 38 > n || at >= 4096) return 0;
    const uint8_t *s = b + at + 4; /* Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz XTOsiz YTOsiz Csiz */
#define U32(p) ((uint32_t)(p)[0] << 24 | (uint32_t)(p)[1] << 16 | (uint32_t)(p)[2] << 8 | (p)[3])
    uint32_t xs = U32(s + 4), ys = U32(s + 8), xo = U32(s + 12), yo = U32(s + 16), xt = U32(s + 20),
             yt = U32(s + 24), xto = U32(s + 28), yto = U32(s + 32);
#undef U32
    uint16_t cs = (uint16_t)(s[36] << 8 | s[37]);
    if (cs != 1 || xs <= xo || ys <= yo || xs - xo != (uint32_t)f->cols || ys - yo != (uint32_t)f->rows) return 0;
    if (xt == 0 || yt == 0 || xto > xo || yto > yo) return 0;
    uint64_t tiles = ((uint64_t)(xs - xto) + xt - 1) / xt * (((uint64_t)(ys - yto) + yt - 1) / yt);
    return tiles <= 4096;
}

static dx_status decode_j2k_frame(dx_dicom_file *f, const uint8_t *b, size_t n, int32_t *out, const char *name,
                                  dx_err *err) {
    static const uint8_t jp2_sig[12] = {0, 0, 0, 12, 'j', 'P', ' ', ' ', 13, 10, 0x87, 10};
    int is_jp2 = n >= 12 && memcmp(b, jp2_sig, 12) == 0;
    if (!j2k_siz_ok(b, n, f))
        return dx_fail(err, DX_EFORMAT, "%s: JPEG 2000 SIZ marker missing or inconsistent with the DICOM header "
                       "(need 1 component, %dx%d, <= 4096 tiles)", name, f->cols, f->rows);
    opj_codec_t *codec = opj_create_decompress(is_jp2 ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K);
    if (!codec) return dx_fail(err, DX_ENOMEM, "%s: OpenJPEG codec", name);
    opj_set_info_handler(codec, quiet, NULL);
    opj_set_warning_handler(codec, quiet, NULL);
    opj_set_error_handler(codec, quiet, NULL);
    opj_dparameters_t prm;
    opj_set_default_decoder_parameters(&prm);
    mem_stream ms = {b, n, 0};
    opj_stream_t *st = opj_stream_create(64 * 1024, OPJ_TRUE);
    opj_image_t *img = NULL;
    dx_status rc = DX_OK;
    if (!st) {
        opj_destroy_codec(codec);
        return dx_fail(err, DX_ENOMEM, "%s: OpenJPEG stream", name);
    }
    opj_stream_set_user_data(st, &ms, NULL);
    opj_stream_set_user_data_length(st, n);
    opj_stream_set_read_function(st, ms_read);
    opj_stream_set_skip_function(st, ms_skip);
    opj_stream_set_seek_function(st, ms_seek);
    if (!opj_setup_decoder(codec, &prm) || !opj_read_header(st, codec, &img)) {
        rc = dx_fail(err, DX_EFORMAT, "%s: JPEG 2000 header unreadable", name);
        goto done;
    }
    /* Check the declared size before decoding, so a forged codestream cannot
     * make OpenJPEG allocate more than the DICOM header announced. */
    if (img->numcomps < 1 || img->x1 - img->x0 != (OPJ_UINT32)f->cols || img->y1 - img->y0 != (OPJ_UINT32)f->rows) {
        rc = dx_fail(err, DX_EFORMAT, "%s: JPEG 2000 image is %ux%u with %u components, header says %dx%d", name,
                     img->x1 - img->x0, img->y1 - img->y0, img->numcomps, f->cols, f->rows);
        goto done;
    }
    if (!opj_decode(codec, st, img) || !opj_end_decompress(codec, st)) {
        rc = dx_fail(err, DX_EFORMAT, "%s: JPEG 2000 decode failed", name);
        goto done;
    }
    opj_image_comp_t *c = &img->comps[0];
    if (!c->data || c->w != (OPJ_UINT32)f->cols || c->h != (OPJ_UINT32)f->rows || c->prec > 16) {
        rc = dx_fail(err, DX_EFORMAT, "%s: JPEG 2000 component 0 is %ux%u (%u bits), header says %dx%d", name, c->w,
                     c->h, c->prec, f->cols, f->rows);
        goto done;
    }
    {
        /* The codestream's own signedness can disagree with PixelRepresentation
         * (pydicom's J2K_pixelrep_mismatch.dcm); the DICOM header wins: take the
         * low BitsStored bits and sign-extend per PixelRepresentation. */
        int bs = f->bits_stored, sg = f->pixel_representation;
        uint32_t mask = (1u << bs) - 1;
        size_t npx = (size_t)f->rows * f->cols;
        for (size_t i = 0; i < npx; i++) out[i] = to_stored((uint32_t)c->data[i], 0, mask, bs, sg);
    }
done:
    if (img) opj_image_destroy(img);
    opj_stream_destroy(st);
    opj_destroy_codec(codec);
    return rc;
}
#endif

#ifdef DINOX_HAVE_CHARLS
static dx_status decode_jls_frame(dx_dicom_file *f, const uint8_t *b, size_t n, int32_t *out, const char *name,
                                  dx_err *err) {
    charls_jpegls_decoder *dec = charls_jpegls_decoder_create();
    if (!dec) return dx_fail(err, DX_ENOMEM, "%s: CharLS decoder", name);
    charls_frame_info fi;
    size_t need = 0;
    dx_status rc = DX_OK;
    uint8_t *buf = NULL;
    if (charls_jpegls_decoder_set_source_buffer(dec, b, n) || charls_jpegls_decoder_read_header(dec) ||
        charls_jpegls_decoder_get_frame_info(dec, &fi)) {
        rc = dx_fail(err, DX_EFORMAT, "%s: JPEG-LS header unreadable", name);
        goto done;
    }
    if (fi.width != (uint32_t)f->cols || fi.height != (uint32_t)f->rows || fi.component_count != 1 ||
        fi.bits_per_sample < 2 || fi.bits_per_sample > 16) {
        rc = dx_fail(err, DX_EFORMAT, "%s: JPEG-LS frame %ux%u, %d components, %d bits; header says %dx%d", name,
                     fi.width, fi.height, fi.component_count, fi.bits_per_sample, f->cols, f->rows);
        goto done;
    }
    if (charls_jpegls_decoder_get_destination_size(dec, 0, &need) || !(buf = malloc(need ? need : 1)) ||
        charls_jpegls_decoder_decode_to_buffer(dec, buf, need, 0)) {
        rc = dx_fail(err, DX_EFORMAT, "%s: JPEG-LS decode failed", name);
        goto done;
    }
    {
        int bs = f->bits_stored, sg = f->pixel_representation;
        uint32_t mask = (1u << bs) - 1;
        size_t npx = (size_t)f->rows * f->cols;
        if (fi.bits_per_sample <= 8) {
            for (size_t i = 0; i < npx; i++) out[i] = to_stored(buf[i], 0, mask, bs, sg);
        } else {
            for (size_t i = 0; i < npx; i++) {
                uint16_t w;
                memcpy(&w, buf + 2 * i, 2); /* CharLS writes host order */
                out[i] = to_stored(w, 0, mask, bs, sg);
            }
        }
    }
done:
    free(buf);
    charls_jpegls_decoder_destroy(dec);
    return rc;
}
#endif

typedef dx_status (*frame_decoder)(dx_dicom_file *, const uint8_t *, size_t, int32_t *, const char *, dx_err *);

static dx_status decode_encapsulated(dx_dicom_file *f, const uint8_t *v, size_t n, size_t samples, const char *name,
                                     dx_err *err) {
    const char *ts = f->transfer_syntax;
    frame_decoder fn = NULL;
    if (strcmp(ts, DX_TS_RLE) == 0) fn = decode_rle_frame;
#ifdef DINOX_HAVE_OPENJPEG
    if (strcmp(ts, DX_TS_J2K_LOSSLESS) == 0 || strcmp(ts, DX_TS_J2K) == 0) fn = decode_j2k_frame;
#endif
#ifdef DINOX_HAVE_CHARLS
    if (strcmp(ts, DX_TS_JPEGLS_LOSSLESS) == 0 || strcmp(ts, DX_TS_JPEGLS_NEAR) == 0) fn = decode_jls_frame;
#endif
    if (!fn)
        return dx_fail(err, DX_EUNSUPPORTED, "%s: compressed pixel data in transfer syntax %s is not supported", name,
                       ts);
    frag *fr = NULL;
    int nf = 0;
    dx_status st = list_fragments(v, n, &fr, &nf, name, err);
    if (st) return st;
    size_t npx = (size_t)f->rows * f->cols;
    if (nf == 0) {
        st = dx_fail(err, DX_EFORMAT, "%s: encapsulated pixel data has no fragments", name);
    } else if (f->number_of_frames == 1) {
        /* One frame may span several fragments: join them. */
        if (nf == 1) {
            st = fn(f, fr[0].p, fr[0].n, f->pixels, name, err);
        } else {
            size_t tot = 0;
            for (int i = 0; i < nf; i++) tot += fr[i].n;
            uint8_t *joined = malloc(tot ? tot : 1);
            if (!joined) {
                st = dx_fail(err, DX_ENOMEM, "%s: fragment join", name);
            } else {
                size_t o = 0;
                for (int i = 0; i < nf; i++) memcpy(joined + o, fr[i].p, fr[i].n), o += fr[i].n;
                st = fn(f, joined, tot, f->pixels, name, err);
                free(joined);
            }
        }
    } else if (nf == f->number_of_frames) {
        for (int i = 0; i < nf && !st; i++) st = fn(f, fr[i].p, fr[i].n, f->pixels + (size_t)i * npx, name, err);
    } else {
        st = dx_fail(err, DX_EUNSUPPORTED, "%s: %d frames in %d fragments (multi-fragment frames) not supported", name,
                     f->number_of_frames, nf);
    }
    free(fr);
    return st;
}

dx_status dx_dicom_decode_pixels_(dx_dicom_file *f, const uint8_t *data, size_t size, const char *name,
                                  dx_err *err) {
    size_t samples = 0;
    dx_status st = check_layout(f, name, &samples, err);
    if (st) return st;
    if (f->pixel_offset > size || f->pixel_length > size - f->pixel_offset)
        return dx_fail(err, DX_EFORMAT, "%s: PixelData lies outside the file", name);
    const char *ts = f->transfer_syntax;
    int native = strcmp(ts, DX_TS_IMPLICIT_LE) == 0 || strcmp(ts, DX_TS_EXPLICIT_LE) == 0 ||
                 strcmp(ts, DX_TS_EXPLICIT_BE) == 0 || strcmp(ts, DX_TS_DEFLATED_LE) == 0;
    if (native && f->encapsulated)
        return dx_fail(err, DX_EFORMAT, "%s: encapsulated PixelData in native transfer syntax %s", name, ts);
    if (!native && !f->encapsulated)
        return dx_fail(err, DX_EUNSUPPORTED, "%s: transfer syntax %s with native PixelData is not supported", name, ts);
    /* Size checks come before the allocation: the output (4 bytes a sample)
     * stays within a small multiple of the input. */
    size_t bytes = samples * (size_t)(f->bits_allocated / 8);
    if (native && f->pixel_length < bytes)
        return dx_fail(err, DX_EFORMAT, "%s: PixelData has %zu bytes, %d x %d x %d frames x %d bytes need %zu", name,
                       f->pixel_length, f->rows, f->cols, f->number_of_frames, f->bits_allocated / 8, bytes);
    if (!native && bytes > (size_t)MAX_EXPANSION * f->pixel_length + EXPANSION_SLACK)
        return dx_fail(err, DX_EFORMAT, "%s: %zu decoded bytes from %zu compressed bytes is implausible", name, bytes,
                       f->pixel_length);
    f->pixels = malloc(samples * sizeof *f->pixels);
    if (!f->pixels) return dx_fail(err, DX_ENOMEM, "%s: %zu pixels", name, samples);
    if (native)
        st = decode_native(f, data + f->pixel_offset, f->pixel_length, samples, name, err);
    else
        st = decode_encapsulated(f, data + f->pixel_offset, f->pixel_length, samples, name, err);
    if (st) {
        free(f->pixels);
        f->pixels = NULL;
    }
    return st;
}

dx_status dx_dicom_to_hu(const dx_dicom_file *f, int frame, int16_t *out, dx_err *err) {
    if (!f || !out || !f->pixels) return dx_fail(err, DX_EINVAL, "dx_dicom_to_hu: no decoded pixels");
    if (frame < 0 || frame >= f->number_of_frames)
        return dx_fail(err, DX_EINVAL, "dx_dicom_to_hu: frame %d of %d", frame, f->number_of_frames);
    size_t npx = (size_t)f->rows * f->cols;
    const int32_t *s = f->pixels + (size_t)frame * npx;
    double slope = f->rescale_slope, icpt = f->rescale_intercept;
    /* Padding in stored units: a single value, or the closed range between
     * PixelPaddingValue and PixelPaddingRangeLimit (either order). */
    int32_t plo = f->padding_value, phi = f->padding_value;
    if (f->has_padding_limit) {
        if (f->padding_limit < plo) plo = f->padding_limit;
        else phi = f->padding_limit;
    }
    for (size_t i = 0; i < npx; i++) {
        if (f->has_padding && s[i] >= plo && s[i] <= phi) {
            out[i] = DX_HU_PAD;
            continue;
        }
        double hu = nearbyint(s[i] * slope + icpt);
        if (!(hu >= DX_HU_MIN)) hu = DX_HU_MIN; /* also catches NaN */
        if (hu > DX_HU_MAX) hu = DX_HU_MAX;
        out[i] = (int16_t)hu;
    }
    return DX_OK;
}
