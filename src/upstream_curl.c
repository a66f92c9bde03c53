/*
 * upstream_curl.c - exchanges as libcurl's own HTTP transfers
 * (--upstream-http 2, and a plain http:// upstream reached through an
 * HTTP proxy): libcurl writes the request, negotiates HTTP/2 with ALPN and
 * parses the answer. The multi handle and its libevent glue are in
 * upstream.c; upstream_int.h says how the engines share the work.
 *
 * Invariants:
 *  - an easy handle is removed and cleaned up only from the event loop
 *    (gkm_cx_done via check_done, or gkm_cx_cancel), never from inside its
 *    own callbacks; a cancel requested from inside one is deferred
 *    (x->cancelled makes the write callback fail, and gkm_cx_done frees
 *    silently);
 *  - on_done runs after the handle left the multi, so it may start another
 *    transfer.
 *
 * Easy handles are recycled, configured (gkm_up_setup_handle), rather
 * than created per request.
 */
#include "upstream_int.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "util.h"

#define MAX_RESPONSE_HEADERS GKM_UP_MAX_RESPONSE_HEADERS
#define MAX_HEADER_BYTES GKM_UP_MAX_HEADER_BYTES
#define IDLE_HANDLES GKM_UP_IDLE_HANDLES


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

static void free_request_headers(struct gkm_xfer *x);
static void origin_put(struct origin *o);

static void clear_resp_headers(struct gkm_xfer *x)
{
    gkm_buf_reset(&x->hb);
    x->nresp = 0;
}

static const struct gkm_header *headers_view(struct gkm_xfer *x)
{
    return gkm_up_headers_view(x->hb.data, x->nresp, &x->resp_hdrs,
                               &x->aresp);
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

void gkm_cx_done(struct gkm_xfer *x, CURLcode res)
{
    if (x->cancelled) {
        xfer_free(x);
        return;
    }
    long status = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
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
        x->cbs.on_done(x->arg, ok, status, res == CURLE_OPERATION_TIMEDOUT,
                       err);
    }
    x->in_cb--;
    xfer_free(x);
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

void gkm_cx_sweep(struct gkm_upstream *up, int64_t now)
{
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
}

void gkm_cx_free_all(struct gkm_upstream *up)
{
    while (up->head != NULL)
        xfer_free(up->head);
    while (up->nidle > 0)
        curl_easy_cleanup(up->idle[--up->nidle]);
    origin_put(up->origin);
    up->origin = NULL;
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

struct gkm_xfer *gkm_cx_start(struct gkm_upstream *up, const char *method,
                              const char *url, const char *const *headers,
                              size_t nheaders, const char *body,
                              size_t bodylen, const struct gkm_xfer_cbs *cbs,
                              void *arg)
{
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
        curl_easy_setopt(x->easy, CURLOPT_HEADERFUNCTION, on_curl_header);
        curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_curl_write);
        /* --upstream-keepalive for libcurl's connection cache (whole
         * seconds there); 0 forbids reuse. Not on the HTTP/1.1 engine's
         * handles: a connect-only handle must keep its connection. */
        if (up->opts.keepalive_ms > 0)
            curl_easy_setopt(x->easy, CURLOPT_MAXAGE_CONN,
                             up->opts.keepalive_ms / 1000);
        else
            curl_easy_setopt(x->easy, CURLOPT_FORBID_REUSE, 1L);
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

void gkm_cx_cancel(struct gkm_xfer *x)
{
    x->cancelled = 1;
    if (x->in_cb)
        return; /* freed by check_done once curl reports the abort */
    xfer_free(x);
}

void gkm_cx_resume(struct gkm_xfer *x)
{
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
