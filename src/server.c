/*
 * server.c - the HTTP front (http.c) set up from the config, and the route
 * table.
 *
 * Routes:
 *   GET /healthz                    liveness (no auth, reveals no key data)
 *   /v1/chat/completions, /v1/embeddings, /v1/models (Bearer auth),
 *   /v1beta/openai/...              OpenAI surface (openai.c)
 *   /v1beta/..., /v1/..., /upload/...  native Gemini passthrough (native.c)
 *   anything else                   404 in Gemini's error shape
 * Limits (header size, body size, timeouts) are checked by http.c; a
 * request it refuses (too large, malformed) gets a JSON error from
 * on_reject.
 */
#include "server.h"

#include <stdio.h>
#include <string.h>

#include "app.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "openai.h"
#include "proxy.h"
#include "route.h"
#include "util.h"

/* Pending connections the kernel may queue (capped by
 * net.core.somaxconn): a burst of clients (a thousand agents starting at
 * once) overflows a short queue, and the kernel then drops SYNs that are
 * retried only after 1, 3, 7 s. */
#define LISTEN_BACKLOG 4096

static const char *gstatus_for(int status)
{
    switch (status) {
    case 405: return "UNIMPLEMENTED";
    case 505: return "UNIMPLEMENTED";
    default: return "INVALID_ARGUMENT";
    }
}

/* A request http.c refused before any handler (malformed, too large). */
static void on_reject(struct gkm_hreq *r, int status, const char *reason,
                      void *arg)
{
    struct gkm_app *app = arg;
    gkm_reply_gemini_error(r, status, gstatus_for(status), reason, 0);
    gkm_info(app->log, "refused a request before reading it: %d %s", status,
             reason);
}

/* A finished reply reached the client: a drain may now be complete. */
static void on_quiet(void *arg)
{
    gkm_app_reply_flushed(arg);
}

static void on_request(struct gkm_hreq *req, void *arg)
{
    struct gkm_app *app = arg;
    const char *uri = gkm_hreq_uri(req);
    if (app->draining) { /* http.c closes the connection after it */
        gkm_reply_gemini_error(req, 503, "UNAVAILABLE",
                               "The proxy is shutting down.", 1);
        return;
    }
    size_t plen = strcspn(uri, "?");
    if (plen == 8 && strncmp(uri, "/healthz", 8) == 0) {
        static const char ok[] = "{\"status\":\"ok\"}\n";
        gkm_hreq_add_header(req, "Content-Type",
                            "application/json; charset=UTF-8");
        gkm_hreq_send(req, 200, ok, sizeof(ok) - 1);
        return;
    }
    if (gkm_openai_claims(uri, req)) {
        gkm_openai_handle(app, req);
        return;
    }
    if (gkm_route_is_native(uri)) {
        gkm_proxy_native(app, req);
        return;
    }
    gkm_reply_gemini_error(
        req, 404, "NOT_FOUND",
        "Unknown path. This proxy serves the Gemini API under /v1beta/, /v1/ "
        "and /upload/.",
        0);
}

int gkm_server_start(struct gkm_app *app, char *bound, size_t boundlen,
                     char *err, size_t errlen)
{
    const struct gkm_config *cfg = app->cfg;
    struct gkm_http_opts o = {
        .max_header_bytes = cfg->max_header_bytes,
        .max_body_bytes = cfg->max_body_bytes,
        .timeout_ms = cfg->client_timeout_ms,
        .default_ctype = "application/json; charset=UTF-8",
        .handler = on_request,
        .reject = on_reject,
        .quiet = on_quiet,
        .arg = app,
    };
    app->http = gkm_http_new(app->base, &o, app->log);
    if (app->http == NULL) {
        snprintf(err, errlen, "cannot create HTTP server");
        return -1;
    }
    int port = cfg->listen_port;
    char why[200];
    if (gkm_http_listen(app->http, cfg->listen_host, cfg->listen_port,
                        LISTEN_BACKLOG, &port, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "cannot listen on %s (%s; address in use, or "
                              "not a local address?)",
                 cfg->listen, why);
        return -1;
    }
    int v6 = strchr(cfg->listen_host, ':') != NULL;
    snprintf(bound, boundlen, "%s%s%s:%d", v6 ? "[" : "", cfg->listen_host,
             v6 ? "]" : "", port);
    return 0;
}

void gkm_server_stop_accepting(struct gkm_app *app)
{
    if (app->http)
        gkm_http_drain(app->http);
}

void gkm_server_free(struct gkm_app *app)
{
    gkm_http_free(app->http);
    app->http = NULL;
}
