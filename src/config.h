/*
 * config.h - the command-line and environment contract.
 *
 * One static option table (config.c) is the single source of truth: it
 * drives parsing, --help, and the docs test that checks docs/configuration.md
 * lists every option. Precedence: command-line flag > environment variable
 * (GKM_...) > default. The resulting struct is immutable after load.
 */
#ifndef GKM_CONFIG_H
#define GKM_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "log.h"

#define GKM_DEFAULT_TOKEN "PLACEHOLDER_GEMINI_TOKEN"

enum gkm_command {
    GKM_CMD_SERVE = 0, /* run the proxy */
    GKM_CMD_HELP,
    GKM_CMD_VERSION,
    GKM_CMD_CHECK, /* validate config and key file, print a summary */
    GKM_CMD_KEYS_CHECK, /* `keys check`: probe every key */
    GKM_CMD_USAGE       /* `usage`: today's usage from the usage file */
};

struct gkm_config {
    enum gkm_command command;
    int json; /* --json: machine-readable output for keys check / usage */
    char *listen;      /* as given, e.g. "127.0.0.1:5000" or "[::1]:5000" */
    char *listen_host; /* parsed host without brackets */
    int listen_port;   /* 0..65535 (0: ephemeral, printed at start-up) */
    char *keys_path;
    char *usage_path;
    char **tokens; /* accepted client tokens (>= 1) */
    size_t ntokens;
    char *token_file;
    char *upstream; /* base URL without trailing slash */
    char *public_url; /* --public-url without trailing slash, or NULL */
    char *upstream_proxy; /* --upstream-proxy: URL, "none", or NULL (env) */
    int upstream_http2;   /* --upstream-http 2 (libcurl transfers) */
    char *upstream_ca;    /* --upstream-ca FILE, or NULL: the system's */
    enum gkm_log_level log_level;
    char *log_file; /* NULL: console only */
    uint64_t log_max_bytes;
    int log_backups;
    char *reset_tz;
    uint64_t max_body_bytes;
    uint64_t max_header_bytes;
    uint64_t client_timeout_ms;
    uint64_t connect_timeout_ms;
    uint64_t idle_timeout_ms;
    uint64_t upstream_keepalive_ms; /* --upstream-keepalive */
    uint64_t save_interval_ms;
    uint64_t drain_timeout_ms;
    int max_attempts;
    /* Error policy (policy.h). */
    uint64_t minute_cooldown_ms;
    uint64_t unknown_429_ms;
    uint64_t unknown_429_max_ms;
    int server_retries;
    uint64_t server_backoff_ms;
    uint64_t server_backoff_max_ms;
    uint64_t max_wait_ms;
    /* OpenAI surface. */
    int oai_safety;   /* enum gkm_safety_mode */
    int oai_thoughts; /* enum gkm_oai_thoughts (oai_req.h) */
    uint64_t sse_keepalive_ms; /* SSE comment after this much silence */
    char **aliases;   /* "name=model" */
    size_t naliases;
};

enum gkm_safety_mode {
    GKM_SAFETY_DEFAULT = 0, /* send no safetySettings: Google's defaults */
    GKM_SAFETY_BLOCK_NONE,  /* BLOCK_NONE for every category (the original) */
    GKM_SAFETY_OFF          /* OFF for every category */
};

/* Parse defaults, then the environment (envp, NULL-terminated "NAME=value"
 * strings; may be NULL), then argv. Returns a new config, or NULL with a
 * message in err naming the offending option and value. Validation of
 * cross-option rules (default token on a public address) is included. */
struct gkm_config *gkm_config_load(int argc, char **argv, char **envp,
                                   char *err, size_t errlen);
void gkm_config_free(struct gkm_config *cfg);
/* The upstream proxy for libcurl's CURLOPT_PROXY: NULL (none configured:
 * libcurl's environment variables apply), "" (--upstream-proxy none) or
 * the URL. Borrowed from cfg. */
const char *gkm_config_proxy(const struct gkm_config *cfg);

/* Print the --help text (generated from the option table) to f. */
void gkm_config_usage(FILE *f);

/* 1 if host is a loopback address or "localhost". */
int gkm_config_host_is_loopback(const char *host);

#endif
