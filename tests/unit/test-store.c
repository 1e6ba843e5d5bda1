/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dj-util.h"
#include "store.h"
#include "test-tmpdir.h"

static char tmpdir[64];

static int setup(void **state) {
        test_mkdtemp(tmpdir, sizeof(tmpdir), "store");
        return 0;
}

static int teardown(void **state) {
        test_rm_rf(tmpdir);
        return 0;
}

static int user_version(const char *path) {
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        int v;

        assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        v = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
        return v;
}

static void test_migrate_from_empty(void **state) {
        _cleanup_free_ char *p = path_join(tmpdir, "empty.db");
        Store *s = NULL;
        StorePreviousShutdown prev;
        uint64_t id, v;

        assert_int_equal(store_open(p, &s, NULL), 0);
        assert_int_equal(store_schema_version(s), STORE_SCHEMA_VERSION);
        assert_int_equal(store_meta_get_u64(s, "nope", &v), -ENOENT);
        assert_int_equal(store_meta_set_u64(s, "k", 42), 0);
        assert_int_equal(store_meta_set_u64(s, "k", 43), 0);
        assert_int_equal(store_meta_get_u64(s, "k", &v), 0);
        assert_int_equal(v, 43);
        assert_int_equal(store_daemon_started(s, 1, "0.1.0", 100, &id, &prev), 0);
        assert_int_equal(prev, STORE_PREVIOUS_NONE);
        assert_int_equal(store_daemon_stopped(s, id, 200, "SIGTERM"), 0);
        store_free(s);
        assert_int_equal(user_version(p), STORE_SCHEMA_VERSION);

        /* Reopening migrates nothing and keeps the data. */
        assert_int_equal(store_open(p, &s, NULL), 0);
        assert_int_equal(store_meta_get_u64(s, "k", &v), 0);
        assert_int_equal(v, 43);
        assert_int_equal(store_daemon_started(s, 2, "0.1.0", 300, &id, &prev), 0);
        assert_int_equal(prev, STORE_PREVIOUS_CLEAN);
        store_free(s);

        /* That one never recorded its stop: the next start knows. */
        assert_int_equal(store_open(p, &s, NULL), 0);
        assert_int_equal(store_daemon_started(s, 3, "0.1.0", 400, &id, &prev), 0);
        assert_int_equal(prev, STORE_PREVIOUS_UNCLEAN);
        store_free(s);
}

static void test_migrate_from_previous(void **state) {
        _cleanup_free_ char *p = path_join(tmpdir, "v1.db");
        Store *s = NULL;
        StorePreviousShutdown prev;
        uint64_t id;
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;

        /* A store as version 1 left it, with a row in it. */
        assert_int_equal(store_open_version(p, 1, &s, NULL), 0);
        assert_int_equal(store_schema_version(s), 1);
        assert_int_equal(store_daemon_started(s, 10, "0.0.9", 500, &id, &prev), 0);
        store_free(s);
        assert_int_equal(user_version(p), 1);

        assert_int_equal(store_open(p, &s, NULL), 0);
        assert_int_equal(store_schema_version(s), STORE_SCHEMA_VERSION);
        assert_int_equal(store_daemon_stopped(s, id, 600, "SIGINT"), 0); /* the new column works */
        store_free(s);
        assert_int_equal(user_version(p), STORE_SCHEMA_VERSION);

        assert_int_equal(sqlite3_open_v2(p, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        assert_int_equal(
                sqlite3_prepare_v2(db, "SELECT pid, version, stop_reason FROM daemon_starts", -1, &st, NULL),
                SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(st, 0), 10);
        assert_string_equal((const char *) sqlite3_column_text(st, 1), "0.0.9");
        assert_string_equal((const char *) sqlite3_column_text(st, 2), "SIGINT");
        sqlite3_finalize(st);
        sqlite3_close(db);
}

static void test_newer_schema_refused(void **state) {
        _cleanup_free_ char *p = path_join(tmpdir, "future.db");
        sqlite3 *db = NULL;
        Store *s = NULL;
        DjError err = DJ_ERROR_INIT;

        assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        assert_true(store_open(p, &s, &err) < 0);
        assert_non_null(strstr(err.message, "newer"));
        dj_error_done(&err);
}

static void test_corrupt_untouched(void **state) {
        _cleanup_free_ char *p = path_join(tmpdir, "garbage.db");
        char data[8192], back[8192];
        Store *s = NULL;
        DjError err = DJ_ERROR_INIT;
        struct stat st;
        FILE *f;

        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (char) (i * 7 + 3);
        f = fopen(p, "we");
        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, sizeof(data), f), sizeof(data));
        assert_int_equal(fclose(f), 0);

        assert_true(store_open(p, &s, &err) < 0);
        assert_null(s);
        assert_non_null(strstr(err.message, p));
        dj_error_done(&err);

        f = fopen(p, "re");
        assert_non_null(f);
        assert_int_equal(fread(back, 1, sizeof(back), f), sizeof(back));
        assert_int_equal(fclose(f), 0);
        assert_memory_equal(data, back, sizeof(data));
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_size, sizeof(data));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_migrate_from_empty),
                cmocka_unit_test(test_migrate_from_previous),
                cmocka_unit_test(test_newer_schema_refused),
                cmocka_unit_test(test_corrupt_untouched),
        };

        return cmocka_run_group_tests_name("store", tests, setup, teardown);
}
