/*
 * fuzz_oai_resp.c - libFuzzer driver for the Gemini -> OpenAI response
 * side: whole responses, the streaming state machine, error mapping,
 * models and embeddings responses.
 *
 * The stream check is differential: the input fed as one SSE body and fed
 * in input-derived pieces must give byte-identical OpenAI output, which
 * must itself be well-framed ("data: <one line>\n\n" events) and, unless
 * it ends in an error event, end with "data: [DONE]".
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "oai_err.h"
#include "oai_misc.h"
#include "oai_resp.h"

#define OUT_CAP ((size_t)8 << 20)

static char *run_stream(const struct gkm_oai_resp_ctx *ctx, const uint8_t *d,
                        size_t n, int split, size_t *outlen, int *ecap)
{
    struct gkm_buf out;
    gkm_buf_init(&out, OUT_CAP);
    struct gkm_oai_stream *s = gkm_oai_stream_new(ctx, 1 << 16);
    int r = GKM_OAI_STREAM_OK;
    size_t i = 0;
    while (i < n && r == GKM_OAI_STREAM_OK) {
        size_t step = split ? (size_t)(d[i] % 13) + 1 : n - i;
        if (step > n - i)
            step = n - i;
        r = gkm_oai_stream_feed(s, (const char *)d + i, step, &out);
        i += step;
    }
    if (r == GKM_OAI_STREAM_OK)
        r = gkm_oai_stream_finish(s, &out);
    *ecap = r == GKM_OAI_STREAM_ECAP;
    if (!*ecap && r != GKM_OAI_STREAM_END)
        abort();
    gkm_oai_stream_free(s);
    return gkm_buf_take(&out, outlen);
}

static void check_framing(const char *p, size_t n)
{
    size_t i = 0;
    int last_done = 0, last_error = 0;
    while (i < n) {
        if (n - i < 8 || memcmp(p + i, "data: ", 6) != 0)
            abort();
        const char *nl = memchr(p + i + 6, '\n', n - i - 6);
        if (nl == NULL || (size_t)(nl - p) + 1 >= n || nl[1] != '\n')
            abort();
        size_t len = (size_t)(nl - (p + i + 6));
        last_done = len == 6 && memcmp(p + i + 6, "[DONE]", 6) == 0;
        last_error = len > 9 && memcmp(p + i + 6, "{\"error\":", 9) == 0;
        if (!last_done) {
            json_t *j = json_loadb(p + i + 6, len, 0, NULL);
            if (j == NULL)
                abort();
            json_decref(j);
        }
        i = (size_t)(nl - p) + 2;
    }
    if (!last_done && !last_error)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gkm_oai_resp_ctx ctx = {"chatcmpl-fuzz", 1700000000, "m",
                                   (int)(size & 1), (int)((size >> 1) & 1)};
    struct gkm_oai_err err;
    gkm_oai_err_init(&err);

    /* Stream, differential. */
    size_t la, lb;
    int ca, cb;
    char *a = run_stream(&ctx, data, size, 0, &la, &ca);
    char *b = run_stream(&ctx, data, size, 1, &lb, &cb);
    if (ca != cb || la != lb || memcmp(a, b, la) != 0)
        abort();
    if (!ca)
        check_framing(a, la);
    free(a);
    free(b);

    /* Error mapping of the raw bytes, with a status from the input. */
    int status = size ? 200 + data[0] * 2 : 500;
    gkm_oai_err_from_gemini(status, (const char *)data, size, &err);
    if (err.status < 400 || err.status > 599 || err.message == NULL)
        abort();
    gkm_oai_err_clear(&err);

    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (j != NULL) {
        json_t *c = gkm_oai_chat_from_gemini(j, &ctx, &err);
        if (c == NULL && err.status == 0)
            abort();
        if (c != NULL) {
            char *s = json_dumps(c, JSON_COMPACT);
            if (s == NULL)
                abort();
            free(s);
        }
        json_decref(c);
        gkm_oai_err_clear(&err);
        /* As one parsed stream chunk. */
        struct gkm_buf out;
        gkm_buf_init(&out, OUT_CAP);
        struct gkm_oai_stream *s = gkm_oai_stream_new(&ctx, 1 << 16);
        if (gkm_oai_stream_chunk(s, j, &out) == GKM_OAI_STREAM_OK)
            (void)!gkm_oai_stream_finish(s, &out);
        gkm_oai_stream_free(s);
        gkm_buf_free(&out);
        /* As a models page and an embeddings batch response. */
        json_t *arr = json_array();
        (void)gkm_oai_models_add_page(arr, j);
        gkm_oai_models_add_aliases(arr, j);
        json_decref(gkm_oai_models_list(arr));
        json_t *data_arr = json_array();
        size_t n = json_array_size(json_object_get(j, "embeddings"));
        if (gkm_oai_embed_add_batch(data_arr, j, 0, n, (int)(size & 1),
                                    &err) != 0 &&
            err.status != 502)
            abort();
        gkm_oai_err_clear(&err);
        json_decref(gkm_oai_embed_response(data_arr, "m"));
        json_decref(j);
    }
    return 0;
}
