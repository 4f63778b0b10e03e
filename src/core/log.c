#include "log.h"

#include <stdarg.h>
#include <stdio.h>

/* The one process-wide setting, written once at start-up (as whisper.cpp's). */
static loom_log_callback g_log_cb;
static void *g_log_user;

void loom_log_set(loom_log_callback cb, void *user) {
    g_log_cb = cb;
    g_log_user = user;
}

void loom_log(loom_log_level level, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (g_log_cb) {
        g_log_cb(level, buf, g_log_user);
    } else if (level >= LOOM_LOG_INFO) {
        fprintf(stderr, "%s\n", buf);
    }
}
