/*
 * daytime.h - the quota day: Gemini's daily quotas reset at midnight in a
 * configured time zone (America/Los_Angeles by default).
 *
 * gkm_daytime_setup() sets the process time zone (TZ) once at start-up,
 * before any other thread or timer exists; it is the only process-wide
 * setting the proxy makes. Everything else is a pure function of `now`.
 * Log timestamps are UTC and do not depend on it.
 */
#ifndef GKM_DAYTIME_H
#define GKM_DAYTIME_H

#include <stdint.h>
#include <time.h>

/* Check that tz names a known zone ("UTC", or a file under the zoneinfo
 * directory, $TZDIR or /usr/share/zoneinfo) and make it the process zone
 * (setenv TZ + tzset). Names must be relative paths of [A-Za-z0-9_+-.]
 * without "." or ".." components. "UTC" and "Etc/UTC" work even without
 * tzdata installed. Returns 0, or -1 with a message in err. */
int gkm_daytime_setup(const char *tz, char *err, size_t errlen);

/* The quota day containing `now` as "YYYY-MM-DD" (out: 11 bytes). */
void gkm_daytime_day(time_t now, char out[11]);
/* The first local midnight strictly after `now` (handles DST: the day may
 * be 23 or 25 hours long). */
time_t gkm_daytime_next_reset(time_t now);

/* An RFC 3339 UTC time as Google writes it ("2026-08-22T10:00:00.123456Z";
 * fractions ignored) in milliseconds since the epoch, or -1 when s is NULL
 * or does not start with a valid date and time. */
int64_t gkm_parse_rfc3339_ms(const char *s);

#endif
