/*
 * http.h - the client-facing HTTP/1.1 server: listening sockets,
 * connections, requests parsed by libhttp-parser, replies formatted and
 * written by us (whole, or streamed with chunked encoding), keep-alive,
 * pipelining, limits, timeouts and a graceful drain, on one libevent loop.
 *
 * Why not evhttp: see docs/how-it-works.md ("The HTTP server") and
 * bench/README.md: evhttp cost a third of the proxy's CPU per request, made
 * three system calls per request that this layer does not, and answers an
 * over-limit body with its own HTML page.
 *
 * Life of a request: the server calls the handler with a whole request
 * (headers and body read, within the limits). The handler owns it until it
 * answers (gkm_hreq_send, or gkm_hreq_start .. gkm_hreq_end, or
 * gkm_hreq_abort), or until the close callback reports that the client went
 * away; after either the gkm_hreq pointer must not be used. None of the
 * gkm_hreq_* calls frees or closes anything synchronously, so they may be
 * called from any callback (libcurl's included).
 */
#ifndef GKM_HTTP_H
#define GKM_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct gkm_http;
struct gkm_hreq;
struct gkm_log;

/* A whole request to answer. */
typedef void (*gkm_http_handler)(struct gkm_hreq *r, void *arg);
/* A request the server refuses itself (status 400 malformed, 405 method,
 * 413 body too large, 431 headers too large, 505 version), with a
 * one-sentence reason: the callback answers r (gkm_hreq_send) in the
 * API's own error shape; the connection closes after that answer. */
typedef void (*gkm_http_reject)(struct gkm_hreq *r, int status,
                                const char *reason, void *arg);
/* A finished reply left the process (or its connection closed): lets a
 * draining caller re-check gkm_http_flushing(). */
typedef void (*gkm_http_quiet)(void *arg);

struct gkm_http_opts {
    size_t max_header_bytes;  /* request line + headers */
    uint64_t max_body_bytes;  /* decoded request body */
    uint64_t timeout_ms;      /* a client that sends or reads nothing */
    const char *default_ctype; /* for replies that name none */
    gkm_http_handler handler;
    gkm_http_reject reject;
    gkm_http_quiet quiet;
    void *arg; /* for the three callbacks */
};

/* A server on base with opts (copied; default_ctype must outlive it).
 * Logs accept errors to log. NULL on allocation failure. */
struct gkm_http *gkm_http_new(struct event_base *base,
                              const struct gkm_http_opts *opts,
                              struct gkm_log *log);
/* Listen on host (a numeric IPv4/IPv6 address or a name) and port (0: an
 * ephemeral one) with the given backlog. *bound_port gets the port.
 * Returns 0, or -1 with a reason in err. */
int gkm_http_listen(struct gkm_http *h, const char *host, int port,
                    int backlog, int *bound_port, char *err, size_t errlen);
/* Begin draining: stop accepting, close idle connections now, and close
 * every other one after its current reply ("Connection: close"). */
void gkm_http_drain(struct gkm_http *h);
/* Finished replies whose bytes are not all written yet. */
unsigned gkm_http_flushing(const struct gkm_http *h);
/* Close everything (a request still owned by the handler gets its close
 * callback first) and free h. NULL is a no-op. */
void gkm_http_free(struct gkm_http *h);

/* ---- the request ------------------------------------------------------ */

/* "GET", "POST", ... */
const char *gkm_hreq_method(const struct gkm_hreq *r);
/* The request target as sent ("/v1beta/models?x=1"); "" for a request
 * rejected before its first line was read. */
const char *gkm_hreq_uri(const struct gkm_hreq *r);
/* Request headers, in order, names as sent. */
size_t gkm_hreq_nheaders(const struct gkm_hreq *r);
const char *gkm_hreq_header_name(const struct gkm_hreq *r, size_t i);
const char *gkm_hreq_header_value(const struct gkm_hreq *r, size_t i);
/* The first header called name (ASCII case-insensitive), or NULL. */
const char *gkm_hreq_header(const struct gkm_hreq *r, const char *name);
/* The decoded body (NUL-terminated; may hold NULs) and its length. */
const char *gkm_hreq_body(const struct gkm_hreq *r, size_t *len);

/* ---- the reply -------------------------------------------------------- */

/* Add a reply header (before gkm_hreq_send or gkm_hreq_start). A name or
 * value holding CR or LF is dropped. The server writes Date,
 * Content-Length, Transfer-Encoding and Connection itself. */
void gkm_hreq_add_header(struct gkm_hreq *r, const char *name,
                         const char *value);
/* Replace every reply header called name with one (value NULL: remove). */
void gkm_hreq_set_header(struct gkm_hreq *r, const char *name,
                         const char *value);
/* A reply header added so far (case-insensitive), or NULL. Valid until
 * the next add/set call. */
const char *gkm_hreq_reply_header(const struct gkm_hreq *r, const char *name,
                                  size_t *vlen);
/* The whole reply. r is gone afterwards. */
void gkm_hreq_send(struct gkm_hreq *r, int status, const char *body,
                   size_t len);
/* A reply streamed as it comes: chunked for HTTP/1.1, delimited by closing
 * the connection for HTTP/1.0. */
void gkm_hreq_start(struct gkm_hreq *r, int status);
/* Part of a streamed reply (len 0: nothing). Written now when the socket
 * takes it, else queued (see gkm_hreq_backlog). */
void gkm_hreq_chunk(struct gkm_hreq *r, const char *data, size_t len);
/* The end of a streamed reply. r is gone afterwards. */
void gkm_hreq_end(struct gkm_hreq *r);
/* Cut a streamed reply: what was sent is still written, then the
 * connection closes without the last chunk, so the client sees a
 * truncated answer. No close callback follows. r is gone afterwards. */
void gkm_hreq_abort(struct gkm_hreq *r);
/* Reply bytes queued for the client and not written yet. */
size_t gkm_hreq_backlog(const struct gkm_hreq *r);

/* drained: the queued reply bytes were all written (after a backlog);
 * closed: the client went away, or stopped reading or sending for the
 * timeout, before the reply ended; r is freed when it returns. Either may
 * be NULL; set both to NULL to stop hearing about r. */
typedef void (*gkm_hreq_cb)(struct gkm_hreq *r, void *arg);
void gkm_hreq_set_callbacks(struct gkm_hreq *r, gkm_hreq_cb drained,
                            gkm_hreq_cb closed, void *arg);

#endif
