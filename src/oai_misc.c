/*
 * oai_misc.c - models and embeddings translation (see oai_misc.h).
 */
#include "oai_misc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oai_err.h"
#include "oai_media.h"
#include "oai_req.h"
#include "util.h"

#define DEFAULT_EMBED_MODEL "gemini-embedding-001"

/* ---- models ---- */

json_t *gkm_oai_model_from_gemini(const json_t *model)
{
    const char *name = json_string_value(json_object_get(model, "name"));
    if (name == NULL || name[0] == '\0')
        return NULL;
    if (strncmp(name, "models/", 7) == 0)
        name += 7;
    return json_pack("{ss ss si ss}", "id", name, "object", "model",
                     "created", 0, "owned_by", "google");
}

static int wanted(const json_t *model)
{
    const json_t *m = json_object_get(model, "supportedGenerationMethods");
    size_t i;
    const json_t *v;
    if (!json_is_array(m))
        return 1;
    json_array_foreach(m, i, v) {
        const char *s = json_string_value(v);
        if (s && (strcmp(s, "generateContent") == 0 ||
                  strcmp(s, "embedContent") == 0))
            return 1;
    }
    return 0;
}

int gkm_oai_models_add_page(json_t *data, const json_t *page)
{
    const json_t *models = json_object_get(page, "models");
    size_t i;
    const json_t *m;
    int added = 0;
    if (!json_is_array(models))
        return json_is_object(page) && json_object_size(page) == 0 ? 0 : -1;
    json_array_foreach(models, i, m) {
        if (!wanted(m))
            continue;
        json_t *o = gkm_oai_model_from_gemini(m);
        if (o != NULL) {
            json_array_append_new(data, o);
            added++;
        }
    }
    return added;
}

static int listed(const json_t *data, const char *id)
{
    size_t i;
    const json_t *v;
    json_array_foreach(data, i, v) {
        const char *s = json_string_value(json_object_get(v, "id"));
        if (s && strcmp(s, id) == 0)
            return 1;
    }
    return 0;
}

void gkm_oai_models_add_aliases(json_t *data, const json_t *aliases)
{
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)aliases, k, v) {
        const char *t = json_string_value(v);
        if (t == NULL)
            continue;
        if (strncmp(t, "models/", 7) == 0)
            t += 7;
        if (listed(data, t) && !listed(data, k))
            json_array_append_new(data,
                                  json_pack("{ss ss si ss}", "id", k, "object",
                                            "model", "created", 0, "owned_by",
                                            "google"));
    }
}

json_t *gkm_oai_models_list(json_t *data)
{
    return json_pack("{ss so}", "object", "list", "data", data);
}

/* ---- embeddings ---- */

void gkm_oai_embed_clear(struct gkm_oai_embed *e)
{
    for (size_t i = 0; i < e->nbatches; i++)
        json_decref(e->batches[i]);
    free(e->batches);
    free(e->model);
    memset(e, 0, sizeof(*e));
}

static char *embed_model(const json_t *req, const struct gkm_oai_opts *o,
                         struct gkm_oai_err *err)
{
    const json_t *mv = json_object_get(req, "model");
    const char *why = NULL;
    if (!json_is_string(mv) ||
        strlen(json_string_value(mv)) != json_string_length(mv)) {
        gkm_oai_err_invalid(err, "model", "'model' must be a string.");
        return NULL;
    }
    const char *name = json_string_value(mv);
    const json_t *aliases = o ? o->model_aliases : NULL;
    if (json_object_get(aliases, name) == NULL &&
        strncmp(name, "text-embedding-", 15) == 0)
        name = o && o->embed_model ? o->embed_model : DEFAULT_EMBED_MODEL;
    char *m = gkm_oai_model_resolve(name, aliases, &why);
    if (m == NULL)
        gkm_oai_err_invalid(err, "model", "Invalid 'model': %s.", why);
    return m;
}

int gkm_oai_embed_to_gemini(const json_t *req, const struct gkm_oai_opts *opts,
                            struct gkm_oai_embed *out, struct gkm_oai_err *err)
{
    json_t *single = NULL;
    memset(out, 0, sizeof(*out));
    if (!json_is_object(req)) {
        gkm_oai_err_invalid(err, NULL,
                            "The request body must be a JSON object.");
        return -1;
    }
    char *model = embed_model(req, opts, err);
    if (model == NULL)
        return -1;
    const json_t *input = json_object_get(req, "input");
    if (json_is_string(input)) {
        single = json_pack("[O]", input);
        input = single;
    }
    size_t n = json_array_size(input), i;
    const json_t *v;
    if (!json_is_array(input) || n == 0 || n > GKM_OAI_EMBED_INPUTS_MAX) {
        gkm_oai_err_invalid(err, "input",
                            "'input' must be a non-empty string or an array "
                            "of 1 to %d strings.", GKM_OAI_EMBED_INPUTS_MAX);
        goto fail;
    }
    json_array_foreach(input, i, v) {
        if (!json_is_string(v)) {
            gkm_oai_err_invalid(err, "input",
                                "'input[%zu]' is not a string: token arrays "
                                "cannot be translated to Gemini.", i);
            goto fail;
        }
        if (json_string_length(v) == 0) {
            gkm_oai_err_invalid(err, "input",
                                "'input[%zu]' is empty.", i);
            goto fail;
        }
    }
    const json_t *dim = json_object_get(req, "dimensions");
    if (dim != NULL && !json_is_null(dim) &&
        (!json_is_integer(dim) || json_integer_value(dim) < 1 ||
         json_integer_value(dim) > 65536)) {
        gkm_oai_err_invalid(err, "dimensions",
                            "'dimensions' must be a positive integer.");
        goto fail;
    }
    const json_t *ef = json_object_get(req, "encoding_format");
    const char *efs = json_string_value(ef);
    if (ef != NULL && !json_is_null(ef) &&
        (efs == NULL || (strcmp(efs, "float") && strcmp(efs, "base64")))) {
        gkm_oai_err_invalid(err, "encoding_format",
                            "'encoding_format' must be \"float\" or "
                            "\"base64\".");
        goto fail;
    }
    char *mpath = gkm_xasprintf("models/%s", model);
    out->nbatches = (n + GKM_OAI_EMBED_BATCH_MAX - 1) / GKM_OAI_EMBED_BATCH_MAX;
    out->batches = gkm_xcalloc(out->nbatches, sizeof(*out->batches));
    json_array_foreach(input, i, v) {
        json_t *r = json_pack("{ss s{s[{sO}]}}", "model", mpath, "content",
                              "parts", "text", v);
        if (json_is_integer(dim))
            json_object_set(r, "outputDimensionality", (json_t *)dim);
        size_t b = i / GKM_OAI_EMBED_BATCH_MAX;
        if (out->batches[b] == NULL)
            out->batches[b] = json_pack("{s[]}", "requests");
        json_array_append_new(json_object_get(out->batches[b], "requests"), r);
    }
    free(mpath);
    out->model = model;
    out->ninputs = n;
    out->base64 = efs != NULL && strcmp(efs, "base64") == 0;
    json_decref(single);
    return 0;
fail:
    json_decref(single);
    free(model);
    gkm_oai_embed_clear(out);
    return -1;
}

static json_t *pack_base64(const json_t *values)
{
    size_t n = json_array_size(values), i;
    const json_t *v;
    unsigned char *raw = gkm_xmalloc(n * 4 + 1);
    json_array_foreach(values, i, v) {
        float f = (float)json_number_value(v);
        uint32_t u;
        memcpy(&u, &f, sizeof(u));
        raw[i * 4] = (unsigned char)(u & 0xff);
        raw[i * 4 + 1] = (unsigned char)(u >> 8 & 0xff);
        raw[i * 4 + 2] = (unsigned char)(u >> 16 & 0xff);
        raw[i * 4 + 3] = (unsigned char)(u >> 24 & 0xff);
    }
    char *b64 = gkm_base64_encode(raw, n * 4, NULL);
    free(raw);
    json_t *s = json_string(b64);
    free(b64);
    return s;
}

int gkm_oai_embed_add_batch(json_t *data, const json_t *resp, size_t base,
                            size_t expected, int base64,
                            struct gkm_oai_err *err)
{
    const json_t *embs = json_object_get(resp, "embeddings");
    size_t i, j;
    const json_t *e, *x;
    if (!json_is_array(embs) || json_array_size(embs) != expected)
        goto bad;
    json_array_foreach(embs, i, e) {
        const json_t *vals = json_object_get(e, "values");
        if (!json_is_array(vals))
            goto bad;
        json_array_foreach(vals, j, x)
            if (!json_is_number(x))
                goto bad;
    }
    json_array_foreach(embs, i, e) {
        const json_t *vals = json_object_get(e, "values");
        json_t *emb = base64 ? pack_base64(vals) : json_deep_copy(vals);
        json_array_append_new(data,
                              json_pack("{ss sI so}", "object", "embedding",
                                        "index", (json_int_t)(base + i),
                                        "embedding", emb));
    }
    return 0;
bad:
    gkm_oai_err_set(err, 502, "server_error", NULL, NULL,
                    "Gemini returned a malformed embeddings response.");
    return -1;
}

json_t *gkm_oai_embed_response(json_t *data, const char *model)
{
    return json_pack("{ss so ss s{si si}}", "object", "list", "data", data,
                     "model", model, "usage", "prompt_tokens", 0,
                     "total_tokens", 0);
}
