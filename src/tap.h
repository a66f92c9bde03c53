/*
 * tap.h - reads a Gemini generateContent answer as it passes through (a
 * whole body, an SSE stream or a JSON-array stream) and keeps what the
 * accounting needs: the last usageMetadata (cumulative in streams), whether
 * a finishReason (or a blocked prompt) was seen, and the first error object
 * inside a 200 answer. Pure: bytes in, facts out; the relayed bytes are
 * never changed. Only objects that can matter are parsed, so relaying
 * stays cheap.
 */
#ifndef GKM_TAP_H
#define GKM_TAP_H

#include <stddef.h>
#include <stdint.h>

#include "gerror.h"

enum gkm_tap_kind {
    GKM_TAP_WHOLE, /* one JSON object (non-streaming answer) */
    GKM_TAP_SSE,   /* streamGenerateContent?alt=sse */
    GKM_TAP_ARRAY  /* streamGenerateContent (JSON array) */
};

struct gkm_tap_result {
    int saw_usage;
    int64_t prompt_tokens, output_tokens, thinking_tokens;
    int saw_finish;  /* a candidate finished, or the prompt was blocked */
    int saw_error;   /* an error object inside the answer */
    /* Its classification when saw_error, else NULL. A pointer: the
     * classification is 1.5 KiB, and a tap is made for every answer. */
    const struct gkm_err_info *error;
    int framing_error; /* the stream could not be framed (accounting only) */
};

struct gkm_tap;

/* New tap for one answer. Never NULL. */
struct gkm_tap *gkm_tap_new(enum gkm_tap_kind kind);
void gkm_tap_free(struct gkm_tap *t);
/* Feed bytes as they pass (any split). */
void gkm_tap_feed(struct gkm_tap *t, const char *data, size_t n);
/* End of the answer; returns the facts (borrowed, valid until free). */
const struct gkm_tap_result *gkm_tap_finish(struct gkm_tap *t);
/* For a GKM_TAP_WHOLE tap fed nothing yet: data is the whole answer; read
 * it in place (no copy) and finish. Otherwise the same as feed + finish. */
const struct gkm_tap_result *gkm_tap_whole(struct gkm_tap *t, const char *data,
                                           size_t n);

#endif
