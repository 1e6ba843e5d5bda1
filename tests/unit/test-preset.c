/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dj-util.h"
#include "preset.h"
#include "strv.h"
#include "test-tmpdir.h"

#ifndef DJ_SOURCE_ROOT
#error "DJ_SOURCE_ROOT must be defined by tests/meson.build"
#endif
#define BUILTIN_DIR DJ_SOURCE_ROOT "/data/presets.d"

#define PY "/usr/bin/python3"
#define MG "/srv/app/manage.py"

static char tmpdir[64];

static int setup(void **state) {
        test_mkdtemp(tmpdir, sizeof(tmpdir), "preset");
        return 0;
}

static int teardown(void **state) {
        test_rm_rf(tmpdir);
        return 0;
}

static char *mksubdir(const char *name) {
        char *d = path_join(tmpdir, name);

        assert_non_null(d);
        assert_int_equal(mkdir(d, 0755), 0);
        return d;
}

static void write_file(const char *dir, const char *name, const char *text) {
        _cleanup_free_ char *p = path_join(dir, name);
        FILE *f;

        assert_non_null(p);
        f = fopen(p, "we");
        assert_non_null(f);
        assert_true(fputs(text, f) >= 0);
        assert_int_equal(fclose(f), 0);
}

static void assert_strv_equal(char **got, const char *const *want) {
        size_t n = 0;

        for (; want[n]; n++) {
                assert_non_null(got[n]);
                assert_string_equal(got[n], want[n]);
        }
        assert_null(got[n]);
}

static PresetSet *load(char *const *dirs, char ***ret_warnings) {
        PresetSet *s = NULL;

        assert_int_equal(preset_set_load(dirs, 0, &s, ret_warnings), 0);
        assert_non_null(s);
        return s;
}

/* ---- the built-in presets ---- */

static const struct {
        const char *key;
        const char *argv[8];
        bool read_only, confirm, rescan;
} builtins[] = {
        { "check", { PY, MG, "check" }, true, false, false },
        { "check-deploy", { PY, MG, "check", "--deploy" }, true, false, false },
        { "showmigrations", { PY, MG, "showmigrations", "--plan" }, true, false, false },
        { "diff-migrations",
          { PY, MG, "makemigrations", "--check", "--dry-run", "-v", "3" },
          true,
          false,
          false },
        { "migrate-plan", { PY, MG, "migrate", "--plan" }, true, false, false },
        { "sqlmigrate", { PY, MG, "sqlmigrate", "blog", "0001_initial" }, true, false, false },
        { "diffsettings", { PY, MG, "diffsettings" }, true, false, false },
        { "inspectdb", { PY, MG, "inspectdb" }, true, false, false },
        { "dumpdata", { PY, MG, "dumpdata", "--natural-foreign", "--indent", "2" }, true, false, false },
        /* Only migrate changes what a scan finds: its runs are followed by a rescan. */
        { "migrate", { PY, MG, "migrate", "--noinput" }, false, true, true },
};

static void test_builtins(void **state) {
        char *dirs[] = { (char *) BUILTIN_DIR, NULL };
        _cleanup_strv_free_ char **warnings = NULL;
        _cleanup_preset_set_free_ PresetSet *s = load(dirs, &warnings);

        for (char **w = warnings; w && *w; w++)
                print_error("unexpected warning: %s\n", *w);
        assert_int_equal(strv_length(warnings), 0);
        assert_int_equal(preset_set_size(s), ELEMENTSOF(builtins));

        for (size_t i = 0; i < ELEMENTSOF(builtins); i++) {
                const Preset *p = preset_set_find(s, builtins[i].key);
                _cleanup_strv_free_ char **argv = NULL;
                json_t *params = NULL;
                DjError err = DJ_ERROR_INIT;

                assert_non_null(p);
                assert_true(p->read_only == builtins[i].read_only);
                assert_true(p->requires_confirmation == builtins[i].confirm);
                assert_true(p->rescan == builtins[i].rescan);
                assert_int_equal(p->timeout_s, PRESET_TIMEOUT_DEFAULT_S);
                assert_int_equal(p->max_output_lines, PRESET_MAX_OUTPUT_LINES_DEFAULT);
                assert_non_null(p->docs_url);
                assert_true(strneq(p->docs_url,
                                   "https://docs.djangoproject.com/en/stable/ref/django-admin/#",
                                   strlen("https://docs.djangoproject.com/en/stable/ref/django-admin/#")));
                assert_non_null(p->category);
                assert_true(strlen(p->label) > 0 && strlen(p->description) > 0);

                if (streq(p->key, "sqlmigrate"))
                        params = json_pack("{s:s, s:s}", "app", "blog", "migration", "0001_initial");
                assert_int_equal(preset_expand_argv(p, PY, MG, params, &argv, &err), 0);
                json_decref(params);
                assert_strv_equal(argv, builtins[i].argv);
        }

        /* Sorted by order, then key. */
        for (size_t i = 1; i < preset_set_size(s); i++) {
                const Preset *a = preset_set_nth(s, i - 1), *b = preset_set_nth(s, i);

                assert_true(a->order < b->order || (a->order == b->order && strcmp(a->key, b->key) < 0));
        }
        assert_null(preset_set_nth(s, preset_set_size(s)));
        assert_null(preset_set_find(s, "rm"));
}

static void test_builtin_default_timeout(void **state) {
        char *dirs[] = { (char *) BUILTIN_DIR, NULL };
        _cleanup_preset_set_free_ PresetSet *s = NULL;

        assert_int_equal(preset_set_load(dirs, 900, &s, NULL), 0);
        assert_int_equal(preset_set_find(s, "check")->timeout_s, 900);
}

static void test_builtin_sqlmigrate_refusals(void **state) {
        char *dirs[] = { (char *) BUILTIN_DIR, NULL };
        _cleanup_preset_set_free_ PresetSet *s = load(dirs, NULL);
        const Preset *p = preset_set_find(s, "sqlmigrate");
        static const char *const bad[][2] = {
                { "blog; rm -rf ~", "0001" },    { "blog", "1" }, { "9blog", "0001" },
                { "blog", "0001 --database=x" }, { "", "0001" },  { "blog\nx", "0001" },
        };

        assert_non_null(p);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_strv_free_ char **argv = NULL;
                json_t *params = json_pack("{s:s, s:s}", "app", bad[i][0], "migration", bad[i][1]);
                DjError err = DJ_ERROR_INIT;

                assert_int_equal(preset_expand_argv(p, PY, MG, params, &argv, &err), -EINVAL);
                assert_int_equal(err.kind, DJ_E_INVALID);
                assert_null(argv);
                dj_error_done(&err);
                json_decref(params);
        }

        /* Missing param without default. */
        {
                _cleanup_strv_free_ char **argv = NULL;
                json_t *params = json_pack("{s:s}", "app", "blog");
                DjError err = DJ_ERROR_INIT;

                assert_int_equal(preset_expand_argv(p, PY, MG, params, &argv, &err), -EINVAL);
                assert_non_null(strstr(err.message, "migration"));
                dj_error_done(&err);
                json_decref(params);
        }
}

/* ---- invalid files ---- */

#define GOOD_ARGV "\"argv\": [\"{python}\", \"{manage}\", \"check\"]"

static const struct {
        const char *file;
        const char *field;
        const char *json;
} invalid[] = {
        { "no-key.json", "key", "{\"label\": \"L\", " GOOD_ARGV "}" },
        { "key-upper.json", "key", "{\"key\": \"Check\", \"label\": \"L\", " GOOD_ARGV "}" },
        { "key-slash.json", "key", "{\"key\": \"a/b\", \"label\": \"L\", " GOOD_ARGV "}" },
        { "key-long.json", "key",
          "{\"key\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", \"label\": "
          "\"L\", " GOOD_ARGV "}" },
        { "key-int.json", "key", "{\"key\": 5, \"label\": \"L\", " GOOD_ARGV "}" },
        { "no-label.json", "label", "{\"key\": \"x1\", " GOOD_ARGV "}" },
        { "label-empty.json", "label", "{\"key\": \"x2\", \"label\": \"\", " GOOD_ARGV "}" },
        { "label-long.json", "label",
          "{\"key\": \"x3\", \"label\": "
          "\"LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL"
          "LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL\", " GOOD_ARGV "}" },
        { "unknown.json", "shell", "{\"key\": \"x4\", \"label\": \"L\", \"shell\": true, " GOOD_ARGV "}" },
        { "no-argv.json", "argv", "{\"key\": \"x5\", \"label\": \"L\"}" },
        { "argv-empty.json", "argv", "{\"key\": \"x6\", \"label\": \"L\", \"argv\": []}" },
        { "argv-string.json", "argv", "{\"key\": \"x7\", \"label\": \"L\", \"argv\": \"/bin/true\"}" },
        { "argv-int.json", "argv[1]", "{\"key\": \"x8\", \"label\": \"L\", \"argv\": [\"/bin/echo\", 1]}" },
        { "argv-relative.json", "argv[0]",
          "{\"key\": \"x9\", \"label\": \"L\", \"argv\": [\"python3\", \"-V\"]}" },
        { "argv-manage0.json", "argv[0]", "{\"key\": \"x10\", \"label\": \"L\", \"argv\": [\"{manage}\"]}" },
        { "argv-unknown-ph.json", "argv[2]",
          "{\"key\": \"x11\", \"label\": \"L\", \"argv\": [\"{python}\", \"{manage}\", \"{app}\"]}" },
        { "argv-partial.json", "argv[2]",
          "{\"key\": \"x12\", \"label\": \"L\", \"argv\": [\"{python}\", \"{manage}\", \"--x={app}\"], "
          "\"params\": {\"app\": {\"regex\": \"[a-z]+\"}}}" },
        { "argv-prefix.json", "argv[1]",
          "{\"key\": \"x13\", \"label\": \"L\", \"argv\": [\"/bin/echo\", \"{app}x\"], "
          "\"params\": {\"app\": {\"regex\": \"[a-z]+\"}}}" },
        { "params-array.json", "params",
          "{\"key\": \"x14\", \"label\": \"L\", " GOOD_ARGV ", \"params\": []}" },
        { "params-bad-regex.json", "params.app.regex",
          "{\"key\": \"x15\", \"label\": \"L\", " GOOD_ARGV
          ", \"params\": {\"app\": {\"regex\": \"[a-\"}}}" },
        { "params-escape-anchor.json", "params.app.regex",
          "{\"key\": \"x16\", \"label\": \"L\", " GOOD_ARGV
          ", \"params\": {\"app\": {\"regex\": \"a)|(.*\"}}}" },
        { "params-no-regex.json", "params.app.regex",
          "{\"key\": \"x17\", \"label\": \"L\", " GOOD_ARGV ", \"params\": {\"app\": {}}}" },
        { "params-bad-default.json", "params.app.default",
          "{\"key\": \"x18\", \"label\": \"L\", " GOOD_ARGV
          ", \"params\": {\"app\": {\"regex\": \"[a-z]+\", \"default\": \"A1\"}}}" },
        { "params-unknown.json", "params.app",
          "{\"key\": \"x19\", \"label\": \"L\", " GOOD_ARGV
          ", \"params\": {\"app\": {\"regex\": \"[a-z]+\", \"split\": true}}}" },
        { "params-name.json", "params.python",
          "{\"key\": \"x20\", \"label\": \"L\", " GOOD_ARGV
          ", \"params\": {\"python\": {\"regex\": \"x\"}}}" },
        { "timeout-zero.json", "timeout_s",
          "{\"key\": \"x21\", \"label\": \"L\", " GOOD_ARGV ", \"timeout_s\": 0}" },
        { "timeout-big.json", "timeout_s",
          "{\"key\": \"x22\", \"label\": \"L\", " GOOD_ARGV ", \"timeout_s\": 86401}" },
        { "timeout-string.json", "timeout_s",
          "{\"key\": \"x23\", \"label\": \"L\", " GOOD_ARGV ", \"timeout_s\": \"60\"}" },
        { "lines-zero.json", "max_output_lines",
          "{\"key\": \"x24\", \"label\": \"L\", " GOOD_ARGV ", \"max_output_lines\": 0}" },
        { "lines-big.json", "max_output_lines",
          "{\"key\": \"x25\", \"label\": \"L\", " GOOD_ARGV ", \"max_output_lines\": 10000001}" },
        { "order-float.json", "order",
          "{\"key\": \"x26\", \"label\": \"L\", " GOOD_ARGV ", \"order\": 1.5}" },
        { "ro-string.json", "read_only",
          "{\"key\": \"x27\", \"label\": \"L\", " GOOD_ARGV ", \"read_only\": \"yes\"}" },
        { "confirm-int.json", "requires_confirmation",
          "{\"key\": \"x28\", \"label\": \"L\", " GOOD_ARGV ", \"requires_confirmation\": 1}" },
        { "rescan-string.json", "rescan",
          "{\"key\": \"x35\", \"label\": \"L\", " GOOD_ARGV ", \"rescan\": \"true\"}" },
        { "rescan-int.json", "rescan",
          "{\"key\": \"x36\", \"label\": \"L\", " GOOD_ARGV ", \"rescan\": 1}" },
        { "rescan-null.json", "rescan",
          "{\"key\": \"x37\", \"label\": \"L\", " GOOD_ARGV ", \"rescan\": null}" },
        { "rescan-typo.json", "rescans",
          "{\"key\": \"x38\", \"label\": \"L\", " GOOD_ARGV ", \"rescans\": true}" },
        { "docs-ftp.json", "docs_url",
          "{\"key\": \"x29\", \"label\": \"L\", " GOOD_ARGV ", \"docs_url\": \"ftp://x\"}" },
        { "icon-int.json", "icon", "{\"key\": \"x30\", \"label\": \"L\", " GOOD_ARGV ", \"icon\": 3}" },
        { "category-null.json", "category",
          "{\"key\": \"x31\", \"label\": \"L\", " GOOD_ARGV ", \"category\": null}" },
        { "description-int.json", "description",
          "{\"key\": \"x32\", \"label\": \"L\", " GOOD_ARGV ", \"description\": []}" },
        { "not-object.json", "(root)", "[1, 2]" },
        { "broken.json", "(json)", "{\"key\": " },
        { "duplicate.json", "(json)",
          "{\"key\": \"x33\", \"key\": \"x34\", \"label\": \"L\", " GOOD_ARGV "}" },
};

static void test_invalid_files(void **state) {
        _cleanup_free_ char *dir = mksubdir("bad");
        _cleanup_strv_free_ char **warnings = NULL;
        _cleanup_preset_set_free_ PresetSet *s = NULL;
        char *dirs[] = { dir, NULL };

        for (size_t i = 0; i < ELEMENTSOF(invalid); i++)
                write_file(dir, invalid[i].file, invalid[i].json);
        write_file(dir, "zz-good.json",
                   "{\"key\": \"good\", \"label\": \"Good\", \"argv\": [\"/bin/echo\", \"{v}\"], "
                   "\"params\": {\"v\": {\"regex\": \"[a-z]*\", \"default\": \"hi\"}}, \"order\": -3, "
                   "\"timeout_s\": 5, \"max_output_lines\": 10, \"rescan\": true}");
        write_file(dir, "ignored.txt", "not json at all");

        s = load(dirs, &warnings);
        assert_int_equal(preset_set_size(s), 1);
        assert_non_null(preset_set_find(s, "good"));
        assert_int_equal(preset_set_find(s, "good")->timeout_s, 5);
        assert_int_equal(preset_set_find(s, "good")->max_output_lines, 10);
        assert_int_equal(preset_set_find(s, "good")->order, -3);
        assert_true(preset_set_find(s, "good")->rescan);
        assert_int_equal(strv_length(warnings), ELEMENTSOF(invalid));

        for (size_t i = 0; i < ELEMENTSOF(invalid); i++) {
                _cleanup_free_ char *path = path_join(dir, invalid[i].file);
                _cleanup_free_ char *field = NULL;
                bool found = false;

                assert_non_null(path);
                assert_true(asprintf(&field, "field '%s'", invalid[i].field) > 0);
                for (char **w = warnings; w && *w; w++)
                        if (strneq(*w, path, strlen(path)) && (*w)[strlen(path)] == ':') {
                                if (!strstr(*w, field))
                                        print_error("%s: want %s, got %s\n", invalid[i].file, field, *w);
                                assert_non_null(strstr(*w, field));
                                found = true;
                        }
                if (!found)
                        print_error("no warning for %s\n", invalid[i].file);
                assert_true(found);
        }
}

static void test_missing_dir(void **state) {
        _cleanup_free_ char *missing = path_join(tmpdir, "does-not-exist");
        char *dirs[] = { missing, (char *) BUILTIN_DIR, NULL };
        _cleanup_strv_free_ char **warnings = NULL;
        _cleanup_preset_set_free_ PresetSet *s = load(dirs, &warnings);

        assert_int_equal(strv_length(warnings), 0);
        assert_int_equal(preset_set_size(s), ELEMENTSOF(builtins));

        {
                _cleanup_preset_set_free_ PresetSet *empty = NULL;

                assert_int_equal(preset_set_load(NULL, 0, &empty, NULL), 0);
                assert_int_equal(preset_set_size(empty), 0);
        }
}

static void test_override(void **state) {
        _cleanup_free_ char *user = mksubdir("user");
        char *dirs[] = { (char *) BUILTIN_DIR, user, NULL };
        _cleanup_strv_free_ char **warnings = NULL, **argv = NULL;
        _cleanup_preset_set_free_ PresetSet *s = NULL;
        const Preset *p;

        write_file(user, "mine.json",
                   "{\"key\": \"check\", \"label\": \"My check\", \"argv\": [\"{python}\", \"{manage}\", "
                   "\"check\", "
                   "\"--fail-level\", \"WARNING\"], \"order\": 1, \"timeout_s\": 120}");
        write_file(user, "extra.json",
                   "{\"key\": \"true\", \"label\": \"True\", \"argv\": [\"/bin/true\"], \"order\": 1}");

        s = load(dirs, &warnings);
        assert_int_equal(strv_length(warnings), 0);
        assert_int_equal(preset_set_size(s), ELEMENTSOF(builtins) + 1);
        p = preset_set_find(s, "check");
        assert_non_null(p);
        assert_string_equal(p->label, "My check");
        assert_int_equal(p->timeout_s, 120);
        assert_non_null(strstr(p->path, "/user/mine.json"));
        assert_null(p->docs_url);
        assert_false(p->rescan);
        assert_int_equal(preset_expand_argv(p, PY, MG, NULL, &argv, NULL), 0);
        assert_strv_equal(argv, (const char *const[]){ PY, MG, "check", "--fail-level", "WARNING", NULL });

        /* order 1 sorts first; equal order by key. */
        assert_string_equal(preset_set_nth(s, 0)->key, "check");
        assert_string_equal(preset_set_nth(s, 1)->key, "true");
}

/* ---- expansion ---- */

static void test_expand(void **state) {
        _cleanup_free_ char *dir = mksubdir("expand");
        char *dirs[] = { dir, NULL };
        _cleanup_strv_free_ char **warnings = NULL;
        _cleanup_preset_set_free_ PresetSet *s = NULL;
        const Preset *p;

        write_file(dir, "echo.json",
                   "{\"key\": \"echo\", \"label\": \"Echo\", \"argv\": [\"/bin/echo\", \"{text}\", \"--\", "
                   "\"{n}\"], \"params\": {\"text\": {\"regex\": \"[^\\n]*\"}, \"n\": {\"regex\": "
                   "\"[0-9]+\", \"default\": \"7\"}}}");
        s = load(dirs, &warnings);
        assert_int_equal(strv_length(warnings), 0);
        p = preset_set_find(s, "echo");
        assert_non_null(p);

        /* A shell-looking value is one argv element, verbatim; the default fills n. */
        {
                _cleanup_strv_free_ char **argv = NULL;
                json_t *params = json_pack("{s:s}", "text", "x; rm -rf ~");

                assert_int_equal(preset_expand_argv(p, PY, MG, params, &argv, NULL), 0);
                assert_strv_equal(argv,
                                  (const char *const[]){ "/bin/echo", "x; rm -rf ~", "--", "7", NULL });
                json_decref(params);
        }
        {
                _cleanup_strv_free_ char **argv = NULL;
                json_t *params = json_pack("{s:s, s:s}", "text", "$(id) `id` {n} a b", "n", "42");

                assert_int_equal(preset_expand_argv(p, PY, MG, params, &argv, NULL), 0);
                assert_strv_equal(
                        argv, (const char *const[]){ "/bin/echo", "$(id) `id` {n} a b", "--", "42", NULL });
                json_decref(params);
        }
        /* A value failing its regex is refused, naming param and value. */
        {
                _cleanup_strv_free_ char **argv = NULL;
                json_t *params = json_pack("{s:s, s:s}", "text", "hi", "n", "4 2");
                DjError err = DJ_ERROR_INIT;

                assert_int_equal(preset_expand_argv(p, PY, MG, params, &argv, &err), -EINVAL);
                assert_int_equal(err.kind, DJ_E_INVALID);
                assert_non_null(strstr(err.message, "'n'"));
                assert_non_null(strstr(err.message, "'4 2'"));
                assert_string_equal(err.value, "4 2");
                assert_null(argv);
                dj_error_done(&err);
                json_decref(params);
        }
        /* The regex is anchored: a matching prefix or suffix is not enough. */
        {
                _cleanup_strv_free_ char **argv = NULL;
                json_t *params = json_pack("{s:s, s:s}", "text", "hi", "n", "12x");
                DjError err = DJ_ERROR_INIT;

                assert_int_equal(preset_expand_argv(p, PY, MG, params, &argv, &err), -EINVAL);
                dj_error_done(&err);
                json_decref(params);
        }
        /* Newline fails [^\n]*. */
        {
                _cleanup_strv_free_ char **argv = NULL;
                json_t *params = json_pack("{s:s}", "text", "a\nb");
                DjError err = DJ_ERROR_INIT;

                assert_int_equal(preset_expand_argv(p, PY, MG, params, &argv, &err), -EINVAL);
                dj_error_done(&err);
                json_decref(params);
        }
        /* Undeclared param: an attempt to add arguments. */
        {
                _cleanup_strv_free_ char **argv = NULL;
                json_t *params = json_pack("{s:s, s:s}", "text", "hi", "extra", "--database=other");
                DjError err = DJ_ERROR_INIT;

                assert_int_equal(preset_expand_argv(p, PY, MG, params, &argv, &err), -EINVAL);
                assert_int_equal(err.kind, DJ_E_INVALID);
                assert_non_null(strstr(err.message, "'extra'"));
                assert_null(argv);
                dj_error_done(&err);
                json_decref(params);
        }
        /* Not a string; not an object; a required param missing. */
        {
                _cleanup_strv_free_ char **argv = NULL;
                json_t *params = json_pack("{s:i}", "text", 3);
                json_t *arr = json_array();
                DjError err = DJ_ERROR_INIT;

                assert_int_equal(preset_expand_argv(p, PY, MG, params, &argv, &err), -EINVAL);
                dj_error_done(&err);
                assert_int_equal(preset_expand_argv(p, PY, MG, arr, &argv, &err), -EINVAL);
                dj_error_done(&err);
                assert_int_equal(preset_expand_argv(p, PY, MG, NULL, &argv, &err), -EINVAL);
                assert_non_null(strstr(err.message, "'text'"));
                dj_error_done(&err);
                json_decref(params);
                json_decref(arr);
        }
}

static void test_to_json(void **state) {
        char *dirs[] = { (char *) BUILTIN_DIR, NULL };
        _cleanup_preset_set_free_ PresetSet *s = load(dirs, NULL);
        const Preset *p = preset_set_find(s, "sqlmigrate");
        json_t *j = preset_to_json(p), *app;

        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "key")), "sqlmigrate");
        assert_int_equal(json_array_size(json_object_get(j, "argv")), 5);
        app = json_object_get(json_object_get(j, "params"), "app");
        assert_string_equal(json_string_value(json_object_get(app, "regex")), "[A-Za-z_][A-Za-z0-9_]{0,99}");
        assert_true(json_is_null(json_object_get(app, "default")));
        assert_true(json_is_true(json_object_get(j, "read_only")));
        assert_true(json_is_false(json_object_get(j, "requires_confirmation")));
        assert_true(json_is_false(json_object_get(j, "rescan")));
        assert_true(json_is_false(json_object_get(j, "mask_secrets")));
        assert_int_equal(json_integer_value(json_object_get(j, "timeout_s")), 60);
        assert_int_equal(json_integer_value(json_object_get(j, "max_output_lines")), 100000);
        assert_int_equal(json_integer_value(json_object_get(j, "order")), p->order);
        assert_string_equal(json_string_value(json_object_get(j, "icon")), p->icon);
        assert_string_equal(json_string_value(json_object_get(j, "category")), "migrations");
        assert_non_null(json_string_value(json_object_get(j, "docs_url")));
        assert_non_null(json_string_value(json_object_get(j, "description")));
        assert_non_null(json_string_value(json_object_get(j, "label")));
        assert_non_null(strstr(json_string_value(json_object_get(j, "source")), "sqlmigrate.json"));
        json_decref(j);

        /* migrate: the one built-in that asks for a rescan, and says so. */
        j = preset_to_json(preset_set_find(s, "migrate"));
        assert_non_null(j);
        assert_true(json_is_true(json_object_get(j, "rescan")));
        assert_true(json_is_true(json_object_get(j, "requires_confirmation")));
        assert_true(json_is_false(json_object_get(j, "read_only")));
        json_decref(j);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_builtins),
                cmocka_unit_test(test_builtin_default_timeout),
                cmocka_unit_test(test_builtin_sqlmigrate_refusals),
                cmocka_unit_test_setup_teardown(test_invalid_files, setup, teardown),
                cmocka_unit_test_setup_teardown(test_missing_dir, setup, teardown),
                cmocka_unit_test_setup_teardown(test_override, setup, teardown),
                cmocka_unit_test_setup_teardown(test_expand, setup, teardown),
                cmocka_unit_test(test_to_json),
        };

        return cmocka_run_group_tests_name("preset", tests, NULL, NULL);
}
