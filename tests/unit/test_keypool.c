/*
 * test_keypool.c - rotation, benching, projects, counting and the O(log n)
 * pick guarantee of the key pool, driven by a fake clock (token and error
 * statistics: test_keypool_stats.c).
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

static long pick(struct gkm_pool *pool, const char *model, int64_t now)
{
    return gkm_pool_pick(pool, model, now).idx;
}

static void test_round_robin_fresh(void **state)
{
    (void)state;
    struct gkm_pool *pool = make_pool(3, NULL);
    assert_int_equal(gkm_pool_size(pool), 3);
    for (int round = 0; round < 4; round++)
        for (long k = 0; k < 3; k++)
            assert_int_equal(pick(pool, "gemini-2.5-flash", T0), k);
    /* Each model has its own cursor, which starts after the key picked
     * last for any model (so many models still spread over all keys). */
    assert_int_equal(pick(pool, "gemini-2.5-pro", T0), 0);
    assert_int_equal(pick(pool, "", T0), 1);
    assert_int_equal(pick(pool, NULL, T0), 2); /* NULL is "" */
    assert_int_equal(pick(pool, "gemini-2.5-pro", T0), 1);
    assert_int_equal(pick(pool, "gemini-2.5-flash", T0), 0);
    struct gkm_pick p = gkm_pool_pick(pool, "m", T0);
    assert_int_equal(p.idx, 1);
    assert_int_equal(p.reason, GKM_BENCH_NONE);
    gkm_pool_free(pool);
}

static void test_lookup_and_projects(void **state)
{
    (void)state;
    const char *projects[] = {"alpha", NULL, "alpha", "beta", NULL};
    struct gkm_pool *pool = make_pool(5, projects);
    char want[64];
    snprintf(want, sizeof(want), "AIzaSyTEST%029d", 3);
    assert_int_equal(gkm_pool_find(pool, want), 3);
    assert_string_equal(gkm_pool_secret(pool, 3), want);
    assert_int_equal(gkm_pool_find(pool, "nope"), -1);
    assert_int_equal(gkm_pool_find(pool, NULL), -1);
    assert_string_equal(gkm_pool_mask(pool, 3), "...0003");
    assert_string_equal(gkm_pool_project(pool, 0), "alpha");
    assert_string_equal(gkm_pool_project(pool, 2), "alpha");
    assert_string_equal(gkm_pool_project(pool, 3), "beta");
    /* Keys without a project get a private one named after their mask. */
    assert_string_equal(gkm_pool_project(pool, 1), "...0001");
    assert_string_equal(gkm_pool_project(pool, 4), "...0004");

    /* Benching the project of key 2 benches 0 and 2, for that model only. */
    gkm_pool_bench_project(pool, 2, "m", T0 + 1000, GKM_BENCH_QUOTA_MINUTE);
    assert_int_equal(gkm_pool_state(pool, 0, "m", T0, NULL),
                     GKM_BENCH_QUOTA_MINUTE);
    assert_int_equal(gkm_pool_state(pool, 2, "m", T0, NULL),
                     GKM_BENCH_QUOTA_MINUTE);
    assert_int_equal(gkm_pool_state(pool, 1, "m", T0, NULL), GKM_BENCH_NONE);
    assert_int_equal(gkm_pool_state(pool, 0, "other", T0, NULL),
                     GKM_BENCH_NONE);
    for (int i = 0; i < 6; i++) {
        long k = pick(pool, "m", T0);
        assert_true(k == 1 || k == 3 || k == 4);
    }
    /* A private project benches only its key. */
    gkm_pool_bench_project(pool, 1, "m", T0 + 1000, GKM_BENCH_QUOTA_MINUTE);
    assert_int_equal(gkm_pool_state(pool, 4, "m", T0, NULL), GKM_BENCH_NONE);
    assert_int_equal(gkm_pool_state(pool, 1, "m", T0, NULL),
                     GKM_BENCH_QUOTA_MINUTE);
    /* Key-wide project bench. */
    gkm_pool_bench_project(pool, 3, NULL, GKM_FOREVER, GKM_BENCH_KEY_INVALID);
    assert_int_equal(gkm_pool_state(pool, 3, "x", T0, NULL),
                     GKM_BENCH_KEY_INVALID);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pick(pool, "m", T0), 4);
    gkm_pool_free(pool);
}

static void test_bench_model_and_expiry(void **state)
{
    (void)state;
    struct gkm_pool *pool = make_pool(3, NULL);
    int64_t until = T0 + 60000;
    gkm_pool_bench(pool, 1, "m", until, GKM_BENCH_QUOTA_MINUTE);
    int64_t got = 0;
    assert_int_equal(gkm_pool_state(pool, 1, "m", T0, &got),
                     GKM_BENCH_QUOTA_MINUTE);
    assert_true(got == until);
    assert_int_equal(gkm_pool_state(pool, 1, "m", until, NULL),
                     GKM_BENCH_NONE);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pick(pool, "m", T0), 0);
        assert_int_equal(pick(pool, "m", T0), 2);
    }
    /* Other models are untouched. */
    assert_int_equal(pick(pool, "n", T0), 0);
    assert_int_equal(pick(pool, "n", T0), 1);
    /* At until the bench is over by itself: all three rotate again. */
    int seen[3] = {0};
    for (int i = 0; i < 6; i++)
        seen[pick(pool, "m", until)]++;
    assert_int_equal(seen[0], 2);
    assert_int_equal(seen[1], 2);
    assert_int_equal(seen[2], 2);
    gkm_pool_free(pool);
}

static void test_no_key_available(void **state)
{
    (void)state;
    struct gkm_pool *pool = make_pool(3, NULL);
    gkm_pool_bench(pool, 0, "m", T0 + 5000, GKM_BENCH_QUOTA_MINUTE);
    gkm_pool_bench(pool, 1, "m", T0 + 3000, GKM_BENCH_RATE_LIMITED);
    gkm_pool_bench(pool, 2, NULL, GKM_FOREVER, GKM_BENCH_KEY_SUSPENDED);
    struct gkm_pick p = gkm_pool_pick(pool, "m", T0);
    assert_int_equal(p.idx, -1);
    assert_true(p.retry_at_ms == T0 + 3000);
    assert_int_equal(p.reason, GKM_BENCH_RATE_LIMITED);
    /* At T0+3000 key 1 is back; afterwards only key 0 blocks. */
    assert_int_equal(pick(pool, "m", T0 + 3000), 1);
    gkm_pool_bench(pool, 1, "m", T0 + 9000, GKM_BENCH_QUOTA_DAY);
    p = gkm_pool_pick(pool, "m", T0 + 3000);
    assert_int_equal(p.idx, -1);
    assert_true(p.retry_at_ms == T0 + 5000);
    assert_int_equal(p.reason, GKM_BENCH_QUOTA_MINUTE);

    /* All forever: retry_at is GKM_FOREVER with the reason. */
    struct gkm_pool *p2 = make_pool(2, NULL);
    gkm_pool_bench(p2, 0, NULL, GKM_FOREVER, GKM_BENCH_KEY_INVALID);
    gkm_pool_bench(p2, 1, "m", GKM_FOREVER, GKM_BENCH_NO_QUOTA);
    p = gkm_pool_pick(p2, "m", T0);
    assert_int_equal(p.idx, -1);
    assert_true(p.retry_at_ms == GKM_FOREVER);
    assert_true(p.reason == GKM_BENCH_KEY_INVALID ||
                p.reason == GKM_BENCH_NO_QUOTA);
    /* Key 1 is still fine for other models. */
    assert_int_equal(pick(p2, "z", T0), 1);
    assert_int_equal(pick(p2, "z", T0), 1);
    gkm_pool_free(p2);
    gkm_pool_free(pool);
}

static void test_key_wide_and_model_combined(void **state)
{
    (void)state;
    struct gkm_pool *pool = make_pool(1, NULL);
    /* Per-model bench ends first; the key-wide one keeps the key out. */
    gkm_pool_bench(pool, 0, "m", T0 + 1000, GKM_BENCH_QUOTA_MINUTE);
    gkm_pool_bench(pool, 0, NULL, T0 + 5000, GKM_BENCH_KEY_DENIED);
    struct gkm_pick p = gkm_pool_pick(pool, "m", T0);
    assert_int_equal(p.idx, -1);
    assert_true(p.retry_at_ms == T0 + 5000);
    assert_int_equal(p.reason, GKM_BENCH_KEY_DENIED);
    p = gkm_pool_pick(pool, "m", T0 + 2000);
    assert_int_equal(p.idx, -1);
    assert_true(p.retry_at_ms == T0 + 5000);
    assert_int_equal(pick(pool, "m", T0 + 5000), 0);

    /* Key-wide ends first, per-model keeps it out for that model. */
    gkm_pool_bench(pool, 0, NULL, T0 + 6000, GKM_BENCH_KEY_DENIED);
    gkm_pool_bench(pool, 0, "m", T0 + 9000, GKM_BENCH_QUOTA_DAY);
    assert_int_equal(gkm_pool_state(pool, 0, "m", T0 + 5500, NULL),
                     GKM_BENCH_KEY_DENIED); /* key-wide wins */
    assert_int_equal(gkm_pool_state(pool, 0, "m", T0 + 6500, NULL),
                     GKM_BENCH_QUOTA_DAY);
    p = gkm_pool_pick(pool, "m", T0 + 6500);
    assert_int_equal(p.idx, -1);
    assert_true(p.retry_at_ms == T0 + 9000);
    assert_int_equal(p.reason, GKM_BENCH_QUOTA_DAY);
    assert_int_equal(pick(pool, "other", T0 + 6500), 0);
    assert_int_equal(pick(pool, "m", T0 + 9000), 0);
    gkm_pool_free(pool);
}

static void test_replace_and_unbench(void **state)
{
    (void)state;
    struct gkm_pool *pool = make_pool(2, NULL);
    /* A later, shorter bench replaces a longer one. */
    gkm_pool_bench(pool, 0, "m", T0 + 100000, GKM_BENCH_QUOTA_DAY);
    gkm_pool_bench(pool, 0, "m", T0 + 1000, GKM_BENCH_QUOTA_MINUTE);
    int64_t until = 0;
    assert_int_equal(gkm_pool_state(pool, 0, "m", T0, &until),
                     GKM_BENCH_QUOTA_MINUTE);
    assert_true(until == T0 + 1000);
    assert_int_equal(pick(pool, "m", T0), 1);
    assert_int_equal(pick(pool, "m", T0), 1);
    /* Back at T0+1000, at the end of the current round. */
    assert_int_equal(pick(pool, "m", T0 + 1000), 1);
    assert_int_equal(pick(pool, "m", T0 + 1000), 0);

    /* Unbench a model pair. */
    gkm_pool_bench(pool, 1, "m", GKM_FOREVER, GKM_BENCH_NO_QUOTA);
    assert_int_equal(pick(pool, "m", T0), 0);
    assert_int_equal(pick(pool, "m", T0), 0);
    gkm_pool_unbench(pool, 1, "m");
    assert_int_equal(gkm_pool_state(pool, 1, "m", T0, NULL), GKM_BENCH_NONE);
    int seen1 = 0;
    for (int i = 0; i < 4; i++)
        seen1 += pick(pool, "m", T0) == 1;
    assert_int_equal(seen1, 2);

    /* Key-wide: shortened while the key waits in a model's heap, it must
     * come back at the new, earlier time. */
    gkm_pool_bench(pool, 0, NULL, GKM_FOREVER, GKM_BENCH_KEY_LEAKED);
    assert_int_equal(pick(pool, "m", T0), 1);
    assert_int_equal(pick(pool, "m", T0), 1); /* key 0 now in m's heap */
    gkm_pool_bench(pool, 0, NULL, T0 + 50, GKM_BENCH_RATE_LIMITED);
    assert_int_equal(gkm_pool_state(pool, 0, "m", T0, NULL),
                     GKM_BENCH_RATE_LIMITED);
    int seen0 = 0;
    for (int i = 0; i < 4; i++)
        seen0 += pick(pool, "m", T0 + 50) == 0;
    assert_int_equal(seen0, 2);

    /* Key-wide unbench. */
    gkm_pool_bench(pool, 1, NULL, GKM_FOREVER, GKM_BENCH_KEY_INVALID);
    assert_int_equal(pick(pool, "m", T0 + 60), 0);
    assert_int_equal(pick(pool, "m", T0 + 60), 0);
    gkm_pool_unbench(pool, 1, NULL);
    assert_int_equal(gkm_pool_state(pool, 1, "m", T0 + 60, NULL),
                     GKM_BENCH_NONE);
    seen1 = 0;
    for (int i = 0; i < 4; i++)
        seen1 += pick(pool, "m", T0 + 60) == 1;
    assert_int_equal(seen1, 2);
    /* Unbenching a model never used is harmless. */
    gkm_pool_unbench(pool, 0, "never-seen");
    /* until <= now has no lasting effect. */
    gkm_pool_bench(pool, 0, "m", T0, GKM_BENCH_QUOTA_MINUTE);
    assert_int_equal(gkm_pool_state(pool, 0, "m", T0 + 60, NULL),
                     GKM_BENCH_NONE);
    seen0 = 0;
    for (int i = 0; i < 4; i++)
        seen0 += pick(pool, "m", T0 + 60) == 0;
    assert_int_equal(seen0, 2);
    gkm_pool_free(pool);
}

struct bench_rec {
    size_t idx;
    char model[GKM_MODEL_MAX + 1];
    int wide;
    int64_t until;
    enum gkm_bench_reason r;
};

struct bench_list {
    struct bench_rec recs[16];
    size_t n;
};

static void collect_bench(void *arg, size_t idx, const char *model,
                          int64_t until_ms, enum gkm_bench_reason r)
{
    struct bench_list *l = arg;
    assert_true(l->n < 16);
    struct bench_rec *b = &l->recs[l->n++];
    b->idx = idx;
    b->wide = model == NULL;
    snprintf(b->model, sizeof(b->model), "%s", model ? model : "");
    b->until = until_ms;
    b->r = r;
}

static void test_foreach_bench(void **state)
{
    (void)state;
    struct gkm_pool *pool = make_pool(3, NULL);
    gkm_pool_bench(pool, 2, "zeta", T0 + 10, GKM_BENCH_QUOTA_MINUTE);
    gkm_pool_bench(pool, 2, "alpha", GKM_FOREVER, GKM_BENCH_NO_QUOTA);
    gkm_pool_bench(pool, 0, NULL, GKM_FOREVER, GKM_BENCH_KEY_INVALID);
    gkm_pool_bench(pool, 0, "beta", T0 + 5, GKM_BENCH_QUOTA_DAY);
    gkm_pool_bench(pool, 1, "beta", T0 - 5, GKM_BENCH_QUOTA_DAY); /* over */
    struct bench_list l = {0};
    gkm_pool_foreach_bench(pool, T0, collect_bench, &l);
    assert_int_equal(l.n, 4);
    assert_int_equal(l.recs[0].idx, 0);
    assert_true(l.recs[0].wide);
    assert_int_equal(l.recs[0].r, GKM_BENCH_KEY_INVALID);
    assert_true(l.recs[0].until == GKM_FOREVER);
    assert_int_equal(l.recs[1].idx, 0);
    assert_string_equal(l.recs[1].model, "beta");
    assert_int_equal(l.recs[2].idx, 2);
    assert_string_equal(l.recs[2].model, "alpha");
    assert_int_equal(l.recs[2].r, GKM_BENCH_NO_QUOTA);
    assert_int_equal(l.recs[3].idx, 2);
    assert_string_equal(l.recs[3].model, "zeta");
    assert_true(l.recs[3].until == T0 + 10);
    /* Later, the timed ones are gone. */
    l.n = 0;
    gkm_pool_foreach_bench(pool, T0 + 10, collect_bench, &l);
    assert_int_equal(l.n, 2);
    gkm_pool_free(pool);
}

/* The guarantee in keypool.h: 10,000 keys with 9,999 benched. */
static void test_many_benched(void **state)
{
    (void)state;
    const size_t n = 10000;
    struct gkm_pool *pool = make_pool(n, NULL);
    /* Half key-wide (found lazily), half per model. */
    for (size_t k = 0; k < n; k++) {
        if (k == 4321)
            continue;
        if (k % 2)
            gkm_pool_bench(pool, k, NULL, T0 + 1000000 + (int64_t)k,
                           GKM_BENCH_KEY_DENIED);
        else
            gkm_pool_bench(pool, k, "m", T0 + 1000000 + (int64_t)k,
                           GKM_BENCH_QUOTA_DAY);
    }
    for (int i = 0; i < 100000; i++) {
        struct gkm_pick p = gkm_pool_pick(pool, "m", T0 + i);
        assert_int_equal(p.idx, 4321);
    }
    /* Bench the last one: the earliest expiry is reported. */
    gkm_pool_bench(pool, 4321, "m", T0 + 2000000, GKM_BENCH_QUOTA_MINUTE);
    struct gkm_pick p = gkm_pool_pick(pool, "m", T0);
    assert_int_equal(p.idx, -1);
    assert_true(p.retry_at_ms == T0 + 1000000);
    assert_int_equal(p.reason, GKM_BENCH_QUOTA_DAY); /* key 0 */
    /* When everything has expired, every key comes back exactly once per
     * round. */
    char *seen = gkm_xcalloc(n, 1);
    for (size_t i = 0; i < n; i++) {
        long k = pick(pool, "m", T0 + 3000000);
        assert_true(k >= 0 && (size_t)k < n);
        assert_int_equal(seen[k], 0);
        seen[k] = 1;
    }
    free(seen);
    gkm_pool_free(pool);

    /* All-but-one forever, key-wide, on a fresh model: the first pick
     * moves them all out once; 100,000 picks stay correct. */
    pool = make_pool(n, NULL);
    for (size_t k = 1; k < n; k++)
        gkm_pool_bench(pool, k, NULL, GKM_FOREVER, GKM_BENCH_KEY_INVALID);
    for (int i = 0; i < 100000; i++)
        assert_int_equal(pick(pool, "fresh", T0), 0);
    gkm_pool_bench(pool, 0, "fresh", T0 + 10, GKM_BENCH_RATE_LIMITED);
    p = gkm_pool_pick(pool, "fresh", T0);
    assert_int_equal(p.idx, -1);
    assert_true(p.retry_at_ms == T0 + 10);
    assert_int_equal(p.reason, GKM_BENCH_RATE_LIMITED);
    gkm_pool_free(pool);
}

/* Random operations checked against a brute-force model of availability. */
static void test_randomised_against_reference(void **state)
{
    (void)state;
    enum { N = 12, NM = 3, STEPS = 20000 };
    static const char *const models[NM] = {"a", "b", ""};
    int64_t pm[N][NM] = {{0}}, wide[N] = {0};
    int64_t now = T0;
    struct gkm_pool *pool = make_pool(N, NULL);
    unsigned seed = 12345;
    for (int step = 0; step < STEPS; step++) {
        seed = seed * 1103515245u + 12345u;
        unsigned r = (seed >> 8) & 0xffff;
        size_t k = r % N;
        int m = (int)((r / N) % NM);
        switch ((r >> 10) % 8) {
        case 0: {
            int64_t until = now + (int64_t)(r % 500);
            gkm_pool_bench(pool, k, models[m], until, GKM_BENCH_QUOTA_MINUTE);
            pm[k][m] = until;
            break;
        }
        case 1: {
            int64_t until = (r & 1) ? now + (int64_t)(r % 700) : GKM_FOREVER;
            if ((r % 5) == 0) {
                gkm_pool_bench(pool, k, NULL, until, GKM_BENCH_KEY_DENIED);
                wide[k] = until;
            }
            break;
        }
        case 2:
            gkm_pool_unbench(pool, k, models[m]);
            pm[k][m] = 0;
            break;
        case 3:
            gkm_pool_unbench(pool, k, NULL);
            wide[k] = 0;
            break;
        case 4:
            now += r % 97;
            break;
        default: {
            struct gkm_pick p = gkm_pool_pick(pool, models[m], now);
            int64_t best = GKM_FOREVER;
            int any = 0;
            for (size_t j = 0; j < N; j++) {
                int64_t at = 0;
                if (pm[j][m] > now)
                    at = pm[j][m];
                if (wide[j] > now && wide[j] > at)
                    at = wide[j];
                if (at == 0)
                    any = 1;
                else if (at < best)
                    best = at;
            }
            if (any) {
                assert_true(p.idx >= 0);
                int64_t a = pm[p.idx][m], w = wide[p.idx];
                assert_false(a > now);
                assert_false(w > now);
            } else {
                assert_int_equal(p.idx, -1);
                assert_true(p.retry_at_ms == best);
            }
            break;
        }
        }
    }
    gkm_pool_free(pool);
}

static void test_fairness_between_changes(void **state)
{
    (void)state;
    struct gkm_pool *pool = make_pool(7, NULL);
    gkm_pool_bench(pool, 2, "m", T0 + 100, GKM_BENCH_QUOTA_MINUTE);
    gkm_pool_bench(pool, 5, NULL, T0 + 100, GKM_BENCH_KEY_DENIED);
    for (int round = 0; round < 3; round++) {
        int seen[7] = {0};
        for (int i = 0; i < 5; i++)
            seen[pick(pool, "m", T0)]++;
        for (int k = 0; k < 7; k++)
            assert_int_equal(seen[k], (k == 2 || k == 5) ? 0 : 1);
    }
    /* Once back, the two keys join the rotation: 7 distinct in 7 picks. */
    int seen[7] = {0};
    for (int i = 0; i < 7; i++)
        seen[pick(pool, "m", T0 + 100)]++;
    for (int k = 0; k < 7; k++)
        assert_int_equal(seen[k], 1);
    gkm_pool_free(pool);
}

static void test_models_limit(void **state)
{
    (void)state;
    struct gkm_pool *pool = make_pool(2, NULL);
    char name[32];
    /* "" exists from the start, so GKM_MODELS_MAX - 1 named models fit. */
    for (int i = 0; i < GKM_MODELS_MAX - 1; i++) {
        snprintf(name, sizeof(name), "model-%d", i);
        assert_int_equal(pick(pool, name, T0), i % 2);
    }
    /* The next new model shares the "" pseudo-model. */
    gkm_pool_bench(pool, 0, "", T0 + 100, GKM_BENCH_RATE_LIMITED);
    assert_int_equal(gkm_pool_state(pool, 0, "one-too-many", T0, NULL),
                     GKM_BENCH_RATE_LIMITED);
    assert_int_equal(pick(pool, "one-too-many", T0), 1);
    assert_int_equal(pick(pool, "another-new-one", T0), 1);
    /* Known models still have their own state. */
    assert_int_equal(gkm_pool_state(pool, 0, "model-7", T0, NULL),
                     GKM_BENCH_NONE);
    assert_int_equal(pick(pool, "model-7", T0), 0); /* its cursor moved on */
    gkm_pool_free(pool);

    /* Over-long names are "no model". */
    pool = make_pool(2, NULL);
    char longname[GKM_MODEL_MAX + 2];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    gkm_pool_bench(pool, 1, longname, T0 + 100, GKM_BENCH_NO_QUOTA);
    assert_int_equal(gkm_pool_state(pool, 1, "", T0, NULL), GKM_BENCH_NO_QUOTA);
    longname[GKM_MODEL_MAX] = '\0'; /* exactly the maximum is a model */
    assert_int_equal(gkm_pool_state(pool, 1, longname, T0, NULL),
                     GKM_BENCH_NONE);
    gkm_pool_free(pool);
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

static void test_counts(void **state)
{
    (void)state;
    struct gkm_pool *pool = make_pool(3, NULL);
    uint64_t g = gkm_pool_generation(pool);
    gkm_pool_count(pool, 1, "gemini-2.5-pro");
    assert_true(gkm_pool_generation(pool) > g);
    gkm_pool_count(pool, 1, "gemini-2.5-flash");
    gkm_pool_count(pool, 1, "gemini-2.5-flash");
    gkm_pool_count(pool, 1, "");
    gkm_pool_count(pool, 1, NULL);
    assert_int_equal(gkm_pool_total(pool, 1), 5);
    assert_int_equal(gkm_pool_total(pool, 0), 0);
    assert_int_equal(gkm_pool_model_count(pool, 1, "gemini-2.5-flash"), 2);
    assert_int_equal(gkm_pool_model_count(pool, 1, "gemini-2.5-pro"), 1);
    assert_int_equal(gkm_pool_model_count(pool, 1, ""), 0);
    assert_int_equal(gkm_pool_model_count(pool, 1, "unknown"), 0);
    assert_int_equal(gkm_pool_model_count(pool, 0, "gemini-2.5-pro"), 0);

    struct count_list l = {0};
    gkm_pool_foreach_model_count(pool, 1, collect_count, &l);
    assert_int_equal(l.len, 2); /* name order */
    assert_string_equal(l.models[0], "gemini-2.5-flash");
    assert_int_equal(l.n[0], 2);
    assert_string_equal(l.models[1], "gemini-2.5-pro");
    assert_int_equal(l.n[1], 1);

    g = gkm_pool_generation(pool);
    gkm_pool_set_total(pool, 2, 40);
    gkm_pool_set_model_count(pool, 2, "b-model", 30);
    gkm_pool_set_model_count(pool, 2, "a-model", 10);
    gkm_pool_set_model_count(pool, 2, "c-model", 0);
    assert_true(gkm_pool_generation(pool) >= g + 4);
    assert_int_equal(gkm_pool_total(pool, 2), 40);
    memset(&l, 0, sizeof(l));
    gkm_pool_foreach_model_count(pool, 2, collect_count, &l);
    assert_int_equal(l.len, 2);
    assert_string_equal(l.models[0], "a-model");
    assert_int_equal(l.n[0], 10);
    assert_string_equal(l.models[1], "b-model");
    gkm_pool_set_model_count(pool, 2, "a-model", 0);
    memset(&l, 0, sizeof(l));
    gkm_pool_foreach_model_count(pool, 2, collect_count, &l);
    assert_int_equal(l.len, 1);

    /* Reset zeroes counters but keeps benches. */
    gkm_pool_bench(pool, 0, "gemini-2.5-pro", T0 + 10, GKM_BENCH_QUOTA_DAY);
    g = gkm_pool_generation(pool);
    gkm_pool_reset_counts(pool);
    assert_true(gkm_pool_generation(pool) > g);
    for (size_t k = 0; k < 3; k++)
        assert_int_equal(gkm_pool_total(pool, k), 0);
    assert_int_equal(gkm_pool_model_count(pool, 1, "gemini-2.5-flash"), 0);
    memset(&l, 0, sizeof(l));
    gkm_pool_foreach_model_count(pool, 1, collect_count, &l);
    assert_int_equal(l.len, 0);
    assert_int_equal(gkm_pool_state(pool, 0, "gemini-2.5-pro", T0, NULL),
                     GKM_BENCH_QUOTA_DAY);
    /* Counting again after a reset works. */
    gkm_pool_count(pool, 1, "gemini-2.5-flash");
    assert_int_equal(gkm_pool_model_count(pool, 1, "gemini-2.5-flash"), 1);
    gkm_pool_free(pool);
}

static void test_generation(void **state)
{
    (void)state;
    struct gkm_pool *pool = make_pool(2, NULL);
    uint64_t g = gkm_pool_generation(pool);
    (void)gkm_pool_pick(pool, "m", T0); /* picking is not a state change */
    assert_true(gkm_pool_generation(pool) == g);
    gkm_pool_bench(pool, 0, "m", T0 + 1, GKM_BENCH_QUOTA_MINUTE);
    assert_true(gkm_pool_generation(pool) > g);
    g = gkm_pool_generation(pool);
    gkm_pool_unbench(pool, 0, "m");
    assert_true(gkm_pool_generation(pool) > g);
    g = gkm_pool_generation(pool);
    gkm_pool_bench_project(pool, 1, NULL, T0 + 1, GKM_BENCH_KEY_DENIED);
    assert_true(gkm_pool_generation(pool) > g);
    gkm_pool_free(pool);
}

static void test_reason_names(void **state)
{
    (void)state;
    for (int r = 0; r < GKM_BENCH_REASON_COUNT; r++) {
        enum gkm_bench_reason back;
        const char *name = gkm_bench_reason_name((enum gkm_bench_reason)r);
        assert_int_equal(gkm_bench_reason_parse(name, &back), 0);
        assert_int_equal(back, r);
    }
    assert_string_equal(gkm_bench_reason_name(GKM_BENCH_QUOTA_DAY),
                        "quota_day");
    assert_string_equal(gkm_bench_reason_name(GKM_BENCH_KEY_INVALID),
                        "key_invalid");
    enum gkm_bench_reason out = GKM_BENCH_NONE;
    assert_int_equal(gkm_bench_reason_parse("bogus", &out), -1);
    assert_int_equal(gkm_bench_reason_parse(NULL, &out), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_robin_fresh),
        cmocka_unit_test(test_lookup_and_projects),
        cmocka_unit_test(test_bench_model_and_expiry),
        cmocka_unit_test(test_no_key_available),
        cmocka_unit_test(test_key_wide_and_model_combined),
        cmocka_unit_test(test_replace_and_unbench),
        cmocka_unit_test(test_foreach_bench),
        cmocka_unit_test(test_many_benched),
        cmocka_unit_test(test_randomised_against_reference),
        cmocka_unit_test(test_fairness_between_changes),
        cmocka_unit_test(test_models_limit),
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_generation),
        cmocka_unit_test(test_reason_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
