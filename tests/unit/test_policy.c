/*
 * test_policy.c - error class -> action, driven by an injected clock: every
 * class, per-minute fallback and alignment, caps, the escalation of
 * no-detail 429s (cap, no escalation while cooling, decay, reset on OK),
 * the escalation table itself, server backoff, Retry-After rounding, and
 * applying actions to a real key pool.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>

#include <cmocka.h>

#include "gerror.h"
#include "keypool.h"
#include "policy.h"
#include "util.h"

#ifndef GKM_FIXTURES
#error "GKM_FIXTURES must name the tests/fixtures directory"
#endif

/* 2027-01-15T08:00:00Z: exactly on a minute boundary. */
#define T0 1800000000000LL
#define RESET (T0 + 5 * 3600 * 1000LL)
#define MODEL "gemini-2.5-flash"

static struct gkm_err_info info(enum gkm_err_class cls, int64_t retry_ms)
{
    struct gkm_err_info e;
    memset(&e, 0, sizeof(e));
    e.cls = cls;
    e.retry_ms = retry_ms;
    e.quota_value = -1;
    return e;
}

static struct gkm_err_info from_fixture(const char *name, long status)
{
    struct gkm_err_info e;
    char *path = gkm_xasprintf("%s/errors/%s", GKM_FIXTURES, name);
    char *data = NULL;
    size_t len = 0;
    if (gkm_read_file(path, 1 << 22, &data, &len) != 0)
        fail_msg("cannot read %s", path);
    gkm_gerror_classify(status, data, len, &e);
    free(data);
    free(path);
    return e;
}

static struct gkm_action decide(const struct gkm_policy_opts *o,
                                struct gkm_policy_state *st,
                                struct gkm_err_info e, size_t key, int64_t now)
{
    return gkm_policy_decide(o, st, &e, key, MODEL, now, RESET);
}

static void test_defaults(void **state)
{
    (void)state;
    struct gkm_policy_opts o;
    memset(&o, 0x5a, sizeof(o));
    gkm_policy_defaults(&o);
    assert_int_equal(o.minute_fallback_ms, 60000);
    assert_int_equal(o.minute_align, 1);
    assert_int_equal(o.quota_min_ms, 1000);
    assert_int_equal(o.retry_cap_ms, 86400000);
    assert_int_equal(o.long_retry_day_ms, 0);
    assert_int_equal(o.unknown_429_ms, 10000);
    assert_int_equal(o.unknown_429_max_ms, 300000);
    assert_int_equal(o.unknown_429_decay_ms, 600000);
    assert_int_equal(o.server_retry_max, 3);
    assert_int_equal(o.server_backoff_ms, 500);
    assert_int_equal(o.server_backoff_max_ms, 4000);
}

/* Real bodies end to end: classification then action. */
static void test_fixture_actions(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        long status;
        enum gkm_act_kind kind;
        enum gkm_bench_scope scope;
        enum gkm_bench_reason reason;
        int64_t until; /* relative to T0; -1 = GKM_FOREVER, 0 = none */
    } t[] = {
        {"quota_minute_429.json", 429, GKM_ACT_RETRY_OTHER_KEY,
         GKM_SCOPE_PROJECT, GKM_BENCH_QUOTA_MINUTE, 43129},
        {"quota_tokens_minute_429.json", 429, GKM_ACT_RETRY_OTHER_KEY,
         GKM_SCOPE_PROJECT, GKM_BENCH_QUOTA_MINUTE, 7968},
        {"array_wrapped_429.json", 429, GKM_ACT_RETRY_OTHER_KEY,
         GKM_SCOPE_PROJECT, GKM_BENCH_QUOTA_MINUTE, 26500},
        {"quota_legacy_2024_429.json", 429, GKM_ACT_RETRY_OTHER_KEY,
         GKM_SCOPE_PROJECT, GKM_BENCH_QUOTA_MINUTE, 60000},
        {"quota_day_429.json", 429, GKM_ACT_RETRY_OTHER_KEY, GKM_SCOPE_PROJECT,
         GKM_BENCH_QUOTA_DAY, RESET - T0},
        {"quota_day_and_minute_429.json", 429, GKM_ACT_RETRY_OTHER_KEY,
         GKM_SCOPE_PROJECT, GKM_BENCH_QUOTA_DAY, RESET - T0},
        {"quota_zero_429.json", 429, GKM_ACT_RETRY_OTHER_KEY, GKM_SCOPE_PROJECT,
         GKM_BENCH_NO_QUOTA, -1},
        {"quota_zero_value_429.json", 429, GKM_ACT_RETRY_OTHER_KEY,
         GKM_SCOPE_PROJECT, GKM_BENCH_NO_QUOTA, -1},
        {"rate_bare_429.json", 429, GKM_ACT_RETRY_OTHER_KEY, GKM_SCOPE_PAIR,
         GKM_BENCH_RATE_LIMITED, 10000},
        {"rate_help_only_429.json", 429, GKM_ACT_RETRY_OTHER_KEY,
         GKM_SCOPE_PAIR, GKM_BENCH_RATE_LIMITED, 10000},
        {"rate_legacy_errors_429.json", 429, GKM_ACT_RETRY_OTHER_KEY,
         GKM_SCOPE_PAIR, GKM_BENCH_RATE_LIMITED, 10000},
        {"garbage_502.html", 429, GKM_ACT_RETRY_OTHER_KEY, GKM_SCOPE_PAIR,
         GKM_BENCH_RATE_LIMITED, 10000},
        {"key_invalid_400.json", 400, GKM_ACT_RETRY_OTHER_KEY, GKM_SCOPE_KEY,
         GKM_BENCH_KEY_INVALID, -1},
        {"key_not_found_400.json", 400, GKM_ACT_RETRY_OTHER_KEY, GKM_SCOPE_KEY,
         GKM_BENCH_KEY_INVALID, -1},
        {"key_suspended_403.json", 403, GKM_ACT_RETRY_OTHER_KEY, GKM_SCOPE_KEY,
         GKM_BENCH_KEY_SUSPENDED, -1},
        {"key_leaked_403.json", 403, GKM_ACT_RETRY_OTHER_KEY, GKM_SCOPE_KEY,
         GKM_BENCH_KEY_LEAKED, -1},
        {"key_service_blocked_403.json", 403, GKM_ACT_RETRY_OTHER_KEY,
         GKM_SCOPE_KEY, GKM_BENCH_KEY_DENIED, -1},
        {"service_disabled_403.json", 403, GKM_ACT_RETRY_OTHER_KEY,
         GKM_SCOPE_KEY, GKM_BENCH_KEY_DENIED, -1},
        {"unregistered_403.json", 403, GKM_ACT_RETRY_OTHER_KEY, GKM_SCOPE_KEY,
         GKM_BENCH_KEY_DENIED, -1},
        {"internal_500.json", 500, GKM_ACT_RETRY_BACKOFF, GKM_SCOPE_NONE,
         GKM_BENCH_NONE, 0},
        {"overloaded_503.json", 503, GKM_ACT_RETRY_BACKOFF, GKM_SCOPE_NONE,
         GKM_BENCH_NONE, 0},
        {"high_demand_503.json", 503, GKM_ACT_RETRY_BACKOFF, GKM_SCOPE_NONE,
         GKM_BENCH_NONE, 0},
        {"deadline_504.json", 504, GKM_ACT_RETRY_BACKOFF, GKM_SCOPE_NONE,
         GKM_BENCH_NONE, 0},
        {"stream_error_503.json", 200, GKM_ACT_RETRY_BACKOFF, GKM_SCOPE_NONE,
         GKM_BENCH_NONE, 0},
        {"file_permission_403.json", 403, GKM_ACT_PASS, GKM_SCOPE_NONE,
         GKM_BENCH_NONE, 0},
        {"cache_permission_403.json", 403, GKM_ACT_PASS, GKM_SCOPE_NONE,
         GKM_BENCH_NONE, 0},
        {"location_400.json", 400, GKM_ACT_PASS, GKM_SCOPE_NONE,
         GKM_BENCH_NONE, 0},
        {"model_not_found_404.json", 404, GKM_ACT_PASS, GKM_SCOPE_NONE,
         GKM_BENCH_NONE, 0},
        {"unknown_field_400.json", 400, GKM_ACT_PASS, GKM_SCOPE_NONE,
         GKM_BENCH_NONE, 0},
        {"array_wrapped_400.json", 400, GKM_ACT_PASS, GKM_SCOPE_NONE,
         GKM_BENCH_NONE, 0},
        {"garbage_403.html", 403, GKM_ACT_PASS, GKM_SCOPE_NONE, GKM_BENCH_NONE,
         0},
        {"truncated_key_invalid_400.json", 400, GKM_ACT_PASS, GKM_SCOPE_NONE,
         GKM_BENCH_NONE, 0},
    };
    for (size_t i = 0; i < GKM_ARRAY_LEN(t); i++) {
        struct gkm_policy_state *st = gkm_policy_state_new();
        struct gkm_err_info e = from_fixture(t[i].file, t[i].status);
        struct gkm_action a = decide(NULL, st, e, 0, T0);
        if (a.kind != t[i].kind || a.scope != t[i].scope ||
            a.reason != t[i].reason)
            fail_msg("%s: kind %d scope %d reason %s (%s)", t[i].file, a.kind,
                     a.scope, gkm_bench_reason_name(a.reason), e.summary);
        if (t[i].until < 0)
            assert_true(a.bench_until_ms == GKM_FOREVER);
        else if (t[i].until > 0)
            assert_int_equal(a.bench_until_ms - T0, t[i].until);
        if (a.kind == GKM_ACT_RETRY_BACKOFF)
            assert_int_equal(a.delay_ms, 500);
        else
            assert_int_equal(a.delay_ms, 0);
        gkm_policy_state_free(st);
    }
}

static void test_minute_fallback(void **state)
{
    (void)state;
    struct gkm_policy_opts o;
    gkm_policy_defaults(&o);
    struct gkm_err_info e = info(GKM_ERRC_QUOTA_MINUTE, -1);
    /* On the boundary: the next one + 1 s is later than 60 s: fallback. */
    assert_int_equal(decide(&o, NULL, e, 0, T0).bench_until_ms, T0 + 60000);
    /* Mid-minute: the boundary + 1 s is sooner. */
    assert_int_equal(decide(&o, NULL, e, 0, T0 + 30500).bench_until_ms,
                     T0 + 61000);
    assert_int_equal(decide(&o, NULL, e, 0, T0 + 59999).bench_until_ms,
                     T0 + 61000);
    assert_int_equal(decide(&o, NULL, e, 0, T0 + 500).bench_until_ms,
                     T0 + 60500); /* 61000 - 500 = 60500 > 60000 */
    assert_int_equal(decide(&o, NULL, e, 0, T0 + 1000).bench_until_ms,
                     T0 + 61000); /* exactly equal */
    /* Shorter fallback: alignment only ever shortens it. */
    o.minute_fallback_ms = 20000;
    assert_int_equal(decide(&o, NULL, e, 0, T0 + 30500).bench_until_ms,
                     T0 + 30500 + 20000);
    assert_int_equal(decide(&o, NULL, e, 0, T0 + 50000).bench_until_ms,
                     T0 + 61000);
    /* No alignment. */
    o.minute_fallback_ms = 60000;
    o.minute_align = 0;
    assert_int_equal(decide(&o, NULL, e, 0, T0 + 30500).bench_until_ms,
                     T0 + 30500 + 60000);
    /* A delay Google gave is used as is, never aligned. */
    o.minute_align = 1;
    e.retry_ms = 43129;
    struct gkm_action a = decide(&o, NULL, e, 0, T0 + 30500);
    assert_int_equal(a.bench_until_ms, T0 + 30500 + 43129);
    assert_int_equal(a.kind, GKM_ACT_RETRY_OTHER_KEY);
    assert_int_equal(a.scope, GKM_SCOPE_PROJECT);
    assert_int_equal(a.reason, GKM_BENCH_QUOTA_MINUTE);
}

static void test_minute_bounds(void **state)
{
    (void)state;
    struct gkm_policy_opts o;
    gkm_policy_defaults(&o);
    /* "0s" still cools for quota_min_ms. */
    struct gkm_err_info e = info(GKM_ERRC_QUOTA_MINUTE, 0);
    assert_int_equal(decide(&o, NULL, e, 0, T0).bench_until_ms, T0 + 1000);
    e.retry_ms = 900;
    assert_int_equal(decide(&o, NULL, e, 0, T0).bench_until_ms, T0 + 1000);
    /* Long delays are honoured as given (not daily) ... */
    e.retry_ms = 400000;
    struct gkm_action a = decide(&o, NULL, e, 0, T0);
    assert_int_equal(a.bench_until_ms, T0 + 400000);
    assert_int_equal(a.reason, GKM_BENCH_QUOTA_MINUTE);
    /* ... up to the cap ... */
    e.retry_ms = 10LL * 86400000;
    assert_int_equal(decide(&o, NULL, e, 0, T0).bench_until_ms, T0 + 86400000);
    /* ... unless long_retry_day_ms says such delays mean a spent day. */
    o.long_retry_day_ms = 300000;
    e.retry_ms = 400000;
    a = decide(&o, NULL, e, 0, T0);
    assert_int_equal(a.bench_until_ms, RESET);
    assert_int_equal(a.reason, GKM_BENCH_QUOTA_DAY);
    assert_int_equal(a.scope, GKM_SCOPE_PROJECT);
    e.retry_ms = 300000; /* not above the threshold */
    a = decide(&o, NULL, e, 0, T0);
    assert_int_equal(a.bench_until_ms, T0 + 300000);
    assert_int_equal(a.reason, GKM_BENCH_QUOTA_MINUTE);
}

static void test_day_and_zero(void **state)
{
    (void)state;
    struct gkm_err_info e = info(GKM_ERRC_QUOTA_DAY, 12403);
    struct gkm_action a = decide(NULL, NULL, e, 3, T0);
    assert_int_equal(a.kind, GKM_ACT_RETRY_OTHER_KEY);
    assert_int_equal(a.scope, GKM_SCOPE_PROJECT);
    assert_int_equal(a.reason, GKM_BENCH_QUOTA_DAY);
    assert_int_equal(a.bench_until_ms, RESET); /* RetryInfo ignored */
    /* A reset that is not in the future: now + 24 h. */
    a = gkm_policy_decide(NULL, NULL, &e, 3, MODEL, T0, T0);
    assert_int_equal(a.bench_until_ms, T0 + 86400000);
    a = gkm_policy_decide(NULL, NULL, &e, 3, MODEL, T0, 0);
    assert_int_equal(a.bench_until_ms, T0 + 86400000);

    e = info(GKM_ERRC_QUOTA_ZERO, 31525);
    a = decide(NULL, NULL, e, 3, T0);
    assert_int_equal(a.kind, GKM_ACT_RETRY_OTHER_KEY);
    assert_int_equal(a.scope, GKM_SCOPE_PROJECT);
    assert_int_equal(a.reason, GKM_BENCH_NO_QUOTA);
    assert_true(a.bench_until_ms == GKM_FOREVER);
}

static void test_key_and_pass_classes(void **state)
{
    (void)state;
    static const struct {
        enum gkm_err_class cls;
        enum gkm_bench_reason reason;
    } keys[] = {
        {GKM_ERRC_KEY_INVALID, GKM_BENCH_KEY_INVALID},
        {GKM_ERRC_KEY_SUSPENDED, GKM_BENCH_KEY_SUSPENDED},
        {GKM_ERRC_KEY_LEAKED, GKM_BENCH_KEY_LEAKED},
        {GKM_ERRC_KEY_DENIED, GKM_BENCH_KEY_DENIED},
    };
    for (size_t i = 0; i < GKM_ARRAY_LEN(keys); i++) {
        struct gkm_action a = decide(NULL, NULL, info(keys[i].cls, -1), 1, T0);
        assert_int_equal(a.kind, GKM_ACT_RETRY_OTHER_KEY);
        assert_int_equal(a.scope, GKM_SCOPE_KEY);
        assert_int_equal(a.reason, keys[i].reason);
        assert_true(a.bench_until_ms == GKM_FOREVER);
        assert_int_equal(a.delay_ms, 0);
    }
    static const enum gkm_err_class pass[] = {
        GKM_ERRC_OK, GKM_ERRC_RESOURCE_DENIED, GKM_ERRC_LOCATION,
        GKM_ERRC_CLIENT, GKM_ERRC_COUNT /* out of range: pass */
    };
    for (size_t i = 0; i < GKM_ARRAY_LEN(pass); i++) {
        struct gkm_action a = decide(NULL, NULL, info(pass[i], 5000), 1, T0);
        assert_int_equal(a.kind, GKM_ACT_PASS);
        assert_int_equal(a.scope, GKM_SCOPE_NONE);
        assert_int_equal(a.reason, GKM_BENCH_NONE);
        assert_int_equal(a.delay_ms, 0);
    }
    /* Server errors: backoff without a bench, or pass when retries are off. */
    struct gkm_policy_opts o;
    gkm_policy_defaults(&o);
    struct gkm_action a = decide(&o, NULL, info(GKM_ERRC_SERVER, -1), 1, T0);
    assert_int_equal(a.kind, GKM_ACT_RETRY_BACKOFF);
    assert_int_equal(a.scope, GKM_SCOPE_NONE);
    assert_int_equal(a.delay_ms, 500);
    o.server_retry_max = 0;
    a = decide(&o, NULL, info(GKM_ERRC_SERVER, -1), 1, T0);
    assert_int_equal(a.kind, GKM_ACT_PASS);
}

static void test_escalation(void **state)
{
    (void)state;
    struct gkm_policy_opts o;
    gkm_policy_defaults(&o);
    struct gkm_policy_state *st = gkm_policy_state_new();
    struct gkm_err_info e = info(GKM_ERRC_RATE_UNKNOWN, -1);
    static const int64_t steps[] = {10000, 20000, 40000, 80000, 160000,
                                    300000, 300000, 300000};
    int64_t now = T0;
    for (size_t i = 0; i < GKM_ARRAY_LEN(steps); i++) {
        struct gkm_action a = decide(&o, st, e, 7, now);
        assert_int_equal(a.kind, GKM_ACT_RETRY_OTHER_KEY);
        assert_int_equal(a.scope, GKM_SCOPE_PAIR);
        assert_int_equal(a.reason, GKM_BENCH_RATE_LIMITED);
        assert_int_equal(a.bench_until_ms - now, steps[i]);
        assert_int_equal(a.level, i < 6 ? i + 1 : 6);
        /* Answers to requests sent before this one: no escalation. */
        struct gkm_action b = decide(&o, st, e, 7, now + steps[i] / 2);
        assert_int_equal(b.bench_until_ms, a.bench_until_ms);
        assert_int_equal(b.level, a.level);
        b = decide(&o, st, e, 7, a.bench_until_ms - 1);
        assert_int_equal(b.bench_until_ms, a.bench_until_ms);
        now = a.bench_until_ms; /* used again as soon as it is back */
    }
    assert_int_equal(gkm_policy_state_count(st), 1);
    assert_int_equal(gkm_policy_state_level(st, &o, 7, MODEL, now), 6);
    gkm_policy_state_free(st);
}

static void test_decay_and_reset(void **state)
{
    (void)state;
    struct gkm_policy_opts o;
    gkm_policy_defaults(&o);
    struct gkm_policy_state *st = gkm_policy_state_new();
    struct gkm_err_info e = info(GKM_ERRC_RATE_UNKNOWN, -1);
    int64_t now = T0;
    for (int i = 0; i < 6; i++) /* up to the cap: level 6 */
        now = decide(&o, st, e, 1, now).bench_until_ms;
    int64_t end = now;
    /* Decay: one level per full 10 min of quiet after the cooldown. */
    assert_int_equal(gkm_policy_state_level(st, &o, 1, MODEL, end), 6);
    assert_int_equal(gkm_policy_state_level(st, &o, 1, MODEL, end + 599999), 6);
    assert_int_equal(gkm_policy_state_level(st, &o, 1, MODEL, end + 600000), 5);
    assert_int_equal(gkm_policy_state_level(st, &o, 1, MODEL, end + 1800000), 3);
    assert_int_equal(gkm_policy_state_level(st, &o, 1, MODEL, end + 3600000), 0);
    /* Two quiet periods: level 4, so the next hit is level 5 (160 s). */
    struct gkm_action a = decide(&o, st, e, 1, end + 1200000);
    assert_int_equal(a.level, 5);
    assert_int_equal(a.bench_until_ms - (end + 1200000), 160000);
    /* Fully decayed: back to the first step. */
    end = a.bench_until_ms;
    a = decide(&o, st, e, 1, end + 5 * 600000);
    assert_int_equal(a.level, 1);
    assert_int_equal(a.bench_until_ms - (end + 5 * 600000), 10000);
    /* OK for the pair resets at once. */
    now = a.bench_until_ms;
    a = decide(&o, st, e, 1, now);
    assert_int_equal(a.level, 2);
    a = decide(&o, st, info(GKM_ERRC_OK, -1), 1, a.bench_until_ms);
    assert_int_equal(a.kind, GKM_ACT_PASS);
    assert_int_equal(gkm_policy_state_count(st), 0);
    a = decide(&o, st, e, 1, now + 100000);
    assert_int_equal(a.level, 1);
    /* Decay disabled: every hit after a cooldown starts over. */
    o.unknown_429_decay_ms = 0;
    now = a.bench_until_ms;
    a = decide(&o, st, e, 1, now);
    assert_int_equal(a.level, 1);
    assert_int_equal(decide(&o, st, e, 1, now + 1).level, 1); /* cooling */
    gkm_policy_state_free(st);
}

static void test_escalation_pairs(void **state)
{
    (void)state;
    struct gkm_policy_state *st = gkm_policy_state_new();
    struct gkm_err_info e = info(GKM_ERRC_RATE_UNKNOWN, -1);
    int64_t t = decide(NULL, st, e, 1, T0).bench_until_ms;
    t = decide(NULL, st, e, 1, t).bench_until_ms; /* (1, flash) at level 2 */
    /* Another model, another key: their own escalation. */
    struct gkm_action a = gkm_policy_decide(NULL, st, &e, 1, "gemini-2.5-pro",
                                            t, RESET);
    assert_int_equal(a.level, 1);
    a = decide(NULL, st, e, 2, t);
    assert_int_equal(a.level, 1);
    assert_int_equal(decide(NULL, st, e, 1, t).level, 3);
    /* NULL, "" and over-long model names are the same pseudo-model. */
    char longm[GKM_MODEL_MAX + 2];
    memset(longm, 'm', sizeof(longm) - 1);
    longm[sizeof(longm) - 1] = '\0';
    a = gkm_policy_decide(NULL, st, &e, 4, NULL, T0, RESET);
    assert_int_equal(a.level, 1);
    a = gkm_policy_decide(NULL, st, &e, 4, "", a.bench_until_ms, RESET);
    assert_int_equal(a.level, 2);
    a = gkm_policy_decide(NULL, st, &e, 4, longm, a.bench_until_ms, RESET);
    assert_int_equal(a.level, 3);
    assert_int_equal(gkm_policy_state_level(st, NULL, 4, NULL, T0), 3);
    /* Without a state there is no memory: always the first step. */
    for (int i = 0; i < 3; i++) {
        a = decide(NULL, NULL, e, 1, T0 + i * 100000);
        assert_int_equal(a.level, 1);
        assert_int_equal(a.bench_until_ms - (T0 + i * 100000), 10000);
    }
    /* A delay in a no-detail 429 (e.g. a 499 with one) lengthens it. */
    a = decide(NULL, NULL, info(GKM_ERRC_RATE_UNKNOWN, 30000), 1, T0);
    assert_int_equal(a.bench_until_ms, T0 + 30000);
    a = decide(NULL, NULL, info(GKM_ERRC_RATE_UNKNOWN, 3000), 1, T0);
    assert_int_equal(a.bench_until_ms, T0 + 10000);
    gkm_policy_state_reset(st);
    assert_int_equal(gkm_policy_state_count(st), 0);
    assert_int_equal(decide(NULL, st, e, 1, t).level, 1);
    gkm_policy_state_free(st);
}

/* Many pairs: growth, forgetting (backward shift keeps the others
 * findable), expiry. */
static void test_state_table(void **state)
{
    (void)state;
    struct gkm_policy_opts o;
    gkm_policy_defaults(&o);
    struct gkm_policy_state *st = gkm_policy_state_new();
    struct gkm_err_info e = info(GKM_ERRC_RATE_UNKNOWN, -1);
    char model[32];
    for (size_t k = 0; k < 3000; k++) {
        snprintf(model, sizeof(model), "m%zu", k % 7);
        gkm_policy_decide(&o, st, &e, k, model, T0, RESET);
    }
    assert_int_equal(gkm_policy_state_count(st), 3000);
    for (size_t k = 0; k < 3000; k += 2) {
        snprintf(model, sizeof(model), "m%zu", k % 7);
        gkm_policy_state_forget(st, k, model);
    }
    gkm_policy_state_forget(st, 99999, "none"); /* absent: no effect */
    assert_int_equal(gkm_policy_state_count(st), 1500);
    for (size_t k = 0; k < 3000; k++) {
        snprintf(model, sizeof(model), "m%zu", k % 7);
        unsigned lv = gkm_policy_state_level(st, &o, k, model, T0);
        if (lv != (k % 2 ? 1u : 0u))
            fail_msg("pair %zu: level %u", k, lv);
        /* Wrong model for the key: nothing. */
        snprintf(model, sizeof(model), "m%zu", (k + 1) % 7);
        assert_int_equal(gkm_policy_state_level(st, &o, k, model, T0), 0);
    }
    /* Level 1 entries decay one period after their 10 s cooldown. */
    int64_t later = T0 + 10000 + 600000;
    assert_int_equal(gkm_policy_state_expire(st, &o, later - 1), 0);
    assert_int_equal(gkm_policy_state_count(st), 1500);
    /* New pairs inserted later make the table drop the decayed ones as it
     * grows. */
    for (size_t k = 0; k < 5000; k++)
        gkm_policy_decide(&o, st, &e, 100000 + k, "x", later, RESET);
    assert_true(gkm_policy_state_count(st) < 6500);
    assert_int_equal(gkm_policy_state_level(st, &o, 1, "m1", later), 0);
    assert_int_equal(gkm_policy_state_level(st, &o, 100000, "x", later), 1);
    size_t before = gkm_policy_state_count(st);
    assert_int_equal(gkm_policy_state_expire(st, &o, later), before - 5000);
    assert_int_equal(gkm_policy_state_count(st), 5000);
    assert_int_equal(gkm_policy_state_level(st, &o, 104999, "x", later), 1);
    assert_int_equal(gkm_policy_state_expire(st, NULL, later + 3600000), 5000);
    assert_int_equal(gkm_policy_state_count(st), 0);
    gkm_policy_state_free(st);
    /* NULL state is accepted everywhere. */
    gkm_policy_state_free(NULL);
    gkm_policy_state_reset(NULL);
    gkm_policy_state_forget(NULL, 1, "m");
    assert_int_equal(gkm_policy_state_expire(NULL, NULL, T0), 0);
    assert_int_equal(gkm_policy_state_count(NULL), 0);
    assert_int_equal(gkm_policy_state_level(NULL, NULL, 1, "m", T0), 0);
}

static void test_backoff(void **state)
{
    (void)state;
    struct gkm_policy_opts o;
    gkm_policy_defaults(&o);
    assert_int_equal(gkm_policy_backoff_ms(&o, 0, 0.5), -1);
    assert_int_equal(gkm_policy_backoff_ms(&o, 1, 1.0), 500);
    assert_int_equal(gkm_policy_backoff_ms(&o, 1, 0.0), 250);
    assert_int_equal(gkm_policy_backoff_ms(&o, 1, 0.5), 375);
    assert_int_equal(gkm_policy_backoff_ms(&o, 2, 1.0), 1000);
    assert_int_equal(gkm_policy_backoff_ms(&o, 3, 1.0), 2000);
    assert_int_equal(gkm_policy_backoff_ms(&o, 3, 0.0), 1000);
    assert_int_equal(gkm_policy_backoff_ms(&o, 4, 1.0), -1); /* 3 retries */
    assert_int_equal(gkm_policy_backoff_ms(NULL, 2, 0.0), 500);
    /* Jitter out of range or NaN is clamped. */
    assert_int_equal(gkm_policy_backoff_ms(&o, 1, 7.0), 500);
    assert_int_equal(gkm_policy_backoff_ms(&o, 1, -3.0), 250);
    assert_int_equal(gkm_policy_backoff_ms(&o, 1, NAN), 250);
    /* The cap. */
    o.server_retry_max = 10;
    assert_int_equal(gkm_policy_backoff_ms(&o, 4, 1.0), 4000);
    assert_int_equal(gkm_policy_backoff_ms(&o, 5, 1.0), 4000);
    assert_int_equal(gkm_policy_backoff_ms(&o, 10, 0.0), 2000);
    assert_int_equal(gkm_policy_backoff_ms(&o, 11, 0.0), -1);
    o.server_retry_max = 0;
    assert_int_equal(gkm_policy_backoff_ms(&o, 1, 0.0), -1);
    /* Every value for every attempt stays in [d/2, d]. */
    gkm_policy_defaults(&o);
    for (unsigned n = 1; n <= 3; n++) {
        int64_t d = 500LL << (n - 1);
        for (int j = 0; j <= 100; j++) {
            int64_t v = gkm_policy_backoff_ms(&o, n, j / 100.0);
            assert_true(v >= d / 2 && v <= d);
        }
    }
}

static void test_retry_after(void **state)
{
    (void)state;
    assert_int_equal(gkm_policy_retry_after_s(T0, T0), 1);
    assert_int_equal(gkm_policy_retry_after_s(T0 - 5000, T0), 1);
    assert_int_equal(gkm_policy_retry_after_s(T0 + 1, T0), 1);
    assert_int_equal(gkm_policy_retry_after_s(T0 + 999, T0), 1);
    assert_int_equal(gkm_policy_retry_after_s(T0 + 1000, T0), 1);
    assert_int_equal(gkm_policy_retry_after_s(T0 + 1001, T0), 2);
    assert_int_equal(gkm_policy_retry_after_s(T0 + 43129, T0), 44);
    assert_int_equal(gkm_policy_retry_after_s(T0 + 60000, T0), 60);
    assert_int_equal(gkm_policy_retry_after_s(RESET, T0), 5 * 3600);
    assert_true(gkm_policy_retry_after_s(GKM_FOREVER, T0) > 0);
    assert_true(gkm_policy_retry_after_s(INT64_MAX, INT64_MIN) > 0);
}

/* Actions applied to a key pool: keys 0 and 1 share project "p". */
static void test_apply(void **state)
{
    (void)state;
    static const char *const secrets[] = {
        "AIzaSyTESTkey00000000000000000000000000",
        "AIzaSyTESTkey00000000000000000000000001",
        "AIzaSyTESTkey00000000000000000000000002",
        "AIzaSyTESTkey00000000000000000000000003",
    };
    struct gkm_pool_key_spec spec[4] = {
        {secrets[0], "p"}, {secrets[1], "p"}, {secrets[2], NULL},
        {secrets[3], NULL}};
    struct gkm_pool *pool = gkm_pool_new(spec, 4);
    int64_t until = 0;
    struct gkm_policy_state *st = gkm_policy_state_new();

    /* Per-minute quota on key 0: the whole project, this model only. */
    struct gkm_err_info e = from_fixture("quota_minute_429.json", 429);
    struct gkm_action a = gkm_policy_decide(NULL, st, &e, 0, MODEL, T0, RESET);
    gkm_policy_apply(&a, pool, 0, MODEL);
    assert_int_equal(gkm_pool_state(pool, 0, MODEL, T0, &until),
                     GKM_BENCH_QUOTA_MINUTE);
    assert_int_equal(until, T0 + 43129);
    assert_int_equal(gkm_pool_state(pool, 1, MODEL, T0, &until),
                     GKM_BENCH_QUOTA_MINUTE);
    assert_int_equal(gkm_pool_state(pool, 2, MODEL, T0, &until),
                     GKM_BENCH_NONE);
    assert_int_equal(gkm_pool_state(pool, 0, "gemini-2.5-pro", T0, &until),
                     GKM_BENCH_NONE);
    assert_int_equal(gkm_pool_state(pool, 0, MODEL, T0 + 43129, &until),
                     GKM_BENCH_NONE);
    /* Per-day quota on key 2 (its own project): only itself. */
    e = from_fixture("quota_day_429.json", 429);
    a = gkm_policy_decide(NULL, st, &e, 2, MODEL, T0, RESET);
    gkm_policy_apply(&a, pool, 2, MODEL);
    assert_int_equal(gkm_pool_state(pool, 2, MODEL, T0, &until),
                     GKM_BENCH_QUOTA_DAY);
    assert_int_equal(until, RESET);
    assert_int_equal(gkm_pool_state(pool, 3, MODEL, T0, &until),
                     GKM_BENCH_NONE);
    /* No-detail 429 on key 1: the pair only, not key 0. */
    e = from_fixture("rate_bare_429.json", 429);
    a = gkm_policy_decide(NULL, st, &e, 1, "gemini-2.5-pro", T0, RESET);
    gkm_policy_apply(&a, pool, 1, "gemini-2.5-pro");
    assert_int_equal(gkm_pool_state(pool, 1, "gemini-2.5-pro", T0, &until),
                     GKM_BENCH_RATE_LIMITED);
    assert_int_equal(until, T0 + 10000);
    assert_int_equal(gkm_pool_state(pool, 0, "gemini-2.5-pro", T0, &until),
                     GKM_BENCH_NONE);
    /* Suspended key 3: every model, forever. */
    e = from_fixture("key_suspended_403.json", 403);
    a = gkm_policy_decide(NULL, st, &e, 3, MODEL, T0, RESET);
    gkm_policy_apply(&a, pool, 3, MODEL);
    assert_int_equal(gkm_pool_state(pool, 3, "any-model", T0 + 86400000LL * 365,
                                    &until),
                     GKM_BENCH_KEY_SUSPENDED);
    assert_true(until == GKM_FOREVER);
    /* Nothing to apply: the pool does not change. */
    uint64_t gen = gkm_pool_generation(pool);
    e = from_fixture("overloaded_503.json", 503);
    a = gkm_policy_decide(NULL, st, &e, 0, MODEL, T0, RESET);
    gkm_policy_apply(&a, pool, 0, MODEL);
    e = from_fixture("unknown_field_400.json", 400);
    a = gkm_policy_decide(NULL, st, &e, 0, MODEL, T0, RESET);
    gkm_policy_apply(&a, pool, 0, MODEL);
    assert_int_equal(gkm_pool_generation(pool), gen);
    /* A NULL model applies to the "" pseudo-model, never key-wide. */
    e = from_fixture("rate_bare_429.json", 429);
    a = gkm_policy_decide(NULL, NULL, &e, 2, NULL, T0, RESET);
    gkm_policy_apply(&a, pool, 2, NULL);
    assert_int_equal(gkm_pool_state(pool, 2, "", T0, &until),
                     GKM_BENCH_RATE_LIMITED);
    assert_int_equal(gkm_pool_state(pool, 2, "other", T0, &until),
                     GKM_BENCH_NONE);
    gkm_policy_state_free(st);
    gkm_pool_free(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_fixture_actions),
        cmocka_unit_test(test_minute_fallback),
        cmocka_unit_test(test_minute_bounds),
        cmocka_unit_test(test_day_and_zero),
        cmocka_unit_test(test_key_and_pass_classes),
        cmocka_unit_test(test_escalation),
        cmocka_unit_test(test_decay_and_reset),
        cmocka_unit_test(test_escalation_pairs),
        cmocka_unit_test(test_state_table),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_apply),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
