/*
 * evrelay.c - a benchmark reference, not part of the proxy: the smallest
 * header-swapping reverse proxy that libevent 2.1 alone allows, evhttp
 * server in front, evhttp client behind (plain HTTP/1.1, kept-alive
 * connections), one thread. It does what the nginx reference does and
 * nothing else: no key choice, accounting, checks, logging, TLS or HTTP/2.
 *
 * bench/run.sh measures it next to the proxy and nginx to show how much of
 * nginx's throughput the evhttp server side leaves to any proxy built on
 * it, whatever its upstream client.
 *
 * usage: evrelay LISTEN_PORT UPSTREAM_PORT KEY   (both on 127.0.0.1)
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_IDLE 1024

struct relay {
    struct event_base *base;
    int up_port;
    const char *key;
    struct evhttp_connection *idle[MAX_IDLE];
    size_t nidle;
};

struct pending {
    struct relay *r;
    struct evhttp_request *client;
    struct evhttp_connection *conn;
};

static int hop_or_auth(const char *name)
{
    static const char *const drop[] = {
        "host", "connection", "keep-alive", "transfer-encoding", "te",
        "upgrade", "content-length", "x-goog-api-key", "authorization",
    };
    for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++)
        if (strcasecmp(name, drop[i]) == 0)
            return 1;
    return 0;
}

static void on_upstream(struct evhttp_request *ur, void *arg)
{
    struct pending *pd = arg;
    struct relay *r = pd->r;
    if (ur == NULL || evhttp_request_get_response_code(ur) == 0) {
        evhttp_send_error(pd->client, 502, "upstream failed");
        evhttp_connection_free(pd->conn);
        free(pd);
        return;
    }
    struct evkeyvalq *in = evhttp_request_get_input_headers(ur);
    struct evkeyvalq *out = evhttp_request_get_output_headers(pd->client);
    for (struct evkeyval *kv = in->tqh_first; kv; kv = kv->next.tqe_next)
        if (!hop_or_auth(kv->key))
            evhttp_add_header(out, kv->key, kv->value);
    evhttp_send_reply(pd->client, evhttp_request_get_response_code(ur), NULL,
                      evhttp_request_get_input_buffer(ur));
    /* The connection goes back to the pool once this callback returns
     * (evhttp keeps it open: HTTP/1.1 keep-alive). */
    if (r->nidle < MAX_IDLE)
        r->idle[r->nidle++] = pd->conn;
    else
        evhttp_connection_free_on_completion(pd->conn);
    free(pd);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct relay *r = arg;
    struct pending *pd = calloc(1, sizeof(*pd));
    if (pd == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    pd->r = r;
    pd->client = req;
    pd->conn = r->nidle > 0 ? r->idle[--r->nidle]
                            : evhttp_connection_base_new(r->base, NULL,
                                                         "127.0.0.1",
                                                         (unsigned short)r->up_port);
    struct evhttp_request *ur = evhttp_request_new(on_upstream, pd);
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    struct evkeyvalq *out = evhttp_request_get_output_headers(ur);
    for (struct evkeyval *kv = in->tqh_first; kv; kv = kv->next.tqe_next)
        if (!hop_or_auth(kv->key))
            evhttp_add_header(out, kv->key, kv->value);
    evhttp_add_header(out, "Host", "127.0.0.1");
    evhttp_add_header(out, "x-goog-api-key", r->key);
    evbuffer_add_buffer(evhttp_request_get_output_buffer(ur),
                        evhttp_request_get_input_buffer(req));
    if (evhttp_make_request(pd->conn, ur, evhttp_request_get_command(req),
                            evhttp_request_get_uri(req)) != 0) {
        evhttp_send_error(req, 502, NULL);
        evhttp_connection_free(pd->conn);
        free(pd);
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: evrelay LISTEN_PORT UPSTREAM_PORT KEY\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct relay r = {0};
    r.up_port = atoi(argv[2]);
    r.key = argv[3];
    struct event_config *cfg = event_config_new();
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    r.base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    struct evhttp *http = evhttp_new(r.base);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
    evhttp_set_gencb(http, on_request, &r);
    if (evhttp_bind_socket(http, "127.0.0.1", (unsigned short)atoi(argv[1])) != 0) {
        fprintf(stderr, "evrelay: cannot listen on port %s\n", argv[1]);
        return 1;
    }
    event_base_dispatch(r.base);
    evhttp_free(http);
    event_base_free(r.base);
    return 0;
}
