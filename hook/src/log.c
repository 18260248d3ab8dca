/* Quiet by default: LIBCUDA_LOG_LEVEL (read once at init) 0 = silent, 1 = errors (default),
 * 2 = warnings, 3 = info. One write(2) per message, no stdio state touched. */
#include "hook.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

void hk_log(int level, const char *fmt, ...) {
    if (level > hk_cfg.log_level) return;
    char buf[512];
    static const char *const tag[] = {"", "ERROR", "WARN", "INFO"};
    int n = snprintf(buf, sizeof buf, "[hami-vgpu %s pid %d] ", tag[level > 3 ? 3 : level],
                     (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof buf - 2) len = sizeof buf - 2;
    buf[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, len);
    (void)w;
}
