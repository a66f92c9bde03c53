/* Unit tests for config.c: defaults, env < flags precedence, value
 * parsing and bounds, tokens, listen addresses and the public-address
 * refusal with the default token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static struct gkm_config *load(char **argv, char **envp, char *err)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    return gkm_config_load(argc, argv, envp, err, 512);
}

static void test_defaults(void **state)
{
    (void)state;
    char err[512] = "";
    char *argv[] = {"gkm", NULL};
    struct gkm_config *c = load(argv, NULL, err);
    assert_non_null(c);
    assert_string_equal(c->listen_host, "127.0.0.1");
    assert_int_equal(c->listen_port, 5000);
    assert_string_equal(c->keys_path, "./key.txt");
    assert_string_equal(c->usage_path, "./key_usage.txt");
    assert_int_equal(c->ntokens, 1);
    assert_string_equal(c->tokens[0], GKM_DEFAULT_TOKEN);
    assert_string_equal(c->upstream, "https://generativelanguage.googleapis.com");
    assert_string_equal(c->reset_tz, "America/Los_Angeles");
    assert_int_equal(c->log_level, GKM_LOG_INFO);
    assert_null(c->log_file);
    assert_true(c->max_body_bytes == 50ULL * 1024 * 1024);
    assert_true(c->idle_timeout_ms == 300000);
    assert_true(c->save_interval_ms == 1000);
    assert_int_equal(c->command, GKM_CMD_SERVE);
    gkm_config_free(c);
}

/* --upstream-proxy: unset (environment), "none", URLs, and refusals;
 * --public-url: optional base URL. */
static void test_proxy_and_public_url(void **state)
{
    (void)state;
    char err[512] = "";
    char *a0[] = {"gkm", NULL};
    struct gkm_config *c = load(a0, NULL, err);
    assert_non_null(c);
    assert_null(gkm_config_proxy(c));
    assert_null(c->public_url);
    gkm_config_free(c);
    char *a1[] = {"gkm", "--upstream-proxy", "none", NULL};
    c = load(a1, NULL, err);
    assert_non_null(c);
    assert_string_equal(gkm_config_proxy(c), "");
    gkm_config_free(c);
    char *env[] = {"GKM_UPSTREAM_PROXY=socks5h://127.0.0.1:1080",
                   "GKM_PUBLIC_URL=https://gkm.example.org/", NULL};
    c = load(a0, env, err);
    assert_non_null(c);
    assert_string_equal(gkm_config_proxy(c), "socks5h://127.0.0.1:1080");
    assert_string_equal(c->public_url, "https://gkm.example.org");
    gkm_config_free(c);
    static const char *bad[] = {"ftp://x", "http://", "127.0.0.1:3128",
                                "http://a b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *a2[] = {"gkm", "--upstream-proxy", (char *)bad[i], NULL};
        err[0] = '\0';
        assert_null(load(a2, NULL, err));
        assert_non_null(strstr(err, "--upstream-proxy"));
    }
    char *a3[] = {"gkm", "--public-url", "gkm.example.org", NULL};
    assert_null(load(a3, NULL, err));
}

static void test_precedence(void **state)
{
    (void)state;
    char err[512] = "";
    char *envp[] = {"GKM_LISTEN=127.0.0.2:6000", "GKM_LOG_LEVEL=debug",
                    "GKM_UPSTREAM=http://127.0.0.1:9/", "GKM_TOKEN=envtok",
                    "OTHER=1", NULL};
    char *argv[] = {"gkm", "--listen", "[::1]:7000", "--token=a", "--token",
                    "b", "--max-body-size", "2M", "--idle-timeout", "1.5s",
                    NULL};
    struct gkm_config *c = load(argv, envp, err);
    assert_non_null(c);
    assert_string_equal(c->listen_host, "::1");
    assert_int_equal(c->listen_port, 7000);
    assert_int_equal(c->log_level, GKM_LOG_DEBUG);
    assert_string_equal(c->upstream, "http://127.0.0.1:9");
    assert_int_equal(c->ntokens, 2); /* flags replace the env token */
    assert_string_equal(c->tokens[0], "a");
    assert_string_equal(c->tokens[1], "b");
    assert_true(c->max_body_bytes == 2ULL * 1024 * 1024);
    assert_true(c->idle_timeout_ms == 1500);
    gkm_config_free(c);

    char *argv2[] = {"gkm", NULL};
    c = load(argv2, envp, err);
    assert_non_null(c);
    assert_int_equal(c->ntokens, 1);
    assert_string_equal(c->tokens[0], "envtok");
    assert_string_equal(c->listen_host, "127.0.0.2");
    gkm_config_free(c);
}

static void bad(char **argv, char **envp, const char *needle)
{
    char err[512] = "";
    struct gkm_config *c = load(argv, envp, err);
    assert_null(c);
    if (strstr(err, needle) == NULL)
        fail_msg("error '%s' lacks '%s'", err, needle);
}

static void test_errors(void **state)
{
    (void)state;
    bad((char *[]){"gkm", "--bogus", NULL}, NULL, "--bogus");
    bad((char *[]){"gkm", "--listen", NULL}, NULL, "needs a value");
    bad((char *[]){"gkm", "--listen", "nohost", NULL}, NULL, "--listen");
    bad((char *[]){"gkm", "--listen", "1.2.3.4:99999", NULL}, NULL, "port");
    bad((char *[]){"gkm", "--listen", "::1:5000", NULL}, NULL, "brackets");
    bad((char *[]){"gkm", "--log-level", "loud", NULL}, NULL, "--log-level");
    bad((char *[]){"gkm", "--max-body-size", "10X", NULL}, NULL, "unit");
    bad((char *[]){"gkm", "--max-attempts", "0", NULL}, NULL, "--max-attempts");
    bad((char *[]){"gkm", "--idle-timeout", "5y", NULL}, NULL, "unit");
    bad((char *[]){"gkm", "--upstream", "ftp://x", NULL}, NULL, "http");
    bad((char *[]){"gkm", "--token", "has space", NULL}, NULL, "token");
    bad((char *[]){"gkm", NULL}, (char *[]){"GKM_MAX_ATTEMPTS=abc", NULL},
        "GKM_MAX_ATTEMPTS");
    /* The well-known token is refused on a non-loopback address... */
    bad((char *[]){"gkm", "--listen", "0.0.0.0:5000", NULL}, NULL,
        "default token");
    bad((char *[]){"gkm", "--listen", "[::]:5000", NULL}, NULL,
        "default token");
    /* ...and a secret token never appears in an error message. */
    char err[512] = "";
    char *argv[] = {"gkm", "--token", "s3cr3t token", NULL};
    assert_null(load(argv, NULL, err));
    assert_null(strstr(err, "s3cr3t"));
}

static void test_public_with_token_and_actions(void **state)
{
    (void)state;
    char err[512] = "";
    char *argv[] = {"gkm", "--listen", "0.0.0.0:5000", "--token", "x-secret",
                    "--check", NULL};
    struct gkm_config *c = load(argv, NULL, err);
    assert_non_null(c);
    assert_int_equal(c->command, GKM_CMD_CHECK);
    gkm_config_free(c);
    char *argv2[] = {"gkm", "--help", NULL};
    c = load(argv2, NULL, err);
    assert_non_null(c);
    assert_int_equal(c->command, GKM_CMD_HELP);
    gkm_config_free(c);
    assert_true(gkm_config_host_is_loopback("127.0.0.1"));
    assert_true(gkm_config_host_is_loopback("127.1.2.3"));
    assert_true(gkm_config_host_is_loopback("::1"));
    assert_true(gkm_config_host_is_loopback("localhost"));
    assert_false(gkm_config_host_is_loopback("0.0.0.0"));
    assert_false(gkm_config_host_is_loopback("192.168.1.2"));
    assert_false(gkm_config_host_is_loopback("::"));
}

static void test_token_file(void **state)
{
    (void)state;
    char path[] = "/tmp/gkm-tokens-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "# tokens\n\nalpha\n  beta  \r\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char err[512] = "";
    char *argv[] = {"gkm", "--token-file", path, NULL};
    struct gkm_config *c = load(argv, NULL, err);
    assert_non_null(c);
    assert_int_equal(c->ntokens, 2);
    assert_string_equal(c->tokens[0], "alpha");
    assert_string_equal(c->tokens[1], "beta");
    gkm_config_free(c);
    char *argv2[] = {"gkm", "--token", "gamma", "--token-file", path, NULL};
    c = load(argv2, NULL, err);
    assert_non_null(c);
    assert_int_equal(c->ntokens, 3);
    gkm_config_free(c);
    unlink(path);
    bad((char *[]){"gkm", "--token-file", "/nonexistent/tok", NULL}, NULL,
        "/nonexistent/tok");
}

static void test_usage_lists_every_option(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    gkm_config_usage(f);
    fclose(f);
    const char *flags[] = {"--listen", "--keys", "--usage-file", "--token",
                           "--token-file", "--upstream", "--log-level",
                           "--log-file", "--reset-timezone", "--check",
                           "--help", "--version", "GKM_LISTEN"};
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        assert_non_null(strstr(buf, flags[i]));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_proxy_and_public_url),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_public_with_token_and_actions),
        cmocka_unit_test(test_token_file),
        cmocka_unit_test(test_usage_lists_every_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
