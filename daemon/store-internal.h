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
