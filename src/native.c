/*
 * native.c - the Gemini API surface: requests under /v1beta/, /v1/ and
 * /upload/ go upstream as they are (client credentials removed, the pool
 * key added), and answers come back as they are, streamed when they
 * stream. On the way through, a tap reads usageMetadata (prompt, output
 * and thinking tokens) from generateContent answers and streams, and
 * notices errors inside a 200 stream and streams that end without a
 * finishReason, for the key's statistics and the log.
 *
 * Key affinity (affinity.h): answers that create or list files and cached
 * contents teach the proxy which key owns them; a resumable upload's
 * x-goog-upload-url is rewritten to point at the proxy (without any key in
 * it), and the upload requests that follow, which carry only the
 * upload_id, are let through to the key that started the upload.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "affinity.h"
#include "app.h"
#include "config.h"
#include "daytime.h"
#include "http.h"
#include "keypool.h"
#include "log.h"
#include "preq.h"
#include "proxy.h"
#include "route.h"
#include "tap.h"
#include "util.h"

/* 2xx bodies up to this length (per Content-Length) are collected and sent
 * in one write with a Content-Length: a whole generateContent answer.
 * Unknown-length bodies (streams) always flow through at once. */
#define SMALL_BODY (256 * 1024)
#define COLLECT_CAP (8 * 1024 * 1024)

/* How long ownership is remembered: files live 48 h at Google; an upload
 * in progress a day; a cached content until its expireTime (else 48 h). */
#define FILE_TTL_MS (48LL * 3600 * 1000)
#define UPLOAD_TTL_MS (24LL * 3600 * 1000)

struct native {
    struct gkm_tap *tap; /* generateContent answers only */
};

static const char *gemini_status_name(int status)
{
    switch (status) {
    case 400: return "INVALID_ARGUMENT";
    case 401: return "UNAUTHENTICATED";
    case 403: return "PERMISSION_DENIED";
    case 404: return "NOT_FOUND";
    case 413: return "INVALID_ARGUMENT";
    case 429: return "RESOURCE_EXHAUSTED";
    case 499: return "CANCELLED";
    case 500: return "INTERNAL";
    case 502: return "UNAVAILABLE";
    case 503: return "UNAVAILABLE";
    case 504: return "DEADLINE_EXCEEDED";
    default: return "UNKNOWN";
    }
}

/* {"error":{"code":N,"message":"...","status":"..."}} as Google writes it. */
static char *gemini_error_json(int status, const char *gstatus, const char *msg)
{
    json_t *o = json_pack("{s:{s:i,s:s,s:s}}", "error", "code", status,
                          "message", msg, "status",
                          gstatus ? gstatus : gemini_status_name(status));
    char *s = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
    json_decref(o);
    if (s == NULL)
        s = gkm_xstrdup("{\"error\":{\"code\":500,\"message\":\"internal "
                        "error\",\"status\":\"INTERNAL\"}}");
    return s;
}

void gkm_reply_gemini_error(struct gkm_hreq *req, int status,
                            const char *gstatus, const char *msg,
                            long retry_after_s)
{
    char *body = gemini_error_json(status, gstatus, msg);
    char *line = gkm_xjoin3(body, "\n", "");
    free(body);
    gkm_hreq_set_header(req, "Content-Type", "application/json; charset=UTF-8");
    if (retry_after_s > 0) {
        char ra[32];
        snprintf(ra, sizeof(ra), "%ld", retry_after_s);
        gkm_hreq_add_header(req, "Retry-After", ra);
    }
    gkm_hreq_send(req, status, line, strlen(line));
    free(line);
}

static void n_error(struct gkm_preq *p, int status, const char *gstatus,
                    const char *msg, long retry_after_s)
{
    char *body = gemini_error_json(status, gstatus, msg);
    size_t len = strlen(body);
    p->pass_headers = 0; /* our own answer, not an upstream one */
    gkm_preq_reply(p, status, "application/json; charset=UTF-8", body, len,
                   retry_after_s);
    free(body);
}

/* ---- surface ------------------------------------------------------------ */

static int is_generate(const struct gkm_preq *p)
{
    return strstr(p->path, ":generateContent") != NULL ||
           strstr(p->path, ":streamGenerateContent") != NULL;
}

/* ---- key affinity ------------------------------------------------------ */

/* The value of the first query parameter name in q ("a=1&b=2"), or NULL;
 * *len set; *count (if not NULL) gets how many times name occurs. */
static const char *query_param(const char *q, const char *name, size_t *len,
                               int *count)
{
    size_t nl = strlen(name);
    const char *first = NULL;
    int n = 0;
    for (const char *s = q; s && *s; s = strchr(s, '&'), s = s ? s + 1 : s) {
        if (strncmp(s, name, nl) == 0 && s[nl] == '=') {
            if (n++ == 0) {
                first = s + nl + 1;
                *len = strcspn(first, "&#");
            }
            if (count == NULL)
                break;
        }
    }
    if (count != NULL)
        *count = n;
    return first;
}

/* The upload endpoint itself, "/upload/<version>/files" and nothing else:
 * the only path an upload_id stands in for the token on (any other path
 * would turn a leaked upload id into an open door to the API). */
static int is_upload_path(const char *path)
{
    if (strncmp(path, "/upload/", 8) != 0)
        return 0;
    const char *v = path + 8;
    size_t vl = 0;
    while ((v[vl] >= 'a' && v[vl] <= 'z') || (v[vl] >= '0' && v[vl] <= '9'))
        vl++;
    return vl > 0 && strcmp(v + vl, "/files") == 0;
}

/* An upload's byte request: POST or PUT with an X-Goog-Upload-Command made
 * only of upload, finalize, query and cancel (never start). Anything else
 * needs the token. */
static int is_upload_continuation(struct gkm_preq *p, struct gkm_hreq *req)
{
    if (strcmp(p->up_method, "POST") != 0 && strcmp(p->up_method, "PUT") != 0)
        return 0;
    const char *cmd = gkm_hreq_header(req, "X-Goog-Upload-Command");
    if (cmd == NULL)
        return 0;
    static const char *const ok[] = {"upload", "finalize", "query", "cancel"};
    int words = 0;
    for (const char *c = cmd; *c;) {
        c += strspn(c, " ,");
        size_t n = strcspn(c, " ,");
        if (n == 0)
            break;
        int known = 0;
        for (size_t i = 0; i < GKM_ARRAY_LEN(ok); i++)
            known |= strlen(ok[i]) == n && strncasecmp(c, ok[i], n) == 0;
        if (!known)
            return 0;
        words++;
        c += n;
    }
    return words > 0;
}

/* "upload/<id>" for an upload_id of 1..GKM_AFF_UPLOAD_ID_MAX URL-safe
 * characters. */
static int upload_name(const char *id, size_t len, char *out, size_t cap)
{
    if (len == 0 || len > GKM_AFF_UPLOAD_ID_MAX || len + 8 > cap)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
              c == '~'))
            return -1;
    }
    memcpy(out, "upload/", 7);
    memcpy(out + 7, id, len);
    out[7 + len] = '\0';
    return 0;
}

/* The proxy's origin as this client reaches it: --public-url, else the
 * Host (or X-Forwarded-Host) with X-Forwarded-Proto's scheme (http
 * otherwise). NULL when there is no usable host. Caller frees. */
static char *public_origin(struct gkm_preq *p)
{
    if (p->app->cfg->public_url != NULL)
        return gkm_xstrdup(p->app->cfg->public_url);
    if (p->req == NULL)
        return NULL;
    const char *host = gkm_hreq_header(p->req, "X-Forwarded-Host");
    if (host == NULL)
        host = gkm_hreq_header(p->req, "Host");
    const char *proto = gkm_hreq_header(p->req, "X-Forwarded-Proto");
    if (host == NULL || *host == '\0' || strlen(host) > 255)
        return NULL;
    for (const char *c = host; *c; c++)
        if (*c <= ' ' || *c >= 0x7f || *c == '/' || *c == '?' || *c == '#' ||
            *c == '@' || *c == ',')
            return NULL;
    int https = proto != NULL && strcasecmp(proto, "https") == 0;
    return gkm_xjoin3(https ? "https://" : "http://", host, "");
}

/* Rewrite an upload URL from the upstream so that the client sends the
 * bytes through the proxy: our origin, the same path and query, no key=
 * parameter. Remembers the upload_id's owner. Returns the new value, or
 * NULL to keep the old one (a key in it is then masked like any relayed
 * header, add_reply_headers() in client.c). */
static char *rewrite_upload_url(struct gkm_preq *p, const char *url)
{
    const char *s = strstr(url, "://");
    const char *path = s ? strchr(s + 3, '/') : NULL;
    const char *q = path ? strchr(path, '?') : NULL;
    if (path == NULL || q == NULL)
        return NULL;
    size_t idlen = 0;
    const char *id = query_param(q + 1, "upload_id", &idlen, NULL);
    char name[GKM_AFF_NAME_MAX + 1];
    if (id == NULL || upload_name(id, idlen, name, sizeof(name)) != 0)
        return NULL;
    char *origin = public_origin(p);
    if (origin == NULL)
        return NULL;
    struct gkm_buf b;
    gkm_buf_init(&b, 8192);
    int bad = gkm_buf_append_str(&b, origin) != 0 ||
              gkm_buf_append(&b, path, (size_t)(q - path) + 1) != 0;
    /* The query without key=... */
    int first = 1;
    for (const char *a = q + 1; !bad && *a;) {
        size_t n = strcspn(a, "&");
        if (!(n >= 4 && strncmp(a, "key=", 4) == 0)) {
            bad = (!first && gkm_buf_append(&b, "&", 1) != 0) ||
                  gkm_buf_append(&b, a, n) != 0;
            first = 0;
        }
        a += n;
        if (*a == '&')
            a++;
    }
    free(origin);
    if (bad) {
        gkm_buf_free(&b);
        return NULL;
    }
    gkm_aff_put(p->app->aff, name, strlen(name), (size_t)p->key_idx,
                gkm_now_ms() + UPLOAD_TTL_MS);
    return gkm_buf_take(&b, NULL);
}

static void remember(struct gkm_preq *p, const json_t *res, int64_t now)
{
    const char *name = json_string_value(json_object_get(res, "name"));
    if (name == NULL || (strncmp(name, "files/", 6) != 0 &&
                         strncmp(name, "cachedContents/", 15) != 0))
        return;
    int64_t until = now + FILE_TTL_MS;
    int64_t exp = gkm_parse_rfc3339_ms(
        json_string_value(json_object_get(res, "expireTime")));
    if (name[0] == 'c' && exp > now)
        until = exp;
    gkm_aff_put(p->app->aff, name, strlen(name), (size_t)p->key_idx, until);
}

/* Answers that can teach an owner (see learn()): uploads, and anything
 * under files or cachedContents. They are collected whole, whatever their
 * framing (chunked or HTTP/2 answers have no Content-Length). */
static int teaches_owner(const struct gkm_preq *p)
{
    return strncmp(p->path, "/upload/", 8) == 0 ||
           strstr(p->path, "/cachedContents") != NULL ||
           strstr(p->path, "/files") != NULL;
}

/* Learn owners from a successful answer: a file created by an upload, a
 * cached content created or updated, files or caches listed (all of them
 * belong to the key's project); forget deleted ones. */
static void learn(struct gkm_preq *p, const char *data, size_t n)
{
    int64_t now = gkm_now_ms();
    if (strcmp(p->up_method, "DELETE") == 0) {
        const char *s = strstr(p->path, "files/");
        if (s == NULL)
            s = strstr(p->path, "cachedContents/");
        if (s != NULL)
            gkm_aff_del(p->app->aff, s, strcspn(s, ":?"));
        return;
    }
    int upload = strncmp(p->path, "/upload/", 8) == 0;
    if (!teaches_owner(p))
        return;
    json_t *r = json_loadb(data, n, 0, NULL);
    if (r == NULL)
        return;
    remember(p, json_object_get(r, "file"), now);  /* upload finished */
    remember(p, r, now);                           /* cache created */
    const char *lists[] = {"files", "cachedContents"};
    for (size_t k = 0; k < GKM_ARRAY_LEN(lists); k++) {
        size_t i;
        const json_t *e;
        json_array_foreach(json_object_get(r, lists[k]), i, e)
            remember(p, e, now);
    }
    int finished = json_object_get(r, "file") != NULL;
    json_decref(r);
    if (upload && finished && p->pin_name != NULL &&
        strncmp(p->pin_name, "upload/", 7) == 0)
        gkm_aff_del(p->app->aff, p->pin_name, strlen(p->pin_name));
}

static enum gkm_relay n_begin(struct gkm_preq *p, long status, long long clen)
{
    struct native *st = p->surface_state;
    for (size_t i = 0; i < p->nrh; i++) {
        if (gkm_strcaseeq(p->rh_names[i], "x-goog-upload-url") ||
            gkm_strcaseeq(p->rh_names[i], "x-goog-upload-control-url")) {
            char *u = rewrite_upload_url(p, p->rh_values[i]);
            if (u != NULL)
                gkm_preq_set_resp_value(p, i, u);
        }
    }
    gkm_tap_free(st->tap);
    st->tap = NULL;
    int generate = is_generate(p);
    int collect = (clen >= 0 && clen <= SMALL_BODY) ||
                  (!generate && teaches_owner(p));
    if (generate) {
        enum gkm_tap_kind k = GKM_TAP_WHOLE;
        if (!collect && strstr(p->path, ":streamGenerateContent") != NULL)
            k = strstr(p->query, "alt=sse") != NULL ? GKM_TAP_SSE
                                                    : GKM_TAP_ARRAY;
        st->tap = gkm_tap_new(k);
    }
    if (collect) {
        p->collect_cap = COLLECT_CAP;
        return GKM_RELAY_COLLECT;
    }
    return GKM_RELAY_STREAM;
}

static int n_chunk(struct gkm_preq *p, const char *data, size_t n,
                   struct gkm_buf *out)
{
    struct native *st = p->surface_state;
    if (st->tap != NULL)
        gkm_tap_feed(st->tap, data, n);
    return gkm_buf_append(out, data, n) == 0 ? 0 : -1;
}

static int n_end(struct gkm_preq *p, int ok, struct gkm_buf *out)
{
    struct native *st = p->surface_state;
    if (st->tap != NULL)
        gkm_preq_account(p, gkm_tap_finish(st->tap), ok);
    return ok;
}

static void n_body(struct gkm_preq *p, long status, const char *data, size_t n)
{
    struct native *st = p->surface_state;
    /* The client first: what follows only feeds the counters and the
     * name-to-key table, and the next request on this loop sees both. */
    gkm_preq_send_reply(p, status, NULL, data, n, 0);
    learn(p, data, n);
    if (st->tap != NULL)
        gkm_preq_account(p, gkm_tap_whole(st->tap, data, n), 1);
    gkm_preq_finish(p);
}

static void n_upstream_error(struct gkm_preq *p, long status, const char *data,
                             size_t n)
{
    gkm_preq_reply(p, status, NULL, data, n, 0);
}

static void n_cleanup(struct gkm_preq *p)
{
    struct native *st = p->surface_state;
    if (st == NULL)
        return;
    gkm_tap_free(st->tap);
    free(st);
    p->surface_state = NULL;
}

static const struct gkm_surface native_surface = {
    .name = "gemini",
    .error = n_error,
    .begin = n_begin,
    .chunk = n_chunk,
    .end = n_end,
    .body = n_body,
    .upstream_error = n_upstream_error,
    .cleanup = n_cleanup,
};

void gkm_proxy_native(struct gkm_app *app, struct gkm_hreq *req)
{
    struct gkm_preq *p = gkm_preq_new(app, req, &native_surface);
    if (p == NULL)
        return;
    p->surface_state = gkm_xcalloc(1, sizeof(struct native));
    p->pass_headers = 1;
    gkm_route_model(p->path, p->model, sizeof(p->model));
    /* An upload's byte requests carry only the upload_id the proxy handed
     * out with the rewritten upload URL: that id is the credential (as at
     * Google), and the upload continues with the key that started it. */
    size_t idlen = 0;
    int nids = 0;
    const char *uid = is_upload_path(p->path) && is_upload_continuation(p, req)
                          ? query_param(p->query, "upload_id", &idlen, &nids)
                          : NULL;
    if (nids != 1) /* exactly one upload_id, or the token is needed */
        uid = NULL;
    char uname[GKM_AFF_NAME_MAX + 1];
    if (uid != NULL && upload_name(uid, idlen, uname, sizeof(uname)) == 0) {
        long k = gkm_aff_get(app->aff, uname, strlen(uname), gkm_now_ms());
        if (k >= 0 && (size_t)k < gkm_pool_size(app->pool)) {
            /* As at Google, the id is the credential: the bytes go upstream
             * without any key (so a leaked id opens nothing more than it
             * does at Google), on the upload's key for the accounting. */
            p->pin_idx = k;
            p->no_key = 1;
            free(p->pin_name);
            p->pin_name = gkm_xstrdup(uname);
        }
    }
    if (p->pin_idx < 0 && !gkm_proxy_authorized(app, req)) {
        p->outcome = "unauthorized";
        gkm_preq_fail(p, 401, "UNAUTHENTICATED",
                      "Missing or invalid proxy token. Send the token "
                      "configured with --token as the x-goog-api-key header, "
                      "the key query parameter, or an Authorization: Bearer "
                      "header.",
                      0);
        return;
    }
    p->up_path_query = gkm_xjoin3(p->path, p->query[0] ? "?" : "", p->query);
    gkm_preq_forward_headers(p);
    gkm_preq_start(p);
}
