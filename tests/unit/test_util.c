/*
 * test_util.c - util.c and buf.c: constant-time compare, key masking,
 * bounded parsers, the capped buffer, atomic writes and capped reads.
 */
#include <limits.h>
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
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "util.h"

static void test_ct_equal(void **state)
{
    (void)state;
    assert_true(gkm_ct_equal("abc", 3, "abc", 3));
    assert_false(gkm_ct_equal("abc", 3, "abd", 3));
    assert_false(gkm_ct_equal("abc", 3, "abcd", 4));
    assert_false(gkm_ct_equal("abcd", 4, "abc", 3));
    /* A prefix padded with NUL must not compare equal. */
    assert_false(gkm_ct_equal("ab\0", 3, "ab", 2));
    assert_true(gkm_ct_equal("", 0, "", 0));
    assert_false(gkm_ct_equal("", 0, "x", 1));
    assert_true(gkm_ct_equal("a\0b", 3, "a\0b", 3));
    assert_false(gkm_ct_equal("xbc", 3, "abc", 3));
}

static void test_mask_key(void **state)
{
    (void)state;
    char out[GKM_MASK_LEN];
    assert_string_equal(gkm_mask_key("AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
                                     out),
                        "...ewQe");
    assert_ptr_equal(gkm_mask_key("12345678", out), out);
    assert_string_equal(out, "...5678");
    assert_string_equal(gkm_mask_key("1234567", out), "....");
    assert_string_equal(gkm_mask_key("", out), "....");
    assert_string_equal(gkm_mask_key(NULL, out), "....");
    assert_true(strlen(gkm_mask_key("a-very-long-secret-value", out)) <
                GKM_MASK_LEN);
}

static void test_parse_ll(void **state)
{
    (void)state;
    long long v = 0;
    const char *e = NULL;
    assert_int_equal(gkm_parse_ll("42", 0, 100, &v, &e), 0);
    assert_int_equal(v, 42);
    assert_int_equal(gkm_parse_ll("-5", -10, 10, &v, &e), 0);
    assert_int_equal(v, -5);
    assert_int_equal(gkm_parse_ll("101", 0, 100, &v, &e), -1);
    assert_string_equal(e, "number too large");
    assert_int_equal(gkm_parse_ll("-1", 0, 100, &v, &e), -1);
    assert_string_equal(e, "number too small");
    assert_int_equal(gkm_parse_ll("12abc", 0, 100, &v, &e), -1);
    assert_string_equal(e, "not a number");
    assert_int_equal(gkm_parse_ll("", 0, 100, &v, &e), -1);
    assert_int_equal(gkm_parse_ll(" 1", 0, 100, &v, &e), -1);
    assert_int_equal(gkm_parse_ll(NULL, 0, 100, &v, &e), -1);
    assert_int_equal(
        gkm_parse_ll("99999999999999999999999", 0, 100, &v, &e), -1);
    assert_string_equal(e, "number out of range");
    v = 7;
    assert_int_equal(gkm_parse_ll("1x", 0, 100, &v, &e), -1);
    assert_int_equal(v, 7); /* untouched on error */
}

static void test_parse_size(void **state)
{
    (void)state;
    uint64_t v = 0;
    const char *e = NULL;
    assert_int_equal(gkm_parse_size("1048576", UINT64_MAX, &v, &e), 0);
    assert_true(v == 1048576);
    assert_int_equal(gkm_parse_size("512k", UINT64_MAX, &v, &e), 0);
    assert_true(v == 512 * 1024);
    assert_int_equal(gkm_parse_size("50M", UINT64_MAX, &v, &e), 0);
    assert_true(v == 50ULL * 1024 * 1024);
    assert_int_equal(gkm_parse_size("1G", UINT64_MAX, &v, &e), 0);
    assert_true(v == 1024ULL * 1024 * 1024);
    assert_int_equal(gkm_parse_size("2MiB", UINT64_MAX, &v, &e), 0);
    assert_true(v == 2ULL * 1024 * 1024);
    assert_int_equal(gkm_parse_size("3KB", UINT64_MAX, &v, &e), 0);
    assert_true(v == 3072);
    assert_int_equal(gkm_parse_size("2M", 1024 * 1024, &v, &e), -1);
    assert_string_equal(e, "size too large");
    assert_int_equal(gkm_parse_size("5T", UINT64_MAX, &v, &e), -1);
    assert_non_null(strstr(e, "unit"));
    assert_int_equal(gkm_parse_size("5Mx", UINT64_MAX, &v, &e), -1);
    assert_int_equal(gkm_parse_size("-5", UINT64_MAX, &v, &e), -1);
    assert_int_equal(gkm_parse_size("", UINT64_MAX, &v, &e), -1);
    assert_int_equal(
        gkm_parse_size("99999999999999999999999", UINT64_MAX, &v, &e), -1);
}

static void test_parse_duration(void **state)
{
    (void)state;
    uint64_t v = 0;
    const char *e = NULL;
    assert_int_equal(gkm_parse_duration_ms("300", UINT64_MAX, &v, &e), 0);
    assert_true(v == 300000);
    assert_int_equal(gkm_parse_duration_ms("300s", UINT64_MAX, &v, &e), 0);
    assert_true(v == 300000);
    assert_int_equal(gkm_parse_duration_ms("1500ms", UINT64_MAX, &v, &e), 0);
    assert_true(v == 1500);
    assert_int_equal(gkm_parse_duration_ms("5m", UINT64_MAX, &v, &e), 0);
    assert_true(v == 300000);
    assert_int_equal(gkm_parse_duration_ms("2h", UINT64_MAX, &v, &e), 0);
    assert_true(v == 7200000);
    assert_int_equal(gkm_parse_duration_ms("1.5s", UINT64_MAX, &v, &e), 0);
    assert_true(v == 1500);
    assert_int_equal(gkm_parse_duration_ms(".5", UINT64_MAX, &v, &e), 0);
    assert_true(v == 500);
    assert_int_equal(gkm_parse_duration_ms("0", UINT64_MAX, &v, &e), 0);
    assert_true(v == 0);
    assert_int_equal(gkm_parse_duration_ms("10d", UINT64_MAX, &v, &e), -1);
    assert_non_null(strstr(e, "unit"));
    assert_int_equal(gkm_parse_duration_ms("2h", 3600000, &v, &e), -1);
    assert_string_equal(e, "duration too large");
    assert_int_equal(gkm_parse_duration_ms("-1", UINT64_MAX, &v, &e), -1);
    assert_int_equal(gkm_parse_duration_ms("abc", UINT64_MAX, &v, &e), -1);
    assert_int_equal(gkm_parse_duration_ms("", UINT64_MAX, &v, &e), -1);
}

static void test_buf_cap(void **state)
{
    (void)state;
    struct gkm_buf b;
    gkm_buf_init(&b, 10);
    assert_null(b.data);
    assert_int_equal(gkm_buf_append_str(&b, "hello"), 0);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.data, "hello");
    /* Past the cap: refused, contents untouched. */
    assert_int_equal(gkm_buf_append_str(&b, "world!"), -1);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.data, "hello");
    /* Exactly up to the cap is fine. */
    assert_int_equal(gkm_buf_append_str(&b, "world"), 0);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "helloworld");
    assert_int_equal(gkm_buf_append(&b, "x", 1), -1);
    assert_int_equal(gkm_buf_append(&b, "", 0), 0);
    /* A huge n must not overflow the check. */
    assert_int_equal(gkm_buf_append(&b, "x", SIZE_MAX), -1);
    assert_true(b.alloc <= 11);

    gkm_buf_consume(&b, 5);
    assert_string_equal(b.data, "world");
    assert_int_equal(b.len, 5);
    gkm_buf_consume(&b, 100);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_int_equal(gkm_buf_append_str(&b, "abc"), 0);
    gkm_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");

    assert_int_equal(gkm_buf_append_str(&b, "taken"), 0);
    size_t len = 0;
    char *s = gkm_buf_take(&b, &len);
    assert_string_equal(s, "taken");
    assert_int_equal(len, 5);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    free(s);
    /* Taking an empty buffer gives "". */
    s = gkm_buf_take(&b, &len);
    assert_string_equal(s, "");
    assert_int_equal(len, 0);
    free(s);
    gkm_buf_free(&b);

    /* Growth over many appends keeps the contents and the NUL. */
    gkm_buf_init(&b, 100000);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(gkm_buf_append(&b, "0123456789", 10), 0);
    assert_int_equal(b.len, 100000);
    assert_int_equal(b.data[b.len], '\0');
    assert_int_equal(memcmp(b.data + 99990, "0123456789", 10), 0);
    assert_int_equal(gkm_buf_append(&b, "x", 1), -1);
    gkm_buf_free(&b);
}

static size_t dir_entries(const char *dir)
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

static void test_write_atomic_and_read(void **state)
{
    (void)state;
    char dir[] = "/tmp/gkm-util-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = gkm_xasprintf("%s/file.txt", dir);

    assert_int_equal(gkm_write_file_atomic(path, "first\n", 6, 0600), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 6);
    assert_int_equal(dir_entries(dir), 1);

    /* Replacing keeps exactly one file, with the new mode and contents. */
    assert_int_equal(gkm_write_file_atomic(path, "second!", 7, 0640), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    assert_int_equal(dir_entries(dir), 1);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(gkm_read_file(path, 100, &data, &len), 0);
    assert_int_equal(len, 7);
    assert_string_equal(data, "second!");
    free(data);

    /* Empty file. */
    assert_int_equal(gkm_write_file_atomic(path, "", 0, 0600), 0);
    assert_int_equal(gkm_read_file(path, 100, &data, &len), 0);
    assert_int_equal(len, 0);
    assert_string_equal(data, "");
    free(data);

    /* The read cap: up to max is fine, over max is EFBIG. */
    char big[5000];
    memset(big, 'z', sizeof(big));
    assert_int_equal(gkm_write_file_atomic(path, big, sizeof(big), 0600), 0);
    assert_int_equal(gkm_read_file(path, sizeof(big) + 1, &data, &len), 0);
    assert_int_equal(len, sizeof(big));
    free(data);
    assert_int_equal(gkm_read_file(path, sizeof(big), &data, &len), 0);
    assert_int_equal(len, sizeof(big));
    assert_int_equal(data[len], '\0');
    assert_int_equal(memcmp(data, big, sizeof(big)), 0);
    free(data);
    data = NULL;
    errno = 0;
    assert_int_equal(gkm_read_file(path, sizeof(big) - 1, &data, &len), -1);
    assert_int_equal(errno, EFBIG);
    assert_null(data);

    /* Missing file and directory. */
    char *missing = gkm_xasprintf("%s/missing", dir);
    errno = 0;
    assert_int_equal(gkm_read_file(missing, 100, &data, &len), -1);
    assert_int_equal(errno, ENOENT);
    errno = 0;
    assert_int_equal(gkm_read_file(dir, 100, &data, &len), -1);
    assert_int_equal(errno, EISDIR);

    /* A failed write (target is a directory) leaves no temp file and the
     * old contents untouched. */
    assert_int_equal(mkdir(missing, 0700), 0);
    assert_int_equal(gkm_write_file_atomic(missing, "x", 1, 0600), -1);
    assert_int_equal(dir_entries(dir), 2);
    rmdir(missing);
    /* Into a missing directory. */
    char *nodir = gkm_xasprintf("%s/none/file", dir);
    errno = 0;
    assert_int_equal(gkm_write_file_atomic(nodir, "x", 1, 0600), -1);
    assert_int_equal(errno, ENOENT);
    free(nodir);
    free(missing);

    unlink(path);
    rmdir(dir);
    free(path);
}

static void test_zeroed_alloc(void **state)
{
    (void)state;
    /* Small (malloc + zeroing) and large (calloc) blocks come back zeroed,
     * also when the memory was used before. */
    size_t sizes[] = {1, 7, 64, 1000, 1024, 1025, 4096, 1 << 20};
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            unsigned char *p = gkm_calloc(1, sizes[i]);
            assert_non_null(p);
            for (size_t k = 0; k < sizes[i]; k++)
                assert_int_equal(p[k], 0);
            memset(p, 0xAB, sizes[i]);
            free(p);
        }
    }
    unsigned char *q = gkm_calloc(3, 100);
    assert_non_null(q);
    for (size_t k = 0; k < 300; k++)
        assert_int_equal(q[k], 0);
    free(q);
    /* Zero size: a valid pointer to free; overflow: NULL. */
    void *z = gkm_calloc(0, 16);
    assert_non_null(z);
    free(z);
    assert_null(gkm_calloc(SIZE_MAX / 2, 3));
    assert_null(gkm_calloc(3, SIZE_MAX / 2));
    int *x = gkm_xcalloc(0, 0);
    assert_non_null(x);
    free(x);
}

static void test_strings(void **state)
{
    (void)state;
    assert_true(gkm_strcaseeq("Content-Type", "content-type"));
    assert_false(gkm_strcaseeq("Content-Type", "content-typ"));
    assert_true(gkm_strcaseeq("", ""));
    assert_true(gkm_strcaseeq("X-GOOG-API-KEY", "x-goog-api-key"));
    assert_false(gkm_strcaseeq("a[", "A{")); /* '[' is not '{' folded */
    assert_false(gkm_strcaseeq("\xc4", "\xe4")); /* ASCII only */
    char num[GKM_LL_LEN];
    assert_ptr_equal(gkm_fmt_ll(num, 0), num + 1);
    assert_string_equal(num, "0");
    assert_ptr_equal(gkm_fmt_ll(num, -42), num + 3);
    assert_string_equal(num, "-42");
    (void)gkm_fmt_ll(num, 1234567890123LL);
    assert_string_equal(num, "1234567890123");
    (void)gkm_fmt_ll(num, LLONG_MAX);
    assert_string_equal(num, "9223372036854775807");
    assert_ptr_equal(gkm_fmt_ll(num, LLONG_MIN), num + 20);
    assert_string_equal(num, "-9223372036854775808");
    char *s = gkm_xasprintf("%s-%d", "a", 42);
    assert_string_equal(s, "a-42");
    free(s);
    s = gkm_xstrndup("abcdef", 3);
    assert_string_equal(s, "abc");
    free(s);
    s = gkm_xstrndup("ab", 10);
    assert_string_equal(s, "ab");
    free(s);
    /* Clocks: wall ms agrees with seconds; monotonic does not go back. */
    int64_t ms = gkm_now_ms();
    time_t sec = gkm_now();
    assert_true(ms / 1000 >= (int64_t)sec - 1 && ms / 1000 <= (int64_t)sec + 1);
    int64_t m1 = gkm_mono_ms(), m2 = gkm_mono_ms();
    assert_true(m2 >= m1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ct_equal),
        cmocka_unit_test(test_mask_key),
        cmocka_unit_test(test_parse_ll),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_buf_cap),
        cmocka_unit_test(test_write_atomic_and_read),
        cmocka_unit_test(test_zeroed_alloc),
        cmocka_unit_test(test_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
