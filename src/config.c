/*
 * config.c - the option table and its parser (see config.h).
 *
 * Adding an option: one row in `options` below plus its field in struct
 * gkm_config, then document it in docs/configuration.md (a test compares the
 * two). Every option has a long flag and an environment variable.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

enum opt_type {
    T_STRING,   /* char * */
    T_PATH,     /* char *, non-empty */
    T_LISTEN,   /* listen + listen_host + listen_port */
    T_TOKEN,    /* appended to tokens (repeatable) */
    T_URL,      /* upstream */
    T_PROXY,    /* char *: proxy URL or "none" */
    T_LOGLEVEL, /* log_level */
    T_SIZE,     /* uint64_t bytes */
    T_DURATION, /* uint64_t ms */
    T_INT,      /* int */
    T_SAFETY,   /* int: default | block_none | off */
    T_THOUGHTS, /* int: on-request | off | always */
    T_ALIAS,    /* appended to aliases: NAME=MODEL (env: comma list) */
    T_ACTION,   /* sets command; no argument, no env */
    T_FLAG,     /* sets an int to 1; no argument, no env */
    T_HTTPVER   /* int: 1.1 -> 0, 2 -> 1 */
};

struct option_def {
    const char *flag;
    const char *env;
    const char *metavar;
    enum opt_type type;
    size_t offset;
    const char *def; /* default as text (NULL: none) */
    long long min, max;
    const char *help;
};

#define OFF(f) offsetof(struct gkm_config, f)
#define MIB (1024LL * 1024)

static const struct option_def options[] = {
    {"--listen", "GKM_LISTEN", "HOST:PORT", T_LISTEN, OFF(listen),
     "127.0.0.1:5000", 0, 0,
     "Address to listen on; IPv6 as [::1]:5000; port 0 picks a free port. "
     "A non-loopback address requires a token other than the default."},
    {"--keys", "GKM_KEYS", "FILE", T_PATH, OFF(keys_path), "./key.txt", 0, 0,
     "Key file: one Gemini API key per line, optional 'project=NAME'."},
    {"--usage-file", "GKM_USAGE_FILE", "FILE", T_PATH, OFF(usage_path),
     "./key_usage.txt", 0, 0,
     "Usage and key-state file (the original tool's JSON format), written "
     "atomically with mode 0600."},
    {"--token", "GKM_TOKEN", "TOKEN", T_TOKEN, OFF(tokens),
     GKM_DEFAULT_TOKEN, 0, 0,
     "Client token (the placeholder clients send instead of a real key). "
     "Repeatable."},
    {"--token-file", "GKM_TOKEN_FILE", "FILE", T_PATH, OFF(token_file), NULL,
     0, 0, "Read client tokens from FILE, one per line ('#' comments)."},
    {"--upstream", "GKM_UPSTREAM", "URL", T_URL, OFF(upstream),
     "https://generativelanguage.googleapis.com", 0, 0,
     "Gemini API base URL."},
    {"--upstream-proxy", "GKM_UPSTREAM_PROXY", "URL", T_PROXY,
     OFF(upstream_proxy), NULL, 0, 0,
     "Reach the upstream through this HTTP(S) or SOCKS proxy "
     "(http://[user:pass@]host:port, socks5h://...; 'none' ignores the "
     "https_proxy/all_proxy environment variables, which apply otherwise)."},
    {"--upstream-ca", "GKM_UPSTREAM_CA", "FILE", T_PATH, OFF(upstream_ca),
     NULL, 0, 0,
     "Verify the upstream's TLS certificate against the CA certificates "
     "(PEM) in FILE instead of the system's (a private gateway, a TLS "
     "inspecting proxy). Verification is never turned off."},
    {"--upstream-http", "GKM_UPSTREAM_HTTP", "VERSION", T_HTTPVER,
     OFF(upstream_http2), "1.1", 0, 0,
     "HTTP version to the upstream. '1.1': the proxy writes and reads "
     "HTTP/1.1 itself over connections libcurl makes (TLS and proxies "
     "stay libcurl's), the cheapest per request. '2': libcurl's own "
     "transfers, which offer HTTP/2 (ALPN) and multiplex many requests "
     "over few connections, at about twice the CPU per request."},
    {"--public-url", "GKM_PUBLIC_URL", "URL", T_URL, OFF(public_url), NULL, 0,
     0,
     "The proxy's address as clients reach it, used in the upload URLs it "
     "hands out (default: from the request's Host and X-Forwarded-Proto)."},
    {"--log-level", "GKM_LOG_LEVEL", "LEVEL", T_LOGLEVEL, OFF(log_level),
     "info", 0, 0, "error, warn, info or debug. Keys are always masked."},
    {"--log-file", "GKM_LOG_FILE", "FILE", T_STRING, OFF(log_file), NULL, 0,
     0, "Also append logs to FILE, rotated by size."},
    {"--log-max-size", "GKM_LOG_MAX_SIZE", "SIZE", T_SIZE,
     OFF(log_max_bytes), "10M", 1024, 1024 * MIB,
     "Rotate the log file when it would pass SIZE."},
    {"--log-backups", "GKM_LOG_BACKUPS", "N", T_INT, OFF(log_backups), "3",
     0, 100, "Rotated log files to keep (FILE.1 .. FILE.N)."},
    {"--reset-timezone", "GKM_RESET_TIMEZONE", "TZ", T_STRING, OFF(reset_tz),
     "America/Los_Angeles", 0, 0,
     "Time zone whose midnight starts a new quota day (Gemini resets daily "
     "quotas at Pacific midnight)."},
    {"--max-body-size", "GKM_MAX_BODY_SIZE", "SIZE", T_SIZE,
     OFF(max_body_bytes), "50M", 1024, 2048 * MIB,
     "Largest request body accepted; larger ones get 413."},
    {"--max-header-size", "GKM_MAX_HEADER_SIZE", "SIZE", T_SIZE,
     OFF(max_header_bytes), "64K", 1024, 16 * MIB,
     "Largest request line + headers accepted; larger ones get 431."},
    {"--client-timeout", "GKM_CLIENT_TIMEOUT", "DURATION", T_DURATION,
     OFF(client_timeout_ms), "60s", 1000, 86400000LL,
     "Time allowed to receive a request, and for a stalled client to "
     "accept response bytes; also the keep-alive idle time."},
    {"--connect-timeout", "GKM_CONNECT_TIMEOUT", "DURATION", T_DURATION,
     OFF(connect_timeout_ms), "10s", 100, 600000,
     "Time allowed to connect to the upstream."},
    {"--idle-timeout", "GKM_IDLE_TIMEOUT", "DURATION", T_DURATION,
     OFF(idle_timeout_ms), "300s", 1000, 86400000LL,
     "Abort an upstream response that sends nothing for this long (there "
     "is no total timeout, so long thinking streams are never cut)."},
    {"--upstream-keepalive", "GKM_UPSTREAM_KEEPALIVE", "DURATION", T_DURATION,
     OFF(upstream_keepalive_ms), "118s", 0, 3600000,
     "How long an idle connection to the upstream may wait to be reused; "
     "older ones are closed instead (a NAT or load balancer may have "
     "dropped them silently). 0: a new connection for every request."},
    {"--save-interval", "GKM_SAVE_INTERVAL", "DURATION", T_DURATION,
     OFF(save_interval_ms), "1s", 100, 3600000,
     "Write the usage file at most this often when something changed."},
    {"--drain-timeout", "GKM_DRAIN_TIMEOUT", "DURATION", T_DURATION,
     OFF(drain_timeout_ms), "30s", 0, 3600000,
     "On SIGTERM/SIGINT, wait this long for requests in flight to finish."},
    {"--max-attempts", "GKM_MAX_ATTEMPTS", "N", T_INT, OFF(max_attempts),
     "10", 1, 1000,
     "Upstream attempts per request (a rate-limited key is retried on the "
     "next one)."},
    {"--max-wait", "GKM_MAX_WAIT", "DURATION", T_DURATION, OFF(max_wait_ms),
     "5s", 0, 600000,
     "When every key is cooling down for a model, wait up to this long for "
     "the first to come back instead of answering 429 at once (0: never "
     "wait)."},
    {"--minute-cooldown", "GKM_MINUTE_COOLDOWN", "DURATION", T_DURATION,
     OFF(minute_cooldown_ms), "60s", 1000, 3600000,
     "Cooldown after a per-minute 429 that names no retry delay."},
    {"--unknown-429-cooldown", "GKM_UNKNOWN_429_COOLDOWN", "DURATION",
     T_DURATION, OFF(unknown_429_ms), "10s", 100, 3600000,
     "Cooldown after a 429 without details; doubles while it repeats."},
    {"--unknown-429-max", "GKM_UNKNOWN_429_MAX", "DURATION", T_DURATION,
     OFF(unknown_429_max_ms), "300s", 100, 86400000LL,
     "Longest cooldown the doubling reaches."},
    {"--server-retries", "GKM_SERVER_RETRIES", "N", T_INT, OFF(server_retries),
     "3", 0, 20,
     "Retries, on other keys, after an upstream 5xx, timeout or connection "
     "failure (0: answer at once). Overload is not the key's fault: no key "
     "is benched."},
    {"--server-backoff", "GKM_SERVER_BACKOFF", "DURATION", T_DURATION,
     OFF(server_backoff_ms), "500ms", 0, 60000,
     "First wait before such a retry; doubles each time (with jitter)."},
    {"--server-backoff-max", "GKM_SERVER_BACKOFF_MAX", "DURATION", T_DURATION,
     OFF(server_backoff_max_ms), "4s", 0, 600000,
     "Longest wait between such retries."},
    {"--safety", "GKM_SAFETY", "MODE", T_SAFETY, OFF(oai_safety), "default",
     0, 0,
     "safetySettings for translated OpenAI requests that set none: "
     "'default' sends none (Google's defaults), 'block_none' sends "
     "BLOCK_NONE for every category (what the original tool always did), "
     "'off' sends OFF."},
    {"--thoughts", "GKM_THOUGHTS", "MODE", T_THOUGHTS, OFF(oai_thoughts),
     "on-request", 0, 0,
     "Gemini thought summaries on the OpenAI endpoint: 'on-request' when "
     "the client sends reasoning_effort, 'always', or 'off'. They arrive as "
     "reasoning_content."},
    {"--sse-keepalive", "GKM_SSE_KEEPALIVE", "DURATION", T_DURATION,
     OFF(sse_keepalive_ms), "15s", 0, 3600000,
     "On OpenAI streams, send an SSE comment when nothing was sent for this "
     "long (long thinking), so proxies and clients with idle timeouts keep "
     "the connection (0: never)."},
    {"--model-alias", "GKM_MODEL_ALIASES", "NAME=MODEL", T_ALIAS,
     OFF(aliases), NULL, 0, 0,
     "Let OpenAI clients ask for NAME (e.g. gpt-4o) and get MODEL (e.g. "
     "gemini-2.5-flash). Repeatable; the variable takes a comma-separated "
     "list."},
    {"--check", NULL, NULL, T_ACTION, GKM_CMD_CHECK, NULL, 0, 0,
     "Validate the configuration and key file, print a summary, exit."},
    {"--json", NULL, NULL, T_FLAG, OFF(json), NULL, 0, 0,
     "With 'keys check' or 'usage': print JSON for scripts."},
    {"--version", NULL, NULL, T_ACTION, GKM_CMD_VERSION, NULL, 0, 0,
     "Print the version and exit."},
    {"--help", NULL, NULL, T_ACTION, GKM_CMD_HELP, NULL, 0, 0,
     "Show this help and exit."},
};

int gkm_config_host_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (gkm_strcaseeq(host, "localhost"))
        return 1;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return 0;
}

static int parse_listen(struct gkm_config *cfg, const char *v, char *err,
                        size_t errlen)
{
    const char *colon;
    char *host;
    if (v[0] == '[') {
        const char *rb = strchr(v, ']');
        if (rb == NULL || rb[1] != ':') {
            gkm_set_err(err, errlen, "expected [IPv6]:PORT");
            return -1;
        }
        host = gkm_xstrndup(v + 1, (size_t)(rb - v - 1));
        colon = rb + 1;
    } else {
        colon = strrchr(v, ':');
        if (colon == NULL || colon == v) {
            gkm_set_err(err, errlen, "expected HOST:PORT");
            return -1;
        }
        host = gkm_xstrndup(v, (size_t)(colon - v));
        if (strchr(host, ':') != NULL) {
            free(host);
            gkm_set_err(err, errlen, "IPv6 addresses need brackets: [::1]:5000");
            return -1;
        }
    }
    long long port;
    const char *es;
    if (gkm_parse_ll(colon + 1, 0, 65535, &port, &es) != 0) {
        free(host);
        gkm_set_err(err, errlen, "port: %s", es);
        return -1;
    }
    free(cfg->listen);
    free(cfg->listen_host);
    cfg->listen = gkm_xstrdup(v);
    cfg->listen_host = host;
    cfg->listen_port = (int)port;
    return 0;
}

static int valid_token(const char *t)
{
    if (*t == '\0' || strlen(t) > 4096)
        return 0;
    for (const unsigned char *p = (const unsigned char *)t; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            return 0;
    return 1;
}

static int set_option(struct gkm_config *cfg, const struct option_def *o,
                      const char *v, int *tokens_from_user, char *err,
                      size_t errlen)
{
    char *base = (char *)cfg;
    const char *es = NULL;
    switch (o->type) {
    case T_STRING:
    case T_PATH: {
        char **dst = (char **)(base + o->offset);
        if (o->type == T_PATH && *v == '\0') {
            gkm_set_err(err, errlen, "empty path");
            return -1;
        }
        free(*dst);
        *dst = *v ? gkm_xstrdup(v) : NULL;
        return 0;
    }
    case T_LISTEN:
        return parse_listen(cfg, v, err, errlen);
    case T_PROXY: {
        static const char *const schemes[] = {
            "http://", "https://", "socks4://", "socks4a://", "socks5://",
            "socks5h://"};
        char **dst = (char **)(base + o->offset);
        int ok = strcmp(v, "none") == 0 || *v == '\0';
        for (size_t i = 0; i < GKM_ARRAY_LEN(schemes) && !ok; i++)
            ok = strncmp(v, schemes[i], strlen(schemes[i])) == 0 &&
                 v[strlen(schemes[i])] != '\0';
        for (const char *q = v; ok && *q; q++)
            ok = *q > ' ' && *q < 0x7f;
        if (!ok) {
            gkm_set_err(err, errlen,
                        "expected none or a proxy URL (http://, https://, "
                        "socks4://, socks4a://, socks5://, socks5h://)");
            return -1;
        }
        free(*dst);
        *dst = *v ? gkm_xstrdup(v) : NULL;
        return 0;
    }
    case T_TOKEN:
        if (!valid_token(v)) {
            gkm_set_err(err, errlen,
                   "a token must be 1-4096 printable characters without "
                   "spaces");
            return -1;
        }
        if (tokens_from_user != NULL && !*tokens_from_user) {
            /* The first user-given token replaces the default. */
            for (size_t i = 0; i < cfg->ntokens; i++)
                free(cfg->tokens[i]);
            cfg->ntokens = 0;
            *tokens_from_user = 1;
        }
        cfg->tokens = gkm_xrealloc(cfg->tokens,
                                   (cfg->ntokens + 1) * sizeof(char *));
        cfg->tokens[cfg->ntokens++] = gkm_xstrdup(v);
        return 0;
    case T_URL: {
        size_t n = strlen(v);
        if (n == 0 && o->def == NULL) { /* optional URL: "" unsets it */
            char **dst = (char **)(base + o->offset);
            free(*dst);
            *dst = NULL;
            return 0;
        }
        if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) {
            gkm_set_err(err, errlen, "must start with http:// or https://");
            return -1;
        }
        while (n > 0 && v[n - 1] == '/')
            n--;
        if (strchr(v, '?') || strchr(v, '#') || strchr(v, ' ')) {
            gkm_set_err(err, errlen, "must be a base URL without query");
            return -1;
        }
        char **dst = (char **)(base + o->offset);
        free(*dst);
        *dst = gkm_xstrndup(v, n);
        return 0;
    }
    case T_LOGLEVEL:
        if (gkm_log_level_parse(v, &cfg->log_level) != 0) {
            gkm_set_err(err, errlen, "expected error, warn, info or debug");
            return -1;
        }
        return 0;
    case T_SIZE: {
        uint64_t n;
        if (gkm_parse_size(v, (uint64_t)o->max, &n, &es) != 0) {
            gkm_set_err(err, errlen, "%s", es);
            return -1;
        }
        if (n < (uint64_t)o->min) {
            gkm_set_err(err, errlen, "at least %lld bytes", o->min);
            return -1;
        }
        *(uint64_t *)(base + o->offset) = n;
        return 0;
    }
    case T_DURATION: {
        uint64_t ms;
        if (gkm_parse_duration_ms(v, (uint64_t)o->max, &ms, &es) != 0) {
            gkm_set_err(err, errlen, "%s", es);
            return -1;
        }
        if (ms < (uint64_t)o->min) {
            gkm_set_err(err, errlen, "at least %lld ms", o->min);
            return -1;
        }
        *(uint64_t *)(base + o->offset) = ms;
        return 0;
    }
    case T_INT: {
        long long n;
        if (gkm_parse_ll(v, o->min, o->max, &n, &es) != 0) {
            gkm_set_err(err, errlen, "%s (allowed %lld..%lld)", es, o->min, o->max);
            return -1;
        }
        *(int *)(base + o->offset) = (int)n;
        return 0;
    }
    case T_SAFETY:
        if (strcmp(v, "default") == 0)
            cfg->oai_safety = GKM_SAFETY_DEFAULT;
        else if (strcmp(v, "block_none") == 0)
            cfg->oai_safety = GKM_SAFETY_BLOCK_NONE;
        else if (strcmp(v, "off") == 0)
            cfg->oai_safety = GKM_SAFETY_OFF;
        else {
            gkm_set_err(err, errlen, "expected default, block_none or off");
            return -1;
        }
        return 0;
    case T_HTTPVER:
        if (strcmp(v, "1.1") == 0)
            cfg->upstream_http2 = 0;
        else if (strcmp(v, "2") == 0)
            cfg->upstream_http2 = 1;
        else {
            gkm_set_err(err, errlen, "expected 1.1 or 2");
            return -1;
        }
        return 0;
    case T_THOUGHTS:
        if (strcmp(v, "on-request") == 0)
            cfg->oai_thoughts = 0;
        else if (strcmp(v, "off") == 0)
            cfg->oai_thoughts = 1;
        else if (strcmp(v, "always") == 0)
            cfg->oai_thoughts = 2;
        else {
            gkm_set_err(err, errlen, "expected on-request, off or always");
            return -1;
        }
        return 0;
    case T_ALIAS: {
        /* One or more comma-separated NAME=MODEL pairs. */
        const char *s = v;
        while (*s) {
            size_t n = strcspn(s, ",");
            char *pair = gkm_xstrndup(s, n);
            char *eq = strchr(pair, '=');
            if (eq == NULL || eq == pair || eq[1] == '\0' ||
                strpbrk(pair, " \t") != NULL) {
                free(pair);
                gkm_set_err(err, errlen, "expected NAME=MODEL");
                return -1;
            }
            cfg->aliases = gkm_xrealloc(cfg->aliases,
                                        (cfg->naliases + 1) * sizeof(char *));
            cfg->aliases[cfg->naliases++] = pair;
            s += n;
            if (*s == ',')
                s++;
        }
        return 0;
    }
    case T_ACTION:
        cfg->command = (enum gkm_command)o->offset;
        return 0;
    case T_FLAG:
        *(int *)(base + o->offset) = 1;
        return 0;
    }
    return -1;
}

static const struct option_def *find_flag(const char *arg, const char **inl)
{
    *inl = NULL;
    for (size_t i = 0; i < GKM_ARRAY_LEN(options); i++) {
        size_t n = strlen(options[i].flag);
        if (strncmp(arg, options[i].flag, n) != 0)
            continue;
        if (arg[n] == '\0')
            return &options[i];
        if (arg[n] == '=' && options[i].type != T_ACTION &&
            options[i].type != T_FLAG) {
            *inl = arg + n + 1;
            return &options[i];
        }
    }
    return NULL;
}

static const char *env_get(char **envp, const char *name)
{
    size_t n = strlen(name);
    for (char **e = envp; e && *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

static int load_token_file(struct gkm_config *cfg, int *from_user, char *err,
                           size_t errlen)
{
    char *data = NULL;
    size_t len = 0;
    if (gkm_read_file(cfg->token_file, 1 << 20, &data, &len) != 0) {
        gkm_set_err(err, errlen, "--token-file %s: %s", cfg->token_file,
               strerror(errno));
        return -1;
    }
    int rc = 0, lineno = 0, added = 0;
    char *save = data;
    while (save != NULL && *save != '\0') {
        char *line = save;
        char *nl = strchr(line, '\n');
        save = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
        lineno++;
        while (*line == ' ' || *line == '\t')
            line++;
        size_t l = strlen(line);
        while (l > 0 && (line[l - 1] == '\r' || line[l - 1] == ' ' ||
                         line[l - 1] == '\t'))
            line[--l] = '\0';
        if (*line == '\0' || *line == '#')
            continue;
        char e2[256];
        const struct option_def *tok = NULL;
        for (size_t i = 0; i < GKM_ARRAY_LEN(options); i++)
            if (options[i].type == T_TOKEN)
                tok = &options[i];
        if (set_option(cfg, tok, line, from_user, e2, sizeof(e2)) != 0) {
            gkm_set_err(err, errlen, "--token-file %s line %d: %s",
                   cfg->token_file, lineno, e2);
            rc = -1;
            goto out;
        }
        added++;
    }
    if (added == 0) {
        gkm_set_err(err, errlen, "--token-file %s contains no tokens",
               cfg->token_file);
        rc = -1;
    }
out:
    free(data);
    return rc;
}

struct gkm_config *gkm_config_load(int argc, char **argv, char **envp,
                                   char *err, size_t errlen)
{
    struct gkm_config *cfg = gkm_xcalloc(1, sizeof(*cfg));
    char e2[512];
    int user_tokens = 0;

    for (size_t i = 0; i < GKM_ARRAY_LEN(options); i++) {
        const struct option_def *o = &options[i];
        if (o->def == NULL)
            continue;
        if (set_option(cfg, o, o->def, NULL, e2, sizeof(e2)) != 0) {
            gkm_set_err(err, errlen, "internal: bad default for %s: %s", o->flag,
                   e2);
            goto fail;
        }
    }
    for (size_t i = 0; i < GKM_ARRAY_LEN(options); i++) {
        const struct option_def *o = &options[i];
        const char *v = o->env ? env_get(envp, o->env) : NULL;
        if (v == NULL)
            continue;
        if (set_option(cfg, o, v, &user_tokens, e2, sizeof(e2)) != 0) {
            gkm_set_err(err, errlen, "environment %s=%s: %s", o->env,
                   o->type == T_TOKEN ? "(hidden)" : v, e2);
            goto fail;
        }
    }
    /* Subcommands come first: `keys check`, `usage`. */
    int first = 1;
    if (argc > 2 && strcmp(argv[1], "keys") == 0 &&
        strcmp(argv[2], "check") == 0) {
        cfg->command = GKM_CMD_KEYS_CHECK;
        first = 3;
    } else if (argc > 1 && strcmp(argv[1], "usage") == 0) {
        cfg->command = GKM_CMD_USAGE;
        first = 2;
    } else if (argc > 1 && strcmp(argv[1], "keys") == 0) {
        gkm_set_err(err, errlen, "unknown command 'keys %s' (did you mean 'keys "
                            "check'?)",
               argc > 2 ? argv[2] : "");
        goto fail;
    }
    /* Flags given on the command line replace the environment's tokens. */
    int argv_tokens = 0;
    for (int i = first; i < argc; i++) {
        const char *arg = argv[i], *inl;
        const struct option_def *o = find_flag(arg, &inl);
        if (o == NULL) {
            if (strcmp(arg, "-h") == 0) {
                cfg->command = GKM_CMD_HELP;
                continue;
            }
            if (strcmp(arg, "-V") == 0) {
                cfg->command = GKM_CMD_VERSION;
                continue;
            }
            gkm_set_err(err, errlen, "unknown option '%s' (see --help)", arg);
            goto fail;
        }
        const char *v = inl;
        if (o->type != T_ACTION && o->type != T_FLAG && v == NULL) {
            if (i + 1 >= argc) {
                gkm_set_err(err, errlen, "%s needs a value (%s)", o->flag,
                       o->metavar);
                goto fail;
            }
            v = argv[++i];
        }
        if (o->type == T_TOKEN && !argv_tokens) {
            user_tokens = 0; /* first flag token replaces env/default */
            argv_tokens = 1;
        }
        if (set_option(cfg, o, v ? v : "", &user_tokens, e2, sizeof(e2)) != 0) {
            gkm_set_err(err, errlen, "%s %s: %s", o->flag,
                   o->type == T_TOKEN ? "(hidden)" : (v ? v : ""), e2);
            goto fail;
        }
    }
    if (cfg->command == GKM_CMD_HELP || cfg->command == GKM_CMD_VERSION)
        return cfg;
    if (cfg->token_file != NULL &&
        load_token_file(cfg, &user_tokens, err, errlen) != 0)
        goto fail;
    if (cfg->upstream_ca != NULL && access(cfg->upstream_ca, R_OK) != 0) {
        gkm_set_err(err, errlen, "--upstream-ca %s: %s", cfg->upstream_ca,
                    strerror(errno));
        goto fail;
    }

    int default_token = 0;
    for (size_t i = 0; i < cfg->ntokens; i++)
        if (strcmp(cfg->tokens[i], GKM_DEFAULT_TOKEN) == 0)
            default_token = 1;
    if (default_token && !gkm_config_host_is_loopback(cfg->listen_host)) {
        gkm_set_err(err, errlen,
               "refusing to listen on %s with the well-known default token "
               "%s: anyone who can reach this port could spend your API "
               "keys. Set a secret token with --token or GKM_TOKEN (for "
               "example: GKM_TOKEN=$(head -c 24 /dev/urandom | base64)), or "
               "listen on 127.0.0.1",
               cfg->listen, GKM_DEFAULT_TOKEN);
        goto fail;
    }
    return cfg;
fail:
    gkm_config_free(cfg);
    return NULL;
}

const char *gkm_config_proxy(const struct gkm_config *cfg)
{
    if (cfg->upstream_proxy == NULL)
        return NULL;
    return strcmp(cfg->upstream_proxy, "none") == 0 ? "" : cfg->upstream_proxy;
}

void gkm_config_free(struct gkm_config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->listen);
    free(cfg->listen_host);
    free(cfg->keys_path);
    free(cfg->usage_path);
    for (size_t i = 0; i < cfg->ntokens; i++)
        free(cfg->tokens[i]);
    free(cfg->tokens);
    free(cfg->token_file);
    free(cfg->upstream);
    free(cfg->public_url);
    free(cfg->upstream_proxy);
    free(cfg->upstream_ca);
    free(cfg->log_file);
    free(cfg->reset_tz);
    for (size_t i = 0; i < cfg->naliases; i++)
        free(cfg->aliases[i]);
    free(cfg->aliases);
    free(cfg);
}

void gkm_config_usage(FILE *f)
{
    fprintf(f,
            "Usage: gemini-key-manager [options]          run the proxy\n"
            "       gemini-key-manager keys check [options]  probe every "
            "key and print its state\n"
            "       gemini-key-manager usage [options]       print today's "
            "usage from the usage file\n"
            "\n"
            "A proxy that lets clients use many Gemini API keys as one: it "
            "rotates the keys\n"
            "in key.txt, counts their use per day and model, benches "
            "rate-limited keys and\n"
            "retries on the next. Clients send the token instead of a real "
            "key.\n"
            "\n"
            "Options (each can also be set by the environment variable "
            "shown; flags win):\n");
    for (size_t i = 0; i < GKM_ARRAY_LEN(options); i++) {
        const struct option_def *o = &options[i];
        char head[64];
        snprintf(head, sizeof(head), "%s%s%s", o->flag, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
        fprintf(f, "  %s\n", head);
        /* Word-wrap the help text at 78 columns, indented by 6. */
        const char *t = o->help;
        while (*t) {
            size_t n = strlen(t);
            if (n > 72) {
                n = 72;
                while (n > 0 && t[n] != ' ')
                    n--;
                if (n == 0)
                    n = 72;
            }
            fprintf(f, "      %.*s\n", (int)n, t);
            t += n;
            while (*t == ' ')
                t++;
        }
        if (o->env || o->def)
            fprintf(f, "      [%s%s%s%s%s]\n", o->env ? "env " : "",
                    o->env ? o->env : "", o->env && o->def ? ", " : "",
                    o->def ? "default " : "", o->def ? o->def : "");
    }
    fprintf(f, "\nDocumentation: docs/ in the source tree, and "
               "gemini-key-manager(1).\n");
}
