/*
 * client.c - the client side of a request in flight (struct gkm_preq,
 * preq.h): client authentication, the headers forwarded upstream, noticing
 * a client that leaves (evhttp's close callback, and an EV_CLOSED watch
 * armed after WATCH_DELAY_MS), replies (whole, or streamed with
 * backpressure and SSE keep-alive comments), and redaction of everything
 * sent. The upstream side and the request's life are in proxy.c.
 *
 * Ownership: see proxy.c. The evhttp request belongs to libevent except
 * after a detach (client EOF while we still own it: libevent sets its
 * connection to NULL and leaves freeing it to us, see on_conn_close).
 */
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
#include "log.h"
#include "redact.h"
#include "route.h"
#include "upstream.h"
#include "util.h"

#define WATCH_DELAY_MS 100

/* Write what evhttp has just queued for the client now, in this loop
 * pass. evhttp only enables EV_WRITE and writes on the next pass, which
 * costs two epoll_ctl calls (write interest on, then off) and a loop turn
 * per reply and per streamed chunk. When everything is written here, the
 * write interest is dropped in the same pass (no system call at all with
 * the epoll changelist) and evhttp's write callback is run as a deferred
 * callback, as if the bufferevent had written it: it completes the reply
 * or reports the flush exactly as before. A partial write, EAGAIN or an
 * error leave everything to the bufferevent, which retries or reports.
 * evcon must be the connection that was alive before the evhttp call that
 * queued the data (evhttp frees nothing synchronously once it has a
 * connection, except in the cases the callers avoid). */
static void flush_now(struct evhttp_connection *evcon)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    if (bev == NULL)
        return;
    struct evbuffer *out = bufferevent_get_output(bev);
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (fd < 0 || evbuffer_get_length(out) == 0)
        return;
    if (evbuffer_write(out, fd) < 0 || evbuffer_get_length(out) != 0)
        return;
    bufferevent_disable(bev, EV_WRITE);
    bufferevent_trigger(bev, EV_WRITE,
                        BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

const char *gkm_preq_secret(const struct gkm_preq *p)
{
    return p->key_idx >= 0 ? gkm_pool_secret(p->app->pool, (size_t)p->key_idx)
                           : NULL;
}

/* ---- client side ------------------------------------------------------ */

/* Stop watching the client: no close callback or EV_CLOSED event may reach
 * this preq after this. Must precede any call that can free the
 * connection (send_reply, send_reply_end). */
void gkm_client_unwatch(struct gkm_preq *p)
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
    gkm_preq_finish(p);
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

void gkm_client_watch(struct gkm_preq *p)
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
        const char *sec = gkm_preq_secret(p);
        size_t vlen = strlen(val);
        if (!gkm_redact_needed(sec, val, vlen)) {
            evhttp_add_header(h, p->rh_names[i], val); /* nothing to hide */
            continue;
        }
        char *v = gkm_redact_all(sec, val, vlen, &vlen);
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
        gkm_preq_finish(p);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        p->outcome = "out of memory";
        gkm_preq_finish(p);
        return;
    }
    size_t rlen = len;
    const char *sec = gkm_preq_secret(p);
    if (data == NULL)
        data = "";
    if (!gkm_redact_needed(sec, data, len)) {
        evbuffer_add(b, data, len); /* nothing to hide: no copy */
    } else {
        char *red = gkm_redact_all(sec, data, len, &rlen);
        evbuffer_add(b, red, rlen);
        free(red);
    }
    add_reply_headers(p, ctype, retry_after_s);
    gkm_client_unwatch(p);
    p->final_status = status;
    p->bytes_out += rlen;
    gkm_app_track_reply(p->app, p->req);
    struct evhttp_connection *evcon = evhttp_request_get_connection(p->req);
    evhttp_send_reply(p->req, (int)status, NULL, b);
    evbuffer_free(b);
    if (evcon != NULL)
        flush_now(evcon);
    p->req = NULL;
    gkm_preq_finish(p);
}

/* ---- streaming to the client ------------------------------------------ */

/* The upstream broke mid-stream: close the client connection without the
 * final chunk, so the client sees a truncated response rather than a
 * complete one. Deferred to a fresh loop turn: we may be inside evhttp's
 * own write callback, which must not see its connection freed. */
void gkm_client_schedule_close(struct gkm_preq *p)
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
        gkm_client_schedule_close(p);
        return;
    }
    if (p->paused && p->xfer) {
        p->paused = 0;
        gkm_xfer_resume(p->xfer);
    }
}

size_t gkm_client_backlog(struct gkm_preq *p)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(p->req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon)
                                    : NULL;
    return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

int gkm_client_send(struct gkm_preq *p, const char *data, size_t len)
{
    if (len == 0)
        return 0;
    struct evbuffer *b = evbuffer_new();
    if (b == NULL)
        return -1;
    evbuffer_add(b, data, len);
    struct evhttp_connection *evcon = evhttp_request_get_connection(p->req);
    evhttp_send_reply_chunk_with_cb(p->req, b, on_flushed, p);
    evbuffer_free(b);
    if (evcon != NULL)
        flush_now(evcon);
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
        (void)gkm_client_send(p, ka, sizeof(ka) - 1);
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
    struct evhttp_connection *evcon = evhttp_request_get_connection(p->req);
    evhttp_send_reply_start(p->req, (int)status, NULL);
    if (evcon != NULL)
        flush_now(evcon); /* the status line and headers go out at once */
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

void gkm_client_end_stream(struct gkm_preq *p)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(p->req);
    const char *te = evhttp_find_header(
        evhttp_request_get_output_headers(p->req), "Transfer-Encoding");
    /* Only a chunked reply is certain to be finished asynchronously (the
     * last chunk is queued and written); an unchunked one may be completed
     * and its connection freed inside evhttp_send_reply_end. */
    int chunked = te != NULL && strcasecmp(te, "chunked") == 0;
    evhttp_send_reply_end(p->req);
    p->req = NULL;
    if (evcon != NULL && chunked)
        flush_now(evcon);
}

/* Redact surface output and send it. */
int gkm_client_relay(struct gkm_preq *p, const char *data, size_t len)
{
    if (len == 0)
        return 0;
    gkm_buf_reset(&p->body_buf);
    if (gkm_redactor_feed(p->redactor, data, len, &p->body_buf) != 0)
        return -1;
    return gkm_client_send(p, p->body_buf.data, p->body_buf.len);
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
            gkm_xjoin3(kv->key, ": ", kv->value);
    }
}

