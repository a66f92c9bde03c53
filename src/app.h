/*
 * app.h - the process context passed down to every event-loop module.
 *
 * There is no global state: main() builds one struct gkm_app and hands a
 * pointer to the server, the proxy and the state keeper. It owns everything
 * it points to.
 */
#ifndef GKM_APP_H
#define GKM_APP_H

#include <stdint.h>
#include <time.h>

#include "policy.h"

struct gkm_aff;

struct event;
struct event_base;
struct gkm_http;
struct gkm_config;
struct gkm_log;
struct gkm_pool;
struct gkm_upstream;
struct gkm_saver;
struct gkm_oai_cache;
struct json_t;

struct gkm_app {
    struct event_base *base;
    const struct gkm_config *cfg;
    struct gkm_log *log;
    struct gkm_pool *pool;
    struct gkm_upstream *up;
    struct gkm_http *http;
    struct gkm_policy_opts policy;      /* from the config */
    struct gkm_policy_state *pstate;    /* no-detail 429 escalation memory */
    struct gkm_aff *aff;                /* files/caches/uploads -> owner key */

    /* OpenAI surface (openai.c). */
    struct gkm_oai_cache *oai_cache; /* /v1/models answer, briefly cached */
    struct json_t *oai_safety;       /* default safetySettings or NULL */
    struct json_t *oai_aliases;      /* model alias table or NULL */

    /* Persistence and the quota day (app.c). */
    char day[11];          /* current quota day, YYYY-MM-DD */
    time_t next_reset;     /* when it ends */
    uint64_t saved_gen;    /* pool generation last written */
    uint64_t saved_aff_gen; /* owner map generation last written */
    int save_failed;       /* last save failed (logged once per streak) */
    int64_t last_save_ms;  /* monotonic time of the last write attempt */
    struct gkm_saver *saver; /* the writer thread (saver.h) */
    uint64_t sub_seq;      /* newest snapshot handed to it (0: none) */
    uint64_t sub_gen, sub_aff_gen; /* the generations in that snapshot */
    uint64_t seen_fail_seq; /* newest failure already reported */
    int64_t stalled_since_ms; /* start of a write warned as stalled, or 0 */
    int saver_stuck;        /* the final write timed out: abandon, no join */
    struct event *tick;    /* periodic: debounced save, day check, drain */
    struct event *reset_timer;

    /* Lifecycle. */
    uint64_t next_request_id;
    unsigned inflight;     /* client requests being handled */
    int draining;          /* SIGTERM/SIGINT received */
    int exiting;           /* drain finished: leaving the loop */
    int64_t drain_deadline_ms;
    struct event *sig_term, *sig_int, *sig_hup;
    int exit_code;
};

/* Load the usage file into app->pool and set the quota day. Logs what
 * happened. Returns 0, or -1 when the file exists but cannot be read. */
int gkm_app_state_load(struct gkm_app *app);
/* Start the usage-file writer thread and arm the tick and reset timers.
 * Returns 0 or -1. */
int gkm_app_timers_start(struct gkm_app *app);
/* Hand the usage file to the writer thread if anything changed since the
 * last snapshot written or queued (force: even if not), after reporting
 * what the writer did since the last call (a failed write is logged once
 * per streak and retried on the next call). Never waits for the disk.
 * Returns 0, or -1 outside gkm_app_timers_start .. gkm_app_timers_stop
 * (no writer: nothing is saved). */
int gkm_app_state_flush(struct gkm_app *app, int force);
/* Begin a graceful shutdown: stop accepting, let requests in flight end
 * (bounded by --drain-timeout), flush state, leave the loop. */
void gkm_app_begin_drain(struct gkm_app *app, const char *why);
/* A finished reply's last bytes were written (or its connection closed):
 * a drain waits for every reply to reach its client before exiting. */
void gkm_app_reply_flushed(struct gkm_app *app);
/* SIGHUP: re-read the key file. When it lists the same keys, every bench
 * that lasts "until the keys are reloaded" (invalid, suspended, leaked or
 * denied keys, zero quotas) ends, so fixed keys come back without a
 * restart; a changed key set is reported and needs a restart. */
void gkm_app_reload_keys(struct gkm_app *app);
/* Called by the proxy when a request finishes (inflight dropped). */
void gkm_app_request_done(struct gkm_app *app);
/* Stop the timers, and the writer once it wrote what is queued. */
void gkm_app_timers_stop(struct gkm_app *app);

#endif
