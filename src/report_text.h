/*
 * report_text.h - text helpers shared by the reports (report.c): an
 * uncapped output buffer, terminal-safe text, aligned tables, number and
 * time formatting, and jansson shorthands. Internal to the reports.
 *
 * Everything here aborts on out-of-memory (util.h policy): reports are
 * built from the pool's own, bounded data.
 */
#ifndef GKM_REPORT_TEXT_H
#define GKM_REPORT_TEXT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct gkm_buf;

/* Room for any formatted time, whatever struct tm holds. */
#define GKM_TIME_LEN 80

/* Output buffer: gkm_out_open initialises b without a cap; the put
 * functions append (a string, n bytes, printf output, n spaces). */
void gkm_out_open(struct gkm_buf *b);
void gkm_out_put(struct gkm_buf *b, const char *s, size_t n);
void gkm_out_str(struct gkm_buf *b, const char *s);
void gkm_out_fmt(struct gkm_buf *b, const char *fmt, ...) GKM_ATTR_PRINTF(2, 3);
void gkm_out_spaces(struct gkm_buf *b, size_t n);

/* A copy of s (NULL: "") safe for a terminal and for JSON: tabs and line
 * breaks become spaces, other control characters (C0, DEL, C1) and bytes
 * that are not well-formed UTF-8 become '?'. Caller frees. */
char *gkm_text_safe(const char *s);
/* Display width of safe text: its code points. */
size_t gkm_text_width(const char *s);
/* Cut safe text s in place to at most max (>= 3) code points, ending with
 * "..." when cut. */
void gkm_text_cut(char *s, size_t max);
/* v with thousands separators, "1,234,567", into out; returns out. */
const char *gkm_text_count(uint64_t v, char out[32]);
/* UTC time of ms since the epoch, "2026-11-27T08:45:00Z"; returns out. */
const char *gkm_text_iso(int64_t ms, char out[GKM_TIME_LEN]);
/* UTC time of day "08:00:00Z", or the gkm_text_iso form when ms is 24
 * hours or more after now; returns out. */
const char *gkm_text_until(int64_t ms, int64_t now, char out[GKM_TIME_LEN]);

/* A table of text cells rendered with each column as wide as its widest
 * cell, two spaces between columns, no trailing spaces. */
struct gkm_table {
    size_t ncols;
    const char *align; /* per column: 'L' or 'R'; borrowed */
    char **cells;      /* nrows * ncols, owned, safe text */
    size_t nrows, arows;
};
/* align: one 'L' or 'R' per column (borrowed; must outlive t). */
void gkm_table_init(struct gkm_table *t, const char *align);
/* Append a row of exactly t->ncols `const char *` cells (NULL: empty),
 * copied through gkm_text_safe. */
void gkm_table_add(struct gkm_table *t, ...);
/* Append the rendered table (one line per row) to out. */
void gkm_table_render(const struct gkm_table *t, struct gkm_buf *out);
void gkm_table_free(struct gkm_table *t);

/* jansson shorthands: gkm_jmust aborts on NULL (OOM) and returns v;
 * gkm_jcount is an integer clamped to the JSON range; gkm_jset sets o[k] =
 * v (stolen; k must be valid UTF-8) and aborts on failure; gkm_jtake dumps
 * v (stolen) indented by 2 with a final newline into a heap string. */
json_t *gkm_jmust(json_t *v);
json_t *gkm_jcount(uint64_t n);
void gkm_jset(json_t *o, const char *k, json_t *v);
char *gkm_jtake(json_t *v);

#endif
