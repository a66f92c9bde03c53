/*
 * sse.h - stream framing: a push parser for Server-Sent Events, a framer
 * for Gemini's JSON-array stream, and helpers that write SSE events.
 *
 * Both parsers are push parsers: feed them whatever slices the network
 * delivers (an event, a line, even a CRLF pair may be split anywhere) and
 * they call back once per complete event / object. Every input-driven
 * buffer is capped; passing a cap is an error, never an OOM.
 *
 * Callback rule (libuv's): if a feed call fails, no callback is made for the
 * failing part; a callback that returns non-zero stops the parser, which
 * then reports GKM_SSE_EABORT from this and every later call. Callbacks must
 * not free the parser. The data handed to a callback is NUL-terminated
 * (data[len] == '\0') and borrowed for the duration of the call.
 *
 * SSE rules implemented (WHATWG HTML "Server-sent events", 9.2.6):
 *   - lines end in CRLF, LF or CR; a leading UTF-8 BOM is skipped;
 *   - an empty line ends the event; lines starting with ':' are comments;
 *   - "field:value" with one optional space after the colon removed; a line
 *     without a colon is a field with an empty value;
 *   - the values of all "data" fields of one event are joined with "\n";
 *     "event", "id", "retry" and unknown fields are ignored.
 * Deviation: at end of input (gkm_sse_parser_finish) a pending unterminated
 * line and an event lacking its final blank line are still dispatched (the
 * spec discards them), so a truncated last event reaches the consumer, which
 * sees invalid JSON or a missing finishReason rather than nothing.
 */
#ifndef GKM_SSE_H
#define GKM_SSE_H

#include <stddef.h>

struct gkm_buf;
struct json_t;

/* Return codes of the feed/finish functions. */
enum gkm_sse_rc {
    GKM_SSE_OK = 0,
    GKM_SSE_ELINE = -1,   /* an SSE line is longer than max_line */
    GKM_SSE_EEVENT = -2,  /* an event's data / a JSON object passes its cap */
    GKM_SSE_EABORT = -3,  /* the callback returned non-zero */
    GKM_SSE_ESYNTAX = -4, /* JSON-array framer: bad byte between objects */
    GKM_SSE_ETRUNC = -5   /* JSON-array framer: input ended inside the array */
};

/* Static description of an rc value. */
const char *gkm_sse_strerror(int rc);

/* Event callback: data/len is one event's payload (or one JSON object for
 * the array framer). Return 0 to continue, non-zero to stop parsing. */
typedef int (*gkm_sse_cb)(void *arg, const char *data, size_t len);

/* ---- SSE push parser ---- */

struct gkm_sse_parser;

/* New parser. max_line caps one line (without its terminator); max_event
 * caps the joined data of one event. Never returns NULL. */
struct gkm_sse_parser *gkm_sse_parser_new(size_t max_line, size_t max_event);
/* Release the parser and its buffers (NULL is a no-op). */
void gkm_sse_parser_free(struct gkm_sse_parser *p);

/* Raw-tail mode (off by default). When on, lines that are neither comments
 * nor "data"/"event"/"id"/"retry" fields are kept (joined with "\n") and,
 * if the event has no data field, dispatched as the event's payload. This
 * catches the pretty-printed JSON error object Gemini sometimes appends to
 * an SSE stream without any "data:" prefix (wire spec 5.6). */
void gkm_sse_parser_keep_raw(struct gkm_sse_parser *p, int on);

/* Feed len bytes. Calls cb(arg, data, len) for each complete event.
 * Returns GKM_SSE_OK or a negative gkm_sse_rc; errors are sticky. */
int gkm_sse_parser_feed(struct gkm_sse_parser *p, const char *buf, size_t len,
                        gkm_sse_cb cb, void *arg)
    __attribute__((warn_unused_result));
/* End of input: dispatch what is pending (see the deviation above), then
 * reset the parser for a new stream. Returns GKM_SSE_OK or an rc. */
int gkm_sse_parser_finish(struct gkm_sse_parser *p, gkm_sse_cb cb, void *arg)
    __attribute__((warn_unused_result));

/* ---- JSON-array stream framer (streamGenerateContent without alt=sse) ----
 *
 * The body is "[" obj "," obj ... "]" with arbitrary whitespace and each
 * object possibly pretty-printed. The framer scans braces while tracking
 * string and escape state (braces inside text are common), skips
 * whitespace, '[', ',' and ']' between objects and emits each complete
 * top-level {...}. A bare object without the array (an error body) works
 * too. */

struct gkm_json_framer;

/* New framer; max_obj caps one object's size in bytes. Never NULL. */
struct gkm_json_framer *gkm_json_framer_new(size_t max_obj);
/* Release the framer (NULL is a no-op). */
void gkm_json_framer_free(struct gkm_json_framer *f);
/* Feed len bytes; cb gets each complete object's text. Returns GKM_SSE_OK or
 * a negative rc (EEVENT, ESYNTAX, EABORT); errors are sticky. */
int gkm_json_framer_feed(struct gkm_json_framer *f, const char *buf,
                         size_t len, gkm_sse_cb cb, void *arg)
    __attribute__((warn_unused_result));
/* End of input. Returns GKM_SSE_ETRUNC if the input stopped inside an object
 * or after "[" without the closing "]", else GKM_SSE_OK. Resets the framer. */
int gkm_json_framer_finish(struct gkm_json_framer *f)
    __attribute__((warn_unused_result));

/* ---- SSE writer ----
 * Each helper appends one complete event to out, or nothing at all: on
 * -1 (out's cap would be passed) out is unchanged. */

/* "data: <line>\n" for each line of data (split at CR, LF, CRLF), then "\n". */
int gkm_sse_write_data(struct gkm_buf *out, const char *data, size_t len)
    __attribute__((warn_unused_result));
/* "data: <compact JSON of v>\n\n" (v borrowed; any JSON value). */
int gkm_sse_write_json(struct gkm_buf *out, const struct json_t *v)
    __attribute__((warn_unused_result));
/* "data: [DONE]\n\n" (OpenAI's end-of-stream sentinel). */
int gkm_sse_write_done(struct gkm_buf *out)
    __attribute__((warn_unused_result));
/* ": <text>\n\n", a comment (keep-alive); text must not contain newlines. */
int gkm_sse_write_comment(struct gkm_buf *out, const char *text)
    __attribute__((warn_unused_result));

#endif
