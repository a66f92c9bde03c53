/*
 * cli.c - `keys check` and `usage` (see cli.h).
 *
 * keys check runs its own short event loop with the same upstream module
 * the proxy uses, GET /v1beta/models?pageSize=1 with each key (a call
 * that spends no generation quota), PROBE_PARALLEL at a time, and
 * classifies each answer with gerror.c.
 */
#include "cli.h"

#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "daytime.h"
#include "gerror.h"
#include "keyfile.h"
#include "keypool.h"
#include "log.h"
#include "report.h"
#include "state.h"
#include "upstream.h"
#include "util.h"

#define PROBE_PARALLEL 8
#define PROBE_BODY_CAP (64 * 1024)

struct gkm_pool *gkm_cli_pool(const struct gkm_keyfile *kf)
{
    struct gkm_pool_key_spec *specs = gkm_xcalloc(kf->n, sizeof(*specs));
    for (size_t i = 0; i < kf->n; i++) {
        specs[i].secret = kf->keys[i].secret;
        specs[i].project = kf->keys[i].project;
    }
    struct gkm_pool *pool = gkm_pool_new(specs, kf->n);
    free(specs);
    return pool;
}

/* Load the usage file without ever moving it: a corrupt file is reported,
 * not set aside (that is the running proxy's job). Returns 0 or -1. */
static int load_usage_readonly(const struct gkm_config *cfg,
                               struct gkm_pool *pool, char day[11])
{
    time_t now = gkm_now();
    gkm_daytime_day(now, day);
    char *data = NULL;
    size_t len = 0;
    if (gkm_read_file(cfg->usage_path, 64u << 20, &data, &len) != 0) {
        if (errno == ENOENT)
            return 0; /* nothing recorded yet */
        fprintf(stderr, "gemini-key-manager: cannot read %s: %s\n",
                cfg->usage_path, strerror(errno));
        return -1;
    }
    json_error_t jerr;
    json_t *o = json_loadb(data, len, 0, &jerr);
    free(data);
    if (!json_is_object(o)) {
        json_decref(o);
        fprintf(stderr, "gemini-key-manager: %s is not a valid usage file "
                        "(line %d: %s)\n",
                cfg->usage_path, jerr.line, jerr.text);
        return -1;
    }
    json_decref(o);
    char err[512] = "";
    enum gkm_state_load_result r = gkm_state_load(
        pool, cfg->usage_path, day, (int64_t)gkm_daytime_next_reset(now) * 1000,
        gkm_now_ms(), NULL, NULL, 0, err, sizeof(err));
    if (r == GKM_STATE_ERROR || r == GKM_STATE_CORRUPT) {
        fprintf(stderr, "gemini-key-manager: %s: %s\n", cfg->usage_path, err);
        return -1;
    }
    return 0;
}

int gkm_cli_usage(const struct gkm_config *cfg, const struct gkm_keyfile *kf)
{
    struct gkm_pool *pool = gkm_cli_pool(kf);
    char day[11];
    int rc = 2;
    if (load_usage_readonly(cfg, pool, day) != 0)
        goto out;
    const char *names[GKM_ERRC_COUNT];
    for (int i = 0; i < GKM_ERRC_COUNT; i++)
        names[i] = gkm_err_class_name((enum gkm_err_class)i);
    char *text = gkm_report_usage(pool, day, gkm_now_ms(), names,
                                  GKM_ERRC_COUNT, cfg->json);
    fputs(text, stdout);
    if (text[0] && text[strlen(text) - 1] != '\n')
        fputc('\n', stdout);
    free(text);
    rc = 0;
out:
    gkm_pool_free(pool);
    return rc;
}

/* ---- keys check ------------------------------------------------------- */

struct probe_run;

struct probe {
    struct probe_run *run;
    size_t idx;
    long status;
    struct gkm_buf body;
    int64_t t0;
    int done;
    char detail[320];
};

struct probe_run {
    struct event_base *base;
    struct gkm_upstream *up;
    const struct gkm_config *cfg;
    struct gkm_pool *pool;
    struct probe *probes;
    size_t n, next, active;
};

static void start_next(struct probe_run *run);

static enum gkm_data_rc on_hdr(void *arg, long status,
                               const struct gkm_header *h, size_t n)
{
    ((struct probe *)arg)->status = status;
    return GKM_DATA_OK;
}

static enum gkm_data_rc on_data(void *arg, const char *p, size_t n)
{
    struct probe *pr = arg;
    if (gkm_buf_append(&pr->body, p, n) != 0)
        return GKM_DATA_OK; /* the head is enough to classify */
    return GKM_DATA_OK;
}

static void on_done(void *arg, int ok, long status, int timed_out,
                    const char *errmsg)
{
    struct probe *pr = arg;
    struct probe_run *run = pr->run;
    pr->done = 1;
    pr->status = ok ? status : 0;
    pr->t0 = gkm_mono_ms() - pr->t0;
    if (!ok)
        snprintf(pr->detail, sizeof(pr->detail), "%s",
                 timed_out ? "timed out" : (errmsg ? errmsg : "no answer"));
    run->active--;
    start_next(run);
    if (run->active == 0 && run->next >= run->n)
        event_base_loopexit(run->base, NULL);
}

static const struct gkm_xfer_cbs probe_cbs = {on_hdr, on_data, on_done};

static void start_next(struct probe_run *run)
{
    while (run->active < PROBE_PARALLEL && run->next < run->n) {
        struct probe *pr = &run->probes[run->next++];
        char *url = gkm_xasprintf("%s/v1beta/models?pageSize=1",
                                  run->cfg->upstream);
        char *hdr = gkm_xasprintf("x-goog-api-key: %s",
                                  gkm_pool_secret(run->pool, pr->idx));
        const char *h[1] = {hdr};
        pr->t0 = gkm_mono_ms();
        struct gkm_xfer *x = gkm_xfer_start(run->up, "GET", url, h, 1, NULL,
                                            0, &probe_cbs, pr);
        memset(hdr, 0, strlen(hdr));
        free(hdr);
        free(url);
        if (x == NULL) {
            pr->done = 1;
            snprintf(pr->detail, sizeof(pr->detail), "could not start");
            continue;
        }
        run->active++;
    }
}

static const char *verdict_of(const struct probe *pr, struct gkm_err_info *e)
{
    if (pr->status >= 200 && pr->status < 300)
        return "valid";
    if (pr->status == 0)
        return "error";
    gkm_gerror_classify(pr->status, pr->body.data, pr->body.len, e);
    switch (e->cls) {
    case GKM_ERRC_KEY_INVALID: return "invalid";
    case GKM_ERRC_KEY_SUSPENDED: return "suspended";
    case GKM_ERRC_KEY_LEAKED: return "leaked";
    case GKM_ERRC_KEY_DENIED: return "denied";
    case GKM_ERRC_QUOTA_MINUTE:
    case GKM_ERRC_QUOTA_DAY:
    case GKM_ERRC_QUOTA_ZERO:
    case GKM_ERRC_RATE_UNKNOWN: return "quota";
    default: return "error";
    }
}

int gkm_cli_keys_check(const struct gkm_config *cfg,
                       const struct gkm_keyfile *kf, struct gkm_log *log)
{
    struct probe_run run;
    int rc = 2;
    memset(&run, 0, sizeof(run));
    run.cfg = cfg;
    run.pool = gkm_cli_pool(kf);
    run.n = gkm_pool_size(run.pool);
    char day[11];
    if (load_usage_readonly(cfg, run.pool, day) != 0)
        goto out;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        goto out;
    run.base = event_base_new();
    struct gkm_upstream_opts uo = {
        .connect_timeout_ms = (long)cfg->connect_timeout_ms,
        .idle_timeout_ms = 30000,
        .keepalive_ms = (long)cfg->upstream_keepalive_ms,
        .proxy = gkm_config_proxy(cfg), /* the same route as the proxy */
        .http2 = cfg->upstream_http2,
        .cainfo = cfg->upstream_ca,
    };
    if (run.base == NULL ||
        (run.up = gkm_upstream_new(run.base, &uo, log)) == NULL)
        goto out_curl;
    run.probes = gkm_xcalloc(run.n, sizeof(*run.probes));
    for (size_t i = 0; i < run.n; i++) {
        run.probes[i].run = &run;
        run.probes[i].idx = i;
        gkm_buf_init(&run.probes[i].body, PROBE_BODY_CAP);
    }
    start_next(&run);
    if (run.active > 0)
        event_base_dispatch(run.base);

    struct gkm_probe_result *res = gkm_xcalloc(run.n, sizeof(*res));
    struct gkm_err_info *errs = gkm_xcalloc(run.n, sizeof(*errs));
    int bad = 0;
    for (size_t i = 0; i < run.n; i++) {
        struct probe *pr = &run.probes[i];
        res[i].idx = i;
        res[i].http_status = pr->status;
        res[i].verdict = verdict_of(pr, &errs[i]);
        res[i].latency_ms = pr->done ? pr->t0 : -1;
        if (pr->detail[0] == '\0' && pr->status != 0 &&
            strcmp(res[i].verdict, "valid") != 0) {
            /* Google's text can quote the key: keep only our summary. */
            snprintf(pr->detail, sizeof(pr->detail), "%s", errs[i].summary);
        }
        res[i].detail = pr->detail[0] ? pr->detail : NULL;
        if (strcmp(res[i].verdict, "valid") != 0 &&
            strcmp(res[i].verdict, "quota") != 0)
            bad = 1;
    }
    char *text = gkm_report_probes(run.pool, res, run.n, cfg->json);
    fputs(text, stdout);
    if (text[0] && text[strlen(text) - 1] != '\n')
        fputc('\n', stdout);
    free(text);
    free(res);
    free(errs);
    rc = bad ? 1 : 0;
out_curl:
    for (size_t i = 0; run.probes && i < run.n; i++)
        gkm_buf_free(&run.probes[i].body);
    free(run.probes);
    gkm_upstream_free(run.up);
    if (run.base)
        event_base_free(run.base);
    curl_global_cleanup();
out:
    gkm_pool_free(run.pool);
    return rc;
}
