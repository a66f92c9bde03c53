/*
 * test_keyfile.c - key.txt parsing: comments, blanks, CRLF, BOM, trimming,
 * attributes, duplicates, errors that never show a key in clear.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "keyfile.h"
#include "util.h"

#define K1 "AIzaSyA1111111111111111111111111111111a"
#define K2 "AIzaSyB2222222222222222222222222222222b"
#define K3 "AIzaSyC3333333333333333333333333333333c"

static int parse(const char *text, struct gkm_keyfile *kf, char *err,
                 size_t errlen)
{
    return gkm_keyfile_parse(text, strlen(text), kf, err, errlen);
}

static void test_basic_comments_blanks(void **state)
{
    (void)state;
    struct gkm_keyfile kf;
    char err[256] = "";
    const char *text = "# my keys\n"
                       "\n"
                       "   \t\n" K1 "\n"
                       "  # indented comment\n"
                       "\t " K2 "  \t\n" K3 " # inline comment\n";
    assert_int_equal(parse(text, &kf, err, sizeof(err)), 0);
    assert_int_equal(kf.n, 3);
    assert_string_equal(kf.keys[0].secret, K1);
    assert_int_equal(kf.keys[0].line, 4);
    assert_null(kf.keys[0].project);
    assert_string_equal(kf.keys[1].secret, K2);
    assert_int_equal(kf.keys[1].line, 6);
    assert_string_equal(kf.keys[2].secret, K3);
    assert_int_equal(kf.keys[2].line, 7);
    assert_int_equal(kf.nwarnings, 0);
    gkm_keyfile_free(&kf);
    assert_int_equal(kf.n, 0);
    assert_null(kf.keys);
}

static void test_crlf_bom_no_final_newline(void **state)
{
    (void)state;
    struct gkm_keyfile kf;
    char err[256] = "";
    const char *text = "\xEF\xBB\xBF" K1 "\r\n\r\n# c\r\n" K2;
    assert_int_equal(parse(text, &kf, err, sizeof(err)), 0);
    assert_int_equal(kf.n, 2);
    assert_string_equal(kf.keys[0].secret, K1);
    assert_string_equal(kf.keys[1].secret, K2);
    assert_int_equal(kf.keys[1].line, 4);
    gkm_keyfile_free(&kf);

    /* A BOM followed directly by a comment. */
    assert_int_equal(parse("\xEF\xBB\xBF# only\n" K3 "\n", &kf, err,
                           sizeof(err)),
                     0);
    assert_int_equal(kf.n, 1);
    assert_string_equal(kf.keys[0].secret, K3);
    gkm_keyfile_free(&kf);
}

static void test_hash_inside_key(void **state)
{
    (void)state;
    struct gkm_keyfile kf;
    char err[256];
    /* '#' only starts a comment at the start or after a blank. */
    assert_int_equal(parse("abc#def123\n", &kf, err, sizeof(err)), 0);
    assert_int_equal(kf.n, 1);
    assert_string_equal(kf.keys[0].secret, "abc#def123");
    gkm_keyfile_free(&kf);
}

static void test_project_attribute(void **state)
{
    (void)state;
    struct gkm_keyfile kf;
    char err[256] = "";
    const char *text = K1 " project=alpha\n" K2 "\tproject=alpha # c\n" K3
                          "\n";
    assert_int_equal(parse(text, &kf, err, sizeof(err)), 0);
    assert_int_equal(kf.n, 3);
    assert_string_equal(kf.keys[0].project, "alpha");
    assert_string_equal(kf.keys[1].project, "alpha");
    assert_null(kf.keys[2].project);
    gkm_keyfile_free(&kf);

    assert_int_equal(parse(K1 " project=\n", &kf, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "line 1"));
    assert_non_null(strstr(err, "empty project"));
    assert_int_equal(kf.n, 0);
    assert_int_equal(
        parse(K1 " project=a project=b\n", &kf, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "twice"));
}

static void test_unknown_attribute(void **state)
{
    (void)state;
    struct gkm_keyfile kf;
    char err[256] = "";
    assert_int_equal(parse(K1 "\n" K2 " color=blue\n", &kf, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "line 2"));
    assert_non_null(strstr(err, "unknown attribute 'color'"));
    assert_int_equal(kf.n, 0);
    assert_null(kf.keys);
    assert_null(strstr(err, K2));

    /* Two keys on one line: the second is shown masked, never in clear. */
    assert_int_equal(parse(K1 " " K2 "\n", &kf, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "line 1"));
    assert_null(strstr(err, K1));
    assert_null(strstr(err, K2));
    assert_non_null(strstr(err, "...222b"));
}

static void test_duplicates_dropped(void **state)
{
    (void)state;
    struct gkm_keyfile kf;
    char err[256] = "";
    const char *text = K1 "\n" K2 "\n" K1 " project=x\n" K2 "\n";
    assert_int_equal(parse(text, &kf, err, sizeof(err)), 0);
    assert_int_equal(kf.n, 2);
    assert_null(kf.keys[0].project); /* first occurrence wins */
    assert_int_equal(kf.nwarnings, 2);
    assert_non_null(strstr(kf.warnings[0], "line 3"));
    assert_non_null(strstr(kf.warnings[0], "line 1"));
    assert_non_null(strstr(kf.warnings[0], "...111a"));
    assert_null(strstr(kf.warnings[0], K1));
    assert_non_null(strstr(kf.warnings[1], "line 4"));
    gkm_keyfile_free(&kf);
    assert_int_equal(kf.nwarnings, 0);
    assert_null(kf.warnings);
}

static void test_many_keys_and_duplicates(void **state)
{
    (void)state;
    /* Enough keys to grow the duplicate set several times. */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    for (int i = 0; i < 5000; i++)
        fprintf(f, "AIzaSyMANY%029d\n", i);
    for (int i = 0; i < 5000; i += 7)
        fprintf(f, "AIzaSyMANY%029d\n", i);
    fclose(f);
    struct gkm_keyfile kf;
    char err[256];
    assert_int_equal(gkm_keyfile_parse(text, len, &kf, err, sizeof(err)), 0);
    assert_int_equal(kf.n, 5000);
    assert_int_equal(kf.nwarnings, (5000 + 6) / 7);
    char want[64];
    snprintf(want, sizeof(want), "AIzaSyMANY%029d", 4999);
    assert_string_equal(kf.keys[4999].secret, want);
    gkm_keyfile_free(&kf);
    free(text);
}

static void test_control_chars(void **state)
{
    (void)state;
    struct gkm_keyfile kf;
    char err[256] = "";
    assert_int_equal(parse(K1 "\nAIzaSy\x01" "abcdefgh\n", &kf, err,
                           sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "line 2"));
    assert_non_null(strstr(err, "control"));
    assert_null(strchr(err, '\x01'));
    assert_int_equal(kf.n, 0);

    /* Embedded NUL (length-delimited input). */
    const char nul[] = "abcdefgh\0ijkl\n";
    assert_int_equal(gkm_keyfile_parse(nul, sizeof(nul) - 1, &kf, err,
                                       sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "line 1"));

    /* Non-ASCII. */
    assert_int_equal(parse("caf\xC3\xA9-key-1234\n", &kf, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "line 1"));

    /* Too long. */
    char longkey[300];
    memset(longkey, 'k', 257);
    longkey[257] = '\n';
    longkey[258] = '\0';
    assert_int_equal(parse(longkey, &kf, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "too long"));
    longkey[256] = '\n';
    longkey[257] = '\0';
    assert_int_equal(parse(longkey, &kf, err, sizeof(err)), 0);
    assert_int_equal(kf.n, 1);
    assert_int_equal(strlen(kf.keys[0].secret), 256);
    gkm_keyfile_free(&kf);
}

static void test_empty(void **state)
{
    (void)state;
    struct gkm_keyfile kf;
    char err[256] = "x";
    assert_int_equal(gkm_keyfile_parse("", 0, &kf, err, sizeof(err)), 0);
    assert_int_equal(kf.n, 0);
    gkm_keyfile_free(&kf);
    assert_int_equal(parse("# nothing\n\n  \n", &kf, err, sizeof(err)), 0);
    assert_int_equal(kf.n, 0);
    gkm_keyfile_free(&kf);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_load(void **state)
{
    (void)state;
    char dir[] = "/tmp/gkm-keyfile-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = gkm_xasprintf("%s/key.txt", dir);
    struct gkm_keyfile kf;
    char err[512];

    /* Missing: the message names the path. */
    assert_int_equal(gkm_keyfile_load(path, &kf, err, sizeof(err)), -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "not found"));

    /* Empty: an error for load. */
    write_text(path, "# no keys yet\n");
    assert_int_equal(gkm_keyfile_load(path, &kf, err, sizeof(err)), -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "contains no keys"));
    assert_int_equal(kf.n, 0);

    /* Parse errors carry the path and line. */
    write_text(path, K1 "\n" K2 " bogus=1\n");
    assert_int_equal(gkm_keyfile_load(path, &kf, err, sizeof(err)), -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "line 2"));

    write_text(path, K1 "\n" K2 " project=p\n");
    assert_int_equal(gkm_keyfile_load(path, &kf, err, sizeof(err)), 0);
    assert_int_equal(kf.n, 2);
    assert_string_equal(kf.keys[1].project, "p");
    gkm_keyfile_free(&kf);

    /* A directory is unreadable as a key file. */
    assert_int_equal(gkm_keyfile_load(dir, &kf, err, sizeof(err)), -1);
    assert_non_null(strstr(err, dir));

    unlink(path);
    rmdir(dir);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_comments_blanks),
        cmocka_unit_test(test_crlf_bom_no_final_newline),
        cmocka_unit_test(test_hash_inside_key),
        cmocka_unit_test(test_project_attribute),
        cmocka_unit_test(test_unknown_attribute),
        cmocka_unit_test(test_duplicates_dropped),
        cmocka_unit_test(test_many_keys_and_duplicates),
        cmocka_unit_test(test_control_chars),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
