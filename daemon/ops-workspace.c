/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "dj-log.h"
#include "dj-util.h"
#include "events.h"
#include "interp.h"
#include "loop.h"
#include "ops-domain.h"
#include "ops.h"
#include "run.h"
#include "scan.h"
#include "server.h"
#include "status.h"
#include "workspace.h"

#define COPY_BUFFER 65536

/* An operation that outlives its handler: workspace.add/update (interpreter detection), workspace.remove
 * (stopping the server), sample.install (as add). */
typedef struct WsOp {
        OpCall *call; /* ref: the peer may go away, the call stays until it is answered */
        Daemon *daemon;
        Interp *interp;
        Workspace *w; /* add: the new workspace, not registered yet */
        int64_t id;   /* update, remove */
        char *slug;
        json_t *params; /* update: the validated changes */
        char *settings_module;
        SettingsSource settings_source;
        bool set_settings;
        bool purge;
        bool seed_scans; /* add: request every scan once registered */
        bool waiting_server;
        LoopSource *defer;
        struct WsOp *prev, *next;
} WsOp;

static WsOp *ws_ops = NULL;

static WsOp *ws_op_new(OpCall *c) {
        WsOp *op = calloc(1, sizeof(*op));

        if (!op)
                return NULL;
        op->call = op_call_ref(c);
        op->daemon = c->daemon;
        op->next = ws_ops;
        if (ws_ops)
                ws_ops->prev = op;
        ws_ops = op;
        return op;
}

static void ws_op_free(WsOp *op) {
        if (!op)
                return;
        if (op->prev)
                op->prev->next = op->next;
        else if (ws_ops == op)
                ws_ops = op->next;
        if (op->next)
                op->next->prev = op->prev;
        if (op->interp)
                interp_cancel(op->interp);
        (void) loop_source_free(op->defer);
        workspace_free(op->w);
        json_decref(op->params);
        free(op->slug);
        free(op->settings_module);
        op_call_unref(op->call);
        free(op);
}

/* A WsOp for c on the registered workspace w (its id and slug), or NULL once c failed (out of memory). */
static WsOp *ws_op_new_for(OpCall *c, Workspace *w) {
        WsOp *op = ws_op_new(c);

        if (op) {
                op->id = w->id;
                op->slug = strdup(w->slug);
                if (op->slug)
                        return op;
                ws_op_free(op);
        }
        (void) op_call_failf(c, DJ_E_INTERNAL, "out of memory");
        return NULL;
}

static Workspace *ws_find_id(Daemon *d, int64_t id) {
        for (Workspace *w = d->workspaces; w; w = w->next)
                if (w->id == id)
                        return w;
        return NULL;
}

void ops_workspace_cancel_all(Daemon *d) {
        while (ws_ops) {
                WsOp *op = ws_ops;

                if (op->waiting_server) {
                        Workspace *w = ws_find_id(op->daemon, op->id);

                        if (w && w->server)
                                server_cancel_waiter(w->server, op);
                        if (w)
                                w->removing = false;
                }
                (void) op_call_failf(op->call, DJ_E_INTERNAL, "the daemon is shutting down");
                ws_op_free(op);
        }
}

static int fail_not_found(OpCall *c, const char *slug) {
        DjError err = DJ_ERROR_INIT;

        (void) dj_error_set_value(&err, DJ_E_NOT_FOUND, slug, "no workspace '%s'", slug);
        return op_call_fail_error(c, &err);
}

static void publish_workspace(Daemon *d, const char *topic, json_t *j) {
        (void) events_publish(d->events, topic, json_pack("{s:O}", "workspace", j));
}

static const char *param_string(json_t *params, const char *key) {
        return json_string_value(json_object_get(params, key));
}

/* Checks the parameters add and update share. */
static int check_common(json_t *params, bool update, DjError *err) {
        const char *s;
        json_t *v;
        int r;

        if ((s = param_string(params, "name")) && (r = workspace_check_name(s, err)) < 0)
                return r;
        if ((s = param_string(params, "settings_module")) && !(update && isempty(s)) &&
            (r = workspace_check_settings_module(s, err)) < 0)
                return r;
        if ((s = param_string(params, "python")) && !(update && isempty(s)) &&
            (r = workspace_check_python(s, err)) < 0)
                return r;
        if ((v = json_object_get(params, "port")) &&
            (r = workspace_check_port((uint64_t) json_integer_value(v), err)) < 0)
                return r;
        if ((s = param_string(params, "mode")) && server_mode_from_string(s) < 0)
                return dj_error_set_value(err, DJ_E_INVALID, s,
                                          "Invalid params: mode '%s' must be 'serve' or 'runserver'", s);
        return 0;
}

/* Applies the flags, port and mode present in params. */
static void apply_common(Workspace *w, json_t *params) {
        json_t *v;
        const char *s;

        if ((v = json_object_get(params, "port")))
                w->port = (unsigned) json_integer_value(v);
        if ((v = json_object_get(params, "autostart")))
                w->autostart = json_is_true(v);
        if ((v = json_object_get(params, "autoreload")))
                w->autoreload = json_is_true(v);
        if ((v = json_object_get(params, "migrate_on_start")))
                w->migrate_on_start = json_is_true(v);
        if ((s = param_string(params, "mode")))
                w->mode = server_mode_from_string(s);
}

/* ---- workspace.add (and sample.install) ---- */

static void add_interp_cb(const char *interpreter, const char *version, const DjError *err, void *userdata) {
        WsOp *op = userdata;
        Daemon *d = op->daemon;
        DjError e = DJ_ERROR_INIT;
        Workspace *w;
        json_t *j;
        int r;

        op->interp = NULL;
        if (err) {
                op_call_fail(op->call, err);
                ws_op_free(op);
                return;
        }
        w = op->w;
        w->interpreter = strdup(interpreter);
        w->django_version = strdup(version);
        if (!w->interpreter || !w->django_version) {
                (void) op_call_failf(op->call, DJ_E_INTERNAL, "out of memory");
                ws_op_free(op);
                return;
        }
        r = workspace_register(d, w, &e);
        if (r < 0) {
                (void) op_call_fail_error(op->call, &e);
                ws_op_free(op);
                return;
        }
        op->w = NULL; /* the registry has it */
        log_info("Workspace '%s' added: '%s' (%s, Django %s from '%s').", w->slug, w->path,
                 w->settings_module, w->django_version, w->interpreter);
        j = workspace_to_json(w);
        if (!j) {
                (void) op_call_failf(op->call, DJ_E_INTERNAL, "out of memory");
                ws_op_free(op);
                return;
        }
        publish_workspace(d, "workspace.added", j);
        scans_workspace_added(d, w, op->seed_scans);
        op_call_reply(op->call, j);
        ws_op_free(op);
}

/* Validates and starts adding path; name_default is used when params has no name (NULL: the directory's
 * name). params may be NULL. */
static int add_start(OpCall *c, const char *path, json_t *params, const char *name_default) {
        _cleanup_(workspace_freep) Workspace *w = NULL;
        _cleanup_free_ char *canonical = NULL;
        DjError err = DJ_ERROR_INIT;
        const char *name, *python;
        Interp *interp = NULL;
        WsOp *op;
        int r;

        r = workspace_check_path(c->daemon, path, &canonical, &err);
        if (r < 0)
                return op_call_fail_error(c, &err);
        r = check_common(params, false, &err);
        if (r < 0)
                return op_call_fail_error(c, &err);

        w = calloc(1, sizeof(*w));
        if (!w)
                return op_call_failf(c, DJ_E_INTERNAL, "out of memory");
        w->daemon = c->daemon;
        w->autoreload = true;
        w->migrate_on_start = true;
        w->mode = SERVER_MODE_SERVE;
        name = param_string(params, "name") ?: name_default ?: strrchr(canonical, '/') + 1;
        r = workspace_check_name(name, &err);
        if (r < 0)
                return op_call_fail_error(c, &err);
        r = workspace_resolve_settings(c->daemon, canonical, param_string(params, "settings_module"),
                                       &w->settings_module, &w->settings_source, &err);
        if (r < 0)
                return op_call_fail_error(c, &err);
        w->name = strdup(name);
        python = param_string(params, "python");
        w->python = python ? strdup(python) : NULL;
        if (!w->name || (python && !w->python))
                return op_call_failf(c, DJ_E_INTERNAL, "out of memory");
        apply_common(w, params);
        w->path = TAKE_PTR(canonical);

        op = ws_op_new(c);
        if (!op)
                return op_call_failf(c, DJ_E_INTERNAL, "out of memory");
        op->w = TAKE_PTR(w);
        op->seed_scans = !json_is_false(json_object_get(params, "seed_scans"));
        r = interp_find(c->daemon, op->w->python, op->w->path, add_interp_cb, op, &interp);
        if (r < 0) {
                (void) op_call_failf(c, DJ_E_INTERNAL, "cannot look for an interpreter: %s", strerror(-r));
                ws_op_free(op);
                return r;
        }
        if (interp) /* else: reported already, op is gone */
                op->interp = interp;
        return 0;
}

int op_workspace_add(OpCall *c, json_t *params) {
        return add_start(c, param_string(params, "path"), params, NULL);
}

/* ---- workspace.list / get ---- */

int op_workspace_list(OpCall *c, json_t *params) {
        json_auto_t *a = json_array();

        if (!a)
                return op_call_failf(c, DJ_E_INTERNAL, "out of memory");
        for (Workspace *w = c->daemon->workspaces; w; w = w->next)
                if (json_array_append_new(a, workspace_to_json(w)) < 0)
                        return op_call_failf(c, DJ_E_INTERNAL, "out of memory");
        op_call_reply(c, json_pack("{s:O}", "workspaces", a));
        return 0;
}

int op_workspace_get(OpCall *c, json_t *params) {
        const char *slug = param_string(params, "workspace");
        Workspace *w = workspace_find(c->daemon, slug);
        json_t *j;

        if (!w)
                return fail_not_found(c, slug);
        j = workspace_to_json(w);
        if (!j)
                return op_call_failf(c, DJ_E_INTERNAL, "out of memory");
        op_call_reply(c, j);
        return 0;
}

/* ---- workspace.update ---- */

static int replace_string(char **p, const char *v) {
        char *n = NULL;

        if (v && !(n = strdup(v)))
                return -ENOMEM;
        free(*p);
        *p = n;
        return 0;
}

static void update_finish(WsOp *op, Workspace *w, const char *interpreter, const char *version) {
        DjError err = DJ_ERROR_INIT;
        json_t *params = op->params;
        const char *s;
        json_t *j;
        int r = 0;

        if ((s = param_string(params, "name")))
                r = replace_string(&w->name, s);
        if (r >= 0 && op->set_settings) {
                r = replace_string(&w->settings_module, op->settings_module);
                w->settings_source = op->settings_source;
        }
        if (r >= 0 && (s = param_string(params, "python")))
                r = replace_string(&w->python, isempty(s) ? NULL : s);
        if (r >= 0 && interpreter) {
                r = replace_string(&w->interpreter, interpreter);
                if (r >= 0)
                        r = replace_string(&w->django_version, version);
        }
        if (r < 0) {
                (void) op_call_failf(op->call, DJ_E_INTERNAL, "out of memory");
                return;
        }
        apply_common(w, params);
        r = workspace_save(w, &err);
        if (r < 0) {
                (void) op_call_fail_error(op->call, &err);
                return;
        }
        log_debug("workspace '%s': updated", w->slug);
        j = workspace_to_json(w);
        if (!j) {
                (void) op_call_failf(op->call, DJ_E_INTERNAL, "out of memory");
                return;
        }
        /* workspace.changed (parts "workspace" and "server": the name and the mode show in both) comes
         * from the status document. */
        status_changed(op->daemon, w,
                       STATUS_PART_MASK(STATUS_PART_WORKSPACE) | STATUS_PART_MASK(STATUS_PART_SERVER));
        op_call_reply(op->call, j);
}

static void update_interp_cb(const char *interpreter, const char *version, const DjError *err,
                             void *userdata) {
        WsOp *op = userdata;
        Workspace *w;

        op->interp = NULL;
        w = ws_find_id(op->daemon, op->id);
        if (!w)
                (void) fail_not_found(op->call, op->slug);
        else if (err)
                op_call_fail(op->call, err);
        else
                update_finish(op, w, interpreter, version);
        ws_op_free(op);
}

int op_workspace_update(OpCall *c, json_t *params) {
        const char *slug = param_string(params, "workspace"), *s;
        Workspace *w = workspace_find(c->daemon, slug);
        DjError err = DJ_ERROR_INIT;
        Interp *interp = NULL;
        const char *python;
        WsOp *op;
        int r;

        if (!w)
                return fail_not_found(c, slug);
        if (w->removing) {
                (void) dj_error_set_value(&err, DJ_E_BUSY, slug, "workspace '%s' is being removed", slug);
                return op_call_fail_error(c, &err);
        }
        r = check_common(params, true, &err);
        if (r < 0)
                return op_call_fail_error(c, &err);

        op = ws_op_new_for(c, w);
        if (!op)
                return -ENOMEM;
        op->params = json_incref(params);
        if ((s = param_string(params, "settings_module"))) {
                /* "" goes back to the automatic choice: manage.py, then the environment. */
                r = workspace_resolve_settings(c->daemon, w->path, isempty(s) ? NULL : s,
                                               &op->settings_module, &op->settings_source, &err);
                if (r < 0) {
                        (void) op_call_fail_error(c, &err);
                        ws_op_free(op);
                        return r;
                }
                op->set_settings = true;
        }

        python = param_string(params, "python");
        if (python && isempty(python))
                python = NULL;
        if (!json_object_get(params, "python") || streq_ptr(python, w->python)) {
                update_finish(op, w, NULL, NULL);
                ws_op_free(op);
                return 0;
        }
        /* The interpreter checks run in the project directory: re-check it first, as for a server. */
        r = workspace_verify(w, &err);
        if (r < 0) {
                (void) op_call_fail_error(c, &err);
                ws_op_free(op);
                return r;
        }
        (void) safe_close(r);
        r = interp_find(c->daemon, python, w->path, update_interp_cb, op, &interp);
        if (r < 0) {
                (void) op_call_failf(c, DJ_E_INTERNAL, "cannot look for an interpreter: %s", strerror(-r));
                ws_op_free(op);
                return r;
        }
        if (interp)
                op->interp = interp;
        return 0;
}

/* ---- workspace.remove ---- */

/* Removes parent_fd/name and everything below it, never following a symbolic link. */
static int rm_rf_at(int parent_fd, const char *name) {
        struct stat st;
        DIR *dir = NULL;
        struct dirent *de;
        int r;

        if (fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISDIR(st.st_mode))
                return unlinkat(parent_fd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
        r = opendir_at(parent_fd, name, O_NOFOLLOW, &dir);
        if (r < 0)
                return r;
        while ((de = readdir(dir))) {
                int k;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                k = rm_rf_at(dirfd(dir), de->d_name);
                if (k < 0 && r == 0)
                        r = k;
        }
        (void) closedir(dir);
        if (unlinkat(parent_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
                r = -errno;
        return r;
}

static int purge_exports(Daemon *d, const char *slug) {
        _cleanup_close_ int fd = -1;

        if (isempty(d->config->data_lab_root))
                return 0;
        fd = open(d->config->data_lab_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        return rm_rf_at(fd, slug);
}

static void remove_finish_cb(LoopSource *s, void *userdata) {
        WsOp *op = userdata;
        Daemon *d = op->daemon;
        DjError err = DJ_ERROR_INIT;
        Workspace *w = ws_find_id(d, op->id);
        int r;

        if (!w) {
                (void) fail_not_found(op->call, op->slug);
                ws_op_free(op);
                return;
        }
        /* Its queued and running runs are cancelled (run.finished each); the store drops its runs. */
        runs_workspace_removed(d, w);
        scans_workspace_removed(d, w);
        r = workspace_unregister(w, &err);
        if (r < 0) {
                w->removing = false;
                (void) op_call_fail_error(op->call, &err);
                ws_op_free(op);
                return;
        }
        log_info("Workspace '%s' removed.", op->slug);
        if (op->purge) {
                r = purge_exports(d, op->slug);
                if (r < 0)
                        log_warning_errno(r, "Cannot purge the exports of '%s' in '%s', ignoring: %m",
                                          op->slug, d->config->data_lab_root);
        }
        (void) events_publish(d->events, "workspace.removed",
                              json_pack("{s:s, s:b}", "slug", op->slug, "purged", op->purge));
        op_call_reply(op->call, json_pack("{s:s, s:b}", "slug", op->slug, "purged", op->purge));
        ws_op_free(op);
}

static void remove_stopped_cb(Server *s, const DjError *err, void *userdata) {
        WsOp *op = userdata;
        int r;

        op->waiting_server = false;
        if (err) {
                Workspace *w = ws_find_id(op->daemon, op->id);

                if (w)
                        w->removing = false;
                op_call_fail(op->call, err);
                ws_op_free(op);
                return;
        }
        /* Not from inside the server's own callback: unregistering frees the server. */
        r = loop_add_timer(op->daemon->loop, remove_finish_cb, op, &op->defer);
        if (r >= 0)
                r = loop_timer_arm(op->defer, 0);
        if (r < 0) {
                Workspace *w = ws_find_id(op->daemon, op->id);

                if (w)
                        w->removing = false;
                (void) op_call_failf(op->call, DJ_E_INTERNAL, "cannot remove: %s", strerror(-r));
                ws_op_free(op);
        }
}

int op_workspace_remove(OpCall *c, json_t *params) {
        const char *slug = param_string(params, "workspace");
        Workspace *w = workspace_find(c->daemon, slug);
        DjError err = DJ_ERROR_INIT;
        WsOp *op;
        int r;

        if (!w)
                return fail_not_found(c, slug);
        if (w->removing) {
                (void) dj_error_set_value(&err, DJ_E_BUSY, slug, "workspace '%s' is being removed already",
                                          slug);
                return op_call_fail_error(c, &err);
        }
        op = ws_op_new_for(c, w);
        if (!op)
                return -ENOMEM;
        op->purge = json_is_true(json_object_get(params, "purge"));
        w->removing = true;
        op->waiting_server = true;
        r = server_stop(w->server, remove_stopped_cb, op);
        if (r < 0) {
                /* the callback did not run */
                w->removing = false;
                (void) op_call_failf(c, DJ_E_INTERNAL, "cannot stop the server of '%s': %s", slug,
                                     strerror(-r));
                ws_op_free(op);
                return r;
        }
        return 0;
}

/* ---- samples ---- */

static const struct {
        const char *name, *title;
} sample_titles[] = {
        { "atlas", "Atlas Telemetry Studio" },
        { "generated", "Generated (a chain of foreign keys)" },
        { "polls", "Polls (the Django tutorial)" },
};

static const char *sample_title(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(sample_titles); i++)
                if (streq(sample_titles[i].name, name))
                        return sample_titles[i].title;
        return name;
}

static bool sample_name_valid(const char *name) {
        if (isempty(name) || strlen(name) > 64)
                return false;
        for (const char *p = name; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
                        return false;
        return true;
}

/* Whether dirfd/name is a directory holding a regular manage.py. */
static bool sample_dir_at(int dirfd, const char *name) {
        _cleanup_free_ char *m = path_join(name, "manage.py");
        struct stat st;

        if (!m || fstatat(dirfd, name, &st, 0) < 0 || !S_ISDIR(st.st_mode))
                return false;
        return fstatat(dirfd, m, &st, 0) >= 0 && S_ISREG(st.st_mode);
}

/* The workspace registered for sample_root/name, if any. */
static Workspace *sample_workspace(Daemon *d, const char *dest) {
        _cleanup_free_ char *real = realpath(dest, NULL);

        for (Workspace *w = d->workspaces; real && w; w = w->next)
                if (streq(w->path, real))
                        return w;
        return NULL;
}

static int name_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int op_sample_list(OpCall *c, json_t *params) {
        Daemon *d = c->daemon;
        json_auto_t *a = json_array();
        char **names = NULL;
        size_t n = 0;
        DIR *dir;
        struct dirent *de;
        int r = 0;

        if (!a)
                return op_call_failf(c, DJ_E_INTERNAL, "out of memory");
        dir = opendir(d->config->samples_dir);
        if (!dir && errno != ENOENT)
                return op_call_failf(c, DJ_E_INTERNAL, "cannot read the samples in '%s': %s",
                                     d->config->samples_dir, strerror(errno));
        while (dir && (de = readdir(dir))) {
                char **nn;

                if (!sample_name_valid(de->d_name) || !sample_dir_at(dirfd(dir), de->d_name))
                        continue;
                nn = realloc(names, (n + 1) * sizeof(char *));
                if (!nn || !(nn[n] = strdup(de->d_name))) {
                        names = nn ?: names;
                        r = -ENOMEM;
                        break;
                }
                names = nn;
                n++;
        }
        if (dir)
                (void) closedir(dir);
        if (r >= 0 && n > 0)
                qsort(names, n, sizeof(char *), name_cmp);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                _cleanup_free_ char *dest = path_join(d->config->sample_root, names[i]);
                struct stat st;
                Workspace *w;

                if (!dest) {
                        r = -ENOMEM;
                        break;
                }
                w = sample_workspace(d, dest);
                if (json_array_append_new(a, json_pack("{s:s, s:s, s:b, s:s?}", "name", names[i], "title",
                                                       sample_title(names[i]), "installed",
                                                       lstat(dest, &st) >= 0 && S_ISDIR(st.st_mode),
                                                       "workspace", w ? w->slug : NULL)) < 0)
                        r = -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        if (r < 0)
                return op_call_failf(c, DJ_E_INTERNAL, "out of memory");
        op_call_reply(c, json_pack("{s:O}", "samples", a));
        return 0;
}

static bool copy_skip(const char *name) {
        size_t n = strlen(name);

        return streq(name, "__pycache__") || streq(name, "meson.build") || strneq(name, "db.sqlite3", 10) ||
               (n >= 4 && streq(name + n - 4, ".pyc"));
}

static int copy_file_at(int sfd, int dfd, const char *name, mode_t mode) {
        _cleanup_close_ int in = -1, out = -1;
        char buf[COPY_BUFFER];

        in = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (in < 0)
                return -errno;
        out = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode & 0777) | 0600);
        if (out < 0)
                return -errno;
        for (;;) {
                ssize_t k = read_full(in, buf, sizeof(buf));
                int r;

                if (k < 0)
                        return (int) k;
                if (k == 0)
                        break;
                r = write_full(out, buf, (size_t) k);
                if (r < 0)
                        return r;
        }
        return close(TAKE_FD(out)) < 0 ? -errno : 0;
}

/* Copies the tree below sfd into dfd: directories and regular files only (symbolic links are skipped),
 * without caches, databases or build files. */
static int copy_tree(int sfd, int dfd) {
        DIR *dir = NULL;
        struct dirent *de;
        int r;

        r = opendir_at(sfd, ".", 0, &dir);
        if (r < 0)
                return r;
        while (r >= 0 && (de = readdir(dir))) {
                struct stat st;

                if (streq(de->d_name, ".") || streq(de->d_name, "..") || copy_skip(de->d_name))
                        continue;
                if (fstatat(sfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        r = -errno;
                        break;
                }
                if (S_ISREG(st.st_mode))
                        r = copy_file_at(sfd, dfd, de->d_name, st.st_mode);
                else if (S_ISDIR(st.st_mode)) {
                        _cleanup_close_ int s2 = -1, d2 = -1;

                        if (mkdirat(dfd, de->d_name, (st.st_mode & 0777) | 0700) < 0) {
                                r = -errno;
                                break;
                        }
                        s2 = openat(sfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        d2 = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (s2 < 0 || d2 < 0) {
                                r = -errno;
                                break;
                        }
                        r = copy_tree(s2, d2);
                }
        }
        (void) closedir(dir);
        return r;
}

/* Copies src to dest through a temporary directory beside it, so dest appears complete or not at all. */
static int sample_copy(const char *src, const char *root, const char *name, const char *dest) {
        _cleanup_free_ char *tmpl = NULL;
        _cleanup_close_ int sfd = -1, dfd = -1, rfd = -1;
        int r;

        r = mkdir_parents(root, 0700);
        if (r < 0)
                return r;
        if (asprintf(&tmpl, "%s/.%s.XXXXXX", root, name) < 0)
                return -ENOMEM;
        if (!mkdtemp(tmpl))
                return -errno;
        (void) chmod(tmpl, 0755);
        sfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        dfd = open(tmpl, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sfd < 0 || dfd < 0)
                r = -errno;
        else
                r = copy_tree(sfd, dfd);
        if (r >= 0 && rename(tmpl, dest) < 0)
                r = -errno;
        if (r < 0) {
                rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (rfd >= 0)
                        (void) rm_rf_at(rfd, strrchr(tmpl, '/') + 1);
        }
        return r;
}

int op_sample_install(OpCall *c, json_t *params) {
        Daemon *d = c->daemon;
        const char *name = param_string(params, "name");
        _cleanup_free_ char *src = NULL, *dest = NULL;
        DjError err = DJ_ERROR_INIT;
        struct stat st;
        Workspace *w;
        int r;

        if (!sample_name_valid(name)) {
                (void) dj_error_set_value(&err, DJ_E_INVALID, name,
                                          "Invalid params: sample name '%s' must be made of [a-z0-9-]",
                                          name);
                return op_call_fail_error(c, &err);
        }
        src = path_join(d->config->samples_dir, name);
        dest = path_join(d->config->sample_root, name);
        if (!src || !dest)
                return op_call_failf(c, DJ_E_INTERNAL, "out of memory");
        if (!sample_dir_at(AT_FDCWD, src)) {
                (void) dj_error_set_value(&err, DJ_E_NOT_FOUND, name, "no sample '%s' in '%s'", name,
                                          d->config->samples_dir);
                return op_call_fail_error(c, &err);
        }
        if (lstat(dest, &st) >= 0) {
                w = sample_workspace(d, dest);
                if (w) {
                        (void) dj_error_set_value(
                                &err, DJ_E_BUSY, name,
                                "sample '%s' is installed already, in '%s', as workspace '%s'", name,
                                w->path, w->slug);
                        return op_call_fail_error(c, &err);
                }
                log_debug("sample '%s': '%s' exists, registering it as it is", name, dest);
        } else {
                r = sample_copy(src, d->config->sample_root, name, dest);
                if (r < 0)
                        return op_call_failf(c, DJ_E_INTERNAL, "cannot copy sample '%s' to '%s': %s", name,
                                             dest, strerror(-r));
                log_info("Sample '%s' copied to '%s'.", name, dest);
        }
        return add_start(c, dest, NULL, name);
}
