/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "dj-macro.h"
#include "dj-util.h"
#include "strv.h"
#include "workspace.h"

static void test_slugify(void **state) {
        static const struct {
                const char *name, *slug;
        } cases[] = {
                { "atlas", "atlas" },
                { "Atlas Telemetry Studio", "atlas-telemetry-studio" },
                { "  --My__Project!!  ", "my-project" },
                { "Café Économie", "cafe-economie" },
                { "Straße", "strasse" },
                { "Æsir Øresund", "aesir-oresund" },
                { "Łódź", "lodz" },
                { "Þórður Ðóttir", "thordur-dottir" },
                { "naïve façade", "naive-facade" },
                { "Œuvre œil", "oeuvre-oeil" },
                { "Ĳssel ĳs", "ijssel-ijs" },
                { "ŞĞİ", "sgi" },
                { "2 × 3 ÷ 4", "2-3-4" },
                { "🚀 rocket 🚀", "rocket" },
                { "日本語", "workspace" },
                { "", "workspace" },
                { "---", "workspace" },
                { "a\xff"
                  "b",
                  "a-b" },               /* invalid UTF-8 is a separator */
                { "\xc3", "workspace" }, /* truncated sequence */
                { "\xc0\xaf"
                  "x",
                  "x" }, /* overlong */
                { "UPPER lower 123", "upper-lower-123" },
                { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" },
                { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbbb",
                  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" },
                { "ßßßßßßßßßßßßßßßßßßßßßßßßßßßßß", "ssssssssssssssssssssssssssssssssssssssssssssssss" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *s = workspace_slugify(cases[i].name);

                assert_non_null(s);
                if (!streq(s, cases[i].slug))
                        fail_msg("slugify('%s') = '%s', expected '%s'", cases[i].name, s, cases[i].slug);
                assert_true(strlen(s) <= 48);
        }
}

static bool taken_in_list(const char *slug, void *userdata) {
        return strv_contains(userdata, slug);
}

static void test_slug_unique(void **state) {
        static const struct {
                const char *base;
                const char *taken[6];
                const char *slug;
        } cases[] = {
                { "atlas", { NULL }, "atlas" },
                { "atlas", { "atlas", NULL }, "atlas-2" },
                { "atlas", { "atlas", "atlas-2", NULL }, "atlas-3" },
                { "atlas", { "atlas", "atlas-3", NULL }, "atlas-2" },
                { "x", { "x", "x-2", "x-3", "x-4", NULL }, "x-5" },
                { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                  { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NULL },
                  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-2" },
                { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-bb",
                  { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-bb", NULL },
                  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-2" }, /* no trailing dash before the suffix */
                { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-b",
                  { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-b", NULL },
                  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-2" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *s =
                        workspace_slug_unique(cases[i].base, taken_in_list, (void *) cases[i].taken);

                assert_non_null(s);
                if (!streq(s, cases[i].slug))
                        fail_msg("case %zu: '%s', expected '%s'", i, s, cases[i].slug);
                assert_true(strlen(s) <= 48);
        }
}

static void test_protected(void **state) {
        static const struct {
                const char *path, *home, *runtime;
                int r;
                const char *needle; /* in the message */
        } cases[] = {
                { "/", "/home/u", "/run/user/1000", -EACCES, "root directory" },
                { "/home/u", "/home/u", "/run/user/1000", -EACCES, "home directory" },
                { "/home/u/p/atlas", "/home/u", "/run/user/1000", 0, NULL },
                { "/home/u/.sshkeys", "/home/u", "/run/user/1000", 0, NULL },
                { "/home/u/.ssh", "/home/u", "/run/user/1000", -EACCES, ".ssh" },
                { "/home/u/.ssh/x", "/home/u", "/run/user/1000", -EACCES, ".ssh" },
                { "/home/u/.gnupg/private", "/home/u", "/run/user/1000", -EACCES, ".gnupg" },
                { "/etc", "/home/u", "/run/user/1000", -EACCES, "/etc" },
                { "/etc/django", "/home/u", "/run/user/1000", -EACCES, "/etc" },
                { "/etcetera/p", "/home/u", "/run/user/1000", 0, NULL },
                { "/usr/lib/x", "/home/u", "/run/user/1000", -EACCES, "/usr" },
                { "/usrlocal", "/home/u", "/run/user/1000", 0, NULL },
                { "/boot/efi", "/home/u", "/run/user/1000", -EACCES, "/boot" },
                { "/dev/shm/p", "/home/u", "/run/user/1000", -EACCES, "/dev" },
                { "/proc", "/home/u", "/run/user/1000", -EACCES, "/proc" },
                { "/proc/1/cwd", "/home/u", "/run/user/1000", -EACCES, "/proc" },
                { "/sys/kernel", "/home/u", "/run/user/1000", -EACCES, "/sys" },
                { "/root", "/home/u", "/run/user/1000", -EACCES, "/root" },
                { "/root/p", "/home/u", "/run/user/1000", -EACCES, "/root" },
                { "/root/p", "/root", "/run/user/0", 0, NULL },
                { "/root", "/root", "/run/user/0", -EACCES, "home directory" },
                { "/root/.ssh/p", "/root", "/run/user/0", -EACCES, ".ssh" },
                { "/run/user/1000", "/home/u", "/run/user/1000", -EACCES, "runtime directory" },
                { "/run/user/1000/djdesk", "/home/u", "/run/user/1000", -EACCES, "runtime directory" },
                { "/run/user/10000", "/home/u", "/run/user/1000", 0, NULL },
                { "/srv/www/p", "/home/u", "/run/user/1000", 0, NULL },
                { "/tmp/p", NULL, NULL, 0, NULL },
                { "/home/u", NULL, NULL, 0, NULL },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                DjError err = DJ_ERROR_INIT;
                int r = workspace_path_check_protected(cases[i].path, cases[i].home, cases[i].runtime, &err);

                if (r != cases[i].r)
                        fail_msg("case %zu '%s': %d, expected %d (%s)", i, cases[i].path, r, cases[i].r,
                                 err.message ?: "");
                if (r < 0) {
                        assert_int_equal(err.kind, DJ_E_NOT_ALLOWED);
                        assert_non_null(err.message);
                        assert_non_null(strstr(err.message, cases[i].path));
                        if (!strstr(err.message, cases[i].needle))
                                fail_msg("case %zu: '%s' lacks '%s'", i, err.message, cases[i].needle);
                        assert_string_equal(err.value, cases[i].path);
                }
                dj_error_done(&err);
        }
}

static void test_manage_py(void **state) {
        static const struct {
                const char *text, *module;
        } cases[] = {
                { "    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n",
                  "mysite.settings" },
                { "os.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", \"atlas.settings\")",
                  "atlas.settings" },
                { "os.environ.setdefault( 'DJANGO_SETTINGS_MODULE' ,\t'a.b.c' )", "a.b.c" },
                { "os.environ.setdefault(\n    'DJANGO_SETTINGS_MODULE',\n    'proj.settings.local',\n)\n",
                  "proj.settings.local" },
                { "os.environ.setdefault('DJANGO_SETTINGS_MODULE', \"mixed.settings\")", "mixed.settings" },
                { "# os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'old.settings')\n"
                  "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'new.settings')\n",
                  "new.settings" },
                { "# os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'old.settings')\n", NULL },
                { "os.environ.setdefault('OTHER', 'x.y')\n", NULL },
                { "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'bad module')", NULL },
                { "os.environ.setdefault('DJANGO_SETTINGS_MODULE', '')", NULL },
                { "os.environ.setdefault('DJANGO_SETTINGS_MODULE', get())", NULL },
                { "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'x.settings'", NULL },
                { "os.environ['DJANGO_SETTINGS_MODULE'] = 'x.settings'", NULL },
                { "os.environ.setdefault('DJANGO_SETTINGS_MODULE\", 'x.settings')", NULL },
                { "", NULL },
                { "import os\n", NULL },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *m = workspace_settings_from_manage_py(cases[i].text);

                if (!cases[i].module ? m != NULL : !m || !streq(m, cases[i].module))
                        fail_msg("case %zu: '%s', expected '%s'", i, m ?: "(null)",
                                 cases[i].module ?: "(null)");
        }
        assert_null(workspace_settings_from_manage_py(NULL));
}

static void test_settings_module_valid(void **state) {
        static const struct {
                const char *m;
                bool ok;
        } cases[] = {
                { "mysite.settings", true },
                { "settings", true },
                { "_a.b_2.c", true },
                { "a..b", false },
                { ".a", false },
                { "a.", false },
                { "1a.b", false },
                { "a.2b", false },
                { "a-b.c", false },
                { "", false },
                { "a b", false },
                { "a/b", false },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                if (workspace_settings_module_valid(cases[i].m) != cases[i].ok)
                        fail_msg("'%s'", cases[i].m);
}

static void test_object_path(void **state) {
        static const char *const slugs[] = {
                "atlas", "atlas-2", "my-project", "2fa", "a", "x_y", "", "a9-"
        };

        for (size_t i = 0; i < ELEMENTSOF(slugs); i++) {
                _cleanup_free_ char *ours = workspace_object_path(slugs[i]);
                _cleanup_free_ char *theirs = NULL;

                assert_int_equal(sd_bus_path_encode("/io/djdesk/Desk1/workspace", slugs[i], &theirs), 0);
                assert_non_null(ours);
                if (!streq(ours, theirs))
                        fail_msg("'%s': '%s', sd-bus says '%s'", slugs[i], ours, theirs);
        }
        {
                _cleanup_free_ char *p = workspace_object_path("atlas-2");
                assert_string_equal(p, "/io/djdesk/Desk1/workspace/atlas_2d2");
        }
}

static void test_env_filter(void **state) {
        char *const env[] = {
                "HOME=/home/u",
                "PATH=/usr/bin:/bin",
                "DJANGO_SETTINGS_MODULE=daemon.settings",
                "PYTHONPATH=/evil",
                "PYTHONHOME=/evil",
                "PYTHONSTARTUP=/evil.py",
                "VIRTUAL_ENV=/venv",
                "VIRTUAL_ENV_PROMPT=(venv)",
                "CONDA_PREFIX=/conda",
                "CONDA_DEFAULT_ENV=base",
                "__PYVENV_LAUNCHER__=/x",
                "LISTEN_FDS=1",
                "LISTEN_PID=1",
                "LISTEN_FDNAMES=x",
                "NOTIFY_SOCKET=/run/notify",
                "WATCHDOG_USEC=100",
                "WATCHDOG_PID=1",
                "JOURNAL_STREAM=8:9",
                "INVOCATION_ID=abc",
                "LANG=C.UTF-8",
                "PYTHONUNBUFFERED=0",
                "CONDAX=kept",
                "DJANGO_DEBUG=1",
                NULL,
        };
        static const char *const kept[] = { "HOME=/home/u", "PATH=/usr/bin:/bin", "LANG=C.UTF-8",
                                            "CONDAX=kept",  "DJANGO_DEBUG=1",     "PYTHONUNBUFFERED=0" };
        static const char *const gone[] = { "DJANGO_SETTINGS_MODULE",
                                            "PYTHONPATH",
                                            "PYTHONHOME",
                                            "PYTHONSTARTUP",
                                            "VIRTUAL_ENV",
                                            "VIRTUAL_ENV_PROMPT",
                                            "CONDA_PREFIX",
                                            "CONDA_DEFAULT_ENV",
                                            "__PYVENV_LAUNCHER__",
                                            "LISTEN_FDS",
                                            "LISTEN_PID",
                                            "LISTEN_FDNAMES",
                                            "NOTIFY_SOCKET",
                                            "WATCHDOG_USEC",
                                            "WATCHDOG_PID",
                                            "JOURNAL_STREAM",
                                            "INVOCATION_ID" };
        _cleanup_strv_free_ char **l = workspace_env_filter(env);

        assert_non_null(l);
        for (size_t i = 0; i < ELEMENTSOF(kept); i++)
                if (!strv_contains(l, kept[i]))
                        fail_msg("'%s' was dropped", kept[i]);
        for (size_t i = 0; i < ELEMENTSOF(gone); i++)
                if (strv_env_get(l, gone[i]))
                        fail_msg("'%s' was kept", gone[i]);
        assert_int_equal(strv_length(l), ELEMENTSOF(kept));

        /* No PATH at all: children still get a sane one. */
        {
                char *const bare[] = { "HOME=/h", NULL };
                _cleanup_strv_free_ char **b = workspace_env_filter(bare);

                assert_non_null(b);
                assert_non_null(strv_env_get(b, "PATH"));
                assert_string_equal(strv_env_get(b, "HOME"), "/h");
        }
}

static void test_param_checks(void **state) {
        static const struct {
                int which; /* 0 name, 1 settings, 2 python, 3 port */
                const char *s;
                uint64_t port;
                bool ok;
        } cases[] = {
                { 0, "Atlas", 0, true },
                { 0, "Café ☕", 0, true },
                { 0, "", 0, false },
                { 0, "tab\there", 0, false },
                { 0, "bell\x07", 0, false },
                { 0, "c1 \xc2\x85", 0, false },
                { 0, "bad \xff utf8", 0, false },
                { 0,
                  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                  "xx"
                  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                  0, false },
                { 1, "mysite.settings", 0, true },
                { 1, "my site", 0, false },
                { 2, "/usr/bin/python3", 0, true },
                { 2, "python3", 0, true },
                { 2, "bin/python3", 0, false },
                { 2, "./python3", 0, false },
                { 2, "", 0, false },
                { 3, NULL, 0, true },
                { 3, NULL, 8000, true },
                { 3, NULL, 65535, true },
                { 3, NULL, 65536, false },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                DjError err = DJ_ERROR_INIT;
                int r;

                switch (cases[i].which) {
                case 0:
                        r = workspace_check_name(cases[i].s, &err);
                        break;
                case 1:
                        r = workspace_check_settings_module(cases[i].s, &err);
                        break;
                case 2:
                        r = workspace_check_python(cases[i].s, &err);
                        break;
                default:
                        r = workspace_check_port(cases[i].port, &err);
                        break;
                }
                if ((r == 0) != cases[i].ok)
                        fail_msg("case %zu: %d (%s)", i, r, err.message ?: "");
                if (r < 0) {
                        assert_int_equal(r, -EINVAL);
                        assert_int_equal(err.kind, DJ_E_INVALID);
                        assert_non_null(err.value);
                }
                dj_error_done(&err);
        }
}

static void test_enums(void **state) {
        assert_string_equal(server_mode_to_string(SERVER_MODE_SERVE), "serve");
        assert_string_equal(server_mode_to_string(SERVER_MODE_RUNSERVER), "runserver");
        assert_int_equal(server_mode_from_string("runserver"), SERVER_MODE_RUNSERVER);
        assert_int_equal(server_mode_from_string("Serve"), _SERVER_MODE_INVALID);
        assert_int_equal(server_mode_from_string(NULL), _SERVER_MODE_INVALID);
        assert_string_equal(settings_source_to_string(SETTINGS_SOURCE_MANAGE_PY), "manage.py");
        assert_int_equal(settings_source_from_string("environment"), SETTINGS_SOURCE_ENVIRONMENT);
        assert_int_equal(settings_source_from_string("x"), _SETTINGS_SOURCE_INVALID);
        assert_null(settings_source_to_string(_SETTINGS_SOURCE_MAX));
}

static void touch(const char *dir, const char *name) {
        _cleanup_free_ char *p = path_join(dir, name);
        FILE *f = fopen(p, "w");

        assert_non_null(f);
        fputs("import os\n", f);
        fclose(f);
}

/* workspace_verify walks the path with openat(): a symbolic link anywhere, a missing manage.py or a
 * protected location is refused, even when the path was fine at registration. */
static void test_verify(void **state) {
        char tmpl[] = "/tmp/test-workspace-XXXXXX";
        char *root = mkdtemp(tmpl);
        _cleanup_free_ char *proj = NULL, *link = NULL, *nomanage = NULL, *home = NULL;
        Workspace w = { .slug = (char *) "t" };
        DjError err = DJ_ERROR_INIT;
        int fd;

        assert_non_null(root);
        proj = path_join(root, "proj");
        link = path_join(root, "link");
        nomanage = path_join(root, "nomanage");
        home = path_join(root, "home");
        assert_int_equal(mkdir(proj, 0755), 0);
        assert_int_equal(mkdir(nomanage, 0755), 0);
        assert_int_equal(mkdir(home, 0755), 0);
        touch(proj, "manage.py");
        assert_int_equal(symlink(proj, link), 0);
        assert_int_equal(setenv("HOME", home, 1), 0);
        assert_int_equal(unsetenv("XDG_RUNTIME_DIR"), 0);

        w.path = proj;
        fd = workspace_verify(&w, &err);
        if (fd < 0)
                fail_msg("%s", err.message ?: "");
        close(fd);

        w.path = link;
        assert_int_equal(workspace_verify(&w, &err), -EACCES);
        assert_non_null(strstr(err.message, "symbolic link"));
        assert_string_equal(err.value, link);

        w.path = nomanage;
        assert_int_equal(workspace_verify(&w, &err), -EACCES);
        assert_non_null(strstr(err.message, "manage.py"));

        w.path = (char *) "/tmp/test-workspace-does-not-exist/x";
        assert_int_equal(workspace_verify(&w, &err), -EACCES);
        assert_non_null(strstr(err.message, "does not exist"));

        /* registered fine, then the user's HOME moved onto it */
        assert_int_equal(setenv("HOME", proj, 1), 0);
        w.path = proj;
        assert_int_equal(workspace_verify(&w, &err), -EACCES);
        assert_non_null(strstr(err.message, "home directory"));

        /* manage.py replaced by a symbolic link */
        {
                _cleanup_free_ char *m = path_join(proj, "manage.py");
                assert_int_equal(setenv("HOME", home, 1), 0);
                assert_int_equal(unlink(m), 0);
                assert_int_equal(symlink("/etc/hostname", m), 0);
                assert_int_equal(workspace_verify(&w, &err), -EACCES);
                assert_non_null(strstr(err.message, "manage.py"));
                assert_int_equal(unlink(m), 0);
        }
        dj_error_done(&err);
        assert_int_equal(unlink(link), 0);
        assert_int_equal(rmdir(proj), 0);
        assert_int_equal(rmdir(nomanage), 0);
        assert_int_equal(rmdir(home), 0);
        assert_int_equal(rmdir(root), 0);
}

static void test_child_env(void **state) {
        Workspace w = { .slug = (char *) "t", .settings_module = (char *) "ws.settings" };
        char *const extra[] = { "DJDESK_X=1", "PYTHONUNBUFFERED=2", "bogus", NULL };
        _cleanup_strv_free_ char **l = NULL;

        assert_int_equal(setenv("DJANGO_SETTINGS_MODULE", "daemon.settings", 1), 0);
        assert_int_equal(setenv("PYTHONPATH", "/evil", 1), 0);
        assert_int_equal(setenv("VIRTUAL_ENV", "/venv", 1), 0);
        assert_int_equal(setenv("CONDA_PREFIX", "/conda", 1), 0);
        assert_int_equal(setenv("NOTIFY_SOCKET", "/run/x", 1), 0);
        assert_int_equal(setenv("TEST_WORKSPACE_KEPT", "yes", 1), 0);

        l = workspace_child_env(&w, NULL);
        assert_non_null(l);
        assert_string_equal(strv_env_get(l, "DJANGO_SETTINGS_MODULE"), "ws.settings");
        assert_string_equal(strv_env_get(l, "PYTHONUNBUFFERED"), "1");
        assert_string_equal(strv_env_get(l, "TEST_WORKSPACE_KEPT"), "yes");
        assert_null(strv_env_get(l, "PYTHONPATH"));
        assert_null(strv_env_get(l, "VIRTUAL_ENV"));
        assert_null(strv_env_get(l, "CONDA_PREFIX"));
        assert_null(strv_env_get(l, "NOTIFY_SOCKET"));
        l = strv_free(l);

        l = workspace_child_env(&w, extra);
        assert_non_null(l);
        assert_string_equal(strv_env_get(l, "DJDESK_X"), "1");
        assert_string_equal(strv_env_get(l, "PYTHONUNBUFFERED"), "2");
        assert_false(strv_contains(l, "bogus"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_slugify),
                cmocka_unit_test(test_slug_unique),
                cmocka_unit_test(test_protected),
                cmocka_unit_test(test_manage_py),
                cmocka_unit_test(test_settings_module_valid),
                cmocka_unit_test(test_object_path),
                cmocka_unit_test(test_env_filter),
                cmocka_unit_test(test_param_checks),
                cmocka_unit_test(test_enums),
                cmocka_unit_test(test_verify),
                cmocka_unit_test(test_child_env),
        };

        return cmocka_run_group_tests_name("workspace", tests, NULL, NULL);
}
