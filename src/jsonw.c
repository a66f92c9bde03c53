/*
 * jsonw.c - compact serializer for jansson values (see jsonw.h).
 */
#include "jsonw.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Length of the valid UTF-8 sequence starting at s (at most n bytes), or 0
 * when it is not one (overlong forms, surrogates and code points past
 * U+10FFFF are invalid, as in jansson's own check). s[0] >= 0x80. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* Bytes that end a run of bytes copied as they are: '"', '\\', control
 * characters and anything non-ASCII (checked, then copied). */
static int special(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\' || c >= 0x80;
}

int gkm_json_write_string(struct gkm_buf *out, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, run = 0;
    /* Most strings (keys, ids, short texts) need no escape: one append. */
    if (len <= 254) {
        char tmp[256];
        while (i < len && !special(s[i]))
            i++;
        if (i == len) {
            tmp[0] = '"';
            memcpy(tmp + 1, s, len);
            tmp[len + 1] = '"';
            return gkm_buf_append(out, tmp, len + 2);
        }
        i = 0;
    }
    if (gkm_buf_append(out, "\"", 1) != 0)
        return -1;
    while (i < len) {
        unsigned char c = s[i];
        if (!special(c)) {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t l = utf8_seq(s + i, len - i);
            if (l == 0)
                return -1;
            i += l;
            continue;
        }
        if (i > run && gkm_buf_append(out, s + run, i - run) != 0)
            return -1;
        char esc[8];
        size_t el = 2;
        esc[0] = '\\';
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default: {
            static const char hex[] = "0123456789ABCDEF";
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0x0F];
            el = 6;
        }
        }
        if (gkm_buf_append(out, esc, el) != 0)
            return -1;
        i++;
        run = i;
    }
    if (i > run && gkm_buf_append(out, s + run, i - run) != 0)
        return -1;
    return gkm_buf_append(out, "\"", 1);
}

/* jansson's real format: %.17g, then ".0" when the text has neither a
 * point nor an exponent, and no '+' or leading zeros in the exponent. */
static int write_real(struct gkm_buf *out, double d)
{
    char b[40];
    int n = snprintf(b, sizeof(b) - 3, "%.17g", d);
    if (n < 0 || (size_t)n >= sizeof(b) - 3)
        return -1;
    size_t len = (size_t)n;
    if (memchr(b, '.', len) == NULL && memchr(b, 'e', len) == NULL) {
        if (memchr(b, 'n', len) != NULL) /* inf, nan: not JSON */
            return -1;
        memcpy(b + len, ".0", 3);
        len += 2;
    }
    char *e = memchr(b, 'e', len);
    if (e != NULL) {
        char *start = e + 1;
        char *end = start + 1;
        if (*start == '-')
            start++;
        while (*end == '0')
            end++;
        if (end != start) {
            memmove(start, end, len - (size_t)(end - b) + 1);
            len -= (size_t)(end - start);
        }
    }
    return gkm_buf_append(out, b, len);
}

static int write_value(struct gkm_buf *out, const json_t *v, int depth)
{
    char num[32];
    if (v == NULL || depth > GKM_JSONW_MAX_DEPTH)
        return -1;
    switch (json_typeof(v)) {
    case JSON_NULL:
        return gkm_buf_append(out, "null", 4);
    case JSON_TRUE:
        return gkm_buf_append(out, "true", 4);
    case JSON_FALSE:
        return gkm_buf_append(out, "false", 5);
    case JSON_INTEGER: {
        char *end = gkm_fmt_ll(num, (long long)json_integer_value(v));
        return gkm_buf_append(out, num, (size_t)(end - num));
    }
    case JSON_REAL:
        return write_real(out, json_real_value(v));
    case JSON_STRING:
        return gkm_json_write_string(out, json_string_value(v),
                                     json_string_length(v));
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        if (gkm_buf_append(out, "[", 1) != 0)
            return -1;
        for (size_t i = 0; i < n; i++) {
            if (i && gkm_buf_append(out, ",", 1) != 0)
                return -1;
            if (write_value(out, json_array_get(v, i), depth + 1) != 0)
                return -1;
        }
        return gkm_buf_append(out, "]", 1);
    }
    case JSON_OBJECT: {
        int first = 1;
        if (gkm_buf_append(out, "{", 1) != 0)
            return -1;
        for (void *it = json_object_iter((json_t *)v); it != NULL;
             it = json_object_iter_next((json_t *)v, it)) {
            if (!first && gkm_buf_append(out, ",", 1) != 0)
                return -1;
            first = 0;
            if (gkm_json_write_string(out, json_object_iter_key(it),
                                      json_object_iter_key_len(it)) != 0 ||
                gkm_buf_append(out, ":", 1) != 0 ||
                write_value(out, json_object_iter_value(it), depth + 1) != 0)
                return -1;
        }
        return gkm_buf_append(out, "}", 1);
    }
    }
    return -1;
}

int gkm_json_write(struct gkm_buf *out, const json_t *v)
{
    return write_value(out, v, 1);
}

char *gkm_json_dump(const json_t *v, size_t *len)
{
    struct gkm_buf b;
    gkm_buf_init(&b, SIZE_MAX - 1);
    if (gkm_json_write(&b, v) != 0) {
        gkm_buf_free(&b);
        return NULL;
    }
    return gkm_buf_take(&b, len);
}

/* Byte classes for gkm_json_squeeze: JSON whitespace, structural
 * characters, the quote that opens a string; 0 for everything else. */
enum { SQ_WS = 1, SQ_STRUCT = 2, SQ_QUOTE = 4 };
static const unsigned char sq_class[256] = {
    [' '] = SQ_WS, ['\t'] = SQ_WS, ['\n'] = SQ_WS, ['\r'] = SQ_WS,
    ['{'] = SQ_STRUCT, ['}'] = SQ_STRUCT, ['['] = SQ_STRUCT,
    [']'] = SQ_STRUCT, [','] = SQ_STRUCT, [':'] = SQ_STRUCT,
    ['"'] = SQ_QUOTE,
};

static unsigned sq(char c)
{
    return sq_class[(unsigned char)c];
}

/* The end of the string whose opening quote is at in[i]: the index just
 * past its closing quote, or n if it does not close. */
static size_t string_end(const char *in, size_t n, size_t i)
{
    size_t q = i + 1;
    while (q < n) {
        const char *e = memchr(in + q, '"', n - q);
        if (e == NULL)
            return n;
        size_t at = (size_t)(e - in), k = 0;
        while (at - k > i + 1 && in[at - k - 1] == '\\')
            k++; /* backslashes right before it */
        if (k % 2 == 0)
            return at + 1;
        q = at + 1;
    }
    return n;
}

size_t gkm_json_squeeze(const char *in, size_t n, char *out)
{
    size_t i = 0, o = 0;
    while (i < n) {
        unsigned k = sq(in[i]);
        if (k == 0 || k == SQ_STRUCT) {
            out[o++] = in[i++];
            continue;
        }
        if (k == SQ_QUOTE) { /* a string, through its closing quote */
            size_t e = string_end(in, n, i);
            memmove(out + o, in + i, e - i);
            o += e - i;
            i = e;
            continue;
        }
        size_t j = i + 1;
        while (j < n && sq(in[j]) == SQ_WS)
            j++;
        if (o > 0 && j < n && sq(out[o - 1]) != SQ_STRUCT &&
            sq(in[j]) != SQ_STRUCT) {
            memmove(out + o, in + i, j - i); /* between two tokens: kept */
            o += j - i;
        }
        i = j;
    }
    return o;
}
