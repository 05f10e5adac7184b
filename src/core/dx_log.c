/* dx_log.c - see dx_log.h. */
#include "dx_log.h"

#include <stdarg.h>

static dx_log_level g_level = DX_LOG_INFO;
static FILE *g_stream = NULL;

void dx_log_set_level(dx_log_level level) { g_level = level; }
void dx_log_set_stream(FILE *stream) { g_stream = stream; }
dx_log_level dx_log_get_level(void) { return g_level; }

void dx_log(dx_log_level level, const char *fmt, ...) {
    if (level > g_level) return;
    static const char *tag[] = {"error", "warn", "info", "debug"};
    FILE *f = g_stream ? g_stream : stderr;
    va_list ap;
    va_start(ap, fmt);
    fprintf(f, "[dinox %s] ", tag[level]);
    vfprintf(f, fmt, ap);
    fputc('\n', f);
    va_end(ap);
}
