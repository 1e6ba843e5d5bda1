/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dj-util.h"
#include "store.h"
#include "strv.h"
#include "test-tmpdir.h"
#include "workspace.h"

static char tmpdir[64];

static int setup(void **state) {
        test_mkdtemp(tmpdir, sizeof(tmpdir), "store-run");
        return 0;
}

static int teardown(void **state) {
        test_rm_rf(tmpdir);
        return 0;
}

/* A fresh store in the temporary directory (name: its file). */
static Store *open_store(const char *name) {
        _cleanup_free_ char *p = path_join(tmpdir, name);
        Store *s = NULL;

        assert_non_null(p);
        assert_int_equal(store_open(p, &s, NULL), 0);
        return s;
}

static int64_t add_workspace(Store *s, const char *slug) {
        char path[128];
        Workspace w = {
                .slug = (char *) slug,
                .name = (char *) slug,
                .path = path,
                .settings_module = (char *) "app.settings",
                .interpreter = (char *) "/usr/bin/python3",
                .mode = SERVER_MODE_SERVE,
                .created_at = 1,
                .updated_at = 1,
        };

        (void) snprintf(path, sizeof(path), "/srv/%s", slug);
        assert_int_equal(store_workspace_insert(s, &w, NULL), 0);
        assert_true(w.id > 0);
        return w.id;
}

/* A queued run of the workspace; the caller frees it with run_record_done(). */
static void make_run(RunRecord *r, int64_t workspace_id, const char *slug, const char *preset) {
        char *argv[] = { (char *) "/usr/bin/python3", (char *) "/srv/x/manage.py", (char *) preset, NULL };

        *r = (RunRecord){
                .workspace_id = workspace_id,
                .workspace = strdup(slug),
                .workspace_path = strdup("/srv/x"),
                .kind = strdup("task"),
                .preset = strdup(preset),
                .label = strdup("Label"),
                .params = strdup("{}"),
                .requested_by = strdup("cli"),
                .uid = 1000,
                .progress = 0,
                .queued_at = 1700000000000000,
                .timeout_s = 60,
                .max_output_lines = 100000,
        };
        for (size_t i = 0; argv[i]; i++)
                assert_int_equal(strv_extend(&r->argv, argv[i]), 0);
        strcpy(r->status, "queued");
        assert_non_null(r->workspace);
        assert_non_null(r->preset);
}

static uint64_t insert_run(Store *s, int64_t workspace_id, const char *slug, const char *preset,
                           const char *status) {
        RunRecord r;
        uint64_t id;

        make_run(&r, workspace_id, slug, preset);
        (void) snprintf(r.status, sizeof(r.status), "%s", status);
        assert_int_equal(store_run_insert(s, &r), 0);
        id = r.id;
        run_record_done(&r);
        return id;
}

static void assert_strv_equal(char **got, char **want) {
        size_t i = 0;

        assert_non_null(got);
        for (; want[i]; i++) {
                assert_non_null(got[i]);
                assert_string_equal(got[i], want[i]);
        }
        assert_null(got[i]);
}

static void assert_str_or_null_equal(const char *a, const char *b) {
        if (!b)
                assert_null(a);
        else {
                assert_non_null(a);
                assert_string_equal(a, b);
        }
}

static void assert_record_equal(const RunRecord *a, const RunRecord *b) {
        assert_int_equal(a->id, b->id);
        assert_int_equal(a->workspace_id, b->workspace_id);
        assert_string_equal(a->workspace, b->workspace);
        assert_string_equal(a->workspace_path, b->workspace_path);
        assert_string_equal(a->kind, b->kind);
        assert_string_equal(a->preset, b->preset);
        assert_string_equal(a->label, b->label);
        assert_str_or_null_equal(a->icon, b->icon);
        assert_strv_equal(a->argv, b->argv);
        assert_string_equal(a->params, b->params);
        assert_str_or_null_equal(a->note, b->note);
        assert_string_equal(a->requested_by, b->requested_by);
        assert_int_equal(a->uid, b->uid);
        assert_string_equal(a->status, b->status);
        assert_int_equal(a->progress, b->progress);
        assert_int_equal(a->has_exit_code, b->has_exit_code);
        if (b->has_exit_code)
                assert_int_equal(a->exit_code, b->exit_code);
        assert_int_equal(a->timed_out, b->timed_out);
        assert_int_equal(a->queued_at, b->queued_at);
        assert_int_equal(a->started_at, b->started_at);
        assert_int_equal(a->finished_at, b->finished_at);
        assert_int_equal(a->output_lines, b->output_lines);
        assert_int_equal(a->dropped_lines, b->dropped_lines);
        assert_str_or_null_equal(a->error, b->error);
        assert_str_or_null_equal(a->last_error_line, b->last_error_line);
        assert_int_equal(a->timeout_s, b->timeout_s);
        assert_int_equal(a->max_output_lines, b->max_output_lines);
        assert_int_equal(a->mask_secrets, b->mask_secrets);
}

static void test_insert_get_update(void **state) {
        _cleanup_(store_freep) Store *s = open_store("roundtrip.db");
        int64_t ws = add_workspace(s, "atlas");
        RunRecord r, got = {}, r2;

        /* Every field, with the optional ones NULL and no exit code. */
        make_run(&r, ws, "atlas", "check");
        assert_int_equal(store_run_insert(s, &r), 0);
        assert_true(r.id > 0);
        assert_int_equal(store_run_get(s, r.id, &got), 0);
        assert_record_equal(&got, &r);
        assert_false(got.has_exit_code);
        assert_null(got.icon);
        assert_null(got.note);
        assert_null(got.error);
        assert_int_equal(got.started_at, 0);
        run_record_done(&got);

        /* Ids grow. */
        make_run(&r2, ws, "atlas", "migrate");
        assert_int_equal(store_run_insert(s, &r2), 0);
        assert_true(r2.id > r.id);
        run_record_done(&r2);

        /* Every field changed, argv with quotes, spaces, unicode and an empty element. */
        strv_free(r.argv);
        r.argv = NULL;
        assert_int_equal(strv_extend(&r.argv, "/usr/bin/python3"), 0);
        assert_int_equal(strv_extend(&r.argv, "x; rm -rf ~"), 0);
        assert_int_equal(strv_extend(&r.argv, "\"quoted\" \\ back"), 0);
        assert_int_equal(strv_extend(&r.argv, "héllo ✓"), 0);
        assert_int_equal(strv_extend(&r.argv, ""), 0);
        free(r.icon);
        r.icon = strdup("utilities-terminal");
        free(r.note);
        r.note = strdup("a note ✓");
        free(r.params);
        r.params = strdup("{\"app\":\"polls\"}");
        free(r.label);
        r.label = strdup("System checks");
        free(r.requested_by);
        r.requested_by = strdup("dbus::1.42");
        r.uid = 4000000000u;
        strcpy(r.status, "timed_out");
        r.progress = 100;
        r.has_exit_code = true;
        r.exit_code = 128 + 15;
        r.timed_out = true;
        r.started_at = 1700000000100000;
        r.finished_at = 1700000005100000;
        r.output_lines = 123456;
        r.dropped_lines = 23456;
        free(r.error);
        r.error = strdup("timed out after 60 s");
        free(r.last_error_line);
        r.last_error_line = strdup("Traceback (most recent call last):");
        r.timeout_s = 5;
        r.max_output_lines = 100000;
        r.mask_secrets = true;
        assert_int_equal(store_run_update(s, &r), 0);
        assert_int_equal(store_run_get(s, r.id, &got), 0);
        assert_record_equal(&got, &r);
        run_record_done(&got);

        /* exit code 0 is an exit code; negative ones survive too */
        r.exit_code = 0;
        assert_int_equal(store_run_update(s, &r), 0);
        assert_int_equal(store_run_get(s, r.id, &got), 0);
        assert_true(got.has_exit_code);
        assert_int_equal(got.exit_code, 0);
        run_record_done(&got);

        /* and back to none, with an empty argv */
        r.has_exit_code = false;
        strv_free(r.argv);
        r.argv = NULL;
        assert_int_equal(store_run_update(s, &r), 0);
        assert_int_equal(store_run_get(s, r.id, &got), 0);
        assert_false(got.has_exit_code);
        assert_non_null(got.argv);
        assert_null(got.argv[0]);
        run_record_done(&got);

        assert_int_equal(store_run_get(s, 999999, &got), -ENOENT);
        run_record_done(&r);
        run_record_done(&r); /* done twice is harmless: it zeroed the record */
}

static void test_insert_refuses_incomplete(void **state) {
        _cleanup_(store_freep) Store *s = open_store("incomplete.db");
        int64_t ws = add_workspace(s, "atlas");
        RunRecord r;

        make_run(&r, ws, "atlas", "check");
        r.status[0] = 0;
        assert_int_equal(store_run_insert(s, &r), -EINVAL);
        strcpy(r.status, "queued");
        r.workspace_id = ws + 100; /* no such workspace: the foreign key refuses it */
        assert_int_equal(store_run_insert(s, &r), -EIO);
        run_record_done(&r);
}

static void test_list(void **state) {
        _cleanup_(store_freep) Store *s = open_store("list.db");
        int64_t a = add_workspace(s, "atlas"), b = add_workspace(s, "blog");
        uint64_t ids[6];
        RunRecord *l = NULL;
        size_t n = 0;

        ids[0] = insert_run(s, a, "atlas", "check", "succeeded");
        ids[1] = insert_run(s, b, "blog", "check", "failed");
        ids[2] = insert_run(s, a, "atlas", "migrate", "running");
        ids[3] = insert_run(s, a, "atlas", "check", "queued");
        ids[4] = insert_run(s, b, "blog", "dumpdata", "queued");
        ids[5] = insert_run(s, a, "atlas", "inspectdb", "failed");

        /* all, newest first */
        assert_int_equal(store_run_list(s, NULL, NULL, 100, &l, &n), 0);
        assert_int_equal(n, 6);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(l[i].id, ids[5 - i]);
        run_records_free(l, n);

        /* limit */
        assert_int_equal(store_run_list(s, NULL, NULL, 2, &l, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(l[0].id, ids[5]);
        assert_int_equal(l[1].id, ids[4]);
        run_records_free(l, n);

        /* workspace */
        assert_int_equal(store_run_list(s, "atlas", NULL, 100, &l, &n), 0);
        assert_int_equal(n, 4);
        assert_int_equal(l[0].id, ids[5]);
        assert_int_equal(l[1].id, ids[3]);
        assert_int_equal(l[2].id, ids[2]);
        assert_int_equal(l[3].id, ids[0]);
        for (size_t i = 0; i < n; i++)
                assert_string_equal(l[i].workspace, "atlas");
        run_records_free(l, n);

        /* status */
        assert_int_equal(store_run_list(s, NULL, "queued", 100, &l, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(l[0].id, ids[4]);
        assert_int_equal(l[1].id, ids[3]);
        run_records_free(l, n);

        /* both, and a limit */
        assert_int_equal(store_run_list(s, "atlas", "failed", 100, &l, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(l[0].id, ids[5]);
        assert_string_equal(l[0].preset, "inspectdb");
        run_records_free(l, n);
        assert_int_equal(store_run_list(s, "blog", "queued", 1, &l, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(l[0].id, ids[4]);
        run_records_free(l, n);

        /* nothing */
        assert_int_equal(store_run_list(s, "nope", NULL, 100, &l, &n), 0);
        assert_int_equal(n, 0);
        run_records_free(l, n);
        assert_int_equal(store_run_list(s, NULL, "cancelled", 100, &l, &n), 0);
        assert_int_equal(n, 0);
        run_records_free(l, n);
        assert_int_equal(store_run_list(s, NULL, NULL, 0, &l, &n), -EINVAL);

        /* unfinished: queued and running, oldest first */
        assert_int_equal(store_run_list_unfinished(s, &l, &n), 0);
        assert_int_equal(n, 3);
        assert_int_equal(l[0].id, ids[2]);
        assert_string_equal(l[0].status, "running");
        assert_int_equal(l[1].id, ids[3]);
        assert_int_equal(l[2].id, ids[4]);
        assert_string_equal(l[2].workspace, "blog");
        run_records_free(l, n);

        /* a workspace's runs go with it */
        assert_int_equal(store_workspace_delete(s, a, NULL), 0);
        assert_int_equal(store_run_list(s, NULL, NULL, 100, &l, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(l[0].id, ids[4]);
        assert_int_equal(l[1].id, ids[1]);
        run_records_free(l, n);
}

static StoreLogLine line(uint64_t n, const char *text) {
        return (StoreLogLine){
                .n = n,
                .time = 1700000000000000 + n,
                .stream = (char *) (n % 2 ? "stdout" : "stderr"),
                .level = (char *) (n % 3 ? "info" : "error"),
                .text = (char *) text,
        };
}

static void add_lines(Store *s, uint64_t run_id, uint64_t from, uint64_t to, uint64_t drop_through) {
        StoreLogLine *l = calloc(to - from + 1, sizeof(StoreLogLine));
        char(*texts)[32] = calloc(to - from + 1, sizeof(*texts));

        assert_non_null(l);
        assert_non_null(texts);
        for (uint64_t i = from; i <= to; i++) {
                (void) snprintf(texts[i - from], sizeof(texts[0]), "line %" PRIu64, i);
                l[i - from] = line(i, texts[i - from]);
        }
        assert_int_equal(store_run_log_append(s, run_id, l, to - from + 1, drop_through), 0);
        free(l);
        free(texts);
}

static uint64_t count_log(Store *s, uint64_t run_id) {
        StoreLogLine *l = NULL;
        size_t n = 0;

        assert_int_equal(store_run_log_read(s, run_id, 0, UINT64_MAX, &l, &n), 0);
        store_log_lines_free(l, n);
        return n;
}

static void test_prune(void **state) {
        _cleanup_(store_freep) Store *s = open_store("prune.db");
        int64_t a = add_workspace(s, "atlas"), b = add_workspace(s, "blog");
        uint64_t ids[10], other, first;
        RunRecord *l = NULL;
        size_t n = 0;

        /* atlas: 0 running, 1..6 finished, 7 queued, 8..9 finished; blog: one finished */
        ids[0] = insert_run(s, a, "atlas", "check", "running");
        for (size_t i = 1; i <= 6; i++)
                ids[i] = insert_run(s, a, "atlas", "check", i % 2 ? "succeeded" : "failed");
        ids[7] = insert_run(s, a, "atlas", "check", "queued");
        ids[8] = insert_run(s, a, "atlas", "check", "cancelled");
        ids[9] = insert_run(s, a, "atlas", "check", "interrupted");
        other = insert_run(s, b, "blog", "check", "succeeded");
        for (size_t i = 0; i < 10; i++)
                add_lines(s, ids[i], 1, 5, 0);
        add_lines(s, other, 1, 5, 0);

        /* keep the 3 newest finished ones: 9, 8, 6; deleted 1..5 */
        assert_int_equal(store_run_prune(s, a, 3), 5);
        assert_int_equal(store_run_list(s, "atlas", NULL, 100, &l, &n), 0);
        assert_int_equal(n, 5);
        assert_int_equal(l[0].id, ids[9]);
        assert_int_equal(l[1].id, ids[8]);
        assert_int_equal(l[2].id, ids[7]);
        assert_int_equal(l[3].id, ids[6]);
        assert_int_equal(l[4].id, ids[0]);
        run_records_free(l, n);
        for (size_t i = 1; i <= 5; i++) {
                assert_int_equal(count_log(s, ids[i]), 0);
                assert_int_equal(store_run_log_first(s, ids[i], &first), 0);
                assert_int_equal(first, 0);
        }
        assert_int_equal(count_log(s, ids[0]), 5);
        assert_int_equal(count_log(s, ids[6]), 5);
        assert_int_equal(count_log(s, ids[7]), 5);

        /* again: nothing more */
        assert_int_equal(store_run_prune(s, a, 3), 0);

        /* keep 0: every finished one, never queued or running, never another workspace's */
        assert_int_equal(store_run_prune(s, a, 0), 3);
        assert_int_equal(store_run_list(s, NULL, NULL, 100, &l, &n), 0);
        assert_int_equal(n, 3);
        assert_int_equal(l[0].id, other);
        assert_int_equal(l[1].id, ids[7]);
        assert_string_equal(l[1].status, "queued");
        assert_int_equal(l[2].id, ids[0]);
        assert_string_equal(l[2].status, "running");
        run_records_free(l, n);
        assert_int_equal(count_log(s, other), 5);
        assert_int_equal(count_log(s, ids[0]), 5);
}

/* Many runs: the newest keep finished ones of the workspace survive, with every queued and running one
 * and every run of the other workspace; the log lines of the deleted ones go with them. */
static void test_prune_many(void **state) {
        enum { N = 2000, KEEP = 500 };
        _cleanup_(store_freep) Store *s = open_store("prune-many.db");
        int64_t a = add_workspace(s, "atlas"), b = add_workspace(s, "blog");
        static uint64_t ids[N];
        static bool finished[N], expect[N];
        size_t n_finished = 0, n_expect = 0, n_other = 0, kept = 0;
        RunRecord *l = NULL;
        size_t n = 0;
        uint64_t t0, t1;
        int deleted;

        for (size_t i = 0; i < N; i++) {
                static const char *const statuses[] = { "succeeded", "failed", "cancelled", "timed_out",
                                                        "interrupted" };
                const char *status = i % 13 == 0 ? "queued" : i % 17 == 0 ? "running" : statuses[i % 5];

                ids[i] = insert_run(s, a, "atlas", "check", status);
                finished[i] = i % 13 != 0 && i % 17 != 0;
                if (i % 10 == 0) {
                        (void) insert_run(s, b, "blog", "check", "succeeded");
                        n_other++;
                }
                if (i % 100 == 0)
                        add_lines(s, ids[i], 1, 3, 0);
        }
        for (size_t i = N; i > 0; i--) {
                bool keep = !finished[i - 1] || kept < KEEP;

                if (finished[i - 1] && kept < KEEP)
                        kept++;
                expect[i - 1] = keep;
                n_expect += keep;
                n_finished += finished[i - 1];
        }

        t0 = now_usec(CLOCK_MONOTONIC);
        deleted = store_run_prune(s, a, KEEP);
        t1 = now_usec(CLOCK_MONOTONIC);
        print_message("pruned %d of %d runs: %" PRIu64 " us\n", deleted, N, t1 - t0);
        assert_int_equal(deleted, (int) (n_finished - KEEP));
        assert_int_equal(store_run_list(s, "atlas", NULL, 100000, &l, &n), 0);
        assert_int_equal(n, n_expect);
        for (size_t i = N, j = 0; i > 0; i--) {
                if (!expect[i - 1])
                        continue;
                assert_true(j < n);
                assert_int_equal(l[j].id, ids[i - 1]);
                j++;
        }
        run_records_free(l, n);
        for (size_t i = 0; i < N; i += 100)
                assert_int_equal(count_log(s, ids[i]), expect[i] ? 3 : 0);
        assert_int_equal(store_run_list(s, "blog", NULL, 100000, &l, &n), 0);
        assert_int_equal(n, n_other);
        run_records_free(l, n);

        /* again, and with more to keep than there are: nothing */
        assert_int_equal(store_run_prune(s, a, KEEP), 0);
        assert_int_equal(store_run_prune(s, a, UINT64_MAX), 0);

        /* one more finished run: exactly the oldest finished one goes */
        {
                uint64_t oldest = 0, second = 0, id;
                RunRecord got = {};

                for (size_t i = 0; i < N && !second; i++)
                        if (expect[i] && finished[i]) {
                                if (oldest)
                                        second = ids[i];
                                else
                                        oldest = ids[i];
                        }
                id = insert_run(s, a, "atlas", "check", "succeeded");
                assert_int_equal(store_run_prune(s, a, KEEP), 1);
                assert_int_equal(store_run_get(s, oldest, &got), -ENOENT);
                assert_int_equal(store_run_get(s, second, &got), 0);
                run_record_done(&got);
                assert_int_equal(store_run_get(s, id, &got), 0);
                run_record_done(&got);
        }

        /* keep 1 */
        assert_int_equal(store_run_prune(s, a, 1), KEEP - 1);
        assert_int_equal(store_run_list(s, "atlas", NULL, 100000, &l, &n), 0);
        assert_int_equal(n, n_expect - KEEP + 1);
        assert_string_equal(l[0].status, "succeeded");
        for (size_t i = 1; i < n; i++)
                assert_true(streq(l[i].status, "queued") || streq(l[i].status, "running"));
        run_records_free(l, n);
}

static void test_log(void **state) {
        _cleanup_(store_freep) Store *s = open_store("log.db");
        int64_t a = add_workspace(s, "atlas");
        uint64_t id = insert_run(s, a, "atlas", "check", "running");
        uint64_t id2 = insert_run(s, a, "atlas", "check", "running");
        StoreLogLine *l = NULL, one;
        size_t n = 0;
        uint64_t first;

        assert_int_equal(store_run_log_first(s, id, &first), 0);
        assert_int_equal(first, 0);
        assert_int_equal(store_run_log_read(s, id, 0, 100, &l, &n), 0);
        assert_int_equal(n, 0);
        store_log_lines_free(l, n);
        assert_int_equal(store_run_log_append(s, id, NULL, 0, 0), 0);

        /* every field round trips */
        one = line(1, "héllo \"world\" ✓");
        assert_int_equal(store_run_log_append(s, id, &one, 1, 0), 0);
        assert_int_equal(store_run_log_read(s, id, 0, 100, &l, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(l[0].n, 1);
        assert_int_equal(l[0].time, one.time);
        assert_string_equal(l[0].stream, "stdout");
        assert_string_equal(l[0].level, "info");
        assert_string_equal(l[0].text, "héllo \"world\" ✓");
        store_log_lines_free(l, n);

        /* a batch of many lines */
        add_lines(s, id, 2, 5000, 0);
        add_lines(s, id2, 1, 10, 0);
        assert_int_equal(store_run_log_read(s, id, 0, 10000, &l, &n), 0);
        assert_int_equal(n, 5000);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(l[i].n, i + 1);
        assert_string_equal(l[4999].text, "line 5000");
        assert_string_equal(l[2].stream, "stdout");
        assert_string_equal(l[2].level, "error");
        assert_string_equal(l[3].stream, "stderr");
        store_log_lines_free(l, n);

        /* since and limit: the oldest limit lines after since */
        assert_int_equal(store_run_log_read(s, id, 100, 3, &l, &n), 0);
        assert_int_equal(n, 3);
        assert_int_equal(l[0].n, 101);
        assert_int_equal(l[2].n, 103);
        assert_string_equal(l[0].text, "line 101");
        store_log_lines_free(l, n);
        assert_int_equal(store_run_log_read(s, id, 4998, 100, &l, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(l[1].n, 5000);
        store_log_lines_free(l, n);
        assert_int_equal(store_run_log_read(s, id, 5000, 100, &l, &n), 0);
        assert_int_equal(n, 0);
        store_log_lines_free(l, n);

        /* drop_through in the same transaction as the append */
        add_lines(s, id, 5001, 6000, 4000);
        assert_int_equal(store_run_log_first(s, id, &first), 0);
        assert_int_equal(first, 4001);
        assert_int_equal(count_log(s, id), 2000);
        assert_int_equal(store_run_log_read(s, id, 0, 1, &l, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(l[0].n, 4001);
        store_log_lines_free(l, n);

        /* drop only */
        assert_int_equal(store_run_log_append(s, id, NULL, 0, 5500), 0);
        assert_int_equal(store_run_log_first(s, id, &first), 0);
        assert_int_equal(first, 5501);
        assert_int_equal(count_log(s, id), 500);

        /* the other run is untouched */
        assert_int_equal(store_run_log_first(s, id2, &first), 0);
        assert_int_equal(first, 1);
        assert_int_equal(count_log(s, id2), 10);

        /* a batch for a run that does not exist is refused whole (foreign key) */
        {
                StoreLogLine bad[2] = { line(1, "a"), line(2, "b") };

                assert_int_equal(store_run_log_append(s, id2 + 1000, bad, 2, 0), -EIO);
                assert_int_equal(count_log(s, id2 + 1000), 0);
        }
        /* and the store still takes the next batch (the failed one was rolled back) */
        add_lines(s, id2, 11, 12, 0);
        assert_int_equal(count_log(s, id2), 12);

        /* a run deleted with its workspace takes its lines */
        assert_int_equal(store_workspace_delete(s, a, NULL), 0);
        assert_int_equal(count_log(s, id), 0);
        assert_int_equal(count_log(s, id2), 0);
}

static void test_log_batch_speed(void **state) {
        _cleanup_(store_freep) Store *s = open_store("speed.db");
        int64_t a = add_workspace(s, "atlas");
        uint64_t id = insert_run(s, a, "atlas", "check", "running");
        uint64_t t0, t1;

        /* 100,000 lines in batches of 2000, the newest 50,000 kept: well below a second. */
        t0 = now_usec(CLOCK_MONOTONIC);
        for (uint64_t from = 1; from <= 100000; from += 2000)
                add_lines(s, id, from, from + 1999, from + 1999 > 50000 ? from + 1999 - 50000 : 0);
        t1 = now_usec(CLOCK_MONOTONIC);
        assert_int_equal(count_log(s, id), 50000);
        print_message("100000 lines in 50 batches: %" PRIu64 " ms\n", (t1 - t0) / 1000);
        assert_true(t1 - t0 < 5 * USEC_PER_SEC); /* generous: sanitizers and slow CI disks */
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

static void test_migrate_from_3(void **state) {
        _cleanup_free_ char *p = path_join(tmpdir, "v3.db");
        Store *s = NULL;
        RunRecord *l = NULL;
        size_t n = 0;
        int64_t a;
        uint64_t id;

        /* A store as version 3 left it, with a workspace in it. */
        assert_int_equal(store_open_version(p, 3, &s, NULL), 0);
        assert_int_equal(store_schema_version(s), 3);
        a = add_workspace(s, "atlas");
        store_free(s);
        assert_int_equal(user_version(p), 3);

        assert_int_equal(store_open(p, &s, NULL), 0);
        assert_int_equal(store_schema_version(s), STORE_SCHEMA_VERSION);
        assert_int_equal(user_version(p), STORE_SCHEMA_VERSION);
        assert_int_equal(store_run_list(s, NULL, NULL, 10, &l, &n), 0);
        assert_int_equal(n, 0);
        run_records_free(l, n);
        id = insert_run(s, a, "atlas", "check", "queued");
        add_lines(s, id, 1, 3, 0);
        store_free(s);

        /* Reopened: runs and lines are still there. */
        assert_int_equal(store_open(p, &s, NULL), 0);
        assert_int_equal(store_run_list_unfinished(s, &l, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(l[0].id, id);
        assert_string_equal(l[0].workspace, "atlas");
        run_records_free(l, n);
        assert_int_equal(count_log(s, id), 3);
        store_free(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_insert_get_update),
                cmocka_unit_test(test_insert_refuses_incomplete),
                cmocka_unit_test(test_list),
                cmocka_unit_test(test_prune),
                cmocka_unit_test(test_prune_many),
                cmocka_unit_test(test_log),
                cmocka_unit_test(test_log_batch_speed),
                cmocka_unit_test(test_migrate_from_3),
        };

        return cmocka_run_group_tests_name("store-run", tests, setup, teardown);
}
