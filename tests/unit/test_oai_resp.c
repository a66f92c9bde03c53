/*
 * test_oai_resp.c - Gemini -> OpenAI: whole responses, streams, errors,
 * models and embeddings.
 *
 * Fixtures in tests/fixtures/openai/:
 *   resp/<n>.gemini.json + <n>.openai.json (+ <n>.opts.json)
 *       a generateContent response and the expected chat.completion, or
 *       {"error_status", "error"} for responses that must fail;
 *   stream/<n>.sse + <n>.openai.json (+ <n>.opts.json)
 *       raw upstream SSE bytes (stored with LF line ends; also run with
 *       CRLF and CR) and the expected OpenAI events as a JSON array;
 *       each is fed whole, split at every position, and byte by byte,
 *       and all outputs must be byte-identical;
 *   errors/<n>.gemini.json + <n>.openai.json
 *       {"status", "body" (raw text)} and {"status", "retry_after_ms",
 *       "body"};
 *   misc/models.*, embed/<n>.*  models list and embeddings.
 * The completion id, creation time and model are fixed by the test.
 */
#include "oai_fixtures.h"

#include "buf.h"
#include "oai_err.h"
#include "oai_misc.h"
#include "oai_req.h"
#include "oai_resp.h"

#define TEST_ID "chatcmpl-test"
#define TEST_CREATED 1700000000LL
#define TEST_MODEL "gemini-2.5-flash"
#define OUT_CAP ((size_t)16 << 20)

static struct gkm_oai_resp_ctx ctx_from(const json_t *opts)
{
    struct gkm_oai_resp_ctx c = {TEST_ID, TEST_CREATED, TEST_MODEL, 0, 0};
    const char *m = json_string_value(json_object_get(opts, "model"));
    if (m)
        c.model = m;
    c.reasoning = json_is_true(json_object_get(opts, "reasoning"));
    c.include_usage = json_is_true(json_object_get(opts, "include_usage"));
    return c;
}

/* ---- whole responses ---- */

static void fixture_resp(void **state)
{
    const char *stem = *state;
    json_t *in = fix_json(stem, ".gemini.json");
    json_t *want = fix_json(stem, ".openai.json");
    json_t *opts = fix_json(stem, ".opts.json");
    struct gkm_oai_resp_ctx ctx = ctx_from(opts);
    struct gkm_oai_err err;
    gkm_oai_err_init(&err);
    json_t *got = gkm_oai_chat_from_gemini(in, &ctx, &err);
    const json_t *we = json_object_get(want, "error");
    if (we != NULL) {
        assert_null(got);
        assert_int_equal(err.status, json_integer_value(
                                         json_object_get(want, "error_status")));
        json_t *ej = gkm_oai_err_json(&err);
        assert_json_eq(json_object_get(ej, "error"), we, stem);
        json_decref(ej);
    } else {
        if (got == NULL)
            fail_msg("unexpected error %d: %s", err.status, err.message);
        assert_json_eq(got, want, stem);
    }
    json_decref(got);
    gkm_oai_err_clear(&err);
    json_decref(in);
    json_decref(want);
    json_decref(opts);
}

/* ---- streams ---- */

/* Feed data (split at `split`, then `step` bytes per call; step 0 = all
 * at once) and finish. Returns the output bytes (heap). */
static char *stream_run(const struct gkm_oai_resp_ctx *ctx, const char *data,
                        size_t len, size_t split, size_t step, size_t *outlen)
{
    struct gkm_buf out;
    gkm_buf_init(&out, OUT_CAP);
    struct gkm_oai_stream *s = gkm_oai_stream_new(ctx, 1 << 20);
    int r = GKM_OAI_STREAM_OK;
    assert_int_equal(gkm_oai_stream_started(s), 0);
    if (step == 0) {
        r = gkm_oai_stream_feed(s, data, len, &out);
    } else {
        r = gkm_oai_stream_feed(s, data, split, &out);
        for (size_t i = split; i < len && r == GKM_OAI_STREAM_OK; i += step) {
            size_t n = len - i < step ? len - i : step;
            r = gkm_oai_stream_feed(s, data + i, n, &out);
        }
    }
    assert_true(r == GKM_OAI_STREAM_OK || r == GKM_OAI_STREAM_END);
    int f = gkm_oai_stream_finish(s, &out);
    assert_int_equal(f, GKM_OAI_STREAM_END);
    /* After the end nothing more is written. */
    size_t before = out.len;
    assert_int_equal(gkm_oai_stream_feed(s, "data: {}\n\n", 10, &out),
                     GKM_OAI_STREAM_END);
    assert_int_equal(gkm_oai_stream_finish(s, &out), GKM_OAI_STREAM_END);
    assert_int_equal(out.len, before);
    assert_int_equal(gkm_oai_stream_started(s), 1);
    gkm_oai_stream_free(s);
    return gkm_buf_take(&out, outlen);
}

/* data with every "\n" replaced by eol. */
static char *convert_eol(const char *data, size_t len, const char *eol,
                         size_t *outlen)
{
    struct gkm_buf b;
    gkm_buf_init(&b, OUT_CAP);
    for (size_t i = 0; i < len; i++) {
        int r = data[i] == '\n' ? gkm_buf_append_str(&b, eol)
                                : gkm_buf_append(&b, data + i, 1);
        assert_int_equal(r, 0);
    }
    return gkm_buf_take(&b, outlen);
}

static void fixture_stream(void **state)
{
    const char *stem = *state;
    size_t len;
    char *raw = fix_read(stem, ".sse", &len);
    json_t *want = fix_json(stem, ".openai.json");
    json_t *opts = fix_json(stem, ".opts.json");
    struct gkm_oai_resp_ctx ctx = ctx_from(opts);
    const char *eols[] = {"\n", "\r\n", "\r"};
    char *ref = NULL;
    size_t reflen = 0;
    assert_non_null(raw);
    assert_non_null(want);
    for (size_t e = 0; e < GKM_ARRAY_LEN(eols); e++) {
        size_t dl;
        char *data = convert_eol(raw, len, eols[e], &dl);
        size_t ol;
        char *whole = stream_run(&ctx, data, dl, 0, 0, &ol);
        if (ref == NULL) {
            ref = whole;
            reflen = ol;
            json_t *events = sse_events(ref, reflen);
            assert_json_eq(events, want, stem);
            json_decref(events);
        } else {
            assert_int_equal(ol, reflen);
            assert_memory_equal(whole, ref, ol);
            free(whole);
        }
        for (size_t split = 0; split <= dl; split++) {
            char *got = stream_run(&ctx, data, dl, split, dl ? dl : 1, &ol);
            assert_int_equal(ol, reflen);
            assert_memory_equal(got, ref, ol);
            free(got);
        }
        char *bytes = stream_run(&ctx, data, dl, 0, 1, &ol);
        assert_int_equal(ol, reflen);
        assert_memory_equal(bytes, ref, ol);
        free(bytes);
        free(data);
    }
    free(ref);
    free(raw);
    json_decref(want);
    json_decref(opts);
}

/* ---- error mapping ---- */

static void fixture_error(void **state)
{
    const char *stem = *state;
    json_t *in = fix_json(stem, ".gemini.json");
    json_t *want = fix_json(stem, ".openai.json");
    const json_t *body = json_object_get(in, "body");
    struct gkm_oai_err err;
    gkm_oai_err_init(&err);
    gkm_oai_err_from_gemini(
        (int)json_integer_value(json_object_get(in, "status")),
        json_string_value(body), json_string_length(body), &err);
    assert_int_equal(err.status,
                     json_integer_value(json_object_get(want, "status")));
    assert_int_equal(err.retry_after_ms,
                     json_integer_value(json_object_get(want,
                                                        "retry_after_ms")));
    json_t *ej = gkm_oai_err_json(&err);
    assert_json_eq(ej, json_object_get(want, "body"), stem);
    json_decref(ej);
    gkm_oai_err_clear(&err);
    json_decref(in);
    json_decref(want);
}

/* ---- models ---- */

static void test_models(void **state)
{
    (void)state;
    json_t *page = fix_json(FIX_DIR "/misc/models", ".gemini.json");
    json_t *want = fix_json(FIX_DIR "/misc/models", ".openai.json");
    json_t *opts = fix_json(FIX_DIR "/misc/models", ".opts.json");
    json_t *data = json_array();
    assert_int_equal(gkm_oai_models_add_page(data, page), 3);
    json_t *empty = json_object();
    assert_int_equal(gkm_oai_models_add_page(data, empty), 0);
    json_t *bad = json_pack("{si}", "models", 1);
    assert_int_equal(gkm_oai_models_add_page(data, bad), -1);
    json_decref(bad);
    gkm_oai_models_add_aliases(data, json_object_get(opts, "model_aliases"));
    json_t *list = gkm_oai_models_list(data);
    assert_json_eq(list, want, "models");
    json_decref(list);
    json_t *one = gkm_oai_model_from_gemini(
        json_array_get(json_object_get(page, "models"), 1));
    assert_json_eq(one, json_array_get(json_object_get(want, "data"), 1),
                   "model get");
    json_decref(one);
    assert_null(gkm_oai_model_from_gemini(empty));
    json_decref(empty);
    json_decref(page);
    json_decref(want);
    json_decref(opts);
}

/* ---- embeddings ---- */

static void fixture_embed(void **state)
{
    const char *stem = *state;
    json_t *req = fix_json(stem, ".openai.json");
    json_t *want = fix_json(stem, ".gemini.json");
    json_t *ojson = fix_json(stem, ".opts.json");
    json_t *resps = fix_json(stem, ".gemini_resp.json");
    json_t *oresp = fix_json(stem, ".openai_resp.json");
    struct gkm_oai_opts opts;
    struct gkm_oai_embed e;
    struct gkm_oai_err err;
    memset(&opts, 0, sizeof(opts));
    opts.model_aliases = json_object_get(ojson, "model_aliases");
    opts.embed_model = json_string_value(json_object_get(ojson, "embed_model"));
    gkm_oai_err_init(&err);
    int r = gkm_oai_embed_to_gemini(req, &opts, &e, &err);
    const json_t *we = json_object_get(want, "error");
    if (we != NULL) {
        assert_int_equal(r, -1);
        assert_int_equal(err.status, 400);
        assert_string_equal(err.param,
                            json_string_value(json_object_get(we, "param")));
        assert_null(e.batches);
        goto out;
    }
    if (r != 0)
        fail_msg("unexpected error: %s", err.message);
    assert_string_equal(e.model,
                        json_string_value(json_object_get(want, "model")));
    assert_int_equal(e.base64, json_is_true(json_object_get(want, "base64")));
    json_t *batches = json_array();
    for (size_t i = 0; i < e.nbatches; i++)
        json_array_append(batches, e.batches[i]);
    assert_json_eq(batches, json_object_get(want, "batches"), stem);
    json_decref(batches);
    if (resps != NULL) {
        json_t *data = json_array();
        size_t base = 0;
        for (size_t i = 0; i < e.nbatches; i++) {
            size_t n = json_array_size(json_object_get(e.batches[i],
                                                       "requests"));
            assert_int_equal(gkm_oai_embed_add_batch(
                                 data, json_array_get(resps, i), base, n,
                                 e.base64, &err),
                             0);
            base += n;
        }
        assert_int_equal(base, e.ninputs);
        json_t *model = json_object_get(req, "model");
        json_t *o = gkm_oai_embed_response(data, json_string_value(model));
        assert_json_eq(o, oresp, stem);
        json_decref(o);
    }
    gkm_oai_embed_clear(&e);
out:
    gkm_oai_err_clear(&err);
    json_decref(req);
    json_decref(want);
    json_decref(ojson);
    json_decref(resps);
    json_decref(oresp);
}

static void test_embed_split_and_errors(void **state)
{
    (void)state;
    json_t *input = json_array();
    for (int i = 0; i < 250; i++) {
        char t[16];
        snprintf(t, sizeof(t), "t%d", i);
        json_array_append_new(input, json_string(t));
    }
    json_t *req = json_pack("{ss so}", "model", "gemini-embedding-001",
                            "input", input);
    struct gkm_oai_embed e;
    struct gkm_oai_err err;
    gkm_oai_err_init(&err);
    assert_int_equal(gkm_oai_embed_to_gemini(req, NULL, &e, &err), 0);
    assert_int_equal(e.nbatches, 3);
    assert_int_equal(e.ninputs, 250);
    size_t sizes[3] = {100, 100, 50};
    for (size_t b = 0; b < 3; b++) {
        json_t *rq = json_object_get(e.batches[b], "requests");
        assert_int_equal(json_array_size(rq), sizes[b]);
        char t[16];
        snprintf(t, sizeof(t), "t%zu", b * 100);
        assert_string_equal(
            json_string_value(json_object_get(
                json_array_get(json_object_get(json_object_get(
                                   json_array_get(rq, 0), "content"),
                                                "parts"),
                               0),
                "text")),
            t);
    }
    /* A response with the wrong count or non-numbers is rejected. */
    json_t *data = json_array();
    json_t *r1 = json_loads("{\"embeddings\":[{\"values\":[1]}]}", 0, NULL);
    assert_int_equal(gkm_oai_embed_add_batch(data, r1, 0, 2, 0, &err), -1);
    assert_int_equal(err.status, 502);
    json_t *r2 = json_loads("{\"embeddings\":[{\"values\":[\"x\"]}]}", 0,
                            NULL);
    assert_int_equal(gkm_oai_embed_add_batch(data, r2, 0, 1, 0, &err), -1);
    assert_int_equal(gkm_oai_embed_add_batch(data, NULL, 0, 1, 0, &err), -1);
    assert_int_equal(json_array_size(data), 0);
    json_decref(r1);
    json_decref(r2);
    json_decref(data);
    gkm_oai_embed_clear(&e);
    gkm_oai_err_clear(&err);
    json_decref(req);
    /* Too many inputs. */
    input = json_array();
    for (int i = 0; i < GKM_OAI_EMBED_INPUTS_MAX + 1; i++)
        json_array_append_new(input, json_string("x"));
    req = json_pack("{ss so}", "model", "m", "input", input);
    assert_int_equal(gkm_oai_embed_to_gemini(req, NULL, &e, &err), -1);
    assert_string_equal(err.param, "input");
    gkm_oai_err_clear(&err);
    json_decref(req);
}

/* ---- shared pieces and stream edge cases ---- */

static void test_finish_reasons(void **state)
{
    (void)state;
    const char *map[][2] = {
        {"STOP", "stop"}, {"MAX_TOKENS", "length"},
        {"SAFETY", "content_filter"}, {"RECITATION", "content_filter"},
        {"LANGUAGE", "content_filter"}, {"BLOCKLIST", "content_filter"},
        {"PROHIBITED_CONTENT", "content_filter"}, {"SPII", "content_filter"},
        {"IMAGE_SAFETY", "content_filter"}, {"OTHER", "content_filter"},
        {"IMAGE_PROHIBITED_CONTENT", "content_filter"},
        {"IMAGE_RECITATION", "content_filter"},
        {"IMAGE_OTHER", "content_filter"}, {"NO_IMAGE", "content_filter"},
        {"MALFORMED_FUNCTION_CALL", "stop"}, {"UNEXPECTED_TOOL_CALL", "stop"},
        {"TOO_MANY_TOOL_CALLS", "stop"}, {"MISSING_THOUGHT_SIGNATURE", "stop"},
        {"MALFORMED_RESPONSE", "stop"}, {"FINISH_REASON_UNSPECIFIED", "stop"},
        {"whatever", "stop"}};
    for (size_t i = 0; i < GKM_ARRAY_LEN(map); i++)
        assert_string_equal(gkm_oai_finish_reason(map[i][0]), map[i][1]);
    assert_string_equal(gkm_oai_finish_reason(NULL), "stop");
}

static void test_usage_and_ids(void **state)
{
    (void)state;
    json_t *u = gkm_oai_usage(NULL);
    assert_int_equal(json_integer_value(json_object_get(u, "total_tokens")), 0);
    json_decref(u);
    /* total falls back to the sum when Gemini omits it */
    json_t *um = json_pack("{si si si}", "promptTokenCount", 3,
                           "candidatesTokenCount", 2, "thoughtsTokenCount", 4);
    u = gkm_oai_usage(um);
    assert_int_equal(json_integer_value(json_object_get(u, "total_tokens")), 9);
    json_decref(u);
    json_decref(um);
    /* Derived tool-call ids: deterministic, distinct per call and choice,
     * "call_" + 24 alphanumerics. */
    json_t *part = json_pack("{s{ss}}", "functionCall", "name", "f");
    json_t *a = gkm_oai_tool_call(part, "chatcmpl-1", 0, 0);
    json_t *b = gkm_oai_tool_call(part, "chatcmpl-1", 0, 0);
    json_t *c = gkm_oai_tool_call(part, "chatcmpl-1", 0, 1);
    json_t *d = gkm_oai_tool_call(part, "chatcmpl-1", 1, 0);
    json_t *e = gkm_oai_tool_call(part, "chatcmpl-2", 0, 0);
    const char *ia = json_string_value(json_object_get(a, "id"));
    assert_string_equal(ia, json_string_value(json_object_get(b, "id")));
    assert_string_not_equal(ia, json_string_value(json_object_get(c, "id")));
    assert_string_not_equal(ia, json_string_value(json_object_get(d, "id")));
    assert_string_not_equal(ia, json_string_value(json_object_get(e, "id")));
    assert_int_equal(strlen(ia), 29);
    assert_int_equal(strncmp(ia, "call_", 5), 0);
    for (size_t i = 5; i < 29; i++)
        assert_true((ia[i] >= 'a' && ia[i] <= 'z') ||
                    (ia[i] >= 'A' && ia[i] <= 'Z') ||
                    (ia[i] >= '0' && ia[i] <= '9'));
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(d);
    json_decref(e);
    json_decref(part);
    json_t *noname = json_pack("{s{}}", "functionCall");
    assert_null(gkm_oai_tool_call(noname, "x", 0, 0));
    json_decref(noname);
}

/* The id a response emits, fed back in a request, restores the signature
 * and drops the synthetic id: the round trip a Gemini 3 tool loop needs. */
static void test_signature_round_trip(void **state)
{
    (void)state;
    json_t *resp = json_loads(
        "{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":["
        "{\"functionCall\":{\"name\":\"f\",\"args\":{\"a\":1}},"
        "\"thoughtSignature\":\"QUJD+/==\"}]},\"finishReason\":\"STOP\"}]}",
        0, NULL);
    struct gkm_oai_resp_ctx ctx = {TEST_ID, TEST_CREATED, TEST_MODEL, 0, 0};
    struct gkm_oai_err err;
    gkm_oai_err_init(&err);
    json_t *oai = gkm_oai_chat_from_gemini(resp, &ctx, &err);
    json_t *msg = json_object_get(
        json_array_get(json_object_get(oai, "choices"), 0), "message");
    json_t *tcs = json_object_get(msg, "tool_calls");
    const char *id = json_string_value(
        json_object_get(json_array_get(tcs, 0), "id"));
    for (int variant = 0; variant < 2; variant++) {
        /* variant 0: client echoes the full id; 1: the client keeps only
         * extra_content (and a shortened id). */
        json_t *call = json_deep_copy(json_array_get(tcs, 0));
        json_t *tool_id = json_string(id);
        if (variant == 1) {
            json_object_set_new(call, "id", json_string("call_short"));
            json_decref(tool_id);
            tool_id = json_string("call_short");
        }
        json_t *req = json_pack(
            "{ss s[{ss ss} {ss sn s[o]} {ss so ss}]}", "model",
            "gemini-3-pro-preview", "messages", "role", "user", "content",
            "hi", "role", "assistant", "content", "tool_calls", call, "role",
            "tool", "tool_call_id", tool_id, "content", "ok");
        struct gkm_oai_chat out;
        assert_int_equal(gkm_oai_chat_to_gemini(req, NULL, &out, &err), 0);
        json_t *want = json_loads(
            "[{\"role\":\"user\",\"parts\":[{\"text\":\"hi\"}]},"
            "{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"f\","
            "\"args\":{\"a\":1}},\"thoughtSignature\":\"QUJD+/==\"}]},"
            "{\"role\":\"user\",\"parts\":[{\"functionResponse\":{\"name\":"
            "\"f\",\"response\":{\"output\":\"ok\"}}}]}]",
            0, NULL);
        assert_json_eq(json_object_get(out.body, "contents"), want,
                       "round trip");
        json_decref(want);
        gkm_oai_chat_clear(&out);
        json_decref(req);
    }
    json_decref(oai);
    json_decref(resp);
    gkm_oai_err_clear(&err);
}

static void test_stream_cap_fail_and_chunks(void **state)
{
    (void)state;
    struct gkm_oai_resp_ctx ctx = {TEST_ID, TEST_CREATED, TEST_MODEL, 0, 1};
    struct gkm_buf out;
    /* A tiny output cap reports ECAP. */
    gkm_buf_init(&out, 64);
    struct gkm_oai_stream *s = gkm_oai_stream_new(&ctx, 4096);
    const char *ev = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":"
                     "\"hi\"}]}}]}\n\n";
    assert_int_equal(gkm_oai_stream_feed(s, ev, strlen(ev), &out),
                     GKM_OAI_STREAM_ECAP);
    gkm_oai_stream_free(s);
    gkm_buf_free(&out);

    /* An upstream event over max_event becomes an error event. */
    gkm_buf_init(&out, OUT_CAP);
    s = gkm_oai_stream_new(&ctx, 16);
    assert_int_equal(gkm_oai_stream_feed(s, ev, strlen(ev), &out),
                     GKM_OAI_STREAM_END);
    assert_non_null(strstr(out.data, "\"upstream_invalid\""));
    assert_null(strstr(out.data, "[DONE]"));
    gkm_oai_stream_free(s);
    gkm_buf_reset(&out);

    /* Proxy-side failure after some output; parsed chunks. */
    s = gkm_oai_stream_new(&ctx, 4096);
    json_t *chunk = json_loads("{\"candidates\":[{\"content\":{\"parts\":["
                               "{\"text\":\"hi\"}]}}]}", 0, NULL);
    assert_int_equal(gkm_oai_stream_chunk(s, chunk, &out), GKM_OAI_STREAM_OK);
    json_decref(chunk);
    assert_int_equal(gkm_oai_stream_data(s, " \r\n", 3, &out),
                     GKM_OAI_STREAM_OK);
    struct gkm_oai_err e;
    gkm_oai_err_init(&e);
    gkm_oai_err_set(&e, 504, "server_error", NULL, NULL, "Upstream timed out");
    assert_int_equal(gkm_oai_stream_fail(s, &e, &out), GKM_OAI_STREAM_END);
    assert_int_equal(gkm_oai_stream_fail(s, &e, &out), GKM_OAI_STREAM_END);
    json_t *events = sse_events(out.data, out.len);
    assert_int_equal(json_array_size(events), 3);
    json_t *want = json_pack("{s{ss ss sn ss}}", "error", "message",
                             "Upstream timed out", "type", "server_error",
                             "param", "code", "504");
    assert_json_eq(json_array_get(events, 2), want, "fail event");
    json_decref(want);
    json_decref(events);
    gkm_oai_err_clear(&e);
    gkm_oai_stream_free(s);
    gkm_buf_free(&out);
    gkm_oai_stream_free(NULL);
}

static void test_err_helpers(void **state)
{
    (void)state;
    long long ms;
    assert_int_equal(gkm_oai_parse_delay_ms("43s", &ms), 0);
    assert_int_equal(ms, 43000);
    assert_int_equal(gkm_oai_parse_delay_ms("0.0001s", &ms), 0);
    assert_int_equal(ms, 1);
    assert_int_equal(gkm_oai_parse_delay_ms("1.5ms", &ms), 0);
    assert_int_equal(ms, 2);
    assert_int_equal(gkm_oai_parse_delay_ms(".5s", &ms), 0);
    assert_int_equal(ms, 500);
    assert_int_equal(gkm_oai_parse_delay_ms("s", &ms), -1);
    assert_int_equal(gkm_oai_parse_delay_ms("5", &ms), -1);
    assert_int_equal(gkm_oai_parse_delay_ms("5m", &ms), -1);
    assert_int_equal(gkm_oai_parse_delay_ms("-5s", &ms), -1);
    assert_int_equal(gkm_oai_parse_delay_ms("99999999999999999s", &ms), -1);
    assert_int_equal(gkm_oai_parse_delay_ms(NULL, &ms), -1);
    struct gkm_oai_err e;
    gkm_oai_err_init(&e);
    gkm_oai_err_set(&e, 429, "rate_limit_error", "rate_limit_exceeded", "x",
                    "%s %d", "n", 5);
    json_t *j = gkm_oai_err_json(&e);
    json_t *want = json_pack("{s{ss ss ss ss}}", "error", "message", "n 5",
                             "type", "rate_limit_error", "param", "x", "code",
                             "rate_limit_exceeded");
    assert_json_eq(j, want, "err json");
    json_decref(j);
    json_decref(want);
    struct gkm_buf out;
    gkm_buf_init(&out, 1024);
    assert_int_equal(gkm_oai_err_sse(&e, &out), 0);
    assert_int_equal(strncmp(out.data, "data: {\"error\":", 15), 0);
    assert_int_equal(out.data[out.len - 1], '\n');
    gkm_buf_free(&out);
    gkm_oai_err_clear(&e);
    assert_int_equal(e.status, 0);
    assert_null(e.message);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_models),
        cmocka_unit_test(test_embed_split_and_errors),
        cmocka_unit_test(test_finish_reasons),
        cmocka_unit_test(test_usage_and_ids),
        cmocka_unit_test(test_signature_round_trip),
        cmocka_unit_test(test_stream_cap_fail_and_chunks),
        cmocka_unit_test(test_err_helpers),
    };
    int fails = cmocka_run_group_tests_name("oai_resp_helpers", tests, NULL,
                                            NULL);
    struct {
        const char *name, *dir, *suffix;
        void (*fn)(void **);
    } groups[] = {
        {"oai_resp_fixtures", FIX_DIR "/resp", ".gemini.json", fixture_resp},
        {"oai_stream_fixtures", FIX_DIR "/stream", ".sse", fixture_stream},
        {"oai_error_fixtures", FIX_DIR "/errors", ".gemini.json", fixture_error},
        {"oai_embed_fixtures", FIX_DIR "/embed", ".openai.json", fixture_embed},
    };
    for (size_t i = 0; i < GKM_ARRAY_LEN(groups); i++) {
        struct fix_list l = fix_find(groups[i].dir, groups[i].suffix);
        fails += fix_run_group(groups[i].name, &l, groups[i].fn);
        fix_free(&l);
    }
    return fails ? 1 : 0;
}
