/*
 * state_fixture.h - shared by test_state.c and test_state_stats.c: three
 * fixture keys (K0 and K1 in project proj-a, K2 alone, KU unknown), a
 * fixed clock, and a temporary directory per test holding the usage file.
 * Functions are static inline so that a test file may leave some unused.
 */
#ifndef GKM_TEST_STATE_FIXTURE_H
#define GKM_TEST_STATE_FIXTURE_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keypool.h"
#include "state.h"
#include "util.h"

#define K0 "AIzaSyFIXTURE00000000000000000000000000"
#define K1 "AIzaSyFIXTURE11111111111111111111111111"
#define K2 "AIzaSyFIXTURE22222222222222222222222222"
#define KU "AIzaSyUNKNOWN99999999999999999999999999"
#define TODAY "2026-11-27"

/* 2026-11-27T08:45:00Z and the next Los Angeles midnight. */
#define NOW_MS 1795769100000LL
#define RESET_MS 1795852800000LL

struct fx {
    char dir[64];
    char *path;
    struct gkm_pool *pool;
};

static inline struct gkm_pool *new_pool(void)
{
    struct gkm_pool_key_spec spec[] = {
        {K0, "proj-a"}, {K1, "proj-a"}, {K2, NULL}};
    return gkm_pool_new(spec, 3);
}

static inline int setup(void **state)
{
    struct fx *f = gkm_xcalloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/gkm-state-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    f->path = gkm_xasprintf("%s/key_usage.txt", f->dir);
    f->pool = new_pool();
    *state = f;
    return 0;
}

static inline int teardown(void **state)
{
    struct fx *f = *state;
    DIR *d = opendir(f->dir);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char *p = gkm_xasprintf("%s/%s", f->dir, e->d_name);
            chmod(p, 0700);
            if (unlink(p) != 0)
                rmdir(p);
            free(p);
        }
        closedir(d);
    }
    rmdir(f->dir);
    gkm_pool_free(f->pool);
    free(f->path);
    free(f);
    return 0;
}

static inline void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static inline char *read_text(const char *path)
{
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(gkm_read_file(path, 1 << 20, &data, &len), 0);
    return data;
}

static inline size_t count_dir_entries(const char *dir)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static inline enum gkm_state_load_result
load(struct fx *f, struct gkm_pool *pool, const char *path, const char *today,
     size_t *unknown, char *aside, char *err)
{
    return gkm_state_load(pool, path, today, RESET_MS, NOW_MS, unknown, aside,
                          512, err, 512);
}

static inline void fill_pool(struct gkm_pool *pool)
{
    gkm_pool_count(pool, 0, "gemini-2.5-flash");
    gkm_pool_count(pool, 0, "gemini-2.5-flash");
    gkm_pool_count(pool, 0, "gemini-2.5-pro");
    gkm_pool_count(pool, 0, "");
    gkm_pool_count(pool, 2, "gemini-2.5-pro");
    gkm_pool_bench(pool, 0, "gemini-2.5-pro", RESET_MS, GKM_BENCH_QUOTA_DAY);
    gkm_pool_bench(pool, 1, NULL, GKM_FOREVER, GKM_BENCH_KEY_INVALID);
    gkm_pool_bench(pool, 2, "gemini-2.5-flash", NOW_MS + 30000,
                   GKM_BENCH_QUOTA_MINUTE);
    gkm_pool_bench(pool, 2, "gemini-2.0", NOW_MS - 1, GKM_BENCH_RATE_LIMITED);
}

#endif
