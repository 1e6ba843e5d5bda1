/* SPDX-License-Identifier: MIT */
/* The task queue (run.h).
 *
 * Runs live on RunQueue.runs, oldest (lowest id) first: every queued and running run, and the newest
 * RUN_KEEP_FINISHED finished ones. Dispatching happens only from a zero-delay timer, so nothing starts
 * inside the call that queued it (its reply goes first) nor inside a child's callback.
 *
 * Output. The per-line work is small on purpose (a run may print 100,000 lines a second): sanitize, mask
 * when asked, classify, append to the run's pending array. Pending lines are flushed every
 * RUN_FLUSH_USEC (one timer for the whole queue) or when a run has RUN_FLUSH_LINES (or RUN_FLUSH_BYTES)
 * of them: one store transaction and one run.log event per run per flush. The limits (the preset's
 * max_output_lines, RUN_OUTPUT_BYTES_MAX) are kept with a ring of the byte lengths of the lines in the
 * store: the oldest lines go first, in the same transaction that adds the new ones (drop_through), and
 * are counted in dropped_lines. Lines cut before they were ever stored still reach the live run.log
 * subscribers. */

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "child.h"
#include "config-file.h"
#include "daemon.h"
#include "dj-log.h"
#include "dj-util.h"
#include "events.h"
#include "export.h"
#include "datalab.h"
#include "loop.h"
#include "preset.h"
#include "run.h"
#include "server.h"
#include "store.h"
#include "strv.h"
#include "workspace.h"
#include "xdg.h"

#define RUN_FLUSH_USEC (100 * USEC_PER_MSEC)
/* A batch is one store transaction and one run.log event: small enough that a flood of output never holds
 * the loop for long, and that the event stays well within the 1 MiB message limit even when every byte
 * of the text needs a six-byte JSON escape. */
#define RUN_FLUSH_LINES 500
#define RUN_FLUSH_BYTES (UINT64_C(128) << 10)
/* The same bound for a run.logs page (at least one line is always returned). */
#define RUN_LOGS_PAGE_BYTES   (UINT64_C(96) << 10)
#define RUN_RECORD_SYNC_USEC  (1 * USEC_PER_SEC) /* a running run's counters reach its row this often */
#define RUN_LIST_DEFAULT      50
#define RUN_LIST_MAX          1000
#define RUN_LOGS_DEFAULT      1000
#define RUN_LOGS_MAX          10000
#define RUN_INTERRUPTED_LINE  "djdeskd stopped while this run was running; it was interrupted"
#define RUN_INTERRUPTED_ERROR "interrupted: djdeskd stopped while it was running"

struct RunQueue {
        Daemon *daemon;
        Run *runs, *last; /* oldest first */
        size_t n_queued, n_running, n_finished;
        LoopSource *dispatch_timer;
        LoopSource *flush_timer;
        char **preset_warnings; /* of the last load */
        RunsStoppedFn stopped_done;
        void *stopped_userdata;
        bool started;
        bool shutting_down;
};

static const char *const run_status_table[_RUN_STATUS_MAX] = {
        [RUN_QUEUED] = "queued",           [RUN_RUNNING] = "running",     [RUN_SUCCEEDED] = "succeeded",
        [RUN_FAILED] = "failed",           [RUN_CANCELLED] = "cancelled", [RUN_TIMED_OUT] = "timed_out",
        [RUN_INTERRUPTED] = "interrupted",
};

const char *run_status_to_string(RunStatus s) {
        return s >= 0 && s < _RUN_STATUS_MAX ? run_status_table[s] : NULL;
}

RunStatus run_status_from_string(const char *s) {
        for (RunStatus i = 0; s && i < _RUN_STATUS_MAX; i++)
                if (streq(run_status_table[i], s))
                        return i;
        return _RUN_STATUS_INVALID;
}

/* ---- JSON ---- */

static json_t *iso_or_null(uint64_t usec) {
        _cleanup_free_ char *s = NULL;

        if (usec == 0)
                return json_null();
        s = format_timestamp_iso(usec);
        return s ? json_string(s) : json_null();
}

static json_t *string_or_null(const char *s) {
        return s ? json_string(s) : json_null();
}

static json_t *strv_to_json(char *const *l) {
        json_t *a = json_array();

        for (char *const *p = l; a && p && *p; p++)
                if (json_array_append_new(a, json_string(*p)) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

json_t *run_record_to_json(const RunRecord *rec) {
        json_t *params = NULL, *argv, *exit_code, *duration, *o, *command;

        if (rec->params)
                params = json_loads(rec->params, 0, NULL);
        if (!json_is_object(params)) {
                json_decref(params);
                params = json_object();
        }
        argv = strv_to_json(rec->argv);
        exit_code = rec->has_exit_code ? json_integer(rec->exit_code) : json_null();
        duration = rec->started_at > 0 && rec->finished_at >= rec->started_at
                           ? json_real((double) (rec->finished_at - rec->started_at) / USEC_PER_SEC)
                           : json_null();
        command = json_pack("{s:O?, s:s?, s:O, s:O, s:I, s:b, s:s?}", "argv", argv, "workspace_path",
                            rec->workspace_path, "exit_code", exit_code, "duration_seconds", duration,
                            "output_lines", (json_int_t) rec->output_lines, "timed_out", rec->timed_out,
                            "requested_by", rec->requested_by);
        o = json_pack("{s:I, s:s, s:s?, s:s?, s:s?, s:o, s:s, s:i, s:o?, s:o, s:s?, s:I, s:o?, s:s?,"
                      " s:o, s:o, s:I, s:b, s:b, s:I, s:o, s:o, s:o, s:o, s:o, s:{s:o?}}",
                      "id", (json_int_t) rec->id, "kind", rec->kind ?: "task", "workspace", rec->workspace,
                      "preset", rec->preset, "label", rec->label ?: rec->preset, "icon",
                      string_or_null(rec->icon), "status", rec->status, "progress", (int) rec->progress,
                      "params", params, "note", string_or_null(rec->note), "requested_by", rec->requested_by,
                      "uid", (json_int_t) rec->uid, "argv", argv, "workspace_path", rec->workspace_path,
                      "exit_code", exit_code, "duration_seconds", duration, "output_lines",
                      (json_int_t) rec->output_lines, "timed_out", rec->timed_out, "truncated",
                      rec->dropped_lines > 0, "dropped_lines", (json_int_t) rec->dropped_lines, "error",
                      string_or_null(rec->error), "last_error_line", string_or_null(rec->last_error_line),
                      "queued_at", iso_or_null(rec->queued_at), "started_at", iso_or_null(rec->started_at),
                      "finished_at", iso_or_null(rec->finished_at), "metadata", "command", command);
        return o;
}

json_t *run_to_json(const Run *r) {
        return run_record_to_json(&r->rec);
}

/* ---- the queue ---- */

static RunQueue *queue_of(Daemon *d) {
        return d->runs;
}

Run *runs_first(Daemon *d) {
        return d->runs ? d->runs->runs : NULL;
}

Run *run_find(Daemon *d, uint64_t id) {
        if (!d->runs)
                return NULL;
        /* Newest first: the runs asked about are mostly recent. */
        for (Run *r = d->runs->last; r; r = r->prev)
                if (r->rec.id == id)
                        return r;
        return NULL;
}

size_t runs_count_queued(Daemon *d) {
        return d->runs ? d->runs->n_queued : 0;
}

size_t runs_count_running(Daemon *d) {
        return d->runs ? d->runs->n_running : 0;
}

static void run_pending_clear(Run *r) {
        for (size_t i = 0; i < r->n_pending; i++)
                free(r->pending[i].text);
        r->n_pending = 0;
}

static void run_free(Run *r) {
        RunQueue *q;

        if (!r)
                return;
        q = r->queue;
        if (r->prev)
                r->prev->next = r->next;
        else if (q->runs == r)
                q->runs = r->next;
        if (r->next)
                r->next->prev = r->prev;
        else if (q->last == r)
                q->last = r->prev;
        if (r->status == RUN_QUEUED)
                q->n_queued--;
        else if (r->status == RUN_RUNNING)
                q->n_running--;
        else
                q->n_finished--;
        r->timeout_timer = loop_source_free(r->timeout_timer);
        r->child = child_free(r->child);
        run_pending_clear(r);
        free(r->pending);
        free(r->stored_len);
        run_record_done(&r->rec);
        free(r);
}

/* Appends r, which has the highest id (or finds its place when it has not: the runs found at start). */
static void queue_link(RunQueue *q, Run *r) {
        Run *after = q->last;

        while (after && after->rec.id > r->rec.id)
                after = after->prev;
        r->prev = after;
        r->next = after ? after->next : q->runs;
        if (r->next)
                r->next->prev = r;
        else
                q->last = r;
        if (after)
                after->next = r;
        else
                q->runs = r;
        if (r->status == RUN_QUEUED)
                q->n_queued++;
        else if (r->status == RUN_RUNNING)
                q->n_running++;
        else
                q->n_finished++;
}

static void run_set_status(Run *r, RunStatus s) {
        RunQueue *q = r->queue;

        if (r->status == RUN_QUEUED)
                q->n_queued--;
        else if (r->status == RUN_RUNNING)
                q->n_running--;
        else
                q->n_finished--;
        r->status = s;
        (void) snprintf(r->rec.status, sizeof(r->rec.status), "%s", run_status_to_string(s));
        if (s == RUN_QUEUED)
                q->n_queued++;
        else if (s == RUN_RUNNING)
                q->n_running++;
        else
                q->n_finished++;
}

/* Frees the finished runs the store no longer has (retention: run_retention newer finished runs of the
 * same workspace exist), then the oldest finished runs beyond RUN_KEEP_FINISHED (they stay in the store). */
static void queue_trim(RunQueue *q) {
        uint64_t keep = q->daemon->config->run_retention;
        Run *r, *prev, *next;

        /* Only when fewer are kept than are in memory can a run in memory be gone from the store. */
        for (r = q->last; keep > 0 && keep < q->n_finished && r; r = prev) {
                uint64_t newer = 0;

                prev = r->prev;
                if (!run_status_finished(r->status))
                        continue;
                for (Run *o = r->next; o && newer < keep; o = o->next)
                        if (run_status_finished(o->status) && o->rec.workspace_id == r->rec.workspace_id)
                                newer++;
                if (newer >= keep)
                        run_free(r);
        }
        for (r = q->runs; r && q->n_finished > RUN_KEEP_FINISHED; r = next) {
                next = r->next;
                if (run_status_finished(r->status))
                        run_free(r);
        }
}

static void queue_dispatch_later(RunQueue *q) {
        if (q->started && !q->shutting_down && q->dispatch_timer)
                (void) loop_timer_arm(q->dispatch_timer, 0);
}

static void run_save(Run *r) {
        int k = store_run_update(r->queue->daemon->store, &r->rec);

        if (k < 0)
                log_warning_errno(k, "Cannot record run %" PRIu64 " in the store, ignoring: %m", r->rec.id);
}

static void run_publish(Run *r, const char *topic) {
        (void) events_publish(r->queue->daemon->events, topic, run_to_json(r));
}

static void set_string(char **p, const char *v) {
        char *n = v ? strdup(v) : NULL;

        free(*p);
        *p = n;
}

/* ---- output ---- */

/* Builds line objects quickly (a flush may hold thousands): the stream, level and timestamp strings are
 * shared between the lines of a batch, the keys and texts (valid UTF-8 already) are not checked again. */
typedef struct LineJsonCache {
        json_t *stream[_CHILD_STREAM_MAX];
        json_t *level[3];
        uint64_t ts_msec;
        json_t *ts;
} LineJsonCache;

static void line_json_cache_done(LineJsonCache *c) {
        for (size_t i = 0; i < ELEMENTSOF(c->stream); i++)
                json_decref(c->stream[i]);
        for (size_t i = 0; i < ELEMENTSOF(c->level); i++)
                json_decref(c->level[i]);
        json_decref(c->ts);
        *c = (LineJsonCache){};
}

static json_t *shared_string(json_t **slot, const char *s) {
        if (!*slot)
                *slot = json_string(s);
        return json_incref(*slot);
}

static json_t *log_line_json(LineJsonCache *c, const StoreLogLine *l) {
        json_t *o = json_object(), *stream, *level;
        uint64_t ms = l->time / USEC_PER_MSEC;

        if (!o)
                return NULL;
        if (!c->ts || c->ts_msec != ms) {
                _cleanup_free_ char *t = format_timestamp_iso(l->time);

                json_decref(c->ts);
                c->ts = t ? json_string_nocheck(t) : NULL;
                c->ts_msec = ms;
        }
        stream = streq(l->stream, "stderr") ? shared_string(&c->stream[CHILD_STDERR], "stderr")
                                            : shared_string(&c->stream[CHILD_STDOUT], "stdout");
        level = l->level[0] == 'e'   ? shared_string(&c->level[2], "error")
                : l->level[0] == 'w' ? shared_string(&c->level[1], "warning")
                                     : shared_string(&c->level[0], "info");
        (void) json_object_set_new_nocheck(o, "n", json_integer((json_int_t) l->n));
        (void) json_object_set_new_nocheck(o, "timestamp", c->ts ? json_incref(c->ts) : json_null());
        (void) json_object_set_new_nocheck(o, "stream", stream);
        (void) json_object_set_new_nocheck(o, "level", level);
        (void) json_object_set_new_nocheck(o, "text", json_string_nocheck(l->text ?: ""));
        return o;
}

/* Makes room in the ring of stored line lengths for one more. */
static int stored_grow(Run *r) {
        size_t m;
        uint32_t *a;

        if (r->stored_n < r->stored_alloc)
                return 0;
        m = r->stored_alloc ? r->stored_alloc * 2 : 1024;
        a = malloc(m * sizeof(uint32_t));
        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < r->stored_n; i++)
                a[i] = r->stored_len[(r->stored_start + i) % r->stored_alloc];
        free(r->stored_len);
        r->stored_len = a;
        r->stored_alloc = m;
        r->stored_start = 0;
        return 0;
}

static void stored_drop_oldest(Run *r) {
        r->stored_bytes -= r->stored_len[r->stored_start];
        r->stored_start = (r->stored_start + 1) % r->stored_alloc;
        r->stored_n--;
        r->rec.dropped_lines++;
}

/* Accounts for a new line of len bytes in the store: the oldest go while the limits are exceeded. */
static void stored_push(Run *r, size_t len) {
        uint64_t max_lines = r->rec.max_output_lines > 0 ? r->rec.max_output_lines : UINT64_MAX;

        while (r->stored_n > 0 &&
               (r->stored_n + 1 > max_lines || r->stored_bytes + len > RUN_OUTPUT_BYTES_MAX))
                stored_drop_oldest(r);
        if (stored_grow(r) < 0) {
                /* No memory for the bookkeeping: keep the limits by dropping everything older. */
                while (r->stored_n > 0)
                        stored_drop_oldest(r);
                r->rec.dropped_lines++;
                return;
        }
        r->stored_len[(r->stored_start + r->stored_n) % r->stored_alloc] = (uint32_t) len;
        r->stored_n++;
        r->stored_bytes += len;
}

static void run_flush(Run *r) {
        RunQueue *q = r->queue;
        Daemon *d = q->daemon;
        const StoreLogLine *rows;
        const char *last_error = NULL;
        _cleanup_(line_json_cache_done) LineJsonCache cache = {};
        size_t skip = 0, n;
        json_t *lines;
        int k;

        if (r->n_pending == 0)
                return;

        /* Lines already cut by the limits are not stored (they are still published). */
        while (skip < r->n_pending && r->pending[skip].n <= r->rec.dropped_lines)
                skip++;
        rows = r->pending + skip;
        n = r->n_pending - skip;
        k = store_run_log_append(d->store, r->rec.id, rows, n, r->rec.dropped_lines);
        if (k < 0)
                log_warning_errno(k, "Cannot store %zu log lines of run %" PRIu64 ", ignoring: %m", n,
                                  r->rec.id);

        for (size_t i = r->n_pending; i > 0; i--)
                if (streq(r->pending[i - 1].level, "error") && !isempty(r->pending[i - 1].text)) {
                        last_error = r->pending[i - 1].text;
                        break;
                }
        if (last_error)
                set_string(&r->rec.last_error_line, last_error);

        lines = json_array();
        for (size_t i = 0; lines && i < r->n_pending; i++)
                (void) json_array_append_new(lines, log_line_json(&cache, &r->pending[i]));
        if (lines) {
                const StoreLogLine *l = &r->pending[r->n_pending - 1];
                _cleanup_free_ char *t = format_timestamp_iso(l->time);

                (void) events_publish(d->events, "run.log",
                                      json_pack("{s:I, s:s, s:s, s:i, s:s?, s:s, s:o}", "id",
                                                (json_int_t) r->rec.id, "workspace", r->rec.workspace,
                                                "status", r->rec.status, "progress", (int) r->rec.progress,
                                                "timestamp", t, "log_line", l->text, "lines", lines));
        }
        run_pending_clear(r);
        r->pending_bytes = 0;
}

static void queue_flush_all(RunQueue *q) {
        uint64_t now = 0;

        if (q->flush_timer)
                loop_timer_disarm(q->flush_timer);
        for (Run *r = q->runs; r; r = r->next) {
                if (r->n_pending == 0)
                        continue;
                run_flush(r);
                if (r->status != RUN_RUNNING)
                        continue;
                /* The counters of a running run reach its row now and then (a crash loses little). */
                if (now == 0)
                        now = now_usec(CLOCK_MONOTONIC);
                if (now - r->synced_at >= RUN_RECORD_SYNC_USEC) {
                        r->synced_at = now;
                        run_save(r);
                }
        }
}

static void flush_timer_cb(LoopSource *s, void *userdata) {
        queue_flush_all(userdata);
}

/* Adds one line (text stolen) to the run's pending output. */
static void run_add_line(Run *r, ChildStream stream, const char *level, char *text /* stolen */) {
        RunQueue *q = r->queue;
        StoreLogLine *l;
        size_t len = strlen(text);

        if (greedy_realloc((void **) &r->pending, &r->n_pending_alloc, r->n_pending + 1,
                           sizeof(StoreLogLine)) < 0) {
                free(text);
                return;
        }
        l = &r->pending[r->n_pending++];
        *l = (StoreLogLine){
                .n = ++r->rec.output_lines,
                .time = now_usec(CLOCK_REALTIME),
                .stream = (char *) child_stream_to_string(stream),
                .level = (char *) level,
                .text = text,
        };
        stored_push(r, len);
        r->pending_bytes += len;
        if (r->n_pending >= RUN_FLUSH_LINES || r->pending_bytes >= RUN_FLUSH_BYTES)
                run_flush(r);
        else if (q->flush_timer && !loop_timer_armed(q->flush_timer))
                (void) loop_timer_arm(q->flush_timer, RUN_FLUSH_USEC);
}

/* Stores a line of our own in the run's log, without a run.log event (run.finished tells the story). */
static void run_store_line(Run *r, ChildStream stream, const char *level, const char *text) {
        StoreLogLine l = {
                .n = ++r->rec.output_lines,
                .time = now_usec(CLOCK_REALTIME),
                .stream = (char *) child_stream_to_string(stream),
                .level = (char *) level,
                .text = (char *) text,
        };
        int k;

        stored_push(r, strlen(text));
        k = store_run_log_append(r->queue->daemon->store, r->rec.id, &l, 1, r->rec.dropped_lines);
        if (k < 0)
                log_warning_errno(k, "Cannot store a log line of run %" PRIu64 ", ignoring: %m", r->rec.id);
}

/* ---- the life of a run ---- */

/* Every terminal transition goes through here, exactly once per run: the last output is flushed, the row
 * written, run.finished published, old runs pruned from the store. The run stays in memory (trimmed later,
 * from the dispatch timer, so callers iterating the queue are safe). */
static void run_finish(Run *r, RunStatus status, const char *error) {
        RunQueue *q = r->queue;
        Daemon *d = q->daemon;
        int k;

        assert(!run_status_finished(r->status));

        r->timeout_timer = loop_source_free(r->timeout_timer);
        r->child = child_free(r->child);
        /* What it printed while it ran goes out as it was (status running, progress 5). */
        run_flush(r);
        if (r->status == RUN_RUNNING)
                r->rec.progress = 95;
        if (status == RUN_INTERRUPTED)
                run_store_line(r, CHILD_STDERR, "warning", RUN_INTERRUPTED_LINE);
        /* No more output: the bookkeeping goes (a finished run may stay in memory for a while). */
        r->pending = mfree(r->pending);
        r->n_pending_alloc = 0;
        r->stored_len = mfree(r->stored_len);
        r->stored_start = r->stored_n = r->stored_alloc = 0;

        run_set_status(r, status);
        r->rec.progress = 100;
        r->rec.finished_at = now_usec(CLOCK_REALTIME);
        if (status == RUN_TIMED_OUT)
                r->rec.timed_out = true;
        set_string(&r->rec.error, error);
        run_save(r);
        log_debug("Run %" PRIu64 " (%s in '%s'): %s%s%s", r->rec.id, r->rec.preset, r->rec.workspace,
                  r->rec.status, error ? ": " : "", error ?: "");
        run_publish(r, "run.finished");

        if (d->config->run_retention > 0 && r->rec.workspace_id > 0) {
                k = store_run_prune(d->store, r->rec.workspace_id, d->config->run_retention);
                if (k < 0)
                        log_warning_errno(k, "Cannot prune the runs of '%s', ignoring: %m",
                                          r->rec.workspace);
        }
        if (q->dispatch_timer)
                (void) loop_timer_arm(q->dispatch_timer, 0); /* trims, and starts what may start now */
}

static void queue_check_stopped(RunQueue *q) {
        RunsStoppedFn done = q->stopped_done;

        if (!done || q->n_running > 0)
                return;
        q->stopped_done = NULL;
        done(q->stopped_userdata);
}

/* SIGTERM to the group, SIGKILL after the grace period. */
static void run_stop(Run *r) {
        if (r->child)
                (void) child_stop(r->child, r->queue->daemon->config->cancel_grace_sec * USEC_PER_SEC);
}

static void run_timeout_cb(LoopSource *s, void *userdata) {
        Run *r = userdata;

        if (r->cancel_requested || r->stop_for_shutdown || r->timeout_hit)
                return;
        log_debug("Run %" PRIu64 ": timed out after %" PRIu64 " s", r->rec.id, r->rec.timeout_s);
        r->timeout_hit = true;
        run_stop(r);
}

static void run_line_cb(Child *c, ChildStream stream, const char *line, size_t len, void *userdata) {
        Run *r = userdata;
        ServerLogLevel level;
        ServerLogKind kind;
        char *text;

        while (len > 0 && line[len - 1] == '\r')
                len--;
        text = utf8_sanitize(line, len);
        if (!text)
                return;
        if (r->rec.mask_secrets) {
                char *masked = run_mask_secrets(text);

                free(text);
                if (!masked)
                        return;
                text = masked;
        }
        server_log_classify(text, &r->in_traceback[stream], &level, &kind, NULL);
        run_add_line(r, stream, server_log_level_to_string(level), text);
}

static void run_exited_cb(Child *c, const ChildExit *e, void *userdata) {
        Run *r = userdata;
        char buf[64], why[96];
        RunStatus status;
        const char *error;

        r->child = child_free(c);
        r->rec.has_exit_code = true;
        r->rec.exit_code = e->code == CLD_EXITED ? e->status : 128 + e->status;
        (void) child_exit_to_string(e, buf, sizeof(buf));

        if (r->stop_for_shutdown) {
                status = RUN_INTERRUPTED;
                error = RUN_INTERRUPTED_ERROR;
        } else if (r->cancel_requested) {
                status = RUN_CANCELLED;
                error = "cancelled";
        } else if (r->timeout_hit) {
                status = RUN_TIMED_OUT;
                (void) snprintf(why, sizeof(why), "timed out after %" PRIu64 " s", r->rec.timeout_s);
                error = why;
        } else if (child_exit_success(e)) {
                status = RUN_SUCCEEDED;
                error = NULL;
        } else {
                status = RUN_FAILED;
                error = buf;
        }
        run_finish(r, status, error);
}

static const ChildOps run_child_ops = {
        .line = run_line_cb,
        .exited = run_exited_cb,
};

/* Starts a queued run; when it cannot start, it is finished as failed (false). */
static bool run_start(Run *r) {
        Daemon *d = r->queue->daemon;
        DjError err = DJ_ERROR_INIT;
        _cleanup_strv_free_ char **env = NULL;
        _cleanup_close_ int dirfd = -1, input_fd = -1;
        char owner[32], why[256];
        ChildSpec spec;
        int k;

        dirfd = workspace_verify(r->w, &err);
        if (dirfd < 0) {
                (void) snprintf(why, sizeof(why), "%s", err.message ?: "the workspace cannot be used");
                dj_error_done(&err);
                run_finish(r, RUN_FAILED, why);
                return false;
        }
        env = workspace_child_env(r->w, NULL);
        if (!env) {
                run_finish(r, RUN_FAILED, "out of memory");
                return false;
        }
        if (streq_ptr(r->rec.kind, "export")) {
                /* Gathered now, so the notebook holds what is true when it is written. */
                input_fd = export_input_fd(d, r->w, r->rec.preset, &err);
                if (input_fd < 0) {
                        (void) snprintf(why, sizeof(why), "%s", err.message ?: "cannot gather the input");
                        dj_error_done(&err);
                        run_store_line(r, CHILD_STDERR, "error", why);
                        run_finish(r, RUN_FAILED, why);
                        return false;
                }
        }
        (void) snprintf(owner, sizeof(owner), "run:%" PRIu64, r->rec.id);
        spec = (ChildSpec){
                .argv = r->rec.argv,
                .envp = env,
                .cwd = r->w->path,
                .cwd_fd = dirfd,
                .stdin_fd = input_fd,
                .listen_fd = -1,
                .owner = owner,
                .store = d->store,
        };
        k = child_spawn(d->loop, &spec, &run_child_ops, r, &r->child);
        if (k < 0) {
                (void) snprintf(why, sizeof(why), "cannot run '%s': %s", r->rec.argv[0], strerror(-k));
                run_finish(r, RUN_FAILED, why);
                return false;
        }

        run_set_status(r, RUN_RUNNING);
        r->rec.progress = 5;
        r->rec.started_at = child_started_at(r->child) ?: now_usec(CLOCK_REALTIME);
        r->synced_at = now_usec(CLOCK_MONOTONIC);
        if (r->rec.timeout_s > 0 && loop_add_timer(d->loop, run_timeout_cb, r, &r->timeout_timer) >= 0)
                (void) loop_timer_arm(r->timeout_timer, r->rec.timeout_s * USEC_PER_SEC);
        run_save(r);
        log_debug("Run %" PRIu64 " (%s in '%s') started, pid %d", r->rec.id, r->rec.preset, r->rec.workspace,
                  (int) child_pid(r->child));
        run_publish(r, "run.started");
        return true;
}

static void dispatch_cb(LoopSource *s, void *userdata) {
        RunQueue *q = userdata;
        Daemon *d = q->daemon;
        uint64_t max = MAX(d->config->max_parallel, (uint64_t) 1);
        _cleanup_free_ Workspace **busy = NULL;
        size_t n_busy = 0;

        queue_trim(q);
        queue_check_stopped(q);
        if (!q->started || q->shutting_down || q->n_queued == 0 || q->n_running >= max)
                return;

        busy = calloc(q->n_running + max + 1, sizeof(Workspace *));
        if (!busy)
                return;
        for (Run *r = q->runs; r; r = r->next)
                if (r->status == RUN_RUNNING && r->w)
                        busy[n_busy++] = r->w;

        for (Run *r = q->runs, *next; r && q->n_running < max; r = next) {
                bool taken = false;

                next = r->next;
                if (r->status != RUN_QUEUED || !r->w || r->w->removing)
                        continue;
                for (size_t i = 0; i < n_busy && !taken; i++)
                        taken = busy[i] == r->w;
                if (taken)
                        continue;
                if (run_start(r))
                        busy[n_busy++] = r->w;
        }
        queue_trim(q);
}

/* ---- presets ---- */

char **runs_preset_dirs(Daemon *d) {
        return djdesk_config_dirs(d->config->presets_dir, "presets.d");
}

int runs_reload_presets(Daemon *d, char ***ret_warnings, DjError *reterr) {
        _cleanup_(preset_set_freep) PresetSet *set = NULL;
        _cleanup_strv_free_ char **dirs = NULL, **warnings = NULL, **copy = NULL;
        RunQueue *q = queue_of(d);
        int k;

        dirs = runs_preset_dirs(d);
        if (!dirs)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        k = preset_set_load(dirs, d->config->task_timeout_sec, &set, &warnings);
        if (k < 0)
                return dj_error_set(reterr, DJ_E_INTERNAL, "cannot load the presets: %s", strerror(-k));
        for (char **w = warnings; w && *w; w++)
                if (strv_extend(&copy, *w) < 0)
                        return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        preset_set_free(d->presets);
        d->presets = TAKE_PTR(set);
        if (q) {
                strv_free(q->preset_warnings);
                q->preset_warnings = TAKE_PTR(copy);
        }
        log_debug("Loaded %zu presets.", preset_set_size(d->presets));
        if (ret_warnings)
                *ret_warnings = TAKE_PTR(warnings);
        return 0;
}

char **runs_preset_warnings(Daemon *d) {
        return d->runs ? d->runs->preset_warnings : NULL;
}

/* ---- run.start ---- */

static size_t utf8_length(const char *s) {
        size_t n = 0;

        for (; *s; s++)
                if (((unsigned char) *s & 0xC0) != 0x80)
                        n++;
        return n;
}

static Run *run_new(RunQueue *q) {
        Run *r = calloc(1, sizeof(*r));

        if (!r)
                return NULL;
        r->queue = q;
        r->status = RUN_QUEUED;
        (void) snprintf(r->rec.status, sizeof(r->rec.status), "queued");
        return r;
}

/* What a run executes: a preset's command, or the Data Lab's writer for a template. */
typedef struct RunJob {
        const char *kind, *key, *label, *icon;
        uint64_t timeout_s, max_output_lines;
        bool mask_secrets;
} RunJob;

static int job_from_preset(Daemon *d, Workspace *w, const RunRequest *req, RunJob *job, char ***ret_argv,
                           DjError *reterr) {
        _cleanup_free_ char *manage = NULL;
        const Preset *p;
        int k;

        p = d->presets ? preset_set_find(d->presets, req->preset) : NULL;
        if (!p)
                return dj_error_set_value(reterr, DJ_E_NOT_FOUND, req->preset,
                                          "no preset '%s' (not on the allowlist)", req->preset);
        if (req->params && !json_is_object(req->params))
                return dj_error_set(reterr, DJ_E_INVALID, "params must be an object of strings");
        manage = path_join(w->path, "manage.py");
        if (!manage)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        k = preset_expand_argv(p, isempty(w->interpreter) ? NULL : w->interpreter, manage, req->params,
                               ret_argv, reterr);
        if (k < 0)
                return k == -ENOMEM ? dj_error_set(reterr, DJ_E_INTERNAL, "out of memory") : k;
        if (p->requires_confirmation && !req->confirm)
                return dj_error_set_value(reterr, DJ_E_CONFIRM, p->key,
                                          "preset '%s' requires confirmation (confirm: true)", p->key);
        *job = (RunJob){
                .kind = "task",
                .key = p->key,
                .label = p->label,
                .icon = p->icon,
                .timeout_s = p->timeout_s,
                .max_output_lines = p->max_output_lines,
                .mask_secrets = p->mask_secrets || streq(p->key, "diffsettings"),
        };
        return 0;
}

static int job_from_template(Daemon *d, Workspace *w, const RunRequest *req, RunJob *job, char ***ret_argv,
                             DjError *reterr) {
        const DatalabTemplate *t;
        int k;

        if (req->params && !(json_is_object(req->params) && json_object_size(req->params) == 0))
                return dj_error_set(reterr, DJ_E_INVALID, "an export takes no params");
        k = export_run_argv(d, w, req->preset, &t, ret_argv, reterr);
        if (k < 0)
                return k;
        *job = (RunJob){
                .kind = "export",
                .key = t->slug,
                .label = t->title,
                .icon = "x-office-document",
                .timeout_s = d->config->task_timeout_sec,
        };
        return 0;
}

int run_enqueue(Daemon *d, const RunRequest *req, Run **ret, DjError *reterr) {
        RunQueue *q = queue_of(d);
        _cleanup_strv_free_ char **argv = NULL;
        _cleanup_free_ char *params = NULL;
        RunJob job = {};
        Workspace *w;
        Run *r;
        int k;

        assert_return(q && req && req->workspace && req->preset);

        w = workspace_find(d, req->workspace);
        if (!w)
                return dj_error_set_value(reterr, DJ_E_NOT_FOUND, req->workspace, "no workspace '%s'",
                                          req->workspace);
        if (w->removing)
                return dj_error_set_value(reterr, DJ_E_BUSY, req->workspace,
                                          "workspace '%s' is being removed", req->workspace);
        if (req->note && utf8_length(req->note) > RUN_NOTE_MAX)
                return dj_error_set(reterr, DJ_E_INVALID, "the note is longer than %d characters",
                                    RUN_NOTE_MAX);
        if (streq_ptr(req->kind, "export"))
                k = job_from_template(d, w, req, &job, &argv, reterr);
        else if (!req->kind || streq(req->kind, "task"))
                k = job_from_preset(d, w, req, &job, &argv, reterr);
        else
                k = dj_error_set_value(reterr, DJ_E_INVALID, req->kind, "unknown kind of run '%s'",
                                       req->kind);
        if (k < 0)
                return k;
        params = req->params ? json_dumps(req->params, JSON_COMPACT | JSON_SORT_KEYS) : strdup("{}");
        if (!params)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");

        r = run_new(q);
        if (!r)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        r->w = w;
        r->rec = (RunRecord){
                .workspace_id = w->id,
                .workspace = strdup(w->slug),
                .workspace_path = strdup(w->path),
                .kind = strdup(job.kind),
                .preset = strdup(job.key),
                .label = strdup(job.label),
                .icon = job.icon ? strdup(job.icon) : NULL,
                .argv = TAKE_PTR(argv),
                .params = TAKE_PTR(params),
                .note = isempty(req->note) ? NULL : strdup(req->note),
                .requested_by = strdup(req->requested_by ?: "daemon"),
                .uid = (uint32_t) req->uid,
                .status = "queued",
                .progress = 0,
                .queued_at = now_usec(CLOCK_REALTIME),
                .timeout_s = job.timeout_s,
                .max_output_lines = job.max_output_lines,
                .mask_secrets = job.mask_secrets,
        };
        if (!r->rec.workspace || !r->rec.workspace_path || !r->rec.kind || !r->rec.preset || !r->rec.label ||
            (job.icon && !r->rec.icon) || (!isempty(req->note) && !r->rec.note) || !r->rec.requested_by) {
                run_record_done(&r->rec);
                free(r);
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        }
        k = store_run_insert(d->store, &r->rec);
        if (k < 0) {
                run_record_done(&r->rec);
                free(r);
                return dj_error_set(reterr, DJ_E_INTERNAL, "cannot record the run: %s", strerror(-k));
        }
        queue_link(q, r);
        log_debug("Run %" PRIu64 " queued: %s %s in '%s' (%s)", r->rec.id, job.kind, job.key, w->slug,
                  r->rec.requested_by);
        run_publish(r, "run.queued");
        queue_dispatch_later(q);
        if (ret)
                *ret = r;
        return 0;
}

/* ---- run.cancel ---- */

int run_cancel(Daemon *d, uint64_t id, DjError *reterr) {
        Run *r = run_find(d, id);
        RunRecord rec = {};
        int k;

        if (!r) {
                k = store_run_get(d->store, id, &rec);
                if (k == -ENOENT)
                        return dj_error_set(reterr, DJ_E_NOT_FOUND, "no run %" PRIu64, id);
                if (k < 0)
                        return dj_error_set(reterr, DJ_E_INTERNAL, "cannot read run %" PRIu64 ": %s", id,
                                            strerror(-k));
                run_record_done(&rec);
                /* Anything unfinished is in memory: this one is over. */
                return dj_error_set(reterr, DJ_E_BUSY, "run %" PRIu64 " has finished already", id);
        }
        if (run_status_finished(r->status))
                return dj_error_set(reterr, DJ_E_BUSY, "run %" PRIu64 " has finished already (%s)", id,
                                    r->rec.status);
        if (r->status == RUN_QUEUED) {
                run_finish(r, RUN_CANCELLED, "cancelled");
                return 0;
        }
        if (r->cancel_requested || r->stop_for_shutdown || r->timeout_hit)
                return 0; /* on its way out already */
        log_debug("Run %" PRIu64 ": cancel requested", id);
        r->cancel_requested = true;
        run_stop(r);
        return 0;
}

/* ---- queries ---- */

/* A run no longer in memory, from the store: DJ_E_NOT_FOUND when there is no such run. */
static int run_record_load(Daemon *d, uint64_t id, RunRecord *ret, DjError *reterr) {
        int k = store_run_get(d->store, id, ret);

        if (k == -ENOENT)
                return dj_error_set(reterr, DJ_E_NOT_FOUND, "no run %" PRIu64, id);
        if (k < 0)
                return dj_error_set(reterr, DJ_E_INTERNAL, "cannot read run %" PRIu64 ": %s", id,
                                    strerror(-k));
        return 0;
}

json_t *run_get_json(Daemon *d, uint64_t id, DjError *reterr) {
        Run *r = run_find(d, id);
        RunRecord rec = {};
        json_t *j;

        if (r)
                j = run_to_json(r);
        else {
                if (run_record_load(d, id, &rec, reterr) < 0)
                        return NULL;
                j = run_record_to_json(&rec);
                run_record_done(&rec);
        }
        if (!j)
                (void) dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        return j;
}

json_t *runs_list_json(Daemon *d, const char *workspace, const char *status, uint64_t limit,
                       DjError *reterr) {
        RunRecord *recs = NULL;
        size_t n = 0;
        json_t *runs;
        int k;

        if (status && run_status_from_string(status) < 0) {
                (void) dj_error_set_value(reterr, DJ_E_INVALID, status,
                                          "Invalid params: status '%s' is not one of queued, running, "
                                          "succeeded, failed, cancelled, timed_out, interrupted",
                                          status);
                return NULL;
        }
        if (workspace && !workspace_find(d, workspace)) {
                (void) dj_error_set_value(reterr, DJ_E_NOT_FOUND, workspace, "no workspace '%s'", workspace);
                return NULL;
        }
        if (limit == 0)
                limit = RUN_LIST_DEFAULT;
        limit = MIN(limit, (uint64_t) RUN_LIST_MAX);

        /* The store knows every run; the ones in memory are fresher (a running run's counters). */
        queue_flush_all(queue_of(d));
        k = store_run_list(d->store, workspace, status, limit, &recs, &n);
        if (k < 0) {
                (void) dj_error_set(reterr, DJ_E_INTERNAL, "cannot list the runs: %s", strerror(-k));
                return NULL;
        }
        runs = json_array();
        for (size_t i = 0; runs && i < n; i++) {
                Run *r = run_find(d, recs[i].id);

                (void) json_array_append_new(runs, r ? run_to_json(r) : run_record_to_json(&recs[i]));
        }
        run_records_free(recs, n);
        if (!runs)
                (void) dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        return runs ? json_pack("{s:o}", "runs", runs) : NULL;
}

json_t *run_logs_json(Daemon *d, uint64_t id, uint64_t since, uint64_t limit, DjError *reterr) {
        Run *r = run_find(d, id);
        RunRecord rec = {};
        const RunRecord *src;
        _cleanup_(line_json_cache_done) LineJsonCache cache = {};
        StoreLogLine *rows = NULL;
        size_t n = 0;
        uint64_t first = 0, next = since;
        json_t *lines, *o = NULL;
        int k;

        if (r) {
                run_flush(r);
                src = &r->rec;
        } else {
                if (run_record_load(d, id, &rec, reterr) < 0)
                        return NULL;
                src = &rec;
        }
        if (limit == 0)
                limit = RUN_LOGS_DEFAULT;
        limit = MIN(limit, (uint64_t) RUN_LOGS_MAX);

        k = store_run_log_read(d->store, id, since, limit, &rows, &n);
        if (k >= 0)
                k = store_run_log_first(d->store, id, &first);
        if (k < 0) {
                (void) dj_error_set(reterr, DJ_E_INTERNAL, "cannot read the log of run %" PRIu64 ": %s", id,
                                    strerror(-k));
                goto finish;
        }
        lines = json_array();
        for (size_t i = 0, bytes = 0; lines && i < n; i++) {
                bytes += strlen(rows[i].text);
                if (i > 0 && bytes > RUN_LOGS_PAGE_BYTES)
                        break; /* the rest on the next page, from next */
                (void) json_array_append_new(lines, log_line_json(&cache, &rows[i]));
                next = rows[i].n;
        }
        if (lines)
                o = json_pack("{s:I, s:s, s:o, s:I, s:I, s:I, s:b, s:I}", "id", (json_int_t) id, "status",
                              src->status, "lines", lines, "next", (json_int_t) next, "first",
                              (json_int_t) first, "dropped_lines", (json_int_t) src->dropped_lines,
                              "truncated", src->dropped_lines > 0, "output_lines",
                              (json_int_t) src->output_lines);
        if (!o)
                (void) dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
finish:
        store_log_lines_free(rows, n);
        run_record_done(&rec);
        return o;
}

/* ---- workspace removal ---- */

void runs_workspace_removed(Daemon *d, Workspace *w) {
        RunQueue *q = queue_of(d);

        if (!q)
                return;
        for (Run *r = q->runs; r; r = r->next) {
                if (r->w != w || run_status_finished(r->status))
                        continue;
                if (r->status == RUN_RUNNING) {
                        r->cancel_requested = true;
                        r->child = child_free(r->child); /* SIGKILL to the group, reaped */
                        r->rec.has_exit_code = true;
                        r->rec.exit_code = 128 + SIGKILL;
                }
                run_finish(r, RUN_CANCELLED, "cancelled: its workspace was removed");
        }
        for (Run *r = q->runs, *next; r; r = next) {
                next = r->next;
                if (r->w == w)
                        run_free(r);
        }
}

/* ---- daemon start and stop ---- */

static Workspace *workspace_by_id(Daemon *d, int64_t id) {
        for (Workspace *w = d->workspaces; w; w = w->next)
                if (w->id == id)
                        return w;
        return NULL;
}

/* A run the previous daemon left running: its counters may be behind what reached the store. */
static void run_recount(Daemon *d, RunRecord *rec) {
        uint64_t first = 0, last = rec->output_lines;

        for (;;) {
                StoreLogLine *rows = NULL;
                size_t n = 0;

                if (store_run_log_read(d->store, rec->id, last, 10000, &rows, &n) < 0)
                        break;
                if (n > 0)
                        last = rows[n - 1].n;
                store_log_lines_free(rows, n);
                if (n < 10000)
                        break;
        }
        rec->output_lines = MAX(rec->output_lines, last);
        if (store_run_log_first(d->store, rec->id, &first) >= 0 && first > 1)
                rec->dropped_lines = MAX(rec->dropped_lines, first - 1);
}

int runs_init(Daemon *d, DjError *reterr) {
        _cleanup_strv_free_ char **warnings = NULL;
        RunRecord *recs = NULL;
        RunQueue *q;
        size_t n = 0;
        int k;

        q = calloc(1, sizeof(*q));
        if (!q)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        q->daemon = d;
        d->runs = q;
        if (loop_add_timer(d->loop, dispatch_cb, q, &q->dispatch_timer) < 0 ||
            loop_add_timer(d->loop, flush_timer_cb, q, &q->flush_timer) < 0)
                return dj_error_set(reterr, DJ_E_INTERNAL, "cannot set up the run timers");

        k = runs_reload_presets(d, &warnings, reterr);
        if (k < 0)
                return k;
        for (char **w = warnings; w && *w; w++)
                log_warning("Preset %s, skipping it.", *w);

        k = store_run_list_unfinished(d->store, &recs, &n);
        if (k < 0)
                return dj_error_set(reterr, DJ_E_INTERNAL, "cannot read the unfinished runs: %s",
                                    strerror(-k));
        for (size_t i = 0; i < n; i++) {
                Run *r = run_new(q);
                RunStatus was;

                if (!r) {
                        run_records_free(recs, n);
                        return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
                }
                r->rec = recs[i];
                recs[i] = (RunRecord){};
                r->w = workspace_by_id(d, r->rec.workspace_id);
                was = run_status_from_string(r->rec.status);
                r->status = was == RUN_RUNNING ? RUN_RUNNING : RUN_QUEUED;
                queue_link(q, r);
                if (was == RUN_RUNNING) {
                        run_recount(d, &r->rec);
                        /* The line limits restart from the store's count (its lines are not re-measured). */
                        log_notice("Run %" PRIu64
                                   " (%s in '%s') was running when djdeskd stopped: interrupted.",
                                   r->rec.id, r->rec.preset, r->rec.workspace);
                        run_finish(r, RUN_INTERRUPTED, RUN_INTERRUPTED_ERROR);
                } else if (!r->w)
                        run_finish(r, RUN_FAILED, "its workspace is gone");
                else
                        log_debug("Run %" PRIu64 " (%s in '%s') queued again.", r->rec.id, r->rec.preset,
                                  r->rec.workspace);
        }
        run_records_free(recs, n);
        if (q->n_queued > 0)
                log_info("%zu queued run(s) from the previous djdeskd will run.", q->n_queued);
        return 0;
}

void runs_start(Daemon *d) {
        RunQueue *q = queue_of(d);

        if (!q)
                return;
        q->started = true;
        queue_dispatch_later(q);
}

void runs_shutdown(Daemon *d) {
        RunQueue *q = queue_of(d);

        if (!q || q->shutting_down)
                return;
        q->shutting_down = true;
        for (Run *r = q->runs; r; r = r->next)
                if (r->status == RUN_RUNNING && !r->stop_for_shutdown) {
                        r->stop_for_shutdown = true;
                        run_stop(r);
                }
}

void runs_wait_stopped(Daemon *d, RunsStoppedFn done, void *userdata) {
        RunQueue *q = queue_of(d);

        if (!q || q->n_running == 0) {
                done(userdata);
                return;
        }
        log_info("Waiting for %zu run(s) to stop.", q->n_running);
        q->stopped_done = done;
        q->stopped_userdata = userdata;
}

void runs_free(Daemon *d) {
        RunQueue *q = queue_of(d);

        if (!q)
                return;
        q->shutting_down = true;
        for (Run *r = q->runs; r; r = r->next)
                if (r->status == RUN_RUNNING) {
                        r->stop_for_shutdown = true;
                        r->child = child_free(r->child); /* SIGKILL to the group, reaped */
                        r->rec.has_exit_code = true;
                        r->rec.exit_code = 128 + SIGKILL;
                        run_finish(r, RUN_INTERRUPTED, RUN_INTERRUPTED_ERROR);
                }
        queue_flush_all(q);
        while (q->runs)
                run_free(q->runs);
        q->dispatch_timer = loop_source_free(q->dispatch_timer);
        q->flush_timer = loop_source_free(q->flush_timer);
        strv_free(q->preset_warnings);
        free(q);
        d->runs = NULL;
        d->presets = preset_set_free(d->presets);
}
