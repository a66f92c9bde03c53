/*
 * test_sse.c - SSE push parser, JSON-array framer and SSE writer.
 *
 * Every parser case is checked three ways: the whole input in one feed, the
 * input split at every position into two feeds, and one byte per feed. The
 * collected events must be identical.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "buf.h"
#include "sse.h"
#include "util.h"

/* Events collected by a callback, "\x1e"-separated, plus a stop switch. */
struct sink {
    struct gkm_buf events;
    size_t count;
    size_t stop_after; /* 0 = never stop */
};

static void sink_init(struct sink *s)
{
    gkm_buf_init(&s->events, 1 << 20);
    s->count = 0;
    s->stop_after = 0;
}

static int on_event(void *arg, const char *data, size_t len)
{
    struct sink *s = arg;
    assert_int_equal(data[len], '\0');
    assert_int_equal(gkm_buf_append(&s->events, data, len), 0);
    assert_int_equal(gkm_buf_append(&s->events, "\x1e", 1), 0);
    s->count++;
    return s->stop_after && s->count >= s->stop_after;
}

/* Parse input with the given feed pattern (step 0 = one feed; otherwise
 * split at `split` then feed `step` bytes at a time). Returns the events
 * string (heap) and the final rc. */
static char *sse_run(const char *in, size_t len, size_t split, size_t step,
                     int keep_raw, size_t max_line, size_t max_event, int *rc)
{
    struct sink s;
    sink_init(&s);
    struct gkm_sse_parser *p = gkm_sse_parser_new(max_line, max_event);
    gkm_sse_parser_keep_raw(p, keep_raw);
    int r = GKM_SSE_OK;
    if (step == 0) {
        r = gkm_sse_parser_feed(p, in, len, on_event, &s);
    } else {
        r = gkm_sse_parser_feed(p, in, split, on_event, &s);
        for (size_t i = split; i < len && r == GKM_SSE_OK; i += step) {
            size_t n = len - i < step ? len - i : step;
            r = gkm_sse_parser_feed(p, in + i, n, on_event, &s);
        }
    }
    if (r == GKM_SSE_OK)
        r = gkm_sse_parser_finish(p, on_event, &s);
    gkm_sse_parser_free(p);
    *rc = r;
    return gkm_buf_take(&s.events, NULL);
}

/* Assert that every feed pattern yields `expect` (events joined by \x1e). */
static void check_sse(const char *in, int keep_raw, const char *expect)
{
    size_t len = strlen(in);
    int rc;
    char *whole = sse_run(in, len, 0, 0, keep_raw, 4096, 4096, &rc);
    assert_int_equal(rc, GKM_SSE_OK);
    assert_string_equal(whole, expect);
    for (size_t split = 0; split <= len; split++) {
        char *got = sse_run(in, len, split, len ? len : 1, keep_raw, 4096,
                            4096, &rc);
        assert_int_equal(rc, GKM_SSE_OK);
        assert_string_equal(got, expect);
        free(got);
    }
    char *bytes = sse_run(in, len, 0, 1, keep_raw, 4096, 4096, &rc);
    assert_int_equal(rc, GKM_SSE_OK);
    assert_string_equal(bytes, expect);
    free(bytes);
    free(whole);
}

static void test_sse_line_endings(void **state)
{
    (void)state;
    check_sse("data: a\n\ndata: b\n\n", 0, "a\x1e" "b\x1e");
    check_sse("data: a\r\n\r\ndata: b\r\n\r\n", 0, "a\x1e" "b\x1e");
    check_sse("data: a\r\rdata: b\r\r", 0, "a\x1e" "b\x1e");
    check_sse("data: a\r\n\ndata: b\n\r\n", 0, "a\x1e" "b\x1e");
}

static void test_sse_fields(void **state)
{
    (void)state;
    /* Space after the colon is optional; only one is removed. */
    check_sse("data:x\n\ndata:  y\n\n", 0, "x\x1e y\x1e");
    /* Multiple data lines are joined with \n. */
    check_sse("data: {\"a\":\ndata: 1}\n\n", 0, "{\"a\":\n1}\x1e");
    /* Comments, event, id, retry and unknown fields are ignored. */
    check_sse(": ping\nevent: message\nid: 7\nretry: 10\nfoo: bar\ndata: z\n\n",
              0, "z\x1e");
    /* A "data" line without colon is an empty data line. */
    check_sse("data\n\n", 0, "\x1e");
    check_sse("data\ndata\n\n", 0, "\n\x1e");
    /* Blank lines without data dispatch nothing. */
    check_sse("\n\n\n: c\n\n", 0, "");
    /* Leading BOM is skipped. */
    check_sse("\xEF\xBB\xBF" "data: bom\n\n", 0, "bom\x1e");
    /* Gemini's real framing. */
    check_sse("data: {\"candidates\": []}\r\n\r\n", 0,
              "{\"candidates\": []}\x1e");
}

static void test_sse_finish_dispatches_pending(void **state)
{
    (void)state;
    /* No final blank line, no final newline: still delivered at EOF. */
    check_sse("data: a\n\ndata: last", 0, "a\x1e" "last\x1e");
    check_sse("data: a\n\ndata: last\r\n", 0, "a\x1e" "last\x1e");
}

static void test_sse_raw_tail(void **state)
{
    (void)state;
    const char *in = "data: {\"x\":1}\r\n\r\n{\n  \"error\": {\n    \"code\": 503"
                     "\n  }\n}\n";
    check_sse(in, 1, "{\"x\":1}\x1e{\n  \"error\": {\n    \"code\": 503\n  }\n"
                     "}\x1e");
    /* Without raw mode the tail lines are unknown fields: ignored. */
    check_sse(in, 0, "{\"x\":1}\x1e");
    /* A data field wins over raw lines in the same event. */
    check_sse("junk\ndata: d\n\n", 1, "d\x1e");
}

static void test_sse_caps(void **state)
{
    (void)state;
    int rc;
    char *ev;
    /* Line longer than max_line, in one feed and byte by byte. */
    ev = sse_run("data: 0123456789\n\n", 18, 0, 0, 0, 8, 64, &rc);
    assert_int_equal(rc, GKM_SSE_ELINE);
    free(ev);
    ev = sse_run("data: 0123456789\n\n", 18, 0, 1, 0, 8, 64, &rc);
    assert_int_equal(rc, GKM_SSE_ELINE);
    free(ev);
    /* Line exactly max_line is fine. */
    ev = sse_run("data: 12\n\n", 10, 0, 1, 0, 8, 64, &rc);
    assert_int_equal(rc, GKM_SSE_OK);
    assert_string_equal(ev, "12\x1e");
    free(ev);
    /* Event data over max_event across several lines. */
    ev = sse_run("data: 1234\ndata: 5678\n\n", 23, 0, 0, 0, 64, 8, &rc);
    assert_int_equal(rc, GKM_SSE_EEVENT);
    free(ev);
    ev = sse_run("data: 1234\ndata: 567\n\n", 22, 0, 0, 0, 64, 8, &rc);
    assert_int_equal(rc, GKM_SSE_OK);
    assert_string_equal(ev, "1234\n567\x1e");
    free(ev);
}

static void test_sse_errors_sticky_and_abort(void **state)
{
    (void)state;
    struct sink s;
    sink_init(&s);
    s.stop_after = 1;
    struct gkm_sse_parser *p = gkm_sse_parser_new(64, 64);
    int r = gkm_sse_parser_feed(p, "data: a\n\ndata: b\n\n", 18, on_event, &s);
    assert_int_equal(r, GKM_SSE_EABORT);
    assert_int_equal(s.count, 1);
    r = gkm_sse_parser_feed(p, "data: c\n\n", 9, on_event, &s);
    assert_int_equal(r, GKM_SSE_EABORT);
    assert_int_equal(s.count, 1);
    /* finish reports the error and resets the parser for reuse. */
    assert_int_equal(gkm_sse_parser_finish(p, on_event, &s), GKM_SSE_EABORT);
    s.stop_after = 0;
    assert_int_equal(gkm_sse_parser_feed(p, "data: d\n\n", 9, on_event, &s),
                     GKM_SSE_OK);
    assert_int_equal(s.count, 2);
    assert_int_equal(gkm_sse_parser_finish(p, on_event, &s), GKM_SSE_OK);
    gkm_sse_parser_free(p);
    gkm_buf_free(&s.events);
    assert_string_equal(gkm_sse_strerror(GKM_SSE_ELINE),
                        "stream line too long");
    assert_string_equal(gkm_sse_strerror(42), "unknown stream error");
}

/* ---- JSON-array framer ---- */

static char *framer_run(const char *in, size_t len, size_t split, size_t step,
                        size_t max, int *rc, int *frc)
{
    struct sink s;
    sink_init(&s);
    struct gkm_json_framer *f = gkm_json_framer_new(max);
    int r;
    if (step == 0) {
        r = gkm_json_framer_feed(f, in, len, on_event, &s);
    } else {
        r = gkm_json_framer_feed(f, in, split, on_event, &s);
        for (size_t i = split; i < len && r == GKM_SSE_OK; i += step) {
            size_t n = len - i < step ? len - i : step;
            r = gkm_json_framer_feed(f, in + i, n, on_event, &s);
        }
    }
    *rc = r;
    *frc = gkm_json_framer_finish(f);
    gkm_json_framer_free(f);
    return gkm_buf_take(&s.events, NULL);
}

static void check_framer(const char *in, const char *expect, int want_frc)
{
    size_t len = strlen(in);
    int rc, frc;
    for (size_t split = 0; split <= len; split++) {
        char *got = framer_run(in, len, split, len ? len : 1, 1 << 16, &rc,
                               &frc);
        assert_int_equal(rc, GKM_SSE_OK);
        assert_int_equal(frc, want_frc);
        assert_string_equal(got, expect);
        free(got);
    }
    char *got = framer_run(in, len, 0, 1, 1 << 16, &rc, &frc);
    assert_int_equal(rc, GKM_SSE_OK);
    assert_int_equal(frc, want_frc);
    assert_string_equal(got, expect);
    free(got);
}

static void test_framer_array(void **state)
{
    (void)state;
    /* Pretty-printed, CRLF separators, braces and quotes inside strings. */
    const char *in = "[{\r\n  \"a\": \"x}y{\\\"z\\\\\",\r\n  \"b\": [1, {\"c\": 2}]"
                     "\r\n}\r\n,\r\n{\"d\": \"\\\\\"}\r\n]";
    check_framer(in,
                 "{\r\n  \"a\": \"x}y{\\\"z\\\\\",\r\n  \"b\": [1, {\"c\": 2}]"
                 "\r\n}\x1e{\"d\": \"\\\\\"}\x1e",
                 GKM_SSE_OK);
    /* A bare error object (no array) is emitted too. */
    check_framer("{\"error\": {\"code\": 400}}\n",
                 "{\"error\": {\"code\": 400}}\x1e", GKM_SSE_OK);
    /* Array-wrapped error. */
    check_framer("[{\"error\": {}}]", "{\"error\": {}}\x1e", GKM_SSE_OK);
    /* Empty array. */
    check_framer("[]", "", GKM_SSE_OK);
    /* Truncated: inside an object, or array never closed. */
    check_framer("[{\"a\": 1}, {\"b\"", "{\"a\": 1}\x1e", GKM_SSE_ETRUNC);
    check_framer("[{\"a\": 1},", "{\"a\": 1}\x1e", GKM_SSE_ETRUNC);
}

static void test_framer_errors(void **state)
{
    (void)state;
    int rc, frc;
    char *got = framer_run("[{\"a\":1} x", 10, 0, 0, 64, &rc, &frc);
    assert_int_equal(rc, GKM_SSE_ESYNTAX);
    assert_string_equal(got, "{\"a\":1}\x1e");
    free(got);
    got = framer_run("[{\"a\":\"0123456789\"}]", 20, 0, 1, 8, &rc, &frc);
    assert_int_equal(rc, GKM_SSE_EEVENT);
    free(got);
    /* Callback stop is sticky. */
    struct sink s;
    sink_init(&s);
    s.stop_after = 1;
    struct gkm_json_framer *f = gkm_json_framer_new(64);
    assert_int_equal(gkm_json_framer_feed(f, "[{}, {}]", 8, on_event, &s),
                     GKM_SSE_EABORT);
    assert_int_equal(gkm_json_framer_feed(f, "{}", 2, on_event, &s),
                     GKM_SSE_EABORT);
    assert_int_equal(s.count, 1);
    assert_int_equal(gkm_json_framer_finish(f), GKM_SSE_EABORT);
    gkm_json_framer_free(f);
    gkm_buf_free(&s.events);
}

/* ---- writer ---- */

static void test_writer(void **state)
{
    (void)state;
    struct gkm_buf out;
    gkm_buf_init(&out, 1024);
    assert_int_equal(gkm_sse_write_data(&out, "a\nb\r\nc\rd", 8), 0);
    assert_string_equal(out.data, "data: a\ndata: b\ndata: c\ndata: d\n\n");
    gkm_buf_reset(&out);
    json_t *j = json_pack("{ss si}", "k", "line\nbreak", "n", 1);
    assert_int_equal(gkm_sse_write_json(&out, j), 0);
    json_decref(j);
    assert_string_equal(out.data, "data: {\"k\":\"line\\nbreak\",\"n\":1}\n\n");
    gkm_buf_reset(&out);
    assert_int_equal(gkm_sse_write_done(&out), 0);
    assert_int_equal(gkm_sse_write_comment(&out, "keep-alive"), 0);
    assert_string_equal(out.data, "data: [DONE]\n\n: keep-alive\n\n");
    gkm_buf_reset(&out);
    assert_int_equal(gkm_sse_write_data(&out, "", 0), 0);
    assert_string_equal(out.data, "data: \n\n");
    gkm_buf_free(&out);

    /* Cap: an event that does not fit appends nothing. */
    gkm_buf_init(&out, 16);
    assert_int_equal(gkm_sse_write_data(&out, "12345678", 8), 0); /* 16 */
    assert_int_equal(out.len, 16);
    assert_int_equal(gkm_sse_write_data(&out, "", 0), -1);
    assert_int_equal(gkm_sse_write_comment(&out, "x"), -1);
    assert_int_equal(out.len, 16);
    gkm_buf_reset(&out);
    assert_int_equal(gkm_sse_write_data(&out, "123456789", 9), -1);
    assert_int_equal(out.len, 0);
    gkm_buf_free(&out);
}

/* Round trip: what the writer produces, the parser reads back. */
static void test_writer_parser_roundtrip(void **state)
{
    (void)state;
    const char *payloads[] = {"{}", "x\ny", "", "multi\r\nline\rtext"};
    const char *expect[] = {"{}", "x\ny", "", "multi\nline\ntext"};
    struct gkm_buf out;
    gkm_buf_init(&out, 4096);
    for (size_t i = 0; i < GKM_ARRAY_LEN(payloads); i++)
        assert_int_equal(gkm_sse_write_data(&out, payloads[i],
                                            strlen(payloads[i])), 0);
    struct gkm_buf want;
    gkm_buf_init(&want, 4096);
    for (size_t i = 0; i < GKM_ARRAY_LEN(expect); i++) {
        assert_int_equal(gkm_buf_append_str(&want, expect[i]), 0);
        assert_int_equal(gkm_buf_append(&want, "\x1e", 1), 0);
    }
    check_sse(out.data, 0, want.data);
    gkm_buf_free(&out);
    gkm_buf_free(&want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_line_endings),
        cmocka_unit_test(test_sse_fields),
        cmocka_unit_test(test_sse_finish_dispatches_pending),
        cmocka_unit_test(test_sse_raw_tail),
        cmocka_unit_test(test_sse_caps),
        cmocka_unit_test(test_sse_errors_sticky_and_abort),
        cmocka_unit_test(test_framer_array),
        cmocka_unit_test(test_framer_errors),
        cmocka_unit_test(test_writer),
        cmocka_unit_test(test_writer_parser_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
