/* SPDX-License-Identifier: MIT */
#pragma once

/* For the store's own files (store.c, store-*.c): the only ones that include sqlite3. */

#include <sqlite3.h>

#include "dj-macro.h"
#include "store.h"

typedef struct StoreCachedStmt {
        uint64_t hash; /* of the SQL text */
        sqlite3_stmt *st;
} StoreCachedStmt;

struct Store {
        sqlite3 *db;
        char *path;
        unsigned version;
        StoreCachedStmt *stmts; /* the prepared-statement cache: never evicts, finalized by store_free() */
        size_t n_stmts, n_stmts_allocated;
};

/* Fills reterr with "path: what: sqlite's message" and returns -EIO. */
int store_error(Store *s, DjError *reterr, const char *what);
/* Runs SQL without results; -EIO on failure (logged at debug). Prepares it every time: for one-off
 * statements (migrations, pragmas). */
int store_exec(Store *s, const char *sql);

/* The prepared-statement cache.
 *
 * store_prepare() hands out the statement for sql, prepared once (SQLITE_PREPARE_PERSISTENT) on first use
 * and kept until store_free(). The key is the SQL text itself (hashed, then compared), so any string
 * works, but the cache never evicts: use it for the fixed set of statements in the store's code, never
 * for SQL built from data (store_run_list picks one of a fixed set of variants).
 *
 * The statement comes out reset, with no bindings. The caller binds and steps it, and must hand it back
 * with store_release() (reset, bindings cleared) before it returns: a statement left stepped holds a read
 * transaction open, and that blocks WAL checkpoints. Declare it as
 *         _cleanup_(store_releasep) sqlite3_stmt *st = NULL;
 * so that every return path releases it. A statement must not be used twice at once (nested): asking
 * for one that is still stepped (not released) is -EBUSY. SQL that does not prepare is -EIO (logged at
 * debug), SQL that is not exactly one statement -EINVAL; neither is cached. */
int store_prepare(Store *s, const char *sql, sqlite3_stmt **ret);
void store_release(sqlite3_stmt *st);
DEFINE_TRIVIAL_CLEANUP_FUNC(sqlite3_stmt *, store_release);

/* BEGIN IMMEDIATE, COMMIT and ROLLBACK, with cached statements. -EIO on failure. */
int store_begin(Store *s);
int store_commit(Store *s);
void store_rollback(Store *s);

/* Steps a statement that returns rows: 1 with a row, 0 when done, -EIO on failure. */
int store_step(sqlite3_stmt *st);
/* Steps a statement that returns no rows, then resets it (bindings kept, for the next row of a batch):
 * 0 when done, -EIO on failure. */
int store_step_done(sqlite3_stmt *st);
/* Steps st (prepared and bound) for column 0 of its first row as an integer. -ENOENT when there is no
 * row, -EIO on failure. The caller still owns (releases or finalizes) st. */
int store_step_int64(sqlite3_stmt *st, int64_t *ret);
/* A copy of text column i ("" for NULL), NULL on OOM: the column's text dies with the next step. */
char *store_column_strdup(sqlite3_stmt *st, int i);
/* The value clamped to what an SQLite integer holds. */
static inline sqlite3_int64 u64_to_sql(uint64_t v) {
        return (sqlite3_int64) MIN(v, (uint64_t) INT64_MAX);
}

/* Binding and reading helpers shared by the store's files. */
void store_bind_text_or_null(sqlite3_stmt *st, int i, const char *s);
/* 0 ("not yet") is stored as NULL. */
void store_bind_time(sqlite3_stmt *st, int i, uint64_t t);
/* A copy of text column i, NULL for NULL: 0 or -ENOMEM. */
int store_column_strdup_or_null(sqlite3_stmt *st, int i, char **ret);
/* Integer column i, negative values as 0. */
uint64_t store_column_u64(sqlite3_stmt *st, int i);

/* Steps st (prepared and bound, selecting n, time, stream, level, text) to its end and returns the rows as
 * log lines, in the statement's order. 0, -ENOMEM or -EIO (nothing returned then). */
int store_log_lines_collect(sqlite3_stmt *st, StoreLogLine **ret, size_t *ret_n);
