/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "child.h"
#include "daemon.h"
#include "dj-log.h"
#include "dj-util.h"
#include "interp.h"
#include "loop.h"
#include "strv.h"
#include "workspace.h"
#include "xdg.h"

#define INTERP_CHECK_TIMEOUT_USEC (10 * USEC_PER_SEC)
#define INTERP_LINE_MAX           4096
#define INTERP_CHECK_SCRIPT       "import django, sys; print(django.get_version())"

extern char **environ;

/* One verdict per interpreter: the path it is run as, what that resolves to, and the resolved file's
 * mtime (a reinstalled interpreter is checked again). */
typedef struct InterpCacheEntry {
        char *path;
        char *real;
        struct timespec mtime;
        bool ok;
        char *version; /* ok */
        char *reason;  /* !ok */
        struct InterpCacheEntry *next;
} InterpCacheEntry;

struct InterpCache {
        InterpCacheEntry *entries;
};

typedef struct Candidate {
        char *python;       /* as configured or looked for */
        const char *source; /* "workspace", "DJDESK_PYTHON", "project .venv", ... */
        char *path;         /* absolute, as run; NULL when not found */
        char *reason;       /* why it was rejected */
} Candidate;

struct Interp {
        Daemon *daemon;
        Candidate *candidates;
        size_t n_candidates, current;
        char *project;
        int project_fd; /* opened once, right after the caller checked the path: every check runs there */
        char **envp;

        Child *child;
        LoopSource *timer;
        char *real; /* of the candidate being checked */
        struct timespec mtime;
        char *version;
        char *last_stderr;

        InterpFindFn cb;
        void *userdata;
};

/* ---- the cache ---- */

static void cache_entry_free(InterpCacheEntry *e) {
        free(e->path);
        free(e->real);
        free(e->version);
        free(e->reason);
        free(e);
}

void interp_cache_clear(Daemon *d) {
        InterpCache *c = d->interp_cache;

        if (!c)
                return;
        while (c->entries) {
                InterpCacheEntry *e = c->entries;
                c->entries = e->next;
                cache_entry_free(e);
        }
        free(c);
        d->interp_cache = NULL;
}

static InterpCacheEntry *cache_lookup(Daemon *d, const char *path, const char *real,
                                      const struct timespec *mtime) {
        for (InterpCacheEntry *e = d->interp_cache ? d->interp_cache->entries : NULL; e; e = e->next)
                if (streq(e->path, path) && streq(e->real, real) && e->mtime.tv_sec == mtime->tv_sec &&
                    e->mtime.tv_nsec == mtime->tv_nsec)
                        return e;
        return NULL;
}

static void cache_store(Daemon *d, const char *path, const char *real, const struct timespec *mtime, bool ok,
                        const char *version, const char *reason) {
        InterpCacheEntry *e, **p;

        if (!d->interp_cache) {
                d->interp_cache = calloc(1, sizeof(InterpCache));
                if (!d->interp_cache)
                        return;
        }
        /* Drop older verdicts for the same path (its file changed). */
        for (p = &d->interp_cache->entries; *p;) {
                if (streq((*p)->path, path)) {
                        e = *p;
                        *p = e->next;
                        cache_entry_free(e);
                } else
                        p = &(*p)->next;
        }
        e = calloc(1, sizeof(*e));
        if (!e)
                return;
        e->path = strdup(path);
        e->real = strdup(real);
        e->mtime = *mtime;
        e->ok = ok;
        e->version = version ? strdup(version) : NULL;
        e->reason = reason ? strdup(reason) : NULL;
        if (!e->path || !e->real || (version && !e->version) || (reason && !e->reason)) {
                cache_entry_free(e);
                return;
        }
        e->next = d->interp_cache->entries;
        d->interp_cache->entries = e;
}

/* ---- candidates ---- */

static int candidate_add(Interp *i, const char *python, const char *source) {
        Candidate *c = realloc(i->candidates, (i->n_candidates + 1) * sizeof(Candidate));

        if (!c)
                return -ENOMEM;
        i->candidates = c;
        c = &c[i->n_candidates];
        *c = (Candidate){ .python = strdup(python), .source = source };
        if (!c->python)
                return -ENOMEM;
        i->n_candidates++;
        return 0;
}

static bool is_executable_file(const char *p) {
        struct stat st;

        return stat(p, &st) >= 0 && S_ISREG(st.st_mode) && access(p, X_OK) >= 0;
}

/* Resolves c->python to an absolute path to run, or sets the reason. */
static int candidate_resolve(Candidate *c) {
        int r;

        if (c->python[0] == '/') {
                if (access(c->python, F_OK) < 0)
                        c->reason = strdup("not found");
                else if (!is_executable_file(c->python))
                        c->reason = strdup("not an executable file");
                else
                        c->path = strdup(c->python);
                return c->path || c->reason ? 0 : -ENOMEM;
        }
        if (strchr(c->python, '/')) {
                c->reason = strdup("a relative path: give an absolute path or a command name");
                return c->reason ? 0 : -ENOMEM;
        }
        r = path_find_executable(c->python, getenv("PATH"), &c->path);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                c->reason = strdup("not found in PATH");
                return c->reason ? 0 : -ENOMEM;
        }
        return 0;
}

static int candidates_build(Interp *i, const char *configured) {
        static const struct {
                const char *rel, *source;
        } project[] = {
                { ".venv/bin/python", "project .venv" },
                { "venv/bin/python", "project venv" },
        };
        const char *env_python = i->daemon->config ? i->daemon->config->python : NULL;
        _cleanup_free_ char *data = NULL;
        int r;

        if (!isempty(configured) && (r = candidate_add(i, configured, "workspace")) < 0)
                return r;
        if (!isempty(env_python) && (r = candidate_add(i, env_python, "DJDESK_PYTHON")) < 0)
                return r;
        for (size_t k = 0; k < ELEMENTSOF(project); k++) {
                _cleanup_free_ char *p = path_join(i->project, project[k].rel);

                if (!p)
                        return -ENOMEM;
                r = candidate_add(i, p, project[k].source);
                if (r < 0)
                        return r;
        }
        if (xdg_data_home(&data) >= 0) {
                _cleanup_free_ char *p = path_join(data, "djdesk/python/bin/python3");

                if (!p)
                        return -ENOMEM;
                r = candidate_add(i, p, "bundled");
                if (r < 0)
                        return r;
        }
        if ((r = candidate_add(i, "python3", "PATH")) < 0 || (r = candidate_add(i, "python", "PATH")) < 0)
                return r;
        for (size_t k = 0; k < i->n_candidates; k++) {
                r = candidate_resolve(&i->candidates[k]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- the search ---- */

static void interp_free(Interp *i) {
        if (!i)
                return;
        i->timer = loop_source_free(i->timer);
        i->child = child_free(i->child);
        for (size_t k = 0; k < i->n_candidates; k++) {
                free(i->candidates[k].python);
                free(i->candidates[k].path);
                free(i->candidates[k].reason);
        }
        free(i->candidates);
        free(i->project);
        safe_close(i->project_fd);
        strv_free(i->envp);
        free(i->real);
        free(i->version);
        free(i->last_stderr);
        free(i);
}

void interp_cancel(Interp *i) {
        interp_free(i);
}

static void interp_report_failure(Interp *i) {
        DjError err = DJ_ERROR_INIT;
        json_auto_t *tried = json_array();
        _cleanup_free_ char *list = NULL, *value = NULL;
        size_t len = 0;
        FILE *f;

        f = open_memstream(&list, &len);
        if (!f || !tried) {
                if (f)
                        (void) fclose(f);
                (void) dj_error_set(&err, DJ_E_INTERNAL, "out of memory");
                i->cb(NULL, NULL, &err, i->userdata);
                dj_error_done(&err);
                return;
        }
        for (size_t k = 0; k < i->n_candidates; k++) {
                Candidate *c = &i->candidates[k];

                fprintf(f, "%s%s (%s): %s", k > 0 ? "; " : "", c->path ?: c->python, c->source,
                        c->reason ?: "rejected");
                (void) json_array_append_new(tried, json_pack("{s:s, s:s?, s:s, s:s}", "python", c->python,
                                                              "path", c->path, "source", c->source, "reason",
                                                              c->reason ?: "rejected"));
        }
        (void) fclose(f);
        value = json_dumps(tried, JSON_COMPACT);
        (void) dj_error_set_value(&err, DJ_E_INVALID, value,
                                  "no Python interpreter that can import Django; tried: %s. Install Django "
                                  "there, or set the workspace's 'python' or DJDESK_PYTHON",
                                  list ?: "");
        i->cb(NULL, NULL, &err, i->userdata);
        dj_error_done(&err);
}

static int interp_next(Interp *i);

static void interp_reject(Interp *i, const char *reason, bool cache) {
        Candidate *c = &i->candidates[i->current];

        log_debug("interpreter '%s': rejected: %s", c->path, reason);
        free(c->reason);
        c->reason = strdup(reason);
        if (cache && i->real)
                cache_store(i->daemon, c->path, i->real, &i->mtime, false, NULL, reason);
        i->current++;
}

static void interp_accept(Interp *i, const char *version) {
        Candidate *c = &i->candidates[i->current];
        InterpFindFn cb = i->cb;
        void *userdata = i->userdata;
        _cleanup_free_ char *path = strdup(c->path), *v = strdup(version);

        log_debug("interpreter '%s': Django %s", c->path, version);
        interp_free(i);
        if (!path || !v) {
                DjError err = DJ_ERROR_INIT;

                (void) dj_error_set(&err, DJ_E_INTERNAL, "out of memory");
                cb(NULL, NULL, &err, userdata);
                dj_error_done(&err);
                return;
        }
        cb(path, v, NULL, userdata);
}

static bool version_valid(const char *v) {
        if (isempty(v) || !(v[0] >= '0' && v[0] <= '9') || strlen(v) > 64)
                return false;
        for (const char *p = v; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || *p == '.' || *p == '-' ||
                      *p == '+'))
                        return false;
        return true;
}

static void check_line_cb(Child *ch, ChildStream stream, const char *line, size_t len, void *userdata) {
        Interp *i = userdata;
        char *s;

        while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
                len--;
        if (len == 0)
                return;
        s = strndup(line, MIN(len, (size_t) 512));
        if (!s)
                return;
        if (stream == CHILD_STDOUT) {
                if (!i->version)
                        i->version = s;
                else
                        free(s);
        } else {
                free(i->last_stderr);
                i->last_stderr = s;
        }
}

static void check_exited_cb(Child *ch, const ChildExit *e, void *userdata) {
        Interp *i = userdata;
        _cleanup_free_ char *reason = NULL;

        i->child = child_free(i->child);
        loop_timer_disarm(i->timer);
        if (child_exit_success(e) && version_valid(i->version)) {
                cache_store(i->daemon, i->candidates[i->current].path, i->real, &i->mtime, true, i->version,
                            NULL);
                interp_accept(i, i->version);
                return;
        }
        if (child_exit_success(e))
                reason = strdup("cannot import django (it printed no Django version)");
        else {
                char buf[64];

                if (asprintf(&reason, "cannot import django (%s)",
                             i->last_stderr ?: child_exit_to_string(e, buf, sizeof(buf))) < 0)
                        reason = NULL;
        }
        interp_reject(i, reason ?: "cannot import django", true);
        (void) interp_next(i);
}

static void check_timeout_cb(LoopSource *s, void *userdata) {
        Interp *i = userdata;

        i->child = child_free(i->child);
        interp_reject(i, "timed out after 10 s trying to import django", false);
        (void) interp_next(i);
}

/* Starts checking the candidate at i->current; returns 1 when it was decided at once (cached). */
static int interp_check(Interp *i) {
        static const ChildOps ops = {
                .line = check_line_cb,
                .exited = check_exited_cb,
        };
        Candidate *c = &i->candidates[i->current];
        InterpCacheEntry *e;
        struct stat st;
        int r;

        free(i->real);
        i->real = realpath(c->path, NULL);
        if (!i->real || stat(i->real, &st) < 0) {
                interp_reject(i, "not found", false);
                return 1;
        }
        i->mtime = st.st_mtim;
        e = cache_lookup(i->daemon, c->path, i->real, &i->mtime);
        if (e) {
                log_debug("interpreter '%s': cached (%s)", c->path, e->ok ? e->version : e->reason);
                if (e->ok) {
                        interp_accept(i, e->version);
                        return 2;
                }
                interp_reject(i, e->reason, false);
                return 1;
        }

        free(i->version);
        free(i->last_stderr);
        i->version = i->last_stderr = NULL;
        if (!i->envp) {
                i->envp = workspace_env_filter(environ);
                if (!i->envp)
                        return -ENOMEM;
        }
        log_debug("interpreter '%s': checking that it imports django", c->path);
        r = child_spawn(i->daemon->loop,
                        &(ChildSpec){
                                .argv = (char *const[]){ c->path, (char *) "-c",
                                                         (char *) INTERP_CHECK_SCRIPT, NULL },
                                .envp = i->envp,
                                .cwd = i->project,
                                .cwd_fd = i->project_fd,
                                .listen_fd = -1,
                        },
                        &ops, i, &i->child);
        if (r < 0) {
                _cleanup_free_ char *reason = NULL;

                if (asprintf(&reason, "cannot run it: %s", strerror(-r)) < 0)
                        reason = NULL;
                interp_reject(i, reason ?: "cannot run it", false);
                return 1;
        }
        if (!i->timer) {
                r = loop_add_timer(i->daemon->loop, check_timeout_cb, i, &i->timer);
                if (r < 0)
                        return r;
        }
        r = loop_timer_arm(i->timer, INTERP_CHECK_TIMEOUT_USEC);
        if (r < 0)
                return r;
        return 0;
}

/* Goes on with the next candidate. Returns 1 once reported (i is freed), 0 while a check runs. */
static int interp_next(Interp *i) {
        while (i->current < i->n_candidates) {
                Candidate *c = &i->candidates[i->current];
                int r;

                if (!c->path) {
                        i->current++;
                        continue;
                }
                r = interp_check(i);
                if (r == 2)
                        return 1; /* accepted from the cache: reported and freed */
                if (r == 0)
                        return 0;
                if (r < 0) {
                        InterpFindFn cb = i->cb;
                        void *userdata = i->userdata;
                        DjError err = DJ_ERROR_INIT;

                        interp_free(i);
                        (void) dj_error_set(&err, DJ_E_INTERNAL, "cannot check the interpreter: %s",
                                            strerror(-r));
                        cb(NULL, NULL, &err, userdata);
                        dj_error_done(&err);
                        return 1;
                }
        }
        interp_report_failure(i);
        interp_free(i);
        return 1;
}

int interp_find(Daemon *d, const char *configured, const char *project, InterpFindFn cb, void *userdata,
                Interp **ret) {
        Interp *i;
        int r;

        assert_return(d && project && cb && ret);
        i = calloc(1, sizeof(*i));
        if (!i)
                return -ENOMEM;
        i->daemon = d;
        i->cb = cb;
        i->userdata = userdata;
        i->project_fd = -1;
        i->project = strdup(project);
        if (!i->project) {
                interp_free(i);
                return -ENOMEM;
        }
        /* The caller has just checked the path; from now on the checks run in the directory it checked,
         * whatever happens to the path while one candidate after another is tried. */
        i->project_fd = open(project, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (i->project_fd < 0) {
                r = -errno;
                interp_free(i);
                return r;
        }
        r = candidates_build(i, configured);
        if (r < 0) {
                interp_free(i);
                return r;
        }
        r = interp_next(i);
        *ret = r > 0 ? NULL : i;
        return 0;
}
