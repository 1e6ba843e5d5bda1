/* SPDX-License-Identifier: MIT */
/* djdesk-export: the Data Lab's writer, run by djdeskd as the child of a run of kind "export" (and for
 * previews), so that rendering, fsync and rename never happen on the daemon's loop.
 *
 *   djdesk-export render --template FILE --root ROOT [--input FILE]  < INPUT
 *       renders the template for the input (what datalab_input_format() writes: one header line of JSON,
 *       {workspace {name, slug, path}, template, blocks}, then the data as the notebook embeds it) and
 *       writes ROOT/<slug>/<template>.ipynb atomically.
 *   djdesk-export preview --root ROOT --workspace SLUG NAME
 *       writes ROOT/SLUG/NAME.html, the HTML preview of ROOT/SLUG/NAME.ipynb.
 *
 * What it did goes to stdout (one line each), errors to stderr; exit status 0 on success, 1 on failure,
 * 2 on bad usage. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datalab.h"
#include "dj-util.h"
#include "preview.h"

static const char *arg_template = NULL;
static const char *arg_root = NULL;
static const char *arg_workspace = NULL;
static const char *arg_input = NULL;

/* The input document, read whole (--input FILE, else stdin: the daemon's memfd). */
static int read_input(char **ret, size_t *ret_len) {
        _cleanup_close_ int fd =
                arg_input ? open(arg_input, O_RDONLY | O_CLOEXEC) : fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, len = 0;
        struct stat st;

        if (fd < 0)
                return -errno;
        /* A file or a memfd says how large it is: one allocation (a pipe grows the buffer as it goes). */
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
                size = (size_t) st.st_size + 65536;
                buf = malloc(size + 1);
                if (!buf)
                        return -ENOMEM;
        }
        for (;;) {
                if (len + 65536 > size) {
                        size_t want = MAX(size * 2, (size_t) 1 << 20);
                        char *p = realloc(buf, want + 1);
                        if (!p)
                                return -ENOMEM;
                        buf = p;
                        size = want;
                }
                ssize_t n = read(fd, buf + len, size - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        if (!buf && !(buf = strdup("")))
                return -ENOMEM;
        buf[len] = 0;
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

/* One short-lived process building a few texts of megabytes (the data, the notebook): most of its time
 * would go to page faults. The heap is set up once, large (freed memory is kept for reuse, never given
 * back), and marked for transparent huge pages, so that touching it costs one fault per 2 MiB instead of
 * one per 4 KiB. Only what is touched becomes resident. */
static void heap_setup(void) {
        const uintptr_t huge = (uintptr_t) 2 << 20;

        (void) mallopt(M_MMAP_THRESHOLD, 256 << 20);
        (void) mallopt(M_TRIM_THRESHOLD, 512 << 20);
        (void) mallopt(M_TOP_PAD, 64 << 20);
        void *p = malloc(1); /* the heap now reaches M_TOP_PAD past it */
        if (!p)
                return;
        uintptr_t start = ((uintptr_t) p + huge - 1) & ~(huge - 1), end = (uintptr_t) sbrk(0) & ~(huge - 1);
        if (end > start)
                (void) madvise((void *) start, end - start, MADV_HUGEPAGE);
        free(p);
}

static int fail(const char *what, int r, const DjError *err) {
        fprintf(stderr, "djdesk-export: %s: %s\n", what,
                err && err->message ? err->message : strerror(r < 0 ? -r : EINVAL));
        return EXIT_FAILURE;
}

static int cmd_render(void) {
        _cleanup_(datalab_template_freep) DatalabTemplate *t = NULL;
        _cleanup_(dj_error_done) DjError err = DJ_ERROR_INIT;
        _cleanup_free_ char *text = NULL, *file = NULL, *dir_path = NULL;
        _cleanup_close_ int dirfd = -EBADF;
        char digest[DATALAB_SHA256_HEX], sha[DATALAB_SHA256_HEX];
        bool unchanged;
        size_t len;
        int r;

        r = datalab_template_load(arg_template, &t, &err);
        if (r < 0)
                return fail("template", r, &err);

        _cleanup_free_ char *raw = NULL;
        _cleanup_(datalab_input_done) DatalabInput input = {};
        size_t raw_len = 0;
        r = read_input(&raw, &raw_len);
        if (r < 0)
                return fail("input", r, NULL);
        r = datalab_input_parse(raw, raw_len, &input, &err);
        if (r < 0)
                return fail("input", r, &err);
        r = datalab_render(t, &input, &text, &len, digest, &err);
        if (r < 0)
                return fail("render", r, &err);
        const char *slug = input.slug;
        raw = mfree(raw);
        input.data = NULL;

        dirfd = datalab_open_dir(arg_root, slug, true, &err);
        if (dirfd < 0)
                return fail("directory", dirfd, &err);
        if (asprintf(&file, "%s.ipynb", t->slug) < 0 || !(dir_path = path_join(arg_root, slug)))
                return fail("render", -ENOMEM, NULL);

        printf("Rendered '%s' for %s: %zu cells, input sha256 %s\n", t->title, slug,
               json_array_size(t->cells), digest);
        r = datalab_write_file(dirfd, file, text, len, &unchanged, &err);
        if (r < 0)
                return fail(file, r, &err);
        datalab_sha256_hex(text, len, sha);
        printf("%s %s/%s (%zu bytes, sha256 %s)\n", unchanged ? "Unchanged" : "Wrote", dir_path, file, len,
               sha);
        return EXIT_SUCCESS;
}

static int cmd_preview(const char *name) {
        _cleanup_(dj_error_done) DjError err = DJ_ERROR_INIT;
        _cleanup_free_ char *nb_file = NULL, *html_file = NULL, *text = NULL, *html = NULL, *dir_path = NULL;
        _cleanup_close_ int dirfd = -EBADF;
        size_t len, html_len;
        int r;

        if (!datalab_name_valid(name)) {
                fprintf(stderr, "djdesk-export: '%s' is not a valid notebook name\n", name);
                return EXIT_FAILURE;
        }
        dirfd = datalab_open_dir(arg_root, arg_workspace, false, &err);
        if (dirfd < 0)
                return fail("directory", dirfd, &err);
        if (asprintf(&nb_file, "%s.ipynb", name) < 0 || asprintf(&html_file, "%s.html", name) < 0 ||
            !(dir_path = path_join(arg_root, arg_workspace)))
                return fail("preview", -ENOMEM, NULL);

        r = datalab_read_file(dirfd, nb_file, DATALAB_NOTEBOOK_MAX, &text, &len);
        if (r < 0) {
                fprintf(stderr, "djdesk-export: %s/%s: %s\n", dir_path, nb_file,
                        r == -EFBIG ? "larger than 64 MiB" : strerror(-r));
                return EXIT_FAILURE;
        }
        json_error_t jerr;
        _cleanup_(json_decrefp) json_t *nb = json_loadb(text, len, 0, &jerr);
        if (!nb) {
                fprintf(stderr, "djdesk-export: %s: line %d: %s\n", nb_file, jerr.line, jerr.text);
                return EXIT_FAILURE;
        }
        json_t *meta = json_object_get(json_object_get(nb, "metadata"), "djdesk");
        const char *title = json_string_value(json_object_get(meta, "title")) ?: name;
        r = preview_render(nb, title, &html, &html_len, &err);
        if (r < 0)
                return fail(nb_file, r, &err);
        r = datalab_write_file(dirfd, html_file, html, html_len, NULL, &err);
        if (r < 0)
                return fail(html_file, r, &err);
        printf("%s/%s\n", dir_path, html_file);
        return EXIT_SUCCESS;
}

static void help(FILE *f) {
        fprintf(f, "Usage: djdesk-export render --template FILE --root ROOT [--input INPUT] [< INPUT]\n"
                   "       djdesk-export preview --root ROOT --workspace SLUG NAME\n"
                   "The Data Lab writer run by djdeskd (see djdesk-rpc(7), export.create and "
                   "export.preview). INPUT is what the daemon gives it: a header line of JSON, then\n"
                   "the data as the notebook embeds it.\n");
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "template", required_argument, NULL, 't' },
                { "root", required_argument, NULL, 'r' },
                { "workspace", required_argument, NULL, 'w' },
                { "input", required_argument, NULL, 'i' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int c;

        heap_setup();

        while ((c = getopt_long(argc, argv, "t:r:w:i:h", options, NULL)) >= 0)
                switch (c) {
                case 't':
                        arg_template = optarg;
                        break;
                case 'r':
                        arg_root = optarg;
                        break;
                case 'w':
                        arg_workspace = optarg;
                        break;
                case 'i':
                        arg_input = optarg;
                        break;
                case 'h':
                        help(stdout);
                        return EXIT_SUCCESS;
                default:
                        help(stderr);
                        return 2;
                }

        const char *verb = optind < argc ? argv[optind] : NULL;
        if (streq_ptr(verb, "render") && arg_template && arg_root && optind + 1 == argc)
                return cmd_render();
        if (streq_ptr(verb, "preview") && arg_root && arg_workspace && optind + 2 == argc)
                return cmd_preview(argv[optind + 1]);
        help(stderr);
        return 2;
}
