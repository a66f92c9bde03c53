/*
 * keystats.c - usage counting and per-(key, model) statistics of the key
 * pool (see keypool.h; the layout is in keypool_impl.h).
 *
 * Each key keeps a small vector of struct count_ent, one per model it was
 * used with today, holding the model's request count, token counts and
 * error counts by class. The "" pseudo-model (id 0) has an entry only for
 * tokens and errors: its request count is never stored but derived, as the
 * key total minus the named models' counts, so that the per-model requests
 * always add up to the total whatever was restored.
 *
 * Counters saturate instead of wrapping. Everything is zeroed by the daily
 * reset (gkm_pool_reset_counts).
 */
#include "keypool.h"

#include <stdlib.h>
#include <string.h>

#include "keypool_impl.h"
#include "util.h"

static uint64_t sat_add64(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static int stats_nonzero(const struct gkm_model_stats *st)
{
    if (st->requests || st->prompt_tokens || st->output_tokens ||
        st->thinking_tokens)
        return 1;
    for (size_t i = 0; i < GKM_STATS_ERRORS; i++)
        if (st->errors[i] != 0)
            return 1;
    return 0;
}

static const struct count_ent *count_find(const struct gkm_pool *pool,
                                          uint32_t k, uint32_t id)
{
    const struct key *key = &pool->keys[k];
    for (uint32_t i = 0; i < key->ncounts; i++)
        if (key->counts[i].model == id)
            return &key->counts[i];
    return NULL;
}

static struct count_ent *count_slot(struct gkm_pool *pool, uint32_t k,
                                    uint32_t id, int create)
{
    struct key *key = &pool->keys[k];
    for (uint32_t i = 0; i < key->ncounts; i++)
        if (key->counts[i].model == id)
            return &key->counts[i];
    if (!create)
        return NULL;
    if (key->ncounts == key->acounts) {
        key->acounts = key->acounts ? key->acounts * 2 : 2;
        key->counts = gkm_xrealloc(key->counts,
                                   key->acounts * sizeof(*key->counts));
    }
    struct count_ent *e = &key->counts[key->ncounts++];
    memset(e, 0, sizeof(*e));
    e->model = id;
    return e;
}

/* Requests of key k that no named model accounts for. */
static uint64_t unnamed_requests(const struct gkm_pool *pool, uint32_t k)
{
    const struct key *key = &pool->keys[k];
    uint64_t named = 0;
    for (uint32_t i = 0; i < key->ncounts; i++)
        if (key->counts[i].model != 0)
            named = sat_add64(named, key->counts[i].st.requests);
    return key->total > named ? key->total - named : 0;
}

/* The statistics of (k, id) into *out; returns whether any is non-zero. */
static int fill_stats(const struct gkm_pool *pool, uint32_t k, uint32_t id,
                      struct gkm_model_stats *out)
{
    const struct count_ent *e = count_find(pool, k, id);
    if (e != NULL)
        *out = e->st;
    else
        memset(out, 0, sizeof(*out));
    if (id == 0)
        out->requests = unnamed_requests(pool, k);
    return stats_nonzero(out);
}

/* ---- request counts ------------------------------------------------------ */

void gkm_pool_count(struct gkm_pool *pool, size_t idx, const char *model)
{
    if (idx >= pool->n)
        return;
    pool->generation++;
    pool->keys[idx].total = sat_add64(pool->keys[idx].total, 1);
    uint32_t id = gkm_pool_model_intern(pool, model ? model : "");
    if (id != 0) {
        struct count_ent *e = count_slot(pool, (uint32_t)idx, id, 1);
        e->st.requests = sat_add64(e->st.requests, 1);
    }
}

uint64_t gkm_pool_total(const struct gkm_pool *pool, size_t idx)
{
    return idx < pool->n ? pool->keys[idx].total : 0;
}

uint64_t gkm_pool_model_count(const struct gkm_pool *pool, size_t idx,
                              const char *model)
{
    if (idx >= pool->n)
        return 0;
    uint32_t id = gkm_pool_model_find(pool, model ? model : "");
    if (id == NIL || id == 0)
        return 0;
    const struct count_ent *e = count_find(pool, (uint32_t)idx, id);
    return e != NULL ? e->st.requests : 0;
}

void gkm_pool_set_total(struct gkm_pool *pool, size_t idx, uint64_t n)
{
    if (idx >= pool->n)
        return;
    pool->generation++;
    pool->keys[idx].total = n;
}

void gkm_pool_set_model_count(struct gkm_pool *pool, size_t idx,
                              const char *model, uint64_t n)
{
    if (idx >= pool->n)
        return;
    pool->generation++;
    uint32_t id = gkm_pool_model_intern(pool, model ? model : "");
    if (id == 0)
        return;
    struct count_ent *e = count_slot(pool, (uint32_t)idx, id, n != 0);
    if (e != NULL)
        e->st.requests = n;
}

struct ranked {
    uint32_t rank;
    uint32_t slot;
};

static int cmp_ranked(const void *a, const void *b)
{
    const struct ranked *x = a, *y = b;
    return (x->rank > y->rank) - (x->rank < y->rank);
}

/* The entries of key k with a named model and something non-zero
 * (requests only, when only_requests), in model-name order. Returns how
 * many were stored in order[] (at most GKM_MODELS_MAX: one per model). */
static uint32_t sorted_entries(const struct gkm_pool *pool, uint32_t k,
                               int only_requests,
                               struct ranked order[GKM_MODELS_MAX])
{
    const struct key *key = &pool->keys[k];
    uint32_t n = 0;
    for (uint32_t i = 0; i < key->ncounts && n < GKM_MODELS_MAX; i++) {
        const struct count_ent *e = &key->counts[i];
        if (e->model == 0)
            continue;
        if (only_requests ? e->st.requests == 0 : !stats_nonzero(&e->st))
            continue;
        order[n].rank = pool->rank[e->model];
        order[n].slot = i;
        n++;
    }
    qsort(order, n, sizeof(order[0]), cmp_ranked);
    return n;
}

void gkm_pool_foreach_model_count(const struct gkm_pool *pool, size_t idx,
                                  gkm_pool_count_cb cb, void *arg)
{
    if (idx >= pool->n)
        return;
    const struct key *key = &pool->keys[idx];
    struct ranked order[GKM_MODELS_MAX];
    uint32_t n = sorted_entries(pool, (uint32_t)idx, 1, order);
    for (uint32_t i = 0; i < n; i++) {
        const struct count_ent *e = &key->counts[order[i].slot];
        cb(arg, pool->models[e->model].name, e->st.requests);
    }
}

void gkm_pool_reset_counts(struct gkm_pool *pool)
{
    pool->generation++;
    for (uint32_t k = 0; k < pool->n; k++) {
        pool->keys[k].total = 0;
        pool->keys[k].ncounts = 0;
    }
}

/* ---- tokens and errors --------------------------------------------------- */

void gkm_pool_add_tokens(struct gkm_pool *pool, size_t idx, const char *model,
                         uint64_t prompt, uint64_t output, uint64_t thinking)
{
    if (idx >= pool->n || (prompt == 0 && output == 0 && thinking == 0))
        return;
    pool->generation++;
    uint32_t id = gkm_pool_model_intern(pool, model ? model : "");
    struct gkm_model_stats *st = &count_slot(pool, (uint32_t)idx, id, 1)->st;
    st->prompt_tokens = sat_add64(st->prompt_tokens, prompt);
    st->output_tokens = sat_add64(st->output_tokens, output);
    st->thinking_tokens = sat_add64(st->thinking_tokens, thinking);
}

void gkm_pool_count_error(struct gkm_pool *pool, size_t idx,
                          const char *model, unsigned cls)
{
    if (idx >= pool->n || cls >= GKM_STATS_ERRORS)
        return;
    pool->generation++;
    uint32_t id = gkm_pool_model_intern(pool, model ? model : "");
    struct gkm_model_stats *st = &count_slot(pool, (uint32_t)idx, id, 1)->st;
    if (st->errors[cls] < UINT32_MAX)
        st->errors[cls]++;
}

int gkm_pool_get_stats(const struct gkm_pool *pool, size_t idx,
                       const char *model, struct gkm_model_stats *out)
{
    if (idx >= pool->n) {
        memset(out, 0, sizeof(*out));
        return -1;
    }
    uint32_t id = gkm_pool_model_find(pool, model ? model : "");
    if (id == NIL) {
        memset(out, 0, sizeof(*out));
        return -1;
    }
    return fill_stats(pool, (uint32_t)idx, id, out) ? 0 : -1;
}

void gkm_pool_foreach_stats(const struct gkm_pool *pool, size_t idx,
                            gkm_pool_stats_cb cb, void *arg)
{
    if (idx >= pool->n)
        return;
    struct gkm_model_stats st;
    /* "" sorts before every named model. */
    if (fill_stats(pool, (uint32_t)idx, 0, &st))
        cb(arg, pool->models[0].name, &st);
    const struct key *key = &pool->keys[idx];
    struct ranked order[GKM_MODELS_MAX];
    uint32_t n = sorted_entries(pool, (uint32_t)idx, 0, order);
    for (uint32_t i = 0; i < n; i++) {
        const struct count_ent *e = &key->counts[order[i].slot];
        st = e->st;
        cb(arg, pool->models[e->model].name, &st);
    }
}

void gkm_pool_set_stats(struct gkm_pool *pool, size_t idx, const char *model,
                        const struct gkm_model_stats *st)
{
    if (idx >= pool->n)
        return;
    pool->generation++;
    uint32_t id = gkm_pool_model_intern(pool, model ? model : "");
    struct gkm_model_stats want = *st;
    if (id == 0)
        want.requests = 0; /* derived from the key total */
    struct count_ent *e =
        count_slot(pool, (uint32_t)idx, id, stats_nonzero(&want));
    if (e != NULL)
        e->st = want;
}
