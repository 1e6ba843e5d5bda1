/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run.h"

typedef struct MaskCase {
        const char *in;
        const char *want; /* NULL: unchanged */
} MaskCase;

static const MaskCase mask_cases[] = {
        /* diffsettings (default output) */
        { "SECRET_KEY = 'django-insecure-abc'  ###", "SECRET_KEY = '********'  ###" },
        { "SECRET_KEY = 'django-insecure-abc'", "SECRET_KEY = '********'" },
        { "EMAIL_HOST_PASSWORD = 'pw'", "EMAIL_HOST_PASSWORD = '********'" },
        { "EMAIL_HOST_PASSWORD = 'pw'  ###", "EMAIL_HOST_PASSWORD = '********'  ###" },
        { "API_KEY = \"k\"", "API_KEY = \"********\"" },
        { "GITHUB_TOKEN = 'x'", "GITHUB_TOKEN = '********'" },
        { "STRIPE_APIKEY = 'x'", "STRIPE_APIKEY = '********'" },
        { "DB_PASSWD = 'x'", "DB_PASSWD = '********'" },
        { "AWS_SECRET_ACCESS_KEY = 'AKIA/xyz+'  ###", "AWS_SECRET_ACCESS_KEY = '********'  ###" },
        { "secret_key = 'lower'", "secret_key = '********'" },
        { "SECRET_KEY='tight'", "SECRET_KEY='********'" },
        /* a dict: only the secret keys */
        { "DATABASES = {'default': {'ENGINE': 'django.db.backends.postgresql', 'NAME': 'x', 'PASSWORD': "
          "'s3cr3t', 'USER': 'u'}}",
          "DATABASES = {'default': {'ENGINE': 'django.db.backends.postgresql', 'NAME': 'x', 'PASSWORD': "
          "'********', 'USER': 'u'}}" },
        { "DATABASES = {'default': {'PASSWORD': 's3cr3t'}, 'replica': {'PASSWORD': 'other', 'HOST': 'h'}}  "
          "###",
          "DATABASES = {'default': {'PASSWORD': '********'}, 'replica': {'PASSWORD': '********', 'HOST': "
          "'h'}}  ###" },
        /* escaped quotes inside the value */
        { "SECRET_KEY = 'a\\'b'", "SECRET_KEY = '********'" },
        { "SECRET_KEY = \"a'b\\\"c\"  ###", "SECRET_KEY = \"********\"  ###" },
        { "CACHES = {'default': {'TOKEN': 'a\\'b', 'X': 'y'}}",
          "CACHES = {'default': {'TOKEN': '********', 'X': 'y'}}" },
        /* values that are not strings */
        { "API_TOKEN = None", "API_TOKEN = '********'" },
        { "API_TOKEN = None  ###", "API_TOKEN = '********'  ###" },
        { "SECRET_NUMBER = 12345  ###", "SECRET_NUMBER = '********'  ###" },
        { "SECRET_KEY_FALLBACKS = ['old1', 'old2']  ###", "SECRET_KEY_FALLBACKS = '********'  ###" },
        { "SECRET_KEY_FALLBACKS = []", "SECRET_KEY_FALLBACKS = '********'" },
        { "X = {'TOKEN': ('a', 'b'), 'Y': 1}", "X = {'TOKEN': '********', 'Y': 1}" },
        { "X = {'TOKEN': 42}", "X = {'TOKEN': '********'}" },
        { "X = {'PASSWORD': None, 'USER': None}", "X = {'PASSWORD': '********', 'USER': None}" },
        { "X = {'TOKEN': Secret('a, b', x=[1, 2]), 'Y': 1}", "X = {'TOKEN': '********', 'Y': 1}" },
        { "X = {'TOKEN': b'raw', 'Y': 1}", "X = {'TOKEN': b'********', 'Y': 1}" },
        { "X = Backend(password='pw', user='u')", "X = Backend(password='********', user='u')" },
        /* dumpdata (JSON) */
        { "    \"password\": \"pbkdf2_sha256$600000$abc$def=\",", "    \"password\": \"********\"," },
        { "{\"model\": \"auth.user\", \"pk\": 1, \"fields\": {\"password\": \"pbkdf2\", \"username\": "
          "\"admin\"}}",
          "{\"model\": \"auth.user\", \"pk\": 1, \"fields\": {\"password\": \"********\", \"username\": "
          "\"admin\"}}" },
        { "      \"api_token\": null", "      \"api_token\": \"********\"" },
        /* --output unified */
        { "+ SECRET_KEY = 'django-insecure-abc'", "+ SECRET_KEY = '********'" },
        { "- SECRET_KEY = ''", NULL },
        { "- EMAIL_HOST_PASSWORD = 'old'", "- EMAIL_HOST_PASSWORD = '********'" },
        { "+ DATABASES = {'default': {'PASSWORD': 'p'}}",
          "+ DATABASES = {'default': {'PASSWORD': '********'}}" },
        { "  DEBUG = False", NULL },
        /* empty values: nothing to hide */
        { "EMAIL_HOST_PASSWORD = ''  ###", NULL },
        { "DATABASES = {'default': {'PASSWORD': '', 'USER': ''}}", NULL },
        /* nothing secret */
        { "", NULL },
        { "DEBUG = True  ###", NULL },
        { "ALLOWED_HOSTS = ['*']  ###", NULL },
        { "DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': '/x/db.sqlite3'}}",
          NULL },
        { "ROOT_URLCONF = 'atlas.urls'  ###", NULL },
        { "X = 'SECRET_KEY = abc'", NULL }, /* inside a string: not a name */
        { "X = {'a': 'PASSWORD'}", NULL },  /* a value, not a key */
        { "SECRET_KEY == 'x'", NULL },      /* a comparison */
        { "System check identified no issues (0 silenced).", NULL },
        { "Operations to perform: PASSWORD reset", NULL },
        { "SECRET_KEY =", NULL },
        { "SECRET_KEY =   ", NULL },
        { "    'PASSWORD':", NULL },
        /* malformed: never a crash; an unterminated string is masked to the end */
        { "SECRET_KEY = 'unterminated", "SECRET_KEY = '********'" },
        { "SECRET_KEY = 'ends in a backslash\\", "SECRET_KEY = '********'" },
        { "X = {'PASSWORD': 'abc", "X = {'PASSWORD': '********'" },
        { "X = {'PASSWORD': [1, 2", "X = {'PASSWORD': '********'" },
        { "X = {'PASSWORD': 1]]]", "X = {'PASSWORD': '********']]]" },
        { "'unterminated key", NULL },
        { "'", NULL },
        { "\"", NULL },
        { "\\", NULL },
        { "=", NULL },
        { "'PASSWORD", NULL },
        { "'PASSWORD'", NULL },
        { "'PASSWORD':'", "'PASSWORD':'********'" },
        { "TOKEN = '", "TOKEN = '********'" },
        { "}}}]]) ,,, ===", NULL },
        { "TOKEN = TOKEN = 'x'", "TOKEN = '********'" },
};

static void test_mask_table(void **state) {
        for (size_t i = 0; i < sizeof(mask_cases) / sizeof(mask_cases[0]); i++) {
                const MaskCase *c = &mask_cases[i];
                char *got = run_mask_secrets(c->in);

                assert_non_null(got);
                if (strcmp(got, c->want ?: c->in) != 0)
                        fail_msg("case %zu: '%s'\n  got:  '%s'\n  want: '%s'", i, c->in, got,
                                 c->want ?: c->in);
                /* always a copy */
                assert_true(got != c->in);
                free(got);
        }
}

static void test_mask_long_and_binary(void **state) {
        char buf[70000], *got;

        /* a long line with nothing to mask */
        memset(buf, 'a', sizeof(buf) - 1);
        buf[sizeof(buf) - 1] = 0;
        got = run_mask_secrets(buf);
        assert_non_null(got);
        assert_string_equal(got, buf);
        free(got);

        /* many secrets on one line: the result grows past the input */
        buf[0] = 0;
        strcat(buf, "X = {");
        for (int i = 0; i < 1000; i++)
                strcat(buf, "'TOKEN':1,");
        strcat(buf, "}");
        got = run_mask_secrets(buf);
        assert_non_null(got);
        assert_non_null(strstr(got, "'TOKEN':'********','TOKEN':'********',"));
        assert_null(strstr(got, ":1,"));
        free(got);

        /* a very long secret-looking name */
        memset(buf, 'A', 300);
        strcpy(buf + 300, "_TOKEN = 'x'");
        got = run_mask_secrets(buf);
        assert_non_null(got);
        free(got);

        /* every byte value */
        for (int i = 0; i < 255; i++)
                buf[i] = (char) (i + 1);
        buf[255] = 0;
        got = run_mask_secrets(buf);
        assert_non_null(got);
        free(got);

        assert_null(run_mask_secrets(NULL));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_mask_table),
                cmocka_unit_test(test_mask_long_and_binary),
        };

        return cmocka_run_group_tests_name("run-text", tests, NULL, NULL);
}
