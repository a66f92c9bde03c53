/*
 * oai_req.h - OpenAI Chat Completions request -> Gemini generateContent
 * request (wire spec 7.1, 8.1-8.7; user-facing description in
 * docs/openai.md).
 *
 * Pure: JSON in, JSON out, an OpenAI-shaped error (HTTP 400 naming the
 * offending field in `param`) on invalid input; nothing is fetched and
 * nothing is sent anywhere. Unknown OpenAI fields are dropped, because
 * Gemini rejects unknown fields. The Gemini body is built from known fields
 * only, so no client field ever reaches Gemini unexamined.
 */
#ifndef GKM_OAI_REQ_H
#define GKM_OAI_REQ_H

#include <jansson.h>
#include <stddef.h>

struct gkm_oai_err;

/* When Gemini's thought summaries are requested and surfaced. */
enum gkm_oai_thoughts {
    /* ask (includeThoughts) when the client sent a reasoning_effort other
     * than "none"; surface as reasoning_content (the default) */
    GKM_OAI_THOUGHTS_ON_REQUEST = 0,
    /* never ask for thoughts; drop any that arrive */
    GKM_OAI_THOUGHTS_OFF,
    /* ask on every request to a thinking-capable model */
    GKM_OAI_THOUGHTS_ALWAYS
};

/* Translation options (plain data; everything borrowed). A zeroed struct
 * is valid: no safety settings, no aliases, thoughts on request, JSON
 * Schema, default embedding model. */
struct gkm_oai_opts {
    /* Gemini safetySettings array sent when the client gives none (via
     * extra_body.google.safety_settings); NULL = send none (model default) */
    const json_t *safety_settings;
    /* JSON object: client model name -> Gemini model id ("gpt-4o" ->
     * "gemini-2.5-flash"); NULL = none */
    const json_t *model_aliases;
    enum gkm_oai_thoughts thoughts;
    /* 0: schemas go to parametersJsonSchema / responseJsonSchema (JSON
     * Schema, only $schema/$id removed). 1: they are rewritten into the
     * OpenAPI subset and sent as parameters / responseSchema. */
    int openapi_schema;
    /* Gemini model used for OpenAI embedding model names
     * ("text-embedding-*"); NULL = "gemini-embedding-001" */
    const char *embed_model;
};

/* A translated chat request. */
struct gkm_oai_chat {
    json_t *body;      /* Gemini GenerateContentRequest (owned) */
    char *model;       /* bare Gemini model id for the URL (owned); only
                          [A-Za-z0-9._-], at most 128 bytes */
    int stream;        /* client asked for stream: true */
    int include_usage; /* stream_options.include_usage */
    int n;             /* choices asked for (1..8) */
    int reasoning;     /* surface thought parts as reasoning_content */
};

/* Translate req (a parsed OpenAI request body, borrowed). On success
 * returns 0 and fills *out (release with gkm_oai_chat_clear). On invalid
 * input returns -1, sets *err (status 400, type invalid_request_error,
 * param = the offending field) and leaves *out empty. */
int gkm_oai_chat_to_gemini(const json_t *req, const struct gkm_oai_opts *opts,
                           struct gkm_oai_chat *out, struct gkm_oai_err *err)
    __attribute__((warn_unused_result));
/* Release out's contents; it may be passed again to gkm_oai_chat_to_gemini. */
void gkm_oai_chat_clear(struct gkm_oai_chat *out);

/* Map a client model name to the bare Gemini id: strip "models/", apply
 * the alias table (the name as sent first, then without "models/"), check
 * the result is safe in a URL path. Returns a heap string, or NULL with
 * *why (static text). */
char *gkm_oai_model_resolve(const char *name, const json_t *aliases,
                            const char **why);

/* ---- internal to the request translator (oai_msgs.c), exposed for it ---- */

/* Convert req's "messages" (borrowed) into Gemini "contents" and
 * "systemInstruction" set on body. model is the resolved Gemini id (used
 * to decide whether Gemini 3 thought-signature rules apply). Returns 0, or
 * -1 with *err set. */
int gkm_oai_messages_to_contents(const json_t *messages, const char *model,
                                 json_t *body, struct gkm_oai_err *err)
    __attribute__((warn_unused_result));

/* Tool-call id encoding shared with the response side (wire spec 8.7).
 * An OpenAI tool-call id is "<base>[__thought__<signature>]" where base is
 * Gemini's functionCall.id when Gemini gave one, else "call_" + 24
 * characters derived from the completion id. */
#define GKM_OAI_SIG_SEP "__thought__"
/* Sentinel Gemini 3 accepts when no signature is available. */
#define GKM_OAI_SIG_SKIP "skip_thought_signature_validator"

/* 1 if model is a Gemini generation >= 3 (thinkingLevel, signatures). */
int gkm_oai_model_is_gemini3(const char *model);

#endif
