/*
 * openai.h - the OpenAI API surface (event-loop glue around the pure
 * translators in oai_*.c): /v1/chat/completions, /v1/models[/{id}],
 * /v1/embeddings, and /v1beta/openai/... passed through to Google's own
 * OpenAI-compatible endpoint. Every request goes through the core's key
 * rotation, accounting and failover (proxy.c).
 */
#ifndef GKM_OPENAI_H
#define GKM_OPENAI_H

struct gkm_hreq;
struct gkm_app;

/* 1 if a request for path should be answered by the OpenAI surface
 * rather than the native passthrough. /v1/models is ambiguous (Gemini's
 * v1 API has it too): it is OpenAI's when the client authenticates with
 * Authorization: Bearer and sends no x-goog-api-key or ?key=. */
int gkm_openai_claims(const char *path, struct gkm_hreq *req);

/* Handle a request gkm_openai_claims accepted. Takes over req. */
void gkm_openai_handle(struct gkm_app *app, struct gkm_hreq *req);

/* Free the models cache kept in app (at shutdown). */
void gkm_openai_free_cache(struct gkm_app *app);

#endif
