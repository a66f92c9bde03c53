/*
 * oai_fixtures.h - helpers shared by the OpenAI translation tests:
 * fixture discovery, JSON loading and structural comparison with a
 * readable diff on failure, and splitting an SSE output into events.
 *
 * Fixture-driven tests are registered dynamically: one cmocka test per
 * fixture file, whose initial state is the fixture's path stem.
 */
#ifndef GKM_TEST_OAI_FIXTURES_H
#define GKM_TEST_OAI_FIXTURES_H

#include <dirent.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util.h"

#ifndef GKM_FIXTURES
#error "GKM_FIXTURES must name the tests/fixtures directory"
#endif

#define FIX_DIR GKM_FIXTURES "/openai"

/* A list of fixture stems ("<dir>/<name>") found in a directory. */
struct fix_list {
    char **stems;
    size_t n;
};

static inline int fix_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Collect "<dir>/<name>" for every "<name><suffix>" in dir, sorted. */
static inline struct fix_list fix_find(const char *dir, const char *suffix)
{
    struct fix_list l = {NULL, 0};
    size_t cap = 0, sl = strlen(suffix);
    DIR *d = opendir(dir);
    struct dirent *e;
    if (d == NULL)
        return l;
    while ((e = readdir(d)) != NULL) {
        size_t nl = strlen(e->d_name);
        if (nl <= sl || strcmp(e->d_name + nl - sl, suffix) != 0)
            continue;
        if (l.n == cap) {
            cap = cap ? cap * 2 : 32;
            l.stems = gkm_xrealloc(l.stems, cap * sizeof(*l.stems));
        }
        l.stems[l.n++] = gkm_xasprintf("%s/%.*s", dir, (int)(nl - sl),
                                       e->d_name);
    }
    closedir(d);
    if (l.n)
        qsort(l.stems, l.n, sizeof(*l.stems), fix_cmp);
    return l;
}

static inline void fix_free(struct fix_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->stems[i]);
    free(l->stems);
    l->stems = NULL;
    l->n = 0;
}

/* Read stem+suffix; NULL if it does not exist. */
static inline char *fix_read(const char *stem, const char *suffix, size_t *len)
{
    char *path = gkm_xasprintf("%s%s", stem, suffix);
    char *data = NULL;
    size_t n = 0;
    if (gkm_read_file(path, (size_t)64 << 20, &data, &n) != 0)
        data = NULL;
    free(path);
    if (len)
        *len = n;
    return data;
}

/* Load stem+suffix as JSON; NULL if absent (fails the test if invalid). */
static inline json_t *fix_json(const char *stem, const char *suffix)
{
    size_t n;
    char *data = fix_read(stem, suffix, &n);
    json_error_t je;
    if (data == NULL)
        return NULL;
    json_t *j = json_loadb(data, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    free(data);
    if (j == NULL)
        fail_msg("%s%s: invalid JSON at line %d: %s", stem, suffix, je.line,
                 je.text);
    return j;
}

/* Assert two JSON values are structurally equal, printing both if not. */
static inline void assert_json_eq(const json_t *actual, const json_t *expected,
                           const char *what)
{
    if (json_equal((json_t *)actual, (json_t *)expected))
        return;
    char *a = actual ? json_dumps(actual, JSON_INDENT(2) | JSON_ENCODE_ANY)
                     : gkm_xstrdup("(null)");
    char *e = expected ? json_dumps(expected, JSON_INDENT(2) | JSON_ENCODE_ANY)
                       : gkm_xstrdup("(null)");
    print_error("%s: JSON mismatch\n--- expected\n%s\n--- actual\n%s\n", what,
                e, a);
    free(a);
    free(e);
    fail();
}

/* Split an OpenAI SSE output ("data: X\n\n"...) into a JSON array: each
 * payload parsed, "[DONE]" kept as the string "[DONE]". Fails the test if
 * the bytes are not exactly that framing. */
static inline json_t *sse_events(const char *p, size_t len)
{
    json_t *arr = json_array();
    size_t i = 0;
    while (i < len) {
        if (len - i < 6 || memcmp(p + i, "data: ", 6) != 0)
            fail_msg("SSE output: expected 'data: ' at offset %zu", i);
        const char *s = p + i + 6;
        const char *end = strstr(s, "\n\n");
        if (end == NULL || (size_t)(end - p) > len)
            fail_msg("SSE output: unterminated event at offset %zu", i);
        size_t n = (size_t)(end - s);
        if (memchr(s, '\n', n) != NULL)
            fail_msg("SSE output: multi-line event at offset %zu", i);
        if (n == 6 && memcmp(s, "[DONE]", 6) == 0) {
            json_array_append_new(arr, json_string("[DONE]"));
        } else {
            json_t *j = json_loadb(s, n, 0, NULL);
            if (j == NULL)
                fail_msg("SSE output: invalid JSON at offset %zu", i);
            json_array_append_new(arr, j);
        }
        i = (size_t)(end - p) + 2;
    }
    return arr;
}

/* Run one dynamically built group: one test per stem, each calling fn with
 * *state = the stem. Returns the number of failures. */
static inline int fix_run_group(const char *name, struct fix_list *l,
                         void (*fn)(void **state))
{
    if (l->n == 0) {
        print_error("%s: no fixtures found\n", name);
        return 1;
    }
    struct CMUnitTest *t = gkm_xcalloc(l->n, sizeof(*t));
    for (size_t i = 0; i < l->n; i++) {
        const char *slash = strrchr(l->stems[i], '/');
        t[i].name = slash ? slash + 1 : l->stems[i];
        t[i].test_func = fn;
        t[i].initial_state = l->stems[i];
    }
    int r = _cmocka_run_group_tests(name, t, l->n, NULL, NULL);
    free(t);
    return r;
}

#endif
