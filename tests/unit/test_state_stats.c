/*
 * test_state_stats.c - the usage file's "gkm" additions: token and error
 * statistics (round trip, shape, same-day restore, fresh other day), the
 * original four fields left exactly as they were, the Python tool's files
 * still loading, and bad "gkm" parts ignored without losing the rest.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "affinity.h"
#include "keypool.h"
#include "state.h"
#include "util.h"

#include "state_fixture.h"

/* Statistics on top of fill_pool. */
static void fill_stats(struct gkm_pool *pool)
{
    gkm_pool_add_tokens(pool, 0, "gemini-2.5-flash", 1200, 300, 45);
    gkm_pool_add_tokens(pool, 0, "gemini-2.5-flash", 10, 0, 0);
    gkm_pool_count_error(pool, 0, "gemini-2.5-flash", 3);
    gkm_pool_count_error(pool, 0, "gemini-2.5-flash", 3);
    gkm_pool_count_error(pool, 0, "gemini-2.5-flash", 12);
    gkm_pool_count_error(pool, 0, "gemini-2.5-pro", 5);
    gkm_pool_add_tokens(pool, 0, "", 7, 0, 0);
    gkm_pool_add_tokens(pool, 2, "gemini-2.5-pro", 0, 0, 99);
    /* Tokens for a model that has no request count. */
    gkm_pool_add_tokens(pool, 1, "embedding-001", 64, 0, 0);
}

static void assert_stats_equal(const struct gkm_pool *a,
                               const struct gkm_pool *b)
{
    static const char *const models[] = {"", "gemini-2.5-flash",
                                         "gemini-2.5-pro", "embedding-001",
                                         "none"};
    for (size_t k = 0; k < gkm_pool_size(a); k++) {
        for (size_t m = 0; m < sizeof(models) / sizeof(models[0]); m++) {
            struct gkm_model_stats x, y;
            int rx = gkm_pool_get_stats(a, k, models[m], &x);
            int ry = gkm_pool_get_stats(b, k, models[m], &y);
            assert_int_equal(rx, ry);
            assert_memory_equal(&x, &y, sizeof(x));
        }
    }
}

static void test_stats_round_trip(void **state)
{
    struct fx *f = *state;
    fill_pool(f->pool);
    fill_stats(f->pool);
    assert_int_equal(gkm_state_save(f->pool, f->path, TODAY, NOW_MS), 0);
    struct gkm_pool *p2 = new_pool();
    size_t unknown = 9;
    char aside[512], err[512];
    assert_int_equal(load(f, p2, f->path, TODAY, &unknown, aside, err),
                     GKM_STATE_LOADED);
    assert_int_equal(unknown, 0);
    assert_string_equal(err, "");
    assert_stats_equal(f->pool, p2);
    struct gkm_model_stats st;
    assert_int_equal(gkm_pool_get_stats(p2, 0, "gemini-2.5-flash", &st), 0);
    assert_int_equal(st.requests, 2);
    assert_int_equal(st.prompt_tokens, 1210);
    assert_int_equal(st.output_tokens, 300);
    assert_int_equal(st.thinking_tokens, 45);
    assert_int_equal(st.errors[3], 2);
    assert_int_equal(st.errors[12], 1);
    assert_int_equal(gkm_pool_get_stats(p2, 0, "", &st), 0);
    assert_int_equal(st.requests, 1); /* from "counts" */
    assert_int_equal(st.prompt_tokens, 7);
    assert_int_equal(gkm_pool_model_count(p2, 1, "embedding-001"), 0);
    char *a = gkm_state_dump(f->pool, TODAY, NOW_MS);
    char *b = gkm_state_dump(p2, TODAY, NOW_MS);
    assert_string_equal(a, b);
    free(a);
    free(b);
    gkm_pool_free(p2);
}

static void test_stats_shape(void **state)
{
    struct fx *f = *state;
    fill_pool(f->pool);
    fill_stats(f->pool);
    char *s = gkm_state_dump(f->pool, TODAY, NOW_MS);
    json_t *root = json_loads(s, 0, NULL);
    assert_non_null(root);
    json_t *stats = json_object_get(json_object_get(root, "gkm"), "stats");
    assert_true(json_is_object(stats));
    assert_int_equal(json_object_size(stats), 3);
    json_t *k0 = json_object_get(stats, K0);
    assert_int_equal(json_object_size(k0), 3); /* "", flash, pro */
    json_t *flash = json_object_get(k0, "gemini-2.5-flash");
    assert_int_equal(json_object_size(flash), 4);
    assert_int_equal(json_integer_value(json_object_get(flash,
                                                        "prompt_tokens")),
                     1210);
    assert_int_equal(json_integer_value(json_object_get(flash,
                                                        "output_tokens")),
                     300);
    assert_int_equal(json_integer_value(json_object_get(flash,
                                                        "thinking_tokens")),
                     45);
    json_t *errs = json_object_get(flash, "errors");
    assert_int_equal(json_object_size(errs), 2);
    assert_int_equal(json_integer_value(json_object_get(errs, "3")), 2);
    assert_int_equal(json_integer_value(json_object_get(errs, "12")), 1);
    /* Only non-zero fields; no request counts (they are model_counts). */
    json_t *pro = json_object_get(k0, "gemini-2.5-pro");
    assert_int_equal(json_object_size(pro), 1);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(pro, "errors"), "5")),
                     1);
    json_t *none = json_object_get(k0, "");
    assert_int_equal(json_object_size(none), 1);
    assert_int_equal(json_integer_value(json_object_get(none,
                                                        "prompt_tokens")),
                     7);
    assert_null(
        json_object_get(json_object_get(stats, K2), "gemini-2.5-flash"));
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_object_get(stats, K2),
                                         "gemini-2.5-pro"),
                         "thinking_tokens")),
                     99);
    json_decref(root);
    free(s);

    /* With no statistics "stats" is an empty object. */
    struct gkm_pool *empty = new_pool();
    s = gkm_state_dump(empty, TODAY, NOW_MS);
    root = json_loads(s, 0, NULL);
    stats = json_object_get(json_object_get(root, "gkm"), "stats");
    assert_true(json_is_object(stats));
    assert_int_equal(json_object_size(stats), 0);
    json_decref(root);
    free(s);
    gkm_pool_free(empty);
}

/* The original fields of a dump, as the Python tool reads them. */
static void assert_original_shape(const json_t *root)
{
    const char *k, *k2;
    json_t *v, *v2;
    size_t i;
    assert_true(json_is_object(root));
    json_object_foreach((json_t *)root, k, v) {
        assert_true(strcmp(k, "date") == 0 || strcmp(k, "counts") == 0 ||
                    strcmp(k, "model_counts") == 0 ||
                    strcmp(k, "exhausted_keys") == 0 ||
                    strcmp(k, "gkm") == 0);
    }
    assert_int_equal(json_object_size(root), 5);
    assert_true(json_is_string(json_object_get(root, "date")));
    json_object_foreach(json_object_get(root, "counts"), k, v)
        assert_true(json_is_integer(v));
    json_object_foreach(json_object_get(root, "model_counts"), k, v) {
        assert_true(json_is_object(v));
        json_object_foreach(v, k2, v2) {
            assert_true(json_is_integer(v2));
            assert_true(k2[0] != '\0');
        }
    }
    json_object_foreach(json_object_get(root, "exhausted_keys"), k, v) {
        assert_true(json_is_array(v));
        json_array_foreach(v, i, v2) assert_true(json_is_string(v2));
    }
}

static void test_stats_leave_original_fields_alone(void **state)
{
    struct fx *f = *state;
    fill_pool(f->pool);
    struct gkm_pool *with = new_pool();
    fill_pool(with);
    fill_stats(with);
    char *a = gkm_state_dump(f->pool, TODAY, NOW_MS);
    char *b = gkm_state_dump(with, TODAY, NOW_MS);
    json_t *ra = json_loads(a, 0, NULL);
    json_t *rb = json_loads(b, 0, NULL);
    assert_non_null(ra);
    assert_non_null(rb);
    assert_original_shape(ra);
    assert_original_shape(rb);
    static const char *const fields[] = {"date", "counts", "model_counts",
                                         "exhausted_keys"};
    for (size_t i = 0; i < 4; i++)
        assert_true(json_equal(json_object_get(ra, fields[i]),
                               json_object_get(rb, fields[i])));
    /* Byte for byte too: everything up to "gkm" is identical. */
    const char *ga = strstr(a, "\n    \"gkm\"");
    const char *gb = strstr(b, "\n    \"gkm\"");
    assert_non_null(ga);
    assert_non_null(gb);
    assert_int_equal(ga - a, gb - b);
    assert_memory_equal(a, b, (size_t)(ga - a));
    json_decref(ra);
    json_decref(rb);
    free(a);
    free(b);
    gkm_pool_free(with);
}

static void test_stats_other_day_fresh(void **state)
{
    struct fx *f = *state;
    fill_pool(f->pool);
    fill_stats(f->pool);
    assert_int_equal(gkm_state_save(f->pool, f->path, "2026-11-26", NOW_MS),
                     0);
    struct gkm_pool *p2 = new_pool();
    size_t unknown = 9;
    char aside[512], err[512];
    assert_int_equal(load(f, p2, f->path, TODAY, &unknown, aside, err),
                     GKM_STATE_OLD_DAY);
    assert_int_equal(unknown, 0);
    assert_string_equal(err, "");
    struct gkm_model_stats st;
    for (size_t k = 0; k < 3; k++) {
        assert_int_equal(gkm_pool_get_stats(p2, k, "gemini-2.5-flash", &st),
                         -1);
        assert_int_equal(gkm_pool_get_stats(p2, k, "", &st), -1);
        assert_int_equal(gkm_pool_get_stats(p2, k, "embedding-001", &st), -1);
    }
    char *s = gkm_state_dump(p2, TODAY, NOW_MS);
    json_t *root = json_loads(s, 0, NULL);
    assert_int_equal(json_object_size(json_object_get(
                         json_object_get(root, "gkm"), "stats")),
                     0);
    json_decref(root);
    free(s);
    gkm_pool_free(p2);
}

static void test_bad_gkm_ignored(void **state)
{
    struct fx *f = *state;
    /* Each: the "gkm" value and what the note must say. The original
     * fields before it always load. */
    static const struct {
        const char *gkm;
        const char *note;
    } cases[] = {
        {"[]", "\"gkm\" is not an object: ignored"},
        {"\"x\"", "\"gkm\" is not an object: ignored"},
        {"{\"version\": \"1\"}", "\"gkm.version\" is not an integer"},
        {"{\"benches\": {}}", "\"gkm.benches\" is not a list: ignored"},
        {"{\"benches\": [{\"key\": 1, \"until\": null, \"reason\": "
         "\"quota_day\"}]}",
         "1 malformed \"gkm.benches\" entry ignored"},
        {"{\"benches\": [{\"key\": \"" K0 "\", \"reason\": \"quota_day\"}, "
         "{\"key\": \"" K0 "\", \"until\": \"soon\", \"reason\": \"x\"}, 7]}",
         "3 malformed \"gkm.benches\" entries ignored"},
        {"{\"stats\": []}", "\"gkm.stats\" is not an object: ignored"},
        {"{\"stats\": {\"" K0 "\": 5}}",
         "1 malformed \"gkm.stats\" value ignored"},
        {"{\"stats\": {\"" K0 "\": {\"m\": [1]}}}",
         "1 malformed \"gkm.stats\" value ignored"},
        {"{\"stats\": {\"" K0 "\": {\"m\": {\"prompt_tokens\": -1, "
         "\"output_tokens\": \"2\", \"thinking_tokens\": 1.5}}}}",
         "3 malformed \"gkm.stats\" values ignored"},
        {"{\"stats\": {\"" K0 "\": {\"m\": {\"errors\": []}}}}",
         "1 malformed \"gkm.stats\" value ignored"},
        {"{\"stats\": {\"" K0 "\": {\"m\": {\"errors\": {\"16\": 1, "
         "\"-1\": 1, \"x\": 1, \"2\": \"3\", \"3\": 4294967296}}}}}",
         "5 malformed \"gkm.stats\" values ignored"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        gkm_pool_free(f->pool);
        f->pool = new_pool();
        char *text = gkm_xasprintf(
            "{\"date\": \"%s\", \"counts\": {\"%s\": 4},"
            " \"model_counts\": {\"%s\": {\"m\": 3}},"
            " \"exhausted_keys\": {\"%s\": [\"m\"]}, \"gkm\": %s}",
            TODAY, K0, K0, K1, cases[i].gkm);
        write_text(f->path, text);
        free(text);
        size_t unknown = 0;
        char aside[512], err[512];
        assert_int_equal(load(f, f->pool, f->path, TODAY, &unknown, aside,
                              err),
                         GKM_STATE_LOADED);
        assert_string_equal(aside, "");
        if (strstr(err, cases[i].note) == NULL)
            fail_msg("case %zu: note \"%s\" lacks \"%s\"", i, err,
                     cases[i].note);
        assert_int_equal(gkm_pool_total(f->pool, 0), 4);
        assert_int_equal(gkm_pool_model_count(f->pool, 0, "m"), 3);
        assert_int_equal(gkm_pool_state(f->pool, 1, "m", NOW_MS, NULL),
                         GKM_BENCH_QUOTA_DAY);
        assert_int_equal(access(f->path, F_OK), 0); /* not moved aside */
    }

    /* The good parts of "gkm" still load beside a bad one. */
    gkm_pool_free(f->pool);
    f->pool = new_pool();
    char *text = gkm_xasprintf(
        "{\"date\": \"%s\", \"counts\": {\"%s\": 4},"
        " \"model_counts\": {\"%s\": {\"m\": 3}}, \"exhausted_keys\": {},"
        " \"gkm\": {\"version\": 1, \"benches\": {\"oops\": 1},"
        " \"stats\": {\"%s\": {\"m\": {\"prompt_tokens\": 10,"
        " \"output_tokens\": \"bad\", \"errors\": {\"2\": 3, \"99\": 1}},"
        " \"n\": 4}, \"%s\": {\"x\": {\"thinking_tokens\": 8}}}}}",
        TODAY, K0, K0, K0, K2);
    write_text(f->path, text);
    free(text);
    char aside[512], err[512];
    assert_int_equal(load(f, f->pool, f->path, TODAY, NULL, aside, err),
                     GKM_STATE_LOADED);
    assert_non_null(strstr(err, "\"gkm.benches\" is not a list: ignored"));
    assert_non_null(strstr(err, "; 3 malformed \"gkm.stats\" values"));
    struct gkm_model_stats st;
    assert_int_equal(gkm_pool_get_stats(f->pool, 0, "m", &st), 0);
    assert_int_equal(st.requests, 3);
    assert_int_equal(st.prompt_tokens, 10);
    assert_int_equal(st.output_tokens, 0);
    assert_int_equal(st.errors[2], 3);
    assert_int_equal(gkm_pool_get_stats(f->pool, 2, "x", &st), 0);
    assert_int_equal(st.thinking_tokens, 8);
}

static void test_python_fixtures_then_stats(void **state)
{
    struct fx *f = *state;
    static const char *const fixtures[] = {"python_dict_format.json",
                                           "python_list_format.json"};
    for (size_t i = 0; i < 2; i++) {
        gkm_pool_free(f->pool);
        f->pool = new_pool();
        char *src_path =
            gkm_xasprintf("%s/state/%s", GKM_FIXTURES, fixtures[i]);
        char *src = read_text(src_path);
        free(src_path);
        write_text(f->path, src);
        free(src);
        char aside[512], err[512];
        assert_int_equal(load(f, f->pool, f->path, TODAY, NULL, aside, err),
                         GKM_STATE_LOADED);
        /* No "gkm" in the Python files: no statistics but the derived
         * no-model requests: none in the dict format (model_counts add up
         * to counts), all of them in the list format (no model_counts). */
        struct gkm_model_stats st;
        if (i == 0) {
            assert_int_equal(gkm_pool_get_stats(f->pool, 0, "", &st), -1);
        } else {
            assert_int_equal(gkm_pool_get_stats(f->pool, 0, "", &st), 0);
            assert_int_equal(st.requests, 5);
            assert_int_equal(st.prompt_tokens, 0);
        }
        /* Our file written from it keeps the original shapes and loads. */
        fill_stats(f->pool);
        char *dump = gkm_state_dump(f->pool, TODAY, NOW_MS);
        json_t *root = json_loads(dump, 0, NULL);
        assert_original_shape(root);
        json_decref(root);
        free(dump);
        assert_int_equal(gkm_state_save(f->pool, f->path, TODAY, NOW_MS), 0);
        struct gkm_pool *p2 = new_pool();
        assert_int_equal(load(f, p2, f->path, TODAY, NULL, aside, err),
                         GKM_STATE_LOADED);
        assert_string_equal(err, "");
        assert_stats_equal(f->pool, p2);
        for (size_t k = 0; k < 3; k++)
            assert_int_equal(gkm_pool_total(p2, k),
                             gkm_pool_total(f->pool, k));
        gkm_pool_free(p2);
    }
}

/* Names that need escaping are escaped; names that are not valid UTF-8
 * (a model from a client's URL) leave out just the entry that holds them,
 * as jansson would refuse them; the text stays valid JSON. */
static void test_dump_strings(void **state)
{
    struct fx *f = *state;
    const char *bad = "m\xff" "bad", *esc = "a\"q\\b\n", *utf = "gemini-\xc3\xa9";
    gkm_pool_count(f->pool, 0, bad);
    gkm_pool_count(f->pool, 0, esc);
    gkm_pool_count(f->pool, 0, utf);
    gkm_pool_add_tokens(f->pool, 0, bad, 5, 0, 0);
    gkm_pool_add_tokens(f->pool, 0, esc, 7, 0, 0);
    gkm_pool_bench(f->pool, 1, bad, RESET_MS, GKM_BENCH_QUOTA_DAY);
    gkm_pool_bench(f->pool, 2, bad, RESET_MS, GKM_BENCH_QUOTA_DAY);
    gkm_pool_bench(f->pool, 2, utf, RESET_MS, GKM_BENCH_QUOTA_DAY);
    struct gkm_aff *a = gkm_aff_new(8);
    gkm_aff_put(a, "files/\xff", 7, 0, NOW_MS + 1000);
    gkm_aff_put(a, "files/ok", 8, 1, NOW_MS + 1000);
    char *s = gkm_state_dump_ex(f->pool, a, TODAY, NOW_MS);
    json_error_t jerr;
    json_t *root = json_loads(s, 0, &jerr);
    assert_non_null(root);
    json_t *mc = json_object_get(json_object_get(root, "model_counts"), K0);
    assert_int_equal(json_object_size(mc), 2); /* esc and utf, not bad */
    assert_int_equal(json_integer_value(json_object_get(mc, esc)), 1);
    assert_int_equal(json_integer_value(json_object_get(mc, utf)), 1);
    /* The key total still counts all three. */
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(root, "counts"), K0)), 3);
    json_t *ex = json_object_get(root, "exhausted_keys");
    assert_null(json_object_get(ex, K1)); /* its only model cannot be written */
    json_t *l2 = json_object_get(ex, K2);
    assert_int_equal(json_array_size(l2), 1);
    assert_string_equal(json_string_value(json_array_get(l2, 0)), utf);
    json_t *gkm = json_object_get(root, "gkm");
    assert_int_equal(json_array_size(json_object_get(gkm, "benches")), 1);
    json_t *st = json_object_get(json_object_get(gkm, "stats"), K0);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(st, esc), "prompt_tokens")), 7);
    assert_null(json_object_get(st, bad));
    json_t *ow = json_object_get(gkm, "owners");
    assert_int_equal(json_array_size(ow), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(ow, 0), "name")), "files/ok");
    json_decref(root);
    free(s);
    gkm_aff_free(a);
}

/* 10,000 keys, 9,999 benched for the day: every one is written, as
 * {key: [model]} and as a bench, and the text parses. */
static void test_dump_many_keys(void **state)
{
    (void)state;
    size_t n = 10000;
    struct gkm_pool_key_spec *spec = gkm_xcalloc(n, sizeof(*spec));
    char (*sec)[48] = gkm_xcalloc(n, 48);
    for (size_t i = 0; i < n; i++) {
        snprintf(sec[i], 48, "AIzaSyMANY%029zu", i);
        spec[i].secret = sec[i];
    }
    struct gkm_pool *p = gkm_pool_new(spec, n);
    for (size_t i = 0; i + 1 < n; i++)
        gkm_pool_bench(p, i, "gemini-2.5-flash", RESET_MS, GKM_BENCH_QUOTA_DAY);
    gkm_pool_count(p, n - 1, "gemini-2.5-flash");
    char *s = gkm_state_dump(p, TODAY, NOW_MS);
    json_t *root = json_loads(s, 0, NULL);
    assert_non_null(root);
    json_t *ex = json_object_get(root, "exhausted_keys");
    assert_int_equal(json_object_size(ex), n - 1);
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(ex, sec[4321]), 0)),
                        "gemini-2.5-flash");
    assert_null(json_object_get(ex, sec[n - 1]));
    assert_int_equal(json_array_size(json_object_get(
                         json_object_get(root, "gkm"), "benches")), n - 1);
    json_decref(root);
    free(s);
    gkm_pool_free(p);
    free(spec);
    free(sec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stats_round_trip, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stats_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_leave_original_fields_alone,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_other_day_fresh, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_gkm_ignored, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_python_fixtures_then_stats,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_strings, setup, teardown),
        cmocka_unit_test(test_dump_many_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
