/*
 * server.c - evhttp setup and the route table.
 *
 * Routes:
 *   GET /healthz                    liveness (no auth, reveals no key data)
 *   /v1/chat/completions, /v1/embeddings, /v1/models (Bearer auth),
 *   /v1beta/openai/...              OpenAI surface (openai.c)
 *   /v1beta/..., /v1/..., /upload/...  native Gemini passthrough (native.c)
 *   anything else                   404 in Gemini's error shape
 * Limits (header size, body size, timeouts) are evhttp's own checks; a
 * request evhttp rejects (too large, malformed) reaches on_request with no
 * URI and a preset response code, and gets a JSON error.
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "app.h"
#include "config.h"
#include "log.h"
#include "openai.h"
#include "proxy.h"
#include "route.h"
#include "util.h"

/* Pending connections the kernel may queue (see gkm_server_start). */
#define LISTEN_BACKLOG 4096

static void reply_json(struct evhttp_request *req, int status, const char *body)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL)
        return;
    evbuffer_add(b, body, strlen(body));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/json; charset=UTF-8");
    evhttp_send_reply(req, status, NULL, b);
    evbuffer_free(b);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct gkm_app *app = arg;
    const char *uri = evhttp_request_get_uri(req);
    int handled = uri != NULL && !app->draining &&
                  (gkm_openai_claims(uri, req) || gkm_route_is_native(uri));
    if (!handled)
        gkm_app_track_reply(app, req); /* answered right here */
    if (uri == NULL) {
        /* evhttp rejected the request (body too large, bad headers). */
        int code = evhttp_request_get_response_code(req);
        if (code == 413) {
            char msg[160];
            snprintf(msg, sizeof(msg),
                     "Request body is larger than the proxy's limit of %llu "
                     "bytes (--max-body-size).",
                     (unsigned long long)app->cfg->max_body_bytes);
            gkm_reply_gemini_error(req, 413, "INVALID_ARGUMENT", msg, 0);
        } else {
            gkm_reply_gemini_error(req, 400, "INVALID_ARGUMENT",
                                   "Malformed HTTP request.", 0);
        }
        gkm_info(app->log, "rejected a malformed or oversized request (%d)",
                 code == 413 ? 413 : 400);
        return;
    }
    if (app->draining) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection",
                          "close");
        gkm_reply_gemini_error(req, 503, "UNAVAILABLE",
                               "The proxy is shutting down.", 1);
        return;
    }
    size_t plen = strcspn(uri, "?");
    if (plen == 8 && strncmp(uri, "/healthz", 8) == 0) {
        reply_json(req, 200, "{\"status\":\"ok\"}\n");
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
    app->http = evhttp_new(app->base);
    if (app->http == NULL) {
        snprintf(err, errlen, "cannot create HTTP server");
        return -1;
    }
    evhttp_set_max_headers_size(app->http, (ev_ssize_t)cfg->max_header_bytes);
    evhttp_set_max_body_size(app->http, (ev_ssize_t)cfg->max_body_bytes);
    struct timeval tv = {(time_t)(cfg->client_timeout_ms / 1000),
                         (suseconds_t)((cfg->client_timeout_ms % 1000) * 1000)};
    evhttp_set_timeout_tv(app->http, &tv);
    evhttp_set_allowed_methods(app->http,
                               EVHTTP_REQ_GET | EVHTTP_REQ_POST |
                                   EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                   EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                   EVHTTP_REQ_PATCH);
    /* Read the rest of an oversized body before answering 413, so the
     * client sees the answer instead of a reset. */
    evhttp_set_flags(app->http, EVHTTP_SERVER_LINGERING_CLOSE);
    evhttp_set_default_content_type(app->http,
                                    "application/json; charset=UTF-8");
    evhttp_set_gencb(app->http, on_request, app);

    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(
        app->http, cfg->listen_host, (ev_uint16_t)cfg->listen_port);
    if (bs == NULL) {
        snprintf(err, errlen, "cannot listen on %s (address in use, or not "
                              "a local address?)",
                 cfg->listen);
        return -1;
    }
    /* evhttp listens with a backlog of 128: a burst of clients (a
     * thousand agents starting at once) overflows it, and the kernel then
     * drops SYNs that are retried only after 1, 3, 7 s. Listening again
     * raises the queue (capped by net.core.somaxconn). */
    if (listen(evhttp_bound_socket_get_fd(bs), LISTEN_BACKLOG) != 0)
        gkm_warn(app->log, "cannot raise the listen backlog to %d: %s",
                 LISTEN_BACKLOG, strerror(errno));
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int port = cfg->listen_port;
    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss,
                    &sl) == 0) {
        if (ss.ss_family == AF_INET)
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    int v6 = strchr(cfg->listen_host, ':') != NULL;
    snprintf(bound, boundlen, "%s%s%s:%d", v6 ? "[" : "", cfg->listen_host,
             v6 ? "]" : "", port);
    return 0;
}

static void stop_one(struct evhttp_bound_socket *bs, void *arg)
{
    struct evconnlistener *l = evhttp_bound_socket_get_listener(bs);
    if (l)
        evconnlistener_disable(l);
}

void gkm_server_stop_accepting(struct gkm_app *app)
{
    if (app->http)
        evhttp_foreach_bound_socket(app->http, stop_one, NULL);
}

void gkm_server_free(struct gkm_app *app)
{
    if (app->http) {
        evhttp_free(app->http);
        app->http = NULL;
    }
}
