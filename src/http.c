/*
 * http.c - the client-facing HTTP/1.1 server (see http.h).
 *
 * One struct hconn per client connection, one request at a time on it
 * (pipelined requests wait in the input buffer until the reply before them
 * is complete). Bytes are read into a fixed buffer and handed to
 * libhttp-parser, whose callbacks copy the request line and headers into
 * one capped arena and the body into a capped buffer. Replies are
 * formatted into the output buffer and written with one writev in the
 * same loop pass; only what the socket does not take waits for EV_WRITE.
 * Read interest stays on for the whole connection, so a client that leaves
 * while its request is in flight is seen at once (EOF) at no extra cost.
 *
 * Nothing reachable from a gkm_hreq_* call frees a connection: closing and
 * starting the next pipelined request happen in the connection's own
 * "work" event, so a reply may be sent from inside any callback.
 *
 * Timeouts use one lazy timer per connection: activity only moves a
 * deadline; the timer re-arms itself when it fires early.
 */
#define _GNU_SOURCE 1
#include "http.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <http_parser.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "http_int.h"
#include "log.h"
#include "util.h"


static void conn_close(struct hconn *c, int notify);
static void process(struct hconn *c);

/* ---- small helpers ---------------------------------------------------- */

void gkm_hc_out_add(struct hconn *c, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (c->outoff > 0 && c->outoff == c->out.len) {
        gkm_buf_reset(&c->out);
        c->outoff = 0;
    }
    if (gkm_buf_append(&c->out, p, n) != 0)
        abort(); /* cap is SIZE_MAX/2: cannot happen */
}

static void schedule(struct hconn *c)
{
    event_active(c->work, EV_TIMEOUT, 1);
}

static int64_t timeout_ms(const struct hconn *c)
{
    return (int64_t)c->h->o.timeout_ms;
}

static void touch(struct hconn *c)
{
    c->deadline = gkm_mono_coarse_ms() + timeout_ms(c);
}

/* The output buffer holds a finished reply's bytes: count it for drains. */
static void count_flushing(struct hconn *c)
{
    if (!c->counted && gkm_hc_pending(c) > 0) {
        c->counted = 1;
        c->h->flushing++;
    }
}

static int uncount_flushing(struct hconn *c)
{
    if (!c->counted)
        return 0;
    c->counted = 0;
    c->h->flushing--;
    return 1;
}

/* Write what is queued plus extra (n buffers). What the socket does not
 * take stays queued (extra is copied then) and EV_WRITE is armed; while it
 * is armed everything is only queued, in order. An error marks the
 * connection dead and schedules its close. */
void gkm_hc_flush(struct hconn *c, const struct iovec *extra, int n)
{
    if (c->dead)
        return;
    if (c->wblocked) {
        for (int i = 0; i < n; i++)
            gkm_hc_out_add(c, extra[i].iov_base, extra[i].iov_len);
        return;
    }
    struct iovec iov[5];
    int k = 0;
    size_t queued = gkm_hc_pending(c), total = queued;
    if (queued > 0) {
        iov[k].iov_base = c->out.data + c->outoff;
        iov[k++].iov_len = queued;
    }
    for (int i = 0; i < n && k < 5; i++) {
        iov[k++] = extra[i];
        total += extra[i].iov_len;
    }
    if (total == 0)
        return;
    ssize_t w;
    do {
        w = writev(c->fd, iov, k);
    } while (w < 0 && errno == EINTR);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        c->dead = 1;
        schedule(c);
        return;
    }
    size_t done = w > 0 ? (size_t)w : 0;
    if (done >= queued) {
        done -= queued;
        gkm_buf_reset(&c->out);
        c->outoff = 0;
    } else {
        c->outoff += done;
        done = 0;
    }
    for (int i = 0; i < n; i++) {
        if (done >= extra[i].iov_len) {
            done -= extra[i].iov_len;
            continue;
        }
        gkm_hc_out_add(c, (const char *)extra[i].iov_base + done,
                extra[i].iov_len - done);
        done = 0;
    }
    if (gkm_hc_pending(c) > 0) {
        c->wblocked = 1;
        touch(c);
        event_add(c->wev, NULL);
    }
}

void gkm_hc_flush_with(struct hconn *c, const char *p, size_t n)
{
    struct iovec iov = {(void *)p, n};
    gkm_hc_flush(c, &iov, n > 0 ? 1 : 0);
}

/* ---- request parsing (libhttp-parser callbacks) ---------------------- */

static void refuse(struct hconn *c, int status, const char *reason)
{
    if (c->reject_status == 0) {
        c->reject_status = status;
        c->reject_reason = reason;
    }
}

/* Append request-line/header bytes to the arena, within the header cap. */
static int arena_add(struct hconn *c, const char *at, size_t n, enum tok t)
{
    struct gkm_hreq *r = &c->req;
    if (c->last != t) {
        if (c->last != TOK_NONE && gkm_buf_append(&r->arena, "", 1) != 0)
            goto too_big;
        if (t == TOK_FIELD && ++r->nh > MAX_HEADERS) {
            refuse(c, 431, "Too many request headers.");
            return 1;
        }
        c->last = t;
    }
    c->hbytes += n;
    if (c->hbytes > c->h->o.max_header_bytes ||
        gkm_buf_append(&r->arena, at, n) != 0)
        goto too_big;
    return 0;
too_big:
    refuse(c, 431, "Request line and headers are larger than the proxy's "
                   "limit (--max-header-size).");
    return 1;
}

/* The request fields were cleared when the reply before ended
 * (reset_request); only the parsing state starts here. */
static int on_begin(http_parser *p)
{
    struct hconn *c = p->data;
    c->midreq = 1;
    touch(c); /* from here the headers have one --client-timeout */
    c->last = TOK_NONE;
    c->hbytes = 0;
    gkm_buf_reset(&c->req.arena);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    return arena_add(p->data, at, n, TOK_URL);
}

/* Trailers (header lines after a chunked body) are counted against the
 * header cap and dropped: the request's headers are indexed by then. */
static int trailer(struct hconn *c, size_t n)
{
    c->hbytes += n;
    if (c->hbytes <= c->h->o.max_header_bytes)
        return 0;
    refuse(c, 431, "Request line and headers are larger than the proxy's "
                   "limit (--max-header-size).");
    return 1;
}

static int on_field(http_parser *p, const char *at, size_t n)
{
    struct hconn *c = p->data;
    if (c->indexed)
        return trailer(c, n);
    return arena_add(c, at, n, TOK_FIELD);
}

static int on_value(http_parser *p, const char *at, size_t n)
{
    struct hconn *c = p->data;
    if (c->indexed)
        return trailer(c, n);
    if (c->last == TOK_URL || c->last == TOK_NONE)
        return 1; /* cannot happen: a value without a name */
    return arena_add(c, at, n, TOK_VALUE);
}

static int method_allowed(unsigned m)
{
    return m == HTTP_GET || m == HTTP_POST || m == HTTP_HEAD ||
           m == HTTP_PUT || m == HTTP_DELETE || m == HTTP_OPTIONS ||
           m == HTTP_PATCH;
}

/* Index the arena: uri, then name/value pairs, values trimmed. */
static int index_headers(struct hconn *c)
{
    struct gkm_hreq *r = &c->req;
    if (c->last == TOK_FIELD && gkm_buf_append(&r->arena, "", 1) != 0)
        return -1; /* a name without a value: an empty one */
    if (gkm_buf_append(&r->arena, "", 1) != 0)
        return -1;
    if (r->nh * 2 > r->hvalloc) {
        r->hvalloc = r->nh * 2;
        free(r->hv);
        r->hv = gkm_xmalloc(r->hvalloc * sizeof(char *));
    }
    char *s = r->arena.data;
    char *end = s + r->arena.len;
    r->uri = s;
    s += strlen(s) + 1;
    for (size_t i = 0; i < 2 * r->nh; i++) {
        if (s >= end)
            return -1;
        size_t l = strlen(s);
        char *next = s + l + 1;
        if (i & 1) { /* value: trailing blanks off */
            while (l > 0 && (s[l - 1] == ' ' || s[l - 1] == '\t'))
                s[--l] = '\0';
        }
        r->hv[i] = s;
        s = next;
    }
    return 0;
}

static int on_headers_done(http_parser *p)
{
    struct hconn *c = p->data;
    struct gkm_hreq *r = &c->req;
    if (c->last == TOK_NONE) {
        refuse(c, 400, "Malformed HTTP request.");
        return 1;
    }
    if (index_headers(c) == 0)
        c->indexed = 1;
    else {
        refuse(c, 431, "Request line and headers are larger than the "
                       "proxy's limit (--max-header-size).");
        return 1;
    }
    r->method = http_method_str((enum http_method)p->method);
    r->is_head = p->method == HTTP_HEAD;
    r->minor = p->http_minor;
    if (p->http_major != 1) {
        r->minor = 1;
        refuse(c, 505, "Only HTTP/1.0 and HTTP/1.1 are served.");
        return 1;
    }
    if (!method_allowed(p->method)) {
        refuse(c, 405, "Method not allowed.");
        return 1;
    }
    if (p->content_length != ULLONG_MAX &&
        p->content_length > c->h->o.max_body_bytes) {
        refuse(c, 413, NULL);
        return 1;
    }
    const char *ex = gkm_hreq_header(r, "Expect");
    if (ex != NULL && strcasecmp(ex, "100-continue") == 0 && r->minor >= 1) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        gkm_hc_flush_with(c, cont, sizeof(cont) - 1);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct hconn *c = p->data;
    if (gkm_buf_append(&c->req.body, at, n) != 0) {
        refuse(c, 413, NULL);
        return 1;
    }
    return 0;
}

static int on_complete(http_parser *p)
{
    struct hconn *c = p->data;
    c->complete = 1;
    c->keepalive = http_should_keep_alive(p) && !p->upgrade;
    http_parser_pause(p, 1);
    return 0;
}

/* ---- the request's life on the connection ----------------------------- */

static void reset_request(struct hconn *c)
{
    struct gkm_hreq *r = &c->req;
    c->busy = 0;
    c->complete = 0;
    c->midreq = 0;
    c->indexed = 0; /* a refusal before the next request shows nothing old */
    r->method = NULL;
    r->uri = NULL;
    r->nh = 0;
    r->is_head = 0;
    r->minor = 1;
    r->nobody = 0;
    r->drained = r->closed = NULL;
    r->cbarg = NULL;
    r->started = r->chunked = 0;
    gkm_buf_reset(&r->ohdr);
    if (r->body.alloc > BODY_KEEP)
        gkm_buf_free(&r->body);
    gkm_buf_reset(&r->body);
}

/* The reply is complete (all of it queued or written). */
void gkm_hc_reply_done(struct hconn *c)
{
    reset_request(c);
    touch(c);
    count_flushing(c);
    if (c->closing || c->dead) {
        if (gkm_hc_pending(c) == 0 || c->dead)
            schedule(c);
        return; /* else on_writable closes after the last byte */
    }
    if (gkm_hc_pending(c) > 0)
        return; /* on_writable continues */
    if (c->inlen > 0)
        schedule(c); /* a pipelined request */
    else if (c->rpaused) {
        c->rpaused = 0;
        event_add(c->rev, NULL);
    }
}

static void reject_now(struct hconn *c)
{
    struct gkm_http *h = c->h;
    struct gkm_hreq *r = &c->req;
    int status = c->reject_status;
    const char *reason = c->reject_reason;
    char msg[200];
    if (status == 413) {
        snprintf(msg, sizeof(msg),
                 "Request body is larger than the proxy's limit of %llu bytes "
                 "(--max-body-size).",
                 (unsigned long long)h->o.max_body_bytes);
        reason = msg;
    }
    if (!c->indexed)
        r->nh = 0; /* headers half-read: show none (uri and method unset) */
    c->inlen = 0;
    c->closing = 1;
    c->linger = 1;
    c->busy = 1;
    c->keepalive = 0;
    h->o.reject(r, status, reason ? reason : "Malformed HTTP request.", h->o.arg);
    if (c->busy) /* the callback did not answer */
        gkm_hreq_send(r, status, NULL, 0);
}

static void dispatch(struct hconn *c)
{
    struct gkm_hreq *r = &c->req;
    c->busy = 1;
    c->midreq = 0;
    if (r->body.data == NULL && gkm_buf_append(&r->body, "", 0) != 0)
        abort(); /* cannot happen */
    c->h->o.handler(r, c->h->o.arg);
}

/* Parse d[0..n); hand each whole request to the handler. Returns the
 * bytes consumed: parsing stops at a request still in flight, a reply
 * still being written, or a refusal (which drops the rest). */
static size_t parse_some(struct hconn *c, const char *d, size_t n)
{
    struct gkm_http *h = c->h;
    size_t off = 0;
    while (off < n && !c->busy && !c->closing && !c->dead && gkm_hc_pending(c) == 0) {
        if (HTTP_PARSER_ERRNO(&c->p) == HPE_PAUSED)
            http_parser_pause(&c->p, 0);
        size_t used = http_parser_execute(&c->p, &h->ps, d + off, n - off);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->p);
        off += used < n - off ? used : n - off;
        if (e == HPE_HEADER_OVERFLOW)
            refuse(c, 431, "Request line and headers are larger than the "
                           "proxy's limit (--max-header-size).");
        else if (e != HPE_OK && e != HPE_PAUSED)
            refuse(c, 400, "Malformed HTTP request.");
        if (c->reject_status) {
            reject_now(c);
            return n;
        }
        if (!c->complete)
            break; /* all consumed: wait for more */
        dispatch(c);
    }
    return off;
}

/* Keep d[0..n) (unparsed input) in the connection's own buffer. */
static void stash(struct hconn *c, const char *d, size_t n)
{
    if (c->in == NULL)
        c->in = gkm_xmalloc(IN_CAP);
    memmove(c->in + c->inlen, d, n);
    c->inlen += n;
}

/* Parse the connection's kept input. */
static void process(struct hconn *c)
{
    if (c->inlen > 0) {
        size_t used = parse_some(c, c->in, c->inlen);
        if (c->inlen > 0) { /* a refusal may have emptied it */
            memmove(c->in, c->in + used, c->inlen - used);
            c->inlen -= used;
        }
    }
    if (c->inlen == 0 && c->in != NULL) {
        free(c->in); /* idle connections hold no input buffer */
        c->in = NULL;
    }
    if (c->rpaused && !c->busy && c->inlen < IN_CAP && !c->closing) {
        c->rpaused = 0;
        event_add(c->rev, NULL);
    }
}

/* ---- connection events ------------------------------------------------ */

static void start_linger(struct hconn *c)
{
    c->lingering = 1;
    shutdown(c->fd, SHUT_WR);
    c->deadline = gkm_mono_coarse_ms() + LINGER_MS;
    struct timeval tv = {LINGER_MS / 1000, (LINGER_MS % 1000) * 1000};
    event_add(c->tmo, &tv);
    if (c->rpaused) {
        c->rpaused = 0;
        event_add(c->rev, NULL);
    }
}

static void on_work(evutil_socket_t fd, short what, void *arg)
{
    struct hconn *c = arg;
    (void)fd;
    (void)what;
    if (c->dead) {
        conn_close(c, 1);
        return;
    }
    if (c->closing && !c->busy) {
        if (gkm_hc_pending(c) > 0)
            return; /* on_writable finishes it */
        if (c->linger && !c->lingering)
            start_linger(c);
        else if (!c->lingering)
            conn_close(c, 0);
        return;
    }
    if (!c->busy)
        process(c);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct hconn *c = arg;
    (void)what;
    if (c->lingering) {
        char drop[IN_CAP];
        ssize_t n = read(fd, drop, sizeof(drop));
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            conn_close(c, 0);
        return;
    }
    if (!c->busy && c->inlen == 0 && !c->closing && gkm_hc_pending(c) == 0) {
        /* The usual case: read into the server's scratch buffer, parse
         * from there, keep only what a request in flight left over. */
        char *buf = c->h->scratch;
        ssize_t n = read(fd, buf, IN_CAP);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (n <= 0) {
            conn_close(c, 1); /* EOF or reset */
            return;
        }
        if (!c->midreq || c->indexed)
            touch(c); /* the headers must arrive within one timeout */
        size_t used = parse_some(c, buf, (size_t)n);
        if (used < (size_t)n && !c->closing && !c->dead)
            stash(c, buf + used, (size_t)n - used);
        return;
    }
    if (c->inlen == IN_CAP) { /* pipelined input while busy: wait */
        event_del(c->rev);
        c->rpaused = 1;
        return;
    }
    if (c->in == NULL)
        c->in = gkm_xmalloc(IN_CAP);
    ssize_t n = read(fd, c->in + c->inlen, IN_CAP - c->inlen);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n == 0 && !c->busy && gkm_hc_pending(c) > 0) {
        /* The client is done sending but may still read: finish writing
         * the reply it has, then close (on_writable). */
        c->closing = 1;
        c->linger = 0;
        event_del(c->rev);
        return;
    }
    if (n <= 0) {
        conn_close(c, 1); /* EOF or reset: the client left */
        return;
    }
    c->inlen += (size_t)n;
    if (!c->busy) {
        if (!c->midreq || c->indexed)
            touch(c);
        if (!c->closing)
            process(c);
    }
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct hconn *c = arg;
    struct gkm_http *h = c->h;
    (void)what;
    while (gkm_hc_pending(c) > 0) {
        ssize_t w = write(fd, c->out.data + c->outoff, gkm_hc_pending(c));
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            touch(c);
            event_add(c->wev, NULL);
            return;
        }
        if (w <= 0) {
            conn_close(c, 1);
            return;
        }
        c->outoff += (size_t)w;
    }
    gkm_buf_reset(&c->out);
    c->outoff = 0;
    c->wblocked = 0;
    touch(c);
    int quiet = uncount_flushing(c);
    if (c->busy) {
        if (c->req.drained)
            c->req.drained(&c->req, c->req.cbarg);
    } else if (c->closing) {
        schedule(c);
    } else if (c->inlen > 0) {
        schedule(c);
    } else if (c->rpaused) {
        c->rpaused = 0;
        event_add(c->rev, NULL);
    }
    if (quiet && h->o.quiet)
        h->o.quiet(h->o.arg);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct hconn *c = arg;
    (void)fd;
    (void)what;
    int64_t now = gkm_mono_coarse_ms();
    int applies = !c->busy || gkm_hc_pending(c) > 0 || c->lingering;
    if (c->dead || (applies && now >= c->deadline)) {
        conn_close(c, 1);
        return;
    }
    int64_t ms = applies ? c->deadline - now : timeout_ms(c);
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    event_add(c->tmo, &tv);
}

/* Close c; a request the handler still owns gets its close callback
 * first when notify is set. */
static void conn_close(struct hconn *c, int notify)
{
    struct gkm_http *h = c->h;
    if (c->busy) {
        gkm_hreq_cb cb = c->req.closed;
        void *cbarg = c->req.cbarg;
        c->busy = 0;
        c->dead = 1;
        if (notify && cb)
            cb(&c->req, cbarg);
    }
    int quiet = uncount_flushing(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    event_free(c->rev);
    event_free(c->wev);
    event_free(c->tmo);
    event_free(c->work);
    close(c->fd);
    gkm_buf_free(&c->out);
    gkm_buf_free(&c->req.arena);
    gkm_buf_free(&c->req.body);
    gkm_buf_free(&c->req.ohdr);
    free(c->req.hv);
    free(c->in);
    free(c);
    if (quiet && h->o.quiet)
        h->o.quiet(h->o.arg);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg)
{
    struct gkm_http *h = arg;
    (void)l;
    (void)salen;
    if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    gkm_hc_adopt(h, fd);
}

void gkm_hc_adopt(struct gkm_http *h, int fd)
{
    struct hconn *c = gkm_xcalloc(1, sizeof(*c));
    c->h = h;
    c->fd = fd;
    http_parser_init(&c->p, HTTP_REQUEST);
    c->p.data = c;
    gkm_buf_init(&c->out, SIZE_MAX / 2);
    gkm_buf_init(&c->req.arena, h->o.max_header_bytes + 2 * MAX_HEADERS + 8);
    gkm_buf_init(&c->req.body, (size_t)h->o.max_body_bytes);
    gkm_buf_init(&c->req.ohdr, 1024 * 1024);
    c->req.c = c;
    c->req.minor = 1; /* as reset_request leaves it between requests */
    c->keepalive = 1;
    c->rev = event_new(h->base, fd, EV_READ | EV_PERSIST, on_readable, c);
    c->wev = event_new(h->base, fd, EV_WRITE, on_writable, c);
    c->tmo = evtimer_new(h->base, on_timer, c);
    c->work = event_new(h->base, -1, 0, on_work, c);
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    if (!c->rev || !c->wev || !c->tmo || !c->work) {
        conn_close(c, 0);
        return;
    }
    touch(c);
    int64_t ms = timeout_ms(c);
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    event_add(c->rev, NULL);
    event_add(c->tmo, &tv);
}

static void on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    struct gkm_http *h = arg;
    (void)fd;
    (void)what;
    if (h->lis && !h->draining)
        evconnlistener_enable(h->lis);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    struct gkm_http *h = arg;
    int err = EVUTIL_SOCKET_ERROR();
    gkm_warn(h->log, "cannot accept a connection: %s; pausing %d ms",
             strerror(err), ACCEPT_PAUSE_MS);
    evconnlistener_disable(l);
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
    event_add(h->accept_pause, &tv);
}

/* ---- server ----------------------------------------------------------- */

struct gkm_http *gkm_http_new(struct event_base *base,
                              const struct gkm_http_opts *opts,
                              struct gkm_log *log)
{
    struct gkm_http *h = gkm_xcalloc(1, sizeof(*h));
    h->base = base;
    h->o = *opts;
    h->log = log;
    h->ps.on_message_begin = on_begin;
    h->ps.on_url = on_url;
    h->ps.on_header_field = on_field;
    h->ps.on_header_value = on_value;
    h->ps.on_headers_complete = on_headers_done;
    h->ps.on_body = on_body;
    h->ps.on_message_complete = on_complete;
    /* The parser's own limit counts every byte of the request line and
     * headers (the blanks the callbacks never see too) and chunk-size
     * lines; ours, in the callbacks, counts what is kept. Both are
     * --max-header-size (the parser's is process-wide: set here, before
     * any request, from the one configuration). */
    size_t lim = opts->max_header_bytes + 64;
    http_parser_set_max_header_size(lim > UINT32_MAX / 2 ? UINT32_MAX / 2
                                                         : (uint32_t)lim);
    h->accept_pause = evtimer_new(base, on_accept_resume, h);
    if (h->accept_pause == NULL) {
        free(h);
        return NULL;
    }
    return h;
}

int gkm_http_listen(struct gkm_http *h, const char *host, int port,
                    int backlog, int *bound_port, char *err, size_t errlen)
{
    struct evutil_addrinfo hints, *ai = NULL;
    char ps[16];
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = EVUTIL_AI_PASSIVE;
    snprintf(ps, sizeof(ps), "%d", port);
    int rc = evutil_getaddrinfo(host, ps, &hints, &ai);
    if (rc != 0 || ai == NULL) {
        snprintf(err, errlen, "cannot resolve listen address %s: %s", host,
                 evutil_gai_strerror(rc));
        return -1;
    }
    h->lis = evconnlistener_new_bind(
        h->base, on_accept, h,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
        backlog, ai->ai_addr, (int)ai->ai_addrlen);
    evutil_freeaddrinfo(ai);
    if (h->lis == NULL) {
        snprintf(err, errlen, "%s", strerror(errno));
        return -1;
    }
    evconnlistener_set_error_cb(h->lis, on_accept_error);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    *bound_port = port;
    if (getsockname(evconnlistener_get_fd(h->lis), (struct sockaddr *)&ss,
                    &sl) == 0) {
        if (ss.ss_family == AF_INET)
            *bound_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            *bound_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return 0;
}

void gkm_http_drain(struct gkm_http *h)
{
    h->draining = 1;
    if (h->lis)
        evconnlistener_disable(h->lis);
    event_del(h->accept_pause);
    struct hconn *c = h->conns, *next;
    for (; c != NULL; c = next) {
        next = c->next;
        if (!c->busy && !c->midreq && c->inlen == 0 && gkm_hc_pending(c) == 0)
            conn_close(c, 0); /* idle keep-alive connection */
        else if (!c->busy && !c->midreq)
            c->closing = 1; /* after the reply being written */
    }
}

unsigned gkm_http_flushing(const struct gkm_http *h)
{
    return h ? h->flushing : 0;
}

void gkm_http_free(struct gkm_http *h)
{
    if (h == NULL)
        return;
    h->o.quiet = NULL;
    while (h->conns)
        conn_close(h->conns, 1);
    if (h->lis)
        evconnlistener_free(h->lis);
    event_free(h->accept_pause);
    free(h);
}

