/*
 * jsonw.h - a fast compact serializer for jansson values.
 *
 * jansson stays the only JSON parser and tree in the proxy; this module
 * only prints trees. It exists because json_dumps() formats through a
 * per-call callback and a growing strbuffer, which made printing the
 * OpenAI answers the largest single cost of a translated request. The
 * output is byte for byte what json_dumps(v, JSON_COMPACT |
 * JSON_ENCODE_ANY) prints (insertion-ordered keys, "\uXXXX" escapes in
 * upper case for control characters, raw UTF-8 otherwise, reals with 17
 * significant digits and a ".0" or exponent), and it fails where
 * json_dumps fails (a string that is not valid UTF-8, a tree nested deeper
 * than GKM_JSONW_MAX_DEPTH). tests/unit/test_jsonw.c and the fuzz_jsonw
 * driver compare the two.
 */
#ifndef GKM_JSONW_H
#define GKM_JSONW_H

#include <stddef.h>

#include <jansson.h>

#include "buf.h"

/* Deeper trees are refused (jansson's own parser stops at 2048 levels). */
#define GKM_JSONW_MAX_DEPTH 2048

/* Append the compact JSON text of v to out. Returns 0, or -1 when v is
 * NULL, holds invalid UTF-8, nests too deep, or out's cap is reached; on
 * -1 out may hold a partial text (callers reset or discard it). */
int gkm_json_write(struct gkm_buf *out, const json_t *v)
    __attribute__((warn_unused_result));

/* Append str[0..len) as a JSON string literal, escaped as json_dumps
 * escapes it. Returns 0, or -1 when it is not valid UTF-8 or out's cap is
 * reached (out may then hold a partial literal). */
int gkm_json_write_string(struct gkm_buf *out, const char *str, size_t len)
    __attribute__((warn_unused_result));

/* The compact JSON text of v as a heap string (caller frees), its length
 * in *len if len != NULL; NULL where gkm_json_write fails. No cap beyond
 * memory: only for trees the proxy built or already parsed under a cap. */
char *gkm_json_dump(const json_t *v, size_t *len);

/* Copy the JSON text in[0..n) to out (room for n bytes; may be in) without
 * the whitespace outside strings that touches a structural character
 * ({ } [ ] , :) or either end: such whitespace never changes what a text
 * means or whether it parses (RFC 8259 section 2), and jansson's parser
 * pays for every byte it reads. Whitespace between two other tokens (as in
 * the invalid "1 2") is kept. Returns the length written. */
size_t gkm_json_squeeze(const char *in, size_t n, char *out);

#endif
