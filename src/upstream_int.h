/*
 * upstream_int.h - what the two upstream engines share; no other module
 * includes it.
 *
 *  - upstream.c: the multi handle and its libevent glue (multi_socket
 *    API), options shared by every easy handle, and the public gkm_xfer_*
 *    entry points, which hand each exchange to one of two engines:
 *  - upstream_curl.c: libcurl's own HTTP transfers (HTTP/2 with ALPN,
 *    --upstream-http 2);
 *  - upstream_h1.c + upstream_h1conn.c: HTTP/1.1 written and read by the
 *    proxy (the answer parsed by libhttp-parser) over connections libcurl
 *    makes (CURLOPT_CONNECT_ONLY on the same multi: DNS, proxies, TLS and
 *    its verification stay libcurl's), kept in a pool of our own.
 *
 * A struct gkm_xfer pointer given to callers points at either engine's
 * exchange, and CURLOPT_PRIVATE at either a libcurl transfer or an h1
 * connection; each of those structs starts with an int kind saying which.
 */
#ifndef GKM_UPSTREAM_INT_H
#define GKM_UPSTREAM_INT_H

#include <curl/curl.h>
#include <event2/event.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "upstream.h"
#include "util.h"

enum gkm_up_kind {
    GKM_UPK_CURL = 1, /* struct gkm_xfer (upstream.c) */
    GKM_UPK_H1 = 2,   /* struct h1x (upstream_h1.c) */
    GKM_UPK_CONN = 3  /* struct h1conn (upstream_h1.c) */
};

/* Easy handles are recycled rather than created per request: creating one
 * costs more than the rest of a small request. */
#define GKM_UP_IDLE_HANDLES 64
/* Connections kept open between requests, per engine (how long an idle
 * one may be reused: opts.keepalive_ms, --upstream-keepalive). */
#define GKM_UP_MAX_IDLE_CONNS 512
#define GKM_UP_MAX_RESPONSE_HEADERS 200
#define GKM_UP_MAX_HEADER_BYTES (256 * 1024)

struct sockinfo;
struct origin;
struct h1x;
struct h1conn;

struct gkm_upstream {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    struct event *sweep; /* idle check, pending while active > 0 */
    struct gkm_log *log;
    struct gkm_upstream_opts opts;
    size_t active;          /* exchanges of both engines */
    struct gkm_xfer *head;  /* live libcurl transfers */
    CURL *idle[GKM_UP_IDLE_HANDLES]; /* reset easy handles kept for reuse */
    size_t nidle;
    struct sockinfo **socks; /* by fd: every socket with an event */
    size_t nsocks;
    unsigned char *owned; /* by fd: 1 for connection sockets we opened */
    size_t nowned;
    /* The last origin ("scheme://host:port") seen, parsed once and shared
     * by the transfers to it (see set_url). */
    struct origin *origin;
    unsigned char target_ok[256]; /* target_char() of every byte */
    /* Without --upstream-proxy: the proxy variables libcurl would read on
     * every transfer, read once (see env_proxy). "" means none. */
    char *env_proxy_http, *env_proxy_https, *env_noproxy;
    int quick_runs;         /* 0 ms timers run in this loop pass ... */
    struct timeval quick_tv; /* ... the pass's cached time (on_curl_timer) */
    /* The HTTP/1.1 engine (upstream_h1.c). */
    struct h1x *h1_head;     /* live exchanges */
    struct h1conn *h1_idle;  /* pooled connections, last used first */
    size_t h1_nidle;
    struct h1conn *h1_all;   /* every connection (pooled, busy, connecting) */
};

/* --- upstream.c, for upstream_h1.c --- */

/* The proxy a transfer to url goes through: --upstream-proxy, else the
 * environment's for url's scheme; "" for none. */
const char *gkm_up_proxy_for(const struct gkm_upstream *up, const char *url);
/* Whether url's request line must carry the absolute URL (plain http
 * through an HTTP proxy): the libcurl engine handles those. */
int gkm_up_absolute_form(const struct gkm_upstream *up, const char *url);
/* Bytes the request target made of rest[0..n) takes, percent-encoding what
 * a target may not hold and adding a leading '/' when missing; and the
 * target written at w (returns the end). */
size_t gkm_up_target_len(const struct gkm_upstream *up, const char *rest,
                         size_t n);
char *gkm_up_target_put(const struct gkm_upstream *up, const char *rest,
                        size_t n, char *w);
/* Answer headers kept as "name\0value\0" n times in data (both engines
 * keep them so: one buffer, not one allocation per string), as an array
 * pointing into data (valid until data changes) in *view, grown as needed
 * (*alloc entries; owned by the caller). Returns *view. */
static inline const struct gkm_header *
gkm_up_headers_view(char *data, size_t n, struct gkm_header **view,
                    size_t *alloc)
{
    if (n > *alloc) {
        *alloc = n;
        *view = gkm_xrealloc(*view, n * sizeof(**view));
    }
    char *q = data;
    for (size_t i = 0; i < n; i++) {
        (*view)[i].name = q;
        q += strlen(q) + 1;
        (*view)[i].value = q;
        q += strlen(q) + 1;
    }
    return *view;
}

/* The options every easy handle gets (timeouts, socket callbacks, proxy,
 * verbosity). */
void gkm_up_setup_handle(struct gkm_upstream *up, CURL *e);
/* libcurl no longer watches fd (an h1 connection took it over): delete
 * the event its socket callback left parked there. */
void gkm_up_unpark(struct gkm_upstream *up, curl_socket_t fd);
/* An exchange began / ended: counts it and arms or stops the idle sweep. */
void gkm_up_active_inc(struct gkm_upstream *up);
void gkm_up_active_dec(struct gkm_upstream *up);

/* --- upstream_curl.c: libcurl's own transfers --- */

/* gkm_xfer_start, gkm_xfer_cancel and gkm_xfer_resume for libcurl
 * transfers; same contracts (upstream.h). */
struct gkm_xfer *gkm_cx_start(struct gkm_upstream *up, const char *method,
                              const char *url, const char *const *headers,
                              size_t nheaders, const char *body,
                              size_t bodylen, const struct gkm_xfer_cbs *cbs,
                              void *arg);
void gkm_cx_cancel(struct gkm_xfer *x);
void gkm_cx_resume(struct gkm_xfer *x);
/* libcurl reported x done with res; its handle already left the multi.
 * Calls on_done (unless x was cancelled) and frees x. From check_done. */
void gkm_cx_done(struct gkm_xfer *x, CURLcode res);
/* Abort transfers that received nothing for --idle-timeout. */
void gkm_cx_sweep(struct gkm_upstream *up, int64_t now);
/* Free every transfer (no callbacks), the recycled handles and the shared
 * origin. */
void gkm_cx_free_all(struct gkm_upstream *up);

/* --- upstream_h1conn.c: the HTTP/1.1 engine's connections --- */

struct h1conn {
    int kind; /* GKM_UPK_CONN */
    struct gkm_upstream *up;
    CURL *easy;
    curl_socket_t fd;   /* CURL_SOCKET_BAD while connecting */
    struct event *ev;   /* on fd, once connected */
    short watching;     /* the flags ev is added with (0: not added) */
    int raw;            /* plain TCP: bytes go to fd directly */
    int idle;           /* in the pool ... */
    int64_t idle_since_ms; /* ... since (gkm_mono_coarse_ms) */
    unsigned uses;      /* exchanges started on it */
    struct h1x *x;      /* the exchange on it (NULL: idle or orphaned) */
    struct h1conn *prev, *next;         /* the pool */
    struct h1conn *all_prev, *all_next; /* every connection */
    char errbuf[CURL_ERROR_SIZE];
    size_t keylen;
    char key[]; /* the origin, "scheme://host[:port]" */
};

/* Watch c's socket for what (EV_READ, EV_WRITE, both, or 0 for nothing);
 * events go to gkm_h1_on_event. No-op while c is connecting. */
void gkm_h1c_watch(struct h1conn *c, short what);
/* A new connection to the origin key[0..keylen) ("scheme://host[:port]"),
 * connecting (gkm_h1_connected follows from check_done). NULL if libcurl
 * refused it. */
struct h1conn *gkm_h1c_new(struct gkm_upstream *up, const char *key,
                           size_t keylen);
/* Close c (taken out of the pool if there) and free it. Not from inside a
 * libcurl callback. */
void gkm_h1c_close(struct h1conn *c);
/* Put a connected c, with no exchange, in the pool (or close it when the
 * pool is full). */
void gkm_h1c_pool(struct h1conn *c);
/* Take a pooled connection to key out of the pool, or NULL. */
struct h1conn *gkm_h1c_take(struct gkm_upstream *up, const char *key,
                            size_t keylen);
/* Attach a new connection to its handle for good (see upstream_h1conn.c)
 * with one read that must find nothing. 0, or -1 described in msg. */
int gkm_h1c_attach(struct h1conn *c, char *msg, size_t msglen);
/* Read up to n bytes: the count, 0 at the end of the stream, -1 when
 * nothing is there yet, -2 on an error described in msg. */
ssize_t gkm_h1c_recv(struct h1conn *c, char *buf, size_t n, char *msg,
                     size_t msglen);
/* Send from a[0..an) then b[0..bn) (an may be 0): the bytes taken, -1
 * when none could be, -2 on an error described in msg. */
ssize_t gkm_h1c_send(struct h1conn *c, const char *a, size_t an,
                     const char *b, size_t bn, char *msg, size_t msglen);

/* --- upstream_h1.c: the HTTP/1.1 engine's exchanges --- */

/* A connection's socket event (connected connections only). */
void gkm_h1_on_event(evutil_socket_t fd, short what, void *arg);

/* gkm_xfer_start, gkm_xfer_cancel and gkm_xfer_resume for HTTP/1.1
 * exchanges; same contracts (upstream.h). */
struct gkm_xfer *gkm_h1_start(struct gkm_upstream *up, const char *method,
                              const char *url, const char *const *headers,
                              size_t nheaders, const char *body,
                              size_t bodylen, const struct gkm_xfer_cbs *cbs,
                              void *arg);
void gkm_h1_cancel(struct gkm_xfer *x);
void gkm_h1_resume(struct gkm_xfer *x);
/* libcurl finished connecting c (res CURLE_OK) or gave up; called from
 * check_done, outside any curl callback. The easy handle stays in the
 * multi: removing it would close the connection. */
void gkm_h1_connected(struct h1conn *c, CURLcode res);
/* Abort exchanges that received nothing for --idle-timeout (now from
 * gkm_mono_coarse_ms); calls their on_done. */
void gkm_h1_sweep(struct gkm_upstream *up, int64_t now);
/* Cancel every exchange (no callbacks) and close every connection. */
void gkm_h1_free_all(struct gkm_upstream *up);

#endif
