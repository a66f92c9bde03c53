/*
 * util.h - small helpers shared by every module.
 *
 * Allocation policy: internal, bounded allocations go through the x*
 * wrappers, which log and abort() on out-of-memory (a proxy that cannot
 * allocate a few bytes cannot serve anyone). Input-driven growth never uses
 * them directly: it goes through struct gkm_buf (buf.h), which has a cap and
 * reports failure instead.
 */
#ifndef GKM_UTIL_H
#define GKM_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define GKM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define GKM_ATTR_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define GKM_WUR __attribute__((warn_unused_result))

/* Abort-on-OOM allocators. Never return NULL. */
void *gkm_xmalloc(size_t n);
void *gkm_xcalloc(size_t nmemb, size_t size);
/* calloc() for the libraries (NULL on failure), faster for small blocks:
 * glibc's calloc never uses the per-thread cache, malloc does. */
void *gkm_calloc(size_t nmemb, size_t size);
void *gkm_xrealloc(void *p, size_t n);
char *gkm_xstrdup(const char *s);
char *gkm_xstrndup(const char *s, size_t n);
/* printf into a fresh heap string (aborts on OOM). Caller frees. */
char *gkm_xasprintf(const char *fmt, ...) GKM_ATTR_PRINTF(1, 2);
/* a, b and c (each NUL-terminated, "" allowed) joined into a fresh heap
 * string; the per-request URLs and header lines, without printf's cost. */
char *gkm_xjoin3(const char *a, const char *b, const char *c);

/* Format a message into err (errlen bytes; both may be NULL/0). For the
 * "char *err, size_t errlen" out-parameters used across the modules. */
void gkm_set_err(char *err, size_t errlen, const char *fmt, ...)
    GKM_ATTR_PRINTF(3, 4);

/* Constant-time comparison of two byte strings: the time taken depends only
 * on the lengths, never on where they differ. Returns 1 if equal. */
int gkm_ct_equal(const char *a, size_t alen, const char *b, size_t blen);

/* Masked form of a secret for logs and replies: "...abcd" (last 4 chars), or
 * "...." when shorter than 8. Writes a NUL-terminated string into out
 * (at least 8 bytes). Returns out. */
#define GKM_MASK_LEN 8
char *gkm_mask_key(const char *key, char out[GKM_MASK_LEN]);

/* Bounded integer parse of a whole NUL-terminated string (no sign for
 * unsigned use, no trailing junk, within [min, max]). Returns 0 and sets
 * *out, or -1 and sets *errstr to a static description. */
int gkm_parse_ll(const char *s, long long min, long long max, long long *out,
                 const char **errstr) GKM_WUR;

/* Parse a byte size like "50M", "512k", "1G", "1048576" (binary units).
 * Returns 0 or -1 with *errstr. */
int gkm_parse_size(const char *s, uint64_t max, uint64_t *out,
                   const char **errstr) GKM_WUR;

/* Parse a duration like "300", "300s", "1500ms", "5m", "2h", "1.5s" into
 * milliseconds. Returns 0 or -1 with *errstr. */
int gkm_parse_duration_ms(const char *s, uint64_t max_ms, uint64_t *out,
                          const char **errstr) GKM_WUR;

/* Wall clock (seconds and ms since the epoch) and monotonic ms. */
time_t gkm_now(void);
int64_t gkm_now_ms(void);
int64_t gkm_mono_ms(void);
/* Monotonic ms as of the last clock tick (a few ms behind at most; never
 * goes back): for deadlines and idle times checked in seconds, read on
 * every request where gkm_mono_ms's exact clock costs more (a clock read
 * through the hypervisor on virtual machines). Compare only with values
 * from this same function. */
int64_t gkm_mono_coarse_ms(void);

/* Case-insensitive ASCII compare of two NUL-terminated strings. */
int gkm_strcaseeq(const char *a, const char *b);

/* Write v in decimal and a NUL to out (room for GKM_LL_LEN bytes); returns
 * a pointer to the NUL. For hot paths, where snprintf costs far more. */
#define GKM_LL_LEN 21
char *gkm_fmt_ll(char *out, long long v);

/* Read a whole file of at most max bytes into a fresh NUL-terminated buffer.
 * Returns 0 and sets *out and *len, or -1 with errno set (EFBIG when too big). */
int gkm_read_file(const char *path, size_t max, char **out, size_t *len) GKM_WUR;

/* Write data to path atomically and durably: temp file in the same
 * directory, write (EINTR-safe), fsync, fchmod(mode), rename, fsync(dir).
 * Returns 0 or -1 with errno set; the old file is untouched on failure. */
int gkm_write_file_atomic(const char *path, const void *data, size_t len,
                          unsigned mode) GKM_WUR;

#endif
