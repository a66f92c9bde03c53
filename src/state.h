/*
 * state.h - the usage file (key_usage.txt), compatible with the original
 * Python tool in both directions.
 *
 * Format (JSON object):
 *   "date":           "YYYY-MM-DD" (the quota day it describes)
 *   "counts":         {key: requests today}
 *   "model_counts":   {key: {model: requests today}}
 *   "exhausted_keys": {key: [models benched for the day by a per-day 429]}
 *   "gkm":            our additions, ignored by the original:
 *                     {"version": 1,
 *                      "benches": [{"key", "model" (null: key-wide),
 *                                   "until" (ms since epoch, or null: until
 *                                   reload), "reason"}],
 *                      "stats": {key: {model: {"prompt_tokens": n,
 *                                "output_tokens": n, "thinking_tokens": n,
 *                                "errors": {"<class number>": n}}}}}
 *                     "stats" holds today's token and error counts (see
 *                     keypool.h struct gkm_model_stats) with non-zero
 *                     fields only, and pairs with no token or error count
 *                     left out; model "" is the no-model pseudo-model.
 *                     Request counts are not repeated there: they are the
 *                     original "counts" / "model_counts".
 * Keys appear in clear, as in the original: the file is written mode 0600.
 * Writes are atomic and durable (util.h gkm_write_file_atomic). Objects are
 * written in a deterministic order: the four original fields first (as the
 * Python tool writes them), keys in pool order, models by name.
 *
 * Also read: the original's older format, where "exhausted_keys" is a plain
 * list of keys (no per-model information: ignored, with a note) and
 * "model_counts" is absent. "exhausted_keys" entries become QUOTA_DAY
 * benches until next_reset_ms; a "gkm.benches" entry for the same (key,
 * model) pair takes precedence (an ended one cancels it). "gkm.stats" is
 * restored on a same-day load only.
 *
 * Only the four original fields decide whether a file is corrupt. A bad
 * part of "gkm" (wrong type, malformed entry or value) is ignored, that
 * part only, and described in the load's note; the rest loads.
 */
#ifndef GKM_STATE_H
#define GKM_STATE_H

#include <stddef.h>
#include <stdint.h>

struct gkm_aff;
struct gkm_pool;

enum gkm_state_load_result {
    GKM_STATE_LOADED,   /* same day: counts and benches restored */
    GKM_STATE_MISSING,  /* no file: fresh start */
    GKM_STATE_OLD_DAY,  /* another day: fresh counts; benches that are
                           still in force (not daily ones) restored */
    GKM_STATE_CORRUPT,  /* unparsable: renamed aside, fresh start */
    GKM_STATE_ERROR     /* unreadable (permissions...): nothing loaded */
};

/* Load path into pool (whose counts are assumed zero). today is the current
 * quota day, next_reset_ms when it ends (daily benches from exhausted_keys
 * last until then), now_ms the clock. Keys in the file that are not in the
 * pool are ignored and counted (distinct keys) in *n_unknown.
 * A corrupt file (bad JSON, wrong types, over 64 MiB) is renamed to
 * "<path>.corrupt-YYYYMMDDTHHMMSSZ" (UTC of now_ms; "-1", "-2"... appended
 * if taken: no file is ever overwritten), its new name written to aside
 * (asidelen bytes), and the pool is left untouched. If it cannot be moved
 * aside the result is ERROR. err receives a short reason without the path
 * for CORRUPT ("line 3 column 1: ...") and ERROR ("Permission denied"), and
 * for LOADED / OLD_DAY an informational note (old list format ignored,
 * unknown bench reasons, bad parts of "gkm" ignored; several are joined
 * with "; ") or "". n_unknown, aside and err may be NULL. */
enum gkm_state_load_result gkm_state_load(struct gkm_pool *pool,
                                          const char *path, const char *today,
                                          int64_t next_reset_ms, int64_t now_ms,
                                          size_t *n_unknown, char *aside,
                                          size_t asidelen, char *err,
                                          size_t errlen);

/* Serialise the pool for quota day `today` at now_ms (benches that ended
 * are left out). Returns a heap string (caller frees). */
char *gkm_state_dump(const struct gkm_pool *pool, const char *today,
                     int64_t now_ms);

/* gkm_state_dump + atomic durable write with mode 0600. 0 or -1 (errno). */
int gkm_state_save(const struct gkm_pool *pool, const char *path,
                   const char *today, int64_t now_ms);

/* The same three with the owners of files, caches and uploads (affinity.h)
 * kept under "gkm.owners" as [{"name", "key", "until"}] (full keys, like
 * the rest of the file), oldest first. Loading replays them into aff
 * (entries expired at now_ms or naming keys not in the pool are skipped;
 * malformed ones are noted in err). aff NULL: as the plain functions. */
enum gkm_state_load_result
gkm_state_load_ex(struct gkm_pool *pool, struct gkm_aff *aff, const char *path,
                  const char *today, int64_t next_reset_ms, int64_t now_ms,
                  size_t *n_unknown, char *aside, size_t asidelen, char *err,
                  size_t errlen);
char *gkm_state_dump_ex(const struct gkm_pool *pool, const struct gkm_aff *aff,
                        const char *today, int64_t now_ms);
int gkm_state_save_ex(const struct gkm_pool *pool, const struct gkm_aff *aff,
                      const char *path, const char *today, int64_t now_ms);

#endif
