/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dj-macro.h"
#include "dj-util.h"
#include "strv.h"
#include "xdg.h"

static int home_dir(const char **ret) {
        const char *h = getenv("HOME");
        struct passwd *pw;

        if (h && h[0] == '/') {
                *ret = h;
                return 0;
        }
        pw = getpwuid(getuid());
        if (!pw || !pw->pw_dir || pw->pw_dir[0] != '/')
                return -ENXIO;
        *ret = pw->pw_dir;
        return 0;
}

static int xdg_dir(const char *var, const char *fallback, char **ret) {
        const char *e = getenv(var), *home;
        char *p;
        int r;

        if (e && e[0] == '/')
                p = strdup(e);
        else {
                if (!fallback)
                        return -ENXIO;
                r = home_dir(&home);
                if (r < 0)
                        return r;
                p = path_join(home, fallback);
        }
        if (!p)
                return -ENOMEM;
        *ret = p;
        return 0;
}

int xdg_runtime_dir(char **ret) {
        return xdg_dir("XDG_RUNTIME_DIR", NULL, ret);
}

int xdg_state_home(char **ret) {
        return xdg_dir("XDG_STATE_HOME", ".local/state", ret);
}

int xdg_config_home(char **ret) {
        return xdg_dir("XDG_CONFIG_HOME", ".config", ret);
}

int xdg_data_home(char **ret) {
        return xdg_dir("XDG_DATA_HOME", ".local/share", ret);
}

char **djdesk_config_dirs(const char *first, const char *subdir) {
        _cleanup_strv_free_ char **dirs = NULL;
        _cleanup_free_ char *config = NULL;

        if (!isempty(first) && strv_extend(&dirs, first) < 0)
                return NULL;
        if (xdg_config_home(&config) >= 0 && strv_extendf(&dirs, "%s/djdesk/%s", config, subdir) < 0)
                return NULL;
        if (!dirs)
                dirs = calloc(1, sizeof(char *));
        return TAKE_PTR(dirs);
}

int djdesk_socket_path(char **ret) {
        _cleanup_free_ char *rt = NULL;
        const char *e = getenv("DJDESK_SOCKET");
        char *p;
        int r;

        if (!isempty(e))
                p = strdup(e);
        else {
                r = xdg_runtime_dir(&rt);
                if (r < 0)
                        return r;
                p = path_join(rt, "djdesk/daemon.sock");
        }
        if (!p)
                return -ENOMEM;
        *ret = p;
        return 0;
}
