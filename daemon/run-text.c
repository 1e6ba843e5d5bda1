/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dj-macro.h"
#include "run.h"

/* Masking secrets in one line of `manage.py diffsettings` (default and --output unified) or `dumpdata`
 * output. The line is read as a stream of tokens, without a regex:
 *   - a name followed by '=' (not '=='):   SECRET_KEY = 'abc'  ###   /   + API_TOKEN = None
 *   - a quoted string followed by ':':     'PASSWORD': 's3cr3t'      /   "password": "x"
 * When the name is secret-looking, its value is replaced: a string keeps its prefix and quote character
 * ('********', "********", b'********'); any other value (a number, None, a list, a call...) up to the next
 * comma or closing bracket at its own level becomes '********' (or "********" after a "key"). An empty string stays as it is: there is
 * nothing to hide, and "no password" is worth seeing. Other values are scanned on, so that secrets nested in
 * a dict (DATABASES) are found. Malformed input never fails: an unterminated string ends the line. */

#define MASK "********"

typedef struct Buf {
        char *p;
        size_t n, allocated;
} Buf;

static int buf_add(Buf *b, const char *s, size_t n) {
        if (b->n + n + 1 > b->allocated) {
                size_t m = MAX(b->allocated * 2, b->n + n + 1);
                char *a = realloc(b->p, m);

                if (!a)
                        return -ENOMEM;
                b->p = a;
                b->allocated = m;
        }
        memcpy(b->p + b->n, s, n);
        b->n += n;
        b->p[b->n] = 0;
        return 0;
}

static bool is_ident_start(char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_ident(char c) {
        return is_ident_start(c) || (c >= '0' && c <= '9');
}

static bool is_space(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

static bool is_quote(char c) {
        return c == '\'' || c == '"';
}

static const char *skip_space(const char *p) {
        while (is_space(*p))
                p++;
        return p;
}

/* p at an opening quote: the position just after the closing quote (backslash escapes honoured), or the
 * end of the line when it is unterminated (*ret_terminated false). */
static const char *skip_string(const char *p, bool *ret_terminated) {
        char q = *p++;

        while (*p && *p != q) {
                if (*p == '\\' && p[1])
                        p++;
                p++;
        }
        if (ret_terminated)
                *ret_terminated = *p == q;
        return *p ? p + 1 : p;
}

/* The string literal prefixes Python's repr() may print (b'', and r/u/f for hand-written settings). */
static size_t string_prefix_len(const char *p) {
        size_t i = 0;

        while (i < 2 && p[i] && strchr("bBrRuUfF", p[i]))
                i++;
        return is_quote(p[i]) ? i : SIZE_MAX;
}

static char ascii_upper(char c) {
        return c >= 'a' && c <= 'z' ? (char) (c - 'a' + 'A') : c;
}

/* Whether name[0..n), upper-cased, contains word (upper case). */
static bool name_contains(const char *name, size_t n, const char *word) {
        size_t k = strlen(word);

        for (size_t i = 0; i + k <= n; i++) {
                size_t j = 0;

                while (j < k && ascii_upper(name[i + j]) == word[j])
                        j++;
                if (j == k)
                        return true;
        }
        return false;
}

/* SECRET_KEY, or a name that contains PASSWORD, PASSWD, TOKEN, SECRET, API_KEY or APIKEY (any case). */
static bool name_is_secret(const char *name, size_t n) {
        static const char *const words[] = { "PASSWORD", "PASSWD", "TOKEN", "SECRET", "API_KEY", "APIKEY" };

        for (size_t i = 0; i < ELEMENTSOF(words); i++)
                if (name_contains(name, n, words[i]))
                        return true; /* SECRET_KEY contains SECRET */
        return false;
}

/* At depth 0 of a non-string value: is the rest of the line diffsettings' "  ###" marker? */
static bool at_marker(const char *p) {
        if (!is_space(*p))
                return false;
        p = skip_space(p);
        if (!strneq(p, "###", 3))
                return false;
        return *skip_space(p + 3) == 0;
}

/* p at the first character of a value that is not a string: its end (exclusive), before the next comma
 * or closing bracket of its own level, the "###" marker or the end of the line; trailing space excluded. */
static const char *value_end(const char *p) {
        const char *start = p;
        unsigned depth = 0;

        while (*p) {
                if (is_quote(*p)) {
                        p = skip_string(p, NULL);
                        continue;
                }
                if (*p == '(' || *p == '[' || *p == '{')
                        depth++;
                else if (*p == ')' || *p == ']' || *p == '}') {
                        if (depth == 0)
                                break;
                        depth--;
                } else if (depth == 0 && (*p == ',' || at_marker(p)))
                        break;
                p++;
        }
        while (p > start && is_space(p[-1]))
                p--;
        return p;
}

/* v at a value (space skipped) after a secret-looking name: appends its masked form to b and returns
 * where the original value ends; returns v itself when there is nothing to mask (no value, or ''). A value
 * that is no string becomes a string quoted with quote. */
static const char *mask_value(Buf *b, const char *v, char quote, bool *ret_masked, int *ret_error) {
        size_t plen = string_prefix_len(v);
        const char *end;

        *ret_masked = false;
        *ret_error = 0;
        if (plen != SIZE_MAX) {
                const char *q = v + plen;
                bool terminated;

                end = skip_string(q, &terminated);
                if (terminated && end == q + 2) /* '' */
                        return v;
                if (buf_add(b, v, plen + 1) < 0 || buf_add(b, MASK, strlen(MASK)) < 0 ||
                    buf_add(b, q, 1) < 0) {
                        *ret_error = -ENOMEM;
                        return v;
                }
                *ret_masked = true;
                return end;
        }

        end = value_end(v);
        if (end == v)
                return v;
        if (buf_add(b, &quote, 1) < 0 || buf_add(b, MASK, strlen(MASK)) < 0 || buf_add(b, &quote, 1) < 0) {
                *ret_error = -ENOMEM;
                return v;
        }
        *ret_masked = true;
        return end;
}

char *run_mask_secrets(const char *line) {
        Buf b = {};
        const char *p, *copied;
        bool any = false;
        int r;

        if (!line)
                return NULL;

        p = copied = line;
        while (*p) {
                const char *name, *after, *v;
                char quote = '\'';
                size_t name_n;
                bool masked;

                if (is_quote(*p)) {
                        /* A quoted name followed by ':' (a dict or JSON key), or any other string. */
                        name = p + 1;
                        after = skip_string(p, NULL);
                        name_n = after > name && after[-1] == *p ? (size_t) (after - 1 - name) : 0;
                        v = skip_space(after);
                        if (*v != ':' || !name_is_secret(name, name_n)) {
                                p = after;
                                continue;
                        }
                        quote = *p; /* "password": null -> "password": "********" */
                        v = skip_space(v + 1);
                } else if (is_ident_start(*p) && (p == line || !is_ident(p[-1]))) {
                        /* A name followed by '=' (an assignment or a keyword argument). */
                        name = p;
                        while (is_ident(*p))
                                p++;
                        name_n = (size_t) (p - name);
                        /* A string prefix (b'...') is no name: read the string on the next turn. */
                        if (is_quote(*p))
                                continue;
                        v = skip_space(p);
                        if (*v != '=' || v[1] == '=' || !name_is_secret(name, name_n))
                                continue;
                        v = skip_space(v + 1);
                } else {
                        p++;
                        continue;
                }

                /* Copy everything up to the value, then its masked form. */
                if (buf_add(&b, copied, (size_t) (v - copied)) < 0)
                        goto oom;
                after = mask_value(&b, v, quote, &masked, &r);
                if (r < 0)
                        goto oom;
                if (masked)
                        any = true;
                else
                        /* nothing masked: the value is copied (and scanned) as it is */
                        after = v;
                copied = p = after;
        }

        if (!any) {
                free(b.p);
                return strdup(line);
        }
        if (buf_add(&b, copied, strlen(copied)) < 0)
                goto oom;
        return b.p;
oom:
        free(b.p);
        return NULL;
}
