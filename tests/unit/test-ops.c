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

#include "config.h"
#include "daemon.h"
#include "dj-error.h"
#include "dj-util.h"
#include "events.h"
#include "ops.h"
#include "test-tmpdir.h"

typedef struct Reply {
        json_t *result;
        DjErrKind kind;
        char *message;
        char *value;
        int n;
} Reply;

static void reply_cb(OpCall *c, json_t *result, const DjError *err, void *userdata) {
        Reply *r = userdata;

        r->n++;
        if (err) {
                r->kind = err->kind;
                r->message = strdup(err->message);
                r->value = err->value ? strdup(err->value) : NULL;
        } else
                r->result = json_incref(result);
}

static void reply_done(Reply *r) {
        json_decref(r->result);
        free(r->message);
        free(r->value);
        *r = (Reply){};
}

typedef struct Fixture {
        Daemon d;
        char dir[64];
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));
        _cleanup_free_ char *db = NULL;

        assert_non_null(f);
        test_mkdtemp(f->dir, sizeof(f->dir), "ops");
        db = path_join(f->dir, "djdesk.db");
        f->d.config = config_new_defaults();
        assert_non_null(f->d.config);
        f->d.config->socket = path_join(f->dir, "sock");
        f->d.socket_path = path_join(f->dir, "sock");
        f->d.config->path = path_join(f->dir, "djdesk.conf");
        assert_int_equal(store_open(db, &f->d.store, NULL), 0);
        assert_int_equal(events_new(16, 1 << 20, 1, &f->d.events), 0);
        f->d.started_at = now_usec(CLOCK_REALTIME);
        f->d.started_at_iso = format_timestamp_iso(f->d.started_at);
        f->d.started_mono = now_usec(CLOCK_MONOTONIC);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        events_free(f->d.events);
        store_free(f->d.store);
        config_free(f->d.config);
        free(f->d.socket_path);
        free(f->d.started_at_iso);
        test_rm_rf(f->dir);
        free(f);
        return 0;
}

static void call(Fixture *f, const char *method, const char *params_json, Reply *r) {
        json_t *params = params_json ? json_loads(params_json, 0, NULL) : NULL;
        const OpDef *def = ops_lookup(method);
        OpCall *c = NULL;

        assert_non_null(def);
        assert_int_equal(op_call_new(&f->d, def, "test", NULL, reply_cb, r, &c), 0);
        op_call_dispatch(c, params);
        op_call_unref(c);
        json_decref(params);
        assert_int_equal(r->n, 1); /* exactly one reply, always */
}

static void test_table_sorted(void **state) {
        for (size_t i = 1; i < ops_count(); i++)
                assert_true(strcmp(ops_nth(i - 1)->method, ops_nth(i)->method) < 0);
        for (size_t i = 0; i < ops_count(); i++)
                assert_ptr_equal(ops_lookup(ops_nth(i)->method), ops_nth(i));
        assert_null(ops_lookup("nope"));
        assert_null(ops_lookup(""));
        assert_null(ops_lookup("daemon.inf"));
}

static void test_dispatch_errors(void **state) {
        static const struct {
                const char *method, *params;
                DjErrKind kind;
                const char *value;
        } cases[] = {
                { "daemon.info", "{\"x\":1}", DJ_E_INVALID, "x" },
                { "daemon.info", "[]", DJ_E_INVALID, NULL },
                { "events.publish", "{}", DJ_E_INVALID, "topic" },
                { "events.publish", "{\"topic\":3}", DJ_E_INVALID, "topic" },
                { "events.publish", "{\"topic\":\"user.a\",\"data\":[]}", DJ_E_INVALID, "data" },
                { "events.publish", "{\"topic\":\"daemon.shutdown\"}", DJ_E_NOT_ALLOWED, "daemon.shutdown" },
                { "events.publish", "{\"topic\":\"User.A\"}", DJ_E_INVALID, "User.A" },
                { "events.publish", "{\"topic\":\"user.\"}", DJ_E_INVALID, "user." },
                { "subscribe", "{\"since\":-1}", DJ_E_INVALID, "since" },
                { "subscribe", "{\"topics\":[1]}", DJ_E_INVALID, "topics" },
                { "subscribe", "{\"topics\":[\"a..b\"]}", DJ_E_INVALID, "a..b" },
                { "subscribe", "{}", DJ_E_NOT_ALLOWED, NULL }, /* no streaming session here */
                { "unsubscribe", "{\"topics\":\"x\"}", DJ_E_INVALID, "topics" },
        };
        Fixture *f = *state;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                Reply r = {};

                call(f, cases[i].method, cases[i].params, &r);
                assert_null(r.result);
                assert_int_equal(r.kind, cases[i].kind);
                assert_non_null(r.message);
                if (cases[i].value)
                        assert_string_equal(r.value, cases[i].value);
                reply_done(&r);
        }
        /* Refused requests changed nothing. */
        assert_int_equal(events_last_seq(f->d.events), 0);
}

static void test_daemon_info(void **state) {
        Fixture *f = *state;
        Reply r = {};

        call(f, "daemon.info", NULL, &r);
        assert_non_null(r.result);
        assert_string_equal(json_string_value(json_object_get(r.result, "version")), DJDESK_VERSION);
        assert_int_equal(json_integer_value(json_object_get(r.result, "pid")), getpid());
        assert_int_equal(json_integer_value(json_object_get(r.result, "schema_version")),
                         STORE_SCHEMA_VERSION);
        assert_string_equal(json_string_value(json_object_get(r.result, "socket_path")),
                            f->d.config->socket);
        assert_non_null(json_object_get(json_object_get(r.result, "counts"), "clients"));
        reply_done(&r);
}

static void test_publish(void **state) {
        Fixture *f = *state;
        Reply r = {};

        call(f, "events.publish", "{\"topic\":\"user.deploy\",\"data\":{\"ok\":true}}", &r);
        assert_non_null(r.result);
        assert_int_equal(json_integer_value(json_object_get(r.result, "seq")), 1);
        assert_int_equal(events_last_seq(f->d.events), 1);
        reply_done(&r);
}

static void test_error_table(void **state) {
        static const struct {
                DjErrKind kind;
                int errnum, rpc;
                const char *dbus, *name;
        } cases[] = {
                { DJ_E_INVALID, EINVAL, -32602, "io.djdesk.Desk1.Error.InvalidArgs", "invalid" },
                { DJ_E_NOT_FOUND, ENOENT, -32001, "io.djdesk.Desk1.Error.NotFound", "not_found" },
                { DJ_E_CONFIRM, EPERM, -32002, "io.djdesk.Desk1.Error.ConfirmationRequired",
                  "confirmation_required" },
                { DJ_E_BUSY, EBUSY, -32003, "io.djdesk.Desk1.Error.Busy", "busy" },
                { DJ_E_NOT_ALLOWED, EACCES, -32004, "io.djdesk.Desk1.Error.NotAllowed", "not_allowed" },
                { DJ_E_INTERNAL, EIO, -32603, "io.djdesk.Desk1.Error.Internal", "internal" },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                DjError e = DJ_ERROR_INIT;

                assert_int_equal(dj_err_kind_to_errno(cases[i].kind), cases[i].errnum);
                assert_int_equal(dj_err_kind_to_rpc(cases[i].kind), cases[i].rpc);
                assert_string_equal(dj_err_kind_to_dbus(cases[i].kind), cases[i].dbus);
                assert_string_equal(dj_err_kind_to_string(cases[i].kind), cases[i].name);
                assert_int_equal(dj_err_kind_from_string(cases[i].name), cases[i].kind);
                assert_int_equal(dj_err_kind_from_errno(cases[i].errnum), cases[i].kind);
                assert_int_equal(dj_err_kind_from_rpc(cases[i].rpc), cases[i].kind);
                assert_int_equal(dj_error_set(&e, cases[i].kind, "m %d", 1), -cases[i].errnum);
                assert_string_equal(e.message, "m 1");
                dj_error_done(&e);
        }
        assert_int_equal(dj_err_kind_from_string("bogus"), _DJ_E_INVALID);
        assert_int_equal(dj_err_kind_from_rpc(-1), _DJ_E_INVALID);
        assert_int_equal(dj_err_kind_to_rpc(_DJ_E_INVALID), -32603);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_table_sorted),
                cmocka_unit_test_setup_teardown(test_dispatch_errors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_daemon_info, setup, teardown),
                cmocka_unit_test_setup_teardown(test_publish, setup, teardown),
                cmocka_unit_test(test_error_table),
        };

        return cmocka_run_group_tests_name("ops", tests, NULL, NULL);
}
