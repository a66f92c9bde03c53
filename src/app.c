/*
 * app.c - the process-level timers: debounced state saving, the daily
 * reset, and the graceful drain on SIGTERM/SIGINT.
 *
 * Concurrency model: everything runs on one event loop thread, so the key
 * pool is only ever touched between callbacks and needs no locks. Saving is
 * debounced: a 1 s (--save-interval) tick serialises the state when the
 * pool's generation changed and hands it to the writer thread (saver.h),
 * which does the durable write off the loop, so a hard kill loses at most
 * one interval of counts (plus one write); a graceful stop always writes
 * and waits for the write.
 */
#include "app.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"
#include "config.h"
#include "daytime.h"
#include "http.h"
#include "keyfile.h"
#include "keypool.h"
#include "log.h"
#include "saver.h"
#include "server.h"
#include "state.h"
#include "upstream.h"
#include "util.h"

int gkm_app_state_load(struct gkm_app *app)
{
    time_t now = gkm_now();
    gkm_daytime_day(now, app->day);
    app->next_reset = gkm_daytime_next_reset(now);
    size_t unknown = 0;
    char aside[4096] = "", err[512] = "";
    enum gkm_state_load_result r = gkm_state_load_ex(
        app->pool, app->aff, app->cfg->usage_path, app->day,
        (int64_t)app->next_reset * 1000, gkm_now_ms(), &unknown, aside,
        sizeof(aside), err, sizeof(err));
    switch (r) {
    case GKM_STATE_LOADED:
        gkm_info(app->log, "usage file %s loaded for %s%s%s",
                 app->cfg->usage_path, app->day, err[0] ? ": " : "", err);
        break;
    case GKM_STATE_MISSING:
        gkm_info(app->log, "usage file %s not found: starting fresh counts",
                 app->cfg->usage_path);
        break;
    case GKM_STATE_OLD_DAY:
        gkm_info(app->log,
                 "usage file %s is from an earlier day: starting fresh "
                 "counts for %s%s%s",
                 app->cfg->usage_path, app->day, err[0] ? "; " : "", err);
        break;
    case GKM_STATE_CORRUPT:
        gkm_error(app->log,
                  "usage file %s is corrupt (%s): kept aside as %s, starting "
                  "fresh",
                  app->cfg->usage_path, err, aside);
        break;
    case GKM_STATE_ERROR:
        gkm_error(app->log, "cannot read usage file %s: %s",
                  app->cfg->usage_path, err);
        return -1;
    }
    if (unknown > 0)
        gkm_info(app->log,
                 "usage file lists %zu key(s) that are not in the key file; "
                 "their counts are dropped",
                 unknown);
    /* The loaded state is on disk already: nothing to write yet, unless
     * it was another day's file (rewrite it with today's date). */
    app->saved_gen = r == GKM_STATE_LOADED ? gkm_pool_generation(app->pool)
                                           : (uint64_t)-1;
    app->saved_aff_gen = gkm_aff_generation(app->aff);
    return 0;
}

/* A write running this long means a stalled disk (a hung network mount):
 * worth a warning, since counts then live only in memory. */
static int64_t stall_ms(const struct gkm_app *app)
{
    int64_t ms = 5 * (int64_t)app->cfg->save_interval_ms;
    return ms > 5000 ? ms : 5000;
}

/* Take in what the writer did since the last look. Returns 1 while the
 * newest snapshot handed over is still queued or being written. */
static int save_results(struct gkm_app *app)
{
    if (app->sub_seq == 0)
        return 0;
    struct gkm_saver_status st;
    gkm_saver_status(app->saver, &st);
    if (app->stalled_since_ms != 0 && st.busy_since_ms != app->stalled_since_ms) {
        app->stalled_since_ms = 0;
        gkm_info(app->log, "usage file %s: the stalled write returned",
                 app->cfg->usage_path);
    }
    if (app->stalled_since_ms == 0 && st.busy_since_ms > 0 &&
        gkm_mono_ms() - st.busy_since_ms >= stall_ms(app)) {
        app->stalled_since_ms = st.busy_since_ms;
        gkm_warn(app->log,
                 "usage file %s: a write has been running for %lld s (a "
                 "stalled disk?); counts are kept in memory meanwhile",
                 app->cfg->usage_path,
                 (long long)((gkm_mono_ms() - st.busy_since_ms) / 1000));
    }
    if (st.fail_seq > app->seen_fail_seq && st.fail_seq > st.ok_seq) {
        app->seen_fail_seq = st.fail_seq;
        if (!app->save_failed)
            gkm_error(app->log,
                      "cannot write usage file %s: %s (will keep trying)",
                      app->cfg->usage_path, strerror(st.fail_errno));
        app->save_failed = 1;
    }
    /* A write newer than the last failure succeeded: the streak is over,
     * even if newer snapshots are already queued behind it. */
    if (app->save_failed && st.ok_seq > app->seen_fail_seq) {
        app->save_failed = 0;
        gkm_info(app->log, "usage file %s written again",
                 app->cfg->usage_path);
    }
    if (st.ok_seq == app->sub_seq) {
        app->saved_gen = app->sub_gen;
        app->saved_aff_gen = app->sub_aff_gen;
    }
    return st.ok_seq != app->sub_seq && st.fail_seq != app->sub_seq;
}

int gkm_app_state_flush(struct gkm_app *app, int force)
{
    if (app->saver == NULL)
        return -1; /* only between gkm_app_timers_start and _stop */
    int queued = save_results(app);
    uint64_t gen = gkm_pool_generation(app->pool);
    uint64_t agen = gkm_aff_generation(app->aff);
    if (!force && gen == app->saved_gen && agen == app->saved_aff_gen)
        return 0;
    if (!force && queued && gen == app->sub_gen && agen == app->sub_aff_gen)
        return 0; /* this very state is on its way to the disk */
    app->last_save_ms = gkm_mono_ms();
    char *s = gkm_state_dump_ex(app->pool, app->aff, app->day, gkm_now_ms());
    app->sub_seq++;
    app->sub_gen = gen;
    app->sub_aff_gen = agen;
    gkm_saver_submit(app->saver, s, strlen(s), app->sub_seq);
    return 0;
}

/* The last write before leaving: hand it over and wait for the disk, up
 * to the end of the drain (at least FINAL_WRITE_MIN_MS), so that a dead
 * disk cannot hold a stop forever. */
#define FINAL_WRITE_MIN_MS 5000

static void state_flush_final(struct gkm_app *app)
{
    if (gkm_app_state_flush(app, 1) != 0)
        return;
    int64_t wait_ms = app->drain_deadline_ms - gkm_now_ms();
    if (wait_ms < FINAL_WRITE_MIN_MS)
        wait_ms = FINAL_WRITE_MIN_MS;
    struct gkm_saver_status st;
    gkm_saver_status(app->saver, &st);
    if (st.busy_since_ms > 0 && gkm_mono_ms() - st.busy_since_ms >= 1000)
        gkm_warn(app->log,
                 "waiting up to %lld s for the usage file write (the disk "
                 "has been busy for %lld s)",
                 (long long)(wait_ms / 1000),
                 (long long)((gkm_mono_ms() - st.busy_since_ms) / 1000));
    if (gkm_saver_wait(app->saver, wait_ms) != 0 && errno == ETIMEDOUT) {
        gkm_error(app->log,
                  "usage file %s: the last write did not finish within %lld "
                  "s (a stalled disk?); exiting without it, the counts since "
                  "the last finished write are lost",
                  app->cfg->usage_path, (long long)(wait_ms / 1000));
        app->saver_stuck = 1;
        return;
    }
    (void)save_results(app);
}

static void arm_reset_timer(struct gkm_app *app);

/* A new quota day: zero the counters and write the file under the new
 * date. Daily benches need no action: they expire at this very time. */
static void check_day(struct gkm_app *app)
{
    time_t now = gkm_now();
    char day[11];
    gkm_daytime_day(now, day);
    if (now < app->next_reset && strcmp(day, app->day) == 0)
        return;
    /* The finished day's last counts first, then the new day: the writer
     * may skip the first snapshot if the second replaces it in its queue
     * (the file then goes straight to the new day, as it would a moment
     * later anyway). */
    (void)gkm_app_state_flush(app, 0);
    gkm_info(app->log, "quota day %s ended (midnight %s): usage counts reset "
                       "for %s",
             app->day, app->cfg->reset_tz, day);
    memcpy(app->day, day, sizeof(app->day));
    app->next_reset = gkm_daytime_next_reset(now);
    gkm_pool_reset_counts(app->pool);
    (void)gkm_app_state_flush(app, 1);
    arm_reset_timer(app);
}

static void on_reset_timer(evutil_socket_t fd, short what, void *arg)
{
    check_day(arg);
}

static void arm_reset_timer(struct gkm_app *app)
{
    time_t now = gkm_now();
    time_t d = app->next_reset > now ? app->next_reset - now : 0;
    /* Fire a little after midnight so the day has surely changed; the
     * tick re-checks every second anyway, covering clock jumps. */
    struct timeval tv = {d, 50000};
    evtimer_add(app->reset_timer, &tv);
}

static void maybe_exit(struct gkm_app *app);

void gkm_app_reply_flushed(struct gkm_app *app)
{
    if (app->draining)
        maybe_exit(app);
}

static void finish_drain(struct gkm_app *app)
{
    if (app->exiting)
        return; /* once: the final write and the loop exit */
    app->exiting = 1;
    state_flush_final(app);
    event_base_loopexit(app->base, NULL);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct gkm_app *app = arg;
    check_day(app);
    if (gkm_mono_ms() - app->last_save_ms >= (int64_t)app->cfg->save_interval_ms)
        (void)gkm_app_state_flush(app, 0);
    if (app->draining) {
        if (gkm_now_ms() >= app->drain_deadline_ms) {
            gkm_warn(app->log,
                     "drain timeout: %u request(s) still in flight are cut",
                     app->inflight + gkm_http_flushing(app->http));
            finish_drain(app);
        } else {
            maybe_exit(app);
        }
    }
}

int gkm_app_timers_start(struct gkm_app *app)
{
    app->saver = gkm_saver_new(app->cfg->usage_path, 0600);
    if (app->saver == NULL) {
        gkm_error(app->log, "cannot start the usage-file writer: %s",
                  strerror(errno));
        return -1;
    }
    app->tick = event_new(app->base, -1, EV_PERSIST, on_tick, app);
    app->reset_timer = evtimer_new(app->base, on_reset_timer, app);
    if (app->tick == NULL || app->reset_timer == NULL)
        return -1;
    uint64_t ms = app->cfg->save_interval_ms;
    if (ms > 1000)
        ms = 1000; /* the tick also drives day checks and draining */
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    if (event_add(app->tick, &tv) != 0)
        return -1;
    arm_reset_timer(app);
    return 0;
}

void gkm_app_timers_stop(struct gkm_app *app)
{
    if (app->tick)
        event_free(app->tick);
    if (app->reset_timer)
        event_free(app->reset_timer);
    app->tick = app->reset_timer = NULL;
    if (app->saver_stuck)
        gkm_saver_abandon(app->saver); /* its write hangs: no join */
    else
        gkm_saver_free(app->saver); /* after the queued write, if any */
    app->saver = NULL;
}

void gkm_app_begin_drain(struct gkm_app *app, const char *why)
{
    if (app->draining) {
        gkm_warn(app->log, "second %s: stopping now", why);
        finish_drain(app);
        return;
    }
    app->draining = 1;
    app->drain_deadline_ms = gkm_now_ms() + (int64_t)app->cfg->drain_timeout_ms;
    gkm_server_stop_accepting(app);
    gkm_info(app->log, "%s: no longer accepting connections; %u request(s) "
                       "in flight",
             why, app->inflight);
    maybe_exit(app);
}

static void maybe_exit(struct gkm_app *app)
{
    if (app->inflight == 0 && gkm_http_flushing(app->http) == 0 &&
        !app->exiting)
        finish_drain(app);
}

void gkm_app_request_done(struct gkm_app *app)
{
    if (app->inflight > 0)
        app->inflight--;
    if (app->draining)
        maybe_exit(app);
}

struct forever_list {
    size_t *idx;
    char **model; /* NULL: key-wide */
    size_t n, alloc;
};

static void collect_forever(void *arg, size_t idx, const char *model,
                            int64_t until_ms, enum gkm_bench_reason r)
{
    struct forever_list *l = arg;
    if (until_ms != GKM_FOREVER)
        return;
    if (l->n == l->alloc) {
        l->alloc = l->alloc ? l->alloc * 2 : 16;
        l->idx = gkm_xrealloc(l->idx, l->alloc * sizeof(*l->idx));
        l->model = gkm_xrealloc(l->model, l->alloc * sizeof(*l->model));
    }
    l->idx[l->n] = idx;
    l->model[l->n] = model ? gkm_xstrdup(model) : NULL;
    l->n++;
}

void gkm_app_reload_keys(struct gkm_app *app)
{
    struct gkm_keyfile kf;
    char err[512];
    memset(&kf, 0, sizeof(kf));
    if (gkm_keyfile_load(app->cfg->keys_path, &kf, err, sizeof(err)) != 0) {
        gkm_error(app->log, "SIGHUP: %s; keeping the keys loaded", err);
        return;
    }
    int same = kf.n == gkm_pool_size(app->pool);
    for (size_t i = 0; same && i < kf.n; i++)
        same = strcmp(kf.keys[i].secret, gkm_pool_secret(app->pool, i)) == 0;
    if (!same) {
        gkm_warn(app->log,
                 "SIGHUP: %s now lists a different set of keys (%zu, was "
                 "%zu); restart the proxy to use it",
                 app->cfg->keys_path, kf.n, gkm_pool_size(app->pool));
        gkm_keyfile_free(&kf);
        return;
    }
    gkm_keyfile_free(&kf);
    struct forever_list l;
    memset(&l, 0, sizeof(l));
    gkm_pool_foreach_bench(app->pool, gkm_now_ms(), collect_forever, &l);
    for (size_t i = 0; i < l.n; i++) {
        gkm_info(app->log, "SIGHUP: key %s back in rotation for %s",
                 gkm_pool_mask(app->pool, l.idx[i]),
                 l.model[i] ? (l.model[i][0] ? l.model[i] : "(no model)")
                            : "every model");
        gkm_pool_unbench(app->pool, l.idx[i], l.model[i]);
        free(l.model[i]);
    }
    free(l.idx);
    free(l.model);
    gkm_policy_state_reset(app->pstate);
    gkm_info(app->log, "SIGHUP: keys reloaded from %s (%zu key(s), %zu "
                       "disabled bench(es) lifted)",
             app->cfg->keys_path, gkm_pool_size(app->pool), l.n);
    (void)gkm_app_state_flush(app, 1);
}
