/*
 * native.c - the Gemini API surface: requests under /v1beta/, /v1/ and
 * /upload/ go upstream as they are (client credentials removed, the pool
 * key added), and answers come back as they are, streamed when they
 * stream. On the way through, a tap reads usageMetadata (prompt, output
 * and thinking tokens) from generateContent answers and streams, and
 * notices errors inside a 200 stream and streams that end without a
 * finishReason, for the key's statistics and the log.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "keypool.h"
#include "log.h"
#include "preq.h"
#include "proxy.h"
#include "route.h"
#include "tap.h"
#include "util.h"

/* 2xx bodies up to this length (per Content-Length) are collected and sent
 * in one write with a Content-Length: a whole generateContent answer.
 * Unknown-length bodies (streams) always flow through at once. */
#define SMALL_BODY (256 * 1024)
#define COLLECT_CAP (8 * 1024 * 1024)

struct native {
    struct gkm_tap *tap; /* generateContent answers only */
};

static const char *gemini_status_name(int status)
{
    switch (status) {
    case 400: return "INVALID_ARGUMENT";
    case 401: return "UNAUTHENTICATED";
    case 403: return "PERMISSION_DENIED";
    case 404: return "NOT_FOUND";
    case 413: return "INVALID_ARGUMENT";
    case 429: return "RESOURCE_EXHAUSTED";
    case 499: return "CANCELLED";
    case 500: return "INTERNAL";
    case 502: return "UNAVAILABLE";
    case 503: return "UNAVAILABLE";
    case 504: return "DEADLINE_EXCEEDED";
    default: return "UNKNOWN";
    }
}

/* {"error":{"code":N,"message":"...","status":"..."}} as Google writes it. */
static char *gemini_error_json(int status, const char *gstatus, const char *msg)
{
    json_t *o = json_pack("{s:{s:i,s:s,s:s}}", "error", "code", status,
                          "message", msg, "status",
                          gstatus ? gstatus : gemini_status_name(status));
    char *s = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
    json_decref(o);
    if (s == NULL)
        s = gkm_xstrdup("{\"error\":{\"code\":500,\"message\":\"internal "
                        "error\",\"status\":\"INTERNAL\"}}");
    return s;
}

void gkm_reply_gemini_error(struct evhttp_request *req, int status,
                            const char *gstatus, const char *msg,
                            long retry_after_s)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL)
        return;
    char *body = gemini_error_json(status, gstatus, msg);
    evbuffer_add(b, body, strlen(body));
    evbuffer_add(b, "\n", 1);
    free(body);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_remove_header(h, "Content-Type");
    evhttp_add_header(h, "Content-Type", "application/json; charset=UTF-8");
    if (retry_after_s > 0) {
        char ra[32];
        snprintf(ra, sizeof(ra), "%ld", retry_after_s);
        evhttp_add_header(h, "Retry-After", ra);
    }
    evhttp_send_reply(req, status, NULL, b);
    evbuffer_free(b);
}

static void n_error(struct gkm_preq *p, int status, const char *gstatus,
                    const char *msg, long retry_after_s)
{
    char *body = gemini_error_json(status, gstatus, msg);
    size_t len = strlen(body);
    p->pass_headers = 0; /* our own answer, not an upstream one */
    gkm_preq_reply(p, status, "application/json; charset=UTF-8", body, len,
                   retry_after_s);
    free(body);
}

/* ---- surface ------------------------------------------------------------ */

static int is_generate(const struct gkm_preq *p)
{
    return strstr(p->path, ":generateContent") != NULL ||
           strstr(p->path, ":streamGenerateContent") != NULL;
}

static enum gkm_relay n_begin(struct gkm_preq *p, long status, long long clen)
{
    struct native *st = p->surface_state;
    gkm_tap_free(st->tap);
    st->tap = NULL;
    int collect = clen >= 0 && clen <= SMALL_BODY;
    if (is_generate(p)) {
        enum gkm_tap_kind k = GKM_TAP_WHOLE;
        if (!collect && strstr(p->path, ":streamGenerateContent") != NULL)
            k = strstr(p->query, "alt=sse") != NULL ? GKM_TAP_SSE
                                                    : GKM_TAP_ARRAY;
        st->tap = gkm_tap_new(k);
    }
    if (collect) {
        p->collect_cap = COLLECT_CAP;
        return GKM_RELAY_COLLECT;
    }
    return GKM_RELAY_STREAM;
}

static int n_chunk(struct gkm_preq *p, const char *data, size_t n,
                   struct gkm_buf *out)
{
    struct native *st = p->surface_state;
    if (st->tap != NULL)
        gkm_tap_feed(st->tap, data, n);
    return gkm_buf_append(out, data, n) == 0 ? 0 : -1;
}

static int n_end(struct gkm_preq *p, int ok, struct gkm_buf *out)
{
    struct native *st = p->surface_state;
    if (st->tap != NULL)
        gkm_preq_account(p, gkm_tap_finish(st->tap), ok);
    return ok;
}

static void n_body(struct gkm_preq *p, long status, const char *data, size_t n)
{
    struct native *st = p->surface_state;
    if (st->tap != NULL) {
        gkm_tap_feed(st->tap, data, n);
        gkm_preq_account(p, gkm_tap_finish(st->tap), 1);
    }
    gkm_preq_reply(p, status, NULL, data, n, 0);
}

static void n_upstream_error(struct gkm_preq *p, long status, const char *data,
                             size_t n)
{
    gkm_preq_reply(p, status, NULL, data, n, 0);
}

static void n_cleanup(struct gkm_preq *p)
{
    struct native *st = p->surface_state;
    if (st == NULL)
        return;
    gkm_tap_free(st->tap);
    free(st);
    p->surface_state = NULL;
}

static const struct gkm_surface native_surface = {
    .name = "gemini",
    .error = n_error,
    .begin = n_begin,
    .chunk = n_chunk,
    .end = n_end,
    .body = n_body,
    .upstream_error = n_upstream_error,
    .cleanup = n_cleanup,
};

void gkm_proxy_native(struct gkm_app *app, struct evhttp_request *req)
{
    struct gkm_preq *p = gkm_preq_new(app, req, &native_surface);
    if (p == NULL)
        return;
    p->surface_state = gkm_xcalloc(1, sizeof(struct native));
    p->pass_headers = 1;
    gkm_route_model(p->path, p->model, sizeof(p->model));
    if (!gkm_proxy_authorized(app, req)) {
        p->outcome = "unauthorized";
        gkm_preq_fail(p, 401, "UNAUTHENTICATED",
                      "Missing or invalid proxy token. Send the token "
                      "configured with --token as the x-goog-api-key header, "
                      "the key query parameter, or an Authorization: Bearer "
                      "header.",
                      0);
        return;
    }
    p->up_path_query = gkm_xjoin3(p->path, p->query[0] ? "?" : "", p->query);
    gkm_preq_forward_headers(p);
    gkm_preq_start(p);
}
