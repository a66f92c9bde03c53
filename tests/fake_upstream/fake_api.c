/* Fake Gemini upstream: the Gemini API surface (gemini-wire.md §1, §4) and
 * a minimal OpenAI-compatible surface (§8.10). Output is deterministic:
 * the answer text is "echo: " + the text of the last user turn. */
#include "fake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CT_JSON "application/json; charset=UTF-8"
#define CT_SSE "text/event-stream"
#define HIGH_DEMAND                                                            \
    "This model is currently experiencing high demand. Spikes in demand are "  \
    "usually temporary. Please try again later."

/* ------------------------------------------------------------ string
 * builder */

struct sb {
    char *p;
    size_t n, cap;
};

static void sb_add(struct sb *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2 + 64;
        char *p = realloc(b->p, cap);
        if (!p)
            abort();
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_adds(struct sb *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static char *sb_take(struct sb *b)
{
    if (!b->p)
        sb_add(b, "", 0);
    char *p = b->p;
    b->p = NULL;
    b->n = b->cap = 0;
    return p;
}

/* ------------------------------------------------------------ models */

struct model_info {
    const char *name, *display, *desc;
    long in, out;
    const char *methods[6];
    int thinking;
};

static const struct model_info MODELS[] = {
    {"gemini-2.5-flash",
     "Gemini 2.5 Flash",
     "Mid-size multimodal model, 1M token context.",
     1048576,
     65536,
     {"generateContent", "countTokens", "createCachedContent",
      "batchGenerateContent", NULL},
     1},
    {"gemini-2.5-pro",
     "Gemini 2.5 Pro",
     "Most capable 2.5 model.",
     1048576,
     65536,
     {"generateContent", "countTokens", "createCachedContent",
      "batchGenerateContent", NULL},
     1},
    {"gemini-2.5-flash-lite",
     "Gemini 2.5 Flash-Lite",
     "Smallest and most cost effective 2.5 model.",
     1048576,
     65536,
     {"generateContent", "countTokens", "createCachedContent",
      "batchGenerateContent", NULL},
     1},
    {"gemini-3-pro-preview",
     "Gemini 3 Pro Preview",
     "Gemini 3 Pro preview model.",
     1048576,
     65536,
     {"generateContent", "countTokens", "createCachedContent",
      "batchGenerateContent", NULL},
     1},
    {"gemini-embedding-001",
     "Gemini Embedding 001",
     "Obtain a distributed representation of a text.",
     2048,
     1,
     {"embedContent", "countTextTokens", "countTokens", NULL},
     0},
    {"gemma-3-27b-it",
     "Gemma 3 27B",
     "Open model.",
     131072,
     8192,
     {"generateContent", "countTokens", NULL},
     0},
};
#define NMODELS (sizeof MODELS / sizeof MODELS[0])

static int is_embedding_model(const char *m)
{
    return strstr(m, "embedding") != NULL;
}

static json_t *model_json(const char *name)
{
    const struct model_info *mi = NULL;
    for (size_t i = 0; i < NMODELS; i++)
        if (!strcmp(MODELS[i].name, name))
            mi = &MODELS[i];
    char *full = xasprintf("models/%s", name);
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(full));
    free(full);
    json_object_set_new(o, "version", json_string("001"));
    json_object_set_new(o, "displayName", json_string(mi ? mi->display : name));
    json_object_set_new(o, "description",
                        json_string(mi ? mi->desc : "Fake model."));
    int emb = is_embedding_model(name);
    json_object_set_new(o, "inputTokenLimit",
                        json_integer(mi    ? mi->in
                                     : emb ? 2048
                                           : 1048576));
    json_object_set_new(o, "outputTokenLimit",
                        json_integer(mi    ? mi->out
                                     : emb ? 1
                                           : 65536));
    json_t *m = json_array();
    if (mi) {
        for (size_t i = 0; mi->methods[i]; i++)
            json_array_append_new(m, json_string(mi->methods[i]));
    } else if (emb) {
        json_array_append_new(m, json_string("embedContent"));
        json_array_append_new(m, json_string("countTokens"));
    } else {
        json_array_append_new(m, json_string("generateContent"));
        json_array_append_new(m, json_string("countTokens"));
    }
    json_object_set_new(o, "supportedGenerationMethods", m);
    if (!emb) {
        json_object_set_new(o, "temperature", json_integer(1));
        json_object_set_new(o, "topP", json_real(0.95));
        json_object_set_new(o, "topK", json_integer(64));
        json_object_set_new(o, "maxTemperature", json_integer(2));
        json_object_set_new(o, "thinking", json_boolean(mi ? mi->thinking : 1));
    }
    return o;
}

/* Page tokens are opaque base64url of "o:<offset>". Returns -1 if bad. */
static long page_offset(const char *tok)
{
    if (!tok || !*tok)
        return 0;
    size_t n;
    unsigned char *d = b64_decode(tok, &n);
    if (!d)
        return -1;
    long off = -1;
    if (n > 2 && d[0] == 'o' && d[1] == ':')
        off = strtol((const char *)d + 2, NULL, 10);
    free(d);
    return off;
}

char *api_page_token(long off)
{
    char raw[32];
    snprintf(raw, sizeof raw, "o:%ld", off);
    return b64_encode((const unsigned char *)raw, strlen(raw), 1, 0);
}

char *api_query(const struct rctx *rc, const char *name)
{
    return query_get(rc->query, name);
}

/* pageSize/pageToken; returns 0 and fills off/size, or sends 400. */
int api_paging(struct rctx *rc, long def, long max, long *off, long *size)
{
    char *ps = api_query(rc, "pageSize"), *pt = api_query(rc, "pageToken");
    *size = ps ? strtol(ps, NULL, 10) : def;
    if (*size <= 0)
        *size = def;
    if (*size > max)
        *size = max;
    *off = page_offset(pt);
    free(ps);
    free(pt);
    if (*off < 0) {
        reply_error(rc, err_invalid_argument("Invalid page token."));
        return -1;
    }
    return 0;
}

static void h_models_list(struct rctx *rc)
{
    long off, size;
    if (api_paging(rc, 50, 1000, &off, &size))
        return;
    json_t *arr = json_array();
    for (long i = off; i < (long)NMODELS && i < off + size; i++)
        json_array_append_new(arr, model_json(MODELS[i].name));
    json_t *o = json_pack("{s:o}", "models", arr);
    if (off + size < (long)NMODELS) {
        char *t = api_page_token(off + size);
        json_object_set_new(o, "nextPageToken", json_string(t));
        free(t);
    }
    reply_json(rc, 200, o);
}

/* ------------------------------------------------------------ request text */

static void add_texts(const json_t *content, struct sb *b)
{
    json_t *parts = jget(content, "parts"), *p;
    size_t i;
    json_array_foreach(parts, i, p)
    {
        const char *t = jstr(p, "text");
        if (t)
            sb_adds(b, t);
    }
}

static size_t words_of_content(const json_t *content)
{
    json_t *parts = jget(content, "parts"), *p;
    size_t i, w = 0;
    json_array_foreach(parts, i, p)
    {
        json_t *t = jget(p, "text");
        if (json_is_string(t))
            w += count_words(json_string_value(t), json_string_length(t));
    }
    return w;
}

long api_prompt_words(const json_t *req)
{
    size_t w = 0, i;
    json_t *c;
    json_array_foreach(jget(req, "contents"), i, c) w += words_of_content(c);
    w += words_of_content(jget(req, "systemInstruction"));
    return (long)w;
}

static const char *role_of(const json_t *c)
{
    const char *r = jstr(c, "role");
    return r ? r : "user";
}

char *json_get_text_of_last_user(const json_t *contents)
{
    size_t n = json_array_size(contents);
    while (n-- > 0) {
        json_t *c = json_array_get(contents, n);
        if (strcmp(role_of(c), "user") != 0)
            continue;
        struct sb b = {0};
        add_texts(c, &b);
        if (b.n == 0) {
            json_t *parts = jget(c, "parts"), *p;
            size_t i;
            json_array_foreach(parts, i, p)
            {
                const char *nm = jstr(jget(p, "functionResponse"), "name");
                if (nm) {
                    sb_adds(&b, b.n ? "," : "[functionResponse:");
                    sb_adds(&b, nm);
                }
            }
            if (b.n)
                sb_adds(&b, "]");
        }
        return sb_take(&b);
    }
    return xstrdup("");
}

/* Parses the body as a JSON object; on failure sends the Google-style 400
 * and returns NULL. */
json_t *api_parse_body(struct rctx *rc)
{
    json_error_t je;
    json_t *j = json_loadb((const char *)rc->body, rc->body_len, 0, &je);
    if (!j) {
        char *d = xasprintf("Unexpected token.\n%.40s\n^ (%s at %d:%d)",
                            rc->body_len ? (const char *)rc->body : "", je.text,
                            je.line, je.column);
        for (char *p = d; *p; p++)
            if ((unsigned char)*p < 0x20 && *p != '\n')
                *p = ' ';
        json_t *e = err_bad_json(d);
        free(d);
        /* message strings must be valid UTF-8 for jansson: fall back */
        if (!json_string_value(
                json_object_get(json_object_get(e, "error"), "message"))) {
            json_decref(e);
            e = err_bad_json("Unexpected token.");
        }
        reply_error(rc, e);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        reply_error(rc, err_bad_json("Root element must be a message."));
        return NULL;
    }
    return j;
}

/* ------------------------------------------------------------ generation */

struct gen {
    char model[128];
    char rid[32];
    char *text; /* answer (NULL for a function call) */
    size_t tlen;
    int thoughts;
    long prompt, cand, thoughts_tok, cached;
    char *fname, *fsig;
};

static void gen_free(struct gen *g)
{
    free(g->text);
    free(g->fname);
    free(g->fsig);
}

static json_t *usage_json(const struct gen *g, long cand)
{
    json_t *u = json_object();
    json_object_set_new(u, "promptTokenCount", json_integer(g->prompt));
    if (cand > 0)
        json_object_set_new(u, "candidatesTokenCount", json_integer(cand));
    json_object_set_new(u, "totalTokenCount",
                        json_integer(g->prompt + cand + g->thoughts_tok));
    if (g->cached > 0)
        json_object_set_new(u, "cachedContentTokenCount",
                            json_integer(g->cached));
    json_object_set_new(u, "promptTokensDetails",
                        json_pack("[{s:s,s:I}]", "modality", "TEXT",
                                  "tokenCount",
                                  (json_int_t)(g->prompt - g->cached)));
    if (g->thoughts_tok > 0)
        json_object_set_new(u, "thoughtsTokenCount",
                            json_integer(g->thoughts_tok));
    return u;
}

static json_t *response_json(const struct gen *g, json_t *parts,
                             const char *finish, long cand, int fmsg)
{
    json_t *content = json_object();
    if (parts)
        json_object_set_new(content, "parts", parts);
    json_object_set_new(content, "role", json_string("model"));
    json_t *cd = json_object();
    json_object_set_new(cd, "content", content);
    if (finish)
        json_object_set_new(cd, "finishReason", json_string(finish));
    if (fmsg)
        json_object_set_new(cd, "finishMessage",
                            json_string("Model generated function call(s)."));
    json_object_set_new(cd, "index", json_integer(0));
    json_t *o = json_object();
    json_object_set_new(o, "candidates", json_pack("[o]", cd));
    json_object_set_new(o, "usageMetadata", usage_json(g, cand));
    json_object_set_new(o, "modelVersion", json_string(g->model));
    json_object_set_new(o, "responseId", json_string(g->rid));
    return o;
}

static json_t *thought_part(void)
{
    return json_pack("{s:s,s:b}", "text", "thinking...", "thought", 1);
}

static json_t *fcall_part(const struct gen *g)
{
    return json_pack("{s:{s:s,s:{}},s:s}", "functionCall", "name", g->fname,
                     "args", "thoughtSignature", g->fsig);
}

static json_t *text_part(const char *s, size_t n)
{
    json_t *t = json_stringn(s, n);
    return json_pack("{s:o}", "text", t ? t : json_string(""));
}

static json_t *full_response(const struct gen *g)
{
    json_t *parts = json_array();
    if (g->thoughts)
        json_array_append_new(parts, thought_part());
    if (g->fname)
        json_array_append_new(parts, fcall_part(g));
    else
        json_array_append_new(parts, text_part(g->text, g->tlen));
    return response_json(g, parts, "STOP", g->cand, g->fname != NULL);
}

/* Hot path: the plain GenerateContentResponse rendered directly (same
 * layout as jansson's 2-space indentation) instead of building and dumping
 * a json_t tree. */
static void sb_jstr(struct sb *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    sb_add(b, "\"", 1);
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        sb_add(b, s + start, i - start);
        start = i + 1;
        char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
        size_t el = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            el = 6;
        }
        sb_add(b, esc, el);
    }
    sb_add(b, s + start, n - start);
    sb_add(b, "\"", 1);
}

static void sb_num(struct sb *b, long v)
{
    char t[24];
    int n = snprintf(t, sizeof t, "%ld", v);
    sb_add(b, t, (size_t)n);
}

static char *render_full_fast(const struct gen *g, size_t *len)
{
    struct sb b = {0};
    sb_adds(&b, "{\n  \"candidates\": [\n    {\n      \"content\": {\n"
                "        \"parts\": [\n");
    if (g->thoughts)
        sb_adds(&b, "          {\n            \"text\": \"thinking...\",\n"
                    "            \"thought\": true\n          },\n");
    if (g->fname) {
        sb_adds(&b, "          {\n            \"functionCall\": {\n"
                    "              \"name\": ");
        sb_jstr(&b, g->fname, strlen(g->fname));
        sb_adds(&b, ",\n              \"args\": {}\n            },\n"
                    "            \"thoughtSignature\": ");
        sb_jstr(&b, g->fsig, strlen(g->fsig));
        sb_adds(&b, "\n          }\n");
    } else {
        sb_adds(&b, "          {\n            \"text\": ");
        sb_jstr(&b, g->text, g->tlen);
        sb_adds(&b, "\n          }\n");
    }
    sb_adds(&b, "        ],\n        \"role\": \"model\"\n      },\n"
                "      \"finishReason\": \"STOP\",\n");
    if (g->fname)
        sb_adds(&b, "      \"finishMessage\": \"Model generated function "
                    "call(s).\",\n");
    sb_adds(&b, "      \"index\": 0\n    }\n  ],\n  \"usageMetadata\": {\n"
                "    \"promptTokenCount\": ");
    sb_num(&b, g->prompt);
    sb_adds(&b, ",\n    \"candidatesTokenCount\": ");
    sb_num(&b, g->cand);
    sb_adds(&b, ",\n    \"totalTokenCount\": ");
    sb_num(&b, g->prompt + g->cand + g->thoughts_tok);
    if (g->cached > 0) {
        sb_adds(&b, ",\n    \"cachedContentTokenCount\": ");
        sb_num(&b, g->cached);
    }
    sb_adds(&b, ",\n    \"promptTokensDetails\": [\n      {\n"
                "        \"modality\": \"TEXT\",\n        \"tokenCount\": ");
    sb_num(&b, g->prompt - g->cached);
    sb_adds(&b, "\n      }\n    ]");
    if (g->thoughts_tok > 0) {
        sb_adds(&b, ",\n    \"thoughtsTokenCount\": ");
        sb_num(&b, g->thoughts_tok);
    }
    sb_adds(&b, "\n  },\n  \"modelVersion\": ");
    sb_jstr(&b, g->model, strlen(g->model));
    sb_adds(&b, ",\n  \"responseId\": ");
    sb_jstr(&b, g->rid, strlen(g->rid));
    sb_adds(&b, "\n}");
    *len = b.n;
    return sb_take(&b);
}

static json_t *blocked_response(const struct gen *g, const char *reason)
{
    json_t *o = json_object();
    json_object_set_new(o, "promptFeedback",
                        json_pack("{s:s}", "blockReason", reason));
    json_object_set_new(o, "usageMetadata",
                        json_pack("{s:I,s:I}", "promptTokenCount",
                                  (json_int_t)g->prompt, "totalTokenCount",
                                  (json_int_t)g->prompt));
    json_object_set_new(o, "modelVersion", json_string(g->model));
    json_object_set_new(o, "responseId", json_string(g->rid));
    return o;
}

static json_t *max_tokens_response(struct gen *g)
{
    if (g->thoughts_tok == 0)
        g->thoughts_tok = 64;
    return response_json(g, NULL, "MAX_TOKENS", 0, 0);
}

/* Builds the generation from a GenerateContentRequest. */
static void gen_build(struct rctx *rc, const json_t *req, const char *model,
                      long cached, struct gen *g)
{
    memset(g, 0, sizeof *g);
    snprintf(g->model, sizeof g->model, "%s", model);
    make_response_id(rc->F, g->rid);
    g->cached = cached;
    long pw = api_prompt_words(req);
    g->prompt = (pw < 1 ? 1 : pw) + cached;
    json_t *tc = jget(jget(req, "generationConfig"), "thinkingConfig");
    g->thoughts = json_is_true(jget(tc, "includeThoughts"));
    if (g->thoughts)
        g->thoughts_tok = 1;
    char *last = json_get_text_of_last_user(jget(req, "contents"));
    /* function call? */
    const char *mode =
        jstr(jget(jget(req, "toolConfig"), "functionCallingConfig"), "mode");
    if (strstr(last, "call tool") && !(mode && !strcasecmp(mode, "NONE"))) {
        json_t *tools = jget(req, "tools"), *t;
        size_t i;
        json_array_foreach(tools, i, t)
        {
            json_t *decls = jget(t, "functionDeclarations");
            const char *nm = jstr(json_array_get(decls, 0), "name");
            if (nm) {
                g->fname = xstrdup(nm);
                break;
            }
        }
    }
    if (g->fname) {
        g->fsig = make_thought_signature(g->fname, next_seq(rc->F));
        g->cand = 5;
    } else {
        g->text = xasprintf("echo: %s", last);
        g->tlen = strlen(g->text);
        long cw = (long)count_words(g->text, g->tlen);
        g->cand = cw < 1 ? 1 : cw;
    }
    free(last);
}

/* ------------------------------------------------------------ stream
 * framing */

static void frame(struct sb *b, const json_t *obj, int sse, int first)
{
    size_t len;
    char *s = json_to_str(obj, !sse, &len);
    if (sse) {
        sb_add(b, "data: ", 6);
        sb_add(b, s, len);
        sb_add(b, "\r\n\r\n", 4);
    } else {
        sb_adds(b, first ? "[" : ",\r\n");
        sb_add(b, s, len);
    }
    free(s);
}

struct plist {
    struct piece *p;
    size_t n, cap;
};

static void pl_add_sb(struct plist *l, struct sb *b)
{
    if (l->n == l->cap) {
        l->cap = l->cap * 2 + 4;
        struct piece *p = realloc(l->p, l->cap * sizeof *p);
        if (!p)
            abort();
        l->p = p;
    }
    l->p[l->n].len = b->n;
    l->p[l->n].data = sb_take(b);
    l->n++;
}

/* Appends the stream chunks of g to l: total n chunks, of which only the
 * first `emit` are produced; returns the number produced. */
static size_t stream_chunks(const struct gen *g, size_t n, size_t emit, int sse,
                            struct plist *l)
{
    if (g->fname || n < 1)
        n = 1;
    if (!g->fname) {
        size_t chars = utf8_chars(g->text, g->tlen);
        if (n > chars)
            n = chars ? chars : 1;
    }
    if (emit > n)
        emit = n;
    for (size_t i = 0; i < emit; i++) {
        json_t *parts = json_array();
        if (i == 0 && g->thoughts)
            json_array_append_new(parts, thought_part());
        int last = i + 1 == n;
        long cand;
        if (g->fname) {
            json_array_append_new(parts, fcall_part(g));
            cand = g->cand;
        } else {
            size_t chars = utf8_chars(g->text, g->tlen);
            size_t a = utf8_offset(g->text, g->tlen, chars * i / n);
            size_t e = last
                           ? g->tlen
                           : utf8_offset(g->text, g->tlen, chars * (i + 1) / n);
            json_array_append_new(parts, text_part(g->text + a, e - a));
            cand = last ? g->cand : (long)count_words(g->text, e);
            if (cand < 1)
                cand = 1;
        }
        json_t *o = response_json(g, parts, last ? "STOP" : NULL, cand,
                                  last && g->fname);
        struct sb b = {0};
        frame(&b, o, sse, i == 0);
        if (last && !sse)
            sb_adds(&b, "]");
        json_decref(o);
        pl_add_sb(l, &b);
    }
    return emit;
}

static json_t *stream_error_obj(struct rctx *rc)
{
    json_t *rp = rc->rule_params;
    int code = 503;
    json_t *c = json_object_get(rp, "code");
    if (json_is_integer(c))
        code = (int)json_integer_value(c);
    const char *msg = json_string_value(json_object_get(rp, "message"));
    json_t *e = gerr(code, msg ? msg : HIGH_DEMAND, NULL);
    return e;
}

static long rparam(struct rctx *rc, const char *k, long def)
{
    json_t *v = json_object_get(rc->rule_params, k);
    return json_is_integer(v) ? (long)json_integer_value(v) : def;
}

/* ------------------------------------------------------------ big
 * responses, produced lazily */

static const char BIG_PATTERN[] =
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod "
    "tempor incididunt ut labore et dolore magna aliqua ";

struct big_st {
    int mode; /* 0 = plain JSON body, 1 = SSE, 2 = JSON array */
    size_t total, done, chunk;
    int phase; /* plain: 0 prefix, 1 text, 2 suffix, 3 end */
    char *prefix, *suffix;
    struct gen g;
    size_t idx;
};

static void big_text(struct big_st *s, char *out, size_t n)
{
    size_t pl = sizeof BIG_PATTERN - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = BIG_PATTERN[(s->done + i) % pl];
}

static int big_next(void *st, struct evbuffer *out)
{
    struct big_st *s = st;
    if (s->mode == 0) {
        if (s->phase == 0) {
            evbuffer_add(out, s->prefix, strlen(s->prefix));
            s->phase = 1;
            return 1;
        }
        if (s->phase == 1 && s->done < s->total) {
            size_t n = s->total - s->done;
            if (n > s->chunk)
                n = s->chunk;
            struct evbuffer_iovec v;
            if (evbuffer_reserve_space(out, (ev_ssize_t)n, &v, 1) < 1)
                abort();
            big_text(s, v.iov_base, n);
            v.iov_len = n;
            evbuffer_commit_space(out, &v, 1);
            s->done += n;
            return 1;
        }
        if (s->phase <= 2) {
            evbuffer_add(out, s->suffix, strlen(s->suffix));
            s->phase = 3;
            return 1;
        }
        return 0;
    }
    if (s->phase == 3)
        return 0;
    size_t n = s->total - s->done;
    if (n > s->chunk)
        n = s->chunk;
    char *tmp = malloc(n + 1);
    if (!tmp)
        abort();
    big_text(s, tmp, n);
    s->done += n;
    int last = s->done >= s->total;
    long cand = (long)(s->done + 5) / 6;
    if (last)
        cand = s->g.cand;
    json_t *parts = json_pack("[o]", text_part(tmp, n));
    free(tmp);
    json_t *o = response_json(&s->g, parts, last ? "STOP" : NULL, cand, 0);
    struct sb b = {0};
    frame(&b, o, s->mode == 1, s->idx == 0);
    if (last && s->mode == 2)
        sb_adds(&b, "]");
    json_decref(o);
    evbuffer_add(out, b.p, b.n);
    free(b.p);
    s->idx++;
    if (last)
        s->phase = 3;
    return 1;
}

static void big_free(void *st)
{
    struct big_st *s = st;
    free(s->prefix);
    free(s->suffix);
    gen_free(&s->g);
    free(s);
}

static void reply_big(struct rctx *rc, struct gen *g)
{
    long bytes = rparam(rc, "bytes", 1 << 20);
    if (bytes < 1)
        bytes = 1;
    struct big_st *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->g = *g;
    memset(g, 0, sizeof *g); /* ownership moved */
    s->total = (size_t)bytes;
    s->g.cand = (long)(s->total + 5) / 6;
    s->mode = rc->stream ? (rc->sse ? 1 : 2) : 0;
    s->chunk = (size_t)rparam(rc, "chunk_bytes", rc->stream ? 16384 : 65536);
    if (s->chunk < 1)
        s->chunk = 1;
    struct job_spec spec = {0};
    spec.status = 200;
    spec.first_delay_ms = rc->delay_ms;
    if (s->mode == 0) {
        free(s->g.text);
        s->g.text = xstrdup("@@BIGTEXT@@");
        s->g.tlen = strlen(s->g.text);
        json_t *o = full_response(&s->g);
        char *full = json_to_str(o, 1, NULL);
        json_decref(o);
        char *m = strstr(full, "@@BIGTEXT@@");
        s->prefix = xstrndup(full, (size_t)(m - full));
        s->suffix = xstrdup(m + strlen("@@BIGTEXT@@"));
        free(full);
        spec.ctype = CT_JSON;
        spec.content_length =
            (long)(strlen(s->prefix) + s->total + strlen(s->suffix));
    } else {
        spec.ctype = rc->sse ? CT_SSE : CT_JSON;
        spec.chunked = 1;
        spec.content_length = -1;
    }
    struct producer pr = {big_next, big_free, s};
    spec.prod = pr;
    start_job(rc, &spec);
}

/* ------------------------------------------------------------
 * generateContent / streamGenerateContent */

static void send_stream(struct rctx *rc, struct plist *l, int truncate,
                        long chunk_delay)
{
    struct fake *F = rc->F;
    struct job_spec spec = {0};
    spec.status = 200;
    spec.ctype = rc->sse ? CT_SSE : CT_JSON;
    spec.chunked = 1;
    spec.content_length = -1;
    spec.first_delay_ms = rc->delay_ms > 0 ? rc->delay_ms : F->first_delay_ms;
    spec.chunk_delay_ms = chunk_delay;
    spec.truncate = truncate;
    spec.prod = producer_pieces(l->p, l->n);
    start_job(rc, &spec);
}

static void h_generate(struct rctx *rc)
{
    struct fake *F = rc->F;
    const char *model = rc->model;
    json_t *req = api_parse_body(rc);
    if (!req)
        return;
    json_t *e = validate_request(F, VT_GENERATE, req, model);
    if (e) {
        reply_error(rc, e);
        json_decref(req);
        return;
    }
    json_t *contents = jget(req, "contents");
    if (!jget(req, "cachedContent") &&
        (!json_is_array(contents) || json_array_size(contents) == 0)) {
        reply_error(rc,
                    err_invalid_argument(
                        "* GenerateContentRequest.contents: contents is not "
                        "specified\n"));
        json_decref(req);
        return;
    }
    if (store_check_file_refs(rc, req)) {
        json_decref(req);
        return;
    }
    long cached = store_check_cache_ref(rc, req, model);
    if (cached < 0 || enforce_limits(rc, model)) {
        json_decref(req);
        return;
    }
    struct gen g;
    gen_build(rc, req, model, cached, &g);
    json_decref(req);

    int kind = rc->rule_kind;
    if (kind == RK_BIG) {
        reply_big(rc, &g);
        gen_free(&g);
        return;
    }
    if (!rc->stream) {
        json_t *o;
        switch (kind) {
        case RK_BLOCKED_PROMPT:
            o = blocked_response(
                &g,
                json_string_value(json_object_get(rc->rule_params, "reason"))
                    ? json_string_value(
                          json_object_get(rc->rule_params, "reason"))
                    : "SAFETY");
            break;
        case RK_MAX_TOKENS_EMPTY: o = max_tokens_response(&g); break;
        case RK_STREAM_ERROR_EVENT:
        case RK_STREAM_ERROR_TAIL:
            reply_error(rc, stream_error_obj(rc));
            gen_free(&g);
            return;
        case RK_TRUNCATE: o = full_response(&g); break;
        default: {
            size_t len;
            char *body = render_full_fast(&g, &len);
            gen_free(&g);
            reply_data(rc, 200, CT_JSON, body, len);
            return;
        }
        }
        if (kind == RK_TRUNCATE) {
            size_t len;
            char *s = json_to_str(o, 1, &len);
            json_decref(o);
            struct piece *p = malloc(sizeof *p);
            if (!p)
                abort();
            p->len = len / 2;
            p->data = s;
            struct job_spec spec = {0};
            spec.status = 200;
            spec.ctype = CT_JSON;
            spec.content_length = (long)len;
            spec.first_delay_ms = rc->delay_ms;
            spec.truncate = 1;
            spec.prod = producer_pieces(p, 1);
            start_job(rc, &spec);
        } else {
            reply_json(rc, 200, o);
        }
        gen_free(&g);
        return;
    }

    /* streaming */
    struct plist l = {0};
    size_t n = (size_t)F->stream_chunks;
    long chunk_delay = F->chunk_delay_ms;
    int truncate = 0;
    switch (kind) {
    case RK_BLOCKED_PROMPT:
    case RK_MAX_TOKENS_EMPTY: {
        json_t *o = kind == RK_BLOCKED_PROMPT ? blocked_response(&g, "SAFETY")
                                              : max_tokens_response(&g);
        if (kind == RK_BLOCKED_PROMPT) {
            const char *r =
                json_string_value(json_object_get(rc->rule_params, "reason"));
            if (r)
                json_object_set_new(json_object_get(o, "promptFeedback"),
                                    "blockReason", json_string(r));
        }
        struct sb b = {0};
        frame(&b, o, rc->sse, 1);
        if (!rc->sse)
            sb_adds(&b, "]");
        json_decref(o);
        pl_add_sb(&l, &b);
        break;
    }
    case RK_STREAM_ERROR_EVENT:
    case RK_STREAM_ERROR_TAIL:
    case RK_TRUNCATE: {
        size_t k = (size_t)rparam(rc, "after_chunks", 1);
        if (n < k + 1)
            n = k + 1;
        size_t made = stream_chunks(&g, n, k, rc->sse, &l);
        if (kind == RK_TRUNCATE) {
            truncate = 1;
            break;
        }
        json_t *eo = stream_error_obj(rc);
        struct sb b = {0};
        if (rc->sse && kind == RK_STREAM_ERROR_TAIL) {
            char *s = json_to_str(eo, 1, NULL);
            sb_adds(&b, s);
            sb_adds(&b, "\n");
            free(s);
        } else {
            frame(&b, eo, rc->sse, made == 0);
            if (!rc->sse)
                sb_adds(&b, "]");
        }
        json_decref(eo);
        pl_add_sb(&l, &b);
        break;
    }
    case RK_SLOW_STREAM:
        n = (size_t)rparam(rc, "chunks", (long)n);
        chunk_delay = rparam(rc, "chunk_delay_ms", 200);
        stream_chunks(&g, n, n, rc->sse, &l);
        break;
    default: stream_chunks(&g, n, n, rc->sse, &l); break;
    }
    gen_free(&g);
    send_stream(rc, &l, truncate, chunk_delay);
}

/* ------------------------------------------------------------ countTokens,
 * embeddings */

static void h_count_tokens(struct rctx *rc)
{
    json_t *req = api_parse_body(rc);
    if (!req)
        return;
    json_t *e = validate_request(rc->F, VT_COUNT_TOKENS, req, rc->model);
    if (!e && jget(req, "contents") && jget(req, "generateContentRequest"))
        e = err_invalid_argument(
            "* CountTokensRequest: only one of contents or "
            "generate_content_request may be set.\n");
    if (e) {
        reply_error(rc, e);
        json_decref(req);
        return;
    }
    json_t *gcr = jget(req, "generateContentRequest");
    const json_t *src = gcr ? gcr : req;
    long cached = 0;
    if (gcr) {
        cached = store_check_cache_ref(rc, gcr, rc->model);
        if (cached < 0) {
            json_decref(req);
            return;
        }
    }
    long n = api_prompt_words(src) + cached;
    json_t *o = json_pack("{s:I,s:[{s:s,s:I}]}", "totalTokens", (json_int_t)n,
                          "promptTokensDetails", "modality", "TEXT",
                          "tokenCount", (json_int_t)(n - cached));
    if (cached)
        json_object_set_new(o, "cachedContentTokenCount", json_integer(cached));
    json_decref(req);
    reply_json(rc, 200, o);
}

static json_t *embedding_values(const json_t *content, long dims)
{
    struct sb b = {0};
    add_texts(content, &b);
    uint64_t h = hash_str(b.p ? b.p : "");
    free(b.p);
    json_t *arr = json_array();
    for (long i = 0; i < dims; i++) {
        uint64_t x = mix64(h + (uint64_t)i);
        double v = (double)(x >> 11) / 9007199254740992.0 * 2.0 - 1.0;
        v = (double)(long long)(v * 1e6) / 1e6;
        json_array_append_new(arr, json_real(v));
    }
    return arr;
}

static long embed_dims(const json_t *r, json_t **err)
{
    json_t *d = jget(r, "outputDimensionality");
    if (!d)
        return 8;
    long n = json_is_integer(d) ? (long)json_integer_value(d) : -1;
    if (n < 1 || n > 4096) {
        *err =
            err_invalid_argument("* EmbedContentRequest.output_dimensionality: "
                                 "must be between 1 and "
                                 "3072\n");
        return -1;
    }
    return n;
}

static void h_embed(struct rctx *rc)
{
    json_t *req = api_parse_body(rc);
    if (!req)
        return;
    json_t *e = validate_request(rc->F, VT_EMBED, req, rc->model);
    if (!e && !jget(req, "content"))
        e = err_invalid_argument(
            "* EmbedContentRequest.content: content is not "
            "specified\n");
    long dims = e ? 0 : embed_dims(req, &e);
    if (e || enforce_limits(rc, rc->model)) {
        if (e)
            reply_error(rc, e);
        json_decref(req);
        return;
    }
    json_t *o = json_pack("{s:{s:o}}", "embedding", "values",
                          embedding_values(jget(req, "content"), dims));
    json_decref(req);
    reply_json(rc, 200, o);
}

static void h_batch_embed(struct rctx *rc)
{
    json_t *req = api_parse_body(rc);
    if (!req)
        return;
    json_t *e = validate_request(rc->F, VT_BATCH_EMBED, req, rc->model);
    json_t *reqs = jget(req, "requests");
    if (!e && (!json_is_array(reqs) || json_array_size(reqs) == 0))
        e = err_invalid_argument(
            "* BatchEmbedContentsRequest.requests: requests "
            "is not specified\n");
    if (!e && json_array_size(reqs) > 100)
        e = err_invalid_argument(
            "* BatchEmbedContentsRequest.requests: at most "
            "100 requests can be in one batch\n");
    size_t i;
    json_t *r;
    char want[300];
    snprintf(want, sizeof want, "models/%s", rc->model);
    if (!e) {
        json_array_foreach(reqs, i, r)
        {
            const char *m = jstr(r, "model");
            if (m && strcmp(m, want) != 0) {
                char *msg =
                    xasprintf("Model mismatch: requests[%zu].model is \"%s\" "
                              "but the request URL uses \"%s\".",
                              i, m, want);
                e = err_invalid_argument(msg);
                free(msg);
                break;
            }
            if (!jget(r, "content")) {
                char *msg =
                    xasprintf("* BatchEmbedContentsRequest.requests[%zu]."
                              "content: content is not specified\n",
                              i);
                e = err_invalid_argument(msg);
                free(msg);
                break;
            }
            if (embed_dims(r, &e) < 0)
                break;
        }
    }
    if (e || enforce_limits(rc, rc->model)) {
        if (e)
            reply_error(rc, e);
        json_decref(req);
        return;
    }
    json_t *arr = json_array();
    json_array_foreach(reqs, i, r)
    {
        json_t *dummy = NULL;
        json_array_append_new(
            arr, json_pack("{s:o}", "values",
                           embedding_values(jget(r, "content"),
                                            embed_dims(r, &dummy))));
    }
    json_decref(req);
    reply_json(rc, 200, json_pack("{s:o}", "embeddings", arr));
}

/* ------------------------------------------------------------ OpenAI
 * compatible surface (minimal) */

static const char *strip_models(const char *m)
{
    return starts_with(m, "models/") ? m + 7 : m;
}

static void set_rec_model(struct rctx *rc, const char *m)
{
    if (rc->rec && m)
        json_object_set_new(rc->rec->obj, "model", json_string(m));
}

static char *openai_text(const json_t *content)
{
    if (json_is_string(content))
        return xstrdup(json_string_value(content));
    struct sb b = {0};
    size_t i;
    json_t *p;
    json_array_foreach(content, i, p)
    {
        const char *t = json_string_value(json_object_get(p, "text"));
        if (t)
            sb_adds(&b, t);
    }
    return sb_take(&b);
}

static void openai_chat_reply(struct rctx *rc, json_t *req, const char *model);

static void h_openai_chat(struct rctx *rc)
{
    json_t *req = api_parse_body(rc);
    if (!req)
        return;
    const char *m = json_string_value(json_object_get(req, "model"));
    json_t *msgs = json_object_get(req, "messages");
    if (!m || !json_is_array(msgs) || json_array_size(msgs) == 0) {
        reply_error(rc, err_invalid_argument(
                            "Invalid request: 'model' and 'messages' are "
                            "required."));
        json_decref(req);
        return;
    }
    char *model = xstrdup(strip_models(m));
    set_rec_model(rc, model);
    if (!model_known_prefix(model) || is_embedding_model(model)) {
        reply_error(rc,
                    err_model_not_found(model, "v1beta", "generateContent"));
        json_decref(req);
    } else if (!enforce_limits(rc, model)) {
        openai_chat_reply(rc, req, model); /* consumes req */
    } else {
        json_decref(req);
    }
    free(model);
}

static void openai_chat_reply(struct rctx *rc, json_t *req, const char *model)
{
    struct fake *F = rc->F;
    json_t *msgs = json_object_get(req, "messages");
    char *last = xstrdup("");
    size_t i, pw = 0;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        char *t = openai_text(json_object_get(m, "content"));
        pw += count_words(t, strlen(t));
        const char *role = json_string_value(json_object_get(m, "role"));
        if (role && !strcmp(role, "user")) {
            free(last);
            last = t;
        } else {
            free(t);
        }
    }
    char *answer = xasprintf("echo: %s", last);
    free(last);
    long pt = pw < 1 ? 1 : (long)pw;
    long ct = (long)count_words(answer, strlen(answer));
    char id[64], rid[32];
    make_response_id(F, rid);
    snprintf(id, sizeof id, "chatcmpl-%s", rid);
    long created = (long)now_wall();
    json_t *usage = json_pack("{s:I,s:I,s:I}", "prompt_tokens", (json_int_t)pt,
                              "completion_tokens", (json_int_t)ct,
                              "total_tokens", (json_int_t)(pt + ct));
    if (!json_is_true(json_object_get(req, "stream"))) {
        json_t *o =
            json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:{s:s,s:s},s:s}],s:o}", "id",
                      id, "object", "chat.completion", "created",
                      (json_int_t)created, "model", model, "choices", "index",
                      0, "message", "role", "assistant", "content", answer,
                      "finish_reason", "stop", "usage", usage);
        free(answer);
        json_decref(req);
        reply_json(rc, 200, o);
        return;
    }
    int include_usage = json_is_true(json_object_get(
        json_object_get(req, "stream_options"), "include_usage"));
    json_decref(req);
    struct plist l = {0};
    size_t n = (size_t)F->stream_chunks, len = strlen(answer);
    size_t chars = utf8_chars(answer, len);
    if (n > chars)
        n = chars;
    for (size_t k = 0; k <= n + 1; k++) {
        json_t *delta;
        const char *finish = NULL;
        if (k < n) {
            size_t a = utf8_offset(answer, len, chars * k / n);
            size_t e = utf8_offset(answer, len, chars * (k + 1) / n);
            json_t *t = json_stringn(answer + a, e - a);
            delta =
                k == 0 ? json_pack("{s:s,s:o}", "role", "assistant", "content",
                                   t ? t : json_string(""))
                       : json_pack("{s:o}", "content", t ? t : json_string(""));
        } else if (k == n) {
            delta = json_object();
            finish = "stop";
        } else {
            if (!include_usage)
                break;
            delta = NULL;
        }
        json_t *o = json_pack("{s:s,s:s,s:I,s:s}", "id", id, "object",
                              "chat.completion.chunk", "created",
                              (json_int_t)created, "model", model);
        if (delta)
            json_object_set_new(
                o, "choices",
                json_pack("[{s:i,s:o,s:o}]", "index", 0, "delta", delta,
                          "finish_reason",
                          finish ? json_string(finish) : json_null()));
        else
            json_object_set_new(o, "choices", json_array());
        if (!delta)
            json_object_set(o, "usage", usage);
        struct sb b = {0};
        size_t sl;
        char *s = json_to_str(o, 0, &sl);
        json_decref(o);
        sb_adds(&b, "data: ");
        sb_add(&b, s, sl);
        sb_adds(&b, "\n\n");
        free(s);
        pl_add_sb(&l, &b);
    }
    struct sb b = {0};
    sb_adds(&b, "data: [DONE]\n\n");
    pl_add_sb(&l, &b);
    json_decref(usage);
    free(answer);
    rc->sse = 1;
    send_stream(rc, &l, 0, F->chunk_delay_ms);
}

static void h_openai_embeddings(struct rctx *rc)
{
    json_t *req = api_parse_body(rc);
    if (!req)
        return;
    const char *model = json_string_value(json_object_get(req, "model"));
    json_t *input = json_object_get(req, "input");
    if (!model || !input) {
        reply_error(rc,
                    err_invalid_argument(
                        "Invalid request: 'model' and 'input' are required."));
        json_decref(req);
        return;
    }
    model = strip_models(model);
    set_rec_model(rc, model);
    json_t *items =
        json_is_array(input) ? json_incref(input) : json_pack("[O]", input);
    if (json_array_size(items) > 100) {
        reply_error(rc, err_invalid_argument(
                            "* BatchEmbedContentsRequest.requests: at most 100 "
                            "requests can be in one batch\n"));
    } else if (enforce_limits(rc, model)) {
        /* 429 sent */
    } else {
        long dims = 8;
        json_t *d = json_object_get(req, "dimensions");
        if (json_is_integer(d) && json_integer_value(d) > 0 &&
            json_integer_value(d) <= 4096)
            dims = (long)json_integer_value(d);
        json_t *data = json_array();
        size_t i, words = 0;
        json_t *it;
        json_array_foreach(items, i, it)
        {
            const char *s = json_is_string(it) ? json_string_value(it) : "";
            words += count_words(s, strlen(s));
            json_t *content = json_pack("{s:[{s:s}]}", "parts", "text", s);
            json_array_append_new(
                data, json_pack("{s:s,s:I,s:o}", "object", "embedding", "index",
                                (json_int_t)i, "embedding",
                                embedding_values(content, dims)));
            json_decref(content);
        }
        json_t *o =
            json_pack("{s:s,s:o,s:s,s:{s:I,s:I}}", "object", "list", "data",
                      data, "model", model, "usage", "prompt_tokens",
                      (json_int_t)words, "total_tokens", (json_int_t)words);
        reply_json(rc, 200, o);
    }
    json_decref(items);
    json_decref(req);
}

static json_t *openai_model(const char *name)
{
    char *id = xasprintf("models/%s", name);
    json_t *o = json_pack("{s:s,s:s,s:i,s:s}", "id", id, "object", "model",
                          "created", 0, "owned_by", "google");
    free(id);
    return o;
}

static void h_openai(struct rctx *rc)
{
    const char *rest = rc->rest;
    if (!strcmp(rest, "chat/completions") && rc->method == EVHTTP_REQ_POST) {
        h_openai_chat(rc);
    } else if (!strcmp(rest, "embeddings") && rc->method == EVHTTP_REQ_POST) {
        h_openai_embeddings(rc);
    } else if (!strcmp(rest, "models") && rc->method == EVHTTP_REQ_GET) {
        json_t *arr = json_array();
        for (size_t i = 0; i < NMODELS; i++)
            json_array_append_new(arr, openai_model(MODELS[i].name));
        reply_json(rc, 200,
                   json_pack("{s:s,s:o}", "object", "list", "data", arr));
    } else if (starts_with(rest, "models/") && rc->method == EVHTTP_REQ_GET) {
        const char *m = strip_models(rest + strlen("models/"));
        if (!model_known_prefix(m))
            reply_error(rc, err_model_not_found(m, "v1beta", "getModel"));
        else
            reply_json(rc, 200, openai_model(m));
    } else {
        reply_error(rc, err_path_not_found(rc->path));
    }
}

/* ------------------------------------------------------------ router */

int api_is_stream_method(const char *mname)
{
    return mname && !strcmp(mname, "streamGenerateContent");
}

void api_dispatch(struct rctx *rc)
{
    const char *rest = rc->rest;
    int get = rc->method == EVHTTP_REQ_GET,
        post = rc->method == EVHTTP_REQ_POST;
    if (rc->surface == SURF_OPENAI) {
        h_openai(rc);
        return;
    }
    if (rc->surface == SURF_UPLOAD) {
        if (!strcmp(rest, "files") && post)
            store_upload_start(rc);
        else
            reply_error(rc, err_path_not_found(rc->path));
        return;
    }
    if (rc->model) {
        const char *mn = rc->mname[0] ? rc->mname : "getModel";
        if (!model_known_prefix(rc->model)) {
            reply_error(rc, err_model_not_found(rc->model, rc->version, mn));
            return;
        }
        if (!rc->mname[0]) {
            if (get)
                reply_json(rc, 200, model_json(rc->model));
            else
                reply_error(rc, err_path_not_found(rc->path));
            return;
        }
        int emb = is_embedding_model(rc->model);
        int gen_m = !strcmp(mn, "generateContent") ||
                    !strcmp(mn, "streamGenerateContent");
        int emb_m =
            !strcmp(mn, "embedContent") || !strcmp(mn, "batchEmbedContents");
        int count_m = !strcmp(mn, "countTokens");
        if (!gen_m && !emb_m && !count_m) {
            reply_error(rc, err_path_not_found(rc->path));
            return;
        }
        if (!post) {
            reply_error(rc, err_path_not_found(rc->path));
            return;
        }
        if ((gen_m && emb) || (emb_m && !emb)) {
            reply_error(rc, err_model_not_found(rc->model, rc->version, mn));
            return;
        }
        if (gen_m)
            h_generate(rc);
        else if (count_m)
            h_count_tokens(rc);
        else if (!strcmp(mn, "embedContent"))
            h_embed(rc);
        else
            h_batch_embed(rc);
        return;
    }
    if (!strcmp(rest, "models") && get)
        h_models_list(rc);
    else if (!strcmp(rest, "files") || starts_with(rest, "files/"))
        store_files(rc);
    else if (!strcmp(rest, "cachedContents") ||
             starts_with(rest, "cachedContents/"))
        store_caches(rc);
    else
        reply_error(rc, err_path_not_found(rc->path));
}
