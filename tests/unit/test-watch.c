/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "dj-util.h"
#include "loop.h"
#include "watch.h"
#include "test-tmpdir.h"

#define DEBOUNCE (50 * USEC_PER_MSEC)

static Daemon daemon_stub;
static Loop *loop;
static char tmpdir[64];

typedef struct Fired {
        unsigned n;
        char *paths[8];
} Fired;

static void fired_done(Fired *f) {
        for (unsigned i = 0; i < f->n && i < ELEMENTSOF(f->paths); i++)
                free(f->paths[i]);
        *f = (Fired){};
}

static void fired_cb(Watch *w, const char *path, void *userdata) {
        Fired *f = userdata;

        if (f->n < ELEMENTSOF(f->paths))
                f->paths[f->n] = strdup(path);
        f->n++;
}

static void timeout_cb(LoopSource *s, void *userdata) {
        *(bool *) userdata = true;
}

/* Runs the loop for usec. */
static void run_for(uint64_t usec) {
        _cleanup_(loop_source_freep) LoopSource *t = NULL;
        bool done = false;

        assert_int_equal(loop_add_timer(loop, timeout_cb, &done, &t), 0);
        assert_int_equal(loop_timer_arm(t, usec), 0);
        while (!done)
                assert_int_equal(loop_run_once(loop), 0);
}

/* Runs the loop until the watch fired n times (5 s at most), then a few debounce periods more to catch a
 * firing too many. */
static void run_until_fired(Fired *f, unsigned n) {
        _cleanup_(loop_source_freep) LoopSource *t = NULL;
        bool timed_out = false;

        assert_int_equal(loop_add_timer(loop, timeout_cb, &timed_out, &t), 0);
        assert_int_equal(loop_timer_arm(t, 5 * USEC_PER_SEC), 0);
        while (f->n < n && !timed_out)
                assert_int_equal(loop_run_once(loop), 0);
        assert_false(timed_out);
        run_for(4 * DEBOUNCE);
        assert_int_equal(f->n, n);
}

static void run_until_dirs(Watch *w, unsigned n) {
        _cleanup_(loop_source_freep) LoopSource *t = NULL;
        bool timed_out = false;

        assert_int_equal(loop_add_timer(loop, timeout_cb, &timed_out, &t), 0);
        assert_int_equal(loop_timer_arm(t, 5 * USEC_PER_SEC), 0);
        while (watch_n_dirs(w) != n && !timed_out)
                assert_int_equal(loop_run_once(loop), 0);
        assert_false(timed_out);
}

static void put(const char *rel, const char *content) {
        _cleanup_free_ char *p = path_join(tmpdir, rel);
        int fd;

        fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, content, strlen(content)), (ssize_t) strlen(content));
        assert_int_equal(close(fd), 0);
}

static void mkd(const char *rel) {
        _cleanup_free_ char *p = path_join(tmpdir, rel);

        assert_int_equal(mkdir(p, 0755), 0);
}

static int setup(void **state) {
        static const char *const dirs[] = {
                "app",       "app/__pycache__", ".git",           "node_modules", "node_modules/pkg",
                "venv",      "venv/lib",        "media",          "staticfiles",  "static_root",
                "templates", "app/.hidden",     "app/migrations",
        };

        test_mkdtemp(tmpdir, sizeof(tmpdir), "watch");
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++)
                mkd(dirs[i]);
        put("manage.py", "");
        put("app/views.py", "");
        put("venv/pyvenv.cfg", "home = /usr/bin\n");
        assert_int_equal(loop_new(&daemon_stub, &loop), 0);
        return 0;
}

static int teardown(void **state) {
        loop = loop_free(loop);
        test_rm_rf(tmpdir);
        return 0;
}

static void test_watch(void **state) {
        /* Changes that never count: caches, VCS, dependencies, uploads, databases, editor files, prose. */
        static const char *const ignored[] = {
                "app/__pycache__/views.cpython-311.pyc",
                "app/__pycache__/x.py",
                ".git/hook.py",
                "node_modules/pkg/index.json",
                "venv/lib/site.py",
                "media/upload.txt",
                "staticfiles/admin.json",
                "static_root/x.html",
                "app/.hidden/x.py",
                "app/views.pyc",
                "db.sqlite3",
                "app/.views.py.swp",
                "app/views.py~",
                "app/#views.py#",
                "app/.#views.py",
                "notes.md",
        };
        _cleanup_(watch_freep) Watch *w = NULL;
        Fired f = {};

        assert_int_equal(watch_new(loop, tmpdir, DEBOUNCE, fired_cb, &f, &w), 0);
        /* root, app, templates, app/migrations */
        assert_int_equal(watch_n_dirs(w), 4);

        /* One write: one firing, after the debounce. */
        put("app/views.py", "x = 1\n");
        run_until_fired(&f, 1);
        assert_string_equal(f.paths[0], "app/views.py");
        fired_done(&f);

        /* A burst: one firing, with the first path. */
        put("app/models.py", "");
        put("templates/base.html", "");
        put("app/migrations/0001_initial.py", "");
        put("locale.mo", "");
        put(".env", "DEBUG=1\n");
        run_until_fired(&f, 1);
        assert_string_equal(f.paths[0], "app/models.py");
        fired_done(&f);

        /* The settings' .env counts, though hidden. */
        put(".env", "DEBUG=0\n");
        run_until_fired(&f, 1);
        assert_string_equal(f.paths[0], ".env");
        fired_done(&f);

        /* What does not count, followed by what does: only the latter fires. */
        for (size_t i = 0; i < ELEMENTSOF(ignored); i++)
                put(ignored[i], "");
        put("app/urls.py", "");
        run_until_fired(&f, 1);
        assert_string_equal(f.paths[0], "app/urls.py");
        fired_done(&f);

        /* Nothing at all: nothing fires. */
        put("db.sqlite3", "more");
        run_for(4 * DEBOUNCE);
        assert_int_equal(f.n, 0);

        /* A new directory is watched as it appears; its files count. */
        mkd("app/sub");
        run_until_dirs(w, 5);
        put("app/sub/new.py", "");
        run_until_fired(&f, 1);
        assert_string_equal(f.paths[0], "app/sub/new.py");
        fired_done(&f);

        /* Even when the file is there before the watch is. */
        mkd("pkg");
        mkd("pkg/inner");
        put("pkg/inner/mod.py", "");
        run_until_fired(&f, 1);
        assert_string_equal(f.paths[0], "pkg/inner/mod.py");
        fired_done(&f);
        assert_int_equal(watch_n_dirs(w), 7);

        /* New directories that never hold code are not watched. */
        mkd("app/__pycache__/deeper");
        mkd("node_modules/other");
        mkd(".venv");
        mkd("app/sub/__pycache__");
        put("app/sub/__pycache__/x.py", "");
        put("app/sub/ok.py", "");
        run_until_fired(&f, 1);
        assert_string_equal(f.paths[0], "app/sub/ok.py");
        fired_done(&f);
        assert_int_equal(watch_n_dirs(w), 7);

        /* A virtualenv made after the start is dropped once its pyvenv.cfg appears. */
        mkd("env");
        run_until_dirs(w, 8);
        mkd("env/lib");
        run_until_dirs(w, 9);
        put("env/pyvenv.cfg", "");
        run_until_dirs(w, 7);
        put("env/lib/site.py", "");
        put("app/admin.py", "");
        run_until_fired(&f, 1);
        assert_string_equal(f.paths[0], "app/admin.py");
        fired_done(&f);

        /* Deleting a watched directory forgets it; deleting code counts. */
        {
                _cleanup_free_ char *pkg = path_join(tmpdir, "pkg");

                assert_non_null(pkg);
                test_rm_rf(pkg);
        }
        run_until_fired(&f, 1);
        assert_string_equal(f.paths[0], "pkg/inner/mod.py");
        fired_done(&f);
        assert_int_equal(watch_n_dirs(w), 5);
}

/* A fresh project of its own under the test directory: "<tmpdir>/<name>" with manage.py and app/views.py. */
static char *fresh_root(const char *name) {
        char *root = path_join(tmpdir, name);
        _cleanup_free_ char *app = NULL;

        assert_non_null(root);
        assert_int_equal(mkdir(root, 0755), 0);
        app = path_join(root, "app");
        assert_non_null(app);
        assert_int_equal(mkdir(app, 0755), 0);
        return root;
}

static void put_in(const char *root, const char *rel, const char *content) {
        _cleanup_free_ char *p = path_join(root, rel);
        int fd;

        assert_non_null(p);
        fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, content, strlen(content)), (ssize_t) strlen(content));
        assert_int_equal(close(fd), 0);
}

/* Events that change no file do not fire: the watch compares with what it saw. */
static void test_events_without_a_change(void **state) {
        _cleanup_free_ char *root = fresh_root("quiet"), *views = NULL, *tmp = NULL, *made = NULL,
                            *made_py = NULL;
        _cleanup_(watch_freep) Watch *w = NULL;
        Fired f = {};
        int fd;

        put_in(root, "manage.py", "import os\n");
        put_in(root, "app/views.py", "x = 1\n");
        put_in(root, "app/notes.md", "not code\n");
        assert_int_equal(watch_new(loop, root, DEBOUNCE, fired_cb, &f, &w), 0);
        assert_int_equal(watch_n_files(w), 2);

        /* Opened for writing, closed untouched (IN_CLOSE_WRITE, same file). */
        views = path_join(root, "app/views.py");
        fd = open(views, O_WRONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(close(fd), 0);
        /* A file that counts, created and removed within the burst. */
        tmp = path_join(root, "app/tmp_x.py");
        put_in(root, "app/tmp_x.py", "y = 2\n");
        assert_int_equal(unlink(tmp), 0);
        /* A directory with code in it, made and removed again. */
        made = path_join(root, "app/made");
        made_py = path_join(root, "app/made/m.py");
        assert_int_equal(mkdir(made, 0755), 0);
        put_in(root, "app/made/m.py", "");
        run_for(DEBOUNCE / 5); /* let the watch see the directory and its file */
        assert_int_equal(unlink(made_py), 0);
        assert_int_equal(rmdir(made), 0);
        run_for(4 * DEBOUNCE);
        assert_int_equal(f.n, 0);

        /* Then a real change among the same kind of events: it fires, with that path. */
        fd = open(views, O_WRONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(close(fd), 0);
        put_in(root, "app/views.py", "x = 2\n");
        run_until_fired(&f, 1);
        assert_string_equal(f.paths[0], "app/views.py");
        fired_done(&f);
        /* What it saw follows the change: the same event again is no change. */
        fd = open(views, O_WRONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(close(fd), 0);
        run_for(4 * DEBOUNCE);
        assert_int_equal(f.n, 0);
        assert_int_equal(watch_n_files(w), 2);
        test_rm_rf(root);
}

static bool in_migrations(const char *path) {
        return strstr(path, "migrations/") != NULL;
}

/* With a match function, only matching changes count: the first matching path of a burst is given, even
 * when other files changed before it, and a burst of other changes does not fire. */
static void test_match(void **state) {
        _cleanup_free_ char *root = fresh_root("match"), *migrations = NULL;
        _cleanup_(watch_freep) Watch *w = NULL;
        Fired f = {};

        migrations = path_join(root, "app/migrations");
        assert_non_null(migrations);
        assert_int_equal(mkdir(migrations, 0755), 0);
        put_in(root, "app/models.py", "x = 1\n");
        put_in(root, "app/migrations/0001_initial.py", "m = 1\n");
        assert_int_equal(watch_new(loop, root, DEBOUNCE, fired_cb, &f, &w), 0);
        watch_set_match(w, in_migrations);

        put_in(root, "app/models.py", "x = 2\n");
        run_for(4 * DEBOUNCE);
        assert_int_equal(f.n, 0);

        put_in(root, "app/models.py", "x = 3\n");
        put_in(root, "app/migrations/0002_more.py", "m = 2\n");
        run_until_fired(&f, 1);
        assert_string_equal(f.paths[0], "app/migrations/0002_more.py");
        fired_done(&f);
        test_rm_rf(root);
}

static bool is_notebook(const char *name) {
        return name[0] != '.' && endswith(name, ".ipynb");
}

/* Other files than code: the files that count are the ones the caller names, in every directory that is
 * not skipped (including ones made after the watch started) down to max_depth; code does not count then. */
static void test_files(void **state) {
        _cleanup_free_ char *root = fresh_root("lab"), *ws = NULL, *tmp = NULL, *nb = NULL, *deep = NULL;
        _cleanup_(watch_freep) Watch *w = NULL;
        Fired f = {};

        put_in(root, "app/old.ipynb", "{}");
        put_in(root, "app/views.py", "x = 1\n");
        assert_int_equal(watch_new_files(loop, root, is_notebook, 1, DEBOUNCE, fired_cb, &f, &w), 0);
        assert_int_equal(watch_n_files(w), 1);
        assert_int_equal(watch_n_dirs(w), 2); /* the root and app/ */

        put_in(root, "app/views.py", "x = 2\n"); /* code: not counted here */
        put_in(root, "app/.~hidden.ipynb", "{}");
        put_in(root, "app/page.html", "<p>");
        run_for(4 * DEBOUNCE);
        assert_int_equal(f.n, 0);

        /* A new directory, and a notebook saved into it the way Jupyter saves: a temporary, renamed. */
        ws = path_join(root, "ws");
        assert_non_null(ws);
        assert_int_equal(mkdir(ws, 0700), 0);
        run_until_dirs(w, 3);
        put_in(root, "ws/.~new.ipynb", "{\"cells\": []}");
        tmp = path_join(root, "ws/.~new.ipynb");
        nb = path_join(root, "ws/new.ipynb");
        assert_int_equal(rename(tmp, nb), 0);
        run_until_fired(&f, 1);
        assert_string_equal(f.paths[0], "ws/new.ipynb");
        fired_done(&f);

        assert_int_equal(unlink(nb), 0);
        run_until_fired(&f, 1);
        assert_string_equal(f.paths[0], "ws/new.ipynb");
        fired_done(&f);

        /* Deeper than max_depth: not watched, so not counted. */
        deep = path_join(root, "ws/deep");
        assert_non_null(deep);
        assert_int_equal(mkdir(deep, 0700), 0);
        run_for(4 * DEBOUNCE);
        assert_int_equal(watch_n_dirs(w), 3);
        put_in(root, "ws/deep/x.ipynb", "{}");
        run_for(4 * DEBOUNCE);
        assert_int_equal(f.n, 0);
        test_rm_rf(root);
}

/* Puts n events in the inotify queue of a watch of root, on files that hold no code: writes to two files in
 * turn (the kernel merges an event only with an identical one right before it). */
static void flood(const char *root, unsigned n) {
        _cleanup_free_ char *a = path_join(root, "app/a.log"), *b = path_join(root, "app/b.log");
        int fa, fb;

        assert_non_null(a);
        assert_non_null(b);
        fa = open(a, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        fb = open(b, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        assert_true(fa >= 0 && fb >= 0);
        for (unsigned i = 0; i < n; i += 2) {
                assert_int_equal(pwrite(fa, "x", 1, 0), 1);
                assert_int_equal(pwrite(fb, "x", 1, 0), 1);
        }
        assert_int_equal(close(fa), 0);
        assert_int_equal(close(fb), 0);
}

static void test_queue_overflow(void **state) {
        _cleanup_free_ char *root = fresh_root("overflow"), *gone = NULL;
        _cleanup_(watch_freep) Watch *w = NULL;
        unsigned long max = 0;
        Fired f = {};
        FILE *p;

        p = fopen("/proc/sys/fs/inotify/max_queued_events", "re");
        if (p) {
                if (fscanf(p, "%lu", &max) != 1)
                        max = 0;
                fclose(p);
        }
        if (max == 0 || max > 1000000) {
                test_rm_rf(root);
                skip();
        }

        put_in(root, "manage.py", "import os\n");
        put_in(root, "app/views.py", "x = 1\n");
        put_in(root, "app/gone.py", "z = 3\n");
        assert_int_equal(watch_new(loop, root, DEBOUNCE, fired_cb, &f, &w), 0);

        /* Events lost, nothing changed: nothing fires. */
        flood(root, (unsigned) max + 100);
        run_for(4 * DEBOUNCE);
        assert_int_equal(f.n, 0);

        /* Events lost, and among them changes: found by looking at every file. */
        flood(root, (unsigned) max / 2);
        put_in(root, "app/views.py", "x = 22\n");
        flood(root, (unsigned) max / 2 + 100);
        run_until_fired(&f, 1);
        assert_string_equal(f.paths[0], "app/views.py");
        fired_done(&f);

        gone = path_join(root, "app/gone.py");
        flood(root, (unsigned) max + 100);
        assert_int_equal(unlink(gone), 0);
        run_until_fired(&f, 1);
        assert_string_equal(f.paths[0], "app/gone.py");
        fired_done(&f);

        flood(root, (unsigned) max + 100);
        put_in(root, "app/new.py", "");
        run_until_fired(&f, 1);
        assert_string_equal(f.paths[0], "app/new.py");
        fired_done(&f);
        assert_int_equal(watch_n_files(w), 3);
        test_rm_rf(root);
}

static void free_cb(Watch *w, const char *path, void *userdata) {
        Watch **self = userdata;

        *self = watch_free(w);
}

static void test_free_from_callback(void **state) {
        Watch *w = NULL;

        assert_int_equal(watch_new(loop, tmpdir, DEBOUNCE, free_cb, &w, &w), 0);
        put("manage.py", "# changed\n");
        while (w)
                assert_int_equal(loop_run_once(loop), 0);
}

static void test_missing_root(void **state) {
        Watch *w = NULL;

        assert_int_equal(watch_new(loop, "/nonexistent/djdesk", DEBOUNCE, fired_cb, NULL, &w), -ENOENT);
        assert_null(w);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_watch),          cmocka_unit_test(test_free_from_callback),
                cmocka_unit_test(test_missing_root),   cmocka_unit_test(test_events_without_a_change),
                cmocka_unit_test(test_queue_overflow), cmocka_unit_test(test_match),
                cmocka_unit_test(test_files),
        };

        return cmocka_run_group_tests_name("watch", tests, setup, teardown);
}
