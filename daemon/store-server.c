/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "dj-log.h"
#include "dj-macro.h"
#include "store-internal.h"

int store_server_log_append(Store *s, int64_t workspace_id, const StoreLogLine *lines, size_t n_lines,
                            uint64_t keep) {
        _cleanup_(store_releasep) sqlite3_stmt *ins = NULL, *del = NULL;
        uint64_t last = 0;
        int r;

        assert_return(s && (lines || n_lines == 0));
        if (n_lines == 0)
                return 0;

        r = store_prepare(s,
                          "INSERT OR REPLACE INTO server_log (workspace_id, n, time, stream, level, text) "
                          "VALUES (?, ?, ?, ?, ?, ?)",
                          &ins);
        if (r < 0)
                return r;
        r = store_prepare(s, "DELETE FROM server_log WHERE workspace_id = ? AND n <= ?", &del);
        if (r < 0)
                return r;

        r = store_begin(s);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_lines; i++) {
                (void) sqlite3_bind_int64(ins, 1, (sqlite3_int64) workspace_id);
                (void) sqlite3_bind_int64(ins, 2, (sqlite3_int64) lines[i].n);
                (void) sqlite3_bind_int64(ins, 3, (sqlite3_int64) lines[i].time);
                (void) sqlite3_bind_text(ins, 4, lines[i].stream, -1, SQLITE_STATIC);
                (void) sqlite3_bind_text(ins, 5, lines[i].level, -1, SQLITE_STATIC);
                (void) sqlite3_bind_text(ins, 6, lines[i].text, -1, SQLITE_STATIC);
                r = store_step_done(ins);
                if (r < 0) {
                        log_debug("Cannot insert server log line %" PRIu64 ": %s", lines[i].n,
                                  sqlite3_errmsg(s->db));
                        goto rollback;
                }
                last = MAX(last, lines[i].n);
        }
        if (keep > 0 && last > keep) {
                (void) sqlite3_bind_int64(del, 1, (sqlite3_int64) workspace_id);
                (void) sqlite3_bind_int64(del, 2, (sqlite3_int64) (last - keep));
                r = store_step_done(del);
                if (r < 0)
                        goto rollback;
        }
        r = store_commit(s);
        if (r >= 0)
                return r;
rollback:
        store_rollback(s);
        return r;
}

int store_server_log_max_n(Store *s, int64_t workspace_id, uint64_t *ret) {
        _cleanup_(store_releasep) sqlite3_stmt *st = NULL;
        int64_t v;
        int r;

        assert_return(s && ret);
        r = store_prepare(s, "SELECT coalesce(max(n), 0) FROM server_log WHERE workspace_id = ?", &st);
        if (r < 0)
                return r;
        (void) sqlite3_bind_int64(st, 1, (sqlite3_int64) workspace_id);
        r = store_step_int64(st, &v);
        if (r >= 0)
                *ret = (uint64_t) v;
        return r;
}

void store_log_lines_free(StoreLogLine *l, size_t n) {
        for (size_t i = 0; l && i < n; i++) {
                free(l[i].stream);
                free(l[i].level);
                free(l[i].text);
        }
        free(l);
}

int store_server_log_read(Store *s, int64_t workspace_id, uint64_t since, uint64_t limit, StoreLogLine **ret,
                          size_t *ret_n) {
        _cleanup_(store_releasep) sqlite3_stmt *st = NULL;
        StoreLogLine *lines = NULL;
        size_t n = 0;
        int r;

        assert_return(s && ret && ret_n);
        /* The newest limit lines, read newest first and stored back to front. */
        r = store_prepare(s,
                          "SELECT n, time, stream, level, text FROM server_log "
                          "WHERE workspace_id = ? AND n > ? ORDER BY n DESC LIMIT ?",
                          &st);
        if (r < 0)
                return r;
        (void) sqlite3_bind_int64(st, 1, (sqlite3_int64) workspace_id);
        (void) sqlite3_bind_int64(st, 2, (sqlite3_int64) MIN(since, (uint64_t) INT64_MAX));
        (void) sqlite3_bind_int64(st, 3, (sqlite3_int64) MIN(limit, (uint64_t) INT64_MAX));
        r = store_log_lines_collect(st, &lines, &n);
        if (r < 0)
                return r;
        /* Newest first from the query (to take the newest limit lines): oldest first for the caller. */
        for (size_t i = 0; i < n / 2; i++) {
                StoreLogLine t = lines[i];

                lines[i] = lines[n - 1 - i];
                lines[n - 1 - i] = t;
        }
        *ret = lines;
        *ret_n = n;
        return 0;
}
