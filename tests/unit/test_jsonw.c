/*
 * test_jsonw.c - the compact serializer must print exactly what
 * json_dumps(JSON_COMPACT | JSON_ENCODE_ANY) prints, and fail where it
 * fails.
 *
 * Checked on every JSON fixture in tests/fixtures (parsed with jansson),
 * on every SSE fixture's data lines, and on hand-made values covering
 * escapes, UTF-8, reals, integer limits, key order, empty containers,
 * embedded NULs, invalid UTF-8, depth and the output cap.
 */
#include <dirent.h>
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
#include "jsonw.h"
#include "util.h"

#ifndef GKM_FIXTURES
#error "GKM_FIXTURES must name the tests/fixtures directory"
#endif

#define FLAGS (JSON_COMPACT | JSON_ENCODE_ANY)

/* Ours and jansson's text of v must be identical (or both fail). */
static void same(const json_t *v, const char *what)
{
    char *want = json_dumps(v, FLAGS);
    size_t len = 0;
    char *got = gkm_json_dump(v, &len);
    if (want == NULL) {
        if (got != NULL)
            fail_msg("%s: jansson fails, we printed %s", what, got);
        free(got);
        return;
    }
    if (got == NULL)
        fail_msg("%s: we failed, jansson printed %s", what, want);
    if (len != strlen(want) || memcmp(got, want, len) != 0)
        fail_msg("%s:\n  jansson: %s\n  ours:    %s", what, want, got);
    free(want);
    free(got);
}

static size_t walk_dir(const char *dir)
{
    size_t checked = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        size_t nl = strlen(e->d_name);
        if (e->d_type == DT_DIR) {
            checked += walk_dir(path);
        } else if (nl > 5 && strcmp(e->d_name + nl - 5, ".json") == 0) {
            json_error_t err;
            json_t *v = json_load_file(path, JSON_DECODE_ANY, &err);
            if (v == NULL)
                continue; /* deliberately broken fixtures */
            same(v, path);
            json_decref(v);
            checked++;
        } else if (nl > 4 && strcmp(e->d_name + nl - 4, ".sse") == 0) {
            FILE *f = fopen(path, "r");
            assert_non_null(f);
            char line[65536];
            while (fgets(line, sizeof(line), f) != NULL) {
                if (strncmp(line, "data:", 5) != 0)
                    continue;
                json_t *v = json_loads(line + 5, JSON_DECODE_ANY, NULL);
                if (v == NULL)
                    continue;
                same(v, path);
                json_decref(v);
                checked++;
            }
            fclose(f);
        }
    }
    closedir(d);
    return checked;
}

static void test_fixtures(void **state)
{
    (void)state;
    size_t n = walk_dir(GKM_FIXTURES);
    /* The fixture tree holds hundreds of JSON documents. */
    assert_true(n > 300);
}

static void test_scalars_and_escapes(void **state)
{
    (void)state;
    static const char *texts[] = {
        "null", "true", "false", "0", "-1", "9223372036854775807",
        "-9223372036854775808", "\"\"", "\"plain\"",
        "\"quote \\\" backslash \\\\ slash /\"",
        "\"\\b\\f\\n\\r\\t \\u0001 \\u001f \\u007f\"",
        "\"caf\\u00e9 \\u4e2d\\u6587 \\ud83d\\ude00 \\u2028\"",
        "[]", "{}", "[[],{},[{}]]",
        "{\"b\":1,\"a\":2,\"c\":{\"z\":[1,2,3],\"y\":null}}",
        "{\"key\":\"v\\u0000al\"}",
        "{\"\\u00fc\\n\":\"\\\"\"}",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        json_error_t err;
        json_t *v = json_loads(texts[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        if (v == NULL)
            fail_msg("bad test input %s: %s", texts[i], err.text);
        same(v, texts[i]);
        json_decref(v);
    }
    /* A key holding a NUL byte (json_object_setn). */
    json_t *o = json_object();
    json_object_setn_new(o, "k\0ey", 4, json_integer(1));
    json_object_set_new(o, "next", json_integer(2));
    same(o, "key with NUL");
    json_decref(o);
}

static void test_reals(void **state)
{
    (void)state;
    static const double reals[] = {
        0.0, -0.0, 1.0, -1.5, 0.1, 1.0 / 3.0, 100.0, 123456789.0, 1e16,
        1e17, 1e21, 1.5e300, -2.5e-300, 5e-324, 1.7976931348623157e308,
        0.000001, 1e-7, 12345678901234567890.0, 3.14159,
    };
    for (size_t i = 0; i < sizeof(reals) / sizeof(reals[0]); i++) {
        json_t *v = json_real(reals[i]);
        char what[64];
        snprintf(what, sizeof(what), "real %.17g", reals[i]);
        same(v, what);
        json_t *a = json_pack("[f,{s:f}]", reals[i], "x", reals[i]);
        same(a, what);
        json_decref(a);
        json_decref(v);
    }
}

static void test_invalid_utf8_fails(void **state)
{
    (void)state;
    static const char *bad[] = {
        "\xff", "\xc0\x80", "\xc3", "a\xe2\x82", "\xed\xa0\x80",
        "\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80", "\x80",
        "\xe0\x80\xaf",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *s = json_stringn_nocheck(bad[i], strlen(bad[i]));
        assert_null(gkm_json_dump(s, NULL));
        same(s, "invalid utf-8 string");
        json_t *o = json_object();
        json_object_set_new_nocheck(o, bad[i], json_true());
        assert_null(gkm_json_dump(o, NULL));
        json_decref(o);
        json_decref(s);
    }
    /* Valid boundaries pass. */
    static const char *good[] = {"\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80",
                                 "\xef\xbf\xbf", "\xf0\x90\x80\x80",
                                 "\xf4\x8f\xbf\xbf"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        json_t *s = json_stringn_nocheck(good[i], strlen(good[i]));
        char *o = gkm_json_dump(s, NULL);
        assert_non_null(o);
        free(o);
        same(s, "valid utf-8 boundary");
        json_decref(s);
    }
}

static void test_depth_and_cap(void **state)
{
    (void)state;
    json_t *root = json_array(), *cur = root;
    for (int i = 1; i < GKM_JSONW_MAX_DEPTH; i++) {
        json_t *n = json_array();
        json_array_append_new(cur, n);
        cur = n;
    }
    char *ok = gkm_json_dump(root, NULL);
    assert_non_null(ok);
    free(ok);
    json_array_append_new(cur, json_array()); /* one level too deep */
    assert_null(gkm_json_dump(root, NULL));
    json_decref(root);
    assert_null(gkm_json_dump(NULL, NULL));

    /* The cap: a value that does not fit fails, one that fits is whole. */
    json_t *v = json_pack("{s:s}", "text", "0123456789");
    struct gkm_buf b;
    gkm_buf_init(&b, 20); /* the text is 21 bytes */
    assert_int_equal(gkm_json_write(&b, v), -1);
    gkm_buf_free(&b);
    gkm_buf_init(&b, 21);
    assert_int_equal(gkm_json_write(&b, v), 0);
    assert_string_equal(b.data, "{\"text\":\"0123456789\"}");
    gkm_buf_free(&b);
    json_decref(v);
}

static void test_appends(void **state)
{
    (void)state;
    struct gkm_buf b;
    gkm_buf_init(&b, 1024);
    assert_int_equal(gkm_buf_append(&b, "data: ", 6), 0);
    json_t *v = json_pack("{s:i}", "n", 7);
    assert_int_equal(gkm_json_write(&b, v), 0);
    assert_string_equal(b.data, "data: {\"n\":7}");
    assert_int_equal(b.len, strlen("data: {\"n\":7}"));
    json_decref(v);
    gkm_buf_free(&b);
}

static void squeeze_is(const char *in, const char *want)
{
    size_t n = strlen(in);
    char *out = malloc(n + 1);
    size_t got = gkm_json_squeeze(in, n, out);
    out[got] = '\0';
    assert_string_equal(out, want);
    /* In place gives the same. */
    char *dup = strdup(in);
    got = gkm_json_squeeze(dup, n, dup);
    dup[got] = '\0';
    assert_string_equal(dup, want);
    free(dup);
    free(out);
}

static void test_squeeze(void **state)
{
    (void)state;
    squeeze_is("{\n  \"a\" : [ 1 , 2 ],\r\n\t\"b\": {  }\n}\n",
               "{\"a\":[1,2],\"b\":{}}");
    /* Strings keep their spaces, escaped quotes and backslashes. */
    squeeze_is("[ \" a , b \" , \"q\\\" x \\\\\" , \"\\u0020 \" ]",
               "[\" a , b \",\"q\\\" x \\\\\",\"\\u0020 \"]");
    /* Between two tokens the whitespace stays: invalid stays invalid. */
    squeeze_is("[1 2, tr ue,\"a\" \"b\"]", "[1 2,tr ue,\"a\" \"b\"]");
    json_t *v = json_loads("[1 2]", 0, NULL);
    assert_null(v);
    /* An unterminated string is copied as it is. */
    squeeze_is("{ \"a\": \"b  ", "{\"a\":\"b  ");
    squeeze_is("   ", "");
    squeeze_is("", "");
    /* A real answer parses to the same value. */
    const char *pretty = "{\n  \"candidates\": [\n    {\n      \"content\": "
                         "{\"parts\": [{\"text\": \"hi there\"}]},\n      "
                         "\"finishReason\": \"STOP\"\n    }\n  ],\n  "
                         "\"usageMetadata\": {\"promptTokenCount\": 2}\n}\n";
    char tight[512];
    size_t tn = gkm_json_squeeze(pretty, strlen(pretty), tight);
    json_t *a = json_loads(pretty, 0, NULL), *b = json_loadb(tight, tn, 0, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(json_equal(a, b));
    assert_true(tn < strlen(pretty) * 3 / 4);
    json_decref(a);
    json_decref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_squeeze),
        cmocka_unit_test(test_fixtures),
        cmocka_unit_test(test_scalars_and_escapes),
        cmocka_unit_test(test_reals),
        cmocka_unit_test(test_invalid_utf8_fails),
        cmocka_unit_test(test_depth_and_cap),
        cmocka_unit_test(test_appends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
