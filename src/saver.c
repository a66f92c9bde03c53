/*
 * saver.c - the usage-file writer thread (see saver.h).
 *
 * One mutex guards everything shared; the thread sleeps on `wake` until a
 * snapshot is queued or it is told to stop, and signals `done` after every
 * write so gkm_saver_wait can return. The write itself runs unlocked.
 */
#include "saver.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

struct gkm_saver {
    char *path;
    unsigned mode;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* to the writer: queued or stopping */
    pthread_cond_t done; /* from the writer: a write ended */
    char *queued;        /* next snapshot or NULL */
    size_t queued_len;
    uint64_t queued_seq;
    uint64_t last_seq; /* newest seq handed over */
    int writing;
    int stop;
    int abandoned; /* the writer frees the saver when it leaves */
    struct gkm_saver_status st;
};

static void destroy(struct gkm_saver *s)
{
    pthread_cond_destroy(&s->done);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->mu);
    free(s->queued);
    free(s->path);
    free(s);
}

static void *writer_main(void *arg)
{
    struct gkm_saver *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->queued == NULL && !s->stop)
            pthread_cond_wait(&s->wake, &s->mu);
        if (s->queued == NULL)
            break; /* stopping with nothing left */
        char *data = s->queued;
        size_t len = s->queued_len;
        uint64_t seq = s->queued_seq;
        s->queued = NULL;
        s->writing = 1;
        s->st.busy_since_ms = gkm_mono_ms();
        pthread_mutex_unlock(&s->mu);

        int rc = gkm_write_file_atomic(s->path, data, len, s->mode);
        int err = rc != 0 ? errno : 0;
        free(data);

        pthread_mutex_lock(&s->mu);
        s->writing = 0;
        s->st.busy_since_ms = 0;
        if (rc == 0) {
            s->st.ok_seq = seq;
        } else {
            s->st.fail_seq = seq;
            s->st.fail_errno = err;
        }
        pthread_cond_broadcast(&s->done);
    }
    int abandoned = s->abandoned;
    pthread_mutex_unlock(&s->mu);
    if (abandoned)
        destroy(s);
    return NULL;
}

struct gkm_saver *gkm_saver_new(const char *path, unsigned mode)
{
    struct gkm_saver *s = gkm_xcalloc(1, sizeof(*s));
    s->path = gkm_xstrdup(path);
    s->mode = mode;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->wake, NULL);
    /* "done" is waited on with a deadline: on the monotonic clock. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->done, &ca);
    pthread_condattr_destroy(&ca);
    /* Signals are the loop's business: the writer starts with them
     * blocked, so none lands in its write or fsync; faults stay
     * deliverable to it (a crash must not be silent). */
    sigset_t all, old;
    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    sigdelset(&all, SIGABRT);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&s->thread, NULL, writer_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        destroy(s);
        errno = rc;
        return NULL;
    }
    return s;
}

void gkm_saver_free(struct gkm_saver *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL); /* writes what is queued first */
    destroy(s);
}

void gkm_saver_abandon(struct gkm_saver *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    s->abandoned = 1;
    free(s->queued); /* not started: nobody will write it now */
    s->queued = NULL;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
    pthread_detach(s->thread);
}

void gkm_saver_submit(struct gkm_saver *s, char *data, size_t len,
                      uint64_t seq)
{
    pthread_mutex_lock(&s->mu);
    free(s->queued); /* an older snapshot nobody needs any more */
    s->queued = data;
    s->queued_len = len;
    s->queued_seq = seq;
    s->last_seq = seq;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
}

void gkm_saver_status(struct gkm_saver *s, struct gkm_saver_status *st)
{
    pthread_mutex_lock(&s->mu);
    *st = s->st;
    st->idle = s->queued == NULL && !s->writing;
    pthread_mutex_unlock(&s->mu);
}

int gkm_saver_wait(struct gkm_saver *s, int64_t timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    if (timeout_ms >= 0) {
        until.tv_sec += (time_t)(timeout_ms / 1000);
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&s->mu);
    while (s->queued != NULL || s->writing) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&s->done, &s->mu);
        } else if (pthread_cond_timedwait(&s->done, &s->mu, &until) == ETIMEDOUT &&
                   (s->queued != NULL || s->writing)) {
            pthread_mutex_unlock(&s->mu);
            errno = ETIMEDOUT;
            return -1;
        }
    }
    int rc = 0, err = 0;
    if (s->last_seq != 0 && s->st.ok_seq != s->last_seq) {
        rc = -1;
        err = s->st.fail_seq == s->last_seq ? s->st.fail_errno : EIO;
    }
    pthread_mutex_unlock(&s->mu);
    if (rc != 0)
        errno = err;
    return rc;
}
