/*
 * fuzz_sse.c - libFuzzer driver for the SSE parser, the JSON-array framer
 * and the SSE writer (src/sse.c).
 *
 * Differential: the input is parsed once in a single feed and once split
 * into pieces whose sizes come from the input itself; both runs must
 * produce the same events and the same result. The writer must produce
 * events the parser reads back as the (line-normalised) payload.
 * Input layout: byte 0 selects caps and modes, the rest is the stream.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "sse.h"

struct rec {
    struct gkm_buf ev;
    size_t n;
};

static int on_event(void *arg, const char *data, size_t len)
{
    struct rec *r = arg;
    if (data[len] != '\0')
        abort();
    /* Length-prefix each event so boundaries are compared too. */
    if (gkm_buf_append(&r->ev, &len, sizeof(len)) != 0 ||
        gkm_buf_append(&r->ev, data, len) != 0)
        return 1;
    r->n++;
    return 0;
}

static void check_same(struct rec *a, int ra, struct rec *b, int rb)
{
    if (ra != rb || a->ev.len != b->ev.len ||
        (a->ev.len && memcmp(a->ev.data, b->ev.data, a->ev.len) != 0))
        abort();
}

static int run_sse(const uint8_t *d, size_t n, int split, int raw,
                   size_t max_line, size_t max_event, struct rec *r)
{
    struct gkm_sse_parser *p = gkm_sse_parser_new(max_line, max_event);
    gkm_sse_parser_keep_raw(p, raw);
    int rc = GKM_SSE_OK;
    size_t i = 0;
    while (i < n && rc == GKM_SSE_OK) {
        size_t step = split ? (size_t)(d[i] % 7) + 1 : n - i;
        if (step > n - i)
            step = n - i;
        rc = gkm_sse_parser_feed(p, (const char *)d + i, step, on_event, r);
        i += step;
    }
    if (rc == GKM_SSE_OK)
        rc = gkm_sse_parser_finish(p, on_event, r);
    gkm_sse_parser_free(p);
    return rc;
}

static int run_framer(const uint8_t *d, size_t n, int split, size_t max,
                      struct rec *r)
{
    struct gkm_json_framer *f = gkm_json_framer_new(max);
    int rc = GKM_SSE_OK;
    size_t i = 0;
    while (i < n && rc == GKM_SSE_OK) {
        size_t step = split ? (size_t)(d[i] % 5) + 1 : n - i;
        if (step > n - i)
            step = n - i;
        rc = gkm_json_framer_feed(f, (const char *)d + i, step, on_event, r);
        i += step;
    }
    int fr = gkm_json_framer_finish(f);
    gkm_json_framer_free(f);
    return rc == GKM_SSE_OK ? fr : rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    size_t max_line = (mode & 1) ? 16 : 1 << 16;
    size_t max_event = (mode & 2) ? 32 : 1 << 16;
    int raw = (mode & 4) != 0;
    struct rec a, b;

    gkm_buf_init(&a.ev, 1 << 22);
    gkm_buf_init(&b.ev, 1 << 22);
    a.n = b.n = 0;
    int ra = run_sse(d, n, 0, raw, max_line, max_event, &a);
    int rb = run_sse(d, n, 1, raw, max_line, max_event, &b);
    check_same(&a, ra, &b, rb);
    gkm_buf_reset(&a.ev);
    gkm_buf_reset(&b.ev);
    a.n = b.n = 0;

    size_t max_obj = (mode & 8) ? 24 : 1 << 16;
    ra = run_framer(d, n, 0, max_obj, &a);
    rb = run_framer(d, n, 1, max_obj, &b);
    check_same(&a, ra, &b, rb);
    gkm_buf_reset(&a.ev);
    gkm_buf_reset(&b.ev);
    a.n = b.n = 0;

    /* Writer round trip: one event whose payload is the input with CR and
     * CRLF normalised to LF reads back exactly. NUL bytes are fine. */
    struct gkm_buf out;
    gkm_buf_init(&out, 1 << 22);
    if (gkm_sse_write_data(&out, (const char *)d, n) != 0)
        abort();
    struct gkm_sse_parser *p = gkm_sse_parser_new(1 << 22, 1 << 22);
    if (gkm_sse_parser_feed(p, out.data, out.len, on_event, &a) != 0 ||
        gkm_sse_parser_finish(p, on_event, &a) != 0 || a.n != 1)
        abort();
    gkm_sse_parser_free(p);
    size_t len;
    memcpy(&len, a.ev.data, sizeof(len));
    const char *got = a.ev.data + sizeof(len);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        char c = (char)d[i];
        if (c == '\r') {
            if (i + 1 < n && d[i + 1] == '\n')
                i++;
            c = '\n';
        }
        if (j >= len || got[j++] != c)
            abort();
    }
    if (j != len)
        abort();
    gkm_buf_free(&out);
    gkm_buf_free(&a.ev);
    gkm_buf_free(&b.ev);
    return 0;
}
