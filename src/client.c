/*
 * client.c - the client side of a request in flight (struct gkm_preq,
 * preq.h): client authentication, the headers forwarded upstream, noticing
 * a client that leaves (the server's close callback, http.h), replies
 * (whole, or streamed with backpressure and SSE keep-alive comments), and
 * redaction of everything sent. The upstream side and the request's life
 * are in proxy.c.
 *
 * Ownership: see proxy.c. The gkm_hreq belongs to the server (http.c); p
 * holds it until the reply ends or the client leaves (p->req NULL after).
 */
#define _GNU_SOURCE 1 /* memmem */
#include "preq.h"
#include "proxy.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "redact.h"
#include "route.h"
#include "upstream.h"
#include "util.h"

const char *gkm_preq_secret(const struct gkm_preq *p)
{
    return p->key_idx >= 0 ? gkm_pool_secret(p->app->pool, (size_t)p->key_idx)
                           : NULL;
}

/* ---- client side ------------------------------------------------------ */

/* Stop hearing about the client: no callback reaches this preq after
 * this. */
void gkm_client_unwatch(struct gkm_preq *p)
{
    if (p->req)
        gkm_hreq_set_callbacks(p->req, NULL, NULL, NULL);
}

/* The server reports the client gone (EOF, reset, or a timeout while it
 * read nothing); the request is freed when this returns. */
static void on_client_closed(struct gkm_hreq *r, void *arg)
{
    struct gkm_preq *p = arg;
    (void)r;
    if (p->req == NULL)
        return;
    p->req = NULL;
    if (p->xfer) {
        gkm_xfer_cancel(p->xfer);
        p->xfer = NULL;
    }
    gkm_debug(p->app->log, "[%s] client went away; upstream cancelled",
              p->idstr);
    p->final_status = 499;
    if (p->outcome == NULL)
        p->outcome = "client closed";
    gkm_preq_finish(p);
}

/* The client took the backlog: a paused upstream transfer resumes. */
static void on_client_drained(struct gkm_hreq *r, void *arg)
{
    struct gkm_preq *p = arg;
    (void)r;
    if (p->paused && p->xfer) {
        p->paused = 0;
        gkm_xfer_resume(p->xfer);
    }
}

void gkm_client_watch(struct gkm_preq *p)
{
    /* The server keeps reading the connection while the request is in
     * flight, so a client that leaves during a long wait (thinking, a
     * cooldown) is noticed at once. */
    if (p->req)
        gkm_hreq_set_callbacks(p->req, on_client_drained, on_client_closed, p);
}

void gkm_preq_add_header(struct gkm_preq *p, const char *name,
                         const char *value)
{
    if (p->req)
        gkm_hreq_add_header(p->req, name, value);
}

static void add_reply_headers(struct gkm_preq *p, const char *ctype,
                              long retry_after_s)
{
    struct gkm_hreq *h = p->req;
    for (size_t i = 0; p->pass_headers && i < p->nrh; i++) {
        if (ctype && gkm_strcaseeq(p->rh_names[i], "content-type"))
            continue;
        const char *val = p->rh_values[i];
        const char *sec = gkm_preq_secret(p);
        size_t vlen = strlen(val);
        if (!gkm_redact_needed(sec, val, vlen)) {
            gkm_hreq_add_header(h, p->rh_names[i], val); /* nothing to hide */
            continue;
        }
        char *v = gkm_redact_all(sec, val, vlen, &vlen);
        gkm_hreq_add_header(h, p->rh_names[i], v);
        free(v);
    }
    if (ctype)
        gkm_hreq_set_header(h, "Content-Type", ctype);
    if (retry_after_s > 0) {
        char ra[32];
        snprintf(ra, sizeof(ra), "%ld", retry_after_s);
        gkm_hreq_add_header(h, "Retry-After", ra);
    }
    gkm_hreq_add_header(h, "X-Request-Id", p->idstr);
}

void gkm_preq_reply(struct gkm_preq *p, long status, const char *ctype,
                    const char *data, size_t len, long retry_after_s)
{
    gkm_preq_send_reply(p, status, ctype, data, len, retry_after_s);
    gkm_preq_finish(p);
}

void gkm_preq_send_reply(struct gkm_preq *p, long status, const char *ctype,
                         const char *data, size_t len, long retry_after_s)
{
    if (p->req == NULL)
        return;
    const char *sec = gkm_preq_secret(p);
    char *red = NULL;
    if (data == NULL)
        data = "";
    if (gkm_redact_needed(sec, data, len)) {
        red = gkm_redact_all(sec, data, len, &len);
        data = red;
    } /* else nothing to hide: no copy */
    add_reply_headers(p, ctype, retry_after_s);
    gkm_client_unwatch(p);
    p->final_status = status;
    p->bytes_out += len;
    gkm_hreq_send(p->req, (int)status, data, len);
    free(red);
    p->req = NULL;
}

/* ---- streaming to the client ------------------------------------------ */

void gkm_client_cut(struct gkm_preq *p)
{
    if (p->req == NULL)
        return;
    gkm_client_unwatch(p);
    gkm_hreq_abort(p->req);
    p->req = NULL;
}

size_t gkm_client_backlog(struct gkm_preq *p)
{
    return p->req ? gkm_hreq_backlog(p->req) : 0;
}

int gkm_client_send(struct gkm_preq *p, const char *data, size_t len)
{
    if (len == 0 || p->req == NULL)
        return 0;
    gkm_hreq_chunk(p->req, data, len);
    p->bytes_out += len;
    p->last_out_ms = gkm_mono_ms();
    return 0;
}

static void on_keepalive(evutil_socket_t fd, short what, void *arg)
{
    struct gkm_preq *p = arg;
    int64_t every = (int64_t)p->app->cfg->sse_keepalive_ms;
    if (p->req == NULL || !p->reply_started)
        return;
    if (gkm_mono_ms() - p->last_out_ms >= every - 50) {
        static const char ka[] = ": keep-alive\n\n";
        (void)gkm_client_send(p, ka, sizeof(ka) - 1);
    }
}

void gkm_preq_stream_begin(struct gkm_preq *p, long status, const char *ctype)
{
    add_reply_headers(p, ctype, 0);
    size_t n;
    const char *ct = gkm_hreq_reply_header(p->req, "Content-Type", &n);
    int sse = ct != NULL && memmem(ct, n, "text/event-stream", 17) != NULL;
    if (sse) {
        if (gkm_hreq_reply_header(p->req, "Cache-Control", &n) == NULL)
            gkm_hreq_add_header(p->req, "Cache-Control", "no-cache");
        gkm_hreq_add_header(p->req, "X-Accel-Buffering", "no");
    }
    gkm_hreq_start(p->req, (int)status); /* status line and headers now */
    p->reply_started = 1;
    p->final_status = status;
    p->last_out_ms = gkm_mono_ms();
    uint64_t every = p->app->cfg->sse_keepalive_ms;
    if (p->sse_keepalive && every > 0 && sse) {
        p->keepalive_ev = event_new(p->app->base, -1, EV_PERSIST, on_keepalive, p);
        struct timeval tv = {(time_t)(every / 1000),
                             (suseconds_t)((every % 1000) * 1000)};
        if (p->keepalive_ev)
            event_add(p->keepalive_ev, &tv);
    }
}

void gkm_client_end_stream(struct gkm_preq *p)
{
    gkm_hreq_end(p->req);
    p->req = NULL;
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

int gkm_proxy_authorized(const struct gkm_app *app, struct gkm_hreq *req)
{
    int seen = 0, bad = 0;
    for (size_t i = 0; i < gkm_hreq_nheaders(req); i++) {
        const char *cred = NULL;
        const char *name = gkm_hreq_header_name(req, i);
        if (gkm_strcaseeq(name, "x-goog-api-key")) {
            cred = gkm_hreq_header_value(req, i);
        } else if (gkm_strcaseeq(name, "authorization")) {
            const char *v = gkm_hreq_header_value(req, i);
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
    const char *q = strchr(gkm_hreq_uri(req), '?');
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
    struct gkm_hreq *h = p->req;
    const char *conn = gkm_hreq_header(h, "Connection");
    size_t n = gkm_hreq_nheaders(h);
    p->up_headers = gkm_xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        const char *name = gkm_hreq_header_name(h, i);
        if (gkm_route_drop_request_header(name, conn))
            continue;
        p->up_headers[p->nup_headers++] =
            gkm_xjoin3(name, ": ", gkm_hreq_header_value(h, i));
    }
}

