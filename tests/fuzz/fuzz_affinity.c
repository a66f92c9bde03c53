/*
 * fuzz_affinity.c - libFuzzer driver for the resource-name scanner and the
 * owner map (src/affinity.c).
 *
 * Every name the scanner reports must lie inside the input, start with
 * "files/" or "cachedContents/", have a 1..128 character id of
 * [A-Za-z0-9_-], and not follow a letter or digit; names come in
 * increasing order. Each is stored in a small map (evicting constantly) and
 * must read back with the last owner given while it is present.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"

struct ctx {
    const char *text;
    size_t len;
    const char *last;
    struct gkm_aff *map;
    size_t n;
};

static int idc(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static int check(void *arg, const char *name, size_t len)
{
    struct ctx *c = arg;
    if (name < c->text || name + len > c->text + c->len || name <= c->last)
        abort();
    size_t pl = strncmp(name, "files/", 6) == 0            ? 6
                : strncmp(name, "cachedContents/", 15) == 0 ? 15
                                                            : 0;
    if (pl == 0 || len <= pl || len - pl > 128 || len > GKM_AFF_NAME_MAX)
        abort();
    for (size_t i = pl; i < len; i++)
        if (!idc((unsigned char)name[i]))
            abort();
    if (name > c->text && (idc((unsigned char)name[-1]) && name[-1] != '-' &&
                           name[-1] != '_'))
        abort();
    c->last = name;
    gkm_aff_put(c->map, name, len, c->n, INT64_MAX);
    if (gkm_aff_get(c->map, name, len, 0) != (long)c->n)
        abort();
    c->n++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ctx c = {(const char *)data, size, NULL, gkm_aff_new(4), 0};
    if (gkm_aff_scan((const char *)data, size, check, &c) != 0)
        abort();
    if (gkm_aff_count(c.map) > 4)
        abort();
    gkm_aff_free(c.map);
    return 0;
}
