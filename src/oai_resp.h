/*
 * oai_resp.h - Gemini GenerateContentResponse -> OpenAI chat.completion,
 * whole (oai_resp.c) or as a stream of chat.completion.chunk events
 * (oai_stream.c). Wire spec 4, 5.6, 7.2, 7.3, 7.5, 8.7-8.9.
 *
 * Pure: the caller supplies the completion id, the creation time and the
 * model name to echo; nothing here reads a clock or draws random numbers.
 * Tool-call ids are derived from the completion id (see oai_req.h
 * GKM_OAI_SIG_SEP for their format), so they are unique per completion and
 * reproducible in tests.
 */
#ifndef GKM_OAI_RESP_H
#define GKM_OAI_RESP_H

#include <jansson.h>
#include <stddef.h>

struct gkm_buf;
struct gkm_oai_err;

/* Per-completion facts chosen by the caller (plain data, borrowed). */
struct gkm_oai_resp_ctx {
    const char *id;      /* "chatcmpl-..." */
    long long created;   /* Unix seconds */
    const char *model;   /* model name echoed to the client */
    int reasoning;       /* surface thought parts as reasoning_content */
    int include_usage;   /* streams: send the usage chunk before [DONE] */
};

/* ---- whole responses ---- */

/* Translate a parsed generateContent response (borrowed). Returns a new
 * chat.completion object, or NULL with *err set when the body is an error
 * object (mapped as gkm_oai_err_from_gemini_json) or unusable (502).
 * A blocked prompt (no candidates, promptFeedback.blockReason) is a normal
 * completion with content null and finish_reason "content_filter". */
json_t *gkm_oai_chat_from_gemini(const json_t *resp,
                                 const struct gkm_oai_resp_ctx *ctx,
                                 struct gkm_oai_err *err);

/* ---- streams ----
 *
 * One state machine per streamed completion. Feed it upstream bytes
 * (gkm_oai_stream_feed: SSE from streamGenerateContent?alt=sse, split
 * anywhere), or already framed event payloads (gkm_oai_stream_data), or
 * parsed chunks (gkm_oai_stream_chunk); each call appends the resulting
 * OpenAI SSE events ("data: {chunk}\n\n") to out. Emission rules:
 *   - the first event of each choice carries delta {role, content: ""};
 *   - text -> delta.content, thoughts -> delta.reasoning_content (when
 *     ctx->reasoning), each functionCall -> one delta.tool_calls entry with
 *     its index, id, type, name and complete arguments;
 *   - finish_reason is held back and sent in a final empty-delta chunk
 *     per choice at the end of the upstream stream ("tool_calls" when the
 *     choice made calls), then the usage chunk (choices: []) when
 *     include_usage, then "data: [DONE]";
 *   - an upstream error object (SSE event, array-wrapped, or a raw JSON
 *     tail), an unparseable event, or an end without finishReason becomes
 *     one OpenAI error event {"error": {...}} and the stream ends WITHOUT
 *     [DONE], so no client mistakes it for a clean stop.
 * Return values: */
enum gkm_oai_stream_rc {
    GKM_OAI_STREAM_OK = 0,   /* more input welcome */
    GKM_OAI_STREAM_END = 1,  /* the stream is complete ([DONE] or an error
                                event was written); close it after sending
                                out; later calls append nothing */
    GKM_OAI_STREAM_ECAP = -1 /* out's cap was hit: out may hold part of
                                this call's events; abort the stream */
};

struct gkm_oai_stream;

/* New state machine. ctx strings are copied. max_event caps one upstream
 * SSE line and event (an event is one Gemini chunk, possibly megabytes of
 * base64). Never returns NULL. */
struct gkm_oai_stream *gkm_oai_stream_new(const struct gkm_oai_resp_ctx *ctx,
                                          size_t max_event);
/* Release the state machine (NULL is a no-op). */
void gkm_oai_stream_free(struct gkm_oai_stream *s);

/* Raw upstream SSE bytes (any split; a pretty-printed JSON error tail
 * without "data:" is recognised too). */
int gkm_oai_stream_feed(struct gkm_oai_stream *s, const char *bytes,
                        size_t len, struct gkm_buf *out)
    __attribute__((warn_unused_result));
/* One event payload (JSON text of one chunk). Empty payloads and "[DONE]"
 * are ignored. */
int gkm_oai_stream_data(struct gkm_oai_stream *s, const char *data,
                        size_t len, struct gkm_buf *out)
    __attribute__((warn_unused_result));
/* One parsed chunk (borrowed): a GenerateContentResponse, an error object,
 * or an array of either. */
int gkm_oai_stream_chunk(struct gkm_oai_stream *s, const json_t *chunk,
                         struct gkm_buf *out)
    __attribute__((warn_unused_result));
/* The upstream stream ended (EOF). Flushes pending feed bytes, then writes
 * the final chunks + usage + [DONE], or the truncation error event. Returns
 * GKM_OAI_STREAM_END or GKM_OAI_STREAM_ECAP. */
int gkm_oai_stream_finish(struct gkm_oai_stream *s, struct gkm_buf *out)
    __attribute__((warn_unused_result));
/* The proxy gave up on the stream (upstream connection error, timeout):
 * write e as an error event and end. Returns END or ECAP; no-op (END) if
 * the stream already ended. */
int gkm_oai_stream_fail(struct gkm_oai_stream *s, const struct gkm_oai_err *e,
                        struct gkm_buf *out)
    __attribute__((warn_unused_result));
/* 1 once any OpenAI event has been written (the caller can no longer
 * switch to a plain HTTP error reply), else 0. */
int gkm_oai_stream_started(const struct gkm_oai_stream *s);

/* ---- pieces shared by both forms ---- */

/* OpenAI finish_reason for a Gemini finishReason (spec 8.8 table; unknown
 * or NULL -> "stop"). Static string. */
const char *gkm_oai_finish_reason(const char *gemini);
/* OpenAI usage object from usageMetadata (borrowed; NULL gives zeros). */
json_t *gkm_oai_usage(const json_t *usage_metadata);
/* OpenAI tool call {id, type, function {name, arguments}[, extra_content]}
 * for a Gemini functionCall part (borrowed); the id is functionCall.id or
 * derived from (completion_id, choice, index), plus "__thought__<sig>"
 * when the part carries a thoughtSignature, which is also given as
 * extra_content.google.thought_signature. NULL if the part is malformed. */
json_t *gkm_oai_tool_call(const json_t *part, const char *completion_id,
                          size_t choice, size_t index);
/* Text rendering of a non-text output part appended to content (code
 * execution as fenced blocks, inline images as a Markdown data-URI image),
 * or NULL for parts that have none. Heap string. */
char *gkm_oai_render_part(const json_t *part);

#endif
