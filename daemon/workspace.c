/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "dj-log.h"
#include "dj-util.h"
#include "scan.h"
#include "server.h"
#include "status.h"
#include "store.h"
#include "strv.h"
#include "workspace.h"
#include "xdg.h"

#define SLUG_MAX            48
#define NAME_MAX_BYTES      128
#define SETTINGS_MAX_BYTES  255
#define MANAGE_PY_MAX_BYTES (256 * 1024)
#define OBJECT_PATH_PREFIX  "/io/djdesk/Desk1/workspace"

extern char **environ;

/* ---- enums ---- */

static const char *const server_mode_table[_SERVER_MODE_MAX] = {
        [SERVER_MODE_SERVE] = "serve",
        [SERVER_MODE_RUNSERVER] = "runserver",
};

const char *server_mode_to_string(ServerMode m) {
        return m >= 0 && m < _SERVER_MODE_MAX ? server_mode_table[m] : NULL;
}

ServerMode server_mode_from_string(const char *s) {
        for (int i = 0; s && i < _SERVER_MODE_MAX; i++)
                if (streq(server_mode_table[i], s))
                        return (ServerMode) i;
        return _SERVER_MODE_INVALID;
}

static const char *const settings_source_table[_SETTINGS_SOURCE_MAX] = {
        [SETTINGS_SOURCE_GIVEN] = "given",
        [SETTINGS_SOURCE_MANAGE_PY] = "manage.py",
        [SETTINGS_SOURCE_ENVIRONMENT] = "environment",
};

const char *settings_source_to_string(SettingsSource s) {
        return s >= 0 && s < _SETTINGS_SOURCE_MAX ? settings_source_table[s] : NULL;
}

SettingsSource settings_source_from_string(const char *s) {
        for (int i = 0; s && i < _SETTINGS_SOURCE_MAX; i++)
                if (streq(settings_source_table[i], s))
                        return (SettingsSource) i;
        return _SETTINGS_SOURCE_INVALID;
}

/* ---- slugs ---- */

/* ASCII spelling of U+00C0..U+017F, lowercase; "" for the two symbols (× ÷) in that range. */
/* clang-format off */
static const char *const fold_table[0x180 - 0xC0] = {
        /* U+00C0 */ "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
        /* U+00D0 */ "d", "n", "o", "o", "o", "o", "o", "", "o", "u", "u", "u", "u", "y", "th", "ss",
        /* U+00E0 */ "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
        /* U+00F0 */ "d", "n", "o", "o", "o", "o", "o", "", "o", "u", "u", "u", "u", "y", "th", "y",
        /* U+0100 */ "a", "a", "a", "a", "a", "a", "c", "c", "c", "c", "c", "c", "c", "c", "d", "d",
        /* U+0110 */ "d", "d", "e", "e", "e", "e", "e", "e", "e", "e", "e", "e", "g", "g", "g", "g",
        /* U+0120 */ "g", "g", "g", "g", "h", "h", "h", "h", "i", "i", "i", "i", "i", "i", "i", "i",
        /* U+0130 */ "i", "i", "ij", "ij", "j", "j", "k", "k", "k", "l", "l", "l", "l", "l", "l", "l",
        /* U+0140 */ "l", "l", "l", "n", "n", "n", "n", "n", "n", "n", "n", "n", "o", "o", "o", "o",
        /* U+0150 */ "o", "o", "oe", "oe", "r", "r", "r", "r", "r", "r", "s", "s", "s", "s", "s", "s",
        /* U+0160 */ "s", "s", "t", "t", "t", "t", "t", "t", "u", "u", "u", "u", "u", "u", "u", "u",
        /* U+0170 */ "u", "u", "u", "u", "w", "w", "y", "y", "y", "z", "z", "z", "z", "z", "z", "s",
};
/* clang-format on */

/* Decodes one UTF-8 sequence at s: the code point, or -1 for an invalid byte (then *len is 1). */
static int32_t utf8_decode(const unsigned char *s, size_t *len) {
        int32_t c;
        size_t n;

        if (s[0] < 0x80) {
                *len = 1;
                return s[0];
        }
        if (s[0] >= 0xC2 && s[0] <= 0xDF)
                n = 2, c = s[0] & 0x1F;
        else if (s[0] >= 0xE0 && s[0] <= 0xEF)
                n = 3, c = s[0] & 0x0F;
        else if (s[0] >= 0xF0 && s[0] <= 0xF4)
                n = 4, c = s[0] & 0x07;
        else {
                *len = 1;
                return -1;
        }
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xC0) != 0x80) {
                        *len = 1;
                        return -1;
                }
                c = (c << 6) | (s[i] & 0x3F);
        }
        /* overlong forms, surrogates, beyond U+10FFFF */
        if ((n == 3 && c < 0x800) || (n == 4 && (c < 0x10000 || c > 0x10FFFF)) ||
            (c >= 0xD800 && c <= 0xDFFF)) {
                *len = 1;
                return -1;
        }
        *len = n;
        return c;
}

char *workspace_slugify(const char *name) {
        const unsigned char *p = (const unsigned char *) (name ?: "");
        char buf[SLUG_MAX + 1];
        size_t n = 0;
        bool dash = false;

        while (*p && n < SLUG_MAX) {
                const char *fold = NULL;
                char one[2] = {};
                size_t len;
                int32_t c = utf8_decode(p, &len);

                p += len;
                if (c >= 'A' && c <= 'Z')
                        one[0] = (char) (c - 'A' + 'a');
                else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
                        one[0] = (char) c;
                else if (c >= 0xC0 && c < 0x180)
                        fold = fold_table[c - 0xC0];
                if (one[0])
                        fold = one;
                if (isempty(fold)) {
                        dash = n > 0;
                        continue;
                }
                if (dash && n < SLUG_MAX)
                        buf[n++] = '-';
                dash = false;
                for (const char *f = fold; *f && n < SLUG_MAX; f++)
                        buf[n++] = *f;
        }
        while (n > 0 && buf[n - 1] == '-')
                n--;
        if (n == 0)
                return strdup("workspace");
        return strndup(buf, n);
}

char *workspace_slug_unique(const char *base, bool (*taken)(const char *slug, void *userdata),
                            void *userdata) {
        if (!taken(base, userdata))
                return strdup(base);
        for (unsigned i = 2; i < 100000; i++) {
                char suffix[16];
                size_t sl, bl = strlen(base);
                char *s;

                (void) snprintf(suffix, sizeof(suffix), "-%u", i);
                sl = strlen(suffix);
                if (bl + sl > SLUG_MAX)
                        bl = SLUG_MAX - sl;
                while (bl > 0 && base[bl - 1] == '-')
                        bl--;
                if (asprintf(&s, "%.*s%s", (int) bl, base, suffix) < 0)
                        return NULL;
                if (!taken(s, userdata))
                        return s;
                free(s);
        }
        return NULL;
}

/* ---- D-Bus object path ---- */

char *workspace_object_path(const char *slug) {
        static const char hex[] = "0123456789abcdef";
        size_t n = strlen(slug), pl = strlen(OBJECT_PATH_PREFIX);
        char *r, *t;

        r = malloc(pl + 1 + (n == 0 ? 1 : n * 3) + 1);
        if (!r)
                return NULL;
        t = stpcpy(stpcpy(r, OBJECT_PATH_PREFIX), "/");
        if (n == 0)
                *t++ = '_';
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) slug[i];
                bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
                bool digit = c >= '0' && c <= '9';

                if (alpha || (digit && i > 0))
                        *t++ = (char) c;
                else {
                        *t++ = '_';
                        *t++ = hex[c >> 4];
                        *t++ = hex[c & 15];
                }
        }
        *t = '\0';
        return r;
}

/* ---- protected locations ---- */

/* Whether path is prefix or lies below it (both canonical). */
static bool path_is_or_below(const char *path, const char *prefix) {
        size_t n = strlen(prefix);

        while (n > 1 && prefix[n - 1] == '/')
                n--;
        if (n == 1 && prefix[0] == '/')
                return true;
        return strneq(path, prefix, n) && (path[n] == '\0' || path[n] == '/');
}

int workspace_path_check_protected(const char *path, const char *home, const char *runtime_dir,
                                   DjError *reterr) {
        static const struct {
                const char *dir, *what;
        } system_dirs[] = {
                { "/etc", "system configuration" },
                { "/usr", "the operating system" },
                { "/boot", "the boot files" },
                { "/dev", "device files" },
                { "/proc", "the kernel's process view" },
                { "/sys", "the kernel's device view" },
        };

        if (streq(path, "/"))
                return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, path,
                                          "refused path '%s': the root directory cannot be a workspace",
                                          path);
        if (!isempty(home) && streq(path, home))
                return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, path,
                                          "refused path '%s': it is your home directory; choose a project "
                                          "directory inside it",
                                          path);
        for (size_t i = 0; i < ELEMENTSOF(system_dirs); i++)
                if (path_is_or_below(path, system_dirs[i].dir))
                        return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, path,
                                                  "refused path '%s': it is in %s (%s), a protected "
                                                  "location",
                                                  path, system_dirs[i].dir, system_dirs[i].what);
        if (path_is_or_below(path, "/root") && !(!isempty(home) && path_is_or_below(home, "/root")))
                return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, path,
                                          "refused path '%s': it is in /root, another user's home, a "
                                          "protected location",
                                          path);
        if (!isempty(home)) {
                static const char *const secret[] = { ".ssh", ".gnupg" };

                for (size_t i = 0; i < ELEMENTSOF(secret); i++) {
                        _cleanup_free_ char *p = path_join(home, secret[i]);

                        if (!p)
                                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
                        if (path_is_or_below(path, p))
                                return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, path,
                                                          "refused path '%s': it is in '%s', where your "
                                                          "keys live, a protected location",
                                                          path, p);
                }
        }
        if (!isempty(runtime_dir) && path_is_or_below(path, runtime_dir))
                return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, path,
                                          "refused path '%s': it is in the runtime directory '%s', a "
                                          "protected location",
                                          path, runtime_dir);
        return 0;
}

/* The user's home and runtime directory, canonical when they exist. */
static void user_dirs(char **ret_home, char **ret_runtime) {
        const char *h = getenv("HOME");
        _cleanup_free_ char *rt = NULL;

        if (isempty(h) || h[0] != '/') {
                struct passwd *pw = getpwuid(getuid());
                h = pw ? pw->pw_dir : NULL;
        }
        *ret_home = h ? (realpath(h, NULL) ?: strdup(h)) : NULL;
        *ret_runtime = NULL;
        if (xdg_runtime_dir(&rt) >= 0)
                *ret_runtime = realpath(rt, NULL) ?: TAKE_PTR(rt);
}

static int check_protected(const char *path, DjError *reterr) {
        _cleanup_free_ char *home = NULL, *runtime = NULL;

        user_dirs(&home, &runtime);
        return workspace_path_check_protected(path, home, runtime, reterr);
}

/* ---- manage.py ---- */

static bool ident_start(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool ident_char(char c) {
        return ident_start(c) || (c >= '0' && c <= '9');
}

bool workspace_settings_module_valid(const char *m) {
        bool start = true;

        if (isempty(m) || strlen(m) > SETTINGS_MAX_BYTES)
                return false;
        for (const char *p = m; *p; p++) {
                if (*p == '.') {
                        if (start)
                                return false;
                        start = true;
                } else if (start ? ident_start(*p) : ident_char(*p))
                        start = false;
                else
                        return false;
        }
        return !start;
}

static const char *skip_ws(const char *p) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\\')
                p++;
        return p;
}

/* A quoted string at p: returns its end (past the closing quote) and the span, or NULL. */
static const char *parse_quoted(const char *p, const char **ret_start, size_t *ret_len) {
        char q = *p;
        const char *e;

        if (q != '\'' && q != '"')
                return NULL;
        e = strchr(p + 1, q);
        if (!e || memchr(p + 1, '\n', (size_t) (e - p - 1)))
                return NULL;
        *ret_start = p + 1;
        *ret_len = (size_t) (e - p - 1);
        return e + 1;
}

/* Whether the line holding p is commented out before p. */
static bool in_comment(const char *text, const char *p) {
        const char *l = p;

        while (l > text && l[-1] != '\n')
                l--;
        return memchr(l, '#', (size_t) (p - l)) != NULL;
}

char *workspace_settings_from_manage_py(const char *text) {
        static const char call[] = "os.environ.setdefault";

        for (const char *p = text ? strstr(text, call) : NULL; p; p = strstr(p + 1, call)) {
                const char *q = skip_ws(p + strlen(call)), *s;
                size_t len;
                _cleanup_free_ char *v = NULL;

                if (in_comment(text, p) || *q != '(')
                        continue;
                q = parse_quoted(skip_ws(q + 1), &s, &len);
                if (!q || len != strlen("DJANGO_SETTINGS_MODULE") ||
                    !strneq(s, "DJANGO_SETTINGS_MODULE", len))
                        continue;
                q = skip_ws(q);
                if (*q != ',')
                        continue;
                q = parse_quoted(skip_ws(q + 1), &s, &len);
                if (!q)
                        continue;
                q = skip_ws(q);
                if (*q == ',')
                        q = skip_ws(q + 1);
                if (*q != ')')
                        continue;
                v = strndup(s, len);
                if (!v)
                        return NULL;
                if (workspace_settings_module_valid(v))
                        return TAKE_PTR(v);
        }
        return NULL;
}

static int read_manage_py(const char *dir, char **ret) {
        _cleanup_free_ char *p = path_join(dir, "manage.py"), *buf = NULL;
        _cleanup_close_ int fd = -1;
        ssize_t n;

        if (!p)
                return -ENOMEM;
        fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        buf = malloc(MANAGE_PY_MAX_BYTES + 1);
        if (!buf)
                return -ENOMEM;
        n = read_full(fd, buf, MANAGE_PY_MAX_BYTES);
        if (n < 0)
                return (int) n;
        buf[n] = '\0';
        *ret = TAKE_PTR(buf);
        return 0;
}

/* ---- parameter checks ---- */

int workspace_check_name(const char *name, DjError *reterr) {
        const unsigned char *p = (const unsigned char *) name;

        if (isempty(name))
                return dj_error_set_value(reterr, DJ_E_INVALID, name ?: "",
                                          "Invalid params: 'name' must not be empty");
        if (strlen(name) > NAME_MAX_BYTES)
                return dj_error_set_value(reterr, DJ_E_INVALID, name,
                                          "Invalid params: name '%.40s...' is %zu bytes long, at most %d "
                                          "are allowed",
                                          name, strlen(name), NAME_MAX_BYTES);
        while (*p) {
                size_t len;
                int32_t c = utf8_decode(p, &len);

                if (c < 0)
                        return dj_error_set_value(reterr, DJ_E_INVALID, name,
                                                  "Invalid params: name '%s' is not valid UTF-8", name);
                if (c < 0x20 || c == 0x7F || (c >= 0x80 && c < 0xA0))
                        return dj_error_set_value(reterr, DJ_E_INVALID, name,
                                                  "Invalid params: name '%s' contains a control character",
                                                  name);
                p += len;
        }
        return 0;
}

int workspace_check_settings_module(const char *module, DjError *reterr) {
        if (!workspace_settings_module_valid(module))
                return dj_error_set_value(reterr, DJ_E_INVALID, module ?: "",
                                          "Invalid params: settings module '%s' is not a dotted Python "
                                          "module path (like 'mysite.settings')",
                                          module ?: "");
        return 0;
}

int workspace_check_python(const char *python, DjError *reterr) {
        if (isempty(python))
                return dj_error_set_value(reterr, DJ_E_INVALID, python ?: "",
                                          "Invalid params: 'python' must not be empty");
        for (const char *p = python; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7F)
                        return dj_error_set_value(reterr, DJ_E_INVALID, python,
                                                  "Invalid params: python '%s' contains a control character",
                                                  python);
        if (python[0] == '/' || !strchr(python, '/'))
                return 0;
        return dj_error_set_value(reterr, DJ_E_INVALID, python,
                                  "Invalid params: python '%s' must be an absolute path or a command name "
                                  "looked up in PATH",
                                  python);
}

int workspace_check_port(uint64_t port, DjError *reterr) {
        char v[32];

        if (port <= 65535)
                return 0;
        (void) snprintf(v, sizeof(v), "%" PRIu64, port);
        return dj_error_set_value(reterr, DJ_E_INVALID, v,
                                  "Invalid params: port %s is out of range 1..65535", v);
}

int workspace_check_path(Daemon *d, const char *path, char **ret_canonical, DjError *reterr) {
        _cleanup_free_ char *canon = NULL, *manage = NULL;
        struct stat st;
        int r;

        if (isempty(path))
                return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, "", "refused path '': it is empty");
        if (path[0] != '/')
                return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, path,
                                          "refused path '%s': it is not an absolute path", path);
        canon = realpath(path, NULL);
        if (!canon) {
                if (errno == ENOENT)
                        return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, path,
                                                  "refused path '%s': it does not exist", path);
                if (errno == ENOTDIR)
                        return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, path,
                                                  "refused path '%s': it is not a directory", path);
                if (errno == ENOMEM)
                        return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
                return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, path, "refused path '%s': %s", path,
                                          strerror(errno));
        }
        if (stat(canon, &st) < 0)
                return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, path, "refused path '%s': %s", path,
                                          strerror(errno));
        if (!S_ISDIR(st.st_mode))
                return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, path,
                                          "refused path '%s': it is not a directory", path);
        r = check_protected(canon, reterr);
        if (r < 0)
                return r;
        if (st.st_uid != getuid())
                return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, path,
                                          "refused path '%s': it is owned by uid %u, not by you (uid %u)",
                                          canon, (unsigned) st.st_uid, (unsigned) getuid());
        manage = path_join(canon, "manage.py");
        if (!manage)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        if (lstat(manage, &st) < 0)
                return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, path,
                                          "refused path '%s': it has no manage.py, so it is not a Django "
                                          "project",
                                          canon);
        if (!S_ISREG(st.st_mode))
                return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, path,
                                          "refused path '%s': its manage.py is not a regular file", canon);
        for (Workspace *w = d ? d->workspaces : NULL; w; w = w->next)
                if (streq(w->path, canon))
                        return dj_error_set_value(reterr, DJ_E_BUSY, canon,
                                                  "'%s' is already registered as workspace '%s'", canon,
                                                  w->slug);
        *ret_canonical = TAKE_PTR(canon);
        return 0;
}

int workspace_resolve_settings(Daemon *d, const char *path, const char *given, char **ret_module,
                               SettingsSource *ret_source, DjError *reterr) {
        _cleanup_free_ char *text = NULL, *m = NULL;
        const char *env = d && d->config ? d->config->settings_module : NULL;
        int r;

        if (given) {
                r = workspace_check_settings_module(given, reterr);
                if (r < 0)
                        return r;
                *ret_module = strdup(given);
                *ret_source = SETTINGS_SOURCE_GIVEN;
                return *ret_module ? 0 : dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        }
        r = read_manage_py(path, &text);
        if (r >= 0)
                m = workspace_settings_from_manage_py(text);
        else
                log_debug_errno(r, "Cannot read '%s/manage.py', ignoring: %m", path);
        if (m) {
                *ret_module = TAKE_PTR(m);
                *ret_source = SETTINGS_SOURCE_MANAGE_PY;
                return 0;
        }
        if (!isempty(env)) {
                if (!workspace_settings_module_valid(env))
                        return dj_error_set_value(reterr, DJ_E_INVALID, env,
                                                  "cannot tell the settings module: '%s/manage.py' sets no "
                                                  "default and DJANGO_SETTINGS_MODULE '%s' is not a dotted "
                                                  "module path",
                                                  path, env);
                *ret_module = strdup(env);
                *ret_source = SETTINGS_SOURCE_ENVIRONMENT;
                return *ret_module ? 0 : dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        }
        return dj_error_set_value(reterr, DJ_E_INVALID, path,
                                  "cannot tell the settings module: '%s/manage.py' sets no "
                                  "DJANGO_SETTINGS_MODULE default and the daemon has none; pass "
                                  "settings_module",
                                  path);
}

/* ---- the registry ---- */

Workspace *workspace_free(Workspace *w) {
        if (!w)
                return NULL;
        w->server = server_free(w->server);
        w->scans = scan_set_free(w->scans);
        w->status = workspace_status_free(w->status);
        json_decref(w->notebooks);
        free(w->slug);
        free(w->name);
        free(w->path);
        free(w->settings_module);
        free(w->python);
        free(w->interpreter);
        free(w->django_version);
        free(w);
        return NULL;
}

static void registry_append(Daemon *d, Workspace *w) {
        Workspace *last = d->workspaces;

        w->next = NULL;
        w->daemon = d;
        if (!last) {
                w->prev = NULL;
                d->workspaces = w;
                return;
        }
        while (last->next)
                last = last->next;
        last->next = w;
        w->prev = last;
}

static void registry_remove(Daemon *d, Workspace *w) {
        if (w->prev)
                w->prev->next = w->next;
        else if (d->workspaces == w)
                d->workspaces = w->next;
        if (w->next)
                w->next->prev = w->prev;
        w->prev = w->next = NULL;
}

Workspace *workspace_find(Daemon *d, const char *slug) {
        for (Workspace *w = d->workspaces; slug && w; w = w->next)
                if (streq(w->slug, slug))
                        return w;
        return NULL;
}

size_t workspaces_count(Daemon *d) {
        size_t n = 0;

        for (Workspace *w = d->workspaces; w; w = w->next)
                n++;
        return n;
}

static bool slug_taken(const char *slug, void *userdata) {
        return workspace_find(userdata, slug) != NULL;
}

int workspace_register(Daemon *d, Workspace *w, DjError *reterr) {
        _cleanup_free_ char *base = NULL;
        int r;

        assert_return(d && w && w->path && w->name);
        for (Workspace *o = d->workspaces; o; o = o->next)
                if (streq(o->path, w->path))
                        return dj_error_set_value(reterr, DJ_E_BUSY, w->path,
                                                  "'%s' is already registered as workspace '%s'", w->path,
                                                  o->slug);
        base = workspace_slugify(w->name);
        if (!base)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        free(w->slug);
        w->slug = workspace_slug_unique(base, slug_taken, d);
        if (!w->slug)
                return dj_error_set(reterr, DJ_E_INTERNAL, "cannot find a free slug for '%s'", base);
        w->daemon = d;
        w->created_at = w->updated_at = now_usec(CLOCK_REALTIME);
        r = store_workspace_insert(d->store, w, reterr);
        if (r < 0)
                return r;
        if (!w->server) {
                r = server_new(w, &w->server);
                if (r < 0) {
                        (void) store_workspace_delete(d->store, w->id, NULL);
                        return dj_error_set(reterr, DJ_E_INTERNAL, "cannot set up the server of '%s': %s",
                                            w->slug, strerror(-r));
                }
        }
        registry_append(d, w);
        log_debug("workspace '%s': registered '%s' (id %" PRIi64 ")", w->slug, w->path, w->id);
        return 0;
}

int workspace_save(Workspace *w, DjError *reterr) {
        w->updated_at = now_usec(CLOCK_REALTIME);
        return store_workspace_update(w->daemon->store, w, reterr);
}

int workspace_unregister(Workspace *w, DjError *reterr) {
        Daemon *d = w->daemon;
        int r;

        r = store_workspace_delete(d->store, w->id, reterr);
        if (r < 0)
                return r;
        log_debug("workspace '%s': unregistered", w->slug);
        registry_remove(d, w);
        workspace_free(w);
        return 0;
}

static int load_one_cb(Workspace *w, void *userdata) {
        _cleanup_(workspace_freep) Workspace *owned = w;
        Daemon *d = userdata;
        int r;

        owned->daemon = d;
        r = server_new(owned, &owned->server);
        if (r < 0)
                return r;
        registry_append(d, TAKE_PTR(owned));
        return 0;
}

int workspaces_load(Daemon *d, DjError *reterr) {
        int r;

        r = store_workspaces_load(d->store, load_one_cb, d, reterr);
        if (r < 0)
                return r;
        log_debug("%zu workspace(s) loaded from the store", workspaces_count(d));
        return 0;
}

void workspaces_free(Daemon *d) {
        while (d->workspaces) {
                Workspace *w = d->workspaces;

                registry_remove(d, w);
                workspace_free(w);
        }
}

/* ---- JSON ---- */

static json_t *json_string_or_null(const char *s) {
        return s ? json_string(s) : json_null();
}

static json_t *json_port_or_null(unsigned p) {
        return p > 0 ? json_integer(p) : json_null();
}

json_t *workspace_to_json(Workspace *w) {
        _cleanup_free_ char *created = format_timestamp_iso(w->created_at);
        _cleanup_free_ char *object_path = workspace_object_path(w->slug);

        if (!created || !object_path)
                return NULL;
        return json_pack("{s:s, s:s, s:s, s:o, s:s?, s:o, s:o, s:o, s:o, s:o, s:b, s:b, s:b, s:s, s:s, "
                         "s:s, s:o}",
                         "slug", w->slug, "name", w->name, "path", w->path, "settings_module",
                         json_string_or_null(w->settings_module), "settings_source",
                         settings_source_to_string(w->settings_source), "python",
                         json_string_or_null(w->python), "interpreter", json_string_or_null(w->interpreter),
                         "django_version", json_string_or_null(w->django_version), "port",
                         json_port_or_null(w->port), "last_port", json_port_or_null(w->last_port),
                         "autostart", w->autostart, "autoreload", w->autoreload, "migrate_on_start",
                         w->migrate_on_start, "mode", server_mode_to_string(w->mode) ?: "serve",
                         "created_at", created, "object_path", object_path, "server",
                         w->server ? server_to_json(w->server) : json_null());
}

/* ---- running things in it ---- */

int workspace_verify(Workspace *w, DjError *reterr) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *copy = NULL;
        struct stat st;
        char *p, *save = NULL;
        int r;

        if (!w->path || w->path[0] != '/')
                return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, w->path ?: "",
                                          "workspace '%s': its path is not absolute", w->slug);
        copy = strdup(w->path);
        if (!copy)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return dj_error_set(reterr, DJ_E_INTERNAL, "cannot open '/': %s", strerror(errno));
        for (p = strtok_r(copy, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
                int nfd;

                if (streq(p, ".") || streq(p, ".."))
                        return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, w->path,
                                                  "workspace '%s': '%s' is not a canonical path", w->slug,
                                                  w->path);
                nfd = openat(fd, p, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (nfd < 0) {
                        int e = errno;

                        if (e == ENOENT)
                                return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, w->path,
                                                          "workspace '%s': '%s' does not exist any more",
                                                          w->slug, w->path);
                        if (e == ENOTDIR || e == ELOOP)
                                return dj_error_set_value(
                                        reterr, DJ_E_NOT_ALLOWED, w->path,
                                        "workspace '%s': '%s' changed: component '%s' is a "
                                        "symbolic link or not a directory",
                                        w->slug, w->path, p);
                        return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, w->path,
                                                  "workspace '%s': cannot open '%s': %s", w->slug, w->path,
                                                  strerror(e));
                }
                safe_close(fd);
                fd = nfd;
        }
        if (fstat(fd, &st) < 0)
                return dj_error_set(reterr, DJ_E_INTERNAL, "workspace '%s': cannot stat '%s': %s", w->slug,
                                    w->path, strerror(errno));
        if (!S_ISDIR(st.st_mode))
                return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, w->path,
                                          "workspace '%s': '%s' is not a directory any more", w->slug,
                                          w->path);
        if (st.st_uid != getuid())
                return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, w->path,
                                          "workspace '%s': '%s' is owned by uid %u now, not by you (uid %u)",
                                          w->slug, w->path, (unsigned) st.st_uid, (unsigned) getuid());
        if (fstatat(fd, "manage.py", &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
                return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, w->path,
                                          "workspace '%s': '%s/manage.py' is missing or not a regular file",
                                          w->slug, w->path);
        r = check_protected(w->path, reterr);
        if (r < 0)
                return r;
        return TAKE_FD(fd);
}

char **workspace_env_filter(char *const *env) {
        static const char *const drop[] = {
                "DJANGO_SETTINGS_MODULE",
                "PYTHONPATH",
                "PYTHONHOME",
                "PYTHONSTARTUP",
                "VIRTUAL_ENV",
                "VIRTUAL_ENV_PROMPT",
                "CONDA_*",
                "__PYVENV_LAUNCHER__",
                "LISTEN_*",
                "NOTIFY_SOCKET",
                "WATCHDOG_*",
                "JOURNAL_STREAM",
                "INVOCATION_ID",
        };
        _cleanup_strv_free_ char **l = NULL;
        int r;

        r = strv_extend(&l, "PATH=/usr/local/bin:/usr/bin:/bin"); /* replaced below when env has one */
        if (r < 0)
                return NULL;
        for (size_t i = 0; env && env[i]; i++) {
                const char *eq = strchr(env[i], '=');
                _cleanup_free_ char *key = NULL;

                if (!eq || eq == env[i])
                        continue;
                key = strndup(env[i], (size_t) (eq - env[i]));
                if (!key)
                        return NULL;
                r = strv_env_set(&l, key, eq + 1);
                if (r < 0)
                        return NULL;
        }
        for (size_t i = 0; i < ELEMENTSOF(drop); i++)
                strv_env_unset(l, drop[i]);
        return TAKE_PTR(l);
}

char **workspace_child_env(Workspace *w, char *const *extra) {
        _cleanup_strv_free_ char **l = workspace_env_filter(environ);

        if (!l)
                return NULL;
        if (w->settings_module && strv_env_set(&l, "DJANGO_SETTINGS_MODULE", w->settings_module) < 0)
                return NULL;
        if (strv_env_set(&l, "PYTHONUNBUFFERED", "1") < 0)
                return NULL;
        for (size_t i = 0; extra && extra[i]; i++) {
                const char *eq = strchr(extra[i], '=');
                _cleanup_free_ char *key = NULL;

                if (!eq || eq == extra[i])
                        continue;
                key = strndup(extra[i], (size_t) (eq - extra[i]));
                if (!key || strv_env_set(&l, key, eq + 1) < 0)
                        return NULL;
        }
        return TAKE_PTR(l);
}
