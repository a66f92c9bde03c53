/*
 * fuzz_http.c - libFuzzer driver for the client-facing HTTP/1.1 server
 * (src/http.c, src/http_reply.c): the input is what one client sends on
 * one connection, in pieces, with the server running on its event loop.
 *
 * Checks, beyond "no crash, leak or sanitizer report":
 *  - every byte the server writes back parses as a sequence of HTTP/1.x
 *    responses (libhttp-parser in response mode, told which ones answer a
 *    HEAD), and the last one is complete unless a streamed reply was cut
 *    on purpose;
 *  - there are no more final responses than requests the server handed to
 *    the handler or refused;
 *  - a request handed to the handler has a method, a target starting with
 *    '/' or '*' or a scheme, and a body within the limit.
 *
 * Input layout: byte 0 picks the reply mode (bits 0-1), small limits (bit
 * 2) and piece sizes (bits 3-7); the rest is the byte stream.
 */
#include <errno.h>
#include <event2/event.h>
#include <http_parser.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <unistd.h>

#include "buf.h"
#include "http.h"
#include "http_int.h"

enum mode { M_WHOLE, M_STREAM, M_CUT, M_LATER };

#define MAX_ANSWERS 8192 /* > requests in a 64 KiB input (18 bytes each) */

struct ctx {
    struct event_base *base;
    enum mode mode;
    uint64_t max_body;
    struct gkm_hreq *later;   /* M_LATER: answered from a timer */
    struct event *later_ev;
    unsigned char head[MAX_ANSWERS]; /* per final response: to a HEAD */
    size_t answers;           /* final responses the server was asked for */
    int cut;                  /* a streamed reply was cut */
};

static void note_answer(struct ctx *x, const struct gkm_hreq *r)
{
    if (x->answers >= MAX_ANSWERS)
        abort(); /* cannot happen within -max_len */
    x->head[x->answers++] = strcmp(gkm_hreq_method(r), "HEAD") == 0;
}

static void check_request(struct ctx *x, struct gkm_hreq *r)
{
    const char *m = gkm_hreq_method(r), *u = gkm_hreq_uri(r);
    size_t n = 0;
    const char *body = gkm_hreq_body(r, &n);
    if (m == NULL || m[0] == '\0' || u == NULL || body == NULL ||
        body[n] != '\0' || n > x->max_body)
        abort();
    for (size_t i = 0; i < gkm_hreq_nheaders(r); i++)
        if (gkm_hreq_header_name(r, i) == NULL ||
            gkm_hreq_header_value(r, i) == NULL)
            abort();
}

static void on_closed(struct gkm_hreq *r, void *arg)
{
    struct ctx *x = arg;
    if (x->later == r)
        x->later = NULL;
}

static void answer_later(evutil_socket_t fd, short what, void *arg)
{
    struct ctx *x = arg;
    (void)fd;
    (void)what;
    if (x->later == NULL)
        return;
    struct gkm_hreq *r = x->later;
    x->later = NULL;
    gkm_hreq_set_callbacks(r, NULL, NULL, NULL);
    gkm_hreq_add_header(r, "X-Later", "1");
    gkm_hreq_send(r, 202, "later", 5);
}

static void handler(struct gkm_hreq *r, void *arg)
{
    struct ctx *x = arg;
    check_request(x, r);
    note_answer(x, r);
    size_t n = 0;
    const char *body = gkm_hreq_body(r, &n);
    size_t ulen = strlen(gkm_hreq_uri(r));
    gkm_hreq_add_header(r, "X-Test", "a");
    gkm_hreq_add_header(r, "Bad\r\nName", "dropped");
    switch (x->mode) {
    case M_WHOLE:
        /* Some answers carry no body whatever is passed. */
        gkm_hreq_send(r, ulen % 5 == 1 ? 204 : ulen % 5 == 2 ? 304 : 200,
                      body, n);
        return;
    case M_STREAM:
        gkm_hreq_start(r, ulen % 7 == 3 ? 204 : 200);
        gkm_hreq_chunk(r, body, n);
        gkm_hreq_chunk(r, "tail", 4);
        gkm_hreq_end(r);
        return;
    case M_CUT:
        if (ulen % 2 == 0) { /* cut half of them, answer the rest */
            gkm_hreq_send(r, 200, body, n);
            return;
        }
        gkm_hreq_start(r, 200);
        gkm_hreq_chunk(r, body, n);
        gkm_hreq_abort(r);
        x->cut = 1;
        return;
    case M_LATER:
        if (x->later != NULL) /* one at a time: the server never overlaps */
            abort();
        x->later = r;
        gkm_hreq_set_callbacks(r, NULL, on_closed, x);
        event_active(x->later_ev, EV_TIMEOUT, 0);
        return;
    }
}

static void reject(struct gkm_hreq *r, int status, const char *reason,
                   void *arg)
{
    struct ctx *x = arg;
    if (status < 400 || status > 599 || reason == NULL)
        abort();
    note_answer(x, r);
    gkm_hreq_send(r, status, reason, strlen(reason));
}

/* ---- reading the server's output back --------------------------------- */

struct check {
    struct ctx *x;
    size_t finals;
};

static int r_headers(http_parser *p)
{
    struct check *k = p->data;
    if (p->status_code / 100 == 1)
        return 0;
    size_t i = k->finals++;
    /* 1: no body follows (the answer to a HEAD). */
    return i < k->x->answers && k->x->head[i] ? 1 : 0;
}

static void check_output(struct ctx *x, const char *d, size_t n, int eof)
{
    http_parser_settings s;
    memset(&s, 0, sizeof(s));
    s.on_headers_complete = r_headers;
    struct check k = {x, 0};
    http_parser p;
    http_parser_init(&p, HTTP_RESPONSE);
    p.data = &k;
    size_t used = http_parser_execute(&p, &s, d, n);
    if (HTTP_PARSER_ERRNO(&p) != HPE_OK || used != n)
        abort();
    if (eof) { /* completes a body delimited by the close (HTTP/1.0) */
        http_parser_execute(&p, &s, NULL, 0);
        if (HTTP_PARSER_ERRNO(&p) != HPE_OK && !x->cut)
            abort(); /* a reply ended half-way without being cut */
    }
    if (k.finals > x->answers)
        abort(); /* an answer nobody asked for */
}

/* ---- driving one connection ------------------------------------------- */

static void drain(int fd, struct gkm_buf *got, int *eof)
{
    char b[4096];
    for (;;) {
        ssize_t r = recv(fd, b, sizeof(b), MSG_DONTWAIT);
        if (r > 0) {
            if (gkm_buf_append(got, b, (size_t)r) != 0)
                abort(); /* more output than any input can ask for */
            continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            *eof = 1;
        return;
    }
}

static void spin(struct ctx *x, int fd, struct gkm_buf *got, int *eof)
{
    for (int i = 0; i < 4; i++)
        event_base_loop(x->base, EVLOOP_NONBLOCK);
    drain(fd, got, eof);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t b0 = data[0];
    data++;
    size--;
    struct ctx x;
    memset(&x, 0, sizeof(x));
    x.mode = (enum mode)(b0 & 3);
    int small = (b0 >> 2) & 1;
    size_t piece = (size_t)(b0 >> 3) + 1; /* 1..32 bytes per write */
    x.max_body = small ? 64 : 65536;

    x.base = event_base_new();
    x.later_ev = event_new(x.base, -1, 0, answer_later, &x);
    struct gkm_http_opts o = {
        .max_header_bytes = small ? 256 : 8192,
        .max_body_bytes = x.max_body,
        .timeout_ms = 60000,
        .default_ctype = "application/json",
        .handler = handler,
        .reject = reject,
        .arg = &x,
    };
    struct gkm_http *h = gkm_http_new(x.base, &o, NULL);
    int sv[2];
    if (h == NULL || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        abort();
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    gkm_hc_adopt(h, sv[0]); /* the server closes sv[0] */

    struct gkm_buf got;
    gkm_buf_init(&got, 64u * 1024 * 1024);
    int eof = 0, stalled = 0;
    size_t off = 0;
    while (off < size && !eof && stalled < 50) {
        size_t n = size - off < piece ? size - off : piece;
        ssize_t w = send(sv[1], data + off, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
            stalled = 0;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            stalled++; /* the server stopped reading: let it work */
        } else {
            break; /* the server closed: the rest is not read */
        }
        spin(&x, sv[1], &got, &eof);
    }
    shutdown(sv[1], SHUT_WR);
    for (int i = 0; i < 100 && !eof; i++)
        spin(&x, sv[1], &got, &eof);
    check_output(&x, got.data ? got.data : "", got.len, eof);

    gkm_http_free(h); /* a request still held gets its close callback */
    if (x.later != NULL)
        abort(); /* ... which must have told us */
    close(sv[1]);
    event_free(x.later_ev);
    event_base_free(x.base);
    gkm_buf_free(&got);
    return 0;
}
