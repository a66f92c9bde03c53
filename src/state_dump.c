/*
 * state_dump.c - writing the usage file, key_usage.txt (see state.h for the
 * format and state.c for reading it).
 *
 * The four fields the original Python tool reads come first, in its shape;
 * everything else is under "gkm". gkm_state_dump returns a malloc'd string
 * that the caller frees with free().
 */
#include "state.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"
#include "buf.h"
#include "jsonw.h"
#include "keypool.h"
#include "util.h"

#define STATE_VERSION 1
#define MAX_DEPTH 8

/* The usage file is printed directly, in the layout json_dumps(...,
 * JSON_INDENT(4)) gives (Python's json.dump(indent=4) too), without
 * building a jansson tree first: with 10,000 keys the tree, its printing
 * and its freeing cost ~80 million instructions per save on the event
 * loop (bench/README.md, "The usage file with 10,000 keys").
 *
 * A member whose name or string value is not valid UTF-8 (a model name
 * from a client's URL) is left out, as jansson would refuse it: every
 * member is written as a unit and rolled back (mark/undo) if one of its
 * strings fails. */
struct pr {
    char *d;    /* the text, NUL-terminated at len once done */
    size_t len, alloc;
    int depth;
    int first[MAX_DEPTH]; /* nothing written yet at this depth */
};

/* Where the text stood: undo() goes back there, out of any '{' or '['
 * opened since. */
struct mark {
    size_t len;
    int depth;
    int first;
};

static struct mark mark(const struct pr *o)
{
    struct mark m = {o->len, o->depth, o->first[o->depth]};
    return m;
}

static void undo(struct pr *o, struct mark m)
{
    o->len = m.len;
    o->depth = m.depth;
    o->first[o->depth] = m.first;
}

/* Room for n more bytes (and the final NUL). */
static inline void reserve(struct pr *o, size_t n)
{
    if (o->len + n + 1 <= o->alloc)
        return;
    size_t want = o->alloc ? o->alloc * 2 : 4096;
    while (want < o->len + n + 1)
        want *= 2;
    o->d = gkm_xrealloc(o->d, want);
    o->alloc = want;
}

static inline void put(struct pr *o, const char *s, size_t n)
{
    reserve(o, n);
    memcpy(o->d + o->len, s, n);
    o->len += n;
}

#define PUTS(o, lit) put((o), (lit), sizeof(lit) - 1)

/* A new line indented to the current depth, after a ',' if needed. */
static void next_line(struct pr *o)
{
    size_t ind = (size_t)o->depth * 4;
    reserve(o, ind + 2);
    char *w = o->d + o->len;
    if (!o->first[o->depth])
        *w++ = ',';
    o->first[o->depth] = 0;
    *w++ = '\n';
    memset(w, ' ', ind);
    o->len = (size_t)(w + ind - o->d);
}

/* A string literal; -1 (nothing useful written: undo) when s is not valid
 * UTF-8. Plain ASCII without quotes, backslashes or control characters
 * (keys, model names) is copied at once. */
static int str(struct pr *o, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80)
            break;
        i++;
    }
    if (i == n) {
        reserve(o, n + 2);
        char *w = o->d + o->len;
        *w = '"';
        memcpy(w + 1, s, n);
        w[n + 1] = '"';
        o->len += n + 2;
        return 0;
    }
    struct gkm_buf t;
    gkm_buf_init(&t, SIZE_MAX / 2);
    int rc = gkm_json_write_string(&t, s, n);
    if (rc == 0)
        put(o, t.data, t.len);
    gkm_buf_free(&t);
    return rc;
}

/* Start a member "k": (inside an object). -1: k is not valid UTF-8. */
static int name(struct pr *o, const char *k)
{
    next_line(o);
    if (str(o, k, strlen(k)) != 0)
        return -1;
    PUTS(o, ": ");
    return 0;
}

/* The same for a name known to be plain ASCII, given with its quotes,
 * colon and space: NAME_LIT(o, "\"key\": "). */
#define NAME_LIT(o, lit) (next_line(o), PUTS((o), lit))

static void open_(struct pr *o, char c)
{
    put(o, &c, 1);
    o->depth++;
    o->first[o->depth] = 1;
}

static void close_(struct pr *o, char c)
{
    int empty = o->first[o->depth];
    o->depth--;
    if (!empty) {
        size_t ind = (size_t)o->depth * 4;
        reserve(o, ind + 1);
        o->d[o->len++] = '\n';
        memset(o->d + o->len, ' ', ind);
        o->len += ind;
    }
    put(o, &c, 1);
}

static void num(struct pr *o, long long v)
{
    reserve(o, GKM_LL_LEN);
    o->len = (size_t)(gkm_fmt_ll(o->d + o->len, v) - o->d);
}

static void count(struct pr *o, uint64_t n)
{
    num(o, n > (uint64_t)LLONG_MAX ? LLONG_MAX : (long long)n);
}

/* "name": n, or nothing when name is not valid UTF-8. */
static void member_count(struct pr *o, const char *k, uint64_t n)
{
    struct mark m = mark(o);
    if (name(o, k) != 0) {
        undo(o, m);
        return;
    }
    count(o, n);
}

/* Per-key objects (model_counts, stats) opened on their first member. */
struct keyobj {
    struct pr *o;
    const char *secret;
    int open;
};

static int keyobj_open(struct keyobj *ko)
{
    if (ko->open)
        return 0;
    if (name(ko->o, ko->secret) != 0)
        return -1;
    open_(ko->o, '{');
    ko->open = 1;
    return 0;
}

static void keyobj_close(struct keyobj *ko)
{
    if (ko->open)
        close_(ko->o, '}');
}

/* Start the member "model": in the key's object, opening that on its
 * first member. -1 (nothing written, the key's "{" undone too if it was
 * opened for this member) when model is not valid UTF-8. */
static int keyobj_member(struct keyobj *ko, const char *model)
{
    struct mark m = mark(ko->o);
    int was_open = ko->open;
    if (keyobj_open(ko) != 0 || name(ko->o, model) != 0) {
        undo(ko->o, m);
        ko->open = was_open;
        return -1;
    }
    return 0;
}

static void dump_model_count(void *arg, const char *model, uint64_t n)
{
    struct keyobj *ko = arg;
    if (keyobj_member(ko, model) == 0)
        count(ko->o, n);
}

/* {"prompt_tokens", "output_tokens", "thinking_tokens", "errors":
 * {"<class>": n}}, non-zero fields only; requests are in model_counts. */
static void dump_stats(void *arg, const char *model,
                       const struct gkm_model_stats *st)
{
    struct keyobj *ko = arg;
    struct pr *o = ko->o;
    int any_err = 0;
    for (unsigned i = 0; i < GKM_STATS_ERRORS; i++)
        any_err |= st->errors[i] != 0;
    if (st->prompt_tokens == 0 && st->output_tokens == 0 &&
        st->thinking_tokens == 0 && !any_err)
        return;
    if (keyobj_member(ko, model) != 0)
        return;
    open_(o, '{');
    if (st->prompt_tokens > 0)
        member_count(o, "prompt_tokens", st->prompt_tokens);
    if (st->output_tokens > 0)
        member_count(o, "output_tokens", st->output_tokens);
    if (st->thinking_tokens > 0)
        member_count(o, "thinking_tokens", st->thinking_tokens);
    if (any_err) {
        (void)name(o, "errors");
        open_(o, '{');
        for (unsigned i = 0; i < GKM_STATS_ERRORS; i++) {
            char nm[GKM_LL_LEN];
            if (st->errors[i] == 0)
                continue;
            gkm_fmt_ll(nm, i);
            member_count(o, nm, st->errors[i]);
        }
        close_(o, '}');
    }
    close_(o, '}');
}

/* exhausted_keys: {key: [model, ...]} for the per-day benches of a model,
 * as the Python tool wrote them. gkm_pool_foreach_bench visits a key's
 * benches together, so a key's list is open while its benches pass. */
struct exh {
    struct pr *o;
    const struct gkm_pool *pool;
    size_t idx; /* the key whose list is open, or SIZE_MAX */
};

static void exh_close(struct exh *e)
{
    if (e->idx != SIZE_MAX) {
        close_(e->o, ']');
        e->idx = SIZE_MAX;
    }
}

static void dump_exhausted(void *arg, size_t idx, const char *model,
                           int64_t until_ms, enum gkm_bench_reason r)
{
    struct exh *e = arg;
    struct pr *o = e->o;
    (void)until_ms;
    if (model == NULL || r != GKM_BENCH_QUOTA_DAY)
        return;
    int opened = 0;
    if (e->idx != idx)
        exh_close(e);
    struct mark m = mark(o);
    if (e->idx != idx) {
        if (name(o, gkm_pool_secret(e->pool, idx)) != 0) {
            undo(o, m);
            return;
        }
        open_(o, '[');
        opened = 1;
    }
    struct mark m2 = mark(o);
    next_line(o);
    if (str(o, model, strlen(model)) != 0) {
        /* A key is listed only with a model that can be written. */
        undo(o, opened ? m : m2);
        return;
    }
    if (opened)
        e->idx = idx;
}

/* gkm.benches: every bench in force, {"key", "model" (null: key-wide),
 * "until" (null: forever), "reason"}. */
struct benches {
    struct pr *o;
    const struct gkm_pool *pool;
};

static void dump_bench(void *arg, size_t idx, const char *model,
                       int64_t until_ms, enum gkm_bench_reason r)
{
    struct benches *bs = arg;
    struct pr *o = bs->o;
    struct mark m = mark(o);
    next_line(o);
    open_(o, '{');
    const char *secret = gkm_pool_secret(bs->pool, idx);
    NAME_LIT(o, "\"key\": ");
    int bad = str(o, secret, strlen(secret)) != 0;
    NAME_LIT(o, "\"model\": ");
    if (model == NULL)
        PUTS(o, "null");
    else
        bad |= str(o, model, strlen(model)) != 0;
    if (bad) {
        undo(o, m);
        return;
    }
    NAME_LIT(o, "\"until\": ");
    if (until_ms == GKM_FOREVER)
        PUTS(o, "null");
    else
        num(o, until_ms);
    const char *rn = gkm_bench_reason_name(r);
    NAME_LIT(o, "\"reason\": ");
    if (str(o, rn, strlen(rn)) != 0) {
        undo(o, m);
        return;
    }
    close_(o, '}');
}

struct owners {
    struct pr *o;
    const struct gkm_pool *pool;
};

static void dump_owner(void *arg, const char *nm, size_t len, size_t idx,
                       int64_t expires_ms)
{
    struct owners *ow = arg;
    struct pr *o = ow->o;
    if (idx >= gkm_pool_size(ow->pool))
        return;
    struct mark m = mark(o);
    next_line(o);
    open_(o, '{');
    const char *secret = gkm_pool_secret(ow->pool, idx);
    NAME_LIT(o, "\"name\": ");
    int bad = str(o, nm, len) != 0;
    NAME_LIT(o, "\"key\": ");
    if (bad || str(o, secret, strlen(secret)) != 0) {
        undo(o, m);
        return;
    }
    NAME_LIT(o, "\"until\": ");
    num(o, expires_ms);
    close_(o, '}');
}

char *gkm_state_dump(const struct gkm_pool *pool, const char *today,
                     int64_t now_ms)
{
    return gkm_state_dump_ex(pool, NULL, today, now_ms);
}

char *gkm_state_dump_ex(const struct gkm_pool *pool, const struct gkm_aff *aff,
                        const char *today, int64_t now_ms)
{
    struct pr o = {0};
    size_t n = gkm_pool_size(pool);
    open_(&o, '{');

    struct mark m = mark(&o);
    const char *day = today ? today : "";
    if (name(&o, "date") != 0 || str(&o, day, strlen(day)) != 0) {
        undo(&o, m);
        (void)name(&o, "date");
        PUTS(&o, "\"\"");
    }

    (void)name(&o, "counts");
    open_(&o, '{');
    for (size_t k = 0; k < n; k++) {
        uint64_t total = gkm_pool_total(pool, k);
        if (total > 0)
            member_count(&o, gkm_pool_secret(pool, k), total);
    }
    close_(&o, '}');

    (void)name(&o, "model_counts");
    open_(&o, '{');
    for (size_t k = 0; k < n; k++) {
        struct keyobj ko = {&o, gkm_pool_secret(pool, k), 0};
        gkm_pool_foreach_model_count(pool, k, dump_model_count, &ko);
        keyobj_close(&ko);
    }
    close_(&o, '}');

    (void)name(&o, "exhausted_keys");
    open_(&o, '{');
    struct exh e = {&o, pool, SIZE_MAX};
    gkm_pool_foreach_bench(pool, now_ms, dump_exhausted, &e);
    exh_close(&e);
    close_(&o, '}');

    (void)name(&o, "gkm");
    open_(&o, '{');
    (void)name(&o, "version");
    num(&o, STATE_VERSION);
    (void)name(&o, "benches");
    open_(&o, '[');
    struct benches bs = {&o, pool};
    gkm_pool_foreach_bench(pool, now_ms, dump_bench, &bs);
    close_(&o, ']');
    (void)name(&o, "stats");
    open_(&o, '{');
    for (size_t k = 0; k < n; k++) {
        struct keyobj ko = {&o, gkm_pool_secret(pool, k), 0};
        gkm_pool_foreach_stats(pool, k, dump_stats, &ko);
        keyobj_close(&ko);
    }
    close_(&o, '}');
    if (aff != NULL) {
        (void)name(&o, "owners");
        open_(&o, '[');
        struct owners ow = {&o, pool};
        gkm_aff_foreach(aff, now_ms, dump_owner, &ow);
        close_(&o, ']');
    }
    close_(&o, '}');
    close_(&o, '}');
    reserve(&o, 0);
    o.d[o.len] = '\0';
    return o.d;
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
