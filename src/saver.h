/*
 * saver.h - writes the usage file on a thread of its own, so the event
 * loop never waits for a disk.
 *
 * The loop serialises the state (it owns the key pool) and hands the bytes
 * over; the writer thread does the atomic durable write (temp file, fsync,
 * rename, fsync of the directory: util.h gkm_write_file_atomic). A disk
 * that takes 100 ms per fsync (a NAS, an SD card, a busy VPS) then delays
 * nothing but the next write. Only the newest snapshot matters: one handed
 * over while an older one still waits replaces it; one handed over while a
 * write runs is written right after.
 *
 * Results are read by the loop when it likes (gkm_saver_status): every
 * snapshot carries a sequence number, and the writer records the last one
 * written and the last one that failed, with errno.
 */
#ifndef GKM_SAVER_H
#define GKM_SAVER_H

#include <stddef.h>
#include <stdint.h>

struct gkm_saver;

struct gkm_saver_status {
    uint64_t ok_seq;   /* newest snapshot written (0: none yet) */
    uint64_t fail_seq; /* newest snapshot whose write failed (0: none) */
    int fail_errno;    /* errno of that failure */
    int idle;          /* nothing queued, no write running */
    int64_t busy_since_ms; /* gkm_mono_ms() when the running write began,
                              0 when none runs */
};

/* Start the writer for path (copied), files created with mode. Returns
 * NULL with errno set if the thread cannot start. */
struct gkm_saver *gkm_saver_new(const char *path, unsigned mode);
/* Write what is queued, stop the thread and free (waits for the disk).
 * NULL is a no-op. */
void gkm_saver_free(struct gkm_saver *s);
/* Queue data (len bytes, malloc'd: taken over and freed by the saver) as
 * snapshot seq, which must be greater than every earlier seq. A snapshot
 * still queued is dropped for it. Never waits for the disk. */
void gkm_saver_submit(struct gkm_saver *s, char *data, size_t len,
                      uint64_t seq);
/* Where the writer is (a consistent copy). */
void gkm_saver_status(struct gkm_saver *s, struct gkm_saver_status *st);
/* Block until nothing is queued and no write runs (shutdown, tests), for
 * at most timeout_ms (< 0: no limit). Returns 0 when the newest snapshot
 * handed over was written (or none ever was), else -1 with errno: that of
 * its failure, or ETIMEDOUT. */
int gkm_saver_wait(struct gkm_saver *s, int64_t timeout_ms);
/* For an exit while a write hangs in the kernel (a dead network mount):
 * let the thread go instead of joining it; it frees the saver if its
 * write ever returns, and the process exit ends it otherwise. */
void gkm_saver_abandon(struct gkm_saver *s);

#endif
