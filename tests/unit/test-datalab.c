/* SPDX-License-Identifier: MIT */
/* datalab.c: names, templates (the shipped ones and refused ones), rendering, safe writing. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "datalab.h"
#include "dj-util.h"
#include "strv.h"
#include "test-tmpdir.h"

/* A private directory for one test, removed with everything in it. */
static char *tmpdir_new(void) {
        char *dir = malloc(64);

        assert_non_null(dir);
        test_mkdtemp(dir, 64, "datalab");
        return dir;
}

static void tmpdir_removep(char **dir) {
        if (!*dir)
                return;
        test_rm_rf(*dir);
        free(*dir);
}

static void test_names(void **state) {
        static const char *const good[] = { "schema-audit", "a", "A1", "mine_2", "v1.2", "x-y.z" };
        static const char *const bad[] = { "",     ".",   "..",  "../x", "a/b",  ".hidden", "-x",
                                           "a..b", "a b", "a\n", "é",    "/etc", "x\\y" };
        char longest[DATALAB_NAME_MAX + 2];

        for (size_t i = 0; i < ELEMENTSOF(good); i++)
                assert_true(datalab_name_valid(good[i]));
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_false(datalab_name_valid(bad[i]));
        assert_false(datalab_name_valid(NULL));
        memset(longest, 'a', sizeof longest - 1);
        longest[DATALAB_NAME_MAX] = 0;
        assert_true(datalab_name_valid(longest));
        longest[DATALAB_NAME_MAX] = 'a';
        longest[DATALAB_NAME_MAX + 1] = 0;
        assert_false(datalab_name_valid(longest));
}

static void test_sha256(void **state) {
        char hex[DATALAB_SHA256_HEX];

        datalab_sha256_hex("", 0, hex);
        assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        datalab_sha256_hex("abc", 3, hex);
        assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* Every shipped template loads, and they are the four the docs promise. */
static void test_shipped_templates(void **state) {
        char *dirs[] = { (char *) DJ_SOURCE_ROOT "/data/datalab", NULL };
        _cleanup_(datalab_templates_freep) DatalabTemplates *set = NULL;
        _cleanup_strv_free_ char **warnings = NULL;
        static const char *const slugs[] = { "log-study", "migration-review", "schema-audit",
                                             "task-history" };

        assert_int_equal(datalab_templates_load(dirs, &set, &warnings), 0);
        assert_null(warnings);
        assert_int_equal(set->n, ELEMENTSOF(slugs));
        for (size_t i = 0; i < set->n; i++) {
                assert_string_equal(set->items[i]->slug, slugs[i]);
                assert_non_null(datalab_templates_find(set, slugs[i]));
        }
        assert_true(datalab_templates_find(set, "schema-audit")->blocks & DATALAB_BLOCK_SCHEMA);
        assert_true(datalab_templates_find(set, "task-history")->blocks & DATALAB_BLOCK_RUNS);
        assert_null(datalab_templates_find(set, "nope"));
}

static void write_text(const char *dir, const char *name, const char *text) {
        _cleanup_free_ char *path = path_join(dir, name);
        FILE *f = fopen(path, "we");

        assert_non_null(f);
        fputs(text, f);
        assert_int_equal(fclose(f), 0);
}

static int load_text(const char *dir, const char *name, const char *text, DatalabTemplate **ret,
                     DjError *err) {
        _cleanup_free_ char *path = path_join(dir, name);

        write_text(dir, name, text);
        return datalab_template_load(path, ret, err);
}

static void test_refused_templates(void **state) {
        static const struct {
                const char *file, *text, *why;
        } cases[] = {
                { "a.json", "{", "" },
                { "a.json", "[]", "not a JSON object" },
                { "a.json", "{\"slug\":\"a\",\"title\":\"A\"}", "required" },
                { "a.json", "{\"slug\":\"b\",\"title\":\"A\",\"description\":\"d\",\"cells\":[]}",
                  "slug 'b'" },
                { "a.json", "{\"slug\":\"a\",\"title\":\"A\",\"description\":\"d\",\"cells\":[]}",
                  "non-empty" },
                { "a.json",
                  "{\"slug\":\"a\",\"title\":\"A\",\"description\":\"d\",\"data\":[\"secrets\"],"
                  "\"cells\":[{\"cell_type\":\"code\",\"source\":\"x\"}]}",
                  "unknown data block" },
                { "a.json",
                  "{\"slug\":\"a\",\"title\":\"A\",\"description\":\"d\",\"cells\":[{\"cell_type\":\"raw\","
                  "\"source\":\"x\"}]}",
                  "markdown or code" },
                { "a.json",
                  "{\"slug\":\"a\",\"title\":\"A\",\"description\":\"d\",\"cells\":[{\"cell_type\":\"code\","
                  "\"source\":\"print('{{name}}')\"}]}",
                  "{{name}} not allowed in a code cell" },
                { "a.json",
                  "{\"slug\":\"a\",\"title\":\"A\",\"description\":\"d\",\"cells\":[{\"cell_type\":"
                  "\"markdown\","
                  "\"source\":\"{{data}}\"}]}",
                  "{{data}} not allowed in a Markdown cell" },
                { "a.json",
                  "{\"slug\":\"a\",\"title\":\"A\",\"description\":\"d\",\"cells\":[{\"cell_type\":"
                  "\"markdown\","
                  "\"source\":[\"{{na\", 3]}]}",
                  "source must be" },
                { "a.json",
                  "{\"slug\":\"a\",\"title\":\"A\",\"description\":\"d\",\"cells\":[{\"cell_type\":"
                  "\"markdown\","
                  "\"source\":\"{{name\"}]}",
                  "without '}}'" },
        };
        _cleanup_(tmpdir_removep) char *dir = tmpdir_new();

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                DatalabTemplate *t = NULL;
                DjError err = DJ_ERROR_INIT;

                assert_int_equal(load_text(dir, cases[i].file, cases[i].text, &t, &err), -EINVAL);
                assert_null(t);
                assert_non_null(err.message);
                if (!strstr(err.message, cases[i].why))
                        fail_msg("case %zu: '%s' does not say '%s'", i, err.message, cases[i].why);
                dj_error_done(&err);
        }
}

/* What the daemon and the writer do: format the document, parse it back, render. */
static int render_doc(const DatalabTemplate *t, json_t *doc, char **ret, size_t *ret_len,
                      char digest[static DATALAB_SHA256_HEX], DjError *err) {
        _cleanup_free_ char *buf = NULL;
        _cleanup_(datalab_input_done) DatalabInput in = {};
        size_t len;
        int r;

        assert_int_equal(datalab_input_format(doc, &buf, &len), 0);
        assert_int_equal(strlen(buf), len);
        r = datalab_input_parse(buf, len, &in, err);
        if (r < 0)
                return r;
        return datalab_render(t, &in, ret, ret_len, digest, err);
}

static void test_input_refused(void **state) {
        static const char *const bad[] = {
                "",
                "{\"workspace\":{}}\n{}",
                "{\"workspace\":{\"name\":\"n\",\"slug\":\"s\",\"path\":\"/p\"}}",
                "{\"workspace\":{\"name\":\"n\",\"slug\":\"s\",\"path\":\"/p\"}}\n{\"a\": \"it's\"}",
                "{\"workspace\":{\"name\":\"n\",\"slug\":\"s\",\"path\":\"/p\"}}\n{\"a\": \"\xe2\x80\xa8\"}",
                "{\"workspace\":{\"name\":\"n\",\"slug\":\"s\",\"path\":\"/p\"}}\n{\"a\": \"\xc3\"}",
                "{\"workspace\":{\"name\":\"n\",\"slug\":\"s\",\"path\":\"/p\"}}\n{\"a\": \"x\r\"}",
                "{\"workspace\":{\"name\":\"n\",\"slug\":\"s\",\"path\":\"/p\"}}\n{\"a\": \"x\x1d\"}",
                "{\"workspace\":{\"name\":\"n\",\"slug\":\"s\",\"path\":\"/p\"}}\n{\"a\": \"\xc2\x85\"}",
                "{\"workspace\":{\"name\":\"n\",\"slug\":\"s\",\"path\":\"/p\"}}\n{\"a\": \"\xe2\x80\xa9\"}",
                "{\"workspace\":{\"name\":\"n\",\"slug\":\"s\",\"path\":\"/p\"}}\n{\"a\": \"\xed\xa0\x80\"}",
                "{\"workspace\":{\"name\":\"n\",\"slug\":\"s\",\"path\":\"/p\"}}\n[1]",
                "[]\n{}",
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                DatalabInput in = {};
                DjError err = DJ_ERROR_INIT;

                if (datalab_input_parse(bad[i], strlen(bad[i]), &in, &err) != -EINVAL)
                        fail_msg("case %zu accepted", i);
                assert_non_null(err.message);
                assert_null(in.name);
                dj_error_done(&err);
        }
}

#define TEMPLATE_TEXT                                                                             \
        "{\"slug\":\"t\",\"title\":\"T <i>\",\"description\":\"d\",\"tags\":[\"x\"],\"data\":[]," \
        "\"cells\":[{\"cell_type\":\"markdown\",\"source\":[\"# {{name}}\\n\",\"at {{path}}\"]}," \
        "{\"cell_type\":\"code\",\"source\":\"import json\\nDATA = json.loads(r'''{{data}}''')\\n\"}]}"

static void test_render(void **state) {
        _cleanup_(tmpdir_removep) char *dir = tmpdir_new();
        _cleanup_(datalab_template_freep) DatalabTemplate *t = NULL;
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;
        char da[DATALAB_SHA256_HEX], db[DATALAB_SHA256_HEX], dc[DATALAB_SHA256_HEX];
        size_t la, lb, lc;
        DjError err = DJ_ERROR_INIT;
        json_t *in;

        assert_int_equal(load_text(dir, "t.json", TEMPLATE_TEXT, &t, &err), 0);
        in = json_pack("{s:s,s:{s:s,s:s,s:s},s:[s,f]}", "template", "t", "workspace", "name",
                       "A *b* <script>\nc", "slug", "a", "path", "/p", "extra", "it's \xe2\x80\xa8 x", 0.1);
        assert_non_null(in);
        assert_int_equal(render_doc(t, in, &a, &la, da, &err), 0);
        assert_int_equal(render_doc(t, in, &b, &lb, db, &err), 0);
        assert_int_equal(la, lb);
        assert_memory_equal(a, b, la); /* the same input: the same bytes */
        assert_string_equal(da, db);
        assert_int_equal(a[la - 1], '\n');

        /* The name is Markdown text (escaped, on one line); the data has no ' and no U+2028 of its own. */
        assert_non_null(strstr(a, "\"# A \\\\*b\\\\* \\\\<script\\\\> c\\n\""));
        assert_non_null(strstr(a, "\\\\u0027"));
        assert_non_null(strstr(a, "\\\\u2028"));
        assert_null(strstr(a, "it's"));
        assert_non_null(strstr(a, "0.1"));
        assert_non_null(strstr(a, "\"nbformat_minor\": 5"));
        assert_non_null(strstr(a, "\"data_sha256\": \""));
        assert_non_null(strstr(a, da));

        /* Another input: another digest, the same cell ids. */
        json_object_set_new(in, "extra", json_integer(1));
        assert_int_equal(render_doc(t, in, &c, &lc, dc, &err), 0);
        assert_string_not_equal(da, dc);
        json_t *na = json_loads(a, 0, NULL), *nc = json_loads(c, 0, NULL);
        assert_non_null(na);
        assert_non_null(nc);
        for (size_t i = 0; i < 2; i++) {
                const char *ia = json_string_value(
                        json_object_get(json_array_get(json_object_get(na, "cells"), i), "id"));
                const char *ic = json_string_value(
                        json_object_get(json_array_get(json_object_get(nc, "cells"), i), "id"));
                assert_non_null(ia);
                assert_string_equal(ia, ic);
                assert_int_equal(strlen(ia), 16);
        }
        json_decref(na);
        json_decref(nc);

        /* A template that needs a block the input lacks. */
        t->blocks |= DATALAB_BLOCK_SCHEMA;
        free(c);
        c = NULL;
        assert_int_equal(render_doc(t, in, &c, &lc, dc, &err), -EINVAL);
        assert_non_null(strstr(err.message, "\"schema\""));
        dj_error_done(&err);
        json_decref(in);
}

/* A writer killed while it writes leaves the previous file, and nothing else: SIGXFSZ (its default action
 * ends the process) stops the child in the middle of its write, deterministically. */
static void test_write_killed(void **state) {
        _cleanup_(tmpdir_removep) char *root = tmpdir_new();
        _cleanup_free_ char *sub = path_join(root, "dl"), *ws = NULL, *text = NULL;
        _cleanup_close_ int fd = -EBADF;
        DjError err = DJ_ERROR_INIT;
        const size_t big = 4u << 20;
        int status;
        size_t len;
        pid_t pid;

        fd = datalab_open_dir(sub, "ws", true, &err);
        assert_true(fd >= 0);
        assert_int_equal(datalab_write_file(fd, "a.ipynb", "old\n", 4, NULL, &err), 0);

        _cleanup_free_ char *data = calloc(1, big);
        assert_non_null(data);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                struct rlimit fsize = { 1u << 20, 1u << 20 }, core = { 0, 0 };
                (void) setrlimit(RLIMIT_CORE, &core);
                (void) setrlimit(RLIMIT_FSIZE, &fsize);
                (void) datalab_write_file(fd, "a.ipynb", data, big, NULL, NULL);
                _exit(0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGXFSZ);

        assert_int_equal(datalab_read_file(fd, "a.ipynb", 100, &text, &len), 0);
        assert_string_equal(text, "old\n");
        ws = path_join(sub, "ws");
        _cleanup_(closedirp) DIR *d = opendir(ws);
        assert_non_null(d);
        for (struct dirent *de; (de = readdir(d));)
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                        assert_string_equal(de->d_name, "a.ipynb");
}

static void test_write_file(void **state) {
        _cleanup_(tmpdir_removep) char *root = tmpdir_new();
        _cleanup_free_ char *sub = path_join(root, "dl"), *text = NULL, *other = NULL;
        _cleanup_close_ int fd = -EBADF;
        DjError err = DJ_ERROR_INIT;
        struct stat st1, st2;
        bool unchanged;
        size_t len;

        fd = datalab_open_dir(sub, "ws", true, &err);
        assert_true(fd >= 0);
        assert_int_equal(fstatat(fd, "", &st1, AT_EMPTY_PATH), 0);
        assert_int_equal(st1.st_mode & 07777, 0700);

        assert_int_equal(datalab_write_file(fd, "a.ipynb", "one\n", 4, &unchanged, &err), 0);
        assert_false(unchanged);
        assert_int_equal(fstatat(fd, "a.ipynb", &st1, 0), 0);
        assert_int_equal(datalab_write_file(fd, "a.ipynb", "one\n", 4, &unchanged, &err), 0);
        assert_true(unchanged);
        assert_int_equal(fstatat(fd, "a.ipynb", &st2, 0), 0);
        assert_int_equal(st1.st_ino, st2.st_ino); /* not rewritten */
        assert_int_equal(datalab_write_file(fd, "a.ipynb", "two!\n", 5, &unchanged, &err), 0);
        assert_false(unchanged);
        assert_int_equal(datalab_read_file(fd, "a.ipynb", 100, &text, &len), 0);
        assert_string_equal(text, "two!\n");
        assert_int_equal(datalab_read_file(fd, "a.ipynb", 3, &other, &len), -EFBIG);

        /* A symlink where the file goes is refused, and left alone. */
        _cleanup_free_ char *ws = path_join(sub, "ws"), *link = path_join(ws, "b.ipynb");
        assert_int_equal(symlink("/etc/hostname", link), 0);
        assert_int_equal(datalab_write_file(fd, "b.ipynb", "x", 1, NULL, &err), -EACCES);
        assert_non_null(strstr(err.message, "symbolic link"));
        dj_error_done(&err);
        assert_int_equal(lstat(link, &st1), 0);
        assert_true(S_ISLNK(st1.st_mode));

        /* Only the final files are there: no temporary left. */
        _cleanup_(closedirp) DIR *d = opendir(ws);
        struct dirent *de;
        size_t n = 0;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.' || (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")))
                        n++;
        assert_int_equal(n, 2);

        /* A symlinked workspace directory is refused, with or without create. */
        _cleanup_free_ char *evil = path_join(sub, "evil");
        assert_int_equal(symlink(root, evil), 0);
        assert_int_equal(datalab_open_dir(sub, "evil", true, &err), -EACCES);
        assert_non_null(strstr(err.message, "symbolic link"));
        dj_error_done(&err);
        assert_int_equal(datalab_open_dir(sub, "evil", false, &err), -EACCES);
        dj_error_done(&err);
        assert_int_equal(datalab_open_dir(sub, "../x", true, &err), -EACCES);
        dj_error_done(&err);
        assert_int_equal(datalab_open_dir(sub, "absent", false, NULL), -ENOENT);
}

static void test_notebook_info(void **state) {
        _cleanup_(tmpdir_removep) char *root = tmpdir_new();
        _cleanup_close_ int fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        const char *ours = "{\"cells\":[],\"metadata\":{\"djdesk\":{\"template\":\"t\",\"title\":\"T\","
                           "\"description\":\"D\"}},\"nbformat\":4,\"nbformat_minor\":5}";
        const char *theirs =
                "{\"cells\":[{\"cell_type\":\"code\",\"source\":\"# no\"},{\"cell_type\":\"markdown\","
                "\"source\":[\"#hashtag\\n\",\"####### seven\\n\",\"text\\n\",\"## My  study\\r\\n\"]}],"
                "\"metadata\":{},\"nbformat\":4}";
        char hex[DATALAB_SHA256_HEX];
        json_t *info;

        write_text(root, "ours.ipynb", ours);
        write_text(root, "theirs.ipynb", theirs);
        write_text(root, "junk.ipynb", "{\"nbformat\": 3}");

        info = datalab_notebook_info(fd, root, "ours.ipynb");
        assert_string_equal(json_string_value(json_object_get(info, "slug")), "ours");
        assert_string_equal(json_string_value(json_object_get(info, "title")), "T");
        assert_string_equal(json_string_value(json_object_get(info, "description")), "D");
        assert_string_equal(json_string_value(json_object_get(info, "template")), "t");
        assert_int_equal(json_integer_value(json_object_get(info, "size")), strlen(ours));
        datalab_sha256_hex(ours, strlen(ours), hex);
        assert_string_equal(json_string_value(json_object_get(info, "sha256")), hex);
        assert_null(json_object_get(info, "error"));
        json_decref(info);

        info = datalab_notebook_info(fd, root, "theirs.ipynb");
        assert_string_equal(json_string_value(json_object_get(info, "title")), "My  study");
        assert_true(json_is_null(json_object_get(info, "template")));
        json_decref(info);

        info = datalab_notebook_info(fd, root, "junk.ipynb");
        assert_string_equal(json_string_value(json_object_get(info, "title")), "junk");
        assert_non_null(json_object_get(info, "error"));
        json_decref(info);

        assert_null(datalab_notebook_info(fd, root, "absent.ipynb"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_sha256),
                cmocka_unit_test(test_shipped_templates),
                cmocka_unit_test(test_refused_templates),
                cmocka_unit_test(test_render),
                cmocka_unit_test(test_input_refused),
                cmocka_unit_test(test_write_file),
                cmocka_unit_test(test_write_killed),
                cmocka_unit_test(test_notebook_info),
        };
        return cmocka_run_group_tests_name("datalab", tests, NULL, NULL);
}
