/*
 * daytime.c - the quota day and its reset time (see daytime.h).
 *
 * The zone is the process's TZ, set once by gkm_daytime_setup() before any
 * thread exists; afterwards everything uses the reentrant localtime_r and
 * mktime, which read that zone. No state of our own.
 *
 * Why validate the name ourselves: glibc silently falls back to UTC for an
 * unknown TZ, so a typo ("America/Los_Angles") would move every reset by
 * 7-8 hours without any error.
 */
#include "daytime.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

#define ZONEINFO_DIR "/usr/share/zoneinfo"
#define TZ_NAME_MAX 128

/* A zone name is a relative path of [A-Za-z0-9_+-.] components without
 * "." or ".." components (so it cannot leave the zoneinfo directory). */
static int valid_name(const char *tz)
{
    size_t len = strnlen(tz, TZ_NAME_MAX + 1);
    if (len == 0 || len > TZ_NAME_MAX || tz[0] == '/' || tz[len - 1] == '/')
        return 0;
    const char *comp = tz;
    for (const char *p = tz;; p++) {
        if (*p == '/' || *p == '\0') {
            size_t clen = (size_t)(p - comp);
            if (clen == 0 || (clen == 1 && comp[0] == '.') ||
                (clen == 2 && comp[0] == '.' && comp[1] == '.'))
                return 0;
            if (*p == '\0')
                return 1;
            comp = p + 1;
            continue;
        }
        char c = *p;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '+' ||
              c == '.'))
            return 0;
    }
}

/* A POSIX TZ rule such as "UTC0", "PST8PDT,M3.2.0,M11.1.0" or
 * "<+0530>-5:30": a standard-time name (3+ letters, or <...>), then an
 * offset [+-]hh[:mm[:ss]], then an optional DST part that glibc parses. */
static int posix_rule(const char *tz)
{
    const char *p = tz;
    size_t n = 0;
    if (strnlen(tz, TZ_NAME_MAX + 1) > TZ_NAME_MAX)
        return 0;
    if (*p == '<') {
        p++;
        while (*p && *p != '>') {
            if (!(isalnum((unsigned char)*p) || *p == '+' || *p == '-'))
                return 0;
            p++, n++;
        }
        if (*p++ != '>')
            return 0;
    } else {
        while (isalpha((unsigned char)*p))
            p++, n++;
    }
    if (n < 3)
        return 0;
    if (*p == '+' || *p == '-')
        p++;
    if (!isdigit((unsigned char)*p))
        return 0;
    for (int part = 0; part < 3; part++) {
        int d = 0;
        while (isdigit((unsigned char)*p))
            p++, d++;
        if (d < 1 || d > 2)
            return 0;
        if (*p != ':' || part == 2)
            break;
        p++;
    }
    if (*p != '\0' && *p != '<' && !isalpha((unsigned char)*p))
        return 0; /* only a DST name may follow the offset */
    for (; *p; p++)
        if (!(isalnum((unsigned char)*p) || strchr("<>+-:,./", *p)))
            return 0;
    return 1;
}

int gkm_daytime_setup(const char *tz, char *err, size_t errlen)
{
    if (tz != NULL && !valid_name(tz) && posix_rule(tz)) {
        if (setenv("TZ", tz, 1) != 0) {
            gkm_set_err(err, errlen, "cannot set TZ: %s", strerror(errno));
            return -1;
        }
        tzset();
        return 0;
    }
    if (tz == NULL || !valid_name(tz)) {
        gkm_set_err(err, errlen,
                "invalid time zone name '%.*s' (expected an IANA name such "
                "as America/Los_Angeles or UTC, or a POSIX TZ rule)",
                TZ_NAME_MAX, tz ? tz : "");
        return -1;
    }
    const char *dir = getenv("TZDIR");
    if (dir == NULL || dir[0] == '\0')
        dir = ZONEINFO_DIR;
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/%s", dir, tz);
    struct stat st;
    int found = n > 0 && (size_t)n < sizeof(path) && stat(path, &st) == 0 &&
                S_ISREG(st.st_mode);
    const char *value = tz;
    if (!found && posix_rule(tz)) {
        found = 1; /* e.g. "UTC0", "CET-1CEST,M3.5.0,M10.5.0/3" */
    }
    if (!found) {
        if (strcmp(tz, "UTC") != 0 && strcmp(tz, "Etc/UTC") != 0) {
            gkm_set_err(err, errlen,
                    "unknown time zone '%s' (no file %s; is tzdata "
                    "installed?)",
                    tz, path);
            return -1;
        }
        /* No zoneinfo at all (minimal container): a POSIX rule works. */
        value = "UTC0";
    }
    if (setenv("TZ", value, 1) != 0) {
        gkm_set_err(err, errlen, "cannot set TZ: %s", strerror(errno));
        return -1;
    }
    tzset();
    return 0;
}

void gkm_daytime_day(time_t now, char out[11])
{
    struct tm tm;
    if (localtime_r(&now, &tm) == NULL ||
        strftime(out, 11, "%Y-%m-%d", &tm) != 10)
        memcpy(out, "0000-00-00", 11);
}

time_t gkm_daytime_next_reset(time_t now)
{
    struct tm tm;
    if (localtime_r(&now, &tm) == NULL)
        return now + 86400;
    /* Midnight of the following day; mktime normalises the day overflow and,
     * with tm_isdst = -1, works out whether DST is in force then, so the
     * result is right on 23- and 25-hour days. The loop only matters in
     * zones that repeat midnight when clocks go back. */
    for (int extra = 1; extra <= 3; extra++) {
        struct tm next = tm;
        next.tm_mday += extra;
        next.tm_hour = 0;
        next.tm_min = 0;
        next.tm_sec = 0;
        next.tm_isdst = -1;
        time_t t = mktime(&next);
        if (t == (time_t)-1)
            break;
        if (t > now)
            return t;
    }
    return now + 86400;
}

int64_t gkm_parse_rfc3339_ms(const char *s)
{
    int y, mo, d, h, mi, sec;
    if (s == NULL || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi,
                            &sec) != 6)
        return -1;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
        mi > 59 || sec > 60 || h < 0 || mi < 0 || sec < 0)
        return -1;
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    return t == (time_t)-1 ? -1 : (int64_t)t * 1000;
}
