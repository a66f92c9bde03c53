/*
 * oai_err.h - OpenAI-shaped errors, and Gemini errors translated to them.
 *
 * OpenAI clients expect {"error": {"message", "type", "param", "code"}}
 * with all four keys present (param/code may be null) and pick their
 * exception class from the HTTP status (wire spec 7.4). This module holds
 * that error as a plain struct, renders it as a JSON body or as an SSE error
 * event (7.5), and maps any Gemini error body - the google.rpc.Status
 * envelope, the same wrapped in an array, a bare status object, or garbage -
 * plus the upstream HTTP status to it (8.11). Pure: no I/O, no clock.
 */
#ifndef GKM_OAI_ERR_H
#define GKM_OAI_ERR_H

#include <jansson.h>
#include <stddef.h>

struct gkm_buf;

/* One OpenAI error. Plain data: every string is owned by the struct. */
struct gkm_oai_err {
    int status;       /* HTTP status for the client; 0 = no error set */
    char *message;    /* never NULL once set */
    char *type;       /* "invalid_request_error", "server_error", ... */
    char *param;      /* offending field ("messages[2].content") or NULL */
    char *code;       /* machine code ("model_not_found"), or NULL */
    long long retry_after_ms; /* upstream RetryInfo delay, -1 if none */
};

/* Make e empty (status 0). */
void gkm_oai_err_init(struct gkm_oai_err *e);
/* Release e's strings and make it empty again. */
void gkm_oai_err_clear(struct gkm_oai_err *e);
/* Replace e with a new error; type must not be NULL, param/code may be.
 * The message is formatted with printf rules. */
void gkm_oai_err_set(struct gkm_oai_err *e, int status, const char *type,
                     const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* Shorthand: 400 invalid_request_error naming param. */
void gkm_oai_err_invalid(struct gkm_oai_err *e, const char *param,
                         const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* {"error": {"message", "type", "param", "code"}} for e (new reference). */
json_t *gkm_oai_err_json(const struct gkm_oai_err *e);
/* Append e as one SSE event "data: {"error": ...}\n\n" to out. For streams,
 * a NULL code is replaced by the status as a string ("503"), as 7.5 shows.
 * Returns 0, or -1 if out's cap would be passed (nothing appended). */
int gkm_oai_err_sse(const struct gkm_oai_err *e, struct gkm_buf *out)
    __attribute__((warn_unused_result));

/* Translate an upstream Gemini error to e (replacing its contents).
 * http_status is the upstream status (200 for an error object found inside
 * a stream: the object's own "code" is used then). body/len is the raw
 * upstream body, any shape; it is never trusted to be JSON. Mapping:
 *   400/FAILED_PRECONDITION/other 4xx -> same status, invalid_request_error
 *   key problems (API_KEY_INVALID, CONSUMER_SUSPENDED, leaked, blocked,
 *     SERVICE_DISABLED, 401)         -> 503 server_error "no_upstream_keys"
 *   403 other                        -> 403 invalid_request_error
 *                                       "permission_denied"
 *   404                              -> 404 invalid_request_error
 *                                       "model_not_found" (or "not_found")
 *   429 per-day or limit 0           -> 429 insufficient_quota
 *   429 other                        -> 429 rate_limit_error
 *                                       "rate_limit_exceeded"
 *   5xx, 499, anything else          -> same status (5xx) or 502, server_error
 * The upstream message is kept (callers redact keys before relaying). */
void gkm_oai_err_from_gemini(int http_status, const char *body, size_t len,
                             struct gkm_oai_err *e);
/* Same, from an already parsed body (borrowed; NULL = no usable body). */
void gkm_oai_err_from_gemini_json(int http_status, const json_t *body,
                                  struct gkm_oai_err *e);

/* Parse a google.protobuf.Duration string ("43s", "7.967587226s",
 * "900ms") into milliseconds (rounded up). Returns 0 or -1. */
int gkm_oai_parse_delay_ms(const char *s, long long *out)
    __attribute__((warn_unused_result));

#endif
