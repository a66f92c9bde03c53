/*
 * log.c - levelled logger with optional size-rotated file (see log.h).
 *
 * Writes are plain write(2) calls of whole lines, so concurrent processes
 * appending to one terminal do not interleave within a line. Rotation
 * renames path.N-1 -> path.N ... path -> path.1 and reopens path; a failed
 * rotation keeps writing to the current file rather than losing lines.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define LOG_LINE_MAX 8192

struct gkm_log {
    enum gkm_log_level level;
    int to_stderr;
    char *path;
    int fd;
    uint64_t size;
    uint64_t max_bytes;
    int backups;
};

static const char *level_names[] = {"error", "warn", "info", "debug"};
static const char *level_tags[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};

static int open_log(struct gkm_log *log)
{
    int fd = open(log->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    struct stat st;
    log->size = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    log->fd = fd;
    return 0;
}

struct gkm_log *gkm_log_new(enum gkm_log_level level, int to_stderr,
                            const char *path, uint64_t max_bytes, int backups,
                            const char **errstr)
{
    struct gkm_log *log = gkm_xcalloc(1, sizeof(*log));
    log->level = level;
    log->to_stderr = to_stderr;
    log->fd = -1;
    log->max_bytes = max_bytes;
    log->backups = backups < 0 ? 0 : backups;
    if (path != NULL && *path != '\0') {
        log->path = gkm_xstrdup(path);
        if (open_log(log) != 0) {
            *errstr = strerror(errno);
            gkm_log_free(log);
            return NULL;
        }
    }
    return log;
}

void gkm_log_free(struct gkm_log *log)
{
    if (log == NULL)
        return;
    if (log->fd >= 0)
        close(log->fd);
    free(log->path);
    free(log);
}

int gkm_log_level_parse(const char *s, enum gkm_log_level *out)
{
    for (size_t i = 0; i < GKM_ARRAY_LEN(level_names); i++) {
        if (gkm_strcaseeq(s, level_names[i])) {
            *out = (enum gkm_log_level)i;
            return 0;
        }
    }
    if (gkm_strcaseeq(s, "warning")) {
        *out = GKM_LOG_WARN;
        return 0;
    }
    return -1;
}

const char *gkm_log_level_name(enum gkm_log_level level)
{
    return (unsigned)level < GKM_ARRAY_LEN(level_names) ? level_names[level]
                                                        : "?";
}

int gkm_log_enabled(const struct gkm_log *log, enum gkm_log_level level)
{
    return log != NULL && level <= log->level;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static void rotate(struct gkm_log *log)
{
    char from[4096], to[4096];
    if (log->backups == 0) {
        /* No backups wanted: start the file again. */
        if (ftruncate(log->fd, 0) == 0)
            log->size = 0;
        return;
    }
    for (int i = log->backups - 1; i >= 0; i--) {
        int a = i == 0 ? snprintf(from, sizeof(from), "%s", log->path)
                       : snprintf(from, sizeof(from), "%s.%d", log->path, i);
        int b = snprintf(to, sizeof(to), "%s.%d", log->path, i + 1);
        if (a < 0 || b < 0 || (size_t)a >= sizeof(from) ||
            (size_t)b >= sizeof(to))
            return;
        (void)rename(from, to);
    }
    int oldfd = log->fd;
    if (open_log(log) == 0)
        close(oldfd);
    else
        log->fd = oldfd;
}

void gkm_log_write(struct gkm_log *log, enum gkm_log_level level,
                   const char *fmt, ...)
{
    char line[LOG_LINE_MAX];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000),
                     level_tags[level]);
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2; /* truncated: keep the line bounded */
    /* Never let a message break the one-line-per-event format. */
    for (size_t i = (size_t)n; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[len++] = '\n';
    if (log->to_stderr)
        write_all(STDERR_FILENO, line, len);
    if (log->fd >= 0) {
        if (log->max_bytes > 0 && log->size + len > log->max_bytes &&
            log->size > 0)
            rotate(log);
        write_all(log->fd, line, len);
        log->size += len;
    }
}
