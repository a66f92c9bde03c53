/*
 * test_state.c - the usage file: round trip, the original Python tool's
 * formats (tests/fixtures/state/), corrupt files kept aside, permissions,
 * unreadable files, unknown keys (token and error statistics and bad "gkm"
 * parts: test_state_stats.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "affinity.h"
#include "keypool.h"
#include "state.h"
#include "util.h"

#include "state_fixture.h"

static void test_round_trip(void **state)
{
    struct fx *f = *state;
    fill_pool(f->pool);
    assert_int_equal(gkm_state_save(f->pool, f->path, TODAY, NOW_MS), 0);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(count_dir_entries(f->dir), 1); /* no temp file left */

    struct gkm_pool *p2 = new_pool();
    size_t unknown = 99;
    char aside[512], err[512];
    assert_int_equal(load(f, p2, f->path, TODAY, &unknown, aside, err),
                     GKM_STATE_LOADED);
    assert_int_equal(unknown, 0);
    assert_string_equal(err, "");
    assert_string_equal(aside, "");
    assert_int_equal(gkm_pool_total(p2, 0), 4);
    assert_int_equal(gkm_pool_total(p2, 1), 0);
    assert_int_equal(gkm_pool_total(p2, 2), 1);
    assert_int_equal(gkm_pool_model_count(p2, 0, "gemini-2.5-flash"), 2);
    assert_int_equal(gkm_pool_model_count(p2, 0, "gemini-2.5-pro"), 1);
    assert_int_equal(gkm_pool_model_count(p2, 2, "gemini-2.5-pro"), 1);
    int64_t until = 0;
    assert_int_equal(gkm_pool_state(p2, 0, "gemini-2.5-pro", NOW_MS, &until),
                     GKM_BENCH_QUOTA_DAY);
    assert_true(until == RESET_MS);
    assert_int_equal(gkm_pool_state(p2, 1, "anything", NOW_MS, &until),
                     GKM_BENCH_KEY_INVALID);
    assert_true(until == GKM_FOREVER);
    assert_int_equal(gkm_pool_state(p2, 2, "gemini-2.5-flash", NOW_MS, &until),
                     GKM_BENCH_QUOTA_MINUTE);
    assert_true(until == NOW_MS + 30000);
    assert_int_equal(gkm_pool_state(p2, 2, "gemini-2.0", NOW_MS, NULL),
                     GKM_BENCH_NONE);

    /* Dumping the loaded pool gives the same bytes. */
    char *a = gkm_state_dump(f->pool, TODAY, NOW_MS);
    char *b = gkm_state_dump(p2, TODAY, NOW_MS);
    assert_string_equal(a, b);
    char *disk = read_text(f->path);
    assert_string_equal(a, disk);
    free(disk);
    free(a);
    free(b);
    gkm_pool_free(p2);

    /* Saving again replaces the file, still 0600. */
    chmod(f->path, 0644);
    gkm_pool_count(f->pool, 1, "x");
    assert_int_equal(gkm_state_save(f->pool, f->path, TODAY, NOW_MS), 0);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(count_dir_entries(f->dir), 1);
}

static void test_dump_shape(void **state)
{
    struct fx *f = *state;
    fill_pool(f->pool);
    char *s = gkm_state_dump(f->pool, TODAY, NOW_MS);
    /* The Python tool's four fields first, in its order, then ours. */
    const char *pd = strstr(s, "\"date\""), *pc = strstr(s, "\"counts\"");
    const char *pm = strstr(s, "\"model_counts\"");
    const char *pe = strstr(s, "\"exhausted_keys\"");
    const char *pg = strstr(s, "\"gkm\"");
    assert_true(pd && pc && pm && pe && pg);
    assert_true(pd < pc && pc < pm && pm < pe && pe < pg);
    /* Indented by 4, like Python's json.dump(indent=4). */
    assert_non_null(strstr(s, "\n    \"date\": \"2026-11-27\",\n"));

    json_error_t jerr;
    json_t *root = json_loads(s, 0, &jerr);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "date")),
                        TODAY);
    json_t *counts = json_object_get(root, "counts");
    assert_int_equal(json_integer_value(json_object_get(counts, K0)), 4);
    assert_null(json_object_get(counts, K1)); /* zero counts left out */
    json_t *mc = json_object_get(root, "model_counts");
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(mc, K0), "gemini-2.5-flash")),
                     2);
    assert_null(json_object_get(json_object_get(mc, K0), ""));
    /* exhausted_keys: per-day benches only, as {key: [model]}. */
    json_t *ex = json_object_get(root, "exhausted_keys");
    assert_true(json_is_object(ex));
    assert_int_equal(json_object_size(ex), 1);
    json_t *l0 = json_object_get(ex, K0);
    assert_int_equal(json_array_size(l0), 1);
    assert_string_equal(json_string_value(json_array_get(l0, 0)),
                        "gemini-2.5-pro");
    json_t *gkm = json_object_get(root, "gkm");
    assert_int_equal(json_integer_value(json_object_get(gkm, "version")), 1);
    json_t *benches = json_object_get(gkm, "benches");
    assert_int_equal(json_array_size(benches), 3); /* expired one left out */
    json_t *b1 = json_array_get(benches, 1); /* key 1, key-wide */
    assert_string_equal(json_string_value(json_object_get(b1, "key")), K1);
    assert_true(json_is_null(json_object_get(b1, "model")));
    assert_true(json_is_null(json_object_get(b1, "until")));
    assert_string_equal(json_string_value(json_object_get(b1, "reason")),
                        "key_invalid");
    json_t *b2 = json_array_get(benches, 2);
    assert_true(json_integer_value(json_object_get(b2, "until")) ==
                NOW_MS + 30000);
    assert_string_equal(json_string_value(json_object_get(b2, "model")),
                        "gemini-2.5-flash");
    json_decref(root);
    free(s);
}

static void test_python_dict_format(void **state)
{
    struct fx *f = *state;
    char *src = read_text(GKM_FIXTURES "/state/python_dict_format.json");
    write_text(f->path, src);
    size_t unknown = 0;
    char aside[512], err[512];
    assert_int_equal(load(f, f->pool, f->path, TODAY, &unknown, aside, err),
                     GKM_STATE_LOADED);
    assert_int_equal(unknown, 1); /* KU, in three sections, counted once */
    assert_string_equal(err, "");
    assert_int_equal(gkm_pool_total(f->pool, 0), 12);
    assert_int_equal(gkm_pool_total(f->pool, 1), 3);
    assert_int_equal(gkm_pool_total(f->pool, 2), 0);
    assert_int_equal(gkm_pool_model_count(f->pool, 0, "gemini-2.5-flash"), 10);
    assert_int_equal(gkm_pool_model_count(f->pool, 0, "gemini-2.5-pro"), 2);
    assert_int_equal(gkm_pool_model_count(f->pool, 1, "gemini-2.5-flash"), 3);
    int64_t until = 0;
    assert_int_equal(
        gkm_pool_state(f->pool, 0, "gemini-2.5-pro", NOW_MS, &until),
        GKM_BENCH_QUOTA_DAY);
    assert_true(until == RESET_MS);
    assert_int_equal(gkm_pool_state(f->pool, 0, "gemini-2.5-flash", NOW_MS,
                                     NULL),
                     GKM_BENCH_NONE);
    assert_int_equal(gkm_pool_state(f->pool, 2, "gemini-2.5-flash", NOW_MS,
                                     NULL),
                     GKM_BENCH_QUOTA_DAY);
    assert_int_equal(gkm_pool_state(f->pool, 2, "gemini-2.5-pro", NOW_MS,
                                     NULL),
                     GKM_BENCH_QUOTA_DAY);
    assert_int_equal(gkm_pool_state(f->pool, 1, "gemini-2.5-flash", NOW_MS,
                                     NULL),
                     GKM_BENCH_NONE);
    /* The daily benches end at the reset. */
    assert_int_equal(gkm_pool_state(f->pool, 2, "gemini-2.5-pro", RESET_MS,
                                     NULL),
                     GKM_BENCH_NONE);
    /* The file itself is untouched by loading. */
    char *now = read_text(f->path);
    assert_string_equal(now, src);
    free(now);
    free(src);

    /* Our dump keeps the Python fields' shape: reload it as Python would
     * (dict of lists) and compare. */
    char *ours = gkm_state_dump(f->pool, TODAY, NOW_MS);
    json_t *root = json_loads(ours, 0, NULL);
    assert_non_null(root);
    json_t *ex = json_object_get(root, "exhausted_keys");
    assert_int_equal(json_array_size(json_object_get(ex, K2)), 2);
    assert_int_equal(json_array_size(json_object_get(ex, K0)), 1);
    json_decref(root);
    free(ours);
}

static void test_python_dict_other_day(void **state)
{
    struct fx *f = *state;
    char *src = read_text(GKM_FIXTURES "/state/python_dict_format.json");
    write_text(f->path, src);
    free(src);
    size_t unknown = 0;
    char aside[512], err[512];
    assert_int_equal(load(f, f->pool, f->path, "2026-11-28", &unknown, aside,
                          err),
                     GKM_STATE_OLD_DAY);
    assert_int_equal(unknown, 1);
    for (size_t k = 0; k < 3; k++)
        assert_int_equal(gkm_pool_total(f->pool, k), 0);
    assert_int_equal(gkm_pool_model_count(f->pool, 0, "gemini-2.5-flash"), 0);
    assert_int_equal(gkm_pool_state(f->pool, 2, "gemini-2.5-flash", NOW_MS,
                                     NULL),
                     GKM_BENCH_NONE);
}

static void test_python_list_format(void **state)
{
    struct fx *f = *state;
    char *src = read_text(GKM_FIXTURES "/state/python_list_format.json");
    write_text(f->path, src);
    free(src);
    size_t unknown = 9;
    char aside[512], err[512];
    assert_int_equal(load(f, f->pool, f->path, TODAY, &unknown, aside, err),
                     GKM_STATE_LOADED);
    assert_int_equal(unknown, 0);
    assert_non_null(strstr(err, "old-format"));
    assert_int_equal(gkm_pool_total(f->pool, 0), 5);
    assert_int_equal(gkm_pool_total(f->pool, 2), 1);
    /* No per-model information: nothing benched. */
    assert_int_equal(gkm_pool_state(f->pool, 1, "gemini-2.5-flash", NOW_MS,
                                     NULL),
                     GKM_BENCH_NONE);
    struct gkm_pick p = gkm_pool_pick(f->pool, "gemini-2.5-flash", NOW_MS);
    assert_int_equal(p.idx, 0);
}

static void test_gkm_benches_precedence(void **state)
{
    struct fx *f = *state;
    char *text = gkm_xasprintf(
        "{\"date\": \"%s\", \"counts\": {}, \"exhausted_keys\": "
        "{\"%s\": [\"m1\", \"m2\", \"m3\"]},"
        " \"gkm\": {\"version\": 1, \"benches\": ["
        "{\"key\": \"%s\", \"model\": \"m1\", \"until\": %lld, \"reason\": "
        "\"quota_minute\"},"
        "{\"key\": \"%s\", \"model\": \"m2\", \"until\": %lld, \"reason\": "
        "\"quota_day\"},"
        "{\"key\": \"%s\", \"model\": null, \"until\": null, \"reason\": "
        "\"key_leaked\"},"
        "{\"key\": \"%s\", \"model\": \"m1\", \"until\": %lld, \"reason\": "
        "\"from_the_future\"},"
        "{\"key\": \"%s\", \"model\": \"m1\", \"until\": null, \"reason\": "
        "\"no_quota\"}]}}",
        TODAY, K0, K0, (long long)NOW_MS + 1000, K0, (long long)NOW_MS - 1, K1,
        K2, (long long)NOW_MS + 5, KU);
    write_text(f->path, text);
    free(text);
    size_t unknown = 0;
    char aside[512], err[512];
    assert_int_equal(load(f, f->pool, f->path, TODAY, &unknown, aside, err),
                     GKM_STATE_LOADED);
    assert_int_equal(unknown, 1);
    assert_non_null(strstr(err, "unknown reason"));
    int64_t until = 0;
    assert_int_equal(gkm_pool_state(f->pool, 0, "m1", NOW_MS, &until),
                     GKM_BENCH_QUOTA_MINUTE);
    assert_true(until == NOW_MS + 1000);
    /* An ended entry of ours wins over exhausted_keys. */
    assert_int_equal(gkm_pool_state(f->pool, 0, "m2", NOW_MS, NULL),
                     GKM_BENCH_NONE);
    /* exhausted_keys alone. */
    assert_int_equal(gkm_pool_state(f->pool, 0, "m3", NOW_MS, &until),
                     GKM_BENCH_QUOTA_DAY);
    assert_true(until == RESET_MS);
    assert_int_equal(gkm_pool_state(f->pool, 1, "m9", NOW_MS, &until),
                     GKM_BENCH_KEY_LEAKED);
    assert_true(until == GKM_FOREVER);
    assert_int_equal(gkm_pool_state(f->pool, 2, "m1", NOW_MS, NULL),
                     GKM_BENCH_NONE);
}

static void test_other_day_keeps_long_benches(void **state)
{
    struct fx *f = *state;
    char *text = gkm_xasprintf(
        "{\"date\": \"2026-11-26\", \"counts\": {\"%s\": 50},"
        " \"model_counts\": {\"%s\": {\"m\": 50}},"
        " \"exhausted_keys\": {\"%s\": [\"m\"]},"
        " \"gkm\": {\"version\": 1, \"benches\": ["
        "{\"key\": \"%s\", \"model\": null, \"until\": null, \"reason\": "
        "\"key_invalid\"},"
        "{\"key\": \"%s\", \"model\": \"m\", \"until\": %lld, \"reason\": "
        "\"quota_day\"},"
        "{\"key\": \"%s\", \"model\": \"m\", \"until\": %lld, \"reason\": "
        "\"quota_minute\"},"
        "{\"key\": \"%s\", \"model\": \"n\", \"until\": %lld, \"reason\": "
        "\"rate_limited\"}]}}",
        K0, K0, K0, K1, K0, (long long)RESET_MS, K2, (long long)NOW_MS + 20000,
        K2, (long long)NOW_MS - 20000);
    write_text(f->path, text);
    free(text);
    size_t unknown = 0;
    char aside[512], err[512];
    assert_int_equal(load(f, f->pool, f->path, TODAY, &unknown, aside, err),
                     GKM_STATE_OLD_DAY);
    assert_int_equal(gkm_pool_total(f->pool, 0), 0);
    assert_int_equal(gkm_pool_model_count(f->pool, 0, "m"), 0);
    /* Daily benches belong to the old day, even if "until" says later. */
    assert_int_equal(gkm_pool_state(f->pool, 0, "m", NOW_MS, NULL),
                     GKM_BENCH_NONE);
    assert_int_equal(gkm_pool_state(f->pool, 1, "x", NOW_MS, NULL),
                     GKM_BENCH_KEY_INVALID);
    assert_int_equal(gkm_pool_state(f->pool, 2, "m", NOW_MS, NULL),
                     GKM_BENCH_QUOTA_MINUTE);
    assert_int_equal(gkm_pool_state(f->pool, 2, "n", NOW_MS, NULL),
                     GKM_BENCH_NONE);
}

static void test_missing(void **state)
{
    struct fx *f = *state;
    size_t unknown = 5;
    char aside[512] = "x", err[512] = "x";
    assert_int_equal(load(f, f->pool, f->path, TODAY, &unknown, aside, err),
                     GKM_STATE_MISSING);
    assert_int_equal(unknown, 0);
    assert_string_equal(aside, "");
    assert_int_equal(count_dir_entries(f->dir), 0);
}

static void test_corrupt_kept_aside(void **state)
{
    struct fx *f = *state;
    const char *bad = "{\"date\": \"2026-11-27\", \"counts\": {";
    write_text(f->path, bad);
    size_t unknown = 0;
    char aside[512], err[512];
    assert_int_equal(load(f, f->pool, f->path, TODAY, &unknown, aside, err),
                     GKM_STATE_CORRUPT);
    char *want = gkm_xasprintf("%s.corrupt-20261127T084500Z", f->path);
    assert_string_equal(aside, want);
    assert_non_null(strstr(err, "line 1")); /* where the parse failed */
    assert_int_equal(access(f->path, F_OK), -1);
    char *kept = read_text(aside);
    assert_string_equal(kept, bad);
    free(kept);

    /* A second corrupt file at the same second: the first aside file is
     * never overwritten. */
    write_text(f->path, "[1, 2, 3]");
    char aside2[512];
    assert_int_equal(load(f, f->pool, f->path, TODAY, &unknown, aside2, err),
                     GKM_STATE_CORRUPT);
    assert_string_not_equal(aside2, want);
    assert_non_null(strstr(aside2, ".corrupt-20261127T084500Z"));
    kept = read_text(want);
    assert_string_equal(kept, bad);
    free(kept);
    kept = read_text(aside2);
    assert_string_equal(kept, "[1, 2, 3]");
    free(kept);
    assert_int_equal(count_dir_entries(f->dir), 2);
    free(want);
}

static void test_wrong_types_are_corrupt(void **state)
{
    struct fx *f = *state;
    static const char *const bad[] = {
        "[]",
        "\"just a string\"",
        "{\"date\": 20261127}",
        "{\"date\": \"2026-11-27\", \"counts\": []}",
        "{\"date\": \"2026-11-27\", \"counts\": {\"" K0 "\": \"3\"}}",
        "{\"date\": \"2026-11-27\", \"counts\": {\"" K0 "\": -1}}",
        "{\"date\": \"2026-11-27\", \"counts\": {\"" K0 "\": 1.5}}",
        "{\"date\": \"2026-11-27\", \"model_counts\": {\"" K0 "\": 3}}",
        "{\"date\": \"2026-11-27\", \"model_counts\": {\"" K0
        "\": {\"m\": null}}}",
        "{\"date\": \"2026-11-27\", \"exhausted_keys\": 3}",
        "{\"date\": \"2026-11-27\", \"exhausted_keys\": {\"" K0 "\": \"m\"}}",
        "{\"date\": \"2026-11-27\", \"exhausted_keys\": {\"" K0 "\": [1]}}",
        "{\"date\": \"2026-11-27\", \"exhausted_keys\": [1]}",
        /* A bad "gkm" does not save a bad original field. */
        "{\"date\": \"2026-11-27\", \"counts\": [], \"gkm\": {}}",
        "{\"date\": \"2026-11-27\", \"counts\": {\"" K0 "\": 1}} trailing",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_text(f->path, bad[i]);
        size_t unknown = 0;
        char aside[512], err[512];
        assert_int_equal(load(f, f->pool, f->path, TODAY, &unknown, aside,
                              err),
                         GKM_STATE_CORRUPT);
        assert_true(strlen(aside) > 0);
        assert_int_equal(access(f->path, F_OK), -1);
        /* The pool is untouched by a corrupt file. */
        assert_int_equal(gkm_pool_total(f->pool, 0), 0);
        unlink(aside);
    }
}

static void test_unreadable(void **state)
{
    struct fx *f = *state;
    size_t unknown = 0;
    char aside[512], err[512];
    /* A directory in place of the file: an error, nothing renamed. */
    assert_int_equal(mkdir(f->path, 0700), 0);
    assert_int_equal(load(f, f->pool, f->path, TODAY, &unknown, aside, err),
                     GKM_STATE_ERROR);
    assert_non_null(strstr(err, "directory"));
    assert_string_equal(aside, "");
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(count_dir_entries(f->dir), 1);
    /* Saving over a directory fails and leaves no temp file. */
    assert_int_equal(gkm_state_save(f->pool, f->path, TODAY, NOW_MS), -1);
    assert_int_equal(count_dir_entries(f->dir), 1);
    rmdir(f->path);

    /* Permission denied (meaningless as root, who can read anything). */
    if (geteuid() != 0) {
        write_text(f->path, "{}");
        chmod(f->path, 0);
        assert_int_equal(load(f, f->pool, f->path, TODAY, &unknown, aside,
                              err),
                         GKM_STATE_ERROR);
        assert_non_null(strstr(err, "ermission"));
        assert_string_equal(aside, "");
        assert_int_equal(access(f->path, F_OK), 0);
        assert_int_equal(count_dir_entries(f->dir), 1);
    }
}

static void test_save_errors(void **state)
{
    struct fx *f = *state;
    char *p = gkm_xasprintf("%s/no/such/dir/key_usage.txt", f->dir);
    errno = 0;
    assert_int_equal(gkm_state_save(f->pool, p, TODAY, NOW_MS), -1);
    assert_int_equal(errno, ENOENT);
    free(p);
}

static void test_unknown_keys_counted(void **state)
{
    struct fx *f = *state;
    char *text = gkm_xasprintf(
        "{\"date\": \"%s\", \"counts\": {\"%s\": 1, \"other-1\": 2},"
        " \"model_counts\": {\"other-2\": {\"m\": 1}},"
        " \"exhausted_keys\": {\"other-3\": [\"m\"], \"other-1\": [\"m\"]}}",
        TODAY, K1);
    write_text(f->path, text);
    free(text);
    size_t unknown = 0;
    char aside[512], err[512];
    assert_int_equal(load(f, f->pool, f->path, TODAY, &unknown, aside, err),
                     GKM_STATE_LOADED);
    assert_int_equal(unknown, 3);
    assert_int_equal(gkm_pool_total(f->pool, 1), 1);
    /* n_unknown, aside and err may be omitted. */
    gkm_pool_free(f->pool);
    f->pool = new_pool();
    assert_int_equal(gkm_state_load(f->pool, f->path, TODAY, RESET_MS, NOW_MS,
                                    NULL, NULL, 0, NULL, 0),
                     GKM_STATE_LOADED);
    assert_int_equal(gkm_pool_total(f->pool, 1), 1);
}

/* "gkm.owners": file, cache and upload owners survive a restart; expired
 * ones and unknown keys are dropped, malformed entries noted, and the
 * plain functions neither write nor read them. */
static void test_owners_round_trip(void **state)
{
    struct fx *f = *state;
    struct gkm_aff *a = gkm_aff_new(16);
    gkm_aff_put(a, "files/old", 9, 2, NOW_MS - 1); /* expired */
    gkm_aff_put(a, "files/abc", 9, 1, NOW_MS + 1000);
    gkm_aff_put(a, "cachedContents/x", 16, 0, NOW_MS + 5000);
    gkm_aff_put(a, "upload/u1", 9, 2, NOW_MS + 9000);
    assert_int_equal(gkm_state_save_ex(f->pool, a, f->path, TODAY, NOW_MS), 0);
    char *text = read_text(f->path);
    assert_non_null(strstr(text, "\"owners\""));
    assert_null(strstr(text, "files/old"));
    free(text);

    struct gkm_pool *p2 = new_pool();
    struct gkm_aff *b = gkm_aff_new(16);
    char err[512];
    assert_int_equal(gkm_state_load_ex(p2, b, f->path, TODAY, RESET_MS, NOW_MS,
                                       NULL, NULL, 0, err, sizeof(err)),
                     GKM_STATE_LOADED);
    assert_string_equal(err, "");
    assert_int_equal(gkm_aff_count(b), 3);
    assert_int_equal(gkm_aff_get(b, "files/abc", 9, NOW_MS), 1);
    assert_int_equal(gkm_aff_get(b, "cachedContents/x", 16, NOW_MS), 0);
    assert_int_equal(gkm_aff_get(b, "upload/u1", 9, NOW_MS), 2);
    assert_int_equal(gkm_aff_get(b, "files/abc", 9, NOW_MS + 1000), -1);
    /* Loaded later: what expired meanwhile is not loaded. */
    struct gkm_aff *c = gkm_aff_new(16);
    assert_int_equal(gkm_state_load_ex(p2, c, f->path, TODAY, RESET_MS,
                                       NOW_MS + 6000, NULL, NULL, 0, NULL, 0),
                     GKM_STATE_LOADED);
    assert_int_equal(gkm_aff_count(c), 1);
    gkm_aff_free(c);
    /* The plain dump has no owners. */
    char *plain = gkm_state_dump(f->pool, TODAY, NOW_MS);
    assert_null(strstr(plain, "\"owners\""));
    free(plain);

    /* Malformed entries and unknown keys. */
    char doc[1024];
    snprintf(doc, sizeof(doc),
             "{\"date\": \"%s\", \"counts\": {}, \"model_counts\": {}, "
             "\"exhausted_keys\": {}, \"gkm\": {\"version\": 2, \"owners\": ["
             "{\"name\": \"files/ok\", \"key\": \"%s\", \"until\": %lld},"
             "{\"name\": \"files/unknown\", \"key\": \"%s\", \"until\": %lld},"
             "{\"name\": 5, \"key\": \"%s\", \"until\": 1},"
             "{\"name\": \"files/nokey\", \"until\": 1},"
             "\"junk\"]}}",
             TODAY, K2, (long long)(NOW_MS + 100), KU, (long long)(NOW_MS + 100),
             K0);
    write_text(f->path, doc);
    struct gkm_aff *d = gkm_aff_new(16);
    size_t unknown = 0;
    assert_int_equal(gkm_state_load_ex(p2, d, f->path, TODAY, RESET_MS, NOW_MS,
                                       &unknown, NULL, 0, err, sizeof(err)),
                     GKM_STATE_LOADED);
    assert_int_equal(gkm_aff_count(d), 1);
    assert_int_equal(gkm_aff_get(d, "files/ok", 8, NOW_MS), 2);
    assert_int_equal(unknown, 1);
    assert_non_null(strstr(err, "3 malformed \"gkm.owners\" entries ignored"));
    gkm_aff_free(d);
    gkm_aff_free(b);
    gkm_aff_free(a);
    gkm_pool_free(p2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_python_dict_format, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_python_dict_other_day, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_python_list_format, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_gkm_benches_precedence, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_other_day_keeps_long_benches,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_kept_aside, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_wrong_types_are_corrupt, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unreadable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_keys_counted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_owners_round_trip, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
