/*
 * report.c - usage and key-check reports (see report.h).
 *
 * Text tables are built as rows of safe cells (report_text.h struct
 * gkm_table): numbers right aligned, text left aligned.
 *
 * Masking rule: this file never reads gkm_pool_secret() except to hand it
 * to the redactor, so a real key cannot reach the output.
 *
 * Ownership: every string built here is owned by the function building it
 * and freed before return, except the returned report.
 */
#include "report.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "keypool.h"
#include "redact.h"
#include "report_text.h"
#include "util.h"

#define DETAIL_MAX 120 /* code points of a probe detail in the table */
#define TOP_CLASSES 3  /* error classes named in an ERRORS cell */

/* ---- usage --------------------------------------------------------------- */

enum status { ST_AVAILABLE, ST_BENCHED, ST_DISABLED };

static const char *const status_names[] = {"available", "benched",
                                           "disabled"};

struct state_info {
    enum status status;
    enum gkm_bench_reason reason;
    int64_t until;
};

static struct state_info make_state(enum gkm_bench_reason r, int64_t until)
{
    struct state_info s = {ST_AVAILABLE, GKM_BENCH_NONE, 0};
    if (r != GKM_BENCH_NONE) {
        s.status = until == GKM_FOREVER ? ST_DISABLED : ST_BENCHED;
        s.reason = r;
        s.until = until;
    }
    return s;
}

/* Counters of a row: one pair, one key or the whole pool. */
struct agg {
    uint64_t requests, prompt, output, thinking;
    uint64_t errors[GKM_STATS_ERRORS];
};

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static void agg_add(struct agg *a, const struct agg *b)
{
    a->requests = sat_add(a->requests, b->requests);
    a->prompt = sat_add(a->prompt, b->prompt);
    a->output = sat_add(a->output, b->output);
    a->thinking = sat_add(a->thinking, b->thinking);
    for (size_t i = 0; i < GKM_STATS_ERRORS; i++)
        a->errors[i] = sat_add(a->errors[i], b->errors[i]);
}

static uint64_t agg_errors(const struct agg *a)
{
    uint64_t n = 0;
    for (size_t i = 0; i < GKM_STATS_ERRORS; i++)
        n = sat_add(n, a->errors[i]);
    return n;
}

/* One model row of a key. */
struct mrow {
    const char *model; /* borrowed from the pool */
    struct agg c;
    struct state_info state;
};

struct usage {
    const struct gkm_pool *pool;
    int64_t now;
    const char *const *err_names;
    size_t n_err_names;
    struct state_info *wide; /* key-wide state per key */
    struct bench_model {
        size_t idx;
        const char *model;
    } *benched; /* per-model benches in force, by key then model */
    size_t nbenched, abenched;
    struct mrow *rows; /* the current key's model rows */
    size_t nrows, arows;
    size_t count[3]; /* keys by status */
    struct agg total;
};

static void on_bench(void *arg, size_t idx, const char *model,
                     int64_t until_ms, enum gkm_bench_reason r)
{
    struct usage *u = arg;
    if (model == NULL) {
        u->wide[idx] = make_state(r, until_ms);
        return;
    }
    if (u->nbenched == u->abenched) {
        u->abenched = u->abenched ? u->abenched * 2 : 16;
        u->benched = gkm_xrealloc(u->benched,
                                  u->abenched * sizeof(*u->benched));
    }
    u->benched[u->nbenched].idx = idx;
    u->benched[u->nbenched].model = model;
    u->nbenched++;
}

static struct mrow *add_row(struct usage *u, const char *model)
{
    if (u->nrows == u->arows) {
        u->arows = u->arows ? u->arows * 2 : 8;
        u->rows = gkm_xrealloc(u->rows, u->arows * sizeof(*u->rows));
    }
    struct mrow *row = &u->rows[u->nrows++];
    memset(row, 0, sizeof(*row));
    row->model = model;
    return row;
}

static void on_stats(void *arg, const char *model,
                     const struct gkm_model_stats *st)
{
    struct mrow *row = add_row(arg, model);
    row->c.requests = st->requests;
    row->c.prompt = st->prompt_tokens;
    row->c.output = st->output_tokens;
    row->c.thinking = st->thinking_tokens;
    for (size_t i = 0; i < GKM_STATS_ERRORS; i++)
        row->c.errors[i] = st->errors[i];
}

static int cmp_rows(const void *a, const void *b)
{
    return strcmp(((const struct mrow *)a)->model,
                  ((const struct mrow *)b)->model);
}

/* Fill u->rows for key idx (models with statistics or benched now, by
 * name) and return the key's own row counters. *next_bench walks
 * u->benched, which is ordered by key. */
static struct agg collect_key(struct usage *u, size_t idx, size_t *next_bench)
{
    struct agg key = {0};
    u->nrows = 0;
    gkm_pool_foreach_stats(u->pool, idx, on_stats, u);
    size_t with_stats = u->nrows;
    for (; *next_bench < u->nbenched && u->benched[*next_bench].idx == idx;
         ++*next_bench) {
        const char *model = u->benched[*next_bench].model;
        size_t i = 0;
        while (i < with_stats && strcmp(u->rows[i].model, model) != 0)
            i++;
        if (i == with_stats)
            (void)add_row(u, model);
    }
    if (u->nrows > 1)
        qsort(u->rows, u->nrows, sizeof(*u->rows), cmp_rows);
    for (size_t i = 0; i < u->nrows; i++) {
        struct mrow *row = &u->rows[i];
        int64_t until = 0;
        enum gkm_bench_reason r =
            gkm_pool_state(u->pool, idx, row->model, u->now, &until);
        row->state = make_state(r, until);
        agg_add(&key, &row->c);
    }
    /* The rows add up to the total (keypool.h); the total is the truth. */
    key.requests = gkm_pool_total(u->pool, idx);
    return key;
}

static const char *class_name(const struct usage *u, size_t i, char buf[24])
{
    if (i < u->n_err_names && u->err_names[i] != NULL)
        return u->err_names[i];
    snprintf(buf, 24, "class_%zu", i);
    return buf;
}

/* "0", or "5 (quota_minute 3, server 1, timeout 1, ...)" (heap). */
static char *errors_text(const struct usage *u, const struct agg *a)
{
    struct gkm_buf b;
    char num[32], name[24];
    int used[GKM_STATS_ERRORS] = {0};
    gkm_out_open(&b);
    gkm_out_str(&b, gkm_text_count(agg_errors(a), num));
    size_t shown = 0;
    for (; shown < TOP_CLASSES; shown++) {
        size_t best = GKM_STATS_ERRORS;
        for (size_t i = 0; i < GKM_STATS_ERRORS; i++)
            if (!used[i] && a->errors[i] > 0 &&
                (best == GKM_STATS_ERRORS || a->errors[i] > a->errors[best]))
                best = i;
        if (best == GKM_STATS_ERRORS)
            break;
        used[best] = 1;
        gkm_out_str(&b, shown == 0 ? " (" : ", ");
        gkm_out_fmt(&b, "%s %s", class_name(u, best, name),
                gkm_text_count(a->errors[best], num));
    }
    if (shown > 0) {
        for (size_t i = 0; i < GKM_STATS_ERRORS; i++)
            if (!used[i] && a->errors[i] > 0) {
                gkm_out_str(&b, ", ...");
                break;
            }
        gkm_out_str(&b, ")");
    }
    return gkm_buf_take(&b, NULL);
}

/* "available", "benched until 08:00:00Z (quota_day)", "disabled
 * (key_invalid)" (heap). */
static char *state_text(const struct usage *u, const struct state_info *s)
{
    char t[GKM_TIME_LEN];
    if (s->status == ST_DISABLED)
        return gkm_xasprintf("disabled (%s)", gkm_bench_reason_name(s->reason));
    if (s->status == ST_BENCHED)
        return gkm_xasprintf("benched until %s (%s)",
                             gkm_text_until(s->until, u->now, t),
                             gkm_bench_reason_name(s->reason));
    return gkm_xstrdup("available");
}

static void text_row(struct gkm_table *t, const struct usage *u,
                     const char *key, const char *project, const char *model,
                     const struct agg *a, const char *state)
{
    char req[32], p[32], o[32], th[32];
    char *errs = errors_text(u, a);
    gkm_table_add(t, key, project, model, gkm_text_count(a->requests, req),
              gkm_text_count(a->prompt, p), gkm_text_count(a->output, o),
              gkm_text_count(a->thinking, th), errs, state);
    free(errs);
}

static json_t *json_errors(const struct usage *u, const struct agg *a)
{
    char name[24];
    json_t *o = gkm_jmust(json_object());
    json_t *by = gkm_jmust(json_object());
    gkm_jset(o, "total", gkm_jcount(agg_errors(a)));
    for (size_t i = 0; i < GKM_STATS_ERRORS; i++) {
        if (a->errors[i] == 0)
            continue;
        char *safe = gkm_text_safe(class_name(u, i, name));
        gkm_jset(by, safe, gkm_jcount(a->errors[i]));
        free(safe);
    }
    gkm_jset(o, "by_class", by);
    return o;
}

static void json_counters(json_t *o, const struct usage *u,
                          const struct agg *a)
{
    gkm_jset(o, "requests", gkm_jcount(a->requests));
    gkm_jset(o, "prompt_tokens", gkm_jcount(a->prompt));
    gkm_jset(o, "output_tokens", gkm_jcount(a->output));
    gkm_jset(o, "thinking_tokens", gkm_jcount(a->thinking));
    gkm_jset(o, "errors", json_errors(u, a));
}

static json_t *json_state(const struct state_info *s)
{
    char t[GKM_TIME_LEN];
    json_t *o = gkm_jmust(json_object());
    gkm_jset(o, "status", json_string(status_names[s->status]));
    if (s->status == ST_AVAILABLE) {
        gkm_jset(o, "reason", json_null());
    } else {
        gkm_jset(o, "reason", json_string(gkm_bench_reason_name(s->reason)));
    }
    if (s->status == ST_BENCHED) {
        gkm_jset(o, "until_ms", json_integer((json_int_t)s->until));
        gkm_jset(o, "until", json_string(gkm_text_iso(s->until, t)));
    } else {
        gkm_jset(o, "until_ms", json_null());
        gkm_jset(o, "until", json_null());
    }
    return o;
}

static json_t *json_key(const struct usage *u, size_t idx,
                        const struct agg *key)
{
    json_t *o = gkm_jmust(json_object());
    json_t *models = gkm_jmust(json_array());
    char *project = gkm_text_safe(gkm_pool_project(u->pool, idx));
    gkm_jset(o, "index", json_integer((json_int_t)idx));
    gkm_jset(o, "key", json_string(gkm_pool_mask(u->pool, idx)));
    gkm_jset(o, "project", json_string(project));
    free(project);
    json_counters(o, u, key);
    gkm_jset(o, "state", json_state(&u->wide[idx]));
    for (size_t i = 0; i < u->nrows; i++) {
        json_t *m = gkm_jmust(json_object());
        char *model = gkm_text_safe(u->rows[i].model);
        gkm_jset(m, "model", json_string(model));
        free(model);
        json_counters(m, u, &u->rows[i].c);
        gkm_jset(m, "state", json_state(&u->rows[i].state));
        if (json_array_append_new(models, m) != 0)
            abort();
    }
    gkm_jset(o, "models", models);
    return o;
}

char *gkm_report_usage(const struct gkm_pool *pool, const char *day,
                       int64_t now_ms, const char *const *err_names,
                       size_t n_err_names, int json)
{
    size_t n = gkm_pool_size(pool);
    struct usage u = {0};
    struct gkm_table t;
    struct gkm_buf out;
    json_t *keys = NULL;
    size_t next_bench = 0;
    char when[GKM_TIME_LEN];

    u.pool = pool;
    u.now = now_ms;
    u.err_names = err_names;
    u.n_err_names = err_names != NULL ? n_err_names : 0;
    u.wide = gkm_xcalloc(n > 0 ? n : 1, sizeof(*u.wide));
    gkm_pool_foreach_bench(pool, now_ms, on_bench, &u);
    gkm_table_init(&t, "LLLRRRRLL");
    gkm_table_add(&t, "KEY", "PROJECT", "MODEL", "REQUESTS", "PROMPT", "OUTPUT",
              "THINKING", "ERRORS", "STATE");
    if (json)
        keys = gkm_jmust(json_array());

    for (size_t k = 0; k < n; k++) {
        struct agg key = collect_key(&u, k, &next_bench);
        agg_add(&u.total, &key);
        u.count[u.wide[k].status]++;
        if (json) {
            if (json_array_append_new(keys, json_key(&u, k, &key)) != 0)
                abort();
            continue;
        }
        char *st = state_text(&u, &u.wide[k]);
        text_row(&t, &u, gkm_pool_mask(pool, k), gkm_pool_project(pool, k),
                 "all models", &key, st);
        free(st);
        for (size_t i = 0; i < u.nrows; i++) {
            const struct mrow *row = &u.rows[i];
            st = state_text(&u, &row->state);
            text_row(&t, &u, "", "",
                     row->model[0] != '\0' ? row->model : "(other)", &row->c,
                     st);
            free(st);
        }
    }

    char *result;
    if (json) {
        json_t *root = gkm_jmust(json_object());
        json_t *totals = gkm_jmust(json_object());
        char *safe_day = day != NULL ? gkm_text_safe(day) : NULL;
        gkm_jset(root, "day", safe_day != NULL ? json_string(safe_day)
                                           : json_null());
        free(safe_day);
        gkm_jset(root, "now_ms", json_integer((json_int_t)now_ms));
        gkm_jset(root, "now", json_string(gkm_text_iso(now_ms, when)));
        gkm_jset(root, "keys", keys);
        gkm_jset(totals, "keys", gkm_jcount(n));
        for (size_t s = 0; s < GKM_ARRAY_LEN(status_names); s++)
            gkm_jset(totals, status_names[s], gkm_jcount(u.count[s]));
        json_counters(totals, &u, &u.total);
        gkm_jset(root, "totals", totals);
        result = gkm_jtake(root);
    } else {
        char *st = gkm_xasprintf("%zu %s, %zu %s, %zu %s", u.count[0],
                                 status_names[0], u.count[1], status_names[1],
                                 u.count[2], status_names[2]);
        text_row(&t, &u, "TOTAL", "", "", &u.total, st);
        free(st);
        gkm_out_open(&out);
        char *safe_day = day != NULL ? gkm_text_safe(day) : NULL;
        if (safe_day != NULL)
            gkm_out_fmt(&out, "Usage for quota day %s (as of %s)\n\n", safe_day,
                    gkm_text_iso(now_ms, when));
        else
            gkm_out_fmt(&out, "Usage as of %s\n\n", gkm_text_iso(now_ms, when));
        free(safe_day);
        gkm_table_render(&t, &out);
        result = gkm_buf_take(&out, NULL);
    }
    gkm_table_free(&t);
    free(u.rows);
    free(u.benched);
    free(u.wide);
    return result;
}

/* ---- key check ----------------------------------------------------------- */

static const char *const known_verdicts[] = {
    "valid", "invalid", "suspended", "leaked", "denied", "quota", "error"};

struct verdict_count {
    char *name; /* sanitised, owned */
    size_t n;
};

/* Count verdict v in vc (*nvc entries, room for one more). */
static void count_verdict(struct verdict_count *vc, size_t *nvc,
                          const char *v)
{
    char *safe = gkm_text_safe(v != NULL ? v : "error");
    for (size_t i = 0; i < *nvc; i++) {
        if (strcmp(vc[i].name, safe) == 0) {
            vc[i].n++;
            free(safe);
            return;
        }
    }
    vc[*nvc].name = safe;
    vc[*nvc].n = 1;
    ++*nvc;
}

/* The redacted, sanitised detail of a result (heap), or NULL if none. */
static char *probe_detail(const struct gkm_pool *pool,
                          const struct gkm_probe_result *r)
{
    if (r->detail == NULL)
        return NULL;
    const char *secret =
        r->idx < gkm_pool_size(pool) ? gkm_pool_secret(pool, r->idx) : NULL;
    size_t len;
    char *red = gkm_redact_all(secret, r->detail, strlen(r->detail), &len);
    char *safe = gkm_text_safe(red);
    free(red);
    return safe;
}

char *gkm_report_probes(const struct gkm_pool *pool,
                        const struct gkm_probe_result *r, size_t n, int json)
{
    size_t nknown = GKM_ARRAY_LEN(known_verdicts);
    struct verdict_count *vc = gkm_xcalloc(nknown + n, sizeof(*vc));
    size_t nvc = nknown;
    struct gkm_table t;
    json_t *keys = json ? gkm_jmust(json_array()) : NULL;
    char *result;

    for (size_t i = 0; i < nknown; i++)
        vc[i].name = gkm_xstrdup(known_verdicts[i]);
    gkm_table_init(&t, "LLLRRL");
    gkm_table_add(&t, "KEY", "PROJECT", "VERDICT", "HTTP", "LATENCY", "DETAIL");

    for (size_t i = 0; i < n; i++) {
        const struct gkm_probe_result *p = &r[i];
        int known = p->idx < gkm_pool_size(pool);
        const char *verdict = p->verdict != NULL ? p->verdict : "error";
        char *detail = probe_detail(pool, p);
        count_verdict(vc, &nvc, verdict);
        if (json) {
            json_t *o = gkm_jmust(json_object());
            char *v = gkm_text_safe(verdict);
            char *project =
                known ? gkm_text_safe(gkm_pool_project(pool, p->idx)) : NULL;
            gkm_jset(o, "index", json_integer((json_int_t)p->idx));
            gkm_jset(o, "key", known ? json_string(gkm_pool_mask(pool, p->idx))
                                 : json_null());
            gkm_jset(o, "project",
                     project ? json_string(project) : json_null());
            gkm_jset(o, "verdict", json_string(v));
            gkm_jset(o, "http_status", p->http_status > 0
                                       ? json_integer(p->http_status)
                                       : json_null());
            gkm_jset(o, "latency_ms", p->latency_ms >= 0
                                      ? json_integer(p->latency_ms)
                                      : json_null());
            gkm_jset(o, "detail", detail ? json_string(detail) : json_null());
            if (json_array_append_new(keys, o) != 0)
                abort();
            free(v);
            free(project);
        } else {
            char http[24] = "-", lat[48] = "-", num[32];
            if (p->http_status > 0)
                snprintf(http, sizeof(http), "%ld", p->http_status);
            if (p->latency_ms >= 0)
                snprintf(lat, sizeof(lat), "%s ms",
                         gkm_text_count((uint64_t)p->latency_ms, num));
            if (detail != NULL)
                gkm_text_cut(detail, DETAIL_MAX);
            gkm_table_add(&t, known ? gkm_pool_mask(pool, p->idx) : "?",
                      known ? gkm_pool_project(pool, p->idx) : "?", verdict,
                      http, lat, detail);
        }
        free(detail);
    }

    if (json) {
        json_t *root = gkm_jmust(json_object());
        json_t *summary = gkm_jmust(json_object());
        gkm_jset(root, "keys", keys);
        gkm_jset(summary, "total", gkm_jcount(n));
        for (size_t i = 0; i < nvc; i++)
            if (strcmp(vc[i].name, "total") != 0)
                gkm_jset(summary, vc[i].name, gkm_jcount(vc[i].n));
        gkm_jset(root, "summary", summary);
        result = gkm_jtake(root);
    } else {
        struct gkm_buf out;
        const char *sep = ": ";
        gkm_out_open(&out);
        gkm_table_render(&t, &out);
        gkm_out_fmt(&out, "\n%zu key%s", n, n == 1 ? "" : "s");
        for (size_t i = 0; i < nvc; i++) {
            if (vc[i].n == 0)
                continue;
            gkm_out_fmt(&out, "%s%zu %s", sep, vc[i].n, vc[i].name);
            sep = ", ";
        }
        gkm_out_str(&out, "\n");
        result = gkm_buf_take(&out, NULL);
    }
    for (size_t i = 0; i < nvc; i++)
        free(vc[i].name);
    free(vc);
    gkm_table_free(&t);
    return result;
}
