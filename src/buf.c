/*
 * buf.c - capped growable buffer (see buf.h).
 */
#include "buf.h"

#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "util.h"

void gkm_buf_init(struct gkm_buf *b, size_t cap)
{
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    b->cap = cap;
}

int gkm_buf_append(struct gkm_buf *b, const void *p, size_t n)
{
    if (n > b->cap || b->len > b->cap - n)
        return -1;
    if (b->len + n + 1 > b->alloc) {
        size_t want = b->alloc ? b->alloc : 256;
        while (want < b->len + n + 1)
            want = want > SIZE_MAX / 2 ? b->len + n + 1 : want * 2;
        if (want > b->cap + 1)
            want = b->cap + 1;
        b->data = gkm_xrealloc(b->data, want);
        b->alloc = want;
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int gkm_buf_append_str(struct gkm_buf *b, const char *s)
{
    return gkm_buf_append(b, s, strlen(s));
}

void gkm_buf_consume(struct gkm_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data)
        b->data[b->len] = '\0';
}

void gkm_buf_reset(struct gkm_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

char *gkm_buf_take(struct gkm_buf *b, size_t *len)
{
    char *p = b->data;
    if (p == NULL)
        p = gkm_xcalloc(1, 1);
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    return p;
}

void gkm_buf_free(struct gkm_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
}
