/* Fake Gemini upstream: Google error envelopes (gemini-wire.md §5) and the
 * table-driven request validation (Appendix A). */
#include "fake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SERVICE "generativelanguage.googleapis.com"
#define RATE_LIMITS_URL "https://ai.google.dev/gemini-api/docs/rate-limits"
#define QUOTA_PREAMBLE                                                         \
    "You exceeded your current quota, please check your plan and billing "     \
    "details. For more information on this error, head to: "                   \
    "https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your "      \
    "current usage, head to: https://ai.dev/rate-limit. "
#define REQ_METRIC SERVICE "/generate_content_free_tier_requests"
#define TOK_METRIC SERVICE "/generate_content_free_tier_input_token_count"

const struct vcheck_info VCHECKS[VC_COUNT] = {
    [VC_UNKNOWN_FIELDS] = {"unknown_fields", 1},
    [VC_ROLES] = {"roles", 1},
    [VC_ALTERNATION] = {"alternation", 1},
    [VC_FUNCTION_RESPONSES] = {"function_responses", 1},
    [VC_THOUGHT_SIGNATURES] = {"thought_signatures", 1},
    [VC_THINKING_CONFLICT] = {"thinking_conflict", 1},
    [VC_CACHED_CONTENT_CONFLICT] = {"cached_content_conflict", 1},
    [VC_EMPTY_OBJECT_PROPERTIES] = {"empty_object_properties", 0},
    [VC_FILE_OWNERSHIP] = {"file_ownership", 1},
};

/* ------------------------------------------------------------ envelopes */

const char *status_name(int code)
{
    switch (code) {
    case 400: return "INVALID_ARGUMENT";
    case 401: return "UNAUTHENTICATED";
    case 403: return "PERMISSION_DENIED";
    case 404: return "NOT_FOUND";
    case 409: return "ALREADY_EXISTS";
    case 412: return "FAILED_PRECONDITION";
    case 413: return "OUT_OF_RANGE";
    case 429: return "RESOURCE_EXHAUSTED";
    case 499: return "CANCELLED";
    case 500: return "INTERNAL";
    case 501: return "NOT_IMPLEMENTED";
    case 502: return "UNKNOWN";
    case 503: return "UNAVAILABLE";
    case 504: return "DEADLINE_EXCEEDED";
    default: return code >= 500 ? "INTERNAL" : "UNKNOWN";
    }
}

json_t *gerr_status(int code, const char *status, const char *message,
                    json_t *details)
{
    json_t *e = json_object();
    json_object_set_new(e, "code", json_integer(code));
    json_object_set_new(e, "message", json_string(message));
    json_object_set_new(e, "status", json_string(status));
    if (details)
        json_object_set_new(e, "details", details);
    return json_pack("{s:o}", "error", e);
}

json_t *gerr(int code, const char *message, json_t *details)
{
    return gerr_status(code, status_name(code), message, details);
}

static json_t *error_info(const char *reason, json_t *metadata)
{
    return json_pack("{s:s,s:s,s:s,s:o}", "@type",
                     "type.googleapis.com/google.rpc.ErrorInfo", "reason",
                     reason, "domain", "googleapis.com", "metadata",
                     metadata ? metadata : json_object());
}

static json_t *localized(const char *msg)
{
    return json_pack("{s:s,s:s,s:s}", "@type",
                     "type.googleapis.com/google.rpc.LocalizedMessage",
                     "locale", "en-US", "message", msg);
}

static json_t *help_links(void)
{
    return json_pack("{s:s,s:[{s:s,s:s}]}", "@type",
                     "type.googleapis.com/google.rpc.Help", "links",
                     "description", "Learn more about Gemini API quotas", "url",
                     RATE_LIMITS_URL);
}

static json_t *retry_info(const char *delay)
{
    return json_pack("{s:s,s:s}", "@type",
                     "type.googleapis.com/google.rpc.RetryInfo", "retryDelay",
                     delay);
}

static json_t *violation(const char *metric, const char *quota_id,
                         const char *model, long value)
{
    char v[32];
    snprintf(v, sizeof v, "%ld", value);
    return json_pack("{s:s,s:s,s:{s:s,s:s},s:s}", "quotaMetric", metric,
                     "quotaId", quota_id, "quotaDimensions", "location",
                     "global", "model", model, "quotaValue", v);
}

static json_t *quota_failure(json_t *violations)
{
    return json_pack("{s:s,s:o}", "@type",
                     "type.googleapis.com/google.rpc.QuotaFailure",
                     "violations", violations);
}

static json_t *bad_request_detail(const char *field, const char *desc)
{
    json_t *fv = json_object();
    if (field && *field)
        json_object_set_new(fv, "field", json_string(field));
    json_object_set_new(fv, "description", json_string(desc));
    return json_pack("{s:s,s:[o]}", "@type",
                     "type.googleapis.com/google.rpc.BadRequest",
                     "fieldViolations", fv);
}

static char *project_number(const char *project)
{
    return xasprintf("projects/%012llu",
                     (unsigned long long)(hash_str(project ? project : "") %
                                          1000000000000ULL));
}

json_t *err_invalid_key(void)
{
    const char *m = "API key not valid. Please pass a valid API key.";
    return gerr(400, m,
                json_pack("[o,o]",
                          error_info("API_KEY_INVALID",
                                     json_pack("{s:s}", "service", SERVICE)),
                          localized(m)));
}

json_t *err_suspended(const char *key, const char *project)
{
    char *m = xasprintf("Permission denied: Consumer 'api_key:%s' has been "
                        "suspended.",
                        key ? key : "");
    char *consumer = project_number(project);
    json_t *e =
        gerr(403, m,
             json_pack("[o,o]",
                       error_info("CONSUMER_SUSPENDED",
                                  json_pack("{s:s,s:s}", "consumer", consumer,
                                            "service", SERVICE)),
                       localized(m)));
    free(consumer);
    free(m);
    return e;
}

json_t *err_leaked(void)
{
    return gerr(403,
                "Your API key was reported as leaked. Please use another API "
                "key.",
                NULL);
}

static const char *service_of(const char *mname)
{
    if (!mname || !*mname)
        return "ModelService";
    if (!strcmp(mname, "listModels") || !strcmp(mname, "getModel"))
        return "ModelService";
    if (starts_with(mname, "file") || !strcmp(mname, "createFile"))
        return "FileService";
    if (strstr(mname, "CachedContent"))
        return "CacheService";
    return "GenerativeService";
}

json_t *err_blocked(const char *mname, const char *version)
{
    const char *mn = (mname && *mname) ? mname : "generateContent";
    char method[96];
    snprintf(method, sizeof method, "%s", mn);
    method[0] = (char)(method[0] >= 'a' && method[0] <= 'z' ? method[0] - 32
                                                            : method[0]);
    char *full = xasprintf("google.ai.generativelanguage.%s.%s.%s",
                           version && *version ? version : "v1beta",
                           service_of(mname), method);
    char *m = xasprintf("Requests to this API %s method %s are blocked.",
                        SERVICE, full);
    json_t *e = gerr(
        403, m,
        json_pack("[o,o]",
                  error_info("API_KEY_SERVICE_BLOCKED",
                             json_pack("{s:s,s:s,s:s}", "service", SERVICE,
                                       "apiName", SERVICE, "methodName", full)),
                  localized(m)));
    free(m);
    free(full);
    return e;
}

json_t *err_unauthenticated(void)
{
    return gerr(
        401,
        "Request had invalid authentication credentials. Expected OAuth 2 "
        "access token, login cookie or other valid authentication credential. "
        "See https://developers.google.com/identity/sign-in/web/"
        "devconsole-project.",
        json_pack("[o]", error_info("ACCESS_TOKEN_TYPE_UNSUPPORTED",
                                    json_pack("{s:s}", "service", SERVICE))));
}

json_t *err_multiple_credentials(void)
{
    return gerr(400,
                "Multiple authentication credentials received. Please pass "
                "only one.",
                NULL);
}

json_t *err_no_credentials(void)
{
    return gerr(
        403,
        "Method doesn't allow unregistered callers (callers without "
        "established identity). Please use API Key or other form of API "
        "consumer identity to call this API.",
        json_pack("[o]", error_info("CREDENTIALS_MISSING",
                                    json_pack("{s:s}", "service", SERVICE))));
}

json_t *err_quota_minute(const char *model, long limit, const char *delay,
                         const char *msg_delay)
{
    char *m = xasprintf(
        QUOTA_PREAMBLE "\n* Quota exceeded for metric: %s, limit: %ld, model: "
                       "%s\nPlease retry in %s.",
        REQ_METRIC, limit, model, msg_delay ? msg_delay : delay);
    json_t *e =
        gerr(429, m,
             json_pack("[o,o,o]", help_links(),
                       quota_failure(json_pack(
                           "[o]",
                           violation(REQ_METRIC,
                                     "GenerateRequestsPerMinutePerProjectPerMod"
                                     "el-FreeTier",
                                     model, limit))),
                       retry_info(delay)));
    free(m);
    return e;
}

json_t *err_quota_day(const char *model, long limit, const char *delay)
{
    char *m = xasprintf(
        QUOTA_PREAMBLE "\n* Quota exceeded for metric: %s, limit: %ld, model: "
                       "%s%s%s%s",
        REQ_METRIC, limit, model, delay ? "\nPlease retry in " : "",
        delay ? delay : "", delay ? "." : "");
    json_t *details = json_pack(
        "[o,o]",
        quota_failure(json_pack(
            "[o]",
            violation(REQ_METRIC,
                      "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                      model, limit))),
        help_links());
    if (delay)
        json_array_append_new(details, retry_info(delay));
    json_t *e = gerr(429, m, details);
    free(m);
    return e;
}

json_t *err_quota_zero(const char *model, const char *delay)
{
    char *m = xasprintf(
        QUOTA_PREAMBLE "\n* Quota exceeded for metric: %s, limit: 0, model: %s"
                       "\n* Quota exceeded for metric: %s, limit: 0, model: %s"
                       "\n* Quota exceeded for metric: %s, limit: 0, model: %s"
                       "\nPlease retry in %s.",
        TOK_METRIC, model, REQ_METRIC, model, REQ_METRIC, model, delay);
    json_t *viol = json_pack(
        "[o,o,o]",
        violation(TOK_METRIC,
                  "GenerateContentInputTokensPerModelPerMinute-FreeTier", model,
                  0),
        violation(REQ_METRIC,
                  "GenerateRequestsPerMinutePerProjectPerModel-FreeTier", model,
                  0),
        violation(REQ_METRIC,
                  "GenerateRequestsPerDayPerProjectPerModel-FreeTier", model,
                  0));
    json_t *e = gerr(429, m,
                     json_pack("[o,o,o]", help_links(), quota_failure(viol),
                               retry_info(delay)));
    free(m);
    return e;
}

json_t *err_quota_bare(void)
{
    return gerr(429, "Resource has been exhausted (e.g. check quota).", NULL);
}

json_t *err_internal(void)
{
    return gerr(500,
                "An internal error has occurred. Please retry or report in "
                "https://developers.generativeai.google/guide/troubleshooting",
                NULL);
}

json_t *err_overloaded(const char *message)
{
    return gerr(503,
                message ? message
                        : "The model is overloaded. Please try again later.",
                NULL);
}

json_t *err_deadline(void)
{
    return gerr(504, "Deadline expired before operation could complete.", NULL);
}

json_t *err_unknown_field(const char *field, const char *at)
{
    char *m;
    if (at && *at)
        m = xasprintf("Invalid JSON payload received. Unknown name \"%s\" at "
                      "'%s': Cannot find field.",
                      field, at);
    else
        m = xasprintf("Invalid JSON payload received. Unknown name \"%s\": "
                      "Cannot find field.",
                      field);
    json_t *e = gerr(400, m, json_pack("[o]", bad_request_detail(at, m)));
    free(m);
    return e;
}

json_t *err_model_not_found(const char *model, const char *version,
                            const char *mname)
{
    char *m = xasprintf("models/%s is not found for API version %s, or is not "
                        "supported for %s. Call ListModels to see the list of "
                        "available models and their supported methods.",
                        model, version && *version ? version : "v1beta",
                        mname && *mname ? mname : "generateContent");
    json_t *e = gerr(404, m, NULL);
    free(m);
    return e;
}

json_t *err_bad_json(const char *detail)
{
    char *m = xasprintf("Invalid JSON payload received. %s", detail);
    json_t *e = gerr(400, m, json_pack("[o]", bad_request_detail(NULL, m)));
    free(m);
    return e;
}

json_t *err_invalid_argument(const char *message)
{
    return gerr(400, message, NULL);
}

json_t *err_path_not_found(const char *path)
{
    char *m = xasprintf("Method not found: %s", path);
    json_t *e = gerr(404, m, NULL);
    free(m);
    return e;
}

json_t *err_file_permission(const char *id)
{
    char *m =
        xasprintf("You do not have permission to access the File %s or it "
                  "may not exist.",
                  id);
    json_t *e = gerr(403, m, NULL);
    free(m);
    return e;
}

json_t *err_cache_permission(const char *name)
{
    char *m =
        xasprintf("CachedContent not found (or permission denied): %s", name);
    json_t *e = gerr(403, m, NULL);
    free(m);
    return e;
}

/* ------------------------------------------------------------ thought
 * signatures */

#define SIG_PREFIX "fake-gemini-sig:"

char *make_thought_signature(const char *fname, uint64_t n)
{
    char *raw =
        xasprintf(SIG_PREFIX "%s:%016llx", fname, (unsigned long long)mix64(n));
    char *b = b64_encode((const unsigned char *)raw, strlen(raw), 0, 1);
    free(raw);
    return b;
}

int thought_signature_ok(const char *sig)
{
    if (!sig || !*sig)
        return 0;
    if (!strcmp(sig, "skip_thought_signature_validator"))
        return 1;
    size_t n;
    unsigned char *d = b64_decode(sig, &n);
    if (!d)
        return 0;
    int ok = n >= strlen(SIG_PREFIX) &&
             memcmp(d, SIG_PREFIX, strlen(SIG_PREFIX)) == 0;
    free(d);
    return ok;
}

/* ------------------------------------------------------------ schema
 * tables: each message type lists its fields by camelCase name; the
 * snake_case spelling is accepted too, and paths in error messages use the
 * snake_case (proto) names, as Google does. */

enum ft {
    FT_FREE,   /* any JSON, not inspected */
    FT_STRING, /* string (enums are strings; numbers tolerated for enums) */
    FT_ENUM,
    FT_NUMBER, /* number or numeric string */
    FT_INT,
    FT_BOOL,
    FT_MSG, /* message described by sub */
    FT_MAP  /* map<string, sub> */
};

struct vmsg;
struct vfield {
    const char *name;
    enum ft type;
    int repeated;
    const struct vmsg *sub;
};
struct vmsg {
    const char *type_name;
    const struct vfield *f;
    size_t n;
};

#define MSG(var, tname, ...)                                                   \
    static const struct vfield var##_fields[] = {__VA_ARGS__};                 \
    static const struct vmsg var = {                                           \
        tname, var##_fields, sizeof var##_fields / sizeof var##_fields[0]}

static const struct vmsg M_SCHEMA;
static const struct vfield M_SCHEMA_fields[] = {
    {"type", FT_ENUM, 0, NULL},
    {"format", FT_STRING, 0, NULL},
    {"title", FT_STRING, 0, NULL},
    {"description", FT_STRING, 0, NULL},
    {"nullable", FT_BOOL, 0, NULL},
    {"enum", FT_STRING, 1, NULL},
    {"properties", FT_MAP, 0, &M_SCHEMA},
    {"required", FT_STRING, 1, NULL},
    {"propertyOrdering", FT_STRING, 1, NULL},
    {"items", FT_MSG, 0, &M_SCHEMA},
    {"minItems", FT_INT, 0, NULL},
    {"maxItems", FT_INT, 0, NULL},
    {"minimum", FT_NUMBER, 0, NULL},
    {"maximum", FT_NUMBER, 0, NULL},
    {"minLength", FT_INT, 0, NULL},
    {"maxLength", FT_INT, 0, NULL},
    {"pattern", FT_STRING, 0, NULL},
    {"minProperties", FT_INT, 0, NULL},
    {"maxProperties", FT_INT, 0, NULL},
    {"example", FT_FREE, 0, NULL},
    {"default", FT_FREE, 0, NULL},
    {"anyOf", FT_MSG, 1, &M_SCHEMA},
    {"$ref", FT_STRING, 0, NULL},
    {"$defs", FT_MAP, 0, &M_SCHEMA},
};
static const struct vmsg M_SCHEMA = {"Schema", M_SCHEMA_fields,
                                     sizeof M_SCHEMA_fields /
                                         sizeof M_SCHEMA_fields[0]};

MSG(M_BLOB, "Blob", {"mimeType", FT_STRING, 0, NULL},
    {"data", FT_STRING, 0, NULL}, {"displayName", FT_STRING, 0, NULL});
MSG(M_FILEDATA, "FileData", {"mimeType", FT_STRING, 0, NULL},
    {"fileUri", FT_STRING, 0, NULL}, {"displayName", FT_STRING, 0, NULL});
MSG(M_FCALL, "FunctionCall", {"id", FT_STRING, 0, NULL},
    {"name", FT_STRING, 0, NULL}, {"args", FT_FREE, 0, NULL},
    {"partialArgs", FT_FREE, 1, NULL}, {"willContinue", FT_BOOL, 0, NULL});
MSG(M_FRESP, "FunctionResponse", {"id", FT_STRING, 0, NULL},
    {"name", FT_STRING, 0, NULL}, {"response", FT_FREE, 0, NULL},
    {"parts", FT_FREE, 1, NULL}, {"willContinue", FT_BOOL, 0, NULL},
    {"scheduling", FT_ENUM, 0, NULL});
MSG(M_EXECCODE, "ExecutableCode", {"language", FT_ENUM, 0, NULL},
    {"code", FT_STRING, 0, NULL});
MSG(M_CODERES, "CodeExecutionResult", {"outcome", FT_ENUM, 0, NULL},
    {"output", FT_STRING, 0, NULL});
MSG(M_VIDEOMETA, "VideoMetadata", {"startOffset", FT_STRING, 0, NULL},
    {"endOffset", FT_STRING, 0, NULL}, {"fps", FT_NUMBER, 0, NULL});
MSG(M_PART, "Part", {"text", FT_STRING, 0, NULL},
    {"inlineData", FT_MSG, 0, &M_BLOB}, {"fileData", FT_MSG, 0, &M_FILEDATA},
    {"functionCall", FT_MSG, 0, &M_FCALL},
    {"functionResponse", FT_MSG, 0, &M_FRESP},
    {"executableCode", FT_MSG, 0, &M_EXECCODE},
    {"codeExecutionResult", FT_MSG, 0, &M_CODERES},
    {"thought", FT_BOOL, 0, NULL}, {"thoughtSignature", FT_STRING, 0, NULL},
    {"videoMetadata", FT_MSG, 0, &M_VIDEOMETA},
    {"mediaResolution", FT_FREE, 0, NULL}, {"partMetadata", FT_FREE, 0, NULL});
MSG(M_CONTENT, "Content", {"role", FT_STRING, 0, NULL},
    {"parts", FT_MSG, 1, &M_PART});
MSG(M_FDECL, "FunctionDeclaration", {"name", FT_STRING, 0, NULL},
    {"description", FT_STRING, 0, NULL}, {"parameters", FT_MSG, 0, &M_SCHEMA},
    {"parametersJsonSchema", FT_FREE, 0, NULL},
    {"response", FT_MSG, 0, &M_SCHEMA},
    {"responseJsonSchema", FT_FREE, 0, NULL}, {"behavior", FT_ENUM, 0, NULL});
MSG(M_TOOL, "Tool", {"functionDeclarations", FT_MSG, 1, &M_FDECL},
    {"googleSearch", FT_FREE, 0, NULL}, {"codeExecution", FT_FREE, 0, NULL},
    {"urlContext", FT_FREE, 0, NULL},
    {"googleSearchRetrieval", FT_FREE, 0, NULL},
    {"googleMaps", FT_FREE, 0, NULL}, {"fileSearch", FT_FREE, 0, NULL},
    {"computerUse", FT_FREE, 0, NULL}, {"retrieval", FT_FREE, 0, NULL},
    {"mcpServers", FT_FREE, 1, NULL});
MSG(M_FCCONFIG, "FunctionCallingConfig", {"mode", FT_ENUM, 0, NULL},
    {"allowedFunctionNames", FT_STRING, 1, NULL},
    {"streamFunctionCallArguments", FT_BOOL, 0, NULL});
MSG(M_TOOLCONFIG, "ToolConfig",
    {"functionCallingConfig", FT_MSG, 0, &M_FCCONFIG},
    {"retrievalConfig", FT_FREE, 0, NULL});
MSG(M_SAFETY, "SafetySetting", {"category", FT_ENUM, 0, NULL},
    {"threshold", FT_ENUM, 0, NULL});
MSG(M_THINKING, "ThinkingConfig", {"includeThoughts", FT_BOOL, 0, NULL},
    {"thinkingBudget", FT_INT, 0, NULL}, {"thinkingLevel", FT_ENUM, 0, NULL});
MSG(M_GENCONFIG, "GenerationConfig", {"stopSequences", FT_STRING, 1, NULL},
    {"responseMimeType", FT_STRING, 0, NULL},
    {"responseSchema", FT_MSG, 0, &M_SCHEMA},
    {"responseJsonSchema", FT_FREE, 0, NULL},
    {"responseModalities", FT_ENUM, 1, NULL},
    {"candidateCount", FT_INT, 0, NULL}, {"maxOutputTokens", FT_INT, 0, NULL},
    {"temperature", FT_NUMBER, 0, NULL}, {"topP", FT_NUMBER, 0, NULL},
    {"topK", FT_NUMBER, 0, NULL}, {"seed", FT_INT, 0, NULL},
    {"presencePenalty", FT_NUMBER, 0, NULL},
    {"frequencyPenalty", FT_NUMBER, 0, NULL},
    {"responseLogprobs", FT_BOOL, 0, NULL}, {"logprobs", FT_INT, 0, NULL},
    {"enableEnhancedCivicAnswers", FT_BOOL, 0, NULL},
    {"speechConfig", FT_FREE, 0, NULL}, {"imageConfig", FT_FREE, 0, NULL},
    {"mediaResolution", FT_ENUM, 0, NULL},
    {"thinkingConfig", FT_MSG, 0, &M_THINKING});
MSG(M_GENERATE, "GenerateContentRequest", {"model", FT_STRING, 0, NULL},
    {"contents", FT_MSG, 1, &M_CONTENT},
    {"systemInstruction", FT_MSG, 0, &M_CONTENT}, {"tools", FT_MSG, 1, &M_TOOL},
    {"toolConfig", FT_MSG, 0, &M_TOOLCONFIG},
    {"safetySettings", FT_MSG, 1, &M_SAFETY},
    {"generationConfig", FT_MSG, 0, &M_GENCONFIG},
    {"cachedContent", FT_STRING, 0, NULL}, {"labels", FT_FREE, 0, NULL},
    {"serviceTier", FT_ENUM, 0, NULL});
MSG(M_COUNT, "CountTokensRequest", {"contents", FT_MSG, 1, &M_CONTENT},
    {"generateContentRequest", FT_MSG, 0, &M_GENERATE});
MSG(M_EMBED, "EmbedContentRequest", {"model", FT_STRING, 0, NULL},
    {"content", FT_MSG, 0, &M_CONTENT}, {"taskType", FT_ENUM, 0, NULL},
    {"title", FT_STRING, 0, NULL}, {"outputDimensionality", FT_INT, 0, NULL});
MSG(M_BATCH_EMBED, "BatchEmbedContentsRequest",
    {"requests", FT_MSG, 1, &M_EMBED});
MSG(M_CACHED, "CachedContent", {"model", FT_STRING, 0, NULL},
    {"contents", FT_MSG, 1, &M_CONTENT},
    {"systemInstruction", FT_MSG, 0, &M_CONTENT}, {"tools", FT_MSG, 1, &M_TOOL},
    {"toolConfig", FT_MSG, 0, &M_TOOLCONFIG}, {"ttl", FT_STRING, 0, NULL},
    {"expireTime", FT_STRING, 0, NULL}, {"displayName", FT_STRING, 0, NULL},
    {"name", FT_STRING, 0, NULL});

static const struct vmsg *const VT_ROOTS[] = {
    [VT_GENERATE] = &M_GENERATE,     [VT_COUNT_TOKENS] = &M_COUNT,
    [VT_EMBED] = &M_EMBED,           [VT_BATCH_EMBED] = &M_BATCH_EMBED,
    [VT_CACHED_CONTENT] = &M_CACHED,
};

static const struct vfield *find_field(const struct vmsg *m, const char *k)
{
    char buf[128];
    for (size_t i = 0; i < m->n; i++) {
        if (!strcmp(k, m->f[i].name))
            return &m->f[i];
        if (!strcmp(k, to_snake(m->f[i].name, buf, sizeof buf)))
            return &m->f[i];
    }
    return NULL;
}

struct path {
    char buf[1024];
    size_t len;
};

static size_t path_fix(struct path *p, size_t old, int n)
{
    if (n > 0)
        p->len += (size_t)n;
    if (p->len >= sizeof p->buf)
        p->len = sizeof p->buf - 1;
    return old;
}

static size_t path_push_name(struct path *p, const char *name)
{
    size_t old = p->len;
    int n = snprintf(p->buf + p->len, sizeof p->buf - p->len, "%s%s",
                     p->len ? "." : "", name);
    return path_fix(p, old, n);
}

static size_t path_push_index(struct path *p, size_t idx, const char *suffix)
{
    size_t old = p->len;
    int n = snprintf(p->buf + p->len, sizeof p->buf - p->len, "[%zu]%s", idx,
                     suffix);
    return path_fix(p, old, n);
}

static void path_pop(struct path *p, size_t old)
{
    p->len = old;
    p->buf[old] = '\0';
}

static json_t *type_error(const struct path *p, const char *tname,
                          const json_t *v)
{
    char *val = json_to_str(v, 0, NULL);
    if (strlen(val) > 200)
        val[200] = '\0';
    char *m = xasprintf("Invalid value at '%s' (%s), %s", p->buf, tname, val);
    json_t *e = gerr(400, m, json_pack("[o]", bad_request_detail(p->buf, m)));
    free(m);
    free(val);
    return e;
}

static json_t *not_repeating(const struct path *p, const char *field)
{
    char *m =
        xasprintf("Invalid JSON payload received. Unknown name \"%s\" at "
                  "'%s': Proto field is not repeating, cannot start list.",
                  field, p->buf);
    json_t *e = gerr(400, m, json_pack("[o]", bad_request_detail(p->buf, m)));
    free(m);
    return e;
}

static json_t *check_msg(const struct vmsg *m, const json_t *o, struct path *p);

static json_t *check_value(const struct vfield *f, const json_t *v,
                           struct path *p)
{
    switch (f->type) {
    case FT_FREE: return NULL;
    case FT_STRING:
        return json_is_string(v) ? NULL : type_error(p, "TYPE_STRING", v);
    case FT_ENUM:
        return (json_is_string(v) || json_is_integer(v))
                   ? NULL
                   : type_error(p, "TYPE_ENUM", v);
    case FT_NUMBER:
        return (json_is_number(v) || json_is_string(v))
                   ? NULL
                   : type_error(p, "TYPE_DOUBLE", v);
    case FT_INT:
        return (json_is_integer(v) || json_is_string(v) ||
                (json_is_real(v) &&
                 json_real_value(v) == (double)(long long)json_real_value(v)))
                   ? NULL
                   : type_error(p, "TYPE_INT32", v);
    case FT_BOOL:
        return json_is_boolean(v) ? NULL : type_error(p, "TYPE_BOOL", v);
    case FT_MSG:
        if (!json_is_object(v)) {
            char tn[160];
            snprintf(
                tn, sizeof tn,
                "type.googleapis.com/google.ai.generativelanguage.v1beta.%s",
                f->sub->type_name);
            return type_error(p, tn, v);
        }
        return check_msg(f->sub, v, p);
    case FT_MAP: {
        if (!json_is_object(v))
            return type_error(p, "TYPE_MESSAGE", v);
        const char *k;
        json_t *mv;
        size_t i = 0;
        json_object_foreach((json_t *)v, k, mv)
        {
            size_t old = path_push_index(p, i, ".value");
            (void)k;
            json_t *e;
            if (!json_is_object(mv)) {
                e = type_error(
                    p,
                    "type.googleapis.com/google.ai.generativelanguage."
                    "v1beta.Schema",
                    mv);
            } else {
                e = check_msg(f->sub, mv, p);
            }
            path_pop(p, old);
            if (e)
                return e;
            i++;
        }
        return NULL;
    }
    }
    return NULL;
}

static json_t *check_msg(const struct vmsg *m, const json_t *o, struct path *p)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        const struct vfield *f = find_field(m, k);
        if (!f)
            return err_unknown_field(k, p->buf);
        char snake[128];
        to_snake(f->name, snake, sizeof snake);
        if (json_is_null(v))
            continue;
        size_t old = path_push_name(p, snake);
        json_t *e = NULL;
        if (f->repeated) {
            if (!json_is_array(v)) {
                e = type_error(p, "TYPE_LIST", v);
            } else {
                size_t i;
                json_t *el;
                json_array_foreach(v, i, el)
                {
                    size_t o2 = path_push_index(p, i, "");
                    e = check_value(f, el, p);
                    path_pop(p, o2);
                    if (e)
                        break;
                }
            }
        } else if (json_is_array(v) && f->type != FT_FREE) {
            path_pop(p, old);
            e = not_repeating(p, k);
            return e;
        } else {
            e = check_value(f, v, p);
        }
        path_pop(p, old);
        if (e)
            return e;
    }
    return NULL;
}

/* ------------------------------------------------------------ semantic
 * checks (GenerateContentRequest) */

static const json_t *contents_of(const json_t *body)
{
    const json_t *c = jget(body, "contents");
    return json_is_array(c) ? c : NULL;
}

static const char *role_of(const json_t *content)
{
    const char *r = jstr(content, "role");
    return r ? r : "user";
}

static size_t count_parts_with(const json_t *content, const char *camel)
{
    json_t *parts = jget(content, "parts");
    size_t n = 0, i;
    json_t *p;
    if (!json_is_array(parts))
        return 0;
    json_array_foreach(parts, i, p)
    {
        if (jget(p, camel))
            n++;
    }
    return n;
}

static json_t *vc_roles(const json_t *body, const char *model)
{
    (void)model;
    const json_t *c = contents_of(body);
    size_t i;
    json_t *ct;
    if (!c)
        return NULL;
    json_array_foreach(c, i, ct)
    {
        const char *r = jstr(ct, "role");
        if (r && *r && strcmp(r, "user") != 0 && strcmp(r, "model") != 0)
            return err_invalid_argument(
                "Please use a valid role: user, model.");
    }
    return NULL;
}

static json_t *vc_alternation(const json_t *body, const char *model)
{
    (void)model;
    const json_t *c = contents_of(body);
    const char *prev = NULL;
    size_t i;
    json_t *ct;
    if (!c)
        return NULL;
    json_array_foreach(c, i, ct)
    {
        const char *r = role_of(ct);
        if (prev && !strcmp(prev, r))
            return err_invalid_argument("Please ensure that multiturn requests "
                                        "alternate between user and model.");
        prev = r;
    }
    return NULL;
}

static json_t *vc_function_responses(const json_t *body, const char *model)
{
    (void)model;
    const json_t *c = contents_of(body);
    size_t n, i;
    if (!c)
        return NULL;
    n = json_array_size(c);
    for (i = 0; i + 1 < n; i++) {
        json_t *cur = json_array_get(c, i), *nx = json_array_get(c, i + 1);
        if (strcmp(role_of(cur), "model") != 0)
            continue;
        size_t calls = count_parts_with(cur, "functionCall");
        if (calls == 0 || strcmp(role_of(nx), "user") != 0)
            continue;
        if (count_parts_with(nx, "functionResponse") != calls)
            return err_invalid_argument(
                "Please ensure that the number of function response parts is "
                "equal to the number of function call parts of the function "
                "call "
                "turn.");
    }
    return NULL;
}

static json_t *vc_thought_signatures(const json_t *body, const char *model)
{
    const json_t *c = contents_of(body);
    if (!c || !model || !starts_with(model, "gemini-3"))
        return NULL;
    /* The current turn starts after the last user content that carries
     * anything other than function responses. */
    size_t n = json_array_size(c), start = 0, i;
    for (i = 0; i < n; i++) {
        json_t *ct = json_array_get(c, i);
        if (strcmp(role_of(ct), "user") != 0)
            continue;
        json_t *parts = jget(ct, "parts");
        size_t j;
        json_t *p;
        int plain = 0;
        json_array_foreach(parts, j, p)
        {
            if (!jget(p, "functionResponse"))
                plain = 1;
        }
        if (plain)
            start = i + 1;
    }
    for (i = start; i < n; i++) {
        json_t *ct = json_array_get(c, i);
        if (strcmp(role_of(ct), "model") != 0)
            continue;
        json_t *parts = jget(ct, "parts");
        size_t j;
        json_t *p;
        json_array_foreach(parts, j, p)
        {
            json_t *fc = jget(p, "functionCall");
            if (!fc)
                continue;
            const char *sig = jstr(p, "thoughtSignature");
            const char *name = jstr(fc, "name");
            if (!sig || !*sig) {
                char *m = xasprintf(
                    "Function call is missing a thought_signature in "
                    "functionCall "
                    "parts. This is required for tools to work correctly, and "
                    "missing thought_signature may lead to degraded model "
                    "performance. Additional data, function call "
                    "`default_api:%s` "
                    ", position %zu. Please refer to "
                    "https://ai.google.dev/gemini-api/docs/thought-signatures "
                    "for "
                    "more details.",
                    name ? name : "", i + 1);
                json_t *e = err_invalid_argument(m);
                free(m);
                return e;
            }
            if (!thought_signature_ok(sig))
                return err_invalid_argument("Corrupted thought signature.");
            break; /* only the first functionCall part of a step needs it */
        }
    }
    return NULL;
}

static json_t *vc_thinking_conflict(const json_t *body, const char *model)
{
    (void)model;
    json_t *tc = jget(jget(body, "generationConfig"), "thinkingConfig");
    if (jget(tc, "thinkingBudget") && jget(tc, "thinkingLevel"))
        return err_invalid_argument(
            "Unable to submit request because thinking_budget and "
            "thinking_level are mutually exclusive. Please set only one of "
            "them.");
    return NULL;
}

static json_t *vc_cached_conflict(const json_t *body, const char *model)
{
    (void)model;
    if (!jget(body, "cachedContent"))
        return NULL;
    if (jget(body, "systemInstruction") || jget(body, "tools") ||
        jget(body, "toolConfig"))
        return err_invalid_argument(
            "CachedContent can not be used with GenerateContent request "
            "setting "
            "system_instruction, tools or tool_config.\n\nProposed fix: move "
            "those values to CachedContent from GenerateContent request.");
    return NULL;
}

static json_t *vc_empty_props(const json_t *body, const char *model)
{
    (void)model;
    json_t *tools = jget(body, "tools"), *t;
    size_t i;
    json_array_foreach(tools, i, t)
    {
        json_t *decls = jget(t, "functionDeclarations"), *d;
        size_t j;
        json_array_foreach(decls, j, d)
        {
            json_t *params = jget(d, "parameters");
            const char *ty = jstr(params, "type");
            json_t *props = jget(params, "properties");
            if (ty && !strcasecmp(ty, "object") && json_is_object(props) &&
                json_object_size(props) == 0) {
                char *m = xasprintf(
                    "* GenerateContentRequest.tools[%zu]."
                    "function_declarations[%zu].parameters."
                    "properties: should be non-empty for OBJECT type\n",
                    i, j);
                json_t *e = err_invalid_argument(m);
                free(m);
                return e;
            }
        }
    }
    return NULL;
}

typedef json_t *(*vc_fn)(const json_t *body, const char *model);
static const vc_fn VC_FNS[VC_COUNT] = {
    [VC_UNKNOWN_FIELDS] = NULL, /* done by the schema walk */
    [VC_ROLES] = vc_roles,
    [VC_ALTERNATION] = vc_alternation,
    [VC_FUNCTION_RESPONSES] = vc_function_responses,
    [VC_THOUGHT_SIGNATURES] = vc_thought_signatures,
    [VC_THINKING_CONFLICT] = vc_thinking_conflict,
    [VC_CACHED_CONTENT_CONFLICT] = vc_cached_conflict,
    [VC_EMPTY_OBJECT_PROPERTIES] = vc_empty_props,
    [VC_FILE_OWNERSHIP] = NULL, /* needs server state: fake_api.c */
};

json_t *validate_request(const struct fake *F, int vtype, const json_t *body,
                         const char *model)
{
    if (!json_is_object(body))
        return err_bad_json("Root element must be a message.");
    if (F->vflags[VC_UNKNOWN_FIELDS]) {
        struct path p = {{0}, 0};
        json_t *e = check_msg(VT_ROOTS[vtype], body, &p);
        if (e)
            return e;
    }
    const json_t *gen = NULL;
    if (vtype == VT_GENERATE)
        gen = body;
    else if (vtype == VT_COUNT_TOKENS)
        gen = jget(body, "generateContentRequest")
                  ? jget(body, "generateContentRequest")
                  : body;
    else if (vtype == VT_CACHED_CONTENT)
        gen = body;
    if (!gen)
        return NULL;
    for (int i = 0; i < VC_COUNT; i++) {
        if (!F->vflags[i] || !VC_FNS[i])
            continue;
        if (vtype == VT_CACHED_CONTENT && i == VC_CACHED_CONTENT_CONFLICT)
            continue;
        json_t *e = VC_FNS[i](gen, model);
        if (e)
            return e;
    }
    return NULL;
}
