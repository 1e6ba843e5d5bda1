/* SPDX-License-Identifier: MIT */
/* The Data Lab's side of the daemon (export.h). */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "child.h"
#include "daemon.h"
#include "datalab.h"
#include "dj-list.h"
#include "dj-log.h"
#include "dj-util.h"
#include "events.h"
#include "export.h"
#include "loop.h"
#include "ops.h"
#include "run.h"
#include "scan.h"
#include "status.h"
#include "store.h"
#include "strv.h"
#include "watch.h"
#include "workspace.h"
#include "xdg.h"

#define DATA_LAB_LIVE_ENVVAR    "DJDESK_FLAG_DATA_LAB_LIVE"
#define EXPORT_SERVER_LINES     1000 /* log-study: the newest server log lines */
#define EXPORT_RUNS_MAX         200  /* task-history: the newest runs */
#define EXPORT_RUN_LOG_RUNS     10   /* log-study: the newest runs whose output is included... */
#define EXPORT_RUN_LOG_LINES    200  /* ...with at most this many lines each */
#define PREVIEW_STDERR_MAX      4096 /* bytes of the helper's stderr kept for the error */
#define NOTEBOOKS_DEBOUNCE_USEC (250 * USEC_PER_MSEC) /* a burst of changes under the root, then a look */

typedef struct Preview Preview;

struct Exports {
        Daemon *daemon;
        DatalabTemplates *templates;
        json_t *templates_json;
        EventSubscriber *sub;
        LoopSource *ready_timer;
        json_t *ready; /* finished export runs to announce: [{workspace, template, run}] */
        Preview *previews;
        Watch *watch; /* the Data Lab root: notebooks saved or removed by others */
};

struct Preview {
        Exports *exports;
        OpCall *call;
        Child *child;
        LoopSource *timeout_timer; /* the tasks' timeout_sec */
        bool timed_out;
        char *file, *notebook;
        char err[PREVIEW_STDERR_MAX];
        size_t err_len;
        Preview *prev, *next;
};

static Exports *exports_of(Daemon *d) {
        return d->exports;
}

/* ---- templates ---- */

int exports_reload_templates(Daemon *d, char ***ret_warnings, DjError *reterr) {
        Exports *x = exports_of(d);
        _cleanup_(datalab_templates_freep) DatalabTemplates *set = NULL;
        _cleanup_strv_free_ char **dirs = djdesk_config_dirs(d->config->datalab_templates, "datalab");
        json_t *list;
        int r;

        if (!x || !dirs)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        r = datalab_templates_load(dirs, &set, ret_warnings);
        if (r < 0)
                return dj_error_set(reterr, DJ_E_INTERNAL, "cannot load the templates: %s", strerror(-r));
        list = json_array();
        for (size_t i = 0; list && i < set->n; i++)
                if (json_array_append_new(list, datalab_template_to_json(set->items[i])) < 0)
                        list = (json_decref(list), NULL);
        if (!list)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        datalab_templates_free(x->templates);
        x->templates = TAKE_PTR(set);
        json_decref(x->templates_json);
        x->templates_json = list;
        log_debug("Loaded %zu Data Lab templates.", x->templates->n);
        status_changed(d, NULL, STATUS_PART_MASK(STATUS_PART_DATA_LAB));
        return 0;
}

json_t *exports_templates_json(Daemon *d) {
        Exports *x = exports_of(d);

        return x && x->templates_json ? json_incref(x->templates_json) : json_array();
}

char *exports_dir(Daemon *d, Workspace *w) {
        return path_join(d->config->data_lab_root, w->slug);
}

int export_run_argv(Daemon *d, Workspace *w, const char *template, const DatalabTemplate **ret_t,
                    char ***ret_argv, DjError *reterr) {
        Exports *x = exports_of(d);
        const DatalabTemplate *t = x ? datalab_templates_find(x->templates, template) : NULL;
        _cleanup_strv_free_ char **argv = NULL;

        if (!t)
                return dj_error_set_value(reterr, DJ_E_NOT_FOUND, template ?: "",
                                          "no Data Lab template '%s'", template ?: "");
        if (!datalab_name_valid(w->slug))
                return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, w->slug, "'%s' cannot name a directory",
                                          w->slug);
        if (strv_extend(&argv, d->config->export_helper) < 0 || strv_extend(&argv, "render") < 0 ||
            strv_extend(&argv, "--template") < 0 || strv_extend(&argv, t->path) < 0 ||
            strv_extend(&argv, "--root") < 0 || strv_extend(&argv, d->config->data_lab_root) < 0)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        *ret_t = t;
        *ret_argv = TAKE_PTR(argv);
        return 0;
}

/* ---- the input document ---- */

static json_t *pick(json_t *from, const char *const *keys) {
        json_t *o = json_object();

        for (; o && *keys; keys++) {
                json_t *v = json_object_get(from, *keys);
                if (json_object_set(o, *keys, v ?: json_null()) < 0)
                        o = (json_decref(o), NULL);
        }
        return o;
}

static json_t *log_line_json(const StoreLogLine *l, const char *source, const RunRecord *run) {
        _cleanup_free_ char *ts = format_timestamp_iso(l->time);

        return json_pack("{s:s,s:o,s:o,s:s,s:s,s:s?,s:s}", "source", source, "run",
                         run ? json_integer((json_int_t) run->id) : json_null(), "preset",
                         run ? json_string(run->preset) : json_null(), "stream", l->stream ?: "stdout",
                         "level", l->level ?: "info", "timestamp", ts, "text", l->text ?: "");
}

static int append_lines(json_t *lines, const StoreLogLine *l, size_t n, const char *source,
                        const RunRecord *run) {
        for (size_t i = 0; i < n; i++)
                if (json_array_append_new(lines, log_line_json(&l[i], source, run)) < 0)
                        return -ENOMEM;
        return 0;
}

/* The task runs of w, newest first (runs of kind export are left out: exporting must not change what the
 * next export sees). */
static int task_runs(Daemon *d, Workspace *w, RunRecord **ret, size_t *ret_n) {
        RunRecord *recs = NULL;
        size_t n = 0, k = 0;
        int r = store_run_list(d->store, w->slug, NULL, EXPORT_RUNS_MAX, &recs, &n);

        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                if (streq_ptr(recs[i].kind, "export")) {
                        run_record_done(&recs[i]);
                        continue;
                }
                recs[k++] = recs[i];
        }
        *ret = recs;
        *ret_n = k;
        return 0;
}

static json_t *logs_block(Daemon *d, Workspace *w, RunRecord *runs, size_t n_runs) {
        _cleanup_(json_decrefp) json_t *lines = json_array();
        StoreLogLine *l = NULL;
        size_t n = 0, shown = 0;
        int r;

        if (!lines)
                return NULL;
        /* The runs' lines first, oldest run first, then the server's: each group oldest first. */
        for (size_t i = MIN(n_runs, (size_t) EXPORT_RUN_LOG_RUNS); i-- > 0;) {
                uint64_t first = 0;
                if (runs[i].output_lines > EXPORT_RUN_LOG_LINES)
                        first = runs[i].output_lines - EXPORT_RUN_LOG_LINES;
                r = store_run_log_read(d->store, runs[i].id, first, EXPORT_RUN_LOG_LINES, &l, &n);
                if (r < 0)
                        return NULL;
                r = append_lines(lines, l, n, "run", &runs[i]);
                store_log_lines_free(l, n);
                if (r < 0)
                        return NULL;
                shown++;
        }
        r = store_server_log_read(d->store, w->id, 0, EXPORT_SERVER_LINES, &l, &n);
        if (r < 0)
                return NULL;
        r = append_lines(lines, l, n, "server", NULL);
        store_log_lines_free(l, n);
        if (r < 0)
                return NULL;
        return json_pack("{s:I,s:I,s:I,s:I,s:O}", "limit", (json_int_t) EXPORT_SERVER_LINES, "server_limit",
                         (json_int_t) EXPORT_SERVER_LINES, "run_limit", (json_int_t) EXPORT_RUN_LOG_LINES,
                         "runs", (json_int_t) shown, "lines", lines);
}

static json_t *runs_block(RunRecord *runs, size_t n) {
        static const char *const keys[] = { "id",        "preset",     "label",
                                            "status",    "exit_code",  "duration_seconds",
                                            "queued_at", "started_at", "finished_at",
                                            NULL };
        json_t *list = json_array();

        for (size_t i = 0; list && i < n; i++) {
                _cleanup_(json_decrefp) json_t *full = run_record_to_json(&runs[i]);
                if (!full || json_array_append_new(list, pick(full, keys)) < 0)
                        list = (json_decref(list), NULL);
        }
        return list;
}

json_t *export_input_json(Daemon *d, Workspace *w, const DatalabTemplate *t, DjError *reterr) {
        static const char *const schema_keys[] = { "django_version", "python_version", "apps", "models",
                                                   NULL };
        static const char *const migration_keys[] = { "database", "migrations", NULL };
        _cleanup_(json_decrefp) json_t *input = NULL;
        RunRecord *runs = NULL;
        size_t n_runs = 0;
        int r;

        input = json_pack("{s:s,s:{s:s,s:s,s:s}}", "template", t->slug, "workspace", "name",
                          w->name ?: w->slug, "slug", w->slug, "path", w->path);
        if (!input)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory"), NULL;

        /* A scan block needs a completed scan: a notebook of nothing would only mislead. */
        for (ScanKind k = SCAN_SCHEMA; k <= SCAN_MIGRATIONS; k++) {
                bool schema = k == SCAN_SCHEMA;
                if (!(t->blocks & (schema ? DATALAB_BLOCK_SCHEMA : DATALAB_BLOCK_MIGRATIONS)))
                        continue;
                json_t *result = scan_result(w, k);
                if (!result)
                        return dj_error_set(reterr, DJ_E_BUSY,
                                            "no %s scan of '%s' has completed yet (djdeskctl scan %s)",
                                            scan_kind_to_string(k), w->slug, w->slug),
                               NULL;
                if (json_object_set_new(input, schema ? "schema" : "migrations",
                                        pick(result, schema ? schema_keys : migration_keys)) < 0)
                        return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory"), NULL;
        }
        if (t->blocks & (DATALAB_BLOCK_LOGS | DATALAB_BLOCK_RUNS)) {
                r = task_runs(d, w, &runs, &n_runs);
                if (r < 0)
                        return dj_error_set(reterr, DJ_E_INTERNAL, "cannot read the runs: %s", strerror(-r)),
                               NULL;
                bool ok = true;
                if (t->blocks & DATALAB_BLOCK_LOGS)
                        ok = json_object_set_new(input, "logs", logs_block(d, w, runs, n_runs)) >= 0;
                if (ok && (t->blocks & DATALAB_BLOCK_RUNS))
                        ok = json_object_set_new(input, "runs", runs_block(runs, n_runs)) >= 0;
                run_records_free(runs, n_runs);
                if (!ok)
                        return dj_error_set(reterr, DJ_E_INTERNAL, "cannot read the logs"), NULL;
        }
        return TAKE_PTR(input);
}

int export_input_fd(Daemon *d, Workspace *w, const char *template, DjError *reterr) {
        Exports *x = exports_of(d);
        const DatalabTemplate *t = x ? datalab_templates_find(x->templates, template) : NULL;
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *text = NULL;
        int r;

        if (!t)
                return dj_error_set_value(reterr, DJ_E_NOT_FOUND, template ?: "",
                                          "no Data Lab template '%s'", template ?: "");
        _cleanup_(json_decrefp) json_t *input = export_input_json(d, w, t, reterr);
        if (!input)
                return -EINVAL;
        size_t len;
        r = datalab_input_format(input, &text, &len);
        if (r < 0)
                return dj_error_set(reterr, DJ_E_INTERNAL, "cannot serialize the input: %s", strerror(-r));
        /* Memory, not a file: nothing here waits on a disk. */
        fd = memfd_create("djdesk-export-input", MFD_CLOEXEC);
        if (fd < 0)
                return dj_error_set(reterr, DJ_E_INTERNAL, "memfd_create: %s", strerror(errno));
        r = write_full(fd, text, len);
        if (r < 0 || lseek(fd, 0, SEEK_SET) < 0)
                return dj_error_set(reterr, DJ_E_INTERNAL, "cannot write the input: %s",
                                    strerror(r < 0 ? -r : errno));
        return TAKE_FD(fd);
}

/* ---- the notebooks of a workspace ---- */

static int name_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The cached entry of slug when the file's size and mtime still match it. */
static json_t *cached_entry(Workspace *w, const char *slug, uint64_t size, const char *modified) {
        size_t i;
        json_t *e;

        json_array_foreach (w->notebooks, i, e)
                if (streq_ptr(json_string_value(json_object_get(e, "slug")), slug) &&
                    json_integer_value(json_object_get(e, "size")) == (json_int_t) size &&
                    streq_ptr(json_string_value(json_object_get(e, "modified_at")), modified))
                        return json_incref(e);
        return NULL;
}

/* What a listing includes, by name (the name itself is checked when it is opened). */
static bool notebook_file(const char *name) {
        return name[0] != '.' && strlen(name) > strlen(".ipynb") && endswith(name, ".ipynb");
}

/* Lists root/slug/ *.ipynb (sorted by name) into a new array, hashing only files that changed. */
static int notebooks_scan(Daemon *d, Workspace *w, json_t **ret, DjError *reterr) {
        _cleanup_free_ char *dir_path = exports_dir(d, w);
        _cleanup_strv_free_ char **names = NULL;
        _cleanup_close_ int dirfd = -EBADF;
        _cleanup_(json_decrefp) json_t *list = json_array();
        DIR *dir;
        struct dirent *de;
        int r;

        if (!dir_path || !list)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        dirfd = datalab_open_dir(d->config->data_lab_root, w->slug, false, reterr);
        if (dirfd == -ENOENT) {
                *ret = TAKE_PTR(list);
                return 0;
        }
        if (dirfd < 0)
                return dirfd;
        r = opendir_at(dirfd, ".", O_NOFOLLOW, &dir);
        if (r < 0)
                return dj_error_set(reterr, DJ_E_INTERNAL, "cannot read %s: %s", dir_path, strerror(-r));
        while ((de = readdir(dir))) {
                if (!notebook_file(de->d_name))
                        continue;
                if (strv_extend(&names, de->d_name) < 0) {
                        closedir(dir);
                        return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
                }
        }
        closedir(dir);
        if (names)
                qsort(names, strv_length(names), sizeof(char *), name_cmp);

        for (char **name = names; name && *name; name++) {
                struct stat st;
                if (fstatat(dirfd, *name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
                        continue; /* gone, or a symlink: never listed, never followed */
                uint64_t mtime = (uint64_t) st.st_mtim.tv_sec * USEC_PER_SEC +
                                 (uint64_t) st.st_mtim.tv_nsec / NSEC_PER_USEC;
                _cleanup_free_ char *modified = format_timestamp_iso(mtime);
                _cleanup_free_ char *slug = strndup(*name, strlen(*name) - strlen(".ipynb"));
                if (!modified || !slug)
                        return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
                json_t *e = cached_entry(w, slug, (uint64_t) st.st_size, modified);
                if (!e) {
                        e = datalab_notebook_info(dirfd, dir_path, *name);
                        if (!e)
                                continue;
                        json_object_set_new(e, "modified_at", json_string(modified));
                }
                if (json_array_append_new(list, e) < 0)
                        return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        }
        *ret = TAKE_PTR(list);
        return 0;
}

/* Re-lists w's notebooks; the status hears of it when the list changed. */
static int notebooks_refresh(Daemon *d, Workspace *w, DjError *reterr) {
        json_t *list = NULL;
        int r = notebooks_scan(d, w, &list, reterr);

        if (r < 0)
                return r;
        if (w->notebooks && json_equal(w->notebooks, list)) {
                json_decref(list);
                return 0;
        }
        json_decref(w->notebooks);
        w->notebooks = list;
        status_changed(d, w, STATUS_PART_MASK(STATUS_PART_DATA_LAB));
        return 0;
}

json_t *exports_list(Daemon *d, Workspace *w, DjError *reterr) {
        if (notebooks_refresh(d, w, reterr) < 0)
                return NULL;
        return json_incref(exports_notebooks(w));
}

json_t *exports_notebooks(Workspace *w) {
        static json_t *empty = NULL;

        if (w->notebooks)
                return w->notebooks;
        if (!empty)
                empty = json_array(); /* one, for the daemon's life */
        return empty;
}

json_t *exports_status_json(Daemon *d, Workspace *w) {
        const char *live = getenv(DATA_LAB_LIVE_ENVVAR);
        static const char *const keys[] = { "slug", "title", "description", "tags", NULL };
        json_t *templates = json_array(), *t;
        Exports *x = exports_of(d);
        size_t i;

        json_array_foreach (x ? x->templates_json : NULL, i, t)
                if (templates && json_array_append_new(templates, pick(t, keys)) < 0)
                        templates = (json_decref(templates), NULL);
        if (!templates)
                return NULL;
        return json_pack("{s:o,s:O,s:b}", "templates", templates, "notebooks", exports_notebooks(w),
                         "live_enabled", live && parse_boolean(live) > 0);
}

/* The directory of w's notebooks (an O_PATH fd) holding name.ipynb, a regular file: DJ_E_INVALID for a
 * bad name, DJ_E_NOT_FOUND when there is no such notebook. *ret_file is "name.ipynb". */
static int notebook_open(Daemon *d, Workspace *w, const char *name, char **ret_file, DjError *reterr) {
        _cleanup_free_ char *file = NULL;
        _cleanup_close_ int dirfd = -EBADF;
        struct stat st;

        if (!datalab_name_valid(name))
                return dj_error_set_value(reterr, DJ_E_INVALID, name ?: "", "'%s' is not a notebook name",
                                          name ?: "");
        dirfd = datalab_open_dir(d->config->data_lab_root, w->slug, false, reterr);
        if (dirfd == -ENOENT)
                return dj_error_set_value(reterr, DJ_E_NOT_FOUND, name, "no notebook '%s' in '%s'", name,
                                          w->slug);
        if (dirfd < 0)
                return dirfd;
        if (asprintf(&file, "%s.ipynb", name) < 0)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        if (fstatat(dirfd, file, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
                return dj_error_set_value(reterr, DJ_E_NOT_FOUND, name, "no notebook '%s' in '%s'", name,
                                          w->slug);
        *ret_file = TAKE_PTR(file);
        return TAKE_FD(dirfd);
}

int export_remove(Daemon *d, Workspace *w, const char *name, DjError *reterr) {
        _cleanup_free_ char *nb = NULL, *html = NULL;
        _cleanup_close_ int dirfd = notebook_open(d, w, name, &nb, reterr);
        struct stat st;

        if (dirfd < 0)
                return dirfd;
        if (asprintf(&html, "%s.html", name) < 0)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        _cleanup_close_ int wfd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (wfd < 0 || unlinkat(wfd, nb, 0) < 0)
                return dj_error_set(reterr, DJ_E_INTERNAL, "cannot remove %s: %s", nb, strerror(errno));
        if (fstatat(wfd, html, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
                (void) unlinkat(wfd, html, 0);
        log_debug("Removed notebook '%s' of '%s'.", name, w->slug);
        (void) notebooks_refresh(d, w, NULL);
        return 0;
}

/* ---- previews ---- */

static Preview *preview_free(Preview *p) {
        if (!p)
                return NULL;
        LIST_REMOVE(p->exports->previews, p);
        child_free(p->child);
        loop_source_free(p->timeout_timer);
        op_call_unref(p->call);
        free(p->file);
        free(p->notebook);
        free(p);
        return NULL;
}

static void preview_line_cb(Child *c, ChildStream stream, const char *line, size_t len, void *userdata) {
        Preview *p = userdata;

        if (stream != CHILD_STDERR)
                return;
        /* Keep the last lines that fit. */
        size_t want = MIN(len + 1, sizeof(p->err) - 1);
        if (p->err_len + want >= sizeof(p->err))
                p->err_len = 0;
        memcpy(p->err + p->err_len, line + len - (want - 1), want - 1);
        p->err_len += want - 1;
        p->err[p->err_len++] = '\n';
        p->err[p->err_len] = 0;
}

static void preview_exited_cb(Child *c, const ChildExit *e, void *userdata) {
        Preview *p = userdata;
        char buf[64];

        p->child = child_free(c);
        if (p->timed_out)
                (void) op_call_failf(p->call, DJ_E_INTERNAL,
                                     "cannot preview %s: timed out after %" PRIu64 " s", p->notebook,
                                     p->exports->daemon->config->task_timeout_sec);
        else if (child_exit_success(e))
                op_call_reply(p->call, json_pack("{s:s,s:s}", "file", p->file, "notebook", p->notebook));
        else {
                while (p->err_len > 0 && p->err[p->err_len - 1] == '\n')
                        p->err[--p->err_len] = 0;
                const char *msg = p->err_len > 0 ? p->err : child_exit_to_string(e, buf, sizeof buf);
                if (strneq(msg, "djdesk-export: ", strlen("djdesk-export: ")))
                        msg += strlen("djdesk-export: ");
                (void) op_call_failf(p->call, DJ_E_INVALID, "cannot preview %s: %s", p->notebook, msg);
        }
        preview_free(p);
}

static void preview_timeout_cb(LoopSource *src, void *userdata) {
        Preview *p = userdata;
        Daemon *d = p->exports->daemon;

        log_warning("The preview of %s timed out after %" PRIu64 " s, stopping its writer", p->notebook,
                    d->config->task_timeout_sec);
        p->timed_out = true;
        (void) child_stop(p->child, d->config->cancel_grace_sec * USEC_PER_SEC);
}

static const ChildOps preview_child_ops = {
        .line = preview_line_cb,
        .exited = preview_exited_cb,
};

int export_preview(Daemon *d, Workspace *w, const char *name, OpCall *c, DjError *reterr) {
        Exports *x = exports_of(d);
        _cleanup_free_ char *dir_path = exports_dir(d, w), *nb = NULL;
        _cleanup_close_ int dirfd = -EBADF;
        Preview *p;
        int r;

        if (!x || !dir_path)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        dirfd = notebook_open(d, w, name, &nb, reterr);
        if (dirfd < 0)
                return dirfd;

        p = calloc(1, sizeof *p);
        if (!p)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        p->exports = x;
        LIST_PREPEND(x->previews, p);
        p->call = op_call_ref(c);
        if (asprintf(&p->file, "%s/%s.html", dir_path, name) < 0)
                p->file = NULL;
        p->notebook = path_join(dir_path, nb);
        if (!p->file || !p->notebook) {
                preview_free(p);
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        }

        char *argv[] = { d->config->export_helper,
                         (char *) "preview",
                         (char *) "--root",
                         d->config->data_lab_root,
                         (char *) "--workspace",
                         w->slug,
                         (char *) name,
                         NULL };
        _cleanup_strv_free_ char **env = workspace_child_env(w, NULL);
        ChildSpec spec = {
                .argv = argv,
                .envp = env,
                .listen_fd = -1,
        };
        r = env ? child_spawn(d->loop, &spec, &preview_child_ops, p, &p->child) : -ENOMEM;
        if (r < 0) {
                preview_free(p);
                return dj_error_set(reterr, DJ_E_INTERNAL, "cannot run %s: %s", argv[0], strerror(-r));
        }
        if (d->config->task_timeout_sec > 0 &&
            loop_add_timer(d->loop, preview_timeout_cb, p, &p->timeout_timer) >= 0)
                (void) loop_timer_arm(p->timeout_timer, d->config->task_timeout_sec * USEC_PER_SEC);
        return 0;
}

/* ---- export.ready ---- */

static void announce(Exports *x, json_t *job) {
        Daemon *d = x->daemon;
        const char *slug = json_string_value(json_object_get(job, "workspace"));
        const char *template = json_string_value(json_object_get(job, "template"));
        Workspace *w = slug ? workspace_find(d, slug) : NULL;
        json_t *e;
        size_t i;

        if (!w || !template || notebooks_refresh(d, w, NULL) < 0)
                return;
        json_array_foreach (w->notebooks, i, e)
                if (streq_ptr(json_string_value(json_object_get(e, "slug")), template) &&
                    json_is_string(json_object_get(e, "sha256"))) {
                        (void) events_publish(
                                d->events, "export.ready",
                                json_pack("{s:s,s:s,s:O,s:O,s:O,s:O}", "workspace", w->slug, "template",
                                          template, "run", json_object_get(job, "run"), "file",
                                          json_object_get(e, "file"), "size", json_object_get(e, "size"),
                                          "sha256", json_object_get(e, "sha256")));
                        return;
                }
        log_warning("Export '%s' of '%s' succeeded, but its notebook is not there.", template, w->slug);
}

static void ready_timer_cb(LoopSource *s, void *userdata) {
        Exports *x = userdata;
        _cleanup_(json_decrefp) json_t *jobs = x->ready;
        json_t *job;
        size_t i;

        x->ready = json_array();
        json_array_foreach (jobs, i, job)
                announce(x, job);
}

/* run.finished (the only topic subscribed). The sink never publishes: a succeeded export run is announced
 * from a timer, after run.finished went out. */
static void exports_event_cb(EventSubscriber *sub, const Event *e, void *userdata) {
        Exports *x = userdata;
        json_t *data = e->data;

        if (!data || !x->ready || !streq_ptr(json_string_value(json_object_get(data, "kind")), "export") ||
            !streq_ptr(json_string_value(json_object_get(data, "status")), "succeeded"))
                return;
        (void) json_array_append_new(x->ready, json_pack("{s:O,s:O,s:O}", "workspace",
                                                         json_object_get(data, "workspace"), "template",
                                                         json_object_get(data, "preset"), "run",
                                                         json_object_get(data, "id")));
        if (x->ready_timer)
                (void) loop_timer_arm(x->ready_timer, 0);
}

/* ---- life ---- */

/* A notebook saved into the root by Jupyter or removed by hand: every workspace's list is looked at again
 * (each a readdir and a stat per file; a file is hashed again only when its size or mtime moved), and
 * those that changed are announced by workspace.changed. */
static void notebooks_watch_cb(Watch *watch, const char *path, void *userdata) {
        Exports *x = userdata;

        log_debug("Data Lab: '%s' changed", path);
        for (Workspace *w = x->daemon->workspaces; w; w = w->next) {
                DjError err = DJ_ERROR_INIT;
                if (notebooks_refresh(x->daemon, w, &err) < 0)
                        log_debug("Cannot list the notebooks of '%s': %s", w->slug, err.message ?: "error");
                dj_error_done(&err);
        }
}

static void notebooks_watch(Exports *x) {
        const char *root = x->daemon->config->data_lab_root;
        _cleanup_free_ char *real = NULL;
        int r;

        r = mkdir_parents(root, 0700);
        if (r >= 0) {
                /* The root may be a symbolic link (only what is under it may not): watch where it leads. */
                real = realpath(root, NULL);
                r = real ? watch_new_files(x->daemon->loop, real, notebook_file, 1 /* root/SLUG/ */,
                                           NOTEBOOKS_DEBOUNCE_USEC, notebooks_watch_cb, x, &x->watch)
                         : -errno;
        }
        if (r < 0)
                log_warning("Cannot watch %s: %s; notebooks saved there by others show when listed.", root,
                            strerror(-r));
}

int exports_init(Daemon *d, DjError *reterr) {
        _cleanup_strv_free_ char **warnings = NULL;
        Exports *x;
        int r;

        x = calloc(1, sizeof *x);
        if (!x)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        x->daemon = d;
        d->exports = x;
        x->ready = json_array();
        if (!x->ready)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        if (d->loop && loop_add_timer(d->loop, ready_timer_cb, x, &x->ready_timer) < 0)
                return dj_error_set(reterr, DJ_E_INTERNAL, "cannot set up the export timer");
        if (d->events) {
                r = events_subscriber_new(d->events, exports_event_cb, x, &x->sub);
                if (r >= 0)
                        r = events_subscriber_add_topic(x->sub, "run.finished");
                if (r < 0)
                        return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        }
        r = exports_reload_templates(d, &warnings, reterr);
        if (r < 0)
                return r;
        for (char **w = warnings; w && *w; w++)
                log_warning("Data Lab template %s, skipping it.", *w);

        for (Workspace *w = d->workspaces; w; w = w->next) {
                DjError err = DJ_ERROR_INIT;
                if (notebooks_refresh(d, w, &err) < 0)
                        log_warning("Cannot list the notebooks of '%s': %s", w->slug,
                                    err.message ?: "error");
                dj_error_done(&err);
        }
        if (d->loop)
                notebooks_watch(x);
        return 0;
}

void exports_free(Daemon *d) {
        Exports *x = exports_of(d);

        if (!x)
                return;
        while (x->previews) {
                Preview *p = x->previews;
                p->child = child_free(p->child);
                (void) op_call_failf(p->call, DJ_E_BUSY, "djdeskd is stopping");
                preview_free(p);
        }
        x->sub = events_subscriber_free(x->sub);
        x->watch = watch_free(x->watch);
        x->ready_timer = loop_source_free(x->ready_timer);
        json_decref(x->ready);
        json_decref(x->templates_json);
        datalab_templates_free(x->templates);
        free(x);
        d->exports = NULL;
}
