/* SPDX-License-Identifier: MIT */
#pragma once

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "dj-error.h"
#include "dj-macro.h"

typedef struct Daemon Daemon;
typedef struct ScanSet ScanSet;
typedef struct Server Server;
typedef struct Workspace Workspace;
typedef struct WorkspaceStatus WorkspaceStatus;

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

        Server *server;          /* owned; always present */
        ScanSet *scans;          /* scan.c's, created on first use; NULL: never scanned */
        WorkspaceStatus *status; /* status.c's, created on first use */
        json_t *notebooks;       /* export.c's: the Data Lab notebooks (export.list), NULL: not listed yet */
        bool removing;           /* workspace.remove is stopping its server */

        Workspace *prev, *next; /* Daemon.workspaces, in creation order */
};

/* Loads the registry from the store at startup (no validation: a path that went away is reported when
 * something is run in it). */
int workspaces_load(Daemon *d, DjError *reterr);
/* Frees every workspace (their servers must already be stopped). */
void workspaces_free(Daemon *d);

Workspace *workspace_find(Daemon *d, const char *slug);
size_t workspaces_count(Daemon *d);

/* Frees a workspace that is not (or no longer) linked in the registry, and its server. */
Workspace *workspace_free(Workspace *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(Workspace *, workspace_free);

/* Checks a project path for workspace.add: absolute, canonicalised with realpath(), an existing directory
 * owned by the user holding a regular manage.py, not protected (-EACCES, DJ_E_NOT_ALLOWED, the value
 * named), and not registered yet (-EBUSY, DJ_E_BUSY, naming the workspace that has it). */
int workspace_check_path(Daemon *d, const char *path, char **ret_canonical, DjError *reterr);
/* Parameter checks (DJ_E_INVALID, naming the value). */
int workspace_check_name(const char *name, DjError *reterr);
int workspace_check_settings_module(const char *module, DjError *reterr);
int workspace_check_python(const char *python, DjError *reterr);
int workspace_check_port(uint64_t port, DjError *reterr); /* 0 (none) or 1..65535 */
/* The settings module: given (validated), else the default in path/manage.py, else the daemon's
 * DJANGO_SETTINGS_MODULE; else DJ_E_INVALID "cannot tell the settings module: ...". */
int workspace_resolve_settings(Daemon *d, const char *path, const char *given, char **ret_module,
                               SettingsSource *ret_source, DjError *reterr);

/* Registers a new workspace (stolen on success): picks a unique slug from its name, fills created_at,
 * inserts it in the store, gives it a server and appends it to the registry. */
int workspace_register(Daemon *d, Workspace *w, DjError *reterr);
/* Writes a changed workspace to the store (updated_at is set). */
int workspace_save(Workspace *w, DjError *reterr);
/* Deletes it from the store, unlinks it and frees it (its server must be stopped). */
int workspace_unregister(Workspace *w, DjError *reterr);

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
/* A dotted path of Python identifiers ("mysite.settings.local"). */
bool workspace_settings_module_valid(const char *module);
/* base when taken(base) is false, else base-2, base-3... (shortened to stay within 48 characters). */
char *workspace_slug_unique(const char *base, bool (*taken)(const char *slug, void *userdata),
                            void *userdata);
/* "/io/djdesk/Desk1/workspace/<label>", the label escaped as sd_bus_path_encode() does: every byte but
 * [A-Za-z] (and [0-9] after the first) becomes _XX (lowercase hex); the empty label is "_". */
char *workspace_object_path(const char *slug);
/* A copy of env without the variables children must not inherit (DJANGO_SETTINGS_MODULE, PYTHONPATH,
 * PYTHONHOME, VIRTUAL_ENV*, CONDA_*, __PYVENV_LAUNCHER__, PYTHONSTARTUP, LISTEN_*, NOTIFY_SOCKET,
 * WATCHDOG_*, JOURNAL_STREAM, INVOCATION_ID). NULL on OOM. */
char **workspace_env_filter(char *const *env);
