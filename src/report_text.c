/*
 * report_text.c - text helpers of the reports (see report_text.h).
 *
 * Widths count code points (cells are well-formed UTF-8 after
 * gkm_text_safe), which is right for the ASCII and Latin text we print.
 */
#include "report_text.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"

#define REPORT_DAY_MS (24LL * 3600 * 1000)

/* ---- output -------------------------------------------------------------- */

void gkm_out_put(struct gkm_buf *b, const char *s, size_t n)
{
    if (gkm_buf_append(b, s, n) != 0)
        abort(); /* the buffers here have no cap: cannot happen */
}

void gkm_out_str(struct gkm_buf *b, const char *s)
{
    gkm_out_put(b, s, strlen(s));
}

void gkm_out_fmt(struct gkm_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    if ((size_t)n < sizeof(small)) {
        gkm_out_put(b, small, (size_t)n);
        return;
    }
    char *big = gkm_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    gkm_out_put(b, big, (size_t)n);
    free(big);
}

void gkm_out_spaces(struct gkm_buf *b, size_t n)
{
    static const char spaces[] = "                                ";
    while (n > 0) {
        size_t k = n < sizeof(spaces) - 1 ? n : sizeof(spaces) - 1;
        gkm_out_put(b, spaces, k);
        n -= k;
    }
}

void gkm_out_open(struct gkm_buf *b)
{
    gkm_buf_init(b, SIZE_MAX - 1);
}

json_t *gkm_jmust(json_t *v)
{
    if (v == NULL)
        abort(); /* jansson out of memory */
    return v;
}

json_t *gkm_jcount(uint64_t n)
{
    return gkm_jmust(
        json_integer(n > (uint64_t)LLONG_MAX ? LLONG_MAX : (json_int_t)n));
}

/* Keys are ours (ASCII) or safe text, so only OOM can make jansson refuse. */
void gkm_jset(json_t *o, const char *k, json_t *v)
{
    if (json_object_set_new(o, k, gkm_jmust(v)) != 0)
        abort();
}

char *gkm_jtake(json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2));
    json_decref(v);
    if (s == NULL)
        abort();
    char *out = gkm_xasprintf("%s\n", s);
    free(s);
    return out;
}

/* ---- safe text ----------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence of a non-ASCII character at s
 * (n bytes left), or 0; its code point goes to *cp. */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2;
        *cp = s[0] & 0x1F;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3;
        *cp = s[0] & 0x0F;
        if (s[0] == 0xE0)
            lo = 0xA0; /* no overlong forms */
        else if (s[0] == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4;
        *cp = s[0] & 0x07;
        if (s[0] == 0xF0)
            lo = 0x90;
        else if (s[0] == 0xF4)
            hi = 0x8F; /* nothing above U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        *cp = (*cp << 6) | (s[i] & 0x3F);
    }
    return len;
}

/* A copy of s (NULL: "") safe for a terminal and for JSON: tabs and line
 * breaks become spaces, other control characters (C0, DEL, C1) and bytes
 * that are not well-formed UTF-8 become '?'. Caller frees. */
char *gkm_text_safe(const char *s)
{
    if (s == NULL)
        return gkm_xstrdup("");
    size_t n = strlen(s);
    const unsigned char *p = (const unsigned char *)s;
    char *out = gkm_xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp = 0;
        size_t len;
        if (p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
            out[o++] = ' ';
            i++;
        } else if (p[i] < 0x20 || p[i] == 0x7F) {
            out[o++] = '?';
            i++;
        } else if (p[i] < 0x80) {
            out[o++] = (char)p[i++];
        } else if ((len = utf8_seq(p + i, n - i, &cp)) == 0) {
            out[o++] = '?';
            i++;
        } else if (cp < 0xA0) {
            out[o++] = '?';
            i += len;
        } else {
            memcpy(out + o, p + i, len);
            o += len;
            i += len;
        }
    }
    out[o] = '\0';
    return out;
}

/* Display width of sanitised text: its code points. */
size_t gkm_text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    return w;
}

/* Cut sanitised text s in place to at most max code points, ending with
 * "..." when cut. */
void gkm_text_cut(char *s, size_t max)
{
    if (gkm_text_width(s) <= max || max < 3)
        return;
    size_t w = 0, i = 0;
    for (; s[i]; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80 && w++ == max - 3)
            break;
    }
    memcpy(s + i, "...", 4);
}

/* ---- tables -------------------------------------------------------------- */

void gkm_table_init(struct gkm_table *t, const char *align)
{
    memset(t, 0, sizeof(*t));
    t->ncols = strlen(align);
    t->align = align;
}

/* Append a row of t->ncols cells (const char *, NULL: empty), copied. */
void gkm_table_add(struct gkm_table *t, ...)
{
    if (t->nrows == t->arows) {
        t->arows = t->arows ? t->arows * 2 : 16;
        t->cells = gkm_xrealloc(t->cells,
                                t->arows * t->ncols * sizeof(*t->cells));
    }
    va_list ap;
    va_start(ap, t);
    for (size_t c = 0; c < t->ncols; c++)
        t->cells[t->nrows * t->ncols + c] =
            gkm_text_safe(va_arg(ap, const char *));
    va_end(ap);
    t->nrows++;
}

void gkm_table_render(const struct gkm_table *t, struct gkm_buf *out)
{
    size_t *width = gkm_xcalloc(t->ncols, sizeof(*width));
    for (size_t i = 0; i < t->nrows * t->ncols; i++) {
        size_t w = gkm_text_width(t->cells[i]);
        if (w > width[i % t->ncols])
            width[i % t->ncols] = w;
    }
    for (size_t r = 0; r < t->nrows; r++) {
        size_t start = out->len;
        for (size_t c = 0; c < t->ncols; c++) {
            const char *cell = t->cells[r * t->ncols + c];
            size_t pad = width[c] - gkm_text_width(cell);
            if (c > 0)
                gkm_out_str(out, "  ");
            if (t->align[c] == 'R')
                gkm_out_spaces(out, pad);
            gkm_out_str(out, cell);
            if (t->align[c] != 'R')
                gkm_out_spaces(out, pad);
        }
        while (out->len > start && out->data[out->len - 1] == ' ')
            out->len--;
        gkm_out_str(out, "\n");
    }
    free(width);
}

void gkm_table_free(struct gkm_table *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
}

/* ---- formatting ---------------------------------------------------------- */

/* "1,234,567" */
const char *gkm_text_count(uint64_t v, char out[32])
{
    char digits[24];
    int n = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)v);
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
    return out;
}

static void utc_tm(int64_t ms, struct tm *tm)
{
    time_t t = (time_t)(ms / 1000);
    if (gmtime_r(&t, tm) == NULL)
        memset(tm, 0, sizeof(*tm));
}

/* "2026-11-27T08:45:00Z" */
const char *gkm_text_iso(int64_t ms, char out[GKM_TIME_LEN])
{
    struct tm tm;
    utc_tm(ms, &tm);
    snprintf(out, GKM_TIME_LEN, "%04d-%02d-%02dT%02d:%02d:%02dZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec);
    return out;
}

/* "08:00:00Z", or the ISO form when 24 hours or more after now. */
const char *gkm_text_until(int64_t ms, int64_t now, char out[GKM_TIME_LEN])
{
    if (ms - now >= REPORT_DAY_MS)
        return gkm_text_iso(ms, out);
    struct tm tm;
    utc_tm(ms, &tm);
    snprintf(out, GKM_TIME_LEN, "%02d:%02d:%02dZ", tm.tm_hour, tm.tm_min,
             tm.tm_sec);
    return out;
}

