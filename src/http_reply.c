/*
 * http_reply.c - the request as the handler sees it, and replies: headers,
 * whole replies, streamed (chunked) replies (see http.h; the connection
 * side is in http.c).
 */
#define _GNU_SOURCE 1
#include "http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

static size_t put_hex(char *dst, size_t v)
{
    static const char hx[] = "0123456789abcdef";
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = hx[v & 15];
        v >>= 4;
    } while (v > 0);
    for (size_t i = 0; i < n; i++)
        dst[i] = tmp[n - 1 - i];
    return n;
}

static const char *reason_of(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    }
    return "Status";
}

static int no_body_status(int status)
{
    return (status >= 100 && status < 200) || status == 204 || status == 304;
}

static void refresh_date(struct gkm_http *h)
{
    time_t now = time(NULL);
    if (now == h->date_t && h->datelen > 0)
        return;
    struct tm tm;
    h->date_t = now;
    gmtime_r(&now, &tm);
    h->datelen = strftime(h->date, sizeof(h->date),
                          "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
}

/* Status line and headers of a reply into the output buffer. clen < 0: a
 * streamed reply. Decides whether the connection stays open. */
void gkm_hc_put_head(struct hconn *c, int status, long long clen)
{
    struct gkm_http *h = c->h;
    struct gkm_hreq *r = &c->req;
    char line[64];
    size_t n;
    if (status < 100 || status > 999)
        status = 500;
    memcpy(line, r->minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ", 9);
    n = (size_t)(gkm_fmt_ll(line + 9, status) - line);
    line[n++] = ' ';
    gkm_hc_out_add(c, line, n);
    const char *reason = reason_of(status);
    gkm_hc_out_add(c, reason, strlen(reason));
    gkm_hc_out_add(c, "\r\n", 2);
    size_t ctl;
    if (gkm_hreq_reply_header(r, "Date", &ctl) == NULL) { /* relayed? */
        refresh_date(h);
        gkm_hc_out_add(c, h->date, h->datelen);
    }
    gkm_hc_out_add(c, r->ohdr.data, r->ohdr.len);
    if (h->o.default_ctype && !no_body_status(status) && clen != 0 &&
        gkm_hreq_reply_header(r, "Content-Type", &ctl) == NULL) {
        gkm_hc_out_add(c, "Content-Type: ", 14);
        gkm_hc_out_add(c, h->o.default_ctype, strlen(h->o.default_ctype));
        gkm_hc_out_add(c, "\r\n", 2);
    }
    if (clen >= 0 && !no_body_status(status)) {
        memcpy(line, "Content-Length: ", 16);
        n = (size_t)(gkm_fmt_ll(line + 16, clen) - line);
        line[n++] = '\r';
        line[n++] = '\n';
        gkm_hc_out_add(c, line, n);
    } else if (clen < 0 && !no_body_status(status)) {
        if (r->minor >= 1 && !r->is_head) {
            gkm_hc_out_add(c, "Transfer-Encoding: chunked\r\n", 28);
            r->chunked = 1;
        } else if (!r->is_head) {
            c->closing = 1; /* HTTP/1.0: the end is the close */
        }
    }
    if (!c->keepalive || h->draining)
        c->closing = 1;
    if (c->closing)
        gkm_hc_out_add(c, "Connection: close\r\n", 19);
    else if (r->minor == 0)
        gkm_hc_out_add(c, "Connection: keep-alive\r\n", 24);
    gkm_hc_out_add(c, "\r\n", 2);
}

/* ---- request accessors ------------------------------------------------ */

const char *gkm_hreq_method(const struct gkm_hreq *r)
{
    return r->method ? r->method : "GET";
}

const char *gkm_hreq_uri(const struct gkm_hreq *r)
{
    return r->uri ? r->uri : "";
}

size_t gkm_hreq_nheaders(const struct gkm_hreq *r)
{
    return r->nh;
}

const char *gkm_hreq_header_name(const struct gkm_hreq *r, size_t i)
{
    return i < r->nh ? r->hv[2 * i] : NULL;
}

const char *gkm_hreq_header_value(const struct gkm_hreq *r, size_t i)
{
    return i < r->nh ? r->hv[2 * i + 1] : NULL;
}

const char *gkm_hreq_header(const struct gkm_hreq *r, const char *name)
{
    for (size_t i = 0; i < r->nh; i++)
        if (gkm_strcaseeq(r->hv[2 * i], name))
            return r->hv[2 * i + 1];
    return NULL;
}

const char *gkm_hreq_body(const struct gkm_hreq *r, size_t *len)
{
    *len = r->body.len;
    return r->body.data ? r->body.data : "";
}

/* ---- replies ---------------------------------------------------------- */

static int clean_token(const char *s)
{
    return strpbrk(s, "\r\n") == NULL;
}

void gkm_hreq_add_header(struct gkm_hreq *r, const char *name,
                         const char *value)
{
    if (r->started || !clean_token(name) || !clean_token(value) || !*name)
        return;
    size_t before = r->ohdr.len;
    if (gkm_buf_append_str(&r->ohdr, name) != 0 ||
        gkm_buf_append(&r->ohdr, ": ", 2) != 0 ||
        gkm_buf_append_str(&r->ohdr, value) != 0 ||
        gkm_buf_append(&r->ohdr, "\r\n", 2) != 0) {
        /* Over 1 MiB of reply headers: this one is dropped whole. */
        r->ohdr.len = before;
        if (r->ohdr.data)
            r->ohdr.data[before] = '\0';
    }
}

/* Start of the line holding header name in the reply headers, or NULL. */
static char *find_line(const struct gkm_hreq *r, const char *name, char **eol)
{
    size_t nl = strlen(name);
    char *s = r->ohdr.data, *end = s ? s + r->ohdr.len : NULL;
    while (s != NULL && s < end) {
        char *e = memchr(s, '\n', (size_t)(end - s));
        e = e ? e + 1 : end;
        if ((size_t)(e - s) > nl && s[nl] == ':' && strncasecmp(s, name, nl) == 0) {
            *eol = e;
            return s;
        }
        s = e;
    }
    return NULL;
}

void gkm_hreq_set_header(struct gkm_hreq *r, const char *name,
                         const char *value)
{
    if (r->started)
        return;
    char *s, *e;
    while ((s = find_line(r, name, &e)) != NULL) {
        size_t cut = (size_t)(e - s);
        memmove(s, e, r->ohdr.len - (size_t)(e - r->ohdr.data));
        r->ohdr.len -= cut;
        r->ohdr.data[r->ohdr.len] = '\0';
    }
    if (value != NULL)
        gkm_hreq_add_header(r, name, value);
}

const char *gkm_hreq_reply_header(const struct gkm_hreq *r, const char *name,
                                  size_t *vlen)
{
    char *e;
    char *s = find_line(r, name, &e);
    if (s == NULL)
        return NULL;
    s += strlen(name) + 1;
    while (s < e && *s == ' ')
        s++;
    const char *v = s;
    while (e > v && (e[-1] == '\n' || e[-1] == '\r'))
        e--;
    *vlen = (size_t)(e - v);
    return v;
}

void gkm_hreq_send(struct gkm_hreq *r, int status, const char *body,
                   size_t len)
{
    struct hconn *c = r->c;
    if (!c->busy || r->started)
        return;
    gkm_hc_put_head(c, status, (long long)len);
    if (r->is_head || no_body_status(status))
        len = 0;
    gkm_hc_flush_with(c, body, len); /* head and body in one write, no copy */
    gkm_hc_reply_done(c);
}

void gkm_hreq_start(struct gkm_hreq *r, int status)
{
    struct hconn *c = r->c;
    if (!c->busy || r->started)
        return;
    gkm_hc_put_head(c, status, -1);
    r->started = 1;
    r->nobody = r->is_head || no_body_status(status);
    gkm_hc_flush(c, NULL, 0);
}

void gkm_hreq_chunk(struct gkm_hreq *r, const char *data, size_t len)
{
    struct hconn *c = r->c;
    if (!c->busy || !r->started || len == 0 || r->nobody || c->dead)
        return;
    if (!r->chunked) {
        gkm_hc_flush_with(c, data, len);
        return;
    }
    char hx[24];
    size_t hn = put_hex(hx, len);
    hx[hn++] = '\r';
    hx[hn++] = '\n';
    struct iovec iov[3] = {
        {hx, hn}, {(void *)data, len}, {(void *)"\r\n", 2}};
    gkm_hc_flush(c, iov, 3);
}

void gkm_hreq_end(struct gkm_hreq *r)
{
    struct hconn *c = r->c;
    if (!c->busy || !r->started)
        return;
    if (r->chunked)
        gkm_hc_flush_with(c, "0\r\n\r\n", 5);
    gkm_hc_reply_done(c);
}

void gkm_hreq_abort(struct gkm_hreq *r)
{
    struct hconn *c = r->c;
    if (!c->busy)
        return;
    c->closing = 1;
    c->linger = 0;
    gkm_hc_reply_done(c);
}

size_t gkm_hreq_backlog(const struct gkm_hreq *r)
{
    return gkm_hc_pending(r->c);
}

void gkm_hreq_set_callbacks(struct gkm_hreq *r, gkm_hreq_cb drained,
                            gkm_hreq_cb closed, void *arg)
{
    r->drained = drained;
    r->closed = closed;
    r->cbarg = arg;
}
