/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "dj-util.h"
#include "preset.h"
#include "strv.h"

#define PRESET_FILE_MAX        (UINT64_C(1) << 20)
#define PRESET_KEY_MAX         64
#define PRESET_LABEL_MAX       128
#define PRESET_DESCRIPTION_MAX 4096
#define PRESET_URL_MAX         2048
#define PRESET_ICON_MAX        256
#define PRESET_CATEGORY_MAX    64
#define PRESET_ARG_MAX         4096
#define PRESET_ARGV_MAX        256
#define PRESET_PARAMS_MAX      32
#define PRESET_PARAM_NAME_MAX  64
#define PRESET_REGEX_MAX       1024
#define PRESET_VALUE_MAX       4096

struct PresetSet {
        Preset **presets;
        size_t n;
};

/* json_decrefp() comes with jansson.h. */
#define _cleanup_json_decref_ _cleanup_(json_decrefp)

static void preset_param_done(PresetParam *pp) {
        if (pp->regex)
                regfree(&pp->re);
        free(pp->name);
        free(pp->regex);
        free(pp->def);
}

static Preset *preset_free(Preset *p) {
        if (!p)
                return NULL;
        free(p->key);
        free(p->label);
        free(p->description);
        strv_free(p->argv);
        for (size_t i = 0; i < p->n_params; i++)
                preset_param_done(&p->params[i]);
        free(p->params);
        free(p->docs_url);
        free(p->icon);
        free(p->category);
        free(p->path);
        free(p);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(Preset *, preset_free);

PresetSet *preset_set_free(PresetSet *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n; i++)
                preset_free(s->presets[i]);
        free(s->presets);
        free(s);
        return NULL;
}

size_t preset_set_size(const PresetSet *s) {
        return s ? s->n : 0;
}

const Preset *preset_set_nth(const PresetSet *s, size_t i) {
        return s && i < s->n ? s->presets[i] : NULL;
}

const Preset *preset_set_find(const PresetSet *s, const char *key) {
        if (!s || !key)
                return NULL;
        for (size_t i = 0; i < s->n; i++)
                if (streq(s->presets[i]->key, key))
                        return s->presets[i];
        return NULL;
}

const PresetParam *preset_find_param(const Preset *p, const char *name) {
        if (!p || !name)
                return NULL;
        for (size_t i = 0; i < p->n_params; i++)
                if (streq(p->params[i].name, name))
                        return &p->params[i];
        return NULL;
}

/* ---- validation ---- */

/* Why a file was rejected: the field and a reason, filled once (the first problem wins). */
typedef struct LoadError {
        char *field;
        char *reason;
        bool oom;
} LoadError;

_printf_(3, 4) static int load_fail(LoadError *e, const char *field, const char *fmt, ...) {
        va_list ap;

        if (e->field || e->oom)
                return -EINVAL;
        e->field = strdup(field);
        va_start(ap, fmt);
        if (vasprintf(&e->reason, fmt, ap) < 0)
                e->reason = NULL;
        va_end(ap);
        if (!e->field || !e->reason)
                e->oom = true;
        return -EINVAL;
}

static int load_oom(LoadError *e) {
        e->oom = true;
        return -ENOMEM;
}

/* A JSON string without embedded NUL, 1..max bytes (0..max when allow_empty). */
static int get_string(json_t *v, const char *field, size_t max, bool allow_empty, LoadError *e,
                      const char **ret) {
        const char *s;
        size_t n;

        if (!json_is_string(v))
                return load_fail(e, field, "must be a string");
        s = json_string_value(v);
        n = json_string_length(v);
        if (strlen(s) != n)
                return load_fail(e, field, "must not contain NUL");
        if (n == 0 && !allow_empty)
                return load_fail(e, field, "must not be empty");
        if (n > max)
                return load_fail(e, field, "longer than %zu bytes", max);
        *ret = s;
        return 0;
}

static int dup_string(json_t *v, const char *field, size_t max, bool allow_empty, LoadError *e, char **ret) {
        const char *s = NULL;
        char *c;
        int r;

        r = get_string(v, field, max, allow_empty, e, &s);
        if (r < 0)
                return r;
        c = strdup(s);
        if (!c)
                return load_oom(e);
        free(*ret);
        *ret = c;
        return 0;
}

static int get_uint_range(json_t *v, const char *field, uint64_t min, uint64_t max, LoadError *e,
                          uint64_t *ret) {
        json_int_t i;

        if (!json_is_integer(v))
                return load_fail(e, field, "must be an integer");
        i = json_integer_value(v);
        if (i < 0 || (uint64_t) i < min || (uint64_t) i > max)
                return load_fail(e, field, "must be between %" PRIu64 " and %" PRIu64, min, max);
        *ret = (uint64_t) i;
        return 0;
}

static int get_bool(json_t *v, const char *field, LoadError *e, bool *ret) {
        if (!json_is_boolean(v))
                return load_fail(e, field, "must be true or false");
        *ret = json_is_true(v);
        return 0;
}

static bool key_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > PRESET_KEY_MAX)
                return false;
        for (const char *c = s; *c; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-'))
                        return false;
        return true;
}

static bool param_name_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > PRESET_PARAM_NAME_MAX)
                return false;
        if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
                return false;
        for (const char *c = s; *c; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                      *c == '_'))
                        return false;
        return !streq(s, "python") && !streq(s, "manage");
}

/* Compiles "^(" src ")$". The source must also compile on its own: "a)|(.*" would otherwise close the
 * anchoring group early and match anything. */
static int compile_anchored(const char *src, regex_t *ret) {
        _cleanup_free_ char *anchored = NULL;
        regex_t plain;

        if (regcomp(&plain, src, REG_EXTENDED | REG_NOSUB) != 0)
                return -EINVAL;
        regfree(&plain);
        if (asprintf(&anchored, "^(%s)$", src) < 0)
                return -ENOMEM;
        if (regcomp(ret, anchored, REG_EXTENDED | REG_NOSUB) != 0)
                return -EINVAL;
        return 0;
}

static bool param_matches(const PresetParam *pp, const char *value) {
        return regexec(&pp->re, value, 0, NULL, 0) == 0;
}

static int parse_params(Preset *p, json_t *v, LoadError *e) {
        const char *name;
        json_t *spec;

        if (!json_is_object(v))
                return load_fail(e, "params", "must be an object");
        if (json_object_size(v) > PRESET_PARAMS_MAX)
                return load_fail(e, "params", "more than %d params", PRESET_PARAMS_MAX);
        p->params = calloc(MAX(json_object_size(v), (size_t) 1), sizeof(PresetParam));
        if (!p->params)
                return load_oom(e);

        json_object_foreach (v, name, spec) {
                PresetParam *pp = &p->params[p->n_params];
                _cleanup_free_ char *field = NULL;
                const char *k, *s;
                json_t *x;
                int r;

                if (asprintf(&field, "params.%s", name) < 0)
                        return load_oom(e);
                if (!param_name_valid(name))
                        return load_fail(e, field,
                                         "invalid param name (want [A-Za-z_][A-Za-z0-9_]{0,63}, "
                                         "not python or manage)");
                if (!json_is_object(spec))
                        return load_fail(e, field, "must be an object {\"regex\": ..., \"default\"?: ...}");
                json_object_foreach (spec, k, x)
                        if (!streq(k, "regex") && !streq(k, "default"))
                                return load_fail(e, field, "unknown field '%s'", k);

                pp->name = strdup(name);
                if (!pp->name)
                        return load_oom(e);
                p->n_params++;

                free(field);
                if (asprintf(&field, "params.%s.regex", name) < 0)
                        return load_oom(e);
                x = json_object_get(spec, "regex");
                if (!x)
                        return load_fail(e, field, "missing");
                r = get_string(x, field, PRESET_REGEX_MAX, false, e, &s);
                if (r < 0)
                        return r;
                r = compile_anchored(s, &pp->re);
                if (r == -ENOMEM)
                        return load_oom(e);
                if (r < 0)
                        return load_fail(e, field, "not a valid POSIX extended regular expression");
                pp->regex = strdup(s);
                if (!pp->regex) {
                        regfree(&pp->re);
                        return load_oom(e);
                }

                x = json_object_get(spec, "default");
                if (x && !json_is_null(x)) {
                        free(field);
                        if (asprintf(&field, "params.%s.default", name) < 0)
                                return load_oom(e);
                        r = dup_string(x, field, PRESET_VALUE_MAX, true, e, &pp->def);
                        if (r < 0)
                                return r;
                        if (!param_matches(pp, pp->def))
                                return load_fail(e, field, "'%s' does not match the regex", pp->def);
                }
        }
        return 0;
}

/* "{name}" -> name (pointer into s, length in *ret_len), or NULL when s is not a whole placeholder. */
static const char *placeholder_name(const char *s, size_t *ret_len) {
        size_t n = strlen(s);

        if (n < 3 || s[0] != '{' || s[n - 1] != '}')
                return NULL;
        *ret_len = n - 2;
        return s + 1;
}

static int parse_argv(Preset *p, json_t *v, LoadError *e) {
        json_t *x;
        size_t i;

        if (!json_is_array(v))
                return load_fail(e, "argv", "must be an array of strings");
        if (json_array_size(v) == 0)
                return load_fail(e, "argv", "must not be empty");
        if (json_array_size(v) > PRESET_ARGV_MAX)
                return load_fail(e, "argv", "more than %d elements", PRESET_ARGV_MAX);

        json_array_foreach (v, i, x) {
                char field[32];
                const char *s, *name;
                size_t len;
                int r;

                (void) snprintf(field, sizeof(field), "argv[%zu]", i);
                r = get_string(x, field, PRESET_ARG_MAX, true, e, &s);
                if (r < 0)
                        return r;

                name = placeholder_name(s, &len);
                if (name) {
                        _cleanup_free_ char *n = strndup(name, len);

                        if (!n)
                                return load_oom(e);
                        if (i == 0 && !streq(n, "python"))
                                return load_fail(e, field, "must be {python} or an absolute path");
                        if (!streq(n, "python") && !streq(n, "manage") && !preset_find_param(p, n))
                                return load_fail(e, field,
                                                 "unknown placeholder '%s' (not {python}, "
                                                 "{manage} or a declared param)",
                                                 s);
                } else if (strchr(s, '{') || strchr(s, '}'))
                        /* "--x={app}": a placeholder must be a whole element, so no partial interpolation;
                         * a literal brace is refused for the same reason. */
                        return load_fail(e, field, "'%s': placeholders must be a whole argv element", s);
                else if (i == 0 && s[0] != '/')
                        return load_fail(e, field, "must be {python} or an absolute path");

                r = strv_extend(&p->argv, s);
                if (r < 0)
                        return load_oom(e);
        }
        return 0;
}

static const char *const preset_fields[] = {
        "key",       "label",     "description",      "argv",         "params",
        "docs_url",  "icon",      "category",         "order",        "requires_confirmation",
        "read_only", "timeout_s", "max_output_lines", "mask_secrets", "rescan",
};

static int preset_from_json(json_t *root, const char *path, uint64_t default_timeout_s, LoadError *e,
                            Preset **ret) {
        _cleanup_(preset_freep) Preset *p = NULL;
        const char *k;
        json_t *v;
        int r;

        if (!json_is_object(root))
                return load_fail(e, "(root)", "must be a JSON object");

        json_object_foreach (root, k, v) {
                bool known = false;

                for (size_t i = 0; i < ELEMENTSOF(preset_fields); i++)
                        if (streq(k, preset_fields[i]))
                                known = true;
                if (!known)
                        return load_fail(e, k, "unknown field");
        }

        p = calloc(1, sizeof(Preset));
        if (!p)
                return load_oom(e);
        p->timeout_s = default_timeout_s;
        p->max_output_lines = PRESET_MAX_OUTPUT_LINES_DEFAULT;
        p->path = strdup(path);
        if (!p->path)
                return load_oom(e);

        v = json_object_get(root, "key");
        if (!v)
                return load_fail(e, "key", "missing");
        r = dup_string(v, "key", PRESET_KEY_MAX, false, e, &p->key);
        if (r < 0)
                return r;
        if (!key_valid(p->key))
                return load_fail(e, "key", "'%s' does not match [a-z0-9-]{1,64}", p->key);

        v = json_object_get(root, "label");
        if (!v)
                return load_fail(e, "label", "missing");
        r = dup_string(v, "label", PRESET_LABEL_MAX, false, e, &p->label);
        if (r < 0)
                return r;

        v = json_object_get(root, "description");
        r = v ? dup_string(v, "description", PRESET_DESCRIPTION_MAX, true, e, &p->description) : 0;
        if (r < 0)
                return r;
        if (!p->description) {
                p->description = strdup("");
                if (!p->description)
                        return load_oom(e);
        }

        /* params before argv: argv placeholders are checked against the declared params. */
        v = json_object_get(root, "params");
        if (v) {
                r = parse_params(p, v, e);
                if (r < 0)
                        return r;
        }

        v = json_object_get(root, "argv");
        if (!v)
                return load_fail(e, "argv", "missing");
        r = parse_argv(p, v, e);
        if (r < 0)
                return r;

        v = json_object_get(root, "docs_url");
        if (v) {
                r = dup_string(v, "docs_url", PRESET_URL_MAX, false, e, &p->docs_url);
                if (r < 0)
                        return r;
                if (!strneq(p->docs_url, "https://", 8) && !strneq(p->docs_url, "http://", 7))
                        return load_fail(e, "docs_url", "must be an http:// or https:// URL");
        }

        v = json_object_get(root, "icon");
        r = v ? dup_string(v, "icon", PRESET_ICON_MAX, false, e, &p->icon) : 0;
        if (r < 0)
                return r;

        v = json_object_get(root, "category");
        r = v ? dup_string(v, "category", PRESET_CATEGORY_MAX, false, e, &p->category) : 0;
        if (r < 0)
                return r;

        v = json_object_get(root, "order");
        if (v) {
                if (!json_is_integer(v))
                        return load_fail(e, "order", "must be an integer");
                p->order = json_integer_value(v);
        }

        v = json_object_get(root, "requires_confirmation");
        r = v ? get_bool(v, "requires_confirmation", e, &p->requires_confirmation) : 0;
        if (r < 0)
                return r;

        v = json_object_get(root, "read_only");
        r = v ? get_bool(v, "read_only", e, &p->read_only) : 0;
        if (r < 0)
                return r;

        v = json_object_get(root, "mask_secrets");
        r = v ? get_bool(v, "mask_secrets", e, &p->mask_secrets) : 0;
        if (r < 0)
                return r;

        v = json_object_get(root, "rescan");
        r = v ? get_bool(v, "rescan", e, &p->rescan) : 0;
        if (r < 0)
                return r;

        v = json_object_get(root, "timeout_s");
        r = v ? get_uint_range(v, "timeout_s", 1, PRESET_TIMEOUT_MAX_S, e, &p->timeout_s) : 0;
        if (r < 0)
                return r;

        v = json_object_get(root, "max_output_lines");
        r = v ? get_uint_range(v, "max_output_lines", 1, PRESET_MAX_OUTPUT_LINES_MAX, e,
                               &p->max_output_lines)
              : 0;
        if (r < 0)
                return r;

        *ret = TAKE_PTR(p);
        return 0;
}

static int preset_load_file(const char *path, uint64_t default_timeout_s, LoadError *e, Preset **ret) {
        _cleanup_json_decref_ json_t *root = NULL;
        _cleanup_close_ int fd = -1;
        json_error_t jerr;
        struct stat st;
        FILE *f;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return load_fail(e, "(file)", "cannot open: %s", strerror(errno));
        if (fstat(fd, &st) < 0)
                return load_fail(e, "(file)", "cannot stat: %s", strerror(errno));
        if (!S_ISREG(st.st_mode))
                return load_fail(e, "(file)", "not a regular file");
        if ((uint64_t) st.st_size > PRESET_FILE_MAX)
                return load_fail(e, "(file)", "larger than %" PRIu64 " bytes", PRESET_FILE_MAX);

        f = fdopen(fd, "re");
        if (!f)
                return errno == ENOMEM ? load_oom(e) : load_fail(e, "(file)", "cannot read");
        fd = -1; /* owned by f now */
        root = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
        (void) fclose(f);
        if (!root)
                return load_fail(e, "(json)", "line %d column %d: %s", jerr.line, jerr.column, jerr.text);

        return preset_from_json(root, path, default_timeout_s, e, ret);
}

/* ---- the set ---- */

static int set_put(PresetSet *s, Preset *p /* stolen */) {
        Preset **a;

        for (size_t i = 0; i < s->n; i++)
                if (streq(s->presets[i]->key, p->key)) {
                        preset_free(s->presets[i]);
                        s->presets[i] = p;
                        return 0;
                }

        a = reallocarray(s->presets, s->n + 1, sizeof(Preset *));
        if (!a) {
                preset_free(p);
                return -ENOMEM;
        }
        s->presets = a;
        s->presets[s->n++] = p;
        return 0;
}

static int preset_cmp(const void *a, const void *b) {
        const Preset *x = *(Preset *const *) a, *y = *(Preset *const *) b;

        if (x->order != y->order)
                return x->order < y->order ? -1 : 1;
        return strcmp(x->key, y->key);
}

static int name_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static bool is_json_name(const char *n) {
        size_t l = strlen(n);

        return n[0] != '.' && l > 5 && streq(n + l - 5, ".json");
}

/* The "*.json" names in dir, sorted bytewise. A missing directory gives an empty list. */
static int dir_list_json(const char *dir, char ***ret, char ***warnings) {
        _cleanup_strv_free_ char **names = NULL;
        DIR *d;
        struct dirent *de;
        int r = 0;

        d = opendir(dir);
        if (!d) {
                if (errno == ENOENT)
                        return 0;
                if (errno == ENOMEM)
                        return -ENOMEM;
                return strv_extendf(warnings, "%s: cannot open directory: %s", dir, strerror(errno)) < 0
                               ? -ENOMEM
                               : 0;
        }
        while ((de = readdir(d))) {
                if (!is_json_name(de->d_name))
                        continue;
                r = strv_extend(&names, de->d_name);
                if (r < 0)
                        break;
        }
        (void) closedir(d);
        if (r < 0)
                return -ENOMEM;

        if (names)
                qsort(names, strv_length(names), sizeof(char *), name_cmp);
        *ret = TAKE_PTR(names);
        return 0;
}

int preset_set_load(char *const *dirs, uint64_t default_timeout_s, PresetSet **ret, char ***ret_warnings) {
        _cleanup_preset_set_free_ PresetSet *s = NULL;
        _cleanup_strv_free_ char **warnings = NULL;
        int r;

        assert_return(ret);

        if (default_timeout_s == 0)
                default_timeout_s = PRESET_TIMEOUT_DEFAULT_S;
        if (default_timeout_s > PRESET_TIMEOUT_MAX_S)
                default_timeout_s = PRESET_TIMEOUT_MAX_S;

        s = calloc(1, sizeof(PresetSet));
        if (!s)
                return -ENOMEM;

        for (char *const *dir = dirs; dir && *dir; dir++) {
                _cleanup_strv_free_ char **names = NULL;

                r = dir_list_json(*dir, &names, &warnings);
                if (r < 0)
                        return r;

                for (char **n = names; n && *n; n++) {
                        _cleanup_free_ char *path = path_join(*dir, *n);
                        Preset *p = NULL;
                        LoadError e = {};

                        if (!path)
                                return -ENOMEM;
                        r = preset_load_file(path, default_timeout_s, &e, &p);
                        if (e.oom || r == -ENOMEM) {
                                free(e.field);
                                free(e.reason);
                                return -ENOMEM;
                        }
                        if (r < 0) {
                                r = strv_extendf(&warnings, "%s: field '%s': %s", path, e.field, e.reason);
                                free(e.field);
                                free(e.reason);
                                if (r < 0)
                                        return -ENOMEM;
                                continue;
                        }
                        r = set_put(s, p);
                        if (r < 0)
                                return r;
                }
        }

        if (s->n > 0)
                qsort(s->presets, s->n, sizeof(Preset *), preset_cmp);

        *ret = TAKE_PTR(s);
        if (ret_warnings)
                *ret_warnings = TAKE_PTR(warnings);
        return 0;
}

/* ---- expansion ---- */

int preset_expand_argv(const Preset *p, const char *python, const char *manage, json_t *params,
                       char ***ret_argv, DjError *reterr) {
        _cleanup_strv_free_ char **argv = NULL;
        _cleanup_free_ const char **values = NULL;
        const char *name;
        json_t *v;
        int r;

        assert_return(p);
        assert_return(ret_argv);

        if (params && !json_is_object(params))
                return dj_error_set(reterr, DJ_E_INVALID, "preset '%s': params must be an object", p->key);

        json_object_foreach (params, name, v) {
                const PresetParam *pp = preset_find_param(p, name);
                const char *s;

                if (!pp)
                        return dj_error_set_value(reterr, DJ_E_INVALID, name,
                                                  "preset '%s' has no param '%s'", p->key, name);
                if (!json_is_string(v))
                        return dj_error_set_value(reterr, DJ_E_INVALID, name,
                                                  "preset '%s': param '%s' must be a string", p->key, name);
                s = json_string_value(v);
                if (strlen(s) != json_string_length(v) || json_string_length(v) > PRESET_VALUE_MAX ||
                    !param_matches(pp, s))
                        return dj_error_set_value(reterr, DJ_E_INVALID, s,
                                                  "preset '%s': param '%s': value '%s' does not match '%s'",
                                                  p->key, name, s, pp->regex);
        }

        values = calloc(MAX(p->n_params, (size_t) 1), sizeof(char *));
        if (!values)
                return -ENOMEM;
        for (size_t i = 0; i < p->n_params; i++) {
                v = params ? json_object_get(params, p->params[i].name) : NULL;
                values[i] = v ? json_string_value(v) : p->params[i].def;
                if (!values[i])
                        return dj_error_set_value(reterr, DJ_E_INVALID, p->params[i].name,
                                                  "preset '%s': param '%s' is required", p->key,
                                                  p->params[i].name);
        }

        for (char **a = p->argv; a && *a; a++) {
                const char *value = *a, *ph;
                size_t len;

                ph = placeholder_name(*a, &len);
                if (ph) {
                        value = NULL;
                        if (strneq(ph, "python", len) && len == 6) {
                                value = python;
                                if (!value)
                                        return dj_error_set(reterr, DJ_E_INVALID,
                                                            "preset '%s' needs a Python interpreter",
                                                            p->key);
                        } else if (strneq(ph, "manage", len) && len == 6) {
                                value = manage;
                                if (!value)
                                        return dj_error_set(reterr, DJ_E_INVALID,
                                                            "preset '%s' needs manage.py", p->key);
                        } else
                                for (size_t i = 0; i < p->n_params; i++)
                                        if (strlen(p->params[i].name) == len &&
                                            strneq(p->params[i].name, ph, len))
                                                value = values[i];
                        if (!value) /* cannot happen for a loaded preset */
                                return dj_error_set(reterr, DJ_E_INVALID,
                                                    "preset '%s': bad placeholder '%s'", p->key, *a);
                }
                r = strv_extend(&argv, value);
                if (r < 0)
                        return r;
        }

        *ret_argv = TAKE_PTR(argv);
        return 0;
}

/* ---- serialisation ---- */

static json_t *string_or_null(const char *s) {
        return s ? json_string(s) : json_null();
}

json_t *preset_to_json(const Preset *p) {
        _cleanup_json_decref_ json_t *o = NULL, *argv = NULL, *params = NULL;

        if (!p)
                return NULL;

        argv = json_array();
        params = json_object();
        if (!argv || !params)
                return NULL;
        for (char **a = p->argv; a && *a; a++)
                if (json_array_append_new(argv, json_string(*a)) < 0)
                        return NULL;
        for (size_t i = 0; i < p->n_params; i++)
                if (json_object_set_new(params, p->params[i].name,
                                        json_pack("{s:s, s:o}", "regex", p->params[i].regex, "default",
                                                  string_or_null(p->params[i].def))) < 0)
                        return NULL;

        o = json_pack("{s:s, s:s, s:s, s:O, s:O, s:o, s:o, s:o, s:I, s:b, s:b, s:b, s:b, s:I, s:I, s:s}",
                      "key", p->key, "label", p->label, "description", p->description, "argv", argv,
                      "params", params, "docs_url", string_or_null(p->docs_url), "icon",
                      string_or_null(p->icon), "category", string_or_null(p->category), "order",
                      (json_int_t) p->order, "requires_confirmation", p->requires_confirmation, "read_only",
                      p->read_only, "mask_secrets", p->mask_secrets, "rescan", p->rescan, "timeout_s",
                      (json_int_t) p->timeout_s, "max_output_lines", (json_int_t) p->max_output_lines,
                      "source", p->path);
        return TAKE_PTR(o);
}
