/*
 * oai_msgs.c - OpenAI messages -> Gemini contents + systemInstruction
 * (wire spec 8.2, 8.3, 8.7). Part of the request translator (oai_req.h).
 *
 * Walk state: `calls` holds the tool calls of the current model turn (one
 * assistant message, or several adjacent ones, which Gemini sees merged);
 * `answers` has one slot per call, filled by the tool / function messages
 * that follow. When the run of tool messages ends, the slots are emitted as
 * one user turn in call order - Gemini wants exactly one functionResponse
 * per functionCall, in order - and every slot must be filled.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oai_err.h"
#include "oai_media.h"
#include "oai_req.h"
#include "util.h"

/* Most tool calls accepted in one model turn. */
#define CALLS_MAX 512

struct call {
    char *id;   /* OpenAI id as the client sent it (may be NULL) */
    char *name; /* function name */
    char *gid;  /* Gemini functionCall.id to echo, or NULL */
    json_t *answer; /* functionResponse part, once answered */
};

struct walk {
    json_t *contents;
    json_t *sys_parts;
    struct call *calls; /* grown on demand, up to CALLS_MAX */
    size_t ncalls;
    size_t acalls;
    int tool_run;       /* inside a run of tool/function messages */
    size_t calls_msg;   /* index of the first assistant message of the turn */
    int gemini3;
    struct gkm_oai_err *err;
};

static void calls_reset(struct walk *w)
{
    for (size_t i = 0; i < w->ncalls; i++) {
        free(w->calls[i].id);
        free(w->calls[i].name);
        free(w->calls[i].gid);
        json_decref(w->calls[i].answer);
    }
    w->ncalls = 0;
}

static void add_content(struct walk *w, const char *role, json_t *parts)
{
    size_t n = json_array_size(w->contents);
    if (json_array_size(parts) == 0) {
        json_decref(parts);
        return;
    }
    json_t *last = n ? json_array_get(w->contents, n - 1) : NULL;
    const char *lr = json_string_value(json_object_get(last, "role"));
    if (lr && strcmp(lr, role) == 0) {
        json_array_extend(json_object_get(last, "parts"), parts);
        json_decref(parts);
        return;
    }
    json_array_append_new(w->contents,
                          json_pack("{ssso}", "role", role, "parts", parts));
}

/* Text of a content value made of a string or text parts (refusal parts
 * count as text when allow_refusal). Returns a heap string, or NULL with
 * *err set. Null content gives "". */
static char *content_text(struct walk *w, const json_t *c, size_t mi,
                          int allow_refusal)
{
    char param[96];
    if (c == NULL || json_is_null(c))
        return gkm_xstrdup("");
    if (json_is_string(c))
        return gkm_xstrndup(json_string_value(c), json_string_length(c));
    if (!json_is_array(c)) {
        snprintf(param, sizeof(param), "messages[%zu].content", mi);
        gkm_oai_err_invalid(w->err, param,
                            "Invalid type for '%s': expected a string or an "
                            "array of text parts.", param);
        return NULL;
    }
    size_t total = 0, i;
    const json_t *p;
    json_array_foreach(c, i, p) {
        const char *t = json_string_value(json_object_get(p, "type"));
        const char *key = "text";
        if (t && allow_refusal && strcmp(t, "refusal") == 0)
            key = "refusal";
        else if (!t || strcmp(t, "text") != 0)
            goto bad;
        if (!json_is_string(json_object_get(p, key)))
            goto bad;
        total += json_string_length(json_object_get(p, key));
    }
    char *out = gkm_xmalloc(total + 1);
    size_t o = 0;
    json_array_foreach(c, i, p) {
        const json_t *s = json_object_get(p, "text");
        if (!json_is_string(s))
            s = json_object_get(p, "refusal");
        memcpy(out + o, json_string_value(s), json_string_length(s));
        o += json_string_length(s);
    }
    out[o] = '\0';
    return out;
bad:
    snprintf(param, sizeof(param), "messages[%zu].content[%zu]", mi, i);
    gkm_oai_err_invalid(w->err, param,
                        "Invalid content part '%s': only text parts are "
                        "allowed in this message.", param);
    return NULL;
}

static const json_t *str_member(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_string(v) ? v : NULL;
}

/* One user content part -> Gemini part (NULL part = skip). Returns 0/-1. */
static int user_part(struct walk *w, const json_t *p, size_t mi, size_t pi,
                     json_t **out)
{
    char param[96];
    const char *why = NULL;
    const char *type = json_string_value(json_object_get(p, "type"));
    *out = NULL;
    snprintf(param, sizeof(param), "messages[%zu].content[%zu]", mi, pi);
    if (type == NULL) {
        gkm_oai_err_invalid(w->err, param, "Missing 'type' in '%s'.", param);
        return -1;
    }
    if (strcmp(type, "text") == 0) {
        const json_t *t = str_member(p, "text");
        if (t == NULL) {
            gkm_oai_err_invalid(w->err, param, "'%s.text' must be a string.",
                                param);
            return -1;
        }
        if (json_string_length(t) > 0)
            *out = json_pack("{sO}", "text", t);
        return 0;
    }
    if (strcmp(type, "image_url") == 0) {
        const json_t *iu = json_object_get(p, "image_url");
        const json_t *url = json_is_string(iu) ? iu : str_member(iu, "url");
        if (url == NULL) {
            gkm_oai_err_invalid(w->err, param,
                                "'%s.image_url.url' must be a string.", param);
            return -1;
        }
        *out = gkm_media_url_part(json_string_value(url),
                                  json_string_length(url), "image/jpeg", &why);
    } else if (strcmp(type, "input_audio") == 0) {
        const json_t *ia = json_object_get(p, "input_audio");
        const json_t *data = str_member(ia, "data");
        const char *fmt = json_string_value(json_object_get(ia, "format"));
        if (data == NULL) {
            gkm_oai_err_invalid(w->err, param,
                                "'%s.input_audio.data' must be a string.",
                                param);
            return -1;
        }
        char mime[48];
        size_t fl = fmt ? strlen(fmt) : 0;
        if (fl == 0 || fl > 16 ||
            strspn(fmt, "abcdefghijklmnopqrstuvwxyz0123456789") != fl) {
            gkm_oai_err_invalid(w->err, param,
                                "'%s.input_audio.format' must be an audio "
                                "format such as \"wav\" or \"mp3\".", param);
            return -1;
        }
        snprintf(mime, sizeof(mime), "audio/%s", fmt);
        *out = gkm_media_inline_part(mime, json_string_value(data),
                                     json_string_length(data), &why);
    } else if (strcmp(type, "file") == 0) {
        const json_t *f = json_object_get(p, "file");
        const json_t *fd = str_member(f, "file_data");
        const json_t *fid = str_member(f, "file_id");
        const json_t *fn = str_member(f, "filename");
        const char *mt = fn ? gkm_media_mime_from_name(json_string_value(fn),
                                                       json_string_length(fn))
                            : NULL;
        if (fd != NULL) {
            *out = gkm_media_inline_part(mt, json_string_value(fd),
                                         json_string_length(fd), &why);
        } else if (fid != NULL) {
            const char *id = json_string_value(fid);
            if (strncmp(id, "files/", 6) != 0 &&
                strncmp(id, "https://", 8) != 0 &&
                strncmp(id, "gs://", 5) != 0) {
                gkm_oai_err_invalid(w->err, param,
                                    "'%s.file.file_id' must be a Gemini Files "
                                    "API name (files/...) or URI.", param);
                return -1;
            }
            *out = gkm_media_url_part(id, json_string_length(fid), mt, &why);
        } else {
            gkm_oai_err_invalid(w->err, param,
                                "'%s.file' needs file_data or file_id.", param);
            return -1;
        }
    } else {
        gkm_oai_err_invalid(w->err, param,
                            "Unsupported content part type '%s' in '%s'.",
                            type, param);
        return -1;
    }
    if (*out == NULL) {
        gkm_oai_err_invalid(w->err, param, "Invalid media in '%s': %s.", param,
                            why ? why : "invalid value");
        return -1;
    }
    return 0;
}

static int user_parts(struct walk *w, const json_t *c, size_t mi, json_t **out)
{
    json_t *parts = json_array();
    *out = NULL;
    if (json_is_string(c)) {
        if (json_string_length(c) > 0)
            json_array_append_new(parts, json_pack("{sO}", "text", c));
    } else if (json_is_array(c)) {
        size_t i;
        const json_t *p;
        json_array_foreach(c, i, p) {
            json_t *part;
            if (user_part(w, p, mi, i, &part) != 0) {
                json_decref(parts);
                return -1;
            }
            if (part)
                json_array_append_new(parts, part);
        }
    } else if (c != NULL && !json_is_null(c)) {
        char param[64];
        snprintf(param, sizeof(param), "messages[%zu].content", mi);
        gkm_oai_err_invalid(w->err, param,
                            "Invalid type for '%s': expected a string or an "
                            "array of content parts.", param);
        json_decref(parts);
        return -1;
    }
    *out = parts;
    return 0;
}

/* Emit the answered calls as one user turn; every call must be answered. */
static int flush_tools(struct walk *w, size_t mi)
{
    if (!w->tool_run)
        return 0;
    json_t *parts = json_array();
    for (size_t i = 0; i < w->ncalls; i++) {
        if (w->calls[i].answer == NULL) {
            json_decref(parts);
            char where[48] = "at the end of 'messages'";
            if (mi != SIZE_MAX)
                snprintf(where, sizeof(where), "before messages[%zu]", mi);
            gkm_oai_err_invalid(
                w->err, "messages",
                "An assistant message with 'tool_calls' must be followed by "
                "tool messages responding to each 'tool_call_id'. Missing a "
                "response for tool call '%s' (%s) %s.",
                w->calls[i].id ? w->calls[i].id : "", w->calls[i].name, where);
            return -1;
        }
        json_array_append(parts, w->calls[i].answer);
    }
    add_content(w, "user", parts);
    calls_reset(w);
    w->tool_run = 0;
    return 0;
}

/* A non-tool message follows: the current model turn must not have
 * unanswered calls (unless nothing answered it yet and this is another
 * assistant message, which merges into the same turn). */
static int end_turn(struct walk *w, size_t mi, int assistant)
{
    if (w->tool_run)
        return flush_tools(w, mi);
    if (w->ncalls > 0 && !assistant) {
        gkm_oai_err_invalid(
            w->err, "messages",
            "An assistant message with 'tool_calls' must be followed by tool "
            "messages responding to each 'tool_call_id' (messages[%zu] has "
            "calls with no responses, e.g. '%s').",
            w->calls_msg, w->calls[0].id ? w->calls[0].id : w->calls[0].name);
        return -1;
    }
    return 0;
}

static char *id_base(const char *id, size_t len, const char **sig,
                     size_t *siglen)
{
    size_t sl = strlen(GKM_OAI_SIG_SEP);
    for (size_t i = 0; i + sl <= len; i++) {
        if (memcmp(id + i, GKM_OAI_SIG_SEP, sl) == 0) {
            *sig = id + i + sl;
            *siglen = len - i - sl;
            return gkm_xstrndup(id, i);
        }
    }
    *sig = NULL;
    *siglen = 0;
    return gkm_xstrndup(id, len);
}

/* One tool call (or legacy function_call when tc is the function object
 * itself) -> functionCall part; records the call. */
static int add_call(struct walk *w, const json_t *tc, const json_t *fn,
                    const char *param, json_t *parts)
{
    const json_t *name = str_member(fn, "name");
    const json_t *args = json_object_get(fn, "arguments");
    const json_t *id = tc ? str_member(tc, "id") : NULL;
    json_t *argv = NULL;
    if (name == NULL || json_string_length(name) == 0) {
        gkm_oai_err_invalid(w->err, param, "'%s' needs a function name.",
                            param);
        return -1;
    }
    if (w->ncalls >= CALLS_MAX) {
        gkm_oai_err_invalid(w->err, param, "Too many tool calls in one turn.");
        return -1;
    }
    if (args == NULL || json_is_null(args) ||
        (json_is_string(args) && json_string_length(args) == 0)) {
        argv = json_object();
    } else if (json_is_object(args)) {
        argv = json_deep_copy(args);
    } else if (json_is_string(args)) {
        argv = json_loadb(json_string_value(args), json_string_length(args),
                          0, NULL);
    }
    if (!json_is_object(argv)) {
        json_decref(argv);
        gkm_oai_err_invalid(w->err, param,
                            "'%s.arguments' is not a JSON object string.",
                            param);
        return -1;
    }
    json_t *call = json_object();
    char *gid = NULL;
    const char *sig = NULL;
    size_t siglen = 0;
    if (id != NULL) {
        char *base = id_base(json_string_value(id), json_string_length(id),
                             &sig, &siglen);
        /* ids we or another OpenAI server made up ("call_...") mean nothing
         * to Gemini; anything else came from Gemini and is echoed. */
        if (base[0] != '\0' && strncmp(base, "call_", 5) != 0)
            gid = base;
        else
            free(base);
    }
    if (gid)
        json_object_set_new(call, "id", json_string(gid));
    json_object_set(call, "name", (json_t *)name);
    json_object_set_new(call, "args", argv);
    json_t *part = json_pack("{so}", "functionCall", call);
    const json_t *ec = json_object_get(
        json_object_get(tc ? json_object_get(tc, "extra_content") : NULL,
                        "google"),
        "thought_signature");
    if (sig != NULL && siglen > 0)
        json_object_set_new(part, "thoughtSignature",
                            json_stringn(sig, siglen));
    else if (json_is_string(ec) && json_string_length(ec) > 0)
        json_object_set(part, "thoughtSignature", (json_t *)ec);
    json_array_append_new(parts, part);

    if (w->ncalls == w->acalls) {
        w->acalls = w->acalls ? w->acalls * 2 : 8;
        w->calls = gkm_xrealloc(w->calls, w->acalls * sizeof(*w->calls));
    }
    struct call *c = &w->calls[w->ncalls++];
    c->id = id ? gkm_xstrndup(json_string_value(id), json_string_length(id))
               : NULL;
    c->name = gkm_xstrdup(json_string_value(name));
    c->gid = gid;
    c->answer = NULL;
    return 0;
}

static int assistant_msg(struct walk *w, const json_t *m, size_t mi)
{
    char param[96];
    json_t *parts = json_array();
    size_t first_call = 0, i;
    int have_calls = 0, have_sig = 0;
    const json_t *tcs = json_object_get(m, "tool_calls");
    const json_t *fc = json_object_get(m, "function_call");
    char *text = content_text(w, json_object_get(m, "content"), mi, 1);
    if (text == NULL)
        goto fail;
    if (text[0])
        json_array_append_new(parts, json_pack("{ss}", "text", text));
    free(text);
    if (w->ncalls == 0)
        w->calls_msg = mi;
    first_call = json_array_size(parts);
    if (tcs != NULL && !json_is_null(tcs)) {
        const json_t *tc;
        snprintf(param, sizeof(param), "messages[%zu].tool_calls", mi);
        if (!json_is_array(tcs)) {
            gkm_oai_err_invalid(w->err, param, "'%s' must be an array.", param);
            goto fail;
        }
        json_array_foreach(tcs, i, tc) {
            const char *type = json_string_value(json_object_get(tc, "type"));
            snprintf(param, sizeof(param), "messages[%zu].tool_calls[%zu]", mi,
                     i);
            if (!json_is_object(tc) ||
                (type && strcmp(type, "function") != 0)) {
                gkm_oai_err_invalid(w->err, param,
                                    "'%s' must be a function tool call.",
                                    param);
                goto fail;
            }
            snprintf(param, sizeof(param),
                     "messages[%zu].tool_calls[%zu].function", mi, i);
            if (add_call(w, tc, json_object_get(tc, "function"), param,
                         parts) != 0)
                goto fail;
            have_calls = 1;
        }
    }
    if (json_is_object(fc)) {
        snprintf(param, sizeof(param), "messages[%zu].function_call", mi);
        if (add_call(w, NULL, fc, param, parts) != 0)
            goto fail;
        have_calls = 1;
    }
    for (i = first_call; i < json_array_size(parts); i++)
        if (json_object_get(json_array_get(parts, i), "thoughtSignature"))
            have_sig = 1;
    if (have_calls && !have_sig && w->gemini3)
        json_object_set_new(json_array_get(parts, first_call),
                            "thoughtSignature", json_string(GKM_OAI_SIG_SKIP));
    add_content(w, "model", parts);
    return 0;
fail:
    json_decref(parts);
    return -1;
}

/* Build the functionResponse.response object from a tool result text. */
static json_t *response_object(const char *text, size_t len)
{
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY, NULL);
    if (json_is_object(v))
        return v;
    if (v == NULL)
        v = json_stringn(text, len);
    return json_pack("{so}", "output", v);
}

static int tool_msg(struct walk *w, const json_t *m, size_t mi, int legacy)
{
    char param[64];
    const json_t *idv = str_member(m, "tool_call_id");
    const json_t *namev = str_member(m, "name");
    struct call *c = NULL;
    snprintf(param, sizeof(param), "messages[%zu]", mi);
    if (w->ncalls == 0) {
        gkm_oai_err_invalid(w->err, param,
                            "'%s' (role '%s') does not follow an assistant "
                            "message with tool calls.", param,
                            legacy ? "function" : "tool");
        return -1;
    }
    if (!legacy && idv != NULL) {
        const char *id = json_string_value(idv);
        for (size_t i = 0; i < w->ncalls && c == NULL; i++)
            if (w->calls[i].id && strcmp(w->calls[i].id, id) == 0)
                c = &w->calls[i];
        if (c == NULL) {
            /* The client may have kept only the base of a signed id. */
            const char *sig;
            size_t sl;
            char *base = id_base(id, json_string_length(idv), &sig, &sl);
            for (size_t i = 0; i < w->ncalls && c == NULL; i++) {
                const char *s2;
                size_t l2;
                char *b2 = w->calls[i].id
                               ? id_base(w->calls[i].id, strlen(w->calls[i].id),
                                         &s2, &l2)
                               : NULL;
                if (b2 && strcmp(b2, base) == 0)
                    c = &w->calls[i];
                free(b2);
            }
            free(base);
        }
        if (c == NULL) {
            snprintf(param, sizeof(param), "messages[%zu].tool_call_id", mi);
            gkm_oai_err_invalid(w->err, param,
                                "Unknown tool_call_id '%s' in '%s': it answers "
                                "no tool call of the preceding assistant "
                                "message.", id, param);
            return -1;
        }
    } else if (namev != NULL) {
        for (size_t i = 0; i < w->ncalls && c == NULL; i++)
            if (w->calls[i].answer == NULL &&
                strcmp(w->calls[i].name, json_string_value(namev)) == 0)
                c = &w->calls[i];
        if (c == NULL) {
            snprintf(param, sizeof(param), "messages[%zu].name", mi);
            gkm_oai_err_invalid(w->err, param,
                                "'%s' names no unanswered call of the "
                                "preceding assistant message.", param);
            return -1;
        }
    } else {
        snprintf(param, sizeof(param), "messages[%zu].tool_call_id", mi);
        gkm_oai_err_invalid(w->err, param, "Missing '%s'.", param);
        return -1;
    }
    if (c->answer != NULL) {
        gkm_oai_err_invalid(w->err, param,
                            "Duplicate response to tool call '%s' in '%s'.",
                            c->id ? c->id : c->name, param);
        return -1;
    }
    char *text = content_text(w, json_object_get(m, "content"), mi, 0);
    if (text == NULL)
        return -1;
    json_t *fr = json_object();
    if (c->gid)
        json_object_set_new(fr, "id", json_string(c->gid));
    json_object_set_new(fr, "name", json_string(c->name));
    json_object_set_new(fr, "response", response_object(text, strlen(text)));
    free(text);
    c->answer = json_pack("{so}", "functionResponse", fr);
    w->tool_run = 1;
    return 0;
}

static int system_msg(struct walk *w, const json_t *m, size_t mi)
{
    const json_t *c = json_object_get(m, "content");
    if (json_is_array(c)) {
        /* Keep each text part; non-text parts are dropped (Gemini's system
         * instruction is text only). */
        size_t i;
        const json_t *p;
        json_array_foreach(c, i, p) {
            const json_t *t = str_member(p, "text");
            if (t && json_string_length(t) > 0)
                json_array_append_new(w->sys_parts,
                                      json_pack("{sO}", "text", t));
        }
        return 0;
    }
    char *text = content_text(w, c, mi, 0);
    if (text == NULL)
        return -1;
    if (text[0])
        json_array_append_new(w->sys_parts, json_pack("{ss}", "text", text));
    free(text);
    return 0;
}

int gkm_oai_messages_to_contents(const json_t *messages, const char *model,
                                 json_t *body, struct gkm_oai_err *err)
{
    struct walk w;
    int rc = -1;
    size_t i;
    const json_t *m;
    memset(&w, 0, sizeof(w));
    w.contents = json_array();
    w.sys_parts = json_array();
    w.gemini3 = gkm_oai_model_is_gemini3(model);
    w.err = err;
    if (!json_is_array(messages) || json_array_size(messages) == 0) {
        gkm_oai_err_invalid(err, "messages",
                            "'messages' must be a non-empty array.");
        goto out;
    }
    json_array_foreach(messages, i, m) {
        char param[64];
        const char *role = json_string_value(json_object_get(m, "role"));
        snprintf(param, sizeof(param), "messages[%zu].role", i);
        if (!json_is_object(m) || role == NULL) {
            gkm_oai_err_invalid(err, param,
                                "Missing or invalid '%s'.", param);
            goto out;
        }
        int r;
        if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
            r = system_msg(&w, m, i);
        } else if (strcmp(role, "user") == 0) {
            json_t *parts = NULL;
            r = end_turn(&w, i, 0);
            if (r == 0)
                r = user_parts(&w, json_object_get(m, "content"), i, &parts);
            if (r == 0)
                add_content(&w, "user", parts);
        } else if (strcmp(role, "assistant") == 0) {
            r = end_turn(&w, i, 1);
            if (r == 0)
                r = assistant_msg(&w, m, i);
        } else if (strcmp(role, "tool") == 0 || strcmp(role, "function") == 0) {
            r = tool_msg(&w, m, i, role[0] == 'f');
        } else {
            gkm_oai_err_invalid(err, param,
                                "Invalid value for '%s': '%s' (expected "
                                "system, developer, user, assistant, tool or "
                                "function).", param, role);
            r = -1;
        }
        if (r != 0)
            goto out;
    }
    if (flush_tools(&w, SIZE_MAX) != 0)
        goto out;
    if (json_array_size(w.contents) == 0)
        json_array_append_new(w.contents,
                              json_pack("{ss s[{ss}]}", "role", "user",
                                        "parts", "text", " "));
    json_object_set(body, "contents", w.contents);
    if (json_array_size(w.sys_parts) > 0)
        json_object_set_new(body, "systemInstruction",
                            json_pack("{sO}", "parts", w.sys_parts));
    rc = 0;
out:
    calls_reset(&w);
    free(w.calls);
    json_decref(w.contents);
    json_decref(w.sys_parts);
    return rc;
}
