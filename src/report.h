/*
 * report.h - what `gemini-key-manager usage` and `keys check` print: plain
 * tables a person reads at a glance, or JSON for scripts.
 *
 * Pure formatting: no I/O, no clock (now_ms is passed in). Output is a
 * fresh heap string ending with a newline; the caller prints and frees it.
 *
 * Keys only ever appear masked ("...abcd", gkm_pool_mask) with their index
 * in the pool; a real key is never written, and probe details are passed
 * through the redactor (redact.h) with the key's own secret. Every text
 * taken from outside (model names, project names, details) is made safe
 * for a terminal: control characters and invalid UTF-8 become '?'
 * (line breaks and tabs a space). Column widths follow the content; no
 * colours. Numbers in tables have thousands separators ("1,234,567"),
 * times are UTC ("08:00:00Z", with the date when 24 hours or more away).
 *
 * JSON objects keep a fixed key order and every documented key is always
 * present (null when not applicable).
 */
#ifndef GKM_REPORT_H
#define GKM_REPORT_H

#include <stddef.h>
#include <stdint.h>

struct gkm_pool;

/* Today's usage of every key of pool at now_ms, for quota day `day`
 * ("YYYY-MM-DD"; may be NULL). err_names[i] names error class i (the
 * errors[] index of struct gkm_model_stats); classes without a name show as
 * "class_<i>". err_names may be NULL when n_err_names is 0.
 *
 * Text (json == 0): a title line, a blank line, then a table
 *   KEY PROJECT MODEL REQUESTS PROMPT OUTPUT THINKING ERRORS STATE
 * with, per key in pool order, a row for the whole key (MODEL "all
 * models", STATE its key-wide state) followed by one row per model used
 * today or benched now (model "" shown as "(other)": requests that named no
 * model); ERRORS is the total with the three largest classes, "3
 * (quota_minute 2, server 1)"; STATE is "available", "benched until
 * HH:MM:SSZ (reason)" or "disabled (reason)" (benched until reload). A
 * final TOTAL row sums the keys, its STATE counting keys by state.
 *
 * JSON (json != 0):
 *   {"day": "2026-11-27" | null, "now_ms": n, "now": "<ISO 8601 UTC>",
 *    "keys": [{"index", "key" (masked), "project", "requests",
 *              "prompt_tokens", "output_tokens", "thinking_tokens",
 *              "errors": {"total": n, "by_class": {name: n}},
 *              "state": {"status": "available" | "benched" | "disabled",
 *                        "reason": name | null, "until_ms": n | null,
 *                        "until": "<ISO 8601 UTC>" | null},
 *              "models": [{"model", the same counters, "errors",
 *                          "state"}]}],
 *    "totals": {"keys", "available", "benched", "disabled", "requests",
 *               "prompt_tokens", "output_tokens", "thinking_tokens",
 *               "errors"}}
 * by_class lists non-zero classes only, in class order. Never NULL (aborts
 * on OOM). */
char *gkm_report_usage(const struct gkm_pool *pool, const char *day,
                       int64_t now_ms, const char *const *err_names,
                       size_t n_err_names, int json);

/* The outcome of probing one key (plain data; strings borrowed). */
struct gkm_probe_result {
    size_t idx;        /* key index in the pool */
    long http_status;  /* 0 when no HTTP response (connection error) */
    const char *verdict; /* "valid", "invalid", "suspended", "leaked",
                            "denied", "quota", "error" (NULL: "error") */
    const char *detail;  /* short explanation, or NULL */
    int64_t latency_ms;  /* < 0 when unknown */
};

/* The `keys check` report for n results, in the order given.
 *
 * Text: a table KEY PROJECT VERDICT HTTP LATENCY DETAIL ("-" for no HTTP
 * status or unknown latency; details longer than 120 characters cut with
 * "..."), a blank line and a summary, "5 keys: 3 valid, 1 invalid, 1
 * suspended" (known verdicts in the order above, then others in order of
 * appearance; zero counts left out).
 *
 * JSON: {"keys": [{"index", "key" (masked), "project", "verdict",
 *                  "http_status": n | null, "latency_ms": n | null,
 *                  "detail": s | null}],
 *        "summary": {"total": n, "valid": n, "invalid": n, "suspended": n,
 *                    "leaked": n, "denied": n, "quota": n, "error": n,
 *                    <other verdicts>: n}}
 * Results with idx outside the pool show "?" as key and project (null in
 * JSON). Never NULL (aborts on OOM). */
char *gkm_report_probes(const struct gkm_pool *pool,
                        const struct gkm_probe_result *r, size_t n, int json);

#endif
