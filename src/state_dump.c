/*
 * state_dump.c - writing the usage file, key_usage.txt (see state.h for the
 * format and state.c for reading it).
 *
 * The four fields the original Python tool reads come first, in its shape;
 * everything else is under "gkm". Ownership: jansson values are local to
 * each call; gkm_state_dump returns a malloc'd string (json_dumps) that the
 * caller frees with free().
 */
#include "state.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"
#include "keypool.h"
#include "util.h"

#define STATE_VERSION 1

static json_t *must(json_t *v)
{
    if (v == NULL)
        abort(); /* jansson out of memory */
    return v;
}

/* Set o[k] = v (stolen). Keys or values that are not valid UTF-8 (a model
 * name from a client's URL) make jansson refuse; such entries are dropped
 * from the file rather than corrupting it. */
static int oset(json_t *o, const char *k, json_t *v)
{
    return v != NULL ? json_object_set_new(o, k, v) : -1;
}

struct dumper {
    const struct gkm_pool *pool;
    json_t *exhausted;
    json_t *benches;
    json_t *models; /* per-key model counts being filled */
    json_t *stats;  /* per-key token and error statistics being filled */
};

static json_t *jcount(uint64_t n)
{
    return must(json_integer(n > (uint64_t)LLONG_MAX ? LLONG_MAX
                                                     : (json_int_t)n));
}

static void dump_model_count(void *arg, const char *model, uint64_t n)
{
    struct dumper *d = arg;
    (void)oset(d->models, model, jcount(n));
}

/* {"prompt_tokens", "output_tokens", "thinking_tokens", "errors":
 * {"<class>": n}}, non-zero fields only; requests are in model_counts. */
static void dump_stats(void *arg, const char *model,
                       const struct gkm_model_stats *st)
{
    struct dumper *d = arg;
    json_t *e = must(json_object());
    json_t *errs = must(json_object());
    if (st->prompt_tokens > 0)
        (void)oset(e, "prompt_tokens", jcount(st->prompt_tokens));
    if (st->output_tokens > 0)
        (void)oset(e, "output_tokens", jcount(st->output_tokens));
    if (st->thinking_tokens > 0)
        (void)oset(e, "thinking_tokens", jcount(st->thinking_tokens));
    for (unsigned i = 0; i < GKM_STATS_ERRORS; i++) {
        char name[8];
        if (st->errors[i] == 0)
            continue;
        snprintf(name, sizeof(name), "%u", i);
        (void)oset(errs, name, jcount(st->errors[i]));
    }
    if (json_object_size(errs) > 0)
        (void)oset(e, "errors", errs);
    else
        json_decref(errs);
    if (json_object_size(e) > 0)
        (void)oset(d->stats, model, e);
    else
        json_decref(e);
}

static void dump_bench(void *arg, size_t idx, const char *model,
                       int64_t until_ms, enum gkm_bench_reason r)
{
    struct dumper *d = arg;
    const char *secret = gkm_pool_secret(d->pool, idx);
    json_t *jm = model != NULL ? json_string(model) : must(json_null());
    if (jm == NULL)
        return;
    if (model != NULL && r == GKM_BENCH_QUOTA_DAY) {
        json_t *list = json_object_get(d->exhausted, secret);
        if (list == NULL) {
            list = must(json_array());
            if (oset(d->exhausted, secret, list) != 0)
                list = NULL;
        }
        if (list != NULL)
            (void)json_array_append(list, jm);
    }
    json_t *e = must(json_object());
    if (oset(e, "key", json_string(secret)) != 0) {
        json_decref(jm);
        json_decref(e);
        return;
    }
    /* oset consumes jm from here on, even when it fails. */
    json_t *ju = until_ms == GKM_FOREVER ? json_null()
                                         : json_integer((json_int_t)until_ms);
    if (oset(e, "model", jm) != 0 || oset(e, "until", must(ju)) != 0 ||
        oset(e, "reason", json_string(gkm_bench_reason_name(r))) != 0) {
        json_decref(e);
        return;
    }
    (void)json_array_append_new(d->benches, e);
}

struct owner_dumper {
    const struct gkm_pool *pool;
    json_t *list;
};

static void dump_owner(void *arg, const char *name, size_t len, size_t idx,
                       int64_t expires_ms)
{
    struct owner_dumper *od = arg;
    if (idx >= gkm_pool_size(od->pool))
        return;
    json_t *e = must(json_object());
    if (oset(e, "name", json_stringn(name, len)) != 0 ||
        oset(e, "key", json_string(gkm_pool_secret(od->pool, idx))) != 0 ||
        oset(e, "until", must(json_integer((json_int_t)expires_ms))) != 0) {
        json_decref(e);
        return;
    }
    (void)json_array_append_new(od->list, e);
}

char *gkm_state_dump(const struct gkm_pool *pool, const char *today,
                     int64_t now_ms)
{
    return gkm_state_dump_ex(pool, NULL, today, now_ms);
}

char *gkm_state_dump_ex(const struct gkm_pool *pool, const struct gkm_aff *aff,
                        const char *today, int64_t now_ms)
{
    json_t *root = must(json_object());
    json_t *counts = must(json_object());
    json_t *model_counts = must(json_object());
    json_t *gkm = must(json_object());
    json_t *stats = must(json_object());
    struct dumper d = {pool, must(json_object()), must(json_array()), NULL,
                       NULL};

    for (size_t k = 0; k < gkm_pool_size(pool); k++) {
        const char *secret = gkm_pool_secret(pool, k);
        uint64_t total = gkm_pool_total(pool, k);
        if (total > 0)
            (void)oset(counts, secret, jcount(total));
        d.models = must(json_object());
        gkm_pool_foreach_model_count(pool, k, dump_model_count, &d);
        if (json_object_size(d.models) > 0)
            (void)oset(model_counts, secret, d.models);
        else
            json_decref(d.models);
        d.stats = must(json_object());
        gkm_pool_foreach_stats(pool, k, dump_stats, &d);
        if (json_object_size(d.stats) > 0)
            (void)oset(stats, secret, d.stats);
        else
            json_decref(d.stats);
    }
    gkm_pool_foreach_bench(pool, now_ms, dump_bench, &d);

    (void)oset(gkm, "version", must(json_integer(STATE_VERSION)));
    (void)oset(gkm, "benches", d.benches);
    (void)oset(gkm, "stats", stats);
    if (aff != NULL) {
        struct owner_dumper od = {pool, must(json_array())};
        gkm_aff_foreach(aff, now_ms, dump_owner, &od);
        (void)oset(gkm, "owners", od.list);
    }
    if (oset(root, "date", json_string(today ? today : "")) != 0 ||
        oset(root, "counts", counts) != 0 ||
        oset(root, "model_counts", model_counts) != 0 ||
        oset(root, "exhausted_keys", d.exhausted) != 0 ||
        oset(root, "gkm", gkm) != 0)
        abort(); /* fixed ASCII keys: only OOM can fail */
    char *s = json_dumps(root, JSON_INDENT(4));
    json_decref(root);
    if (s == NULL)
        abort();
    return s;
}

int gkm_state_save(const struct gkm_pool *pool, const char *path,
                   const char *today, int64_t now_ms)
{
    return gkm_state_save_ex(pool, NULL, path, today, now_ms);
}

int gkm_state_save_ex(const struct gkm_pool *pool, const struct gkm_aff *aff,
                      const char *path, const char *today, int64_t now_ms)
{
    char *s = gkm_state_dump_ex(pool, aff, today, now_ms);
    int rc = gkm_write_file_atomic(path, s, strlen(s), 0600);
    int saved = errno;
    free(s);
    errno = saved;
    return rc;
}
