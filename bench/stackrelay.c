/*
 * stackrelay.c - a benchmark reference, not part of the proxy: the
 * smallest header-swapping reverse proxy that the project's decided stack
 * allows, libevent's evhttp server in front and libcurl's multi_socket API
 * behind, on one libevent loop and one thread, set up as the proxy sets up
 * libcurl (recycled easy handles keeping their options, a pre-parsed URL,
 * "Accept-Encoding: identity", no Expect for small bodies). It does what
 * the nginx reference does and nothing else: no key choice, accounting,
 * checks, redaction or logging. A streamGenerateContent answer is relayed
 * as it arrives (chunked), anything else whole.
 *
 * bench/run.sh measures it next to the proxy, nginx and bench/evrelay.c
 * (evhttp on both sides): the difference between the two relays is what
 * libcurl costs, and this relay is the ceiling for any proxy built on the
 * stack, whatever its features.
 *
 * usage: stackrelay LISTEN_PORT UPSTREAM_PORT KEY   (both on 127.0.0.1)
 */
#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_IDLE 64

struct relay {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    CURLU *origin;
    char keyhdr[256];
    CURL *idle[MAX_IDLE];
    size_t nidle;
};

struct sock {
    struct relay *r;
    struct event *ev;
};

struct pending {
    struct relay *r;
    struct evhttp_request *client;
    CURL *easy;
    CURLU *url;
    struct curl_slist *hdrs;
    struct evbuffer *body;
    struct evkeyvalq *out; /* the client's reply headers */
    int stream;            /* relay the body as it arrives (chunked) */
    int started;           /* the streamed reply has begun */
};

static int hop_or_auth(const char *name, size_t n)
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

static void check_done(struct relay *r)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(r->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct pending *pd = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&pd);
        CURLcode rc = m->data.result;
        curl_multi_remove_handle(r->multi, pd->easy);
        if (pd->started) {
            evhttp_send_reply_end(pd->client);
        } else if (rc != CURLE_OK) {
            evhttp_send_error(pd->client, 502, "upstream failed");
        } else {
            long code = 0;
            curl_easy_getinfo(pd->easy, CURLINFO_RESPONSE_CODE, &code);
            evhttp_send_reply(pd->client, (int)code, NULL, pd->body);
        }
        curl_easy_setopt(pd->easy, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt(pd->easy, CURLOPT_CURLU, NULL);
        curl_easy_setopt(pd->easy, CURLOPT_POSTFIELDS, NULL);
        if (r->nidle < MAX_IDLE)
            r->idle[r->nidle++] = pd->easy;
        else
            curl_easy_cleanup(pd->easy);
        curl_slist_free_all(pd->hdrs);
        curl_url_cleanup(pd->url);
        evbuffer_free(pd->body);
        free(pd);
    }
}

static void on_sock_event(evutil_socket_t fd, short what, void *arg)
{
    struct relay *r = arg;
    int running;
    int mask = ((what & EV_READ) ? CURL_CSELECT_IN : 0) |
               ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    curl_multi_socket_action(r->multi, fd, mask, &running);
    check_done(r);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct relay *r = arg;
    int running;
    (void)fd;
    (void)what;
    curl_multi_socket_action(r->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(r);
}

static int on_curl_socket(CURL *e, curl_socket_t s, int what, void *userp,
                          void *sockp)
{
    struct relay *r = userp;
    struct sock *sk = sockp;
    (void)e;
    if (what == CURL_POLL_REMOVE) {
        if (sk != NULL) {
            event_free(sk->ev);
            free(sk);
            curl_multi_assign(r->multi, s, NULL);
        }
        return 0;
    }
    short kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
                 ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
    if (sk == NULL) {
        sk = calloc(1, sizeof(*sk));
        if (sk == NULL)
            return -1;
        sk->r = r;
        sk->ev = event_new(r->base, s, kind, on_sock_event, r);
        curl_multi_assign(r->multi, s, sk);
    } else {
        event_del(sk->ev);
        event_assign(sk->ev, r->base, s, kind, on_sock_event, r);
    }
    event_add(sk->ev, NULL);
    return 0;
}

static int on_curl_timer(CURLM *m, long ms, void *userp)
{
    struct relay *r = userp;
    (void)m;
    if (ms < 0) {
        evtimer_del(r->timer);
        return 0;
    }
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(r->timer, &tv);
    return 0;
}

static size_t on_header(char *buf, size_t size, size_t n, void *arg)
{
    struct pending *pd = arg;
    size_t len = size * n;
    const char *colon = memchr(buf, ':', len);
    if (colon == NULL || hop_or_auth(buf, (size_t)(colon - buf)))
        return len;
    char name[128], value[1024];
    size_t nl = (size_t)(colon - buf);
    const char *v = colon + 1, *end = buf + len;
    while (v < end && *v == ' ')
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n'))
        end--;
    if (nl >= sizeof(name) || (size_t)(end - v) >= sizeof(value))
        return len;
    memcpy(name, buf, nl);
    name[nl] = '\0';
    memcpy(value, v, (size_t)(end - v));
    value[end - v] = '\0';
    evhttp_add_header(pd->out, name, value);
    return len;
}

static size_t on_write(char *p, size_t size, size_t n, void *arg)
{
    struct pending *pd = arg;
    evbuffer_add(pd->body, p, size * n);
    if (pd->stream) {
        if (!pd->started) {
            long code = 0;
            curl_easy_getinfo(pd->easy, CURLINFO_RESPONSE_CODE, &code);
            evhttp_send_reply_start(pd->client, (int)code, NULL);
            pd->started = 1;
        }
        evhttp_send_reply_chunk(pd->client, pd->body);
    }
    return size * n;
}

static CURL *new_easy(void)
{
    CURL *e = curl_easy_init();
    if (e == NULL)
        return NULL;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "identity");
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    return e;
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
    pd->out = evhttp_request_get_output_headers(req);
    pd->body = evbuffer_new();
    pd->easy = r->nidle > 0 ? r->idle[--r->nidle] : new_easy();
    pd->url = curl_url_dup(r->origin);
    const char *uri = evhttp_request_get_uri(req);
    pd->stream = strstr(uri, ":streamGenerateContent") != NULL;
    const char *q = strchr(uri, '?');
    if (q != NULL) {
        char path[2048];
        size_t pl = (size_t)(q - uri);
        if (pl >= sizeof(path))
            pl = sizeof(path) - 1;
        memcpy(path, uri, pl);
        path[pl] = '\0';
        curl_url_set(pd->url, CURLUPART_PATH, path, 0);
        curl_url_set(pd->url, CURLUPART_QUERY, q + 1, 0);
    } else {
        curl_url_set(pd->url, CURLUPART_PATH, uri, 0);
    }
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    char line[2048];
    for (struct evkeyval *kv = in->tqh_first; kv; kv = kv->next.tqe_next) {
        if (hop_or_auth(kv->key, strlen(kv->key)))
            continue;
        snprintf(line, sizeof(line), "%s: %s", kv->key, kv->value);
        pd->hdrs = curl_slist_append(pd->hdrs, line);
    }
    pd->hdrs = curl_slist_append(pd->hdrs, r->keyhdr);
    pd->hdrs = curl_slist_append(pd->hdrs, "Expect:");
    struct evbuffer *ib = evhttp_request_get_input_buffer(req);
    size_t blen = evbuffer_get_length(ib);
    CURL *e = pd->easy;
    curl_easy_setopt(e, CURLOPT_CURLU, pd->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, pd);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, pd->hdrs);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, pd);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, pd);
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    if (evhttp_request_get_command(req) == EVHTTP_REQ_POST) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS,
                         blen ? (char *)evbuffer_pullup(ib, -1) : "");
    }
    curl_multi_add_handle(r->multi, e);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: stackrelay LISTEN_PORT UPSTREAM_PORT KEY\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct relay r = {0};
    char origin[64];
    snprintf(origin, sizeof(origin), "http://127.0.0.1:%d/", atoi(argv[2]));
    r.origin = curl_url();
    curl_url_set(r.origin, CURLUPART_URL, origin, 0);
    snprintf(r.keyhdr, sizeof(r.keyhdr), "x-goog-api-key: %s", argv[3]);
    struct event_config *cfg = event_config_new();
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    r.base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    r.multi = curl_multi_init();
    r.timer = evtimer_new(r.base, on_timer, &r);
    curl_multi_setopt(r.multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(r.multi, CURLMOPT_SOCKETDATA, &r);
    curl_multi_setopt(r.multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(r.multi, CURLMOPT_TIMERDATA, &r);
    curl_multi_setopt(r.multi, CURLMOPT_MAXCONNECTS, 512L);
    struct evhttp *http = evhttp_new(r.base);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
    evhttp_set_gencb(http, on_request, &r);
    if (evhttp_bind_socket(http, "127.0.0.1", (unsigned short)atoi(argv[1])) != 0) {
        fprintf(stderr, "stackrelay: cannot listen on port %s\n", argv[1]);
        return 1;
    }
    event_base_dispatch(r.base);
    evhttp_free(http);
    curl_multi_cleanup(r.multi);
    event_free(r.timer);
    curl_url_cleanup(r.origin);
    event_base_free(r.base);
    curl_global_cleanup();
    return 0;
}
