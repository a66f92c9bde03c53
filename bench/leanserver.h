/*
 * leanserver.h - the client side shared by the benchmark relays
 * bench/hprelay.c and bench/corelay.c (benchmark references only, not part
 * of the proxy): plain libevent read/write events on each client socket,
 * requests parsed by Debian's libhttp-parser, replies queued in one buffer
 * and written at once. A relay supplies what happens upstream.
 */
#ifndef BENCH_LEANSERVER_H
#define BENCH_LEANSERVER_H

#include <event2/event.h>
#include <event2/listener.h>
#include <http_parser.h>
#include <stddef.h>

#define IN_MAX 16384
#define HDR_MAX 64

struct obuf {
    char *d;
    size_t len, cap, off;
};

struct conn;

struct lean_server {
    struct event_base *base;
    http_parser_settings ps;
    /* A whole request is parsed in c: start its upstream exchange, and
     * call lean_request_done(c) once the reply is queued in c->out. */
    void (*start)(struct conn *c);
    /* c is being freed while c->up is set: forget c. */
    void (*detach)(struct conn *c);
    void *arg; /* the relay's */
};

struct conn {
    struct lean_server *srv;
    int fd;
    struct event *rev, *wev;
    http_parser p;
    char in[IN_MAX];
    size_t inlen;
    /* the request being parsed: URL and headers in one arena */
    char arena[8192];
    size_t alen;
    size_t hname[HDR_MAX], hnlen[HDR_MAX], hval[HDR_MAX], hvlen[HDR_MAX];
    int nh;
    int last_was_value;
    char url[2048];
    size_t urllen;
    struct obuf body;
    int complete; /* a whole request is parsed */
    int busy;     /* its upstream exchange is running */
    int closing;
    int keepalive;
    struct obuf out;
    void *up; /* the relay's upstream state for this request */
};

/* Set the parser callbacks; the caller sets base, start, detach, arg. */
void lean_server_init(struct lean_server *srv);
/* An event base as the relays use it (epoll change list). */
struct event_base *lean_base_new(void);
/* Listen on 127.0.0.1:port for srv; NULL, after a message naming prog,
 * when that fails. */
struct evconnlistener *lean_listen(struct lean_server *srv, const char *prog,
                                   const char *port);
/* For evconnlistener_new_bind (arg: the lean_server). */
void lean_on_accept(struct evconnlistener *l, evutil_socket_t fd,
                    struct sockaddr *sa, int salen, void *arg);
/* Append n bytes (aborts when out of memory). */
void ob_add(struct obuf *b, const void *p, size_t n);
/* Write what is queued; 0 while the connection lives, -1 once freed. */
int flush_out(struct conn *c);
/* Headers not relayed in either direction (hop-by-hop, the credential,
 * the body's framing). */
int hop_or_auth(const char *name, size_t n);
/* "HTTP/1.1 <code> <reason>\r\n" */
void put_status(struct obuf *o, long code);
/* The reply is queued: write it, then read the next request. */
void request_done(struct conn *c);

#endif
