/* tbevents.h - TensorBoard event files without TensorFlow.
 *
 * An event file is a sequence of TFRecords: u64 length (little-endian),
 * u32 masked CRC32C of those 8 bytes, the payload, u32 masked CRC32C of the
 * payload; mask(c) = ((c >> 15) | (c << 17)) + 0xa282ead8. Each payload is a
 * tensorflow.Event protobuf, hand-encoded:
 *   Event   { double wall_time = 1; int64 step = 2; string file_version = 3;
 *             Summary summary = 5; }
 *   Summary { repeated Value value = 1; }
 *   Value   { string tag = 1; float simple_value = 2; }
 * The first record carries file_version "brain.Event:2". Text, image and
 * hparams summaries (nested messages) are described in tbevents.c. */
#ifndef DX_TBEVENTS_H
#define DX_TBEVENTS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/dx_error.h"

typedef struct dx_tb_writer {
    FILE *f;
    char path[1024];
} dx_tb_writer;

/* CRC-32C (Castagnoli, reflected 0x82F63B78); crc = 0 to start. */
uint32_t dx_crc32c(uint32_t crc, const void *data, size_t n);
uint32_t dx_tb_mask_crc(uint32_t crc);

/* Encodes an Event with n scalar values (n may be 0: file_version may then be
 * given) into buf; returns the byte length, or 0 if cap is too small. */
size_t dx_tb_encode_event(uint8_t *buf, size_t cap, double wall_time, int64_t step, const char *file_version,
                          const char *const *tags, const float *values, int n);

/* Creates DIR/events.out.tfevents.<unix time>.<host>.<pid> and writes the
 * file_version record. */
dx_status dx_tb_open(dx_tb_writer *w, const char *dir, dx_err *err);
/* One event at `step` with n scalars (tags like "loss/dino"); non-finite values are skipped. */
dx_status dx_tb_scalars(dx_tb_writer *w, int64_t step, double wall_time, const char *const *tags,
                        const float *values, int n, dx_err *err);
/* A text summary (TensorBoard's Text tab renders it as markdown). */
dx_status dx_tb_text(dx_tb_writer *w, int64_t step, double wall_time, const char *tag, const char *markdown,
                     dx_err *err);
/* An image summary from PNG bytes (RGB, height x width). */
dx_status dx_tb_image_png(dx_tb_writer *w, int64_t step, double wall_time, const char *tag, const void *png,
                          size_t n, int height, int width, dx_err *err);
/* The HParams tab: an experiment naming the n hyperparameters and the metric
 * tags to show, and this run's values (numbers, true/false, or text), at step 0. */
dx_status dx_tb_hparams(dx_tb_writer *w, double wall_time, const char *const *names, const char *const *values,
                        int n, const char *const *metric_tags, int n_metrics, dx_err *err);
dx_status dx_tb_flush(dx_tb_writer *w, dx_err *err);
void dx_tb_close(dx_tb_writer *w);

#endif /* DX_TBEVENTS_H */
