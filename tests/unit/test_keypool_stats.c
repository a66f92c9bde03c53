/*
 * test_keypool_stats.c - the key pool's per-(key, model) statistics: tokens,
 * errors by class, the derived no-model requests, restoring, saturation,
 * the daily reset; and the count of benched keys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keypool.h"
#include "util.h"

#define T0 1800000000000LL /* a fixed "now" in ms */

/* A pool of n keys named "AIzaTEST...<i>", with optional projects. */
static struct gkm_pool *make_pool(size_t n, const char *const *projects)
{
    struct gkm_pool_key_spec *spec = gkm_xcalloc(n, sizeof(*spec));
    char **names = gkm_xcalloc(n, sizeof(*names));
    for (size_t i = 0; i < n; i++) {
        names[i] = gkm_xasprintf("AIzaSyTEST%029zu", i);
        spec[i].secret = names[i];
        spec[i].project = projects ? projects[i] : NULL;
    }
    struct gkm_pool *pool = gkm_pool_new(spec, n);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(spec);
    return pool;
}

struct count_list {
    char models[8][32];
    uint64_t n[8];
    size_t len;
};

static void collect_count(void *arg, const char *model, uint64_t n)
{
    struct count_list *l = arg;
    assert_true(l->len < 8);
    snprintf(l->models[l->len], 32, "%s", model);
    l->n[l->len++] = n;
}

struct stats_list {
    char models[8][32];
    struct gkm_model_stats st[8];
    size_t len;
};

static void collect_stats(void *arg, const char *model,
                          const struct gkm_model_stats *st)
{
    struct stats_list *l = arg;
    assert_true(l->len < 8);
    snprintf(l->models[l->len], 32, "%s", model);
    l->st[l->len++] = *st;
}

static void test_stats(void **state)
{
    (void)state;
    struct gkm_pool *pool = make_pool(3, NULL);
    struct gkm_model_stats st;
    uint64_t g = gkm_pool_generation(pool);

    gkm_pool_count(pool, 1, "gemini-2.5-flash");
    gkm_pool_count(pool, 1, "gemini-2.5-flash");
    gkm_pool_count(pool, 1, "");
    gkm_pool_add_tokens(pool, 1, "gemini-2.5-flash", 100, 20, 5);
    gkm_pool_add_tokens(pool, 1, "gemini-2.5-flash", 50, 10, 0);
    assert_true(gkm_pool_generation(pool) > g);
    g = gkm_pool_generation(pool);
    gkm_pool_count_error(pool, 1, "gemini-2.5-flash", 3);
    gkm_pool_count_error(pool, 1, "gemini-2.5-flash", 3);
    gkm_pool_count_error(pool, 1, "gemini-2.5-flash", 0);
    assert_true(gkm_pool_generation(pool) > g);
    /* Tokens and errors only: the model gets statistics but no count. */
    gkm_pool_add_tokens(pool, 1, "gemini-2.5-pro", 7, 0, 0);
    gkm_pool_count_error(pool, 1, "a-model", GKM_STATS_ERRORS - 1);
    /* Errors and tokens for "" stay under "". */
    gkm_pool_add_tokens(pool, 1, NULL, 1, 2, 3);
    gkm_pool_count_error(pool, 1, "", 2);

    /* Ignored: out-of-range class or key, all-zero tokens; no change. */
    g = gkm_pool_generation(pool);
    gkm_pool_count_error(pool, 1, "gemini-2.5-flash", GKM_STATS_ERRORS);
    gkm_pool_count_error(pool, 1, "gemini-2.5-flash", 1000);
    gkm_pool_count_error(pool, 3, "gemini-2.5-flash", 1);
    gkm_pool_add_tokens(pool, 3, "gemini-2.5-flash", 1, 1, 1);
    gkm_pool_add_tokens(pool, 1, "gemini-2.5-flash", 0, 0, 0);
    assert_true(gkm_pool_generation(pool) == g);

    assert_int_equal(gkm_pool_get_stats(pool, 1, "gemini-2.5-flash", &st), 0);
    assert_int_equal(st.requests, 2);
    assert_int_equal(st.prompt_tokens, 150);
    assert_int_equal(st.output_tokens, 30);
    assert_int_equal(st.thinking_tokens, 5);
    assert_int_equal(st.errors[3], 2);
    assert_int_equal(st.errors[0], 1);
    for (int i = 4; i < GKM_STATS_ERRORS; i++)
        assert_int_equal(st.errors[i], 0);
    /* "": requests are those of the total that no named model has. */
    assert_int_equal(gkm_pool_get_stats(pool, 1, "", &st), 0);
    assert_int_equal(st.requests, 1);
    assert_int_equal(st.prompt_tokens, 1);
    assert_int_equal(st.thinking_tokens, 3);
    assert_int_equal(st.errors[2], 1);
    assert_int_equal(gkm_pool_get_stats(pool, 1, NULL, &st), 0);
    assert_int_equal(st.output_tokens, 2);
    /* Nothing: -1 and zeros. */
    memset(&st, 0xff, sizeof(st));
    assert_int_equal(gkm_pool_get_stats(pool, 0, "gemini-2.5-flash", &st),
                     -1);
    assert_int_equal(st.requests, 0);
    assert_int_equal(st.errors[0], 0);
    assert_int_equal(gkm_pool_get_stats(pool, 1, "never-seen", &st), -1);
    assert_int_equal(gkm_pool_get_stats(pool, 0, "", &st), -1);
    assert_int_equal(gkm_pool_get_stats(pool, 99, "", &st), -1);

    /* The counting API is unchanged by the statistics. */
    assert_int_equal(gkm_pool_total(pool, 1), 3);
    assert_int_equal(gkm_pool_model_count(pool, 1, "gemini-2.5-pro"), 0);
    assert_int_equal(gkm_pool_model_count(pool, 1, ""), 0);
    struct count_list cl = {0};
    gkm_pool_foreach_model_count(pool, 1, collect_count, &cl);
    assert_int_equal(cl.len, 1);
    assert_string_equal(cl.models[0], "gemini-2.5-flash");

    /* foreach_stats: everything non-zero, by name, "" first. */
    struct stats_list l = {0};
    gkm_pool_foreach_stats(pool, 1, collect_stats, &l);
    assert_int_equal(l.len, 4);
    assert_string_equal(l.models[0], "");
    assert_int_equal(l.st[0].requests, 1);
    assert_string_equal(l.models[1], "a-model");
    assert_int_equal(l.st[1].errors[GKM_STATS_ERRORS - 1], 1);
    assert_int_equal(l.st[1].requests, 0);
    assert_string_equal(l.models[2], "gemini-2.5-flash");
    assert_int_equal(l.st[2].prompt_tokens, 150);
    assert_string_equal(l.models[3], "gemini-2.5-pro");
    assert_int_equal(l.st[3].prompt_tokens, 7);
    memset(&l, 0, sizeof(l));
    gkm_pool_foreach_stats(pool, 0, collect_stats, &l);
    assert_int_equal(l.len, 0);
    gkm_pool_foreach_stats(pool, 42, collect_stats, &l);
    assert_int_equal(l.len, 0);
    /* A key with only no-model requests has a "" entry. */
    gkm_pool_count(pool, 2, NULL);
    gkm_pool_foreach_stats(pool, 2, collect_stats, &l);
    assert_int_equal(l.len, 1);
    assert_string_equal(l.models[0], "");
    assert_int_equal(l.st[0].requests, 1);

    /* The daily reset zeroes the statistics too. */
    g = gkm_pool_generation(pool);
    gkm_pool_reset_counts(pool);
    assert_true(gkm_pool_generation(pool) > g);
    assert_int_equal(gkm_pool_get_stats(pool, 1, "gemini-2.5-flash", &st),
                     -1);
    assert_int_equal(gkm_pool_get_stats(pool, 1, "", &st), -1);
    memset(&l, 0, sizeof(l));
    gkm_pool_foreach_stats(pool, 1, collect_stats, &l);
    assert_int_equal(l.len, 0);
    gkm_pool_add_tokens(pool, 1, "gemini-2.5-flash", 4, 0, 0);
    assert_int_equal(gkm_pool_get_stats(pool, 1, "gemini-2.5-flash", &st), 0);
    assert_int_equal(st.prompt_tokens, 4);
    assert_int_equal(st.errors[3], 0);
    gkm_pool_free(pool);
}

static void test_stats_set_and_saturate(void **state)
{
    (void)state;
    struct gkm_pool *pool = make_pool(2, NULL);
    struct gkm_model_stats st = {0}, got;
    st.requests = 5;
    st.prompt_tokens = 1000;
    st.output_tokens = 200;
    st.thinking_tokens = 30;
    st.errors[4] = 2;
    uint64_t g = gkm_pool_generation(pool);
    gkm_pool_set_stats(pool, 0, "m", &st);
    assert_true(gkm_pool_generation(pool) > g);
    assert_int_equal(gkm_pool_get_stats(pool, 0, "m", &got), 0);
    assert_memory_equal(&got, &st, sizeof(st));
    /* requests is the per-model count; the total is not touched. */
    assert_int_equal(gkm_pool_model_count(pool, 0, "m"), 5);
    assert_int_equal(gkm_pool_total(pool, 0), 0);
    /* For "" requests are derived: a given value is ignored. */
    gkm_pool_set_total(pool, 0, 8);
    gkm_pool_set_stats(pool, 0, "", &st);
    assert_int_equal(gkm_pool_get_stats(pool, 0, "", &got), 0);
    assert_int_equal(got.requests, 3); /* 8 - 5 */
    assert_int_equal(got.prompt_tokens, 1000);
    /* A total below the named counts (a hand-edited file) gives 0. */
    gkm_pool_set_total(pool, 0, 2);
    assert_int_equal(gkm_pool_get_stats(pool, 0, "", &got), 0);
    assert_int_equal(got.requests, 0);
    /* Setting zeros clears the pair. */
    struct gkm_model_stats zero = {0};
    gkm_pool_set_stats(pool, 0, "", &zero);
    gkm_pool_set_stats(pool, 0, "m", &zero);
    assert_int_equal(gkm_pool_get_stats(pool, 0, "m", &got), -1);
    assert_int_equal(gkm_pool_model_count(pool, 0, "m"), 0);
    /* ... and the total's requests now all fall to "". */
    assert_int_equal(gkm_pool_get_stats(pool, 0, "", &got), 0);
    assert_int_equal(got.requests, 2);
    assert_int_equal(got.prompt_tokens, 0);
    gkm_pool_set_total(pool, 0, 0);
    assert_int_equal(gkm_pool_get_stats(pool, 0, "", &got), -1);
    gkm_pool_set_stats(pool, 1, "fresh", &zero); /* no entry made */
    assert_int_equal(gkm_pool_get_stats(pool, 1, "fresh", &got), -1);
    gkm_pool_set_stats(pool, 7, "m", &st); /* ignored */

    /* Counters saturate instead of wrapping. */
    st.errors[4] = UINT32_MAX;
    st.prompt_tokens = UINT64_MAX - 1;
    gkm_pool_set_stats(pool, 1, "m", &st);
    gkm_pool_count_error(pool, 1, "m", 4);
    gkm_pool_add_tokens(pool, 1, "m", 10, 0, 0);
    assert_int_equal(gkm_pool_get_stats(pool, 1, "m", &got), 0);
    assert_true(got.errors[4] == UINT32_MAX);
    assert_true(got.prompt_tokens == UINT64_MAX);
    gkm_pool_free(pool);
}

static void test_stats_models_limit(void **state)
{
    (void)state;
    struct gkm_pool *pool = make_pool(1, NULL);
    char name[32];
    struct gkm_model_stats st;
    for (int i = 0; i < GKM_MODELS_MAX - 1; i++) {
        snprintf(name, sizeof(name), "model-%03d", i);
        gkm_pool_count(pool, 0, name);
    }
    /* Beyond the table, models share "": requests, tokens and errors. */
    gkm_pool_count(pool, 0, "one-too-many");
    gkm_pool_add_tokens(pool, 0, "one-too-many", 5, 0, 0);
    gkm_pool_count_error(pool, 0, "another", 1);
    assert_int_equal(gkm_pool_get_stats(pool, 0, "", &st), 0);
    assert_int_equal(st.requests, 1);
    assert_int_equal(st.prompt_tokens, 5);
    assert_int_equal(st.errors[1], 1);
    assert_int_equal(gkm_pool_get_stats(pool, 0, "model-007", &st), 0);
    assert_int_equal(st.requests, 1);
    gkm_pool_free(pool);
}

static void test_nbenched(void **state)
{
    (void)state;
    struct gkm_pool *pool = make_pool(5, NULL);
    assert_int_equal(gkm_pool_nbenched(pool, "m", T0), 0);
    assert_int_equal(gkm_pool_nbenched(pool, NULL, T0), 0);
    gkm_pool_bench(pool, 0, "m", T0 + 1000, GKM_BENCH_QUOTA_MINUTE);
    gkm_pool_bench(pool, 1, "m", GKM_FOREVER, GKM_BENCH_NO_QUOTA);
    gkm_pool_bench(pool, 2, NULL, T0 + 5000, GKM_BENCH_KEY_DENIED);
    gkm_pool_bench(pool, 3, "other", T0 + 5000, GKM_BENCH_QUOTA_DAY);
    assert_int_equal(gkm_pool_nbenched(pool, "m", T0), 3);
    assert_int_equal(gkm_pool_nbenched(pool, "other", T0), 2);
    assert_int_equal(gkm_pool_nbenched(pool, "unseen", T0), 1);
    /* Expiry counts without a pick. */
    assert_int_equal(gkm_pool_nbenched(pool, "m", T0 + 1000), 2);
    assert_int_equal(gkm_pool_nbenched(pool, "m", T0 + 5000), 1);
    (void)gkm_pool_pick(pool, "m", T0 + 5000);
    assert_int_equal(gkm_pool_nbenched(pool, "m", T0 + 5000), 1);
    gkm_pool_unbench(pool, 1, "m");
    assert_int_equal(gkm_pool_nbenched(pool, "m", T0 + 5000), 0);
    gkm_pool_free(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_stats_set_and_saturate),
        cmocka_unit_test(test_stats_models_limit),
        cmocka_unit_test(test_nbenched),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
