/*
 * buf.h - a growable byte buffer with a hard cap (curl's dynbuf idea).
 *
 * Every input-driven buffer in the proxy is one of these: request bodies,
 * upstream error bodies, SSE lines. Growth past the cap fails with -1 and
 * leaves the contents untouched, so the caller turns it into a 413/502
 * rather than an OOM kill. The data is always NUL-terminated (one spare
 * byte not counted in len) so it can be handed to string functions safely.
 */
#ifndef GKM_BUF_H
#define GKM_BUF_H

#include <stddef.h>

struct gkm_buf {
    char *data; /* owned; NULL until first append */
    size_t len;
    size_t alloc;
    size_t cap; /* maximum len */
};

/* Initialise an empty buffer that may hold at most cap bytes. */
void gkm_buf_init(struct gkm_buf *b, size_t cap);
/* Append n bytes. Returns 0, or -1 if len+n would exceed the cap (nothing
 * appended). Aborts only on real OOM below the cap. */
int gkm_buf_append(struct gkm_buf *b, const void *p, size_t n)
    __attribute__((warn_unused_result));
int gkm_buf_append_str(struct gkm_buf *b, const char *s)
    __attribute__((warn_unused_result));
/* Drop the first n bytes (n <= len). */
void gkm_buf_consume(struct gkm_buf *b, size_t n);
/* Empty the buffer, keeping the allocation. */
void gkm_buf_reset(struct gkm_buf *b);
/* Move the contents out: returns the heap string (caller frees; never NULL,
 * an empty buffer gives ""), stores its length in *len if len != NULL, and
 * leaves b empty. */
char *gkm_buf_take(struct gkm_buf *b, size_t *len);
/* Release memory. b may be reused after gkm_buf_init. */
void gkm_buf_free(struct gkm_buf *b);

#endif
