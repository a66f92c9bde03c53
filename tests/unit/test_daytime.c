/*
 * test_daytime.c - zone validation, the quota day and the next reset across
 * DST changes (America/Los_Angeles 2026-03-08 and 2026-11-01), in UTC and
 * in a half-hour zone (Asia/Kolkata).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "daytime.h"

static time_t utc(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    return timegm(&tm);
}

static void setup_zone(const char *tz)
{
    char err[256] = "";
    int rc = gkm_daytime_setup(tz, err, sizeof(err));
    if (rc != 0)
        fail_msg("setup(%s): %s", tz, err);
}

static void assert_day(time_t t, const char *want)
{
    char day[11];
    gkm_daytime_day(t, day);
    assert_string_equal(day, want);
}

static void test_setup_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "/etc/localtime",
        "../etc/passwd",
        "America/../Etc/UTC",
        "America/./Los_Angeles",
        "America//Los_Angeles",
        "America/Los_Angeles/",
        "America/Nowhere",
        "America", /* a directory, not a zone */
        "Europe/Paris\n",
        ":America/Los_Angeles",
    };
    char err[256];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(gkm_daytime_setup(bad[i], err, sizeof(err)), -1);
        assert_true(strlen(err) > 0);
    }
    err[0] = '\0';
    assert_int_equal(gkm_daytime_setup(NULL, err, sizeof(err)), -1);
    assert_true(strlen(err) > 0);
    assert_int_equal(gkm_daytime_setup("America/Nowhere", err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "America/Nowhere"));
}

static void test_setup_accepts_and_sets_tz(void **state)
{
    (void)state;
    setup_zone("Asia/Kolkata");
    assert_string_equal(getenv("TZ"), "Asia/Kolkata");
    setup_zone("Etc/UTC");
    setup_zone("UTC");
    setup_zone("America/Los_Angeles");
    assert_string_equal(getenv("TZ"), "America/Los_Angeles");
}

static void test_posix_rules(void **state)
{
    (void)state;
    char err[256];
    /* Local time = UTC - 05:00:30: midnight local is 05:00:30 UTC. */
    setup_zone("TST+05:00:30");
    time_t t = 1795000000; /* 2026-11-18T07:46:40Z */
    time_t next = gkm_daytime_next_reset(t);
    assert_int_equal((long)(next % 86400), 5 * 3600 + 30);
    assert_true(next > t && next - t <= 86400);
    setup_zone("CET-1CEST,M3.5.0,M10.5.0/3");
    setup_zone("<+0530>-5:30");
    setup_zone("UTC0");
    static const char *const bad[] = {"AB+1", "TST", "TST+123", "TST+1:2:3:4",
                                      "TST+1;rm", "<+05>x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(gkm_daytime_setup(bad[i], err, sizeof(err)), -1);
}

static void test_tzdir(void **state)
{
    (void)state;
    char dir[] = "/tmp/gkm-tzdir-XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(setenv("TZDIR", dir, 1), 0);
    char err[256];
    /* An empty zoneinfo directory: only UTC works, as a POSIX rule. */
    assert_int_equal(gkm_daytime_setup("America/Los_Angeles", err,
                                       sizeof(err)),
                     -1);
    assert_non_null(strstr(err, dir));
    assert_int_equal(gkm_daytime_setup("UTC", err, sizeof(err)), 0);
    assert_day(utc(2026, 11, 27, 23, 59, 59), "2026-11-27");
    assert_true(gkm_daytime_next_reset(utc(2026, 11, 27, 12, 0, 0)) ==
                utc(2026, 11, 28, 0, 0, 0));
    unsetenv("TZDIR");
    rmdir(dir);
}

static void test_los_angeles_spring_forward(void **state)
{
    (void)state;
    setup_zone("America/Los_Angeles");
    /* Midnight PST on 2026-03-08 is 08:00Z; the day has 23 hours. */
    assert_day(utc(2026, 3, 8, 7, 59, 59), "2026-03-07");
    assert_day(utc(2026, 3, 8, 8, 0, 0), "2026-03-08");
    assert_true(gkm_daytime_next_reset(utc(2026, 3, 8, 7, 59, 59)) ==
                utc(2026, 3, 8, 8, 0, 0));
    /* Strictly after: at midnight, the next one. */
    time_t start = utc(2026, 3, 8, 8, 0, 0);
    time_t end = gkm_daytime_next_reset(start);
    assert_true(end == utc(2026, 3, 9, 7, 0, 0));
    assert_int_equal((long)(end - start), 23 * 3600);
    /* From inside the short day, before and after the 02:00 jump. */
    assert_true(gkm_daytime_next_reset(utc(2026, 3, 8, 9, 30, 0)) == end);
    assert_true(gkm_daytime_next_reset(utc(2026, 3, 8, 11, 0, 0)) == end);
    assert_true(gkm_daytime_next_reset(end - 1) == end);
    assert_day(end - 1, "2026-03-08");
    assert_day(end, "2026-03-09");
    /* The next (normal, PDT) day has 24 hours. */
    assert_true(gkm_daytime_next_reset(end) == utc(2026, 3, 10, 7, 0, 0));
}

static void test_los_angeles_fall_back(void **state)
{
    (void)state;
    setup_zone("America/Los_Angeles");
    /* Midnight PDT on 2026-11-01 is 07:00Z; the day has 25 hours. */
    time_t start = utc(2026, 11, 1, 7, 0, 0);
    assert_day(start - 1, "2026-10-31");
    assert_day(start, "2026-11-01");
    time_t end = gkm_daytime_next_reset(start);
    assert_true(end == utc(2026, 11, 2, 8, 0, 0));
    assert_int_equal((long)(end - start), 25 * 3600);
    /* 01:30 happens twice (PDT then PST): same day, same reset. */
    assert_true(gkm_daytime_next_reset(utc(2026, 11, 1, 8, 30, 0)) == end);
    assert_true(gkm_daytime_next_reset(utc(2026, 11, 1, 9, 30, 0)) == end);
    assert_day(utc(2026, 11, 1, 9, 30, 0), "2026-11-01");
    assert_day(end - 1, "2026-11-01");
    assert_day(end, "2026-11-02");
    assert_true(gkm_daytime_next_reset(end) == utc(2026, 11, 3, 8, 0, 0));
}

static void test_utc(void **state)
{
    (void)state;
    setup_zone("UTC");
    time_t t = utc(2026, 11, 27, 8, 45, 0);
    assert_day(t, "2026-11-27");
    assert_true(gkm_daytime_next_reset(t) == utc(2026, 11, 28, 0, 0, 0));
    assert_true(gkm_daytime_next_reset(utc(2026, 11, 28, 0, 0, 0)) ==
                utc(2026, 11, 29, 0, 0, 0));
    /* Year end and a leap day. */
    assert_true(gkm_daytime_next_reset(utc(2026, 12, 31, 23, 0, 0)) ==
                utc(2027, 1, 1, 0, 0, 0));
    assert_true(gkm_daytime_next_reset(utc(2028, 2, 28, 12, 0, 0)) ==
                utc(2028, 2, 29, 0, 0, 0));
    assert_day(utc(2028, 2, 29, 12, 0, 0), "2028-02-29");
}

static void test_kolkata(void **state)
{
    (void)state;
    setup_zone("Asia/Kolkata");
    /* UTC+05:30: local midnight is 18:30Z the previous day. */
    assert_day(utc(2026, 11, 27, 18, 29, 59), "2026-11-27");
    assert_day(utc(2026, 11, 27, 18, 30, 0), "2026-11-28");
    assert_true(gkm_daytime_next_reset(utc(2026, 11, 27, 12, 0, 0)) ==
                utc(2026, 11, 27, 18, 30, 0));
    assert_true(gkm_daytime_next_reset(utc(2026, 11, 27, 18, 30, 0)) ==
                utc(2026, 11, 28, 18, 30, 0));
}

static void test_rfc3339(void **state)
{
    (void)state;
    assert_int_equal(gkm_parse_rfc3339_ms("2026-08-22T10:00:00.123456Z"),
                     (int64_t)utc(2026, 8, 22, 10, 0, 0) * 1000);
    assert_int_equal(gkm_parse_rfc3339_ms("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(gkm_parse_rfc3339_ms("2024-02-29T23:59:59Z"),
                     (int64_t)utc(2024, 2, 29, 23, 59, 59) * 1000);
    assert_int_equal(gkm_parse_rfc3339_ms(NULL), -1);
    assert_int_equal(gkm_parse_rfc3339_ms(""), -1);
    assert_int_equal(gkm_parse_rfc3339_ms("yesterday"), -1);
    assert_int_equal(gkm_parse_rfc3339_ms("2026-13-01T00:00:00Z"), -1);
    assert_int_equal(gkm_parse_rfc3339_ms("2026-01-01T24:00:00Z"), -1);
    assert_int_equal(gkm_parse_rfc3339_ms("2026-01-01"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_setup_rejects),
        cmocka_unit_test(test_setup_accepts_and_sets_tz),
        cmocka_unit_test(test_posix_rules),
        cmocka_unit_test(test_tzdir),
        cmocka_unit_test(test_los_angeles_spring_forward),
        cmocka_unit_test(test_los_angeles_fall_back),
        cmocka_unit_test(test_utc),
        cmocka_unit_test(test_kolkata),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
