/*
 * fuzz_oai_req.c - libFuzzer driver for the OpenAI request translators
 * (chat completions, embeddings) and the schema rewriters.
 *
 * The input is JSON text. Each translation must either succeed with a
 * serialisable body and a URL-safe model name, or fail with a 400 naming a
 * message; never crash, leak or read out of bounds. Translation options
 * vary with the input length so every option path is reached.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oai_err.h"
#include "oai_misc.h"
#include "oai_req.h"
#include "oai_schema.h"

static void check_model(const char *m)
{
    size_t n = strlen(m);
    if (n == 0 || n > 128)
        abort();
    for (size_t i = 0; i < n; i++)
        if (!((m[i] >= 'a' && m[i] <= 'z') || (m[i] >= 'A' && m[i] <= 'Z') ||
              (m[i] >= '0' && m[i] <= '9') || m[i] == '.' || m[i] == '_' ||
              m[i] == '-'))
            abort();
}

static void check_err(const struct gkm_oai_err *e)
{
    if (e->status != 400 || e->message == NULL || e->type == NULL)
        abort();
    json_t *j = gkm_oai_err_json(e);
    char *s = json_dumps(j, JSON_COMPACT);
    if (s == NULL)
        abort();
    free(s);
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *req = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (req == NULL)
        return 0;
    json_t *aliases = json_pack("{ss ss}", "gpt-4o", "gemini-2.5-flash",
                                "text-embedding-3-small", "models/emb");
    json_t *safety = json_pack("[{ss ss}]", "category",
                               "HARM_CATEGORY_HARASSMENT", "threshold",
                               "BLOCK_NONE");
    struct gkm_oai_opts opts;
    memset(&opts, 0, sizeof(opts));
    opts.model_aliases = aliases;
    opts.safety_settings = (size & 1) ? safety : NULL;
    opts.openapi_schema = (size & 2) != 0;
    opts.thoughts = (enum gkm_oai_thoughts)(size % 3);

    struct gkm_oai_err err;
    gkm_oai_err_init(&err);
    struct gkm_oai_chat chat;
    if (gkm_oai_chat_to_gemini(req, &opts, &chat, &err) == 0) {
        check_model(chat.model);
        char *s = json_dumps(chat.body, JSON_COMPACT);
        if (s == NULL || chat.n < 1 || chat.n > 8)
            abort();
        free(s);
        gkm_oai_chat_clear(&chat);
    } else {
        if (chat.body != NULL || chat.model != NULL)
            abort();
        check_err(&err);
    }
    gkm_oai_err_clear(&err);

    struct gkm_oai_embed emb;
    if (gkm_oai_embed_to_gemini(req, &opts, &emb, &err) == 0) {
        check_model(emb.model);
        size_t total = 0;
        for (size_t i = 0; i < emb.nbatches; i++) {
            size_t k = json_array_size(json_object_get(emb.batches[i],
                                                       "requests"));
            if (k == 0 || k > GKM_OAI_EMBED_BATCH_MAX)
                abort();
            total += k;
        }
        if (total != emb.ninputs)
            abort();
        gkm_oai_embed_clear(&emb);
    } else {
        check_err(&err);
    }
    gkm_oai_err_clear(&err);

    /* The input as a schema, both ways. */
    json_t *c = gkm_schema_clean(req);
    if (c == NULL)
        abort();
    json_decref(c);
    const char *why = NULL;
    json_t *o = gkm_schema_to_openapi(req, &why);
    if (o == NULL && why == NULL)
        abort();
    json_decref(o);
    (void)gkm_schema_is_empty_object(req);

    json_decref(aliases);
    json_decref(safety);
    json_decref(req);
    return 0;
}
