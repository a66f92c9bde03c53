/*
 * proxy.h - the life of one client request on the native Gemini surface:
 * authenticate, pick a key, forward, relay (streaming, with backpressure),
 * fail over on 429, account usage, log one line.
 */
#ifndef GKM_PROXY_H
#define GKM_PROXY_H

#include <stddef.h>

struct gkm_hreq;
struct gkm_app;

/* Handle a request under /v1beta/, /v1/ or /upload/. Takes over req: it is
 * answered (or dropped if the client leaves) by the proxy. */
void gkm_proxy_native(struct gkm_app *app, struct gkm_hreq *req);

/* Answer req now with a Gemini-shaped JSON error
 * {"error":{"code":status,"message":msg,"status":gstatus}}. retry_after_s
 * > 0 adds a Retry-After header. */
void gkm_reply_gemini_error(struct gkm_hreq *req, int status,
                            const char *gstatus, const char *msg,
                            long retry_after_s);

/* 1 if req carries a valid client token (x-goog-api-key, ?key= or
 * Authorization: Bearer; every one given must be valid). Constant time per
 * comparison. */
int gkm_proxy_authorized(const struct gkm_app *app,
                         struct gkm_hreq *req);

#endif
