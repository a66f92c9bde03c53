/*
 * state.c - the usage file, key_usage.txt (see state.h for the format).
 *
 * Compatibility with the original Python tool (bamboo-pan/gemini_key_manager)
 * in both directions: it writes
 *   {"date", "counts": {key: n}, "model_counts": {key: {model: n}},
 *    "exhausted_keys": {key: [model, ...]}}
 * with json.dump(indent=4); older versions wrote "exhausted_keys" as a plain
 * list of keys and had no "model_counts". We read all of these, and write
 * the four fields in the same shape, adding ours under "gkm" (which the
 * Python tool ignores, and drops when it saves).
 *
 * Loading validates the whole document before touching the pool, so a
 * corrupt file changes nothing. A corrupt file is never overwritten or
 * deleted: it is renamed aside (link + unlink, so an existing aside file is
 * never replaced either).
 *
 * Ownership: jansson values are local to each call. Writing the file
 * (gkm_state_dump / gkm_state_save) is in state_dump.c.
 */
#include "state.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "affinity.h"
#include "keypool.h"
#include "util.h"

#define STATE_MAX_BYTES (64u * 1024 * 1024)
#define ASIDE_TRIES 100

static void set_msg(char *buf, size_t len, const char *fmt, ...)
    GKM_ATTR_PRINTF(3, 4);

static void set_msg(char *buf, size_t len, const char *fmt, ...)
{
    if (buf == NULL || len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

/* ---- validation ---------------------------------------------------------- */

static int is_count(const json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) >= 0;
}

/* "" (the no-model pseudo-model) included. */
static int is_model_name(const char *s)
{
    return s != NULL && strnlen(s, GKM_MODEL_MAX + 1) <= GKM_MODEL_MAX;
}

/* Check the type of every original field (not "gkm", which is checked
 * part by part while applying it). Returns 0, or -1 with a description in
 * msg. */
static int validate(const json_t *root, char *msg, size_t msglen)
{
    const char *k, *k2;
    json_t *v, *v2;
    size_t i;

    if (!json_is_object(root)) {
        set_msg(msg, msglen, "top level is not a JSON object");
        return -1;
    }
    v = json_object_get(root, "date");
    if (v != NULL && !json_is_string(v)) {
        set_msg(msg, msglen, "\"date\" is not a string");
        return -1;
    }
    v = json_object_get(root, "counts");
    if (v != NULL) {
        if (!json_is_object(v)) {
            set_msg(msg, msglen, "\"counts\" is not an object");
            return -1;
        }
        json_object_foreach(v, k, v2) {
            if (!is_count(v2)) {
                set_msg(msg, msglen,
                        "\"counts\" has a value that is not a count");
                return -1;
            }
        }
    }
    v = json_object_get(root, "model_counts");
    if (v != NULL) {
        if (!json_is_object(v)) {
            set_msg(msg, msglen, "\"model_counts\" is not an object");
            return -1;
        }
        json_object_foreach(v, k, v2) {
            json_t *n;
            if (!json_is_object(v2)) {
                set_msg(msg, msglen,
                        "\"model_counts\" has an entry that is not an object");
                return -1;
            }
            json_object_foreach(v2, k2, n) {
                if (!is_count(n)) {
                    set_msg(msg, msglen, "\"model_counts\" has a value "
                                         "that is not a count");
                    return -1;
                }
            }
        }
    }
    v = json_object_get(root, "exhausted_keys");
    if (v != NULL) {
        if (json_is_array(v)) {
            json_array_foreach(v, i, v2) {
                if (!json_is_string(v2)) {
                    set_msg(msg, msglen, "\"exhausted_keys\" list has an "
                                         "entry that is not a string");
                    return -1;
                }
            }
        } else if (json_is_object(v)) {
            json_object_foreach(v, k, v2) {
                json_t *m;
                size_t j;
                if (!json_is_array(v2)) {
                    set_msg(msg, msglen, "\"exhausted_keys\" has an entry "
                                         "that is not a list");
                    return -1;
                }
                json_array_foreach(v2, j, m) {
                    if (!json_is_string(m)) {
                        set_msg(msg, msglen, "\"exhausted_keys\" has a model "
                                             "that is not a string");
                        return -1;
                    }
                }
            }
        } else {
            set_msg(msg, msglen,
                    "\"exhausted_keys\" is neither an object nor a list");
            return -1;
        }
    }
    /* "gkm" is ours and optional: problems there are not corruption of
     * the file (see the loader). */
    return 0;
}

/* ---- applying ------------------------------------------------------------ */

struct loader {
    struct gkm_pool *pool;
    struct gkm_aff *aff; /* NULL: "gkm.owners" not wanted */
    int same_day;
    int64_t next_reset_ms;
    int64_t now_ms;
    json_t *unknown; /* set of key strings not in the pool */
    size_t bad_reasons;
    int old_list;
    const char *gkm_bad[3]; /* parts of "gkm" ignored as a whole */
    size_t n_gkm_bad;
    size_t bad_benches;  /* malformed "gkm.benches" entries */
    size_t bad_stats;    /* malformed "gkm.stats" values */
    size_t bad_owners;   /* malformed "gkm.owners" entries */
};

static void gkm_bad(struct loader *ld, const char *what)
{
    if (ld->n_gkm_bad < GKM_ARRAY_LEN(ld->gkm_bad))
        ld->gkm_bad[ld->n_gkm_bad++] = what;
}

static long find_key(struct loader *ld, const char *secret)
{
    long idx = gkm_pool_find(ld->pool, secret);
    if (idx < 0)
        json_object_set_new(ld->unknown, secret, json_true());
    return idx;
}

static void apply_counts(struct loader *ld, const json_t *root)
{
    const char *k, *model;
    json_t *v, *n;
    json_object_foreach(json_object_get(root, "counts"), k, v) {
        long idx = find_key(ld, k);
        if (idx >= 0 && ld->same_day)
            gkm_pool_set_total(ld->pool, (size_t)idx,
                               (uint64_t)json_integer_value(v));
    }
    json_object_foreach(json_object_get(root, "model_counts"), k, v) {
        long idx = find_key(ld, k);
        if (idx < 0 || !ld->same_day)
            continue;
        json_object_foreach(v, model, n) {
            if (is_model_name(model))
                gkm_pool_set_model_count(ld->pool, (size_t)idx, model,
                                         (uint64_t)json_integer_value(n));
        }
    }
}

static void apply_exhausted(struct loader *ld, const json_t *root)
{
    const char *k;
    json_t *v, *m;
    size_t i;
    json_t *ex = json_object_get(root, "exhausted_keys");
    if (json_is_array(ex)) {
        /* Old format: which keys, not which models. Retrying them costs at
         * most one 429 each, so it is safe to ignore. */
        ld->old_list = json_array_size(ex) > 0;
        json_array_foreach(ex, i, v) (void)find_key(ld, json_string_value(v));
        return;
    }
    json_object_foreach(ex, k, v) {
        long idx = find_key(ld, k);
        if (idx < 0 || !ld->same_day)
            continue;
        json_array_foreach(v, i, m) {
            const char *model = json_string_value(m);
            if (is_model_name(model) && ld->next_reset_ms > ld->now_ms)
                gkm_pool_bench(ld->pool, (size_t)idx, model,
                               ld->next_reset_ms, GKM_BENCH_QUOTA_DAY);
        }
    }
}

static int bench_entry_ok(const json_t *e)
{
    json_t *key = json_object_get(e, "key");
    json_t *model = json_object_get(e, "model");
    json_t *until = json_object_get(e, "until");
    json_t *reason = json_object_get(e, "reason");
    return json_is_object(e) && json_is_string(key) &&
           (model == NULL || json_is_null(model) || json_is_string(model)) &&
           until != NULL && (json_is_null(until) || json_is_integer(until)) &&
           json_is_string(reason);
}

/* Our own bench list; applied after exhausted_keys so that an entry for a
 * (key, model) pair takes precedence over it. Malformed entries are
 * skipped and counted. */
static void apply_benches(struct loader *ld, const json_t *gkm)
{
    json_t *e;
    size_t i;
    json_t *list = json_object_get(gkm, "benches");
    if (list != NULL && !json_is_array(list)) {
        gkm_bad(ld, "\"gkm.benches\" is not a list");
        return;
    }
    json_array_foreach(list, i, e) {
        if (!bench_entry_ok(e)) {
            ld->bad_benches++;
            continue;
        }
        long idx = find_key(ld, json_string_value(json_object_get(e, "key")));
        json_t *jm = json_object_get(e, "model");
        json_t *ju = json_object_get(e, "until");
        const char *model = json_is_string(jm) ? json_string_value(jm) : NULL;
        int64_t until = json_is_integer(ju) ? (int64_t)json_integer_value(ju)
                                            : GKM_FOREVER;
        enum gkm_bench_reason r;
        if (gkm_bench_reason_parse(
                json_string_value(json_object_get(e, "reason")), &r) != 0 ||
            r == GKM_BENCH_NONE) {
            ld->bad_reasons++;
            continue;
        }
        if (idx < 0 || (model != NULL && !is_model_name(model)))
            continue;
        /* Daily benches belong to their day. */
        if (!ld->same_day && r == GKM_BENCH_QUOTA_DAY)
            continue;
        if (until > ld->now_ms)
            gkm_pool_bench(ld->pool, (size_t)idx, model, until, r);
        else if (ld->same_day && model != NULL)
            gkm_pool_unbench(ld->pool, (size_t)idx, model);
    }
}

/* A token count from "gkm.stats": 0 and *out set, or -1 (bad value). */
static int get_count(const json_t *v, uint64_t *out)
{
    if (!is_count(v))
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* Parse one "gkm.stats" model entry into st (tokens and errors only),
 * skipping and counting bad values. */
static void parse_stats_entry(struct loader *ld, const json_t *m,
                              struct gkm_model_stats *st)
{
    static const char *const names[] = {"prompt_tokens", "output_tokens",
                                        "thinking_tokens"};
    uint64_t *fields[] = {&st->prompt_tokens, &st->output_tokens,
                          &st->thinking_tokens};
    const char *k;
    json_t *v;
    for (size_t i = 0; i < GKM_ARRAY_LEN(names); i++) {
        v = json_object_get(m, names[i]);
        if (v != NULL && get_count(v, fields[i]) != 0)
            ld->bad_stats++;
    }
    json_t *errs = json_object_get(m, "errors");
    if (errs != NULL && !json_is_object(errs)) {
        ld->bad_stats++;
        return;
    }
    json_object_foreach(errs, k, v) {
        long long cls;
        const char *why;
        if (gkm_parse_ll(k, 0, GKM_STATS_ERRORS - 1, &cls, &why) != 0 ||
            !is_count(v) || json_integer_value(v) > UINT32_MAX) {
            ld->bad_stats++;
            continue;
        }
        st->errors[cls] = (uint32_t)json_integer_value(v);
    }
}

/* Token and error statistics: {key: {model: {...}}}, same day only;
 * applied after the counts, whose request numbers they keep. */
static void apply_stats(struct loader *ld, const json_t *gkm)
{
    const char *k, *model;
    json_t *v, *m;
    json_t *stats = json_object_get(gkm, "stats");
    if (stats != NULL && !json_is_object(stats)) {
        gkm_bad(ld, "\"gkm.stats\" is not an object");
        return;
    }
    json_object_foreach(stats, k, v) {
        long idx = find_key(ld, k);
        if (!json_is_object(v)) {
            ld->bad_stats++;
            continue;
        }
        if (idx < 0 || !ld->same_day)
            continue;
        json_object_foreach(v, model, m) {
            struct gkm_model_stats st;
            if (!json_is_object(m) || !is_model_name(model)) {
                ld->bad_stats++;
                continue;
            }
            (void)gkm_pool_get_stats(ld->pool, (size_t)idx, model, &st);
            st.prompt_tokens = st.output_tokens = st.thinking_tokens = 0;
            memset(st.errors, 0, sizeof(st.errors));
            parse_stats_entry(ld, m, &st);
            gkm_pool_set_stats(ld->pool, (size_t)idx, model, &st);
        }
    }
}

/* "owners": [{"name": "files/ID", "key": "AIza...", "until": ms}, ...],
 * oldest first: which key owns a file, cache or upload (affinity.h).
 * Expired entries and keys no longer in the pool are skipped. */
static void apply_owners(struct loader *ld, const json_t *gkm)
{
    json_t *list = json_object_get(gkm, "owners");
    if (list == NULL || ld->aff == NULL)
        return;
    if (!json_is_array(list)) {
        gkm_bad(ld, "\"gkm.owners\" is not a list");
        return;
    }
    size_t i;
    const json_t *e;
    json_array_foreach(list, i, e) {
        const json_t *name = json_object_get(e, "name");
        const char *key = json_string_value(json_object_get(e, "key"));
        const json_t *until = json_object_get(e, "until");
        if (!json_is_string(name) || key == NULL || !json_is_integer(until) ||
            json_string_length(name) == 0 ||
            json_string_length(name) > GKM_AFF_NAME_MAX) {
            ld->bad_owners++;
            continue;
        }
        long idx = find_key(ld, key);
        int64_t u = (int64_t)json_integer_value(until);
        if (idx < 0 || u <= ld->now_ms)
            continue;
        gkm_aff_put(ld->aff, json_string_value(name), json_string_length(name),
                    (size_t)idx, u);
    }
}

/* Our additions: a problem in one part ignores that part only. */
static void apply_gkm(struct loader *ld, const json_t *root)
{
    json_t *gkm = json_object_get(root, "gkm");
    if (gkm == NULL)
        return;
    if (!json_is_object(gkm)) {
        gkm_bad(ld, "\"gkm\" is not an object");
        return;
    }
    json_t *version = json_object_get(gkm, "version");
    if (version != NULL && !json_is_integer(version))
        gkm_bad(ld, "\"gkm.version\" is not an integer");
    apply_benches(ld, gkm);
    apply_stats(ld, gkm);
    apply_owners(ld, gkm);
}

/* Append "; " (unless first) and a formatted note to buf. */
static void add_note(char *buf, size_t len, const char *fmt, ...)
    GKM_ATTR_PRINTF(3, 4);

static void add_note(char *buf, size_t len, const char *fmt, ...)
{
    if (buf == NULL || len == 0)
        return;
    size_t used = strnlen(buf, len);
    if (used > 0 && used + 2 < len) {
        memcpy(buf + used, "; ", 3);
        used += 2;
    }
    if (used + 1 >= len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, len - used, fmt, ap);
    va_end(ap);
}

static void write_notes(const struct loader *ld, char *err, size_t errlen)
{
    if (ld->old_list)
        add_note(err, errlen, "old-format \"exhausted_keys\" list ignored "
                              "(it has no per-model information)");
    if (ld->bad_reasons > 0)
        add_note(err, errlen, "%zu bench(es) with an unknown reason ignored",
                 ld->bad_reasons);
    for (size_t i = 0; i < ld->n_gkm_bad; i++)
        add_note(err, errlen, "%s: ignored", ld->gkm_bad[i]);
    if (ld->bad_benches > 0)
        add_note(err, errlen, "%zu malformed \"gkm.benches\" entr%s ignored",
                 ld->bad_benches, ld->bad_benches == 1 ? "y" : "ies");
    if (ld->bad_stats > 0)
        add_note(err, errlen, "%zu malformed \"gkm.stats\" value%s ignored",
                 ld->bad_stats, ld->bad_stats == 1 ? "" : "s");
    if (ld->bad_owners > 0)
        add_note(err, errlen, "%zu malformed \"gkm.owners\" entr%s ignored",
                 ld->bad_owners, ld->bad_owners == 1 ? "y" : "ies");
}

/* ---- moving a corrupt file aside ----------------------------------------- */

static int is_nolink_errno(int e)
{
    return e == EPERM || e == ENOTSUP || e == EOPNOTSUPP || e == EXDEV ||
           e == EMLINK || e == ENOSYS;
}

/* Rename path to "<path>.corrupt-YYYYMMDDTHHMMSSZ" (adding "-N" when that
 * exists), never replacing a file. Returns 0 with the name in aside, or -1
 * with errno set. */
static int move_aside(const char *path, int64_t now_ms, char *aside,
                      size_t asidelen)
{
    time_t t = (time_t)(now_ms / 1000);
    struct tm tm;
    char base[PATH_MAX], name[PATH_MAX + 16];
    if (gmtime_r(&t, &tm) == NULL)
        memset(&tm, 0, sizeof(tm));
    int n = snprintf(base, sizeof(base),
                     "%s.corrupt-%04d%02d%02dT%02d%02d%02dZ", path,
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
    if (n < 0 || (size_t)n >= sizeof(base)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (int i = 0; i < ASIDE_TRIES; i++) {
        if (i == 0)
            snprintf(name, sizeof(name), "%s", base);
        else
            snprintf(name, sizeof(name), "%s-%d", base, i);
        if (link(path, name) == 0) {
            if (unlink(path) != 0) {
                int saved = errno;
                unlink(name);
                errno = saved;
                return -1;
            }
            set_msg(aside, asidelen, "%s", name);
            return 0;
        }
        if (errno == EEXIST)
            continue;
        if (!is_nolink_errno(errno))
            return -1;
        /* No hard links here: check, then rename (racy only against
         * another process writing the same aside name in this second). */
        struct stat st;
        if (lstat(name, &st) == 0)
            continue;
        if (errno != ENOENT || rename(path, name) != 0)
            return -1;
        set_msg(aside, asidelen, "%s", name);
        return 0;
    }
    errno = EEXIST;
    return -1;
}

/* ---- load ---------------------------------------------------------------- */

enum gkm_state_load_result gkm_state_load(struct gkm_pool *pool,
                                          const char *path, const char *today,
                                          int64_t next_reset_ms, int64_t now_ms,
                                          size_t *n_unknown, char *aside,
                                          size_t asidelen, char *err,
                                          size_t errlen)
{
    return gkm_state_load_ex(pool, NULL, path, today, next_reset_ms, now_ms,
                             n_unknown, aside, asidelen, err, errlen);
}

enum gkm_state_load_result
gkm_state_load_ex(struct gkm_pool *pool, struct gkm_aff *aff, const char *path,
                  const char *today, int64_t next_reset_ms, int64_t now_ms,
                  size_t *n_unknown, char *aside, size_t asidelen, char *err,
                  size_t errlen)
{
    enum gkm_state_load_result res = GKM_STATE_ERROR;
    char *data = NULL;
    size_t len = 0;
    json_t *root = NULL;
    json_error_t jerr;
    char why[256];
    struct loader ld = {0};

    if (n_unknown != NULL)
        *n_unknown = 0;
    set_msg(aside, asidelen, "%s", "");
    set_msg(err, errlen, "%s", "");

    if (gkm_read_file(path, STATE_MAX_BYTES, &data, &len) != 0) {
        if (errno == ENOENT) {
            res = GKM_STATE_MISSING;
            goto out;
        }
        if (errno != EFBIG) {
            set_msg(err, errlen, "%s", strerror(errno));
            goto out;
        }
        set_msg(why, sizeof(why), "larger than %u bytes", STATE_MAX_BYTES);
        goto corrupt;
    }
    root = json_loadb(data, len, 0, &jerr);
    if (root == NULL) {
        set_msg(why, sizeof(why), "line %d column %d: %s", jerr.line,
                jerr.column, jerr.text);
        goto corrupt;
    }
    if (validate(root, why, sizeof(why)) != 0)
        goto corrupt;

    json_t *date = json_object_get(root, "date");
    ld.pool = pool;
    ld.aff = aff;
    ld.same_day = date != NULL && today != NULL &&
                  strcmp(json_string_value(date), today) == 0;
    ld.next_reset_ms = next_reset_ms;
    ld.now_ms = now_ms;
    ld.unknown = json_object();
    if (ld.unknown == NULL)
        abort();
    apply_counts(&ld, root);
    apply_exhausted(&ld, root);
    apply_gkm(&ld, root);
    if (n_unknown != NULL)
        *n_unknown = json_object_size(ld.unknown);
    json_decref(ld.unknown);
    write_notes(&ld, err, errlen);
    res = ld.same_day ? GKM_STATE_LOADED : GKM_STATE_OLD_DAY;
    goto out;

corrupt:
    if (move_aside(path, now_ms, aside, asidelen) != 0) {
        set_msg(err, errlen, "corrupt (%s) and could not be moved aside: %s",
                why, strerror(errno));
        res = GKM_STATE_ERROR;
    } else {
        set_msg(err, errlen, "%s", why);
        res = GKM_STATE_CORRUPT;
    }
out:
    json_decref(root);
    free(data);
    return res;
}
