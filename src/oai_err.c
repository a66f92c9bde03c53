/*
 * oai_err.c - OpenAI error values and the Gemini -> OpenAI error mapping
 * (see oai_err.h and wire spec 5.1-5.4, 7.4, 7.5, 8.11).
 */
#include "oai_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "sse.h"
#include "util.h"

/* Longest piece of a non-JSON upstream body quoted in a message. */
#define SNIPPET_MAX 200

void gkm_oai_err_init(struct gkm_oai_err *e)
{
    memset(e, 0, sizeof(*e));
    e->retry_after_ms = -1;
}

void gkm_oai_err_clear(struct gkm_oai_err *e)
{
    free(e->message);
    free(e->type);
    free(e->param);
    free(e->code);
    gkm_oai_err_init(e);
}

__attribute__((format(printf, 6, 0))) static void
err_vset(struct gkm_oai_err *e, int status, const char *type, const char *code,
         const char *param, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    char *msg = gkm_xmalloc(n > 0 ? (size_t)n + 1 : 1);
    if (n > 0)
        vsnprintf(msg, (size_t)n + 1, fmt, ap);
    else
        msg[0] = '\0';
    gkm_oai_err_clear(e);
    e->status = status;
    e->message = msg;
    e->type = gkm_xstrdup(type);
    e->param = param ? gkm_xstrdup(param) : NULL;
    e->code = code ? gkm_xstrdup(code) : NULL;
}

void gkm_oai_err_set(struct gkm_oai_err *e, int status, const char *type,
                     const char *code, const char *param, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(e, status, type, code, param, fmt, ap);
    va_end(ap);
}

void gkm_oai_err_invalid(struct gkm_oai_err *e, const char *param,
                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(e, 400, "invalid_request_error", NULL, param, fmt, ap);
    va_end(ap);
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *err_json(const struct gkm_oai_err *e, const char *code)
{
    json_t *inner = json_object();
    json_object_set_new(inner, "message",
                        json_string(e->message ? e->message : "unknown error"));
    json_object_set_new(inner, "type",
                        json_string(e->type ? e->type : "server_error"));
    json_object_set_new(inner, "param", str_or_null(e->param));
    json_object_set_new(inner, "code", str_or_null(code));
    json_t *o = json_object();
    json_object_set_new(o, "error", inner);
    return o;
}

json_t *gkm_oai_err_json(const struct gkm_oai_err *e)
{
    return err_json(e, e->code);
}

int gkm_oai_err_sse(const struct gkm_oai_err *e, struct gkm_buf *out)
{
    char num[16];
    const char *code = e->code;
    if (code == NULL) {
        snprintf(num, sizeof(num), "%d", e->status);
        code = num;
    }
    json_t *o = err_json(e, code);
    int r = gkm_sse_write_json(out, o);
    json_decref(o);
    return r;
}

int gkm_oai_parse_delay_ms(const char *s, long long *out)
{
    /* Manual parse: strtod is locale-dependent. "<int>[.<frac>](s|ms)". */
    long long whole = 0, frac = 0, scale = 1;
    const char *p = s;
    int digits = 0;
    if (s == NULL)
        return -1;
    while (*p >= '0' && *p <= '9') {
        if (whole > 100000000000LL)
            return -1;
        whole = whole * 10 + (*p - '0');
        p++;
        digits++;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            if (scale < 1000000000LL) {
                frac = frac * 10 + (*p - '0');
                scale *= 10;
            }
            p++;
            digits++;
        }
    }
    if (digits == 0)
        return -1;
    if (strcmp(p, "s") == 0) {
        /* ms = whole*1000 + ceil(frac*1000/scale) */
        long long f = (frac * 1000 + scale - 1) / scale;
        *out = whole * 1000 + f;
        return 0;
    }
    if (strcmp(p, "ms") == 0) {
        *out = whole + (frac > 0 ? 1 : 0);
        return 0;
    }
    return -1;
}

static const char *str_field(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static int type_is(const json_t *detail, const char *suffix)
{
    const char *t = str_field(detail, "@type");
    size_t tl, sl = strlen(suffix);
    if (t == NULL)
        return 0;
    tl = strlen(t);
    return tl >= sl && strcmp(t + tl - sl, suffix) == 0;
}

static int is_key_reason(const char *r)
{
    static const char *const reasons[] = {
        "API_KEY_INVALID",  "API_KEY_EXPIRED",    "CONSUMER_SUSPENDED",
        "API_KEY_SERVICE_BLOCKED", "SERVICE_DISABLED", "CREDENTIALS_MISSING",
        "API_KEY_HTTP_REFERRER_BLOCKED", "API_KEY_IP_ADDRESS_BLOCKED",
    };
    for (size_t i = 0; r && i < GKM_ARRAY_LEN(reasons); i++)
        if (strcmp(r, reasons[i]) == 0)
            return 1;
    return 0;
}

/* What the details array says about the error. */
struct err_facts {
    int key_problem;
    int per_day;     /* a QuotaFailure quotaId with PerDay / Daily */
    int limit_zero;  /* quotaValue "0" */
    long long retry_ms;
};

static void scan_details(const json_t *details, struct err_facts *f)
{
    size_t i, j;
    const json_t *d, *v;
    json_array_foreach(details, i, d) {
        if (!json_is_object(d))
            continue;
        if (type_is(d, "google.rpc.ErrorInfo")) {
            if (is_key_reason(str_field(d, "reason")))
                f->key_problem = 1;
        } else if (type_is(d, "google.rpc.QuotaFailure")) {
            json_array_foreach(json_object_get(d, "violations"), j, v) {
                const char *id = str_field(v, "quotaId");
                const char *val = str_field(v, "quotaValue");
                if (id && (strstr(id, "PerDay") || strstr(id, "Daily")))
                    f->per_day = 1;
                if (val && strcmp(val, "0") == 0)
                    f->limit_zero = 1;
            }
        } else if (type_is(d, "google.rpc.RetryInfo")) {
            long long ms;
            if (gkm_oai_parse_delay_ms(str_field(d, "retryDelay"), &ms) == 0)
                f->retry_ms = ms;
        }
    }
}

/* Find the google.rpc.Status object in any accepted body shape. */
static const json_t *find_status(const json_t *body)
{
    if (json_is_array(body))
        body = json_array_get(body, 0);
    if (!json_is_object(body))
        return NULL;
    const json_t *e = json_object_get(body, "error");
    if (json_is_object(e))
        return e;
    if (json_is_string(e)) /* {"error": "text"}: some fronts */
        return body;
    if (json_object_get(body, "message") || json_object_get(body, "status"))
        return body; /* bare status object */
    return NULL;
}

static void map_status(int status, const char *gstatus, const char *msg,
                       const struct err_facts *f, struct gkm_oai_err *e)
{
    const char *m = msg ? msg : "";
    if (f->key_problem || status == 401 ||
        (status == 400 && (strstr(m, "API key not valid") ||
                           strstr(m, "API key expired"))) ||
        (status == 403 && (strstr(m, "leaked") || strstr(m, "suspended")))) {
        gkm_oai_err_set(e, 503, "server_error", "no_upstream_keys", NULL,
                        "Gemini rejected the upstream API key: %s", m);
    } else if (status == 429) {
        if (f->per_day || f->limit_zero)
            gkm_oai_err_set(e, 429, "insufficient_quota", "insufficient_quota",
                            NULL, "%s", m);
        else
            gkm_oai_err_set(e, 429, "rate_limit_error", "rate_limit_exceeded",
                            NULL, "%s", m);
    } else if (status == 404) {
        gkm_oai_err_set(e, 404, "invalid_request_error",
                        strstr(m, "model") ? "model_not_found" : "not_found",
                        NULL, "%s", m);
    } else if (status == 403) {
        gkm_oai_err_set(e, 403, "invalid_request_error", "permission_denied",
                        NULL, "%s", m);
    } else if (status >= 400 && status < 499) {
        gkm_oai_err_set(e, status, "invalid_request_error", NULL, NULL, "%s",
                        m);
    } else if (status >= 500 && status <= 599) {
        gkm_oai_err_set(e, status, "server_error", NULL, NULL, "%s", m);
    } else {
        /* 499 CANCELLED, 2xx/3xx carrying an error, nonsense codes. */
        gkm_oai_err_set(e, 502, "server_error", NULL, NULL, "%s", m);
    }
    (void)gstatus;
    e->retry_after_ms = f->retry_ms;
}

void gkm_oai_err_from_gemini_json(int http_status, const json_t *body,
                                  struct gkm_oai_err *e)
{
    struct err_facts f = {0, 0, 0, -1};
    const json_t *st = find_status(body);
    const char *msg = NULL, *gstatus = NULL;
    int status = http_status;
    if (st != NULL) {
        const json_t *m = json_object_get(st, "message");
        if (!json_is_string(m))
            m = json_object_get(st, "error"); /* {"error": "text"} */
        msg = json_string_value(m);
        gstatus = str_field(st, "status");
        json_int_t c = json_integer_value(json_object_get(st, "code"));
        if ((status < 400 || status > 599) && c >= 400 && c <= 599)
            status = (int)c;
        scan_details(json_object_get(st, "details"), &f);
    }
    if (status < 400 && gstatus != NULL) {
        /* A stream error with no usable numeric code: derive from status. */
        if (strcmp(gstatus, "RESOURCE_EXHAUSTED") == 0)
            status = 429;
        else if (strcmp(gstatus, "UNAVAILABLE") == 0)
            status = 503;
        else if (strcmp(gstatus, "INVALID_ARGUMENT") == 0)
            status = 400;
        else
            status = 500;
    }
    if (msg == NULL || msg[0] == '\0') {
        char fallback[96];
        snprintf(fallback, sizeof(fallback), "Gemini returned HTTP %d%s%s",
                 http_status, gstatus ? " " : "", gstatus ? gstatus : "");
        map_status(status, gstatus, fallback, &f, e);
        return;
    }
    map_status(status, gstatus, msg, &f, e);
}

void gkm_oai_err_from_gemini(int http_status, const char *body, size_t len,
                             struct gkm_oai_err *e)
{
    json_t *j = body && len ? json_loadb(body, len, JSON_DECODE_ANY, NULL)
                            : NULL;
    if (find_status(j) != NULL) {
        gkm_oai_err_from_gemini_json(http_status, j, e);
        json_decref(j);
        return;
    }
    json_decref(j);
    /* Not a Gemini error body: quote a printable snippet of it. */
    char snip[SNIPPET_MAX + 1];
    size_t n = 0;
    for (size_t i = 0; body && i < len && n < SNIPPET_MAX; i++) {
        unsigned char c = (unsigned char)body[i];
        char out = (c > 0x20 && c < 0x7f) ? (char)c : ' ';
        /* Control bytes, binary and runs of whitespace become one space. */
        if (out == ' ' && (n == 0 || snip[n - 1] == ' '))
            continue;
        snip[n++] = out;
    }
    while (n > 0 && snip[n - 1] == ' ')
        n--;
    snip[n] = '\0';
    struct err_facts f = {0, 0, 0, -1};
    int status = http_status >= 400 && http_status <= 599 ? http_status : 502;
    char *msg = n ? gkm_xasprintf("Gemini returned HTTP %d: %s", http_status,
                                  snip)
                  : gkm_xasprintf("Gemini returned HTTP %d", http_status);
    map_status(status, NULL, msg, &f, e);
    free(msg);
}
