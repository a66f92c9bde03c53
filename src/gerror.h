/*
 * gerror.h - classify a Gemini upstream error: what went wrong, and whose
 * fault it is (wire spec 5, 6, 9.5, 9.6).
 *
 * Pure: bytes (or a parsed object) and a status in, a plain struct out. No
 * clock, no I/O, no allocation that outlives a call. What to *do* about a
 * class (bench, retry, pass) is policy.h's job.
 *
 * Accepted body shapes (all tolerated, none trusted):
 *   - the google.rpc.Status envelope {"error": {code, message, status,
 *     details[]}}, details in any order, matched on the @type suffix
 *     ("...google.rpc.QuotaFailure"), unknown detail types ignored;
 *   - the same wrapped in an array [{"error": {...}}] (first element that
 *     carries one);
 *   - a bare status object {"code": 429, "message": ..., "status": ...};
 *   - {"error": "text"};
 *   - a legacy "errors": [{message, domain, reason}] array inside the error
 *     (its first reason is used when no ErrorInfo gives one);
 *   - anything else (empty, HTML, garbage, truncated JSON, a successful
 *     response, or a body longer than GKM_GERROR_PARSE_MAX): the status
 *     alone decides, and nothing is blamed on the key.
 *
 * Effective status: the HTTP status, except for a 2xx whose body is an
 * error object (an error inside a 200 stream, 5.6): then the object's
 * "code", or its "status" name mapped to HTTP (UNAVAILABLE -> 503, ...),
 * or 500 when neither says anything.
 *
 * Classification by effective status (first match wins):
 *   <= 0 (no HTTP response: connect failure, timeout) ......... SERVER
 *   2xx ......................................................... OK
 *   429, 499 (quota / rate):
 *     1. any violation quotaValue "0", ErrorInfo quota_limit_value "0", or
 *        "limit: 0" in the message ................................ QUOTA_ZERO
 *        (checked before per-day: a zero allowance does not come back at
 *        the daily reset, so it must not be mistaken for a spent day)
 *     2. any quotaId (or ErrorInfo quota_limit) containing "PerDay" or
 *        "Daily", or legacy reason dailyLimitExceeded, whatever RetryInfo
 *        says (5.5 rule 1) ...................................... QUOTA_DAY
 *     3. any quotaId / quota_limit containing "PerMinute" ....... QUOTA_MINUTE
 *     4. no quota id at all, but the message says "per day" /
 *        "per minute" (older texts) ................... QUOTA_DAY / QUOTA_MINUTE
 *     5. a usable delay (RetryInfo or "Please retry in Ns") ..... QUOTA_MINUTE
 *        (a short-term quota whose length Google told us)
 *     6. otherwise (bare 429, Help only, legacy rateLimitExceeded) RATE_UNKNOWN
 *   any 4xx other than 429/499 with an error object, key problems first:
 *     ErrorInfo CONSUMER_SUSPENDED or "has been suspended" ..... KEY_SUSPENDED
 *     "reported as leaked" ..................................... KEY_LEAKED
 *     API_KEY_INVALID / legacy keyInvalid, keyExpired, or "API key not
 *     valid" / "API Key not found" / "API key expired" .......... KEY_INVALID
 *     API_KEY_SERVICE_BLOCKED, SERVICE_DISABLED, CREDENTIALS_MISSING,
 *     API_KEY_*_BLOCKED, CONSUMER_INVALID, legacy accessNotConfigured,
 *     "unregistered callers" ..................................... KEY_DENIED
 *     "User location is not supported", "not available in your country"
 *     (the proxy's egress region, 9.8) ........................ LOCATION
 *   then by status:
 *     403 naming a file / cached content / tuned model, or "... or it may
 *     not exist" (another project's resource, 1.6) ............. RESOURCE_DENIED
 *     403 other, when the body was a Gemini error object ....... KEY_DENIED
 *     403 without one (HTML from a front end, empty): nothing
 *     says the key is at fault ................................... CLIENT
 *     408 (request timeout: transient, not the request's fault)  SERVER
 *     other 4xx (bad request, unknown field, 401, 404, ...) .... CLIENT
 *   5xx, and nonsense statuses >= 600 ........................... SERVER
 *   1xx, 3xx .................................................... CLIENT
 *
 * retry_ms: RetryInfo.retryDelay, a protobuf Duration ("26s",
 * "7.967587226s", "900ms"; tolerated too: "1.5m", "1h", a bare number of
 * seconds, {"seconds": n, "nanos": n}), rounded up to whole ms. The
 * message's "Please retry in 43.128734512s." is used when there is no
 * RetryInfo, and also when it is longer (RetryInfo is often truncated to
 * whole seconds; retrying before the window really ends just earns another
 * 429). -1 when neither exists.
 */
#ifndef GKM_GERROR_H
#define GKM_GERROR_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Bodies longer than this are not parsed (classified by status alone). */
#define GKM_GERROR_PARSE_MAX ((size_t)1 << 20)

/* Sizes of the string fields of struct gkm_err_info (including the NUL).
 * Longer values are cut (messages at a UTF-8 character boundary). */
#define GKM_ERR_ID_MAX 128
#define GKM_ERR_MODEL_MAX 129
#define GKM_ERR_PROJECT_MAX 64
#define GKM_ERR_REASON_MAX 64
#define GKM_ERR_STATUS_MAX 32
#define GKM_ERR_MESSAGE_MAX 301 /* 300 bytes of error.message */
#define GKM_ERR_SUMMARY_MAX 256

enum gkm_err_class {
    GKM_ERRC_OK = 0,         /* not an error */
    GKM_ERRC_QUOTA_MINUTE,   /* short-term quota (per minute) with a delay */
    GKM_ERRC_QUOTA_DAY,      /* per-day quota spent: until the daily reset */
    GKM_ERRC_QUOTA_ZERO,     /* limit 0: model not available to the project */
    GKM_ERRC_RATE_UNKNOWN,   /* 429/499 without usable details */
    GKM_ERRC_KEY_INVALID,    /* key unknown / expired (key-wide, terminal) */
    GKM_ERRC_KEY_SUSPENDED,  /* consumer suspended (key-wide, terminal) */
    GKM_ERRC_KEY_LEAKED,     /* reported as leaked (key-wide, terminal) */
    GKM_ERRC_KEY_DENIED,     /* blocked / service disabled / other 403 */
    GKM_ERRC_RESOURCE_DENIED,/* file/cache of another project: not the key */
    GKM_ERRC_LOCATION,       /* egress region unsupported: not the key */
    GKM_ERRC_SERVER,         /* 5xx, 408, no response: retry elsewhere */
    GKM_ERRC_CLIENT,         /* caused by the request: pass it back */
    GKM_ERRC_COUNT
};

/* Everything learned from one error. Plain data, no pointers: may be
 * copied, kept, and needs no cleanup. Strings are always NUL-terminated
 * ("" when absent). */
struct gkm_err_info {
    enum gkm_err_class cls;
    long status;       /* effective status that was classified (see top) */
    int parsed;        /* 1 if a Gemini error object was found and used */
    int token_quota;   /* the chosen violation is an (input) token quota */
    int64_t retry_ms;  /* delay Google asked for, -1 if none */
    long long quota_value;              /* limit of the violation, -1 none */
    char quota_id[GKM_ERR_ID_MAX];      /* "GenerateRequestsPerMinute..." */
    char quota_metric[GKM_ERR_ID_MAX];  /* "generativelanguage.../..." */
    char model[GKM_ERR_MODEL_MAX];      /* quotaDimensions.model */
    char project[GKM_ERR_PROJECT_MAX];  /* "123" from consumer "projects/123" */
    char reason[GKM_ERR_REASON_MAX];    /* ErrorInfo.reason (or legacy) */
    char status_name[GKM_ERR_STATUS_MAX]; /* "RESOURCE_EXHAUSTED" */
    /* First 300 bytes of error.message. May quote the API key (suspended
     * consumer texts do): redact before logging or relaying. */
    char message[GKM_ERR_MESSAGE_MAX];
    /* One line for logs, never containing the message, e.g. "429 per-minute
     * quota (GenerateRequestsPerMinutePerProjectPerModel-FreeTier, limit 10),
     * model gemini-2.5-flash, retry in 43.1s". */
    char summary[GKM_ERR_SUMMARY_MAX];
};

/* Classify an upstream answer: http_status (<= 0 when no response arrived)
 * and its raw body (body may be NULL when len is 0; never trusted to be
 * JSON or NUL-terminated). Always fills *out completely. Returns 1 when
 * the body held a Gemini error object (out->parsed), 0 when the status
 * alone decided. */
int gkm_gerror_classify(long http_status, const char *body, size_t len,
                        struct gkm_err_info *out);

/* Same, from an already parsed body or stream event (borrowed; NULL or a
 * non-error object = no usable body). For an error found inside a 200
 * stream pass http_status 200: the object's own code is used. */
int gkm_gerror_from_json(long http_status, const json_t *obj,
                         struct gkm_err_info *out);

/* Stable lower-case name of a class ("ok", "quota_minute", "quota_day",
 * "quota_zero", "rate_unknown", "key_invalid", "key_suspended",
 * "key_leaked", "key_denied", "resource_denied", "location", "server",
 * "client"); "unknown" out of range. Safe to persist. */
const char *gkm_err_class_name(enum gkm_err_class c);
/* Inverse of gkm_err_class_name: 0 and *out set, or -1 if unknown. */
int gkm_err_class_parse(const char *name, enum gkm_err_class *out);

/* Parse a retry delay as found in RetryInfo.retryDelay (see top) into ms,
 * rounded up. Returns 0, or -1 (unparseable, negative, > 30 days). */
int gkm_gerror_parse_delay(const char *s, int64_t *out_ms)
    __attribute__((warn_unused_result));

#endif
