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
 * Invariants:
 *  - an easy handle is removed and cleaned up only from the event loop
 *    (check_done or gkm_xfer_cancel), never from inside its own callbacks;
 *    a cancel requested from inside one is deferred (x->cancelled makes
 *    the write callback fail, and check_done frees silently);
 *  - on_done runs after the handle left the multi, so it may start another
 *    transfer.
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

#define MAX_RESPONSE_HEADERS GKM_UP_MAX_RESPONSE_HEADERS
#define MAX_HEADER_BYTES GKM_UP_MAX_HEADER_BYTES
#define IDLE_HANDLES GKM_UP_IDLE_HANDLES
/* How often live transfers are checked against --idle-timeout. */
#define SWEEP_MS 1000


struct gkm_xfer {
    int kind; /* GKM_UPK_CURL (upstream_int.h) */
    struct gkm_upstream *up;
    CURL *easy;
    struct curl_slist *hdrs; /* in one block of hdrs_size bytes with the
                              * lines (see request_headers) */
    size_t hdrs_size;
    struct gkm_xfer_cbs cbs;
    void *arg;
    struct gkm_buf hb;   /* response headers: "name\0value\0" each */
    size_t nresp;        /* headers in hb */
    struct gkm_header *resp_hdrs; /* view into hb, made by headers_view */
    size_t aresp;
    long status;
    int headers_delivered;
    int in_cb;
    int cancelled;
    int paused;          /* by GKM_DATA_PAUSE: idle time does not count */
    int64_t last_io_ms;  /* monotonic: start, or the last byte received */
    struct origin *origin; /* a reference: curl reads origin->u ... */
    CURLU *url;          /* ... or this URL of its own (owned) until the
                          * transfer ends */
    struct gkm_xfer *prev, *next;
    char errbuf[CURL_ERROR_SIZE];
};

struct sockinfo {
    struct gkm_upstream *up;
    curl_socket_t fd;
    struct event *ev;
    short kind;  /* event flags registered */
    int added;   /* the event is added (not deleted after parking) */
    int parked;  /* curl does not watch this socket now */
    int ours;    /* opened by on_curl_open: closed through on_curl_close */
};

static void free_request_headers(struct gkm_xfer *x);
static void origin_put(struct origin *o);
static int target_char(unsigned char c);

static void clear_resp_headers(struct gkm_xfer *x)
{
    gkm_buf_reset(&x->hb);
    x->nresp = 0;
}

/* The received headers as an array pointing into x->hb (valid until hb
 * changes). The strings sit in one buffer, not one allocation each. */
static const struct gkm_header *headers_view(struct gkm_xfer *x)
{
    if (x->nresp > x->aresp) {
        x->aresp = x->nresp;
        x->resp_hdrs = gkm_xrealloc(x->resp_hdrs,
                                    x->aresp * sizeof(*x->resp_hdrs));
    }
    char *q = x->hb.data;
    for (size_t i = 0; i < x->nresp; i++) {
        x->resp_hdrs[i].name = q;
        q += strlen(q) + 1;
        x->resp_hdrs[i].value = q;
        q += strlen(q) + 1;
    }
    return x->resp_hdrs;
}

static void xfer_free(struct gkm_xfer *x)
{
    struct gkm_upstream *up = x->up;
    if (x->prev)
        x->prev->next = x->next;
    else
        up->head = x->next;
    if (x->next)
        x->next->prev = x->prev;
    curl_multi_remove_handle(up->multi, x->easy);
    if (up->nidle < IDLE_HANDLES) {
        /* Kept configured (setup_handle); drop what points into x. */
        curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, NULL);
        curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, NULL);
        curl_easy_setopt(x->easy, CURLOPT_PRIVATE, NULL);
        curl_easy_setopt(x->easy, CURLOPT_CURLU, NULL);
        up->idle[up->nidle++] = x->easy;
    } else {
        curl_easy_cleanup(x->easy);
    }
    curl_url_cleanup(x->url);
    origin_put(x->origin);
    free_request_headers(x);
    gkm_buf_free(&x->hb);
    free(x->resp_hdrs);
    free(x);
    gkm_up_active_dec(up);
}

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
        struct gkm_xfer *x = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
        if (x != NULL && x->kind == GKM_UPK_CONN) {
            /* An h1 connection: connected, or failed to. */
            gkm_h1_connected((struct h1conn *)(void *)x, res);
            continue;
        }
        /* msg is invalid once the handle is removed: copy first. */
        curl_multi_remove_handle(up->multi, easy);
        if (x == NULL)
            continue;
        if (x->cancelled) {
            xfer_free(x);
            continue;
        }
        long status = 0;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        if (status == 0)
            status = x->status;
        int ok = res == CURLE_OK;
        x->in_cb++;
        if (ok && !x->headers_delivered) {
            x->headers_delivered = 1;
            if (x->cbs.on_headers(x->arg, status, headers_view(x), x->nresp) ==
                GKM_DATA_ABORT)
                ok = 0;
        }
        if (!x->cancelled) {
            const char *err = ok ? NULL
                                 : (x->errbuf[0] ? x->errbuf
                                                 : curl_easy_strerror(res));
            x->cbs.on_done(x->arg, ok, status,
                           res == CURLE_OPERATION_TIMEDOUT, err);
        }
        x->in_cb--;
        xfer_free(x);
    }
}

/* Abort x for --idle-timeout, as check_done ends a failed transfer. */
static void expire(struct gkm_xfer *x)
{
    char msg[96];
    snprintf(msg, sizeof(msg), "no data from upstream for %lld s (--idle-timeout)",
             (long long)(x->up->opts.idle_timeout_ms / 1000));
    curl_multi_remove_handle(x->up->multi, x->easy);
    x->in_cb++;
    x->cbs.on_done(x->arg, 0, x->status, 1, msg);
    x->in_cb--;
    xfer_free(x);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct gkm_upstream *up = arg;
    int64_t now = gkm_mono_coarse_ms();
    long limit = up->opts.idle_timeout_ms;
    struct gkm_xfer *x;
again:
    /* on_done may start or cancel other transfers: rescan after each. */
    for (x = up->head; x != NULL; x = x->next) {
        if (x->cancelled || x->in_cb)
            continue;
        if (x->paused) {
            x->last_io_ms = now; /* a slow client is not an idle upstream */
            continue;
        }
        if (limit > 0 && now - x->last_io_ms >= limit) {
            expire(x);
            goto again;
        }
    }
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

static size_t on_curl_header(char *buf, size_t size, size_t n, void *arg)
{
    struct gkm_xfer *x = arg;
    size_t len = size * n;
    if (x->cancelled)
        return 0;
    x->last_io_ms = gkm_mono_coarse_ms();
    if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        /* A new response (after 1xx): start over. */
        clear_resp_headers(x);
        const char *sp = memchr(buf, ' ', len);
        x->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        return len;
    }
    const char *colon = memchr(buf, ':', len);
    if (colon == NULL)
        return len; /* blank line ending the block, or junk */
    if (x->nresp >= MAX_RESPONSE_HEADERS)
        return 0; /* absurd header block: fail the transfer */
    size_t nlen = (size_t)(colon - buf);
    const char *v = colon + 1;
    const char *end = buf + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' ||
                       end[-1] == '\t'))
        end--;
    size_t vlen = (size_t)(end - v);
    if (x->hb.len + nlen + vlen + 2 > MAX_HEADER_BYTES)
        return 0; /* absurd header block: fail the transfer */
    /* Within the cap checked above: the appends cannot fail. A NUL inside
     * a name or value would shift the view; cut the string there. */
    size_t nl = strnlen(buf, nlen), vl = strnlen(v, vlen);
    if (gkm_buf_append(&x->hb, buf, nl) != 0 ||
        gkm_buf_append(&x->hb, "", 1) != 0 ||
        gkm_buf_append(&x->hb, v, vl) != 0 ||
        gkm_buf_append(&x->hb, "", 1) != 0)
        return 0;
    x->nresp++;
    return len;
}

static size_t on_curl_write(char *p, size_t size, size_t n, void *arg)
{
    struct gkm_xfer *x = arg;
    size_t len = size * n;
    enum gkm_data_rc rc = GKM_DATA_OK;
    if (x->cancelled)
        return 0;
    x->last_io_ms = gkm_mono_coarse_ms();
    x->in_cb++;
    if (!x->headers_delivered) {
        long status = 0;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status == 0)
            status = x->status;
        x->headers_delivered = 1;
        rc = x->cbs.on_headers(x->arg, status, headers_view(x), x->nresp);
    }
    if (rc == GKM_DATA_OK && !x->cancelled && len > 0)
        rc = x->cbs.on_data(x->arg, p, len);
    x->in_cb--;
    if (x->cancelled || rc == GKM_DATA_ABORT)
        return 0;
    if (rc == GKM_DATA_PAUSE) {
        x->paused = 1;
        return CURL_WRITEFUNC_PAUSE;
    }
    return len;
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
    while (up->head != NULL)
        xfer_free(up->head);
    while (up->nidle > 0)
        curl_easy_cleanup(up->idle[--up->nidle]);
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
    origin_put(up->origin);
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

/* An origin ("scheme://host[:port]") in curl's parsed form, shared by the
 * transfers to it and counted: handing curl a URL string makes it parse
 * the URL and print it back (its printf works one character at a time) on
 * every transfer, and the origin is the same for nearly every request. */
struct origin {
    CURLU *u;
    size_t refs;
    size_t n;
    char s[];
};

static void origin_put(struct origin *o)
{
    if (o != NULL && --o->refs == 0) {
        curl_url_cleanup(o->u);
        free(o);
    }
}

/* The origin url[0..n) with a reference taken, parsed again only when it
 * differs from the last one. NULL if curl does not accept it. */
static struct origin *origin_get(struct gkm_upstream *up, const char *url,
                                 size_t n)
{
    struct origin *o = up->origin;
    if (o == NULL || o->n != n || memcmp(o->s, url, n) != 0) {
        o = gkm_xmalloc(sizeof(*o) + n + 1);
        memcpy(o->s, url, n);
        o->s[n] = '\0';
        o->n = n;
        o->refs = 1; /* up's */
        o->u = curl_url();
        if (o->u == NULL ||
            curl_url_set(o->u, CURLUPART_URL, o->s, 0) != CURLUE_OK) {
            curl_url_cleanup(o->u);
            free(o);
            return NULL;
        }
        origin_put(up->origin);
        up->origin = o;
    }
    o->refs++;
    return o;
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

/* A copy of the origin with rest ("/path?query#fragment") set in it,
 * encoded by curl, for a request line in absolute form.
 * Setting the path or query alone lowercases percent-encodings ("%2F" ->
 * "%2f"), so a URL holding one is parsed whole. Returns NULL if curl does
 * not accept it. */
static CURLU *url_with(const struct origin *o, const char *url,
                       const char *rest)
{
    if (strchr(rest, '%') != NULL) {
        CURLU *w = curl_url();
        if (w == NULL || curl_url_set(w, CURLUPART_URL, url, 0) != CURLUE_OK) {
            curl_url_cleanup(w);
            return NULL;
        }
        return w;
    }
    CURLU *u = curl_url_dup(o->u);
    if (u == NULL)
        return NULL;
    size_t plen = strcspn(rest, "?#");
    char *path = gkm_xstrndup(plen > 0 ? rest : "/", plen > 0 ? plen : 1);
    CURLUcode rc = curl_url_set(u, CURLUPART_PATH, path, 0);
    free(path);
    if (rc == CURLUE_OK && rest[plen] == '?') {
        size_t qlen = strcspn(rest + plen + 1, "#");
        char *q = gkm_xstrndup(rest + plen + 1, qlen);
        rc = qlen > 0 ? curl_url_set(u, CURLUPART_QUERY, q, 0) : CURLUE_OK;
        free(q);
    }
    if (rc != CURLUE_OK) {
        curl_url_cleanup(u);
        return NULL;
    }
    return u;
}

/* Point the transfer at url. The usual case hands curl the shared origin
 * and the path and query as the request target (CURLOPT_REQUEST_TARGET):
 * curl would otherwise copy, re-encode and print them on every transfer,
 * about 6,000 instructions for a generateContent path. The target goes out
 * as the client sent it, except bytes a request target may not hold
 * (above 0x7f, and characters such as '|', '{' or '"'), which are
 * percent-encoded. Through an HTTP proxy, where the request line carries
 * the absolute URL, the path and query are set in a URL of their own and
 * curl encodes them. Returns -1 if curl does not accept url. */
static int set_url(struct gkm_xfer *x, const char *url)
{
    struct gkm_upstream *up = x->up;
    CURL *e = x->easy;
    const char *sep = strstr(url, "://");
    if (sep == NULL)
        return -1;
    size_t n = (size_t)(sep + 3 - url);
    n += strcspn(url + n, "/?#");
    const char *rest = url + n;
    x->origin = origin_get(up, url, n);
    if (x->origin == NULL)
        return -1;
    if (gkm_up_absolute_form(up, url)) {
        x->url = url_with(x->origin, url, rest);
        if (x->url == NULL)
            return -1;
        curl_easy_setopt(e, CURLOPT_CURLU, x->url);
        curl_easy_setopt(e, CURLOPT_REQUEST_TARGET, NULL);
        return 0;
    }
    size_t tlen = strcspn(rest, "#");
    size_t len = gkm_up_target_len(up, rest, tlen);
    char small[512];
    char *t = len < sizeof(small) ? small : gkm_xmalloc(len + 1);
    *gkm_up_target_put(up, rest, tlen, t) = '\0';
    curl_easy_setopt(e, CURLOPT_CURLU, x->origin->u);
    CURLcode rc = curl_easy_setopt(e, CURLOPT_REQUEST_TARGET, t); /* copied */
    if (t != small)
        free(t);
    return rc == CURLE_OK ? 0 : -1;
}

/* The options every transfer shares, set once per easy handle: recycled
 * handles keep them (no curl_easy_reset), and gkm_xfer_start sets the
 * per-request ones, including the method, every time. */
void gkm_up_setup_handle(struct gkm_upstream *up, CURL *e)
{
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_curl_header);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write);
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

/* The request's header list for CURLOPT_HTTPHEADER, built in one block
 * (nodes, then the lines) instead of two allocations per line with
 * curl_slist_append: curl only reads the list, and only until the transfer
 * ends. */
static void request_headers(struct gkm_xfer *x, const char *const *headers,
                            size_t nheaders, size_t bodylen)
{
    /* Given here, "Accept-Encoding" is printed once; left to libcurl
     * (CURLOPT_ACCEPT_ENCODING, still set so that it decodes an answer
     * compressed anyway), it is formatted into a string and then printed
     * again, on every transfer. */
    static const char identity[] = "Accept-Encoding: identity";
    /* No Accept header of libcurl's own (any media type) when the client
     * sent none: the upstream gets the client's headers, not curl's
     * defaults. */
    static const char no_accept[] = "Accept:";
    /* No "Expect: 100-continue" round trip before large bodies (curl 7.88
     * sends it above 1 MiB, older versions above 1 KiB). */
    static const char expect[] = "Expect:";
    const char *extra[3];
    size_t nextra = 0;
    extra[nextra++] = identity;
    int accept = 0;
    size_t bytes = 0;
    for (size_t i = 0; i < nheaders; i++) {
        bytes += strlen(headers[i]) + 1;
        if (strncasecmp(headers[i], "accept:", 7) == 0)
            accept = 1;
    }
    if (!accept)
        extra[nextra++] = no_accept;
    if (bodylen > 1024)
        extra[nextra++] = expect;
    size_t n = nheaders + nextra;
    for (size_t i = 0; i < nextra; i++)
        bytes += strlen(extra[i]) + 1;
    bytes += n * sizeof(struct curl_slist);
    struct curl_slist *l = gkm_xmalloc(bytes);
    char *w = (char *)(l + n);
    for (size_t i = 0; i < n; i++) {
        const char *h = i < nheaders ? headers[i] : extra[i - nheaders];
        size_t hl = strlen(h) + 1;
        l[i].data = memcpy(w, h, hl);
        l[i].next = i + 1 < n ? &l[i + 1] : NULL;
        w += hl;
    }
    x->hdrs = l;
    x->hdrs_size = bytes;
}

/* Free the header list, wiping it first: it holds the real key. */
static void free_request_headers(struct gkm_xfer *x)
{
    if (x->hdrs == NULL)
        return;
    explicit_bzero(x->hdrs, x->hdrs_size);
    free(x->hdrs);
    x->hdrs = NULL;
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
    struct gkm_xfer *x = gkm_xcalloc(1, sizeof(*x));
    x->kind = GKM_UPK_CURL;
    x->up = up;
    gkm_buf_init(&x->hb, MAX_HEADER_BYTES);
    x->cbs = *cbs;
    x->arg = arg;
    if (up->nidle > 0) {
        x->easy = up->idle[--up->nidle];
    } else if ((x->easy = curl_easy_init()) != NULL) {
        gkm_up_setup_handle(up, x->easy);
    } else {
        goto fail;
    }
    if (set_url(x, url) != 0)
        goto fail;
    request_headers(x, headers, nheaders, bodylen);

    CURL *e = x->easy;
    if (up->opts.proxy == NULL)
        curl_easy_setopt(e, CURLOPT_PROXY, gkm_up_proxy_for(up, url));
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    /* The handle may have served another method before: HTTPGET puts it
     * back to a plain GET (no body, not HEAD), then the method is set. */
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    if (strcmp(method, "GET") == 0 && bodylen == 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
    } else {
        if (bodylen > 0 || strcmp(method, "POST") == 0 ||
            strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                             (curl_off_t)bodylen);
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? body : "");
        }
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST,
                         strcmp(method, "POST") != 0 ? method : NULL);
    }

    x->next = up->head;
    if (up->head)
        up->head->prev = x;
    up->head = x;
    x->last_io_ms = gkm_mono_coarse_ms();
    gkm_up_active_inc(up);
    if (curl_multi_add_handle(up->multi, e) != CURLM_OK) {
        xfer_free(x);
        return NULL;
    }
    return x;
fail:
    if (x->easy)
        curl_easy_cleanup(x->easy);
    curl_url_cleanup(x->url);
    origin_put(x->origin);
    free_request_headers(x);
    free(x);
    return NULL;
}

void gkm_xfer_cancel(struct gkm_xfer *x)
{
    if (x == NULL)
        return;
    if (x->kind != GKM_UPK_CURL) {
        gkm_h1_cancel(x);
        return;
    }
    x->cancelled = 1;
    if (x->in_cb)
        return; /* freed by check_done once curl reports the abort */
    xfer_free(x);
}

void gkm_xfer_resume(struct gkm_xfer *x)
{
    if (x == NULL)
        return;
    if (x->kind != GKM_UPK_CURL) {
        gkm_h1_resume(x);
        return;
    }
    if (x->cancelled)
        return;
    x->paused = 0;
    x->last_io_ms = gkm_mono_coarse_ms();
    x->in_cb++;
    curl_easy_pause(x->easy, CURLPAUSE_CONT);
    x->in_cb--;
    if (x->cancelled) {
        /* Cancelled from inside a re-entered callback: the write callback
         * refused the data, so curl will report the transfer done. */
        return;
    }
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
