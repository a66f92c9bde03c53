/*
 * oai_resp.c - whole Gemini responses -> chat.completion, and the pieces
 * shared with the stream translator (see oai_resp.h).
 */
#include "oai_resp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "jsonw.h"
#include "oai_err.h"
#include "oai_req.h"
#include "util.h"

/* Upper bound for one choice's accumulated text (the upstream body cap
 * applies first; this only keeps the arithmetic honest). */
#define TEXT_MAX ((size_t)1 << 31)

const char *gkm_oai_finish_reason(const char *g)
{
    static const char *const filter[] = {
        "SAFETY", "RECITATION", "LANGUAGE", "BLOCKLIST", "PROHIBITED_CONTENT",
        "SPII", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION",
        "IMAGE_OTHER", "NO_IMAGE", "OTHER"};
    if (g == NULL)
        return "stop";
    if (strcmp(g, "MAX_TOKENS") == 0)
        return "length";
    for (size_t i = 0; i < GKM_ARRAY_LEN(filter); i++)
        if (strcmp(g, filter[i]) == 0)
            return "content_filter";
    return "stop";
}

static json_int_t count(const json_t *um, const char *k)
{
    json_int_t v = json_integer_value(json_object_get(um, k));
    return v > 0 ? v : 0;
}

static json_int_t modality(const json_t *details, const char *m)
{
    size_t i;
    const json_t *d;
    json_array_foreach(details, i, d) {
        const char *dm = json_string_value(json_object_get(d, "modality"));
        if (dm && strcmp(dm, m) == 0)
            return count(d, "tokenCount");
    }
    return 0;
}

json_t *gkm_oai_usage(const json_t *um)
{
    json_int_t prompt = count(um, "promptTokenCount") +
                        count(um, "toolUsePromptTokenCount");
    json_int_t thoughts = count(um, "thoughtsTokenCount");
    json_int_t completion = count(um, "candidatesTokenCount") + thoughts;
    json_int_t total = count(um, "totalTokenCount");
    if (total == 0)
        total = prompt + completion;
    /* Built member by member: json_pack re-parses its format on every
     * call, and this runs once per answer and per streamed usage chunk. */
    json_t *u = json_object(), *pd = json_object(), *cd = json_object();
    json_object_set_new_nocheck(u, "prompt_tokens", json_integer(prompt));
    json_object_set_new_nocheck(u, "completion_tokens",
                                json_integer(completion));
    json_object_set_new_nocheck(u, "total_tokens", json_integer(total));
    json_object_set_new_nocheck(
        pd, "cached_tokens",
        json_integer(count(um, "cachedContentTokenCount")));
    json_object_set_new_nocheck(
        pd, "audio_tokens",
        json_integer(
            modality(json_object_get(um, "promptTokensDetails"), "AUDIO")));
    json_object_set_new_nocheck(u, "prompt_tokens_details", pd);
    json_object_set_new_nocheck(cd, "reasoning_tokens", json_integer(thoughts));
    json_object_set_new_nocheck(
        cd, "audio_tokens",
        json_integer(
            modality(json_object_get(um, "candidatesTokensDetails"), "AUDIO")));
    json_object_set_new_nocheck(u, "completion_tokens_details", cd);
    return u;
}

/* "call_" + 24 [A-Za-z0-9] from (completion id, choice, index): FNV-1a
 * over the inputs, expanded with splitmix64. */
static void derive_id(char out[30], const char *cid, size_t choice,
                      size_t index)
{
    static const char abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = cid ? cid : ""; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h ^= (uint64_t)choice * 0x9E3779B97F4A7C15ULL;
    h = (h ^ (uint64_t)index) * 1099511628211ULL;
    memcpy(out, "call_", 5);
    for (int i = 0; i < 24; i++) {
        uint64_t z = (h += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        out[5 + i] = abc[z % 62];
    }
    out[29] = '\0';
}

json_t *gkm_oai_tool_call(const json_t *part, const char *completion_id,
                          size_t choice, size_t index)
{
    const json_t *fc = json_object_get(part, "functionCall");
    const json_t *name = json_object_get(fc, "name");
    const json_t *gid = json_object_get(fc, "id");
    const json_t *args = json_object_get(fc, "args");
    const json_t *sig = json_object_get(part, "thoughtSignature");
    char derived[30];
    if (!json_is_string(name))
        return NULL;
    const char *base;
    size_t blen;
    if (json_is_string(gid) && json_string_length(gid) > 0) {
        base = json_string_value(gid);
        blen = json_string_length(gid);
    } else {
        derive_id(derived, completion_id, choice, index);
        base = derived;
        blen = strlen(derived);
    }
    json_t *id;
    int has_sig = json_is_string(sig) && json_string_length(sig) > 0;
    if (has_sig) {
        size_t sl = strlen(GKM_OAI_SIG_SEP), gl = json_string_length(sig);
        char *s = gkm_xmalloc(blen + sl + gl + 1);
        memcpy(s, base, blen);
        memcpy(s + blen, GKM_OAI_SIG_SEP, sl);
        memcpy(s + blen + sl, json_string_value(sig), gl);
        s[blen + sl + gl] = '\0';
        id = json_stringn(s, blen + sl + gl);
        free(s);
    } else {
        id = json_stringn(base, blen);
    }
    char *a = json_is_object(args) ? gkm_json_dump(args, NULL)
                                   : gkm_xstrdup("{}");
    json_t *tc = json_pack("{so ss s{sO ss}}", "id", id, "type", "function",
                           "function", "name", name, "arguments", a ? a : "{}");
    free(a);
    if (tc && has_sig)
        json_object_set_new(tc, "extra_content",
                            json_pack("{s{sO}}", "google", "thought_signature",
                                      sig));
    return tc;
}

char *gkm_oai_render_part(const json_t *part)
{
    const json_t *ec = json_object_get(part, "executableCode");
    const json_t *cr = json_object_get(part, "codeExecutionResult");
    const json_t *id = json_object_get(part, "inlineData");
    if (json_is_object(ec)) {
        const char *lang = json_string_value(json_object_get(ec, "language"));
        const char *code = json_string_value(json_object_get(ec, "code"));
        char l[16] = "python";
        if (lang && strcmp(lang, "PYTHON") != 0 &&
            strcmp(lang, "LANGUAGE_UNSPECIFIED") != 0) {
            size_t i = 0;
            for (; lang[i] && i + 1 < sizeof(l); i++)
                l[i] = (lang[i] >= 'A' && lang[i] <= 'Z')
                           ? (char)(lang[i] - 'A' + 'a') : lang[i];
            l[i] = '\0';
        }
        return gkm_xasprintf("\n```%s\n%s\n```\n", l, code ? code : "");
    }
    if (json_is_object(cr)) {
        const char *o = json_string_value(json_object_get(cr, "output"));
        return gkm_xasprintf("\n```output\n%s\n```\n", o ? o : "");
    }
    if (json_is_object(id)) {
        const char *mt = json_string_value(json_object_get(id, "mimeType"));
        const char *d = json_string_value(json_object_get(id, "data"));
        if (mt && d && strncmp(mt, "image/", 6) == 0)
            return gkm_xasprintf("![image](data:%s;base64,%s)", mt, d);
    }
    return NULL;
}

static int is_thought(const json_t *part)
{
    return json_is_true(json_object_get(part, "thought"));
}

static json_t *choice_from_candidate(const json_t *cand, size_t pos,
                                     const struct gkm_oai_resp_ctx *ctx)
{
    struct gkm_buf text, reasoning;
    json_t *calls = json_array();
    int has_text = 0;
    size_t i;
    const json_t *part;
    const json_t *parts = json_object_get(json_object_get(cand, "content"),
                                          "parts");
    json_int_t index = json_is_integer(json_object_get(cand, "index"))
                           ? json_integer_value(json_object_get(cand, "index"))
                           : (json_int_t)pos;
    gkm_buf_init(&text, TEXT_MAX);
    gkm_buf_init(&reasoning, TEXT_MAX);
    json_array_foreach(parts, i, part) {
        const json_t *t = json_object_get(part, "text");
        if (json_is_string(t) && is_thought(part)) {
            if (ctx->reasoning)
                (void)!gkm_buf_append(&reasoning, json_string_value(t),
                                      json_string_length(t));
        } else if (json_is_string(t)) {
            has_text = 1;
            (void)!gkm_buf_append(&text, json_string_value(t),
                                  json_string_length(t));
        } else if (json_object_get(part, "functionCall")) {
            json_t *tc = gkm_oai_tool_call(part, ctx->id, (size_t)index,
                                           json_array_size(calls));
            if (tc)
                json_array_append_new(calls, tc);
        } else {
            char *r = gkm_oai_render_part(part);
            if (r) {
                has_text = 1;
                (void)!gkm_buf_append_str(&text, r);
                free(r);
            }
        }
    }
    const char *fr = json_string_value(json_object_get(cand, "finishReason"));
    const char *finish = json_array_size(calls) > 0 ? "tool_calls"
                                                    : gkm_oai_finish_reason(fr);
    json_t *msg = json_object();
    json_object_set_new_nocheck(msg, "role", json_string("assistant"));
    if (has_text)
        json_object_set_new(msg, "content",
                            json_stringn(text.data ? text.data : "", text.len));
    else if (json_array_size(calls) > 0 ||
             strcmp(finish, "content_filter") == 0)
        json_object_set_new(msg, "content", json_null());
    else
        json_object_set_new(msg, "content", json_string(""));
    if (reasoning.len > 0)
        json_object_set_new(msg, "reasoning_content",
                            json_stringn(reasoning.data, reasoning.len));
    if (json_array_size(calls) > 0)
        json_object_set(msg, "tool_calls", calls);
    json_object_set_new(msg, "refusal", json_null());
    gkm_buf_free(&text);
    gkm_buf_free(&reasoning);
    json_decref(calls);
    json_t *choice = json_object();
    json_object_set_new_nocheck(choice, "index", json_integer((json_int_t)index));
    json_object_set_new_nocheck(choice, "message", msg);
    json_object_set_new_nocheck(choice, "logprobs", json_null());
    json_object_set_new_nocheck(choice, "finish_reason", json_string(finish));
    return choice;
}

json_t *gkm_oai_chat_from_gemini(const json_t *resp,
                                 const struct gkm_oai_resp_ctx *ctx,
                                 struct gkm_oai_err *err)
{
    if (json_is_array(resp) || json_object_get(resp, "error") != NULL) {
        gkm_oai_err_from_gemini_json(200, resp, err);
        return NULL;
    }
    if (!json_is_object(resp)) {
        gkm_oai_err_set(err, 502, "server_error", NULL, NULL,
                        "Gemini returned a response that is not a JSON "
                        "object.");
        return NULL;
    }
    const json_t *cands = json_object_get(resp, "candidates");
    const json_t *pf = json_object_get(resp, "promptFeedback");
    json_t *choices = json_array();
    size_t i;
    const json_t *c;
    json_array_foreach(cands, i, c)
        if (json_is_object(c))
            json_array_append_new(choices, choice_from_candidate(c, i, ctx));
    if (json_array_size(choices) == 0) {
        if (!json_is_string(json_object_get(pf, "blockReason"))) {
            json_decref(choices);
            gkm_oai_err_set(err, 502, "server_error", NULL, NULL,
                            "Gemini returned no candidates.");
            return NULL;
        }
        json_array_append_new(
            choices,
            json_pack("{si s{ss sn sn} sn ss}", "index", 0, "message", "role",
                      "assistant", "content", "refusal", "logprobs",
                      "finish_reason", "content_filter"));
    }
    json_t *out = json_object();
    json_object_set_new_nocheck(out, "id", json_string(ctx->id));
    json_object_set_new_nocheck(out, "object", json_string("chat.completion"));
    json_object_set_new_nocheck(out, "created",
                                json_integer((json_int_t)ctx->created));
    json_object_set_new_nocheck(out, "model", json_string(ctx->model));
    json_object_set_new_nocheck(out, "choices", choices);
    json_object_set_new_nocheck(
        out, "usage", gkm_oai_usage(json_object_get(resp, "usageMetadata")));
    return out;
}
