/*
 * keypool.h - the key pool: rotation, per-(key, model) benching, usage counts.
 *
 * Pure logic: no I/O, no clock. Every time-dependent call takes `now_ms`
 * (milliseconds since the Unix epoch), so tests drive it with a fake clock.
 *
 * Model names are the bare ids parsed from request paths ("gemini-2.5-flash").
 * The empty string "" is the pseudo-model used for requests that name no model
 * (model lists, files). Each model has its own round-robin cursor over the keys
 * available for it.
 *
 * Benching: a (key, model) pair, or a whole key (model == NULL: every model),
 * is unavailable until `until_ms` (GKM_FOREVER: until the keys are reloaded)
 * for a reason. Expired benches end by themselves when time passes `until_ms`;
 * no timer is needed. Invariant: picking costs O(log n) amortised whatever the
 * number of benched keys (a benched key leaves the model's ring and waits in a
 * min-heap ordered by expiry), so 10,000 keys with 9,999 benched pick as fast
 * as 3 keys.
 *
 * Counting: per key per day requests, and per key per model requests, as the
 * original Python tool's key_usage.txt (`counts`, `model_counts`); beside
 * them, per key per model token counts and error counts by class
 * (statistics, struct gkm_model_stats). All are daily: the daily reset
 * zeroes them.
 *
 * Common rules: wherever a model is taken, NULL means "" and a name longer
 * than GKM_MODEL_MAX means "" too. Calls with idx >= gkm_pool_size() are
 * ignored (queries return "nothing"). The pool is not thread-safe: one owner
 * (the event loop) calls it.
 */
#ifndef GKM_KEYPOOL_H
#define GKM_KEYPOOL_H

#include <stddef.h>
#include <stdint.h>

#define GKM_FOREVER INT64_MAX
/* Longest model name accepted; longer names are treated as "no model". */
#define GKM_MODEL_MAX 128
/* Distinct models tracked; later unknown models share the "" pseudo-model. */
#define GKM_MODELS_MAX 256

/* Why a key or (key, model) pair is out of rotation. Values are persisted
 * by name (gkm_bench_reason_name), never by number. */
enum gkm_bench_reason {
    GKM_BENCH_NONE = 0,
    GKM_BENCH_QUOTA_DAY,    /* 429 per-day quota: until the next daily reset */
    GKM_BENCH_QUOTA_MINUTE, /* 429 per-minute quota: until retryDelay passes */
    GKM_BENCH_RATE_LIMITED, /* 429 without details: short, escalating */
    GKM_BENCH_NO_QUOTA,     /* limit 0: model not available to the project */
    GKM_BENCH_KEY_INVALID,  /* 400 API_KEY_INVALID (key-wide) */
    GKM_BENCH_KEY_SUSPENDED,/* 403 CONSUMER_SUSPENDED (key-wide) */
    GKM_BENCH_KEY_LEAKED,   /* 403 reported as leaked (key-wide) */
    GKM_BENCH_KEY_DENIED,   /* 403 other permission problems (key-wide) */
    GKM_BENCH_REASON_COUNT
};

/* Stable lower-case name ("none", "quota_day", ...; "unknown" for values out
 * of range) and its inverse: 0, or -1 if unknown. */
const char *gkm_bench_reason_name(enum gkm_bench_reason r);
int gkm_bench_reason_parse(const char *name, enum gkm_bench_reason *out);

struct gkm_pool;

/* One key as loaded from the key file. */
struct gkm_pool_key_spec {
    const char *secret;  /* the real API key; copied */
    const char *project; /* project name or NULL (then the key is its own) */
};

/* Create a pool over n keys (n >= 1, secrets distinct; with duplicates,
 * gkm_pool_find returns the first). Keys with the same non-NULL project name
 * share a project. Copies everything. Never returns NULL (aborts on OOM). */
struct gkm_pool *gkm_pool_new(const struct gkm_pool_key_spec *keys, size_t n);
void gkm_pool_free(struct gkm_pool *pool);

size_t gkm_pool_size(const struct gkm_pool *pool);
/* The real key at idx (borrowed; valid for the pool's lifetime). */
const char *gkm_pool_secret(const struct gkm_pool *pool, size_t idx);
/* Masked form "...abcd" of the key at idx (borrowed). */
const char *gkm_pool_mask(const struct gkm_pool *pool, size_t idx);
/* Project name of the key at idx (borrowed; never NULL: keys without a
 * project get a private one named after their mask). */
const char *gkm_pool_project(const struct gkm_pool *pool, size_t idx);
/* The keys of key idx's project, idx included (borrowed array of *n key
 * indices). Keys share a project exactly when they are in one list. */
const uint32_t *gkm_pool_project_keys(const struct gkm_pool *pool, size_t idx,
                                      size_t *n);
/* Index of a secret, or -1. O(1) expected. */
long gkm_pool_find(const struct gkm_pool *pool, const char *secret);

/* Result of a pick. When idx < 0 no key is available for the model now:
 * retry_at_ms is the earliest time one will be (GKM_FOREVER if none ever
 * will before a reload) and reason is the bench reason of that earliest one. */
struct gkm_pick {
    long idx;
    int64_t retry_at_ms;
    enum gkm_bench_reason reason;
};

/* Choose the next key for `model` ("" for none) in round-robin order among
 * the keys available at now_ms. Always advances the model's cursor. A fresh
 * model visits keys in index order 0, 1, 2, ...; a key whose bench ends
 * rejoins at the end of the current round. Creates the model's rotation
 * state on first use (O(n) memory per model, at most GKM_MODELS_MAX). */
struct gkm_pick gkm_pool_pick(struct gkm_pool *pool, const char *model,
                              int64_t now_ms);

/* Take (idx, model) out of rotation until until_ms for reason. model NULL
 * benches the key for every model (key-wide). A later bench replaces an
 * earlier one for the same pair. until_ms <= now has no lasting effect. */
void gkm_pool_bench(struct gkm_pool *pool, size_t idx, const char *model,
                    int64_t until_ms, enum gkm_bench_reason reason);
/* Bench every key of the project of key idx for model (see gkm_pool_bench). */
void gkm_pool_bench_project(struct gkm_pool *pool, size_t idx,
                            const char *model, int64_t until_ms,
                            enum gkm_bench_reason reason);
/* Bring the pair (model NULL: the key-wide bench) back into rotation now. */
void gkm_pool_unbench(struct gkm_pool *pool, size_t idx, const char *model);

/* State of (idx, model) at now_ms: returns the reason (GKM_BENCH_NONE if
 * available) and stores the expiry in *until_ms when benched. A key-wide
 * bench wins over a per-model one. */
enum gkm_bench_reason gkm_pool_state(const struct gkm_pool *pool, size_t idx,
                                     const char *model, int64_t now_ms,
                                     int64_t *until_ms);

/* Visit every bench still in force at now_ms: model is NULL for key-wide
 * benches. Order: by key index, then the key-wide bench, then model name
 * (strcmp). Strings passed to cb are borrowed. cb must not change the pool. */
typedef void (*gkm_pool_bench_cb)(void *arg, size_t idx, const char *model,
                                  int64_t until_ms, enum gkm_bench_reason r);
void gkm_pool_foreach_bench(const struct gkm_pool *pool, int64_t now_ms,
                            gkm_pool_bench_cb cb, void *arg);

/* Usage counting. gkm_pool_count adds one request of model to key idx
 * (both the key's daily total and its per-model count; model "" counts only
 * in the total, as do models beyond GKM_MODELS_MAX). gkm_pool_set_total and
 * gkm_pool_set_model_count restore persisted values. */
void gkm_pool_count(struct gkm_pool *pool, size_t idx, const char *model);
uint64_t gkm_pool_total(const struct gkm_pool *pool, size_t idx);
uint64_t gkm_pool_model_count(const struct gkm_pool *pool, size_t idx,
                              const char *model);
void gkm_pool_set_total(struct gkm_pool *pool, size_t idx, uint64_t n);
void gkm_pool_set_model_count(struct gkm_pool *pool, size_t idx,
                              const char *model, uint64_t n);
/* Visit the per-model counts of key idx (models with a non-zero count), in
 * model-name order (strcmp). */
typedef void (*gkm_pool_count_cb)(void *arg, const char *model, uint64_t n);
void gkm_pool_foreach_model_count(const struct gkm_pool *pool, size_t idx,
                                  gkm_pool_count_cb cb, void *arg);
/* Start a new day: zero every counter and statistic. Benches are not
 * touched (daily ones end by their own expiry, which is the reset time). */
void gkm_pool_reset_counts(struct gkm_pool *pool);

/* Statistics of one (key, model) pair for the day. errors[] is indexed by
 * an error-class number defined by the caller (gerror.h's enum
 * gkm_err_class); the pool only stores by index. Counters saturate. */
#define GKM_STATS_ERRORS 16
struct gkm_model_stats {
    uint64_t requests; /* as gkm_pool_model_count; for "", derived below */
    uint64_t prompt_tokens;
    uint64_t output_tokens;
    uint64_t thinking_tokens;
    uint32_t errors[GKM_STATS_ERRORS];
};

/* Add token counts (usageMetadata) of one response to (idx, model). Tokens
 * for "" (or a model beyond GKM_MODELS_MAX) are kept under "". A call with
 * three zeros changes nothing. */
void gkm_pool_add_tokens(struct gkm_pool *pool, size_t idx, const char *model,
                         uint64_t prompt, uint64_t output, uint64_t thinking);
/* Count one error of class cls for (idx, model). cls >= GKM_STATS_ERRORS
 * is ignored (no change). */
void gkm_pool_count_error(struct gkm_pool *pool, size_t idx,
                          const char *model, unsigned cls);
/* Statistics of (idx, model) into *out (always written: zeros when none).
 * Returns 0 if any field is non-zero, else -1. For "", requests is derived:
 * the key's total minus its named models' counts (requests that named no
 * model, or a model beyond GKM_MODELS_MAX), so that the requests of all the
 * pairs of a key add up to its total. */
int gkm_pool_get_stats(const struct gkm_pool *pool, size_t idx,
                       const char *model, struct gkm_model_stats *out);
/* Visit the pairs of key idx with any non-zero statistic (as
 * gkm_pool_get_stats gives them, "" included), in model-name order (strcmp;
 * "" first). model and st are borrowed for the call. cb must not change the
 * pool. */
typedef void (*gkm_pool_stats_cb)(void *arg, const char *model,
                                  const struct gkm_model_stats *st);
void gkm_pool_foreach_stats(const struct gkm_pool *pool, size_t idx,
                            gkm_pool_stats_cb cb, void *arg);
/* Restore the statistics of (idx, model) (copied from *st). st->requests
 * sets the per-model count as gkm_pool_set_model_count does (ignored for
 * "", where it is derived); the key total is not touched. */
void gkm_pool_set_stats(struct gkm_pool *pool, size_t idx, const char *model,
                        const struct gkm_model_stats *st);

/* Number of keys not available for model at now_ms (benched for it or
 * key-wide). O(n): meant for status output, not for every request. */
size_t gkm_pool_nbenched(const struct gkm_pool *pool, const char *model,
                         int64_t now_ms);

/* Monotonic change counter: bumped by every count, token or error added,
 * set, bench, unbench and reset, so the owner can tell whether state needs
 * saving. Picking is not a change (the rotation position is not persisted)
 * and does not bump it. */
uint64_t gkm_pool_generation(const struct gkm_pool *pool);

#endif
