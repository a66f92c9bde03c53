/*
 * affinity.c - resource name -> owning key (see affinity.h).
 *
 * A chained hash table (FNV-1a) whose entries are also on one list in
 * insertion order: the list's head is the oldest entry, evicted when the
 * map is full. Every operation is O(1) on average.
 */
#define _GNU_SOURCE 1 /* memmem */
#include "affinity.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

struct entry {
    struct entry *chain;       /* next in the bucket */
    struct entry *older, *newer; /* insertion order */
    int64_t expires_ms;
    size_t idx;
    size_t len;
    char name[]; /* len bytes, NUL-terminated */
};

struct gkm_aff {
    struct entry **buckets;
    size_t nbuckets; /* power of two */
    size_t count, cap;
    uint64_t gen;
    struct entry *oldest, *newest;
};

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

struct gkm_aff *gkm_aff_new(size_t cap)
{
    struct gkm_aff *a = gkm_xcalloc(1, sizeof(*a));
    a->cap = cap ? cap : 1;
    a->nbuckets = 64;
    while (a->nbuckets < a->cap && a->nbuckets < ((size_t)1 << 20))
        a->nbuckets *= 2;
    a->buckets = gkm_xcalloc(a->nbuckets, sizeof(*a->buckets));
    return a;
}

void gkm_aff_free(struct gkm_aff *a)
{
    if (a == NULL)
        return;
    struct entry *e = a->oldest;
    while (e != NULL) {
        struct entry *n = e->newer;
        free(e);
        e = n;
    }
    free(a->buckets);
    free(a);
}

/* The link pointing at name's entry (or at the NULL ending its chain). */
static struct entry **find(struct gkm_aff *a, const char *name, size_t len)
{
    struct entry **pp = &a->buckets[hash(name, len) & (a->nbuckets - 1)];
    while (*pp != NULL &&
           ((*pp)->len != len || memcmp((*pp)->name, name, len) != 0))
        pp = &(*pp)->chain;
    return pp;
}

static void unlink_entry(struct gkm_aff *a, struct entry **pp)
{
    struct entry *e = *pp;
    *pp = e->chain;
    if (e->older)
        e->older->newer = e->newer;
    else
        a->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        a->newest = e->older;
    a->count--;
    free(e);
}

void gkm_aff_put(struct gkm_aff *a, const char *name, size_t len, size_t idx,
                 int64_t expires_ms)
{
    if (len == 0 || len > GKM_AFF_NAME_MAX)
        return;
    a->gen++;
    struct entry **pp = find(a, name, len);
    if (*pp != NULL)
        unlink_entry(a, pp);
    while (a->count >= a->cap)
        unlink_entry(a, find(a, a->oldest->name, a->oldest->len));
    struct entry *e = gkm_xmalloc(sizeof(*e) + len + 1);
    memcpy(e->name, name, len);
    e->name[len] = '\0';
    e->len = len;
    e->idx = idx;
    e->expires_ms = expires_ms;
    pp = find(a, name, len); /* the chain may have changed */
    e->chain = NULL;
    *pp = e;
    e->older = a->newest;
    e->newer = NULL;
    if (a->newest)
        a->newest->newer = e;
    else
        a->oldest = e;
    a->newest = e;
    a->count++;
}

long gkm_aff_get(struct gkm_aff *a, const char *name, size_t len,
                 int64_t now_ms)
{
    if (len == 0 || len > GKM_AFF_NAME_MAX || a->count == 0)
        return -1;
    struct entry **pp = find(a, name, len);
    if (*pp == NULL)
        return -1;
    if ((*pp)->expires_ms <= now_ms) {
        unlink_entry(a, pp);
        return -1;
    }
    return (long)(*pp)->idx;
}

void gkm_aff_del(struct gkm_aff *a, const char *name, size_t len)
{
    if (len == 0 || len > GKM_AFF_NAME_MAX)
        return;
    struct entry **pp = find(a, name, len);
    if (*pp != NULL) {
        unlink_entry(a, pp);
        a->gen++;
    }
}

size_t gkm_aff_count(const struct gkm_aff *a)
{
    return a->count;
}

uint64_t gkm_aff_generation(const struct gkm_aff *a)
{
    return a->gen;
}

void gkm_aff_foreach(const struct gkm_aff *a, int64_t now_ms,
                     gkm_aff_each_cb cb, void *arg)
{
    for (const struct entry *e = a->oldest; e != NULL; e = e->newer)
        if (e->expires_ms > now_ms)
            cb(arg, e->name, e->len, e->idx, e->expires_ms);
}

static int id_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static int alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9');
}

int gkm_aff_scan(const char *text, size_t len, gkm_aff_scan_cb cb, void *arg)
{
    static const struct {
        const char *p;
        size_t n;
    } prefixes[] = {{"files/", 6}, {"cachedContents/", 15}};
    /* The next match of each prefix is kept and only the one just used is
     * searched again, so the text is searched once per prefix in all
     * (a body made of nothing but "files/" stays linear). */
    const char *next[GKM_ARRAY_LEN(prefixes)];
    for (size_t k = 0; k < GKM_ARRAY_LEN(prefixes); k++)
        next[k] = memmem(text, len, prefixes[k].p, prefixes[k].n);
    for (;;) {
        size_t kb = GKM_ARRAY_LEN(prefixes);
        for (size_t k = 0; k < GKM_ARRAY_LEN(prefixes); k++)
            if (next[k] != NULL && (kb == GKM_ARRAY_LEN(prefixes) ||
                                    next[k] < next[kb]))
                kb = k;
        if (kb == GKM_ARRAY_LEN(prefixes))
            return 0;
        const char *best = next[kb];
        size_t bn = prefixes[kb].n;
        size_t at = (size_t)(best - text);
        size_t i = at + bn;
        while (i < len && i - (at + bn) <= 128 && id_char((unsigned char)text[i]))
            i++;
        size_t idlen = i - (at + bn);
        int bounded = at == 0 || !alnum((unsigned char)text[at - 1]);
        if (bounded && idlen >= 1 && idlen <= 128) {
            int r = cb(arg, best, i - at);
            if (r != 0)
                return r;
        }
        next[kb] = memmem(best + 1, len - at - 1, prefixes[kb].p,
                          prefixes[kb].n);
    }
}
