/*
 * keyfile.h - parsing key.txt.
 *
 * Format: one key per line. Leading/trailing whitespace is trimmed; blank
 * lines and lines whose first non-blank character is '#' are ignored; an
 * inline '#' preceded by a space or tab starts a comment too ('#' inside a
 * token is kept). After the key, optional attributes separated by
 * whitespace: `project=NAME` (keys of one Google Cloud project share quota;
 * NAME is 1..128 printable ASCII characters). Anything else after the key is
 * an error naming the line. A UTF-8 BOM and CRLF line ends are accepted.
 * A key must be 1..256 printable ASCII characters without spaces (control
 * characters, NUL and non-ASCII bytes are errors).
 * Duplicate keys are dropped with a warning (the first occurrence wins).
 * Messages never contain a key in clear: they name the line and the masked key.
 */
#ifndef GKM_KEYFILE_H
#define GKM_KEYFILE_H

#include <stddef.h>

struct gkm_keyfile_entry {
    char *secret;
    char *project; /* NULL when not given */
    int line;
};

struct gkm_keyfile {
    struct gkm_keyfile_entry *keys;
    size_t n;
    char **warnings; /* human-readable, one per dropped duplicate etc.;
                        keys in them are masked */
    size_t nwarnings;
};

/* Parse text (len bytes, need not be NUL-terminated). Returns 0 with *out
 * filled (possibly n == 0: the caller decides that empty is an error), or -1
 * with a message in err (a line number and reason) and *out left empty. */
int gkm_keyfile_parse(const char *text, size_t len, struct gkm_keyfile *out,
                      char *err, size_t errlen);
/* Read and parse path (at most 16 MiB). Errors name the path: missing file,
 * unreadable, or no keys at all ("... contains no keys"). Returns 0 or -1. */
int gkm_keyfile_load(const char *path, struct gkm_keyfile *out, char *err,
                     size_t errlen);
void gkm_keyfile_free(struct gkm_keyfile *kf);

#endif
