/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dj-util.h"
#include "xdg.h"

static void test_parse_size(void **state) {
        static const struct {
                const char *s;
                int r;
                uint64_t v;
        } cases[] = {
                { "0", 0, 0 },
                { "1024", 0, 1024 },
                { "8M", 0, 8 << 20 },
                { "512K", 0, 512 << 10 },
                { "1G", 0, 1 << 30 },
                { "2MiB", 0, 2 << 20 },
                { "3kb", 0, 3 << 10 },
                { "", -EINVAL, 0 },
                { "-1", -EINVAL, 0 },
                { "8Q", -EINVAL, 0 },
                { "M", -EINVAL, 0 },
                { "1 M", -EINVAL, 0 },
                { "99999999999999999999", -ERANGE, 0 },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                uint64_t v = 0;

                assert_int_equal(parse_size(cases[i].s, &v), cases[i].r);
                if (cases[i].r == 0)
                        assert_int_equal(v, cases[i].v);
        }
}

static void test_parse_uint_bool(void **state) {
        uint64_t v;

        assert_int_equal(parse_uint_range("5", 1, 10, &v), 0);
        assert_int_equal(v, 5);
        assert_int_equal(parse_uint_range("0", 1, 10, &v), -ERANGE);
        assert_int_equal(parse_uint_range("11", 1, 10, &v), -ERANGE);
        assert_int_equal(parse_uint_range("5x", 1, 10, &v), -EINVAL);
        assert_int_equal(parse_uint_range(" 5", 1, 10, &v), -EINVAL);
        assert_int_equal(parse_boolean("yes"), 1);
        assert_int_equal(parse_boolean("On"), 1);
        assert_int_equal(parse_boolean("0"), 0);
        assert_int_equal(parse_boolean("off"), 0);
        assert_int_equal(parse_boolean("maybe"), -EINVAL);
}

static void test_timestamp(void **state) {
        char *s;

        assert_int_equal(setenv("TZ", "UTC", 1), 0);
        s = format_timestamp_iso(UINT64_C(1795493045765442));
        assert_string_equal(s, "2026-11-24T04:04:05.765+00:00");
        free(s);
        assert_int_equal(setenv("TZ", "Asia/Kolkata", 1), 0);
        s = format_timestamp_iso(UINT64_C(1795493045765442));
        /* Without zoneinfo installed glibc falls back to UTC; either way the offset is explicit. */
        assert_true(strcmp(s, "2026-11-24T09:34:05.765+05:30") == 0 ||
                    strcmp(s, "2026-11-24T04:04:05.765+00:00") == 0);
        free(s);
        (void) unsetenv("TZ");
}

static void test_duration_path(void **state) {
        char buf[32];
        char *p;

        assert_string_equal(format_duration(buf, sizeof(buf), 250 * 1000), "250ms");
        assert_string_equal(format_duration(buf, sizeof(buf), UINT64_C(2500000)), "2.5s");
        assert_string_equal(format_duration(buf, sizeof(buf), UINT64_C(125) * 1000000), "2m 5s");
        assert_string_equal(
                format_duration(buf, sizeof(buf), UINT64_C(3) * 86400 * 1000000 + UINT64_C(7200) * 1000000),
                "3d 2h");
        p = path_join("/a/", "b");
        assert_string_equal(p, "/a/b");
        free(p);
        p = path_join("/a", "b/c");
        assert_string_equal(p, "/a/b/c");
        free(p);
}

static void test_read_write_full(void **state) {
        char path[] = "/tmp/djdesk-test-util-XXXXXX", in[100000], out[sizeof(in) + 10];
        int fd;

        for (size_t i = 0; i < sizeof(in); i++)
                in[i] = (char) (i * 7);
        fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(write_full(fd, in, sizeof(in)), 0);
        assert_int_equal(write_full(fd, in, 0), 0);
        assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
        /* Less than asked for only at the end of the file. */
        assert_int_equal(read_full(fd, out, 10), 10);
        assert_int_equal(read_full(fd, out + 10, sizeof(out) - 10), sizeof(in) - 10);
        assert_memory_equal(in, out, sizeof(in));
        assert_int_equal(read_full(fd, out, sizeof(out)), 0);
        assert_int_equal(close(fd), 0);
        assert_int_equal(read_full(fd, out, 1), -EBADF);
        assert_int_equal(write_full(fd, in, 1), -EBADF);
}

static void test_xdg(void **state) {
        /* In order: each step sets a variable (or unsets it: NULL), then checks a lookup (if any). */
        static const struct {
                const char *var, *value;
                int (*lookup)(char **ret);
                int r;
                const char *path;
        } steps[] = {
                { "HOME", "/home/u" },
                /* A relative path is ignored, as the spec says. */
                { "XDG_STATE_HOME", "relative", xdg_state_home, 0, "/home/u/.local/state" },
                { "XDG_CONFIG_HOME", "/cfg", xdg_config_home, 0, "/cfg" },
                { "DJDESK_SOCKET", NULL },
                { "XDG_RUNTIME_DIR", NULL, djdesk_socket_path, -ENXIO },
                { "XDG_RUNTIME_DIR", "/run/user/1000", djdesk_socket_path, 0,
                  "/run/user/1000/djdesk/daemon.sock" },
                { "DJDESK_SOCKET", "/tmp/x.sock", djdesk_socket_path, 0, "/tmp/x.sock" },
        };

        for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
                char *p = NULL;

                if (steps[i].value)
                        assert_int_equal(setenv(steps[i].var, steps[i].value, 1), 0);
                else
                        assert_int_equal(unsetenv(steps[i].var), 0);
                if (!steps[i].lookup)
                        continue;
                assert_int_equal(steps[i].lookup(&p), steps[i].r);
                if (steps[i].r == 0)
                        assert_string_equal(p, steps[i].path);
                free(p);
        }
}

static void test_utf8_sanitize(void **state) {
        static const struct {
                const char *in;
                size_t len;
                const char *out;
        } cases[] = {
                { "", 0, "" },
                { "plain ascii", 11, "plain ascii" },
                { "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x8d", 14,
                  "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x8d" },
                { "a\xff\x62", 3, "a\xef\xbf\xbd\x62" },                       /* never valid */
                { "\x80\x80", 2, "\xef\xbf\xbd\xef\xbf\xbd" },                 /* stray continuations */
                { "x\xc3", 2, "x\xef\xbf\xbd" },                               /* truncated at the end */
                { "\xe2\x82x", 3, "\xef\xbf\xbdx" },                           /* truncated: one U+FFFD */
                { "\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd" },                 /* overlong '/' */
                { "\xe0\x80\xaf", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" }, /* overlong */
                { "\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" }, /* a surrogate */
                { "\xf4\x90\x80\x80", 4,
                  "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" }, /* past U+10FFFF */
                { "\xf4\x8f\xbf\xbf", 4, "\xf4\x8f\xbf\xbf" },          /* U+10FFFF itself */
                { "a\0b", 3, "a\xef\xbf\xbd\x62" },                     /* NUL */
                { "latin-1 \xe9t\xe9", 11, "latin-1 \xef\xbf\xbdt\xef\xbf\xbd" },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char *s = utf8_sanitize(cases[i].in, cases[i].len);

                assert_non_null(s);
                assert_string_equal(s, cases[i].out);
                free(s);
        }
}

static void test_path_find_executable(void **state) {
        char *p = NULL;

        /* Found in the first absolute entry that has it; relative and empty entries are never searched. */
        assert_int_equal(path_find_executable("sh", "relative:::/nonexistent:/bin:/usr/bin", &p), 0);
        assert_string_equal(p, "/bin/sh");
        free(p);
        p = NULL;
        assert_int_equal(path_find_executable("sh", ".:bin:", &p), -ENOENT);
        assert_int_equal(path_find_executable("sh", NULL, &p), -ENOENT);
        assert_int_equal(path_find_executable("no-such-program-djdesk", "/bin:/usr/bin", &p), -ENOENT);
        /* A regular file that is not executable. */
        assert_int_equal(path_find_executable("passwd", "/etc", &p), -EACCES);
        /* Names with a slash are not looked up. */
        assert_int_equal(path_find_executable("bin/sh", "/", &p), -ENOENT);
        assert_null(p);
}

static void test_greedy_realloc(void **state) {
        int *a = NULL;
        size_t allocated = 0;

        assert_int_equal(greedy_realloc((void **) &a, &allocated, 0, sizeof(int)), 0);
        assert_null(a);
        for (int i = 0; i < 1000; i++) {
                size_t before = allocated;

                assert_int_equal(greedy_realloc((void **) &a, &allocated, (size_t) i + 1, sizeof(int)), 0);
                assert_true(allocated >= (size_t) i + 1);
                /* Grows only when full, and then at least doubles. */
                assert_true(allocated == before || allocated >= MAX(before * 2, (size_t) 64));
                a[i] = i;
        }
        for (int i = 0; i < 1000; i++)
                assert_int_equal(a[i], i);
        /* An impossible size fails and changes nothing. */
        assert_int_equal(greedy_realloc((void **) &a, &allocated, SIZE_MAX / 2, 16), -ENOMEM);
        assert_true(allocated >= 1000 && allocated < SIZE_MAX / 2);
        free(a);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_size),
                cmocka_unit_test(test_parse_uint_bool),
                cmocka_unit_test(test_timestamp),
                cmocka_unit_test(test_duration_path),
                cmocka_unit_test(test_xdg),
                cmocka_unit_test(test_utf8_sanitize),
                cmocka_unit_test(test_read_write_full),
                cmocka_unit_test(test_path_find_executable),
                cmocka_unit_test(test_greedy_realloc),
        };

        return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
