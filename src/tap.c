/*
 * tap.c - usage and error facts from a passing Gemini answer (see tap.h).
 */
#define _GNU_SOURCE 1 /* memmem, memrchr */
#include "tap.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"

#define TAP_MAX (16 * 1024 * 1024)

/* Streams are not framed event by event (that cost more than relaying
 * them): the tap looks for the few markers that matter as the bytes pass,
 * across chunk boundaries, and keeps the last TAIL_KEEP bytes, where the
 * final usageMetadata (cumulative, so the last one counts) and any error
 * object (Gemini ends a failing stream with it) are found at the end. */
#define TAIL_KEEP (128 * 1024)
#define CARRY 15 /* longest marker - 1 */

struct gkm_tap {
    enum gkm_tap_kind kind;
    struct gkm_buf whole; /* GKM_TAP_WHOLE: the body; streams: the tail */
    char carry[CARRY];    /* streams: the previous chunk's last bytes */
    size_t ncarry;
    int saw_error_marker;
    struct gkm_tap_result r;
    struct gkm_err_info *error; /* r.error, allocated when one is seen */
    int finished;
};

/* Classify an error object found in the answer (the first one wins). */
static void set_error(struct gkm_tap *t, const json_t *o)
{
    t->error = gkm_xmalloc(sizeof(*t->error));
    gkm_gerror_from_json(200, o, t->error);
    t->r.saw_error = 1;
    t->r.error = t->error;
}

struct gkm_tap *gkm_tap_new(enum gkm_tap_kind kind)
{
    struct gkm_tap *t = gkm_xcalloc(1, sizeof(*t));
    t->kind = kind;
    gkm_buf_init(&t->whole, kind == GKM_TAP_WHOLE ? TAP_MAX : 2 * TAIL_KEEP);
    return t;
}

void gkm_tap_free(struct gkm_tap *t)
{
    if (t == NULL)
        return;
    gkm_buf_free(&t->whole);
    free(t->error);
    free(t);
}

static int64_t jint(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static void see_object(struct gkm_tap *t, const json_t *o)
{
    if (json_is_array(o)) { /* array-wrapped errors */
        size_t i;
        json_t *v;
        json_array_foreach(o, i, v) see_object(t, v);
        return;
    }
    if (!json_is_object(o))
        return;
    if (json_is_object(json_object_get(o, "error")) && !t->r.saw_error)
        set_error(t, o);
    json_t *um = json_object_get(o, "usageMetadata");
    if (json_is_object(um)) {
        t->r.saw_usage = 1;
        t->r.prompt_tokens = jint(um, "promptTokenCount");
        t->r.output_tokens = jint(um, "candidatesTokenCount");
        t->r.thinking_tokens = jint(um, "thoughtsTokenCount");
    }
    json_t *cands = json_object_get(o, "candidates");
    size_t i;
    json_t *c;
    json_array_foreach(cands, i, c) {
        if (json_is_string(json_object_get(c, "finishReason")))
            t->r.saw_finish = 1;
    }
    if (cands == NULL && json_object_get(o, "promptFeedback") != NULL)
        t->r.saw_finish = 1; /* a blocked prompt is a complete answer */
}

/* The {...} value that follows key `"name":` in data, as a span, found by
 * a brace scan that respects strings; 0 if absent or unbalanced. */
static int find_object(const char *data, size_t len, const char *name,
                       const char **start, size_t *n)
{
    const char *k = memmem(data, len, name, strlen(name));
    if (k == NULL)
        return 0;
    const char *p = k + strlen(name), *end = data + len;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' ||
                       *p == ':'))
        p++;
    if (p >= end || *p != '{')
        return 0;
    /* Outside strings only '"', '{' and '}' matter; a string is skipped to
     * its closing quote with memchr, past escaped quotes. */
    int depth = 0;
    for (const char *q = p; q < end; q++) {
        char c = *q;
        if (c == '"') {
            for (;;) {
                q = memchr(q + 1, '"', (size_t)(end - q - 1));
                if (q == NULL)
                    return 0;
                const char *b = q;
                while (b[-1] == '\\')
                    b--;
                if ((q - b) % 2 == 0)
                    break; /* an even run of backslashes: not escaped */
            }
        } else if (c == '{') {
            depth++;
        } else if (c == '}' && --depth == 0) {
            *start = p;
            *n = (size_t)(q - p + 1);
            return 1;
        }
    }
    return 0;
}

/* The integer after `"name":` in the span, or 0. */
static int64_t span_int(const char *s, size_t n, const char *name)
{
    size_t nl = strlen(name);
    const char *k = memmem(s, n, name, nl);
    if (k == NULL)
        return 0;
    const char *p = k + nl, *end = s + n;
    while (p < end && (*p == ' ' || *p == ':' || *p == '\t' || *p == '\r' ||
                       *p == '\n'))
        p++;
    int64_t v = 0;
    int digits = 0;
    while (p < end && *p >= '0' && *p <= '9' && digits < 18) {
        v = v * 10 + (*p - '0');
        p++;
        digits++;
    }
    return v;
}

static int on_object(void *arg, const char *data, size_t len)
{
    struct gkm_tap *t = arg;
    /* Parse as little as possible: relaying must stay cheap. A whole parse
     * only for (rare) error objects; the usage object alone otherwise. */
    if (memmem(data, len, "\"error\"", 7) != NULL) {
        json_t *o = json_loadb(data, len, 0, NULL);
        if (o != NULL) {
            see_object(t, o);
            json_decref(o);
            return 0;
        }
    }
    const char *u;
    size_t un;
    if (find_object(data, len, "\"usageMetadata\"", &u, &un)) {
        /* Top-level counters of the usage object, read in place (a jansson
         * parse of it costs more than the rest of relaying the answer).
         * The object holds only numbers and arrays of small objects; the
         * counters we want are unique keys in it. */
        t->r.saw_usage = 1;
        t->r.prompt_tokens = span_int(u, un, "\"promptTokenCount\"");
        t->r.output_tokens = span_int(u, un, "\"candidatesTokenCount\"");
        t->r.thinking_tokens = span_int(u, un, "\"thoughtsTokenCount\"");
    }
    if (memmem(data, len, "\"finishReason\"", 14) != NULL)
        t->r.saw_finish = 1;
    else if (memmem(data, len, "\"promptFeedback\"", 16) != NULL &&
             memmem(data, len, "\"candidates\"", 12) == NULL)
        t->r.saw_finish = 1; /* a blocked prompt is a complete answer */
    return 0;
}

/* Does marker occur in carry + data (so also across the boundary)? */
static int seen(const struct gkm_tap *t, const char *data, size_t n,
                const char *marker)
{
    size_t ml = strlen(marker);
    if (memmem(data, n, marker, ml) != NULL)
        return 1;
    if (t->ncarry == 0)
        return 0;
    /* Across the boundary: only a match that starts in the carry counts
     * here, so look at the carry's quotes (memmem's per-call set-up would
     * cost more than these few bytes). */
    char joint[2 * CARRY];
    size_t take = n < CARRY ? n : CARRY;
    memcpy(joint, t->carry, t->ncarry);
    memcpy(joint + t->ncarry, data, take);
    size_t jn = t->ncarry + take;
    for (size_t i = 0; i < t->ncarry; i++)
        if (joint[i] == '"' && jn - i >= ml && memcmp(joint + i, marker, ml) == 0)
            return 1;
    return 0;
}

static void stream_feed(struct gkm_tap *t, const char *data, size_t n)
{
    if (!t->r.saw_finish && seen(t, data, n, "\"finishReason\""))
        t->r.saw_finish = 1;
    if (!t->saw_error_marker && seen(t, data, n, "\"error\""))
        t->saw_error_marker = 1;
    /* Keep the last CARRY bytes of (carry + data) for the next boundary. */
    if (n >= CARRY) {
        memcpy(t->carry, data + n - CARRY, CARRY);
        t->ncarry = CARRY;
    } else {
        size_t keep = t->ncarry + n > CARRY ? CARRY - n : t->ncarry;
        memmove(t->carry, t->carry + t->ncarry - keep, keep);
        memcpy(t->carry + keep, data, n);
        t->ncarry = keep + n;
    }
    /* The tail: at most 2 * TAIL_KEEP, trimmed back to TAIL_KEEP. */
    if (n >= TAIL_KEEP) {
        gkm_buf_reset(&t->whole);
        data += n - TAIL_KEEP;
        n = TAIL_KEEP;
    } else if (t->whole.len + n > 2 * TAIL_KEEP) {
        gkm_buf_consume(&t->whole, t->whole.len + n - TAIL_KEEP);
    }
    if (gkm_buf_append(&t->whole, data, n) != 0)
        gkm_buf_reset(&t->whole); /* cannot happen: sized above */
}

/* The last occurrence of marker (which starts with '"') in data, or NULL:
 * a backward walk over the quotes, since what is wanted is near the end
 * (memmem from the front would pass every earlier occurrence). */
static const char *last_of(const char *data, size_t n, const char *marker)
{
    size_t ml = strlen(marker);
    size_t left = n;
    while (left > 0) {
        const char *q = memrchr(data, '"', left);
        if (q == NULL)
            return NULL;
        if ((size_t)(data + n - q) >= ml && memcmp(q, marker, ml) == 0)
            return q;
        left = (size_t)(q - data);
    }
    return NULL;
}

static void stream_finish(struct gkm_tap *t)
{
    const char *tail = t->whole.data ? t->whole.data : "";
    size_t n = t->whole.len;
    const char *u = last_of(tail, n, "\"usageMetadata\"");
    const char *span;
    size_t spann;
    if (u != NULL && find_object(u, (size_t)(tail + n - u), "\"usageMetadata\"",
                                 &span, &spann)) {
        t->r.saw_usage = 1;
        t->r.prompt_tokens = span_int(span, spann, "\"promptTokenCount\"");
        t->r.output_tokens = span_int(span, spann, "\"candidatesTokenCount\"");
        t->r.thinking_tokens = span_int(span, spann, "\"thoughtsTokenCount\"");
    }
    if (!t->saw_error_marker)
        return;
    const char *e = last_of(tail, n, "\"error\"");
    if (e != NULL && find_object(e, (size_t)(tail + n - e), "\"error\"", &span,
                                 &spann)) {
        json_t *inner = json_loadb(span, spann, 0, NULL);
        if (json_is_object(inner)) {
            json_t *o = json_pack("{s:O}", "error", inner);
            if (!t->r.saw_error)
                set_error(t, o);
            json_decref(o);
        }
        json_decref(inner);
    }
}

void gkm_tap_feed(struct gkm_tap *t, const char *data, size_t n)
{
    if (t->finished || n == 0)
        return;
    if (t->kind != GKM_TAP_WHOLE) {
        stream_feed(t, data, n);
        return;
    }
    if (gkm_buf_append(&t->whole, data, n) != 0)
        t->r.framing_error = 1; /* over TAP_MAX: no accounting */
}

const struct gkm_tap_result *gkm_tap_finish(struct gkm_tap *t)
{
    if (t->finished)
        return &t->r;
    t->finished = 1;
    if (t->kind != GKM_TAP_WHOLE)
        stream_finish(t);
    else if (!t->r.framing_error && t->whole.len > 0)
        (void)on_object(t, t->whole.data, t->whole.len);
    return &t->r;
}

const struct gkm_tap_result *gkm_tap_whole(struct gkm_tap *t, const char *data,
                                           size_t n)
{
    if (t->finished || t->kind != GKM_TAP_WHOLE || t->whole.len > 0) {
        gkm_tap_feed(t, data, n);
        return gkm_tap_finish(t);
    }
    t->finished = 1;
    if (n > TAP_MAX)
        t->r.framing_error = 1; /* as gkm_tap_feed past its cap */
    else if (n > 0)
        (void)on_object(t, data, n);
    return &t->r;
}
