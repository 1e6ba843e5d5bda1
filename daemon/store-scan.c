/* SPDX-License-Identifier: MIT */
/* The scans table (store schema 5): one row per (workspace, kind), replaced by every newer scan; the
 * result column keeps the last completed result while newer scans are pending, running or failed. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "dj-log.h"
#include "dj-macro.h"
#include "dj-util.h"
#include "store-internal.h"

#define SCAN_NEXT_ID_KEY "scan_next_id"

static void store_scan_done(StoreScan *r) {
        free(r->kind);
        free(r->status);
        free(r->summary);
        free(r->error);
        free(r->error_info);
        free(r->trigger);
        free(r->result);
        *r = (StoreScan){};
}

void store_scans_free(StoreScan *r, size_t n) {
        for (size_t i = 0; r && i < n; i++)
                store_scan_done(&r[i]);
        free(r);
}

int store_scan_next_id(Store *s, uint64_t *ret) {
        uint64_t id = 1;
        int r;

        assert_return(s && ret);
        r = store_meta_get_u64(s, SCAN_NEXT_ID_KEY, &id);
        if (r == -ENOENT || (r >= 0 && id == 0))
                id = 1;
        else if (r < 0)
                return r;
        r = store_meta_set_u64(s, SCAN_NEXT_ID_KEY, id + 1);
        if (r < 0)
                return r;
        *ret = id;
        return 0;
}

int store_scan_save(Store *s, const StoreScan *r) {
        _cleanup_(store_releasep) sqlite3_stmt *st = NULL;
        int k;

        assert_return(s && r && r->id > 0 && r->kind && r->status && r->trigger);

        /* COALESCE keeps the stored result when none is given. */
        k = store_prepare(
                s,
                "INSERT INTO scans (workspace_id, kind, id, status, progress, summary, error, "
                "error_info, reason, requested_at, started_at, completed_at, result) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(workspace_id, kind) DO UPDATE SET id = excluded.id, "
                "status = excluded.status, progress = excluded.progress, summary = excluded.summary, "
                "error = excluded.error, error_info = excluded.error_info, reason = excluded.reason, "
                "requested_at = excluded.requested_at, started_at = excluded.started_at, "
                "completed_at = excluded.completed_at, result = COALESCE(excluded.result, result)",
                &st);
        if (k < 0)
                return k;
        (void) sqlite3_bind_int64(st, 1, r->workspace_id);
        (void) sqlite3_bind_text(st, 2, r->kind, -1, SQLITE_STATIC);
        (void) sqlite3_bind_int64(st, 3, u64_to_sql(r->id));
        (void) sqlite3_bind_text(st, 4, r->status, -1, SQLITE_STATIC);
        (void) sqlite3_bind_int(st, 5, (int) MIN(r->progress, 100u));
        store_bind_text_or_null(st, 6, r->summary);
        store_bind_text_or_null(st, 7, r->error);
        store_bind_text_or_null(st, 8, r->error_info);
        (void) sqlite3_bind_text(st, 9, r->trigger, -1, SQLITE_STATIC);
        (void) sqlite3_bind_int64(st, 10, u64_to_sql(r->requested_at));
        store_bind_time(st, 11, r->started_at);
        store_bind_time(st, 12, r->completed_at);
        store_bind_text_or_null(st, 13, r->result);
        if (sqlite3_step(st) != SQLITE_DONE) {
                log_debug("Cannot save scan %" PRIu64 ": %s", r->id, sqlite3_errmsg(s->db));
                return -EIO;
        }
        return 0;
}

static int scan_from_row(sqlite3_stmt *st, StoreScan *ret) {
        StoreScan r = {
                .workspace_id = sqlite3_column_int64(st, 0),
                .id = store_column_u64(st, 2),
                .progress = (unsigned) MIN(store_column_u64(st, 4), 100u),
                .requested_at = store_column_u64(st, 9),
                .started_at = store_column_u64(st, 10),
                .completed_at = store_column_u64(st, 11),
        };

        if (store_column_strdup_or_null(st, 1, &r.kind) < 0 ||
            store_column_strdup_or_null(st, 3, &r.status) < 0 ||
            store_column_strdup_or_null(st, 5, &r.summary) < 0 ||
            store_column_strdup_or_null(st, 6, &r.error) < 0 ||
            store_column_strdup_or_null(st, 7, &r.error_info) < 0 ||
            store_column_strdup_or_null(st, 8, &r.trigger) < 0 ||
            store_column_strdup_or_null(st, 12, &r.result) < 0 || !r.kind || !r.status || !r.trigger) {
                store_scan_done(&r);
                return -ENOMEM;
        }
        *ret = r;
        return 0;
}

int store_scan_load(Store *s, int64_t workspace_id, StoreScan **ret, size_t *ret_n) {
        _cleanup_(store_releasep) sqlite3_stmt *st = NULL;
        StoreScan *list = NULL;
        size_t n = 0, n_alloc = 0;
        int k;

        assert_return(s && ret && ret_n);
        k = store_prepare(
                s,
                "SELECT workspace_id, kind, id, status, progress, summary, error, error_info, reason, "
                "requested_at, started_at, completed_at, result FROM scans WHERE workspace_id = ?",
                &st);
        if (k < 0)
                return k;
        (void) sqlite3_bind_int64(st, 1, workspace_id);
        while ((k = store_step(st)) > 0) {
                k = greedy_realloc((void **) &list, &n_alloc, n + 1, sizeof(StoreScan));
                if (k < 0)
                        break;
                k = scan_from_row(st, &list[n]);
                if (k < 0)
                        break;
                n++;
        }
        if (k < 0) {
                store_scans_free(list, n);
                return k;
        }
        *ret = list;
        *ret_n = n;
        return 0;
}
