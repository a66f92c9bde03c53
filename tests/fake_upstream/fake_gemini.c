/* Fake Gemini upstream for tests and benchmarks.
 *
 *   fake-gemini --listen 127.0.0.1:PORT [--no-record] [--quiet] [--verbose]
 *
 * Prints "LISTENING 127.0.0.1:<port>" once bound. Control API under
 * /_fake/ (config, rules, reset, requests, health); the Gemini surface is
 * described in gemini-wire.md §1 and Appendix A. This file holds the
 * server, request parsing, auth, rules, limits and the response engine;
 * see fake.h for the layout. */
#include "fake.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/keyvalq_struct.h>

#define MAX_BODY (200L * 1024 * 1024)
#define REC_CAP_DEFAULT 100000
#define REC_BYTES_CAP (1024UL * 1024 * 1024)

/* ================================================================ jobs:
 * asynchronous responses (delays, streams, big bodies, truncation).
 *
 * Ownership: a job owns nothing of libevent's; the request belongs to
 * libevent until the job hands it back. Teardown paths, each exactly once:
 *   finish  - all pieces flushed: clear closecb, send_reply_end (or free the
 *             connection for truncation), free the job.
 *   closecb - libevent is freeing the connection (client EOF/error while we
 *             still own the request, or server shutdown). If the request was
 *             detached (req->evcon == NULL) we must free it ourselves;
 *             otherwise libevent frees it right after the callback.
 *   watch   - our own EOF detector on the socket (libevent does not read
 *             while the user owns the request): clear closecb and free the
 *             connection, which frees the attached request. */

struct job {
    struct fake *F;
    struct job *prev, *next;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    struct event *timer;
    struct event *watch;
    struct evbuffer *buf;
    struct rec *rec;
    struct job_spec spec;
    int started;
    size_t bytes_sent;
};

static void job_unlink_free(struct job *j)
{
    struct fake *F = j->F;
    if (j->prev)
        j->prev->next = j->next;
    else
        F->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    F->njobs--;
    if (j->timer)
        event_free(j->timer);
    if (j->watch)
        event_free(j->watch);
    if (j->buf)
        evbuffer_free(j->buf);
    if (j->spec.prod.free)
        j->spec.prod.free(j->spec.prod.st);
    if (j->rec)
        j->rec->job = NULL;
    free(j);
}

void job_forget_record(struct job *j)
{
    j->rec = NULL;
}

static void job_record(struct job *j, int completed)
{
    if (j->rec)
        rec_finish(j->rec, j->spec.status, completed, j->bytes_sent);
}

static void job_close_cb(struct evhttp_connection *evcon, void *arg)
{
    struct job *j = arg;
    struct evhttp_request *req = j->req;
    (void)evcon;
    job_record(j, 0);
    int detached = evhttp_request_get_connection(req) == NULL;
    job_unlink_free(j);
    if (detached)
        evhttp_request_free(req);
}

static void job_abort(struct job *j)
{
    struct evhttp_connection *evcon = j->evcon;
    struct evhttp_request *req = j->req;
    job_record(j, 0);
    evhttp_connection_set_closecb(evcon, NULL, NULL);
    job_unlink_free(j);
    if (evhttp_request_get_connection(req))
        evhttp_connection_free(evcon); /* frees the attached request too */
    else
        evhttp_request_free(req);
}

static void job_finish(struct job *j)
{
    struct evhttp_connection *evcon = j->evcon;
    struct evhttp_request *req = j->req;
    int truncate = j->spec.truncate;
    job_record(j, 1);
    evhttp_connection_set_closecb(evcon, NULL, NULL);
    job_unlink_free(j);
    if (truncate)
        evhttp_connection_free(evcon);
    else
        evhttp_send_reply_end(req);
}

/* Fills j->buf with the next non-empty piece; 0 when the body is done. */
static int job_produce(struct job *j)
{
    while (evbuffer_get_length(j->buf) == 0) {
        if (!j->spec.prod.next || !j->spec.prod.next(j->spec.prod.st, j->buf))
            return 0;
    }
    return 1;
}

static void job_flushed(struct evhttp_connection *evcon, void *arg);

static void job_send(struct job *j)
{
    j->bytes_sent += evbuffer_get_length(j->buf);
    evhttp_send_reply_chunk_with_cb(j->req, j->buf, job_flushed, j);
}

static void job_arm(struct job *j, long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(j->timer, &tv);
}

static const char *reason_phrase(int code)
{
    switch (code) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return NULL;
    }
}

static int status_has_body(int status)
{
    return !(status < 200 || status == 204 || status == 304);
}

static void job_begin(struct job *j)
{
    j->started = 1;
    if (!status_has_body(j->spec.status) ||
        evhttp_request_get_command(j->req) == EVHTTP_REQ_HEAD) {
        struct evhttp_request *req = j->req;
        int st = j->spec.status;
        job_record(j, 1);
        evhttp_connection_set_closecb(j->evcon, NULL, NULL);
        job_unlink_free(j);
        evhttp_send_reply(req, st, reason_phrase(st), NULL);
        return;
    }
    struct evkeyvalq *oh = evhttp_request_get_output_headers(j->req);
    if (!j->spec.chunked) {
        char cl[32];
        snprintf(cl, sizeof cl, "%ld",
                 j->spec.content_length >= 0 ? j->spec.content_length : 0L);
        evhttp_remove_header(oh, "Content-Length");
        evhttp_add_header(oh, "Content-Length", cl);
    }
    evhttp_send_reply_start(j->req, j->spec.status,
                            reason_phrase(j->spec.status));
    if (!job_produce(j)) {
        job_finish(j);
        return;
    }
    job_send(j);
}

static void job_flushed(struct evhttp_connection *evcon, void *arg)
{
    struct job *j = arg;
    (void)evcon;
    if (!job_produce(j)) {
        job_finish(j);
        return;
    }
    if (j->spec.chunk_delay_ms > 0) {
        job_arm(j, j->spec.chunk_delay_ms);
        return;
    }
    job_send(j);
}

static void job_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct job *j = arg;
    (void)fd;
    (void)what;
    if (!j->started)
        job_begin(j);
    else
        job_send(j);
}

static void job_watch_cb(evutil_socket_t fd, short what, void *arg)
{
    struct job *j = arg;
    char c;
    (void)what;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 ||
        (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        job_abort(j);
        return;
    }
    if (n < 0)
        event_add(j->watch, NULL);
    /* n > 0: the client sent more data (pipelining); we cannot tell EOF
     * apart any more, so rely on write errors from here on. */
}

static int prod_pieces_next(void *st, struct evbuffer *out);
static void prod_pieces_free(void *st);

void start_job(struct rctx *rc, struct job_spec *spec)
{
    struct fake *F = rc->F;
    struct evhttp_connection *evcon = evhttp_request_get_connection(rc->req);
    rc->responded = 1;
    if (!evcon) { /* cannot happen for a fresh request; be safe */
        if (spec->prod.free)
            spec->prod.free(spec->prod.st);
        evhttp_request_free(rc->req);
        return;
    }
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        abort();
    j->F = F;
    j->req = rc->req;
    j->evcon = evcon;
    j->spec = *spec;
    j->buf = evbuffer_new();
    j->timer = evtimer_new(F->base, job_timer_cb, j);
    j->rec = rc->rec;
    if (j->rec) {
        j->rec->job = j;
        json_object_set_new(j->rec->obj, "status", json_integer(spec->status));
    }
    j->next = F->jobs;
    if (F->jobs)
        F->jobs->prev = j;
    F->jobs = j;
    F->njobs++;
    if (j->spec.ctype)
        add_header(rc, "Content-Type", j->spec.ctype);
    evhttp_connection_set_closecb(evcon, job_close_cb, j);
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd >= 0) {
        /* pieces are written one at a time after the previous one flushed;
         * without NODELAY Nagle + delayed ACK stall each of them ~40 ms */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        j->watch = event_new(F->base, fd, EV_READ, job_watch_cb, j);
        event_add(j->watch, NULL);
    }
    if (spec->first_delay_ms > 0)
        job_arm(j, spec->first_delay_ms);
    else
        job_begin(j);
}

/* ------------------------------------------------------------ pieces */

struct pieces_state {
    struct piece *p;
    size_t n, i;
};

void pieces_free(struct piece *p, size_t n)
{
    if (!p)
        return;
    for (size_t i = 0; i < n; i++)
        free(p[i].data);
    free(p);
}

static int prod_pieces_next(void *st, struct evbuffer *out)
{
    struct pieces_state *s = st;
    if (s->i >= s->n)
        return 0;
    struct piece *pc = &s->p[s->i++];
    if (pc->len)
        evbuffer_add(out, pc->data, pc->len);
    return 1;
}

static void prod_pieces_free(void *st)
{
    struct pieces_state *s = st;
    pieces_free(s->p, s->n);
    free(s);
}

struct producer producer_pieces(struct piece *p, size_t n)
{
    struct pieces_state *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->p = p;
    s->n = n;
    struct producer pr = {prod_pieces_next, prod_pieces_free, s};
    return pr;
}

/* ================================================================ replies */

void add_header(struct rctx *rc, const char *name, const char *value)
{
    evhttp_add_header(evhttp_request_get_output_headers(rc->req), name, value);
}

static void free_cb(const void *data, size_t len, void *extra)
{
    (void)len;
    (void)extra;
    free((void *)data);
}

void reply_data(struct rctx *rc, int status, const char *ctype, char *data,
                size_t len)
{
    if (rc->responded) { /* programming error guard */
        free(data);
        return;
    }
    if (rc->delay_ms > 0) {
        struct piece *p = malloc(sizeof *p);
        if (!p)
            abort();
        p->data = data;
        p->len = len;
        struct job_spec spec = {0};
        spec.status = status;
        spec.ctype = ctype;
        spec.content_length = (long)len;
        spec.first_delay_ms = rc->delay_ms;
        spec.prod = producer_pieces(p, 1);
        start_job(rc, &spec);
        return;
    }
    rc->responded = 1;
    if (ctype)
        add_header(rc, "Content-Type", ctype);
    struct evbuffer *out = evhttp_request_get_output_buffer(rc->req);
    if (len)
        evbuffer_add_reference(out, data, len, free_cb, NULL);
    else
        free(data);
    if (rc->rec)
        rec_finish(rc->rec, status, 1, len);
    evhttp_send_reply(rc->req, status, reason_phrase(status), NULL);
}

void reply_json(struct rctx *rc, int status, json_t *body)
{
    size_t len;
    char *s = json_to_str(body, 1, &len);
    json_decref(body);
    reply_data(rc, status, "application/json; charset=UTF-8", s, len);
}

void reply_error(struct rctx *rc, json_t *err)
{
    int code = (int)json_integer_value(
        json_object_get(json_object_get(err, "error"), "code"));
    if (code < 100 || code > 599)
        code = 500;
    int wrap = rc->surface == SURF_OPENAI;
    if (rc->stream && !rc->sse) {
        json_t *w = rc->rule_params
                        ? json_object_get(rc->rule_params, "wrap_array")
                        : NULL;
        if (w ? json_is_true(w) : rc->F->array_errors)
            wrap = 1;
    }
    if (wrap)
        err = json_pack("[o]", err);
    reply_json(rc, code, err);
}

/* ================================================================ ids */

uint64_t next_seq(struct fake *F)
{
    return ++F->seq;
}

void make_response_id(struct fake *F, char out[32])
{
    unsigned char raw[16];
    uint64_t a = mix64(next_seq(F) ^ 0x5eedULL), b = mix64(a);
    memcpy(raw, &a, 8);
    memcpy(raw + 8, &b, 8);
    char *s = b64_encode(raw, 16, 1, 0);
    snprintf(out, 32, "%s", s);
    free(s);
}

int model_known_prefix(const char *m)
{
    return starts_with(m, "gemini-") || starts_with(m, "text-embedding") ||
           starts_with(m, "embedding") || starts_with(m, "gemma");
}

/* ================================================================ request
 * parsing */

static void parse_route(struct rctx *rc)
{
    const char *p = rc->path;
    rc->surface = SURF_OTHER;
    rc->rest = "";
    if (starts_with(p, "/upload/")) {
        p += strlen("/upload/");
        rc->surface = SURF_UPLOAD;
    } else if (starts_with(p, "/v1beta/openai/")) {
        snprintf(rc->version, sizeof rc->version, "v1beta");
        rc->surface = SURF_OPENAI;
        rc->rest = p + strlen("/v1beta/openai/");
        return;
    } else {
        p++;
    }
    const char *vers[] = {"v1beta/", "v1/", "v1alpha/"};
    for (size_t i = 0; i < 3; i++) {
        if (starts_with(p, vers[i])) {
            snprintf(rc->version, sizeof rc->version, "%.*s",
                     (int)strlen(vers[i]) - 1, vers[i]);
            rc->rest = p + strlen(vers[i]);
            if (rc->surface != SURF_UPLOAD)
                rc->surface = SURF_NATIVE;
            break;
        }
    }
    if (rc->surface == SURF_UPLOAD && !rc->version[0]) {
        rc->surface = SURF_OTHER;
        return;
    }
    if (rc->surface == SURF_NATIVE && starts_with(rc->rest, "models/")) {
        const char *name = rc->rest + strlen("models/");
        const char *colon = strchr(name, ':');
        if (colon) {
            rc->model = xstrndup(name, (size_t)(colon - name));
            snprintf(rc->mname, sizeof rc->mname, "%s", colon + 1);
        } else if (*name && !strchr(name, '/')) {
            rc->model = xstrdup(name);
        }
        if (!strcmp(rc->mname, "streamGenerateContent")) {
            rc->stream = 1;
            char *alt = query_get(rc->query, "alt");
            rc->sse = alt && !strcmp(alt, "sse");
            free(alt);
        }
    }
}

static void parse_auth(struct rctx *rc)
{
    struct evkeyvalq *ih = evhttp_request_get_input_headers(rc->req);
    const char *h = evhttp_find_header(ih, "x-goog-api-key");
    char *q = query_get(rc->query, "key");
    const char *authz = evhttp_find_header(ih, "Authorization");
    const char *bearer = NULL;
    if (authz && !strncasecmp(authz, "Bearer ", 7)) {
        bearer = authz + 7;
        while (*bearer == ' ')
            bearer++;
    }
    int n = (h != NULL) + (q != NULL) + (authz != NULL);
    rc->auth = n > 1   ? AUTH_MULTIPLE
               : h     ? AUTH_HEADER
               : q     ? AUTH_QUERY
               : authz ? AUTH_BEARER
                       : AUTH_NONE;
    if (h)
        rc->key = xstrdup(h);
    else if (q)
        rc->key = xstrdup(q);
    else if (bearer)
        rc->key = xstrdup(bearer);
    free(q);
}

/* ================================================================ auth,
 * key states, rules, limits */

/* Returns 1 if an error was sent. */
static int check_auth(struct rctx *rc)
{
    struct evkeyvalq *ih = evhttp_request_get_input_headers(rc->req);
    int has_authz = evhttp_find_header(ih, "Authorization") != NULL;
    if (rc->surface == SURF_OPENAI) {
        if (rc->auth == AUTH_MULTIPLE) {
            reply_error(rc, err_multiple_credentials());
            return 1;
        }
    } else {
        if (has_authz) {
            reply_error(rc, err_unauthenticated());
            return 1;
        }
        if (rc->auth == AUTH_MULTIPLE) {
            reply_error(rc, err_multiple_credentials());
            return 1;
        }
    }
    if (!rc->key) {
        reply_error(rc, err_no_credentials());
        return 1;
    }
    struct keyinfo *ki = hm_get(&rc->F->keys, rc->key);
    int state;
    if (ki) {
        state = ki->state;
        rc->project = ki->project;
    } else if (starts_with(rc->key, "AIza") && strlen(rc->key) >= 10) {
        state = rc->F->default_state;
        rc->project = rc->key;
    } else {
        state = KS_INVALID;
        rc->project = rc->key;
    }
    switch (state) {
    case KS_INVALID: reply_error(rc, err_invalid_key()); return 1;
    case KS_SUSPENDED:
        reply_error(rc, err_suspended(rc->key, rc->project));
        return 1;
    case KS_LEAKED: reply_error(rc, err_leaked()); return 1;
    case KS_BLOCKED:
        reply_error(rc, err_blocked(rc->mname, rc->version));
        return 1;
    default: return 0;
    }
}

static void match_rule(struct rctx *rc)
{
    struct fake *F = rc->F;
    for (size_t i = 0; i < F->nrules; i++) {
        struct rule *r = &F->rules[i];
        if (r->times == 0) /* "times": 0 never matches */
            continue;
        if (r->key && (!rc->key || strcmp(r->key, rc->key) != 0))
            continue;
        if (r->model && (!rc->model || strcmp(r->model, rc->model) != 0))
            continue;
        if (r->path_contains && !strstr(rc->path, r->path_contains) &&
            !strstr(rc->query, r->path_contains))
            continue;
        rc->rule_kind = r->kind;
        rc->rule_params = json_incref(r->params);
        rc->delay_ms = jlong(r->params, "delay_ms", 0);
        if (r->times > 0 && --r->times == 0) {
            rule_clear(r);
            memmove(r, r + 1, (F->nrules - i - 1) * sizeof *r);
            F->nrules--;
        }
        return;
    }
}

static const char *pstr(struct rctx *rc, const char *k, const char *def)
{
    json_t *v = json_object_get(rc->rule_params, k);
    return json_is_string(v) ? json_string_value(v) : def;
}

/* Error-producing rule kinds; NULL for the others. */
static json_t *rule_error(struct rctx *rc)
{
    const char *model = rc->model ? rc->model : "gemini-2.5-flash";
    json_t *rp = rc->rule_params;
    json_t *e = NULL;
    switch (rc->rule_kind) {
    case RK_QUOTA_DAY: {
        json_t *d = json_object_get(rp, "retry_delay");
        e = err_quota_day(model, jlong(rp, "limit", 250),
                          json_is_null(d) ? NULL
                                          : pstr(rc, "retry_delay", "12s"));
        break;
    }
    case RK_QUOTA_MINUTE: {
        const char *d = pstr(rc, "retry_delay", "43s");
        e = err_quota_minute(model, jlong(rp, "limit", 10), d, d);
        break;
    }
    case RK_QUOTA_ZERO:
        e = err_quota_zero(model, pstr(rc, "retry_delay", "24s"));
        break;
    case RK_QUOTA_BARE: e = err_quota_bare(); break;
    case RK_INVALID_KEY: e = err_invalid_key(); break;
    case RK_SUSPENDED: e = err_suspended(rc->key, rc->project); break;
    case RK_LEAKED: e = err_leaked(); break;
    case RK_BLOCKED: e = err_blocked(rc->mname, rc->version); break;
    case RK_SERVER_ERROR: e = err_internal(); break;
    case RK_OVERLOADED: e = err_overloaded(NULL); break;
    case RK_DEADLINE: e = err_deadline(); break;
    case RK_BAD_REQUEST:
        e = err_unknown_field(
            pstr(rc, "field", "strict"),
            pstr(rc, "at", "tools[0].function_declarations[0]"));
        break;
    case RK_NOT_FOUND:
        e = err_model_not_found(model, rc->version[0] ? rc->version : "v1beta",
                                rc->mname[0] ? rc->mname : "generateContent");
        break;
    default: return NULL;
    }
    const char *msg = pstr(rc, "message", NULL);
    if (msg)
        json_object_set_new(json_object_get(e, "error"), "message",
                            json_string(msg));
    return e;
}

static void reply_status_rule(struct rctx *rc)
{
    json_t *rp = rc->rule_params;
    int status = (int)jlong(rp, "status", 500);
    json_t *hdrs = json_object_get(rp, "headers");
    const char *k;
    json_t *v;
    int has_ct = 0;
    json_object_foreach(hdrs, k, v)
    {
        if (json_is_string(v)) {
            add_header(rc, k, json_string_value(v));
            if (!strcasecmp(k, "Content-Type"))
                has_ct = 1;
        }
    }
    json_t *body = json_object_get(rp, "body");
    json_t *b64 = json_object_get(rp, "body_b64");
    char *data;
    size_t len;
    if (json_is_string(b64)) { /* bytes that are not text (gzip, ...) */
        data = (char *)b64_decode(json_string_value(b64), &len);
        if (data == NULL) {
            data = xstrdup("");
            len = 0;
        }
    } else if (!body) {
        data = xstrdup("");
        len = 0;
    } else if (json_is_string(body)) {
        len = json_string_length(body);
        data = xstrndup(json_string_value(body), len);
    } else {
        data = json_to_str(body, 1, &len);
    }
    reply_data(rc, status, has_ct ? NULL : "application/json; charset=UTF-8",
               data, len);
}

int enforce_limits(struct rctx *rc, const char *model)
{
    struct fake *F = rc->F;
    if (!F->limits || !model || !rc->project)
        return 0;
    json_t *lim = json_object_get(F->limits, model);
    if (!lim)
        lim = json_object_get(F->limits, "*");
    if (!json_is_object(lim))
        return 0;
    long rpm = jlong(lim, "rpm", -1), rpd = jlong(lim, "rpd", -1);
    double now = now_wall();
    long t = (long)now;
    char *ck = xasprintf("%s\x1f%s", rc->project, model);
    struct counter *c = hm_get(&F->counters, ck);
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c)
            abort();
        hm_put(&F->counters, ck, c);
    }
    free(ck);
    long minute = t / 60, day = pacific_day(t);
    if (c->minute != minute) {
        c->minute = minute;
        c->rpm_count = 0;
    }
    if (c->day != day) {
        c->day = day;
        c->rpd_count = 0;
    }
    double to_minute = (double)((minute + 1) * 60) - now;
    long secs = (long)to_minute + ((double)(long)to_minute < to_minute);
    if (secs < 1)
        secs = 1;
    char delay[32], msg_delay[48];
    snprintf(delay, sizeof delay, "%lds", secs);
    snprintf(msg_delay, sizeof msg_delay, "%.9fs", to_minute);
    if (rpd >= 0 && c->rpd_count >= rpd) {
        reply_error(rc, err_quota_day(model, rpd, delay));
        return 1;
    }
    if (rpm >= 0 && c->rpm_count >= rpm) {
        reply_error(rc, err_quota_minute(model, rpm, delay, msg_delay));
        return 1;
    }
    c->rpm_count++;
    c->rpd_count++;
    return 0;
}

/* ================================================================ request
 * entry point */

static void handle(struct rctx *rc)
{
    if (rc->surface == SURF_OTHER) {
        reply_error(rc, err_path_not_found(rc->path));
        return;
    }
    if (rc->surface == SURF_UPLOAD) {
        char *uid = query_get(rc->query, "upload_id");
        if (uid) {
            api_upload_continue(rc, uid);
            free(uid);
            return;
        }
    }
    if (check_auth(rc))
        return;
    match_rule(rc);
    if (rc->rule_params) {
        json_t *e = rule_error(rc);
        if (e) {
            reply_error(rc, e);
            return;
        }
        if (rc->rule_kind == RK_STATUS) {
            reply_status_rule(rc);
            return;
        }
    } else {
        rc->rule_kind = RK_NORMAL;
    }
    api_dispatch(rc);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct fake *F = arg;
    struct rctx rc;
    memset(&rc, 0, sizeof rc);
    rc.F = F;
    rc.req = req;
    rc.rule_kind = RK_NORMAL;
    rc.method = evhttp_request_get_command(req);
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *rawpath = u ? evhttp_uri_get_path(u) : NULL;
    if (!rawpath || !*rawpath)
        rawpath = "/";
    const char *q = u ? evhttp_uri_get_query(u) : NULL;
    rc.query = q ? q : "";
    rc.raw_path = rawpath;
    size_t plen = 0;
    rc.path = evhttp_uridecode(rawpath, 0, &plen);
    if (!rc.path || strlen(rc.path) != plen) {
        free(rc.path);
        rc.path = xstrdup(rawpath);
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    rc.body_len = evbuffer_get_length(in);
    rc.body = rc.body_len ? evbuffer_pullup(in, -1) : (const unsigned char *)"";

    if (starts_with(rc.path, "/_fake/")) {
        handle_control(&rc);
    } else {
        F->served++;
        parse_route(&rc);
        parse_auth(&rc);
        if (F->record)
            rc.rec = rec_new(&rc);
        handle(&rc);
        if (!rc.responded) { /* handler bug: never leave a request hanging */
            rc.delay_ms = 0;
            reply_error(&rc, err_internal());
        }
        if (F->verbose)
            fprintf(stderr, "fake-gemini: %s %s%s%s -> %lld\n",
                    method_str(rc.method), rc.path, rc.query[0] ? "?" : "",
                    rc.query,
                    rc.rec ? (long long)json_integer_value(
                                 json_object_get(rc.rec->obj, "status"))
                           : -1LL);
    }
    json_decref(rc.rule_params);
    free(rc.path);
    free(rc.model);
    free(rc.key);
}

/* ================================================================ main */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak((struct event_base *)arg);
}

/* evhttp's backlog of 128 drops connection bursts (benchmarks open 1,000
 * streams at once); listening again raises it. */
static void raise_backlog(int fd)
{
    (void)listen(fd, 4096);
}

static int parse_listen(const char *s, char *host, size_t cap, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon)
        return -1;
    size_t hl = (size_t)(colon - s);
    if (hl >= cap || hl == 0)
        return -1;
    if (s[0] == '[' && hl >= 2 && s[hl - 1] == ']') {
        memcpy(host, s + 1, hl - 2);
        host[hl - 2] = '\0';
    } else {
        memcpy(host, s, hl);
        host[hl] = '\0';
    }
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535)
        return -1;
    *port = (int)p;
    if (!strcmp(host, "localhost"))
        snprintf(host, cap, "127.0.0.1");
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127 ? 0 : -2;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) ? 0 : -2;
    return -1;
}

static void usage(void)
{
    fprintf(stderr, "usage: fake-gemini --listen 127.0.0.1:PORT [--no-record] "
                    "[--quiet] [--verbose]\n");
}

int main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:0";
    struct fake F;
    memset(&F, 0, sizeof F);
    F.record = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--listen") && i + 1 < argc)
            listen = argv[++i];
        else if (starts_with(argv[i], "--listen="))
            listen = argv[i] + strlen("--listen=");
        else if (!strcmp(argv[i], "--no-record"))
            F.record = 0;
        else if (!strcmp(argv[i], "--quiet"))
            F.quiet = 1;
        else if (!strcmp(argv[i], "--verbose"))
            F.verbose = 1;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage();
            return 0;
        } else {
            usage();
            return 2;
        }
    }
    int rcode = parse_listen(listen, F.host, sizeof F.host, &F.port);
    if (rcode == -2) {
        fprintf(stderr, "fake-gemini: refusing to listen on non-loopback %s\n",
                listen);
        return 2;
    }
    if (rcode < 0) {
        fprintf(stderr, "fake-gemini: bad --listen %s\n", listen);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    /* The epoll changelist coalesces the enable/disable churn evhttp does
     * on every request (fewer epoll_ctl calls). */
    struct event_config *ecfg = event_config_new();
    if (ecfg)
        event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    F.base = ecfg ? event_base_new_with_config(ecfg) : NULL;
    if (ecfg)
        event_config_free(ecfg);
    if (!F.base)
        F.base = event_base_new();
    F.http = evhttp_new(F.base);
    if (!F.base || !F.http) {
        fprintf(stderr, "fake-gemini: libevent init failed\n");
        return 1;
    }
    evhttp_set_allowed_methods(
        F.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                    EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_max_body_size(F.http, MAX_BODY);
    evhttp_set_max_headers_size(F.http, 1024 * 1024);
    evhttp_set_timeout(F.http, 600);
    evhttp_set_default_content_type(F.http, "application/json; charset=UTF-8");
    evhttp_set_gencb(F.http, on_request, &F);

    struct evhttp_bound_socket *bs =
        evhttp_bind_socket_with_handle(F.http, F.host, (ev_uint16_t)F.port);
    if (!bs) {
        fprintf(stderr, "fake-gemini: cannot bind %s: %s\n", listen,
                strerror(errno));
        return 1;
    }
    raise_backlog(evhttp_bound_socket_get_fd(bs));
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss,
                    &sl) == 0) {
        if (ss.ss_family == AF_INET)
            F.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            F.port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }

    hm_init(&F.keys, keyinfo_free);
    hm_init(&F.counters, counter_free);
    fake_state_init(&F);
    F.rec_cap = REC_CAP_DEFAULT;
    F.rec_bytes_cap = REC_BYTES_CAP;
    F.recs = calloc(F.rec_cap, sizeof *F.recs);
    if (!F.recs)
        abort();
    F.next_rec_id = 1;
    config_defaults(&F);

    struct event *sig_term = evsignal_new(F.base, SIGTERM, on_signal, F.base);
    struct event *sig_int = evsignal_new(F.base, SIGINT, on_signal, F.base);
    event_add(sig_term, NULL);
    event_add(sig_int, NULL);

    if (strchr(F.host, ':'))
        printf("LISTENING [%s]:%d\n", F.host, F.port);
    else
        printf("LISTENING %s:%d\n", F.host, F.port);
    fflush(stdout);
    if (!F.quiet)
        fprintf(stderr, "fake-gemini: listening on %s:%d (record=%d)\n", F.host,
                F.port, F.record);

    event_base_dispatch(F.base);

    if (!F.quiet)
        fprintf(stderr, "fake-gemini: shutting down (served %llu)\n",
                (unsigned long long)F.served);
    evhttp_free(F.http); /* closes connections; closecb tears jobs down */
    for (struct job *j = F.jobs, *nx; j; j = nx) { /* none expected */
        nx = j->next;
        job_unlink_free(j);
    }
    event_free(sig_term);
    event_free(sig_int);
    config_defaults(&F);
    json_decref(F.config_raw);
    hm_free(&F.keys);
    hm_free(&F.counters);
    fake_state_free(&F);
    recs_clear(&F);
    free(F.recs);
    event_base_free(F.base);
    return 0;
}
