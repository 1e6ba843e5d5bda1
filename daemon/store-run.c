/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dj-log.h"
#include "dj-macro.h"
#include "dj-util.h"
#include "store-internal.h"
#include "strv.h"

/* The columns written by insert and update, in bind order (update binds id last). */
#define RUN_COLUMNS                                                                                       \
        "workspace_id, workspace, workspace_path, kind, preset, label, icon, argv, params, note, "        \
        "requested_by, uid, status, progress, exit_code, timed_out, queued_at, started_at, finished_at, " \
        "output_lines, dropped_lines, error, last_error_line, timeout_s, max_output_lines, mask_secrets"
#define RUN_N_COLUMNS 26

void run_record_done(RunRecord *r) {
        if (!r)
                return;
        free(r->workspace);
        free(r->workspace_path);
        free(r->kind);
        free(r->preset);
        free(r->label);
        free(r->icon);
        strv_free(r->argv);
        free(r->params);
        free(r->note);
        free(r->requested_by);
        free(r->error);
        free(r->last_error_line);
        *r = (RunRecord){};
}

void run_records_free(RunRecord *r, size_t n) {
        for (size_t i = 0; r && i < n; i++)
                run_record_done(&r[i]);
        free(r);
}

/* argv as a JSON array of strings. A string that is not valid UTF-8 (an odd interpreter path) is stored
 * with its invalid bytes replaced. */
static char *argv_to_json_text(char *const *argv) {
        json_auto_t *a = json_array();

        if (!a)
                return NULL;
        for (size_t i = 0; argv && argv[i]; i++) {
                json_t *v = json_string(argv[i]);

                if (!v) {
                        _cleanup_free_ char *fixed = utf8_sanitize(argv[i], strlen(argv[i]));

                        if (!fixed)
                                return NULL;
                        v = json_string(fixed);
                        if (!v)
                                return NULL;
                }
                if (json_array_append_new(a, v) < 0)
                        return NULL;
        }
        return json_dumps(a, JSON_COMPACT);
}

/* A damaged argv column reads as an empty argv (logged at debug): a row stays readable. */
static int argv_from_json_text(const char *text, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        json_auto_t *a = NULL;
        json_error_t jerr;
        size_t i;
        json_t *v;

        a = text ? json_loads(text, JSON_REJECT_DUPLICATES, &jerr) : NULL;
        if (!json_is_array(a))
                log_debug("Run argv '%s' is not a JSON array, reading it as empty", text ?: "");
        else {
                json_array_foreach (a, i, v) {
                        if (!json_is_string(v))
                                continue;
                        if (strv_extend(&l, json_string_value(v)) < 0)
                                return -ENOMEM;
                }
        }
        if (!l) {
                l = calloc(1, sizeof(char *));
                if (!l)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

/* Binds every column of RUN_COLUMNS from r, at 1..RUN_N_COLUMNS. argv_text stays alive until the step. */
static void bind_run(sqlite3_stmt *st, const RunRecord *r, const char *argv_text) {
        (void) sqlite3_bind_int64(st, 1, (sqlite3_int64) r->workspace_id);
        store_bind_text_or_null(st, 2, r->workspace);
        store_bind_text_or_null(st, 3, r->workspace_path);
        store_bind_text_or_null(st, 4, r->kind ?: "task");
        store_bind_text_or_null(st, 5, r->preset);
        store_bind_text_or_null(st, 6, r->label ?: r->preset);
        store_bind_text_or_null(st, 7, r->icon);
        store_bind_text_or_null(st, 8, argv_text);
        store_bind_text_or_null(st, 9, r->params ?: "{}");
        store_bind_text_or_null(st, 10, r->note);
        store_bind_text_or_null(st, 11, r->requested_by);
        (void) sqlite3_bind_int64(st, 12, (sqlite3_int64) r->uid);
        store_bind_text_or_null(st, 13, r->status);
        (void) sqlite3_bind_int(st, 14, (int) MIN(r->progress, 100u));
        if (r->has_exit_code)
                (void) sqlite3_bind_int(st, 15, r->exit_code);
        else
                (void) sqlite3_bind_null(st, 15);
        (void) sqlite3_bind_int(st, 16, r->timed_out);
        (void) sqlite3_bind_int64(st, 17, u64_to_sql(r->queued_at));
        store_bind_time(st, 18, r->started_at);
        store_bind_time(st, 19, r->finished_at);
        (void) sqlite3_bind_int64(st, 20, u64_to_sql(r->output_lines));
        (void) sqlite3_bind_int64(st, 21, u64_to_sql(r->dropped_lines));
        store_bind_text_or_null(st, 22, r->error);
        store_bind_text_or_null(st, 23, r->last_error_line);
        (void) sqlite3_bind_int64(st, 24, u64_to_sql(r->timeout_s));
        (void) sqlite3_bind_int64(st, 25, u64_to_sql(r->max_output_lines));
        (void) sqlite3_bind_int(st, 26, r->mask_secrets);
}

static bool run_record_valid(const RunRecord *r) {
        return r->workspace && r->workspace_path && r->preset && r->requested_by && r->status[0] &&
               memchr(r->status, 0, sizeof(r->status));
}

int store_run_insert(Store *s, RunRecord *r) {
        _cleanup_(store_releasep) sqlite3_stmt *st = NULL;
        _cleanup_free_ char *argv_text = NULL;
        int k;

        assert_return(s && r && run_record_valid(r));

        argv_text = argv_to_json_text(r->argv);
        if (!argv_text)
                return -ENOMEM;
        k = store_prepare(s,
                          "INSERT INTO runs (" RUN_COLUMNS ") VALUES "
                          "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          &st);
        if (k < 0)
                return k;
        bind_run(st, r, argv_text);
        if (sqlite3_step(st) != SQLITE_DONE) {
                log_debug("Cannot insert a run: %s", sqlite3_errmsg(s->db));
                return -EIO;
        }
        r->id = (uint64_t) sqlite3_last_insert_rowid(s->db);
        return 0;
}

int store_run_update(Store *s, const RunRecord *r) {
        _cleanup_(store_releasep) sqlite3_stmt *st = NULL;
        _cleanup_free_ char *argv_text = NULL;
        int k;

        assert_return(s && r && r->id > 0 && run_record_valid(r));

        argv_text = argv_to_json_text(r->argv);
        if (!argv_text)
                return -ENOMEM;
        /* Binds like an insert, id last; workspace_id (?1) is not written: a run never moves, and leaving
         * it out spares the runs_workspace index a write. */
        k = store_prepare(s,
                          "UPDATE runs SET workspace = ?2, workspace_path = ?, kind = ?, "
                          "preset = ?, label = ?, icon = ?, argv = ?, params = ?, note = ?, "
                          "requested_by = ?, uid = ?, status = ?, progress = ?, exit_code = ?, "
                          "timed_out = ?, queued_at = ?, started_at = ?, finished_at = ?, "
                          "output_lines = ?, dropped_lines = ?, error = ?, last_error_line = ?, "
                          "timeout_s = ?, max_output_lines = ?, mask_secrets = ? WHERE id = ?",
                          &st);
        if (k < 0)
                return k;
        bind_run(st, r, argv_text);
        (void) sqlite3_bind_int64(st, RUN_N_COLUMNS + 1, u64_to_sql(r->id));
        if (sqlite3_step(st) != SQLITE_DONE) {
                log_debug("Cannot update run %" PRIu64 ": %s", r->id, sqlite3_errmsg(s->db));
                return -EIO;
        }
        return 0;
}

/* Reads a row of "SELECT id, " RUN_COLUMNS into ret (zeroed first; cleaned up on failure). */
static int run_record_from_row(sqlite3_stmt *st, RunRecord *ret) {
        RunRecord r = {};
        const unsigned char *status;
        _cleanup_free_ char *argv_text = NULL;
        int k;

        r.id = store_column_u64(st, 0);
        r.workspace_id = (int64_t) sqlite3_column_int64(st, 1);
        if (store_column_strdup_or_null(st, 8, &argv_text) < 0)
                goto oom;
        r.workspace = store_column_strdup(st, 2);
        r.workspace_path = store_column_strdup(st, 3);
        r.kind = store_column_strdup(st, 4);
        r.preset = store_column_strdup(st, 5);
        r.label = store_column_strdup(st, 6);
        r.params = store_column_strdup(st, 9);
        r.requested_by = store_column_strdup(st, 11);
        if (!r.workspace || !r.workspace_path || !r.kind || !r.preset || !r.label || !r.params ||
            !r.requested_by)
                goto oom;
        if (store_column_strdup_or_null(st, 7, &r.icon) < 0 ||
            store_column_strdup_or_null(st, 10, &r.note) < 0 ||
            store_column_strdup_or_null(st, 22, &r.error) < 0 ||
            store_column_strdup_or_null(st, 23, &r.last_error_line) < 0)
                goto oom;
        k = argv_from_json_text(argv_text, &r.argv);
        if (k < 0)
                goto oom;
        r.uid = (uint32_t) sqlite3_column_int64(st, 12);
        status = sqlite3_column_text(st, 13);
        (void) snprintf(r.status, sizeof(r.status), "%s", status ? (const char *) status : "");
        r.progress = (unsigned) MIN(store_column_u64(st, 14), 100u);
        r.has_exit_code = sqlite3_column_type(st, 15) != SQLITE_NULL;
        r.exit_code = r.has_exit_code ? sqlite3_column_int(st, 15) : 0;
        r.timed_out = sqlite3_column_int(st, 16) != 0;
        r.queued_at = store_column_u64(st, 17);
        r.started_at = store_column_u64(st, 18);
        r.finished_at = store_column_u64(st, 19);
        r.output_lines = store_column_u64(st, 20);
        r.dropped_lines = store_column_u64(st, 21);
        r.timeout_s = store_column_u64(st, 24);
        r.max_output_lines = store_column_u64(st, 25);
        r.mask_secrets = sqlite3_column_int(st, 26) != 0;
        *ret = r;
        return 0;
oom:
        run_record_done(&r);
        return -ENOMEM;
}

int store_run_get(Store *s, uint64_t id, RunRecord *ret) {
        _cleanup_(store_releasep) sqlite3_stmt *st = NULL;
        int r;

        assert_return(s && ret);
        r = store_prepare(s, "SELECT id, " RUN_COLUMNS " FROM runs WHERE id = ?", &st);
        if (r < 0)
                return r;
        (void) sqlite3_bind_int64(st, 1, u64_to_sql(id));
        r = store_step(st);
        if (r > 0)
                return run_record_from_row(st, ret);
        return r == 0 ? -ENOENT : r;
}

/* Steps st (prepared and bound) and reads every row; the caller releases st. */
static int run_records_read(sqlite3_stmt *st, RunRecord **ret, size_t *ret_n) {
        RunRecord *l = NULL;
        size_t n = 0, allocated = 0;
        int r;

        for (;;) {
                r = store_step(st);
                if (r < 0)
                        goto fail;
                if (r == 0)
                        break;
                r = greedy_realloc((void **) &l, &allocated, n + 1, sizeof(RunRecord));
                if (r < 0)
                        goto fail;
                r = run_record_from_row(st, &l[n]);
                if (r < 0)
                        goto fail;
                n++;
        }
        *ret = l;
        *ret_n = n;
        return 0;
fail:
        run_records_free(l, n);
        return r;
}

#define RUN_LIST_SELECT       "SELECT id, " RUN_COLUMNS " FROM runs WHERE 1"
#define RUN_LIST_BY_WORKSPACE " AND workspace_id = (SELECT id FROM workspaces WHERE slug = ?)"
#define RUN_LIST_BY_STATUS    " AND status = ?"
#define RUN_LIST_ORDER        " ORDER BY id DESC LIMIT ?"

int store_run_list(Store *s, const char *workspace, const char *status, uint64_t limit, RunRecord **ret,
                   size_t *ret_n) {
        /* Only the filters given, so that SQLite can use the (workspace_id, id) or (status) index: one
         * cached statement per combination. */
        static const char *const sql[4] = {
                RUN_LIST_SELECT RUN_LIST_ORDER,
                RUN_LIST_SELECT RUN_LIST_BY_WORKSPACE RUN_LIST_ORDER,
                RUN_LIST_SELECT RUN_LIST_BY_STATUS RUN_LIST_ORDER,
                RUN_LIST_SELECT RUN_LIST_BY_WORKSPACE RUN_LIST_BY_STATUS RUN_LIST_ORDER,
        };
        _cleanup_(store_releasep) sqlite3_stmt *st = NULL;
        int i = 1, r;

        assert_return(s && ret && ret_n && limit > 0);
        r = store_prepare(s, sql[(workspace ? 1 : 0) | (status ? 2 : 0)], &st);
        if (r < 0)
                return r;
        if (workspace)
                (void) sqlite3_bind_text(st, i++, workspace, -1, SQLITE_STATIC);
        if (status)
                (void) sqlite3_bind_text(st, i++, status, -1, SQLITE_STATIC);
        (void) sqlite3_bind_int64(st, i, u64_to_sql(limit));
        return run_records_read(st, ret, ret_n);
}

int store_run_list_unfinished(Store *s, RunRecord **ret, size_t *ret_n) {
        _cleanup_(store_releasep) sqlite3_stmt *st = NULL;
        int r;

        assert_return(s && ret && ret_n);
        r = store_prepare(s,
                          "SELECT id, " RUN_COLUMNS " FROM runs WHERE status IN ('queued', 'running') "
                          "ORDER BY id",
                          &st);
        if (r < 0)
                return r;
        return run_records_read(st, ret, ret_n);
}

int store_run_prune(Store *s, int64_t workspace_id, uint64_t keep) {
        _cleanup_(store_releasep) sqlite3_stmt *st = NULL;
        int r;

        assert_return(s);
        /* The cutoff is the newest finished run beyond the keep newest (the subquery runs once, walking
         * the runs_finished index from the top); everything finished at or below it goes. The WHERE on
         * status is runs_finished's, verbatim, so that both lookups use that index. The run_log lines
         * go with their run (ON DELETE CASCADE; foreign_keys is on): a range of run_log's primary key. */
        r = store_prepare(s,
                          "DELETE FROM runs WHERE workspace_id = ?1 AND status NOT IN ('queued', 'running') "
                          "AND id <= (SELECT id FROM runs WHERE workspace_id = ?1 "
                          "AND status NOT IN ('queued', 'running') ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                          &st);
        if (r < 0)
                return r;
        (void) sqlite3_bind_int64(st, 1, (sqlite3_int64) workspace_id);
        (void) sqlite3_bind_int64(st, 2, u64_to_sql(keep));
        if (store_step(st) != 0) {
                log_debug("Cannot prune the runs of workspace %" PRIi64 ": %s", workspace_id,
                          sqlite3_errmsg(s->db));
                return -EIO;
        }
        return sqlite3_changes(s->db);
}

int store_run_log_append(Store *s, uint64_t run_id, const StoreLogLine *lines, size_t n_lines,
                         uint64_t drop_through) {
        _cleanup_(store_releasep) sqlite3_stmt *ins = NULL, *del = NULL;
        int r;

        assert_return(s && (lines || n_lines == 0));
        if (n_lines == 0 && drop_through == 0)
                return 0;

        r = store_prepare(s,
                          "INSERT OR REPLACE INTO run_log (run_id, n, time, stream, level, text) "
                          "VALUES (?, ?, ?, ?, ?, ?)",
                          &ins);
        if (r < 0)
                return r;
        r = store_prepare(s, "DELETE FROM run_log WHERE run_id = ? AND n <= ?", &del);
        if (r < 0)
                return r;

        r = store_begin(s);
        if (r < 0)
                return r;
        /* One statement for the whole batch: only the bindings change. */
        (void) sqlite3_bind_int64(ins, 1, u64_to_sql(run_id));
        for (size_t i = 0; i < n_lines; i++) {
                (void) sqlite3_bind_int64(ins, 2, u64_to_sql(lines[i].n));
                (void) sqlite3_bind_int64(ins, 3, u64_to_sql(lines[i].time));
                (void) sqlite3_bind_text(ins, 4, lines[i].stream ?: "stdout", -1, SQLITE_STATIC);
                (void) sqlite3_bind_text(ins, 5, lines[i].level ?: "info", -1, SQLITE_STATIC);
                (void) sqlite3_bind_text(ins, 6, lines[i].text ?: "", -1, SQLITE_STATIC);
                r = store_step_done(ins);
                if (r < 0) {
                        log_debug("Cannot insert line %" PRIu64 " of run %" PRIu64 ": %s", lines[i].n,
                                  run_id, sqlite3_errmsg(s->db));
                        goto rollback;
                }
        }
        if (drop_through > 0) {
                (void) sqlite3_bind_int64(del, 1, u64_to_sql(run_id));
                (void) sqlite3_bind_int64(del, 2, u64_to_sql(drop_through));
                r = store_step_done(del);
                if (r < 0) {
                        log_debug("Cannot drop the old lines of run %" PRIu64 ": %s", run_id,
                                  sqlite3_errmsg(s->db));
                        goto rollback;
                }
        }
        r = store_commit(s);
        if (r >= 0)
                return r;
rollback:
        store_rollback(s);
        return r;
}

int store_run_log_read(Store *s, uint64_t run_id, uint64_t since, uint64_t limit, StoreLogLine **ret,
                       size_t *ret_n) {
        _cleanup_(store_releasep) sqlite3_stmt *st = NULL;
        int r;

        assert_return(s && ret && ret_n);
        r = store_prepare(s,
                          "SELECT n, time, stream, level, text FROM run_log "
                          "WHERE run_id = ? AND n > ? ORDER BY n LIMIT ?",
                          &st);
        if (r < 0)
                return r;
        (void) sqlite3_bind_int64(st, 1, u64_to_sql(run_id));
        (void) sqlite3_bind_int64(st, 2, u64_to_sql(since));
        (void) sqlite3_bind_int64(st, 3, u64_to_sql(limit));
        return store_log_lines_collect(st, ret, ret_n);
}

int store_run_log_first(Store *s, uint64_t run_id, uint64_t *ret) {
        _cleanup_(store_releasep) sqlite3_stmt *st = NULL;
        int64_t v;
        int r;

        assert_return(s && ret);
        r = store_prepare(s, "SELECT coalesce(min(n), 0) FROM run_log WHERE run_id = ?", &st);
        if (r < 0)
                return r;
        (void) sqlite3_bind_int64(st, 1, u64_to_sql(run_id));
        r = store_step_int64(st, &v);
        if (r >= 0)
                *ret = v > 0 ? (uint64_t) v : 0;
        return r;
}
