/* fuzz_config.c - libFuzzer target for the training config parser
 * (src/train/config.c): the input is parsed as a YAML config file over the
 * defaults, then validated and dumped; each of its first lines is also applied
 * as a `key=value` override to fresh defaults (the command-line path), so one
 * corpus serves both. Errors are the expected outcome; a crash, sanitizer
 * report, leak or an error without a message is a bug, and a config that
 * loads and validates must dump and reload to the same dump text.
 * Corpus: fuzz/corpus/config/. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/config.h"

#define MAX_OVERRIDES 8

/* The defaults are parsed from the schema's YAML literals: do it once, copy after. */
static dx_config defaults;

static char *dump_text(const dx_config *c) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return NULL;
    dx_err err = {0};
    dx_status st = dx_config_dump(c, f, &err);
    fclose(f);
    if (st) abort();
    return text;
}

/* dump -> reload -> dump gives the same text (every key's value survives). */
static void roundtrip(const dx_config *c) {
    char *t1 = dump_text(c);
    if (!t1) return;
    static dx_config d;
    dx_err err = {0};
    d = defaults;
    if (dx_config_load_string(&d, t1, "dump", &err) != DX_OK) abort();
    char *t2 = dump_text(&d);
    if (t2 && strcmp(t1, t2)) abort();
    free(t1);
    free(t2);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    dx_config_defaults(&defaults);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    static dx_config c; /* large: keep it off the stack */
    dx_err err = {0};
    c = defaults;
    if (dx_config_load_string(&c, text, "fuzz.yaml", &err) != DX_OK) {
        if (!err.msg[0]) abort();
    } else if (dx_config_validate(&c, &err) == DX_OK) {
        roundtrip(&c);
    } else if (!err.msg[0]) {
        abort();
    }
    int n = 0;
    for (char *line = text, *next; line && n < MAX_OVERRIDES; line = next, n++) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        c = defaults;
        err.msg[0] = 0;
        if (dx_config_override(&c, line, &err) != DX_OK && !err.msg[0]) abort();
    }
    free(text);
    return 0;
}
