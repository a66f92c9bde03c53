/*
 * log.h - levelled logging to stderr and an optional size-rotated file.
 *
 * The level is checked before any formatting (Redis's rule), so debug lines
 * cost nothing in production. Lines are "2026-11-27T08:45:00.123Z LEVEL msg".
 * Secrets never go through here unmasked: use gkm_mask_key() (util.h).
 * The logger is a value passed down in the context, not a global.
 */
#ifndef GKM_LOG_H
#define GKM_LOG_H

#include <stddef.h>
#include <stdint.h>

enum gkm_log_level { GKM_LOG_ERROR = 0, GKM_LOG_WARN, GKM_LOG_INFO, GKM_LOG_DEBUG };

struct gkm_log;

/* Create a logger writing to stderr (when to_stderr) and, if path is not
 * NULL, appending to path, rotated when it passes max_bytes, keeping
 * `backups` old files (path.1 .. path.N). Returns NULL and sets *errstr
 * (static or strerror text) when the file cannot be opened. */
struct gkm_log *gkm_log_new(enum gkm_log_level level, int to_stderr,
                            const char *path, uint64_t max_bytes, int backups,
                            const char **errstr);
void gkm_log_free(struct gkm_log *log);

/* Parse "error|warn|info|debug" (case-insensitive). Returns 0 or -1. */
int gkm_log_level_parse(const char *s, enum gkm_log_level *out);
const char *gkm_log_level_name(enum gkm_log_level level);

int gkm_log_enabled(const struct gkm_log *log, enum gkm_log_level level);
void gkm_log_write(struct gkm_log *log, enum gkm_log_level level,
                   const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define gkm_log_at(log, lvl, ...)                                              \
    do {                                                                       \
        if (gkm_log_enabled((log), (lvl)))                                     \
            gkm_log_write((log), (lvl), __VA_ARGS__);                          \
    } while (0)
#define gkm_error(log, ...) gkm_log_at(log, GKM_LOG_ERROR, __VA_ARGS__)
#define gkm_warn(log, ...) gkm_log_at(log, GKM_LOG_WARN, __VA_ARGS__)
#define gkm_info(log, ...) gkm_log_at(log, GKM_LOG_INFO, __VA_ARGS__)
#define gkm_debug(log, ...) gkm_log_at(log, GKM_LOG_DEBUG, __VA_ARGS__)

#endif
