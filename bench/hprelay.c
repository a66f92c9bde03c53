/*
 * hprelay.c - a benchmark reference, not part of the proxy: the same
 * header-swapping relay as bench/stackrelay.c (libcurl's multi_socket API
 * behind, set up the same way, on one libevent loop), with evhttp's server
 * replaced by a lean one (bench/leanserver.c): plain libevent read/write
 * events on the client socket, requests parsed by Debian's libhttp-parser,
 * replies formatted into one buffer and written at once. It measures what a server layer of our
 * own (without evhttp) would allow on the rest of the stack.
 *
 * usage: hprelay LISTEN_PORT UPSTREAM_PORT KEY   (both on 127.0.0.1)
 */
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "leanserver.h"

#define MAX_IDLE 64

struct relay {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    CURLU *origin;
    char keyhdr[256];
    CURL *idle[MAX_IDLE];
    size_t nidle;
    struct lean_server srv;
};

struct pending {
    struct relay *r;
    struct conn *c; /* NULL once the client went away */
    CURL *easy;
    CURLU *url;
    struct curl_slist *hdrs;
    struct obuf hdr; /* the reply's header lines */
    struct obuf body;
    int stream;
    int started;
};

static void pending_free(struct pending *pd)
{
    struct relay *r = pd->r;
    curl_easy_setopt(pd->easy, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(pd->easy, CURLOPT_CURLU, NULL);
    curl_easy_setopt(pd->easy, CURLOPT_POSTFIELDS, NULL);
    if (r->nidle < MAX_IDLE)
        r->idle[r->nidle++] = pd->easy;
    else
        curl_easy_cleanup(pd->easy);
    curl_slist_free_all(pd->hdrs);
    curl_url_cleanup(pd->url);
    free(pd->hdr.d);
    free(pd->body.d);
    free(pd);
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
        struct conn *c = pd->c;
        if (c != NULL) {
            struct obuf *o = &c->out;
            if (pd->started) {
                ob_add(o, "0\r\n\r\n", 5);
            } else if (rc != CURLE_OK) {
                put_status(o, 502);
                ob_add(o, "Content-Length: 0\r\n\r\n", 21);
            } else {
                long code = 0;
                char cl[64];
                curl_easy_getinfo(pd->easy, CURLINFO_RESPONSE_CODE, &code);
                put_status(o, code);
                ob_add(o, pd->hdr.d, pd->hdr.len);
                int n = snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n\r\n",
                                 pd->body.len);
                ob_add(o, cl, (size_t)n);
                ob_add(o, pd->body.d, pd->body.len);
            }
            request_done(c);
        }
        pending_free(pd);
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
    struct event *ev = sockp;
    (void)e;
    if (what == CURL_POLL_REMOVE) {
        if (ev != NULL) {
            event_free(ev);
            curl_multi_assign(r->multi, s, NULL);
        }
        return 0;
    }
    short kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
                 ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
    if (ev == NULL) {
        ev = event_new(r->base, s, kind, on_sock_event, r);
        curl_multi_assign(r->multi, s, ev);
    } else {
        event_del(ev);
        event_assign(ev, r->base, s, kind, on_sock_event, r);
    }
    event_add(ev, NULL);
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
    ob_add(&pd->hdr, buf, len);
    return len;
}

static size_t on_write(char *p, size_t size, size_t n, void *arg)
{
    struct pending *pd = arg;
    size_t len = size * n;
    if (!pd->stream) {
        ob_add(&pd->body, p, len);
        return len;
    }
    struct conn *c = pd->c;
    if (c == NULL)
        return 0; /* client gone: cancel */
    if (!pd->started) {
        long code = 0;
        curl_easy_getinfo(pd->easy, CURLINFO_RESPONSE_CODE, &code);
        put_status(&c->out, code);
        ob_add(&c->out, pd->hdr.d, pd->hdr.len);
        ob_add(&c->out, "Transfer-Encoding: chunked\r\n\r\n", 30);
        pd->started = 1;
    }
    char hx[32];
    int hn = snprintf(hx, sizeof(hx), "%zx\r\n", len);
    ob_add(&c->out, hx, (size_t)hn);
    ob_add(&c->out, p, len);
    ob_add(&c->out, "\r\n", 2);
    if (flush_out(c) != 0)
        return 0;
    return len;
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

static void detach(struct conn *c)
{
    struct pending *pd = c->up;
    pd->c = NULL;
}

static void start_upstream(struct conn *c)
{
    struct relay *r = c->srv->arg;
    struct pending *pd = calloc(1, sizeof(*pd));
    if (pd == NULL)
        abort();
    pd->r = r;
    pd->c = c;
    c->up = pd;
    c->busy = 1;
    pd->easy = r->nidle > 0 ? r->idle[--r->nidle] : new_easy();
    pd->url = curl_url_dup(r->origin);
    c->url[c->urllen] = '\0';
    pd->stream = strstr(c->url, ":streamGenerateContent") != NULL;
    char *q = strchr(c->url, '?');
    if (q != NULL) {
        *q = '\0';
        curl_url_set(pd->url, CURLUPART_PATH, c->url, 0);
        curl_url_set(pd->url, CURLUPART_QUERY, q + 1, 0);
    } else {
        curl_url_set(pd->url, CURLUPART_PATH, c->url, 0);
    }
    char line[2048];
    for (int i = 0; i < c->nh; i++) {
        if (hop_or_auth(c->arena + c->hname[i], c->hnlen[i]))
            continue;
        snprintf(line, sizeof(line), "%.*s: %.*s", (int)c->hnlen[i],
                 c->arena + c->hname[i], (int)c->hvlen[i], c->arena + c->hval[i]);
        pd->hdrs = curl_slist_append(pd->hdrs, line);
    }
    pd->hdrs = curl_slist_append(pd->hdrs, r->keyhdr);
    pd->hdrs = curl_slist_append(pd->hdrs, "Expect:");
    CURL *e = pd->easy;
    curl_easy_setopt(e, CURLOPT_CURLU, pd->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, pd);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, pd->hdrs);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, pd);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, pd);
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    if (c->p.method == HTTP_POST) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body.len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body.len ? c->body.d : "");
    }
    curl_multi_add_handle(r->multi, e);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: hprelay LISTEN_PORT UPSTREAM_PORT KEY\n");
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
    lean_server_init(&r.srv);
    r.srv.start = start_upstream;
    r.srv.detach = detach;
    r.srv.arg = &r;
    r.base = lean_base_new();
    r.srv.base = r.base;
    r.multi = curl_multi_init();
    r.timer = evtimer_new(r.base, on_timer, &r);
    curl_multi_setopt(r.multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(r.multi, CURLMOPT_SOCKETDATA, &r);
    curl_multi_setopt(r.multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(r.multi, CURLMOPT_TIMERDATA, &r);
    curl_multi_setopt(r.multi, CURLMOPT_MAXCONNECTS, 512L);
    struct evconnlistener *l = lean_listen(&r.srv, "hprelay", argv[1]);
    if (l == NULL)
        return 1;
    event_base_dispatch(r.base);
    evconnlistener_free(l);
    curl_multi_cleanup(r.multi);
    event_free(r.timer);
    curl_url_cleanup(r.origin);
    event_base_free(r.base);
    curl_global_cleanup();
    return 0;
}
