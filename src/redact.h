/*
 * redact.h - keeping real API keys out of everything sent to clients.
 *
 * Google's error texts can quote the key ("Consumer 'api_key:AIza...' has
 * been suspended", DebugInfo "Invalid API key: ..."). Every byte relayed to
 * a client passes through a redactor that replaces
 *   - any Google-style key: "AIza" followed by 35 of [0-9A-Za-z_-], and
 *   - the exact secret used for the upstream attempt (whatever its form)
 * with its masked form "...abcd" (util.h gkm_mask_key).
 *
 * A run of more than 35 key characters after "AIza" is replaced as a whole
 * by one mask (taken from its first 39 characters).
 *
 * The streaming form holds back only the trailing bytes that could still
 * become a match (fewer than max(39, strlen(secret))), so a key split across
 * chunks is caught and everything else passes through at once.
 */
#ifndef GKM_REDACT_H
#define GKM_REDACT_H

#include <stddef.h>

struct gkm_buf;
struct gkm_redactor;

/* secret: the key used upstream (copied; may be NULL). */
struct gkm_redactor *gkm_redactor_new(const char *secret);
void gkm_redactor_free(struct gkm_redactor *r);
/* Feed a chunk; safe output is appended to out. Returns 0, or -1 if out's
 * cap was hit (out then holds a partial result and the stream should be
 * abandoned). */
int gkm_redactor_feed(struct gkm_redactor *r, const char *p, size_t n,
                      struct gkm_buf *out) __attribute__((warn_unused_result));
/* End of input: flush what was held back (an incomplete match is not a
 * match). The redactor may then be reused for a new stream. Returns 0 or
 * -1 (cap). */
int gkm_redactor_finish(struct gkm_redactor *r, struct gkm_buf *out)
    __attribute__((warn_unused_result));

/* One-shot: redact a whole string (len bytes) into a fresh heap string
 * (NUL-terminated; caller frees; *outlen receives its length). */
char *gkm_redact_all(const char *secret, const char *p, size_t n,
                     size_t *outlen);

/* 1 if p (n bytes) holds something gkm_redact_all would replace: "AIza"
 * or the secret (may be NULL) anywhere. 0 means the bytes can be relayed
 * as they are. Linear, and much cheaper than redacting. */
int gkm_redact_needed(const char *secret, const char *p, size_t n);

#endif
