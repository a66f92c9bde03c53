/*
 * upstream.h - HTTP exchanges with the Gemini API over one libcurl multi
 * handle driven by the proxy's libevent loop (multi_socket API).
 *
 * This is the only module that includes both curl and libevent headers.
 * Ownership: a transfer (struct gkm_xfer) belongs to the upstream module
 * from gkm_xfer_start until its on_done callback has returned, or until the
 * caller cancels it; after either the pointer is dead. Callbacks are never
 * called after gkm_xfer_cancel, and on_done is called exactly once
 * otherwise, from the event loop (never from inside a curl callback), so it
 * may start a new transfer. If gkm_xfer_start fails it returns NULL and no
 * callback is ever called.
 */
#ifndef GKM_UPSTREAM_H
#define GKM_UPSTREAM_H

#include <stddef.h>

struct event_base;
struct gkm_log;
struct gkm_upstream;
struct gkm_xfer;

struct gkm_header {
    char *name;
    char *value;
};

enum gkm_data_rc { GKM_DATA_OK = 0, GKM_DATA_PAUSE = 1, GKM_DATA_ABORT = -1 };

struct gkm_xfer_cbs {
    /* The response status and headers (hop-by-hop ones included; the caller
     * filters), called once before the first body byte, or just before
     * on_done for a bodiless response. Borrowed for the call. Return
     * GKM_DATA_ABORT to stop the transfer (on_done follows). */
    enum gkm_data_rc (*on_headers)(void *arg, long status,
                                   const struct gkm_header *hdrs, size_t n);
    /* Body bytes as they arrive (decoded if the upstream compressed them).
     * GKM_DATA_PAUSE means "not consumed, call again with the same bytes
     * (possibly followed by more) after gkm_xfer_resume"; GKM_DATA_ABORT
     * stops the transfer. May be called from inside gkm_xfer_resume. */
    enum gkm_data_rc (*on_data)(void *arg, const char *p, size_t n);
    /* The end. ok is 1 when the whole response arrived; otherwise errmsg
     * says why (connect failure, timeout, reset, aborted) and timed_out is
     * set for timeouts. status is 0 when no response line arrived. */
    void (*on_done)(void *arg, int ok, long status, int timed_out,
                    const char *errmsg);
};

struct gkm_upstream_opts {
    long connect_timeout_ms;
    long idle_timeout_ms; /* abort when no byte arrives for this long */
    long keepalive_ms;    /* an idle connection older than this is not
                             reused (0: none is) */
    int verbose;          /* CURLOPT_VERBOSE (debug only) */
    const char *proxy;    /* CURLOPT_PROXY ("" none) or NULL: libcurl's
                             environment variables; borrowed for the
                             upstream's lifetime */
    const char *cainfo;   /* CURLOPT_CAINFO, or NULL: libcurl's default;
                             borrowed for the upstream's lifetime */
    int http2;            /* 1: every exchange is a libcurl transfer, which
                             offers HTTP/2 (ALPN); 0: HTTP/1.1 written and
                             read here over libcurl's connections (a plain
                             http upstream through an HTTP proxy still goes
                             through libcurl's transfers) */
};

/* Bind a curl multi to base. Returns NULL on failure (logged). */
struct gkm_upstream *gkm_upstream_new(struct event_base *base,
                                      const struct gkm_upstream_opts *opts,
                                      struct gkm_log *log);
/* Cancel every transfer (no callbacks) and free. */
void gkm_upstream_free(struct gkm_upstream *up);
/* Transfers in progress. */
size_t gkm_upstream_active(const struct gkm_upstream *up);

/* Start a request. url is absolute ("scheme://host[:port]/path?query";
 * path and query go out as given, except bytes a request target may not
 * hold, which are percent-encoded; anything after '#' is dropped; NULL is
 * returned for a URL that is not http(s)://authority..., or one curl
 * cannot parse with --upstream-http 2; a host that cannot be reached is
 * reported through on_done); headers are "Name: value" lines
 * (copied); body (may be NULL when bodylen is 0) is borrowed and must stay
 * valid until the transfer ends. "Accept-Encoding: identity" is sent; an
 * answer compressed anyway is decoded before the callbacks see it. */
struct gkm_xfer *gkm_xfer_start(struct gkm_upstream *up, const char *method,
                                const char *url, const char *const *headers,
                                size_t nheaders, const char *body,
                                size_t bodylen, const struct gkm_xfer_cbs *cbs,
                                void *arg);
/* Abort and free now; no callback follows. Safe from libevent callbacks,
 * not from inside this transfer's own on_headers/on_data. */
void gkm_xfer_cancel(struct gkm_xfer *x);
/* Resume a transfer paused by GKM_DATA_PAUSE. May call on_data (and, if
 * that aborts, schedule on_done) before returning. */
void gkm_xfer_resume(struct gkm_xfer *x);

#endif
