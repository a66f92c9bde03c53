/*
 * oai_misc.h - OpenAI /v1/models and /v1/embeddings <-> Gemini models.list /
 * models.get and batchEmbedContents (wire spec 1.4, 1.5, 7.6, 7.7, 8.12).
 *
 * Pure translation; the caller pages through models.list and sends the
 * embedding batches. Inputs are borrowed.
 */
#ifndef GKM_OAI_MISC_H
#define GKM_OAI_MISC_H

#include <jansson.h>
#include <stddef.h>

struct gkm_oai_err;
struct gkm_oai_opts;

/* Most inputs accepted in one embeddings request (OpenAI's limit). */
#define GKM_OAI_EMBED_INPUTS_MAX 2048
/* Most requests Gemini accepts in one batchEmbedContents call. */
#define GKM_OAI_EMBED_BATCH_MAX 100

/* ---- models ---- */

/* {"id", "object": "model", "created": 0, "owned_by": "google"} for a
 * Gemini Model; id is the name without "models/". NULL if it has no name. */
json_t *gkm_oai_model_from_gemini(const json_t *model);
/* Append the OpenAI objects for the chat and embedding models of one
 * models.list page (models whose supportedGenerationMethods include
 * generateContent or embedContent, or that list no methods) to data (a
 * JSON array). Returns the number added, or -1 if page has no models
 * array. */
int gkm_oai_models_add_page(json_t *data, const json_t *page);
/* Append one entry per alias name whose target is listed in data and whose
 * own name is not, so clients can pick the alias. */
void gkm_oai_models_add_aliases(json_t *data, const json_t *aliases);
/* {"object": "list", "data": data}. Steals data. */
json_t *gkm_oai_models_list(json_t *data);

/* ---- embeddings ---- */

/* A translated embeddings request. */
struct gkm_oai_embed {
    char *model;      /* Gemini model id for the URL (owned) */
    json_t **batches; /* batchEmbedContents bodies, each with at most
                         GKM_OAI_EMBED_BATCH_MAX requests (owned) */
    size_t nbatches;
    size_t ninputs;   /* total number of inputs */
    int base64;       /* encoding_format "base64": pack float32 LE */
};

/* Translate an OpenAI embeddings request. model: the alias table first,
 * then OpenAI names ("text-embedding-*") -> opts->embed_model (default
 * gemini-embedding-001), else the name without "models/". input: a string
 * or an array of strings (token arrays -> 400, empty strings -> 400).
 * dimensions -> outputDimensionality on every request. Returns 0, or -1
 * with *err (400). */
int gkm_oai_embed_to_gemini(const json_t *req, const struct gkm_oai_opts *opts,
                            struct gkm_oai_embed *out, struct gkm_oai_err *err)
    __attribute__((warn_unused_result));
/* Release e's contents and zero it (safe on a zeroed struct). */
void gkm_oai_embed_clear(struct gkm_oai_embed *e);

/* Append the vectors of one batchEmbedContents response to data as
 * {"object": "embedding", "index": base + i, "embedding": [...] or
 * "<base64>"}. The response must hold exactly `expected` embeddings.
 * Returns 0, or -1 with *err (502) on a malformed response. */
int gkm_oai_embed_add_batch(json_t *data, const json_t *resp, size_t base,
                            size_t expected, int base64,
                            struct gkm_oai_err *err)
    __attribute__((warn_unused_result));
/* {"object": "list", "data": data, "model": model, "usage": {zeros}}.
 * Steals data. (Gemini reports no token usage for embeddings.) */
json_t *gkm_oai_embed_response(json_t *data, const char *model);

#endif
