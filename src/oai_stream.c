/*
 * oai_stream.c - streaming translation: Gemini stream chunks ->
 * chat.completion.chunk SSE events (see oai_resp.h, wire spec 8.9).
 *
 * State per completion: for each choice (Gemini candidate index, at most
 * CHOICES_MAX) whether it was seen, whether its role chunk went out, the
 * next tool-call index, whether it made calls and its finishReason; plus
 * the last usageMetadata (cumulative upstream, so the last one wins) and an
 * `ended` flag after which nothing more is written.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "oai_err.h"
#include "oai_resp.h"
#include "sse.h"
#include "util.h"

#define CHOICES_MAX 8

struct choice {
    int seen;
    int role_sent;
    size_t tool_index;
    int had_tools;
    const char *finish; /* mapped OpenAI value (static), NULL until seen */
};

struct gkm_oai_stream {
    char *id;
    char *model;
    long long created;
    int reasoning;
    int include_usage;
    struct choice ch[CHOICES_MAX];
    json_t *usage; /* last usageMetadata, owned */
    struct gkm_sse_parser *sse;
    int started; /* an event was written */
    int ended;
};

/* Feed-callback context: the stream and where its output goes. */
struct feed_arg {
    struct gkm_oai_stream *s;
    struct gkm_buf *out;
    int rc;
};

struct gkm_oai_stream *gkm_oai_stream_new(const struct gkm_oai_resp_ctx *ctx,
                                          size_t max_event)
{
    struct gkm_oai_stream *s = gkm_xcalloc(1, sizeof(*s));
    s->id = gkm_xstrdup(ctx->id ? ctx->id : "");
    s->model = gkm_xstrdup(ctx->model ? ctx->model : "");
    s->created = ctx->created;
    s->reasoning = ctx->reasoning;
    s->include_usage = ctx->include_usage;
    s->sse = gkm_sse_parser_new(max_event, max_event);
    gkm_sse_parser_keep_raw(s->sse, 1);
    return s;
}

void gkm_oai_stream_free(struct gkm_oai_stream *s)
{
    if (s == NULL)
        return;
    free(s->id);
    free(s->model);
    json_decref(s->usage);
    gkm_sse_parser_free(s->sse);
    free(s);
}

int gkm_oai_stream_started(const struct gkm_oai_stream *s)
{
    return s->started;
}

/* Write one chunk with a single choice (delta, finish) or, when delta is
 * NULL, with no choices and the usage object. Steals delta. */
static int emit(struct gkm_oai_stream *s, struct gkm_buf *out, size_t index,
                json_t *delta, const char *finish)
{
    json_t *choices = json_array();
    if (delta != NULL)
        json_array_append_new(
            choices, json_pack("{sI so sn so}", "index", (json_int_t)index,
                               "delta", delta, "logprobs", "finish_reason",
                               finish ? json_string(finish) : json_null()));
    json_t *c = json_pack("{ss ss sI ss so}", "id", s->id, "object",
                          "chat.completion.chunk", "created",
                          (json_int_t)s->created, "model", s->model, "choices",
                          choices);
    if (c == NULL) /* not UTF-8 id/model: cannot happen with sane callers */
        return GKM_OAI_STREAM_ECAP;
    if (s->include_usage)
        json_object_set_new(c, "usage", delta ? json_null()
                                              : gkm_oai_usage(s->usage));
    int r = gkm_sse_write_json(out, c);
    json_decref(c);
    s->started = 1;
    return r == 0 ? GKM_OAI_STREAM_OK : GKM_OAI_STREAM_ECAP;
}

static int emit_error(struct gkm_oai_stream *s, const struct gkm_oai_err *e,
                      struct gkm_buf *out)
{
    s->ended = 1;
    s->started = 1;
    return gkm_oai_err_sse(e, out) == 0 ? GKM_OAI_STREAM_END
                                        : GKM_OAI_STREAM_ECAP;
}

static int fail_with(struct gkm_oai_stream *s, struct gkm_buf *out,
                     const char *code, const char *msg)
{
    struct gkm_oai_err e;
    gkm_oai_err_init(&e);
    gkm_oai_err_set(&e, 502, "server_error", code, NULL, "%s", msg);
    int r = emit_error(s, &e, out);
    gkm_oai_err_clear(&e);
    return r;
}

static int role_chunk(struct gkm_oai_stream *s, struct gkm_buf *out,
                      size_t idx)
{
    struct choice *c = &s->ch[idx];
    c->seen = 1;
    if (c->role_sent)
        return GKM_OAI_STREAM_OK;
    c->role_sent = 1;
    return emit(s, out, idx,
                json_pack("{ss ss}", "role", "assistant", "content", ""),
                NULL);
}

static int text_delta(struct gkm_oai_stream *s, struct gkm_buf *out,
                      size_t idx, const char *key, const char *t, size_t len)
{
    if (len == 0)
        return GKM_OAI_STREAM_OK;
    json_t *d = json_object();
    json_object_set_new(d, key, json_stringn(t, len));
    return emit(s, out, idx, d, NULL);
}

static int candidate(struct gkm_oai_stream *s, const json_t *cand, size_t pos,
                     struct gkm_buf *out)
{
    const json_t *iv = json_object_get(cand, "index");
    json_int_t index = json_is_integer(iv) ? json_integer_value(iv)
                                           : (json_int_t)pos;
    if (index < 0 || index >= CHOICES_MAX)
        return fail_with(s, out, "upstream_invalid",
                         "Gemini sent a candidate index out of range.");
    size_t idx = (size_t)index;
    struct choice *c = &s->ch[idx];
    int r = role_chunk(s, out, idx);
    size_t i;
    const json_t *part;
    json_array_foreach(json_object_get(json_object_get(cand, "content"),
                                       "parts"), i, part) {
        if (r != GKM_OAI_STREAM_OK)
            return r;
        const json_t *t = json_object_get(part, "text");
        if (json_is_string(t)) {
            int thought = json_is_true(json_object_get(part, "thought"));
            if (!thought || s->reasoning)
                r = text_delta(s, out, idx,
                               thought ? "reasoning_content" : "content",
                               json_string_value(t), json_string_length(t));
        } else if (json_object_get(part, "functionCall")) {
            json_t *tc = gkm_oai_tool_call(part, s->id, idx, c->tool_index);
            if (tc == NULL)
                continue;
            json_object_set_new(tc, "index",
                                json_integer((json_int_t)c->tool_index));
            c->tool_index++;
            c->had_tools = 1;
            r = emit(s, out, idx, json_pack("{s[o]}", "tool_calls", tc), NULL);
        } else {
            char *txt = gkm_oai_render_part(part);
            if (txt)
                r = text_delta(s, out, idx, "content", txt, strlen(txt));
            free(txt);
        }
    }
    if (r != GKM_OAI_STREAM_OK)
        return r;
    const char *fr = json_string_value(json_object_get(cand, "finishReason"));
    if (fr != NULL)
        c->finish = gkm_oai_finish_reason(fr);
    return GKM_OAI_STREAM_OK;
}

static int chunk_object(struct gkm_oai_stream *s, const json_t *chunk,
                        struct gkm_buf *out)
{
    if (!json_is_object(chunk))
        return fail_with(s, out, "upstream_invalid",
                         "Gemini sent a stream event that is not a JSON "
                         "object.");
    if (json_object_get(chunk, "error") != NULL) {
        struct gkm_oai_err e;
        gkm_oai_err_init(&e);
        gkm_oai_err_from_gemini_json(200, chunk, &e);
        int r = emit_error(s, &e, out);
        gkm_oai_err_clear(&e);
        return r;
    }
    const json_t *um = json_object_get(chunk, "usageMetadata");
    if (json_is_object(um)) {
        json_decref(s->usage);
        s->usage = json_deep_copy(um);
    }
    const json_t *cands = json_object_get(chunk, "candidates");
    size_t i;
    const json_t *cand;
    int any = 0;
    json_array_foreach(cands, i, cand) {
        if (!json_is_object(cand))
            continue;
        any = 1;
        int r = candidate(s, cand, i, out);
        if (r != GKM_OAI_STREAM_OK)
            return r;
    }
    const json_t *br = json_object_get(json_object_get(chunk, "promptFeedback"),
                                       "blockReason");
    if (!any && json_is_string(br)) {
        int r = role_chunk(s, out, 0);
        s->ch[0].finish = "content_filter";
        return r;
    }
    return GKM_OAI_STREAM_OK;
}

int gkm_oai_stream_chunk(struct gkm_oai_stream *s, const json_t *chunk,
                         struct gkm_buf *out)
{
    if (s->ended)
        return GKM_OAI_STREAM_END;
    if (json_is_array(chunk)) {
        size_t i;
        const json_t *v;
        json_array_foreach(chunk, i, v) {
            int r = chunk_object(s, v, out);
            if (r != GKM_OAI_STREAM_OK)
                return r;
        }
        return GKM_OAI_STREAM_OK;
    }
    return chunk_object(s, chunk, out);
}

int gkm_oai_stream_data(struct gkm_oai_stream *s, const char *data,
                        size_t len, struct gkm_buf *out)
{
    size_t i = 0;
    if (s->ended)
        return GKM_OAI_STREAM_END;
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' ||
                       data[i] == '\n'))
        i++;
    if (i == len || (len - i == 6 && memcmp(data + i, "[DONE]", 6) == 0))
        return GKM_OAI_STREAM_OK;
    json_t *j = json_loadb(data, len, 0, NULL);
    if (j == NULL)
        return fail_with(s, out, "upstream_invalid",
                         "Gemini sent a stream event that is not valid "
                         "JSON.");
    int r = gkm_oai_stream_chunk(s, j, out);
    json_decref(j);
    return r;
}

static int on_event(void *arg, const char *data, size_t len)
{
    struct feed_arg *fa = arg;
    fa->rc = gkm_oai_stream_data(fa->s, data, len, fa->out);
    return fa->rc != GKM_OAI_STREAM_OK;
}

static int sse_failed(struct gkm_oai_stream *s, struct gkm_buf *out, int rc)
{
    return fail_with(s, out, "upstream_invalid", gkm_sse_strerror(rc));
}

int gkm_oai_stream_feed(struct gkm_oai_stream *s, const char *bytes,
                        size_t len, struct gkm_buf *out)
{
    struct feed_arg fa = {s, out, GKM_OAI_STREAM_OK};
    if (s->ended)
        return GKM_OAI_STREAM_END;
    int r = gkm_sse_parser_feed(s->sse, bytes, len, on_event, &fa);
    if (r == GKM_SSE_EABORT)
        return fa.rc;
    if (r != GKM_SSE_OK)
        return sse_failed(s, out, r);
    return GKM_OAI_STREAM_OK;
}

int gkm_oai_stream_finish(struct gkm_oai_stream *s, struct gkm_buf *out)
{
    struct feed_arg fa = {s, out, GKM_OAI_STREAM_OK};
    size_t i;
    int r, any = 0;
    if (s->ended)
        return GKM_OAI_STREAM_END;
    r = gkm_sse_parser_finish(s->sse, on_event, &fa);
    if (r == GKM_SSE_EABORT)
        return fa.rc;
    if (r != GKM_SSE_OK)
        return sse_failed(s, out, r);
    for (i = 0; i < CHOICES_MAX; i++) {
        if (!s->ch[i].seen)
            continue;
        any = 1;
        if (s->ch[i].finish == NULL)
            return fail_with(s, out, "upstream_truncated",
                             "The Gemini stream ended before the response "
                             "was complete (no finishReason).");
    }
    if (!any)
        return fail_with(s, out, "upstream_truncated",
                         "The Gemini stream ended without any response.");
    for (i = 0; i < CHOICES_MAX; i++) {
        if (!s->ch[i].seen)
            continue;
        r = emit(s, out, i, json_object(),
                 s->ch[i].had_tools ? "tool_calls" : s->ch[i].finish);
        if (r != GKM_OAI_STREAM_OK)
            return r;
    }
    if (s->include_usage && emit(s, out, 0, NULL, NULL) != GKM_OAI_STREAM_OK)
        return GKM_OAI_STREAM_ECAP;
    s->ended = 1;
    return gkm_sse_write_done(out) == 0 ? GKM_OAI_STREAM_END
                                        : GKM_OAI_STREAM_ECAP;
}

int gkm_oai_stream_fail(struct gkm_oai_stream *s, const struct gkm_oai_err *e,
                        struct gkm_buf *out)
{
    if (s->ended)
        return GKM_OAI_STREAM_END;
    return emit_error(s, e, out);
}
