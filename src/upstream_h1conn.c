/*
 * upstream_h1conn.c - the HTTP/1.1 engine's connections (upstream_h1.c has
 * the exchanges on them; upstream_int.h the split between the engines).
 *
 * A connection is a CURLOPT_CONNECT_ONLY easy handle on the shared multi:
 * libcurl resolves, connects (through --upstream-proxy or the
 * environment's proxy), does TLS with its certificate checks, offering
 * only http/1.1 in ALPN, and reports CURLMSG_DONE. From then on the handle
 * stays in the multi (removing it closes the connection) and the socket is
 * watched by our own event. Bytes go through curl_easy_send /
 * curl_easy_recv, that is through libcurl's connection filters (TLS,
 * SOCKS, CONNECT tunnels), except on a plain TCP connection, where they go
 * to the socket directly: libcurl's socket filter would do just that,
 * after finding the connection in its cache by walking every connection,
 * on every call.
 *
 * One read through curl_easy_recv right after connecting attaches the
 * connection to its handle for good: libcurl then counts it as in use, so
 * its cache never closes it as idle or old under our event.
 *
 * Connections wait in a pool, last used first, at most
 * GKM_UP_MAX_IDLE_CONNS and for at most --upstream-keepalive; idle ones are watched for reads, so one the server
 * closes is dropped then rather than found dead by the next request.
 */
#include "upstream_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util.h"

void gkm_h1c_watch(struct h1conn *c, short what)
{
    if (c->ev == NULL || c->watching == what)
        return;
    if (c->watching != 0)
        event_del(c->ev);
    c->watching = what;
    if (what == 0)
        return;
    event_assign(c->ev, c->up->base, c->fd, what | EV_PERSIST, gkm_h1_on_event,
                 c);
    event_add(c->ev, NULL);
}

static void pool_unlink(struct h1conn *c)
{
    struct gkm_upstream *up = c->up;
    if (!c->idle)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        up->h1_idle = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->idle = 0;
    up->h1_nidle--;
}

void gkm_h1c_close(struct h1conn *c)
{
    struct gkm_upstream *up = c->up;
    pool_unlink(c);
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else
        up->h1_all = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
    if (c->ev != NULL)
        event_free(c->ev); /* before libcurl closes the socket */
    if (c->easy != NULL) {
        curl_multi_remove_handle(up->multi, c->easy); /* closes it */
        curl_easy_cleanup(c->easy);
    }
    free(c);
}

struct h1conn *gkm_h1c_new(struct gkm_upstream *up, const char *key,
                           size_t keylen)
{
    struct h1conn *c = gkm_xcalloc(1, sizeof(*c) + keylen + 1);
    c->kind = GKM_UPK_CONN;
    c->up = up;
    c->fd = CURL_SOCKET_BAD;
    c->keylen = keylen;
    memcpy(c->key, key, keylen);
    c->easy = curl_easy_init();
    if (c->easy == NULL) {
        free(c);
        return NULL;
    }
    CURL *e = c->easy;
    gkm_up_setup_handle(up, e);
    curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_URL, &c->key[0]);
    curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    const char *proxy = gkm_up_proxy_for(up, c->key);
    if (up->opts.proxy == NULL)
        curl_easy_setopt(e, CURLOPT_PROXY, proxy);
    c->raw = strncmp(c->key, "http:", 5) == 0 && proxy[0] == '\0';
    c->all_next = up->h1_all;
    if (c->all_next)
        c->all_next->all_prev = c;
    up->h1_all = c;
    if (curl_multi_add_handle(up->multi, e) != CURLM_OK) {
        gkm_h1c_close(c);
        return NULL;
    }
    return c;
}

void gkm_h1c_pool(struct h1conn *c)
{
    struct gkm_upstream *up = c->up;
    if (up->h1_nidle >= GKM_UP_MAX_IDLE_CONNS || c->ev == NULL ||
        up->opts.keepalive_ms <= 0) {
        gkm_h1c_close(c);
        return;
    }
    c->x = NULL;
    c->idle = 1;
    c->idle_since_ms = gkm_mono_coarse_ms();
    c->prev = NULL;
    c->next = up->h1_idle;
    if (c->next)
        c->next->prev = c;
    up->h1_idle = c;
    up->h1_nidle++;
    gkm_h1c_watch(c, EV_READ);
}

struct h1conn *gkm_h1c_take(struct gkm_upstream *up, const char *key,
                            size_t keylen)
{
    int64_t now = gkm_mono_coarse_ms();
    struct h1conn *c = up->h1_idle, *next;
    for (; c != NULL; c = next) {
        next = c->next;
        if (now - c->idle_since_ms >= up->opts.keepalive_ms) {
            /* A NAT or load balancer may have forgotten it without a
             * word: not worth a request's wait (--upstream-keepalive;
             * libcurl's CURLOPT_MAXAGE_CONN is the same rule). */
            gkm_h1c_close(c);
            continue;
        }
        if (c->keylen == keylen && memcmp(c->key, key, keylen) == 0) {
            pool_unlink(c);
            return c;
        }
    }
    return NULL;
}

ssize_t gkm_h1c_recv(struct h1conn *c, char *buf, size_t n, char *msg,
                     size_t msglen)
{
    if (c->raw) {
        ssize_t r;
        do
            r = recv(c->fd, buf, n, 0);
        while (r < 0 && errno == EINTR);
        if (r >= 0)
            return r;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return -1;
        snprintf(msg, msglen, "receiving from upstream: %s", strerror(errno));
        return -2;
    }
    size_t got = 0;
    CURLcode rc = curl_easy_recv(c->easy, buf, n, &got);
    if (rc == CURLE_AGAIN)
        return -1;
    if (rc == CURLE_OK)
        return (ssize_t)got;
    snprintf(msg, msglen, "receiving from upstream: %s",
             c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
    return -2;
}

/* On TLS, a send that could not go out is repeated with the same
 * arguments (OpenSSL requires it): x->sent only moves on success. */
ssize_t gkm_h1c_send(struct h1conn *c, const char *a, size_t an,
                     const char *b, size_t bn, char *msg, size_t msglen)
{
    if (c->raw) {
        struct iovec iov[2] = {{(void *)a, an}, {(void *)b, bn}};
        struct msghdr mh = {0};
        mh.msg_iov = an > 0 ? iov : iov + 1;
        mh.msg_iovlen = an > 0 ? (bn > 0 ? 2 : 1) : 1;
        ssize_t r;
        do
            r = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        while (r < 0 && errno == EINTR);
        if (r >= 0)
            return r;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return -1;
        snprintf(msg, msglen, "sending to upstream: %s", strerror(errno));
        return -2;
    }
    size_t n = 0;
    const char *p = an > 0 ? a : b;
    CURLcode rc = curl_easy_send(c->easy, p, an > 0 ? an : bn, &n);
    if (rc == CURLE_AGAIN)
        return -1;
    if (rc == CURLE_OK)
        return (ssize_t)n;
    snprintf(msg, msglen, "sending to upstream: %s",
             c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
    return -2;
}

int gkm_h1c_attach(struct h1conn *c, char *msg, size_t msglen)
{
    char b[1];
    size_t got = 0;
    CURLcode rc = curl_easy_recv(c->easy, b, sizeof(b), &got);
    if (rc == CURLE_AGAIN)
        return 0;
    if (rc != CURLE_OK)
        snprintf(msg, msglen, "receiving from upstream: %s",
                 c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
    else
        snprintf(msg, msglen, got ? "upstream spoke before the request"
                                  : "upstream closed the connection at once");
    return -1;
}
