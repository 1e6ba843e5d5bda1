/* SPDX-License-Identifier: MIT */
/* The workspace status document (status.h).
 *
 * Per workspace, a WorkspaceStatus keeps what no other module keeps in memory: the activity ring, the
 * log-excerpt ring, the newest runs (tasks), the last finished run and the docs list; everything else
 * (the workspace's fields, its server, the scans) is read from its owner when the document is rebuilt.
 * The document is cached (the json_t, and its compact text once asked for): the request path only builds it
 * when there is none yet.
 *
 * Changes: the event sink (and status_changed()) only marks parts dirty and arms the hub's publish timer;
 * the timer (at most once every STATUS_PUBLISH_INTERVAL_USEC per workspace) builds the new document,
 * compares it with the cached one part by part and, when a part differs, replaces the cache and publishes
 * one workspace.changed {workspace, seq, parts}; so a document handed out with seq N shows exactly what
 * workspace.changed N announced, and seq only grows when the content does. The docs list needs stat()
 * calls: it is recomputed there too, never on the request path.
 *
 * The only disk reads are status_init()'s (the store: runs, run and server log lines). */

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config-file.h"
#include "daemon.h"
#include "dj-log.h"
#include "dj-util.h"
#include "events.h"
#include "export.h"
#include "loop.h"
#include "ops-domain.h"
#include "ops.h"
#include "preset.h"
#include "run.h"
#include "scan.h"
#include "server.h"
#include "status.h"
#include "store.h"
#include "workspace.h"

#define DJANGO_DOCS_PREFIX  "https://docs.djangoproject.com/en/"
#define DJANGO_DOCS_DEFAULT DJANGO_DOCS_PREFIX "{version}/"
#define SEED_RUNS           STATUS_ACTIVITY_MAX /* runs read at start: tasks, last run, activity */
#define GUIDE_ICON          "text-x-generic"
#define GUIDE_HEAD_MAX      4096 /* bytes of a guide page read for its title */
#define GUIDE_TITLE_MAX     120  /* bytes of a title */
#define GUIDES_MAX          32   /* guide pages listed */
#define PRESET_DOCS_ICON    "help-browser"

struct WorkspaceStatus {
        json_t *activity;    /* newest first, at most STATUS_ACTIVITY_MAX */
        json_t *log_excerpt; /* oldest first, at most STATUS_LOG_EXCERPT_MAX */
        json_t *tasks;       /* run JSON, newest (highest id) first, at most STATUS_TASKS_MAX */
        json_t *last_run;    /* the run that finished last, NULL when none */
        json_t *docs;        /* computed off the request path (status_docs_update) */
        bool docs_stale;

        unsigned dirty;          /* parts changed since the last workspace.changed */
        uint64_t seq;            /* +1 per workspace.changed */
        uint64_t updated_at;     /* µs, CLOCK_REALTIME: when seq last grew (or the state was made) */
        uint64_t published_mono; /* µs, CLOCK_MONOTONIC: the last workspace.changed, 0: never */

        json_t *doc; /* cached document, NULL: rebuild on the next request */
        char *text;  /* its compact serialization, made on demand */
};

typedef struct StatusHub {
        Daemon *daemon;
        EventSubscriber *sub;
        LoopSource *timer;
        uint64_t timer_due; /* CLOCK_MONOTONIC µs the timer is armed for */
} StatusHub;

static const char *const status_part_table[_STATUS_PART_MAX] = {
        [STATUS_PART_WORKSPACE] = "workspace",
        [STATUS_PART_SERVER] = "server",
        [STATUS_PART_INSIGHTS] = "insights",
        [STATUS_PART_APPS] = "apps",
        [STATUS_PART_SCHEMA] = "schema",
        [STATUS_PART_ACTIVITY] = "activity",
        [STATUS_PART_LOG_EXCERPT] = "log_excerpt",
        [STATUS_PART_SCANS] = "scans",
        [STATUS_PART_TASKS] = "tasks",
        [STATUS_PART_DOCS] = "docs",
        [STATUS_PART_DATA_LAB] = "data_lab",
};

const char *status_part_to_string(StatusPart p) {
        return p >= 0 && p < _STATUS_PART_MAX ? status_part_table[p] : NULL;
}

StatusPart status_part_from_string(const char *s) {
        for (StatusPart p = 0; s && p < _STATUS_PART_MAX; p++)
                if (streq(status_part_table[p], s))
                        return p;
        return _STATUS_PART_INVALID;
}

/* ---- small helpers ---- */

static bool startswith(const char *s, const char *prefix) {
        return s && strneq(s, prefix, strlen(prefix));
}

static json_t *json_string_or_null(const char *s) {
        return s ? json_string(s) : json_null();
}

static json_t *iso_json(uint64_t usec) {
        _cleanup_free_ char *s = NULL;

        if (usec == 0)
                return json_null();
        s = format_timestamp_iso(usec);
        return s ? json_string(s) : NULL;
}

static const char *jstr(json_t *o, const char *key) {
        return json_string_value(json_object_get(o, key));
}

static uint64_t juint(json_t *o, const char *key) {
        json_int_t v = json_integer_value(json_object_get(o, key));

        return v > 0 ? (uint64_t) v : 0;
}

/* Sets key in o to v (stolen), remembering a failure (out of memory) in *ok. */
static void put(json_t *o, const char *key, json_t *v /* stolen */, bool *ok) {
        if (!v || json_object_set_new(o, key, v) < 0)
                *ok = false;
}

static void append(json_t *a, json_t *v /* stolen */, bool *ok) {
        if (!v || json_array_append_new(a, v) < 0)
                *ok = false;
}

static const char *level_or_info(const char *level) {
        if (level && (streq(level, "warning") || streq(level, "error")))
                return level;
        return "info";
}

static const char *plural(unsigned n) {
        return n == 1 ? "" : "s";
}

/* ---- docs ---- */

/* "3.2.25" -> "3.2"; NULL when it does not start with two dot-separated numbers. */
static char *django_major_minor(const char *version) {
        size_t a, b;

        if (isempty(version))
                return NULL;
        a = strspn(version, "0123456789");
        if (a == 0 || version[a] != '.')
                return NULL;
        b = strspn(version + a + 1, "0123456789");
        if (b == 0)
                return NULL;
        return strndup(version, a + 1 + b);
}

/* s with every "{version}" replaced by v. */
static char *replace_version(const char *s, const char *v) {
        static const char token[] = "{version}";
        size_t n = 0, tl = strlen(token), vl = strlen(v);
        char *out, *q;

        for (const char *p = strstr(s, token); p; p = strstr(p + tl, token))
                n++;
        out = malloc(strlen(s) + n * (vl >= tl ? vl - tl : 0) + 1);
        if (!out)
                return NULL;
        q = out;
        while (*s) {
                if (strneq(s, token, tl)) {
                        memcpy(q, v, vl);
                        q += vl;
                        s += tl;
                } else
                        *q++ = *s++;
        }
        *q = 0;
        return out;
}

char *status_resolve_docs_url(const char *url, const char *docs_base, const char *docs_dir,
                              const char *django_version, bool (*exists)(const char *path),
                              bool *ret_local) {
        _cleanup_free_ char *path = NULL, *version = NULL, *base = NULL;
        const char *rest, *slash, *frag;
        size_t plen;
        char *out;

        if (ret_local)
                *ret_local = false;
        if (!url)
                return NULL;
        if (!startswith(url, DJANGO_DOCS_PREFIX))
                return strdup(url);

        /* https://docs.djangoproject.com/en/<any>/PATH[#frag]: PATH (without a query) and #frag. */
        rest = url + strlen(DJANGO_DOCS_PREFIX);
        slash = strchr(rest, '/');
        frag = strchr(rest, '#');
        if (!frag)
                frag = rest + strlen(rest);
        if (slash && slash > frag)
                slash = NULL;
        if (slash) {
                const char *end = frag, *q = memchr(slash + 1, '?', (size_t) (frag - slash - 1));

                if (q)
                        end = q;
                path = strndup(slash + 1, (size_t) (end - slash - 1));
        } else
                path = strdup("");
        if (!path)
                return NULL;
        plen = strlen(path);

        /* The local copy: PATH/ -> PATH.html, "" -> index.html; never a path that climbs out. */
        if (!isempty(docs_dir) && docs_dir[0] == '/' && exists && !strstr(path, "..")) {
                _cleanup_free_ char *file = NULL;
                size_t dl = strlen(docs_dir);

                while (dl > 1 && docs_dir[dl - 1] == '/')
                        dl--;
                if (plen == 0) {
                        if (asprintf(&file, "%.*s/index.html", (int) dl, docs_dir) < 0)
                                file = NULL;
                } else if (path[plen - 1] == '/') {
                        if (asprintf(&file, "%.*s/%.*s.html", (int) dl, docs_dir, (int) (plen - 1), path) <
                            0)
                                file = NULL;
                } else if (endswith(path, ".html")) {
                        if (asprintf(&file, "%.*s/%s", (int) dl, docs_dir, path) < 0)
                                file = NULL;
                } else if (asprintf(&file, "%.*s/%s.html", (int) dl, docs_dir, path) < 0)
                        file = NULL;
                if (!file)
                        return NULL;
                if (exists(file)) {
                        if (asprintf(&out, "file://%s%s", file, frag) < 0)
                                return NULL;
                        if (ret_local)
                                *ret_local = true;
                        return out;
                }
        }

        /* Online: the base with {version} replaced, then PATH#frag. */
        version = django_major_minor(django_version);
        base = replace_version(isempty(docs_base) ? DJANGO_DOCS_DEFAULT : docs_base, version ?: "stable");
        if (!base)
                return NULL;
        if (asprintf(&out, "%s%s%s%s", base, endswith(base, "/") || plen == 0 ? "" : "/", path, frag) < 0)
                return NULL;
        return out;
}

static bool file_exists(const char *path) {
        struct stat st;

        return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static const char *workspace_version(Workspace *w) {
        const char *v = w->django_version;

        if (isempty(v))
                v = jstr(scan_result(w, SCAN_SCHEMA), "django_version");
        return v;
}

/* A guide page's title: its first "# " heading (in the first GUIDE_HEAD_MAX bytes of a regular file,
 * never following a symbolic link nor blocking on a FIFO), else NULL. */
static char *guide_title(const char *path) {
        _cleanup_close_ int fd = -1;
        char buf[GUIDE_HEAD_MAX + 1];
        const char *fence = NULL;
        struct stat st;
        ssize_t n;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return NULL;
        n = read(fd, buf, GUIDE_HEAD_MAX);
        if (n <= 0)
                return NULL;
        buf[n] = 0;
        for (char *line = buf, *end; line && *line; line = end ? end + 1 : NULL) {
                const char *stripped;
                char *t;
                size_t l;

                end = strchr(line, '\n');
                if (end)
                        *end = 0;
                /* a "# comment" in a fenced code block is no heading (python/djdesk-probe's rule too) */
                stripped = line + strspn(line, " \t");
                if (startswith(stripped, "```") || startswith(stripped, "~~~")) {
                        fence = fence && strneq(fence, stripped, 3) ? NULL : fence ?: stripped;
                        continue;
                }
                if (fence || line[0] != '#' || (line[1] != ' ' && line[1] != '\t'))
                        continue;
                t = line + 1 + strspn(line + 1, " \t");
                l = strcspn(t, "\r");
                while (l > 0 && (t[l - 1] == ' ' || t[l - 1] == '\t'))
                        l--;
                /* a closing sequence: "# Title ##" */
                for (size_t k = l; k > 0 && t[k - 1] == '#'; k--)
                        if (k - 1 > 0 && (t[k - 2] == ' ' || t[k - 2] == '\t')) {
                                l = k - 1;
                                while (l > 0 && (t[l - 1] == ' ' || t[l - 1] == '\t'))
                                        l--;
                                break;
                        }
                if (l > 0)
                        return utf8_sanitize(t, MIN(l, (size_t) GUIDE_TITLE_MAX));
        }
        return NULL;
}

static bool is_regular_file(int dirfd, const char *name) {
        struct stat st;

        return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

static int strcmp_ptr(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The project's guide pages when the schema scan names none: its README (README.md, .rst, .txt or
 * plain) and docs/ *.md (sorted, at most GUIDES_MAX in all), as [{title, path}] with paths relative to the
 * project. */
static json_t *guides_from_disk(const char *project) {
        static const char *const readmes[] = { "README.md", "README.rst", "README.txt", "README" };
        json_t *guides = json_array();
        char *names[GUIDES_MAX] = {};
        size_t n = 0;
        DIR *dir = NULL;
        int pfd;
        bool ok = guides != NULL;

        if (!guides)
                return NULL;
        pfd = open(project, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (pfd < 0)
                return guides;
        for (size_t i = 0; i < ELEMENTSOF(readmes); i++)
                if (is_regular_file(pfd, readmes[i])) {
                        names[n] = strdup(readmes[i]);
                        ok = names[n++] != NULL;
                        break;
                }
        {
                struct dirent *de;
                size_t first = n;

                if (opendir_at(pfd, "docs", O_NOFOLLOW, &dir) < 0)
                        dir = NULL;
                while (ok && dir && n < GUIDES_MAX && (de = readdir(dir))) {
                        if (de->d_name[0] == '.' || !endswith(de->d_name, ".md") ||
                            !is_regular_file(dirfd(dir), de->d_name))
                                continue;
                        if (asprintf(&names[n], "docs/%s", de->d_name) < 0) {
                                names[n] = NULL;
                                ok = false;
                                break;
                        }
                        n++;
                }
                if (dir)
                        (void) closedir(dir);
                qsort(names + first, n - first, sizeof(char *), strcmp_ptr);
        }
        (void) close(pfd);
        for (size_t i = 0; ok && i < n; i++) {
                _cleanup_free_ char *abs = path_join(project, names[i]), *title = NULL;
                const char *base = strrchr(names[i], '/');

                if (!abs) {
                        ok = false;
                        break;
                }
                title = endswith(names[i], ".md") ? guide_title(abs) : NULL;
                append(guides,
                       json_pack("{s:s, s:s}", "title", title ?: (base ? base + 1 : names[i]), "path",
                                 names[i]),
                       &ok);
        }
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        if (!ok) {
                json_decref(guides);
                return NULL;
        }
        return guides;
}

/* "file://" and a path, percent-encoding what a URL path cannot hold as is. */
static char *file_url(const char *path) {
        static const char hex[] = "0123456789ABCDEF";
        char *url = malloc(strlen("file://") + 3 * strlen(path) + 1), *q;

        if (!url)
                return NULL;
        q = stpcpy(url, "file://");
        for (const unsigned char *p = (const unsigned char *) path; *p; p++) {
                if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                    strchr("/._~-", *p))
                        *q++ = (char) *p;
                else {
                        *q++ = '%';
                        *q++ = hex[*p >> 4];
                        *q++ = hex[*p & 15];
                }
        }
        *q = 0;
        return url;
}

/* The docs list of w: its guide pages (the schema scan's "guides", else found on disk), then one per
 * preset with a docs_url. Reads the disk: never on the request path. */
static json_t *status_docs_compute(Daemon *d, Workspace *w) {
        json_t *docs = json_array(), *guides = json_object_get(scan_result(w, SCAN_SCHEMA), "guides");
        json_auto_t *found = NULL;
        const char *version = workspace_version(w);
        size_t i, n;
        json_t *g;
        bool ok = true;

        if (!docs)
                return NULL;
        if (!json_is_array(guides) && w->path) {
                found = guides_from_disk(w->path);
                guides = found;
        }
        json_array_foreach (guides, i, g) {
                const char *title = jstr(g, "title"), *path = jstr(g, "path");
                _cleanup_free_ char *abs = NULL, *url = NULL;

                if (isempty(path))
                        continue;
                abs = path[0] == '/' ? strdup(path) : path_join(w->path, path);
                url = abs ? file_url(abs) : NULL;
                if (!url) {
                        ok = false;
                        break;
                }
                append(docs,
                       json_pack("{s:s, s:s, s:s, s:s, s:s}", "title", title ?: path, "url", url, "icon",
                                 GUIDE_ICON, "pane_target", "docs", "description", path),
                       &ok);
        }
        n = d->presets ? preset_set_size(d->presets) : 0;
        for (i = 0; ok && i < n; i++) {
                const Preset *p = preset_set_nth(d->presets, i);
                _cleanup_free_ char *url = NULL;
                bool local = false;

                if (!p->docs_url)
                        continue;
                url = status_resolve_docs_url(p->docs_url, d->config->docs_url, d->config->docs_dir, version,
                                              file_exists, &local);
                if (!url) {
                        ok = false;
                        break;
                }
                append(docs,
                       json_pack("{s:s, s:s, s:s, s:s, s:s}", "title", p->label, "url", url, "icon",
                                 p->icon ?: PRESET_DOCS_ICON, "pane_target", local ? "docs" : "browser",
                                 "description", p->description ?: ""),
                       &ok);
        }
        if (!ok) {
                json_decref(docs);
                return NULL;
        }
        return docs;
}

static void status_docs_update(Daemon *d, Workspace *w, WorkspaceStatus *s) {
        json_t *docs = status_docs_compute(d, w);

        if (!docs) {
                log_debug("Cannot compute the docs of '%s': out of memory", w->slug);
                return; /* the old list stays, and docs_stale: tried again at the next change */
        }
        json_decref(s->docs);
        s->docs = docs;
        s->docs_stale = false;
}

/* ---- apps, schema, insights (pure) ---- */

static json_t *find_by(json_t *array, const char *key, const char *value) {
        size_t i;
        json_t *e;

        json_array_foreach (array, i, e)
                if (value && streq(jstr(e, key) ?: "", value))
                        return e;
        return NULL;
}

/* Unapplied migrations of an app entry of the migrations scan. */
static unsigned app_pending(json_t *entry) {
        unsigned n = 0;
        size_t i;
        json_t *m;

        json_array_foreach (json_object_get(entry, "migrations"), i, m)
                if (json_is_false(json_object_get(m, "applied")))
                        n++;
        return n;
}

static bool check_is_error(const char *level) {
        return level && (streq(level, "ERROR") || streq(level, "CRITICAL"));
}

static bool check_is_warning(const char *level) {
        return level && streq(level, "WARNING");
}

/* Whether a check message's obj belongs to the app ("label." prefix, or the label itself). */
static bool check_obj_in_app(json_t *check, const char *label) {
        const char *obj = jstr(check, "obj");
        size_t n = strlen(label);

        return obj && strneq(obj, label, n) && (obj[n] == '.' || obj[n] == 0);
}

json_t *status_apps_json(json_t *schema, json_t *migrations, json_t *checks) {
        json_t *apps = json_array(), *app, *mig = json_object_get(migrations, "migrations"),
               *msgs = json_object_get(checks, "checks");
        bool ok = true;
        size_t i;

        if (!apps)
                return NULL;
        json_array_foreach (json_object_get(schema, "apps"), i, app) {
                const char *label = jstr(app, "label"), *status;
                json_t *entry, *c;
                bool conflict = false, error = false, warning = false;
                unsigned pending;
                size_t k;

                if (!label)
                        continue;
                entry = find_by(mig, "app", label);
                pending = app_pending(entry);
                conflict = json_array_size(json_object_get(entry, "conflicts")) > 0;
                json_array_foreach (msgs, k, c) {
                        if (!check_obj_in_app(c, label))
                                continue;
                        if (check_is_error(jstr(c, "level")))
                                error = true;
                        else if (check_is_warning(jstr(c, "level")))
                                warning = true;
                }
                status = conflict                 ? "conflict"
                         : error                  ? "error"
                         : pending > 0            ? "pending"
                         : warning                ? "warning"
                         : !migrations || !checks ? "unknown"
                                                  : "ok";
                append(apps,
                       json_pack("{s:s, s:I, s:I, s:s}", "label", label, "models", juint(app, "models"),
                                 "pending_migrations", (json_int_t) pending, "status", status),
                       &ok);
        }
        if (!ok) {
                json_decref(apps);
                return NULL;
        }
        return apps;
}

static bool app_is_contrib(json_t *schema, const char *label) {
        return startswith(jstr(find_by(json_object_get(schema, "apps"), "label", label), "name"),
                          "django.contrib.");
}

json_t *status_schema_json(json_t *schema, json_t *migrations) {
        json_t *nodes = json_array(), *conns = json_array(), *model,
               *mig = json_object_get(migrations, "migrations");
        bool ok = nodes && conns;
        size_t i;

        json_array_foreach (json_object_get(schema, "models"), i, model) {
                const char *app = jstr(model, "app"), *name = jstr(model, "name"), *badge = NULL;
                _cleanup_free_ char *id = NULL;
                json_t *fields, *f, *rel;
                size_t k;

                if (!ok)
                        break;
                if (!app || !name)
                        continue;
                if (asprintf(&id, "%s.%s", app, name) < 0) {
                        id = NULL;
                        ok = false;
                        break;
                }
                fields = json_array();
                json_array_foreach (json_object_get(model, "fields"), k, f)
                        if (jstr(f, "name"))
                                append(fields, json_string(jstr(f, "name")), &ok);
                if (app_is_contrib(schema, app))
                        badge = "contrib";
                else if (app_pending(find_by(mig, "app", app)) > 0)
                        badge = "pending";
                append(nodes,
                       json_pack("{s:s, s:s, s:s, s:o, s:s?}", "id", id, "name", name, "app", app, "fields",
                                 fields, "badge", badge),
                       &ok);
                json_array_foreach (json_object_get(model, "relations"), k, rel) {
                        const char *target = jstr(rel, "target"), *field = jstr(rel, "field"),
                                   *kind = jstr(rel, "kind");

                        if (!target || !field || !kind)
                                continue;
                        append(conns,
                               json_pack("{s:s, s:s, s:s, s:s}", "source", id, "target", target, "field",
                                         field, "kind", kind),
                               &ok);
                }
        }
        if (!ok) {
                json_decref(nodes);
                json_decref(conns);
                return NULL;
        }
        return json_pack("{s:o, s:o}", "nodes", nodes, "connections", conns);
}

static json_t *insight(const char *key, const char *title, const char *value, const char *severity,
                       const char *caption) {
        return json_pack("{s:s, s:s, s:s, s:s, s:s}", "key", key, "title", title, "value", value, "severity",
                         severity, "caption", caption ?: "");
}

static json_t *insight_count(const char *key, const char *title, bool known, unsigned n,
                             const char *severity, const char *caption) {
        char buf[32];

        if (!known)
                return insight(key, title, "unknown", "info", "not scanned yet");
        (void) snprintf(buf, sizeof(buf), "%u", n);
        return insight(key, title, buf, severity, caption);
}

#define CHECK_IDS_MAX 5 /* ids named in a check insight's caption */

/* The ids of the check messages of a kind, ", "-joined ("fields.W340"), at most CHECK_IDS_MAX of them
 * ("..., and 3 more"); "" when none. */
static char *check_ids(json_t *checks, bool (*match)(const char *level)) {
        _cleanup_free_ char *s = NULL;
        size_t i, named = 0, more = 0, len = 0;
        json_t *c;

        json_array_foreach (json_object_get(checks, "checks"), i, c) {
                if (!match(jstr(c, "level")))
                        continue;
                if (named < CHECK_IDS_MAX) {
                        const char *id = jstr(c, "id") ?: "?";
                        size_t l = strlen(id);
                        char *n = realloc(s, len + (len ? 2 : 0) + l + 1);

                        if (!n)
                                return NULL;
                        s = n;
                        if (len) {
                                memcpy(s + len, ", ", 2);
                                len += 2;
                        }
                        memcpy(s + len, id, l + 1);
                        len += l;
                        named++;
                } else
                        more++;
        }
        if (more > 0) {
                char *n = NULL;

                if (asprintf(&n, "%s, and %zu more", s, more) < 0)
                        return NULL;
                free(s);
                s = n;
        }
        return s ? TAKE_PTR(s) : strdup("");
}

static json_t *insight_migrations(const ScanCounts *c, json_t *migrations) {
        json_t *database = json_object_get(migrations, "database"), *e;
        unsigned apps = 0;
        char caption[160];
        size_t i;

        json_array_foreach (json_object_get(migrations, "migrations"), i, e)
                if (app_pending(e) > 0)
                        apps++;
        if (c->migration_conflicts > 0)
                (void) snprintf(caption, sizeof(caption), "conflicting migrations in %u app%s",
                                c->migration_conflicts, plural(c->migration_conflicts));
        else if (json_is_false(json_object_get(database, "exists")) && jstr(database, "message"))
                (void) snprintf(caption, sizeof(caption), "%s", jstr(database, "message"));
        else if (c->pending_migrations > 0)
                (void) snprintf(caption, sizeof(caption), "unapplied in %u app%s", apps, plural(apps));
        else
                (void) snprintf(caption, sizeof(caption), "all %u applied", c->applied_migrations);
        return insight_count("pending_migrations", "Pending migrations", migrations != NULL,
                             c->pending_migrations,
                             c->migration_conflicts > 0  ? "error"
                             : c->pending_migrations > 0 ? "warning"
                                                         : "ok",
                             caption);
}

static json_t *insight_models(const ScanCounts *c, json_t *schema) {
        unsigned project = 0;
        char caption[96];
        size_t i;
        json_t *m;

        json_array_foreach (json_object_get(schema, "models"), i, m)
                if (jstr(m, "app") && !app_is_contrib(schema, jstr(m, "app")))
                        project++;
        (void) snprintf(caption, sizeof(caption), "%u in project apps, %u relation%s", project, c->relations,
                        plural(c->relations));
        return insight_count("models", "Models", schema != NULL, c->models, "info", caption);
}

static json_t *insight_apps(const ScanCounts *c, json_t *schema) {
        unsigned contrib = 0, n = 0;
        char caption[96];
        size_t i;
        json_t *a;

        json_array_foreach (json_object_get(schema, "apps"), i, a) {
                n++;
                if (startswith(jstr(a, "name"), "django.contrib."))
                        contrib++;
        }
        (void) snprintf(caption, sizeof(caption), "%u project, %u django.contrib", n - contrib, contrib);
        return insight_count("apps", "Apps", schema != NULL, c->apps, "info", caption);
}

static json_t *insight_checks(const char *key, const char *title, unsigned n, json_t *checks, bool errors) {
        _cleanup_free_ char *ids = NULL;

        if (checks) {
                ids = check_ids(checks, errors ? check_is_error : check_is_warning);
                if (!ids)
                        return NULL;
        }
        return insight_count(key, title, checks != NULL, n,
                             n == 0   ? "ok"
                             : errors ? "error"
                                      : "warning",
                             n == 0 ? (errors ? "no errors" : "no warnings") : ids);
}

static const char *run_status_severity(const char *status) {
        if (!status)
                return "info";
        if (streq(status, "succeeded"))
                return "ok";
        if (streq(status, "failed") || streq(status, "timed_out"))
                return "error";
        if (streq(status, "cancelled") || streq(status, "interrupted"))
                return "warning";
        return "info";
}

static json_t *insight_last_run(json_t *last_run) {
        _cleanup_free_ char *caption = NULL;
        const char *status = jstr(last_run, "status");

        if (!last_run || !status)
                return insight("last_run", "Last run", "none", "info", "no run yet");
        if (asprintf(&caption, "%s, finished %s", jstr(last_run, "label") ?: jstr(last_run, "preset") ?: "run",
                     jstr(last_run, "finished_at") ?: "?") < 0)
                return NULL;
        return insight("last_run", "Last run", status, run_status_severity(status), caption);
}

static json_t *insight_uptime(json_t *server) {
        const char *state = jstr(server, "state") ?: "stopped", *value = state, *severity = "info",
                   *since = NULL, *last_error = jstr(server, "last_error");
        _cleanup_free_ char *caption = NULL;
        json_t *o;

        if (streq(state, "ready") || streq(state, "reloading")) {
                value = "running";
                severity = "ok";
                since = jstr(server, "ready_at");
        } else if (streq(state, "crashed"))
                severity = "warning";
        else if (streq(state, "failed"))
                severity = "error";
        if (since) {
                if (asprintf(&caption, "since %s", since) < 0)
                        return NULL;
        } else if (last_error && !streq(state, "stopped")) {
                caption = strdup(last_error);
                if (!caption)
                        return NULL;
        }
        o = insight("server_uptime", "Server uptime", value, severity,
                    caption ?: (streq(state, "stopped") ? "not running" : state));
        if (o && json_object_set_new(o, "since", json_string_or_null(since)) < 0) {
                json_decref(o);
                return NULL;
        }
        return o;
}

json_t *status_insights_json(const ScanCounts *c, json_t *schema, json_t *migrations, json_t *checks,
                             json_t *server, json_t *last_run) {
        json_t *a = json_array();
        bool ok = a != NULL;

        if (!a)
                return NULL;
        append(a, insight_migrations(c, migrations), &ok);
        append(a, insight_models(c, schema), &ok);
        append(a, insight_apps(c, schema), &ok);
        append(a, insight_checks("check_warnings", "Check warnings", c->check_warnings, checks, false), &ok);
        append(a, insight_checks("check_errors", "Check errors", c->check_errors, checks, true), &ok);
        append(a, insight_last_run(last_run), &ok);
        append(a, insight_uptime(server), &ok);
        if (!ok) {
                json_decref(a);
                return NULL;
        }
        return a;
}

/* ---- the per-workspace state ---- */

static void status_invalidate(WorkspaceStatus *s) {
        json_decref(s->doc);
        s->doc = NULL;
        free(s->text);
        s->text = NULL;
}

WorkspaceStatus *workspace_status_free(WorkspaceStatus *s) {
        if (!s)
                return NULL;
        status_invalidate(s);
        json_decref(s->activity);
        json_decref(s->log_excerpt);
        json_decref(s->tasks);
        json_decref(s->last_run);
        json_decref(s->docs);
        free(s);
        return NULL;
}

static WorkspaceStatus *status_new(void) {
        WorkspaceStatus *s = calloc(1, sizeof(*s));

        if (!s)
                return NULL;
        s->activity = json_array();
        s->log_excerpt = json_array();
        s->tasks = json_array();
        s->docs = json_array();
        if (!s->activity || !s->log_excerpt || !s->tasks || !s->docs)
                return workspace_status_free(s);
        s->docs_stale = true;
        s->updated_at = now_usec(CLOCK_REALTIME);
        return s;
}

/* w's state, made on first use (NULL only when out of memory). */
static WorkspaceStatus *status_of(Workspace *w) {
        if (!w->status)
                w->status = status_new();
        return w->status;
}

static void activity_push(WorkspaceStatus *s, json_t *entry /* stolen */) {
        if (!entry || json_array_insert_new(s->activity, 0, entry) < 0)
                return;
        while (json_array_size(s->activity) > STATUS_ACTIVITY_MAX)
                (void) json_array_remove(s->activity, json_array_size(s->activity) - 1);
}

static json_t *activity_entry(json_t *timestamp /* stolen */, const char *kind, const char *title,
                              const char *detail, const char *severity) {
        if (!timestamp)
                return NULL;
        return json_pack("{s:o, s:s, s:s, s:s?, s:s}", "timestamp", timestamp, "kind", kind, "title", title,
                         "detail", detail, "severity", severity);
}

static void log_push(WorkspaceStatus *s, json_t *line /* stolen */) {
        if (!line || json_array_append_new(s->log_excerpt, line) < 0)
                return;
        while (json_array_size(s->log_excerpt) > STATUS_LOG_EXCERPT_MAX)
                (void) json_array_remove(s->log_excerpt, 0);
}

static json_t *log_entry(json_t *timestamp /* stolen */, const char *level, const char *text,
                         const char *source) {
        if (!timestamp)
                return NULL;
        return json_pack("{s:o, s:s, s:s, s:s}", "timestamp", timestamp, "level", level_or_info(level),
                         "message", text ?: "", "source", source);
}

/* Puts a run (a copy of its JSON) in tasks: replaces the one with its id, or takes its place by id. */
static void tasks_put(WorkspaceStatus *s, json_t *run) {
        uint64_t id = juint(run, "id");
        json_t *copy, *t;
        size_t i, at;

        if (id == 0)
                return;
        at = json_array_size(s->tasks);
        json_array_foreach (s->tasks, i, t) {
                uint64_t tid = juint(t, "id");

                if (tid == id) {
                        copy = json_deep_copy(run);
                        if (copy)
                                (void) json_array_set_new(s->tasks, i, copy);
                        return;
                }
                if (tid < id) {
                        at = i;
                        break;
                }
        }
        if (at >= STATUS_TASKS_MAX)
                return; /* older than every run shown */
        copy = json_deep_copy(run);
        if (!copy || json_array_insert_new(s->tasks, at, copy) < 0)
                return;
        while (json_array_size(s->tasks) > STATUS_TASKS_MAX)
                (void) json_array_remove(s->tasks, json_array_size(s->tasks) - 1);
}

/* A run.log batch carries the run's status and progress: the task shown follows them (a new object:
 * the cached document keeps the old one). Returns the parts changed. */
static unsigned tasks_progress(WorkspaceStatus *s, json_t *data) {
        uint64_t id = juint(data, "id");
        json_t *progress = json_object_get(data, "progress"), *status = json_object_get(data, "status"), *t;
        size_t i;

        if (!json_is_integer(progress) || !json_is_string(status))
                return 0;
        json_array_foreach (s->tasks, i, t) {
                json_t *copy;

                if (juint(t, "id") != id)
                        continue;
                if (json_equal(json_object_get(t, "progress"), progress) &&
                    json_equal(json_object_get(t, "status"), status))
                        return 0;
                copy = json_copy(t);
                if (!copy || json_object_set(copy, "progress", progress) < 0 ||
                    json_object_set(copy, "status", status) < 0) {
                        json_decref(copy);
                        return 0;
                }
                if (json_array_set_new(s->tasks, i, copy) < 0) /* steals copy, also on failure */
                        return 0;
                return STATUS_PART_MASK(STATUS_PART_TASKS);
        }
        return 0;
}

static json_t *run_activity(json_t *run) {
        const char *status = jstr(run, "status") ?: "finished",
                   *label = jstr(run, "label") ?: jstr(run, "preset") ?: "run";
        json_t *duration = json_object_get(run, "duration_seconds"), *ts;
        _cleanup_free_ char *title = NULL, *detail = NULL;

        if (asprintf(&title, "%s %s", label, streq(status, "timed_out") ? "timed out" : status) < 0)
                return NULL;
        if (jstr(run, "error"))
                detail = strdup(jstr(run, "error"));
        else if (json_is_number(duration) &&
                 asprintf(&detail, "finished in %.1f s", json_number_value(duration)) < 0)
                detail = NULL;
        ts = jstr(run, "finished_at") ? json_string(jstr(run, "finished_at")) : NULL;
        return activity_entry(ts, "run.finished", title, detail, run_status_severity(status));
}

static json_t *scan_activity(Workspace *w, const ScanRecord *r) {
        _cleanup_free_ char *title = NULL;
        const char *kind = scan_kind_to_string(r->kind) ?: "scan";
        bool failed = r->status == SCAN_FAILED;

        if (asprintf(&title, "%c%s scan %s", kind[0] - 'a' + 'A', kind + 1,
                     failed ? "failed" : "completed") < 0)
                return NULL;
        return activity_entry(iso_json(r->completed_at ?: r->requested_at), "scan.finished", title,
                              failed ? r->error : r->summary, failed ? "error" : "ok");
}

/* ---- seeding from the store (status_init only) ---- */

typedef struct Stamped {
        uint64_t at;
        json_t *obj;
} Stamped;

static int stamped_cmp(const void *a, const void *b) {
        const Stamped *x = a, *y = b;

        return x->at < y->at ? -1 : x->at > y->at ? 1 : 0;
}

static void status_seed(Daemon *d, Workspace *w, WorkspaceStatus *s) {
        RunRecord *runs = NULL;
        StoreLogLine *lines = NULL;
        size_t n_runs = 0, n_lines = 0, n = 0;
        Stamped items[SEED_RUNS + _SCAN_KIND_MAX + 1 + 2 * STATUS_LOG_EXCERPT_MAX] = {};
        int r;

        r = store_run_list(d->store, w->slug, NULL, SEED_RUNS, &runs, &n_runs);
        if (r < 0)
                log_debug_errno(r, "Cannot read the runs of '%s' for its status, ignoring: %m", w->slug);

        /* tasks and the last finished run */
        for (size_t i = 0; i < n_runs; i++) {
                json_t *j = run_record_to_json(&runs[i]);

                if (!j)
                        continue;
                if (i < STATUS_TASKS_MAX)
                        (void) json_array_append(s->tasks, j);
                if (!s->last_run && run_status_finished(run_status_from_string(runs[i].status)))
                        s->last_run = json_incref(j);
                json_decref(j);
        }

        /* activity: finished runs, the last scans, the workspace's creation; newest first */
        for (size_t i = 0; i < n_runs; i++) {
                json_t *j;

                if (!run_status_finished(run_status_from_string(runs[i].status)) || runs[i].finished_at == 0)
                        continue;
                j = run_record_to_json(&runs[i]);
                if (j)
                        items[n++] = (Stamped){ runs[i].finished_at, run_activity(j) };
                json_decref(j);
        }
        for (ScanKind k = 0; k < _SCAN_KIND_MAX; k++) {
                const ScanRecord *rec = scan_current(w, k);

                if (rec && (rec->status == SCAN_COMPLETED || rec->status == SCAN_FAILED))
                        items[n++] = (Stamped){ rec->completed_at, scan_activity(w, rec) };
        }
        if (w->created_at > 0)
                items[n++] =
                        (Stamped){ w->created_at, activity_entry(iso_json(w->created_at), "workspace.added",
                                                                 "Workspace added", w->path, "info") };
        qsort(items, n, sizeof(Stamped), stamped_cmp);
        for (size_t i = 0; i < n; i++)
                activity_push(s, TAKE_PTR(items[i].obj)); /* oldest first: the newest end up in front */

        /* log excerpt: the server's newest lines and the newest run's last lines, by time */
        n = 0;
        r = store_server_log_read(d->store, w->id, 0, STATUS_LOG_EXCERPT_MAX, &lines, &n_lines);
        if (r < 0)
                log_debug_errno(r, "Cannot read the server log of '%s', ignoring: %m", w->slug);
        for (size_t i = 0; i < n_lines; i++)
                items[n++] = (Stamped){ lines[i].time, log_entry(iso_json(lines[i].time), lines[i].level,
                                                                 lines[i].text, "server") };
        store_log_lines_free(lines, n_lines);
        lines = NULL;
        n_lines = 0;
        for (size_t i = 0; i < n_runs; i++) {
                uint64_t out = runs[i].output_lines;
                char source[32];

                if (out == 0)
                        continue;
                r = store_run_log_read(d->store, runs[i].id,
                                       out > STATUS_LOG_EXCERPT_MAX ? out - STATUS_LOG_EXCERPT_MAX : 0,
                                       STATUS_LOG_EXCERPT_MAX, &lines, &n_lines);
                if (r < 0)
                        log_debug_errno(r, "Cannot read the log of run %" PRIu64 ", ignoring: %m",
                                        runs[i].id);
                (void) snprintf(source, sizeof(source), "run:%" PRIu64, runs[i].id);
                for (size_t k = 0; k < n_lines; k++)
                        items[n++] =
                                (Stamped){ lines[k].time, log_entry(iso_json(lines[k].time), lines[k].level,
                                                                    lines[k].text, source) };
                store_log_lines_free(lines, n_lines);
                break; /* only the newest run with output */
        }
        qsort(items, n, sizeof(Stamped), stamped_cmp);
        for (size_t i = 0; i < n; i++)
                log_push(s, TAKE_PTR(items[i].obj));

        run_records_free(runs, n_runs);
}

/* ---- publishing ---- */

static void hub_schedule(StatusHub *h, WorkspaceStatus *s) {
        uint64_t now = now_usec(CLOCK_MONOTONIC), due;

        if (!h->timer)
                return;
        due = s->published_mono > 0 ? s->published_mono + STATUS_PUBLISH_INTERVAL_USEC : now;
        if (due < now)
                due = now;
        if (loop_timer_armed(h->timer) && h->timer_due <= due)
                return;
        h->timer_due = due;
        (void) loop_timer_arm(h->timer, due - now);
}

static void status_mark(StatusHub *h, Workspace *w, unsigned mask) {
        WorkspaceStatus *s = status_of(w);

        if (!s || mask == 0)
                return;
        /* The docs follow the presets, the [docs] settings, the guides and the Django version (a
         * "workspace" change): recomputed when published, and announced only when they differ. */
        if (mask & (STATUS_PART_MASK(STATUS_PART_DOCS) | STATUS_PART_MASK(STATUS_PART_WORKSPACE))) {
                s->docs_stale = true;
                mask &= ~STATUS_PART_MASK(STATUS_PART_DOCS);
        }
        s->dirty |= mask;
        if (h && (s->dirty || s->docs_stale))
                hub_schedule(h, s);
}

/* The document's keys of each part. */
static const char *const status_part_keys[_STATUS_PART_MAX][4] = {
        [STATUS_PART_WORKSPACE] = { "name", "path", "django_version" },
        [STATUS_PART_SERVER] = { "server" },
        [STATUS_PART_INSIGHTS] = { "insights" },
        [STATUS_PART_APPS] = { "apps" },
        [STATUS_PART_SCHEMA] = { "schema" },
        [STATUS_PART_ACTIVITY] = { "activity" },
        [STATUS_PART_LOG_EXCERPT] = { "log_excerpt" },
        [STATUS_PART_SCANS] = { "scans" },
        [STATUS_PART_TASKS] = { "tasks" },
        [STATUS_PART_DOCS] = { "docs" },
        [STATUS_PART_DATA_LAB] = { "data_lab" },
};

static bool status_part_equal(json_t *a, json_t *b, StatusPart p) {
        for (size_t i = 0; status_part_keys[p][i]; i++)
                if (!json_equal(json_object_get(a, status_part_keys[p][i]),
                                json_object_get(b, status_part_keys[p][i])))
                        return false;
        return true;
}

static json_t *status_build(Workspace *w, WorkspaceStatus *s);

/* Publishes w's pending change: the new document is built here (off the request path) and compared with
 * the one clients may have read, part by part; workspace.changed names the parts that differ (plus
 * "workspace" when it was marked: the workspace's settings are not all in the document). Nothing is
 * published, and seq stays, when nothing differs. */
static void status_publish(StatusHub *h, Workspace *w, WorkspaceStatus *s, uint64_t now) {
        Daemon *d = h->daemon;
        json_t *doc, *parts;
        unsigned changed = 0;
        bool ok = true;

        if (s->docs_stale) {
                json_t *old = json_incref(s->docs);

                status_docs_update(d, w, s);
                if (!json_equal(old, s->docs))
                        s->dirty |= STATUS_PART_MASK(STATUS_PART_DOCS);
                json_decref(old);
        }
        /* Built only when a document was handed out: one nobody read needs no comparison. */
        doc = s->doc ? status_build(w, s) : NULL;
        if (doc && s->doc) {
                changed = s->dirty & STATUS_PART_MASK(STATUS_PART_WORKSPACE);
                for (StatusPart p = 0; p < _STATUS_PART_MAX; p++)
                        if (!status_part_equal(s->doc, doc, p))
                                changed |= STATUS_PART_MASK(p);
        } else
                changed = s->dirty; /* nobody read a document yet (or out of memory): what was marked */
        s->dirty = 0;
        if (changed == 0) {
                json_decref(doc);
                return;
        }

        s->seq++;
        s->updated_at = now_usec(CLOCK_REALTIME);
        s->published_mono = now;
        status_invalidate(s);
        if (doc) {
                put(doc, "seq", json_integer((json_int_t) s->seq), &ok);
                put(doc, "updated_at", iso_json(s->updated_at), &ok);
                if (ok)
                        s->doc = doc;
                else
                        json_decref(doc); /* rebuilt on the next request */
        }
        parts = json_array();
        for (StatusPart p = 0; parts && p < _STATUS_PART_MAX; p++)
                if (changed & STATUS_PART_MASK(p))
                        (void) json_array_append_new(parts, json_string(status_part_to_string(p)));
        if (parts)
                (void) events_publish(d->events, "workspace.changed",
                                      json_pack("{s:s, s:I, s:o}", "workspace", w->slug, "seq",
                                                (json_int_t) s->seq, "parts", parts));
}

static void status_timer_cb(LoopSource *src, void *userdata) {
        StatusHub *h = userdata;
        uint64_t now = now_usec(CLOCK_MONOTONIC), next = UINT64_MAX;

        for (Workspace *w = h->daemon->workspaces; w; w = w->next) {
                WorkspaceStatus *s = w->status;
                uint64_t due;

                if (!s || (s->dirty == 0 && !s->docs_stale))
                        continue;
                due = s->published_mono > 0 ? s->published_mono + STATUS_PUBLISH_INTERVAL_USEC : 0;
                if (due > now) {
                        next = MIN(next, due);
                        continue;
                }
                status_publish(h, w, s, now);
        }
        if (next != UINT64_MAX) {
                h->timer_due = next;
                (void) loop_timer_arm(src, next - now);
        }
}

void status_changed(Daemon *d, Workspace *w, unsigned mask) {
        StatusHub *h = d ? d->status : NULL;

        if (!h)
                return;
        if (w) {
                status_mark(h, w, mask);
                return;
        }
        for (Workspace *i = d->workspaces; i; i = i->next)
                status_mark(h, i, mask);
}

/* ---- the event sink ---- */

static const char *event_slug(json_t *data) {
        json_t *v = json_object_get(data, "workspace");

        return json_is_string(v) ? json_string_value(v) : jstr(v, "slug");
}

static json_t *event_time(const Event *e) {
        return iso_json(e->timestamp);
}

static unsigned on_server_state(WorkspaceStatus *s, const Event *e, Workspace *w) {
        json_t *data = e->data;
        const char *state = jstr(data, "state") ?: "", *previous = jstr(data, "previous") ?: "",
                   *why = jstr(data, "reason") ?: jstr(data, "last_error");
        const char *title = NULL, *detail = NULL, *severity = "info";
        unsigned mask = STATUS_PART_MASK(STATUS_PART_SERVER) | STATUS_PART_MASK(STATUS_PART_INSIGHTS);

        if (streq(state, "ready")) {
                if (json_is_true(json_object_get(data, "reload_failed"))) {
                        title = "Reload failed";
                        detail = jstr(data, "last_error");
                        severity = "error";
                } else if (streq(previous, "reloading")) {
                        title = "Server reloaded";
                        detail = jstr(data, "url");
                        severity = "ok";
                } else if (!streq(previous, "ready")) {
                        title = "Server ready";
                        detail = jstr(data, "url");
                        severity = "ok";
                }
        } else if (streq(state, "failed")) {
                title = "Server failed";
                detail = why;
                severity = "error";
        } else if (streq(state, "crashed")) {
                title = "Server crashed";
                detail = why;
                severity = "warning";
        } else if (streq(state, "stopped") && !streq(previous, "stopped")) {
                title = "Server stopped";
                severity = "info";
        }
        if (title) {
                activity_push(s, activity_entry(event_time(e), "server.state", title, detail, severity));
                mask |= STATUS_PART_MASK(STATUS_PART_ACTIVITY);
        }
        return mask;
}

/* The last lines of a server.log or run.log batch. */
static unsigned on_log(WorkspaceStatus *s, const Event *e, const char *time_key, const char *source) {
        json_t *lines = json_object_get(e->data, "lines"), *l;
        size_t n = json_array_size(lines);

        for (size_t i = n > STATUS_LOG_EXCERPT_MAX ? n - STATUS_LOG_EXCERPT_MAX : 0; i < n; i++) {
                const char *t;

                l = json_array_get(lines, i);
                t = jstr(l, time_key);
                log_push(s, log_entry(t ? json_string(t) : event_time(e), jstr(l, "level"), jstr(l, "text"),
                                      source));
        }
        return n > 0 ? STATUS_PART_MASK(STATUS_PART_LOG_EXCERPT) : 0;
}

static unsigned on_scan_finished(WorkspaceStatus *s, const Event *e, Workspace *w) {
        json_t *scan = json_object_get(e->data, "scan");
        const char *kind = jstr(scan, "kind") ?: "scan", *status = jstr(scan, "status") ?: "";
        bool failed = !streq(status, "completed");
        _cleanup_free_ char *title = NULL;
        unsigned mask = STATUS_PART_MASK(STATUS_PART_SCANS) | STATUS_PART_MASK(STATUS_PART_INSIGHTS) |
                        STATUS_PART_MASK(STATUS_PART_ACTIVITY);
        ScanKind k = scan_kind_from_string(kind);
        const char *t = jstr(scan, "completed_at");

        if (asprintf(&title, "%c%s scan %s",
                     kind[0] >= 'a' && kind[0] <= 'z' ? kind[0] - 'a' + 'A' : kind[0], kind + 1,
                     failed ? "failed" : "completed") >= 0)
                activity_push(s, activity_entry(t ? json_string(t) : event_time(e), "scan.finished", title,
                                                failed ? jstr(scan, "error") : jstr(scan, "summary"),
                                                failed ? "error" : "ok"));
        /* Schema: apps, models, guides and the Django version (docs); migrations: pending counts and badges;
         * checks: the apps' status. */
        if (k == SCAN_SCHEMA || k < 0)
                mask |= STATUS_PART_MASK(STATUS_PART_APPS) | STATUS_PART_MASK(STATUS_PART_SCHEMA) |
                        STATUS_PART_MASK(STATUS_PART_DOCS);
        else if (k == SCAN_MIGRATIONS)
                mask |= STATUS_PART_MASK(STATUS_PART_APPS) | STATUS_PART_MASK(STATUS_PART_SCHEMA);
        else
                mask |= STATUS_PART_MASK(STATUS_PART_APPS);
        return mask;
}

static unsigned on_export_ready(WorkspaceStatus *s, const Event *e) {
        const char *detail = jstr(e->data, "file");

        activity_push(s, activity_entry(event_time(e), "export.ready", "Notebook exported", detail, "ok"));
        return STATUS_PART_MASK(STATUS_PART_DATA_LAB) | STATUS_PART_MASK(STATUS_PART_ACTIVITY);
}

static void status_event_cb(EventSubscriber *sub, const Event *e, void *userdata) {
        StatusHub *h = userdata;
        const char *slug = event_slug(e->data), *topic = e->topic;
        Workspace *w = slug ? workspace_find(h->daemon, slug) : NULL;
        WorkspaceStatus *s;
        unsigned mask = 0;

        if (!w || !e->data)
                return;
        s = status_of(w);
        if (!s)
                return;

        if (streq(topic, "server.state"))
                mask = on_server_state(s, e, w);
        else if (streq(topic, "server.log"))
                mask = on_log(s, e, "time", "server");
        else if (streq(topic, "run.log")) {
                char source[32];

                (void) snprintf(source, sizeof(source), "run:%" PRIu64, juint(e->data, "id"));
                mask = on_log(s, e, "timestamp", source) | tasks_progress(s, e->data);
        } else if (streq(topic, "run.queued") || streq(topic, "run.started")) {
                tasks_put(s, e->data);
                mask = STATUS_PART_MASK(STATUS_PART_TASKS);
        } else if (streq(topic, "run.finished")) {
                json_t *copy = json_deep_copy(e->data);

                tasks_put(s, e->data);
                if (copy) {
                        json_decref(s->last_run);
                        s->last_run = copy;
                }
                activity_push(s, run_activity(e->data));
                mask = STATUS_PART_MASK(STATUS_PART_TASKS) | STATUS_PART_MASK(STATUS_PART_INSIGHTS) |
                       STATUS_PART_MASK(STATUS_PART_ACTIVITY);
        } else if (streq(topic, "scan.started"))
                mask = STATUS_PART_MASK(STATUS_PART_SCANS);
        else if (streq(topic, "scan.finished"))
                mask = on_scan_finished(s, e, w);
        else if (streq(topic, "workspace.added")) {
                activity_push(s, activity_entry(event_time(e), "workspace.added", "Workspace added", w->path,
                                                "info"));
                mask = STATUS_PART_MASK(STATUS_PART_ACTIVITY) | STATUS_PART_MASK(STATUS_PART_DOCS);
        } else if (streq(topic, "export.ready"))
                mask = on_export_ready(s, e);

        status_mark(h, w, mask);
}

/* ---- life ---- */

int status_init(Daemon *d, DjError *reterr) {
        static const char *const topics[] = { "server.*", "run.*", "scan.*", "workspace.added",
                                              "export.ready" };
        StatusHub *h;
        int r;

        h = calloc(1, sizeof(*h));
        if (!h)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        h->daemon = d;
        d->status = h;

        for (Workspace *w = d->workspaces; w; w = w->next) {
                WorkspaceStatus *s = status_of(w);

                if (!s)
                        goto oom;
                status_seed(d, w, s);
                status_docs_update(d, w, s);
        }
        if (d->loop) {
                r = loop_add_timer(d->loop, status_timer_cb, h, &h->timer);
                if (r < 0)
                        goto oom;
        }
        if (d->events) {
                r = events_subscriber_new(d->events, status_event_cb, h, &h->sub);
                if (r < 0)
                        goto oom;
                for (size_t i = 0; i < ELEMENTSOF(topics); i++) {
                        r = events_subscriber_add_topic(h->sub, topics[i]);
                        if (r < 0)
                                goto oom;
                }
        }
        return 0;
oom:
        status_free(d);
        return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
}

void status_free(Daemon *d) {
        StatusHub *h = d->status;

        if (!h)
                return;
        h->sub = events_subscriber_free(h->sub);
        h->timer = loop_source_free(h->timer);
        for (Workspace *w = d->workspaces; w; w = w->next)
                w->status = workspace_status_free(w->status);
        free(h);
        d->status = NULL;
}

/* ---- the document ---- */

static json_t *status_build(Workspace *w, WorkspaceStatus *s) {
        json_t *schema = scan_result(w, SCAN_SCHEMA), *migrations = scan_result(w, SCAN_MIGRATIONS),
               *checks = scan_result(w, SCAN_CHECKS), *doc, *server;
        ScanCounts counts = {};
        bool ok = true;

        doc = json_object();
        server = w->server ? server_to_json(w->server) : json_object();
        if (!doc || !server) {
                json_decref(doc);
                json_decref(server);
                return NULL;
        }
        scan_counts(w, &counts);
        put(doc, "workspace", json_string(w->slug), &ok);
        put(doc, "name", json_string(w->name ?: w->slug), &ok);
        put(doc, "path", json_string(w->path ?: ""), &ok);
        put(doc, "django_version", json_string_or_null(workspace_version(w)), &ok);
        put(doc, "seq", json_integer((json_int_t) s->seq), &ok);
        put(doc, "updated_at", iso_json(s->updated_at), &ok);
        put(doc, "insights", status_insights_json(&counts, schema, migrations, checks, server, s->last_run),
            &ok);
        put(doc, "server", server, &ok);
        put(doc, "apps", status_apps_json(schema, migrations, checks), &ok);
        put(doc, "schema", status_schema_json(schema, migrations), &ok);
        /* The rings are copied (shallow: their entries are never modified), so the cached document does
         * not move when they do. */
        put(doc, "activity", json_copy(s->activity), &ok);
        put(doc, "log_excerpt", json_copy(s->log_excerpt), &ok);
        put(doc, "scans", scans_to_json(w), &ok);
        put(doc, "tasks", json_copy(s->tasks), &ok);
        put(doc, "docs", json_copy(s->docs), &ok);
        put(doc, "data_lab", exports_status_json(w->daemon, w), &ok);
        if (!ok) {
                json_decref(doc);
                return NULL;
        }
        return doc;
}

static json_t *status_doc(Workspace *w) {
        WorkspaceStatus *s = status_of(w);

        if (!s)
                return NULL;
        if (!s->doc)
                s->doc = status_build(w, s);
        return s->doc;
}

json_t *workspace_status_json(Workspace *w) {
        return json_incref(status_doc(w));
}

const char *workspace_status_text(Workspace *w) {
        json_t *doc = status_doc(w);

        if (!doc)
                return NULL;
        if (!w->status->text)
                w->status->text = json_dumps(doc, JSON_COMPACT);
        return w->status->text;
}

uint64_t workspace_status_seq(Workspace *w) {
        return w->status ? w->status->seq : 0;
}

int op_workspace_status(OpCall *c, json_t *params) {
        const char *slug = json_string_value(json_object_get(params, "workspace"));
        Workspace *w = slug ? workspace_find(c->daemon, slug) : NULL;
        const char *text;
        json_t *doc;

        if (!w) {
                DjError err = DJ_ERROR_INIT;
                int r = dj_error_set_value(&err, DJ_E_NOT_FOUND, slug, "no workspace '%s'", slug ?: "");

                op_call_fail(c, &err);
                dj_error_done(&err);
                return r;
        }
        /* The cached text goes out as it is: the document is not serialized again per request. */
        text = workspace_status_text(w);
        doc = workspace_status_json(w);
        if (!doc)
                return op_call_failf(c, DJ_E_INTERNAL, "out of memory");
        op_call_reply_text(c, doc, text);
        return 0;
}
