/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strv.h"

char **strv_free(char **l) {
        if (!l)
                return NULL;
        for (char **i = l; *i; i++)
                free(*i);
        free(l);
        return NULL;
}

size_t strv_length(char *const *l) {
        size_t n = 0;

        if (!l)
                return 0;
        while (l[n])
                n++;
        return n;
}

int strv_push(char ***l, char *s) {
        size_t n;
        char **c;

        if (!s)
                return -ENOMEM;
        n = strv_length(*l);
        c = realloc(*l, (n + 2) * sizeof(char *));
        if (!c) {
                free(s);
                return -ENOMEM;
        }
        c[n] = s;
        c[n + 1] = NULL;
        *l = c;
        return 0;
}

int strv_extend(char ***l, const char *s) {
        return strv_push(l, strdup(s));
}

int strv_extendf(char ***l, const char *fmt, ...) {
        va_list ap;
        char *s;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        return strv_push(l, s);
}

bool strv_contains(char *const *l, const char *s) {
        for (size_t i = 0; l && l[i]; i++)
                if (streq(l[i], s))
                        return true;
        return false;
}

static bool env_match(const char *entry, const char *key) {
        size_t k = strlen(key);

        if (k > 0 && key[k - 1] == '*')
                return strncmp(entry, key, k - 1) == 0;
        return strncmp(entry, key, k) == 0 && entry[k] == '=';
}

const char *strv_env_get(char *const *l, const char *key) {
        size_t k = strlen(key);

        for (size_t i = 0; l && l[i]; i++)
                if (strncmp(l[i], key, k) == 0 && l[i][k] == '=')
                        return l[i] + k + 1;
        return NULL;
}

void strv_env_unset(char **l, const char *key) {
        size_t j = 0;

        if (!l)
                return;
        for (size_t i = 0; l[i]; i++) {
                if (env_match(l[i], key))
                        free(l[i]);
                else
                        l[j++] = l[i];
        }
        l[j] = NULL;
}

int strv_env_set(char ***l, const char *key, const char *value) {
        char *s;

        if (asprintf(&s, "%s=%s", key, value) < 0)
                return -ENOMEM;
        strv_env_unset(*l, key);
        return strv_push(l, s);
}
