/*
 * policy.h - what to do about a classified upstream error (gerror.h):
 * pass the answer to the client, retry on another key now, or retry after
 * a backoff; and which keys to take out of rotation, for how long, why.
 *
 * Pure: the current time (`now_ms`, ms since the Unix epoch) and the next
 * daily quota reset (`next_reset_ms`, daytime.h) are arguments, random
 * jitter is passed in; nothing here reads a clock or calls rand().
 *
 * Mapping (wire spec 5.5, 6, 9.6):
 *   QUOTA_DAY       retry other key; bench PROJECT (every key of the key's
 *                   project, for this model) until next_reset_ms, reason
 *                   QUOTA_DAY. A key without a project is its own project,
 *                   so PROJECT is then the (key, model) pair.
 *   QUOTA_MINUTE    retry other key; bench PROJECT until now + retry_ms
 *                   (Google's delay), or the fallback below; QUOTA_MINUTE.
 *   QUOTA_ZERO      retry other key; bench PROJECT forever (until the keys
 *                   are reloaded), NO_QUOTA.
 *   RATE_UNKNOWN    retry other key; bench the PAIR for an escalating
 *                   cooldown (below), RATE_LIMITED.
 *   KEY_INVALID, KEY_SUSPENDED, KEY_LEAKED, KEY_DENIED
 *                   retry other key; bench the KEY (all models) forever with
 *                   the matching reason.
 *   SERVER          retry after a backoff, no bench (overload is not the
 *                   key's fault); PASS when server_retry_max is 0.
 *   RESOURCE_DENIED, LOCATION, CLIENT, OK
 *                   pass the answer to the client, no bench. OK also ends
 *                   any escalation of the pair.
 * Callers never retry once a byte has reached the client (5.6).
 *
 * Choices:
 *   - Per-minute fallback (no RetryInfo, no "retry in" text): 60 s, or, when
 *     minute_align is set and it is sooner, the next wall-clock minute
 *     boundary + 1 s (per-minute windows are fixed and reset at :00, 6).
 *   - A long retryDelay on a non-day quota (gemini-cli calls > 300 s
 *     "terminal") is honoured as a cooldown of exactly that length, capped at
 *     retry_cap_ms: Google said when it will work again, and Pacific
 *     midnight may be much further away. Set long_retry_day_ms to treat
 *     longer delays as a spent day instead.
 *   - Quota cooldowns last at least quota_min_ms, so a "0s" delay cannot
 *     put the pair straight back in rotation.
 *   - Escalation of no-detail 429s, per (key, model): the n-th consecutive
 *     one waits unknown_429_ms * 2^(n-1), at most unknown_429_max_ms. A 429
 *     that arrives while the pair is still cooling (a request sent before
 *     the first answer came back) does not escalate. Each full
 *     unknown_429_decay_ms of quiet after a cooldown ended lowers the level
 *     by one; an OK answer for the pair resets it at once.
 *   - 5xx / connection failures: up to server_retry_max retries; retry n
 *     waits server_backoff_ms * 2^(n-1), at most server_backoff_max_ms,
 *     with "equal jitter": between half and all of that (gkm_policy_backoff_ms).
 */
#ifndef GKM_POLICY_H
#define GKM_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "keypool.h" /* enum gkm_bench_reason, GKM_FOREVER */

struct gkm_err_info; /* gerror.h */

/* Tunables; all durations in ms. Defaults (gkm_policy_defaults) in []. */
struct gkm_policy_opts {
    int64_t minute_fallback_ms;    /* [60000] per-minute 429 with no delay */
    int minute_align;              /* [1] fallback may end at next :00 + 1 s */
    int64_t quota_min_ms;          /* [1000] shortest quota cooldown */
    int64_t retry_cap_ms;          /* [86400000] longest honoured delay */
    int64_t long_retry_day_ms;     /* [0 = off] delays above it: per-day */
    int64_t unknown_429_ms;        /* [10000] first no-detail 429 */
    int64_t unknown_429_max_ms;    /* [300000] escalation cap */
    int64_t unknown_429_decay_ms;  /* [600000] quiet time per level dropped;
                                      <= 0: no escalation memory */
    int server_retry_max;          /* [3] retries for 5xx / no response */
    int64_t server_backoff_ms;     /* [500] first backoff */
    int64_t server_backoff_max_ms; /* [4000] backoff cap */
};

/* Fill o with the defaults above. */
void gkm_policy_defaults(struct gkm_policy_opts *o);

enum gkm_act_kind {
    GKM_ACT_PASS = 0,        /* return the upstream answer to the client */
    GKM_ACT_RETRY_OTHER_KEY, /* retry now on another key */
    GKM_ACT_RETRY_BACKOFF    /* retry after delay_ms on another key */
};

enum gkm_bench_scope {
    GKM_SCOPE_NONE = 0,
    GKM_SCOPE_PAIR,    /* this key, this model */
    GKM_SCOPE_PROJECT, /* every key of this key's project, this model */
    GKM_SCOPE_KEY      /* this key, every model */
};

struct gkm_action {
    enum gkm_act_kind kind;
    enum gkm_bench_scope scope;
    int64_t bench_until_ms;       /* scope != NONE: GKM_FOREVER = until reload */
    enum gkm_bench_reason reason; /* GKM_BENCH_NONE when scope == NONE */
    int64_t delay_ms;             /* RETRY_BACKOFF: wait first; else 0 */
    unsigned level;               /* RATE_UNKNOWN: escalation step (1 = first) */
};

/* Escalation memory for no-detail 429s, keyed by (key index, model). Owned
 * by the caller (e.g. beside the key pool); small: one entry per pair that
 * hit such a 429 recently, dropped once fully decayed. Not thread-safe. */
struct gkm_policy_state;

/* Never returns NULL (aborts on OOM). */
struct gkm_policy_state *gkm_policy_state_new(void);
void gkm_policy_state_free(struct gkm_policy_state *st);
/* Forget everything (after a key reload: indexes change meaning). */
void gkm_policy_state_reset(struct gkm_policy_state *st);
/* Forget one pair (model NULL = ""). */
void gkm_policy_state_forget(struct gkm_policy_state *st, size_t key_idx,
                             const char *model);
/* Drop entries fully decayed at now_ms (also done lazily when the table
 * grows); returns how many. Optional: e.g. from a periodic timer. */
size_t gkm_policy_state_expire(struct gkm_policy_state *st,
                               const struct gkm_policy_opts *o, int64_t now_ms);
/* Entries currently stored (including decayed ones not yet dropped). */
size_t gkm_policy_state_count(const struct gkm_policy_state *st);
/* Escalation level of the pair at now_ms after decay (0 = none). */
unsigned gkm_policy_state_level(const struct gkm_policy_state *st,
                                const struct gkm_policy_opts *o,
                                size_t key_idx, const char *model,
                                int64_t now_ms);

/* Decide what to do about e (borrowed, not NULL), the error of a request
 * sent with key key_idx for model (NULL or longer than GKM_MODEL_MAX = "").
 * o NULL = defaults;
 * st NULL = no escalation memory (every no-detail 429 gets unknown_429_ms).
 * next_reset_ms is the next daily quota reset; if it is not after now_ms,
 * now + 24 h is used. For SERVER, delay_ms is the first (unjittered)
 * backoff: callers retrying more than once use gkm_policy_backoff_ms. */
struct gkm_action gkm_policy_decide(const struct gkm_policy_opts *o,
                                    struct gkm_policy_state *st,
                                    const struct gkm_err_info *e,
                                    size_t key_idx, const char *model,
                                    int64_t now_ms, int64_t next_reset_ms);

/* Backoff before server retry number `attempt` (1-based) with jitter01 a
 * random value in [0, 1] from the caller (clamped; NaN = 0): a value in
 * [d/2, d] where d = server_backoff_ms * 2^(attempt-1) capped at
 * server_backoff_max_ms. Returns -1 when attempt is 0 or above
 * server_retry_max (give up: pass the last answer, or 502/504). */
int64_t gkm_policy_backoff_ms(const struct gkm_policy_opts *o,
                              unsigned attempt, double jitter01);

/* Apply a's bench to the pool for the key idx and model it was decided for
 * (PAIR: gkm_pool_bench, PROJECT: gkm_pool_bench_project, KEY: key-wide
 * gkm_pool_bench; NONE: nothing). */
void gkm_policy_apply(const struct gkm_action *a, struct gkm_pool *pool,
                      size_t idx, const char *model);

/* Seconds for a Retry-After header until at_ms: rounded up, at least 1
 * (also when at_ms is not after now_ms). */
long gkm_policy_retry_after_s(int64_t at_ms, int64_t now_ms);

#endif
