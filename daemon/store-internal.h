/* SPDX-License-Identifier: MIT */
#pragma once

/* For the store's own files (store.c, store-*.c): the only ones that include sqlite3. */

#include <sqlite3.h>

#include "store.h"

struct Store {
        sqlite3 *db;
        char *path;
        unsigned version;
};

/* Fills reterr with "path: what: sqlite's message" and returns -EIO. */
int store_error(Store *s, DjError *reterr, const char *what);
/* Runs SQL without results; -EIO on failure (logged at debug). */
int store_exec(Store *s, const char *sql);
/* Steps a statement that returns rows: 1 with a row, 0 when done, -EIO on failure. */
int store_step(sqlite3_stmt *st);
/* Steps st (prepared and bound) for column 0 of its first row as an integer, then finalizes it. -ENOENT
 * when there is no row, -EIO on failure. */
int store_step_int64(sqlite3_stmt *st, int64_t *ret);
/* A copy of text column i ("" for NULL), NULL on OOM: the column's text dies with the next step. */
char *store_column_strdup(sqlite3_stmt *st, int i);
