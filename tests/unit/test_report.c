/*
 * test_report.c - the `usage` and `keys check` reports: exact text for a
 * small pool, JSON that parses with the expected values, terminal-safe
 * output, and no full key anywhere.
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

#include "keypool.h"
#include "report.h"
#include "util.h"

#define K0 "AIzaSyFIXTURE00000000000000000000000000"
#define K1 "AIzaSyFIXTURE11111111111111111111111111"
#define K2 "AIzaSyFIXTURE22222222222222222222222222"
#define DAY "2026-11-27"
/* 2026-11-27T08:45:00Z and the next Los Angeles midnight. */
#define NOW_MS 1795769100000LL
#define RESET_MS 1795852800000LL

static const char *const err_names[] = {"none",      "quota_minute",
                                        "quota_day", "no_quota",
                                        "server",    "timeout"};
#define N_ERR_NAMES (sizeof(err_names) / sizeof(err_names[0]))

/* Three keys, two in project proj-a, with usage, errors and benches. */
static struct gkm_pool *small_pool(void)
{
    struct gkm_pool_key_spec spec[] = {
        {K0, "proj-a"}, {K1, "proj-a"}, {K2, NULL}};
    struct gkm_pool *p = gkm_pool_new(spec, 3);
    gkm_pool_count(p, 0, "gemini-2.5-flash");
    gkm_pool_count(p, 0, "gemini-2.5-flash");
    gkm_pool_count(p, 0, "gemini-2.5-pro");
    gkm_pool_count(p, 0, ""); /* a model list: no model */
    gkm_pool_add_tokens(p, 0, "gemini-2.5-flash", 1234567, 3000, 450);
    gkm_pool_count_error(p, 0, "gemini-2.5-pro", 1);
    gkm_pool_count_error(p, 0, "gemini-2.5-pro", 1);
    gkm_pool_count_error(p, 0, "gemini-2.5-pro", 2);
    gkm_pool_count_error(p, 0, "gemini-2.5-flash", 4);
    gkm_pool_count_error(p, 0, "gemini-2.5-flash", 5);
    gkm_pool_count_error(p, 0, "gemini-2.5-flash", 14); /* no name */
    gkm_pool_bench(p, 0, "gemini-2.5-pro", RESET_MS, GKM_BENCH_QUOTA_DAY);
    gkm_pool_bench(p, 1, NULL, GKM_FOREVER, GKM_BENCH_KEY_INVALID);
    gkm_pool_bench(p, 2, "gemini-2.5-flash", NOW_MS + 30000,
                   GKM_BENCH_QUOTA_MINUTE);
    gkm_pool_bench(p, 2, "gemini-2.0", NOW_MS - 1, GKM_BENCH_RATE_LIMITED);
    gkm_pool_count(p, 2, "gemini-2.5-pro");
    gkm_pool_add_tokens(p, 2, "gemini-2.5-pro", 10, 20, 0);
    return p;
}

static const struct gkm_probe_result probes[] = {
    {0, 200, "valid", NULL, 120},
    {1, 400, "invalid",
     "API key not valid. Please pass a valid API key. " K1, 85},
    {2, 403, "suspended",
     "Consumer 'api_key:" K2 "' has been suspended.\n\x1b[31mred", 1500},
    {2, 0, NULL, "connection timed out", -1},
    {7, 429, "weird", NULL, 3},
};
#define N_PROBES (sizeof(probes) / sizeof(probes[0]))

static json_t *parse(const char *s)
{
    json_error_t jerr;
    json_t *root = json_loads(s, 0, &jerr);
    if (root == NULL)
        fail_msg("bad JSON: %s (line %d)", jerr.text, jerr.line);
    return root;
}

/* No secret of the pool, nor any 12-character piece of one, nor anything
 * that looks like a Google key, appears in s. */
static void assert_no_key(const struct gkm_pool *pool, const char *s)
{
    assert_null(strstr(s, "AIza"));
    for (size_t k = 0; k < gkm_pool_size(pool); k++) {
        const char *secret = gkm_pool_secret(pool, k);
        size_t len = strlen(secret);
        for (size_t i = 0; i + 12 <= len; i++) {
            char piece[13];
            memcpy(piece, secret + i, 12);
            piece[12] = '\0';
            if (strstr(s, piece) != NULL)
                fail_msg("key %zu leaked (\"%s\")", k, piece);
        }
    }
}

static void test_usage_text(void **state)
{
    (void)state;
    struct gkm_pool *p = small_pool();
    char *s = gkm_report_usage(p, DAY, NOW_MS, err_names, N_ERR_NAMES, 0);
    const char *want =
        "Usage for quota day 2026-11-27 (as of 2026-11-27T08:45:00Z)\n"
        "\n"
        "KEY      PROJECT  MODEL             REQUESTS     PROMPT  OUTPUT  "
        "THINKING  ERRORS                                          STATE\n"
        "...0000  proj-a   all models               4  1,234,567   3,000  "
        "     450  6 (quota_minute 2, quota_day 1, server 1, ...)  "
        "available\n"
        "                  (other)                  1          0       0  "
        "       0  0                                               "
        "available\n"
        "                  gemini-2.5-flash         2  1,234,567   3,000  "
        "     450  3 (server 1, timeout 1, class_14 1)             "
        "available\n"
        "                  gemini-2.5-pro           1          0       0  "
        "       0  3 (quota_minute 2, quota_day 1)                 "
        "benched until 08:00:00Z (quota_day)\n"
        "...1111  proj-a   all models               0          0       0  "
        "       0  0                                               "
        "disabled (key_invalid)\n"
        "...2222  ...2222  all models               1         10      20  "
        "       0  0                                               "
        "available\n"
        "                  gemini-2.5-flash         0          0       0  "
        "       0  0                                               "
        "benched until 08:45:30Z (quota_minute)\n"
        "                  gemini-2.5-pro           1         10      20  "
        "       0  0                                               "
        "available\n"
        "TOTAL                                      5  1,234,577   3,020  "
        "     450  6 (quota_minute 2, quota_day 1, server 1, ...)  "
        "2 available, 0 benched, 1 disabled\n";
    assert_string_equal(s, want);
    assert_no_key(p, s);
    free(s);

    /* No day, no class names: "class_<n>"; a bench 24 hours or more away
     * shows its date. */
    gkm_pool_bench(p, 1, NULL, NOW_MS + 2 * 86400000LL,
                   GKM_BENCH_KEY_DENIED);
    s = gkm_report_usage(p, NULL, NOW_MS, NULL, 5, 0);
    assert_true(strncmp(s, "Usage as of 2026-11-27T08:45:00Z\n\n", 34) == 0);
    assert_non_null(strstr(s, "6 (class_1 2, class_2 1, class_4 1, ...)"));
    assert_non_null(strstr(s, "  benched until 2026-11-29T08:45:00Z "
                              "(key_denied)\n"));
    assert_non_null(strstr(s, "  2 available, 1 benched, 0 disabled\n"));
    /* No trailing spaces on any line. */
    assert_null(strstr(s, " \n"));
    free(s);
    gkm_pool_free(p);
}

static void test_usage_empty_pool_day(void **state)
{
    (void)state;
    struct gkm_pool_key_spec spec[] = {{"short", NULL}};
    struct gkm_pool *p = gkm_pool_new(spec, 1);
    char *s = gkm_report_usage(p, DAY, NOW_MS, err_names, N_ERR_NAMES, 0);
    assert_string_equal(
        s, "Usage for quota day 2026-11-27 (as of 2026-11-27T08:45:00Z)\n"
           "\n"
           "KEY    PROJECT  MODEL       REQUESTS  PROMPT  OUTPUT  THINKING  "
           "ERRORS  STATE\n"
           "....   ....     all models         0       0       0         0  "
           "0       available\n"
           "TOTAL                              0       0       0         0  "
           "0       1 available, 0 benched, 0 disabled\n");
    assert_null(strstr(s, "short"));
    free(s);
    gkm_pool_free(p);
}

static void test_usage_json(void **state)
{
    (void)state;
    struct gkm_pool *p = small_pool();
    char *s = gkm_report_usage(p, DAY, NOW_MS, err_names, N_ERR_NAMES, 1);
    assert_true(s[strlen(s) - 1] == '\n');
    assert_no_key(p, s);
    json_t *root = parse(s);
    assert_string_equal(json_string_value(json_object_get(root, "day")), DAY);
    assert_true(json_integer_value(json_object_get(root, "now_ms")) ==
                NOW_MS);
    assert_string_equal(json_string_value(json_object_get(root, "now")),
                        "2026-11-27T08:45:00Z");
    json_t *keys = json_object_get(root, "keys");
    assert_int_equal(json_array_size(keys), 3);

    json_t *k0 = json_array_get(keys, 0);
    assert_int_equal(json_integer_value(json_object_get(k0, "index")), 0);
    assert_string_equal(json_string_value(json_object_get(k0, "key")),
                        "...0000");
    assert_string_equal(json_string_value(json_object_get(k0, "project")),
                        "proj-a");
    assert_int_equal(json_integer_value(json_object_get(k0, "requests")), 4);
    assert_int_equal(
        json_integer_value(json_object_get(k0, "prompt_tokens")), 1234567);
    assert_int_equal(
        json_integer_value(json_object_get(k0, "output_tokens")), 3000);
    assert_int_equal(
        json_integer_value(json_object_get(k0, "thinking_tokens")), 450);
    json_t *errs = json_object_get(k0, "errors");
    assert_int_equal(json_integer_value(json_object_get(errs, "total")), 6);
    json_t *by = json_object_get(errs, "by_class");
    assert_int_equal(json_object_size(by), 5);
    assert_int_equal(json_integer_value(json_object_get(by, "quota_minute")),
                     2);
    assert_int_equal(json_integer_value(json_object_get(by, "class_14")), 1);
    json_t *st = json_object_get(k0, "state");
    assert_string_equal(json_string_value(json_object_get(st, "status")),
                        "available");
    assert_true(json_is_null(json_object_get(st, "reason")));
    assert_true(json_is_null(json_object_get(st, "until_ms")));
    assert_true(json_is_null(json_object_get(st, "until")));

    json_t *models = json_object_get(k0, "models");
    assert_int_equal(json_array_size(models), 3);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(models, 0), "model")),
        "");
    assert_int_equal(json_integer_value(json_object_get(
                         json_array_get(models, 0), "requests")),
                     1);
    json_t *pro = json_array_get(models, 2);
    assert_string_equal(json_string_value(json_object_get(pro, "model")),
                        "gemini-2.5-pro");
    st = json_object_get(pro, "state");
    assert_string_equal(json_string_value(json_object_get(st, "status")),
                        "benched");
    assert_string_equal(json_string_value(json_object_get(st, "reason")),
                        "quota_day");
    assert_true(json_integer_value(json_object_get(st, "until_ms")) ==
                RESET_MS);
    assert_string_equal(json_string_value(json_object_get(st, "until")),
                        "2026-11-28T08:00:00Z");

    json_t *k1 = json_array_get(keys, 1);
    st = json_object_get(k1, "state");
    assert_string_equal(json_string_value(json_object_get(st, "status")),
                        "disabled");
    assert_string_equal(json_string_value(json_object_get(st, "reason")),
                        "key_invalid");
    assert_true(json_is_null(json_object_get(st, "until_ms")));
    assert_int_equal(json_array_size(json_object_get(k1, "models")), 0);
    json_t *k2 = json_array_get(keys, 2);
    assert_string_equal(json_string_value(json_object_get(k2, "project")),
                        "...2222");
    /* The ended bench of gemini-2.0 is not listed. */
    assert_int_equal(json_array_size(json_object_get(k2, "models")), 2);

    json_t *totals = json_object_get(root, "totals");
    assert_int_equal(json_integer_value(json_object_get(totals, "keys")), 3);
    assert_int_equal(json_integer_value(json_object_get(totals, "available")),
                     2);
    assert_int_equal(json_integer_value(json_object_get(totals, "benched")),
                     0);
    assert_int_equal(json_integer_value(json_object_get(totals, "disabled")),
                     1);
    assert_int_equal(json_integer_value(json_object_get(totals, "requests")),
                     5);
    assert_int_equal(
        json_integer_value(json_object_get(totals, "prompt_tokens")),
        1234577);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(totals, "errors"), "total")),
                     6);
    json_decref(root);
    free(s);

    s = gkm_report_usage(p, NULL, NOW_MS, NULL, 0, 1);
    root = parse(s);
    assert_true(json_is_null(json_object_get(root, "day")));
    by = json_object_get(json_object_get(root, "totals"), "errors");
    by = json_object_get(by, "by_class");
    assert_int_equal(json_integer_value(json_object_get(by, "class_1")), 2);
    json_decref(root);
    free(s);
    gkm_pool_free(p);
}

static void test_usage_unsafe_text(void **state)
{
    (void)state;
    struct gkm_pool_key_spec spec[] = {{K0, "evil\x1b]0;title\x07proj"}};
    struct gkm_pool *p = gkm_pool_new(spec, 1);
    /* A model name from a client's URL: escape sequence, a C1 control,
     * invalid UTF-8, and fine UTF-8. */
    gkm_pool_count(p, 0, "m\x1b[2J\xc2\x9b\xff\xc3\xa9");
    for (int json = 0; json <= 1; json++) {
        char *s = gkm_report_usage(p, DAY, NOW_MS, err_names, N_ERR_NAMES,
                                   json);
        assert_null(strchr(s, '\x1b'));
        assert_null(strchr(s, '\x07'));
        assert_null(strstr(s, "\xc2\x9b"));
        assert_null(strchr(s, '\xff'));
        if (json) {
            json_t *root = parse(s);
            json_t *m = json_array_get(
                json_object_get(json_array_get(json_object_get(root, "keys"),
                                               0),
                                "models"),
                0);
            assert_string_equal(json_string_value(json_object_get(m, "model")),
                                "m?[2J??\xc3\xa9");
            json_decref(root);
        } else {
            assert_non_null(strstr(s, "evil?]0;title?proj  all models"));
            assert_non_null(strstr(s, "  m?[2J??\xc3\xa9  "));
        }
        free(s);
    }
    gkm_pool_free(p);
}

static void test_probes_text(void **state)
{
    (void)state;
    struct gkm_pool *p = small_pool();
    char *s = gkm_report_probes(p, probes, N_PROBES, 0);
    const char *want =
        "KEY      PROJECT  VERDICT    HTTP   LATENCY  DETAIL\n"
        "...0000  proj-a   valid       200    120 ms\n"
        "...1111  proj-a   invalid     400     85 ms  API key not valid. "
        "Please pass a valid API key. ...1111\n"
        "...2222  ...2222  suspended   403  1,500 ms  Consumer "
        "'api_key:...2222' has been suspended. ?[31mred\n"
        "...2222  ...2222  error         -         -  connection timed out\n"
        "?        ?        weird       429      3 ms\n"
        "\n"
        "5 keys: 1 valid, 1 invalid, 1 suspended, 1 error, 1 weird\n";
    assert_string_equal(s, want);
    assert_no_key(p, s);
    free(s);

    /* One key; zero keys. */
    s = gkm_report_probes(p, probes, 1, 0);
    assert_non_null(strstr(s, "\n\n1 key: 1 valid\n"));
    free(s);
    s = gkm_report_probes(p, probes, 0, 0);
    assert_string_equal(s, "KEY  PROJECT  VERDICT  HTTP  LATENCY  DETAIL\n"
                           "\n"
                           "0 keys\n");
    free(s);

    /* Long details are cut to 120 characters. */
    char detail[400];
    memset(detail, 'x', sizeof(detail) - 1);
    detail[sizeof(detail) - 1] = '\0';
    struct gkm_probe_result r = {0, 500, "error", detail, 10};
    s = gkm_report_probes(p, &r, 1, 0);
    char want_cut[130];
    memset(want_cut, 'x', 117);
    memcpy(want_cut + 117, "...\n", 5);
    assert_non_null(strstr(s, want_cut));
    assert_null(strstr(s, "xxxx\n"));
    free(s);
    /* ... but not in JSON. */
    s = gkm_report_probes(p, &r, 1, 1);
    json_t *root = parse(s);
    assert_int_equal(strlen(json_string_value(json_object_get(
                         json_array_get(json_object_get(root, "keys"), 0),
                         "detail"))),
                     399);
    json_decref(root);
    free(s);
    gkm_pool_free(p);
}

static void test_probes_json(void **state)
{
    (void)state;
    struct gkm_pool *p = small_pool();
    char *s = gkm_report_probes(p, probes, N_PROBES, 1);
    assert_no_key(p, s);
    json_t *root = parse(s);
    json_t *keys = json_object_get(root, "keys");
    assert_int_equal(json_array_size(keys), N_PROBES);
    json_t *e = json_array_get(keys, 1);
    assert_int_equal(json_integer_value(json_object_get(e, "index")), 1);
    assert_string_equal(json_string_value(json_object_get(e, "key")),
                        "...1111");
    assert_string_equal(json_string_value(json_object_get(e, "project")),
                        "proj-a");
    assert_string_equal(json_string_value(json_object_get(e, "verdict")),
                        "invalid");
    assert_int_equal(json_integer_value(json_object_get(e, "http_status")),
                     400);
    assert_int_equal(json_integer_value(json_object_get(e, "latency_ms")), 85);
    assert_string_equal(json_string_value(json_object_get(e, "detail")),
                        "API key not valid. Please pass a valid API key. "
                        "...1111");
    e = json_array_get(keys, 3);
    assert_string_equal(json_string_value(json_object_get(e, "verdict")),
                        "error");
    assert_true(json_is_null(json_object_get(e, "http_status")));
    assert_true(json_is_null(json_object_get(e, "latency_ms")));
    e = json_array_get(keys, 4);
    assert_true(json_is_null(json_object_get(e, "key")));
    assert_true(json_is_null(json_object_get(e, "project")));
    assert_true(json_is_null(json_object_get(e, "detail")));
    json_t *sum = json_object_get(root, "summary");
    static const char *const order[] = {"total",  "valid",  "invalid",
                                        "suspended", "leaked", "denied",
                                        "quota",  "error",  "weird"};
    static const json_int_t counts[] = {5, 1, 1, 1, 0, 0, 0, 1, 1};
    assert_int_equal(json_object_size(sum), 9);
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach(sum, k, v) { /* fixed order */
        assert_string_equal(k, order[i]);
        assert_int_equal(json_integer_value(v), counts[i]);
        i++;
    }
    json_decref(root);
    free(s);
    gkm_pool_free(p);
}

static void test_never_a_full_key(void **state)
{
    (void)state;
    /* Keys of other shapes too: the exact secret is redacted whatever its
     * form, and Google-style keys whoever they belong to. */
    struct gkm_pool_key_spec spec[] = {
        {"AIzaSyQWERTYuiopASDFGHjklZXCVBnm1234567", NULL},
        {"sk-custom-Secret-Value-Zq81xLm", "team"},
        {"AIzaSyLMNOPqrstUVWXyz0123456789abcdEFGH", NULL}};
    struct gkm_pool *p = gkm_pool_new(spec, 3);
    for (size_t k = 0; k < 3; k++) {
        gkm_pool_count(p, k, "gemini-2.5-flash");
        gkm_pool_add_tokens(p, k, "gemini-2.5-flash", 1, 2, 3);
        gkm_pool_count_error(p, k, "gemini-2.5-flash", 1);
    }
    gkm_pool_bench(p, 1, NULL, GKM_FOREVER, GKM_BENCH_KEY_LEAKED);
    char *d0 = gkm_xasprintf("key %s suspended", gkm_pool_secret(p, 0));
    char *d1 = gkm_xasprintf("bad key '%s'\n%s", gkm_pool_secret(p, 1),
                             gkm_pool_secret(p, 2));
    struct gkm_probe_result r[] = {
        {0, 403, "suspended", d0, 1},
        {1, 400, "invalid", d1, 2},
        {2, 403, "leaked", gkm_pool_secret(p, 2), 3},
        {9, 0, "error", gkm_pool_secret(p, 0), -1},
    };
    for (int json = 0; json <= 1; json++) {
        char *s = gkm_report_usage(p, DAY, NOW_MS, err_names, N_ERR_NAMES,
                                   json);
        assert_no_key(p, s);
        assert_non_null(strstr(s, "...1xLm"));
        free(s);
        s = gkm_report_probes(p, r, 4, json);
        assert_no_key(p, s);
        assert_non_null(strstr(s, "key ...4567 suspended"));
        assert_non_null(strstr(s, "bad key '...1xLm'"));
        assert_non_null(strstr(s, "...EFGH"));
        free(s);
    }
    free(d0);
    free(d1);
    gkm_pool_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_text),
        cmocka_unit_test(test_usage_empty_pool_day),
        cmocka_unit_test(test_usage_json),
        cmocka_unit_test(test_usage_unsafe_text),
        cmocka_unit_test(test_probes_text),
        cmocka_unit_test(test_probes_json),
        cmocka_unit_test(test_never_a_full_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
