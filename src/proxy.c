/*
 * proxy.c - the proxy core: the life of one client request (struct
 * gkm_preq, see preq.h) across upstream attempts.
 *
 *   gkm_preq_new -> (surface fills the upstream request) -> gkm_preq_start
 *   -> start_attempt -> on_up_headers -> on_up_data* -> on_up_done
 *   -> [error the policy retries: bench, start_attempt again]
 *   -> surface reply -> finish
 *
 * Relay state per attempt (p->mode):
 *   HOLD     a non-2xx answer: the body (capped) is kept so the error can
 *            be classified before anything reaches the client; the key may
 *            be benched and the request retried on another key.
 *   COLLECT  a 2xx answer the surface wants whole (small bodies, or a
 *            translation that needs all of it).
 *   STREAM   a 2xx answer relayed as it arrives through surface->chunk and
 *            the key redactor. Backpressure: when the client's output
 *            buffer passes OUT_HIGH_WATER the upstream transfer is paused,
 *            and evhttp's "buffer drained" callback resumes it.
 * Nothing is retried once a byte went to the client.
 *
 * Client disappearance is seen through evhttp's connection close callback
 * (write error, timeout) and an EV_CLOSED watch on the socket while we
 * wait (evhttp does not read during processing). Either way the upstream
 * transfer is cancelled and the request finished exactly once.
 *
 * Ownership: the preq owns its transfer, redactor, buffers and surface
 * state. The evhttp request belongs to libevent except after a detach
 * (client EOF while we still own it: libevent sets its connection to NULL
 * and leaves freeing it to us, see on_conn_close).
 */
#define _GNU_SOURCE 1 /* memmem */
#include "preq.h"
#include "proxy.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "config.h"
#include "daytime.h"
#include "gerror.h"
#include "policy.h"
#include "log.h"
#include "redact.h"
#include "route.h"
#include "tap.h"
#include "upstream.h"
#include "util.h"

#define OUT_HIGH_WATER (256 * 1024)
#define HOLD_CAP (1024 * 1024)
#define TRIED_LOG_CAP 512
#define WATCH_DELAY_MS 100

enum { MODE_NONE, MODE_HOLD, MODE_COLLECT, MODE_STREAM };

static void start_attempt(struct gkm_preq *p);
static void finish(struct gkm_preq *p);

void gkm_preq_note(struct gkm_preq *p, const char *text)
{
    /* The log field is capped; past it the line is just shorter. */
    if (gkm_buf_append_str(&p->tried, text) != 0)
        return;
}

long gkm_preq_key(const struct gkm_preq *p)
{
    return p->key_idx;
}

void gkm_preq_account(struct gkm_preq *p, const struct gkm_tap_result *r,
                      int complete)
{
    struct gkm_app *app = p->app;
    if (p->key_idx < 0)
        return;
    size_t idx = (size_t)p->key_idx;
    if (r->saw_usage) {
        gkm_pool_add_tokens(app->pool, idx, p->model,
                            (uint64_t)(r->prompt_tokens > 0 ? r->prompt_tokens : 0),
                            (uint64_t)(r->output_tokens > 0 ? r->output_tokens : 0),
                            (uint64_t)(r->thinking_tokens > 0 ? r->thinking_tokens
                                                              : 0));
        char note[96];
        snprintf(note, sizeof(note), " tokens=%lld/%lld/%lld",
                 (long long)r->prompt_tokens, (long long)r->output_tokens,
                 (long long)r->thinking_tokens);
        gkm_preq_note(p, note);
    }
    if (r->saw_error) {
        gkm_pool_count_error(app->pool, idx, p->model, (unsigned)r->error.cls);
        gkm_warn(app->log, "[%s] error inside a 200 answer from key %s: %s",
                 p->idstr, gkm_pool_mask(app->pool, idx), r->error.summary);
        p->outcome = "error inside the answer";
    } else if (complete && !r->saw_finish && !r->framing_error) {
        gkm_pool_count_error(app->pool, idx, p->model,
                             (unsigned)GKM_ERRC_SERVER);
        gkm_warn(app->log, "[%s] answer from key %s ended without a "
                           "finishReason",
                 p->idstr, gkm_pool_mask(app->pool, idx));
        p->outcome = "ended without finishReason";
    }
}

static const char *secret_of(const struct gkm_preq *p)
{
    return p->key_idx >= 0 ? gkm_pool_secret(p->app->pool, (size_t)p->key_idx)
                           : NULL;
}

/* ---- client side ------------------------------------------------------ */

/* Stop watching the client: no close callback or EV_CLOSED event may reach
 * this preq after this. Must precede any call that can free the
 * connection (send_reply, send_reply_end). */
static void unwatch_client(struct gkm_preq *p)
{
    if (p->watch) {
        event_free(p->watch);
        p->watch = NULL;
    }
    if (p->evcon)
        evhttp_connection_set_closecb(p->evcon, NULL, NULL);
    p->evcon = NULL;
}

static void client_gone(struct gkm_preq *p, const char *why)
{
    if (p->req == NULL)
        return;
    p->req = NULL;
    if (p->xfer) {
        gkm_xfer_cancel(p->xfer);
        p->xfer = NULL;
    }
    gkm_debug(p->app->log, "[%s] client went away (%s); upstream cancelled",
              p->idstr, why);
    p->final_status = 499;
    if (p->outcome == NULL)
        p->outcome = "client closed";
    finish(p);
}

/* evhttp is freeing the connection: write error, timeout, or our own
 * evhttp_connection_free below. */
static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    struct gkm_preq *p = arg;
    struct evhttp_request *req = p->req;
    if (p->watch) {
        event_free(p->watch);
        p->watch = NULL;
    }
    p->evcon = NULL;
    if (req != NULL && evhttp_request_get_connection(req) == NULL) {
        /* Detached by libevent (EOF/timeout while we owned it): ours. */
        evhttp_request_free(req);
    }
    client_gone(p, "connection closed");
}

static void on_client_closed(evutil_socket_t fd, short what, void *arg)
{
    struct gkm_preq *p = arg;
    struct evhttp_connection *evcon = p->evcon;
    if (p->watch) {
        event_free(p->watch);
        p->watch = NULL;
    }
    if (evcon != NULL) {
        /* Frees the request too (it is still queued on the connection);
         * on_conn_close runs from inside and finishes p. */
        evhttp_connection_free(evcon);
    }
}

/* Arm the EV_CLOSED watch on the client socket. Deferred by
 * WATCH_DELAY_MS (see watch_client): adding and removing it costs two
 * epoll_ctl calls, which a quick request should not pay. */
static void on_watch_timer(evutil_socket_t unused, short what, void *arg)
{
    struct gkm_preq *p = arg;
    if (p->evcon == NULL || p->req == NULL)
        return;
    if (!(event_base_get_features(p->app->base) & EV_FEATURE_EARLY_CLOSE))
        return;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(p->evcon);
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd < 0)
        return;
    event_free(p->watch); /* the timer that brought us here */
    p->watch = event_new(p->app->base, fd, EV_CLOSED, on_client_closed, p);
    if (p->watch)
        event_add(p->watch, NULL);
}

static void watch_client(struct gkm_preq *p)
{
    p->evcon = evhttp_request_get_connection(p->req);
    if (p->evcon == NULL)
        return;
    evhttp_connection_set_closecb(p->evcon, on_conn_close, p);
    /* A client that leaves while we wait for a slow upstream (long
     * thinking, a cooldown) is noticed through this watch; within the
     * first WATCH_DELAY_MS it is noticed when we write. */
    p->watch = evtimer_new(p->app->base, on_watch_timer, p);
    struct timeval tv = {0, WATCH_DELAY_MS * 1000};
    if (p->watch)
        evtimer_add(p->watch, &tv);
}

/* ---- finishing -------------------------------------------------------- */

static void free_resp_headers(struct gkm_preq *p)
{
    for (size_t i = 0; i < p->nrh; i++) {
        free(p->rh_names[i]);
        free(p->rh_values[i]);
    }
    free(p->rh_names);
    free(p->rh_values);
    p->rh_names = p->rh_values = NULL;
    p->nrh = 0;
}

static void finish(struct gkm_preq *p)
{
    struct gkm_app *app = p->app;
    unwatch_client(p);
    if (p->kill_ev)
        event_free(p->kill_ev);
    if (p->retry_ev)
        event_free(p->retry_ev);
    if (p->keepalive_ev)
        event_free(p->keepalive_ev);
    if (p->xfer) {
        gkm_xfer_cancel(p->xfer);
        p->xfer = NULL;
    }
    int64_t ms = gkm_mono_ms() - p->t0;
    gkm_info(app->log,
             "[%s] %s %s model=%s keys=%s status=%ld attempts=%d bytes=%llu "
             "ms=%lld%s%s",
             p->idstr, p->method, p->path, p->model[0] ? p->model : "-",
             p->tried.len ? p->tried.data : "-", p->final_status, p->attempts,
             (unsigned long long)p->bytes_out, (long long)ms,
             p->outcome ? " note=" : "", p->outcome ? p->outcome : "");
    if (p->surf->cleanup)
        p->surf->cleanup(p);
    gkm_redactor_free(p->redactor);
    gkm_buf_free(&p->body_buf);
    gkm_buf_free(&p->out_buf);
    gkm_buf_free(&p->tried);
    free_resp_headers(p);
    for (size_t i = 0; i < p->nup_headers; i++)
        free(p->up_headers[i]);
    free(p->up_headers);
    free(p->up_path_query);
    free(p->up_body);
    free(p->path);
    free(p->query);
    free(p);
    gkm_app_request_done(app);
}

void gkm_preq_add_header(struct gkm_preq *p, const char *name,
                         const char *value)
{
    if (p->req)
        evhttp_add_header(evhttp_request_get_output_headers(p->req), name,
                          value);
}

static void add_reply_headers(struct gkm_preq *p, const char *ctype,
                              long retry_after_s)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(p->req);
    for (size_t i = 0; p->pass_headers && i < p->nrh; i++) {
        if (ctype && gkm_strcaseeq(p->rh_names[i], "content-type"))
            continue;
        const char *val = p->rh_values[i];
        const char *sec = secret_of(p);
        if (strstr(val, "AIza") == NULL && (sec == NULL || strstr(val, sec) == NULL)) {
            evhttp_add_header(h, p->rh_names[i], val); /* nothing to hide */
            continue;
        }
        size_t vlen = 0;
        char *v = gkm_redact_all(sec, val, strlen(val), &vlen);
        evhttp_add_header(h, p->rh_names[i], v);
        free(v);
    }
    if (ctype) {
        evhttp_remove_header(h, "Content-Type");
        evhttp_add_header(h, "Content-Type", ctype);
    }
    if (retry_after_s > 0) {
        char ra[32];
        snprintf(ra, sizeof(ra), "%ld", retry_after_s);
        evhttp_add_header(h, "Retry-After", ra);
    }
    evhttp_add_header(h, "X-Request-Id", p->idstr);
}

void gkm_preq_reply(struct gkm_preq *p, long status, const char *ctype,
                    const char *data, size_t len, long retry_after_s)
{
    if (p->req == NULL) {
        finish(p);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        p->outcome = "out of memory";
        finish(p);
        return;
    }
    size_t rlen = len;
    const char *sec = secret_of(p);
    if (data == NULL)
        data = "";
    if (memmem(data, len, "AIza", 4) == NULL &&
        (sec == NULL || memmem(data, len, sec, strlen(sec)) == NULL)) {
        evbuffer_add(b, data, len); /* nothing to hide: no copy */
    } else {
        char *red = gkm_redact_all(sec, data, len, &rlen);
        evbuffer_add(b, red, rlen);
        free(red);
    }
    add_reply_headers(p, ctype, retry_after_s);
    unwatch_client(p);
    p->final_status = status;
    p->bytes_out += rlen;
    gkm_app_track_reply(p->app, p->req);
    evhttp_send_reply(p->req, (int)status, NULL, b);
    evbuffer_free(b);
    p->req = NULL;
    finish(p);
}

void gkm_preq_fail(struct gkm_preq *p, int status, const char *gstatus,
                   const char *msg, long retry_after_s)
{
    p->surf->error(p, status, gstatus, msg, retry_after_s);
}

/* ---- streaming to the client ------------------------------------------ */

/* The upstream broke mid-stream: close the client connection without the
 * final chunk, so the client sees a truncated response rather than a
 * complete one. Deferred to a fresh loop turn: we may be inside evhttp's
 * own write callback, which must not see its connection freed. */
static void schedule_close(struct gkm_preq *p)
{
    if (p->kill_ev != NULL)
        return;
    p->kill_ev = evtimer_new(p->app->base, on_client_closed, p);
    struct timeval tv0 = {0, 0};
    if (p->kill_ev == NULL || evtimer_add(p->kill_ev, &tv0) != 0)
        on_client_closed(-1, 0, p); /* last resort: close now */
}

static void on_flushed(struct evhttp_connection *evcon, void *arg)
{
    struct gkm_preq *p = arg;
    if (p->abort_after_flush) {
        schedule_close(p);
        return;
    }
    if (p->paused && p->xfer) {
        p->paused = 0;
        gkm_xfer_resume(p->xfer);
    }
}

static size_t client_backlog(struct gkm_preq *p)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(p->req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon)
                                    : NULL;
    return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

static int send_chunk(struct gkm_preq *p, const char *data, size_t len)
{
    if (len == 0)
        return 0;
    struct evbuffer *b = evbuffer_new();
    if (b == NULL)
        return -1;
    evbuffer_add(b, data, len);
    evhttp_send_reply_chunk_with_cb(p->req, b, on_flushed, p);
    evbuffer_free(b);
    p->bytes_out += len;
    p->last_out_ms = gkm_mono_ms();
    return 0;
}

static void on_keepalive(evutil_socket_t fd, short what, void *arg)
{
    struct gkm_preq *p = arg;
    int64_t every = (int64_t)p->app->cfg->sse_keepalive_ms;
    if (p->req == NULL || !p->reply_started || p->abort_after_flush)
        return;
    if (gkm_mono_ms() - p->last_out_ms >= every - 50) {
        static const char ka[] = ": keep-alive\n\n";
        (void)send_chunk(p, ka, sizeof(ka) - 1);
    }
}

void gkm_preq_stream_begin(struct gkm_preq *p, long status, const char *ctype)
{
    add_reply_headers(p, ctype, 0);
    struct evkeyvalq *h = evhttp_request_get_output_headers(p->req);
    const char *ct = evhttp_find_header(h, "Content-Type");
    if (ct && strstr(ct, "text/event-stream")) {
        if (evhttp_find_header(h, "Cache-Control") == NULL)
            evhttp_add_header(h, "Cache-Control", "no-cache");
        evhttp_add_header(h, "X-Accel-Buffering", "no");
    }
    evhttp_send_reply_start(p->req, (int)status, NULL);
    p->reply_started = 1;
    p->final_status = status;
    p->last_out_ms = gkm_mono_ms();
    uint64_t every = p->app->cfg->sse_keepalive_ms;
    if (p->sse_keepalive && every > 0 && ct && strstr(ct, "text/event-stream")) {
        p->keepalive_ev = event_new(p->app->base, -1, EV_PERSIST, on_keepalive, p);
        struct timeval tv = {(time_t)(every / 1000),
                             (suseconds_t)((every % 1000) * 1000)};
        if (p->keepalive_ev)
            event_add(p->keepalive_ev, &tv);
    }
}

/* Redact surface output and send it. */
static int relay_out(struct gkm_preq *p, const char *data, size_t len)
{
    if (len == 0)
        return 0;
    gkm_buf_reset(&p->body_buf);
    if (gkm_redactor_feed(p->redactor, data, len, &p->body_buf) != 0)
        return -1;
    return send_chunk(p, p->body_buf.data, p->body_buf.len);
}

/* End a streamed reply: surface's final bytes, redactor tail, then either
 * the clean end or a cut. */
static void stream_end(struct gkm_preq *p, int ok)
{
    gkm_buf_reset(&p->out_buf);
    int clean = p->surf->end(p, ok, &p->out_buf);
    if (relay_out(p, p->out_buf.data, p->out_buf.len) == 0) {
        gkm_buf_reset(&p->body_buf);
        if (gkm_redactor_finish(p->redactor, &p->body_buf) == 0)
            (void)send_chunk(p, p->body_buf.data, p->body_buf.len);
    }
    if (!clean) {
        p->abort_after_flush = 1;
        if (client_backlog(p) == 0)
            schedule_close(p);
        /* else on_flushed closes once the client has what we sent */
        return;
    }
    unwatch_client(p);
    gkm_app_track_reply(p->app, p->req);
    evhttp_send_reply_end(p->req);
    p->req = NULL;
    finish(p);
}

/* ---- upstream callbacks ------------------------------------------------ */

static enum gkm_data_rc on_up_headers(void *arg, long status,
                                      const struct gkm_header *hdrs, size_t n)
{
    struct gkm_preq *p = arg;
    struct gkm_app *app = p->app;
    const char *conn = NULL;
    long long clen = -1;
    p->status = status;
    for (size_t i = 0; i < n; i++) {
        if (gkm_strcaseeq(hdrs[i].name, "connection"))
            conn = hdrs[i].value;
        else if (gkm_strcaseeq(hdrs[i].name, "content-length"))
            clen = strtoll(hdrs[i].value, NULL, 10);
    }
    free_resp_headers(p);
    p->rh_names = gkm_xcalloc(n + 1, sizeof(char *));
    p->rh_values = gkm_xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        if (gkm_route_drop_response_header(hdrs[i].name, conn))
            continue;
        p->rh_names[p->nrh] = gkm_xstrdup(hdrs[i].name);
        p->rh_values[p->nrh] = gkm_xstrdup(hdrs[i].value);
        p->nrh++;
    }
    char st[16];
    snprintf(st, sizeof(st), "(%ld)", status);
    gkm_preq_note(p, st);
    if (status != 429)
        gkm_pool_count(app->pool, (size_t)p->key_idx, p->model);
    if (status >= 200 && status < 300)
        gkm_policy_state_forget(app->pstate, (size_t)p->key_idx, p->model);
    if (status < 200 || status >= 300) {
        p->mode = MODE_HOLD;
        return GKM_DATA_OK;
    }
    if (p->surf->begin(p, status, clen) == GKM_RELAY_STREAM) {
        p->mode = MODE_STREAM;
        if (!p->reply_started)
            gkm_preq_stream_begin(p, status, NULL);
    } else {
        p->mode = MODE_COLLECT;
        gkm_buf_free(&p->body_buf);
        gkm_buf_init(&p->body_buf, p->collect_cap);
    }
    return GKM_DATA_OK;
}

static enum gkm_data_rc on_up_data(void *arg, const char *data, size_t n)
{
    struct gkm_preq *p = arg;
    switch (p->mode) {
    case MODE_HOLD:
        /* Past the cap the tail is dropped: the head is what classifies. */
        if (gkm_buf_append(&p->body_buf, data, n) != 0)
            return GKM_DATA_OK;
        return GKM_DATA_OK;
    case MODE_COLLECT:
        if (gkm_buf_append(&p->body_buf, data, n) != 0) {
            p->outcome = "upstream response larger than the proxy's cap";
            return GKM_DATA_ABORT;
        }
        return GKM_DATA_OK;
    case MODE_STREAM:
        if (client_backlog(p) > OUT_HIGH_WATER) {
            p->paused = 1;
            return GKM_DATA_PAUSE;
        }
        gkm_buf_reset(&p->out_buf);
        if (p->surf->chunk(p, data, n, &p->out_buf) != 0)
            return GKM_DATA_ABORT;
        return relay_out(p, p->out_buf.data, p->out_buf.len) == 0
                   ? GKM_DATA_OK
                   : GKM_DATA_ABORT;
    }
    return GKM_DATA_ABORT;
}

static long retry_after_seconds(int64_t at_ms, int64_t now_ms)
{
    if (at_ms == GKM_FOREVER)
        return 0;
    int64_t d = at_ms - now_ms;
    if (d < 1000)
        return 1;
    return (long)((d + 999) / 1000);
}

static void on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    struct gkm_preq *p = arg;
    start_attempt(p);
}

/* Run start_attempt after delay_ms (0: on the next loop turn). */
static void retry_later(struct gkm_preq *p, int64_t delay_ms)
{
    if (p->retry_ev == NULL)
        p->retry_ev = evtimer_new(p->app->base, on_retry_timer, p);
    struct timeval tv = {(time_t)(delay_ms / 1000),
                         (suseconds_t)((delay_ms % 1000) * 1000)};
    if (p->retry_ev == NULL || evtimer_add(p->retry_ev, &tv) != 0)
        start_attempt(p);
}

static const char *scope_name(enum gkm_bench_scope s)
{
    switch (s) {
    case GKM_SCOPE_PAIR: return "key+model";
    case GKM_SCOPE_PROJECT: return "project+model";
    case GKM_SCOPE_KEY: return "key (all models)";
    default: return "none";
    }
}

/* An upstream failure before any byte reached the client: an error answer
 * (status, held body) or no answer at all (status 0). Classify it, bench
 * what the policy says, and retry on another key when the policy and the
 * attempt budget allow. Returns 1 if the request goes on (a retry is
 * started or scheduled), 0 to hand the answer to the client. */
static int handle_failure(struct gkm_preq *p, long status, const char *body,
                          size_t len)
{
    struct gkm_app *app = p->app;
    size_t idx = (size_t)p->key_idx;
    const char *mask = gkm_pool_mask(app->pool, idx);
    struct gkm_err_info e;
    gkm_gerror_classify(status, body, len, &e);
    if (e.cls == GKM_ERRC_OK)
        return 0;
    gkm_pool_count_error(app->pool, idx, p->model, (unsigned)e.cls);
    int64_t now = gkm_now_ms();
    int64_t next_reset = (int64_t)app->next_reset * 1000;
    struct gkm_action a = gkm_policy_decide(&app->policy, app->pstate, &e, idx,
                                            p->model, now, next_reset);
    gkm_policy_apply(&a, app->pool, idx, p->model);
    if (a.scope != GKM_SCOPE_NONE) {
        char until[64];
        if (a.bench_until_ms == GKM_FOREVER) {
            snprintf(until, sizeof(until), "until the keys are reloaded");
        } else {
            time_t t = (time_t)(a.bench_until_ms / 1000);
            struct tm tm;
            gmtime_r(&t, &tm);
            snprintf(until, sizeof(until), "until %02d:%02d:%02dZ (%llds)",
                     tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (long long)((a.bench_until_ms - now + 999) / 1000));
        }
        gkm_warn(app->log, "[%s] key %s: %s; benched %s for %s %s", p->idstr,
                 mask, e.summary, scope_name(a.scope),
                 p->model[0] ? p->model : "(no model)", until);
    } else {
        gkm_info(app->log, "[%s] key %s: %s", p->idstr, mask, e.summary);
    }
    if (a.kind == GKM_ACT_PASS)
        return 0;
    if (p->attempts - p->attempts_base >= app->cfg->max_attempts) {
        p->outcome = "attempts exhausted";
        return 0;
    }
    if (a.kind == GKM_ACT_RETRY_OTHER_KEY) {
        start_attempt(p);
        return 1;
    }
    /* RETRY_BACKOFF: overload or no answer; not the key's fault. */
    p->server_retries++;
    double jitter = (double)((uint64_t)gkm_mono_ms() * 2654435761u % 1000) /
                    1000.0;
    int64_t delay = gkm_policy_backoff_ms(&app->policy,
                                          (unsigned)p->server_retries, jitter);
    if (delay < 0)
        return 0;
    gkm_debug(app->log, "[%s] retrying in %lld ms", p->idstr,
              (long long)delay);
    retry_later(p, delay);
    return 1;
}

static void on_up_done(void *arg, int ok, long status, int timed_out,
                       const char *errmsg)
{
    struct gkm_preq *p = arg;
    struct gkm_app *app = p->app;
    p->xfer = NULL;
    if (p->req == NULL) { /* defensive: client_gone cancels first */
        finish(p);
        return;
    }
    const char *mask = gkm_pool_mask(app->pool, (size_t)p->key_idx);
    if (!ok) {
        if (p->reply_started) {
            gkm_warn(app->log, "[%s] upstream broke mid-response (key %s): %s",
                     p->idstr, mask, errmsg ? errmsg : "?");
            if (p->outcome == NULL)
                p->outcome = "upstream broke mid-response";
            stream_end(p, 0);
            return;
        }
        gkm_warn(app->log, "[%s] upstream request failed (key %s): %s",
                 p->idstr, mask, errmsg ? errmsg : "?");
        if (handle_failure(p, timed_out ? 504 : 0, NULL, 0))
            return;
        if (p->outcome == NULL)
            p->outcome = timed_out ? "upstream timeout" : "upstream error";
        gkm_preq_fail(p, timed_out ? 504 : 502,
                      timed_out ? "DEADLINE_EXCEEDED" : "UNAVAILABLE",
                      timed_out ? "Upstream request timed out."
                                : "Upstream request failed (connection error).",
                      0);
        return;
    }
    switch (p->mode) {
    case MODE_STREAM:
        stream_end(p, 1);
        return;
    case MODE_COLLECT:
        p->surf->body(p, status, p->body_buf.data ? p->body_buf.data : "",
                      p->body_buf.len);
        return;
    default:
        if (handle_failure(p, status, p->body_buf.data ? p->body_buf.data : "",
                           p->body_buf.len))
            return;
        p->surf->upstream_error(p, status,
                                p->body_buf.data ? p->body_buf.data : "",
                                p->body_buf.len);
        return;
    }
}

static const struct gkm_xfer_cbs xfer_cbs = {on_up_headers, on_up_data,
                                             on_up_done};

static void reply_no_key(struct gkm_preq *p, const struct gkm_pick *pk)
{
    struct gkm_app *app = p->app;
    int64_t now = gkm_now_ms();
    long ra = retry_after_seconds(pk->retry_at_ms, now);
    const char *model = p->model[0] ? p->model : "(no model)";
    size_t nkeys = gkm_pool_size(app->pool);
    char msg[640];
    int daily = pk->reason == GKM_BENCH_QUOTA_DAY;
    int shortwait = pk->reason == GKM_BENCH_QUOTA_MINUTE ||
                    pk->reason == GKM_BENCH_RATE_LIMITED;
    if (pk->retry_at_ms == GKM_FOREVER) {
        snprintf(msg, sizeof(msg),
                 "No usable API key for model '%s': all %zu keys are "
                 "disabled or have no quota for it (see the proxy log).",
                 model, nkeys);
    } else if (daily) {
        time_t at = (time_t)(pk->retry_at_ms / 1000);
        struct tm tm;
        gmtime_r(&at, &tm);
        snprintf(msg, sizeof(msg),
                 "All %zu API keys have reached their daily quota for model "
                 "'%s'. Quota resets at %04d-%02d-%02dT%02d:%02d:%02dZ "
                 "(midnight %s), in %ld s.",
                 nkeys, model, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec, app->cfg->reset_tz, ra);
    } else {
        snprintf(msg, sizeof(msg),
                 "All %zu API keys are rate limited for model '%s' "
                 "(%s); retry in %ld s.",
                 nkeys, model, gkm_bench_reason_name(pk->reason), ra);
    }
    p->outcome = "no key available";
    gkm_preq_fail(p, shortwait ? 429 : 503,
                  shortwait ? "RESOURCE_EXHAUSTED" : "UNAVAILABLE", msg, ra);
}

static void start_attempt(struct gkm_preq *p)
{
    struct gkm_app *app = p->app;
    int64_t now = gkm_now_ms();
    struct gkm_pick pk = gkm_pool_pick(app->pool, p->model, now);
    if (pk.idx < 0) {
        /* Only short cooldowns in the way: wait for the first to end, if
         * that is within --max-wait. */
        int64_t wait = pk.retry_at_ms == GKM_FOREVER ? -1
                                                     : pk.retry_at_ms - now;
        if (wait >= 0 && p->waited_ms + wait <= (int64_t)app->cfg->max_wait_ms &&
            pk.reason != GKM_BENCH_QUOTA_DAY) {
            p->waited_ms += wait + 1;
            gkm_debug(app->log, "[%s] every key is cooling down; waiting %lld "
                                "ms",
                      p->idstr, (long long)wait + 1);
            retry_later(p, wait + 1);
            return;
        }
        reply_no_key(p, &pk);
        return;
    }
    p->key_idx = pk.idx;
    p->attempts++;
    p->mode = MODE_NONE;
    p->status = 0;
    free_resp_headers(p);
    gkm_buf_free(&p->body_buf);
    gkm_buf_init(&p->body_buf, HOLD_CAP);
    gkm_redactor_free(p->redactor);
    const char *secret = gkm_pool_secret(app->pool, (size_t)pk.idx);
    p->redactor = gkm_redactor_new(secret);
    if (p->tried.len > 0)
        gkm_preq_note(p, ",");
    gkm_preq_note(p, gkm_pool_mask(app->pool, (size_t)pk.idx));

    char *url = gkm_xasprintf("%s%s", app->cfg->upstream, p->up_path_query);
    char *keyhdr = p->cred == GKM_CRED_BEARER
                       ? gkm_xasprintf("Authorization: Bearer %s", secret)
                       : gkm_xasprintf("x-goog-api-key: %s", secret);
    const char **hv = gkm_xcalloc(p->nup_headers + 1, sizeof(char *));
    for (size_t i = 0; i < p->nup_headers; i++)
        hv[i] = p->up_headers[i];
    hv[p->nup_headers] = keyhdr;
    gkm_debug(app->log, "[%s] attempt %d: %s %s with key %s", p->idstr,
              p->attempts, p->up_method, p->up_path_query,
              gkm_pool_mask(app->pool, (size_t)pk.idx));
    const char *body = p->up_body ? p->up_body : p->body;
    size_t bodylen = p->up_body ? p->up_bodylen : p->bodylen;
    p->xfer = gkm_xfer_start(app->up, p->up_method, url, hv,
                             p->nup_headers + 1, body, bodylen, &xfer_cbs, p);
    /* Wipe our copy of the key header (libcurl keeps its own). */
    memset(keyhdr, 0, strlen(keyhdr));
    free(keyhdr);
    free(hv);
    free(url);
    if (p->xfer == NULL) {
        p->outcome = "cannot start upstream transfer";
        gkm_preq_fail(p, 502, "UNAVAILABLE",
                      "The proxy could not start the upstream request.", 0);
    }
}

/* ---- entry ------------------------------------------------------------ */

static const char *method_name(enum evhttp_cmd_type c)
{
    switch (c) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_TRACE: return "TRACE";
    case EVHTTP_REQ_CONNECT: return "CONNECT";
    case EVHTTP_REQ_PATCH: return "PATCH";
    }
    return "GET";
}

static int token_ok(const struct gkm_app *app, const char *t)
{
    int ok = 0;
    size_t tl = strlen(t);
    /* Compare with every token (no early exit) so timing reveals nothing. */
    for (size_t i = 0; i < app->cfg->ntokens; i++)
        ok |= gkm_ct_equal(t, tl, app->cfg->tokens[i],
                           strlen(app->cfg->tokens[i]));
    return ok;
}

int gkm_proxy_authorized(const struct gkm_app *app, struct evhttp_request *req)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    int seen = 0, bad = 0;
    for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next) {
        const char *cred = NULL;
        if (gkm_strcaseeq(kv->key, "x-goog-api-key")) {
            cred = kv->value;
        } else if (gkm_strcaseeq(kv->key, "authorization")) {
            const char *v = kv->value;
            if (strncasecmp(v, "Bearer ", 7) != 0) {
                bad = 1;
                continue;
            }
            cred = v + 7;
            while (*cred == ' ')
                cred++;
        }
        if (cred == NULL)
            continue;
        seen = 1;
        if (!token_ok(app, cred))
            bad = 1;
    }
    const char *q = strchr(evhttp_request_get_uri(req), '?');
    if (q != NULL && strstr(q, "key") != NULL) {
        char *qkey = NULL;
        char *rest = gkm_route_strip_key(q + 1, &qkey);
        free(rest);
        if (qkey != NULL) {
            seen = 1;
            if (!token_ok(app, qkey))
                bad = 1;
            free(qkey);
        }
    }
    return seen && !bad;
}

struct gkm_preq *gkm_preq_new(struct gkm_app *app, struct evhttp_request *req,
                              const struct gkm_surface *surf)
{
    struct gkm_preq *p = gkm_xcalloc(1, sizeof(*p));
    p->app = app;
    p->surf = surf;
    p->req = req;
    p->t0 = gkm_mono_ms();
    p->id = ++app->next_request_id;
    snprintf(p->idstr, sizeof(p->idstr), "r%06llx", (unsigned long long)p->id);
    p->method = method_name(evhttp_request_get_command(req));
    p->up_method = p->method;
    p->key_idx = -1;
    p->collect_cap = HOLD_CAP;
    app->inflight++;
    gkm_buf_init(&p->tried, TRIED_LOG_CAP);
    gkm_buf_init(&p->body_buf, HOLD_CAP);
    gkm_buf_init(&p->out_buf, SIZE_MAX / 2);

    char *q = NULL;
    if (gkm_route_split(evhttp_request_get_uri(req), &p->path, &q) != 0) {
        p->path = gkm_xstrdup("(invalid)");
        p->query = gkm_xstrdup("");
        p->outcome = "bad path";
        gkm_preq_fail(p, 400, "INVALID_ARGUMENT", "Invalid request path.", 0);
        return NULL;
    }
    p->query = gkm_route_strip_key(q, NULL);
    free(q);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    p->bodylen = evbuffer_get_length(in);
    p->body = p->bodylen ? (const char *)evbuffer_pullup(in, -1) : NULL;
    return p;
}

void gkm_preq_forward_headers(struct gkm_preq *p)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(p->req);
    const char *conn = evhttp_find_header(h, "Connection");
    size_t n = 0;
    for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next)
        n++;
    p->up_headers = gkm_xcalloc(n + 1, sizeof(char *));
    for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next) {
        if (gkm_route_drop_request_header(kv->key, conn))
            continue;
        p->up_headers[p->nup_headers++] =
            gkm_xasprintf("%s: %s", kv->key, kv->value);
    }
}

void gkm_preq_restart(struct gkm_preq *p)
{
    p->attempts_base = p->attempts;
    start_attempt(p);
}

void gkm_preq_start(struct gkm_preq *p)
{
    watch_client(p);
    start_attempt(p);
}
