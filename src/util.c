/*
 * util.c - allocation wrappers, bounded parsing, clocks, constant-time
 * compare, key masking and the atomic file write (see util.h).
 */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void oom(size_t n)
{
    /* write(2) directly: stdio may itself need memory. */
    static const char msg[] = "gemini-key-manager: out of memory\n";
    ssize_t r = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)r;
    (void)n;
    abort();
}

void *gkm_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

/* Small zeroed blocks come from malloc + zeroing: glibc 2.36's calloc
 * always takes the allocator's slow path (it bypasses the per-thread
 * cache and takes the arena lock). Large ones keep calloc, which can skip
 * zeroing fresh pages. */
#define CALLOC_SMALL 1024

void *gkm_calloc(size_t nmemb, size_t size)
{
    if (nmemb != 0 && size > SIZE_MAX / nmemb)
        return NULL;
    size_t n = nmemb * size;
    if (n > CALLOC_SMALL)
        return calloc(nmemb, size);
    void *p = malloc(n ? n : 1);
    /* explicit_bzero: gcc would turn malloc + memset(0) back into calloc. */
    if (p != NULL)
        explicit_bzero(p, n);
    return p;
}

void *gkm_xcalloc(size_t nmemb, size_t size)
{
    void *p = gkm_calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (p == NULL)
        oom(nmemb * size);
    return p;
}

void *gkm_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom(n);
    return q;
}

char *gkm_xstrdup(const char *s)
{
    return gkm_xstrndup(s, strlen(s));
}

char *gkm_xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = gkm_xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *gkm_xjoin3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *s = gkm_xmalloc(la + lb + lc + 1);
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memcpy(s + la + lb, c, lc);
    s[la + lb + lc] = '\0';
    return s;
}

char *gkm_xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    char *p = gkm_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void gkm_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int gkm_ct_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    /* Compare over the longer length so the time depends on lengths only;
     * a length mismatch still makes the result unequal. */
    size_t n = alen > blen ? alen : blen;
    volatile unsigned char diff = (unsigned char)(alen != blen);
    for (size_t i = 0; i < n; i++) {
        unsigned char x = i < alen ? (unsigned char)a[i] : 0;
        unsigned char y = i < blen ? (unsigned char)b[i] : 0;
        diff |= (unsigned char)(x ^ y);
    }
    return diff == 0;
}

char *gkm_mask_key(const char *key, char out[GKM_MASK_LEN])
{
    size_t len = key ? strlen(key) : 0;
    if (len < 8) {
        memcpy(out, "....", 5);
        return out;
    }
    out[0] = out[1] = out[2] = '.';
    memcpy(out + 3, key + len - 4, 4);
    out[7] = '\0';
    return out;
}

int gkm_parse_ll(const char *s, long long min, long long max, long long *out,
                 const char **errstr)
{
    char *end = NULL;
    if (s == NULL || *s == '\0' || isspace((unsigned char)*s)) {
        *errstr = "not a number";
        return -1;
    }
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE || *end != '\0') {
        *errstr = errno == ERANGE ? "number out of range" : "not a number";
        return -1;
    }
    if (v < min) {
        *errstr = "number too small";
        return -1;
    }
    if (v > max) {
        *errstr = "number too large";
        return -1;
    }
    *out = v;
    return 0;
}

int gkm_parse_size(const char *s, uint64_t max, uint64_t *out,
                   const char **errstr)
{
    char *end = NULL;
    if (s == NULL || !isdigit((unsigned char)*s)) {
        *errstr = "not a size (examples: 1048576, 512K, 50M, 1G)";
        return -1;
    }
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE) {
        *errstr = "size out of range";
        return -1;
    }
    uint64_t mul = 1;
    if (*end != '\0') {
        switch (toupper((unsigned char)*end)) {
        case 'K': mul = 1024ULL; break;
        case 'M': mul = 1024ULL * 1024; break;
        case 'G': mul = 1024ULL * 1024 * 1024; break;
        default:
            *errstr = "unknown size unit (use K, M or G)";
            return -1;
        }
        end++;
        if (toupper((unsigned char)*end) == 'I')
            end++;
        if (toupper((unsigned char)*end) == 'B')
            end++;
        if (*end != '\0') {
            *errstr = "trailing characters after size";
            return -1;
        }
    }
    if (v > max / mul) {
        *errstr = "size too large";
        return -1;
    }
    *out = v * mul;
    return 0;
}

int gkm_parse_duration_ms(const char *s, uint64_t max_ms, uint64_t *out,
                          const char **errstr)
{
    char *end = NULL;
    if (s == NULL || !(isdigit((unsigned char)*s) || *s == '.')) {
        *errstr = "not a duration (examples: 30, 30s, 1500ms, 5m, 2h)";
        return -1;
    }
    errno = 0;
    double v = strtod(s, &end);
    if (errno == ERANGE || v < 0 || end == s) {
        *errstr = "duration out of range";
        return -1;
    }
    double mul = 1000.0;
    if (strcmp(end, "") == 0 || strcmp(end, "s") == 0)
        mul = 1000.0;
    else if (strcmp(end, "ms") == 0)
        mul = 1.0;
    else if (strcmp(end, "m") == 0)
        mul = 60000.0;
    else if (strcmp(end, "h") == 0)
        mul = 3600000.0;
    else {
        *errstr = "unknown duration unit (use ms, s, m or h)";
        return -1;
    }
    double ms = v * mul;
    if (ms > (double)max_ms) {
        *errstr = "duration too large";
        return -1;
    }
    *out = (uint64_t)(ms + 0.5);
    return 0;
}

time_t gkm_now(void)
{
    return time(NULL);
}

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t gkm_now_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

int64_t gkm_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

int64_t gkm_mono_coarse_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC_COARSE);
}

/* ASCII only, without the locale lookup of tolower(): header names are
 * compared on every request. */
static unsigned char fold(unsigned char c)
{
    return (unsigned char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
}

int gkm_strcaseeq(const char *a, const char *b)
{
    for (;; a++, b++) {
        unsigned char x = fold((unsigned char)*a), y = fold((unsigned char)*b);
        if (x != y)
            return 0;
        if (x == 0)
            return 1;
    }
}

char *gkm_fmt_ll(char *out, long long v)
{
    char tmp[24];
    size_t n = 0;
    /* unsigned arithmetic: -LLONG_MIN does not fit a long long */
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    if (v < 0)
        *out++ = '-';
    while (n > 0)
        *out++ = tmp[--n];
    *out = '\0';
    return out;
}

int gkm_read_file(const char *path, size_t max, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    char *data = NULL;
    size_t n = 0, alloc = 0;
    int saved = 0;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        saved = EISDIR;
        goto fail;
    }
    for (;;) {
        if (n + 1 >= alloc) {
            size_t want = alloc ? alloc * 2 : 4096;
            if (want > max + 2)
                want = max + 2;
            if (n + 1 >= want) {
                saved = EFBIG;
                goto fail;
            }
            data = gkm_xrealloc(data, want);
            alloc = want;
        }
        ssize_t r = read(fd, data + n, alloc - 1 - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            saved = errno;
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max) {
            saved = EFBIG;
            goto fail;
        }
    }
    close(fd);
    if (data == NULL)
        data = gkm_xmalloc(1);
    data[n] = '\0';
    *out = data;
    *len = n;
    return 0;
fail:
    free(data);
    close(fd);
    errno = saved;
    return -1;
}

int gkm_write_file_atomic(const char *path, const void *data, size_t len,
                          unsigned mode)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    int fd = -1, saved = 0;
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode & 0777);
    if (fd < 0)
        return -1;
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            goto fail;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fchmod(fd, mode & 0777) != 0 || fsync(fd) != 0)
        goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        goto fail;
    /* fsync the directory so the rename itself survives a crash. */
    n = snprintf(dir, sizeof(dir), "%s", path);
    if (n >= 0 && (size_t)n < sizeof(dir)) {
        char *slash = strrchr(dir, '/');
        if (slash == dir)
            slash[1] = '\0';
        else if (slash)
            *slash = '\0';
        else
            memcpy(dir, ".", 2);
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
    }
    return 0;
fail:
    saved = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    errno = saved;
    return -1;
}
