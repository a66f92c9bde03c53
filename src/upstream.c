/*
 * upstream.c - libcurl multi_socket glue on the libevent loop.
 *
 * The shape follows curl's hiperfifo example and systemd's curl-util glue
 * (research/c-style.md §3): one CURLM per loop; a struct sockinfo with its
 * own event per socket, created and updated from CURLMOPT_SOCKETFUNCTION and
 * freed on CURL_POLL_REMOVE; exactly one timer, re-armed from
 * CURLMOPT_TIMERFUNCTION (never calling curl from inside it); completions
 * drained in a loop after every curl_multi_socket_action.
 *
 * check_done hands each finished easy handle to its engine: libcurl's
 * transfers (upstream_curl.c) or the HTTP/1.1 engine's connections
 * (upstream_h1conn.c), told apart by the first int of CURLOPT_PRIVATE.
 *
 * The idle timeout is ours, not curl's CURLOPT_LOW_SPEED_*: curl's speed
 * check arms a one-second timer per transfer and then polls the socket on
 * every expiry, which made a thousand open streams cost a thousand curl
 * runs and poll() calls a second. One sweep timer, armed only while
 * transfers are live, checks when each last received a byte.
 */
#include "upstream.h"
#include "upstream_int.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "util.h"

/* How often live transfers are checked against --idle-timeout. */
#define SWEEP_MS 1000



struct sockinfo {
    struct gkm_upstream *up;
    curl_socket_t fd;
    struct event *ev;
    short kind;  /* event flags registered */
    int added;   /* the event is added (not deleted after parking) */
    int parked;  /* curl does not watch this socket now */
    int ours;    /* opened by on_curl_open: closed through on_curl_close */
};

static int target_char(unsigned char c);




void gkm_up_active_inc(struct gkm_upstream *up)
{
    if (up->active++ == 0) {
        struct timeval tv = {SWEEP_MS / 1000, (SWEEP_MS % 1000) * 1000};
        evtimer_add(up->sweep, &tv);
    }
}

void gkm_up_active_dec(struct gkm_upstream *up)
{
    if (--up->active == 0 && up->sweep)
        evtimer_del(up->sweep);
}

static void check_done(struct gkm_upstream *up)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(up->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode res = msg->data.result;
        void *priv = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&priv);
        if (priv != NULL && *(const int *)priv == GKM_UPK_CONN) {
            /* An h1 connection: connected, or failed to. Its handle stays
             * in the multi (removing it closes the connection). */
            gkm_h1_connected(priv, res);
            continue;
        }
        /* msg is invalid once the handle is removed: copy first. */
        curl_multi_remove_handle(up->multi, easy);
        if (priv != NULL)
            gkm_cx_done(priv, res);
    }
}


static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct gkm_upstream *up = arg;
    int64_t now = gkm_mono_coarse_ms();
    gkm_cx_sweep(up, now);
    gkm_h1_sweep(up, now);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct gkm_upstream *up = arg;
    int running = 0;
    curl_multi_socket_action(up->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(up);
}

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    struct sockinfo *si = arg;
    struct gkm_upstream *up = si->up;
    int flags = 0, running = 0;
    if (si->parked) {
        /* An idle cached connection became readable: the server closed it
         * (or sent junk). Stop watching; curl finds it dead on reuse. */
        event_del(si->ev);
        si->added = 0;
        return;
    }
    if (what & EV_READ)
        flags |= CURL_CSELECT_IN;
    if (what & EV_WRITE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(up->multi, fd, flags, &running);
    check_done(up);
}

/* Watch s for curl. A socket curl stops watching (CURL_POLL_REMOVE: an
 * idle connection back in its cache) keeps its event "parked" instead of
 * being deleted, because the next request usually reuses that connection
 * at once and a delete + add would cost two epoll_ctl calls per request.
 * A parked socket that turns readable (the server closed it) is deleted
 * then; curl's close-socket callback frees the sockinfo before the fd is
 * closed, so an fd number never outlives its event. */
static int on_curl_socket(CURL *e, curl_socket_t s, int what, void *userp,
                          void *socketp)
{
    struct gkm_upstream *up = userp;
    struct sockinfo *si = socketp;
    if (si == NULL && s >= 0 && (size_t)s < up->nsocks)
        si = up->socks[s];
    if (what == CURL_POLL_REMOVE) {
        if (si == NULL)
            return 0;
        curl_multi_assign(up->multi, s, NULL);
        if (si->ours) {
            si->parked = 1; /* a connection socket: curl closes it via us */
        } else {
            /* Any other socket (a resolver's wake-up pipe) is closed by curl
             * without telling us: forget it now. */
            up->socks[s] = NULL;
            event_free(si->ev);
            free(si);
        }
        return 0;
    }
    short kind = EV_PERSIST;
    if (what & CURL_POLL_IN)
        kind |= EV_READ;
    if (what & CURL_POLL_OUT)
        kind |= EV_WRITE;
    if (si == NULL) {
        if (s < 0)
            return -1;
        si = calloc(1, sizeof(*si));
        if (si == NULL)
            return -1;
        si->up = up;
        si->fd = s;
        si->ev = event_new(up->base, s, kind, on_socket_event, si);
        if (si->ev == NULL) {
            free(si);
            return -1;
        }
        if ((size_t)s >= up->nsocks) {
            size_t n = up->nsocks ? up->nsocks : 64;
            while (n <= (size_t)s)
                n *= 2;
            up->socks = gkm_xrealloc(up->socks, n * sizeof(*up->socks));
            memset(up->socks + up->nsocks, 0,
                   (n - up->nsocks) * sizeof(*up->socks));
            up->nsocks = n;
        }
        up->socks[s] = si;
        si->kind = kind;
        si->ours = (size_t)s < up->nowned && up->owned[s];
        event_add(si->ev, NULL);
    } else if (si->kind != kind || !si->added) {
        event_del(si->ev);
        event_assign(si->ev, up->base, s, kind, on_socket_event, si);
        si->kind = kind;
        event_add(si->ev, NULL);
    }
    si->added = 1;
    si->parked = 0;
    curl_multi_assign(up->multi, s, si);
    return 0;
}

/* curl opens a connection socket: remember that it is one, so its event
 * may be parked (on_curl_close will tell us when it goes). */
static curl_socket_t on_curl_open(void *clientp, curlsocktype purpose,
                                  struct curl_sockaddr *a)
{
    struct gkm_upstream *up = clientp;
    curl_socket_t s = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (s < 0 || purpose != CURLSOCKTYPE_IPCXN)
        return s;
    if ((size_t)s >= up->nowned) {
        size_t n = up->nowned ? up->nowned : 64;
        while (n <= (size_t)s)
            n *= 2;
        up->owned = gkm_xrealloc(up->owned, n);
        memset(up->owned + up->nowned, 0, n - up->nowned);
        up->nowned = n;
    }
    up->owned[s] = 1;
    return s;
}

/* curl closes a connection's socket: drop its event first. */
static int on_curl_close(void *clientp, curl_socket_t s)
{
    struct gkm_upstream *up = clientp;
    if (s >= 0 && (size_t)s < up->nowned)
        up->owned[s] = 0;
    if (s >= 0 && (size_t)s < up->nsocks && up->socks[s] != NULL) {
        struct sockinfo *si = up->socks[s];
        event_free(si->ev);
        free(si);
        up->socks[s] = NULL;
    }
    return close(s);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct gkm_upstream *up = userp;
    if (timeout_ms < 0) {
        evtimer_del(up->timer);
        return 0;
    }
    /* 0 means "as soon as possible" (a transfer was just added): the timer
     * is made active, so it runs in this loop pass once the current
     * callback returns, never recursively from here, and without another
     * epoll_wait first. Should curl keep asking for 0 ms, every few runs
     * go through a 0 ms timer so that sockets are polled in between. */
    if (timeout_ms == 0) {
        /* libevent's cached time changes once per loop pass: it tells a
         * new pass from the same one (the count may only grow within). */
        struct timeval now;
        event_base_gettimeofday_cached(up->base, &now);
        if (now.tv_sec != up->quick_tv.tv_sec ||
            now.tv_usec != up->quick_tv.tv_usec) {
            up->quick_tv = now;
            up->quick_runs = 0;
        }
        if (up->quick_runs < 4) {
            up->quick_runs++;
            event_active(up->timer, EV_TIMEOUT, 0);
            return 0;
        }
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(up->timer, &tv);
    return 0;
}



/* libcurl looks for a proxy in the environment on every transfer (up to
 * six getenv calls, then copies) unless CURLOPT_PROXY and CURLOPT_NOPROXY
 * are set. The environment does not change under a running proxy, so its
 * rules are applied once here: "http_proxy" (lower case only, as curl) for
 * http:// URLs, "https_proxy" or "HTTPS_PROXY" for https://, else
 * "all_proxy" or "ALL_PROXY"; "no_proxy" or "NO_PROXY" for exceptions. */
static char *env_first(const char *a, const char *b)
{
    const char *v = getenv(a);
    if ((v == NULL || v[0] == '\0') && b != NULL)
        v = getenv(b);
    return gkm_xstrdup(v != NULL ? v : "");
}

static void env_proxy(struct gkm_upstream *up)
{
    char *all = env_first("all_proxy", "ALL_PROXY");
    up->env_proxy_http = env_first("http_proxy", NULL);
    up->env_proxy_https = env_first("https_proxy", "HTTPS_PROXY");
    if (up->env_proxy_http[0] == '\0') {
        free(up->env_proxy_http);
        up->env_proxy_http = gkm_xstrdup(all);
    }
    if (up->env_proxy_https[0] == '\0') {
        free(up->env_proxy_https);
        up->env_proxy_https = gkm_xstrdup(all);
    }
    free(all);
    up->env_noproxy = env_first("no_proxy", "NO_PROXY");
}

struct gkm_upstream *gkm_upstream_new(struct event_base *base,
                                      const struct gkm_upstream_opts *opts,
                                      struct gkm_log *log)
{
    struct gkm_upstream *up = gkm_xcalloc(1, sizeof(*up));
    up->base = base;
    up->log = log;
    up->opts = *opts;
    for (unsigned c = 0; c < 256; c++)
        up->target_ok[c] = (unsigned char)target_char((unsigned char)c);
    if (opts->proxy == NULL)
        env_proxy(up);
    up->multi = curl_multi_init();
    up->timer = evtimer_new(base, on_timer, up);
    up->sweep = event_new(base, -1, EV_PERSIST, on_sweep, up);
    if (up->multi == NULL || up->timer == NULL || up->sweep == NULL) {
        gkm_error(log, "cannot initialise libcurl multi handle");
        gkm_upstream_free(up);
        return NULL;
    }
    curl_multi_setopt(up->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(up->multi, CURLMOPT_SOCKETDATA, up);
    curl_multi_setopt(up->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(up->multi, CURLMOPT_TIMERDATA, up);
    curl_multi_setopt(up->multi, CURLMOPT_MAXCONNECTS, 512L);
    return up;
}

void gkm_upstream_free(struct gkm_upstream *up)
{
    if (up == NULL)
        return;
    if (up->multi)
        gkm_h1_free_all(up);
    gkm_cx_free_all(up);
    if (up->multi)
        curl_multi_cleanup(up->multi); /* closes cached connections */
    for (size_t i = 0; i < up->nsocks; i++) {
        if (up->socks[i]) {
            event_free(up->socks[i]->ev);
            free(up->socks[i]);
        }
    }
    free(up->socks);
    free(up->owned);
    free(up->env_proxy_http);
    free(up->env_proxy_https);
    free(up->env_noproxy);
    if (up->timer)
        event_free(up->timer);
    if (up->sweep)
        event_free(up->sweep);
    free(up);
}

size_t gkm_upstream_active(const struct gkm_upstream *up)
{
    return up->active;
}




/* Whether c may stand in a request target as it is: the characters RFC
 * 3986 allows in a path and a query (unreserved, sub-delims, ':', '@',
 * '/', '?') and '%' of a percent-encoding. */
static int target_char(unsigned char c)
{
    if (((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9'))
        return 1;
    switch (c) {
    case '-': case '.': case '_': case '~': case '!': case '$': case '&':
    case '\'': case '(': case ')': case '*': case '+': case ',': case ';':
    case '=': case ':': case '@': case '/': case '?': case '%':
        return 1;
    default:
        return 0;
    }
}

const char *gkm_up_proxy_for(const struct gkm_upstream *up, const char *url)
{
    if (up->opts.proxy != NULL)
        return up->opts.proxy;
    return strncmp(url, "https:", 6) == 0 ? up->env_proxy_https
                                          : up->env_proxy_http;
}

/* Whether this transfer's request line must carry the absolute URL: a
 * plain-http upstream through an HTTP proxy (an https one is tunnelled
 * with CONNECT, and a SOCKS proxy relays bytes). */
int gkm_up_absolute_form(const struct gkm_upstream *up, const char *url)
{
    if (strncmp(url, "http:", 5) != 0)
        return 0;
    const char *p = gkm_up_proxy_for(up, url);
    return p != NULL && p[0] != '\0' && strncasecmp(p, "socks", 5) != 0;
}

size_t gkm_up_target_len(const struct gkm_upstream *up, const char *rest,
                         size_t n)
{
    size_t len = n == 0 || rest[0] != '/' ? 1 : 0;
    for (size_t i = 0; i < n; i++)
        len += up->target_ok[(unsigned char)rest[i]] ? 1 : 3;
    return len;
}

char *gkm_up_target_put(const struct gkm_upstream *up, const char *rest,
                        size_t n, char *w)
{
    static const char hex[] = "0123456789ABCDEF";
    if (n == 0 || rest[0] != '/')
        *w++ = '/';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)rest[i];
        if (up->target_ok[c]) {
            *w++ = (char)c;
        } else {
            *w++ = '%';
            *w++ = hex[c >> 4];
            *w++ = hex[c & 15];
        }
    }
    return w;
}



/* The options every transfer shares, set once per easy handle: recycled
 * handles keep them (no curl_easy_reset), and gkm_xfer_start sets the
 * per-request ones, including the method, every time. */
void gkm_up_setup_handle(struct gkm_upstream *up, CURL *e)
{
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, up->opts.connect_timeout_ms);
    /* "Accept-Encoding: identity": every answer is read (keys masked,
     * usage counted), and inflating small JSON answers costs more than the
     * bytes it saves; libcurl's own list ("deflate, gzip, br, zstd") also
     * cost ~5,000 instructions per request to print. Without the header a
     * server may pick any coding (RFC 9110 12.5.3). Set here, it makes
     * libcurl decode an answer compressed anyway; the header line itself
     * goes out from the request's list (request_headers). */
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "identity");
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    /* A 4 KiB receive buffer per transfer (libcurl's default is 16 KiB),
     * as nginx reads a proxied answer a page at a time: answers and stream
     * events are small, and with a thousand open streams the 16 KiB
     * buffers, each touched at a different offset every time the heap
     * hands it out again, grew the resident memory by 2-5 MiB per
     * thousand streams (bench/README.md, run N). A large answer takes a
     * few more reads. */
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 4096L);
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_curl_open);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, up);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_curl_close);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, up);
    if (up->opts.verbose)
        curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
    if (up->opts.cainfo != NULL)
        curl_easy_setopt(e, CURLOPT_CAINFO, up->opts.cainfo);
    if (up->opts.proxy != NULL) {
        curl_easy_setopt(e, CURLOPT_PROXY, up->opts.proxy);
    } else {
        curl_easy_setopt(e, CURLOPT_NOPROXY, up->env_noproxy);
        /* CURLOPT_PROXY: per transfer, by the URL's scheme */
    }
}



/* The kind of exchange x is (its first int, upstream_int.h). */
static int kind_of(const struct gkm_xfer *x)
{
    return *(const int *)(const void *)x;
}

struct gkm_xfer *gkm_xfer_start(struct gkm_upstream *up, const char *method,
                                const char *url, const char *const *headers,
                                size_t nheaders, const char *body,
                                size_t bodylen, const struct gkm_xfer_cbs *cbs,
                                void *arg)
{
    if (!up->opts.http2 && !gkm_up_absolute_form(up, url))
        return gkm_h1_start(up, method, url, headers, nheaders, body, bodylen,
                            cbs, arg);
    return gkm_cx_start(up, method, url, headers, nheaders, body, bodylen,
                        cbs, arg);
}

void gkm_xfer_cancel(struct gkm_xfer *x)
{
    if (x == NULL)
        return;
    if (kind_of(x) == GKM_UPK_H1)
        gkm_h1_cancel(x);
    else
        gkm_cx_cancel(x);
}

void gkm_xfer_resume(struct gkm_xfer *x)
{
    if (x == NULL)
        return;
    if (kind_of(x) == GKM_UPK_H1)
        gkm_h1_resume(x);
    else
        gkm_cx_resume(x);
}



void gkm_up_unpark(struct gkm_upstream *up, curl_socket_t fd)
{
    if (fd < 0 || (size_t)fd >= up->nsocks || up->socks[fd] == NULL)
        return;
    struct sockinfo *si = up->socks[fd];
    if (si->added) {
        event_del(si->ev);
        si->added = 0;
    }
}
