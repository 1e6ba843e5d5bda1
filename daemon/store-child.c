/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store-internal.h"

int store_child_group_add(Store *s, int pgid, int pid, uint64_t start_time, const char *owner,
                          uint64_t started_at) {
        _cleanup_(store_releasep) sqlite3_stmt *st = NULL;
        int r;

        assert_return(s && pgid > 0 && pid > 0 && owner);

        r = store_prepare(s,
                          "INSERT OR REPLACE INTO child_groups (pgid, pid, start_time, owner, started_at) "
                          "VALUES (?, ?, ?, ?, ?)",
                          &st);
        if (r < 0)
                return r;
        (void) sqlite3_bind_int(st, 1, pgid);
        (void) sqlite3_bind_int(st, 2, pid);
        (void) sqlite3_bind_int64(st, 3, (sqlite3_int64) start_time);
        (void) sqlite3_bind_text(st, 4, owner, -1, SQLITE_STATIC);
        (void) sqlite3_bind_int64(st, 5, (sqlite3_int64) started_at);
        return sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
}

int store_child_group_remove(Store *s, int pgid) {
        _cleanup_(store_releasep) sqlite3_stmt *st = NULL;
        int r;

        assert_return(s);

        r = store_prepare(s, "DELETE FROM child_groups WHERE pgid = ?", &st);
        if (r < 0)
                return r;
        (void) sqlite3_bind_int(st, 1, pgid);
        return sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
}

void store_child_group_free_many(StoreChildGroup *g, size_t n) {
        if (!g)
                return;
        for (size_t i = 0; i < n; i++)
                free(g[i].owner);
        free(g);
}

int store_child_group_list(Store *s, StoreChildGroup **ret, size_t *ret_n) {
        StoreChildGroup *g = NULL;
        sqlite3_stmt *st = NULL;
        size_t n = 0;
        int r;

        assert_return(s && ret && ret_n);

        if (sqlite3_prepare_v2(s->db,
                               "SELECT pgid, pid, start_time, owner, started_at FROM child_groups "
                               "ORDER BY started_at, pgid",
                               -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        for (;;) {
                StoreChildGroup *ng;

                r = store_step(st);
                if (r < 0)
                        goto fail;
                if (r == 0)
                        break;
                ng = realloc(g, (n + 1) * sizeof(*g));
                if (!ng) {
                        r = -ENOMEM;
                        goto fail;
                }
                g = ng;
                g[n] = (StoreChildGroup){
                        .pgid = sqlite3_column_int(st, 0),
                        .pid = sqlite3_column_int(st, 1),
                        .start_time = (uint64_t) sqlite3_column_int64(st, 2),
                        .owner = store_column_strdup(st, 3),
                        .started_at = (uint64_t) sqlite3_column_int64(st, 4),
                };
                n++;
                if (!g[n - 1].owner) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        sqlite3_finalize(st);
        *ret = g;
        *ret_n = n;
        return 0;

fail:
        sqlite3_finalize(st);
        store_child_group_free_many(g, n);
        return r;
}
