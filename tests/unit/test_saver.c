/*
 * test_saver.c - the usage-file writer thread: what is handed over reaches
 * the disk (newest wins), failures are reported with errno and recover,
 * and stopping writes what is still queued.
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
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "saver.h"
#include "util.h"

static char *read_all(const char *path)
{
    char *data = NULL;
    size_t len = 0;
    if (gkm_read_file(path, 1 << 20, &data, &len) != 0)
        return NULL;
    return data;
}

static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void test_write_and_status(void **state)
{
    (void)state;
    char dir[] = "/tmp/gkm-saver-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = gkm_xasprintf("%s/key_usage.txt", dir);
    struct gkm_saver *s = gkm_saver_new(path, 0600);
    assert_non_null(s);

    struct gkm_saver_status st;
    gkm_saver_status(s, &st);
    assert_int_equal(st.ok_seq, 0);
    assert_int_equal(st.fail_seq, 0);
    assert_true(st.idle);
    assert_int_equal(gkm_saver_wait(s, -1), 0); /* nothing handed over */

    gkm_saver_submit(s, gkm_xstrdup("{\"date\":\"2026-11-27\"}"), 21, 1);
    assert_int_equal(gkm_saver_wait(s, -1), 0);
    gkm_saver_status(s, &st);
    assert_int_equal(st.ok_seq, 1);
    assert_int_equal(st.fail_seq, 0);
    assert_true(st.idle);
    char *got = read_all(path);
    assert_non_null(got);
    assert_string_equal(got, "{\"date\":\"2026-11-27\"}");
    free(got);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(entries(dir), 1); /* no temporary file left */

    /* A burst: whatever was skipped, the newest is what ends on disk. */
    for (uint64_t i = 2; i <= 200; i++) {
        char *d = gkm_xasprintf("snapshot %llu", (unsigned long long)i);
        gkm_saver_submit(s, d, strlen(d), i);
    }
    assert_int_equal(gkm_saver_wait(s, -1), 0);
    gkm_saver_status(s, &st);
    assert_int_equal(st.ok_seq, 200);
    got = read_all(path);
    assert_string_equal(got, "snapshot 200");
    free(got);
    assert_int_equal(entries(dir), 1);

    gkm_saver_free(s);
    unlink(path);
    rmdir(dir);
    free(path);
}

static void test_failure_then_recovery(void **state)
{
    (void)state;
    char dir[] = "/tmp/gkm-saver-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *sub = gkm_xasprintf("%s/not-yet", dir);
    char *path = gkm_xasprintf("%s/key_usage.txt", sub);
    struct gkm_saver *s = gkm_saver_new(path, 0600);
    assert_non_null(s);

    gkm_saver_submit(s, gkm_xstrdup("one"), 3, 1);
    errno = 0;
    assert_int_equal(gkm_saver_wait(s, -1), -1);
    assert_int_equal(errno, ENOENT);
    struct gkm_saver_status st;
    gkm_saver_status(s, &st);
    assert_int_equal(st.ok_seq, 0);
    assert_int_equal(st.fail_seq, 1);
    assert_int_equal(st.fail_errno, ENOENT);

    /* The directory appears: the next snapshot is written. */
    assert_int_equal(mkdir(sub, 0700), 0);
    gkm_saver_submit(s, gkm_xstrdup("two"), 3, 2);
    assert_int_equal(gkm_saver_wait(s, -1), 0);
    gkm_saver_status(s, &st);
    assert_int_equal(st.ok_seq, 2);
    assert_int_equal(st.fail_seq, 1); /* the old failure stays on record */
    char *got = read_all(path);
    assert_string_equal(got, "two");
    free(got);

    gkm_saver_free(s);
    unlink(path);
    rmdir(sub);
    rmdir(dir);
    free(path);
    free(sub);
}

static void test_free_writes_queued(void **state)
{
    (void)state;
    char dir[] = "/tmp/gkm-saver-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = gkm_xasprintf("%s/key_usage.txt", dir);
    for (int round = 0; round < 50; round++) {
        struct gkm_saver *s = gkm_saver_new(path, 0600);
        assert_non_null(s);
        char *d = gkm_xasprintf("last words %d", round);
        gkm_saver_submit(s, d, strlen(d), 1);
        gkm_saver_free(s); /* no wait: stopping must still write it */
        char *got = read_all(path);
        char want[32];
        snprintf(want, sizeof(want), "last words %d", round);
        assert_non_null(got);
        assert_string_equal(got, want);
        free(got);
    }
    gkm_saver_free(NULL);
    unlink(path);
    rmdir(dir);
    free(path);
}

/* A saver whose first write hangs: a FIFO stands where the writer makes
 * its temporary file, so its open() blocks until a reader comes (the
 * write then fails: a FIFO cannot be fsync'ed). */
struct hung {
    char dir[32];
    char *path, *tmp;
    struct gkm_saver *s;
};

static void hung_start(struct hung *h)
{
    snprintf(h->dir, sizeof(h->dir), "/tmp/gkm-saver-XXXXXX");
    assert_non_null(mkdtemp(h->dir));
    h->path = gkm_xasprintf("%s/key_usage.txt", h->dir);
    h->tmp = gkm_xasprintf("%s.tmp.%ld", h->path, (long)getpid());
    assert_int_equal(mkfifo(h->tmp, 0600), 0);
    h->s = gkm_saver_new(h->path, 0600);
    assert_non_null(h->s);
    gkm_saver_submit(h->s, gkm_xstrdup("stuck"), 5, 1);
}

/* Let the hung write go on (and fail), wait until it did, clean up. */
static void hung_release(struct hung *h)
{
    int fd = open(h->tmp, O_RDONLY | O_NONBLOCK);
    assert_true(fd >= 0);
    /* The writer removes its temporary file when the write fails. */
    for (int i = 0; i < 500 && access(h->tmp, F_OK) == 0; i++)
        usleep(10000);
    assert_int_not_equal(access(h->tmp, F_OK), 0);
    close(fd);
    rmdir(h->dir);
    free(h->tmp);
    free(h->path);
}

static void test_wait_times_out(void **state)
{
    (void)state;
    struct hung h;
    hung_start(&h);
    errno = 0;
    assert_int_equal(gkm_saver_wait(h.s, 100), -1);
    assert_int_equal(errno, ETIMEDOUT);
    struct gkm_saver_status st;
    gkm_saver_status(h.s, &st);
    assert_false(st.idle);
    assert_true(st.busy_since_ms > 0);
    struct gkm_saver *s = h.s;
    hung_release(&h);
    assert_int_equal(gkm_saver_wait(s, -1), -1); /* and the write failed */
    assert_int_not_equal(errno, ETIMEDOUT);
    gkm_saver_status(s, &st);
    assert_true(st.idle);
    assert_int_equal(st.busy_since_ms, 0);
    assert_int_equal(st.fail_seq, 1);
    gkm_saver_free(s);
}

static void test_abandon_hung_write(void **state)
{
    (void)state;
    struct hung h;
    hung_start(&h);
    gkm_saver_submit(h.s, gkm_xstrdup("queued"), 6, 2); /* may replace it */
    assert_int_equal(gkm_saver_wait(h.s, 50), -1);
    gkm_saver_abandon(h.s); /* returns at once although the write hangs */
    hung_release(&h);       /* the thread then ends and frees the saver */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_and_status),
        cmocka_unit_test(test_failure_then_recovery),
        cmocka_unit_test(test_free_writes_queued),
        cmocka_unit_test(test_wait_times_out),
        cmocka_unit_test(test_abandon_hung_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
