/*
 * fuzz_h1.c - libFuzzer driver for the HTTP/1.1 upstream engine's answer
 * path (src/upstream_h1.c): the input is what an upstream sends back on
 * one connection. The connection layer (upstream_h1conn.c) is replaced by
 * stubs that hand the bytes over in pieces and take every request byte;
 * the real engine runs on a real libevent loop.
 *
 * Each input is read twice: once in one piece with a consumer that takes
 * everything, once in pieces of 1-64 bytes (chosen by the input) with a
 * consumer that pauses often (GKM_DATA_PAUSE, resumed from the loop).
 * Checks, beyond "no crash, leak or sanitizer report":
 *  - on_done comes exactly once, after on_headers when ok, and nothing
 *    comes after it;
 *  - bytes refused with a pause are offered again first on resume;
 *  - both reads agree: ok, status, the headers, and every body byte taken
 *    (for a failed answer: one body is a prefix of the other).
 * A third read aborts from on_headers and must end with ok == 0.
 *
 * Input layout: byte 0: bit 0 the request is a HEAD; bits 1-7 seed the
 * piece sizes and pauses. The rest is the answer.
 */
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "upstream_int.h"
#include "util.h"

/* ---- stubs for upstream.c and upstream_h1conn.c --------------------- */

struct feed {
    const uint8_t *p;
    size_t n, pos;
    unsigned seed;  /* piece sizes; 0: everything at once */
    int again;      /* the next read finds nothing (a piece was just read) */
};

static struct feed *g_feed; /* the stub connection's bytes, per read */
static struct event_base *g_base;
static struct h1conn *g_conn; /* the exchange's stub connection */

static unsigned next_rand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 16) & 0x7fff;
}

size_t gkm_up_target_len(const struct gkm_upstream *up, const char *rest,
                         size_t n)
{
    (void)up;
    return n == 0 || rest[0] != '/' ? n + 1 : n;
}

char *gkm_up_target_put(const struct gkm_upstream *up, const char *rest,
                        size_t n, char *w)
{
    (void)up;
    if (n == 0 || rest[0] != '/')
        *w++ = '/';
    memcpy(w, rest, n);
    return w + n;
}

void gkm_up_active_inc(struct gkm_upstream *up) { up->active++; }
void gkm_up_active_dec(struct gkm_upstream *up) { up->active--; }
void gkm_up_unpark(struct gkm_upstream *up, curl_socket_t fd)
{
    (void)up;
    (void)fd;
}

void gkm_h1c_watch(struct h1conn *c, short what) { c->watching = what; }

struct h1conn *gkm_h1c_new(struct gkm_upstream *up, const char *key,
                           size_t keylen)
{
    struct h1conn *c = gkm_xcalloc(1, sizeof(*c) + keylen + 1);
    c->kind = GKM_UPK_CONN;
    c->up = up;
    c->fd = -1;
    c->raw = 1;
    c->keylen = keylen;
    memcpy(c->key, key, keylen);
    /* Connected at once: an event the driver activates by hand. */
    c->ev = event_new(up->base, -1, 0, gkm_h1_on_event, c);
    g_conn = c;
    return c;
}

void gkm_h1c_close(struct h1conn *c)
{
    if (c == g_conn)
        g_conn = NULL;
    event_free(c->ev);
    free(c);
}

void gkm_h1c_pool(struct h1conn *c) { gkm_h1c_close(c); }

struct h1conn *gkm_h1c_take(struct gkm_upstream *up, const char *key,
                            size_t keylen)
{
    (void)up;
    (void)key;
    (void)keylen;
    return NULL;
}

int gkm_h1c_attach(struct h1conn *c, char *msg, size_t msglen)
{
    (void)c;
    (void)msg;
    (void)msglen;
    return 0;
}

ssize_t gkm_h1c_recv(struct h1conn *c, char *buf, size_t n, char *msg,
                     size_t msglen)
{
    (void)c;
    (void)msg;
    (void)msglen;
    struct feed *f = g_feed;
    if (f->again) {
        f->again = 0;
        return -1;
    }
    if (f->pos == f->n)
        return 0;
    size_t k = f->n - f->pos;
    if (f->seed != 0) {
        size_t piece = 1 + next_rand(&f->seed) % 64;
        if (k > piece)
            k = piece;
        f->again = 1;
    }
    if (k > n)
        k = n;
    memcpy(buf, f->p + f->pos, k);
    f->pos += k;
    return (ssize_t)k;
}

ssize_t gkm_h1c_send(struct h1conn *c, const char *a, size_t an,
                     const char *b, size_t bn, char *msg, size_t msglen)
{
    (void)c;
    (void)a;
    (void)b;
    (void)msg;
    (void)msglen;
    return (ssize_t)(an + bn);
}

/* ---- the consumer ------------------------------------------------------ */

struct run {
    int headers, done, ok, after_done;
    long status;
    struct gkm_buf hdrs;  /* "name\0value\0" as delivered */
    struct gkm_buf body;  /* bytes taken */
    struct gkm_buf refused; /* bytes refused by the last pause */
    int pausing;          /* pause now and then */
    int abort_headers;
    int paused;           /* waiting for a resume */
    unsigned seed;
};

static enum gkm_data_rc on_headers(void *arg, long status,
                                   const struct gkm_header *h, size_t n)
{
    struct run *r = arg;
    if (r->done)
        r->after_done = 1;
    r->headers++;
    r->status = status;
    for (size_t i = 0; i < n; i++) {
        if (gkm_buf_append(&r->hdrs, h[i].name, strlen(h[i].name) + 1) != 0 ||
            gkm_buf_append(&r->hdrs, h[i].value, strlen(h[i].value) + 1) != 0)
            abort();
    }
    return r->abort_headers ? GKM_DATA_ABORT : GKM_DATA_OK;
}

static enum gkm_data_rc on_data(void *arg, const char *p, size_t n)
{
    struct run *r = arg;
    if (r->done || r->headers != 1)
        r->after_done = 1;
    if (r->refused.len > 0) {
        /* What was refused comes first, whole. */
        if (n < r->refused.len || memcmp(p, r->refused.data, r->refused.len))
            abort();
        gkm_buf_reset(&r->refused);
    }
    if (r->pausing && next_rand(&r->seed) % 3 == 0) {
        if (gkm_buf_append(&r->refused, p, n) != 0)
            abort();
        r->paused = 1;
        return GKM_DATA_PAUSE;
    }
    if (gkm_buf_append(&r->body, p, n) != 0)
        abort();
    return GKM_DATA_OK;
}

static void on_done(void *arg, int ok, long status, int timed_out,
                    const char *errmsg)
{
    struct run *r = arg;
    if (r->done)
        r->after_done = 1;
    r->done++;
    r->ok = ok;
    if (ok && (r->headers != 1 || status != r->status))
        abort();
    if (!ok && errmsg == NULL)
        abort();
    (void)timed_out;
}

static void read_once(struct gkm_upstream *up, const uint8_t *p, size_t n,
                      int head, unsigned seed, int pausing, int abort_headers,
                      struct run *r)
{
    static const struct gkm_xfer_cbs cbs = {on_headers, on_data, on_done};
    static const char *const hdrs[] = {"x-goog-api-key: AIzaSyFUZZ",
                                       "Content-Type: application/json"};
    struct feed f = {p, n, 0, seed, 0};
    g_feed = &f;
    memset(r, 0, sizeof(*r));
    gkm_buf_init(&r->hdrs, 1 << 20);
    gkm_buf_init(&r->body, 1 << 24);
    gkm_buf_init(&r->refused, 1 << 24);
    r->pausing = pausing;
    r->abort_headers = abort_headers;
    r->seed = seed | 1;
    const char *body = "{\"contents\":[]}";
    struct gkm_xfer *x = gkm_h1_start(
        up, head ? "HEAD" : "POST",
        "http://127.0.0.1:1/v1beta/models/m:generateContent?alt=sse", hdrs, 2,
        body, strlen(body), &cbs, r);
    if (x == NULL)
        abort();
    /* The stub connection is "connected" at once; send and read from the
     * loop, as readiness would. */
    for (int spins = 0; !r->done; spins++) {
        if (spins > 4 * 65536 + 64)
            abort(); /* the exchange neither ends nor waits for anything */
        if (r->paused) {
            r->paused = 0;
            gkm_h1_resume(x);
        } else if (g_conn != NULL) {
            event_active(g_conn->ev, EV_READ, 0);
        }
        event_base_loop(g_base, EVLOOP_NONBLOCK);
    }
    if (r->after_done || r->done != 1 || up->active != 0)
        abort();
    g_feed = NULL;
}

static void run_free(struct run *r)
{
    gkm_buf_free(&r->hdrs);
    gkm_buf_free(&r->body);
    gkm_buf_free(&r->refused);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (g_base == NULL)
        g_base = event_base_new();
    struct gkm_upstream up;
    memset(&up, 0, sizeof(up));
    up.base = g_base;
    int head = data[0] & 1;
    unsigned seed = (unsigned)(data[0] >> 1) + 1;
    struct run a, b, c;
    read_once(&up, data + 1, size - 1, head, 0, 0, 0, &a);
    read_once(&up, data + 1, size - 1, head, seed, 1, 0, &b);
    if (a.ok != b.ok || a.status != b.status || a.headers != b.headers ||
        a.hdrs.len != b.hdrs.len ||
        (a.hdrs.len && memcmp(a.hdrs.data, b.hdrs.data, a.hdrs.len)))
        abort();
    /* A whole answer's body is the same however it arrived; a failed one
     * may have been cut at a different place (a corrupt compressed body
     * is found out after more or less of it was inflated), but what was
     * taken is a prefix of the same bytes. */
    size_t common = a.body.len < b.body.len ? a.body.len : b.body.len;
    if ((a.ok && a.body.len != b.body.len) ||
        (common && memcmp(a.body.data, b.body.data, common)))
        abort();
    read_once(&up, data + 1, size - 1, head, seed, 0, 1, &c);
    if (c.headers && c.ok)
        abort(); /* aborted from on_headers, yet reported whole */
    run_free(&a);
    run_free(&b);
    run_free(&c);
    return 0;
}
