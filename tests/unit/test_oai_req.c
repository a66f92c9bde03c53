/*
 * test_oai_req.c - OpenAI chat request -> Gemini request translation.
 *
 * Fixture pairs in tests/fixtures/openai/req/:
 *   <name>.openai.json  the OpenAI request
 *   <name>.gemini.json  the expected result: {"model", "stream",
 *                       "include_usage", "n", "reasoning", "body"} or
 *                       {"error": {"status", "type", "param",
 *                       "message_contains"?}}
 *   <name>.opts.json    optional translation options
 * plus unit tests of the helpers (schema, media, model names).
 */
#include "oai_fixtures.h"

#include "oai_err.h"
#include "oai_media.h"
#include "oai_req.h"
#include "oai_schema.h"

/* Options from a fixture's .opts.json (borrowed from o). */
static void load_opts(const json_t *o, struct gkm_oai_opts *opts)
{
    memset(opts, 0, sizeof(*opts));
    if (o == NULL)
        return;
    opts->safety_settings = json_object_get(o, "safety_settings");
    opts->model_aliases = json_object_get(o, "model_aliases");
    opts->openapi_schema = json_is_true(json_object_get(o, "openapi_schema"));
    opts->embed_model = json_string_value(json_object_get(o, "embed_model"));
    const char *t = json_string_value(json_object_get(o, "thoughts"));
    if (t && strcmp(t, "off") == 0)
        opts->thoughts = GKM_OAI_THOUGHTS_OFF;
    else if (t && strcmp(t, "always") == 0)
        opts->thoughts = GKM_OAI_THOUGHTS_ALWAYS;
}

static void fixture_req(void **state)
{
    const char *stem = *state;
    json_t *req = fix_json(stem, ".openai.json");
    json_t *want = fix_json(stem, ".gemini.json");
    json_t *ojson = fix_json(stem, ".opts.json");
    struct gkm_oai_opts opts;
    struct gkm_oai_chat out;
    struct gkm_oai_err err;
    assert_non_null(req);
    assert_non_null(want);
    load_opts(ojson, &opts);
    gkm_oai_err_init(&err);
    int r = gkm_oai_chat_to_gemini(req, &opts, &out, &err);
    const json_t *we = json_object_get(want, "error");
    if (we != NULL) {
        if (r == 0)
            print_error("expected an error, got body %s\n",
                        json_dumps(out.body, JSON_COMPACT));
        assert_int_equal(r, -1);
        assert_null(out.body);
        assert_null(out.model);
        assert_int_equal(err.status,
                         json_integer_value(json_object_get(we, "status")));
        assert_string_equal(err.type,
                            json_string_value(json_object_get(we, "type")));
        const char *param = json_string_value(json_object_get(we, "param"));
        if (param == NULL)
            assert_null(err.param);
        else
            assert_string_equal(err.param ? err.param : "(null)", param);
        assert_non_null(err.message);
        assert_true(strlen(err.message) > 10);
        const char *mc = json_string_value(json_object_get(we,
                                                           "message_contains"));
        if (mc && strstr(err.message, mc) == NULL)
            fail_msg("message '%s' lacks '%s'", err.message, mc);
        /* The error renders in OpenAI's shape, all four keys present. */
        json_t *ej = gkm_oai_err_json(&err);
        json_t *inner = json_object_get(ej, "error");
        assert_int_equal(json_object_size(inner), 4);
        json_decref(ej);
    } else {
        if (r != 0)
            fail_msg("unexpected error %d %s: %s", err.status,
                     err.param ? err.param : "-", err.message);
        assert_json_eq(out.body, json_object_get(want, "body"), stem);
        assert_string_equal(out.model,
                            json_string_value(json_object_get(want, "model")));
        assert_int_equal(out.stream,
                         json_is_true(json_object_get(want, "stream")));
        assert_int_equal(out.include_usage,
                         json_is_true(json_object_get(want, "include_usage")));
        assert_int_equal(out.n, json_integer_value(json_object_get(want, "n")));
        assert_int_equal(out.reasoning,
                         json_is_true(json_object_get(want, "reasoning")));
        assert_int_equal(err.status, 0);
        /* The input is not modified by the translation. */
        json_t *again = fix_json(stem, ".openai.json");
        assert_json_eq(req, again, "input unchanged");
        json_decref(again);
        gkm_oai_chat_clear(&out);
        assert_null(out.body);
    }
    gkm_oai_err_clear(&err);
    json_decref(req);
    json_decref(want);
    json_decref(ojson);
}

/* ---- helpers ---- */

static void test_model_resolve(void **state)
{
    (void)state;
    const char *why = NULL;
    json_t *al = json_pack("{ss ss}", "gpt-4o", "models/gemini-2.5-flash",
                           "bad", "a/b");
    char *m = gkm_oai_model_resolve("gpt-4o", al, &why);
    assert_string_equal(m, "gemini-2.5-flash");
    free(m);
    m = gkm_oai_model_resolve("models/gemini-2.5-pro", al, &why);
    assert_string_equal(m, "gemini-2.5-pro");
    free(m);
    m = gkm_oai_model_resolve("gemini-2.5-pro", NULL, &why);
    assert_string_equal(m, "gemini-2.5-pro");
    free(m);
    assert_null(gkm_oai_model_resolve("bad", al, &why));
    assert_null(gkm_oai_model_resolve("x y", NULL, &why));
    assert_null(gkm_oai_model_resolve("a:generateContent", NULL, &why));
    assert_null(gkm_oai_model_resolve("a?key=1", NULL, &why));
    assert_null(gkm_oai_model_resolve("", NULL, &why));
    char longname[200];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_null(gkm_oai_model_resolve(longname, NULL, &why));
    assert_non_null(why);
    json_decref(al);
    assert_true(gkm_oai_model_is_gemini3("gemini-3-pro-preview"));
    assert_true(gkm_oai_model_is_gemini3("gemini-3.1-flash"));
    assert_true(gkm_oai_model_is_gemini3("gemini-10-ultra"));
    assert_false(gkm_oai_model_is_gemini3("gemini-2.5-flash"));
    assert_false(gkm_oai_model_is_gemini3("gemini-flash-latest"));
    assert_false(gkm_oai_model_is_gemini3("gemma-3-27b-it"));
}

static void test_base64(void **state)
{
    (void)state;
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
                         "Zm9vYmFy"};
    for (size_t i = 0; i < GKM_ARRAY_LEN(in); i++) {
        size_t n;
        char *b = gkm_base64_encode((const unsigned char *)in[i],
                                    strlen(in[i]), &n);
        assert_string_equal(b, out[i]);
        assert_int_equal(n, strlen(out[i]));
        free(b);
    }
}

static void test_mime_guess(void **state)
{
    (void)state;
    const char *n = "https://x.com/a/b.PNG?x=1.jpg#frag.gif";
    assert_string_equal(gkm_media_mime_from_name(n, strlen(n)), "image/png");
    n = "clip.mov";
    assert_string_equal(gkm_media_mime_from_name(n, strlen(n)), "video/mov");
    n = "https://x.com/noext";
    assert_null(gkm_media_mime_from_name(n, strlen(n)));
    n = "https://x.com";
    assert_null(gkm_media_mime_from_name(n, strlen(n)));
    n = "file.";
    assert_null(gkm_media_mime_from_name(n, strlen(n)));
    n = "a.verylongext";
    assert_null(gkm_media_mime_from_name(n, strlen(n)));
}

static void test_data_uri(void **state)
{
    (void)state;
    char *mime, *b64;
    const char *why;
    const char *u = "DATA:Image/PNG;BASE64,QUJD";
    assert_int_equal(gkm_media_data_uri(u, strlen(u), &mime, &b64, &why), 0);
    assert_string_equal(mime, "image/png");
    assert_string_equal(b64, "QUJD");
    free(mime);
    free(b64);
    u = "data:,a%2Cb%zz%4";
    assert_int_equal(gkm_media_data_uri(u, strlen(u), &mime, &b64, &why), 0);
    assert_string_equal(mime, "");
    assert_string_equal(b64, "YSxiJXp6JTQ="); /* "a,b%zz%4" */
    free(mime);
    free(b64);
    u = "data:image/png;base64";
    assert_int_equal(gkm_media_data_uri(u, strlen(u), &mime, &b64, &why), -1);
    u = "data:image/png;base64,QU=JD";
    assert_int_equal(gkm_media_data_uri(u, strlen(u), &mime, &b64, &why), -1);
    u = "data:image/png;base64,QUJD===";
    assert_int_equal(gkm_media_data_uri(u, strlen(u), &mime, &b64, &why), -1);
    u = "data:text/plain,";
    assert_int_equal(gkm_media_data_uri(u, strlen(u), &mime, &b64, &why), -1);
    u = "http://x";
    assert_int_equal(gkm_media_data_uri(u, strlen(u), &mime, &b64, &why), -1);
}

static void test_url_part(void **state)
{
    (void)state;
    const char *why = NULL;
    const char *u = "https://a.b/c d.png";
    assert_null(gkm_media_url_part(u, strlen(u), NULL, &why));
    assert_non_null(why);
    char *big = gkm_xmalloc(GKM_MEDIA_URL_MAX + 20);
    memcpy(big, "https://a.b/", 12);
    memset(big + 12, 'x', GKM_MEDIA_URL_MAX);
    assert_null(gkm_media_url_part(big, GKM_MEDIA_URL_MAX + 12, NULL, &why));
    free(big);
    u = "http://example.com/a.mp4";
    json_t *p = gkm_media_url_part(u, strlen(u), NULL, &why);
    json_t *want = json_pack("{s{ssss}}", "fileData", "mimeType", "video/mp4",
                             "fileUri", u);
    assert_json_eq(p, want, "http mp4");
    json_decref(p);
    json_decref(want);
    u = "https://example.com/page";
    p = gkm_media_url_part(u, strlen(u), NULL, &why);
    want = json_pack("{s{ss}}", "fileData", "fileUri", u);
    assert_json_eq(p, want, "no mime");
    json_decref(p);
    json_decref(want);
}

static json_t *J(const char *text)
{
    json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
    assert_non_null(j);
    return j;
}

static void check_oapi(const char *in, const char *out)
{
    json_t *s = J(in), *w = J(out);
    const char *why = NULL;
    json_t *got = gkm_schema_to_openapi(s, &why);
    assert_json_eq(got, w, in);
    json_decref(got);
    json_decref(s);
    json_decref(w);
}

static void test_schema_openapi(void **state)
{
    (void)state;
    check_oapi("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}},"
               "\"required\":[\"a\"],\"additionalProperties\":false,"
               "\"$schema\":\"x\",\"strict\":true}",
               "{\"type\":\"OBJECT\",\"properties\":{\"a\":{\"type\":\"STRING\"}},"
               "\"required\":[\"a\"]}");
    /* a property called "type" is a name, not a keyword */
    check_oapi("{\"properties\":{\"type\":{\"type\":\"integer\",\"format\":"
               "\"int64\"}}}",
               "{\"type\":\"OBJECT\",\"properties\":{\"type\":{\"type\":"
               "\"INTEGER\",\"format\":\"int64\"}}}");
    /* anyOf with only null: nullable string */
    check_oapi("{\"anyOf\":[{\"type\":\"null\"}]}",
               "{\"type\":\"STRING\",\"nullable\":true}");
    /* anyOf collapse keeps the outer description */
    check_oapi("{\"description\":\"d\",\"anyOf\":[{\"type\":\"number\","
               "\"description\":\"inner\",\"format\":\"float\"},"
               "{\"type\":\"null\"}]}",
               "{\"type\":\"NUMBER\",\"description\":\"d\",\"format\":"
               "\"float\",\"nullable\":true}");
    /* definitions (draft-07) and "#" self reference */
    check_oapi("{\"definitions\":{\"A\":{\"type\":\"boolean\"}},\"type\":"
               "\"object\",\"properties\":{\"x\":{\"$ref\":"
               "\"#/definitions/A\"}}}",
               "{\"type\":\"OBJECT\",\"properties\":{\"x\":{\"type\":"
               "\"BOOLEAN\"}}}");
    /* unresolvable ref */
    json_t *s = J("{\"$ref\":\"#/$defs/missing\"}");
    const char *why = NULL;
    assert_null(gkm_schema_to_openapi(s, &why));
    assert_non_null(why);
    json_decref(s);
    /* non-object schema */
    check_oapi("true", "{\"type\":\"STRING\"}");
    /* $ref fan-out: 50 properties all referring to their own definition
     * would inline to 50^4 nodes; refused instead. */
    json_t *props = json_object();
    for (int i = 0; i < 50; i++) {
        char k[16];
        snprintf(k, sizeof(k), "p%d", i);
        json_object_set_new(props, k, json_pack("{ss}", "$ref", "#/$defs/A"));
    }
    json_t *bomb = json_pack("{s{s{ssso}}ss}", "$defs", "A", "type",
                             "object", "properties", props, "$ref",
                             "#/$defs/A");
    assert_non_null(bomb);
    why = NULL;
    assert_null(gkm_schema_to_openapi(bomb, &why));
    assert_non_null(strstr(why, "too large"));
    json_decref(bomb);
}

static void test_schema_clean_and_empty(void **state)
{
    (void)state;
    json_t *s = J("{\"$schema\":\"x\",\"$id\":\"y\",\"type\":\"object\","
                  "\"properties\":{\"$schema\":{\"$id\":\"z\",\"type\":"
                  "\"string\"}},\"items\":[{\"$id\":\"q\"}],\"not\":true,"
                  "\"enum\":[{\"$id\":1}]}");
    json_t *w = J("{\"type\":\"object\",\"properties\":{\"$schema\":{"
                  "\"type\":\"string\"}},\"items\":[{}],\"not\":true,"
                  "\"enum\":[{\"$id\":1}]}");
    json_t *got = gkm_schema_clean(s);
    assert_json_eq(got, w, "clean");
    json_decref(got);
    json_decref(s);
    json_decref(w);
    const char *empty[] = {"{}", "{\"type\":\"object\"}",
                           "{\"type\":\"OBJECT\",\"properties\":{}}",
                           "{\"type\":\"object\",\"additionalProperties\":false}"};
    const char *nonempty[] = {
        "{\"type\":\"string\"}", "{\"properties\":{\"a\":{}}}",
        "{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}}",
        "{\"anyOf\":[]}", "[]"};
    for (size_t i = 0; i < GKM_ARRAY_LEN(empty); i++) {
        json_t *j = J(empty[i]);
        assert_true(gkm_schema_is_empty_object(j));
        json_decref(j);
    }
    for (size_t i = 0; i < GKM_ARRAY_LEN(nonempty); i++) {
        json_t *j = J(nonempty[i]);
        assert_false(gkm_schema_is_empty_object(j));
        json_decref(j);
    }
}

static void test_null_opts_and_reuse(void **state)
{
    (void)state;
    json_t *req = J("{\"model\":\"gemini-2.5-flash\",\"messages\":[{\"role\":"
                    "\"user\",\"content\":\"hi\"}],\"reasoning_effort\":"
                    "\"low\"}");
    struct gkm_oai_chat out;
    struct gkm_oai_err err;
    gkm_oai_err_init(&err);
    assert_int_equal(gkm_oai_chat_to_gemini(req, NULL, &out, &err), 0);
    assert_string_equal(out.model, "gemini-2.5-flash");
    assert_int_equal(out.reasoning, 1);
    /* defaults: thoughts on request, and the client asked */
    json_t *tc = json_object_get(json_object_get(out.body, "generationConfig"),
                                 "thinkingConfig");
    assert_true(json_is_true(json_object_get(tc, "includeThoughts")));
    gkm_oai_chat_clear(&out);
    assert_int_equal(gkm_oai_chat_to_gemini(req, NULL, &out, &err), 0);
    gkm_oai_chat_clear(&out);
    json_decref(req);
    /* an error replaces an earlier one cleanly */
    json_t *bad = J("{\"model\":1}");
    assert_int_equal(gkm_oai_chat_to_gemini(bad, NULL, &out, &err), -1);
    assert_int_equal(gkm_oai_chat_to_gemini(bad, NULL, &out, &err), -1);
    assert_string_equal(err.param, "model");
    gkm_oai_err_clear(&err);
    json_decref(bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_resolve),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_mime_guess),
        cmocka_unit_test(test_data_uri),
        cmocka_unit_test(test_url_part),
        cmocka_unit_test(test_schema_openapi),
        cmocka_unit_test(test_schema_clean_and_empty),
        cmocka_unit_test(test_null_opts_and_reuse),
    };
    int fails = cmocka_run_group_tests_name("oai_req_helpers", tests, NULL,
                                            NULL);
    struct fix_list l = fix_find(FIX_DIR "/req", ".openai.json");
    fails += fix_run_group("oai_req_fixtures", &l, fixture_req);
    fix_free(&l);
    return fails ? 1 : 0;
}
