/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dj-log.h"
#include "dj-util.h"
#include "store-internal.h"

/* Forward migrations: entry N takes the schema from version N to N + 1. Never edit a released entry;
 * append a new one. */
static const char *const store_migrations[STORE_SCHEMA_VERSION] = {
        /* 0 -> 1: key/value metadata, and one row per daemon start */
        "CREATE TABLE meta ("
        "        key TEXT PRIMARY KEY NOT NULL,"
        "        value TEXT NOT NULL);"
        "CREATE TABLE daemon_starts ("
        "        id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "        pid INTEGER NOT NULL,"
        "        version TEXT NOT NULL,"
        "        started_at INTEGER NOT NULL,"
        "        stopped_at INTEGER);",
        /* 1 -> 2: why the daemon stopped */
        "ALTER TABLE daemon_starts ADD COLUMN stop_reason TEXT;",
        /* 2 -> 3: workspaces, their servers' log lines, and the process groups of running children */
        "CREATE TABLE workspaces ("
        "        id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "        slug TEXT NOT NULL UNIQUE,"
        "        name TEXT NOT NULL,"
        "        path TEXT NOT NULL UNIQUE,"
        "        settings_module TEXT,"
        "        settings_source TEXT,"
        "        python TEXT,"
        "        interpreter TEXT,"
        "        django_version TEXT,"
        "        port INTEGER,"
        "        last_port INTEGER,"
        "        autostart INTEGER NOT NULL DEFAULT 0,"
        "        autoreload INTEGER NOT NULL DEFAULT 1,"
        "        migrate_on_start INTEGER NOT NULL DEFAULT 1,"
        "        mode TEXT NOT NULL DEFAULT 'serve',"
        "        created_at INTEGER NOT NULL,"
        "        updated_at INTEGER NOT NULL);"
        "CREATE TABLE server_log ("
        "        workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,"
        "        n INTEGER NOT NULL,"
        "        time INTEGER NOT NULL,"
        "        stream TEXT NOT NULL,"
        "        level TEXT NOT NULL,"
        "        text TEXT NOT NULL,"
        "        PRIMARY KEY (workspace_id, n)) WITHOUT ROWID;"
        "CREATE TABLE child_groups ("
        "        pgid INTEGER PRIMARY KEY NOT NULL,"
        "        pid INTEGER NOT NULL,"
        "        start_time INTEGER NOT NULL,"
        "        owner TEXT NOT NULL,"
        "        started_at INTEGER NOT NULL);",
        /* 3 -> 4: the task queue's runs and their output lines */
        "CREATE TABLE runs ("
        "        id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "        workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,"
        "        workspace TEXT NOT NULL,"
        "        workspace_path TEXT NOT NULL,"
        "        kind TEXT NOT NULL,"
        "        preset TEXT NOT NULL,"
        "        label TEXT NOT NULL,"
        "        icon TEXT,"
        "        argv TEXT NOT NULL,"
        "        params TEXT NOT NULL,"
        "        note TEXT,"
        "        requested_by TEXT NOT NULL,"
        "        uid INTEGER NOT NULL,"
        "        status TEXT NOT NULL,"
        "        progress INTEGER NOT NULL DEFAULT 0,"
        "        exit_code INTEGER,"
        "        timed_out INTEGER NOT NULL DEFAULT 0,"
        "        queued_at INTEGER NOT NULL,"
        "        started_at INTEGER,"
        "        finished_at INTEGER,"
        "        output_lines INTEGER NOT NULL DEFAULT 0,"
        "        dropped_lines INTEGER NOT NULL DEFAULT 0,"
        "        error TEXT,"
        "        last_error_line TEXT,"
        "        timeout_s INTEGER NOT NULL,"
        "        max_output_lines INTEGER NOT NULL,"
        "        mask_secrets INTEGER NOT NULL DEFAULT 0);"
        "CREATE INDEX runs_workspace ON runs (workspace_id, id);"
        "CREATE INDEX runs_status ON runs (status);"
        /* store_run_prune's: the finished runs of a workspace, by id (its WHERE is the query's, verbatim) */
        "CREATE INDEX runs_finished ON runs (workspace_id, id) WHERE status NOT IN ('queued', 'running');"
        "CREATE TABLE run_log ("
        "        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
        "        n INTEGER NOT NULL,"
        "        time INTEGER NOT NULL,"
        "        stream TEXT NOT NULL,"
        "        level TEXT NOT NULL,"
        "        text TEXT NOT NULL,"
        "        PRIMARY KEY (run_id, n)) WITHOUT ROWID;",
        /* 4 -> 5: the newest scan record per workspace and kind, with the last completed result */
        "CREATE TABLE scans ("
        "        workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,"
        "        kind TEXT NOT NULL,"
        "        id INTEGER NOT NULL UNIQUE,"
        "        status TEXT NOT NULL,"
        "        progress INTEGER NOT NULL DEFAULT 0,"
        "        summary TEXT,"
        "        error TEXT,"
        "        error_info TEXT,"
        "        reason TEXT NOT NULL," /* the trigger */
        "        requested_at INTEGER NOT NULL,"
        "        started_at INTEGER,"
        "        completed_at INTEGER,"
        "        result TEXT,"
        "        PRIMARY KEY (workspace_id, kind)) WITHOUT ROWID;",
};

int store_error(Store *s, DjError *reterr, const char *what) {
        return dj_error_set(reterr, DJ_E_INTERNAL, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

void store_bind_text_or_null(sqlite3_stmt *st, int i, const char *s) {
        if (s)
                (void) sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
        else
                (void) sqlite3_bind_null(st, i);
}

void store_bind_time(sqlite3_stmt *st, int i, uint64_t t) {
        if (t > 0)
                (void) sqlite3_bind_int64(st, i, u64_to_sql(t));
        else
                (void) sqlite3_bind_null(st, i);
}

int store_column_strdup_or_null(sqlite3_stmt *st, int i, char **ret) {
        const unsigned char *t = sqlite3_column_text(st, i);

        if (!t) {
                *ret = NULL;
                return 0;
        }
        *ret = strdup((const char *) t);
        return *ret ? 0 : -ENOMEM;
}

uint64_t store_column_u64(sqlite3_stmt *st, int i) {
        sqlite3_int64 v = sqlite3_column_int64(st, i);

        return v > 0 ? (uint64_t) v : 0;
}

int store_exec(Store *s, const char *sql) {
        char *err = NULL;

        if (sqlite3_exec(s->db, sql, NULL, NULL, &err) != SQLITE_OK) {
                log_debug("SQL failed: %s: %s", sql, err ?: "?");
                sqlite3_free(err);
                return -EIO;
        }
        return 0;
}

/* FNV-1a: the cache's first comparison; the text itself decides. */
static uint64_t store_sql_hash(const char *sql) {
        uint64_t h = UINT64_C(14695981039346656037);

        for (const unsigned char *p = (const unsigned char *) sql; *p; p++)
                h = (h ^ *p) * UINT64_C(1099511628211);
        return h;
}

int store_prepare(Store *s, const char *sql, sqlite3_stmt **ret) {
        sqlite3_stmt *st = NULL;
        const char *tail = NULL;
        uint64_t h;

        assert_return(s && sql && ret);

        h = store_sql_hash(sql);
        for (size_t i = 0; i < s->n_stmts; i++) {
                StoreCachedStmt *c = &s->stmts[i];

                if (c->hash != h || !streq(sqlite3_sql(c->st), sql))
                        continue;
                if (sqlite3_stmt_busy(c->st)) {
                        log_debug("Statement is in use already (not released): %s", sql);
                        return -EBUSY;
                }
                *ret = c->st;
                return 0;
        }

        if (s->n_stmts == s->n_stmts_allocated) {
                size_t m = s->n_stmts_allocated ? s->n_stmts_allocated * 2 : 32;
                StoreCachedStmt *a = realloc(s->stmts, m * sizeof(StoreCachedStmt));

                if (!a)
                        return -ENOMEM;
                s->stmts = a;
                s->n_stmts_allocated = m;
        }
        if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, &tail) != SQLITE_OK) {
                log_debug("Cannot prepare '%s': %s", sql, sqlite3_errmsg(s->db));
                return -EIO;
        }
        /* One statement exactly: its text (sqlite3_sql()) is the key. */
        if (!st || tail[strspn(tail, " \t\n;")] != 0) {
                log_debug("Not one SQL statement, not cached: %s", sql);
                sqlite3_finalize(st);
                return -EINVAL;
        }
        s->stmts[s->n_stmts++] = (StoreCachedStmt){ .hash = h, .st = st };
        *ret = st;
        return 0;
}

void store_release(sqlite3_stmt *st) {
        /* reset returns the last step's error again: it was seen (or ignored) already */
        (void) sqlite3_reset(st);
        (void) sqlite3_clear_bindings(st);
}

/* Steps a cached statement without parameters or rows. */
static int store_exec_cached(Store *s, const char *sql) {
        _cleanup_(store_releasep) sqlite3_stmt *st = NULL;
        int r;

        r = store_prepare(s, sql, &st);
        if (r < 0)
                return r == -ENOMEM ? r : -EIO;
        if (sqlite3_step(st) != SQLITE_DONE) {
                log_debug("SQL failed: %s: %s", sql, sqlite3_errmsg(s->db));
                return -EIO;
        }
        return 0;
}

int store_begin(Store *s) {
        return store_exec_cached(s, "BEGIN IMMEDIATE");
}

int store_commit(Store *s) {
        return store_exec_cached(s, "COMMIT");
}

void store_rollback(Store *s) {
        /* Without a transaction (COMMIT failed and ended it anyway) this fails harmlessly. */
        if (sqlite3_get_autocommit(s->db) == 0)
                (void) store_exec_cached(s, "ROLLBACK");
}

int store_step(sqlite3_stmt *st) {
        int r = sqlite3_step(st);

        return r == SQLITE_ROW ? 1 : r == SQLITE_DONE ? 0 : -EIO;
}

int store_step_done(sqlite3_stmt *st) {
        int r = sqlite3_step(st);

        (void) sqlite3_reset(st);
        return r == SQLITE_DONE ? 0 : -EIO;
}

int store_step_int64(sqlite3_stmt *st, int64_t *ret) {
        int r = store_step(st);

        if (r > 0)
                *ret = (int64_t) sqlite3_column_int64(st, 0);
        return r > 0 ? 0 : r == 0 ? -ENOENT : r;
}

char *store_column_strdup(sqlite3_stmt *st, int i) {
        const unsigned char *t = sqlite3_column_text(st, i);

        return strdup(t ? (const char *) t : "");
}

static int store_pragma_int(Store *s, const char *sql, int *ret) {
        sqlite3_stmt *st = NULL;
        int64_t v;
        int r;

        if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        r = store_step_int64(st, &v);
        sqlite3_finalize(st);
        if (r >= 0)
                *ret = (int) v;
        return r;
}

/* Runs PRAGMA quick_check. Fails when the file is not a database or any row is not "ok". */
static int store_quick_check(Store *s, DjError *reterr) {
        sqlite3_stmt *st = NULL;
        int r;

        if (sqlite3_prepare_v2(s->db, "PRAGMA quick_check", -1, &st, NULL) != SQLITE_OK)
                return dj_error_set(reterr, DJ_E_INTERNAL,
                                    "%s: the store is damaged or not a djdesk database (%s); it was left "
                                    "untouched, move it away to start with an empty store",
                                    s->path, sqlite3_errmsg(s->db));
        for (;;) {
                const unsigned char *row;

                r = sqlite3_step(st);
                if (r == SQLITE_DONE)
                        break;
                if (r != SQLITE_ROW) {
                        r = dj_error_set(
                                reterr, DJ_E_INTERNAL,
                                "%s: the store is damaged or not a djdesk database (%s); it was left "
                                "untouched, move it away to start with an empty store",
                                s->path, sqlite3_errmsg(s->db));
                        sqlite3_finalize(st);
                        return r;
                }
                row = sqlite3_column_text(st, 0);
                if (!row || strcmp((const char *) row, "ok") != 0) {
                        r = dj_error_set(
                                reterr, DJ_E_INTERNAL,
                                "%s: the store failed its integrity check (%s); it was left untouched, "
                                "move it away to start with an empty store",
                                s->path, row ? (const char *) row : "?");
                        sqlite3_finalize(st);
                        return r;
                }
        }
        sqlite3_finalize(st);
        return 0;
}

static int store_migrate(Store *s, unsigned target, DjError *reterr) {
        int v, r;

        r = store_pragma_int(s, "PRAGMA user_version", &v);
        if (r < 0)
                return store_error(s, reterr, "cannot read the schema version");
        if (v < 0 || (unsigned) v > STORE_SCHEMA_VERSION)
                return dj_error_set(reterr, DJ_E_INTERNAL,
                                    "%s: schema version %d is newer than this djdeskd understands (%d); "
                                    "refusing to touch it",
                                    s->path, v, STORE_SCHEMA_VERSION);
        for (unsigned i = (unsigned) v; i < target; i++) {
                char pragma[64];

                if (store_exec(s, "BEGIN IMMEDIATE") < 0)
                        return store_error(s, reterr, "cannot begin a migration");
                (void) snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %u", i + 1);
                if (store_exec(s, store_migrations[i]) < 0 || store_exec(s, pragma) < 0) {
                        r = store_error(s, reterr, "schema migration failed");
                        (void) store_exec(s, "ROLLBACK");
                        return r;
                }
                if (store_exec(s, "COMMIT") < 0) {
                        r = store_error(s, reterr, "cannot commit a migration");
                        (void) store_exec(s, "ROLLBACK");
                        return r;
                }
                log_debug("%s: migrated schema to version %u", s->path, i + 1);
        }
        s->version = MAX((unsigned) v, target);
        return 0;
}

Store *store_free(Store *s) {
        if (!s)
                return NULL;
        if (s->db) {
                /* Every statement goes before the close: one left behind keeps the connection open. */
                for (size_t i = 0; i < s->n_stmts; i++)
                        (void) sqlite3_finalize(s->stmts[i].st);
                /* Leave a small WAL behind: fold it into the main file on a clean close. */
                (void) sqlite3_exec(s->db, "PRAGMA optimize", NULL, NULL, NULL);
                if (sqlite3_close(s->db) != SQLITE_OK)
                        log_debug("%s: cannot close the store: %s", s->path, sqlite3_errmsg(s->db));
        }
        free(s->stmts);
        free(s->path);
        free(s);
        return NULL;
}

int store_open_version(const char *path, unsigned target, Store **ret, DjError *reterr) {
        _cleanup_(store_freep) Store *s = NULL;
        int r;

        assert_return(path && ret && target <= STORE_SCHEMA_VERSION);

        s = calloc(1, sizeof(*s));
        if (!s)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        s->path = strdup(path);
        if (!s->path)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");

        r = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                            NULL);
        if (r != SQLITE_OK)
                return dj_error_set(reterr, DJ_E_INTERNAL, "%s: cannot open the store: %s", path,
                                    s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(r));
        (void) sqlite3_extended_result_codes(s->db, 1);
        (void) sqlite3_busy_timeout(s->db, 5000);

        /* Check before anything writes: a damaged store stays exactly as it was found. */
        r = store_quick_check(s, reterr);
        if (r < 0)
                return r;

        if (store_exec(s, "PRAGMA journal_mode = WAL") < 0 ||
            store_exec(s, "PRAGMA synchronous = NORMAL") < 0 ||
            store_exec(s, "PRAGMA foreign_keys = ON") < 0)
                return store_error(s, reterr, "cannot configure the store");

        r = store_migrate(s, target, reterr);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(s);
        return 0;
}

int store_open(const char *path, Store **ret, DjError *reterr) {
        return store_open_version(path, STORE_SCHEMA_VERSION, ret, reterr);
}

unsigned store_schema_version(Store *s) {
        return s->version;
}

const char *store_path(Store *s) {
        return s->path;
}

int store_meta_get_u64(Store *s, const char *key, uint64_t *ret) {
        _cleanup_(store_releasep) sqlite3_stmt *st = NULL;
        int64_t v;
        int r;

        r = store_prepare(s, "SELECT value FROM meta WHERE key = ?", &st);
        if (r < 0)
                return r;
        (void) sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        r = store_step_int64(st, &v);
        if (r >= 0)
                *ret = (uint64_t) v;
        return r;
}

int store_meta_set_u64(Store *s, const char *key, uint64_t value) {
        _cleanup_(store_releasep) sqlite3_stmt *st = NULL;
        int r;

        r = store_prepare(s,
                          "INSERT INTO meta (key, value) VALUES (?, ?) "
                          "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                          &st);
        if (r < 0)
                return r;
        (void) sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        (void) sqlite3_bind_int64(st, 2, (sqlite3_int64) value);
        return sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
}

int store_daemon_started(Store *s, int pid, const char *version, uint64_t started_at, uint64_t *ret_id,
                         StorePreviousShutdown *ret_previous) {
        StorePreviousShutdown prev = STORE_PREVIOUS_NONE;
        sqlite3_stmt *st = NULL;
        int r;

        if (sqlite3_prepare_v2(s->db, "SELECT stopped_at FROM daemon_starts ORDER BY id DESC LIMIT 1", -1,
                               &st, NULL) != SQLITE_OK)
                return -EIO;
        r = sqlite3_step(st);
        if (r == SQLITE_ROW)
                prev = sqlite3_column_type(st, 0) == SQLITE_NULL ? STORE_PREVIOUS_UNCLEAN
                                                                 : STORE_PREVIOUS_CLEAN;
        sqlite3_finalize(st);
        if (r != SQLITE_ROW && r != SQLITE_DONE)
                return -EIO;

        if (sqlite3_prepare_v2(s->db,
                               "INSERT INTO daemon_starts (pid, version, started_at) VALUES (?, ?, ?)", -1,
                               &st, NULL) != SQLITE_OK)
                return -EIO;
        (void) sqlite3_bind_int(st, 1, pid);
        (void) sqlite3_bind_text(st, 2, version, -1, SQLITE_STATIC);
        (void) sqlite3_bind_int64(st, 3, (sqlite3_int64) started_at);
        r = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
        sqlite3_finalize(st);
        if (r < 0)
                return r;
        if (ret_id)
                *ret_id = (uint64_t) sqlite3_last_insert_rowid(s->db);
        if (ret_previous)
                *ret_previous = prev;
        return 0;
}

int store_daemon_stopped(Store *s, uint64_t id, uint64_t stopped_at, const char *reason) {
        sqlite3_stmt *st = NULL;
        int r;

        if (sqlite3_prepare_v2(s->db,
                               "UPDATE daemon_starts SET stopped_at = ?, stop_reason = ? WHERE id = ?", -1,
                               &st, NULL) != SQLITE_OK)
                return -EIO;
        (void) sqlite3_bind_int64(st, 1, (sqlite3_int64) stopped_at);
        (void) sqlite3_bind_text(st, 2, reason, -1, SQLITE_STATIC);
        (void) sqlite3_bind_int64(st, 3, (sqlite3_int64) id);
        r = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
        sqlite3_finalize(st);
        return r;
}

int store_log_lines_collect(sqlite3_stmt *st, StoreLogLine **ret, size_t *ret_n) {
        StoreLogLine *lines = NULL;
        size_t n = 0, allocated = 0;
        int r;

        for (;;) {
                StoreLogLine *l;

                r = store_step(st);
                if (r < 0)
                        goto fail;
                if (r == 0)
                        break;
                r = greedy_realloc((void **) &lines, &allocated, n + 1, sizeof(StoreLogLine));
                if (r < 0)
                        goto fail;
                l = &lines[n++];
                *l = (StoreLogLine){
                        .n = (uint64_t) sqlite3_column_int64(st, 0),
                        .time = (uint64_t) sqlite3_column_int64(st, 1),
                        .stream = store_column_strdup(st, 2),
                        .level = store_column_strdup(st, 3),
                        .text = store_column_strdup(st, 4),
                };
                if (!l->stream || !l->level || !l->text) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        *ret = lines;
        *ret_n = n;
        return 0;
fail:
        store_log_lines_free(lines, n);
        return r;
}
