/*
 * preq.h - one client request in flight, shared by the proxy core
 * (proxy.c) and the API surfaces that use it (native.c: the Gemini API
 * passed through; openai.c: the OpenAI API translated).
 *
 * The core owns the lifecycle: client watch, key choice, upstream
 * attempts, failover and benching, redaction of everything sent, the
 * request log line, and freeing. A surface (struct gkm_surface) decides
 * what goes upstream (set before gkm_preq_start) and what a response
 * becomes for its client: an upstream 2xx body is either STREAMed through
 * the surface's chunk() as it arrives or COLLECTed whole for body(); an
 * upstream error the core decided not to retry goes to upstream_error();
 * the core's own errors (auth, no key, upstream unreachable) to error().
 * Every surface reply ends the request: after calling a gkm_preq_reply*
 * function or gkm_preq_stream_end the surface must not touch p again
 * (gkm_preq_send_reply is the exception: it leaves p to the surface until
 * its gkm_preq_finish).
 */
#ifndef GKM_PREQ_H
#define GKM_PREQ_H

#include <stddef.h>
#include <stdint.h>

#include "affinity.h"
#include "buf.h"
#include "keypool.h"

struct event;
struct gkm_hreq;
struct gkm_app;
struct gkm_preq;
struct gkm_redactor;
struct gkm_xfer;

enum gkm_relay {
    GKM_RELAY_STREAM, /* chunk() per upstream slice, sent at once */
    GKM_RELAY_COLLECT /* whole body (capped) to body() */
};

/* How the key is presented upstream. */
enum gkm_cred {
    GKM_CRED_GOOG_HEADER, /* x-goog-api-key: KEY (native surfaces) */
    GKM_CRED_BEARER       /* Authorization: Bearer KEY (/v1beta/openai/) */
};

struct gkm_surface {
    const char *name; /* for logs: "gemini", "openai" ... */
    /* The core's own error (status 4xx/5xx, a Gemini-style status name
     * such as "UNAVAILABLE", a message) in this API's error shape; must
     * reply (gkm_preq_reply). retry_after_s > 0 asks for Retry-After. */
    void (*error)(struct gkm_preq *p, int status, const char *gstatus,
                  const char *msg, long retry_after_s);
    /* A 2xx answer starts (clen: its Content-Length or -1). Return the
     * relay mode. STREAM surfaces must call gkm_preq_stream_begin here. */
    enum gkm_relay (*begin)(struct gkm_preq *p, long status, long long clen);
    /* STREAM: turn upstream bytes into client bytes appended to out.
     * Return 0, or -1 to abort the transfer. */
    int (*chunk)(struct gkm_preq *p, const char *data, size_t n,
                 struct gkm_buf *out);
    /* STREAM end. ok: the upstream body was complete. Append any final
     * bytes to out; return 1 to end the response cleanly, 0 to cut the
     * connection so the client sees a truncated response. */
    int (*end)(struct gkm_preq *p, int ok, struct gkm_buf *out);
    /* COLLECT: the whole 2xx body; must reply. */
    void (*body)(struct gkm_preq *p, long status, const char *data,
                 size_t n);
    /* A non-2xx upstream answer that goes to the client; must reply. */
    void (*upstream_error)(struct gkm_preq *p, long status, const char *data,
                           size_t n);
    /* Free surface_state (may be NULL). */
    void (*cleanup)(struct gkm_preq *p);
};

struct gkm_preq {
    struct gkm_app *app;
    const struct gkm_surface *surf;
    void *surface_state;
    struct gkm_hreq *req; /* NULL once answered or the client left */
    struct event *keepalive_ev; /* SSE comments while the upstream is silent */
    int64_t last_out_ms;        /* monotonic time of the last bytes sent */
    struct event *retry_ev; /* backoff before the next attempt */
    uint64_t id;
    char idstr[20];
    int64_t t0;

    /* The client's request. */
    const char *method;
    char *path;  /* normalised, for logs and the native surface */
    char *query; /* without key= */
    const char *body;
    size_t bodylen;

    /* What goes upstream: set by the surface before gkm_preq_start. */
    const char *up_method;
    char *up_path_query; /* "/v1beta/...?..." (owned) */
    char *up_body;       /* owned; NULL: the client's body as is */
    size_t up_bodylen;
    char **up_headers;   /* "Name: value" (owned) */
    size_t nup_headers;
    enum gkm_cred cred;
    char model[GKM_MODEL_MAX + 1]; /* for rotation and accounting */
    int pass_headers; /* relay the upstream's response headers (native) */
    int sse_keepalive; /* surface accepts SSE comments in its stream */
    uint64_t collect_cap; /* COLLECT body cap */
    /* Key affinity: the key that owns a file, cached content or upload
     * this request names (-1: none known), and that name. */
    long pin_idx;
    char *pin_name; /* owned; set whenever pin_idx >= 0 (NULL before) */
    int no_key; /* an upload's byte request: sent without any key */
    /* Keys that answered "not your project's file/cache" (owner unknown):
     * the next attempt goes to a key of another project. */
    size_t *denied;
    size_t ndenied;
    long next_idx; /* key chosen for the next attempt, or -1 */

    /* The current attempt. */
    struct gkm_xfer *xfer;
    long key_idx;
    int attempts;
    int attempts_base; /* attempts made before the last restart */
    int server_retries;
    int64_t waited_ms; /* time spent waiting for a cooldown to end */
    long status;
    int mode; /* core relay state */
    struct gkm_redactor *redactor;
    struct gkm_buf body_buf; /* held/collected body; stream scratch */
    struct gkm_buf out_buf;  /* surface output scratch */
    char **rh_names, **rh_values; /* upstream response headers kept, in one
                                   * block (gkm_preq_set_resp_value) */
    unsigned char *rh_own;        /* NULL, or per value: 1 = own heap copy */
    size_t nrh;
    int reply_started;
    int paused;
    uint64_t bytes_out;

    struct gkm_buf tried; /* "...abcd(429),...ef01(200)" for the log */
    long final_status;
    const char *outcome;
};

/* Create the request context for req (which it takes over): request id,
 * normalised path/query, client body. Counts as in flight until it ends.
 * Returns NULL after replying 400 itself when the path is invalid. */
struct gkm_preq *gkm_preq_new(struct gkm_app *app, struct gkm_hreq *req,
                              const struct gkm_surface *surf);
/* Watch the client and make the first upstream attempt. The surface must
 * have set up_method, up_path_query, model (and up_body if it rewrote the
 * body) first. */
void gkm_preq_start(struct gkm_preq *p);
/* Forward the client's request headers upstream (up_headers), less
 * hop-by-hop headers, credentials, cookies and what libcurl sets itself
 * (route.c gkm_route_drop_request_header). */
void gkm_preq_forward_headers(struct gkm_preq *p);
/* Send a further upstream request for the same client request (the
 * surface changed up_path_query / up_body, e.g. the next embeddings batch
 * or models page); only from the surface's body() callback, before any
 * reply. The attempt budget starts again. */
void gkm_preq_restart(struct gkm_preq *p);
/* Answer now with the surface's error shape and end the request. */
void gkm_preq_fail(struct gkm_preq *p, int status, const char *gstatus,
                   const char *msg, long retry_after_s);

/* Send a whole reply and end the request. data is redacted on the way.
 * ctype may be NULL (keep what the headers say). */
void gkm_preq_reply(struct gkm_preq *p, long status, const char *ctype,
                    const char *data, size_t len, long retry_after_s);
/* As gkm_preq_reply, but the request goes on: the surface does what only
 * its bookkeeping needs (usage, names learned) once the client has the
 * answer, then must call gkm_preq_finish from the same callback. Does
 * nothing if the client is gone. */
void gkm_preq_send_reply(struct gkm_preq *p, long status, const char *ctype,
                         const char *data, size_t len, long retry_after_s);
/* Start a streamed reply (chunked) with status and content type. For
 * text/event-stream replies of a surface that sets sse_keepalive, an SSE
 * comment (": keep-alive") is sent whenever nothing else was sent for
 * --sse-keepalive, so idle-timeout proxies in between keep the stream. */
void gkm_preq_stream_begin(struct gkm_preq *p, long status, const char *ctype);

/* Account what a tap saw in a 2xx answer to the current key and model:
 * tokens, an error inside the answer, or (complete: the answer ended
 * normally) a stream that ended without a finishReason. */
struct gkm_tap_result;
void gkm_preq_account(struct gkm_preq *p, const struct gkm_tap_result *r,
                      int complete);
/* Add a header to the reply (before it starts). */
void gkm_preq_add_header(struct gkm_preq *p, const char *name,
                         const char *value);
/* Replace the value of kept response header i (< nrh) with value, a heap
 * string p then owns. */
void gkm_preq_set_resp_value(struct gkm_preq *p, size_t i, char *value);
/* Append text to the request's log line. */
void gkm_preq_note(struct gkm_preq *p, const char *text);
/* The real key of the current attempt (for the surface's accounting), or
 * -1 before the first attempt. */
long gkm_preq_key(const struct gkm_preq *p);

/* End the request: log its line, free everything, drop it from in flight.
 * Surfaces call it only after gkm_preq_send_reply. */
void gkm_preq_finish(struct gkm_preq *p);

/* ---- shared by the core's two halves (proxy.c, client.c) only ---------- */

/* The real key of the current attempt (borrowed) or NULL. */
const char *gkm_preq_secret(const struct gkm_preq *p);
/* Hear about the client leaving and its backlog draining / stop hearing
 * (before the reply ends). */
void gkm_client_watch(struct gkm_preq *p);
void gkm_client_unwatch(struct gkm_preq *p);
/* Reply bytes queued for the client and not written yet. */
size_t gkm_client_backlog(struct gkm_preq *p);
/* Send bytes as one chunk of the streamed reply (no redaction): 0 / -1. */
int gkm_client_send(struct gkm_preq *p, const char *data, size_t len);
/* Redact and send surface output in a streamed reply: 0 / -1. */
int gkm_client_relay(struct gkm_preq *p, const char *data, size_t len);
/* Cut the streamed reply: the backlog is still written, then the
 * connection closes without the final chunk (a truncated stream must not
 * look complete). Lets go of p->req, which is NULL afterwards. */
void gkm_client_cut(struct gkm_preq *p);
/* Finish a streamed reply cleanly (the last chunk) and let go of p->req,
 * which is NULL afterwards. */
void gkm_client_end_stream(struct gkm_preq *p);

#endif
