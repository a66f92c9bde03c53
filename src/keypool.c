/*
 * keypool.c - key rotation and per-(key, model) benching (see keypool.h;
 * the layout is described in keypool_impl.h, usage counting and
 * statistics live in keystats.c).
 *
 * Invariants, for every model with rotation state and every key k:
 *   - k is either in the ring (heap_pos[k] == NIL) or in the heap.
 *   - A key in the ring has no per-model bench in force. It may have a
 *     key-wide bench in force: those are found lazily when the cursor
 *     reaches the key, which then moves to the heap. This keeps a key-wide
 *     bench O(models) instead of O(models * log n).
 *   - A key in the heap has hkey[k] <= the time it becomes available (or
 *     hkey[k] <= now), so it is never kept out longer than its benches say.
 *     When its hkey has passed, pick re-examines it: back into the ring, or
 *     back into the heap with its true expiry.
 * Each key enters and leaves the heap once per bench, so a pick costs
 * O(log n) amortised whatever the number of benched keys.
 *
 * Ownership: the pool owns copies of every string it is given; pointers it
 * returns (secret, mask, project, model names in callbacks) are borrowed and
 * live as long as the pool.
 */
#include "keypool.h"

#include <stdlib.h>
#include <string.h>

#include "keypool_impl.h"
#include "util.h"

static const char *const reason_names[GKM_BENCH_REASON_COUNT] = {
    [GKM_BENCH_NONE] = "none",
    [GKM_BENCH_QUOTA_DAY] = "quota_day",
    [GKM_BENCH_QUOTA_MINUTE] = "quota_minute",
    [GKM_BENCH_RATE_LIMITED] = "rate_limited",
    [GKM_BENCH_NO_QUOTA] = "no_quota",
    [GKM_BENCH_KEY_INVALID] = "key_invalid",
    [GKM_BENCH_KEY_SUSPENDED] = "key_suspended",
    [GKM_BENCH_KEY_LEAKED] = "key_leaked",
    [GKM_BENCH_KEY_DENIED] = "key_denied",
};

const char *gkm_bench_reason_name(enum gkm_bench_reason r)
{
    if ((unsigned)r >= GKM_BENCH_REASON_COUNT)
        return "unknown";
    return reason_names[r];
}

int gkm_bench_reason_parse(const char *name, enum gkm_bench_reason *out)
{
    for (unsigned i = 0; name != NULL && i < GKM_BENCH_REASON_COUNT; i++) {
        if (strcmp(name, reason_names[i]) == 0) {
            *out = (enum gkm_bench_reason)i;
            return 0;
        }
    }
    return -1;
}

/* ---- string map ---------------------------------------------------------- */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static void strmap_init(struct strmap *m, size_t expect)
{
    size_t cap = 16;
    while (cap < expect * 2 + 1)
        cap *= 2;
    m->slots = gkm_xcalloc(cap, sizeof(*m->slots));
    m->cap = cap;
    m->len = 0;
}

static void strmap_free(struct strmap *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->len = 0;
}

/* Returns the value for s, or NIL. */
static uint32_t strmap_get(const struct strmap *m, const char *s)
{
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)hash_str(s) & mask;; i = (i + 1) & mask) {
        if (m->slots[i].str == NULL)
            return NIL;
        if (strcmp(m->slots[i].str, s) == 0)
            return m->slots[i].val;
    }
}

/* Insert s (borrowed; must outlive the map) unless present. */
static void strmap_put(struct strmap *m, const char *s, uint32_t val)
{
    if ((m->len + 1) * 2 > m->cap) {
        struct strmap bigger;
        strmap_init(&bigger, m->cap);
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].str != NULL)
                strmap_put(&bigger, m->slots[i].str, m->slots[i].val);
        free(m->slots);
        *m = bigger;
    }
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)hash_str(s) & mask;; i = (i + 1) & mask) {
        if (m->slots[i].str == NULL) {
            m->slots[i].str = s;
            m->slots[i].val = val;
            m->len++;
            return;
        }
        if (strcmp(m->slots[i].str, s) == 0)
            return;
    }
}

/* ---- models -------------------------------------------------------------- */

uint32_t gkm_pool_model_find(const struct gkm_pool *pool, const char *name)
{
    if (name == NULL || strnlen(name, GKM_MODEL_MAX + 1) > GKM_MODEL_MAX)
        return 0;
    uint32_t id = strmap_get(&pool->model_ids, name);
    if (id == NIL && pool->nmodels == GKM_MODELS_MAX)
        return 0;
    return id;
}

uint32_t gkm_pool_model_intern(struct gkm_pool *pool, const char *name)
{
    uint32_t id = gkm_pool_model_find(pool, name);
    if (id != NIL)
        return id;
    id = pool->nmodels++;
    pool->models[id].name = gkm_xstrdup(name);
    pool->models[id].rot = NULL;
    strmap_put(&pool->model_ids, pool->models[id].name, id);
    /* Insert into the name order (at most GKM_MODELS_MAX entries). */
    uint32_t pos = id;
    while (pos > 0 &&
           strcmp(pool->models[pool->sorted[pos - 1]].name, name) > 0) {
        pool->sorted[pos] = pool->sorted[pos - 1];
        pos--;
    }
    pool->sorted[pos] = id;
    for (uint32_t i = pos; i < pool->nmodels; i++)
        pool->rank[pool->sorted[i]] = i;
    return id;
}

/* ---- ring and heap ------------------------------------------------------- */

static void ring_insert(struct rot *r, uint32_t k)
{
    /* Just before the cursor: the key is visited last in this round. */
    if (r->cursor == NIL) {
        r->next[k] = r->prev[k] = k;
        r->cursor = k;
        return;
    }
    uint32_t c = r->cursor, p = r->prev[c];
    r->next[p] = k;
    r->prev[k] = p;
    r->next[k] = c;
    r->prev[c] = k;
}

static void ring_remove(struct rot *r, uint32_t k)
{
    if (r->next[k] == k) {
        r->cursor = NIL;
        return;
    }
    r->next[r->prev[k]] = r->next[k];
    r->prev[r->next[k]] = r->prev[k];
    if (r->cursor == k)
        r->cursor = r->next[k];
}

static int heap_less(const struct rot *r, uint32_t a, uint32_t b)
{
    return r->hkey[a] < r->hkey[b] || (r->hkey[a] == r->hkey[b] && a < b);
}

static void heap_set(struct rot *r, uint32_t pos, uint32_t k)
{
    r->heap[pos] = k;
    r->heap_pos[k] = pos;
}

static void heap_up(struct rot *r, uint32_t pos)
{
    uint32_t k = r->heap[pos];
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (!heap_less(r, k, r->heap[parent]))
            break;
        heap_set(r, pos, r->heap[parent]);
        pos = parent;
    }
    heap_set(r, pos, k);
}

static void heap_down(struct rot *r, uint32_t pos)
{
    uint32_t k = r->heap[pos];
    for (;;) {
        uint32_t c = 2 * pos + 1;
        if (c >= r->heap_len)
            break;
        if (c + 1 < r->heap_len && heap_less(r, r->heap[c + 1], r->heap[c]))
            c++;
        if (!heap_less(r, r->heap[c], k))
            break;
        heap_set(r, pos, r->heap[c]);
        pos = c;
    }
    heap_set(r, pos, k);
}

static void heap_push(struct rot *r, uint32_t k, int64_t when)
{
    r->hkey[k] = when;
    heap_set(r, r->heap_len++, k);
    heap_up(r, r->heap_len - 1);
}

static void heap_remove(struct rot *r, uint32_t k)
{
    uint32_t pos = r->heap_pos[k];
    uint32_t last = r->heap[--r->heap_len];
    r->heap_pos[k] = NIL;
    if (pos == r->heap_len)
        return;
    heap_set(r, pos, last);
    heap_up(r, pos);
    heap_down(r, r->heap_pos[last]);
}

static void heap_update(struct rot *r, uint32_t k, int64_t when)
{
    r->hkey[k] = when;
    heap_up(r, r->heap_pos[k]);
    heap_down(r, r->heap_pos[k]);
}

static struct rot *rot_new(uint32_t n)
{
    struct rot *r = gkm_xcalloc(1, sizeof(*r));
    r->next = gkm_xcalloc(n, sizeof(*r->next));
    r->prev = gkm_xcalloc(n, sizeof(*r->prev));
    r->heap = gkm_xcalloc(n, sizeof(*r->heap));
    r->heap_pos = gkm_xcalloc(n, sizeof(*r->heap_pos));
    r->hkey = gkm_xcalloc(n, sizeof(*r->hkey));
    r->until = gkm_xcalloc(n, sizeof(*r->until));
    r->reason = gkm_xcalloc(n, sizeof(*r->reason));
    /* Fresh ring in index order, cursor on key 0. */
    for (uint32_t k = 0; k < n; k++) {
        r->next[k] = k + 1 < n ? k + 1 : 0;
        r->prev[k] = k > 0 ? k - 1 : n - 1;
        r->heap_pos[k] = NIL;
    }
    r->cursor = n > 0 ? 0 : NIL;
    return r;
}

static void rot_free(struct rot *r)
{
    if (r == NULL)
        return;
    free(r->next);
    free(r->prev);
    free(r->heap);
    free(r->heap_pos);
    free(r->hkey);
    free(r->until);
    free(r->reason);
    free(r);
}

static struct rot *model_rot(struct gkm_pool *pool, uint32_t id)
{
    if (pool->models[id].rot == NULL) {
        struct rot *r = rot_new(pool->n);
        /* Start a new model's rotation after the key picked last (for any
         * model), so traffic spread over many models still spreads over
         * all keys instead of always starting at key 0. */
        if (pool->n > 0)
            r->cursor = pool->next_start % pool->n;
        pool->models[id].rot = r;
    }
    return pool->models[id].rot;
}

/* When (k, model of r) becomes available, seen at now: 0 if it is
 * available now, else the latest expiry among the benches in force, whose
 * reason goes to *reason (the key-wide one on a tie). */
static int64_t available_at(const struct gkm_pool *pool, const struct rot *r,
                            uint32_t k, int64_t now,
                            enum gkm_bench_reason *reason)
{
    int64_t at = 0;
    enum gkm_bench_reason why = GKM_BENCH_NONE;
    if (r != NULL && r->until[k] > now) {
        at = r->until[k];
        why = (enum gkm_bench_reason)r->reason[k];
    }
    if (pool->keys[k].wide_until > now && pool->keys[k].wide_until >= at) {
        at = pool->keys[k].wide_until;
        why = pool->keys[k].wide_reason;
    }
    if (reason != NULL)
        *reason = why;
    return at;
}

/* ---- construction -------------------------------------------------------- */

struct gkm_pool *gkm_pool_new(const struct gkm_pool_key_spec *keys, size_t n)
{
    if (n >= NIL)
        abort(); /* indices are 32-bit; a key file this large is absurd */
    struct gkm_pool *pool = gkm_xcalloc(1, sizeof(*pool));
    pool->n = (uint32_t)n;
    pool->keys = gkm_xcalloc(n, sizeof(*pool->keys));
    pool->projects = gkm_xcalloc(n, sizeof(*pool->projects));
    strmap_init(&pool->secrets, n);
    strmap_init(&pool->model_ids, 16);

    struct strmap by_name;
    strmap_init(&by_name, n);
    for (uint32_t k = 0; k < pool->n; k++) {
        struct key *key = &pool->keys[k];
        key->secret = gkm_xstrdup(keys[k].secret);
        gkm_mask_key(key->secret, key->mask);
        strmap_put(&pool->secrets, key->secret, k);
        uint32_t p = NIL;
        if (keys[k].project != NULL)
            p = strmap_get(&by_name, keys[k].project);
        if (p == NIL) {
            p = pool->nprojects++;
            pool->projects[p].name = gkm_xstrdup(
                keys[k].project != NULL ? keys[k].project : key->mask);
            if (keys[k].project != NULL)
                strmap_put(&by_name, pool->projects[p].name, p);
        }
        key->project = p;
        pool->projects[p].n++;
    }
    strmap_free(&by_name);
    for (uint32_t p = 0; p < pool->nprojects; p++) {
        pool->projects[p].members =
            gkm_xcalloc(pool->projects[p].n, sizeof(uint32_t));
        pool->projects[p].n = 0;
    }
    for (uint32_t k = 0; k < pool->n; k++) {
        struct project *pr = &pool->projects[pool->keys[k].project];
        pr->members[pr->n++] = k;
    }
    gkm_pool_model_intern(pool, "");
    return pool;
}

void gkm_pool_free(struct gkm_pool *pool)
{
    if (pool == NULL)
        return;
    for (uint32_t k = 0; k < pool->n; k++) {
        free(pool->keys[k].secret);
        free(pool->keys[k].counts);
    }
    for (uint32_t p = 0; p < pool->nprojects; p++) {
        free(pool->projects[p].name);
        free(pool->projects[p].members);
    }
    for (uint32_t m = 0; m < pool->nmodels; m++) {
        free(pool->models[m].name);
        rot_free(pool->models[m].rot);
    }
    strmap_free(&pool->secrets);
    strmap_free(&pool->model_ids);
    free(pool->keys);
    free(pool->projects);
    free(pool);
}

size_t gkm_pool_size(const struct gkm_pool *pool)
{
    return pool->n;
}

const char *gkm_pool_secret(const struct gkm_pool *pool, size_t idx)
{
    return pool->keys[idx].secret;
}

const char *gkm_pool_mask(const struct gkm_pool *pool, size_t idx)
{
    return pool->keys[idx].mask;
}

const char *gkm_pool_project(const struct gkm_pool *pool, size_t idx)
{
    return pool->projects[pool->keys[idx].project].name;
}

const uint32_t *gkm_pool_project_keys(const struct gkm_pool *pool, size_t idx,
                                      size_t *n)
{
    const struct project *pr = &pool->projects[pool->keys[idx].project];
    *n = pr->n;
    return pr->members;
}

long gkm_pool_find(const struct gkm_pool *pool, const char *secret)
{
    if (secret == NULL)
        return -1;
    uint32_t k = strmap_get(&pool->secrets, secret);
    return k == NIL ? -1 : (long)k;
}

/* ---- picking and benching ------------------------------------------------ */

struct gkm_pick gkm_pool_pick(struct gkm_pool *pool, const char *model,
                              int64_t now_ms)
{
    struct gkm_pick res = {-1, GKM_FOREVER, GKM_BENCH_NONE};
    if (pool->n == 0)
        return res;
    struct rot *r =
        model_rot(pool, gkm_pool_model_intern(pool, model ? model : ""));

    /* 1. Keys whose time has come go back into the ring (or back into the
     * heap with their true expiry, if a bench grew meanwhile). */
    while (r->heap_len > 0 && r->hkey[r->heap[0]] <= now_ms) {
        uint32_t k = r->heap[0];
        int64_t at = available_at(pool, r, k, now_ms, NULL);
        if (at != 0) {
            heap_update(r, k, at);
            continue;
        }
        heap_remove(r, k);
        r->until[k] = 0;
        r->reason[k] = GKM_BENCH_NONE;
        ring_insert(r, k);
    }

    /* 2. Round-robin, moving keys benched key-wide out of the way. */
    while (r->cursor != NIL) {
        uint32_t k = r->cursor;
        if (pool->keys[k].wide_until > now_ms) {
            ring_remove(r, k);
            heap_push(r, k, available_at(pool, r, k, now_ms, NULL));
            continue;
        }
        r->cursor = r->next[k];
        pool->next_start = k + 1;
        res.idx = (long)k;
        res.retry_at_ms = 0;
        return res;
    }

    /* 3. Nothing available: report the earliest return, first bringing the
     * top's hkey up to its true expiry (hkey may be early, never late). */
    while (r->heap_len > 0) {
        uint32_t k = r->heap[0];
        enum gkm_bench_reason why;
        int64_t at = available_at(pool, r, k, now_ms, &why);
        if (at == r->hkey[k]) {
            res.retry_at_ms = at;
            res.reason = why;
            break;
        }
        heap_update(r, k, at);
    }
    return res;
}

/* Re-key every model's heap entry of k to its per-model expiry (a safe,
 * possibly early, recheck time) after the key-wide bench shrank. */
static void rekey_after_wide_change(struct gkm_pool *pool, uint32_t k)
{
    for (uint32_t m = 0; m < pool->nmodels; m++) {
        struct rot *r = pool->models[m].rot;
        if (r != NULL && r->heap_pos[k] != NIL)
            heap_update(r, k, r->until[k]);
    }
}

void gkm_pool_bench(struct gkm_pool *pool, size_t idx, const char *model,
                    int64_t until_ms, enum gkm_bench_reason reason)
{
    if (idx >= pool->n)
        return;
    uint32_t k = (uint32_t)idx;
    pool->generation++;
    if (model == NULL) {
        struct key *key = &pool->keys[k];
        int64_t old = key->wide_until;
        key->wide_until = until_ms;
        key->wide_reason = reason;
        if (until_ms < old)
            rekey_after_wide_change(pool, k);
        return;
    }
    struct rot *r = model_rot(pool, gkm_pool_model_intern(pool, model));
    r->until[k] = until_ms;
    r->reason[k] = (unsigned char)reason;
    if (r->heap_pos[k] == NIL) {
        ring_remove(r, k);
        heap_push(r, k, until_ms);
    } else {
        heap_update(r, k, until_ms);
    }
}

void gkm_pool_bench_project(struct gkm_pool *pool, size_t idx,
                            const char *model, int64_t until_ms,
                            enum gkm_bench_reason reason)
{
    if (idx >= pool->n)
        return;
    const struct project *pr = &pool->projects[pool->keys[idx].project];
    for (uint32_t i = 0; i < pr->n; i++)
        gkm_pool_bench(pool, pr->members[i], model, until_ms, reason);
}

void gkm_pool_unbench(struct gkm_pool *pool, size_t idx, const char *model)
{
    if (idx >= pool->n)
        return;
    uint32_t k = (uint32_t)idx;
    pool->generation++;
    if (model == NULL) {
        pool->keys[k].wide_until = 0;
        pool->keys[k].wide_reason = GKM_BENCH_NONE;
        rekey_after_wide_change(pool, k);
        return;
    }
    uint32_t id = gkm_pool_model_find(pool, model);
    struct rot *r = id == NIL ? NULL : pool->models[id].rot;
    if (r == NULL)
        return;
    r->until[k] = 0;
    r->reason[k] = GKM_BENCH_NONE;
    if (r->heap_pos[k] != NIL) {
        /* A key-wide bench still in force is found lazily by pick. */
        heap_remove(r, k);
        ring_insert(r, k);
    }
}

enum gkm_bench_reason gkm_pool_state(const struct gkm_pool *pool, size_t idx,
                                     const char *model, int64_t now_ms,
                                     int64_t *until_ms)
{
    if (idx >= pool->n)
        return GKM_BENCH_NONE;
    const struct key *key = &pool->keys[idx];
    if (key->wide_until > now_ms) {
        if (until_ms != NULL)
            *until_ms = key->wide_until;
        return key->wide_reason;
    }
    uint32_t id = gkm_pool_model_find(pool, model ? model : "");
    const struct rot *r = id == NIL ? NULL : pool->models[id].rot;
    if (r != NULL && r->until[idx] > now_ms) {
        if (until_ms != NULL)
            *until_ms = r->until[idx];
        return (enum gkm_bench_reason)r->reason[idx];
    }
    return GKM_BENCH_NONE;
}

void gkm_pool_foreach_bench(const struct gkm_pool *pool, int64_t now_ms,
                            gkm_pool_bench_cb cb, void *arg)
{
    for (uint32_t k = 0; k < pool->n; k++) {
        const struct key *key = &pool->keys[k];
        if (key->wide_until > now_ms)
            cb(arg, k, NULL, key->wide_until, key->wide_reason);
        for (uint32_t i = 0; i < pool->nmodels; i++) {
            const struct model *m = &pool->models[pool->sorted[i]];
            if (m->rot != NULL && m->rot->until[k] > now_ms)
                cb(arg, k, m->name, m->rot->until[k],
                   (enum gkm_bench_reason)m->rot->reason[k]);
        }
    }
}

size_t gkm_pool_nbenched(const struct gkm_pool *pool, const char *model,
                         int64_t now_ms)
{
    uint32_t id = gkm_pool_model_find(pool, model ? model : "");
    const struct rot *r = id == NIL ? NULL : pool->models[id].rot;
    size_t n = 0;
    /* O(n): the heap alone is not exact (its keys may have become available,
     * and keys benched key-wide may still sit in the ring). */
    for (uint32_t k = 0; k < pool->n; k++)
        if (available_at(pool, r, k, now_ms, NULL) != 0)
            n++;
    return n;
}

uint64_t gkm_pool_generation(const struct gkm_pool *pool)
{
    return pool->generation;
}
