/* Fake Gemini upstream for tests and benchmarks: shared declarations.
 *
 * Layout:
 *   fake_gemini.c   main, server, request parsing, auth, rules, limits and
 *                   the response/streaming engine (jobs)
 *   fake_control.c  request records, configuration, control API /_fake/...
 *   fake_api.c      Gemini API surface (generate, stream, models, tokens,
 *                   embeddings, OpenAI compat) and the router
 *   fake_store.c    Files API and cachedContents (project-owned state)
 *   fake_errors.c   Google error bodies and request validation tables
 *   fake_util.c     small helpers (hash map, base64, time, text)
 *
 * Single-threaded: everything runs on one libevent loop; all state lives in
 * struct fake (no global mutable state). */
#ifndef FAKE_H
#define FAKE_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

/* ------------------------------------------------------------ util */

struct hent {
    char *k;
    void *v;
    struct hent *next;
};

struct hmap {
    struct hent **b;
    size_t nb, n;
    void (*freev)(void *);
};

void hm_init(struct hmap *m, void (*freev)(void *));
void *hm_get(const struct hmap *m, const char *k);
int hm_put(struct hmap *m, const char *k, void *v); /* replaces, frees old */
int hm_del(struct hmap *m, const char *k);
void hm_clear(struct hmap *m);
void hm_free(struct hmap *m);

char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

char *b64_encode(const unsigned char *p, size_t n, int url, int pad);
/* Decodes standard or url-safe base64 (padding optional). NULL if bad. */
unsigned char *b64_decode(const char *s, size_t *outlen);

uint64_t mix64(uint64_t x);
uint64_t hash_str(const char *s);
size_t count_words(const char *s, size_t n);
size_t utf8_chars(const char *s, size_t n);
/* Byte offset of the ci-th code point (or n). */
size_t utf8_offset(const char *s, size_t n, size_t ci);
int starts_with(const char *s, const char *prefix);

double now_wall(void);    /* seconds since epoch, fractional */
long pacific_day(long t); /* day number in America/Los_Angeles */
long secs_to_pacific_midnight(long t);
void rfc3339(char *out, size_t cap, double t); /* ...T..:..:..123456Z */

/* camelCase -> snake_case into buf; returns buf */
const char *to_snake(const char *camel, char *buf, size_t cap);
/* object member by camelCase name or its snake_case spelling */
json_t *jget(const json_t *o, const char *camel);
const char *jstr(const json_t *o, const char *camel);
/* integer member (reals truncated) or def */
long jlong(json_t *o, const char *k, long def);
/* decoded value of query parameter name (malloc'd) or NULL */
char *query_get(const char *q, const char *name);
/* Serialises JSON into an evbuffer (compact or 2-space indented). */
int json_to_evbuffer(const json_t *j, struct evbuffer *out, int pretty);
char *json_to_str(const json_t *j, int pretty, size_t *len);

/* ------------------------------------------------------------ model */

enum key_state { KS_OK, KS_INVALID, KS_SUSPENDED, KS_LEAKED, KS_BLOCKED };

enum auth_kind {
    AUTH_NONE,
    AUTH_HEADER,
    AUTH_QUERY,
    AUTH_BEARER,
    AUTH_MULTIPLE
};

enum surface { SURF_NATIVE, SURF_OPENAI, SURF_UPLOAD, SURF_OTHER };

enum rule_kind {
    RK_QUOTA_DAY,
    RK_QUOTA_MINUTE,
    RK_QUOTA_ZERO,
    RK_QUOTA_BARE,
    RK_INVALID_KEY,
    RK_SUSPENDED,
    RK_LEAKED,
    RK_BLOCKED,
    RK_SERVER_ERROR,
    RK_OVERLOADED,
    RK_DEADLINE,
    RK_BAD_REQUEST,
    RK_NOT_FOUND,
    RK_STATUS,
    RK_DELAY,
    RK_STREAM_ERROR_EVENT,
    RK_STREAM_ERROR_TAIL,
    RK_TRUNCATE,
    RK_BLOCKED_PROMPT,
    RK_MAX_TOKENS_EMPTY,
    RK_BIG,
    RK_SLOW_STREAM,
    RK_NORMAL,
    RK_COUNT
};

enum vcheck {
    VC_UNKNOWN_FIELDS,
    VC_ROLES,
    VC_ALTERNATION,
    VC_FUNCTION_RESPONSES,
    VC_THOUGHT_SIGNATURES,
    VC_THINKING_CONFLICT,
    VC_CACHED_CONTENT_CONFLICT,
    VC_EMPTY_OBJECT_PROPERTIES,
    VC_FILE_OWNERSHIP, /* fileData / cachedContent of another project -> 403 */
    VC_COUNT
};

struct vcheck_info {
    const char *name;
    int default_on;
};
extern const struct vcheck_info VCHECKS[VC_COUNT];

struct keyinfo {
    int state;
    char *project;
};

struct rule {
    char *key, *model, *path_contains;
    long times; /* -1 = unlimited */
    int kind;
    json_t *params; /* the rule object */
};

struct counter {
    long minute, day;
    long rpm_count, rpd_count;
};

struct ffile {
    uint64_t seq;
    char *id; /* without "files/" */
    char *project;
    json_t *obj; /* File resource */
};

struct upload {
    uint64_t hash;
    char *id;
    char *project;
    char *display_name;
    char *mime;
    size_t received;
    long declared;
};

struct cache {
    uint64_t seq;
    char *id;
    char *project;
    char *model; /* "models/..." */
    long tokens;
    json_t *obj;
};

struct rec {
    uint64_t id;
    json_t *obj;
    struct job *job; /* active response writer, or NULL */
    size_t bytes;    /* approximate memory charge */
};

struct job;

struct fake {
    struct event_base *base;
    struct evhttp *http;
    char host[64];
    int port;
    int record, quiet, verbose;

    /* configuration (replaced by POST /_fake/config) */
    json_t *config_raw;
    struct hmap keys; /* key -> struct keyinfo */
    int default_state;
    struct rule *rules;
    size_t nrules, caprules;
    int stream_chunks, first_delay_ms, chunk_delay_ms;
    json_t *limits; /* model|"*" -> {"rpm":N,"rpd":N} */
    int vflags[VC_COUNT];
    int array_errors;

    /* state */
    struct hmap counters; /* "project\x1fmodel" -> struct counter */
    struct hmap files;    /* id -> struct ffile */
    struct hmap uploads;  /* upload id -> struct upload */
    struct hmap caches;   /* id -> struct cache */
    uint64_t seq;

    /* records: ring buffer */
    struct rec **recs;
    size_t rec_cap, rec_head, rec_count;
    size_t rec_bytes, rec_bytes_cap;
    uint64_t next_rec_id;

    struct job *jobs; /* active jobs (doubly linked) */
    size_t njobs;
    uint64_t served;
};

/* Per-request context, lives on the handler's stack (jobs copy what they
 * need). */
struct rctx {
    struct fake *F;
    struct evhttp_request *req;
    enum evhttp_cmd_type method;
    char *path;        /* decoded path (owned) */
    const char *raw_path; /* the path as received, undecoded */
    const char *query; /* raw query or "" */
    const unsigned char *body;
    size_t body_len;
    struct rec *rec;

    int surface;
    char version[8]; /* "v1beta" | "v1" */
    const char
        *rest;      /* path after "/<version>/" (or after "/v1beta/openai/") */
    char *model;    /* owned; NULL if none */
    char mname[64]; /* method after ':' e.g. generateContent */
    int stream, sse;

    char *key; /* credential used (owned) or NULL */
    int auth;
    const char *project; /* resolved project (points into config or key) */

    int rule_kind;
    json_t *rule_params; /* borrowed reference, valid during handling */
    long delay_ms;       /* delay before the first byte */
    int responded;
};

/* ------------------------------------------------------------ engine API
 * (fake_gemini.c) */

/* A producer hands out the body piece by piece. next() appends the next
 * piece to out and returns 1, or returns 0 when there is nothing more. */
struct producer {
    int (*next)(void *st, struct evbuffer *out);
    void (*free)(void *st);
    void *st;
};

struct piece {
    char *data;
    size_t len;
};

struct job_spec {
    int status;
    const char *ctype;
    int chunked;         /* 1 = chunked transfer (streams) */
    long content_length; /* >=0: send this Content-Length (non-chunked) */
    long first_delay_ms;
    long chunk_delay_ms;
    int truncate; /* close the connection after the last piece */
    struct producer prod;
};

/* Producer over an array of pieces (takes ownership). */
struct producer producer_pieces(struct piece *p, size_t n);
void pieces_free(struct piece *p, size_t n);

void add_header(struct rctx *rc, const char *name, const char *value);
/* Sends a response; takes ownership of data (malloc'd). Honours
 * rc->delay_ms. */
void reply_data(struct rctx *rc, int status, const char *ctype, char *data,
                size_t len);
void reply_json(struct rctx *rc, int status, json_t *body /* stolen */);
/* Error envelope {"error":{code,...}}; status taken from error.code. Wraps
 * in [...] on the OpenAI surface (or array-framed streams if configured). */
void reply_error(struct rctx *rc, json_t *err /* stolen */);
void start_job(struct rctx *rc, struct job_spec *spec);
/* the record of an active job is being freed */
void job_forget_record(struct job *j);

/* Per-(project, model) RPM/RPD limits; returns 1 if a 429 was sent. */
int enforce_limits(struct rctx *rc, const char *model);

uint64_t next_seq(struct fake *F);
void make_response_id(struct fake *F, char out[32]);
int model_known_prefix(const char *m);

/* ------------------------------------------------------------ records,
 * configuration, control API (fake_control.c) */

struct rec *rec_new(struct rctx *rc);
void rec_finish(struct rec *r, int status, int completed, size_t bytes);
void recs_clear(struct fake *F);
const char *method_str(enum evhttp_cmd_type t);
void keyinfo_free(void *p);
void counter_free(void *p);
void rule_clear(struct rule *r);
void rules_free(struct rule *rules, size_t n);
void config_defaults(struct fake *F);
void handle_control(struct rctx *rc); /* /_fake/... */

/* ------------------------------------------------------------ API
 * (fake_api.c) */

void api_dispatch(struct rctx *rc);   /* after auth/rules/limits */
void fake_state_init(struct fake *F); /* files, uploads, caches */
void fake_state_clear(struct fake *F);
void fake_state_free(struct fake *F);
void api_upload_continue(struct rctx *rc, const char *upload_id);
/* helpers shared by fake_api.c and fake_store.c */
json_t *api_parse_body(struct rctx *rc); /* NULL after sending a 400 */
int api_paging(struct rctx *rc, long def, long max, long *off, long *size);
char *api_page_token(long off);
char *api_query(const struct rctx *rc, const char *name);
long api_prompt_words(const json_t *req);

/* ------------------------------------------------------------ files and
 * cachedContents (fake_store.c) */

void store_upload_start(struct rctx *rc);
void store_files(struct rctx *rc);
void store_caches(struct rctx *rc);
/* 403 for fileData URIs of another project; returns 1 if sent. */
int store_check_file_refs(struct rctx *rc, const json_t *req);
/* cached token count, or -1 after sending an error */
long store_check_cache_ref(struct rctx *rc, const json_t *req,
                           const char *model);
int api_is_stream_method(const char *mname);
char *json_get_text_of_last_user(const json_t *contents);

/* ------------------------------------------------------------ errors and
 * validation (fake_errors.c) */

const char *status_name(int code);
json_t *gerr(int code, const char *message, json_t *details /* stolen */);
json_t *gerr_status(int code, const char *status, const char *message,
                    json_t *details);
json_t *err_invalid_key(void);
json_t *err_suspended(const char *key, const char *project);
json_t *err_leaked(void);
json_t *err_blocked(const char *mname, const char *version);
json_t *err_unauthenticated(void);
json_t *err_multiple_credentials(void);
json_t *err_no_credentials(void);
json_t *err_quota_minute(const char *model, long limit, const char *delay,
                         const char *msg_delay);
json_t *err_quota_day(const char *model, long limit, const char *delay);
json_t *err_quota_zero(const char *model, const char *delay);
json_t *err_quota_bare(void);
json_t *err_internal(void);
json_t *err_overloaded(const char *message);
json_t *err_deadline(void);
json_t *err_unknown_field(const char *field, const char *at);
json_t *err_model_not_found(const char *model, const char *version,
                            const char *mname);
json_t *err_bad_json(const char *detail);
json_t *err_invalid_argument(const char *message);
json_t *err_path_not_found(const char *path);
json_t *err_file_permission(const char *id);
json_t *err_cache_permission(const char *name);

enum vtype_id {
    VT_GENERATE,
    VT_COUNT_TOKENS,
    VT_EMBED,
    VT_BATCH_EMBED,
    VT_CACHED_CONTENT
};
/* Returns an error body or NULL when the request passes. */
json_t *validate_request(const struct fake *F, int vtype, const json_t *body,
                         const char *model);
/* Thought signatures issued by this fake (and the SDK bypass value). */
char *make_thought_signature(const char *fname, uint64_t n);
int thought_signature_ok(const char *sig);

#endif
