/*
 * corelay.c - a benchmark reference, not part of the proxy: the lean
 * server of bench/hprelay.c (bench/leanserver.c: libevent read/write
 * events, libhttp-parser) with a different upstream half. libcurl only connects
 * (CURLOPT_CONNECT_ONLY) and carries bytes (curl_easy_send/curl_easy_recv,
 * through its connection filters: TLS for https); the request head is
 * written here in one piece, and the answer is parsed by libhttp-parser in
 * response mode. Connections are kept in a pool of our own, one request at
 * a time each (HTTP/1.1 keep-alive, no HTTP/2). It measures what framing
 * HTTP/1.1 ourselves over libcurl's connections would cost per request,
 * against libcurl's easy/multi transfer machinery (hprelay) and nginx.
 *
 * Simplifications that a real client could not make (they do not change
 * the per-request cost measured here): a new connection is made with a
 * blocking curl_easy_perform (loopback: instant); a request that cannot be
 * sent whole at once, an upstream that closes mid-answer, and any error
 * get a 502 and the connection dropped; no timeouts, no 1xx, no HEAD.
 *
 * usage: corelay LISTEN_PORT UPSTREAM_PORT KEY   (both on 127.0.0.1)
 */
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "leanserver.h"

#define MAX_IDLE 512

struct relay {
    struct event_base *base;
    char origin[64];
    char host[64]; /* "127.0.0.1:port" */
    char keyhdr[256];
    struct upconn *idle[MAX_IDLE];
    size_t nidle;
    http_parser_settings rps; /* answers */
    struct lean_server srv;
};

/* One upstream connection and the exchange on it. */
struct upconn {
    struct relay *r;
    CURL *easy;
    curl_socket_t fd;
    struct event *ev;
    http_parser rp;
    struct conn *c;      /* the client; NULL once it went away */
    struct obuf req;     /* the request, head and body */
    struct obuf hdr;     /* the answer's header lines to relay */
    struct obuf body;    /* a whole answer */
    size_t hfield;       /* start of the header line being read, in hdr */
    int in_value, skip;  /* header parsing state */
    int stream, started, done, keep;
    char buf[4096];
};
static void uc_drop(struct upconn *u)
{
    event_free(u->ev);
    curl_easy_cleanup(u->easy); /* closes the socket */
    free(u->req.d);
    free(u->hdr.d);
    free(u->body.d);
    free(u);
}

/* The exchange ended (ok or not): answer the client, pool or drop u. */
static void uc_finish(struct upconn *u, int ok)
{
    struct relay *r = u->r;
    struct conn *c = u->c;
    event_del(u->ev);
    if (c != NULL) {
        struct obuf *o = &c->out;
        if (u->started) {
            ob_add(o, "0\r\n\r\n", 5);
        } else if (!ok) {
            put_status(o, 502);
            ob_add(o, "Content-Length: 0\r\n\r\n", 21);
        } else {
            char cl[64];
            put_status(o, (long)u->rp.status_code);
            ob_add(o, u->hdr.d, u->hdr.len);
            int n = snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n\r\n",
                             u->body.len);
            ob_add(o, cl, (size_t)n);
            ob_add(o, u->body.d, u->body.len);
        }
        u->c = NULL;
        request_done(c);
    }
    if (ok && u->keep && r->nidle < MAX_IDLE)
        r->idle[r->nidle++] = u;
    else
        uc_drop(u);
}

static int rcb_field(http_parser *p, const char *at, size_t n)
{
    struct upconn *u = p->data;
    if (u->in_value || u->hdr.len == u->hfield) {
        if (u->in_value && !u->skip)
            ob_add(&u->hdr, "\r\n", 2);
        u->hfield = u->hdr.len;
        u->in_value = 0;
        u->skip = 0;
    }
    ob_add(&u->hdr, at, n);
    return 0;
}

static int rcb_value(http_parser *p, const char *at, size_t n)
{
    struct upconn *u = p->data;
    if (!u->in_value) {
        u->in_value = 1;
        u->skip = hop_or_auth(u->hdr.d + u->hfield, u->hdr.len - u->hfield);
        if (u->skip)
            u->hdr.len = u->hfield;
        else
            ob_add(&u->hdr, ": ", 2);
    }
    if (!u->skip)
        ob_add(&u->hdr, at, n);
    return 0;
}

static int rcb_headers_done(http_parser *p)
{
    struct upconn *u = p->data;
    if (u->in_value && !u->skip)
        ob_add(&u->hdr, "\r\n", 2);
    u->in_value = 0;
    u->hfield = u->hdr.len;
    return 0;
}

static int rcb_body(http_parser *p, const char *at, size_t n)
{
    struct upconn *u = p->data;
    if (!u->stream) {
        ob_add(&u->body, at, n);
        return 0;
    }
    struct conn *c = u->c;
    if (c == NULL)
        return 1; /* client gone */
    if (!u->started) {
        put_status(&c->out, (long)p->status_code);
        ob_add(&c->out, u->hdr.d, u->hdr.len);
        ob_add(&c->out, "Transfer-Encoding: chunked\r\n\r\n", 30);
        u->started = 1;
    }
    char hx[32];
    int hn = snprintf(hx, sizeof(hx), "%zx\r\n", n);
    ob_add(&c->out, hx, (size_t)hn);
    ob_add(&c->out, at, n);
    ob_add(&c->out, "\r\n", 2);
    return flush_out(c) != 0;
}

static int rcb_complete(http_parser *p)
{
    struct upconn *u = p->data;
    u->done = 1;
    u->keep = http_should_keep_alive(p);
    http_parser_pause(p, 1);
    return 0;
}

static void on_up_readable(evutil_socket_t fd, short what, void *arg)
{
    struct upconn *u = arg;
    (void)fd;
    (void)what;
    for (;;) {
        size_t got = 0;
        CURLcode rc = curl_easy_recv(u->easy, u->buf, sizeof(u->buf), &got);
        if (rc == CURLE_AGAIN)
            return;
        if (rc != CURLE_OK || got == 0) {
            uc_finish(u, 0); /* closed or failed before the answer's end */
            return;
        }
        size_t used = http_parser_execute(&u->rp, &u->r->rps, u->buf, got);
        if (u->done) {
            uc_finish(u, used == got); /* bytes after the answer: drop */
            return;
        }
        if (HTTP_PARSER_ERRNO(&u->rp) != HPE_OK) {
            uc_finish(u, 0);
            return;
        }
    }
}

static struct upconn *uc_new(struct relay *r)
{
    struct upconn *u = calloc(1, sizeof(*u));
    if (u == NULL)
        abort();
    u->r = r;
    u->easy = curl_easy_init();
    curl_easy_setopt(u->easy, CURLOPT_URL, r->origin);
    curl_easy_setopt(u->easy, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(u->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(u->easy, CURLOPT_TCP_KEEPALIVE, 1L);
    if (curl_easy_perform(u->easy) != CURLE_OK ||
        curl_easy_getinfo(u->easy, CURLINFO_ACTIVESOCKET, &u->fd) != CURLE_OK) {
        curl_easy_cleanup(u->easy);
        free(u);
        return NULL;
    }
    u->ev = event_new(r->base, u->fd, EV_READ | EV_PERSIST, on_up_readable, u);
    return u;
}

static void detach(struct conn *c)
{
    struct upconn *u = c->up;
    u->c = NULL;
}

static void start_upstream(struct conn *c)
{
    struct relay *r = c->srv->arg;
    struct upconn *u = r->nidle > 0 ? r->idle[--r->nidle] : uc_new(r);
    c->busy = 1;
    if (u == NULL) {
        put_status(&c->out, 502);
        ob_add(&c->out, "Content-Length: 0\r\n\r\n", 21);
        request_done(c);
        return;
    }
    c->up = u;
    u->c = c;
    u->req.len = u->hdr.len = u->body.len = 0;
    u->hfield = 0;
    u->in_value = u->skip = u->started = u->done = u->keep = 0;
    http_parser_init(&u->rp, HTTP_RESPONSE);
    u->rp.data = u;
    c->url[c->urllen] = '\0';
    u->stream = strstr(c->url, ":streamGenerateContent") != NULL;
    const char *m = http_method_str((enum http_method)c->p.method);
    struct obuf *q = &u->req;
    ob_add(q, m, strlen(m));
    ob_add(q, " ", 1);
    ob_add(q, c->url, c->urllen);
    ob_add(q, " HTTP/1.1\r\nHost: ", 17);
    ob_add(q, r->host, strlen(r->host));
    ob_add(q, "\r\n", 2);
    for (int i = 0; i < c->nh; i++) {
        if (hop_or_auth(c->arena + c->hname[i], c->hnlen[i]))
            continue;
        ob_add(q, c->arena + c->hname[i], c->hnlen[i]);
        ob_add(q, ": ", 2);
        ob_add(q, c->arena + c->hval[i], c->hvlen[i]);
        ob_add(q, "\r\n", 2);
    }
    ob_add(q, r->keyhdr, strlen(r->keyhdr));
    char cl[64];
    int n = snprintf(cl, sizeof(cl), "\r\nContent-Length: %zu\r\n\r\n", c->body.len);
    ob_add(q, cl, (size_t)n);
    ob_add(q, c->body.d, c->body.len);
    size_t sent = 0;
    CURLcode rc = curl_easy_send(u->easy, q->d, q->len, &sent);
    if (rc != CURLE_OK || sent != q->len) {
        uc_finish(u, 0);
        return;
    }
    event_add(u->ev, NULL);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: corelay LISTEN_PORT UPSTREAM_PORT KEY\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct relay r = {0};
    snprintf(r.origin, sizeof(r.origin), "http://127.0.0.1:%d/", atoi(argv[2]));
    snprintf(r.host, sizeof(r.host), "127.0.0.1:%d", atoi(argv[2]));
    snprintf(r.keyhdr, sizeof(r.keyhdr), "x-goog-api-key: %s", argv[3]);
    lean_server_init(&r.srv);
    r.srv.start = start_upstream;
    r.srv.detach = detach;
    r.srv.arg = &r;
    r.rps.on_header_field = rcb_field;
    r.rps.on_header_value = rcb_value;
    r.rps.on_headers_complete = rcb_headers_done;
    r.rps.on_body = rcb_body;
    r.rps.on_message_complete = rcb_complete;
    r.base = lean_base_new();
    r.srv.base = r.base;
    struct evconnlistener *l = lean_listen(&r.srv, "corelay", argv[1]);
    if (l == NULL)
        return 1;
    event_base_dispatch(r.base);
    evconnlistener_free(l);
    while (r.nidle > 0)
        uc_drop(r.idle[--r.nidle]);
    event_base_free(r.base);
    curl_global_cleanup();
    return 0;
}
