/*
 * fuzz_tap.c - libFuzzer driver for the usage and error tap (src/tap.c).
 *
 * Differential: the same answer is read once in one piece (for a whole
 * answer: in place, gkm_tap_whole, which scans the caller's buffer without
 * a copy and must not read past it) and once fed in pieces whose sizes come
 * from the input itself; both must report the same facts. The copy handed
 * to gkm_tap_whole has exactly the answer's length and no terminator, so
 * ASan catches a read past its end.
 * Input layout: byte 0 selects the kind (whole, SSE, JSON array), the rest
 * is the answer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"

static void same(const struct gkm_tap_result *a, const struct gkm_tap_result *b)
{
    if (a->saw_usage != b->saw_usage || a->saw_finish != b->saw_finish ||
        a->saw_error != b->saw_error || a->framing_error != b->framing_error)
        abort();
    if (a->saw_usage && (a->prompt_tokens != b->prompt_tokens ||
                         a->output_tokens != b->output_tokens ||
                         a->thinking_tokens != b->thinking_tokens))
        abort();
    if ((a->error == NULL) != (b->error == NULL) ||
        (a->saw_error && a->error == NULL))
        abort();
    if (a->error != NULL && (a->error->cls != b->error->cls ||
                             a->error->status != b->error->status))
        abort();
    if (a->prompt_tokens < 0 || a->output_tokens < 0 || a->thinking_tokens < 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum gkm_tap_kind kind = (enum gkm_tap_kind)(data[0] % 3);
    const uint8_t *d = data + 1;
    size_t n = size - 1;

    /* One piece: in place for a whole answer, one feed for streams. */
    char *copy = malloc(n ? n : 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, d, n);
    struct gkm_tap *one = gkm_tap_new(kind);
    const struct gkm_tap_result *r1 =
        kind == GKM_TAP_WHOLE ? gkm_tap_whole(one, copy, n)
                              : (gkm_tap_feed(one, copy, n), gkm_tap_finish(one));

    /* Pieces of 1-16 bytes, sizes from the input. */
    struct gkm_tap *many = gkm_tap_new(kind);
    size_t i = 0;
    while (i < n) {
        size_t step = (size_t)(d[i] % 16) + 1;
        if (step > n - i)
            step = n - i;
        gkm_tap_feed(many, (const char *)d + i, step);
        i += step;
    }
    const struct gkm_tap_result *r2 = gkm_tap_finish(many);
    same(r1, r2);
    /* Finishing twice returns the same facts. */
    if (gkm_tap_finish(many) != r2)
        abort();
    gkm_tap_free(one);
    gkm_tap_free(many);
    free(copy);
    return 0;
}
