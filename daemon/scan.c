/* SPDX-License-Identifier: MIT */
/* Scans (scan.h).
 *
 * Each workspace has a ScanSet: per kind the newest record (cur), the record of a request that came while
 * a probe already ran that kind (next: it runs once that probe is done), and the last completed result.
 * A workspace runs at most one probe; at most max_parallel probes run in all (a pool of its own, beside the
 * runs'). Dispatching happens only from a zero-delay timer: nothing is spawned inside the call or the
 * event sink that requested it, and the requester's reply always goes first.
 *
 * The probe prints one JSON line on stdout (what the project prints goes to its stderr). The line may come
 * in pieces (the line reader's maximum): stdout pieces are concatenated as they are. The last few stderr
 * lines are kept for the error of a probe that printed no document. */

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "child.h"
#include "config-file.h"
#include "daemon.h"
#include "dj-log.h"
#include "dj-util.h"
#include "events.h"
#include "loop.h"
#include "preset.h"
#include "scan.h"
#include "status.h"
#include "store.h"
#include "strv.h"
#include "watch.h"
#include "workspace.h"

#define SCAN_OUTPUT_MAX  (UINT64_C(64) << 20) /* a probe document larger than this fails the scan */
#define SCAN_STDERR_TAIL 8                    /* stderr lines kept for the error message */

struct ScanSet {
        ScanQueue *queue;
        Workspace *w;
        ScanRecord *cur[_SCAN_KIND_MAX];  /* the newest record, NULL: never scanned */
        ScanRecord *next[_SCAN_KIND_MAX]; /* requested while the probe ran that kind */
        json_t *result[_SCAN_KIND_MAX];   /* of the last completed scan */
        ScanCounts counts;
        uint64_t pending_since; /* CLOCK_MONOTONIC µs of the oldest pending request, 0: none */
        Watch *watch;           /* migration files */

        /* the running probe */
        Child *child;
        unsigned running; /* the kinds it serves */
        LoopSource *timeout_timer;
        char *out;
        size_t out_len, out_alloc;
        bool out_too_big;
        char *err_tail[SCAN_STDERR_TAIL]; /* ring */
        size_t err_start, err_n;
        bool cancel_requested, timeout_hit;
};

struct ScanQueue {
        Daemon *daemon;
        LoopSource *dispatch_timer;
        EventSubscriber *sub;
        size_t n_running;
        bool started, shutting_down;
};

static const char *const kind_names[_SCAN_KIND_MAX] = {
        [SCAN_SCHEMA] = "schema",
        [SCAN_MIGRATIONS] = "migrations",
        [SCAN_CHECKS] = "checks",
};
static const char *const status_names[_SCAN_STATUS_MAX] = {
        [SCAN_PENDING] = "pending",
        [SCAN_RUNNING] = "running",
        [SCAN_COMPLETED] = "completed",
        [SCAN_FAILED] = "failed",
};
/* The probe's "errors[].section" that fails each kind. */
static const char *const kind_sections[_SCAN_KIND_MAX] = {
        [SCAN_SCHEMA] = "models",
        [SCAN_MIGRATIONS] = "migrations",
        [SCAN_CHECKS] = "checks",
};

const char *scan_kind_to_string(ScanKind k) {
        return k >= 0 && k < _SCAN_KIND_MAX ? kind_names[k] : NULL;
}

ScanKind scan_kind_from_string(const char *s) {
        for (int i = 0; s && i < _SCAN_KIND_MAX; i++)
                if (streq(kind_names[i], s))
                        return i;
        return _SCAN_KIND_INVALID;
}

const char *scan_status_to_string(ScanStatus s) {
        return s >= 0 && s < _SCAN_STATUS_MAX ? status_names[s] : NULL;
}

ScanStatus scan_status_from_string(const char *s) {
        for (int i = 0; s && i < _SCAN_STATUS_MAX; i++)
                if (streq(status_names[i], s))
                        return i;
        return _SCAN_STATUS_INVALID;
}

static json_t *json_decref_null(json_t *j) {
        json_decref(j);
        return NULL;
}

/* ---- pure helpers ---- */

static unsigned count_array(json_t *o, const char *key) {
        return (unsigned) json_array_size(json_object_get(o, key));
}

void scan_counts_from_results(json_t *schema, json_t *migrations, json_t *checks, ScanCounts *ret) {
        ScanCounts c = {};
        json_t *v, *m;
        size_t i, j;

        c.apps = count_array(schema, "apps");
        c.models = count_array(schema, "models");
        json_array_foreach (json_object_get(schema, "models"), i, v)
                c.relations += count_array(v, "relations");
        json_array_foreach (json_object_get(migrations, "migrations"), i, v) {
                json_array_foreach (json_object_get(v, "migrations"), j, m) {
                        if (json_is_true(json_object_get(m, "applied")))
                                c.applied_migrations++;
                        else
                                c.pending_migrations++;
                }
                if (count_array(v, "conflicts") > 0)
                        c.migration_conflicts++;
        }
        json_array_foreach (json_object_get(checks, "checks"), i, v) {
                const char *level = json_string_value(json_object_get(v, "level"));

                if (streq_ptr(level, "WARNING"))
                        c.check_warnings++;
                else if (streq_ptr(level, "ERROR") || streq_ptr(level, "CRITICAL"))
                        c.check_errors++;
        }
        *ret = c;
}

static const char *plural_s(unsigned n) {
        return n == 1 ? "" : "s";
}

char *scan_summary(ScanKind k, json_t *result) {
        ScanCounts c;
        char *s = NULL;
        int r = -1;

        switch (k) {
        case SCAN_SCHEMA:
                scan_counts_from_results(result, NULL, NULL, &c);
                r = asprintf(&s, "%u model%s in %u app%s, %u relation%s", c.models, plural_s(c.models),
                             c.apps, plural_s(c.apps), c.relations, plural_s(c.relations));
                break;
        case SCAN_MIGRATIONS: {
                json_t *db = json_object_get(result, "database");
                bool missing = db && json_is_false(json_object_get(db, "exists"));
                char conflicts[48] = "";

                scan_counts_from_results(NULL, result, NULL, &c);
                if (c.migration_conflicts > 0)
                        (void) snprintf(conflicts, sizeof(conflicts), ", %u conflict%s",
                                        c.migration_conflicts, plural_s(c.migration_conflicts));
                r = asprintf(&s, "%u migration%s, %u pending%s%s",
                             c.applied_migrations + c.pending_migrations,
                             plural_s(c.applied_migrations + c.pending_migrations), c.pending_migrations,
                             conflicts, missing ? " (database not created yet)" : "");
                break;
        }
        case SCAN_CHECKS:
                scan_counts_from_results(NULL, NULL, result, &c);
                r = asprintf(&s, "%u warning%s, %u error%s", c.check_warnings, plural_s(c.check_warnings),
                             c.check_errors, plural_s(c.check_errors));
                break;
        default:
                break;
        }
        return r < 0 ? NULL : s;
}

/* ---- records ---- */

static ScanRecord *scan_record_free(ScanRecord *r) {
        if (!r)
                return NULL;
        free(r->summary);
        free(r->error);
        json_decref(r->error_info);
        free(r->trigger);
        free(r);
        return NULL;
}

static json_t *iso_or_null(uint64_t usec) {
        _cleanup_free_ char *s = usec > 0 ? format_timestamp_iso(usec) : NULL;

        return s ? json_string(s) : json_null();
}

static json_t *string_or_null(const char *s) {
        return s ? json_string(s) : json_null();
}

json_t *scan_record_to_json(const Workspace *w, const ScanRecord *r) {
        json_t *o;

        if (!r)
                return NULL;
        o = json_pack("{s:I, s:s?, s:s, s:s, s:i, s:o, s:s?, s:o, s:o, s:o, s:o}", "id", (json_int_t) r->id,
                      "workspace", w ? w->slug : NULL, "kind", scan_kind_to_string(r->kind), "status",
                      scan_status_to_string(r->status), "progress", (int) r->progress, "summary",
                      string_or_null(r->summary), "trigger", r->trigger, "requested_at",
                      iso_or_null(r->requested_at), "started_at", iso_or_null(r->started_at), "completed_at",
                      iso_or_null(r->completed_at), "error", string_or_null(r->error));
        if (o && r->error_info)
                (void) json_object_set(o, "error_info", r->error_info);
        return o;
}

json_t *scans_to_json(Workspace *w) {
        json_t *a = json_array();

        for (ScanKind k = 0; a && w && w->scans && k < _SCAN_KIND_MAX; k++)
                if (w->scans->cur[k] &&
                    json_array_append_new(a, scan_record_to_json(w, w->scans->cur[k])) < 0)
                        a = json_decref_null(a);
        return a;
}

const ScanRecord *scan_current(Workspace *w, ScanKind k) {
        return w && w->scans && k >= 0 && k < _SCAN_KIND_MAX ? w->scans->cur[k] : NULL;
}

const ScanRecord *scan_find(Daemon *d, uint64_t id, Workspace **ret_w) {
        for (Workspace *w = d->workspaces; id > 0 && w; w = w->next)
                for (ScanKind k = 0; w->scans && k < _SCAN_KIND_MAX; k++) {
                        ScanRecord *r = w->scans->cur[k] && w->scans->cur[k]->id == id ? w->scans->cur[k]
                                        : w->scans->next[k] && w->scans->next[k]->id == id
                                                ? w->scans->next[k]
                                                : NULL;

                        if (r) {
                                if (ret_w)
                                        *ret_w = w;
                                return r;
                        }
                }
        return NULL;
}

json_t *scan_result(Workspace *w, ScanKind k) {
        return w && w->scans && k >= 0 && k < _SCAN_KIND_MAX ? w->scans->result[k] : NULL;
}

void scan_counts(Workspace *w, ScanCounts *ret) {
        *ret = w && w->scans ? w->scans->counts : (ScanCounts){};
}

bool scan_busy(Workspace *w) {
        return w && w->scans && (w->scans->child || w->scans->pending_since > 0);
}

static void set_update_counts(ScanSet *s) {
        uint64_t last = 0;

        scan_counts_from_results(s->result[SCAN_SCHEMA], s->result[SCAN_MIGRATIONS], s->result[SCAN_CHECKS],
                                 &s->counts);
        for (ScanKind k = 0; k < _SCAN_KIND_MAX; k++)
                if (s->cur[k] && s->cur[k]->completed_at > last)
                        last = s->cur[k]->completed_at;
        s->counts.last_scan_at = last;
}

static Daemon *set_daemon(ScanSet *s) {
        return s->queue->daemon;
}

/* Writes cur[k] (and, when with_result, result[k]) to the store. A store failure is logged: the record
 * lives on in memory. */
static void set_save(ScanSet *s, ScanKind k, bool with_result) {
        const ScanRecord *r = s->cur[k];
        _cleanup_free_ char *error_info = NULL, *result = NULL;
        StoreScan row;
        int e;

        if (!r || s->w->id <= 0)
                return;
        if (r->error_info)
                error_info = json_dumps(r->error_info, JSON_COMPACT);
        if (with_result && s->result[k])
                result = json_dumps(s->result[k], JSON_COMPACT);
        row = (StoreScan){
                .workspace_id = s->w->id,
                .id = r->id,
                .kind = (char *) scan_kind_to_string(k),
                .status = (char *) scan_status_to_string(r->status),
                .progress = r->progress,
                .summary = r->summary,
                .error = r->error,
                .error_info = error_info,
                .trigger = r->trigger,
                .requested_at = r->requested_at,
                .started_at = r->started_at,
                .completed_at = r->completed_at,
                .result = result,
        };
        e = store_scan_save(set_daemon(s)->store, &row);
        if (e < 0)
                log_warning_errno(e, "Cannot record scan %" PRIu64 " in the store, ignoring: %m", r->id);
}

static void publish_record(ScanSet *s, const char *topic, const ScanRecord *r) {
        json_t *data =
                json_pack("{s:s, s:o}", "workspace", s->w->slug, "scan", scan_record_to_json(s->w, r));

        if (data)
                (void) events_publish(set_daemon(s)->events, topic, data);
}

static void set_publish(ScanSet *s, const char *topic, ScanKind k) {
        publish_record(s, topic, s->cur[k]);
}

static int record_new(ScanSet *s, ScanKind k, const char *trigger, ScanRecord **ret, DjError *reterr) {
        _cleanup_free_ ScanRecord *r = calloc(1, sizeof(ScanRecord));
        int e;

        if (!r)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        r->trigger = strdup(trigger);
        if (!r->trigger)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        e = store_scan_next_id(set_daemon(s)->store, &r->id);
        if (e < 0) {
                free(r->trigger);
                return dj_error_set(reterr, DJ_E_INTERNAL, "cannot record the scan in the store: %s",
                                    strerror(-e));
        }
        r->kind = k;
        r->status = SCAN_PENDING;
        r->requested_at = now_usec(CLOCK_REALTIME);
        *ret = TAKE_PTR(r);
        return 0;
}

/* Ends cur[k]: completed (result stolen, may be NULL only on failure) or failed (error). */
static void record_finish(ScanSet *s, ScanKind k, json_t *result /* stolen */, const char *error,
                          json_t *error_info /* stolen */) {
        ScanRecord *r = s->cur[k];

        r->completed_at = now_usec(CLOCK_REALTIME);
        r->progress = 100;
        r->summary = mfree(r->summary);
        r->error = mfree(r->error);
        r->error_info = json_decref_null(r->error_info);
        if (error) {
                r->status = SCAN_FAILED;
                r->error = strdup(error);
                r->error_info = error_info;
                json_decref(result);
        } else {
                r->status = SCAN_COMPLETED;
                r->summary = scan_summary(k, result);
                json_decref(s->result[k]);
                s->result[k] = result;
                json_decref(error_info);
        }
        set_update_counts(s);
        set_save(s, k, !error);
        log_debug("Scan %" PRIu64 " (%s of '%s'): %s%s%s", r->id, scan_kind_to_string(k), s->w->slug,
                  scan_status_to_string(r->status), r->error ? ": " : "", r->error ?: r->summary ?: "");
        set_publish(s, "scan.finished", k);
}

static bool set_has_pending(ScanSet *s) {
        for (ScanKind k = 0; k < _SCAN_KIND_MAX; k++)
                if ((s->cur[k] && s->cur[k]->status == SCAN_PENDING) || s->next[k])
                        return true;
        return false;
}

static void set_refresh_pending(ScanSet *s) {
        if (!set_has_pending(s))
                s->pending_since = 0;
        else if (s->pending_since == 0)
                s->pending_since = now_usec(CLOCK_MONOTONIC);
}

static void queue_dispatch_later(ScanQueue *q) {
        if (q && q->started && !q->shutting_down && q->dispatch_timer)
                (void) loop_timer_arm(q->dispatch_timer, 0);
}

/* ---- the probe ---- */

static void probe_clear(ScanSet *s) {
        s->timeout_timer = loop_source_free(s->timeout_timer);
        s->out = mfree(s->out);
        s->out_len = s->out_alloc = 0;
        s->out_too_big = false;
        for (size_t i = 0; i < SCAN_STDERR_TAIL; i++)
                s->err_tail[i] = mfree(s->err_tail[i]);
        s->err_start = s->err_n = 0;
        s->cancel_requested = s->timeout_hit = false;
        s->running = 0;
}

/* Kills and forgets the running probe without recording anything (shutdown, workspace removal). */
static void probe_drop(ScanSet *s) {
        if (!s->child)
                return;
        s->child = child_free(s->child);
        if (s->queue->n_running > 0)
                s->queue->n_running--;
        probe_clear(s);
}

static void probe_line_cb(Child *c, ChildStream stream, const char *line, size_t len, void *userdata) {
        ScanSet *s = userdata;

        if (stream == CHILD_STDOUT) {
                if (s->out_too_big)
                        return;
                if (s->out_len + len + 1 > SCAN_OUTPUT_MAX) {
                        s->out_too_big = true;
                        return;
                }
                if (greedy_realloc((void **) &s->out, &s->out_alloc, s->out_len + len + 1, 1) < 0) {
                        s->out_too_big = true;
                        return;
                }
                memcpy(s->out + s->out_len, line, len);
                s->out_len += len;
                s->out[s->out_len] = 0;
                return;
        }

        /* stderr: what the project printed while loading; the tail explains a probe that died. */
        log_debug("Probe of '%s': %.*s", s->w->slug, (int) MIN(len, (size_t) 512), line);
        if (len == 0)
                return;
        {
                size_t i = (s->err_start + s->err_n) % SCAN_STDERR_TAIL;
                char *text = utf8_sanitize(line, MIN(len, (size_t) 1024));

                if (!text)
                        return;
                if (s->err_n == SCAN_STDERR_TAIL) {
                        free(s->err_tail[s->err_start]);
                        s->err_tail[s->err_start] = text;
                        s->err_start = (s->err_start + 1) % SCAN_STDERR_TAIL;
                } else {
                        s->err_tail[i] = text;
                        s->err_n++;
                }
        }
}

/* "type: message" of a probe error object. */
static char *error_text(json_t *error) {
        const char *type = json_string_value(json_object_get(error, "type"));
        const char *message = json_string_value(json_object_get(error, "message"));
        char *s = NULL;

        if (asprintf(&s, "%s%s%s", type ?: "", type && !isempty(message) ? ": " : "", message ?: "") < 0)
                return NULL;
        if (isempty(s)) {
                free(s);
                return strdup("the probe failed");
        }
        return s;
}

/* The part of the probe document that is kind k's result. */
static json_t *result_of(json_t *doc, ScanKind k) {
        static const char *const keys[_SCAN_KIND_MAX][7] = {
                [SCAN_SCHEMA] = { "django_version", "python_version", "apps", "models", "settings",
                                  "guides" },
                [SCAN_MIGRATIONS] = { "database", "migrations" },
                [SCAN_CHECKS] = { "checks" },
        };
        json_t *o = json_object();

        for (size_t i = 0; o && keys[k][i]; i++) {
                json_t *v = json_object_get(doc, keys[k][i]);

                if (v && json_object_set(o, keys[k][i], v) < 0)
                        o = json_decref_null(o);
        }
        return o;
}

/* The probe's error for kind k's section, NULL when it had none. */
static json_t *section_error(json_t *doc, ScanKind k) {
        size_t i;
        json_t *e;

        json_array_foreach (json_object_get(doc, "errors"), i, e)
                if (streq_ptr(json_string_value(json_object_get(e, "section")), kind_sections[k]))
                        return e;
        return NULL;
}

/* Why the probe gave no document. */
static char *probe_failure(ScanSet *s, const ChildExit *e) {
        Daemon *d = set_daemon(s);
        char buf[64], *m = NULL;
        const char *last =
                s->err_n > 0 ? s->err_tail[(s->err_start + s->err_n - 1) % SCAN_STDERR_TAIL] : NULL;
        int r;

        if (s->cancel_requested)
                return strdup("cancelled");
        if (s->timeout_hit) {
                r = asprintf(&m, "timed out after %" PRIu64 " s", d->config->task_timeout_sec);
                return r < 0 ? NULL : m;
        }
        if (s->out_too_big)
                return strdup("the probe's output is too large");
        (void) child_exit_to_string(e, buf, sizeof(buf));
        r = asprintf(&m, "the probe %s%s%s", child_exit_success(e) ? "printed no valid document" : buf,
                     last ? ": " : "", last ?: "");
        return r < 0 ? NULL : m;
}

static void probe_exited_cb(Child *c, const ChildExit *e, void *userdata) {
        ScanSet *s = userdata;
        ScanQueue *q = s->queue;
        json_auto_t *doc = NULL;
        _cleanup_free_ char *failure = NULL, *load_error = NULL;
        json_t *error = NULL;
        unsigned kinds = s->running;

        s->child = child_free(c);
        if (q->n_running > 0)
                q->n_running--;

        if (!s->cancel_requested && !s->timeout_hit && !s->out_too_big && s->out_len > 0) {
                doc = json_loadb(s->out, s->out_len, 0, NULL);
                if (doc && !json_is_object(doc))
                        doc = json_decref_null(doc);
        }
        if (doc)
                error = json_object_get(doc, "error");
        if (!doc)
                failure = probe_failure(s, e);
        else if (error)
                load_error = error_text(error);

        probe_clear(s);
        for (ScanKind k = 0; k < _SCAN_KIND_MAX; k++) {
                json_t *section;
                _cleanup_free_ char *why = NULL;

                if (!(kinds & SCAN_KIND_MASK(k)) || !s->cur[k])
                        continue;
                if (!doc)
                        record_finish(s, k, NULL, failure ?: "the probe failed", NULL);
                else if (error)
                        record_finish(s, k, NULL, load_error ?: "the project could not be loaded",
                                      json_incref(error));
                else if ((section = section_error(doc, k))) {
                        why = error_text(section);
                        record_finish(s, k, NULL, why ?: "the probe failed", json_incref(section));
                } else {
                        json_t *result = result_of(doc, k);

                        if (result)
                                record_finish(s, k, result, NULL, NULL);
                        else
                                record_finish(s, k, NULL, "out of memory", NULL);
                }
        }

        /* Requests that came while it ran become the newest records. */
        for (ScanKind k = 0; k < _SCAN_KIND_MAX; k++) {
                if (!s->next[k])
                        continue;
                scan_record_free(s->cur[k]);
                s->cur[k] = TAKE_PTR(s->next[k]);
                set_save(s, k, false);
        }
        set_refresh_pending(s);
        queue_dispatch_later(q);
}

static const ChildOps probe_child_ops = {
        .line = probe_line_cb,
        .exited = probe_exited_cb,
};

/* SIGTERM to the group, SIGKILL after the grace period. */
static void probe_stop(ScanSet *s) {
        if (s->child)
                (void) child_stop(s->child, set_daemon(s)->config->cancel_grace_sec * USEC_PER_SEC);
}

static void probe_timeout_cb(LoopSource *src, void *userdata) {
        ScanSet *s = userdata;

        if (s->cancel_requested || s->timeout_hit)
                return;
        log_debug("Probe of '%s' timed out", s->w->slug);
        s->timeout_hit = true;
        probe_stop(s);
}

/* Fails every pending kind of s at once (the probe cannot start). */
static void set_fail_pending(ScanSet *s, unsigned kinds, const char *why) {
        for (ScanKind k = 0; k < _SCAN_KIND_MAX; k++)
                if (kinds & SCAN_KIND_MASK(k)) {
                        s->cur[k]->started_at = now_usec(CLOCK_REALTIME);
                        record_finish(s, k, NULL, why, NULL);
                }
        set_refresh_pending(s);
}

static void probe_start(ScanSet *s) {
        Daemon *d = set_daemon(s);
        Workspace *w = s->w;
        DjError err = DJ_ERROR_INIT;
        _cleanup_strv_free_ char **argv = NULL, **env = NULL;
        _cleanup_close_ int dirfd = -1;
        char owner[80], why[512];
        unsigned kinds = 0;
        ChildSpec spec;
        int k;

        for (ScanKind i = 0; i < _SCAN_KIND_MAX; i++)
                if (s->cur[i] && s->cur[i]->status == SCAN_PENDING)
                        kinds |= SCAN_KIND_MASK(i);
        if (kinds == 0) {
                set_refresh_pending(s);
                return;
        }

        if (isempty(w->interpreter)) {
                (void) snprintf(why, sizeof(why),
                                "no Python interpreter that can import Django is known for '%s'", w->slug);
                set_fail_pending(s, kinds, why);
                return;
        }
        dirfd = workspace_verify(w, &err);
        if (dirfd < 0) {
                (void) snprintf(why, sizeof(why), "%s", err.message ?: "the workspace cannot be used");
                dj_error_done(&err);
                set_fail_pending(s, kinds, why);
                return;
        }
        if (strv_extend(&argv, w->interpreter) < 0 || strv_extend(&argv, d->config->probe_helper) < 0 ||
            strv_extend(&argv, "--project") < 0 || strv_extend(&argv, w->path) < 0 ||
            (!isempty(w->settings_module) &&
             (strv_extend(&argv, "--settings") < 0 || strv_extend(&argv, w->settings_module) < 0))) {
                set_fail_pending(s, kinds, "out of memory");
                return;
        }
        env = workspace_child_env(w, NULL);
        if (!env) {
                set_fail_pending(s, kinds, "out of memory");
                return;
        }
        (void) snprintf(owner, sizeof(owner), "scan:%s", w->slug);
        spec = (ChildSpec){
                .argv = argv,
                .envp = env,
                .cwd = w->path,
                .cwd_fd = dirfd,
                .listen_fd = -1,
                .owner = owner,
                .store = d->store,
        };
        k = child_spawn(d->loop, &spec, &probe_child_ops, s, &s->child);
        if (k < 0) {
                (void) snprintf(why, sizeof(why), "cannot run '%s': %s", argv[0], strerror(-k));
                set_fail_pending(s, kinds, why);
                return;
        }
        s->queue->n_running++;
        s->running = kinds;
        if (d->config->task_timeout_sec > 0 &&
            loop_add_timer(d->loop, probe_timeout_cb, s, &s->timeout_timer) >= 0)
                (void) loop_timer_arm(s->timeout_timer, d->config->task_timeout_sec * USEC_PER_SEC);
        log_debug("Probe of '%s' started, pid %d", w->slug, (int) child_pid(s->child));

        for (ScanKind i = 0; i < _SCAN_KIND_MAX; i++) {
                if (!(kinds & SCAN_KIND_MASK(i)))
                        continue;
                s->cur[i]->status = SCAN_RUNNING;
                s->cur[i]->progress = 10;
                s->cur[i]->started_at = child_started_at(s->child) ?: now_usec(CLOCK_REALTIME);
                set_save(s, i, false);
                set_publish(s, "scan.started", i);
        }
        set_refresh_pending(s);
}

/* Starts probes, oldest request first, while the pool has room; one per workspace. */
static void dispatch_cb(LoopSource *src, void *userdata) {
        ScanQueue *q = userdata;
        Daemon *d = q->daemon;
        uint64_t max = MAX(d->config->max_parallel, (uint64_t) 1);

        while (q->started && !q->shutting_down && q->n_running < max) {
                ScanSet *oldest = NULL;

                for (Workspace *w = d->workspaces; w; w = w->next) {
                        ScanSet *s = w->scans;

                        if (!s || s->child || s->pending_since == 0 || w->removing)
                                continue;
                        if (!oldest || s->pending_since < oldest->pending_since)
                                oldest = s;
                }
                if (!oldest)
                        break;
                probe_start(oldest);
                if (!oldest->child)
                        oldest->pending_since = set_has_pending(oldest) ? oldest->pending_since : 0;
        }
}

/* ---- sets ---- */

static void watch_cb(Watch *watch, const char *path, void *userdata);
static bool path_is_migration(const char *path);

static ScanSet *set_of(Daemon *d, Workspace *w) {
        ScanSet *s;

        if (w->scans)
                return w->scans;
        if (!d->scans)
                return NULL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return NULL;
        s->queue = d->scans;
        s->w = w;
        w->scans = s;
        return s;
}

static void set_watch(ScanSet *s) {
        Daemon *d = set_daemon(s);
        int r;

        if (s->watch || !d->loop)
                return;
        r = watch_new(d->loop, s->w->path, MAX(d->config->scan_debounce_ms, (uint64_t) 1) * USEC_PER_MSEC,
                      watch_cb, s, &s->watch);
        if (r >= 0)
                watch_set_match(s->watch, path_is_migration);
        else
                log_warning_errno(
                        r, "Cannot watch the migrations of '%s', they are scanned on request only: %m",
                        s->w->slug);
}

ScanSet *scan_set_free(ScanSet *s) {
        if (!s)
                return NULL;
        probe_drop(s);
        probe_clear(s);
        s->watch = watch_free(s->watch);
        for (ScanKind k = 0; k < _SCAN_KIND_MAX; k++) {
                scan_record_free(s->cur[k]);
                scan_record_free(s->next[k]);
                json_decref(s->result[k]);
        }
        if (s->w && s->w->scans == s)
                s->w->scans = NULL;
        free(s);
        return NULL;
}

/* A path (relative to the project) of a migration file: a .py file in a directory named migrations. */
static bool path_is_migration(const char *path) {
        const char *base = strrchr(path, '/');
        size_t n = strlen(path);

        if (!base || n < 3 || !streq(path + n - 3, ".py"))
                return false;
        return (base - path >= 10 && strneq(base - 10, "migrations", 10) &&
                (base - path == 10 || base[-11] == '/'));
}

static void watch_cb(Watch *watch, const char *path, void *userdata) {
        ScanSet *s = userdata;
        DjError err = DJ_ERROR_INIT;

        /* "": events were lost and a change could not be told apart: scanned again to be sure. */
        log_debug("Migration file '%s' of '%s' changed, scanning its migrations", path, s->w->slug);
        if (scan_request(set_daemon(s), s->w, SCAN_KIND_MASK(SCAN_MIGRATIONS), "migrations-changed", NULL,
                         &err) < 0) {
                log_debug("Cannot scan '%s': %s", s->w->slug, err.message);
                dj_error_done(&err);
        }
}

int scan_request(Daemon *d, Workspace *w, unsigned mask, const char *trigger,
                 uint64_t ret_ids[_SCAN_KIND_MAX], DjError *reterr) {
        ScanSet *s;
        int r;

        assert_return(d && w && trigger);
        if (ret_ids)
                memset(ret_ids, 0, sizeof(uint64_t) * _SCAN_KIND_MAX);
        if (!d->scans || d->scans->shutting_down || d->shutting_down)
                return dj_error_set(reterr, DJ_E_BUSY, "djdeskd is shutting down");
        if (w->removing)
                return dj_error_set_value(reterr, DJ_E_BUSY, w->slug, "workspace '%s' is being removed",
                                          w->slug);
        s = set_of(d, w);
        if (!s)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");

        for (ScanKind k = 0; k < _SCAN_KIND_MAX; k++) {
                ScanRecord *rec;

                if (!(mask & SCAN_KIND_MASK(k)))
                        continue;
                if (s->running & SCAN_KIND_MASK(k)) {
                        /* Running: the request becomes (or joins) the next one. */
                        if (!s->next[k]) {
                                r = record_new(s, k, trigger, &s->next[k], reterr);
                                if (r < 0)
                                        return r;
                        }
                        rec = s->next[k];
                } else if (s->cur[k] && s->cur[k]->status == SCAN_PENDING)
                        rec = s->cur[k];
                else {
                        r = record_new(s, k, trigger, &rec, reterr);
                        if (r < 0)
                                return r;
                        scan_record_free(s->cur[k]);
                        s->cur[k] = rec;
                        set_save(s, k, false);
                }
                if (ret_ids)
                        ret_ids[k] = rec->id;
        }
        set_refresh_pending(s);
        queue_dispatch_later(d->scans);
        /* New pending records publish no event of their own: the status announces them. */
        status_changed(d, w, STATUS_PART_MASK(STATUS_PART_SCANS));
        return 0;
}

int scan_cancel(Daemon *d, Workspace *w, DjError *reterr) {
        ScanSet *s = w->scans;
        int n = 0;

        if (!s)
                return 0;
        for (ScanKind k = 0; k < _SCAN_KIND_MAX; k++) {
                if (s->next[k]) {
                        /* Its requester may wait for it (djdeskctl scan --wait): it ends like the others. */
                        ScanRecord *r = s->next[k];

                        r->status = SCAN_FAILED;
                        r->progress = 100;
                        r->completed_at = now_usec(CLOCK_REALTIME);
                        r->error = strdup("cancelled");
                        publish_record(s, "scan.finished", r);
                        s->next[k] = scan_record_free(r);
                        n++;
                }
                if (s->cur[k] && s->cur[k]->status == SCAN_PENDING) {
                        record_finish(s, k, NULL, "cancelled", NULL);
                        n++;
                }
        }
        if (s->child && !s->cancel_requested) {
                s->cancel_requested = true;
                for (ScanKind k = 0; k < _SCAN_KIND_MAX; k++)
                        n += !!(s->running & SCAN_KIND_MASK(k));
                probe_stop(s);
        }
        set_refresh_pending(s);
        return n;
}

/* ---- triggers ---- */

static void trigger(Daemon *d, const char *slug, unsigned mask, const char *why) {
        Workspace *w = slug ? workspace_find(d, slug) : NULL;
        DjError err = DJ_ERROR_INIT;

        if (!w || w->removing)
                return;
        log_debug("Scanning '%s' again (%s)", slug, why);
        if (scan_request(d, w, mask, why, NULL, &err) < 0) {
                log_debug("Cannot scan '%s': %s", slug, err.message);
                dj_error_done(&err);
        }
}

/* An event sink: it must not publish. scan_request() publishes nothing (dispatching comes later). */
static void scan_event_cb(EventSubscriber *sub, const Event *e, void *userdata) {
        ScanQueue *q = userdata;
        Daemon *d = q->daemon;
        json_t *data = e->data;
        const char *slug = json_string_value(json_object_get(data, "workspace"));

        if (!data || q->shutting_down)
                return;
        if (streq(e->topic, "run.finished")) {
                const char *key = json_string_value(json_object_get(data, "preset"));
                const Preset *p = key && d->presets ? preset_set_find(d->presets, key) : NULL;

                /* A run that never started changed nothing. */
                if (p && p->rescan && json_is_string(json_object_get(data, "started_at")))
                        trigger(d, slug, SCAN_ALL, "run");
        } else if (streq(e->topic, "server.state")) {
                const char *state = json_string_value(json_object_get(data, "state"));
                const char *previous = json_string_value(json_object_get(data, "previous"));

                if (!streq_ptr(state, "ready"))
                        return;
                if (streq_ptr(previous, "reloading") &&
                    !json_is_true(json_object_get(data, "reload_failed")))
                        trigger(d, slug, SCAN_ALL, "reload");
                else if (streq_ptr(previous, "migrating"))
                        trigger(d, slug, SCAN_KIND_MASK(SCAN_MIGRATIONS), "migrate");
        }
}

/* ---- life ---- */

static int set_load(Daemon *d, Workspace *w) {
        StoreScan *rows = NULL;
        size_t n = 0;
        ScanSet *s;
        int r;

        r = store_scan_load(d->store, w->id, &rows, &n);
        if (r < 0)
                return r;
        s = n > 0 ? set_of(d, w) : NULL;
        for (size_t i = 0; s && i < n; i++) {
                StoreScan *row = &rows[i];
                ScanKind k = scan_kind_from_string(row->kind);
                ScanStatus st = scan_status_from_string(row->status);
                ScanRecord *rec;

                if (k < 0 || st < 0 || s->cur[k])
                        continue;
                rec = calloc(1, sizeof(*rec));
                if (!rec) {
                        r = -ENOMEM;
                        break;
                }
                *rec = (ScanRecord){
                        .id = row->id,
                        .kind = k,
                        .status = st,
                        .progress = row->progress,
                        .summary = TAKE_PTR(row->summary),
                        .error = TAKE_PTR(row->error),
                        .trigger = TAKE_PTR(row->trigger),
                        .requested_at = row->requested_at,
                        .started_at = row->started_at,
                        .completed_at = row->completed_at,
                };
                if (row->error_info)
                        rec->error_info = json_loads(row->error_info, 0, NULL);
                if (row->result)
                        s->result[k] = json_loads(row->result, 0, NULL);
                s->cur[k] = rec;
                /* Left pending or running by the previous daemon: requested again. */
                if (st == SCAN_PENDING || st == SCAN_RUNNING) {
                        free(rec->trigger);
                        rec->trigger = strdup("restart");
                        if (!rec->trigger) {
                                r = -ENOMEM;
                                break;
                        }
                        rec->status = SCAN_PENDING;
                        rec->progress = 0;
                        rec->started_at = 0;
                        rec->requested_at = now_usec(CLOCK_REALTIME);
                        set_save(s, k, false);
                }
        }
        store_scans_free(rows, n);
        if (s) {
                set_update_counts(s);
                set_refresh_pending(s);
        }
        return r < 0 ? r : 0;
}

int scans_init(Daemon *d, DjError *reterr) {
        ScanQueue *q;
        int r;

        q = calloc(1, sizeof(*q));
        if (!q)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        q->daemon = d;
        d->scans = q;

        if (d->loop) {
                r = loop_add_timer(d->loop, dispatch_cb, q, &q->dispatch_timer);
                if (r < 0)
                        goto fail;
        }
        if (d->events) {
                r = events_subscriber_new(d->events, scan_event_cb, q, &q->sub);
                if (r >= 0)
                        r = events_subscriber_add_topic(q->sub, "run.finished");
                if (r >= 0)
                        r = events_subscriber_add_topic(q->sub, "server.state");
                if (r < 0)
                        goto fail;
        }
        for (Workspace *w = d->workspaces; w; w = w->next) {
                r = set_load(d, w);
                if (r < 0) {
                        scans_free(d);
                        return dj_error_set(reterr, DJ_E_INTERNAL, "cannot load the scans of '%s': %s",
                                            w->slug, strerror(-r));
                }
                if (set_of(d, w))
                        set_watch(w->scans);
        }
        return 0;
fail:
        scans_free(d);
        return dj_error_set(reterr, DJ_E_INTERNAL, "cannot set up the scans: %s", strerror(-r));
}

void scans_start(Daemon *d) {
        ScanQueue *q = d->scans;

        if (!q)
                return;
        q->started = true;
        queue_dispatch_later(q);
}

void scans_shutdown(Daemon *d) {
        ScanQueue *q = d->scans;

        if (!q)
                return;
        q->shutting_down = true;
        if (q->dispatch_timer)
                loop_timer_disarm(q->dispatch_timer);
        /* Killed, not recorded: their records stay pending or running in the store and are requested again
         * at the next start. */
        for (Workspace *w = d->workspaces; w; w = w->next)
                if (w->scans)
                        probe_drop(w->scans);
}

void scans_free(Daemon *d) {
        ScanQueue *q = d->scans;

        if (!q)
                return;
        for (Workspace *w = d->workspaces; w; w = w->next)
                w->scans = scan_set_free(w->scans);
        q->dispatch_timer = loop_source_free(q->dispatch_timer);
        q->sub = events_subscriber_free(q->sub);
        free(q);
        d->scans = NULL;
}

void scans_workspace_added(Daemon *d, Workspace *w, bool seed) {
        DjError err = DJ_ERROR_INIT;
        ScanSet *s = d->scans ? set_of(d, w) : NULL;

        if (!s)
                return;
        set_watch(s);
        if (seed && scan_request(d, w, SCAN_ALL, "added", NULL, &err) < 0) {
                log_warning("Cannot scan '%s': %s", w->slug, err.message);
                dj_error_done(&err);
        }
}

void scans_workspace_removed(Daemon *d, Workspace *w) {
        w->scans = scan_set_free(w->scans);
        queue_dispatch_later(d->scans);
}
