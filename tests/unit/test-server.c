/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

static void test_state_names(void **state) {
        for (ServerState s = 0; s < _SERVER_STATE_MAX; s++) {
                assert_non_null(server_state_to_string(s));
                assert_int_equal(server_state_from_string(server_state_to_string(s)), s);
        }
        assert_string_equal(server_state_to_string(SERVER_MIGRATING), "migrating");
        assert_int_equal(server_state_from_string("nope"), _SERVER_STATE_INVALID);
        assert_int_equal(server_state_from_string(NULL), _SERVER_STATE_INVALID);
        assert_null(server_state_to_string(_SERVER_STATE_MAX));
        assert_int_equal(server_log_level_from_string("warning"), SERVER_LOG_WARNING);
        assert_string_equal(server_log_kind_to_string(SERVER_LOG_KIND_TRACEBACK), "traceback");
}

/* Lines classified in sequence (the traceback state carries over). */
static void test_classify(void **state) {
        static const struct {
                const char *text;
                ServerLogLevel level;
                ServerLogKind kind;
                int status;
        } lines[] = {
                { "[24/Nov/2026 04:28:47] \"GET / HTTP/1.1\" 200 831", SERVER_LOG_INFO,
                  SERVER_LOG_KIND_REQUEST, 200 },
                { "[24/Nov/2026 04:28:47] \"GET /static/atlas.css HTTP/1.1\" 304 0", SERVER_LOG_INFO,
                  SERVER_LOG_KIND_REQUEST, 304 },
                { "[24/Nov/2026 04:28:48] \"GET /nope/ HTTP/1.1\" 404 179", SERVER_LOG_WARNING,
                  SERVER_LOG_KIND_REQUEST, 404 },
                { "[24/Nov/2026 04:28:49] \"POST /api/x?a=\\\"b HTTP/1.0\" 500 145", SERVER_LOG_ERROR,
                  SERVER_LOG_KIND_REQUEST, 500 },
                { "\"HEAD / HTTP/2\" 301 -", SERVER_LOG_INFO, SERVER_LOG_KIND_REQUEST, 301 },
                { "\"get / HTTP/1.1\" 200 1", SERVER_LOG_INFO, SERVER_LOG_KIND_LOG, 0 },
                { "\"GET / HTTP/1.1\" 2000 1", SERVER_LOG_INFO, SERVER_LOG_KIND_LOG, 0 },
                { "\"GET / HTTP/1.1\" 200", SERVER_LOG_INFO, SERVER_LOG_KIND_REQUEST, 200 },
                { "Traceback (most recent call last):", SERVER_LOG_ERROR, SERVER_LOG_KIND_TRACEBACK, 0 },
                { "  File \"/p/atlas/settings.py\", line 3, in <module>", SERVER_LOG_ERROR,
                  SERVER_LOG_KIND_TRACEBACK, 0 },
                { "    raise RuntimeError(\"boom\")", SERVER_LOG_ERROR, SERVER_LOG_KIND_TRACEBACK, 0 },
                { "RuntimeError: boom", SERVER_LOG_ERROR, SERVER_LOG_KIND_TRACEBACK, 0 },
                { "", SERVER_LOG_INFO, SERVER_LOG_KIND_LOG, 0 },
                { "During handling of the above exception, another exception occurred:", SERVER_LOG_ERROR,
                  SERVER_LOG_KIND_TRACEBACK, 0 },
                { "", SERVER_LOG_ERROR, SERVER_LOG_KIND_TRACEBACK, 0 },
                { "Traceback (most recent call last):", SERVER_LOG_ERROR, SERVER_LOG_KIND_TRACEBACK, 0 },
                { "  File \"x.py\", line 1", SERVER_LOG_ERROR, SERVER_LOG_KIND_TRACEBACK, 0 },
                { "KeyError: 'x'", SERVER_LOG_ERROR, SERVER_LOG_KIND_TRACEBACK, 0 },
                { "djdesk-serve: error: cannot load the application", SERVER_LOG_ERROR, SERVER_LOG_KIND_LOG,
                  0 },
                { "CommandError: Error: That port is already in use.", SERVER_LOG_ERROR, SERVER_LOG_KIND_LOG,
                  0 },
                { "2026-11-24 ERROR django.request boom", SERVER_LOG_ERROR, SERVER_LOG_KIND_LOG, 0 },
                { "CRITICAL something", SERVER_LOG_ERROR, SERVER_LOG_KIND_LOG, 0 },
                { "djdesk-serve: warning: You have 1 unapplied migration(s).", SERVER_LOG_WARNING,
                  SERVER_LOG_KIND_LOG, 0 },
                { "WARNINGS:", SERVER_LOG_WARNING, SERVER_LOG_KIND_LOG, 0 },
                { "  Applying catalog.0001_initial... OK", SERVER_LOG_INFO, SERVER_LOG_KIND_LOG, 0 },
                { "Starting development server at http://127.0.0.1:8000/", SERVER_LOG_INFO,
                  SERVER_LOG_KIND_LOG, 0 },
                /* "error" inside a word or a name is no error. */
                { "  Applying auth.0007_alter_validators_add_error_messages... OK", SERVER_LOG_INFO,
                  SERVER_LOG_KIND_LOG, 0 },
                { "  Applying errors.0001_initial... OK", SERVER_LOG_INFO, SERVER_LOG_KIND_LOG, 0 },
                { "Errors were found in 0 files; error_count=0", SERVER_LOG_INFO, SERVER_LOG_KIND_LOG, 0 },
                { "ERROR_CODE=5 TERRORS", SERVER_LOG_INFO, SERVER_LOG_KIND_LOG, 0 },
                { "no_error: 0", SERVER_LOG_INFO, SERVER_LOG_KIND_LOG, 0 },
                { "[24/Nov/2026 04:28:47] \"GET /error/ HTTP/1.1\" 200 5", SERVER_LOG_INFO,
                  SERVER_LOG_KIND_REQUEST, 200 },
                { "Watching for file changes with StatReloader", SERVER_LOG_INFO, SERVER_LOG_KIND_LOG, 0 },
                { "System check identified no issues (0 silenced).", SERVER_LOG_INFO, SERVER_LOG_KIND_LOG,
                  0 },
                { "djdesk-serve: SIGTERM: stopped accepting, finishing 0 open connection(s)",
                  SERVER_LOG_INFO, SERVER_LOG_KIND_LOG, 0 },
                { "a forewarning: nothing", SERVER_LOG_INFO, SERVER_LOG_KIND_LOG, 0 },
                { "KeyboardInterrupt", SERVER_LOG_INFO, SERVER_LOG_KIND_LOG, 0 },
                { "ValueError:no space", SERVER_LOG_INFO, SERVER_LOG_KIND_LOG, 0 },
                { "Error .x: y", SERVER_LOG_INFO, SERVER_LOG_KIND_LOG, 0 },
                /* Python exception lines, outside a traceback too. */
                { "RuntimeError: boom", SERVER_LOG_ERROR, SERVER_LOG_KIND_LOG, 0 },
                { "django.db.utils.OperationalError: no such table: catalog_instrument", SERVER_LOG_ERROR,
                  SERVER_LOG_KIND_LOG, 0 },
                { "my_app.errors.BadThingException: it broke", SERVER_LOG_ERROR, SERVER_LOG_KIND_LOG, 0 },
                { "RecursionError", SERVER_LOG_ERROR, SERVER_LOG_KIND_LOG, 0 },
                { "json.decoder.JSONDecodeError", SERVER_LOG_ERROR, SERVER_LOG_KIND_LOG, 0 },
                /* Level words and prefixes. */
                { "Error: That port is already in use.", SERVER_LOG_ERROR, SERVER_LOG_KIND_LOG, 0 },
                { "error: something broke", SERVER_LOG_ERROR, SERVER_LOG_KIND_LOG, 0 },
                { "djdesk-serve: error: migrate failed: RuntimeError: x", SERVER_LOG_ERROR,
                  SERVER_LOG_KIND_LOG, 0 },
                { "ERROR:django.request:Internal Server Error: /boom/", SERVER_LOG_ERROR,
                  SERVER_LOG_KIND_LOG, 0 },
                { "Internal Server Error: /boom/", SERVER_LOG_ERROR, SERVER_LOG_KIND_LOG, 0 },
                { "ERRORS:", SERVER_LOG_ERROR, SERVER_LOG_KIND_LOG, 0 },
                { "2026-11-24 12:00:00,123 CRITICAL app: disk full", SERVER_LOG_ERROR, SERVER_LOG_KIND_LOG,
                  0 },
                { "WARNING:root:careful", SERVER_LOG_WARNING, SERVER_LOG_KIND_LOG, 0 },
                { "2026-11-24 12:00:00,123 WARNING django.request: slow", SERVER_LOG_WARNING,
                  SERVER_LOG_KIND_LOG, 0 },
                { "warning: lower case", SERVER_LOG_WARNING, SERVER_LOG_KIND_LOG, 0 },
                { "/p/catalog/views.py:3: RuntimeWarning: coroutine was never awaited", SERVER_LOG_WARNING,
                  SERVER_LOG_KIND_LOG, 0 },
                { "DeprecationWarning: old", SERVER_LOG_WARNING, SERVER_LOG_KIND_LOG, 0 },
                { "Not Found: /nope/", SERVER_LOG_WARNING, SERVER_LOG_KIND_LOG, 0 },
                { "Forbidden (CSRF token missing.): /form/", SERVER_LOG_WARNING, SERVER_LOG_KIND_LOG, 0 },
                { "djdesk-serve: warning: 1 request(s) still running after 1.5s, exiting anyway",
                  SERVER_LOG_WARNING, SERVER_LOG_KIND_LOG, 0 },
        };
        bool tb = false;

        for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
                ServerLogLevel level;
                ServerLogKind kind;
                int status = -1;

                server_log_classify(lines[i].text, &tb, &level, &kind, &status);
                if (level != lines[i].level || kind != lines[i].kind || status != lines[i].status)
                        fail_msg("line %zu '%s': got %s/%s/%d, expected %s/%s/%d", i, lines[i].text,
                                 server_log_level_to_string(level), server_log_kind_to_string(kind), status,
                                 server_log_level_to_string(lines[i].level),
                                 server_log_kind_to_string(lines[i].kind), lines[i].status);
        }
}

/* djdesk-serve gives up on requests in flight before the daemon's SIGKILL. */
static void test_serve_grace(void **state) {
        static const struct {
                uint64_t stop_timeout_sec, grace_msec;
        } cases[] = {
                { 0, 500 }, { 1, 500 }, { 2, 1500 }, { 5, 4500 }, { 600, 599500 },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                assert_int_equal(server_serve_grace_msec(cases[i].stop_timeout_sec), cases[i].grace_msec);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_state_names),
                cmocka_unit_test(test_classify),
                cmocka_unit_test(test_serve_grace),
        };

        return cmocka_run_group_tests_name("server", tests, NULL, NULL);
}
