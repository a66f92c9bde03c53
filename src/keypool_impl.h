/*
 * keypool_impl.h - the key pool's private layout, shared by keypool.c
 * (rotation, benching) and keystats.c (usage counting and statistics).
 * Not part of the API: nothing outside those two files includes it.
 *
 * Layout:
 *   - keys[]: secret, mask, project, the key-wide bench and the counters.
 *     Per-model counters are a small unsorted vector per key (a key is used
 *     with few models), indexed by model id.
 *   - models[]: interned model names (id 0 is the "" pseudo-model, created
 *     with the pool). The rotation state of a model (struct rot) is
 *     allocated on the first pick or bench for it, so counting or querying a
 *     model costs no O(n) memory.
 *   - struct rot: a doubly linked ring of the keys available for the model
 *     with a round-robin cursor, and a min-heap of the keys out of rotation,
 *     ordered by (hkey, index) where hkey is the time to look at the key
 *     again.
 */
#ifndef GKM_KEYPOOL_IMPL_H
#define GKM_KEYPOOL_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "keypool.h"
#include "util.h"

#define NIL UINT32_MAX

/* Open-addressing hash map from a borrowed string to a uint32_t. */
struct slot {
    const char *str; /* NULL: empty */
    uint32_t val;
};

struct strmap {
    struct slot *slots;
    size_t cap; /* power of two */
    size_t len;
};

/* Counters of one (key, model) pair. st.requests is the per-model request
 * count (always 0 for the "" pseudo-model, id 0, whose requests are derived
 * from the key total: see keystats.c). */
struct count_ent {
    uint32_t model; /* model id */
    struct gkm_model_stats st;
};

struct key {
    char *secret;
    char mask[GKM_MASK_LEN];
    uint32_t project;
    int64_t wide_until; /* key-wide bench; 0 when none */
    enum gkm_bench_reason wide_reason;
    uint64_t total;
    struct count_ent *counts;
    uint32_t ncounts, acounts;
};

struct project {
    char *name;
    uint32_t *members;
    uint32_t n;
};

struct rot {
    uint32_t *next, *prev; /* ring links, meaningful while in the ring */
    uint32_t cursor;       /* NIL when the ring is empty */
    uint32_t *heap;        /* key indices */
    uint32_t heap_len;
    uint32_t *heap_pos; /* NIL: in the ring */
    int64_t *hkey;      /* when to look at a heap key again */
    int64_t *until;     /* per-model bench; 0 when none */
    unsigned char *reason;
};

struct model {
    char *name;
    struct rot *rot; /* NULL until first pick or bench */
};

struct gkm_pool {
    struct key *keys;
    uint32_t n;
    struct project *projects;
    uint32_t nprojects;
    struct strmap secrets;
    struct strmap model_ids;
    struct model models[GKM_MODELS_MAX];
    uint32_t nmodels;
    uint32_t sorted[GKM_MODELS_MAX]; /* model ids ordered by name */
    uint32_t rank[GKM_MODELS_MAX];   /* model id -> position in sorted */
    uint64_t generation;
    uint32_t next_start; /* where a new model's rotation begins */
};

/* Model id for name without creating it: NIL if unknown and there is still
 * room for it (so it has no state yet). NULL, over-long names and names
 * beyond the table's capacity map to "" (id 0). */
uint32_t gkm_pool_model_find(const struct gkm_pool *pool, const char *name);
/* Model id for name, creating it if needed (same mapping to id 0 as
 * gkm_pool_model_find). Never NIL. */
uint32_t gkm_pool_model_intern(struct gkm_pool *pool, const char *name);

#endif
