/*
 * sse.c - SSE push parser, JSON-array stream framer, SSE writer (sse.h).
 *
 * Invariants: the parser's line buffer only holds the bytes of an
 * unterminated line (complete lines inside one feed are processed in place,
 * without copying); the data buffer holds "value\n" per data line of the
 * current event, so dispatch strips exactly one trailing "\n".
 */
#include "sse.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "jsonw.h"
#include "util.h"

const char *gkm_sse_strerror(int rc)
{
    switch (rc) {
    case GKM_SSE_OK: return "ok";
    case GKM_SSE_ELINE: return "stream line too long";
    case GKM_SSE_EEVENT: return "stream event too large";
    case GKM_SSE_EABORT: return "stream processing aborted";
    case GKM_SSE_ESYNTAX: return "unexpected data between stream objects";
    case GKM_SSE_ETRUNC: return "stream ended inside a JSON array";
    default: return "unknown stream error";
    }
}

/* ------------------------------------------------------------------ */
/* SSE parser                                                           */

struct gkm_sse_parser {
    struct gkm_buf line; /* unterminated line carried between feeds */
    struct gkm_buf data; /* "value\n" per data line of the current event */
    struct gkm_buf raw;  /* raw-tail lines of the current event */
    size_t max_line;
    size_t max_event;
    int have_data;  /* a data field was seen in the current event */
    int skip_lf;    /* the previous byte was CR: a following LF is part of it */
    int first_line; /* nothing processed yet: strip a UTF-8 BOM */
    int keep_raw;
    int err; /* sticky error rc, 0 if none */
};

struct gkm_sse_parser *gkm_sse_parser_new(size_t max_line, size_t max_event)
{
    struct gkm_sse_parser *p = gkm_xcalloc(1, sizeof(*p));
    p->max_line = max_line;
    p->max_event = max_event;
    gkm_buf_init(&p->line, max_line);
    /* +1: the data buffer also holds the trailing "\n" that dispatch strips */
    gkm_buf_init(&p->data, max_event + 1);
    gkm_buf_init(&p->raw, max_event + 1);
    p->first_line = 1;
    return p;
}

void gkm_sse_parser_free(struct gkm_sse_parser *p)
{
    if (p == NULL)
        return;
    gkm_buf_free(&p->line);
    gkm_buf_free(&p->data);
    gkm_buf_free(&p->raw);
    free(p);
}

void gkm_sse_parser_keep_raw(struct gkm_sse_parser *p, int on)
{
    p->keep_raw = on != 0;
}

static void reset_event(struct gkm_sse_parser *p)
{
    gkm_buf_reset(&p->data);
    gkm_buf_reset(&p->raw);
    p->have_data = 0;
}

static int dispatch(struct gkm_sse_parser *p, gkm_sse_cb cb, void *arg)
{
    struct gkm_buf *b = NULL;
    if (p->have_data)
        b = &p->data;
    else if (p->raw.len > 0)
        b = &p->raw;
    if (b == NULL) {
        reset_event(p);
        return GKM_SSE_OK;
    }
    /* Strip the single trailing "\n" added after the last line. */
    b->len--;
    b->data[b->len] = '\0';
    int r = cb(arg, b->data, b->len);
    reset_event(p);
    return r == 0 ? GKM_SSE_OK : GKM_SSE_EABORT;
}

static int field_is(const char *f, size_t n, const char *name)
{
    size_t l = strlen(name);
    return n == l && memcmp(f, name, l) == 0;
}

/* Process one complete line (without terminator). */
static int process_line(struct gkm_sse_parser *p, const char *s, size_t n,
                        gkm_sse_cb cb, void *arg)
{
    if (p->first_line) {
        p->first_line = 0;
        if (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
            s += 3;
            n -= 3;
        }
    }
    if (n == 0)
        return dispatch(p, cb, arg);
    if (s[0] == ':')
        return GKM_SSE_OK;
    const char *colon = memchr(s, ':', n);
    size_t flen = colon ? (size_t)(colon - s) : n;
    const char *v = colon ? colon + 1 : s + n;
    size_t vlen = (size_t)(s + n - v);
    if (vlen > 0 && v[0] == ' ') {
        v++;
        vlen--;
    }
    if (field_is(s, flen, "data")) {
        if (gkm_buf_append(&p->data, v, vlen) != 0 ||
            gkm_buf_append(&p->data, "\n", 1) != 0)
            return GKM_SSE_EEVENT;
        p->have_data = 1;
        return GKM_SSE_OK;
    }
    if (field_is(s, flen, "event") || field_is(s, flen, "id") ||
        field_is(s, flen, "retry") || !p->keep_raw)
        return GKM_SSE_OK;
    if (gkm_buf_append(&p->raw, s, n) != 0 ||
        gkm_buf_append(&p->raw, "\n", 1) != 0)
        return GKM_SSE_EEVENT;
    return GKM_SSE_OK;
}

int gkm_sse_parser_feed(struct gkm_sse_parser *p, const char *buf, size_t len,
                        gkm_sse_cb cb, void *arg)
{
    size_t i = 0;
    int r = GKM_SSE_OK;
    if (p->err)
        return p->err;
    while (i < len) {
        if (p->skip_lf) {
            p->skip_lf = 0;
            if (buf[i] == '\n') {
                i++;
                continue;
            }
        }
        size_t j = i;
        while (j < len && buf[j] != '\n' && buf[j] != '\r')
            j++;
        size_t seg = j - i;
        if (j == len) {
            /* Unterminated: keep it for the next feed. */
            if (gkm_buf_append(&p->line, buf + i, seg) != 0) {
                r = GKM_SSE_ELINE;
                goto out;
            }
            break;
        }
        if (p->line.len == 0) {
            if (seg > p->max_line) {
                r = GKM_SSE_ELINE;
                goto out;
            }
            r = process_line(p, buf + i, seg, cb, arg);
        } else {
            if (gkm_buf_append(&p->line, buf + i, seg) != 0) {
                r = GKM_SSE_ELINE;
                goto out;
            }
            r = process_line(p, p->line.data, p->line.len, cb, arg);
            gkm_buf_reset(&p->line);
        }
        if (r != GKM_SSE_OK)
            goto out;
        if (buf[j] == '\r')
            p->skip_lf = 1;
        i = j + 1;
    }
out:
    if (r != GKM_SSE_OK)
        p->err = r;
    return r;
}

int gkm_sse_parser_finish(struct gkm_sse_parser *p, gkm_sse_cb cb, void *arg)
{
    int r = p->err;
    if (r != GKM_SSE_OK)
        goto out;
    if (p->line.len > 0) {
        r = process_line(p, p->line.data, p->line.len, cb, arg);
        if (r != GKM_SSE_OK)
            goto out;
    }
    r = dispatch(p, cb, arg);
out:
    gkm_buf_reset(&p->line);
    reset_event(p);
    p->skip_lf = 0;
    p->first_line = 1;
    p->err = 0;
    return r;
}

/* ------------------------------------------------------------------ */
/* JSON-array framer                                                    */

struct gkm_json_framer {
    struct gkm_buf obj; /* the object being collected */
    size_t depth;       /* brace depth; 0 = between objects */
    int in_str;
    int esc;
    int arr_open;  /* saw '[' at depth 0 */
    int arr_close; /* saw ']' at depth 0 after it */
    int err;
};

struct gkm_json_framer *gkm_json_framer_new(size_t max_obj)
{
    struct gkm_json_framer *f = gkm_xcalloc(1, sizeof(*f));
    gkm_buf_init(&f->obj, max_obj);
    return f;
}

void gkm_json_framer_free(struct gkm_json_framer *f)
{
    if (f == NULL)
        return;
    gkm_buf_free(&f->obj);
    free(f);
}

int gkm_json_framer_feed(struct gkm_json_framer *f, const char *buf,
                         size_t len, gkm_sse_cb cb, void *arg)
{
    size_t i = 0, start = 0;
    int r = GKM_SSE_OK;
    if (f->err)
        return f->err;
    while (i < len) {
        char c = buf[i];
        if (f->depth == 0) {
            if (c == '{') {
                f->depth = 1;
                start = i;
            } else if (c == '[') {
                f->arr_open = 1;
                f->arr_close = 0;
            } else if (c == ']') {
                f->arr_close = 1;
            } else if (c != ' ' && c != '\t' && c != '\r' && c != '\n' &&
                       c != ',') {
                r = GKM_SSE_ESYNTAX;
                goto out;
            }
            i++;
            continue;
        }
        if (f->in_str) {
            if (f->esc)
                f->esc = 0;
            else if (c == '\\')
                f->esc = 1;
            else if (c == '"')
                f->in_str = 0;
        } else if (c == '"') {
            f->in_str = 1;
        } else if (c == '{') {
            f->depth++;
        } else if (c == '}') {
            if (--f->depth == 0) {
                if (gkm_buf_append(&f->obj, buf + start, i + 1 - start) != 0) {
                    r = GKM_SSE_EEVENT;
                    goto out;
                }
                int cr = cb(arg, f->obj.data, f->obj.len);
                gkm_buf_reset(&f->obj);
                if (cr != 0) {
                    r = GKM_SSE_EABORT;
                    goto out;
                }
            }
        }
        i++;
    }
    if (f->depth > 0 && gkm_buf_append(&f->obj, buf + start, len - start) != 0)
        r = GKM_SSE_EEVENT;
out:
    if (r != GKM_SSE_OK)
        f->err = r;
    return r;
}

int gkm_json_framer_finish(struct gkm_json_framer *f)
{
    int r = f->err;
    if (r == GKM_SSE_OK && (f->depth > 0 || (f->arr_open && !f->arr_close)))
        r = GKM_SSE_ETRUNC;
    gkm_buf_reset(&f->obj);
    f->depth = 0;
    f->in_str = f->esc = 0;
    f->arr_open = f->arr_close = 0;
    f->err = 0;
    return r;
}

/* ------------------------------------------------------------------ */
/* SSE writer                                                           */

int gkm_sse_write_data(struct gkm_buf *out, const char *data, size_t len)
{
    /* Size the whole event first so a cap failure appends nothing. */
    size_t lines = 1, need;
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\r' && i + 1 < len && data[i + 1] == '\n')
            i++;
        if (data[i] == '\r' || data[i] == '\n')
            lines++;
    }
    need = len + lines * 7 + 1; /* "data: " + "\n" per line, final "\n" */
    if (need < len || out->len > out->cap || need > out->cap - out->len)
        return -1;
    size_t s = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && data[i] != '\r' && data[i] != '\n')
            continue;
        if (gkm_buf_append(out, "data: ", 6) != 0 ||
            gkm_buf_append(out, data + s, i - s) != 0 ||
            gkm_buf_append(out, "\n", 1) != 0)
            return -1; /* cannot happen: sized above */
        if (i < len && data[i] == '\r' && i + 1 < len && data[i + 1] == '\n')
            i++;
        s = i + 1;
    }
    return gkm_buf_append(out, "\n", 1);
}

int gkm_sse_write_json(struct gkm_buf *out, const struct json_t *v)
{
    /* Compact JSON never contains a raw newline: one data line, printed
     * in place. On failure the buffer is put back as it was. */
    size_t mark = out->len;
    if (gkm_buf_append(out, "data: ", 6) != 0 ||
        gkm_json_write(out, (const json_t *)v) != 0 ||
        gkm_buf_append(out, "\n\n", 2) != 0) {
        out->len = mark;
        if (out->data)
            out->data[mark] = '\0';
        return -1;
    }
    return 0;
}

int gkm_sse_write_done(struct gkm_buf *out)
{
    return gkm_buf_append(out, "data: [DONE]\n\n", 14);
}

int gkm_sse_write_comment(struct gkm_buf *out, const char *text)
{
    size_t n = strlen(text);
    if (out->len > out->cap || n + 4 > out->cap - out->len)
        return -1;
    if (gkm_buf_append(out, ": ", 2) != 0 || gkm_buf_append(out, text, n) != 0)
        return -1;
    return gkm_buf_append(out, "\n\n", 2);
}
