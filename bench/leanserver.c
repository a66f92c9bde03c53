/*
 * leanserver.c - see leanserver.h (benchmark references only).
 */
#include "leanserver.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

void ob_add(struct obuf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t want = b->cap ? b->cap : 1024;
        while (want < b->len + n)
            want *= 2;
        b->d = realloc(b->d, want);
        if (b->d == NULL)
            abort();
        b->cap = want;
    }
    memcpy(b->d + b->len, p, n);
    b->len += n;
}

static void try_parse(struct conn *c);

static void conn_free(struct conn *c)
{
    if (c->up != NULL && c->srv->detach != NULL)
        c->srv->detach(c);
    event_free(c->rev);
    event_free(c->wev);
    close(c->fd);
    free(c->body.d);
    free(c->out.d);
    free(c);
}

/* Write what is queued; 0 while the connection lives. */
int flush_out(struct conn *c)
{
    while (c->out.off < c->out.len) {
        ssize_t n = write(c->fd, c->out.d + c->out.off, c->out.len - c->out.off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            event_add(c->wev, NULL);
            return 0;
        }
        if (n <= 0) {
            conn_free(c);
            return -1;
        }
        c->out.off += (size_t)n;
    }
    c->out.len = c->out.off = 0;
    if (c->closing && !c->busy) {
        conn_free(c);
        return -1;
    }
    return 0;
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    flush_out(arg);
}

int hop_or_auth(const char *name, size_t n)
{
    static const char *const drop[] = {
        "host", "connection", "keep-alive", "transfer-encoding", "te",
        "upgrade", "content-length", "x-goog-api-key", "authorization",
        "expect", "accept-encoding",
    };
    for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++)
        if (strlen(drop[i]) == n && strncasecmp(name, drop[i], n) == 0)
            return 1;
    return 0;
}

void put_status(struct obuf *o, long code)
{
    char line[64];
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %ld %s\r\n", code,
                     code == 200 ? "OK" : "Status");
    ob_add(o, line, (size_t)n);
}

/* The request is answered: reset for the next one on the connection. */
void request_done(struct conn *c)
{
    c->busy = 0;
    c->complete = 0;
    c->up = NULL;
    c->body.len = 0;
    if (!c->keepalive)
        c->closing = 1;
    if (flush_out(c) != 0)
        return;
    if (!c->closing)
        try_parse(c);
}

static int cb_begin(http_parser *p)
{
    struct conn *c = p->data;
    c->alen = 0;
    c->nh = 0;
    c->urllen = 0;
    c->last_was_value = 0;
    c->body.len = 0;
    return 0;
}

static int cb_url(http_parser *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    if (c->urllen + n >= sizeof(c->url))
        return 1;
    memcpy(c->url + c->urllen, at, n);
    c->urllen += n;
    return 0;
}

static int cb_hfield(http_parser *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    if (c->alen + n > sizeof(c->arena))
        return 1;
    if (c->nh == 0 || c->last_was_value) {
        if (c->nh == HDR_MAX)
            return 1;
        c->hname[c->nh] = c->alen;
        c->hnlen[c->nh] = 0;
        c->hval[c->nh] = 0;
        c->hvlen[c->nh] = 0;
        c->nh++;
        c->last_was_value = 0;
    }
    memcpy(c->arena + c->alen, at, n);
    c->alen += n;
    c->hnlen[c->nh - 1] += n;
    return 0;
}

static int cb_hvalue(http_parser *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    if (c->alen + n > sizeof(c->arena) || c->nh == 0)
        return 1;
    if (!c->last_was_value) {
        c->hval[c->nh - 1] = c->alen;
        c->last_was_value = 1;
    }
    memcpy(c->arena + c->alen, at, n);
    c->alen += n;
    c->hvlen[c->nh - 1] += n;
    return 0;
}

static int cb_body(http_parser *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    ob_add(&c->body, at, n);
    return 0;
}

static int cb_complete(http_parser *p)
{
    struct conn *c = p->data;
    c->complete = 1;
    c->keepalive = http_should_keep_alive(p);
    http_parser_pause(p, 1);
    return 0;
}

/* Parse what has been read; start the upstream transfer for a whole
 * request. */
static void try_parse(struct conn *c)
{
    if (c->busy || c->inlen == 0)
        return;
    if (HTTP_PARSER_ERRNO(&c->p) == HPE_PAUSED)
        http_parser_pause(&c->p, 0);
    size_t used = http_parser_execute(&c->p, &c->srv->ps, c->in, c->inlen);
    enum http_errno err = HTTP_PARSER_ERRNO(&c->p);
    if (err != HPE_OK && err != HPE_PAUSED) {
        static const char bad[] =
            "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        ob_add(&c->out, bad, sizeof(bad) - 1);
        c->closing = 1;
        flush_out(c);
        return;
    }
    memmove(c->in, c->in + used, c->inlen - used);
    c->inlen -= used;
    if (c->complete)
        c->srv->start(c);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)what;
    if (c->inlen == sizeof(c->in)) {
        event_del(c->rev); /* full while busy: wait */
        return;
    }
    ssize_t n = read(fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        conn_free(c);
        return;
    }
    c->inlen += (size_t)n;
    try_parse(c);
}

void lean_on_accept(struct evconnlistener *l, evutil_socket_t fd,
                    struct sockaddr *sa, int salen, void *arg)
{
    struct lean_server *srv = arg;
    (void)l;
    (void)sa;
    (void)salen;
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return;
    }
    c->srv = srv;
    c->fd = fd;
    http_parser_init(&c->p, HTTP_REQUEST);
    c->p.data = c;
    c->rev = event_new(srv->base, fd, EV_READ | EV_PERSIST, on_readable, c);
    c->wev = event_new(srv->base, fd, EV_WRITE, on_writable, c);
    event_add(c->rev, NULL);
}


void lean_server_init(struct lean_server *srv)
{
    srv->ps.on_message_begin = cb_begin;
    srv->ps.on_url = cb_url;
    srv->ps.on_header_field = cb_hfield;
    srv->ps.on_header_value = cb_hvalue;
    srv->ps.on_body = cb_body;
    srv->ps.on_message_complete = cb_complete;
}

struct event_base *lean_base_new(void)
{
    struct event_config *cfg = event_config_new();
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

struct evconnlistener *lean_listen(struct lean_server *srv, const char *prog,
                                   const char *port)
{
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(0x7f000001);
    sin.sin_port = htons((unsigned short)atoi(port));
    struct evconnlistener *l = evconnlistener_new_bind(
        srv->base, lean_on_accept, srv,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 4096,
        (struct sockaddr *)&sin, sizeof(sin));
    if (l == NULL)
        fprintf(stderr, "%s: cannot listen on port %s\n", prog, port);
    return l;
}
