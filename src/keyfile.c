/*
 * keyfile.c - parsing key.txt (see keyfile.h for the format).
 *
 * The parser works on a length-delimited buffer (the file may contain NUL
 * bytes, which are rejected like any control character). No message ever
 * contains a key or unknown text in clear: keys are shown masked (util.h
 * gkm_mask_key), since a line with two keys on it would otherwise print the
 * second one as an "unknown attribute".
 *
 * Ownership: a struct gkm_keyfile owns all its strings; gkm_keyfile_free
 * releases them and leaves it empty. On a parse error nothing is kept.
 */
#include "keyfile.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define KEY_MAX 256
#define PROJECT_MAX 128
#define KEYFILE_MAX (16u * 1024 * 1024)

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Printable ASCII other than space. */
static int is_graph(char c)
{
    return (unsigned char)c > 0x20 && (unsigned char)c < 0x7f;
}

/* Masked form of a length-delimited token (last 4 characters), never the
 * whole token. */
static void mask_token(const char *p, size_t n, char out[GKM_MASK_LEN])
{
    char tmp[KEY_MAX + 1];
    if (n > KEY_MAX) {
        p += n - KEY_MAX;
        n = KEY_MAX;
    }
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    /* Non-printable bytes must not reach a terminal or log. */
    for (size_t i = 0; i < n; i++)
        if (!is_graph(tmp[i]))
            tmp[i] = '?';
    gkm_mask_key(tmp, out);
}

/* Duplicate detection: open-addressing set of indices into kf->keys. */
struct dupset {
    uint32_t *slots; /* index + 1; 0 empty */
    size_t cap;
    size_t kalloc; /* allocated entries of kf->keys */
};

static uint64_t hash_bytes(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static void dupset_grow(struct dupset *d, const struct gkm_keyfile *kf)
{
    size_t cap = d->cap ? d->cap * 2 : 64;
    free(d->slots);
    d->slots = gkm_xcalloc(cap, sizeof(*d->slots));
    d->cap = cap;
    for (size_t i = 0; i < kf->n; i++) {
        size_t j = (size_t)hash_bytes(kf->keys[i].secret) & (cap - 1);
        while (d->slots[j] != 0)
            j = (j + 1) & (cap - 1);
        d->slots[j] = (uint32_t)(i + 1);
    }
}

/* Returns the existing entry with this secret, or NULL. */
static const struct gkm_keyfile_entry *
dupset_find(const struct dupset *d, const struct gkm_keyfile *kf,
            const char *secret)
{
    if (d->cap == 0)
        return NULL;
    size_t j = (size_t)hash_bytes(secret) & (d->cap - 1);
    for (; d->slots[j] != 0; j = (j + 1) & (d->cap - 1)) {
        const struct gkm_keyfile_entry *e = &kf->keys[d->slots[j] - 1];
        if (strcmp(e->secret, secret) == 0)
            return e;
    }
    return NULL;
}

static void add_warning(struct gkm_keyfile *kf, char *msg)
{
    kf->warnings = gkm_xrealloc(kf->warnings,
                                (kf->nwarnings + 1) * sizeof(*kf->warnings));
    kf->warnings[kf->nwarnings++] = msg;
}

/* Parse one attribute token. Returns 0 or -1 with err set. */
static int parse_attr(const char *tok, size_t n, int line, char **project,
                      char *err, size_t errlen)
{
    static const char pfx[] = "project=";
    const size_t plen = sizeof(pfx) - 1;
    if (n >= plen && memcmp(tok, pfx, plen) == 0) {
        size_t vlen = n - plen;
        if (vlen == 0) {
            gkm_set_err(err, errlen, "line %d: empty project name", line);
            return -1;
        }
        if (vlen > PROJECT_MAX) {
            gkm_set_err(err, errlen,
                    "line %d: project name too long (max %d characters)",
                    line, PROJECT_MAX);
            return -1;
        }
        for (size_t i = plen; i < n; i++) {
            if (!is_graph(tok[i])) {
                gkm_set_err(err, errlen,
                        "line %d: project name contains a control or "
                        "non-ASCII character",
                        line);
                return -1;
            }
        }
        if (*project != NULL) {
            gkm_set_err(err, errlen, "line %d: project given twice", line);
            return -1;
        }
        *project = gkm_xstrndup(tok + plen, vlen);
        return 0;
    }
    const char *eq = memchr(tok, '=', n);
    size_t namelen = eq ? (size_t)(eq - tok) : 0;
    int printable = 1;
    for (size_t i = 0; i < namelen; i++)
        printable &= is_graph(tok[i]);
    if (eq != NULL && namelen > 0 && namelen <= 32 && printable) {
        gkm_set_err(err, errlen,
                "line %d: unknown attribute '%.*s' (only project=NAME is "
                "allowed after the key)",
                line, (int)namelen, tok);
    } else {
        char m[GKM_MASK_LEN];
        mask_token(tok, n, m);
        gkm_set_err(err, errlen,
                "line %d: unexpected text %s after the key (one key per "
                "line; only project=NAME may follow it)",
                line, m);
    }
    return -1;
}

/* Check a key token. Returns 0 or -1 with err set. */
static int check_key(const char *tok, size_t n, int line, char *err,
                     size_t errlen)
{
    char m[GKM_MASK_LEN];
    if (n > KEY_MAX) {
        mask_token(tok, n, m);
        gkm_set_err(err, errlen,
                "line %d: key %s is too long (%zu characters, max %d)", line,
                m, n, KEY_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_graph(tok[i])) {
            mask_token(tok, n, m);
            gkm_set_err(err, errlen,
                    "line %d: key %s contains a control or non-ASCII "
                    "character at position %zu",
                    line, m, i + 1);
            return -1;
        }
    }
    return 0;
}

/* Parse one line (without its '\n'). Returns 0 or -1 with err set. */
static int parse_line(const char *p, size_t n, int line,
                      struct gkm_keyfile *kf, struct dupset *dups, char *err,
                      size_t errlen)
{
    /* Cut an inline comment: '#' at the start or after a blank. */
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '#' && (i == 0 || is_blank(p[i - 1]))) {
            n = i;
            break;
        }
    }
    size_t i = 0;
    while (i < n && is_blank(p[i]))
        i++;
    while (n > i && is_blank(p[n - 1]))
        n--;
    if (i == n)
        return 0;

    const char *key = p + i;
    while (i < n && !is_blank(p[i]))
        i++;
    size_t keylen = (size_t)(p + i - key);
    if (check_key(key, keylen, line, err, errlen) != 0)
        return -1;

    char *project = NULL;
    while (i < n) {
        while (i < n && is_blank(p[i]))
            i++;
        const char *tok = p + i;
        while (i < n && !is_blank(p[i]))
            i++;
        if (parse_attr(tok, (size_t)(p + i - tok), line, &project, err,
                       errlen) != 0) {
            free(project);
            return -1;
        }
    }

    char *secret = gkm_xstrndup(key, keylen);
    const struct gkm_keyfile_entry *first = dupset_find(dups, kf, secret);
    if (first != NULL) {
        char m[GKM_MASK_LEN];
        add_warning(kf, gkm_xasprintf("line %d: duplicate key %s dropped "
                                      "(first given on line %d)",
                                      line, gkm_mask_key(secret, m),
                                      first->line));
        free(secret);
        free(project);
        return 0;
    }
    if (kf->n == dups->kalloc) {
        dups->kalloc = dups->kalloc ? dups->kalloc * 2 : 16;
        kf->keys = gkm_xrealloc(kf->keys, dups->kalloc * sizeof(*kf->keys));
    }
    struct gkm_keyfile_entry *e = &kf->keys[kf->n++];
    e->secret = secret;
    e->project = project;
    e->line = line;
    if (kf->n * 2 > dups->cap)
        dupset_grow(dups, kf);
    else {
        size_t j = (size_t)hash_bytes(secret) & (dups->cap - 1);
        while (dups->slots[j] != 0)
            j = (j + 1) & (dups->cap - 1);
        dups->slots[j] = (uint32_t)kf->n;
    }
    return 0;
}

int gkm_keyfile_parse(const char *text, size_t len, struct gkm_keyfile *out,
                      char *err, size_t errlen)
{
    struct gkm_keyfile kf = {0};
    struct dupset dups = {0};
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
        text += 3;
        len -= 3;
    }
    const char *p = text, *end = text + len;
    int line = 0;
    while (p < end) {
        line++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        if (parse_line(p, (size_t)(eol - p), line, &kf, &dups, err,
                       errlen) != 0)
            goto out;
        p = nl ? nl + 1 : end;
    }
    *out = kf;
    memset(&kf, 0, sizeof(kf));
    rc = 0;
out:
    gkm_keyfile_free(&kf);
    free(dups.slots);
    return rc;
}

int gkm_keyfile_load(const char *path, struct gkm_keyfile *out, char *err,
                     size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    char msg[512];
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (gkm_read_file(path, KEYFILE_MAX, &text, &len) != 0) {
        if (errno == ENOENT)
            gkm_set_err(err, errlen, "key file %s not found", path);
        else if (errno == EFBIG)
            gkm_set_err(err, errlen, "key file %s is too large (max %u bytes)",
                    path, KEYFILE_MAX);
        else
            gkm_set_err(err, errlen, "cannot read key file %s: %s", path,
                    strerror(errno));
        goto out;
    }
    if (gkm_keyfile_parse(text, len, out, msg, sizeof(msg)) != 0) {
        gkm_set_err(err, errlen, "key file %s: %s", path, msg);
        goto out;
    }
    if (out->n == 0) {
        gkm_keyfile_free(out);
        gkm_set_err(err, errlen, "key file %s contains no keys", path);
        goto out;
    }
    rc = 0;
out:
    free(text);
    return rc;
}

void gkm_keyfile_free(struct gkm_keyfile *kf)
{
    if (kf == NULL)
        return;
    for (size_t i = 0; i < kf->n; i++) {
        free(kf->keys[i].secret);
        free(kf->keys[i].project);
    }
    for (size_t i = 0; i < kf->nwarnings; i++)
        free(kf->warnings[i]);
    free(kf->keys);
    free(kf->warnings);
    memset(kf, 0, sizeof(*kf));
}
