/* Fake Gemini upstream: request records, configuration and the /_fake/
 * control API. */
#include "fake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/keyvalq_struct.h>

/* ================================================================ records */

const char *method_str(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_TRACE: return "TRACE";
    case EVHTTP_REQ_CONNECT: return "CONNECT";
    case EVHTTP_REQ_PATCH: return "PATCH";
    default: return "UNKNOWN";
    }
}

static const char *auth_str(int a)
{
    switch (a) {
    case AUTH_HEADER: return "header";
    case AUTH_QUERY: return "query";
    case AUTH_BEARER: return "bearer";
    case AUTH_MULTIPLE: return "multiple";
    default: return "none";
    }
}

static void rec_free(struct rec *r)
{
    if (!r)
        return;
    if (r->job)
        job_forget_record(r->job);
    json_decref(r->obj);
    free(r);
}

static void rec_evict_oldest(struct fake *F)
{
    struct rec *r = F->recs[F->rec_head];
    F->recs[F->rec_head] = NULL;
    F->rec_head = (F->rec_head + 1) % F->rec_cap;
    F->rec_count--;
    F->rec_bytes -= r->bytes;
    rec_free(r);
}

void recs_clear(struct fake *F)
{
    while (F->rec_count)
        rec_evict_oldest(F);
    F->rec_head = 0;
}

void rec_finish(struct rec *r, int status, int completed, size_t bytes)
{
    json_object_set_new(r->obj, "status", json_integer(status));
    json_object_set_new(r->obj, "completed", json_boolean(completed));
    json_object_set_new(r->obj, "bytes_sent", json_integer((json_int_t)bytes));
}

struct rec *rec_new(struct rctx *rc)
{
    struct fake *F = rc->F;
    json_t *o = json_object();
    struct rec *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    r->id = F->next_rec_id++;
    json_object_set_new(o, "id", json_integer((json_int_t)r->id));
    json_object_set_new(o, "method", json_string(method_str(rc->method)));
    json_t *p = json_stringn(rc->path, strlen(rc->path));
    json_object_set_new(o, "path", p ? p : json_string("<invalid utf-8>"));
    json_t *rp = json_string(rc->raw_path ? rc->raw_path : "");
    json_object_set_new(o, "raw_path", rp ? rp : json_string("<invalid utf-8>"));
    json_t *q = json_string(rc->query);
    json_object_set_new(o, "query", q ? q : json_string(""));
    json_t *h = json_object();
    struct evkeyvalq *ih = evhttp_request_get_input_headers(rc->req);
    for (struct evkeyval *kv = ih->tqh_first; kv; kv = kv->next.tqe_next) {
        char name[256];
        size_t i;
        for (i = 0; kv->key[i] && i + 1 < sizeof name; i++)
            name[i] = (char)((kv->key[i] >= 'A' && kv->key[i] <= 'Z')
                                 ? kv->key[i] + 32
                                 : kv->key[i]);
        name[i] = '\0';
        json_t *old = json_object_get(h, name);
        json_t *val;
        if (old) {
            char *joined =
                xasprintf("%s, %s", json_string_value(old), kv->value);
            val = json_string(joined);
            free(joined);
        } else {
            val = json_string(kv->value);
        }
        if (val)
            json_object_set_new(h, name, val);
    }
    json_object_set_new(o, "headers", h);
    json_t *b = json_stringn((const char *)rc->body, rc->body_len);
    if (b) {
        json_object_set_new(o, "body", b);
    } else {
        char *enc = b64_encode(rc->body, rc->body_len, 0, 1);
        json_object_set_new(o, "body_b64", json_string(enc));
        free(enc);
    }
    json_object_set_new(o, "body_size", json_integer((json_int_t)rc->body_len));
    json_t *kj = rc->key ? json_string(rc->key) : NULL;
    json_object_set_new(o, "key", kj ? kj : json_null());
    json_object_set_new(o, "auth", json_string(auth_str(rc->auth)));
    json_t *m = rc->model ? json_string(rc->model) : NULL;
    json_object_set_new(o, "model", m ? m : json_null());
    json_object_set_new(o, "status", json_integer(0));
    json_object_set_new(o, "completed", json_false());
    json_object_set_new(o, "bytes_sent", json_integer(0));
    r->obj = o;
    r->bytes = 1024 + rc->body_len * 2 + strlen(rc->path) + strlen(rc->query);

    if (F->rec_count == F->rec_cap)
        rec_evict_oldest(F);
    while (F->rec_count > 0 && F->rec_bytes + r->bytes > F->rec_bytes_cap)
        rec_evict_oldest(F);
    F->recs[(F->rec_head + F->rec_count) % F->rec_cap] = r;
    F->rec_count++;
    F->rec_bytes += r->bytes;

    char idbuf[32];
    snprintf(idbuf, sizeof idbuf, "%llu", (unsigned long long)r->id);
    add_header(rc, "x-fake-request-id", idbuf);
    return r;
}

/* ================================================================ config */

static const char *const RULE_KIND_NAMES[RK_COUNT] = {
    [RK_QUOTA_DAY] = "quota_day",
    [RK_QUOTA_MINUTE] = "quota_minute",
    [RK_QUOTA_ZERO] = "quota_zero",
    [RK_QUOTA_BARE] = "quota_bare",
    [RK_INVALID_KEY] = "invalid_key",
    [RK_SUSPENDED] = "suspended",
    [RK_LEAKED] = "leaked",
    [RK_BLOCKED] = "blocked",
    [RK_SERVER_ERROR] = "server_error",
    [RK_OVERLOADED] = "overloaded",
    [RK_DEADLINE] = "deadline",
    [RK_BAD_REQUEST] = "bad_request",
    [RK_NOT_FOUND] = "not_found",
    [RK_STATUS] = "status",
    [RK_DELAY] = "delay",
    [RK_STREAM_ERROR_EVENT] = "stream_error_event",
    [RK_STREAM_ERROR_TAIL] = "stream_error_tail",
    [RK_TRUNCATE] = "truncate",
    [RK_BLOCKED_PROMPT] = "blocked_prompt",
    [RK_MAX_TOKENS_EMPTY] = "max_tokens_empty",
    [RK_BIG] = "big",
    [RK_SLOW_STREAM] = "slow_stream",
    [RK_NORMAL] = "normal",
};

static const char *const KEY_STATE_NAMES[] = {
    [KS_OK] = "ok",
    [KS_INVALID] = "invalid",
    [KS_SUSPENDED] = "suspended",
    [KS_LEAKED] = "leaked",
    [KS_BLOCKED] = "blocked",
};

static int key_state_parse(const char *s)
{
    for (size_t i = 0; i < sizeof KEY_STATE_NAMES / sizeof *KEY_STATE_NAMES;
         i++)
        if (s && !strcmp(s, KEY_STATE_NAMES[i]))
            return (int)i;
    return -1;
}

void keyinfo_free(void *p)
{
    struct keyinfo *k = p;
    if (!k)
        return;
    free(k->project);
    free(k);
}

void counter_free(void *p)
{
    free(p);
}

void rule_clear(struct rule *r)
{
    free(r->key);
    free(r->model);
    free(r->path_contains);
    json_decref(r->params);
}

void rules_free(struct rule *rules, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rule_clear(&rules[i]);
    free(rules);
}

static char *opt_str(json_t *o, const char *k, char **err)
{
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        *err = xasprintf("rule field \"%s\" must be a string", k);
        return NULL;
    }
    return xstrdup(json_string_value(v));
}

/* Parses one rule; returns an error message (malloc'd) or NULL. */
static char *rule_parse(json_t *o, struct rule *r)
{
    char *err = NULL;
    memset(r, 0, sizeof *r);
    if (!json_is_object(o))
        return xstrdup("each rule must be an object");
    const char *kind = json_string_value(json_object_get(o, "respond"));
    if (!kind)
        return xstrdup("rule needs \"respond\"");
    r->kind = -1;
    for (int i = 0; i < RK_COUNT; i++)
        if (!strcmp(kind, RULE_KIND_NAMES[i]))
            r->kind = i;
    if (r->kind < 0)
        return xasprintf("unknown rule kind \"%s\"", kind);
    r->key = opt_str(o, "key", &err);
    if (!err)
        r->model = opt_str(o, "model", &err);
    if (!err)
        r->path_contains = opt_str(o, "path_contains", &err);
    json_t *t = json_object_get(o, "times");
    r->times = -1;
    if (t && !json_is_null(t)) {
        if (!json_is_integer(t) || json_integer_value(t) < 0)
            err =
                err ? err : xstrdup("\"times\" must be a non-negative integer");
        else
            r->times = (long)json_integer_value(t);
    }
    json_t *st = json_object_get(o, "status");
    if (!err && r->kind == RK_STATUS && !json_is_integer(st))
        err = xstrdup("respond \"status\" needs an integer \"status\"");
    if (err) {
        rule_clear(r);
        memset(r, 0, sizeof *r);
        return err;
    }
    r->params = json_incref(o);
    return NULL;
}

static char *rules_parse(json_t *arr, struct rule **out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    if (!arr || json_is_null(arr))
        return NULL;
    if (!json_is_array(arr))
        return xstrdup("\"rules\" must be an array");
    size_t n = json_array_size(arr), i;
    struct rule *rules = calloc(n ? n : 1, sizeof *rules);
    if (!rules)
        abort();
    for (i = 0; i < n; i++) {
        char *e = rule_parse(json_array_get(arr, i), &rules[i]);
        if (e) {
            rules_free(rules, i);
            char *m = xasprintf("rules[%zu]: %s", i, e);
            free(e);
            return m;
        }
    }
    *out = rules;
    *nout = n;
    return NULL;
}

static void rules_append(struct fake *F, struct rule *add, size_t n)
{
    if (F->nrules + n > F->caprules) {
        size_t cap = (F->nrules + n) * 2 + 4;
        struct rule *r = realloc(F->rules, cap * sizeof *r);
        if (!r)
            abort();
        F->rules = r;
        F->caprules = cap;
    }
    memcpy(F->rules + F->nrules, add, n * sizeof *add);
    F->nrules += n;
}

void config_defaults(struct fake *F)
{
    hm_clear(&F->keys);
    F->default_state = KS_OK;
    rules_free(F->rules, F->nrules);
    F->rules = NULL;
    F->nrules = F->caprules = 0;
    F->stream_chunks = 3;
    F->first_delay_ms = 0;
    F->chunk_delay_ms = 0;
    json_decref(F->limits);
    F->limits = NULL;
    for (int i = 0; i < VC_COUNT; i++)
        F->vflags[i] = VCHECKS[i].default_on;
    F->array_errors = 0;
    json_decref(F->config_raw);
    F->config_raw = json_object();
}

/* Applies a full configuration; returns an error message or NULL. */
static char *config_apply(struct fake *F, json_t *cfg)
{
    static const char *const known[] = {
        "keys",   "default_key_state", "rules",       "stream",
        "limits", "validation",        "array_errors"};
    if (!json_is_object(cfg))
        return xstrdup("config must be a JSON object");
    const char *k;
    json_t *v;
    json_object_foreach(cfg, k, v)
    {
        size_t i, ok = 0;
        for (i = 0; i < sizeof known / sizeof *known; i++)
            if (!strcmp(k, known[i]))
                ok = 1;
        if (!ok)
            return xasprintf("unknown config field \"%s\"", k);
    }

    /* validate everything before touching F */
    json_t *keys = json_object_get(cfg, "keys");
    if (keys && !json_is_object(keys))
        return xstrdup("\"keys\" must be an object");
    json_object_foreach(keys, k, v)
    {
        if (!json_is_object(v))
            return xasprintf("keys[\"%s\"] must be an object", k);
        const char *st = json_string_value(json_object_get(v, "state"));
        if (st && key_state_parse(st) < 0)
            return xasprintf("keys[\"%s\"]: unknown state \"%s\"", k, st);
        json_t *pj = json_object_get(v, "project");
        if (pj && !json_is_string(pj))
            return xasprintf("keys[\"%s\"]: \"project\" must be a string", k);
    }
    int dstate = KS_OK;
    json_t *ds = json_object_get(cfg, "default_key_state");
    if (ds) {
        dstate = key_state_parse(json_string_value(ds));
        if (dstate < 0)
            return xstrdup("bad \"default_key_state\"");
    }
    json_t *stream = json_object_get(cfg, "stream");
    if (stream && !json_is_object(stream))
        return xstrdup("\"stream\" must be an object");
    json_t *limits = json_object_get(cfg, "limits");
    if (limits && !json_is_object(limits))
        return xstrdup("\"limits\" must be an object");
    json_t *val = json_object_get(cfg, "validation");
    if (val && !json_is_object(val))
        return xstrdup("\"validation\" must be an object");
    json_object_foreach(val, k, v)
    {
        int found = 0;
        for (int i = 0; i < VC_COUNT; i++)
            if (!strcmp(k, VCHECKS[i].name))
                found = 1;
        if (!found || !json_is_boolean(v))
            return xasprintf("validation: unknown check or non-boolean \"%s\"",
                             k);
    }
    struct rule *rules;
    size_t nrules;
    char *err = rules_parse(json_object_get(cfg, "rules"), &rules, &nrules);
    if (err)
        return err;

    config_defaults(F);
    json_decref(F->config_raw);
    F->config_raw = json_incref(cfg);
    json_object_foreach(keys, k, v)
    {
        struct keyinfo *ki = calloc(1, sizeof *ki);
        if (!ki)
            abort();
        const char *st = json_string_value(json_object_get(v, "state"));
        ki->state = st ? key_state_parse(st) : KS_OK;
        const char *pj = json_string_value(json_object_get(v, "project"));
        ki->project = xstrdup(pj ? pj : k);
        hm_put(&F->keys, k, ki);
    }
    F->default_state = dstate;
    if (nrules)
        rules_append(F, rules, nrules);
    free(rules);
    if (stream) {
        F->stream_chunks = (int)jlong(stream, "chunks", 3);
        if (F->stream_chunks < 1)
            F->stream_chunks = 1;
        F->first_delay_ms = (int)jlong(stream, "first_delay_ms", 0);
        F->chunk_delay_ms = (int)jlong(stream, "chunk_delay_ms", 0);
    }
    if (limits)
        F->limits = json_incref(limits);
    json_object_foreach(val, k, v)
    {
        for (int i = 0; i < VC_COUNT; i++)
            if (!strcmp(k, VCHECKS[i].name))
                F->vflags[i] = json_is_true(v);
    }
    F->array_errors = json_is_true(json_object_get(cfg, "array_errors"));
    return NULL;
}

/* ================================================================ control
 * API */

static void ctl_reply(struct rctx *rc, int status, json_t *body)
{
    size_t len;
    char *s = json_to_str(body, 0, &len);
    json_decref(body);
    rc->delay_ms = 0;
    reply_data(rc, status, "application/json", s, len);
}

static void ctl_error(struct rctx *rc, int status, char *msg /* freed */)
{
    ctl_reply(rc, status, json_pack("{s:b,s:s}", "ok", 0, "error", msg));
    free(msg);
}

static void ctl_requests(struct rctx *rc)
{
    struct fake *F = rc->F;
    char *since_s = query_get(rc->query, "since");
    uint64_t since = since_s ? strtoull(since_s, NULL, 10) : 0;
    free(since_s);
    json_t *arr = json_array();
    for (size_t i = 0; i < F->rec_count; i++) {
        struct rec *r = F->recs[(F->rec_head + i) % F->rec_cap];
        if (r->id > since)
            json_array_append(arr, r->obj);
    }
    ctl_reply(rc, 200, json_pack("{s:o}", "requests", arr));
}

static void full_reset(struct fake *F)
{
    config_defaults(F);
    hm_clear(&F->counters);
    fake_state_clear(F);
    recs_clear(F);
    F->next_rec_id = 1;
}

void handle_control(struct rctx *rc)
{
    struct fake *F = rc->F;
    const char *p = rc->path + strlen("/_fake/");
    int post = rc->method == EVHTTP_REQ_POST || rc->method == EVHTTP_REQ_PUT;
    if (!strcmp(p, "health")) {
        ctl_reply(rc, 200, json_pack("{s:b}", "ok", 1));
    } else if (!strcmp(p, "stats")) {
        ctl_reply(rc, 200,
                  json_pack("{s:b,s:I,s:I,s:I,s:I}", "ok", 1, "served",
                            (json_int_t)F->served, "active_jobs",
                            (json_int_t)F->njobs, "records",
                            (json_int_t)F->rec_count, "rules",
                            (json_int_t)F->nrules));
    } else if (!strcmp(p, "config") && post) {
        json_error_t je;
        json_t *cfg = json_loadb((const char *)rc->body, rc->body_len, 0, &je);
        if (!cfg) {
            ctl_error(rc, 400, xasprintf("bad JSON: %s", je.text));
            return;
        }
        char *err = config_apply(F, cfg);
        json_decref(cfg);
        if (err)
            ctl_error(rc, 400, err);
        else
            ctl_reply(rc, 200, json_pack("{s:b}", "ok", 1));
    } else if (!strcmp(p, "config") && rc->method == EVHTTP_REQ_GET) {
        ctl_reply(rc, 200, json_incref(F->config_raw));
    } else if (!strcmp(p, "rules") && post) {
        json_error_t je;
        json_t *body = json_loadb((const char *)rc->body, rc->body_len, 0, &je);
        json_t *arr =
            json_is_array(body) ? body : json_object_get(body, "rules");
        struct rule *rules;
        size_t n;
        char *err = body ? rules_parse(arr, &rules, &n)
                         : xasprintf("bad JSON: %s", je.text);
        json_decref(body);
        if (err) {
            ctl_error(rc, 400, err);
            return;
        }
        if (n)
            rules_append(F, rules, n);
        free(rules);
        ctl_reply(
            rc, 200,
            json_pack("{s:b,s:I}", "ok", 1, "rules", (json_int_t)F->nrules));
    } else if (!strcmp(p, "rules") && rc->method == EVHTTP_REQ_GET) {
        json_t *arr = json_array();
        for (size_t i = 0; i < F->nrules; i++) {
            json_t *r = json_deep_copy(F->rules[i].params);
            json_object_set_new(r, "times",
                                F->rules[i].times < 0
                                    ? json_null()
                                    : json_integer(F->rules[i].times));
            json_array_append_new(arr, r);
        }
        ctl_reply(rc, 200, json_pack("{s:o}", "rules", arr));
    } else if (!strcmp(p, "reset") && post) {
        full_reset(F);
        ctl_reply(rc, 200, json_pack("{s:b}", "ok", 1));
    } else if (!strcmp(p, "requests") && rc->method == EVHTTP_REQ_GET) {
        ctl_requests(rc);
    } else if (!strcmp(p, "requests") && rc->method == EVHTTP_REQ_DELETE) {
        recs_clear(F);
        ctl_reply(rc, 200, json_pack("{s:b}", "ok", 1));
    } else {
        ctl_error(rc, 404,
                  xasprintf("no control endpoint %s %s", method_str(rc->method),
                            rc->path));
    }
}
