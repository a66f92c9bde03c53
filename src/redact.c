/*
 * redact.c - streaming removal of API keys from relayed bytes (see
 * redact.h).
 *
 * Two patterns are replaced by a mask (util.h gkm_mask_key):
 *   - a Google key: "AIza" followed by at least 35 of [0-9A-Za-z_-]. Real
 *     keys are exactly 39 characters; a longer run is masked as a whole
 *     (its mask is taken from the first 39 characters, and the rest of the
 *     run is swallowed, so the decision never waits for the run's end);
 *   - the exact secret given to gkm_redactor_new, in whatever form.
 * At each position the secret is tried first, then the Google pattern.
 *
 * Streaming invariant: the redactor holds back only the bytes from the
 * earliest position at which a match could still begin, i.e. fewer than
 * max(39, strlen(secret)) bytes. Everything before it has been decided and
 * written out. While held bytes are completed by the next chunk, only a
 * bounded prefix of that chunk is copied; the rest is scanned in place.
 *
 * Ownership: the redactor owns a copy of the secret (wiped on free) and its
 * hold buffer; output goes into the caller's buffer.
 */
#define _GNU_SOURCE 1 /* memmem */
#include "redact.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"

#define AIZA_LEN 39 /* "AIza" + 35 */
#define AIZA_PREFIX_LEN 4
#define HOLD_CAP (SIZE_MAX / 2)

enum match { MATCH_NONE, MATCH_PARTIAL, MATCH_FULL };

struct gkm_redactor {
    char *secret; /* NULL when none */
    size_t slen;
    char smask[GKM_MASK_LEN];
    size_t maxlen;       /* longest possible match decision window */
    struct gkm_buf hold; /* undecided tail */
    int swallow;         /* inside a Google-key run that was already masked */
};

static int is_keych(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
           (c >= 'a' && c <= 'z') || c == '_' || c == '-';
}

static enum match aiza_at(const char *p, size_t n)
{
    static const char prefix[AIZA_PREFIX_LEN] = {'A', 'I', 'z', 'a'};
    for (size_t i = 0; i < AIZA_LEN; i++) {
        if (i >= n)
            return MATCH_PARTIAL;
        if (i < AIZA_PREFIX_LEN ? p[i] != prefix[i] : !is_keych(p[i]))
            return MATCH_NONE;
    }
    return MATCH_FULL;
}

static enum match secret_at(const struct gkm_redactor *r, const char *p,
                            size_t n)
{
    if (r->slen == 0)
        return MATCH_NONE;
    size_t m = n < r->slen ? n : r->slen;
    if (memcmp(p, r->secret, m) != 0)
        return MATCH_NONE;
    return m == r->slen ? MATCH_FULL : MATCH_PARTIAL;
}

/* Scan p[0..n): write decided bytes (redacted) to out and return the offset
 * where the undecided tail starts (n if none). When final, partial matches
 * are not matches and the whole input is decided. Returns (size_t)-1 when
 * out's cap was hit. */
static size_t scan(struct gkm_redactor *r, const char *p, size_t n,
                   int final, struct gkm_buf *out)
{
    size_t i = 0, from = 0, hold_at = n;
    if (r->swallow) {
        while (i < n && is_keych(p[i]))
            i++;
        if (i == n)
            return n;
        r->swallow = 0;
        from = i;
    }
    char first = r->slen ? r->secret[0] : 'A';
    while (i < n) {
        if (p[i] != 'A' && p[i] != first) {
            if (first == 'A') {
                /* The usual case (Google keys start with "AIza"): jump
                 * to the next candidate with memchr. */
                const char *a = memchr(p + i, 'A', n - i);
                i = a ? (size_t)(a - p) : n;
            } else {
                i++;
            }
            continue;
        }
        enum match s = secret_at(r, p + i, n - i);
        if (s == MATCH_FULL) {
            if (gkm_buf_append(out, p + from, i - from) != 0 ||
                gkm_buf_append_str(out, r->smask) != 0)
                return (size_t)-1;
            i += r->slen;
            from = i;
            continue;
        }
        if (s == MATCH_PARTIAL && !final) {
            hold_at = i;
            break;
        }
        enum match a = p[i] == 'A' ? aiza_at(p + i, n - i) : MATCH_NONE;
        if (a == MATCH_FULL) {
            char key[AIZA_LEN + 1], mask[GKM_MASK_LEN];
            memcpy(key, p + i, AIZA_LEN);
            key[AIZA_LEN] = '\0';
            gkm_mask_key(key, mask);
            if (gkm_buf_append(out, p + from, i - from) != 0 ||
                gkm_buf_append_str(out, mask) != 0)
                return (size_t)-1;
            i += AIZA_LEN;
            while (i < n && is_keych(p[i]))
                i++;
            /* The run may continue in the next chunk. */
            if (i == n && !final)
                r->swallow = 1;
            from = i;
            continue;
        }
        if (a == MATCH_PARTIAL && !final) {
            hold_at = i;
            break;
        }
        i++;
    }
    if (gkm_buf_append(out, p + from, hold_at - from) != 0)
        return (size_t)-1;
    return hold_at;
}

struct gkm_redactor *gkm_redactor_new(const char *secret)
{
    struct gkm_redactor *r = gkm_xcalloc(1, sizeof(*r));
    if (secret != NULL && secret[0] != '\0') {
        r->secret = gkm_xstrdup(secret);
        r->slen = strlen(secret);
        gkm_mask_key(secret, r->smask);
    }
    r->maxlen = r->slen > AIZA_LEN ? r->slen : AIZA_LEN;
    gkm_buf_init(&r->hold, HOLD_CAP);
    return r;
}

void gkm_redactor_free(struct gkm_redactor *r)
{
    if (r == NULL)
        return;
    if (r->secret != NULL) {
        volatile char *v = r->secret;
        for (size_t i = 0; i < r->slen; i++)
            v[i] = 0;
        free(r->secret);
    }
    gkm_buf_free(&r->hold);
    free(r);
}

/* Keep p[0..n) as the undecided tail. */
static void hold_tail(struct gkm_redactor *r, const char *p, size_t n)
{
    if (n > 0 && gkm_buf_append(&r->hold, p, n) != 0)
        abort(); /* n < maxlen, far below HOLD_CAP */
}

int gkm_redactor_feed(struct gkm_redactor *r, const char *p, size_t n,
                      struct gkm_buf *out)
{
    if (n == 0)
        return 0;
    if (r->hold.len > 0) {
        /* Every match that starts in the held tail is decided within
         * maxlen more bytes, so a prefix of the chunk that long suffices. */
        size_t old = r->hold.len;
        size_t take = n < r->maxlen ? n : r->maxlen;
        hold_tail(r, p, take);
        size_t h = scan(r, r->hold.data, r->hold.len, 0, out);
        if (h == (size_t)-1)
            return -1;
        if (take == n || h < old) {
            /* h < old implies take == n (see above). */
            gkm_buf_consume(&r->hold, h);
            return 0;
        }
        gkm_buf_reset(&r->hold);
        /* Continue in place from the first undecided byte of the chunk. */
        p += h - old;
        n -= h - old;
        if (n == 0)
            return 0;
    }
    size_t h = scan(r, p, n, 0, out);
    if (h == (size_t)-1)
        return -1;
    hold_tail(r, p + h, n - h);
    return 0;
}

int gkm_redactor_finish(struct gkm_redactor *r, struct gkm_buf *out)
{
    size_t h = 0;
    if (r->hold.len > 0)
        h = scan(r, r->hold.data, r->hold.len, 1, out);
    gkm_buf_reset(&r->hold);
    r->swallow = 0;
    return h == (size_t)-1 ? -1 : 0;
}

char *gkm_redact_all(const char *secret, const char *p, size_t n,
                     size_t *outlen)
{
    struct gkm_redactor *r = gkm_redactor_new(secret);
    struct gkm_buf out;
    gkm_buf_init(&out, HOLD_CAP);
    if (gkm_redactor_feed(r, p, n, &out) != 0 ||
        gkm_redactor_finish(r, &out) != 0)
        abort(); /* HOLD_CAP cannot be reached by a string in memory */
    gkm_redactor_free(r);
    return gkm_buf_take(&out, outlen);
}

int gkm_redact_needed(const char *secret, const char *p, size_t n)
{
    /* memchr is vectorised; an 'A' is rare in JSON answers. Only an 'A'
     * with room for "Iza" after it can start the prefix. */
    if (n >= AIZA_PREFIX_LEN) {
        const char *last = p + n - AIZA_PREFIX_LEN; /* last possible start */
        for (const char *a = p;
             (a = memchr(a, 'A', (size_t)(last - a) + 1)) != NULL; a++) {
            if (memcmp(a, "AIza", AIZA_PREFIX_LEN) == 0)
                return 1;
            if (a == last)
                break;
        }
    }
    if (secret == NULL || secret[0] == '\0')
        return 0;
    size_t sl = strlen(secret);
    /* A secret starting with "AIza" would have been found above. */
    if (sl >= AIZA_PREFIX_LEN && memcmp(secret, "AIza", AIZA_PREFIX_LEN) == 0)
        return 0;
    return memmem(p, n, secret, sl) != NULL;
}
