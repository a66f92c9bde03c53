/* Unit tests for tap.c: usage, finishReason and error facts from whole
 * answers and from SSE / JSON-array streams fed in arbitrary slices. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tap.h"
#include "util.h"

static const char *const SSE =
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"The "
    "sky\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": "
    "{\"promptTokenCount\": 6,\"candidatesTokenCount\": 3,"
    "\"totalTokenCount\": 30,\"thoughtsTokenCount\": 21}}\r\n\r\n"
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" is "
    "\\\"blue\\\" {really}\"}],\"role\": \"model\"},\"finishReason\": "
    "\"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 6,"
    "\"candidatesTokenCount\": 11,\"totalTokenCount\": 38,"
    "\"promptTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 6}],"
    "\"thoughtsTokenCount\": 21}}\r\n\r\n";

static void feed_split(struct gkm_tap *t, const char *s, size_t n, size_t at)
{
    gkm_tap_feed(t, s, at);
    gkm_tap_feed(t, s + at, n - at);
}

static void test_sse_every_split(void **state)
{
    (void)state;
    size_t n = strlen(SSE);
    for (size_t at = 0; at <= n; at++) {
        struct gkm_tap *t = gkm_tap_new(GKM_TAP_SSE);
        feed_split(t, SSE, n, at);
        const struct gkm_tap_result *r = gkm_tap_finish(t);
        assert_true(r->saw_usage);
        assert_int_equal(r->prompt_tokens, 6);
        assert_int_equal(r->output_tokens, 11); /* the last one counts */
        assert_int_equal(r->thinking_tokens, 21);
        assert_true(r->saw_finish);
        assert_false(r->saw_error);
        gkm_tap_free(t);
    }
    /* Byte by byte. */
    struct gkm_tap *t = gkm_tap_new(GKM_TAP_SSE);
    for (size_t i = 0; i < n; i++)
        gkm_tap_feed(t, SSE + i, 1);
    const struct gkm_tap_result *r = gkm_tap_finish(t);
    assert_int_equal(r->output_tokens, 11);
    assert_true(r->saw_finish);
    gkm_tap_free(t);
}

static void test_truncated_stream(void **state)
{
    (void)state;
    const char *first = strstr(SSE, "\r\n\r\n") + 4;
    struct gkm_tap *t = gkm_tap_new(GKM_TAP_SSE);
    gkm_tap_feed(t, SSE, (size_t)(first - SSE));
    const struct gkm_tap_result *r = gkm_tap_finish(t);
    assert_true(r->saw_usage);
    assert_int_equal(r->output_tokens, 3);
    assert_false(r->saw_finish); /* no finishReason: an incomplete answer */
    gkm_tap_free(t);
}

static void test_error_event_and_raw_tail(void **state)
{
    (void)state;
    static const char *const tails[] = {
        "data: {\"error\": {\"code\": 503, \"message\": \"The model is "
        "overloaded.\", \"status\": \"UNAVAILABLE\"}}\r\n\r\n",
        "{\n  \"error\": {\n    \"code\": 429,\n    \"message\": \"Resource "
        "has been exhausted (e.g. check quota).\",\n    \"status\": "
        "\"RESOURCE_EXHAUSTED\"\n  }\n}\n",
    };
    const char *first_end = strstr(SSE, "\r\n\r\n") + 4;
    size_t head = (size_t)(first_end - SSE);
    for (size_t k = 0; k < 2; k++) {
        size_t tl = strlen(tails[k]);
        char *all = gkm_xmalloc(head + tl + 1);
        memcpy(all, SSE, head);
        memcpy(all + head, tails[k], tl + 1);
        for (size_t at = 0; at <= head + tl; at += 7) {
            struct gkm_tap *t = gkm_tap_new(GKM_TAP_SSE);
            feed_split(t, all, head + tl, at);
            const struct gkm_tap_result *r = gkm_tap_finish(t);
            assert_true(r->saw_error);
            assert_non_null(r->error);
            assert_int_equal(r->error->cls, k == 0 ? GKM_ERRC_SERVER
                                                  : GKM_ERRC_RATE_UNKNOWN);
            assert_int_equal(r->output_tokens, 3);
            gkm_tap_free(t);
        }
        free(all);
    }
}

static void test_whole_and_array(void **state)
{
    (void)state;
    const char *body =
        "{\n  \"candidates\": [{\"content\": {\"parts\": [{\"text\": "
        "\"usageMetadata is just a word\"}]}, \"finishReason\": \"STOP\"}],\n"
        "  \"usageMetadata\": {\"promptTokenCount\": 2, "
        "\"candidatesTokenCount\": 3, \"totalTokenCount\": 5}\n}";
    struct gkm_tap *t = gkm_tap_new(GKM_TAP_WHOLE);
    feed_split(t, body, strlen(body), 10);
    const struct gkm_tap_result *r = gkm_tap_finish(t);
    assert_true(r->saw_usage && r->saw_finish && !r->saw_error);
    assert_int_equal(r->prompt_tokens, 2);
    assert_int_equal(r->output_tokens, 3);
    assert_int_equal(r->thinking_tokens, 0);
    gkm_tap_free(t);

    /* Read in place: the same facts as fed in pieces; and after a feed,
     * gkm_tap_whole adds its bytes to what was fed. */
    t = gkm_tap_new(GKM_TAP_WHOLE);
    r = gkm_tap_whole(t, body, strlen(body));
    assert_true(r->saw_usage && r->saw_finish && !r->saw_error &&
                !r->framing_error);
    assert_int_equal(r->prompt_tokens, 2);
    assert_int_equal(r->output_tokens, 3);
    assert_ptr_equal(gkm_tap_finish(t), r);
    gkm_tap_free(t);
    t = gkm_tap_new(GKM_TAP_WHOLE);
    gkm_tap_feed(t, body, 20);
    r = gkm_tap_whole(t, body + 20, strlen(body) - 20);
    assert_true(r->saw_usage && r->saw_finish);
    assert_int_equal(r->output_tokens, 3);
    gkm_tap_free(t);
    const char *err = "{\"error\": {\"code\": 429, \"message\": \"Resource "
                      "has been exhausted\", \"status\": \"RESOURCE_EXHAUSTED\"}}";
    t = gkm_tap_new(GKM_TAP_WHOLE);
    r = gkm_tap_whole(t, err, strlen(err));
    assert_true(r->saw_error && !r->saw_usage);
    assert_non_null(r->error);
    gkm_tap_free(t);

    const char *arr = "[{\n \"candidates\": [],\n \"usageMetadata\": "
                      "{\"promptTokenCount\": 4, \"candidatesTokenCount\": "
                      "1}\n}\n,\r\n{\n \"candidates\": [{\"finishReason\": "
                      "\"MAX_TOKENS\"}],\n \"usageMetadata\": "
                      "{\"promptTokenCount\": 4, \"candidatesTokenCount\": "
                      "9}\n}\n]";
    t = gkm_tap_new(GKM_TAP_ARRAY);
    for (size_t i = 0; arr[i]; i++)
        gkm_tap_feed(t, arr + i, 1);
    r = gkm_tap_finish(t);
    assert_true(r->saw_usage && r->saw_finish);
    assert_int_equal(r->output_tokens, 9);
    gkm_tap_free(t);

    /* A blocked prompt is a complete answer without candidates. */
    const char *blocked = "{\"promptFeedback\": {\"blockReason\": \"SAFETY\"}, "
                          "\"usageMetadata\": {\"promptTokenCount\": 7}}";
    t = gkm_tap_new(GKM_TAP_WHOLE);
    gkm_tap_feed(t, blocked, strlen(blocked));
    r = gkm_tap_finish(t);
    assert_true(r->saw_finish);
    assert_int_equal(r->prompt_tokens, 7);
    gkm_tap_free(t);

    /* The usage object is delimited by a scan that skips strings: braces
     * and escaped quotes inside them, and a string ending in an escaped
     * backslash, do not end it early. */
    const char *tricky =
        "{\"usageMetadata\": {\"note\": \"a \\\"}\\\" {b\", "
        "\"path\": \"C:\\\\\", \"promptTokenCount\": 12, "
        "\"details\": [{\"modality\": \"}}\"}], "
        "\"candidatesTokenCount\": 34}, \"candidatesTokenCount\": 99, "
        "\"candidates\": [{\"finishReason\": \"STOP\"}]}";
    t = gkm_tap_new(GKM_TAP_WHOLE);
    r = gkm_tap_whole(t, tricky, strlen(tricky));
    assert_true(r->saw_usage && r->saw_finish);
    assert_int_equal(r->prompt_tokens, 12);
    assert_int_equal(r->output_tokens, 34);
    gkm_tap_free(t);
    /* An unterminated string inside it: no usage, and no read past the end. */
    const char *cut = "{\"usageMetadata\": {\"note\": \"abc\\\"";
    t = gkm_tap_new(GKM_TAP_WHOLE);
    r = gkm_tap_whole(t, cut, strlen(cut));
    assert_false(r->saw_usage);
    gkm_tap_free(t);
}

static void test_long_stream_keeps_tail(void **state)
{
    (void)state;
    /* 3 MB of events: the last usage is what counts; memory stays bounded
     * (the tail buffer is capped; this test would still pass if it were
     * not, but ASan's RSS in CI would show it). */
    struct gkm_tap *t = gkm_tap_new(GKM_TAP_SSE);
    char ev[512];
    for (int i = 1; i <= 6000; i++) {
        int n = snprintf(ev, sizeof(ev),
                         "data: {\"candidates\": [{\"content\": {\"parts\": "
                         "[{\"text\": \"%0300d\"}]}}], \"usageMetadata\": "
                         "{\"promptTokenCount\": 5, \"candidatesTokenCount\": "
                         "%d}}\r\n\r\n",
                         i, i);
        gkm_tap_feed(t, ev, (size_t)n);
    }
    const struct gkm_tap_result *r = gkm_tap_finish(t);
    assert_int_equal(r->output_tokens, 6000);
    assert_false(r->saw_finish);
    gkm_tap_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_every_split),
        cmocka_unit_test(test_truncated_stream),
        cmocka_unit_test(test_error_event_and_raw_tail),
        cmocka_unit_test(test_whole_and_array),
        cmocka_unit_test(test_long_stream_keeps_tail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
