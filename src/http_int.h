/*
 * http_int.h - private to http.c and http_reply.c: the server's
 * connection and request structures and the calls they share.
 */
#ifndef GKM_HTTP_INT_H
#define GKM_HTTP_INT_H

#include <http_parser.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

#include "buf.h"
#include "http.h"

#define IN_CAP (16 * 1024)   /* read buffer per connection */
#define MAX_HEADERS 256      /* request header lines */
#define LINGER_MS 2000       /* reading (and dropping) after a refusal */
#define BODY_KEEP (64 * 1024) /* body allocation kept between requests */
#define ACCEPT_PAUSE_MS 200   /* after an accept error such as EMFILE */

enum tok { TOK_NONE, TOK_URL, TOK_FIELD, TOK_VALUE };

struct hconn;

struct gkm_hreq {
    struct hconn *c;
    const char *method;
    int is_head;
    int minor; /* HTTP/1.x */
    const char *uri;
    char **hv; /* name, value, name, value ... (into the arena) */
    size_t nh, hvalloc;
    struct gkm_buf arena; /* "uri\0name\0value\0..." */
    struct gkm_buf body;
    struct gkm_buf ohdr; /* reply header lines "Name: value\r\n" */
    int started; /* streamed reply begun */
    int chunked;
    int nobody;  /* a streamed reply that carries no body (HEAD, 204...) */
    gkm_hreq_cb drained, closed;
    void *cbarg;
};

struct hconn {
    struct gkm_http *h;
    struct hconn *prev, *next;
    int fd;
    struct event *rev, *wev, *tmo, *work;
    http_parser p;
    char *in;     /* unparsed input (pipelined), or NULL */
    size_t inlen;
    enum tok last;
    size_t hbytes; /* request line + header bytes so far */
    int midreq;    /* a request has begun arriving */
    int complete;  /* ... and is whole */
    int keepalive;
    int reject_status;
    const char *reject_reason;
    int busy;      /* the handler owns req */
    int closing;   /* close once the output is written */
    int linger;    /* ... then read and drop for LINGER_MS */
    int lingering;
    int dead;      /* I/O error: close without writing */
    int rpaused;   /* read event removed (input buffer full) */
    int counted;   /* in h->flushing */
    int wblocked;  /* EV_WRITE armed: output waits for the socket */
    int indexed;   /* req's line and headers are indexed */
    int64_t deadline;
    struct gkm_buf out;
    size_t outoff;
    struct gkm_hreq req;
};

struct gkm_http {
    struct event_base *base;
    struct gkm_http_opts o;
    struct gkm_log *log;
    http_parser_settings ps;
    struct evconnlistener *lis;
    struct event *accept_pause;
    struct hconn *conns;
    char scratch[IN_CAP]; /* reads of connections holding no input */
    unsigned flushing;
    int draining;
    time_t date_t;
    char date[48]; /* "Date: ...\r\n" */
    size_t datelen;
};

/* Reply bytes queued and not written yet. */
static inline size_t gkm_hc_pending(const struct hconn *c)
{
    return c->out.len - c->outoff;
}

/* Serve a connected, non-blocking socket as a client connection (what
 * the listener does with each accepted one; the fuzz driver hands it one
 * end of a socket pair). */
void gkm_hc_adopt(struct gkm_http *h, int fd);
/* Queue bytes for the client (formatting; nothing is written). */
void gkm_hc_out_add(struct hconn *c, const void *p, size_t n);
/* Write what is queued plus extra; the rest waits for EV_WRITE. */
void gkm_hc_flush(struct hconn *c, const struct iovec *extra, int n);
void gkm_hc_flush_with(struct hconn *c, const char *p, size_t n);
/* The current reply is complete (all of it queued or written). */
void gkm_hc_reply_done(struct hconn *c);
/* Status line and headers of a reply into the output buffer (clen < 0: a
 * streamed reply); decides whether the connection stays open. */
void gkm_hc_put_head(struct hconn *c, int status, long long clen);

#endif
