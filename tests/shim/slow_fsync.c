/*
 * slow_fsync.c - a test shim (LD_PRELOAD), never part of the proxy: makes
 * every fsync() and fdatasync() of the process sleep GKM_TEST_FSYNC_MS
 * milliseconds (default 1000) before doing the real call, to stand for a
 * slow disk (a NAS, an SD card). Used by the integration test that checks
 * the event loop never waits for the usage file's writes.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void slow_down(void)
{
    const char *v = getenv("GKM_TEST_FSYNC_MS");
    long ms = v != NULL ? strtol(v, NULL, 10) : 1000;
    if (ms <= 0)
        return;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

int fsync(int fd)
{
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    slow_down();
    return real(fd);
}

int fdatasync(int fd)
{
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    slow_down();
    return real(fd);
}
