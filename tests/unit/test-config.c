/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "config-file.h"
#include "dj-util.h"
#include "test-tmpdir.h"

static char tmpdir[64];

static int setup(void **state) {
        test_mkdtemp(tmpdir, sizeof(tmpdir), "config");
        assert_int_equal(setenv("XDG_RUNTIME_DIR", tmpdir, 1), 0);
        assert_int_equal(setenv("XDG_STATE_HOME", tmpdir, 1), 0);
        (void) unsetenv("DJDESK_LOG_LEVEL");
        (void) unsetenv("DJDESK_SOCKET");
        (void) unsetenv("DJDESK_FORCE_PORT");
        (void) unsetenv("DJDESK_PYTHON");
        (void) unsetenv("INSPECTOR_DATA_LAB_ROOT");
        (void) unsetenv("DJDESK_DATA_LAB_ROOT");
        return 0;
}

static int teardown(void **state) {
        test_rm_rf(tmpdir);
        return 0;
}

static char *write_conf(const char *text) {
        char *p = path_join(tmpdir, "djdesk.conf");
        FILE *f;

        assert_non_null(p);
        f = fopen(p, "we");
        assert_non_null(f);
        assert_int_equal(fputs(text, f) >= 0, 1);
        assert_int_equal(fclose(f), 0);
        return p;
}

static void test_defaults(void **state) {
        _cleanup_free_ char *missing = path_join(tmpdir, "nope.conf");
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ char *sock = path_join(tmpdir, "djdesk/daemon.sock");

        assert_int_equal(config_load(missing, NULL, 0, &c, NULL), 0);
        assert_false(c->file_loaded);
        assert_int_equal(c->log_level, LOG_INFO);
        assert_int_equal(c->max_clients, 256);
        assert_int_equal(c->client_output_limit, 8 << 20);
        assert_int_equal(c->event_ring, 4096);
        assert_int_equal(c->dbus, DBUS_MODE_AUTO);
        assert_string_equal(c->socket, sock);
        assert_null(c->python);
        assert_int_equal(c->force_port, 0);
        assert_int_equal(c->notifications, NOTIFY_MODE_ALL);
        assert_int_equal(c->task_timeout_sec, 60);
        assert_int_equal(c->max_parallel, 2);
        assert_int_equal(c->run_retention, 500);
        assert_int_equal(c->cancel_grace_sec, 5);
        assert_non_null(c->presets_dir);
        assert_non_null(strstr(c->presets_dir, "/djdesk/presets.d"));
        for (int i = 0; i < _CONFIG_ITEM_MAX; i++)
                assert_int_equal(c->origin[i].source, CONFIG_SOURCE_DEFAULT);
}

static void test_good_file(void **state) {
        _cleanup_free_ char *p = write_conf("# comment\n"
                                            "[daemon]\n"
                                            "log_level = debug\n"
                                            "max_clients = 12\n"
                                            "client_output_limit = 512K\n"
                                            "dbus = no\n"
                                            "\n"
                                            "[server]\n"
                                            "force_port = 8123\n"
                                            "python = /usr/bin/python3\n"
                                            "[daemon]\n"
                                            "notifications = failures\n"
                                            "[tasks]\n"
                                            "timeout_sec = 600\n"
                                            "max_parallel = 4\n"
                                            "retention = 10\n"
                                            "cancel_grace_sec = 1\n");
        _cleanup_(config_freep) Config *c = NULL;

        assert_int_equal(config_load(p, NULL, 0, &c, NULL), 0);
        assert_true(c->file_loaded);
        assert_int_equal(c->log_level, LOG_DEBUG);
        assert_int_equal(c->max_clients, 12);
        assert_int_equal(c->client_output_limit, 512 << 10);
        assert_int_equal(c->dbus, DBUS_MODE_NO);
        assert_int_equal(c->force_port, 8123);
        assert_string_equal(c->python, "/usr/bin/python3");
        assert_int_equal(c->origin[CONFIG_LOG_LEVEL].source, CONFIG_SOURCE_FILE);
        assert_int_equal(c->origin[CONFIG_LOG_LEVEL].line, 3);
        assert_int_equal(c->origin[CONFIG_FORCE_PORT].line, 9);
        assert_int_equal(c->origin[CONFIG_EVENT_RING].source, CONFIG_SOURCE_DEFAULT);
        assert_int_equal(c->notifications, NOTIFY_MODE_FAILURES);
        assert_int_equal(c->task_timeout_sec, 600);
        assert_int_equal(c->max_parallel, 4);
        assert_int_equal(c->run_retention, 10);
        assert_int_equal(c->cancel_grace_sec, 1);
}

static void test_bad_values(void **state) {
        static const struct {
                const char *text;
                const char *expect; /* substring of the error */
        } cases[] = {
                { "[daemon]\nmax_clients = lots\n",
                  "djdesk.conf:2: invalid value 'lots' for 'max_clients'" },
                { "[daemon]\n\n\nmax_clients = 0\n",
                  "djdesk.conf:4: invalid value '0' for 'max_clients': out of range" },
                { "[daemon]\nlog_level = chatty\n",
                  "djdesk.conf:2: invalid value 'chatty' for 'log_level'" },
                { "[daemon]\nclient_output_limit = 8Q\n", "djdesk.conf:2: invalid value '8Q'" },
                { "[daemon]\nclient_output_limit = 1K\n", "out of range" },
                { "[daemon]\ndbus = maybe\n", "djdesk.conf:2: invalid value 'maybe' for 'dbus'" },
                { "[daemon]\nsocket = relative/path\n", "not an absolute path" },
                { "[server]\nforce_port = 70000\n",
                  "djdesk.conf:2: invalid value '70000' for 'force_port'" },
                { "[daemon\nlog_level = info\n", "djdesk.conf:1: syntax error" },
                { "[daemon]\nnotifications = some\n",
                  "djdesk.conf:2: invalid value 'some' for 'notifications': expected all, failures or off" },
                { "[tasks]\nmax_parallel = 0\n", "invalid value '0' for 'max_parallel': out of range" },
                { "[tasks]\ntimeout_sec = 86401\n",
                  "invalid value '86401' for 'timeout_sec': out of range" },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                _cleanup_free_ char *p = write_conf(cases[i].text);
                _cleanup_(config_freep) Config *c = NULL;
                DjError err = DJ_ERROR_INIT;

                assert_int_equal(config_load(p, NULL, 0, &c, &err), -EINVAL);
                assert_null(c);
                assert_non_null(err.message);
                if (!strstr(err.message, cases[i].expect))
                        fail_msg("case %zu: '%s' does not contain '%s'", i, err.message, cases[i].expect);
                dj_error_done(&err);
        }
}

static void test_unknown_key(void **state) {
        _cleanup_free_ char *p = write_conf("[daemon]\nfrobnicate = 1\nmax_clients = 3\n[nosuch]\nx = y\n");
        _cleanup_(config_freep) Config *c = NULL;

        /* A warning, not an error: the rest still applies. */
        assert_int_equal(config_load(p, NULL, 0, &c, NULL), 0);
        assert_int_equal(c->max_clients, 3);
}

static void test_precedence(void **state) {
        _cleanup_free_ char *p =
                write_conf("[daemon]\nlog_level = error\nmax_clients = 5\n[server]\nforce_port = 9000\n");
        _cleanup_(config_freep) Config *c = NULL;
        ConfigOverride o[] = { { CONFIG_MAX_CLIENTS, (char *) "7" } };
        char *buf = NULL;
        size_t n = 0;
        FILE *f;

        assert_int_equal(setenv("DJDESK_LOG_LEVEL", "warning", 1), 0);
        assert_int_equal(setenv("DJDESK_FORCE_PORT", "9100", 1), 0);
        assert_int_equal(setenv("DJDESK_DATA_LAB_ROOT", "/srv/lab", 1), 0);
        assert_int_equal(config_load(p, o, 1, &c, NULL), 0);
        (void) unsetenv("DJDESK_LOG_LEVEL");
        (void) unsetenv("DJDESK_FORCE_PORT");
        (void) unsetenv("DJDESK_DATA_LAB_ROOT");

        assert_int_equal(c->log_level, LOG_WARNING); /* env beats file */
        assert_int_equal(c->force_port, 9100);
        assert_int_equal(c->max_clients, 7);               /* command line beats file */
        assert_string_equal(c->data_lab_root, "/srv/lab"); /* the second alias */
        assert_int_equal(c->origin[CONFIG_LOG_LEVEL].source, CONFIG_SOURCE_ENV);
        assert_string_equal(c->origin[CONFIG_LOG_LEVEL].env, "DJDESK_LOG_LEVEL");
        assert_int_equal(c->origin[CONFIG_MAX_CLIENTS].source, CONFIG_SOURCE_CMDLINE);

        f = open_memstream(&buf, &n);
        assert_non_null(f);
        config_print(c, f);
        assert_int_equal(fclose(f), 0);
        assert_non_null(strstr(buf, "log_level = warning  ; env DJDESK_LOG_LEVEL\n"));
        assert_non_null(strstr(buf, "max_clients = 7  ; command line\n"));
        assert_non_null(strstr(buf, "event_ring = 4096  ; default\n"));
        assert_non_null(strstr(buf, "data_lab_root = /srv/lab  ; env DJDESK_DATA_LAB_ROOT\n"));
        free(buf);

        /* A bad environment value is an error naming the variable. */
        DjError err = DJ_ERROR_INIT;
        Config *bad = NULL;
        assert_int_equal(setenv("DJDESK_FORCE_PORT", "http", 1), 0);
        assert_true(config_load(p, NULL, 0, &bad, &err) < 0);
        (void) unsetenv("DJDESK_FORCE_PORT");
        assert_non_null(strstr(err.message, "DJDESK_FORCE_PORT"));
        dj_error_done(&err);
}

static void test_print_file_origin(void **state) {
        _cleanup_free_ char *p = write_conf("[daemon]\n\nevent_ring = 64\n");
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ char *expect = NULL;
        char *buf = NULL;
        size_t n = 0;
        FILE *f;

        assert_int_equal(config_load(p, NULL, 0, &c, NULL), 0);
        f = open_memstream(&buf, &n);
        config_print(c, f);
        assert_int_equal(fclose(f), 0);
        assert_true(asprintf(&expect, "event_ring = 64  ; %s:3\n", p) > 0);
        assert_non_null(strstr(buf, expect));
        free(buf);
}

static void test_print_round_trip(void **state) {
        _cleanup_free_ char *p = write_conf("[daemon]\nmax_clients = 9\nclient_output_limit = 3M\n"
                                            "[server]\nforce_port = 8001\npython = /opt/py/bin/python3\n");
        _cleanup_free_ char *q = path_join(tmpdir, "printed.conf");
        _cleanup_(config_freep) Config *a = NULL, *b = NULL;
        FILE *f;

        /* What --print-config prints is itself a configuration file that means the same. */
        assert_int_equal(config_load(p, NULL, 0, &a, NULL), 0);
        f = fopen(q, "we");
        assert_non_null(f);
        config_print(a, f);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(config_load(q, NULL, 0, &b, NULL), 0);
        for (int i = 0; i < _CONFIG_ITEM_MAX; i++)
                assert_true(config_item_equal(a, b, i));
        assert_int_equal(b->max_clients, 9);
        assert_string_equal(b->python, "/opt/py/bin/python3");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),         cmocka_unit_test(test_good_file),
                cmocka_unit_test(test_bad_values),       cmocka_unit_test(test_unknown_key),
                cmocka_unit_test(test_precedence),       cmocka_unit_test(test_print_file_origin),
                cmocka_unit_test(test_print_round_trip),
        };

        return cmocka_run_group_tests_name("config", tests, setup, teardown);
}
