/* SPDX-License-Identifier: MIT */
#pragma once

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "dj-error.h"
#include "dj-macro.h"

typedef struct Daemon Daemon;
typedef struct Server Server;
typedef struct Workspace Workspace;

typedef enum ServerMode {
        SERVER_MODE_SERVE,     /* python/djdesk-serve on the inherited socket, READY=1 on NOTIFY_SOCKET */
        SERVER_MODE_RUNSERVER, /* manage.py runserver 127.0.0.1:PORT, readiness by HTTP probe */
        _SERVER_MODE_MAX,
        _SERVER_MODE_INVALID = -EINVAL,
} ServerMode;

const char *server_mode_to_string(ServerMode m); /* "serve", "runserver" */
ServerMode server_mode_from_string(const char *s);

typedef enum SettingsSource {
        SETTINGS_SOURCE_GIVEN,       /* settings_module given to workspace.add/update */
        SETTINGS_SOURCE_MANAGE_PY,   /* the DJANGO_SETTINGS_MODULE default in the project's manage.py */
        SETTINGS_SOURCE_ENVIRONMENT, /* DJANGO_SETTINGS_MODULE from the daemon's environment/config */
        _SETTINGS_SOURCE_MAX,
        _SETTINGS_SOURCE_INVALID = -EINVAL,
} SettingsSource;

const char *settings_source_to_string(SettingsSource s); /* "given", "manage.py", "environment" */
SettingsSource settings_source_from_string(const char *s);

/* A registered Django project. Owned by the daemon's registry (Daemon.workspaces); looked up by slug. */
struct Workspace {
        Daemon *daemon;
        int64_t id; /* row in the store's workspaces table */
        char *slug;
        char *name;
        char *path; /* absolute, canonical (realpath) */
        char *settings_module;
        SettingsSource settings_source;
        char *python;         /* as configured for this workspace, or NULL */
        char *interpreter;    /* the interpreter found (absolute path) */
        char *django_version; /* what it imported, e.g. "3.2.19" */
        unsigned port;        /* configured port, 0: none */
        unsigned last_port;   /* the port it served on last time: kept when still free (stable bookmarks) */
        bool autostart;
        bool autoreload;
        bool migrate_on_start;
        ServerMode mode;
        uint64_t created_at; /* µs */
        uint64_t updated_at; /* µs */

        Server *server; /* owned; always present */

        Workspace *prev, *next; /* Daemon.workspaces, in creation order */
};

/* Loads the registry from the store at startup (no validation: a path that went away is reported when
 * something is run in it). */
int workspaces_load(Daemon *d, DjError *reterr);
/* Frees every workspace (their servers must already be stopped). */
void workspaces_free(Daemon *d);

Workspace *workspace_find(Daemon *d, const char *slug);
size_t workspaces_count(Daemon *d);

/* The workspace as JSON, with its server's status under "server". */
json_t *workspace_to_json(Workspace *w);

/* Re-checks the project directory right before anything runs in it: opened with openat() one component
 * at a time without following symlinks, still a directory owned by the user, still holding manage.py,
 * still not protected. Returns an O_PATH|O_DIRECTORY fd on success (callers may fchdir or ignore it). */
int workspace_verify(Workspace *w, DjError *reterr);

/* The environment for a child running in this workspace: the daemon's environment minus
 * DJANGO_SETTINGS_MODULE, PYTHONPATH, PYTHONHOME, VIRTUAL_ENV, CONDA_* , __PYVENV_LAUNCHER__,
 * LISTEN_*, NOTIFY_SOCKET, plus DJANGO_SETTINGS_MODULE=<workspace's>, PYTHONUNBUFFERED=1, and extra
 * ("KEY=VALUE" strings, NULL-terminated, may be NULL). A NULL-terminated array to free with strv_free. */
char **workspace_child_env(Workspace *w, char *const *extra);

/* Pure helpers, exported for unit tests. */
/* Slug from a name: ASCII-folded (Latin-1/Latin Extended-A letters lose their accents), lowercase,
 * [a-z0-9-], runs of other characters become one '-', no leading/trailing '-', at most 48 characters,
 * "workspace" when nothing is left. */
char *workspace_slugify(const char *name);
/* Refuses protected locations: "/", home itself, /etc /usr /boot /dev /proc /sys (and below), /root and
 * below unless home is /root or below it, home/.ssh, home/.gnupg, the runtime dir (and below). path
 * must be canonical. Returns 0 or -EACCES with a message naming path and the rule. */
int workspace_path_check_protected(const char *path, const char *home, const char *runtime_dir,
                                   DjError *reterr);
/* The DJANGO_SETTINGS_MODULE default set in a manage.py's text (os.environ.setdefault(...)), or NULL. */
char *workspace_settings_from_manage_py(const char *text);
