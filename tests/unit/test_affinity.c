/*
 * test_affinity.c - the resource -> key map (put, get, expiry, replace,
 * delete, eviction of the oldest at the cap) and the name scanner.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "affinity.h"

#define S(x) x, strlen(x)

static void test_put_get_expire(void **state)
{
    (void)state;
    struct gkm_aff *a = gkm_aff_new(16);
    assert_int_equal(gkm_aff_get(a, S("files/abc"), 0), -1);
    gkm_aff_put(a, S("files/abc"), 2, 1000);
    gkm_aff_put(a, S("cachedContents/xyz"), 0, 5000);
    assert_int_equal(gkm_aff_count(a), 2);
    assert_int_equal(gkm_aff_get(a, S("files/abc"), 999), 2);
    assert_int_equal(gkm_aff_get(a, S("cachedContents/xyz"), 999), 0);
    assert_int_equal(gkm_aff_get(a, S("files/ab"), 999), -1);
    assert_int_equal(gkm_aff_get(a, S("files/abcd"), 999), -1);
    /* Expired at its expiry time: dropped on lookup. */
    assert_int_equal(gkm_aff_get(a, S("files/abc"), 1000), -1);
    assert_int_equal(gkm_aff_count(a), 1);
    /* Replace: new owner and expiry. */
    gkm_aff_put(a, S("cachedContents/xyz"), 7, 9000);
    assert_int_equal(gkm_aff_count(a), 1);
    assert_int_equal(gkm_aff_get(a, S("cachedContents/xyz"), 6000), 7);
    gkm_aff_del(a, S("cachedContents/xyz"));
    gkm_aff_del(a, S("cachedContents/xyz"));
    assert_int_equal(gkm_aff_get(a, S("cachedContents/xyz"), 6000), -1);
    assert_int_equal(gkm_aff_count(a), 0);
    /* Empty and over-long names are ignored. */
    char big[GKM_AFF_NAME_MAX + 2];
    memset(big, 'a', sizeof(big));
    gkm_aff_put(a, big, GKM_AFF_NAME_MAX + 1, 1, 100);
    gkm_aff_put(a, "", 0, 1, 100);
    assert_int_equal(gkm_aff_count(a), 0);
    gkm_aff_put(a, big, GKM_AFF_NAME_MAX, 3, 100);
    assert_int_equal(gkm_aff_get(a, big, GKM_AFF_NAME_MAX, 0), 3);
    gkm_aff_free(a);
}

static void test_eviction_oldest_first(void **state)
{
    (void)state;
    struct gkm_aff *a = gkm_aff_new(100);
    char name[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "files/f%d", i);
        gkm_aff_put(a, name, strlen(name), (size_t)i, INT64_MAX);
        assert_true(gkm_aff_count(a) <= 100);
    }
    assert_int_equal(gkm_aff_count(a), 100);
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "files/f%d", i);
        assert_int_equal(gkm_aff_get(a, name, strlen(name), 0),
                         i >= 900 ? i : -1);
    }
    /* Re-putting an entry makes it the newest: it survives the next
     * evictions. */
    gkm_aff_put(a, S("files/f900"), 1, INT64_MAX);
    for (int i = 1000; i < 1099; i++) {
        snprintf(name, sizeof(name), "files/f%d", i);
        gkm_aff_put(a, name, strlen(name), (size_t)i, INT64_MAX);
    }
    assert_int_equal(gkm_aff_get(a, S("files/f900"), 0), 1);
    assert_int_equal(gkm_aff_get(a, S("files/f901"), 0), -1);
    gkm_aff_free(a);
    gkm_aff_free(NULL);
}

struct found {
    char names[8][GKM_AFF_NAME_MAX + 1];
    int n;
    int stop_at;
};

static int collect(void *arg, const char *name, size_t len)
{
    struct found *f = arg;
    memcpy(f->names[f->n], name, len);
    f->names[f->n][len] = '\0';
    f->n++;
    return f->n == f->stop_at ? 42 : 0;
}

static void test_scan(void **state)
{
    (void)state;
    struct found f;
    const char *body =
        "{\"contents\":[{\"parts\":[{\"fileData\":{\"mimeType\":\"image/png\","
        "\"fileUri\":\"https://generativelanguage.googleapis.com/v1beta/"
        "files/8c1f2b6e0d3a\"}},{\"text\":\"profiles/nope and files/ x\"}]}],"
        "\"cachedContent\":\"cachedContents/abc-123_X\",\"y\":\"files/q\"}";
    memset(&f, 0, sizeof(f));
    assert_int_equal(gkm_aff_scan(body, strlen(body), collect, &f), 0);
    assert_int_equal(f.n, 3);
    assert_string_equal(f.names[0], "files/8c1f2b6e0d3a");
    assert_string_equal(f.names[1], "cachedContents/abc-123_X");
    assert_string_equal(f.names[2], "files/q");

    memset(&f, 0, sizeof(f));
    f.stop_at = 2;
    assert_int_equal(gkm_aff_scan(body, strlen(body), collect, &f), 42);
    assert_int_equal(f.n, 2);

    /* Paths, and the end of the text ending an id. */
    memset(&f, 0, sizeof(f));
    const char *path = "/v1beta/files/abc:download";
    assert_int_equal(gkm_aff_scan(path, strlen(path), collect, &f), 0);
    assert_int_equal(f.n, 1);
    assert_string_equal(f.names[0], "files/abc");
    memset(&f, 0, sizeof(f));
    assert_int_equal(gkm_aff_scan(S("files/zz"), collect, &f), 0);
    assert_string_equal(f.names[0], "files/zz");
    /* Ids longer than 128 characters are not names. */
    char lng[200];
    memcpy(lng, "files/", 6);
    memset(lng + 6, 'a', 129);
    memset(&f, 0, sizeof(f));
    assert_int_equal(gkm_aff_scan(lng, 135, collect, &f), 0);
    assert_int_equal(f.n, 0);
    assert_int_equal(gkm_aff_scan(lng, 134, collect, &f), 0);
    assert_int_equal(f.n, 1);
    /* Nothing, and a prefix cut off at the end. */
    memset(&f, 0, sizeof(f));
    assert_int_equal(gkm_aff_scan(S("no names here files"), collect, &f), 0);
    assert_int_equal(gkm_aff_scan(S("cachedContents/"), collect, &f), 0);
    assert_int_equal(gkm_aff_scan("", 0, collect, &f), 0);
    assert_int_equal(f.n, 0);
}

/* A body made of nothing but prefixes: every one is reported, and the
 * scan stays linear (it was quadratic once; at 4 MiB that took minutes and
 * would now hit the test's time limit). */
static int count_cb(void *arg, const char *name, size_t len)
{
    (void)name;
    assert_int_equal(len, strlen("files/files"));
    (*(size_t *)arg)++;
    return 0;
}

static void test_scan_many_prefixes(void **state)
{
    (void)state;
    size_t n = (4u << 20) / 6;
    char *text = malloc(n * 6);
    assert_non_null(text);
    for (size_t i = 0; i < n; i++)
        memcpy(text + i * 6, "files/", 6);
    size_t found = 0;
    assert_int_equal(gkm_aff_scan(text, n * 6, count_cb, &found), 0);
    assert_int_equal(found, n - 1); /* the last one has no id */
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_expire),
        cmocka_unit_test(test_eviction_oldest_first),
        cmocka_unit_test(test_scan),
        cmocka_unit_test(test_scan_many_prefixes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
