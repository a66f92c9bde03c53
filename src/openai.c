/*
 * openai.c - OpenAI surfaces on the proxy core (see openai.h, preq.h).
 *
 * chat:       POST /v1/chat/completions -> models/{m}:generateContent, or
 *             :streamGenerateContent?alt=sse when the client streams; the
 *             stream is translated event by event as it arrives
 *             (oai_stream.c), so the first token reaches the client when
 *             Gemini sends it.
 * models:     GET /v1/models -> models?pageSize=1000 (all pages), cached
 *             for MODELS_TTL_MS; GET /v1/models/{id} -> models/{id}.
 * embeddings: POST /v1/embeddings -> batchEmbedContents, in batches of at
 *             most 100 inputs sent one after another.
 * compat:     /v1beta/openai/... relayed as is to Google's OpenAI-compatible
 *             endpoint with the pool key as Authorization: Bearer.
 * Errors are OpenAI-shaped {"error":{message,type,param,code}} with the
 * status mapped from Gemini's (oai_err.c).
 */
#include "openai.h"

#include <event2/http.h> /* evhttp_encode_uri */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "config.h"
#include "gerror.h"
#include "http.h"
#include "jsonw.h"
#include "keypool.h"
#include "log.h"
#include "oai_err.h"
#include "oai_misc.h"
#include "oai_req.h"
#include "oai_resp.h"
#include "preq.h"
#include "proxy.h"
#include "route.h"
#include "tap.h"
#include "util.h"

#define JSON_CT "application/json"
#define COLLECT_CAP (64ULL * 1024 * 1024)
#define STREAM_EVENT_MAX (32 * 1024 * 1024)
#define MODELS_TTL_MS 60000
#define MODELS_MAX_PAGES 20

enum kind { K_CHAT, K_MODELS, K_MODEL, K_EMBED, K_COMPAT };

struct oai {
    enum kind kind;
    struct gkm_oai_chat chat;
    struct gkm_oai_stream *stream;
    struct gkm_oai_embed embed;
    size_t batch;      /* embeddings: batch being sent */
    size_t done_inputs;
    json_t *data;      /* embeddings / models collected so far */
    int pages;
    char id[48];       /* completion id */
    char model_echo[GKM_MODEL_MAX + 1];
    struct gkm_oai_opts opts;
    struct gkm_tap *tap; /* chat streams: usage for the key's statistics */
};

struct gkm_oai_cache {
    json_t *models; /* the translated list */
    int64_t expires_ms;
};

/* ---- replies ------------------------------------------------------------ */

/* Send o (consumed) as the reply; the request goes on (see
 * gkm_preq_send_reply). */
static void send_json(struct gkm_preq *p, long status, json_t *o,
                      long retry_after_s)
{
    size_t n = 0;
    char *s = gkm_json_dump(o, &n);
    json_decref(o);
    if (s == NULL) {
        gkm_preq_send_reply(p, 500, JSON_CT, "{}", 2, 0);
        return;
    }
    gkm_preq_send_reply(p, status, JSON_CT, s, n, retry_after_s);
    free(s);
}

static void reply_json(struct gkm_preq *p, long status, json_t *o,
                       long retry_after_s)
{
    send_json(p, status, o, retry_after_s);
    gkm_preq_finish(p);
}

static void reply_err(struct gkm_preq *p, struct gkm_oai_err *e,
                      long retry_after_s)
{
    if (retry_after_s <= 0 && e->retry_after_ms > 0)
        retry_after_s = (long)((e->retry_after_ms + 999) / 1000);
    int status = e->status ? e->status : 500;
    p->pass_headers = 0;
    reply_json(p, status, gkm_oai_err_json(e), retry_after_s);
    gkm_oai_err_clear(e);
}

/* The core's own errors, in OpenAI's shape. */
static void o_error(struct gkm_preq *p, int status, const char *gstatus,
                    const char *msg, long retry_after_s)
{
    struct gkm_oai_err e;
    gkm_oai_err_init(&e);
    const char *type = status >= 500 ? "server_error"
                       : status == 429 ? "rate_limit_error"
                       : status == 401 ? "authentication_error"
                                       : "invalid_request_error";
    const char *code = status == 401   ? "invalid_api_key"
                       : status == 429 ? "rate_limit_exceeded"
                       : status == 503 ? "no_upstream_keys"
                                       : NULL;
    gkm_oai_err_set(&e, status, type, code, NULL, "%s", msg);
    reply_err(p, &e, retry_after_s);
}

static void o_upstream_error(struct gkm_preq *p, long status, const char *data,
                             size_t n)
{
    struct oai *st = p->surface_state;
    if (st->kind == K_COMPAT) { /* Google's own OpenAI errors: as they are */
        gkm_preq_reply(p, status, NULL, data, n, 0);
        return;
    }
    struct gkm_oai_err e;
    gkm_oai_err_init(&e);
    gkm_oai_err_from_gemini((int)status, data, n, &e);
    reply_err(p, &e, 0);
}

/* ---- responses ----------------------------------------------------------- */

static enum gkm_relay o_begin(struct gkm_preq *p, long status, long long clen)
{
    struct oai *st = p->surface_state;
    if (st->kind == K_COMPAT) {
        /* Streams (SSE) flow through; small bodies go in one write. */
        if (clen >= 0 && clen <= 256 * 1024) {
            p->collect_cap = COLLECT_CAP;
            return GKM_RELAY_COLLECT;
        }
        return GKM_RELAY_STREAM;
    }
    if (st->kind == K_CHAT && st->chat.stream) {
        struct gkm_oai_resp_ctx ctx = {
            .id = st->id,
            .created = (long long)gkm_now(),
            .model = st->model_echo,
            .reasoning = st->chat.reasoning,
            .include_usage = st->chat.include_usage,
        };
        st->stream = gkm_oai_stream_new(&ctx, STREAM_EVENT_MAX);
        st->tap = gkm_tap_new(GKM_TAP_SSE);
        p->sse_keepalive = 1; /* comments are part of OpenAI's SSE */
        gkm_preq_stream_begin(p, 200, "text/event-stream; charset=utf-8");
        return GKM_RELAY_STREAM;
    }
    p->collect_cap = COLLECT_CAP;
    return GKM_RELAY_COLLECT;
}

static int o_chunk(struct gkm_preq *p, const char *data, size_t n,
                   struct gkm_buf *out)
{
    struct oai *st = p->surface_state;
    if (st->kind == K_COMPAT)
        return gkm_buf_append(out, data, n) == 0 ? 0 : -1;
    gkm_tap_feed(st->tap, data, n);
    int rc = gkm_oai_stream_feed(st->stream, data, n, out);
    return rc == GKM_OAI_STREAM_ECAP ? -1 : 0;
}

static int o_end(struct gkm_preq *p, int ok, struct gkm_buf *out)
{
    struct oai *st = p->surface_state;
    if (st->kind == K_COMPAT)
        return ok;
    gkm_preq_account(p, gkm_tap_finish(st->tap), ok);
    if (ok) {
        if (gkm_oai_stream_finish(st->stream, out) == GKM_OAI_STREAM_ECAP)
            return 0;
        return 1;
    }
    /* The upstream connection broke: an explicit error event, never a
     * silent clean stop. */
    struct gkm_oai_err e;
    gkm_oai_err_init(&e);
    gkm_oai_err_set(&e, 502, "server_error", "upstream_error", NULL,
                    "The upstream stream was interrupted before it "
                    "finished.");
    int rc = gkm_oai_stream_fail(st->stream, &e, out);
    gkm_oai_err_clear(&e);
    p->outcome = "upstream broke mid-stream (error event sent)";
    return rc == GKM_OAI_STREAM_ECAP ? 0 : 1;
}

/* Accounting from the already parsed answer (no second scan of it). */
static void account_parsed(struct gkm_preq *p, const json_t *resp)
{
    struct gkm_tap_result r;
    memset(&r, 0, sizeof(r));
    json_t *um = json_object_get(resp, "usageMetadata");
    if (json_is_object(um)) {
        r.saw_usage = 1;
        r.prompt_tokens = json_integer_value(json_object_get(um, "promptTokenCount"));
        r.output_tokens =
            json_integer_value(json_object_get(um, "candidatesTokenCount"));
        r.thinking_tokens =
            json_integer_value(json_object_get(um, "thoughtsTokenCount"));
    }
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(resp, "candidates"), i, c) {
        if (json_is_string(json_object_get(c, "finishReason")))
            r.saw_finish = 1;
    }
    if (json_object_get(resp, "candidates") == NULL &&
        json_object_get(resp, "promptFeedback") != NULL)
        r.saw_finish = 1;
    struct gkm_err_info err;
    if (json_is_object(json_object_get(resp, "error"))) {
        gkm_gerror_from_json(200, resp, &err);
        r.saw_error = 1;
        r.error = &err;
    }
    gkm_preq_account(p, &r, 1);
}

static void next_embed_batch(struct gkm_preq *p, struct oai *st);
static void next_models_page(struct gkm_preq *p, struct oai *st,
                             const char *token);

static void o_body(struct gkm_preq *p, long status, const char *data, size_t n)
{
    struct oai *st = p->surface_state;
    struct gkm_oai_err e;
    gkm_oai_err_init(&e);
    if (st->kind == K_COMPAT) {
        gkm_preq_reply(p, status, NULL, data, n, 0);
        return;
    }
    /* Google's answers are indented; jansson reads byte by byte, so the
     * layout whitespace goes first (about a sixth of the parse). */
    json_error_t jerr;
    char *tight = gkm_xmalloc(n + 1);
    size_t tn = gkm_json_squeeze(data, n, tight);
    json_t *resp = json_loadb(tight, tn, 0, &jerr);
    free(tight);
    if (resp == NULL) {
        gkm_oai_err_set(&e, 502, "server_error", "upstream_error", NULL,
                        "The upstream answer is not valid JSON.");
        reply_err(p, &e, 0);
        return;
    }
    switch (st->kind) {
    case K_CHAT: {
        struct gkm_oai_resp_ctx ctx = {
            .id = st->id,
            .created = (long long)gkm_now(),
            .model = st->model_echo,
            .reasoning = st->chat.reasoning,
            .include_usage = 0,
        };
        json_t *out = gkm_oai_chat_from_gemini(resp, &ctx, &e);
        if (out == NULL) {
            account_parsed(p, resp);
            json_decref(resp);
            reply_err(p, &e, 0);
            return;
        }
        send_json(p, 200, out, 0);
        /* Counting after the client has the answer (and freeing the tree)
         * keeps both off its wait. */
        account_parsed(p, resp);
        json_decref(resp);
        gkm_preq_finish(p);
        return;
    }
    case K_MODEL: {
        json_t *m = gkm_oai_model_from_gemini(resp);
        json_decref(resp);
        if (m == NULL) {
            gkm_oai_err_set(&e, 502, "server_error", "upstream_error", NULL,
                            "The upstream model entry has no name.");
            reply_err(p, &e, 0);
            return;
        }
        reply_json(p, 200, m, 0);
        return;
    }
    case K_MODELS: {
        if (gkm_oai_models_add_page(st->data, resp) < 0) {
            json_decref(resp);
            gkm_oai_err_set(&e, 502, "server_error", "upstream_error", NULL,
                            "The upstream model list is malformed.");
            reply_err(p, &e, 0);
            return;
        }
        const char *tok =
            json_string_value(json_object_get(resp, "nextPageToken"));
        if (tok && *tok && ++st->pages < MODELS_MAX_PAGES) {
            char *t = gkm_xstrdup(tok);
            json_decref(resp);
            next_models_page(p, st, t);
            free(t);
            return;
        }
        json_decref(resp);
        gkm_oai_models_add_aliases(st->data, st->opts.model_aliases);
        json_t *list = gkm_oai_models_list(st->data);
        st->data = NULL;
        struct gkm_oai_cache *c = p->app->oai_cache;
        if (c == NULL)
            c = p->app->oai_cache = gkm_xcalloc(1, sizeof(*c));
        json_decref(c->models);
        c->models = json_incref(list);
        c->expires_ms = gkm_mono_ms() + MODELS_TTL_MS;
        reply_json(p, 200, list, 0);
        return;
    }
    case K_EMBED: {
        size_t expected = json_array_size(
            json_object_get(st->embed.batches[st->batch], "requests"));
        int rc = gkm_oai_embed_add_batch(st->data, resp, st->done_inputs,
                                         expected, st->embed.base64, &e);
        json_decref(resp);
        if (rc != 0) {
            reply_err(p, &e, 0);
            return;
        }
        st->done_inputs += expected;
        if (++st->batch < st->embed.nbatches) {
            next_embed_batch(p, st);
            return;
        }
        json_t *out = gkm_oai_embed_response(st->data, st->model_echo);
        st->data = NULL;
        reply_json(p, 200, out, 0);
        return;
    }
    case K_COMPAT:
        break;
    }
    json_decref(resp);
}

static void o_cleanup(struct gkm_preq *p)
{
    struct oai *st = p->surface_state;
    if (st == NULL)
        return;
    gkm_oai_chat_clear(&st->chat);
    gkm_oai_stream_free(st->stream);
    gkm_tap_free(st->tap);
    gkm_oai_embed_clear(&st->embed);
    json_decref(st->data);
    free(st);
    p->surface_state = NULL;
}

static const struct gkm_surface openai_surface = {
    .name = "openai",
    .error = o_error,
    .begin = o_begin,
    .chunk = o_chunk,
    .end = o_end,
    .body = o_body,
    .upstream_error = o_upstream_error,
    .cleanup = o_cleanup,
};

/* ---- requests ------------------------------------------------------------ */

static void set_json_body(struct gkm_preq *p, json_t *body)
{
    free(p->up_body);
    p->up_body = gkm_json_dump(body, &p->up_bodylen);
    if (p->up_body == NULL) {
        p->up_body = gkm_xstrdup("{}");
        p->up_bodylen = 2;
    }
}

static void json_headers(struct gkm_preq *p)
{
    p->up_headers = gkm_xcalloc(1, sizeof(char *));
    p->up_headers[0] = gkm_xstrdup("Content-Type: application/json");
    p->nup_headers = 1;
}

static void next_embed_batch(struct gkm_preq *p, struct oai *st)
{
    set_json_body(p, st->embed.batches[st->batch]);
    gkm_preq_restart(p);
}

static void next_models_page(struct gkm_preq *p, struct oai *st,
                             const char *token)
{
    char *tok = evhttp_encode_uri(token);
    free(p->up_path_query);
    p->up_path_query = gkm_xasprintf("/v1beta/models?pageSize=1000&pageToken=%s",
                                     tok ? tok : "");
    free(tok);
    gkm_preq_restart(p);
}

static json_t *parse_body(struct gkm_preq *p)
{
    json_error_t jerr;
    struct gkm_oai_err e;
    gkm_oai_err_init(&e);
    if (p->bodylen == 0) {
        gkm_oai_err_invalid(&e, NULL, "The request body is empty; expected "
                                      "a JSON object.");
        reply_err(p, &e, 0);
        return NULL;
    }
    json_t *req = json_loadb(p->body, p->bodylen, 0, &jerr);
    if (!json_is_object(req)) {
        if (req == NULL)
            gkm_oai_err_invalid(&e, NULL,
                                "The request body is not valid JSON: %s "
                                "(line %d, column %d).",
                                jerr.text, jerr.line, jerr.column);
        else
            gkm_oai_err_invalid(&e, NULL,
                                "The request body must be a JSON object.");
        json_decref(req);
        reply_err(p, &e, 0);
        return NULL;
    }
    return req;
}

static void opts_from_config(struct gkm_app *app, struct gkm_oai_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->safety_settings = app->oai_safety;
    o->model_aliases = app->oai_aliases;
    o->thoughts = (enum gkm_oai_thoughts)app->cfg->oai_thoughts;
}

/* Parse and translate the client's body for st->kind (chat or
 * embeddings); on success the Gemini model picks the rotation and the
 * client's own model name is echoed back. Returns 0, or -1 after
 * replying with the OpenAI error. */
static int translate(struct gkm_preq *p, struct oai *st)
{
    json_t *req = parse_body(p);
    if (req == NULL)
        return -1;
    struct gkm_oai_err e;
    gkm_oai_err_init(&e);
    int rc = st->kind == K_CHAT
                 ? gkm_oai_chat_to_gemini(req, &st->opts, &st->chat, &e)
                 : gkm_oai_embed_to_gemini(req, &st->opts, &st->embed, &e);
    if (rc != 0) {
        json_decref(req);
        p->outcome = "invalid request";
        reply_err(p, &e, 0);
        return -1;
    }
    const char *model = st->kind == K_CHAT ? st->chat.model : st->embed.model;
    const char *asked = json_string_value(json_object_get(req, "model"));
    snprintf(st->model_echo, sizeof(st->model_echo), "%s",
             asked ? asked : model);
    snprintf(p->model, sizeof(p->model), "%s", model);
    json_decref(req);
    p->up_method = "POST";
    json_headers(p);
    return 0;
}

static void start_chat(struct gkm_preq *p, struct oai *st)
{
    if (translate(p, st) != 0)
        return;
    snprintf(st->id, sizeof(st->id), "chatcmpl-%s-%llx",
             p->idstr, (unsigned long long)gkm_now_ms());
    p->up_path_query = gkm_xasprintf(
        "/v1beta/models/%s:%s", st->chat.model,
        st->chat.stream ? "streamGenerateContent?alt=sse" : "generateContent");
    set_json_body(p, st->chat.body);
    gkm_preq_start(p);
}

static void start_embed(struct gkm_preq *p, struct oai *st)
{
    if (translate(p, st) != 0)
        return;
    st->data = json_array();
    p->up_path_query =
        gkm_xasprintf("/v1beta/models/%s:batchEmbedContents", st->embed.model);
    set_json_body(p, st->embed.batches[0]);
    gkm_preq_start(p);
}

static void start_models(struct gkm_preq *p, struct oai *st)
{
    struct gkm_oai_cache *c = p->app->oai_cache;
    if (c && c->models && gkm_mono_ms() < c->expires_ms) {
        p->outcome = "cached";
        reply_json(p, 200, json_incref(c->models), 0);
        return;
    }
    st->data = json_array();
    p->up_method = "GET";
    p->up_path_query = gkm_xstrdup("/v1beta/models?pageSize=1000");
    gkm_preq_start(p);
}

static void start_model(struct gkm_preq *p, struct oai *st)
{
    const char *id = p->path + strlen("/v1/models/");
    const char *why = NULL;
    char *m = gkm_oai_model_resolve(id, st->opts.model_aliases, &why);
    if (m == NULL) {
        struct gkm_oai_err e;
        gkm_oai_err_init(&e);
        gkm_oai_err_set(&e, 404, "invalid_request_error", "model_not_found",
                        "model", "The model '%s' does not exist (%s).", id,
                        why ? why : "invalid name");
        reply_err(p, &e, 0);
        return;
    }
    p->up_method = "GET";
    p->up_path_query = gkm_xasprintf("/v1beta/models/%s", m);
    free(m);
    gkm_preq_start(p);
}

static void start_compat(struct gkm_preq *p, struct gkm_app *app,
                         struct gkm_hreq *req)
{
    /* The model in the body, when there is one, picks the rotation. */
    if (p->bodylen > 0) {
        json_t *b = json_loadb(p->body, p->bodylen, 0, NULL);
        const char *m = json_string_value(json_object_get(b, "model"));
        if (m) {
            const char *why = NULL;
            char *r = gkm_oai_model_resolve(m, NULL, &why);
            if (r)
                snprintf(p->model, sizeof(p->model), "%s", r);
            free(r);
        }
        json_decref(b);
    }
    p->cred = GKM_CRED_BEARER;
    p->pass_headers = 1;
    p->up_path_query = gkm_xasprintf("%s%s%s", p->path, p->query[0] ? "?" : "",
                                     p->query);
    gkm_preq_forward_headers(p);
    gkm_preq_start(p);
}

static int path_is(const char *uri, const char *path)
{
    size_t n = strlen(path);
    return strncmp(uri, path, n) == 0 && (uri[n] == '\0' || uri[n] == '?');
}

int gkm_openai_claims(const char *uri, struct gkm_hreq *req)
{
    if (path_is(uri, "/v1/chat/completions") || path_is(uri, "/v1/embeddings") ||
        strncmp(uri, "/v1beta/openai/", 15) == 0)
        return 1;
    if (!path_is(uri, "/v1/models") && strncmp(uri, "/v1/models/", 11) != 0)
        return 0;
    if (gkm_hreq_header(req, "x-goog-api-key") != NULL)
        return 0;
    if (strstr(uri, "?key=") || strstr(uri, "&key="))
        return 0;
    return gkm_hreq_header(req, "Authorization") != NULL;
}

void gkm_openai_handle(struct gkm_app *app, struct gkm_hreq *req)
{
    struct gkm_preq *p = gkm_preq_new(app, req, &openai_surface);
    if (p == NULL)
        return;
    struct oai *st = gkm_xcalloc(1, sizeof(*st));
    p->surface_state = st;
    opts_from_config(app, &st->opts);
    const char *path = p->path;
    const char *cmd = gkm_hreq_method(req);
    if (strncmp(path, "/v1beta/openai/", 15) == 0)
        st->kind = K_COMPAT;
    else if (strcmp(path, "/v1/chat/completions") == 0)
        st->kind = K_CHAT;
    else if (strcmp(path, "/v1/embeddings") == 0)
        st->kind = K_EMBED;
    else if (strcmp(path, "/v1/models") == 0)
        st->kind = K_MODELS;
    else
        st->kind = K_MODEL;
    if (!gkm_proxy_authorized(app, req)) {
        p->outcome = "unauthorized";
        gkm_preq_fail(p, 401, "UNAUTHENTICATED",
                      "Missing or invalid API key: send the proxy's token as "
                      "Authorization: Bearer <token>.",
                      0);
        return;
    }
    int want_post = st->kind == K_CHAT || st->kind == K_EMBED;
    int want_get = st->kind == K_MODELS || st->kind == K_MODEL;
    if ((want_post && strcmp(cmd, "POST") != 0) ||
        (want_get && strcmp(cmd, "GET") != 0)) {
        p->outcome = "method not allowed";
        gkm_preq_fail(p, 405, "UNIMPLEMENTED",
                      want_post ? "This endpoint accepts POST only."
                                : "This endpoint accepts GET only.",
                      0);
        return;
    }
    switch (st->kind) {
    case K_CHAT: start_chat(p, st); return;
    case K_EMBED: start_embed(p, st); return;
    case K_MODELS: start_models(p, st); return;
    case K_MODEL: start_model(p, st); return;
    case K_COMPAT: start_compat(p, app, req); return;
    }
}

void gkm_openai_free_cache(struct gkm_app *app)
{
    struct gkm_oai_cache *c = app->oai_cache;
    if (c == NULL)
        return;
    json_decref(c->models);
    free(c);
    app->oai_cache = NULL;
}
