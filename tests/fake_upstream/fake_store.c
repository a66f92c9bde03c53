/* Fake Gemini upstream: Files API (resumable upload, get/list/delete) and
 * cachedContents CRUD, both owned by the project of the creating key
 * (gemini-wire.md §1.6, §1.7). */
#include "fake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FILE_URI_BASE "https://generativelanguage.googleapis.com/v1beta/files/"

/* ------------------------------------------------------------ files and
 * caches state */

static void ffile_free(void *p)
{
    struct ffile *f = p;
    if (!f)
        return;
    free(f->id);
    free(f->project);
    json_decref(f->obj);
    free(f);
}

static void upload_free(void *p)
{
    struct upload *u = p;
    if (!u)
        return;
    free(u->id);
    free(u->project);
    free(u->display_name);
    free(u->mime);
    free(u);
}

static void cache_free(void *p)
{
    struct cache *c = p;
    if (!c)
        return;
    free(c->id);
    free(c->project);
    free(c->model);
    json_decref(c->obj);
    free(c);
}

void fake_state_init(struct fake *F)
{
    hm_init(&F->files, ffile_free);
    hm_init(&F->uploads, upload_free);
    hm_init(&F->caches, cache_free);
}

void fake_state_clear(struct fake *F)
{
    hm_clear(&F->files);
    hm_clear(&F->uploads);
    hm_clear(&F->caches);
}

void fake_state_free(struct fake *F)
{
    hm_free(&F->files);
    hm_free(&F->uploads);
    hm_free(&F->caches);
}

static void make_id(struct fake *F, char *out, size_t len)
{
    static const char al[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    uint64_t x = mix64(next_seq(F) * 0x9e3779b97f4a7c15ULL + 17);
    for (size_t i = 0; i + 1 < len; i++) {
        if (i % 10 == 9)
            x = mix64(x);
        out[i] = al[x % 36];
        x /= 36;
    }
    out[len - 1] = '\0';
}

/* file id from "files/abc", ".../v1beta/files/abc", etc.; NULL if none */
static char *file_id_of(const char *uri)
{
    const char *p = strstr(uri, "files/");
    if (!p)
        return NULL;
    p += strlen("files/");
    size_t n = strcspn(p, "/?#:");
    return n ? xstrndup(p, n) : NULL;
}

/* 403 for fileData URIs of another project or unknown files. */
int store_check_file_refs(struct rctx *rc, const json_t *req)
{
    if (!rc->F->vflags[VC_FILE_OWNERSHIP])
        return 0;
    json_t *contents = jget(req, "contents"), *c;
    size_t i;
    json_array_foreach(contents, i, c)
    {
        json_t *parts = jget(c, "parts"), *p;
        size_t j;
        json_array_foreach(parts, j, p)
        {
            const char *uri = jstr(jget(p, "fileData"), "fileUri");
            if (!uri || (!starts_with(uri, FILE_URI_BASE) &&
                         !starts_with(uri, "files/")))
                continue;
            char *id = file_id_of(uri);
            if (!id)
                continue;
            struct ffile *f = hm_get(&rc->F->files, id);
            if (!f || strcmp(f->project, rc->project) != 0) {
                reply_error(rc, err_file_permission(id));
                free(id);
                return 1;
            }
            free(id);
        }
    }
    return 0;
}

/* Resolves cachedContent; returns -1 if an error was sent, else cached
 * token count (0 if none). */
long store_check_cache_ref(struct rctx *rc, const json_t *req,
                           const char *model)
{
    const char *name = jstr(req, "cachedContent");
    if (!name)
        return 0;
    const char *id = starts_with(name, "cachedContents/")
                         ? name + strlen("cachedContents/")
                         : name;
    struct cache *c = hm_get(&rc->F->caches, id);
    if (!c || (rc->F->vflags[VC_FILE_OWNERSHIP] &&
               strcmp(c->project, rc->project) != 0)) {
        reply_error(rc, err_cache_permission(name));
        return -1;
    }
    if (strcmp(c->model + strlen("models/"), model) != 0) {
        char *m = xasprintf("Model used by GenerateContent request (models/%s) "
                            "and CachedContent (%s) has to be the same.",
                            model, c->model);
        reply_error(rc, err_invalid_argument(m));
        free(m);
        return -1;
    }
    return c->tokens;
}

/* ------------------------------------------------------------ files */

static const char *in_header(struct rctx *rc, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(rc->req), name);
}

void store_upload_start(struct rctx *rc)
{
    struct fake *F = rc->F;
    const char *proto = in_header(rc, "X-Goog-Upload-Protocol");
    const char *cmd = in_header(rc, "X-Goog-Upload-Command");
    if (!proto || strcasecmp(proto, "resumable") != 0 || !cmd ||
        strcasecmp(cmd, "start") != 0) {
        reply_error(rc,
                    err_invalid_argument(
                        "Only the resumable upload protocol (X-Goog-Upload-"
                        "Protocol: resumable, X-Goog-Upload-Command: start) "
                        "is supported by this server."));
        return;
    }
    json_t *meta = NULL;
    if (rc->body_len) {
        meta = api_parse_body(rc);
        if (!meta)
            return;
    }
    json_t *file = jget(meta, "file");
    struct upload *u = calloc(1, sizeof *u);
    if (!u)
        abort();
    char id[33];
    make_id(F, id, sizeof id);
    u->id = xstrdup(id);
    u->project = xstrdup(rc->project);
    const char *dn = jstr(file, "displayName");
    u->display_name = dn ? xstrdup(dn) : NULL;
    const char *mt = in_header(rc, "X-Goog-Upload-Header-Content-Type");
    if (!mt)
        mt = jstr(file, "mimeType");
    u->mime = xstrdup(mt ? mt : "application/octet-stream");
    const char *cl = in_header(rc, "X-Goog-Upload-Header-Content-Length");
    u->declared = cl ? strtol(cl, NULL, 10) : -1;
    u->hash = 1469598103934665603ULL;
    hm_put(&F->uploads, id, u);
    json_decref(meta);
    char *url;
    char *qkey = api_query(rc, "key");
    if (qkey) {
        char *enc = evhttp_encode_uri(qkey);
        url = xasprintf("http://%s%s%s:%d/upload/%s/files?upload_id=%s&"
                        "upload_protocol=resumable&key=%s",
                        strchr(F->host, ':') ? "[" : "", F->host,
                        strchr(F->host, ':') ? "]" : "", F->port, rc->version,
                        id, enc);
        free(enc);
    } else {
        url = xasprintf("http://%s%s%s:%d/upload/%s/files?upload_id=%s&"
                        "upload_protocol=resumable",
                        strchr(F->host, ':') ? "[" : "", F->host,
                        strchr(F->host, ':') ? "]" : "", F->port, rc->version,
                        id);
    }
    free(qkey);
    add_header(rc, "x-goog-upload-url", url);
    add_header(rc, "x-goog-upload-control-url", url);
    add_header(rc, "x-goog-upload-status", "active");
    add_header(rc, "x-goog-upload-chunk-granularity", "8388608");
    free(url);
    reply_data(rc, 200, "text/plain; charset=utf-8", xstrdup(""), 0);
}

static json_t *file_json(struct fake *F, struct upload *u, const char *id)
{
    char now[64], exp[64];
    double t = now_wall();
    rfc3339(now, sizeof now, t);
    rfc3339(exp, sizeof exp, t + 48 * 3600);
    char name[64], size[32];
    snprintf(name, sizeof name, "files/%s", id);
    snprintf(size, sizeof size, "%zu", u->received);
    unsigned char h[32];
    uint64_t x = u->hash;
    for (int i = 0; i < 4; i++) {
        x = mix64(x + (uint64_t)i);
        memcpy(h + 8 * i, &x, 8);
    }
    char *sha = b64_encode(h, 32, 0, 1);
    char *uri = xasprintf(FILE_URI_BASE "%s", id);
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(name));
    if (u->display_name)
        json_object_set_new(o, "displayName", json_string(u->display_name));
    json_object_set_new(o, "mimeType", json_string(u->mime));
    json_object_set_new(o, "sizeBytes", json_string(size));
    json_object_set_new(o, "createTime", json_string(now));
    json_object_set_new(o, "updateTime", json_string(now));
    json_object_set_new(o, "expirationTime", json_string(exp));
    json_object_set_new(o, "sha256Hash", json_string(sha));
    json_object_set_new(o, "uri", json_string(uri));
    json_object_set_new(o, "state", json_string("ACTIVE"));
    json_object_set_new(o, "source", json_string("UPLOADED"));
    free(sha);
    free(uri);
    (void)F;
    return o;
}

void api_upload_continue(struct rctx *rc, const char *upload_id)
{
    struct fake *F = rc->F;
    struct upload *u = hm_get(&F->uploads, upload_id);
    rc->rule_kind = RK_NORMAL;
    if (!u) {
        reply_error(rc, gerr(404,
                             "Upload session not found or already "
                             "finalized.",
                             NULL));
        return;
    }
    const char *cmd = in_header(rc, "X-Goog-Upload-Command");
    int up = cmd && strstr(cmd, "upload") != NULL;
    int fin = cmd && strstr(cmd, "finalize") != NULL;
    int query = cmd && strstr(cmd, "query") != NULL;
    int cancel = cmd && strstr(cmd, "cancel") != NULL;
    char recv[32];
    if (cancel) {
        hm_del(&F->uploads, upload_id);
        add_header(rc, "x-goog-upload-status", "cancelled");
        reply_data(rc, 200, "text/plain; charset=utf-8", xstrdup(""), 0);
        return;
    }
    if (!up && !fin && !query) {
        reply_error(rc, err_invalid_argument(
                            "Missing or unsupported X-Goog-Upload-Command."));
        return;
    }
    if (up) {
        const char *off = in_header(rc, "X-Goog-Upload-Offset");
        if (off && strtoull(off, NULL, 10) != u->received) {
            char *m =
                xasprintf("Invalid X-Goog-Upload-Offset %s: the server has "
                          "received %zu bytes.",
                          off, u->received);
            reply_error(rc, err_invalid_argument(m));
            free(m);
            return;
        }
        for (size_t i = 0; i < rc->body_len; i++) {
            u->hash ^= rc->body[i];
            u->hash *= 1099511628211ULL;
        }
        u->received += rc->body_len;
    }
    snprintf(recv, sizeof recv, "%zu", u->received);
    add_header(rc, "x-goog-upload-size-received", recv);
    if (!fin) {
        add_header(rc, "x-goog-upload-status", "active");
        reply_data(rc, 200, "text/plain; charset=utf-8", xstrdup(""), 0);
        return;
    }
    char id[13];
    make_id(F, id, sizeof id);
    struct ffile *f = calloc(1, sizeof *f);
    if (!f)
        abort();
    f->seq = next_seq(F);
    f->id = xstrdup(id);
    f->project = xstrdup(u->project);
    f->obj = file_json(F, u, id);
    hm_put(&F->files, id, f);
    json_t *o = json_pack("{s:O}", "file", f->obj);
    hm_del(&F->uploads, upload_id);
    add_header(rc, "x-goog-upload-status", "final");
    reply_json(rc, 200, o);
}

static int by_seq_file(const void *a, const void *b)
{
    const struct ffile *x = *(const struct ffile *const *)a,
                       *y = *(const struct ffile *const *)b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int by_seq_cache(const void *a, const void *b)
{
    const struct cache *x = *(const struct cache *const *)a,
                       *y = *(const struct cache *const *)b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Collects the values of a map owned by project, ordered by seq. */
static void **collect(struct hmap *m, const char *project, int files, size_t *n)
{
    void **v = malloc((m->n + 1) * sizeof *v);
    if (!v)
        abort();
    *n = 0;
    for (size_t i = 0; i < m->nb; i++)
        for (struct hent *e = m->b[i]; e; e = e->next) {
            const char *p = files ? ((struct ffile *)e->v)->project
                                  : ((struct cache *)e->v)->project;
            if (!strcmp(p, project))
                v[(*n)++] = e->v;
        }
    qsort(v, *n, sizeof *v, files ? by_seq_file : by_seq_cache);
    return v;
}

void store_files(struct rctx *rc)
{
    struct fake *F = rc->F;
    const char *rest = rc->rest;
    if (!strcmp(rest, "files")) {
        if (rc->method != EVHTTP_REQ_GET) {
            reply_error(rc, err_path_not_found(rc->path));
            return;
        }
        long off, size;
        if (api_paging(rc, 10, 100, &off, &size))
            return;
        size_t n;
        void **v = collect(&F->files, rc->project, 1, &n);
        json_t *arr = json_array();
        for (long i = off; i < (long)n && i < off + size; i++)
            json_array_append(arr, ((struct ffile *)v[i])->obj);
        json_t *o = json_pack("{s:o}", "files", arr);
        if (off + size < (long)n) {
            char *t = api_page_token(off + size);
            json_object_set_new(o, "nextPageToken", json_string(t));
            free(t);
        }
        free(v);
        reply_json(rc, 200, o);
        return;
    }
    char *id = xstrdup(rest + strlen("files/"));
    char *colon = strchr(id, ':');
    if (colon)
        *colon = '\0';
    struct ffile *f = hm_get(&F->files, id);
    if (!f || strcmp(f->project, rc->project) != 0) {
        reply_error(rc, err_file_permission(id));
    } else if (colon) {
        reply_error(rc, err_invalid_argument(
                            "Only generated files can be downloaded."));
    } else if (rc->method == EVHTTP_REQ_GET) {
        reply_json(rc, 200, json_incref(f->obj));
    } else if (rc->method == EVHTTP_REQ_DELETE) {
        hm_del(&F->files, id);
        reply_json(rc, 200, json_object());
    } else {
        reply_error(rc, err_path_not_found(rc->path));
    }
    free(id);
}

/* ------------------------------------------------------------
 * cachedContents */

static void cache_set_expiry(struct cache *c, const json_t *body)
{
    const char *exp = jstr(body, "expireTime");
    const char *ttl = jstr(body, "ttl");
    char buf[64];
    if (exp) {
        json_object_set_new(c->obj, "expireTime", json_string(exp));
        return;
    }
    double secs = ttl ? strtod(ttl, NULL) : 3600;
    rfc3339(buf, sizeof buf, now_wall() + secs);
    json_object_set_new(c->obj, "expireTime", json_string(buf));
}

void store_caches(struct rctx *rc)
{
    struct fake *F = rc->F;
    const char *rest = rc->rest;
    char now[64];
    rfc3339(now, sizeof now, now_wall());
    if (!strcmp(rest, "cachedContents")) {
        if (rc->method == EVHTTP_REQ_GET) {
            long off, size;
            if (api_paging(rc, 100, 1000, &off, &size))
                return;
            size_t n;
            void **v = collect(&F->caches, rc->project, 0, &n);
            json_t *arr = json_array();
            for (long i = off; i < (long)n && i < off + size; i++)
                json_array_append(arr, ((struct cache *)v[i])->obj);
            json_t *o = json_pack("{s:o}", "cachedContents", arr);
            if (off + size < (long)n) {
                char *t = api_page_token(off + size);
                json_object_set_new(o, "nextPageToken", json_string(t));
                free(t);
            }
            free(v);
            reply_json(rc, 200, o);
            return;
        }
        if (rc->method != EVHTTP_REQ_POST) {
            reply_error(rc, err_path_not_found(rc->path));
            return;
        }
        json_t *body = api_parse_body(rc);
        if (!body)
            return;
        const char *model = jstr(body, "model");
        json_t *e = validate_request(
            F, VT_CACHED_CONTENT, body,
            model && starts_with(model, "models/") ? model + 7 : model);
        if (!e && (!model || !starts_with(model, "models/")))
            e = err_invalid_argument(
                "* CachedContent.model: model is not "
                "specified or not of the form models/{model}\n");
        if (!e && !model_known_prefix(model + 7))
            e = err_model_not_found(model + 7, rc->version,
                                    "createCachedContent");
        if (e) {
            reply_error(rc, e);
            json_decref(body);
            return;
        }
        struct cache *c = calloc(1, sizeof *c);
        if (!c)
            abort();
        char id[13];
        make_id(F, id, sizeof id);
        c->seq = next_seq(F);
        c->id = xstrdup(id);
        c->project = xstrdup(rc->project);
        c->model = xstrdup(model);
        long w = api_prompt_words(body);
        c->tokens = w < 1 ? 1 : w;
        char name[64];
        snprintf(name, sizeof name, "cachedContents/%s", id);
        c->obj = json_object();
        json_object_set_new(c->obj, "name", json_string(name));
        json_object_set_new(c->obj, "model", json_string(model));
        const char *dn = jstr(body, "displayName");
        if (dn)
            json_object_set_new(c->obj, "displayName", json_string(dn));
        json_object_set_new(c->obj, "createTime", json_string(now));
        json_object_set_new(c->obj, "updateTime", json_string(now));
        cache_set_expiry(c, body);
        json_object_set_new(
            c->obj, "usageMetadata",
            json_pack("{s:I}", "totalTokenCount", (json_int_t)c->tokens));
        hm_put(&F->caches, id, c);
        json_decref(body);
        reply_json(rc, 200, json_incref(c->obj));
        return;
    }
    const char *id = rest + strlen("cachedContents/");
    struct cache *c = hm_get(&F->caches, id);
    if (!c || strcmp(c->project, rc->project) != 0) {
        char *name = xasprintf("cachedContents/%s", id);
        reply_error(rc, err_cache_permission(name));
        free(name);
        return;
    }
    if (rc->method == EVHTTP_REQ_GET) {
        reply_json(rc, 200, json_incref(c->obj));
    } else if (rc->method == EVHTTP_REQ_DELETE) {
        hm_del(&F->caches, id);
        reply_json(rc, 200, json_object());
    } else if (rc->method == EVHTTP_REQ_PATCH) {
        json_t *body = api_parse_body(rc);
        if (!body)
            return;
        cache_set_expiry(c, body);
        json_object_set_new(c->obj, "updateTime", json_string(now));
        json_decref(body);
        reply_json(rc, 200, json_incref(c->obj));
    } else {
        reply_error(rc, err_path_not_found(rc->path));
    }
}
