/*
 * test_gerror.c - classification of Gemini upstream errors: every real-world
 * body of wire spec 5.4 (fixtures under tests/fixtures/errors/), older and
 * wrapped shapes, garbage, truncated and oversized bodies, errors inside a
 * 200 stream, retry delays, and the status-only fallback.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "gerror.h"
#include "util.h"

#ifndef GKM_FIXTURES
#error "GKM_FIXTURES must name the tests/fixtures directory"
#endif
#define ERR_DIR GKM_FIXTURES "/errors/"

static char *load(const char *name, size_t *len)
{
    char *path = gkm_xasprintf("%s%s", ERR_DIR, name);
    char *data = NULL;
    if (gkm_read_file(path, 1 << 22, &data, len) != 0)
        fail_msg("cannot read fixture %s", path);
    free(path);
    return data;
}

/* Classify a fixture from an exact-size heap copy (no NUL after the body,
 * so an over-read shows up under ASan). */
static int classify_file(const char *name, long status, struct gkm_err_info *e)
{
    size_t len;
    char *data = load(name, &len);
    char *exact = gkm_xmalloc(len ? len : 1);
    memcpy(exact, data, len);
    int r = gkm_gerror_classify(status, exact, len, e);
    free(exact);
    free(data);
    return r;
}

static int classify_str(long status, const char *body, struct gkm_err_info *e)
{
    return gkm_gerror_classify(status, body, body ? strlen(body) : 0, e);
}

struct expect {
    const char *file;
    long http;
    enum gkm_err_class cls;
    long status; /* effective */
    int parsed;
    int64_t retry_ms;
    const char *quota_id;
    long long quota_value;
    const char *model;
    const char *project;
    const char *reason;
    const char *status_name;
    int token;
};

#define RE "RESOURCE_EXHAUSTED"
#define PERMIN "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
#define PERDAY "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
#define TOKMIN "GenerateContentInputTokensPerModelPerMinute-FreeTier"

static const struct expect fixtures[] = {
    /* 429s */
    {"quota_minute_429.json", 429, GKM_ERRC_QUOTA_MINUTE, 429, 1, 43129,
     PERMIN, 10, "gemini-2.5-flash", "", "", RE, 0},
    {"quota_day_429.json", 429, GKM_ERRC_QUOTA_DAY, 429, 1, 12403, PERDAY,
     250, "gemini-2.5-flash", "", "", RE, 0},
    {"quota_day_and_minute_429.json", 429, GKM_ERRC_QUOTA_DAY, 429, 1, 47067,
     PERDAY, 250, "gemini-2.5-flash", "", "", RE, 0},
    {"quota_tokens_minute_429.json", 429, GKM_ERRC_QUOTA_MINUTE, 429, 1, 7968,
     TOKMIN, 250000, "gemini-2.5-flash", "", "", RE, 1},
    {"quota_zero_429.json", 429, GKM_ERRC_QUOTA_ZERO, 429, 1, 31525, TOKMIN, 0,
     "gemini-2.5-pro", "", "", RE, 1},
    {"quota_zero_value_429.json", 429, GKM_ERRC_QUOTA_ZERO, 429, 1, -1, PERMIN,
     0, "gemini-3-pro-preview", "", "", RE, 0},
    {"rate_bare_429.json", 429, GKM_ERRC_RATE_UNKNOWN, 429, 1, -1, "", -1, "",
     "", "", RE, 0},
    {"rate_bare_unwrapped_429.json", 429, GKM_ERRC_RATE_UNKNOWN, 429, 1, -1,
     "", -1, "", "", "", RE, 0},
    {"rate_help_only_429.json", 429, GKM_ERRC_RATE_UNKNOWN, 429, 1, -1, "", -1,
     "", "", "", RE, 0},
    {"quota_legacy_2024_429.json", 429, GKM_ERRC_QUOTA_MINUTE, 429, 1, -1,
     "GenerateContentRequestsPerMinutePerProjectPerRegion", 60, "",
     "123456789012", "RATE_LIMIT_EXCEEDED", RE, 0},
    {"rate_legacy_errors_429.json", 429, GKM_ERRC_RATE_UNKNOWN, 429, 1, -1, "",
     -1, "", "", "rateLimitExceeded", RE, 0},
    {"array_wrapped_429.json", 429, GKM_ERRC_QUOTA_MINUTE, 429, 1, 26500,
     PERMIN, 15, "gemini-2.0-flash", "", "", RE, 0},
    /* key problems */
    {"key_invalid_400.json", 400, GKM_ERRC_KEY_INVALID, 400, 1, -1, "", -1, "",
     "", "API_KEY_INVALID", "INVALID_ARGUMENT", 0},
    {"key_not_found_400.json", 400, GKM_ERRC_KEY_INVALID, 400, 1, -1, "", -1,
     "", "", "API_KEY_INVALID", "INVALID_ARGUMENT", 0},
    {"key_invalid_msg_only_400.json", 400, GKM_ERRC_KEY_INVALID, 400, 1, -1,
     "", -1, "", "", "", "INVALID_ARGUMENT", 0},
    {"array_wrapped_key_invalid_400.json", 400, GKM_ERRC_KEY_INVALID, 400, 1,
     -1, "", -1, "", "", "API_KEY_INVALID", "INVALID_ARGUMENT", 0},
    {"key_suspended_403.json", 403, GKM_ERRC_KEY_SUSPENDED, 403, 1, -1, "", -1,
     "", "123456789012", "CONSUMER_SUSPENDED", "PERMISSION_DENIED", 0},
    {"key_leaked_403.json", 403, GKM_ERRC_KEY_LEAKED, 403, 1, -1, "", -1, "",
     "", "", "PERMISSION_DENIED", 0},
    {"key_service_blocked_403.json", 403, GKM_ERRC_KEY_DENIED, 403, 1, -1, "",
     -1, "", "987654321098", "API_KEY_SERVICE_BLOCKED", "PERMISSION_DENIED",
     0},
    {"service_disabled_403.json", 403, GKM_ERRC_KEY_DENIED, 403, 1, -1, "", -1,
     "", "555000111222", "SERVICE_DISABLED", "PERMISSION_DENIED", 0},
    {"unregistered_403.json", 403, GKM_ERRC_KEY_DENIED, 403, 1, -1, "", -1, "",
     "", "", "PERMISSION_DENIED", 0},
    /* not the key's fault */
    {"file_permission_403.json", 403, GKM_ERRC_RESOURCE_DENIED, 403, 1, -1, "",
     -1, "", "", "", "PERMISSION_DENIED", 0},
    {"cache_permission_403.json", 403, GKM_ERRC_RESOURCE_DENIED, 403, 1, -1,
     "", -1, "", "", "", "PERMISSION_DENIED", 0},
    {"location_400.json", 400, GKM_ERRC_LOCATION, 400, 1, -1, "", -1, "", "",
     "", "FAILED_PRECONDITION", 0},
    {"model_not_found_404.json", 404, GKM_ERRC_CLIENT, 404, 1, -1, "", -1, "",
     "", "", "NOT_FOUND", 0},
    {"unknown_field_400.json", 400, GKM_ERRC_CLIENT, 400, 1, -1, "", -1, "",
     "", "", "INVALID_ARGUMENT", 0},
    {"array_wrapped_400.json", 400, GKM_ERRC_CLIENT, 400, 1, -1, "", -1, "",
     "", "", "INVALID_ARGUMENT", 0},
    {"internal_500.json", 500, GKM_ERRC_SERVER, 500, 1, -1, "", -1, "", "", "",
     "INTERNAL", 0},
    {"overloaded_503.json", 503, GKM_ERRC_SERVER, 503, 1, -1, "", -1, "", "",
     "", "UNAVAILABLE", 0},
    {"high_demand_503.json", 503, GKM_ERRC_SERVER, 503, 1, -1, "", -1, "", "",
     "", "UNAVAILABLE", 0},
    {"deadline_504.json", 504, GKM_ERRC_SERVER, 504, 1, -1, "", -1, "", "", "",
     "DEADLINE_EXCEEDED", 0},
    /* garbage: the status alone decides, never the key's fault */
    {"garbage_502.html", 502, GKM_ERRC_SERVER, 502, 0, -1, "", -1, "", "", "",
     "", 0},
    {"garbage_403.html", 403, GKM_ERRC_CLIENT, 403, 0, -1, "", -1, "", "", "",
     "", 0},
    {"empty.txt", 429, GKM_ERRC_RATE_UNKNOWN, 429, 0, -1, "", -1, "", "", "",
     "", 0},
    {"empty.txt", 503, GKM_ERRC_SERVER, 503, 0, -1, "", -1, "", "", "", "", 0},
    {"empty.txt", 400, GKM_ERRC_CLIENT, 400, 0, -1, "", -1, "", "", "", "", 0},
    {"truncated_key_invalid_400.json", 400, GKM_ERRC_CLIENT, 400, 0, -1, "",
     -1, "", "", "", "", 0},
    {"truncated_429.json", 429, GKM_ERRC_RATE_UNKNOWN, 429, 0, -1, "", -1, "",
     "", "", "", 0},
    /* errors inside a 200 stream */
    {"stream_error_503.json", 200, GKM_ERRC_SERVER, 503, 1, -1, "", -1, "", "",
     "", "UNAVAILABLE", 0},
    {"stream_error_429.json", 200, GKM_ERRC_RATE_UNKNOWN, 429, 1, -1, "", -1,
     "", "", "", RE, 0},
};

static void check(const struct expect *x, const struct gkm_err_info *e)
{
    if (e->cls != x->cls)
        fail_msg("%s: class %s, expected %s (%s)", x->file,
                 gkm_err_class_name(e->cls), gkm_err_class_name(x->cls),
                 e->summary);
    assert_int_equal(e->status, x->status);
    assert_int_equal(e->parsed, x->parsed);
    assert_int_equal(e->retry_ms, x->retry_ms);
    assert_string_equal(e->quota_id, x->quota_id);
    assert_int_equal(e->quota_value, x->quota_value);
    assert_string_equal(e->model, x->model);
    assert_string_equal(e->project, x->project);
    assert_string_equal(e->reason, x->reason);
    assert_string_equal(e->status_name, x->status_name);
    assert_int_equal(e->token_quota, x->token);
    assert_true(e->summary[0] != '\0');
    /* The summary never carries the message (it may quote the key). */
    assert_null(strstr(e->summary, "AIza"));
}

static void test_fixtures(void **state)
{
    (void)state;
    for (size_t i = 0; i < GKM_ARRAY_LEN(fixtures); i++) {
        struct gkm_err_info e;
        int r = classify_file(fixtures[i].file, fixtures[i].http, &e);
        assert_int_equal(r, fixtures[i].parsed);
        check(&fixtures[i], &e);
    }
}

/* The same fixtures through gkm_gerror_from_json (parsed by the caller). */
static void test_fixtures_from_json(void **state)
{
    (void)state;
    for (size_t i = 0; i < GKM_ARRAY_LEN(fixtures); i++) {
        struct gkm_err_info a, b;
        size_t len;
        char *data = load(fixtures[i].file, &len);
        json_t *j = json_loadb(data, len, 0, NULL);
        gkm_gerror_from_json(fixtures[i].http, j, &b);
        classify_file(fixtures[i].file, fixtures[i].http, &a);
        assert_memory_equal(&a, &b, sizeof(a));
        json_decref(j);
        free(data);
    }
}

static void test_summaries_and_messages(void **state)
{
    (void)state;
    struct gkm_err_info e;
    classify_file("quota_minute_429.json", 429, &e);
    assert_string_equal(e.summary,
                        "429 per-minute quota (" PERMIN ", limit 10), model "
                        "gemini-2.5-flash, retry in 43.1s");
    assert_string_equal(e.quota_metric, "generativelanguage.googleapis.com/"
                                        "generate_content_free_tier_requests");
    assert_int_equal(strlen(e.message), 300); /* cut to 300 bytes */
    assert_memory_equal(e.message, "You exceeded your current quota", 31);

    classify_file("quota_day_429.json", 429, &e);
    assert_string_equal(e.summary, "429 per-day quota (" PERDAY
                                   ", limit 250), model gemini-2.5-flash, "
                                   "retry in 12.4s");
    classify_file("quota_zero_429.json", 429, &e);
    assert_non_null(strstr(e.summary, "no quota for this model (limit 0)"));
    classify_file("key_suspended_403.json", 403, &e);
    assert_string_equal(e.summary, "403 API key suspended (CONSUMER_SUSPENDED)"
                                   ", project 123456789012");
    /* The message is kept verbatim (callers redact it). */
    assert_string_equal(e.message, "Permission denied: Consumer 'api_key:"
                                   "AIzaSyEXAMPLEEXAMPLEEXAMPLEEXAMPLE123' "
                                   "has been suspended.");
    classify_file("overloaded_503.json", 503, &e);
    assert_string_equal(e.summary, "503 server error (UNAVAILABLE)");
    assert_string_equal(e.message,
                        "The model is overloaded. Please try again later.");
    classify_str(0, NULL, &e);
    assert_string_equal(e.summary,
                        "no response: connection failed or timed out");
    classify_str(200, "{\"candidates\":[]}", &e);
    assert_string_equal(e.summary, "200 ok");
}

static void test_status_only(void **state)
{
    (void)state;
    static const struct {
        long status;
        enum gkm_err_class cls;
    } t[] = {
        {0, GKM_ERRC_SERVER},       {-1, GKM_ERRC_SERVER},
        {100, GKM_ERRC_CLIENT},     {200, GKM_ERRC_OK},
        {204, GKM_ERRC_OK},         {301, GKM_ERRC_CLIENT},
        {400, GKM_ERRC_CLIENT},     {401, GKM_ERRC_CLIENT},
        {403, GKM_ERRC_CLIENT},     {404, GKM_ERRC_CLIENT},
        {408, GKM_ERRC_SERVER},     {413, GKM_ERRC_CLIENT},
        {429, GKM_ERRC_RATE_UNKNOWN}, {499, GKM_ERRC_RATE_UNKNOWN},
        {500, GKM_ERRC_SERVER},     {501, GKM_ERRC_SERVER},
        {502, GKM_ERRC_SERVER},     {503, GKM_ERRC_SERVER},
        {504, GKM_ERRC_SERVER},     {599, GKM_ERRC_SERVER},
        {600, GKM_ERRC_SERVER},
    };
    for (size_t i = 0; i < GKM_ARRAY_LEN(t); i++) {
        struct gkm_err_info e;
        assert_int_equal(gkm_gerror_classify(t[i].status, NULL, 0, &e), 0);
        if (e.cls != t[i].cls)
            fail_msg("status %ld: %s", t[i].status, gkm_err_class_name(e.cls));
        assert_int_equal(e.status, t[i].status);
        assert_int_equal(e.retry_ms, -1);
        assert_int_equal(e.quota_value, -1);
        assert_string_equal(e.message, "");
        assert_int_equal(e.parsed, 0);
    }
    /* A body is ignored when no response arrived. */
    struct gkm_err_info e;
    classify_str(0, "{\"error\":{\"code\":400,\"message\":\"API key not valid\"}}",
                 &e);
    assert_int_equal(e.cls, GKM_ERRC_SERVER);
    assert_int_equal(e.parsed, 0);
}

static void test_stream_errors(void **state)
{
    (void)state;
    struct gkm_err_info e;
    /* A successful chunk is OK. */
    classify_str(200, "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":"
                      "\"hi\"}]},\"finishReason\":\"STOP\"}]}", &e);
    assert_int_equal(e.cls, GKM_ERRC_OK);
    assert_int_equal(e.parsed, 0);
    /* No code: the status name decides; neither: 500. */
    classify_str(200, "{\"error\":{\"message\":\"x\",\"status\":\"UNAVAILABLE\"}}",
                 &e);
    assert_int_equal(e.cls, GKM_ERRC_SERVER);
    assert_int_equal(e.status, 503);
    classify_str(200, "{\"error\":{\"message\":\"x\",\"status\":"
                      "\"RESOURCE_EXHAUSTED\"}}", &e);
    assert_int_equal(e.cls, GKM_ERRC_RATE_UNKNOWN);
    assert_int_equal(e.status, 429);
    classify_str(200, "{\"error\":{\"message\":\"something\"}}", &e);
    assert_int_equal(e.cls, GKM_ERRC_SERVER);
    assert_int_equal(e.status, 500);
    assert_string_equal(e.message, "something");
    /* A code given as a string. */
    classify_str(200, "{\"error\":{\"code\":\"500\",\"message\":\"m\"}}", &e);
    assert_int_equal(e.status, 500);
    /* An error object with a 2xx code is still an error. */
    classify_str(200, "{\"error\":{\"code\":200,\"message\":\"m\"}}", &e);
    assert_int_equal(e.cls, GKM_ERRC_SERVER);

    /* from_json: a parsed SSE event; NULL and non-error objects. */
    json_t *j = json_pack("{s:{s:i,s:s,s:s}}", "error", "code", 503, "message",
                          "This model is currently experiencing high demand.",
                          "status", "UNAVAILABLE");
    assert_int_equal(gkm_gerror_from_json(200, j, &e), 1);
    assert_int_equal(e.cls, GKM_ERRC_SERVER);
    assert_int_equal(e.status, 503);
    json_decref(j);
    assert_int_equal(gkm_gerror_from_json(200, NULL, &e), 0);
    assert_int_equal(e.cls, GKM_ERRC_OK);
    assert_int_equal(gkm_gerror_from_json(503, NULL, &e), 0);
    assert_int_equal(e.cls, GKM_ERRC_SERVER);
    j = json_pack("{s:i}", "usageMetadata", 3);
    assert_int_equal(gkm_gerror_from_json(200, j, &e), 0);
    assert_int_equal(e.cls, GKM_ERRC_OK);
    json_decref(j);
}

static void test_delay_parse(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t ms; /* -1: rejected */
    } t[] = {
        {"26s", 26000},        {"7.967587226s", 7968}, {"900ms", 900},
        {"0.5s", 500},         {"1.5m", 90000},        {"2h", 7200000},
        {"3", 3000},           {"0s", 0},              {".25s", 250},
        {" 4s", 4000},         {"1.0001ms", 2},        {"43.128734512s", 43129},
        {"1.5min", 90000},     {"", -1},               {"s", -1},
        {"-3s", -1},           {"3x", -1},             {"3 s", 3000},
        {"abc", -1},           {"31d", -1},            {"99999999999999s", -1},
        {"2592000s", 2592000000LL}, {"2592001s", -1},
    };
    for (size_t i = 0; i < GKM_ARRAY_LEN(t); i++) {
        int64_t ms = -7;
        int r = gkm_gerror_parse_delay(t[i].s, &ms);
        if (t[i].ms < 0) {
            if (r != -1)
                fail_msg("\"%s\" accepted as %lld", t[i].s, (long long)ms);
            assert_int_equal(ms, -7);
        } else {
            if (r != 0)
                fail_msg("\"%s\" rejected", t[i].s);
            assert_int_equal(ms, t[i].ms);
        }
    }
    int64_t ms;
    assert_int_equal(gkm_gerror_parse_delay(NULL, &ms), -1);
}

/* A 429 body with the given details array (JSON text) and message. */
static void classify_429(const char *details, const char *msg,
                         struct gkm_err_info *e)
{
    char *body = gkm_xasprintf("{\"error\":{\"code\":429,\"message\":\"%s\","
                               "\"status\":\"RESOURCE_EXHAUSTED\","
                               "\"details\":%s}}", msg, details);
    assert_int_equal(classify_str(429, body, e), 1);
    free(body);
}

#define RETRY(d) "{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\"," \
                 "\"retryDelay\":" d "}"
#define QF(id, v) "{\"@type\":\"type.googleapis.com/google.rpc.QuotaFailure\"," \
                  "\"violations\":[{\"quotaId\":\"" id "\",\"quotaValue\":" v "}]}"

static void test_retry_sources(void **state)
{
    (void)state;
    struct gkm_err_info e;
    /* RetryInfo alone: a short-term quota with a known delay. */
    classify_429("[" RETRY("\"5s\"") "]", "x", &e);
    assert_int_equal(e.cls, GKM_ERRC_QUOTA_MINUTE);
    assert_int_equal(e.retry_ms, 5000);
    /* The object form of a Duration. */
    classify_429("[" RETRY("{\"seconds\":3,\"nanos\":500000000}") "]", "x", &e);
    assert_int_equal(e.retry_ms, 3500);
    classify_429("[" RETRY("{\"seconds\":\"2\"}") "]", "x", &e);
    assert_int_equal(e.retry_ms, 2000);
    /* Message only, in ms. */
    classify_429("[]", "Slow down. Please retry in 900ms.", &e);
    assert_int_equal(e.cls, GKM_ERRC_QUOTA_MINUTE);
    assert_int_equal(e.retry_ms, 900);
    /* Unparseable RetryInfo falls back to the message. */
    classify_429("[" RETRY("\"soon\"") "]", "Please retry in 2.5s.", &e);
    assert_int_equal(e.retry_ms, 2500);
    /* The longer of the two wins, whichever it is. */
    classify_429("[" RETRY("\"9s\"") "]", "Please retry in 2.5s.", &e);
    assert_int_equal(e.retry_ms, 9000);
    /* No unit in the message: not a delay. */
    classify_429("[]", "Please retry in 5 minutes", &e);
    assert_int_equal(e.retry_ms, -1);
    assert_int_equal(e.cls, GKM_ERRC_RATE_UNKNOWN);
    /* Only the first RetryInfo counts. */
    classify_429("[" RETRY("\"4s\"") "," RETRY("\"40s\"") "]", "x", &e);
    assert_int_equal(e.retry_ms, 4000);
}

static void test_quota_rules(void **state)
{
    (void)state;
    struct gkm_err_info e;
    /* Per-day wins over per-minute and over RetryInfo, in any order. */
    classify_429("[" RETRY("\"20s\"") "," QF("X-PerMinute", "\"5\"") ","
                 QF("DailyRequestsPerProject", "\"50\"") "]", "x", &e);
    assert_int_equal(e.cls, GKM_ERRC_QUOTA_DAY);
    assert_string_equal(e.quota_id, "DailyRequestsPerProject");
    assert_int_equal(e.quota_value, 50);
    assert_int_equal(e.retry_ms, 20000);
    /* Zero wins over per-day; a numeric quotaValue works too. */
    classify_429("[" QF("GenerateRequestsPerDayPerProjectPerModel", "0") "]",
                 "x", &e);
    assert_int_equal(e.cls, GKM_ERRC_QUOTA_ZERO);
    assert_int_equal(e.quota_value, 0);
    /* "limit: 0" only as a whole number. */
    classify_429("[]", "limit: 0, model: gemini-2.5-pro", &e);
    assert_int_equal(e.cls, GKM_ERRC_QUOTA_ZERO);
    assert_string_equal(e.model, "gemini-2.5-pro");
    classify_429("[]", "limit: 10, limit: 0.5, limit: 05", &e);
    assert_int_equal(e.cls, GKM_ERRC_RATE_UNKNOWN);
    assert_int_equal(e.quota_value, 10); /* first limit in the message */
    /* A violation with an unknown period and no delay: unknown. */
    classify_429("[" QF("RequestsPerHour", "\"7\"") "]", "x", &e);
    assert_int_equal(e.cls, GKM_ERRC_RATE_UNKNOWN);
    assert_string_equal(e.quota_id, "RequestsPerHour");
    assert_int_equal(e.quota_value, 7);
    /* ... with a delay: cooled for it. */
    classify_429("[" QF("RequestsPerHour", "\"7\"") "," RETRY("\"60s\"") "]",
                 "x", &e);
    assert_int_equal(e.cls, GKM_ERRC_QUOTA_MINUTE);
    /* Older texts without ids. */
    classify_429("[]", "Quota exceeded for requests per day.", &e);
    assert_int_equal(e.cls, GKM_ERRC_QUOTA_DAY);
    classify_429("[]", "Too many requests per minute.", &e);
    assert_int_equal(e.cls, GKM_ERRC_QUOTA_MINUTE);
    assert_int_equal(e.retry_ms, -1);
    /* ErrorInfo quota metadata: per-day and zero. */
    classify_429("[{\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\","
                 "\"reason\":\"RATE_LIMIT_EXCEEDED\",\"metadata\":{"
                 "\"quota_limit\":\"GenerateContentRequestsPerDayPerProject\","
                 "\"quota_limit_value\":\"1500\"}}]", "x", &e);
    assert_int_equal(e.cls, GKM_ERRC_QUOTA_DAY);
    assert_int_equal(e.quota_value, 1500);
    classify_429("[{\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\","
                 "\"metadata\":{\"quota_limit\":\"PerMinuteThing\","
                 "\"quota_limit_value\":\"0\"}}]", "x", &e);
    assert_int_equal(e.cls, GKM_ERRC_QUOTA_ZERO);
    /* Legacy dailyLimitExceeded. */
    assert_int_equal(classify_str(429, "{\"error\":{\"code\":429,\"message\":"
                                  "\"Daily Limit Exceeded\",\"errors\":[{"
                                  "\"reason\":\"dailyLimitExceeded\"}]}}", &e),
                     1);
    assert_int_equal(e.cls, GKM_ERRC_QUOTA_DAY);
    /* 499 is treated like 429. */
    classify_str(499, "{\"error\":{\"code\":499,\"message\":\"The operation "
                      "was cancelled.\",\"status\":\"CANCELLED\"}}", &e);
    assert_int_equal(e.cls, GKM_ERRC_RATE_UNKNOWN);
    /* Detail types matched on suffix, not the full URL; junk ignored. */
    classify_429("[1, \"x\", {\"@type\":\"google.rpc.QuotaFailure\","
                 "\"violations\":[{\"quotaId\":\"AbcPerMinute\"}, 5]}, {}]",
                 "x", &e);
    assert_int_equal(e.cls, GKM_ERRC_QUOTA_MINUTE);
    assert_string_equal(e.quota_id, "AbcPerMinute");
    assert_int_equal(e.quota_value, -1);
}

static void test_detail_order(void **state)
{
    (void)state;
    static const char *const files[] = {
        "quota_minute_429.json", "quota_day_429.json",
        "quota_day_and_minute_429.json", "quota_zero_429.json",
        "key_suspended_403.json", "service_disabled_403.json",
    };
    static const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                    {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    for (size_t f = 0; f < GKM_ARRAY_LEN(files); f++) {
        struct gkm_err_info ref, e;
        size_t len;
        char *data = load(files[f], &len);
        json_t *j = json_loadb(data, len, 0, NULL);
        json_t *err = json_object_get(j, "error");
        json_t *d = json_object_get(err, "details");
        size_t n = json_array_size(d);
        assert_true(n >= 2 && n <= 3);
        long http = strstr(files[f], "403") ? 403 : 429;
        gkm_gerror_from_json(http, j, &ref);
        for (size_t p = 0; p < 6; p++) {
            json_t *nd = json_array();
            for (size_t k = 0; k < 3; k++)
                if ((size_t)perms[p][k] < n)
                    json_array_append(nd, json_array_get(d, perms[p][k]));
            json_t *copy = json_deep_copy(j);
            json_object_set_new(json_object_get(copy, "error"), "details", nd);
            char *text = json_dumps(copy, JSON_COMPACT);
            gkm_gerror_classify(http, text, strlen(text), &e);
            assert_memory_equal(&e, &ref, sizeof(e));
            free(text);
            json_decref(copy);
        }
        json_decref(j);
        free(data);
    }
}

static void test_key_rules(void **state)
{
    (void)state;
    struct gkm_err_info e;
    static const struct {
        long status;
        const char *body;
        enum gkm_err_class cls;
    } t[] = {
        {400, "{\"error\":{\"code\":400,\"message\":\"API key expired. Please "
              "renew the API key.\",\"status\":\"INVALID_ARGUMENT\"}}",
         GKM_ERRC_KEY_INVALID},
        {400, "{\"error\":{\"code\":400,\"message\":\"Bad\",\"errors\":[{"
              "\"reason\":\"keyInvalid\"}]}}", GKM_ERRC_KEY_INVALID},
        {401, "{\"error\":{\"code\":401,\"message\":\"x\",\"details\":[{"
              "\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\","
              "\"reason\":\"API_KEY_INVALID\"}]}}", GKM_ERRC_KEY_INVALID},
        {401, "{\"error\":{\"code\":401,\"message\":\"Request had invalid "
              "authentication credentials. Expected OAuth 2 access token\","
              "\"status\":\"UNAUTHENTICATED\"}}", GKM_ERRC_CLIENT},
        {403, "{\"error\":{\"code\":403,\"message\":\"nope\",\"details\":[{"
              "\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\","
              "\"reason\":\"API_KEY_IP_ADDRESS_BLOCKED\"}]}}",
         GKM_ERRC_KEY_DENIED},
        {403, "{\"error\":{\"code\":403,\"message\":\"The caller does not "
              "have permission\",\"status\":\"PERMISSION_DENIED\"}}",
         GKM_ERRC_KEY_DENIED},
        {403, "{\"error\":{\"code\":403,\"message\":\"You do not have "
              "permission to access tuned model tunedModels/abc\"}}",
         GKM_ERRC_RESOURCE_DENIED},
        /* A key reason wins over a resource-sounding message. */
        {403, "{\"error\":{\"code\":403,\"message\":\"files/abc blocked\","
              "\"details\":[{\"@type\":\"x/google.rpc.ErrorInfo\",\"reason\":"
              "\"CONSUMER_SUSPENDED\"}]}}", GKM_ERRC_KEY_SUSPENDED},
        {400, "{\"error\":{\"code\":400,\"message\":\"Gemini API free tier is "
              "not available in your country. Please enable billing on your "
              "project in Google AI Studio.\",\"status\":\"FAILED_PRECONDITION\""
              "}}", GKM_ERRC_LOCATION},
        /* {"error": "text"} */
        {403, "{\"error\":\"Your API key was reported as leaked.\"}",
         GKM_ERRC_KEY_LEAKED},
        /* Key texts mean nothing on 5xx. */
        {500, "{\"error\":{\"code\":500,\"message\":\"API key not valid\"}}",
         GKM_ERRC_SERVER},
        /* JSON that is not an error object: status alone. */
        {403, "{\"candidates\":[]}", GKM_ERRC_CLIENT},
        {403, "[1,2,3]", GKM_ERRC_CLIENT},
        {403, "\"just a string\"", GKM_ERRC_CLIENT},
    };
    for (size_t i = 0; i < GKM_ARRAY_LEN(t); i++) {
        classify_str(t[i].status, t[i].body, &e);
        if (e.cls != t[i].cls)
            fail_msg("case %zu: %s, expected %s", i, gkm_err_class_name(e.cls),
                     gkm_err_class_name(t[i].cls));
    }
    /* Project only from "projects/<n>". */
    classify_str(403, "{\"error\":{\"code\":403,\"message\":\"m\",\"details\":[{"
                      "\"@type\":\"t/google.rpc.ErrorInfo\",\"reason\":"
                      "\"SERVICE_DISABLED\",\"metadata\":{\"consumer\":"
                      "\"project_number:42\"}}]}}", &e);
    assert_string_equal(e.project, "");
    assert_string_equal(e.reason, "SERVICE_DISABLED");
}

static void test_truncation(void **state)
{
    (void)state;
    struct gkm_err_info e;
    char msg[420];
    /* 299 ASCII bytes then a 2-byte character: cut before it. */
    memset(msg, 'a', 299);
    memcpy(msg + 299, "\xc3\xa9 tail", 8);
    char *body = gkm_xasprintf("{\"error\":{\"code\":400,\"message\":\"%s\"}}",
                               msg);
    classify_str(400, body, &e);
    assert_int_equal(strlen(e.message), 299);
    free(body);
    /* 400 ASCII bytes: exactly 300 kept. */
    memset(msg, 'b', 400);
    msg[400] = '\0';
    body = gkm_xasprintf("{\"error\":{\"code\":400,\"message\":\"%s\"}}", msg);
    classify_str(400, body, &e);
    assert_int_equal(strlen(e.message), 300);
    free(body);
    /* Long ids and models are cut, never overflow. */
    char id[400];
    memset(id, 'Q', 399);
    id[399] = '\0';
    body = gkm_xasprintf("{\"error\":{\"code\":429,\"details\":[{\"@type\":"
                         "\"google.rpc.QuotaFailure\",\"violations\":[{"
                         "\"quotaId\":\"%sPerMinute\",\"quotaDimensions\":{"
                         "\"model\":\"%s\"}}]}]}}", id, id);
    classify_str(429, body, &e);
    assert_int_equal(e.cls, GKM_ERRC_QUOTA_MINUTE);
    assert_int_equal(strlen(e.quota_id), GKM_ERR_ID_MAX - 1);
    assert_int_equal(strlen(e.model), GKM_ERR_MODEL_MAX - 1);
    assert_true(strlen(e.summary) < GKM_ERR_SUMMARY_MAX);
    free(body);
}

static void test_huge_body(void **state)
{
    (void)state;
    struct gkm_err_info e;
    size_t len;
    char *data = load("quota_minute_429.json", &len);
    /* Padded with whitespace to exactly the cap: parsed. */
    char *big = gkm_xmalloc(GKM_GERROR_PARSE_MAX + 1);
    memset(big, ' ', GKM_GERROR_PARSE_MAX + 1);
    memcpy(big, data, len);
    assert_int_equal(gkm_gerror_classify(429, big, GKM_GERROR_PARSE_MAX, &e), 1);
    assert_int_equal(e.cls, GKM_ERRC_QUOTA_MINUTE);
    /* One byte over: not parsed, the status decides. */
    assert_int_equal(gkm_gerror_classify(429, big, GKM_GERROR_PARSE_MAX + 1, &e),
                     0);
    assert_int_equal(e.cls, GKM_ERRC_RATE_UNKNOWN);
    /* Deep nesting within the cap is rejected by the parser, not the stack. */
    memset(big, '[', GKM_GERROR_PARSE_MAX);
    assert_int_equal(gkm_gerror_classify(403, big, GKM_GERROR_PARSE_MAX, &e), 0);
    assert_int_equal(e.cls, GKM_ERRC_CLIENT);
    /* A huge message is cut to 300 bytes; the delay at its end still counts. */
    size_t off = 0;
    const char *head = "{\"error\":{\"code\":429,\"message\":\"";
    const char *tail = " Please retry in 3s.\"}}";
    memcpy(big, head, strlen(head));
    off = strlen(head);
    memset(big + off, 'z', 900000);
    off += 900000;
    memcpy(big + off, tail, strlen(tail));
    off += strlen(tail);
    assert_int_equal(gkm_gerror_classify(429, big, off, &e), 1);
    assert_int_equal(e.cls, GKM_ERRC_QUOTA_MINUTE);
    assert_int_equal(e.retry_ms, 3000);
    assert_int_equal(strlen(e.message), 300);
    free(big);
    free(data);
}

/* Every prefix of every fixture, and byte noise: never crashes, always a
 * complete, NUL-terminated result. */
static void test_prefixes_and_noise(void **state)
{
    (void)state;
    static const long statuses[] = {200, 400, 403, 429, 503};
    for (size_t i = 0; i < GKM_ARRAY_LEN(fixtures); i++) {
        size_t len;
        char *data = load(fixtures[i].file, &len);
        for (size_t n = 0; n <= len; n++) {
            struct gkm_err_info e;
            char *exact = gkm_xmalloc(n ? n : 1);
            memcpy(exact, data, n);
            gkm_gerror_classify(fixtures[i].http, exact, n, &e);
            assert_true(e.cls < GKM_ERRC_COUNT);
            assert_true(memchr(e.summary, '\0', sizeof(e.summary)) != NULL);
            /* A cut JSON body is never half-believed: unless only
             * trailing whitespace was cut, it is not parsed at all. */
            if (n < len && strspn(data + n, " \r\n\t") < len - n)
                assert_int_equal(e.parsed, 0);
            free(exact);
        }
        free(data);
    }
    uint32_t seed = 12345;
    for (int round = 0; round < 2000; round++) {
        char buf[256];
        size_t n = (size_t)(round % 256);
        for (size_t k = 0; k < n; k++) {
            seed = seed * 1103515245u + 12345u;
            buf[k] = "{}[]\":,0123456789aeError codemsg \\u"[(seed >> 16) % 36];
        }
        struct gkm_err_info e;
        gkm_gerror_classify(statuses[round % 5], buf, n, &e);
        assert_true(e.cls < GKM_ERRC_COUNT);
    }
}

static void test_class_names(void **state)
{
    (void)state;
    static const char *const names[] = {
        "ok", "quota_minute", "quota_day", "quota_zero", "rate_unknown",
        "key_invalid", "key_suspended", "key_leaked", "key_denied",
        "resource_denied", "location", "server", "client",
    };
    assert_int_equal(GKM_ARRAY_LEN(names), GKM_ERRC_COUNT);
    for (int i = 0; i < GKM_ERRC_COUNT; i++) {
        enum gkm_err_class c;
        assert_string_equal(gkm_err_class_name((enum gkm_err_class)i), names[i]);
        assert_int_equal(gkm_err_class_parse(names[i], &c), 0);
        assert_int_equal(c, i);
    }
    enum gkm_err_class c = GKM_ERRC_OK;
    assert_string_equal(gkm_err_class_name(GKM_ERRC_COUNT), "unknown");
    assert_string_equal(gkm_err_class_name((enum gkm_err_class)-1), "unknown");
    assert_int_equal(gkm_err_class_parse("QUOTA_DAY", &c), -1);
    assert_int_equal(gkm_err_class_parse(NULL, &c), -1);
    assert_int_equal(c, GKM_ERRC_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures),
        cmocka_unit_test(test_fixtures_from_json),
        cmocka_unit_test(test_summaries_and_messages),
        cmocka_unit_test(test_status_only),
        cmocka_unit_test(test_stream_errors),
        cmocka_unit_test(test_delay_parse),
        cmocka_unit_test(test_retry_sources),
        cmocka_unit_test(test_quota_rules),
        cmocka_unit_test(test_detail_order),
        cmocka_unit_test(test_key_rules),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_huge_body),
        cmocka_unit_test(test_prefixes_and_noise),
        cmocka_unit_test(test_class_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
