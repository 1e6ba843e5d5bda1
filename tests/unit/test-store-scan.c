/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dj-util.h"
#include "store.h"
#include "test-tmpdir.h"
#include "workspace.h"

static char tmpdir[64];

static int setup(void **state) {
        test_mkdtemp(tmpdir, sizeof(tmpdir), "store-scan");
        return 0;
}

static int teardown(void **state) {
        test_rm_rf(tmpdir);
        return 0;
}

static Store *open_store(const char *name, unsigned version) {
        _cleanup_free_ char *p = path_join(tmpdir, name);
        Store *s = NULL;

        assert_non_null(p);
        assert_int_equal(store_open_version(p, version, &s, NULL), 0);
        return s;
}

static int64_t add_workspace(Store *s, const char *slug) {
        char path[128];
        Workspace w = {
                .slug = (char *) slug,
                .name = (char *) slug,
                .path = path,
                .settings_module = (char *) "app.settings",
                .mode = SERVER_MODE_SERVE,
                .created_at = 1,
                .updated_at = 1,
        };

        (void) snprintf(path, sizeof(path), "/srv/%s", slug);
        assert_int_equal(store_workspace_insert(s, &w, NULL), 0);
        return w.id;
}

static StoreScan scan(int64_t ws, uint64_t id, const char *kind, const char *status, const char *result) {
        return (StoreScan){
                .workspace_id = ws,
                .id = id,
                .kind = (char *) kind,
                .status = (char *) status,
                .progress = streq(status, "completed") || streq(status, "failed") ? 100 : 0,
                .summary = streq(status, "completed") ? (char *) "3 models in 1 app, 0 relations" : NULL,
                .error = streq(status, "failed") ? (char *) "RuntimeError: boom" : NULL,
                .error_info = streq(status, "failed") ? (char *) "{\"type\":\"RuntimeError\"}" : NULL,
                .trigger = (char *) "request",
                .requested_at = 1700000000000000 + id,
                .started_at = streq(status, "pending") ? 0 : 1700000000000100 + id,
                .completed_at =
                        streq(status, "completed") || streq(status, "failed") ? 1700000000000200 + id : 0,
                .result = (char *) result,
        };
}

static const StoreScan *find_kind(const StoreScan *l, size_t n, const char *kind) {
        for (size_t i = 0; i < n; i++)
                if (streq(l[i].kind, kind))
                        return &l[i];
        return NULL;
}

static void test_next_id_grows(void **state) {
        Store *s = open_store("ids.db", STORE_SCHEMA_VERSION);
        _cleanup_free_ char *p = path_join(tmpdir, "ids.db");
        uint64_t a = 0, b = 0, c = 0;

        assert_int_equal(store_scan_next_id(s, &a), 0);
        assert_int_equal(store_scan_next_id(s, &b), 0);
        assert_int_equal(a, 1);
        assert_int_equal(b, 2);
        store_free(s);
        /* Never reused across restarts. */
        assert_int_equal(store_open(p, &s, NULL), 0);
        assert_int_equal(store_scan_next_id(s, &c), 0);
        assert_int_equal(c, 3);
        store_free(s);
}

static void test_save_replaces_and_keeps_result(void **state) {
        Store *s = open_store("save.db", STORE_SCHEMA_VERSION);
        int64_t a = add_workspace(s, "atlas"), b = add_workspace(s, "polls");
        StoreScan *l = NULL, r;
        const StoreScan *x;
        size_t n = 0;

        r = scan(a, 1, "schema", "completed", "{\"models\":[1,2,3]}");
        assert_int_equal(store_scan_save(s, &r), 0);
        r = scan(a, 2, "checks", "running", NULL);
        assert_int_equal(store_scan_save(s, &r), 0);
        r = scan(b, 3, "schema", "completed", "{\"models\":[]}");
        assert_int_equal(store_scan_save(s, &r), 0);

        /* A newer pending scan replaces the record, and keeps the result. */
        r = scan(a, 4, "schema", "pending", NULL);
        assert_int_equal(store_scan_save(s, &r), 0);
        assert_int_equal(store_scan_load(s, a, &l, &n), 0);
        assert_int_equal(n, 2);
        x = find_kind(l, n, "schema");
        assert_non_null(x);
        assert_int_equal(x->id, 4);
        assert_string_equal(x->status, "pending");
        assert_int_equal(x->started_at, 0);
        assert_null(x->summary);
        assert_string_equal(x->result, "{\"models\":[1,2,3]}");
        x = find_kind(l, n, "checks");
        assert_non_null(x);
        assert_string_equal(x->status, "running");
        assert_null(x->result);
        store_scans_free(l, n);

        /* It fails: the result stays, the error is recorded. */
        r = scan(a, 4, "schema", "failed", NULL);
        assert_int_equal(store_scan_save(s, &r), 0);
        assert_int_equal(store_scan_load(s, a, &l, &n), 0);
        x = find_kind(l, n, "schema");
        assert_string_equal(x->status, "failed");
        assert_string_equal(x->error, "RuntimeError: boom");
        assert_string_equal(x->error_info, "{\"type\":\"RuntimeError\"}");
        assert_int_equal(x->completed_at, 1700000000000204);
        assert_string_equal(x->result, "{\"models\":[1,2,3]}");
        store_scans_free(l, n);

        /* A completed one with a result replaces it. */
        r = scan(a, 5, "schema", "completed", "{\"models\":[9]}");
        assert_int_equal(store_scan_save(s, &r), 0);
        assert_int_equal(store_scan_load(s, a, &l, &n), 0);
        x = find_kind(l, n, "schema");
        assert_int_equal(x->id, 5);
        assert_string_equal(x->result, "{\"models\":[9]}");
        assert_string_equal(x->summary, "3 models in 1 app, 0 relations");
        store_scans_free(l, n);

        /* The other workspace is untouched; deleting a workspace deletes its scans. */
        assert_int_equal(store_scan_load(s, b, &l, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(l[0].result, "{\"models\":[]}");
        store_scans_free(l, n);
        assert_int_equal(store_workspace_delete(s, a, NULL), 0);
        assert_int_equal(store_scan_load(s, a, &l, &n), 0);
        assert_int_equal(n, 0);
        store_scans_free(l, n);
        store_free(s);
}

static void test_migrate_from_4(void **state) {
        _cleanup_free_ char *p = path_join(tmpdir, "v4.db");
        Store *s = open_store("v4.db", 4);
        int64_t a = add_workspace(s, "atlas");
        StoreScan *l = NULL, r;
        size_t n = 0;

        assert_int_equal(store_schema_version(s), 4);
        store_free(s);
        assert_int_equal(store_open(p, &s, NULL), 0);
        assert_int_equal(store_schema_version(s), 5);
        r = scan(a, 1, "migrations", "completed", "{\"migrations\":[]}");
        assert_int_equal(store_scan_save(s, &r), 0);
        assert_int_equal(store_scan_load(s, a, &l, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(l[0].kind, "migrations");
        store_scans_free(l, n);
        store_free(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_next_id_grows),
                cmocka_unit_test(test_save_replaces_and_keeps_result),
                cmocka_unit_test(test_migrate_from_4),
        };

        return cmocka_run_group_tests_name("store-scan", tests, setup, teardown);
}
