/* Unit tests for log.c: level parsing and filtering, one line per event
 * (newlines inside messages flattened), size rotation with N backups. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "util.h"

static char *slurp(const char *path)
{
    char *data = NULL;
    size_t len = 0;
    if (gkm_read_file(path, 1 << 20, &data, &len) != 0)
        return NULL;
    return data;
}

static void test_levels(void **state)
{
    (void)state;
    enum gkm_log_level l;
    assert_int_equal(gkm_log_level_parse("DEBUG", &l), 0);
    assert_int_equal(l, GKM_LOG_DEBUG);
    assert_int_equal(gkm_log_level_parse("warning", &l), 0);
    assert_int_equal(l, GKM_LOG_WARN);
    assert_int_equal(gkm_log_level_parse("loud", &l), -1);
    assert_string_equal(gkm_log_level_name(GKM_LOG_INFO), "info");

    char dir[] = "/tmp/gkm-log-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = gkm_xasprintf("%s/a.log", dir);
    const char *es = NULL;
    struct gkm_log *log = gkm_log_new(GKM_LOG_WARN, 0, path, 1 << 20, 3, &es);
    assert_non_null(log);
    assert_true(gkm_log_enabled(log, GKM_LOG_ERROR));
    assert_false(gkm_log_enabled(log, GKM_LOG_INFO));
    gkm_info(log, "hidden %d", 1);
    gkm_warn(log, "shown\nwith a newline %s", "x");
    gkm_log_free(log);
    char *text = slurp(path);
    assert_non_null(text);
    assert_null(strstr(text, "hidden"));
    assert_non_null(strstr(text, "WARN  shown with a newline x\n"));
    assert_int_equal(strchr(text, '\n') - text + 1, (long)strlen(text));
    free(text);
    unlink(path);
    rmdir(dir);
    free(path);
}

static void test_rotation(void **state)
{
    (void)state;
    char dir[] = "/tmp/gkm-log-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = gkm_xasprintf("%s/p.log", dir);
    const char *es = NULL;
    struct gkm_log *log = gkm_log_new(GKM_LOG_INFO, 0, path, 1024, 2, &es);
    assert_non_null(log);
    for (int i = 0; i < 200; i++)
        gkm_info(log, "line %03d with some padding to fill the file up", i);
    gkm_log_free(log);
    struct stat st;
    for (int i = 0; i <= 2; i++) {
        char *f = i ? gkm_xasprintf("%s.%d", path, i) : gkm_xstrdup(path);
        assert_int_equal(stat(f, &st), 0);
        assert_true(st.st_size <= 1024);
        assert_true(st.st_size > 0);
        free(f);
    }
    char *f3 = gkm_xasprintf("%s.3", path);
    assert_int_not_equal(stat(f3, &st), 0); /* only 2 backups kept */
    char *cur = slurp(path);
    assert_non_null(strstr(cur, "line 199"));
    free(cur);
    char *old = gkm_xasprintf("%s.1", path);
    char *prev = slurp(old);
    assert_null(strstr(prev, "line 199"));
    free(prev);
    /* A file that cannot be opened is reported. */
    char *bad = gkm_xasprintf("%s/missing/dir/x.log", dir);
    assert_null(gkm_log_new(GKM_LOG_INFO, 0, bad, 1024, 2, &es));
    assert_non_null(es);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(bad);
    free(old);
    free(f3);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_rotation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
