/*
 * test_redact.c - the streaming key redactor: split points, byte-by-byte
 * feeding, long runs, the exact secret, and bounded hold-back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "redact.h"
#include "util.h"

/* 39-character Google-style keys. */
#define GK1 "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe"
#define GK2 "AIzaSyB_abcdefghijklmnopqrstuvwxyz01234"

static char *feed_chunks(const char *secret, const char *text, size_t len,
                         size_t chunk)
{
    struct gkm_redactor *r = gkm_redactor_new(secret);
    struct gkm_buf out;
    gkm_buf_init(&out, 1 << 24);
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        assert_int_equal(gkm_redactor_feed(r, text + off, n, &out), 0);
    }
    assert_int_equal(gkm_redactor_finish(r, &out), 0);
    gkm_redactor_free(r);
    return gkm_buf_take(&out, NULL);
}

static void test_one_shot(void **state)
{
    (void)state;
    size_t n;
    const char *in = "Consumer 'api_key:" GK1 "' has been suspended.";
    char *out = gkm_redact_all(NULL, in, strlen(in), &n);
    assert_string_equal(out, "Consumer 'api_key:...ewQe' has been suspended.");
    assert_int_equal(n, strlen(out));
    free(out);

    /* Not keys: too short, wrong prefix, prefix at the end. */
    const char *plain = "AIza AIzaSyShort aiza" GK1 "x AIz AIza";
    char *lower = gkm_xstrdup(plain);
    lower[21] = 'a'; /* "aIza..." : not a key */
    out = gkm_redact_all(NULL, lower, strlen(lower), &n);
    assert_string_equal(out, lower);
    free(out);
    free(lower);

    out = gkm_redact_all(NULL, "", 0, &n);
    assert_string_equal(out, "");
    assert_int_equal(n, 0);
    free(out);
}

static void test_exact_length_and_long_run(void **state)
{
    (void)state;
    size_t n;
    /* Exactly 39, followed by a non-key character. */
    char *out = gkm_redact_all(NULL, GK1 ".", strlen(GK1 "."), &n);
    assert_string_equal(out, "...ewQe.");
    free(out);
    /* Longer runs are masked whole (the mask comes from the first 39). */
    const char *in = "k=" GK1 "EXTRA_more-chars&x=1";
    out = gkm_redact_all(NULL, in, strlen(in), &n);
    assert_string_equal(out, "k=...ewQe&x=1");
    free(out);
    /* 38 characters: not a key. */
    char short_key[40];
    memcpy(short_key, GK1, 38);
    short_key[38] = '\0';
    out = gkm_redact_all(NULL, short_key, 38, &n);
    assert_string_equal(out, short_key);
    free(out);
}

static void test_secret_not_aiza(void **state)
{
    (void)state;
    const char *secret = "sk-proj-0123456789abcdef";
    const char *in = "bad key sk-proj-0123456789abcdef; also sk-proj-0123 "
                     "and " GK2 " end";
    size_t n;
    char *out = gkm_redact_all(secret, in, strlen(in), &n);
    assert_string_equal(out, "bad key ...cdef; also sk-proj-0123 and ...1234 "
                             "end");
    free(out);
    /* The secret at the very end, fed in pieces. */
    char text[128];
    snprintf(text, sizeof(text), "key=%s", secret);
    for (size_t chunk = 1; chunk < strlen(text); chunk++) {
        out = feed_chunks(secret, text, strlen(text), chunk);
        assert_string_equal(out, "key=...cdef");
        free(out);
    }
    /* A short secret is masked as "....". */
    out = gkm_redact_all("abc", "xabcx", 5, &n);
    assert_string_equal(out, "x....x");
    free(out);
    /* Empty secret: no effect. */
    out = gkm_redact_all("", "plain", 5, &n);
    assert_string_equal(out, "plain");
    free(out);
}

static void test_split_everywhere(void **state)
{
    (void)state;
    const char *secret = "my-secret-token-XYZ9";
    char text[256];
    snprintf(text, sizeof(text), "{\"error\": \"%s\", \"k2\": \"%s\"} %sEND",
             GK1, GK2, secret);
    const char *want =
        "{\"error\": \"...ewQe\", \"k2\": \"...1234\"} ...XYZ9END";
    size_t len = strlen(text);
    for (size_t split = 0; split <= len; split++) {
        struct gkm_redactor *r = gkm_redactor_new(secret);
        struct gkm_buf out;
        gkm_buf_init(&out, 4096);
        assert_int_equal(gkm_redactor_feed(r, text, split, &out), 0);
        assert_int_equal(gkm_redactor_feed(r, text + split, len - split, &out),
                         0);
        assert_int_equal(gkm_redactor_finish(r, &out), 0);
        assert_string_equal(out.data, want);
        gkm_buf_free(&out);
        gkm_redactor_free(r);
    }
    /* Every chunk size, including byte by byte. */
    for (size_t chunk = 1; chunk <= len; chunk++) {
        char *got = feed_chunks(secret, text, len, chunk);
        assert_string_equal(got, want);
        free(got);
    }
}

static void test_long_run_split(void **state)
{
    (void)state;
    /* A 60-character run split so that the run continues across chunks. */
    const char *text = "a " GK1 "continuedRUN_123456789 b";
    for (size_t chunk = 1; chunk <= strlen(text); chunk++) {
        char *got = feed_chunks(NULL, text, strlen(text), chunk);
        assert_string_equal(got, "a ...ewQe b");
        free(got);
    }
}

static void test_many_keys(void **state)
{
    (void)state;
    struct gkm_buf in;
    gkm_buf_init(&in, 1 << 22);
    for (int i = 0; i < 1000; i++) {
        char line[96];
        snprintf(line, sizeof(line), "key %d AIzaSy%033d;", i, i);
        assert_int_equal(gkm_buf_append_str(&in, line), 0);
    }
    size_t n;
    char *out = gkm_redact_all(NULL, in.data, in.len, &n);
    assert_null(strstr(out, "AIza"));
    /* Every key replaced by its mask. */
    size_t masks = 0;
    for (const char *p = out; (p = strstr(p, "...")) != NULL; p += 3)
        masks++;
    assert_int_equal(masks, 1000);
    assert_non_null(strstr(out, "key 999 ...0999;"));
    free(out);
    for (size_t chunk = 7; chunk < 200; chunk += 31) {
        char *got = feed_chunks(NULL, in.data, in.len, chunk);
        assert_null(strstr(got, "AIza"));
        assert_non_null(strstr(got, "key 0 ...0000;key 1 ...0001;"));
        free(got);
    }
    gkm_buf_free(&in);
}

static void test_holdback_bounded(void **state)
{
    (void)state;
    /* 1 MB of text with many near-misses but no key: the output follows
     * the input, minus less than a key's length. */
    const char *secret = "AIzaSySECRETSECRETSECRETSECRETSECRET1234";
    struct gkm_redactor *r = gkm_redactor_new(secret);
    struct gkm_buf out;
    gkm_buf_init(&out, 2 << 20);
    static const char piece[] = "lorem AIza ipsum AIzaSyShort A dolor sit. ";
    size_t fed = 0;
    while (fed < (1 << 20)) {
        assert_int_equal(gkm_redactor_feed(r, piece, sizeof(piece) - 1, &out),
                         0);
        fed += sizeof(piece) - 1;
        assert_true(out.len <= fed);
        assert_true(fed - out.len < 40);
    }
    /* Ending inside a possible key holds only that tail. */
    assert_int_equal(gkm_redactor_feed(r, "AIzaSy", 6, &out), 0);
    assert_int_equal(fed + 6 - out.len, 6);
    assert_int_equal(gkm_redactor_feed(r, "!", 1, &out), 0);
    assert_int_equal(out.len, fed + 7);
    assert_int_equal(gkm_redactor_finish(r, &out), 0);
    assert_int_equal(out.len, fed + 7);
    assert_int_equal(memcmp(out.data, piece, sizeof(piece) - 1), 0);
    gkm_buf_free(&out);

    /* No 'A' at all: nothing held. */
    gkm_buf_init(&out, 1 << 16);
    assert_int_equal(gkm_redactor_feed(r, "hello world", 11, &out), 0);
    assert_int_equal(out.len, 11);
    /* finish flushes a held partial as is. */
    assert_int_equal(gkm_redactor_feed(r, " AIzaSyAB", 9, &out), 0);
    assert_int_equal(out.len, 12);
    assert_int_equal(gkm_redactor_finish(r, &out), 0);
    assert_string_equal(out.data, "hello world AIzaSyAB");
    gkm_buf_free(&out);
    gkm_redactor_free(r);
}

/* Independent, non-streaming reference implementation. */
static int ref_keych(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
           (c >= 'a' && c <= 'z') || c == '_' || c == '-';
}

static char *reference(const char *secret, const char *p, size_t n)
{
    struct gkm_buf out;
    gkm_buf_init(&out, 1 << 20);
    size_t slen = secret ? strlen(secret) : 0;
    char m[GKM_MASK_LEN];
    size_t i = 0;
    while (i < n) {
        if (slen > 0 && n - i >= slen && memcmp(p + i, secret, slen) == 0) {
            assert_int_equal(gkm_buf_append_str(&out, gkm_mask_key(secret, m)),
                             0);
            i += slen;
            continue;
        }
        size_t run = 0;
        if (n - i >= 4 && memcmp(p + i, "AIza", 4) == 0)
            while (i + 4 + run < n && ref_keych(p[i + 4 + run]))
                run++;
        if (run >= 35) {
            char key[40];
            memcpy(key, p + i, 39);
            key[39] = '\0';
            assert_int_equal(gkm_buf_append_str(&out, gkm_mask_key(key, m)), 0);
            i += 4 + run;
            continue;
        }
        assert_int_equal(gkm_buf_append(&out, p + i, 1), 0);
        i++;
    }
    return gkm_buf_take(&out, NULL);
}

static void test_random_against_reference(void **state)
{
    (void)state;
    static const char alphabet[] = "AIzaSy0-_ x.AAIza";
    const char *secret = "zaSy0";
    unsigned seed = 4242;
    char text[400];
    for (int iter = 0; iter < 3000; iter++) {
        size_t len = 0;
        while (len < sizeof(text) - 1) {
            seed = seed * 1103515245u + 12345u;
            unsigned r = seed >> 16;
            if (r % 9 == 0 && len + 39 < sizeof(text) - 1) {
                /* A real-looking key, sometimes with a longer run. */
                memcpy(text + len, GK1, 39);
                len += 39;
            } else {
                text[len++] = alphabet[r % (sizeof(alphabet) - 1)];
            }
            if (r % 97 == 0)
                break;
        }
        text[len] = '\0';
        const char *sec = (iter % 2) ? secret : NULL;
        char *want = reference(sec, text, len);
        size_t chunk = 1 + (size_t)(iter % 45);
        char *got = feed_chunks(sec, text, len, chunk);
        assert_string_equal(got, want);
        /* The shortcut the reply path takes: "nothing to redact" must
         * mean the redacted text is the text. */
        if (!gkm_redact_needed(sec, text, len))
            assert_string_equal(want, text);
        free(got);
        free(want);
    }
}

static void test_needed(void **state)
{
    (void)state;
    assert_int_equal(gkm_redact_needed(NULL, "", 0), 0);
    assert_int_equal(gkm_redact_needed(NULL, "{\"a\":\"AIz\"}", 10), 0);
    assert_int_equal(gkm_redact_needed(NULL, "AAAIz", 5), 0);
    assert_int_equal(gkm_redact_needed(NULL, "AIza", 4), 1);
    assert_int_equal(gkm_redact_needed(NULL, "xAAIza", 6), 1);
    /* Only the n bytes given are looked at. */
    assert_int_equal(gkm_redact_needed(NULL, "xxAIza", 5), 0);
    /* A secret of another shape is looked for as it is. */
    assert_int_equal(gkm_redact_needed("sk-secret", "a sk-secret b", 13), 1);
    assert_int_equal(gkm_redact_needed("sk-secret", "a sk-secre", 10), 0);
    assert_int_equal(gkm_redact_needed(GK1, "no key here", 11), 0);
    assert_int_equal(gkm_redact_needed(GK1, GK1, strlen(GK1)), 1);
}

static void test_output_cap(void **state)
{
    (void)state;
    struct gkm_redactor *r = gkm_redactor_new(NULL);
    struct gkm_buf out;
    gkm_buf_init(&out, 8);
    assert_int_equal(gkm_redactor_feed(r, "12345678", 8, &out), 0);
    assert_int_equal(gkm_redactor_feed(r, "9", 1, &out), -1);
    gkm_buf_free(&out);
    gkm_redactor_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_shot),
        cmocka_unit_test(test_exact_length_and_long_run),
        cmocka_unit_test(test_secret_not_aiza),
        cmocka_unit_test(test_split_everywhere),
        cmocka_unit_test(test_long_run_split),
        cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_holdback_bounded),
        cmocka_unit_test(test_random_against_reference),
        cmocka_unit_test(test_needed),
        cmocka_unit_test(test_output_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
