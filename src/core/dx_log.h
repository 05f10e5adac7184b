/* dx_log.h - the logger: the only process-wide mutable state in libdinox.
 * Level and sink are set once by the CLI; library code only calls dx_log(). */
#ifndef DX_LOG_H
#define DX_LOG_H

#include <stdio.h>

typedef enum { DX_LOG_ERROR = 0, DX_LOG_WARN, DX_LOG_INFO, DX_LOG_DEBUG } dx_log_level;

void dx_log_set_level(dx_log_level level);
void dx_log_set_stream(FILE *stream); /* default stderr */
dx_log_level dx_log_get_level(void);
void dx_log(dx_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define DX_ERROR(...) dx_log(DX_LOG_ERROR, __VA_ARGS__)
#define DX_WARN(...) dx_log(DX_LOG_WARN, __VA_ARGS__)
#define DX_INFO(...) dx_log(DX_LOG_INFO, __VA_ARGS__)
#define DX_DEBUG(...) dx_log(DX_LOG_DEBUG, __VA_ARGS__)

#endif /* DX_LOG_H */
