/*
 * oai_req.c - OpenAI chat request -> Gemini request: model, sampling and
 * output options, response_format, reasoning_effort, tools, tool_choice,
 * Gemini extras (see oai_req.h; messages are in oai_msgs.c).
 *
 * Every field is type-checked; a bad value fails the whole translation with
 * a 400 naming the field, so nothing malformed is ever sent upstream.
 */
#include "oai_req.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oai_err.h"
#include "oai_schema.h"
#include "util.h"

#define MODEL_NAME_MAX 128
#define STOP_MAX 5
#define CANDIDATES_MAX 8

void gkm_oai_chat_clear(struct gkm_oai_chat *out)
{
    json_decref(out->body);
    free(out->model);
    memset(out, 0, sizeof(*out));
}

/* Major version of a "gemini-<major>[.<minor>]..." id, or -1. */
static int gemini_major(const char *model, int *minor)
{
    int major = 0, digits = 0;
    *minor = 0;
    if (strncmp(model, "gemini-", 7) != 0)
        return -1;
    const char *p = model + 7;
    while (*p >= '0' && *p <= '9' && digits < 4) {
        major = major * 10 + (*p++ - '0');
        digits++;
    }
    if (digits == 0)
        return -1;
    if (*p == '.' && p[1] >= '0' && p[1] <= '9')
        *minor = p[1] - '0';
    return major;
}

int gkm_oai_model_is_gemini3(const char *model)
{
    int minor;
    return gemini_major(model, &minor) >= 3;
}

char *gkm_oai_model_resolve(const char *name, const json_t *aliases,
                            const char **why)
{
    const char *stripped = name;
    if (strncmp(name, "models/", 7) == 0)
        stripped = name + 7;
    const char *target = json_string_value(json_object_get(aliases, name));
    if (target == NULL)
        target = json_string_value(json_object_get(aliases, stripped));
    if (target == NULL)
        target = stripped;
    else if (strncmp(target, "models/", 7) == 0)
        target += 7;
    size_t len = strlen(target);
    if (len == 0 || len > MODEL_NAME_MAX) {
        *why = "model name is empty or too long";
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        char c = target[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) {
            *why = "model name may only contain letters, digits, '.', '_' "
                   "and '-'";
            return NULL;
        }
    }
    return gkm_xstrdup(target);
}

/* ---- typed field access ------------------------------------------- */

/* Number field in [lo, hi]: returns 1 and *v when present, 0 when absent or
 * null, -1 with err on a bad type or range. */
static int get_num(const json_t *req, const char *key, double lo, double hi,
                   double *v, struct gkm_oai_err *err)
{
    const json_t *j = json_object_get(req, key);
    if (j == NULL || json_is_null(j))
        return 0;
    if (!json_is_number(j)) {
        gkm_oai_err_invalid(err, key,
                            "Invalid type for '%s': expected a number.", key);
        return -1;
    }
    *v = json_number_value(j);
    if (!(*v >= lo && *v <= hi)) {
        gkm_oai_err_invalid(err, key,
                            "Invalid value for '%s': must be between %g and "
                            "%g.", key, lo, hi);
        return -1;
    }
    return 1;
}

/* Integer field (integral reals accepted) in [lo, hi]; as get_num. */
static int get_int(const json_t *req, const char *key, long long lo,
                   long long hi, long long *v, struct gkm_oai_err *err)
{
    const json_t *j = json_object_get(req, key);
    double d = json_real_value(j); /* 0 unless j is a real */
    if (j == NULL || json_is_null(j))
        return 0;
    if (json_is_integer(j)) {
        *v = json_integer_value(j);
    } else if (json_is_real(j) && d >= -9e15 && d <= 9e15 &&
               (double)(long long)d == d) {
        *v = (long long)d;
    } else {
        gkm_oai_err_invalid(err, key,
                            "Invalid type for '%s': expected an integer.", key);
        return -1;
    }
    if (*v < lo || *v > hi) {
        gkm_oai_err_invalid(err, key,
                            "Invalid value for '%s': must be between %lld and "
                            "%lld.", key, lo, hi);
        return -1;
    }
    return 1;
}

/* Copy a number to generationConfig, keeping the client's JSON form. */
static void set_num(json_t *gen, const char *gkey, const json_t *req,
                    const char *key)
{
    json_object_set(gen, gkey, json_object_get(req, key));
}

/* ---- reasoning_effort -> thinkingConfig (wire spec 8.6) ------------ */

static int thinking_capable(const char *model)
{
    int minor, major = gemini_major(model, &minor);
    if (strncmp(model, "gemma-", 6) == 0 || strncmp(model, "learnlm-", 8) == 0)
        return 0;
    if (major >= 0 && (major < 2 || (major == 2 && minor < 5)))
        return 0;
    return 1;
}

static const char *const efforts[] = {"none", "minimal", "low", "medium",
                                      "high", "xhigh", "max", NULL};

static json_t *thinking_config(const char *model, const char *effort,
                               int include, long long *budget_out)
{
    int minor, major = gemini_major(model, &minor);
    int pro = strstr(model, "-pro") != NULL;
    int lite = strstr(model, "flash-lite") != NULL;
    json_t *tc = json_object();
    *budget_out = 0;
    if (effort != NULL && major >= 3) {
        const char *lvl;
        if (!strcmp(effort, "none") || !strcmp(effort, "minimal"))
            lvl = pro ? "LOW" : "MINIMAL";
        else if (!strcmp(effort, "low"))
            lvl = "LOW";
        else if (!strcmp(effort, "medium"))
            /* Gemini 3.0 Pro only has LOW and HIGH. */
            lvl = (pro && major == 3 && minor == 0) ? "HIGH" : "MEDIUM";
        else
            lvl = "HIGH";
        json_object_set_new(tc, "thinkingLevel", json_string(lvl));
    } else if (effort != NULL) {
        long long b, lo = lite ? 512 : pro ? 128 : 0;
        long long hi = pro ? 32768 : 24576;
        if (!strcmp(effort, "none"))
            b = 0;
        else if (!strcmp(effort, "minimal"))
            b = 128;
        else if (!strcmp(effort, "low"))
            b = 1024;
        else if (!strcmp(effort, "medium"))
            b = 8192;
        else if (!strcmp(effort, "high"))
            b = 24576;
        else
            b = 32768;
        if (b > hi)
            b = hi;
        if (b < lo && !(b == 0 && lite)) /* Flash-Lite may turn it off */
            b = lo;
        json_object_set_new(tc, "thinkingBudget", json_integer(b));
        *budget_out = b;
    }
    if (include && !(effort && strcmp(effort, "none") == 0))
        json_object_set_new(tc, "includeThoughts", json_true());
    if (json_object_size(tc) == 0) {
        json_decref(tc);
        return NULL;
    }
    return tc;
}

/* snake_case -> camelCase copy of an object's keys (one level deep for
 * the thinking config, whose values are scalars). */
static json_t *camel_keys(const json_t *o)
{
    json_t *out = json_object();
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        char buf[64];
        size_t n = 0;
        for (const char *p = k; *p && n + 1 < sizeof(buf); p++) {
            if (*p == '_' && p[1] >= 'a' && p[1] <= 'z') {
                buf[n++] = (char)(p[1] - 'a' + 'A');
                p++;
            } else {
                buf[n++] = *p;
            }
        }
        buf[n] = '\0';
        json_object_set(out, buf, (json_t *)v);
    }
    return out;
}

/* ---- response_format ------------------------------------------------ */

static int response_format(const json_t *req, const struct gkm_oai_opts *o,
                           json_t *gen, struct gkm_oai_err *err)
{
    const json_t *rf = json_object_get(req, "response_format");
    if (rf == NULL || json_is_null(rf))
        return 0;
    const char *type = json_string_value(json_object_get(rf, "type"));
    if (type == NULL) {
        gkm_oai_err_invalid(err, "response_format.type",
                            "'response_format' must be an object with a "
                            "'type'.");
        return -1;
    }
    if (strcmp(type, "text") == 0) {
        json_object_set_new(gen, "responseMimeType", json_string("text/plain"));
        return 0;
    }
    if (strcmp(type, "json_object") == 0) {
        json_object_set_new(gen, "responseMimeType",
                            json_string("application/json"));
        return 0;
    }
    if (strcmp(type, "json_schema") != 0) {
        gkm_oai_err_invalid(err, "response_format.type",
                            "Invalid value for 'response_format.type': '%s' "
                            "(expected text, json_object or json_schema).",
                            type);
        return -1;
    }
    json_object_set_new(gen, "responseMimeType",
                        json_string("application/json"));
    const json_t *schema =
        json_object_get(json_object_get(rf, "json_schema"), "schema");
    if (schema == NULL || json_is_null(schema))
        return 0;
    if (!json_is_object(schema)) {
        gkm_oai_err_invalid(err, "response_format.json_schema.schema",
                            "'response_format.json_schema.schema' must be "
                            "an object.");
        return -1;
    }
    if (!o->openapi_schema) {
        json_object_set_new(gen, "responseJsonSchema",
                            gkm_schema_clean(schema));
        return 0;
    }
    const char *why = NULL;
    json_t *s = gkm_schema_to_openapi(schema, &why);
    if (s == NULL) {
        gkm_oai_err_invalid(err, "response_format.json_schema.schema",
                            "Unsupported schema in "
                            "'response_format.json_schema.schema': %s.", why);
        return -1;
    }
    json_object_set_new(gen, "responseSchema", s);
    return 0;
}

/* ---- tools ----------------------------------------------------------- */

static json_t *declaration(const json_t *fn, const char *param,
                           const struct gkm_oai_opts *o,
                           struct gkm_oai_err *err)
{
    const json_t *name = json_object_get(fn, "name");
    const json_t *desc = json_object_get(fn, "description");
    const json_t *params = json_object_get(fn, "parameters");
    if (!json_is_string(name) || json_string_length(name) == 0) {
        gkm_oai_err_invalid(err, param, "'%s.name' must be a non-empty string.",
                            param);
        return NULL;
    }
    json_t *d = json_pack("{sO}", "name", name);
    if (json_is_string(desc) && json_string_length(desc) > 0)
        json_object_set(d, "description", (json_t *)desc);
    if (params == NULL || json_is_null(params) ||
        gkm_schema_is_empty_object(params))
        return d; /* parameterless: Gemini rejects an empty OBJECT */
    if (!json_is_object(params)) {
        json_decref(d);
        gkm_oai_err_invalid(err, param, "'%s.parameters' must be an object.",
                            param);
        return NULL;
    }
    if (!o->openapi_schema) {
        json_object_set_new(d, "parametersJsonSchema",
                            gkm_schema_clean(params));
        return d;
    }
    const char *why = NULL;
    json_t *s = gkm_schema_to_openapi(params, &why);
    if (s == NULL) {
        json_decref(d);
        gkm_oai_err_invalid(err, param, "Unsupported schema in "
                            "'%s.parameters': %s.", param, why);
        return NULL;
    }
    if (json_object_get(s, "properties") != NULL) {
        json_object_set_new(s, "type", json_string("OBJECT"));
        json_object_set_new(d, "parameters", s);
    } else {
        json_decref(s);
    }
    return d;
}

static int has_decl(const json_t *decls, const char *name)
{
    size_t i;
    const json_t *d;
    json_array_foreach(decls, i, d) {
        const char *n = json_string_value(json_object_get(d, "name"));
        if (n && strcmp(n, name) == 0)
            return 1;
    }
    return 0;
}

/* Names listed in allowed_tools.tools (either tool shape). */
static json_t *allowed_names(const json_t *tools, const json_t *decls,
                             struct gkm_oai_err *err)
{
    json_t *names = json_array();
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t) {
        const json_t *n = json_object_get(json_object_get(t, "function"),
                                          "name");
        if (!json_is_string(n))
            n = json_object_get(t, "name");
        if (!json_is_string(n) || !has_decl(decls, json_string_value(n))) {
            json_decref(names);
            gkm_oai_err_invalid(err, "tool_choice",
                                "'tool_choice.allowed_tools.tools[%zu]' names "
                                "no declared function.", i);
            return NULL;
        }
        json_array_append(names, (json_t *)n);
    }
    return names;
}

/* tool_choice (or legacy function_call) -> functionCallingConfig. */
static int tool_choice(const json_t *req, const json_t *decls, json_t *body,
                       struct gkm_oai_err *err)
{
    const char *key = "tool_choice";
    const json_t *tc = json_object_get(req, key);
    if (tc == NULL || json_is_null(tc)) {
        key = "function_call";
        tc = json_object_get(req, key);
    }
    if (tc == NULL || json_is_null(tc))
        return 0;
    json_t *fcc = json_object();
    const char *s = json_string_value(tc);
    const char *mode = NULL;
    if (s != NULL) {
        if (strcmp(s, "auto") == 0)
            mode = "AUTO";
        else if (strcmp(s, "none") == 0)
            mode = "NONE";
        else if (strcmp(s, "required") == 0 || strcmp(s, "any") == 0)
            mode = "ANY";
    } else if (json_is_object(tc)) {
        const char *type = json_string_value(json_object_get(tc, "type"));
        const json_t *at = json_object_get(tc, "allowed_tools");
        const json_t *name = json_object_get(json_object_get(tc, "function"),
                                             "name");
        if (!json_is_string(name))
            name = json_object_get(tc, "name"); /* legacy {"name": "f"} */
        if (type && strcmp(type, "allowed_tools") == 0 && json_is_object(at)) {
            const char *am = json_string_value(json_object_get(at, "mode"));
            json_t *names = allowed_names(json_object_get(at, "tools"), decls,
                                          err);
            if (names == NULL)
                goto fail;
            mode = am && strcmp(am, "required") == 0 ? "ANY" : "VALIDATED";
            json_object_set_new(fcc, "allowedFunctionNames", names);
        } else if (json_is_string(name)) {
            if (!has_decl(decls, json_string_value(name))) {
                gkm_oai_err_invalid(err, key,
                                    "'%s' names function '%s', which is not "
                                    "in 'tools'.", key,
                                    json_string_value(name));
                goto fail;
            }
            mode = "ANY";
            json_object_set_new(fcc, "allowedFunctionNames",
                                json_pack("[O]", name));
        }
    }
    if (mode == NULL) {
        gkm_oai_err_invalid(err, key,
                            "Invalid value for '%s' (expected \"none\", "
                            "\"auto\", \"required\" or a function choice).",
                            key);
        goto fail;
    }
    if (json_array_size(decls) == 0) {
        json_decref(fcc);
        if (strcmp(mode, "AUTO") == 0 || strcmp(mode, "NONE") == 0)
            return 0; /* nothing to choose from: harmless, dropped */
        gkm_oai_err_invalid(err, key,
                            "'%s' requires 'tools' to be specified.", key);
        return -1;
    }
    json_object_set_new(fcc, "mode", json_string(mode));
    json_object_set_new(body, "toolConfig",
                        json_pack("{so}", "functionCallingConfig", fcc));
    return 0;
fail:
    json_decref(fcc);
    return -1;
}

static int tools(const json_t *req, const struct gkm_oai_opts *o, json_t *body,
                 struct gkm_oai_err *err)
{
    char param[48];
    json_t *decls = json_array();
    json_t *tl = json_array();
    size_t i;
    const json_t *t;
    const json_t *tv = json_object_get(req, "tools");
    const json_t *fv = json_object_get(req, "functions");
    if (tv != NULL && !json_is_null(tv) && !json_is_array(tv)) {
        gkm_oai_err_invalid(err, "tools", "'tools' must be an array.");
        goto fail;
    }
    json_array_foreach(tv, i, t) {
        const char *type = json_string_value(json_object_get(t, "type"));
        snprintf(param, sizeof(param), "tools[%zu]", i);
        if (type == NULL || strcmp(type, "function") != 0) {
            gkm_oai_err_invalid(err, param,
                                "Unsupported tool type '%s' in '%s': only "
                                "function tools can be translated to Gemini.",
                                type ? type : "(missing)", param);
            goto fail;
        }
        snprintf(param, sizeof(param), "tools[%zu].function", i);
        json_t *d = declaration(json_object_get(t, "function"), param, o, err);
        if (d == NULL)
            goto fail;
        json_array_append_new(decls, d);
    }
    json_array_foreach(fv, i, t) {
        snprintf(param, sizeof(param), "functions[%zu]", i);
        json_t *d = declaration(t, param, o, err);
        if (d == NULL)
            goto fail;
        json_array_append_new(decls, d);
    }
    if (json_array_size(decls) > 0)
        json_array_append_new(tl, json_pack("{sO}", "functionDeclarations",
                                            decls));
    if (json_is_object(json_object_get(req, "web_search_options")))
        json_array_append_new(tl, json_pack("{s{}}", "googleSearch"));
    if (json_array_size(tl) > 0)
        json_object_set(body, "tools", tl);
    if (tool_choice(req, decls, body, err) != 0)
        goto fail;
    json_decref(decls);
    json_decref(tl);
    return 0;
fail:
    json_decref(decls);
    json_decref(tl);
    return -1;
}

/* ---- generationConfig ------------------------------------------------ */

static int stop_sequences(const json_t *req, json_t *gen,
                          struct gkm_oai_err *err)
{
    const json_t *s = json_object_get(req, "stop");
    if (s == NULL || json_is_null(s))
        return 0;
    json_t *arr = json_array();
    if (json_is_string(s)) {
        if (json_string_length(s) > 0)
            json_array_append(arr, (json_t *)s);
    } else if (json_is_array(s) && json_array_size(s) <= STOP_MAX) {
        size_t i;
        const json_t *v;
        json_array_foreach(s, i, v) {
            if (!json_is_string(v))
                goto bad;
            if (json_string_length(v) > 0)
                json_array_append(arr, (json_t *)v);
        }
    } else {
        goto bad;
    }
    if (json_array_size(arr) > 0)
        json_object_set(gen, "stopSequences", arr);
    json_decref(arr);
    return 0;
bad:
    json_decref(arr);
    gkm_oai_err_invalid(err, "stop",
                        "Invalid value for 'stop': expected a string or an "
                        "array of at most %d strings.", STOP_MAX);
    return -1;
}

/* The Gemini extras object: extra_body.google, or a top-level google. */
static const json_t *google_extras(const json_t *req)
{
    const json_t *g = json_object_get(json_object_get(req, "extra_body"),
                                      "google");
    if (!json_is_object(g))
        g = json_object_get(req, "google");
    return json_is_object(g) ? g : NULL;
}

static const json_t *get2(const json_t *o, const char *snake, const char *camel)
{
    const json_t *v = json_object_get(o, snake);
    return v ? v : json_object_get(o, camel);
}

static int generation_config(const json_t *req, const struct gkm_oai_opts *o,
                             const char *model, json_t *body, int *n_out,
                             struct gkm_oai_err *err)
{
    json_t *gen = json_object();
    double d;
    long long v, budget = 0, max_tokens = 0;
    int r, max_is_completion = 0;
    if ((r = get_num(req, "temperature", 0, 2, &d, err)) < 0)
        goto fail;
    if (r)
        set_num(gen, "temperature", req, "temperature");
    if ((r = get_num(req, "top_p", 0, 1, &d, err)) < 0)
        goto fail;
    if (r)
        set_num(gen, "topP", req, "top_p");
    if ((r = get_int(req, "top_k", 1, 1000000, &v, err)) < 0)
        goto fail;
    if (r)
        json_object_set_new(gen, "topK", json_integer(v));
    if ((r = get_int(req, "n", 1, CANDIDATES_MAX, &v, err)) < 0)
        goto fail;
    *n_out = r ? (int)v : 1;
    if (r && v > 1)
        json_object_set_new(gen, "candidateCount", json_integer(v));
    if ((r = get_int(req, "max_completion_tokens", 1, 2147483647, &v, err)) < 0)
        goto fail;
    if (r) {
        max_tokens = v;
        max_is_completion = 1;
    } else {
        if ((r = get_int(req, "max_tokens", 1, 2147483647, &v, err)) < 0)
            goto fail;
        if (r)
            max_tokens = v;
    }
    if (stop_sequences(req, gen, err) != 0)
        goto fail;
    if ((r = get_num(req, "presence_penalty", -2, 2, &d, err)) < 0)
        goto fail;
    if (r && d != 0)
        set_num(gen, "presencePenalty", req, "presence_penalty");
    if ((r = get_num(req, "frequency_penalty", -2, 2, &d, err)) < 0)
        goto fail;
    if (r && d != 0)
        set_num(gen, "frequencyPenalty", req, "frequency_penalty");
    if ((r = get_int(req, "seed", -2147483648LL, 2147483647LL, &v, err)) < 0)
        goto fail;
    if (r)
        json_object_set_new(gen, "seed", json_integer(v));
    if (response_format(req, o, gen, err) != 0)
        goto fail;

    /* Thinking: an explicit Gemini thinking_config wins over
     * reasoning_effort (Gemini rejects budget and level together). */
    const json_t *g = google_extras(req);
    const json_t *gtc = get2(g, "thinking_config", "thinkingConfig");
    const json_t *re = json_object_get(req, "reasoning_effort");
    const char *effort = NULL;
    if (re != NULL && !json_is_null(re)) {
        effort = json_string_value(re);
        size_t i = 0;
        while (effort && efforts[i] && strcmp(efforts[i], effort) != 0)
            i++;
        if (effort == NULL || efforts[i] == NULL) {
            gkm_oai_err_invalid(err, "reasoning_effort",
                                "Invalid value for 'reasoning_effort' "
                                "(expected none, minimal, low, medium, high, "
                                "xhigh or max).");
            goto fail;
        }
    }
    if (json_is_object(gtc)) {
        json_object_set_new(gen, "thinkingConfig", camel_keys(gtc));
    } else if (thinking_capable(model)) {
        int include = o->thoughts == GKM_OAI_THOUGHTS_ALWAYS ||
                      (o->thoughts == GKM_OAI_THOUGHTS_ON_REQUEST && effort);
        json_t *tc = thinking_config(model, effort, include, &budget);
        if (tc)
            json_object_set_new(gen, "thinkingConfig", tc);
    }
    if (max_tokens > 0) {
        /* max_tokens means visible output to most clients; Gemini counts
         * thinking in maxOutputTokens, so add the budget we chose.
         * max_completion_tokens already includes reasoning (OpenAI). */
        if (!max_is_completion && budget > 0)
            max_tokens += budget;
        if (max_tokens > 2147483647LL)
            max_tokens = 2147483647LL;
        json_object_set_new(gen, "maxOutputTokens", json_integer(max_tokens));
    }
    if (json_object_size(gen) > 0)
        json_object_set(body, "generationConfig", gen);
    json_decref(gen);
    return 0;
fail:
    json_decref(gen);
    return -1;
}

int gkm_oai_chat_to_gemini(const json_t *req, const struct gkm_oai_opts *opts,
                           struct gkm_oai_chat *out, struct gkm_oai_err *err)
{
    static const struct gkm_oai_opts defaults;
    const struct gkm_oai_opts *o = opts ? opts : &defaults;
    const char *why = NULL;
    json_t *body = NULL;
    char *model = NULL;
    int n = 1;
    memset(out, 0, sizeof(*out));
    if (!json_is_object(req)) {
        gkm_oai_err_invalid(err, NULL,
                            "The request body must be a JSON object.");
        goto fail;
    }
    const json_t *mv = json_object_get(req, "model");
    if (!json_is_string(mv) ||
        strlen(json_string_value(mv)) != json_string_length(mv)) {
        gkm_oai_err_invalid(err, "model", "'model' must be a string.");
        goto fail;
    }
    model = gkm_oai_model_resolve(json_string_value(mv), o->model_aliases,
                                  &why);
    if (model == NULL) {
        gkm_oai_err_invalid(err, "model", "Invalid 'model': %s.", why);
        goto fail;
    }
    const json_t *st = json_object_get(req, "stream");
    if (st != NULL && !json_is_null(st) && !json_is_boolean(st)) {
        gkm_oai_err_invalid(err, "stream",
                            "Invalid type for 'stream': expected a boolean.");
        goto fail;
    }
    const json_t *so = json_object_get(req, "stream_options");
    if (so != NULL && !json_is_null(so) && !json_is_object(so)) {
        gkm_oai_err_invalid(err, "stream_options",
                            "'stream_options' must be an object.");
        goto fail;
    }
    body = json_object();
    if (gkm_oai_messages_to_contents(json_object_get(req, "messages"), model,
                                     body, err) != 0)
        goto fail;
    if (tools(req, o, body, err) != 0)
        goto fail;
    const json_t *g = google_extras(req);
    const json_t *ss = get2(g, "safety_settings", "safetySettings");
    if (json_is_array(ss)) {
        json_t *arr = json_array();
        size_t i;
        const json_t *s;
        json_array_foreach(ss, i, s)
            json_array_append_new(arr, json_is_object(s) ? camel_keys(s)
                                                          : json_deep_copy(s));
        json_object_set_new(body, "safetySettings", arr);
    } else if (json_array_size(o->safety_settings) > 0) {
        json_object_set_new(body, "safetySettings",
                            json_deep_copy(o->safety_settings));
    }
    if (generation_config(req, o, model, body, &n, err) != 0)
        goto fail;
    const json_t *cc = get2(g, "cached_content", "cachedContent");
    if (json_is_string(cc))
        json_object_set(body, "cachedContent", (json_t *)cc);

    out->body = body;
    out->model = model;
    out->stream = json_is_true(st);
    out->include_usage =
        out->stream && json_is_true(json_object_get(so, "include_usage"));
    out->n = n;
    out->reasoning = o->thoughts != GKM_OAI_THOUGHTS_OFF;
    return 0;
fail:
    json_decref(body);
    free(model);
    return -1;
}
