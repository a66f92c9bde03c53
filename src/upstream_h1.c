/*
 * upstream_h1.c - HTTP/1.1 exchanges written and read here, over the
 * connections of upstream_h1conn.c (upstream_int.h: how the two engines
 * share the work; bench/README.md, "Framing HTTP/1.1 over libcurl's
 * connections": why. libcurl's transfer machinery was about three quarters
 * of the proxy's cost per request).
 *
 * An exchange (struct h1x) writes its request head in one buffer and sends
 * it with the caller's body. It reads the answer 4 KiB at a time into
 * libhttp-parser in response mode: chunked, content-length and
 * close-delimited bodies, 1xx interim answers, HEAD. Body bytes the consumer
 * pauses on are kept (held) and offered again on resume. A gzip or deflate
 * answer, sent despite "Accept-Encoding: identity", is inflated with zlib;
 * any other coding fails the exchange.
 *
 * The connection goes back to the pool when the answer ended cleanly and
 * both sides allow keep-alive. A request that fails on a reused connection
 * before any byte of an answer arrived is sent once more on a new one, as
 * libcurl does: the server closed the connection while the request was on
 * its way.
 *
 * Callbacks run from libevent callbacks or from check_done, never inside
 * libcurl, gkm_h1_start or gkm_h1_resume. A consumer may cancel its own
 * exchange from its callbacks (deferred through in_cb).
 */
#include "upstream_int.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "buf.h"
#include "log.h"
#include "util.h"

#define RBUF_SIZE 4096
/* Body bytes kept while the consumer is paused: one read's worth, or what
 * one read inflates to. */
#define MAX_HELD (16 * 1024 * 1024)


struct h1x {
    int kind; /* GKM_UPK_H1 */
    struct gkm_upstream *up;
    struct h1conn *c;
    struct gkm_xfer_cbs cbs;
    void *arg;
    char *req;          /* the request head; holds the key (wiped) */
    size_t reqlen;
    const char *body;   /* borrowed */
    size_t bodylen;
    size_t sent;        /* of reqlen + bodylen */
    int head;           /* a HEAD request: the answer has no body */
    http_parser p;
    struct gkm_buf hb;  /* answer headers: "name\0value\0" each */
    size_t nresp;
    struct gkm_header *resp_hdrs;
    size_t aresp;
    int in_value;       /* header parsing: inside a value ... */
    size_t vstart;      /* ... which starts here in hb */
    int interim;        /* the answer being parsed is a 1xx */
    int headers_delivered, complete, got_answer, aborted, bad_coding;
    long status;
    char *rbuf;         /* RBUF_SIZE bytes read; [rpos, rlen) not parsed */
    size_t rlen, rpos;
    struct gkm_buf held; /* body bytes the consumer paused on */
    z_stream *z;        /* inflating a compressed answer */
    int in_cb, cancelled, paused, retried;
    int send_failed;    /* the rest of the request cannot go out ... */
    char send_err[CURL_ERROR_SIZE + 64]; /* ... and why */
    int64_t last_io_ms;
    struct h1x *prev, *next; /* live exchanges */
    size_t keylen;
    char key[]; /* the origin */
};

/* What parse, give_held and send_more leave: go on, x paused, x gone
 * (finished, or moved to a new connection). */
enum { GO = 0, PAUSED = 1, GONE = 2 };

static int pump(struct h1x *x);
static int sending(const struct h1x *x);
static int send_more(struct h1x *x);

/* ---- exchanges ----------------------------------------------------- */

static void xfer_free(struct h1x *x)
{
    struct gkm_upstream *up = x->up;
    if (x->prev)
        x->prev->next = x->next;
    else
        up->h1_head = x->next;
    if (x->next)
        x->next->prev = x->prev;
    if (x->req != NULL) {
        explicit_bzero(x->req, x->reqlen);
        free(x->req);
    }
    gkm_buf_free(&x->hb);
    gkm_buf_free(&x->held);
    free(x->resp_hdrs);
    free(x->rbuf);
    if (x->z != NULL) {
        inflateEnd(x->z);
        free(x->z);
    }
    free(x);
    gkm_up_active_dec(up);
}

/* Let go of x's connection: back to the pool if keep, else closed. */
static void release(struct h1x *x, int keep)
{
    struct h1conn *c = x->c;
    if (c == NULL)
        return;
    x->c = NULL;
    c->x = NULL;
    if (keep)
        gkm_h1c_pool(c);
    else
        gkm_h1c_close(c);
}

static const struct gkm_header *headers_view(struct h1x *x)
{
    return gkm_up_headers_view(x->hb.data, x->nresp, &x->resp_hdrs,
                               &x->aresp);
}

/* The end of x: the connection pooled (keep) or closed, on_done called
 * unless x was cancelled, x freed. */
static void finish(struct h1x *x, int ok, int keep, int timed_out,
                   const char *msg)
{
    release(x, ok && keep);
    if (!x->cancelled) {
        x->in_cb++;
        if (ok && !x->headers_delivered) {
            x->headers_delivered = 1;
            if (x->cbs.on_headers(x->arg, x->status, headers_view(x),
                                  x->nresp) == GKM_DATA_ABORT) {
                ok = 0;
                msg = "aborted";
            }
        }
        if (!x->cancelled)
            x->cbs.on_done(x->arg, ok, x->status, timed_out,
                           ok ? NULL : msg);
        x->in_cb--;
    }
    xfer_free(x);
}

/* The request could not go out or no answer came: try once more on a new
 * connection if this one had served before and nothing of an answer
 * arrived, else fail. */
static void fail_or_retry(struct h1x *x, const char *msg)
{
    struct h1conn *old = x->c;
    if (old != NULL && old->uses > 1 && !x->got_answer && !x->retried) {
        struct h1conn *c = gkm_h1c_new(x->up, x->key, x->keylen);
        if (c != NULL) {
            release(x, 0);
            x->retried = 1;
            x->sent = 0;
            x->send_failed = 0;
            x->c = c;
            c->x = x;
            c->uses = 1;
            return; /* gkm_h1_connected sends */
        }
    }
    finish(x, 0, 0, 0, msg);
}

/* ---- the answer ----------------------------------------------------- */

/* A header value ended: trailing blanks are not part of it. */
static int end_value(struct h1x *x)
{
    while (x->hb.len > x->vstart && (x->hb.data[x->hb.len - 1] == ' ' ||
                                     x->hb.data[x->hb.len - 1] == '\t'))
        x->hb.len--;
    if (gkm_buf_append(&x->hb, "", 1) != 0)
        return -1;
    x->nresp++;
    x->in_value = 0;
    return 0;
}

/* Header names and values as libhttp-parser reports them, in pieces when
 * a read ends inside one. Trailers after a chunked body are ignored. */
static int hcb_field(http_parser *p, const char *at, size_t n)
{
    struct h1x *x = p->data;
    if (x->headers_delivered)
        return 0;
    if (x->in_value && end_value(x) != 0)
        return -1;
    if (x->nresp >= GKM_UP_MAX_RESPONSE_HEADERS || memchr(at, '\0', n))
        return -1;
    return gkm_buf_append(&x->hb, at, n) != 0 ? -1 : 0;
}

static int hcb_value(http_parser *p, const char *at, size_t n)
{
    struct h1x *x = p->data;
    if (x->headers_delivered)
        return 0;
    if (!x->in_value) {
        if (gkm_buf_append(&x->hb, "", 1) != 0)
            return -1;
        x->in_value = 1;
        x->vstart = x->hb.len;
    }
    if (memchr(at, '\0', n))
        return -1;
    return gkm_buf_append(&x->hb, at, n) != 0 ? -1 : 0;
}

/* Set up inflating when the answer's headers h name a coding. */
static int start_inflate(struct h1x *x, const struct gkm_header *h)
{
    const char *ce = NULL;
    for (size_t i = 0; i < x->nresp && ce == NULL; i++)
        if (strcasecmp(h[i].name, "content-encoding") == 0)
            ce = h[i].value;
    if (ce == NULL || ce[0] == '\0' || strcasecmp(ce, "identity") == 0)
        return 0;
    int bits;
    if (strcasecmp(ce, "gzip") == 0 || strcasecmp(ce, "x-gzip") == 0)
        bits = 16 + MAX_WBITS;
    else if (strcasecmp(ce, "deflate") == 0)
        bits = MAX_WBITS;
    else
        return -1;
    x->z = gkm_xcalloc(1, sizeof(*x->z));
    if (inflateInit2(x->z, bits) != Z_OK) {
        free(x->z);
        x->z = NULL;
        return -1;
    }
    return 0;
}

static int hcb_headers_done(http_parser *p)
{
    struct h1x *x = p->data;
    if (x->in_value && end_value(x) != 0)
        return -1;
    if (p->status_code / 100 == 1) {
        if (p->status_code == 101)
            return -1; /* no upgrade was asked for */
        x->interim = 1;
        return 1; /* a 1xx has no body, whatever Content-Length says */
    }
    x->status = p->status_code;
    const struct gkm_header *h = headers_view(x);
    if (start_inflate(x, h) != 0) {
        x->bad_coding = 1;
        return -1;
    }
    x->headers_delivered = 1;
    x->in_cb++;
    enum gkm_data_rc rc = x->cbs.on_headers(x->arg, x->status, h, x->nresp);
    x->in_cb--;
    if (x->cancelled || rc == GKM_DATA_ABORT) {
        x->aborted = 1;
        return -1;
    }
    /* 1: no body follows, whatever Content-Length says (RFC 9110 6.4.1;
     * libhttp-parser 2.9 would wait for the bytes it announces). */
    return x->head || x->status == 204 || x->status == 304 ? 1 : 0;
}

/* Hand body bytes to the consumer, or keep them if it paused before.
 * Returns 0, or -1 to stop (aborted, or too much held). */
static int give(struct h1x *x, const char *at, size_t n)
{
    if (n == 0)
        return 0;
    if (!x->paused) {
        x->in_cb++;
        enum gkm_data_rc rc = x->cbs.on_data(x->arg, at, n);
        x->in_cb--;
        if (x->cancelled || rc == GKM_DATA_ABORT) {
            x->aborted = 1;
            return -1;
        }
        if (rc == GKM_DATA_OK)
            return 0;
        x->paused = 1;
    }
    return gkm_buf_append(&x->held, at, n) != 0 ? -1 : 0;
}

static int hcb_body(http_parser *p, const char *at, size_t n)
{
    struct h1x *x = p->data;
    if (!x->headers_delivered)
        return -1; /* no body before the final answer's headers */
    if (x->z == NULL) {
        if (give(x, at, n) != 0)
            return -1;
    } else {
        char out[8192];
        x->z->next_in = (unsigned char *)(uintptr_t)at;
        x->z->avail_in = (unsigned)n;
        do {
            x->z->next_out = (unsigned char *)out;
            x->z->avail_out = sizeof(out);
            int r = inflate(x->z, Z_NO_FLUSH);
            if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR) {
                x->bad_coding = 1;
                return -1;
            }
            if (give(x, out, sizeof(out) - x->z->avail_out) != 0)
                return -1;
            if (r == Z_STREAM_END || (r == Z_BUF_ERROR && x->z->avail_out))
                break;
        } while (x->z->avail_in > 0 || x->z->avail_out == 0);
    }
    if (x->paused)
        http_parser_pause(p, 1);
    return 0;
}

static int hcb_complete(http_parser *p)
{
    struct h1x *x = p->data;
    if (x->interim) {
        /* A 1xx: its headers are dropped, the real answer follows. */
        x->interim = 0;
        gkm_buf_reset(&x->hb);
        x->nresp = 0;
        return 0;
    }
    x->complete = 1;
    http_parser_pause(p, 1); /* bytes after the answer are not ours */
    return 0;
}

static const http_parser_settings answer_settings = {
    .on_header_field = hcb_field,
    .on_header_value = hcb_value,
    .on_headers_complete = hcb_headers_done,
    .on_body = hcb_body,
    .on_message_complete = hcb_complete,
};

/* Parse what was read and not parsed. */
static int parse(struct h1x *x)
{
    size_t used = http_parser_execute(&x->p, &answer_settings,
                                      x->rbuf + x->rpos, x->rlen - x->rpos);
    x->rpos += used;
    if (x->cancelled) {
        finish(x, 0, 0, 0, "cancelled");
        return GONE;
    }
    if (x->complete) {
        int keep = http_should_keep_alive(&x->p) && x->rpos == x->rlen &&
                   x->sent == x->reqlen + x->bodylen;
        finish(x, 1, keep, 0, NULL);
        return GONE;
    }
    enum http_errno e = HTTP_PARSER_ERRNO(&x->p);
    if (e == HPE_PAUSED)
        return PAUSED; /* by the consumer (the end is handled above) */
    if (e != HPE_OK) {
        char msg[160];
        if (x->aborted)
            snprintf(msg, sizeof(msg), "aborted");
        else if (x->bad_coding)
            snprintf(msg, sizeof(msg),
                     "upstream answer in an unsupported or corrupt "
                     "Content-Encoding");
        else
            snprintf(msg, sizeof(msg), "malformed answer from upstream: %s",
                     http_errno_description(e));
        finish(x, 0, 0, 0, msg);
        return GONE;
    }
    return GO;
}

/* Offer held bytes again: GO when they were taken. */
static int give_held(struct h1x *x)
{
    if (x->held.len == 0)
        return GO;
    x->in_cb++;
    enum gkm_data_rc rc = x->cbs.on_data(x->arg, x->held.data, x->held.len);
    x->in_cb--;
    if (x->cancelled || rc == GKM_DATA_ABORT) {
        finish(x, 0, 0, 0, "aborted");
        return GONE;
    }
    if (rc == GKM_DATA_PAUSE) {
        x->paused = 1;
        return PAUSED;
    }
    gkm_buf_reset(&x->held);
    return GO;
}

/* Read and parse until the socket is drained, the answer ends, or the
 * consumer pauses. GO: x waits for more on the same connection; PAUSED;
 * GONE: x finished or moved to a new connection (its old one may be
 * freed). */
static int pump(struct h1x *x)
{
    char msg[CURL_ERROR_SIZE + 64];
    int r = give_held(x);
    if (r == GONE)
        return GONE;
    if (r == PAUSED)
        goto paused;
    if (HTTP_PARSER_ERRNO(&x->p) == HPE_PAUSED)
        http_parser_pause(&x->p, 0);
    for (;;) {
        if (x->rpos < x->rlen) {
            r = parse(x);
            if (r == GONE)
                return GONE;
            if (r == PAUSED)
                goto paused;
            continue;
        }
        if (x->rbuf == NULL)
            x->rbuf = gkm_xmalloc(RBUF_SIZE);
        ssize_t n = gkm_h1c_recv(x->c, x->rbuf, RBUF_SIZE, msg, sizeof(msg));
        if (n == -1)
            break;
        if (n == -2) {
            fail_or_retry(x, msg);
            return GONE;
        }
        if (n == 0) {
            /* The end of the stream: ends a close-delimited answer. */
            x->rpos = x->rlen = 0;
            http_parser_execute(&x->p, &answer_settings, NULL, 0);
            if (x->cancelled)
                finish(x, 0, 0, 0, "cancelled");
            else if (x->complete)
                finish(x, 1, 0, 0, NULL);
            else if (x->send_failed && !x->got_answer)
                fail_or_retry(x, x->send_err);
            else
                fail_or_retry(x, x->got_answer
                                     ? "upstream closed the connection "
                                       "before the answer ended"
                                     : "upstream closed the connection "
                                       "without answering");
            return GONE;
        }
        x->got_answer = 1;
        x->last_io_ms = gkm_mono_coarse_ms();
        x->rlen = (size_t)n;
        x->rpos = 0;
    }
    gkm_h1c_watch(x->c, sending(x) ? EV_READ | EV_WRITE : EV_READ);
    return GO;
paused:
    gkm_h1c_watch(x->c, sending(x) ? EV_WRITE : 0);
    return PAUSED;
}

/* ---- the request ---------------------------------------------------- */

/* Whether request bytes remain to be sent. */
static int sending(const struct h1x *x)
{
    return !x->send_failed && x->sent < x->reqlen + x->bodylen;
}

/* Send what the socket takes. GONE when x finished or moved to a new
 * connection (its old one may be freed), else GO. */
static int send_more(struct h1x *x)
{
    char msg[CURL_ERROR_SIZE + 64];
    size_t total = x->reqlen + x->bodylen;
    while (x->sent < total) {
        const char *a = NULL, *b;
        size_t an = 0, bn;
        if (x->sent < x->reqlen) {
            a = x->req + x->sent;
            an = x->reqlen - x->sent;
            b = x->body;
            bn = x->bodylen;
        } else {
            b = x->body + (x->sent - x->reqlen);
            bn = total - x->sent;
        }
        ssize_t n = gkm_h1c_send(x->c, a, an, b, bn, msg, sizeof(msg));
        if (n == -1) {
            gkm_h1c_watch(x->c, x->paused ? EV_WRITE : EV_READ | EV_WRITE);
            return GO;
        }
        if (n < 0) {
            /* The server may have answered early (413, 400) and closed:
             * that answer, if it is there, is the outcome (pump; the
             * connection is not kept with the request unsent). */
            x->send_failed = 1;
            snprintf(x->send_err, sizeof(x->send_err), "%s", msg);
            return pump(x) == GONE ? GONE : GO;
        }
        x->sent += (size_t)n;
        x->last_io_ms = gkm_mono_coarse_ms();
    }
    gkm_h1c_watch(x->c, x->paused ? 0 : EV_READ);
    return GO;
}

void gkm_h1_on_event(evutil_socket_t fd, short what, void *arg)
{
    struct h1conn *c = arg;
    struct h1x *x = c->x;
    if (x == NULL) {
        /* Idle: a TLS connection may take a session ticket or alert in
         * its stride; anything else (the end, bytes) retires it. */
        char b[64], msg[CURL_ERROR_SIZE + 64];
        if (c->raw || gkm_h1c_recv(c, b, sizeof(b), msg, sizeof(msg)) != -1)
            gkm_h1c_close(c);
        return;
    }
    /* Reading first: an answer that arrives while the request is still
     * going out (an early 413) is taken before a send fails on it. */
    if ((what & EV_READ) && !x->paused && pump(x) == GONE)
        return;
    if ((what & EV_WRITE) && sending(x))
        (void)send_more(x);
}

void gkm_h1_connected(struct h1conn *c, CURLcode res)
{
    struct gkm_upstream *up = c->up;
    struct h1x *x = c->x;
    char msg[CURL_ERROR_SIZE + 64];
    curl_socket_t fd = CURL_SOCKET_BAD;
    if (res != CURLE_OK) {
        snprintf(msg, sizeof(msg), "%s",
                 c->errbuf[0] ? c->errbuf : curl_easy_strerror(res));
    } else if (curl_easy_getinfo(c->easy, CURLINFO_ACTIVESOCKET, &fd) !=
                   CURLE_OK ||
               fd == CURL_SOCKET_BAD ||
               (c->ev = event_new(up->base, fd, EV_READ | EV_PERSIST,
                                  gkm_h1_on_event, c)) == NULL) {
        snprintf(msg, sizeof(msg), "no socket for the new connection");
        res = CURLE_COULDNT_CONNECT;
    } else {
        gkm_up_unpark(up, fd);
        c->fd = fd;
        /* Attach the connection to its handle (upstream_h1conn.c); nothing
         * is there to read yet. */
        if (gkm_h1c_attach(c, msg, sizeof(msg)) != 0)
            res = CURLE_RECV_ERROR;
    }
    if (res != CURLE_OK) {
        if (x != NULL) {
            c->x = NULL;
            x->c = NULL;
        }
        gkm_h1c_close(c);
        if (x != NULL)
            finish(x, 0, 0, res == CURLE_OPERATION_TIMEDOUT, msg);
        return;
    }
    if (x == NULL) {
        gkm_h1c_pool(c); /* its exchange was cancelled while it connected */
        return;
    }
    gkm_h1c_watch(c, EV_READ);
    (void)send_more(x);
}

/* ---- the entry points ----------------------------------------------- */

/* Whether a header line "Name: value" has an empty value (libcurl's list
 * drops those; so does this engine, for the same behaviour). */
static int empty_value(const char *h)
{
    const char *colon = strchr(h, ':');
    if (colon == NULL)
        return 1;
    for (const char *v = colon + 1; *v; v++)
        if (*v != ' ' && *v != '\t')
            return 0;
    return 1;
}

static char *put(char *w, const char *s, size_t n)
{
    memcpy(w, s, n);
    return w + n;
}

#define PUT_LIT(w, lit) put((w), (lit), sizeof(lit) - 1)

struct gkm_xfer *gkm_h1_start(struct gkm_upstream *up, const char *method,
                              const char *url, const char *const *headers,
                              size_t nheaders, const char *body,
                              size_t bodylen, const struct gkm_xfer_cbs *cbs,
                              void *arg)
{
    const char *sep = strstr(url, "://");
    if (sep == NULL)
        return NULL;
    size_t slen = (size_t)(sep - url);
    if (!(slen == 4 && strncasecmp(url, "http", 4) == 0) &&
        !(slen == 5 && strncasecmp(url, "https", 5) == 0))
        return NULL;
    size_t n = slen + 3;
    n += strcspn(url + n, "/?#");
    const char *auth = sep + 3; /* the Host header: host[:port] */
    size_t alen = (size_t)(url + n - auth);
    for (size_t i = alen; i > 0; i--) {
        if (auth[i - 1] == '@') { /* user:password@ is not for Host */
            auth += i;
            alen -= i;
            break;
        }
    }
    if (alen == 0)
        return NULL;
    const char *rest = url + n;
    size_t tlen = strcspn(rest, "#");
    int with_len = bodylen > 0 || strcmp(method, "POST") == 0 ||
                   strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0;
    char cl[GKM_LL_LEN];
    size_t cllen =
        with_len ? (size_t)(gkm_fmt_ll(cl, (long long)bodylen) - cl) : 0;
    size_t mlen = strlen(method);
    size_t len = mlen + 1 + gkm_up_target_len(up, rest, tlen) +
                 sizeof(" HTTP/1.1\r\nHost: ") - 1 + alen + 2 +
                 sizeof("Accept-Encoding: identity\r\n") - 1 + 2;
    if (with_len)
        len += sizeof("Content-Length: \r\n") - 1 + cllen;
    for (size_t i = 0; i < nheaders; i++)
        if (!empty_value(headers[i]))
            len += strlen(headers[i]) + 2;

    struct h1x *x = gkm_xcalloc(1, sizeof(*x) + n + 1);
    x->kind = GKM_UPK_H1;
    x->up = up;
    x->cbs = *cbs;
    x->arg = arg;
    x->body = body;
    x->bodylen = bodylen;
    x->head = strcmp(method, "HEAD") == 0;
    x->keylen = n;
    memcpy(x->key, url, n);
    x->req = gkm_xmalloc(len);
    char *w = put(x->req, method, mlen);
    *w++ = ' ';
    w = gkm_up_target_put(up, rest, tlen, w);
    w = PUT_LIT(w, " HTTP/1.1\r\nHost: ");
    w = put(w, auth, alen);
    w = PUT_LIT(w, "\r\n");
    for (size_t i = 0; i < nheaders; i++) {
        if (empty_value(headers[i]))
            continue;
        w = put(w, headers[i], strlen(headers[i]));
        w = PUT_LIT(w, "\r\n");
    }
    w = PUT_LIT(w, "Accept-Encoding: identity\r\n");
    if (with_len) {
        w = PUT_LIT(w, "Content-Length: ");
        w = put(w, cl, cllen);
        w = PUT_LIT(w, "\r\n");
    }
    w = PUT_LIT(w, "\r\n");
    x->reqlen = (size_t)(w - x->req);
    gkm_buf_init(&x->hb, GKM_UP_MAX_HEADER_BYTES);
    gkm_buf_init(&x->held, MAX_HELD);
    http_parser_init(&x->p, HTTP_RESPONSE);
    x->p.data = x;
    x->last_io_ms = gkm_mono_coarse_ms();

    struct h1conn *c = gkm_h1c_take(up, x->key, n);
    if (c == NULL && (c = gkm_h1c_new(up, x->key, n)) == NULL) {
        explicit_bzero(x->req, x->reqlen);
        free(x->req);
        free(x);
        return NULL;
    }
    x->c = c;
    c->x = x;
    c->uses++;
    x->next = up->h1_head;
    if (up->h1_head)
        up->h1_head->prev = x;
    up->h1_head = x;
    gkm_up_active_inc(up);
    /* A pooled connection sends from the loop, right after the caller's
     * callback returns (no callback may run inside this function); a new
     * one once it is connected (gkm_h1_connected). */
    if (c->ev != NULL)
        event_active(c->ev, EV_WRITE, 0);
    return (struct gkm_xfer *)(void *)x;
}

void gkm_h1_cancel(struct gkm_xfer *gx)
{
    struct h1x *x = (struct h1x *)(void *)gx;
    x->cancelled = 1;
    if (x->in_cb)
        return; /* finished by the code around the callback */
    struct h1conn *c = x->c;
    if (c != NULL && c->ev == NULL) {
        /* Still connecting: let it finish and join the pool. */
        x->c = NULL;
        c->x = NULL;
    }
    release(x, 0);
    xfer_free(x);
}

void gkm_h1_resume(struct gkm_xfer *gx)
{
    struct h1x *x = (struct h1x *)(void *)gx;
    if (x->cancelled || !x->paused)
        return;
    x->paused = 0;
    x->last_io_ms = gkm_mono_coarse_ms();
    /* Held bytes and the rest are read from the loop (gkm_h1_on_event). */
    if (x->c != NULL && x->c->ev != NULL)
        event_active(x->c->ev, EV_READ, 0);
}

void gkm_h1_sweep(struct gkm_upstream *up, int64_t now)
{
    long limit = up->opts.idle_timeout_ms;
    struct h1x *x;
again:
    for (x = up->h1_head; x != NULL; x = x->next) {
        if (x->cancelled || x->in_cb)
            continue;
        if (x->paused) {
            x->last_io_ms = now; /* a slow client is not an idle upstream */
            continue;
        }
        if (limit > 0 && now - x->last_io_ms >= limit) {
            char msg[96];
            snprintf(msg, sizeof(msg),
                     "no data from upstream for %lld s (--idle-timeout)",
                     (long long)(limit / 1000));
            finish(x, 0, 0, 1, msg);
            goto again; /* on_done may start or cancel others */
        }
    }
}

void gkm_h1_free_all(struct gkm_upstream *up)
{
    while (up->h1_head != NULL) {
        struct h1x *x = up->h1_head;
        x->cancelled = 1;
        release(x, 0);
        xfer_free(x);
    }
    while (up->h1_all != NULL)
        gkm_h1c_close(up->h1_all);
}
