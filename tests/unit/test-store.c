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
#include "store-internal.h"
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

/* How many statements of the store's connection are stepped and not reset (each holds a read
 * transaction open). */
static int busy_statements(Store *s) {
        int n = 0;

        for (sqlite3_stmt *st = sqlite3_next_stmt(s->db, NULL); st; st = sqlite3_next_stmt(s->db, st))
                if (sqlite3_stmt_busy(st))
                        n++;
        return n;
}

/* A full checkpoint from another connection: it only completes when no reader holds an old snapshot. */
static void assert_checkpoint_completes(const char *path) {
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;

        assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA wal_checkpoint(TRUNCATE)", -1, &st, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(st, 0), 0); /* not busy */
        sqlite3_finalize(st);
        sqlite3_close(db);
}

static void test_statement_cache(void **state) {
        _cleanup_free_ char *p = path_join(tmpdir, "cache.db");
        _cleanup_free_ char *copy = NULL;
        static const char *const get = "SELECT value FROM meta WHERE key = ?";
        static const char *const put = "INSERT INTO meta (key, value) VALUES (?, ?)";
        sqlite3_stmt *a = NULL, *b = NULL, *a2 = NULL;
        Store *s = NULL;
        size_t n;
        uint64_t v;

        assert_int_equal(store_open(p, &s, NULL), 0);
        n = s->n_stmts;

        /* the same statement twice in a row: prepared once */
        assert_int_equal(store_prepare(s, get, &a), 0);
        assert_non_null(a);
        store_release(a);
        assert_int_equal(store_prepare(s, get, &a2), 0);
        assert_ptr_equal(a, a2);
        store_release(a2);
        assert_int_equal(s->n_stmts, n + 1);

        /* the text is the key, not the pointer */
        copy = strdup(get);
        assert_non_null(copy);
        assert_int_equal(store_prepare(s, copy, &a2), 0);
        assert_ptr_equal(a, a2);
        store_release(a2);
        assert_int_equal(s->n_stmts, n + 1);

        /* interleaved: two statements stepped at once */
        assert_int_equal(store_meta_set_u64(s, "one", 1), 0);
        assert_int_equal(store_meta_set_u64(s, "two", 2), 0);
        assert_int_equal(store_prepare(s, get, &a), 0);
        assert_int_equal(store_prepare(s, put, &b), 0);
        assert_ptr_not_equal(a, b);
        assert_int_equal(sqlite3_bind_text(a, 1, "one", -1, SQLITE_STATIC), SQLITE_OK);
        assert_int_equal(sqlite3_step(a), SQLITE_ROW);
        assert_int_equal(sqlite3_bind_text(b, 1, "three", -1, SQLITE_STATIC), SQLITE_OK);
        assert_int_equal(sqlite3_bind_int(b, 2, 3), SQLITE_OK);
        assert_int_equal(sqlite3_step(b), SQLITE_DONE);
        assert_int_equal(sqlite3_column_int(a, 0), 1);
        /* still stepped: asking for it again (nested use) is refused */
        assert_int_equal(store_prepare(s, get, &a2), -EBUSY);
        assert_int_equal(busy_statements(s), 1);
        store_release(a);
        store_release(b);
        assert_int_equal(busy_statements(s), 0);
        assert_int_equal(store_meta_get_u64(s, "three", &v), 0);
        assert_int_equal(v, 3);

        /* released means no bindings left: a NULL key matches nothing */
        assert_int_equal(store_prepare(s, get, &a), 0);
        assert_int_equal(sqlite3_step(a), SQLITE_DONE);
        store_release(a);

        /* failing midway (a constraint), then used again */
        assert_int_equal(store_prepare(s, put, &b), 0);
        assert_int_equal(sqlite3_bind_text(b, 1, "one", -1, SQLITE_STATIC), SQLITE_OK);
        assert_int_equal(sqlite3_bind_int(b, 2, 9), SQLITE_OK);
        assert_int_equal(sqlite3_step(b) & 0xff, SQLITE_CONSTRAINT);
        store_release(b);
        assert_int_equal(store_prepare(s, put, &b), 0);
        assert_int_equal(sqlite3_bind_text(b, 1, "four", -1, SQLITE_STATIC), SQLITE_OK);
        assert_int_equal(sqlite3_bind_int(b, 2, 4), SQLITE_OK);
        assert_int_equal(sqlite3_step(b), SQLITE_DONE);
        store_release(b);
        assert_int_equal(store_meta_get_u64(s, "one", &v), 0);
        assert_int_equal(v, 1);
        assert_int_equal(store_meta_get_u64(s, "four", &v), 0);
        assert_int_equal(v, 4);

        /* a transaction failing midway is rolled back, and the statements still work */
        assert_int_equal(store_begin(s), 0);
        assert_int_equal(store_meta_set_u64(s, "five", 5), 0);
        assert_int_equal(store_begin(s), -EIO); /* no nested transactions */
        store_rollback(s);
        assert_int_equal(store_meta_get_u64(s, "five", &v), -ENOENT);
        assert_int_equal(store_begin(s), 0);
        assert_int_equal(store_meta_set_u64(s, "five", 5), 0);
        assert_int_equal(store_commit(s), 0);
        assert_int_equal(store_commit(s), -EIO); /* none open */
        store_rollback(s);                       /* none open: harmless */
        assert_int_equal(store_meta_get_u64(s, "five", &v), 0);
        assert_int_equal(v, 5);

        /* what cannot be cached is not */
        n = s->n_stmts;
        assert_int_equal(store_prepare(s, "SELEC nothing", &a2), -EIO);
        assert_int_equal(store_prepare(s, "SELECT 1; SELECT 2", &a2), -EINVAL);
        assert_int_equal(s->n_stmts, n);

        /* many calls: the cache does not grow, and nothing is left stepped: the meta read stops at its
         * row without reaching the end, yet no read transaction stays open to hold a checkpoint back */
        for (int i = 0; i < 1000; i++) {
                assert_int_equal(store_meta_set_u64(s, "k", (uint64_t) i), 0);
                assert_int_equal(store_meta_get_u64(s, "k", &v), 0);
                assert_int_equal(v, (uint64_t) i);
        }
        assert_int_equal(s->n_stmts, n);
        assert_int_equal(busy_statements(s), 0);
        assert_checkpoint_completes(p);

        store_free(s);
}

/* store_free finalizes every cached statement: the connection closes and gives back all its memory. */
static void test_statement_cache_finalized_by_free(void **state) {
        _cleanup_free_ char *p = path_join(tmpdir, "cache-free.db");
        Store *s = NULL;
        sqlite3_int64 before;
        uint64_t v;

        /* once, for SQLite's own one-time allocations */
        assert_int_equal(store_open(p, &s, NULL), 0);
        store_free(s);

        before = sqlite3_memory_used();
        assert_int_equal(store_open(p, &s, NULL), 0);
        for (int i = 0; i < 10; i++) {
                assert_int_equal(store_meta_set_u64(s, "k", (uint64_t) i), 0);
                assert_int_equal(store_meta_get_u64(s, "k", &v), 0);
                assert_int_equal(store_child_group_add(s, 100 + i, 100 + i, 1, "test", 1), 0);
        }
        assert_true(s->n_stmts >= 3);
        store_free(s);
        if (before > 0) /* 0: SQLite built without memory statistics */
                assert_int_equal(sqlite3_memory_used(), before);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_migrate_from_empty),
                cmocka_unit_test(test_migrate_from_previous),
                cmocka_unit_test(test_newer_schema_refused),
                cmocka_unit_test(test_corrupt_untouched),
                cmocka_unit_test(test_statement_cache),
                cmocka_unit_test(test_statement_cache_finalized_by_free),
        };

        return cmocka_run_group_tests_name("store", tests, setup, teardown);
}
