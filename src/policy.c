/*
 * policy.c - error class -> action (see policy.h for the mapping and the
 * choices), and the escalation memory for no-detail 429s.
 *
 * The memory is an open-addressing hash table with linear probing, keyed
 * by (key index, model name), deleted from by backward shift (no
 * tombstones). Invariants: cap is a power of two >= MIN_CAP and the load
 * stays <= 1/2 (checked before every insert); every stored entry owns its
 * model string. Decayed entries are dropped whenever the table is rebuilt
 * (on growth, or gkm_policy_state_expire), so it holds only pairs that hit
 * a no-detail 429 within the last level * decay period.
 */
#include "policy.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "gerror.h"
#include "util.h"

#define MIN_CAP 16
#define DAY_MS (24LL * 3600 * 1000)
#define MAX_LEVEL 62

void gkm_policy_defaults(struct gkm_policy_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->minute_fallback_ms = 60000;
    o->minute_align = 1;
    o->quota_min_ms = 1000;
    o->retry_cap_ms = DAY_MS;
    o->long_retry_day_ms = 0;
    o->unknown_429_ms = 10000;
    o->unknown_429_max_ms = 300000;
    o->unknown_429_decay_ms = 600000;
    o->server_retry_max = 3;
    o->server_backoff_ms = 500;
    o->server_backoff_max_ms = 4000;
}

static int64_t add_sat(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    return a + b;
}

static const char *norm_model(const char *model)
{
    if (model == NULL || strlen(model) > GKM_MODEL_MAX)
        return "";
    return model;
}

/* ---------------------------------------------------------------- memory */

struct slot {
    char *model; /* owned; NULL = empty slot */
    size_t key;
    uint64_t hash;
    int64_t until_ms; /* end of the last cooldown handed out */
    unsigned level;   /* its escalation step, >= 1 */
};

struct gkm_policy_state {
    struct slot *slots;
    size_t cap; /* power of two */
    size_t n;
};

static uint64_t pair_hash(size_t key, const char *model)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)model; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    h ^= (uint64_t)key * 0x9E3779B97F4A7C15ULL;
    h ^= h >> 31; /* splitmix-style finaliser */
    h *= 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 29;
    return h;
}

/* Level of an entry at now after decay (0 = fully decayed). */
static unsigned decayed(const struct slot *s, int64_t decay_ms, int64_t now)
{
    if (now < s->until_ms)
        return s->level;
    if (decay_ms <= 0)
        return 0;
    int64_t steps = (now - s->until_ms) / decay_ms;
    return steps >= (int64_t)s->level ? 0 : s->level - (unsigned)steps;
}

struct gkm_policy_state *gkm_policy_state_new(void)
{
    struct gkm_policy_state *st = gkm_xcalloc(1, sizeof(*st));
    st->cap = MIN_CAP;
    st->slots = gkm_xcalloc(st->cap, sizeof(*st->slots));
    return st;
}

void gkm_policy_state_reset(struct gkm_policy_state *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->cap; i++) {
        free(st->slots[i].model);
        st->slots[i].model = NULL;
    }
    st->n = 0;
}

void gkm_policy_state_free(struct gkm_policy_state *st)
{
    if (st == NULL)
        return;
    gkm_policy_state_reset(st);
    free(st->slots);
    free(st);
}

size_t gkm_policy_state_count(const struct gkm_policy_state *st)
{
    return st ? st->n : 0;
}

static struct slot *find(const struct gkm_policy_state *st, size_t key,
                         const char *model, uint64_t h)
{
    size_t mask = st->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct slot *s = &st->slots[i];
        if (s->model == NULL)
            return NULL;
        if (s->hash == h && s->key == key && strcmp(s->model, model) == 0)
            return s;
    }
}

/* Place an entry (not present) into a table with a free slot. */
static void place(struct slot *slots, size_t cap, const struct slot *e)
{
    size_t mask = cap - 1, i = e->hash & mask;
    while (slots[i].model != NULL)
        i = (i + 1) & mask;
    slots[i] = *e;
}

/* Rebuild keeping the entries still live at now, sized so that `extra`
 * more fit at load <= 1/2 with room to spare. Returns entries dropped. */
static size_t rebuild(struct gkm_policy_state *st, int64_t decay_ms,
                      int64_t now, size_t extra)
{
    size_t live = 0, dropped = 0, cap = MIN_CAP;
    for (size_t i = 0; i < st->cap; i++)
        if (st->slots[i].model && decayed(&st->slots[i], decay_ms, now) > 0)
            live++;
    while (cap < (live + extra) * 4)
        cap *= 2;
    struct slot *ns = gkm_xcalloc(cap, sizeof(*ns));
    for (size_t i = 0; i < st->cap; i++) {
        struct slot *s = &st->slots[i];
        if (s->model == NULL)
            continue;
        if (decayed(s, decay_ms, now) > 0) {
            place(ns, cap, s);
        } else {
            free(s->model);
            dropped++;
        }
    }
    free(st->slots);
    st->slots = ns;
    st->cap = cap;
    st->n = live;
    return dropped;
}

static void remove_slot(struct gkm_policy_state *st, struct slot *s)
{
    size_t mask = st->cap - 1, i = (size_t)(s - st->slots), j = i;
    free(s->model);
    st->slots[i].model = NULL;
    st->n--;
    /* Backward shift: pull later members of the probe run into the hole
     * unless their home slot lies cyclically in (i, j]. */
    for (;;) {
        j = (j + 1) & mask;
        if (st->slots[j].model == NULL)
            return;
        size_t home = st->slots[j].hash & mask;
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays)
            continue;
        st->slots[i] = st->slots[j];
        st->slots[j].model = NULL;
        i = j;
    }
}

void gkm_policy_state_forget(struct gkm_policy_state *st, size_t key_idx,
                             const char *model)
{
    if (st == NULL)
        return;
    model = norm_model(model);
    struct slot *s = find(st, key_idx, model, pair_hash(key_idx, model));
    if (s != NULL)
        remove_slot(st, s);
}

size_t gkm_policy_state_expire(struct gkm_policy_state *st,
                               const struct gkm_policy_opts *o, int64_t now_ms)
{
    struct gkm_policy_opts def;
    if (st == NULL)
        return 0;
    if (o == NULL) {
        gkm_policy_defaults(&def);
        o = &def;
    }
    return rebuild(st, o->unknown_429_decay_ms, now_ms, 0);
}

unsigned gkm_policy_state_level(const struct gkm_policy_state *st,
                                const struct gkm_policy_opts *o,
                                size_t key_idx, const char *model,
                                int64_t now_ms)
{
    struct gkm_policy_opts def;
    if (st == NULL)
        return 0;
    if (o == NULL) {
        gkm_policy_defaults(&def);
        o = &def;
    }
    model = norm_model(model);
    const struct slot *s = find(st, key_idx, model, pair_hash(key_idx, model));
    return s ? decayed(s, o->unknown_429_decay_ms, now_ms) : 0;
}

/* Cooldown of escalation step level (>= 1). */
static int64_t step_ms(const struct gkm_policy_opts *o, unsigned level)
{
    int64_t d = o->unknown_429_ms > 0 ? o->unknown_429_ms : 0;
    for (unsigned i = 1; i < level && d < o->unknown_429_max_ms; i++)
        d = d > INT64_MAX / 2 ? INT64_MAX : d * 2;
    return d < o->unknown_429_max_ms ? d : o->unknown_429_max_ms;
}

/* Highest useful level: the first whose step reaches the cap (so decay from
 * the cap takes one period per level, not one per extra hit). */
static unsigned cap_level(const struct gkm_policy_opts *o)
{
    unsigned l = 1;
    while (l < MAX_LEVEL && step_ms(o, l) < o->unknown_429_max_ms)
        l++;
    return l;
}

/* Escalating cooldown for a no-detail 429 of (key, model) at now. */
static void escalate(const struct gkm_policy_opts *o,
                     struct gkm_policy_state *st, size_t key,
                     const char *model, int64_t now, struct gkm_action *a)
{
    uint64_t h = pair_hash(key, model);
    struct slot *s = st ? find(st, key, model, h) : NULL;
    unsigned level = 1;
    if (s != NULL && now < s->until_ms) {
        /* Still cooling: an answer to a request sent earlier. */
        a->bench_until_ms = s->until_ms;
        a->level = s->level;
        return;
    }
    if (s != NULL)
        level = decayed(s, o->unknown_429_decay_ms, now) + 1;
    if (level > cap_level(o))
        level = cap_level(o);
    a->level = level;
    a->bench_until_ms = add_sat(now, step_ms(o, level));
    if (st == NULL)
        return;
    if (s == NULL) {
        struct slot e = {0};
        if ((st->n + 1) * 2 > st->cap)
            rebuild(st, o->unknown_429_decay_ms, now, 1);
        e.model = gkm_xstrdup(model);
        e.key = key;
        e.hash = h;
        place(st->slots, st->cap, &e);
        st->n++;
        s = find(st, key, model, h);
    }
    s->until_ms = a->bench_until_ms;
    s->level = level;
}

/* ---------------------------------------------------------------- deciding */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Cooldown for a per-minute quota 429. */
static int64_t minute_cooldown(const struct gkm_policy_opts *o,
                               const struct gkm_err_info *e, int64_t now)
{
    int64_t d = e->retry_ms;
    if (d < 0) {
        d = o->minute_fallback_ms;
        if (o->minute_align) {
            int64_t next = (floor_div(now, 60000) + 1) * 60000 + 1000;
            if (next - now < d)
                d = next - now;
        }
    }
    if (d > o->retry_cap_ms)
        d = o->retry_cap_ms;
    if (d < o->quota_min_ms)
        d = o->quota_min_ms;
    return d;
}

static void bench(struct gkm_action *a, enum gkm_bench_scope scope,
                  int64_t until, enum gkm_bench_reason reason)
{
    a->kind = GKM_ACT_RETRY_OTHER_KEY;
    a->scope = scope;
    a->bench_until_ms = until;
    a->reason = reason;
}

struct gkm_action gkm_policy_decide(const struct gkm_policy_opts *o,
                                    struct gkm_policy_state *st,
                                    const struct gkm_err_info *e,
                                    size_t key_idx, const char *model,
                                    int64_t now_ms, int64_t next_reset_ms)
{
    struct gkm_action a = {GKM_ACT_PASS, GKM_SCOPE_NONE, 0, GKM_BENCH_NONE, 0, 0};
    struct gkm_policy_opts def;
    int64_t reset = next_reset_ms > now_ms ? next_reset_ms
                                           : add_sat(now_ms, DAY_MS);
    if (o == NULL) {
        gkm_policy_defaults(&def);
        o = &def;
    }
    model = norm_model(model);
    switch (e->cls) {
    case GKM_ERRC_QUOTA_DAY:
        bench(&a, GKM_SCOPE_PROJECT, reset, GKM_BENCH_QUOTA_DAY);
        break;
    case GKM_ERRC_QUOTA_MINUTE:
        if (o->long_retry_day_ms > 0 && e->retry_ms > o->long_retry_day_ms) {
            bench(&a, GKM_SCOPE_PROJECT, reset, GKM_BENCH_QUOTA_DAY);
            break;
        }
        bench(&a, GKM_SCOPE_PROJECT,
              add_sat(now_ms, minute_cooldown(o, e, now_ms)),
              GKM_BENCH_QUOTA_MINUTE);
        break;
    case GKM_ERRC_QUOTA_ZERO:
        bench(&a, GKM_SCOPE_PROJECT, GKM_FOREVER, GKM_BENCH_NO_QUOTA);
        break;
    case GKM_ERRC_RATE_UNKNOWN:
        bench(&a, GKM_SCOPE_PAIR, 0, GKM_BENCH_RATE_LIMITED);
        escalate(o, st, key_idx, model, now_ms, &a);
        if (e->retry_ms > 0) {
            int64_t d = e->retry_ms < o->retry_cap_ms ? e->retry_ms
                                                      : o->retry_cap_ms;
            if (add_sat(now_ms, d) > a.bench_until_ms)
                a.bench_until_ms = add_sat(now_ms, d);
        }
        break;
    case GKM_ERRC_KEY_INVALID:
        bench(&a, GKM_SCOPE_KEY, GKM_FOREVER, GKM_BENCH_KEY_INVALID);
        break;
    case GKM_ERRC_KEY_SUSPENDED:
        bench(&a, GKM_SCOPE_KEY, GKM_FOREVER, GKM_BENCH_KEY_SUSPENDED);
        break;
    case GKM_ERRC_KEY_LEAKED:
        bench(&a, GKM_SCOPE_KEY, GKM_FOREVER, GKM_BENCH_KEY_LEAKED);
        break;
    case GKM_ERRC_KEY_DENIED:
        bench(&a, GKM_SCOPE_KEY, GKM_FOREVER, GKM_BENCH_KEY_DENIED);
        break;
    case GKM_ERRC_SERVER:
        if (o->server_retry_max > 0) {
            a.kind = GKM_ACT_RETRY_BACKOFF;
            a.delay_ms = o->server_backoff_ms > 0 ? o->server_backoff_ms : 0;
        }
        break;
    case GKM_ERRC_OK:
        gkm_policy_state_forget(st, key_idx, model);
        break;
    case GKM_ERRC_RESOURCE_DENIED:
    case GKM_ERRC_LOCATION:
    case GKM_ERRC_CLIENT:
    default:
        break;
    }
    return a;
}

int64_t gkm_policy_backoff_ms(const struct gkm_policy_opts *o,
                              unsigned attempt, double jitter01)
{
    struct gkm_policy_opts def;
    if (o == NULL) {
        gkm_policy_defaults(&def);
        o = &def;
    }
    if (attempt == 0 || o->server_retry_max <= 0 ||
        attempt > (unsigned)o->server_retry_max)
        return -1;
    int64_t d = o->server_backoff_ms > 0 ? o->server_backoff_ms : 0;
    for (unsigned i = 1; i < attempt && d < o->server_backoff_max_ms; i++)
        d = d > INT64_MAX / 2 ? INT64_MAX : d * 2;
    if (d > o->server_backoff_max_ms)
        d = o->server_backoff_max_ms > 0 ? o->server_backoff_max_ms : 0;
    if (!(jitter01 >= 0.0)) /* also NaN */
        jitter01 = 0.0;
    if (jitter01 > 1.0)
        jitter01 = 1.0;
    int64_t half = d / 2;
    return half + (int64_t)((double)(d - half) * jitter01);
}

void gkm_policy_apply(const struct gkm_action *a, struct gkm_pool *pool,
                      size_t idx, const char *model)
{
    const char *m = model ? model : "";
    switch (a->scope) {
    case GKM_SCOPE_PAIR:
        gkm_pool_bench(pool, idx, m, a->bench_until_ms, a->reason);
        break;
    case GKM_SCOPE_PROJECT:
        gkm_pool_bench_project(pool, idx, m, a->bench_until_ms, a->reason);
        break;
    case GKM_SCOPE_KEY:
        gkm_pool_bench(pool, idx, NULL, a->bench_until_ms, a->reason);
        break;
    case GKM_SCOPE_NONE:
    default:
        break;
    }
}

long gkm_policy_retry_after_s(int64_t at_ms, int64_t now_ms)
{
    if (at_ms <= now_ms)
        return 1;
    uint64_t diff = (uint64_t)at_ms - (uint64_t)now_ms;
    uint64_t s = diff / 1000 + (diff % 1000 != 0);
    if (s > (uint64_t)LONG_MAX)
        return LONG_MAX;
    return s < 1 ? 1 : (long)s;
}
