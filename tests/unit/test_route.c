/* Unit tests for route.c: path splitting and normalisation, model
 * extraction, key stripping from queries, header filtering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keypool.h"
#include "route.h"

static void split_ok(const char *uri, const char *path, const char *query)
{
    char *p = NULL, *q = NULL;
    assert_int_equal(gkm_route_split(uri, &p, &q), 0);
    assert_string_equal(p, path);
    assert_string_equal(q, query);
    free(p);
    free(q);
}

static void split_bad(const char *uri)
{
    char *p = NULL, *q = NULL;
    assert_int_equal(gkm_route_split(uri, &p, &q), -1);
    assert_null(p);
    assert_null(q);
}

static void test_split(void **state)
{
    (void)state;
    split_ok("/v1beta/models", "/v1beta/models", "");
    split_ok("/v1beta/models/gemini-2.5-flash:generateContent?alt=sse&key=x",
             "/v1beta/models/gemini-2.5-flash:generateContent",
             "alt=sse&key=x");
    split_ok("/v1beta/models/m%3AstreamGenerateContent?alt=sse",
             "/v1beta/models/m:streamGenerateContent", "alt=sse");
    split_ok("/v1beta/models/m%3agenerateContent", "/v1beta/models/m:generateContent", "");
    split_ok("/v1beta/files/a%2Fb", "/v1beta/files/a%2Fb", "");
    split_ok("/v1beta/x..y/z", "/v1beta/x..y/z", "");
    split_ok("/v1beta/models#frag", "/v1beta/models", "");
    split_ok("/v1beta/models?a=b#frag?c", "/v1beta/models", "a=b");
    split_bad("/v1beta/mo dels");
    split_bad("/v1beta/models?a=\tb");
    split_bad("/v1beta/models\x01");
    split_bad("/v1beta/models?x=\x7f");
    split_bad("");
    split_bad("v1beta/models");
    split_bad("http://evil/v1beta/models");
    split_bad("/v1beta/../admin");
    split_bad("/v1beta/./models");
    split_bad("/v1beta/%2e%2e/admin");
    split_bad("/v1beta/.%2E");
    split_bad("/v1beta/models/..");
    char *huge = malloc(9000);
    memset(huge, 'a', 8999);
    huge[0] = '/';
    huge[8999] = '\0';
    split_bad(huge);
    free(huge);
}

static void model_is(const char *path, const char *model)
{
    char out[GKM_MODEL_MAX + 1];
    gkm_route_model(path, out, sizeof(out));
    assert_string_equal(out, model);
}

static void test_model(void **state)
{
    (void)state;
    model_is("/v1beta/models/gemini-2.5-flash:generateContent", "gemini-2.5-flash");
    model_is("/v1/models/gemini-1.5-pro", "gemini-1.5-pro");
    model_is("/v1beta/tunedModels/my-model-123:generateContent", "my-model-123");
    model_is("/v1beta/models", "");
    model_is("/v1beta/models/", "");
    model_is("/v1beta/files/abc", "");
    model_is("/v1beta/models/bad$name:generateContent", "");
    model_is("/v1beta/models/text-embedding-004:batchEmbedContents", "text-embedding-004");
    char longp[400] = "/v1beta/models/";
    memset(longp + strlen(longp), 'a', 200);
    model_is(longp, "");
}

static void strip_is(const char *q, const char *rest, const char *key)
{
    char *k = NULL;
    char *r = gkm_route_strip_key(q, &k);
    assert_string_equal(r, rest);
    if (key == NULL)
        assert_null(k);
    else
        assert_string_equal(k, key);
    free(r);
    free(k);
}

static void test_strip_key(void **state)
{
    (void)state;
    strip_is("", "", NULL);
    strip_is("key=abc", "", "abc");
    strip_is("alt=sse&key=abc", "alt=sse", "abc");
    strip_is("key=abc&alt=sse&pageSize=2", "alt=sse&pageSize=2", "abc");
    strip_is("key=a%2Bb&key=second", "", "a+b");
    strip_is("monkey=1&key=t&keys=2", "monkey=1&keys=2", "t");
    strip_is("key", "", "");
    strip_is("a=1&&b=2", "a=1&b=2", NULL);
}

static void test_headers(void **state)
{
    (void)state;
    const char *dropped[] = {"Host", "content-length", "Connection",
                             "Keep-Alive", "Transfer-Encoding", "TE",
                             "Upgrade", "Proxy-Authorization", "Authorization",
                             "X-Goog-Api-Key", "x-api-key", "Cookie",
                             "Accept-Encoding", "Expect", "X-Forwarded-For"};
    for (size_t i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++)
        assert_true(gkm_route_drop_request_header(dropped[i], NULL));
    const char *kept[] = {"Content-Type", "User-Agent", "x-goog-api-client",
                          "X-Server-Timeout", "X-Goog-Upload-Protocol",
                          "Accept"};
    for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
        assert_false(gkm_route_drop_request_header(kept[i], NULL));
    assert_true(gkm_route_drop_request_header("X-Hop", "keep-alive, x-hop"));
    assert_true(gkm_route_drop_request_header("X-Hop", " X-HOP "));
    assert_false(gkm_route_drop_request_header("X-Hopx", "x-hop"));
    assert_true(gkm_route_drop_response_header("Content-Length", NULL));
    assert_true(gkm_route_drop_response_header("content-encoding", NULL));
    assert_true(gkm_route_drop_response_header("Transfer-Encoding", NULL));
    assert_false(gkm_route_drop_response_header("Content-Type", NULL));
    assert_false(gkm_route_drop_response_header("x-goog-upload-url", NULL));
    assert_true(gkm_route_is_native("/v1beta/models"));
    assert_true(gkm_route_is_native("/v1/models"));
    assert_true(gkm_route_is_native("/upload/v1beta/files"));
    assert_false(gkm_route_is_native("/v1betax"));
    assert_false(gkm_route_is_native("/healthz"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_model),
        cmocka_unit_test(test_strip_key),
        cmocka_unit_test(test_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
