/*
 * fuzz_jsonw.c - libFuzzer driver for the compact serializer (src/jsonw.c).
 *
 * Differential: whatever jansson parses from the input (any value, NUL
 * bytes in strings allowed) must print byte for byte as json_dumps(
 * JSON_COMPACT | JSON_ENCODE_ANY) prints it, both as a whole and appended
 * after a prefix into a capped buffer; a cap too small must fail and leave
 * nothing past the cap. The raw input is also tried as one string value
 * without a UTF-8 check: both printers must agree on failing or not. And
 * gkm_json_squeeze must not change whether or to what the input parses.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "jsonw.h"

static void compare(const json_t *v)
{
    char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    size_t len = 0;
    char *got = gkm_json_dump(v, &len);
    if ((want == NULL) != (got == NULL))
        abort();
    if (want != NULL) {
        if (len != strlen(want) || memcmp(want, got, len) != 0)
            abort();
        /* Appended after a prefix, under a cap that fits exactly. */
        struct gkm_buf b;
        gkm_buf_init(&b, len + 3);
        if (gkm_buf_append(&b, "x: ", 3) != 0 || gkm_json_write(&b, v) != 0 ||
            b.len != len + 3 || memcmp(b.data + 3, want, len) != 0)
            abort();
        gkm_buf_free(&b);
        /* One byte short: must fail without passing the cap. */
        if (len > 0) {
            gkm_buf_init(&b, len - 1);
            if (gkm_json_write(&b, v) != -1 || b.len > len - 1)
                abort();
            gkm_buf_free(&b);
        }
    }
    free(want);
    free(got);
}

/* gkm_json_squeeze: the squeezed text parses exactly when the input does,
 * to an equal value, and squeezing again changes nothing. */
static void squeeze(const uint8_t *data, size_t size)
{
    char *t = malloc(size + 1);
    size_t tn = gkm_json_squeeze((const char *)data, size, t);
    if (tn > size)
        abort();
    size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL;
    json_t *a = json_loadb((const char *)data, size, flags, NULL);
    json_t *b = json_loadb(t, tn, flags, NULL);
    if ((a == NULL) != (b == NULL) || (a != NULL && !json_equal(a, b)))
        abort();
    json_decref(a);
    json_decref(b);
    char *t2 = malloc(tn + 1);
    if (gkm_json_squeeze(t, tn, t2) != tn || memcmp(t, t2, tn) != 0)
        abort();
    free(t2);
    free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    squeeze(data, size);
    json_t *v = json_loadb((const char *)data, size,
                           JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (v != NULL) {
        compare(v);
        json_decref(v);
    }
    json_t *s = json_stringn_nocheck((const char *)data, size);
    if (s != NULL) {
        compare(s);
        json_decref(s);
    }
    return 0;
}
