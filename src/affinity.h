/*
 * affinity.h - which key owns an uploaded file, a cached content or an
 * upload in progress.
 *
 * Files and cachedContents belong to the Google Cloud project of the key
 * that created them; any other project's key gets 403 PERMISSION_DENIED
 * (spec §1.6, §9.6). The proxy learns the owner when the resource is
 * created through it and routes every later request that names the
 * resource to that key (or another key of its project). This module is the
 * memory of it: a bounded map from resource name to key index, with an
 * expiry per entry, and the scanner that finds resource names in paths and
 * request bodies. Pure: no I/O, time passed in.
 *
 * Names: "files/<id>", "cachedContents/<id>" (as Google spells them) and
 * "upload/<upload_id>" for resumable uploads in progress.
 */
#ifndef GKM_AFFINITY_H
#define GKM_AFFINITY_H

#include <stddef.h>
#include <stdint.h>

/* Longest upload_id accepted (Google's are a few hundred characters). */
#define GKM_AFF_UPLOAD_ID_MAX 512
/* Longest resource name kept ("upload/" + the longest upload id). */
#define GKM_AFF_NAME_MAX (7 + GKM_AFF_UPLOAD_ID_MAX)
/* Entries the proxy keeps (about 100 bytes each). */
#define GKM_AFF_ENTRIES 65536
/* How long an owner found by trying keys is remembered (a file's life). */
#define GKM_AFF_LEARNED_TTL_MS (48LL * 3600 * 1000)

struct gkm_aff;

/* An empty map holding at most cap entries (cap >= 1); when full, the
 * oldest entry makes room. */
struct gkm_aff *gkm_aff_new(size_t cap);
void gkm_aff_free(struct gkm_aff *a);

/* Remember that name (len bytes, 1..GKM_AFF_NAME_MAX) belongs to key idx
 * until expires_ms. A name already present gets the new owner and expiry
 * (and counts as new for eviction). Longer names are ignored. */
void gkm_aff_put(struct gkm_aff *a, const char *name, size_t len, size_t idx,
                 int64_t expires_ms);
/* The key owning name at now_ms, or -1 (unknown, or expired: then the
 * entry is dropped). */
long gkm_aff_get(struct gkm_aff *a, const char *name, size_t len,
                 int64_t now_ms);
/* Forget name (a deleted file). */
void gkm_aff_del(struct gkm_aff *a, const char *name, size_t len);
/* Entries held (expired ones included until looked up or evicted). */
size_t gkm_aff_count(const struct gkm_aff *a);
/* Changes so far (puts and deletes): a saver compares it with the value
 * at its last write. */
uint64_t gkm_aff_generation(const struct gkm_aff *a);
/* Visit the entries not expired at now_ms, oldest first (the order
 * gkm_aff_put must replay to rebuild the same map). cb must not change a. */
typedef void (*gkm_aff_each_cb)(void *arg, const char *name, size_t len,
                                size_t idx, int64_t expires_ms);
void gkm_aff_foreach(const struct gkm_aff *a, int64_t now_ms,
                     gkm_aff_each_cb cb, void *arg);

/* Find resource names in text (a path, a query or a JSON body, read as
 * bytes: no parsing): every "files/<id>" and "cachedContents/<id>" whose
 * id is 1..128 characters of [A-Za-z0-9_-] and is not directly preceded by
 * a letter or digit. Calls cb for each, in order, with a pointer into text;
 * stops early when cb returns non-zero and returns that value, else 0. */
typedef int (*gkm_aff_scan_cb)(void *arg, const char *name, size_t len);
int gkm_aff_scan(const char *text, size_t len, gkm_aff_scan_cb cb, void *arg);

#endif
