/*
 * gerror.c - Gemini error classification (see gerror.h for the rules).
 *
 * One pass collects the facts of the error object into a struct scan whose
 * strings are borrowed from the parsed JSON; the class is then decided from
 * the effective status and those facts, and copied out into the caller's
 * plain struct. Nothing here allocates beyond the transient parse tree.
 */
#include "gerror.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define MAX_DELAY_MS (30LL * 24 * 3600 * 1000)
#define MAX_ARRAY_SCAN 64 /* elements of details/violations/wrappers looked at */

static const char *const class_names[GKM_ERRC_COUNT] = {
    [GKM_ERRC_OK] = "ok",
    [GKM_ERRC_QUOTA_MINUTE] = "quota_minute",
    [GKM_ERRC_QUOTA_DAY] = "quota_day",
    [GKM_ERRC_QUOTA_ZERO] = "quota_zero",
    [GKM_ERRC_RATE_UNKNOWN] = "rate_unknown",
    [GKM_ERRC_KEY_INVALID] = "key_invalid",
    [GKM_ERRC_KEY_SUSPENDED] = "key_suspended",
    [GKM_ERRC_KEY_LEAKED] = "key_leaked",
    [GKM_ERRC_KEY_DENIED] = "key_denied",
    [GKM_ERRC_RESOURCE_DENIED] = "resource_denied",
    [GKM_ERRC_LOCATION] = "location",
    [GKM_ERRC_SERVER] = "server",
    [GKM_ERRC_CLIENT] = "client",
};

const char *gkm_err_class_name(enum gkm_err_class c)
{
    if ((int)c < 0 || c >= GKM_ERRC_COUNT)
        return "unknown";
    return class_names[c];
}

int gkm_err_class_parse(const char *name, enum gkm_err_class *out)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < GKM_ERRC_COUNT; i++) {
        if (strcmp(name, class_names[i]) == 0) {
            *out = (enum gkm_err_class)i;
            return 0;
        }
    }
    return -1;
}

/* ---------------------------------------------------------------- strings */

/* Case-insensitive substring test; hay may be NULL. */
static int ci_find(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    if (hay == NULL || n == 0)
        return 0;
    for (const char *p = hay; *p != '\0'; p++) {
        size_t i = 0;
        while (i < n && p[i] != '\0' &&
               tolower((unsigned char)p[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return 1;
    }
    return 0;
}

/* Pointer just past the first case-insensitive occurrence, or NULL. */
static const char *ci_after(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    if (hay == NULL)
        return NULL;
    for (const char *p = hay; *p != '\0'; p++) {
        size_t i = 0;
        while (i < n && p[i] != '\0' &&
               tolower((unsigned char)p[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return p + n;
    }
    return NULL;
}

static int streq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/* Copy src (NULL = "") into dst[cap], cut at a UTF-8 character boundary. */
static void set_str(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    }
    if (n > 0)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Bounded append to the summary buffer. */
static void add(char *buf, size_t cap, size_t *off, const char *fmt, ...)
    GKM_ATTR_PRINTF(4, 5);
static void add(char *buf, size_t cap, size_t *off, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (*off >= cap - 1)
        return;
    va_start(ap, fmt);
    n = vsnprintf(buf + *off, cap - *off, fmt, ap);
    va_end(ap);
    if (n < 0)
        buf[*off] = '\0';
    else if ((size_t)n >= cap - *off)
        *off = cap - 1;
    else
        *off += (size_t)n;
}

/* ---------------------------------------------------------------- numbers */

int gkm_gerror_parse_delay(const char *s, int64_t *out_ms)
{
    /* Hand-written: strtod depends on the locale. "<int>[.<frac>]<unit>". */
    int64_t whole = 0, frac = 0, scale = 1, unit;
    int digits = 0;
    const char *p = s;
    if (s == NULL)
        return -1;
    while (*p == ' ' || *p == '\t')
        p++;
    while (isdigit((unsigned char)*p)) {
        if (whole > 1000000000000LL)
            return -1;
        whole = whole * 10 + (*p++ - '0');
        digits++;
    }
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p)) {
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
    while (*p == ' ')
        p++;
    if (*p == '\0' || strcmp(p, "s") == 0)
        unit = 1000;
    else if (strcmp(p, "ms") == 0)
        unit = 1;
    else if (strcmp(p, "m") == 0 || strcmp(p, "min") == 0)
        unit = 60000;
    else if (strcmp(p, "h") == 0)
        unit = 3600000;
    else
        return -1;
    if (whole > MAX_DELAY_MS / unit)
        return -1;
    /* frac < 1e9 and unit <= 3.6e6: the product fits easily. */
    int64_t ms = whole * unit + (frac * unit + scale - 1) / scale;
    if (ms > MAX_DELAY_MS)
        return -1;
    *out_ms = ms;
    return 0;
}

/* A non-negative integer given as a JSON integer or a decimal string;
 * -1 when absent or anything else. */
static long long json_count(const json_t *v)
{
    long long n = 0;
    const char *s;
    if (json_is_integer(v))
        return json_integer_value(v) >= 0 ? json_integer_value(v) : -1;
    s = json_string_value(v);
    if (s == NULL || *s == '\0')
        return -1;
    for (; *s != '\0'; s++) {
        if (!isdigit((unsigned char)*s) || n > 100000000000000LL)
            return -1;
        n = n * 10 + (*s - '0');
    }
    return n;
}

/* Delay from a RetryInfo.retryDelay: Duration string, or the object form
 * {"seconds": n, "nanos": n} some encoders emit. */
static int64_t json_delay(const json_t *v)
{
    int64_t ms;
    if (json_is_string(v))
        return gkm_gerror_parse_delay(json_string_value(v), &ms) == 0 ? ms : -1;
    if (json_is_object(v)) {
        long long sec = json_count(json_object_get(v, "seconds"));
        long long nanos = json_count(json_object_get(v, "nanos"));
        if (sec < 0 && nanos < 0)
            return -1;
        if (sec < 0)
            sec = 0;
        if (nanos < 0 || nanos >= 1000000000LL)
            nanos = 0;
        if (sec > MAX_DELAY_MS / 1000)
            return -1;
        return sec * 1000 + (nanos + 999999) / 1000000;
    }
    return -1;
}

/* "Please retry in 43.128734512s." anywhere in msg (unit required). */
static int64_t message_delay(const char *msg)
{
    const char *p = ci_after(msg, "retry in ");
    char tok[48];
    size_t n = 0;
    int64_t ms;
    if (p == NULL)
        return -1;
    while ((isdigit((unsigned char)*p) || *p == '.') && n < sizeof(tok) - 1)
        tok[n++] = *p++;
    size_t num = n;
    while (isalpha((unsigned char)*p) && n < sizeof(tok) - 1)
        tok[n++] = (char)tolower((unsigned char)*p++);
    tok[n] = '\0';
    if (num == 0 || n == num)
        return -1;
    return gkm_gerror_parse_delay(tok, &ms) == 0 ? ms : -1;
}

/* Scan "limit: N" occurrences in msg: *first gets the first N (-1 none);
 * returns 1 if any of them is exactly 0. */
static int message_limits(const char *msg, long long *first)
{
    int zero = 0;
    *first = -1;
    const char *p = msg;
    while ((p = ci_after(p, "limit: ")) != NULL) {
        long long n = 0;
        int digits = 0;
        while (isdigit((unsigned char)*p) && digits < 18) {
            n = n * 10 + (*p++ - '0');
            digits++;
        }
        if (digits == 0 || isdigit((unsigned char)*p) || *p == '.')
            continue;
        if (*first < 0)
            *first = n;
        if (n == 0)
            zero = 1;
    }
    return zero;
}

/* "model: gemini-2.5-flash" in a quota message, when no violation says. */
static void message_model(const char *msg, char *out, size_t cap)
{
    const char *p = ci_after(msg, "model: ");
    size_t n = 0;
    if (p == NULL)
        return;
    while (n < cap - 1 && (isalnum((unsigned char)p[n]) || p[n] == '-' ||
                           p[n] == '.' || p[n] == '_'))
        n++;
    while (n > 0 && p[n - 1] == '.') /* sentence end */
        n--;
    memcpy(out, p, n);
    out[n] = '\0';
}

/* ---------------------------------------------------------------- scanning */

struct viol {
    const char *id, *metric, *model;
    long long value;
    int set;
};

/* Facts of one error object; strings are borrowed from the JSON tree. */
struct scan {
    const char *message, *status_name;
    const char *reason;        /* ErrorInfo.reason */
    const char *legacy_reason; /* errors[0].reason */
    const char *consumer;
    struct viol meta;          /* ErrorInfo quota_limit / quota_metric */
    long code;
    int64_t retry_info_ms;
    struct viol any, day, minute, zero;
};

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* The last component of an @type: "type.googleapis.com/google.rpc.X" -> X. */
static const char *type_suffix(const json_t *d)
{
    const char *t = jstr(d, "@type"), *b;
    if (t == NULL)
        return "";
    b = t;
    for (const char *p = t; *p != '\0'; p++)
        if (*p == '.' || *p == '/')
            b = p + 1;
    return b;
}

static int is_day_id(const char *id)
{
    return ci_find(id, "PerDay") || ci_find(id, "Daily");
}

static int is_minute_id(const char *id)
{
    return ci_find(id, "PerMinute");
}

static void keep(struct viol *slot, const struct viol *v)
{
    if (!slot->set)
        *slot = *v;
}

static void scan_violation(const json_t *v, struct scan *sc)
{
    struct viol x = {0};
    if (!json_is_object(v))
        return;
    x.id = jstr(v, "quotaId");
    x.metric = jstr(v, "quotaMetric");
    x.model = jstr(json_object_get(v, "quotaDimensions"), "model");
    x.value = json_count(json_object_get(v, "quotaValue"));
    x.set = 1;
    if (x.id == NULL && x.metric == NULL && x.value < 0)
        return;
    keep(&sc->any, &x);
    if (x.value == 0)
        keep(&sc->zero, &x);
    if (is_day_id(x.id))
        keep(&sc->day, &x);
    else if (is_minute_id(x.id))
        keep(&sc->minute, &x);
}

static void scan_error_info(const json_t *d, struct scan *sc)
{
    const json_t *md = json_object_get(d, "metadata");
    const char *r = jstr(d, "reason");
    if (sc->reason == NULL && r != NULL && *r != '\0')
        sc->reason = r;
    if (sc->consumer == NULL)
        sc->consumer = jstr(md, "consumer");
    if (!sc->meta.set && jstr(md, "quota_limit") != NULL) {
        sc->meta.id = jstr(md, "quota_limit");
        sc->meta.metric = jstr(md, "quota_metric");
        sc->meta.value = json_count(json_object_get(md, "quota_limit_value"));
        sc->meta.set = 1;
    }
}

static void scan_details(const json_t *err, struct scan *sc)
{
    const json_t *details = json_object_get(err, "details");
    size_t nd = json_array_size(details);
    for (size_t i = 0; i < nd && i < MAX_ARRAY_SCAN; i++) {
        const json_t *d = json_array_get(details, i);
        const char *t = type_suffix(d);
        if (strcmp(t, "ErrorInfo") == 0) {
            scan_error_info(d, sc);
        } else if (strcmp(t, "QuotaFailure") == 0) {
            const json_t *vs = json_object_get(d, "violations");
            size_t nv = json_array_size(vs);
            for (size_t j = 0; j < nv && j < MAX_ARRAY_SCAN; j++)
                scan_violation(json_array_get(vs, j), sc);
        } else if (strcmp(t, "RetryInfo") == 0) {
            int64_t ms = json_delay(json_object_get(d, "retryDelay"));
            if (ms >= 0 && sc->retry_info_ms < 0)
                sc->retry_info_ms = ms;
        }
    }
}

static void scan_error(const json_t *holder, const json_t *err,
                       struct scan *sc)
{
    const json_t *code = json_object_get(err, "code");
    const json_t *legacy = json_array_get(json_object_get(err, "errors"), 0);
    memset(sc, 0, sizeof(*sc));
    sc->retry_info_ms = -1;
    if (err == holder && json_is_string(json_object_get(holder, "error")))
        sc->message = jstr(holder, "error"); /* {"error": "text"} */
    else
        sc->message = jstr(err, "message");
    sc->status_name = jstr(err, "status");
    if (json_is_integer(code))
        sc->code = (long)json_integer_value(code);
    else if (json_count(code) >= 0 && json_count(code) < 1000)
        sc->code = (long)json_count(code);
    sc->legacy_reason = jstr(legacy, "reason");
    if (sc->message == NULL)
        sc->message = jstr(legacy, "message");
    scan_details(err, sc);
}

/* The status object inside one candidate value, or NULL. */
static const json_t *status_in(const json_t *o)
{
    const json_t *e;
    if (!json_is_object(o))
        return NULL;
    e = json_object_get(o, "error");
    if (json_is_object(e))
        return e;
    if (json_is_string(e))
        return o;
    /* Bare status object: an integer code and something that says more. */
    if (json_is_integer(json_object_get(o, "code")) &&
        (json_is_string(json_object_get(o, "message")) ||
         json_is_string(json_object_get(o, "status"))))
        return o;
    return NULL;
}

/* Find the status object in any accepted shape; *holder gets the value it
 * was found in. */
static const json_t *find_status(const json_t *body, const json_t **holder)
{
    if (json_is_array(body)) {
        size_t n = json_array_size(body);
        for (size_t i = 0; i < n && i < MAX_ARRAY_SCAN; i++) {
            const json_t *s = status_in(json_array_get(body, i));
            if (s != NULL) {
                *holder = json_array_get(body, i);
                return s;
            }
        }
        return NULL;
    }
    *holder = body;
    return status_in(body);
}

/* ---------------------------------------------------------------- deciding */

static long status_from_name(const char *s)
{
    static const struct {
        const char *name;
        long code;
    } map[] = {
        {"INVALID_ARGUMENT", 400},   {"FAILED_PRECONDITION", 400},
        {"OUT_OF_RANGE", 400},       {"UNAUTHENTICATED", 401},
        {"PERMISSION_DENIED", 403},  {"NOT_FOUND", 404},
        {"ABORTED", 409},            {"ALREADY_EXISTS", 409},
        {"RESOURCE_EXHAUSTED", 429}, {"CANCELLED", 499},
        {"UNKNOWN", 500},            {"INTERNAL", 500},
        {"DATA_LOSS", 500},          {"UNIMPLEMENTED", 501},
        {"UNAVAILABLE", 503},        {"DEADLINE_EXCEEDED", 504},
    };
    for (size_t i = 0; s != NULL && i < GKM_ARRAY_LEN(map); i++)
        if (strcmp(s, map[i].name) == 0)
            return map[i].code;
    return 0;
}

static int is_denied_reason(const char *r)
{
    static const char *const denied[] = {
        "API_KEY_SERVICE_BLOCKED",     "SERVICE_DISABLED",
        "CREDENTIALS_MISSING",         "API_KEY_HTTP_REFERRER_BLOCKED",
        "API_KEY_IP_ADDRESS_BLOCKED",  "API_KEY_ANDROID_APP_BLOCKED",
        "API_KEY_IOS_APP_BLOCKED",     "CONSUMER_INVALID",
    };
    for (size_t i = 0; r != NULL && i < GKM_ARRAY_LEN(denied); i++)
        if (strcmp(r, denied[i]) == 0)
            return 1;
    return 0;
}

/* Key-level verdicts for a non-quota 4xx; GKM_ERRC_OK when none applies. */
static enum gkm_err_class key_class(const struct scan *sc)
{
    const char *r = sc->reason, *lr = sc->legacy_reason, *m = sc->message;
    if (streq(r, "CONSUMER_SUSPENDED") || ci_find(m, "has been suspended"))
        return GKM_ERRC_KEY_SUSPENDED;
    if (ci_find(m, "reported as leaked"))
        return GKM_ERRC_KEY_LEAKED;
    if (streq(r, "API_KEY_INVALID") || streq(lr, "keyInvalid") ||
        streq(lr, "keyExpired") || ci_find(m, "API key not valid") ||
        ci_find(m, "API key not found") || ci_find(m, "API key expired"))
        return GKM_ERRC_KEY_INVALID;
    if (is_denied_reason(r) || streq(lr, "accessNotConfigured") ||
        ci_find(m, "unregistered callers"))
        return GKM_ERRC_KEY_DENIED;
    return GKM_ERRC_OK;
}

/* A 403 about a project-scoped resource (file, cache, tuned model). */
static int is_resource_message(const char *m)
{
    if (ci_find(m, "or it may not exist") || ci_find(m, "cachedContents/") ||
        ci_find(m, "files/") || ci_find(m, "tunedModels/") ||
        ci_find(m, "CachedContent not found"))
        return 1;
    return ci_find(m, "permission to access") &&
           (ci_find(m, "file") || ci_find(m, "cachedcontent") ||
            ci_find(m, "cached content") || ci_find(m, "tuned model") ||
            ci_find(m, "corpus") || ci_find(m, "corpora"));
}

static int is_location_message(const char *m)
{
    return ci_find(m, "location is not supported") ||
           ci_find(m, "not available in your country");
}

/* 429/499: which quota, and the violation that says so (*chosen). */
static enum gkm_err_class quota_class(const struct scan *sc, int64_t retry_ms,
                                      int msg_zero, const struct viol **chosen)
{
    const struct viol *meta = sc->meta.set ? &sc->meta : NULL;
    *chosen = sc->any.set ? &sc->any : meta;
    if (sc->zero.set || msg_zero || (meta && meta->value == 0)) {
        *chosen = sc->zero.set ? &sc->zero
                  : (meta && meta->value == 0) ? meta : *chosen;
        return GKM_ERRC_QUOTA_ZERO;
    }
    if (sc->day.set || (meta && is_day_id(meta->id)) ||
        streq(sc->legacy_reason, "dailyLimitExceeded")) {
        if (sc->day.set)
            *chosen = &sc->day;
        else if (meta && is_day_id(meta->id))
            *chosen = meta;
        return GKM_ERRC_QUOTA_DAY;
    }
    if (sc->minute.set || (meta && is_minute_id(meta->id))) {
        if (sc->minute.set)
            *chosen = &sc->minute;
        else if (meta && is_minute_id(meta->id))
            *chosen = meta;
        return GKM_ERRC_QUOTA_MINUTE;
    }
    if (!sc->any.set && meta == NULL) {
        if (ci_find(sc->message, "per day"))
            return GKM_ERRC_QUOTA_DAY;
        if (ci_find(sc->message, "per minute"))
            return GKM_ERRC_QUOTA_MINUTE;
    }
    if (retry_ms >= 0)
        return GKM_ERRC_QUOTA_MINUTE;
    return GKM_ERRC_RATE_UNKNOWN;
}

static enum gkm_err_class decide(long st, const struct scan *sc, int have,
                                 int64_t retry_ms, int msg_zero,
                                 const struct viol **chosen)
{
    enum gkm_err_class c;
    *chosen = NULL;
    if (st <= 0 || st >= 600)
        return GKM_ERRC_SERVER;
    if (st >= 200 && st < 300)
        return GKM_ERRC_OK;
    if (st < 400) /* 1xx, 3xx */
        return GKM_ERRC_CLIENT;
    if (st == 429 || st == 499)
        return quota_class(sc, retry_ms, msg_zero, chosen);
    if (st >= 500)
        return GKM_ERRC_SERVER;
    if (have && (c = key_class(sc)) != GKM_ERRC_OK)
        return c;
    if (have && is_location_message(sc->message))
        return GKM_ERRC_LOCATION;
    if (st == 403) {
        if (!have)
            return GKM_ERRC_CLIENT;
        return is_resource_message(sc->message) ? GKM_ERRC_RESOURCE_DENIED
                                                : GKM_ERRC_KEY_DENIED;
    }
    if (st == 408)
        return GKM_ERRC_SERVER;
    return GKM_ERRC_CLIENT;
}

static const char *class_text(const struct gkm_err_info *o)
{
    switch (o->cls) {
    case GKM_ERRC_OK: return "ok";
    case GKM_ERRC_QUOTA_MINUTE:
        return o->token_quota ? "per-minute token quota" : "per-minute quota";
    case GKM_ERRC_QUOTA_DAY:
        return o->token_quota ? "per-day token quota" : "per-day quota";
    case GKM_ERRC_QUOTA_ZERO: return "no quota for this model (limit 0)";
    case GKM_ERRC_RATE_UNKNOWN: return "rate limited without quota details";
    case GKM_ERRC_KEY_INVALID: return "API key invalid";
    case GKM_ERRC_KEY_SUSPENDED: return "API key suspended";
    case GKM_ERRC_KEY_LEAKED: return "API key reported as leaked";
    case GKM_ERRC_KEY_DENIED: return "API key denied";
    case GKM_ERRC_RESOURCE_DENIED:
        return "resource of another project (file/cache)";
    case GKM_ERRC_LOCATION: return "user location not supported (egress)";
    case GKM_ERRC_SERVER:
        return o->status <= 0 ? "connection failed or timed out"
                              : "server error";
    case GKM_ERRC_CLIENT: return "request error";
    default: return "unknown";
    }
}

static void summarize(struct gkm_err_info *o)
{
    char *b = o->summary;
    size_t cap = sizeof(o->summary), off = 0;
    if (o->status <= 0)
        add(b, cap, &off, "no response: %s", class_text(o));
    else
        add(b, cap, &off, "%ld %s", o->status, class_text(o));
    if (o->quota_id[0] != '\0') {
        add(b, cap, &off, " (%s", o->quota_id);
        if (o->quota_value >= 0)
            add(b, cap, &off, ", limit %lld", o->quota_value);
        add(b, cap, &off, ")");
    } else if (o->reason[0] != '\0') {
        add(b, cap, &off, " (%s)", o->reason);
    } else if (o->status_name[0] != '\0') {
        add(b, cap, &off, " (%s)", o->status_name);
    }
    if (o->model[0] != '\0')
        add(b, cap, &off, ", model %s", o->model);
    if (o->project[0] != '\0')
        add(b, cap, &off, ", project %s", o->project);
    if (o->retry_ms >= 0) {
        long long tenths = (long long)((o->retry_ms + 50) / 100);
        add(b, cap, &off, ", retry in %lld.%llds", tenths / 10, tenths % 10);
    }
}

static int fill(long http_status, const json_t *body, struct gkm_err_info *out)
{
    struct scan sc;
    const json_t *holder = NULL, *err = NULL;
    const struct viol *chosen = NULL;
    long st = http_status;
    long long msg_limit;
    int msg_zero;

    memset(out, 0, sizeof(*out));
    out->retry_ms = -1;
    out->quota_value = -1;
    if (http_status > 0 && body != NULL)
        err = find_status(body, &holder);
    if (err != NULL) {
        scan_error(holder, err, &sc);
    } else {
        memset(&sc, 0, sizeof(sc));
        sc.retry_info_ms = -1;
    }
    out->parsed = err != NULL;

    if (st >= 200 && st < 300 && err != NULL) {
        if (sc.code >= 100 && sc.code < 600 && !(sc.code >= 200 && sc.code < 300))
            st = sc.code;
        else if ((st = status_from_name(sc.status_name)) == 0)
            st = 500;
    }
    out->status = st;

    /* The longer of RetryInfo and the message's "retry in" (see header). */
    int64_t mdelay = message_delay(sc.message);
    out->retry_ms = sc.retry_info_ms > mdelay ? sc.retry_info_ms : mdelay;
    msg_zero = message_limits(sc.message, &msg_limit);

    out->cls = decide(st, &sc, err != NULL, out->retry_ms, msg_zero, &chosen);

    set_str(out->message, sizeof(out->message), sc.message);
    set_str(out->status_name, sizeof(out->status_name), sc.status_name);
    set_str(out->reason, sizeof(out->reason),
            sc.reason ? sc.reason : sc.legacy_reason);
    if (sc.consumer != NULL && strncmp(sc.consumer, "projects/", 9) == 0)
        set_str(out->project, sizeof(out->project), sc.consumer + 9);
    if (chosen != NULL) {
        set_str(out->quota_id, sizeof(out->quota_id), chosen->id);
        set_str(out->quota_metric, sizeof(out->quota_metric), chosen->metric);
        set_str(out->model, sizeof(out->model), chosen->model);
        out->quota_value = chosen->value;
        out->token_quota = ci_find(chosen->id, "Token") ||
                           ci_find(chosen->metric, "token");
    }
    if (out->cls == GKM_ERRC_QUOTA_ZERO)
        out->quota_value = 0;
    else if (out->quota_value < 0 && chosen == NULL &&
             (out->cls == GKM_ERRC_QUOTA_MINUTE || out->cls == GKM_ERRC_QUOTA_DAY ||
              out->cls == GKM_ERRC_RATE_UNKNOWN))
        out->quota_value = msg_limit;
    if (out->model[0] == '\0' && (st == 429 || st == 499))
        message_model(sc.message, out->model, sizeof(out->model));
    summarize(out);
    return out->parsed;
}

int gkm_gerror_from_json(long http_status, const json_t *obj,
                         struct gkm_err_info *out)
{
    return fill(http_status, obj, out);
}

int gkm_gerror_classify(long http_status, const char *body, size_t len,
                        struct gkm_err_info *out)
{
    json_t *j = NULL;
    int r;
    if (http_status > 0 && body != NULL && len > 0 &&
        len <= GKM_GERROR_PARSE_MAX)
        j = json_loadb(body, len, 0, NULL);
    r = fill(http_status, j, out);
    json_decref(j);
    return r;
}
