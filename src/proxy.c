/*
 * proxy.c - the proxy core: the life of one client request (struct
 * gkm_preq, see preq.h) across upstream attempts.
 *
 *   gkm_preq_new -> (surface fills the upstream request) -> gkm_preq_start
 *   -> start_attempt -> on_up_headers -> on_up_data* -> on_up_done
 *   -> [error the policy retries: bench, start_attempt again]
 *   -> surface reply -> finish
 *
 * Relay state per attempt (p->mode):
 *   HOLD     a non-2xx answer: the body (capped) is kept so the error can
 *            be classified before anything reaches the client; the key may
 *            be benched and the request retried on another key.
 *   COLLECT  a 2xx answer the surface wants whole (small bodies, or a
 *            translation that needs all of it).
 *   STREAM   a 2xx answer relayed as it arrives through surface->chunk and
 *            the key redactor. Backpressure: when the client's output
 *            buffer passes OUT_HIGH_WATER the upstream transfer is paused,
 *            and the server's "drained" callback (http.h) resumes it.
 * Nothing is retried once a byte went to the client.
 *
 * The client side (authentication, replies, streaming out, noticing a
 * client that leaves) is in client.c; both halves share preq.h.
 *
 * Ownership: the preq owns its transfer, redactor, buffers and surface
 * state, and is freed exactly once, by gkm_preq_finish.
 */
#include "preq.h"
#include "proxy.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "affinity.h"
#include "app.h"
#include "config.h"
#include "http.h"
#include "daytime.h"
#include "gerror.h"
#include "policy.h"
#include "log.h"
#include "redact.h"
#include "route.h"
#include "tap.h"
#include "upstream.h"
#include "util.h"

#define OUT_HIGH_WATER (256 * 1024)
#define HOLD_CAP (1024 * 1024)
#define TRIED_LOG_CAP 512

enum { MODE_NONE, MODE_HOLD, MODE_COLLECT, MODE_STREAM };

static void start_attempt(struct gkm_preq *p);

void gkm_preq_note(struct gkm_preq *p, const char *text)
{
    /* The log field is capped; past it the line is just shorter. */
    if (gkm_buf_append_str(&p->tried, text) != 0)
        return;
}

long gkm_preq_key(const struct gkm_preq *p)
{
    return p->key_idx;
}

void gkm_preq_account(struct gkm_preq *p, const struct gkm_tap_result *r,
                      int complete)
{
    struct gkm_app *app = p->app;
    if (p->key_idx < 0)
        return;
    size_t idx = (size_t)p->key_idx;
    if (r->saw_usage) {
        gkm_pool_add_tokens(app->pool, idx, p->model,
                            (uint64_t)(r->prompt_tokens > 0 ? r->prompt_tokens : 0),
                            (uint64_t)(r->output_tokens > 0 ? r->output_tokens : 0),
                            (uint64_t)(r->thinking_tokens > 0 ? r->thinking_tokens
                                                              : 0));
        char note[8 + 3 * GKM_LL_LEN];
        char *w = memcpy(note, " tokens=", 8);
        w = gkm_fmt_ll(w + 8, (long long)r->prompt_tokens);
        *w++ = '/';
        w = gkm_fmt_ll(w, (long long)r->output_tokens);
        *w++ = '/';
        (void)gkm_fmt_ll(w, (long long)r->thinking_tokens);
        gkm_preq_note(p, note);
    }
    if (r->saw_error) {
        gkm_pool_count_error(app->pool, idx, p->model, (unsigned)r->error->cls);
        gkm_warn(app->log, "[%s] error inside a 200 answer from key %s: %s",
                 p->idstr, gkm_pool_mask(app->pool, idx), r->error->summary);
        p->outcome = "error inside the answer";
    } else if (complete && !r->saw_finish && !r->framing_error) {
        gkm_pool_count_error(app->pool, idx, p->model,
                             (unsigned)GKM_ERRC_SERVER);
        gkm_warn(app->log, "[%s] answer from key %s ended without a "
                           "finishReason",
                 p->idstr, gkm_pool_mask(app->pool, idx));
        p->outcome = "ended without finishReason";
    }
}

/* ---- finishing -------------------------------------------------------- */

static void free_resp_headers(struct gkm_preq *p)
{
    for (size_t i = 0; i < p->nrh; i++)
        if (p->rh_own != NULL && p->rh_own[i])
            free(p->rh_values[i]);
    free(p->rh_own);
    free(p->rh_names); /* one block: both arrays and the strings */
    p->rh_names = p->rh_values = NULL;
    p->rh_own = NULL;
    p->nrh = 0;
}

void gkm_preq_set_resp_value(struct gkm_preq *p, size_t i, char *value)
{
    if (p->rh_own == NULL)
        p->rh_own = gkm_xcalloc(p->nrh + 1, 1);
    if (p->rh_own[i])
        free(p->rh_values[i]);
    p->rh_values[i] = value;
    p->rh_own[i] = 1;
}

void gkm_preq_finish(struct gkm_preq *p)
{
    struct gkm_app *app = p->app;
    gkm_client_unwatch(p);
    if (p->retry_ev)
        event_free(p->retry_ev);
    if (p->keepalive_ev)
        event_free(p->keepalive_ev);
    free(p->pin_name);
    if (p->xfer) {
        gkm_xfer_cancel(p->xfer);
        p->xfer = NULL;
    }
    int64_t ms = gkm_mono_ms() - p->t0;
    gkm_info(app->log,
             "[%s] %s %s model=%s keys=%s status=%ld attempts=%d bytes=%llu "
             "ms=%lld%s%s",
             p->idstr, p->method, p->path, p->model[0] ? p->model : "-",
             p->tried.len ? p->tried.data : "-", p->final_status, p->attempts,
             (unsigned long long)p->bytes_out, (long long)ms,
             p->outcome ? " note=" : "", p->outcome ? p->outcome : "");
    if (p->surf->cleanup)
        p->surf->cleanup(p);
    gkm_redactor_free(p->redactor);
    gkm_buf_free(&p->body_buf);
    gkm_buf_free(&p->out_buf);
    gkm_buf_free(&p->tried);
    free_resp_headers(p);
    for (size_t i = 0; i < p->nup_headers; i++)
        free(p->up_headers[i]);
    free(p->up_headers);
    free(p->up_path_query);
    free(p->up_body);
    free(p->denied);
    free(p->path);
    free(p->query);
    free(p);
    gkm_app_request_done(app);
}

void gkm_preq_fail(struct gkm_preq *p, int status, const char *gstatus,
                   const char *msg, long retry_after_s)
{
    p->surf->error(p, status, gstatus, msg, retry_after_s);
}

/* End a streamed reply: surface's final bytes, redactor tail, then either
 * the clean end or a cut. */
static void stream_end(struct gkm_preq *p, int ok)
{
    gkm_buf_reset(&p->out_buf);
    int clean = p->surf->end(p, ok, &p->out_buf);
    if (gkm_client_relay(p, p->out_buf.data, p->out_buf.len) == 0) {
        gkm_buf_reset(&p->body_buf);
        if (gkm_redactor_finish(p->redactor, &p->body_buf) == 0)
            (void)gkm_client_send(p, p->body_buf.data, p->body_buf.len);
    }
    if (!clean)
        gkm_client_cut(p); /* what was sent still reaches the client */
    else
        gkm_client_end_stream(p); /* p->req is NULL afterwards */
    gkm_preq_finish(p);
}

static int learn_cb(void *arg, const char *name, size_t len);

/* The body that goes upstream: the surface's rewrite, else the client's. */
static const char *up_body(const struct gkm_preq *p, size_t *len)
{
    *len = p->up_body ? p->up_bodylen : p->bodylen;
    return p->up_body ? p->up_body : p->body;
}

/* Every file/cache name the request names, path first, then body, to cb
 * (gkm_aff_scan's contract: a non-zero return stops and is returned). */
static int scan_names(struct gkm_preq *p, gkm_aff_scan_cb cb)
{
    int r = gkm_aff_scan(p->path, strlen(p->path), cb, p);
    size_t bl;
    const char *b = up_body(p, &bl);
    if (r == 0 && b != NULL)
        r = gkm_aff_scan(b, bl, cb, p);
    return r;
}

/* ---- upstream callbacks ------------------------------------------------ */

static enum gkm_data_rc on_up_headers(void *arg, long status,
                                      const struct gkm_header *hdrs, size_t n)
{
    struct gkm_preq *p = arg;
    struct gkm_app *app = p->app;
    const char *conn = NULL;
    long long clen = -1;
    p->status = status;
    for (size_t i = 0; i < n; i++) {
        if (gkm_strcaseeq(hdrs[i].name, "connection"))
            conn = hdrs[i].value;
        else if (gkm_strcaseeq(hdrs[i].name, "content-length"))
            clen = strtoll(hdrs[i].value, NULL, 10);
    }
    free_resp_headers(p);
    /* The kept headers in one allocation: the name and value pointer
     * arrays, then the strings. n is capped by the upstream module. */
    size_t keep = 0, bytes = 0;
    unsigned char dropst[256];
    unsigned char *drop = n < sizeof(dropst) ? dropst : gkm_xcalloc(n + 1, 1);
    for (size_t i = 0; i < n; i++) {
        drop[i] = (unsigned char)gkm_route_drop_response_header(hdrs[i].name,
                                                                conn);
        if (!drop[i]) {
            keep++;
            bytes += strlen(hdrs[i].name) + strlen(hdrs[i].value) + 2;
        }
    }
    size_t arrays = 2 * (keep + 1) * sizeof(char *);
    p->rh_names = gkm_xmalloc(arrays + bytes);
    p->rh_values = p->rh_names + keep + 1;
    char *w = (char *)(p->rh_values + keep + 1);
    for (size_t i = 0; i < n; i++) {
        if (drop[i])
            continue;
        size_t nl = strlen(hdrs[i].name) + 1, vl = strlen(hdrs[i].value) + 1;
        p->rh_names[p->nrh] = memcpy(w, hdrs[i].name, nl);
        w += nl;
        p->rh_values[p->nrh] = memcpy(w, hdrs[i].value, vl);
        w += vl;
        p->nrh++;
    }
    p->rh_names[p->nrh] = p->rh_values[p->nrh] = NULL;
    if (drop != dropst)
        free(drop);
    char st[2 + GKM_LL_LEN];
    st[0] = '(';
    char *e = gkm_fmt_ll(st + 1, status);
    e[0] = ')';
    e[1] = '\0';
    gkm_preq_note(p, st);
    if (status != 429 && !p->no_key)
        gkm_pool_count(app->pool, (size_t)p->key_idx, p->model);
    if (status >= 200 && status < 300)
        gkm_policy_state_forget(app->pstate, (size_t)p->key_idx, p->model);
    if (status >= 200 && status < 300 && p->ndenied > 0 && p->pin_idx < 0) {
        /* Found by trying: every file and cache this request names is
         * reachable with this key. */
        (void)scan_names(p, learn_cb);
    }
    if (status < 200 || status >= 300) {
        p->mode = MODE_HOLD;
        return GKM_DATA_OK;
    }
    if (p->surf->begin(p, status, clen) == GKM_RELAY_STREAM) {
        p->mode = MODE_STREAM;
        if (!p->reply_started)
            gkm_preq_stream_begin(p, status, NULL);
    } else {
        p->mode = MODE_COLLECT;
        gkm_buf_free(&p->body_buf);
        gkm_buf_init(&p->body_buf, p->collect_cap);
    }
    return GKM_DATA_OK;
}

static enum gkm_data_rc on_up_data(void *arg, const char *data, size_t n)
{
    struct gkm_preq *p = arg;
    switch (p->mode) {
    case MODE_HOLD:
        /* Past the cap the tail is dropped: the head is what classifies. */
        if (gkm_buf_append(&p->body_buf, data, n) != 0)
            return GKM_DATA_OK;
        return GKM_DATA_OK;
    case MODE_COLLECT:
        if (gkm_buf_append(&p->body_buf, data, n) != 0) {
            p->outcome = "upstream response larger than the proxy's cap";
            return GKM_DATA_ABORT;
        }
        return GKM_DATA_OK;
    case MODE_STREAM:
        if (gkm_client_backlog(p) > OUT_HIGH_WATER) {
            p->paused = 1;
            return GKM_DATA_PAUSE;
        }
        gkm_buf_reset(&p->out_buf);
        if (p->surf->chunk(p, data, n, &p->out_buf) != 0)
            return GKM_DATA_ABORT;
        return gkm_client_relay(p, p->out_buf.data, p->out_buf.len) == 0
                   ? GKM_DATA_OK
                   : GKM_DATA_ABORT;
    }
    return GKM_DATA_ABORT;
}

static void on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    struct gkm_preq *p = arg;
    start_attempt(p);
}

/* Run start_attempt after delay_ms (0: on the next loop turn). */
static void retry_later(struct gkm_preq *p, int64_t delay_ms)
{
    if (p->retry_ev == NULL)
        p->retry_ev = evtimer_new(p->app->base, on_retry_timer, p);
    struct timeval tv = {(time_t)(delay_ms / 1000),
                         (suseconds_t)((delay_ms % 1000) * 1000)};
    if (p->retry_ev == NULL || evtimer_add(p->retry_ev, &tv) != 0)
        start_attempt(p);
}

static const char *scope_name(enum gkm_bench_scope s)
{
    switch (s) {
    case GKM_SCOPE_PAIR: return "key+model";
    case GKM_SCOPE_PROJECT: return "project+model";
    case GKM_SCOPE_KEY: return "key (all models)";
    default: return "none";
    }
}

/* An upstream failure before any byte reached the client: an error answer
 * (status, held body) or no answer at all (status 0). Classify it, bench
 * what the policy says, and retry on another key when the policy and the
 * attempt budget allow. Returns 1 if the request goes on (a retry is
 * started or scheduled), 0 to hand the answer to the client. */
static void start_attempt(struct gkm_preq *p);

/* Keys a and b share files (the same key, or one project=NAME). */
static int same_project(const struct gkm_pool *pool, size_t a, size_t b)
{
    size_t n;
    const uint32_t *m = gkm_pool_project_keys(pool, a, &n);
    for (size_t i = 0; i < n; i++)
        if (m[i] == b)
            return 1;
    return 0;
}

/* The next key in rotation, available for the model, whose project has
 * not denied this request's file or cache yet; -1 if none. */
static long pick_unrelated(struct gkm_preq *p, int64_t now)
{
    struct gkm_pool *pool = p->app->pool;
    size_t n = gkm_pool_size(pool);
    for (size_t tries = 0; tries < n; tries++) {
        struct gkm_pick pk = gkm_pool_pick(pool, p->model, now);
        if (pk.idx < 0)
            return -1;
        int related = 0;
        for (size_t i = 0; i < p->ndenied && !related; i++)
            related = same_project(pool, (size_t)pk.idx, p->denied[i]);
        if (!related)
            return pk.idx;
    }
    return -1;
}

static int learn_cb(void *arg, const char *name, size_t len)
{
    struct gkm_preq *p = arg;
    gkm_aff_put(p->app->aff, name, len, (size_t)p->key_idx,
                gkm_now_ms() + GKM_AFF_LEARNED_TTL_MS);
    gkm_info(p->app->log, "[%s] %.*s belongs to key %s (found by trying)",
             p->idstr, (int)len, name,
             gkm_pool_mask(p->app->pool, (size_t)p->key_idx));
    return 0;
}

static int handle_failure(struct gkm_preq *p, long status, const char *body,
                          size_t len)
{
    struct gkm_app *app = p->app;
    size_t idx = (size_t)p->key_idx;
    const char *mask = gkm_pool_mask(app->pool, idx);
    struct gkm_err_info e;
    gkm_gerror_classify(status, body, len, &e);
    if (e.cls == GKM_ERRC_OK)
        return 0;
    gkm_pool_count_error(app->pool, idx, p->model, (unsigned)e.cls);
    if (e.cls == GKM_ERRC_RESOURCE_DENIED && p->pin_idx >= 0 && !p->no_key) {
        /* The remembered owner was wrong (or the file was re-created):
         * forget it and look for the owner as for an unknown one. */
        gkm_aff_del(app->aff, p->pin_name, strlen(p->pin_name));
        gkm_info(app->log, "[%s] %s does not belong to key %s after all",
                 p->idstr, p->pin_name, mask);
        p->pin_idx = -1;
    }
    if (e.cls == GKM_ERRC_RESOURCE_DENIED && p->pin_idx < 0 &&
        p->attempts - p->attempts_base < app->cfg->max_attempts) {
        /* A file or cache the proxy does not know the owner of (created
         * before a restart, elsewhere, or directly at Google): try a key
         * of another project; the one that succeeds is remembered. */
        p->denied = gkm_xrealloc(p->denied, (p->ndenied + 1) * sizeof(size_t));
        p->denied[p->ndenied++] = idx;
        long k = pick_unrelated(p, gkm_now_ms());
        gkm_info(app->log, "[%s] key %s: %s; %s", p->idstr, mask, e.summary,
                 k >= 0 ? "trying a key of another project"
                        : "no key of another project left");
        if (k >= 0) {
            p->next_idx = k;
            start_attempt(p);
            return 1;
        }
        return 0;
    }
    int64_t now = gkm_now_ms();
    int64_t next_reset = (int64_t)app->next_reset * 1000;
    struct gkm_action a = gkm_policy_decide(&app->policy, app->pstate, &e, idx,
                                            p->model, now, next_reset);
    gkm_policy_apply(&a, app->pool, idx, p->model);
    if (a.scope != GKM_SCOPE_NONE) {
        char until[64];
        if (a.bench_until_ms == GKM_FOREVER) {
            snprintf(until, sizeof(until), "until the keys are reloaded");
        } else {
            time_t t = (time_t)(a.bench_until_ms / 1000);
            struct tm tm;
            gmtime_r(&t, &tm);
            snprintf(until, sizeof(until), "until %02d:%02d:%02dZ (%llds)",
                     tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (long long)((a.bench_until_ms - now + 999) / 1000));
        }
        gkm_warn(app->log, "[%s] key %s: %s; benched %s for %s %s", p->idstr,
                 mask, e.summary, scope_name(a.scope),
                 p->model[0] ? p->model : "(no model)", until);
    } else {
        gkm_info(app->log, "[%s] key %s: %s", p->idstr, mask, e.summary);
    }
    if (a.kind == GKM_ACT_PASS)
        return 0;
    if (p->attempts - p->attempts_base >= app->cfg->max_attempts) {
        p->outcome = "attempts exhausted";
        return 0;
    }
    if (a.kind == GKM_ACT_RETRY_OTHER_KEY) {
        start_attempt(p);
        return 1;
    }
    /* RETRY_BACKOFF: overload or no answer; not the key's fault. */
    p->server_retries++;
    double jitter = (double)((uint64_t)gkm_mono_ms() * 2654435761u % 1000) /
                    1000.0;
    int64_t delay = gkm_policy_backoff_ms(&app->policy,
                                          (unsigned)p->server_retries, jitter);
    if (delay < 0)
        return 0;
    gkm_debug(app->log, "[%s] retrying in %lld ms", p->idstr,
              (long long)delay);
    retry_later(p, delay);
    return 1;
}

static void on_up_done(void *arg, int ok, long status, int timed_out,
                       const char *errmsg)
{
    struct gkm_preq *p = arg;
    struct gkm_app *app = p->app;
    p->xfer = NULL;
    if (p->req == NULL) { /* defensive: client_gone cancels first */
        gkm_preq_finish(p);
        return;
    }
    const char *mask = gkm_pool_mask(app->pool, (size_t)p->key_idx);
    if (!ok) {
        if (p->reply_started) {
            gkm_warn(app->log, "[%s] upstream broke mid-response (key %s): %s",
                     p->idstr, mask, errmsg ? errmsg : "?");
            if (p->outcome == NULL)
                p->outcome = "upstream broke mid-response";
            stream_end(p, 0);
            return;
        }
        gkm_warn(app->log, "[%s] upstream request failed (key %s): %s",
                 p->idstr, mask, errmsg ? errmsg : "?");
        if (handle_failure(p, timed_out ? 504 : 0, NULL, 0))
            return;
        if (p->outcome == NULL)
            p->outcome = timed_out ? "upstream timeout" : "upstream error";
        gkm_preq_fail(p, timed_out ? 504 : 502,
                      timed_out ? "DEADLINE_EXCEEDED" : "UNAVAILABLE",
                      timed_out ? "Upstream request timed out."
                                : "Upstream request failed (connection error).",
                      0);
        return;
    }
    switch (p->mode) {
    case MODE_STREAM:
        stream_end(p, 1);
        return;
    case MODE_COLLECT:
        p->surf->body(p, status, p->body_buf.data ? p->body_buf.data : "",
                      p->body_buf.len);
        return;
    default:
        if (handle_failure(p, status, p->body_buf.data ? p->body_buf.data : "",
                           p->body_buf.len))
            return;
        p->surf->upstream_error(p, status,
                                p->body_buf.data ? p->body_buf.data : "",
                                p->body_buf.len);
        return;
    }
}

static const struct gkm_xfer_cbs xfer_cbs = {on_up_headers, on_up_data,
                                             on_up_done};

static void reply_no_key(struct gkm_preq *p, const struct gkm_pick *pk)
{
    struct gkm_app *app = p->app;
    int64_t now = gkm_now_ms();
    long ra = pk->retry_at_ms == GKM_FOREVER
                  ? 0 /* no Retry-After: nothing comes back by itself */
                  : gkm_policy_retry_after_s(pk->retry_at_ms, now);
    const char *model = p->model[0] ? p->model : "(no model)";
    size_t nkeys = gkm_pool_size(app->pool);
    char msg[1024];
    int daily = pk->reason == GKM_BENCH_QUOTA_DAY;
    int shortwait = pk->reason == GKM_BENCH_QUOTA_MINUTE ||
                    pk->reason == GKM_BENCH_RATE_LIMITED;
    if (p->pin_idx >= 0) {
        /* Only the owner's project can serve it: say so, not "all keys". */
        const char *proj = gkm_pool_project(app->pool, (size_t)p->pin_idx);
        if (strcmp(proj, gkm_pool_mask(app->pool, (size_t)p->pin_idx)) == 0)
            proj = NULL; /* a key without project=: its own project */
        char when[64] = "";
        if (pk->retry_at_ms != GKM_FOREVER)
            snprintf(when, sizeof(when), "; retry in %ld s", ra);
        snprintf(msg, sizeof(msg),
                 "%s belongs to API key %s%s%s%s, which cannot be used for "
                 "model '%s' now (%s)%s. Another project's key cannot "
                 "access it.",
                 p->pin_name, gkm_pool_mask(app->pool, (size_t)p->pin_idx),
                 proj ? " (project " : "", proj ? proj : "", proj ? ")" : "",
                 model, gkm_bench_reason_name(pk->reason), when);
    } else if (pk->retry_at_ms == GKM_FOREVER) {
        snprintf(msg, sizeof(msg),
                 "No usable API key for model '%s': all %zu keys are "
                 "disabled or have no quota for it (see the proxy log).",
                 model, nkeys);
    } else if (daily) {
        time_t at = (time_t)(pk->retry_at_ms / 1000);
        struct tm tm;
        gmtime_r(&at, &tm);
        snprintf(msg, sizeof(msg),
                 "All %zu API keys have reached their daily quota for model "
                 "'%s'. Quota resets at %04d-%02d-%02dT%02d:%02d:%02dZ "
                 "(midnight %s), in %ld s.",
                 nkeys, model, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec, app->cfg->reset_tz, ra);
    } else {
        snprintf(msg, sizeof(msg),
                 "All %zu API keys are rate limited for model '%s' "
                 "(%s); retry in %ld s.",
                 nkeys, model, gkm_bench_reason_name(pk->reason), ra);
    }
    p->outcome = "no key available";
    gkm_preq_fail(p, shortwait ? 429 : 503,
                  shortwait ? "RESOURCE_EXHAUSTED" : "UNAVAILABLE", msg, ra);
}

/* Key k for a pinned request: available now, or note when it will be. */
static int pinned_ok(struct gkm_pool *pool, size_t k, const char *model,
                     int64_t now, struct gkm_pick *pk)
{
    int64_t until = GKM_FOREVER;
    enum gkm_bench_reason r = gkm_pool_state(pool, k, model, now, &until);
    if (r == GKM_BENCH_NONE) {
        pk->idx = (long)k;
        return 1;
    }
    if (until < pk->retry_at_ms) {
        pk->retry_at_ms = until;
        pk->reason = r;
    }
    return 0;
}

/* The owner of the pinned resource, else another key of its project (they
 * share files and caches); never a key of another project. */
static struct gkm_pick pick_pinned(struct gkm_preq *p, int64_t now)
{
    struct gkm_pool *pool = p->app->pool;
    struct gkm_pick pk = {-1, GKM_FOREVER, GKM_BENCH_NONE};
    size_t owner = (size_t)p->pin_idx;
    if (p->no_key) { /* no key is sent: its state does not matter */
        pk.idx = (long)owner;
        return pk;
    }
    if (pinned_ok(pool, owner, p->model, now, &pk))
        return pk;
    size_t n;
    const uint32_t *m = gkm_pool_project_keys(pool, owner, &n);
    for (size_t i = 0; i < n; i++)
        if (m[i] != owner && pinned_ok(pool, m[i], p->model, now, &pk))
            return pk;
    return pk;
}

/* a then b in buf if they fit, else in a new heap string. */
static char *join_into(char *buf, size_t size, const char *a, const char *b)
{
    size_t al = strlen(a), bl = strlen(b);
    if (al + bl >= size)
        return gkm_xjoin3(a, b, "");
    memcpy(buf, a, al);
    memcpy(buf + al, b, bl + 1);
    return buf;
}

static void start_attempt(struct gkm_preq *p)
{
    struct gkm_app *app = p->app;
    int64_t now = gkm_now_ms();
    struct gkm_pick pk = {p->next_idx, 0, GKM_BENCH_NONE};
    if (p->next_idx >= 0) { /* chosen by pick_unrelated() */
        p->next_idx = -1;
    } else if (p->pin_idx >= 0) {
        pk = pick_pinned(p, now);
    } else {
        /* After a project refused the request's file, retries (a 429 or
         * 5xx elsewhere) keep away from the projects that refused. */
        long k = p->ndenied > 0 ? pick_unrelated(p, now) : -1;
        if (k >= 0)
            pk.idx = k;
        else
            pk = gkm_pool_pick(app->pool, p->model, now);
    }
    if (pk.idx < 0) {
        /* Only short cooldowns in the way: wait for the first to end, if
         * that is within --max-wait. */
        int64_t wait = pk.retry_at_ms == GKM_FOREVER ? -1
                                                     : pk.retry_at_ms - now;
        if (wait >= 0 && p->waited_ms + wait <= (int64_t)app->cfg->max_wait_ms &&
            pk.reason != GKM_BENCH_QUOTA_DAY) {
            p->waited_ms += wait + 1;
            gkm_debug(app->log, "[%s] every key is cooling down; waiting %lld "
                                "ms",
                      p->idstr, (long long)wait + 1);
            retry_later(p, wait + 1);
            return;
        }
        reply_no_key(p, &pk);
        return;
    }
    p->key_idx = pk.idx;
    p->attempts++;
    p->mode = MODE_NONE;
    p->status = 0;
    free_resp_headers(p);
    gkm_buf_free(&p->body_buf);
    gkm_buf_init(&p->body_buf, HOLD_CAP);
    gkm_redactor_free(p->redactor);
    const char *secret = gkm_pool_secret(app->pool, (size_t)pk.idx);
    p->redactor = gkm_redactor_new(secret);
    if (p->tried.len > 0)
        gkm_preq_note(p, ",");
    gkm_preq_note(p, gkm_pool_mask(app->pool, (size_t)pk.idx));

    /* Short-lived strings on the stack when they fit (they nearly always
     * do); the upstream module copies what it keeps. */
    char ubuf[1024], kbuf[512];
    const char *hvst[32];
    char *url = join_into(ubuf, sizeof(ubuf), app->cfg->upstream,
                          p->up_path_query);
    char *keyhdr = join_into(kbuf, sizeof(kbuf),
                             p->cred == GKM_CRED_BEARER
                                 ? "Authorization: Bearer "
                                 : "x-goog-api-key: ",
                             secret);
    const char **hv = p->nup_headers < GKM_ARRAY_LEN(hvst)
                          ? hvst
                          : gkm_xcalloc(p->nup_headers + 1, sizeof(char *));
    for (size_t i = 0; i < p->nup_headers; i++)
        hv[i] = p->up_headers[i];
    hv[p->nup_headers] = keyhdr; /* left out below for p->no_key */
    gkm_debug(app->log, "[%s] attempt %d: %s %s with key %s", p->idstr,
              p->attempts, p->up_method, p->up_path_query,
              gkm_pool_mask(app->pool, (size_t)pk.idx));
    size_t bodylen;
    const char *body = up_body(p, &bodylen);
    p->xfer = gkm_xfer_start(app->up, p->up_method, url, hv,
                             p->nup_headers + (p->no_key ? 0 : 1), body,
                             bodylen, &xfer_cbs, p);
    /* Wipe our copy of the key header (the upstream module keeps its own,
     * wiped when the transfer ends). */
    explicit_bzero(keyhdr, strlen(keyhdr));
    if (keyhdr != kbuf)
        free(keyhdr);
    if (hv != hvst)
        free(hv);
    if (url != ubuf)
        free(url);
    if (p->xfer == NULL) {
        p->outcome = "cannot start upstream transfer";
        gkm_preq_fail(p, 502, "UNAVAILABLE",
                      "The proxy could not start the upstream request.", 0);
    }
}

/* ---- entry ------------------------------------------------------------ */

/* "r" and id in lower-case hex, at least 6 digits (snprintf's "r%06llx",
 * without its cost on every request). */
static void format_id(char *out, size_t size, uint64_t id)
{
    char tmp[20];
    size_t n = 0;
    if (size < 2)
        return;
    do {
        tmp[n++] = "0123456789abcdef"[id & 15];
        id >>= 4;
    } while (id != 0 || n < 6);
    size_t o = 0;
    out[o++] = 'r';
    while (n > 0 && o + 1 < size)
        out[o++] = tmp[--n];
    out[o] = '\0';
}

struct gkm_preq *gkm_preq_new(struct gkm_app *app, struct gkm_hreq *req,
                              const struct gkm_surface *surf)
{
    struct gkm_preq *p = gkm_xcalloc(1, sizeof(*p));
    p->app = app;
    p->surf = surf;
    p->req = req;
    p->t0 = gkm_mono_ms();
    p->id = ++app->next_request_id;
    format_id(p->idstr, sizeof(p->idstr), p->id);
    p->method = gkm_hreq_method(req);
    p->up_method = p->method;
    p->key_idx = -1;
    p->pin_idx = -1;
    p->next_idx = -1;
    p->collect_cap = HOLD_CAP;
    app->inflight++;
    gkm_buf_init(&p->tried, TRIED_LOG_CAP);
    gkm_buf_init(&p->body_buf, HOLD_CAP);
    gkm_buf_init(&p->out_buf, SIZE_MAX / 2);

    char *q = NULL;
    if (gkm_route_split(gkm_hreq_uri(req), &p->path, &q) != 0) {
        p->path = gkm_xstrdup("(invalid)");
        p->query = gkm_xstrdup("");
        p->outcome = "bad path";
        gkm_preq_fail(p, 400, "INVALID_ARGUMENT", "Invalid request path.", 0);
        return NULL;
    }
    p->query = gkm_route_strip_key(q, NULL);
    free(q);
    p->body = gkm_hreq_body(req, &p->bodylen);
    if (p->bodylen == 0)
        p->body = NULL;
    return p;
}

void gkm_preq_restart(struct gkm_preq *p)
{
    p->attempts_base = p->attempts;
    start_attempt(p);
}

static int pin_cb(void *arg, const char *name, size_t len)
{
    struct gkm_preq *p = arg;
    long k = gkm_aff_get(p->app->aff, name, len, gkm_now_ms());
    if (k < 0 || (size_t)k >= gkm_pool_size(p->app->pool))
        return 0;
    p->pin_idx = k;
    free(p->pin_name);
    p->pin_name = gkm_xstrndup(name, len);
    return 1;
}

void gkm_preq_start(struct gkm_preq *p)
{
    /* A request naming a file or cached content the proxy saw created goes
     * to the key (project) that owns it: the path first, then the body. */
    if (p->pin_idx < 0 && gkm_aff_count(p->app->aff) > 0)
        (void)scan_names(p, pin_cb);
    if (p->pin_idx >= 0) {
        char m[GKM_MASK_LEN];
        int up = strncmp(p->pin_name, "upload/", 7) == 0;
        gkm_debug(p->app->log, "[%s] %s%s belongs to key %s", p->idstr,
                  up ? "upload " : p->pin_name,
                  up ? gkm_mask_key(p->pin_name + 7, m) : "",
                  gkm_pool_mask(p->app->pool, (size_t)p->pin_idx));
    }
    gkm_client_watch(p);
    start_attempt(p);
}
