/* test_config_strings.c - string keys survive dump -> reload unchanged,
 * whatever characters they hold: the dump writes YAML double-quoted scalars,
 * so quotes, backslashes, control characters (a raw newline was folded or made
 * the dump unreadable - found by fuzz/fuzz_config.c), C1 controls, the
 * Unicode line breaks and BOM must be escaped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dx_test.h"
#include "train/config.h"

static char *dump_text(const dx_config *c) {
    char *t = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&t, &n);
    dx_err e;
    dx_config_dump(c, f, &e);
    fclose(f);
    return t;
}

int main(void) {
    /* each as a YAML double-quoted value, and the bytes it stands for */
    static const struct { const char *yaml, *want; } cases[] = {
        {"\"a \\\"quoted\\\" \\\\path\"", "a \"quoted\" \\path"},
        {"\"two\\nlines\"", "two\nlines"},
        {"\"tab\\there\"", "tab\there"},
        {"\"cr\\r, bell\\a, esc\\e, del\\x7f\"", "cr\r, bell\a, esc\x1b, del\x7f"},
        {"\"nel\\N c1\\x90 end\"", "nel\xc2\x85 c1\xc2\x90 end"},
        {"\"ls\\L ps\\P bom\\uFEFF nc\\uFFFE\"", "ls\xe2\x80\xa8 ps\xe2\x80\xa9 bom\xef\xbb\xbf nc\xef\xbf\xbe"},
        {"\"caf\\u00e9 \\u4e2d\"", "caf\xc3\xa9 \xe4\xb8\xad"},
        {"\"\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\"",
         "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char yaml[512];
        snprintf(yaml, sizeof yaml, "data:\n  root: %s\n", cases[i].yaml);
        static dx_config c, d;
        dx_err e = {0};
        dx_config_defaults(&c);
        CHECK(dx_config_load_string(&c, yaml, "case", &e) == DX_OK, "case %zu loads: %s", i, e.msg);
        CHECK(strcmp(c.data.root, cases[i].want) == 0, "case %zu: value as written", i);
        char *t = dump_text(&c);
        dx_config_defaults(&d);
        CHECK(dx_config_load_string(&d, t, "dump", &e) == DX_OK, "case %zu: dump reloads: %s", i, e.msg);
        CHECK(strcmp(d.data.root, c.data.root) == 0, "case %zu: the reloaded value is the same bytes", i);
        free(t);
    }
    /* the longest string, all control characters: nothing cut from the dump */
    static dx_config c, d;
    dx_err e = {0};
    dx_config_defaults(&c);
    memset(c.data.root, '\x01', DX_CFG_STR - 1);
    c.data.root[DX_CFG_STR - 1] = 0;
    char *t = dump_text(&c);
    dx_config_defaults(&d);
    CHECK(dx_config_load_string(&d, t, "dump", &e) == DX_OK, "255 controls: dump reloads: %s", e.msg);
    CHECK(strcmp(d.data.root, c.data.root) == 0, "255 controls: the same bytes after reload");
    free(t);
    return dx_test_summary();
}
