/* log.h: logging through a callback (default: stderr), like whisper_log_set. */
#ifndef LOOM_CORE_LOG_H
#define LOOM_CORE_LOG_H

typedef enum { LOOM_LOG_DEBUG, LOOM_LOG_INFO, LOOM_LOG_WARN, LOOM_LOG_ERROR } loom_log_level;
typedef void (*loom_log_callback)(loom_log_level level, const char *msg, void *user);

/* Installs the callback (NULL restores the default). Set once at start-up. */
void loom_log_set(loom_log_callback cb, void *user);
void loom_log(loom_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif
