/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datalab.h"
#include "dj-log.h"
#include "dj-util.h"
#include "nbjson.h"
#include "strv.h"

static const char *const block_names[] = { "schema", "migrations", "logs", "runs" };

unsigned datalab_block_from_string(const char *s) {
        for (size_t i = 0; i < ELEMENTSOF(block_names); i++)
                if (streq(s, block_names[i]))
                        return 1u << i;
        return 0;
}

bool datalab_name_valid(const char *name) {
        size_t n = name ? strlen(name) : 0;

        if (n == 0 || n > DATALAB_NAME_MAX)
                return false;
        if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') ||
              (name[0] >= '0' && name[0] <= '9')))
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = name[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_' || c == '.'))
                        return false;
        }
        return !strstr(name, "..");
}

void datalab_sha256_hex(const void *data, size_t len, char ret[static DATALAB_SHA256_HEX]) {
        static const char hex[] = "0123456789abcdef";
        struct sha256_ctx ctx;
        uint8_t digest[SHA256_DIGEST_SIZE];

        sha256_init(&ctx);
        sha256_update(&ctx, len, data);
        sha256_digest(&ctx, sizeof digest, digest);
        for (size_t i = 0; i < sizeof digest; i++) {
                ret[2 * i] = hex[digest[i] >> 4];
                ret[2 * i + 1] = hex[digest[i] & 15];
        }
        ret[2 * SHA256_DIGEST_SIZE] = 0;
}

/* ---- templates ---------------------------------------------------------------------------------------- */

DatalabTemplate *datalab_template_free(DatalabTemplate *t) {
        if (!t)
                return NULL;
        free(t->slug);
        free(t->title);
        free(t->description);
        strv_free(t->tags);
        json_decref(t->cells);
        free(t->path);
        free(t);
        return NULL;
}

/* A source as one string (see nbjson_join_lines()); NULL when it is neither a string nor lines. */
static char *source_join(json_t *source) {
        char *s = NULL;

        return nbjson_join_lines(source, &s, NULL) < 0 ? NULL : s;
}

static const char *const markdown_placeholders[] = { "name", "slug", "path", "title" };

/* Checks every {{...}} of a cell's source: the Markdown ones in Markdown cells, {{data}} in code cells. */
static int check_placeholders(const char *src, bool code, size_t cell, DjError *reterr) {
        for (const char *p = strstr(src, "{{"); p; p = strstr(p, "{{")) {
                const char *end = strstr(p + 2, "}}");
                if (!end)
                        return dj_error_set(reterr, DJ_E_INVALID, "cell %zu: '{{' without '}}'", cell);
                size_t n = (size_t) (end - p - 2);
                bool ok = false;
                if (code)
                        ok = n == 4 && strneq(p + 2, "data", 4);
                else
                        for (size_t i = 0; i < ELEMENTSOF(markdown_placeholders); i++)
                                if (strlen(markdown_placeholders[i]) == n &&
                                    strneq(p + 2, markdown_placeholders[i], n))
                                        ok = true;
                if (!ok)
                        return dj_error_set(reterr, DJ_E_INVALID,
                                            "cell %zu: placeholder {{%.*s}} not allowed in a %s cell", cell,
                                            (int) MIN(n, (size_t) 40), p + 2, code ? "code" : "Markdown");
                p = end + 2;
        }
        return 0;
}

static char *get_string(json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);
        return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

int datalab_template_load(const char *path, DatalabTemplate **ret, DjError *reterr) {
        _cleanup_(datalab_template_freep) DatalabTemplate *t = NULL;
        json_error_t jerr;
        json_t *v;
        size_t i;

        _cleanup_(json_decrefp) json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
        if (!doc)
                return dj_error_set(reterr, DJ_E_INVALID, "%s:%d: %s", path, jerr.line, jerr.text);
        if (!json_is_object(doc))
                return dj_error_set(reterr, DJ_E_INVALID, "%s: not a JSON object", path);

        t = calloc(1, sizeof *t);
        if (!t || !(t->path = strdup(path)))
                return -ENOMEM;
        t->slug = get_string(doc, "slug");
        t->title = get_string(doc, "title");
        t->description = get_string(doc, "description");
        if (!t->slug || !t->title || !t->description)
                return dj_error_set(reterr, DJ_E_INVALID,
                                    "%s: \"slug\", \"title\" and \"description\" are required strings",
                                    path);

        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        size_t n = strlen(t->slug);
        if (!datalab_name_valid(t->slug) || !strneq(base, t->slug, n) || !streq(base + n, ".json"))
                return dj_error_set(reterr, DJ_E_INVALID,
                                    "%s: slug '%s' is not a valid name matching the file's", path, t->slug);

        if (!(t->tags = calloc(1, sizeof(char *))))
                return -ENOMEM;
        json_array_foreach (json_object_get(doc, "tags"), i, v) {
                if (!json_is_string(v))
                        return dj_error_set(reterr, DJ_E_INVALID, "%s: tags must be strings", path);
                if (strv_extend(&t->tags, json_string_value(v)) < 0)
                        return -ENOMEM;
        }
        json_array_foreach (json_object_get(doc, "data"), i, v) {
                unsigned b = json_is_string(v) ? datalab_block_from_string(json_string_value(v)) : 0;
                if (!b)
                        return dj_error_set(reterr, DJ_E_INVALID,
                                            "%s: unknown data block (known: schema, migrations, logs, runs)",
                                            path);
                t->blocks |= b;
        }

        json_t *cells = json_object_get(doc, "cells");
        if (!json_is_array(cells) || json_array_size(cells) == 0)
                return dj_error_set(reterr, DJ_E_INVALID, "%s: \"cells\" must be a non-empty array", path);
        if (!(t->cells = json_array()))
                return -ENOMEM;
        json_array_foreach (cells, i, v) {
                const char *type = json_string_value(json_object_get(v, "cell_type"));
                if (!type || !(streq(type, "markdown") || streq(type, "code")))
                        return dj_error_set(reterr, DJ_E_INVALID,
                                            "%s: cell %zu: cell_type must be markdown or code", path, i);
                _cleanup_free_ char *src = source_join(json_object_get(v, "source"));
                if (!src)
                        return dj_error_set(reterr, DJ_E_INVALID,
                                            "%s: cell %zu: source must be a string or lines", path, i);
                int r = check_placeholders(src, streq(type, "code"), i, reterr);
                if (r < 0) {
                        if (reterr) {
                                char *m = NULL;
                                if (asprintf(&m, "%s: %s", path, reterr->message) >= 0) {
                                        free(reterr->message);
                                        reterr->message = m;
                                }
                        }
                        return r;
                }
                if (json_array_append_new(t->cells,
                                          json_pack("{s:s,s:s}", "cell_type", type, "source", src)) < 0)
                        return -ENOMEM;
        }

        *ret = TAKE_PTR(t);
        return 0;
}

json_t *datalab_template_to_json(const DatalabTemplate *t) {
        json_t *tags = json_array(), *data = json_array();

        for (char **s = t->tags; s && *s; s++)
                json_array_append_new(tags, json_string(*s));
        for (size_t i = 0; i < ELEMENTSOF(block_names); i++)
                if (t->blocks & (1u << i))
                        json_array_append_new(data, json_string(block_names[i]));
        return json_pack("{s:s,s:s,s:s,s:o,s:o}", "slug", t->slug, "title", t->title, "description",
                         t->description, "tags", tags, "data", data);
}

DatalabTemplates *datalab_templates_free(DatalabTemplates *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n; i++)
                datalab_template_free(s->items[i]);
        free(s->items);
        free(s);
        return NULL;
}

static int template_cmp(const void *a, const void *b) {
        return strcmp((*(DatalabTemplate *const *) a)->slug, (*(DatalabTemplate *const *) b)->slug);
}

const DatalabTemplate *datalab_templates_find(const DatalabTemplates *s, const char *slug) {
        for (size_t i = 0; s && slug && i < s->n; i++)
                if (streq(s->items[i]->slug, slug))
                        return s->items[i];
        return NULL;
}

int datalab_templates_load(char *const *dirs, DatalabTemplates **ret, char ***ret_warnings) {
        _cleanup_(datalab_templates_freep) DatalabTemplates *s = calloc(1, sizeof *s);
        size_t alloc = 0;

        if (!s)
                return -ENOMEM;
        for (char *const *d = dirs; d && *d; d++) {
                _cleanup_(closedirp) DIR *dir = opendir(*d);
                struct dirent *de;

                if (!dir) {
                        if (errno != ENOENT && ret_warnings)
                                (void) strv_extendf(ret_warnings, "%s: %s", *d, strerror(errno));
                        continue;
                }
                while ((de = readdir(dir))) {
                        if (de->d_name[0] == '.' || !endswith(de->d_name, ".json"))
                                continue;
                        _cleanup_free_ char *path = path_join(*d, de->d_name);
                        _cleanup_(datalab_template_freep) DatalabTemplate *t = NULL;
                        _cleanup_(dj_error_done) DjError err = DJ_ERROR_INIT;
                        if (!path)
                                return -ENOMEM;
                        int r = datalab_template_load(path, &t, &err);
                        if (r == -ENOMEM)
                                return r;
                        if (r < 0) {
                                log_debug("Skipping template %s: %s", path, err.message ?: strerror(-r));
                                if (ret_warnings)
                                        (void) strv_extend(ret_warnings, err.message ?: path);
                                continue;
                        }
                        DatalabTemplate **slot = NULL;
                        for (size_t i = 0; i < s->n; i++)
                                if (streq(s->items[i]->slug, t->slug))
                                        slot = &s->items[i];
                        if (slot) {
                                datalab_template_free(*slot);
                                *slot = TAKE_PTR(t);
                                continue;
                        }
                        if (greedy_realloc((void **) &s->items, &alloc, s->n + 1, sizeof *s->items) < 0)
                                return -ENOMEM;
                        s->items[s->n++] = TAKE_PTR(t);
                }
        }
        if (s->n > 1)
                qsort(s->items, s->n, sizeof *s->items, template_cmp);
        *ret = TAKE_PTR(s);
        return 0;
}

/* ---- rendering ---------------------------------------------------------------------------------------- */

/* Markdown text that shows as itself: every ASCII punctuation character that can start or end Markdown
 * syntax is backslash-escaped (CommonMark allows a backslash before any of them), and line breaks become
 * spaces so a value stays inside its line. */
static void md_escape(FILE *f, const char *s) {
        for (; s && *s; s++) {
                unsigned char c = (unsigned char) *s;
                if (c == '\n' || c == '\r' || c == '\v' || c == '\f' || (c >= 0x1c && c <= 0x1e))
                        fputc(' ', f);
                else if (c < 0x20 || c == 0x7f)
                        continue;
                else if (strchr("\\`*_{}[]<>()#+-.!|~&", c))
                        fputc('\\', f), fputc(c, f);
                else if (c == 0xc2 && (unsigned char) s[1] == 0x85) /* U+0085 */
                        fputc(' ', f), s++;
                else if (c == 0xe2 && (unsigned char) s[1] == 0x80 &&
                         ((unsigned char) s[2] == 0xa8 || (unsigned char) s[2] == 0xa9)) /* U+2028/9 */
                        fputc(' ', f), s += 2;
                else
                        fputc(c, f);
        }
}

typedef struct RenderVars {
        const char *name, *slug, *path, *title;
        const char *data; /* the input as embeddable JSON text */
        size_t data_len;
} RenderVars;

/* A code cell: {{data}} is its only placeholder, and the data may be megabytes: one allocation, one copy. */
static char *render_code(const char *src, const RenderVars *v) {
        static const char tag[] = "{{data}}";
        size_t n = 0, len = strlen(src);
        char *out, *o;

        for (const char *p = strstr(src, tag); p; p = strstr(p + strlen(tag), tag))
                n++;
        out = o = malloc(len - n * strlen(tag) + n * v->data_len + 1);
        if (!out)
                return NULL;
        for (const char *p = src, *q;; p = q + strlen(tag)) {
                q = strstr(p, tag);
                size_t k = q ? (size_t) (q - p) : strlen(p);
                memcpy(o, p, k), o += k;
                if (!q)
                        break;
                memcpy(o, v->data, v->data_len), o += v->data_len;
        }
        *o = 0;
        return out;
}

static char *render_source(const char *src, bool code, const RenderVars *v) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f;
        const char *p = src;

        if (code)
                return render_code(src, v);
        f = open_memstream(&buf, &size);
        if (!f)
                return NULL;
        for (const char *q; (q = strstr(p, "{{"));) {
                const char *end = strstr(q, "}}");
                if (!end)
                        break;
                fwrite(p, 1, (size_t) (q - p), f);
                size_t n = (size_t) (end - q - 2);
#define IS(s) (n == strlen(s) && strneq(q + 2, s, n))
                if (IS("name"))
                        md_escape(f, v->name);
                else if (IS("slug"))
                        md_escape(f, v->slug);
                else if (IS("path"))
                        md_escape(f, v->path);
                else if (IS("title"))
                        md_escape(f, v->title);
                else
                        fwrite(q, 1, (size_t) (end + 2 - q), f); /* checked at load: cannot happen */
#undef IS
                p = end + 2;
        }
        fputs(p, f);
        /* A write that failed (out of memory) marks the stream: the text would be cut short. */
        bool failed = ferror(f);
        if (fclose(f) != 0 || failed || !buf) {
                free(buf);
                return NULL;
        }
        return buf;
}

static json_t *cell_id(const char *slug, size_t index) {
        char key[DATALAB_NAME_MAX + 32], hex[DATALAB_SHA256_HEX];
        int n = snprintf(key, sizeof key, "%s/%zu", slug, index);

        datalab_sha256_hex(key, (size_t) n, hex);
        return json_stringn(hex, 16);
}

int datalab_input_format(json_t *doc, char **ret, size_t *ret_len) {
        _cleanup_free_ char *data = NULL, *header = NULL, *out = NULL;
        json_t *ws = json_object_get(doc, "workspace"), *blocks;
        size_t data_len, header_len;
        int r;

        if (!json_is_object(doc) || !json_is_object(ws))
                return -EINVAL;
        blocks = json_array();
        for (size_t b = 0; blocks && b < ELEMENTSOF(block_names); b++)
                if (json_object_get(doc, block_names[b]) &&
                    json_array_append_new(blocks, json_string(block_names[b])) < 0)
                        blocks = (json_decref(blocks), NULL);
        if (!blocks)
                return -ENOMEM;
        _cleanup_(json_decrefp) json_t *h = json_pack("{s:O,s:o}", "workspace", ws, "blocks", blocks);
        if (!h || nbjson_dumps(h, 0, &header, &header_len) < 0)
                return -ENOMEM;
        r = nbjson_dumps(doc, NBJSON_INDENT | NBJSON_PYTHON_EMBED, &data, &data_len);
        if (r < 0)
                return r;
        out = malloc(header_len + 1 + data_len + 1);
        if (!out)
                return -ENOMEM;
        memcpy(out, header, header_len);
        out[header_len] = '\n';
        memcpy(out + header_len + 1, data, data_len + 1);
        *ret = TAKE_PTR(out);
        *ret_len = header_len + 1 + data_len;
        return 0;
}

/* Valid UTF-8 without the characters that could end the raw string or break a line Python's way. */
static bool data_text_ok(const char *s, size_t len) {
        const unsigned char *p = (const unsigned char *) s, *end = p + len;

        while (p < end) {
                size_t bad, n;

                /* Megabytes of mostly ASCII: its bytes are checked here, without a call each. */
                if (*p < 0x80) {
                        if (*p == '\'' || *p == 0 || *p == '\r' || *p == '\v' || *p == '\f' ||
                            (*p >= 0x1c && *p <= 0x1e))
                                return false;
                        p++;
                        continue;
                }
                n = utf8_sequence(p, (size_t) (end - p), &bad);
                if (n == 0)
                        return false;
                if (n == 2 && p[0] == 0xc2 && p[1] == 0x85) /* U+0085 */
                        return false;
                if (n == 3 && p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) /* U+2028/9 */
                        return false;
                p += n;
        }
        return true;
}

int datalab_input_parse(const char *buf, size_t len, DatalabInput *ret, DjError *reterr) {
        const char *nl = memchr(buf, '\n', len);
        json_error_t jerr;
        json_t *v;
        size_t i;

        if (!nl)
                return dj_error_set(reterr, DJ_E_INVALID, "the input has no header line");
        _cleanup_(json_decrefp) json_t *h = json_loadb(buf, (size_t) (nl - buf), 0, &jerr);
        if (!json_is_object(h))
                return dj_error_set(reterr, DJ_E_INVALID, "the input's header is not a JSON object: %s",
                                    jerr.text);
        json_t *ws = json_object_get(h, "workspace");
        const char *n = json_string_value(json_object_get(ws, "name")),
                   *s = json_string_value(json_object_get(ws, "slug")),
                   *p = json_string_value(json_object_get(ws, "path"));
        if (!n || !s || !p)
                return dj_error_set(reterr, DJ_E_INVALID, "the input's workspace needs name, slug and path");
        unsigned blocks = 0;
        json_array_foreach (json_object_get(h, "blocks"), i, v)
                blocks |= json_is_string(v) ? datalab_block_from_string(json_string_value(v)) : 0;

        const char *data = nl + 1;
        size_t data_len = len - (size_t) (data - buf);
        while (data_len > 0 && data[data_len - 1] == '\n')
                data_len--;
        if (data_len < 2 || data[0] != '{' || data[data_len - 1] != '}' || !data_text_ok(data, data_len))
                return dj_error_set(
                        reterr, DJ_E_INVALID,
                        "the input's data is not canonical embeddable JSON (datalab_input_format)");

        *ret = (DatalabInput){ .data = data, .data_len = data_len, .blocks = blocks };
        if (!(ret->name = strdup(n)) || !(ret->slug = strdup(s)) || !(ret->path = strdup(p))) {
                datalab_input_done(ret);
                return -ENOMEM;
        }
        return 0;
}

void datalab_input_done(DatalabInput *in) {
        free(in->name);
        free(in->slug);
        free(in->path);
        *in = (DatalabInput){};
}

int datalab_render(const DatalabTemplate *t, const DatalabInput *in, char **ret, size_t *ret_len,
                   char ret_digest[static DATALAB_SHA256_HEX], DjError *reterr) {
        _cleanup_free_ char *text = NULL;
        size_t text_len;
        char digest[DATALAB_SHA256_HEX];
        size_t i, total = 0;
        json_t *c;
        int r;

        for (size_t b = 0; b < ELEMENTSOF(block_names); b++)
                if ((t->blocks & (1u << b)) && !(in->blocks & (1u << b)))
                        return dj_error_set(reterr, DJ_E_INVALID, "template '%s' needs the \"%s\" data",
                                            t->slug, block_names[b]);
        datalab_sha256_hex(in->data, in->data_len, digest);
        RenderVars v = { .name = in->name,
                         .slug = in->slug,
                         .path = in->path,
                         .title = t->title,
                         .data = in->data,
                         .data_len = in->data_len };
        const char *slug = in->slug;

        _cleanup_(json_decrefp) json_t *cells = json_array();
        if (!cells)
                return -ENOMEM;
        json_array_foreach (t->cells, i, c) {
                const char *type = json_string_value(json_object_get(c, "cell_type"));
                bool code = streq(type, "code");
                _cleanup_free_ char *src =
                        render_source(json_string_value(json_object_get(c, "source")), code, &v);
                if (!src)
                        return -ENOMEM;
                size_t src_len = strlen(src);
                json_t *lines = json_stringn_nocheck(src, src_len); /* split as it is written */
                total += src_len;
                src = mfree(src);
                json_t *cell =
                        code ? json_pack("{s:s,s:n,s:o,s:{},s:[],s:o}", "cell_type", type, "execution_count",
                                         "id", cell_id(t->slug, i), "metadata", "outputs", "source", lines)
                             : json_pack("{s:s,s:o,s:{},s:o}", "cell_type", type, "id", cell_id(t->slug, i),
                                         "metadata", "source", lines);
                if (!cell || json_array_append_new(cells, cell) < 0)
                        return -ENOMEM;
        }

        _cleanup_(json_decrefp) json_t *nb = json_pack(
                "{s:O,s:{s:{s:s,s:s,s:s,s:s,s:s},s:{s:s,s:s,s:s},s:{s:{s:s,s:i},s:s,s:s,s:s,s:s,s:s}},s:i,s:"
                "i}",
                "cells", cells, "metadata", "djdesk", "data_sha256", digest, "description", t->description,
                "template", t->slug, "title", t->title, "workspace", slug, "kernelspec", "display_name",
                "Python 3", "language", "python", "name", "python3", "language_info", "codemirror_mode",
                "name", "ipython", "version", 3, "file_extension", ".py", "mimetype", "text/x-python",
                "name", "python", "nbconvert_exporter", "python", "pygments_lexer", "ipython3", "nbformat",
                4, "nbformat_minor", 5);
        if (!nb)
                return -ENOMEM;
        /* The notebook is its sources, split and quoted, plus a little: a tenth more and 64 KiB. */
        r = nbjson_dumps_hint(nb, NBJSON_INDENT | NBJSON_SPLIT_SOURCES, total + total / 10 + 65536, &text,
                              &text_len);
        if (r < 0)
                return r;
        char *out = realloc(text, text_len + 2);
        if (!out)
                return -ENOMEM;
        text = NULL;
        out[text_len] = '\n';
        out[text_len + 1] = 0;

        *ret = out;
        *ret_len = text_len + 1;
        if (ret_digest)
                memcpy(ret_digest, digest, DATALAB_SHA256_HEX);
        return 0;
}

/* ---- files -------------------------------------------------------------------------------------------- */

int datalab_open_dir(const char *root, const char *slug, bool create, DjError *reterr) {
        _cleanup_close_ int rootfd = -EBADF;
        int fd, r;

        if (!datalab_name_valid(slug))
                return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, slug,
                                          "'%s' is not a valid directory name", slug);
        if (create) {
                r = mkdir_parents(root, 0700);
                if (r < 0)
                        return dj_error_set(reterr, DJ_E_INTERNAL, "cannot create %s: %s", root,
                                            strerror(-r));
        }
        rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0) {
                if (errno == ENOENT && !create)
                        return -ENOENT;
                return dj_error_set(reterr, DJ_E_INTERNAL, "cannot open %s: %s", root, strerror(errno));
        }
        if (create && mkdirat(rootfd, slug, 0700) < 0 && errno != EEXIST)
                return dj_error_set(reterr, DJ_E_INTERNAL, "cannot create %s/%s: %s", root, slug,
                                    strerror(errno));

        fd = openat(rootfd, slug, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOENT && !create)
                        return -ENOENT;
                if (errno == ELOOP || errno == ENOTDIR) {
                        struct stat st;
                        if (fstatat(rootfd, slug, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
                                return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, slug,
                                                          "%s/%s is a symbolic link: refused", root, slug);
                        return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, slug, "%s/%s is not a directory",
                                                  root, slug);
                }
                return dj_error_set(reterr, DJ_E_INTERNAL, "cannot open %s/%s: %s", root, slug,
                                    strerror(errno));
        }
        return fd;
}

int datalab_read_file(int dirfd, const char *name, uint64_t max, char **ret, size_t *ret_len) {
        _cleanup_close_ int fd =
                openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        struct stat st;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if ((uint64_t) st.st_size > max)
                return -EFBIG;

        size_t size = (size_t) st.st_size;
        _cleanup_free_ char *buf = malloc(size + 1);
        if (!buf)
                return -ENOMEM;
        ssize_t n = read_full(fd, buf, size);
        if (n < 0)
                return (int) n;
        buf[n] = 0;
        *ret = TAKE_PTR(buf);
        *ret_len = (size_t) n;
        return 0;
}

/* A hidden name beside name for the temporary: ".NAME.<16 hex digits>.tmp". */
static void tmp_name(char *buf, size_t size, const char *name, int attempt) {
        uint64_t rnd = 0;

        if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t) sizeof rnd)
                rnd = now_usec(CLOCK_MONOTONIC) ^ ((uint64_t) getpid() << 32) ^ (uint64_t) attempt;
        (void) snprintf(buf, size, ".%s.%016llx.tmp", name, (unsigned long long) rnd);
}

int datalab_write_file(int dirfd, const char *name, const void *data, size_t len, bool *ret_unchanged,
                       DjError *reterr) {
        _cleanup_close_ int wfd = -EBADF, fd = -EBADF;
        char tmp[DATALAB_NAME_MAX + 32] = "";
        struct stat st;
        int r;

        if (ret_unchanged)
                *ret_unchanged = false;
        /* dirfd may be O_PATH: a real one for fsync and the *at() calls that need it */
        wfd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (wfd < 0)
                return dj_error_set(reterr, DJ_E_INTERNAL, "cannot open the directory: %s", strerror(errno));

        if (fstatat(wfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                if (S_ISLNK(st.st_mode))
                        return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, name,
                                                  "%s is a symbolic link: refused", name);
                if (!S_ISREG(st.st_mode))
                        return dj_error_set_value(reterr, DJ_E_NOT_ALLOWED, name, "%s is not a regular file",
                                                  name);
                if ((size_t) st.st_size == len) {
                        _cleanup_free_ char *old = NULL;
                        size_t old_len;
                        if (datalab_read_file(wfd, name, len, &old, &old_len) == 0 && old_len == len &&
                            memcmp(old, data, len) == 0) {
                                if (ret_unchanged)
                                        *ret_unchanged = true;
                                return 0;
                        }
                }
        } else if (errno != ENOENT)
                return dj_error_set(reterr, DJ_E_INTERNAL, "cannot stat %s: %s", name, strerror(errno));

        /* Unnamed (O_TMPFILE) where the file system has it and /proc can name it for linkat(): a writer
         * killed while writing then leaves nothing behind. Otherwise a hidden file with a random name. */
        bool anon = false;
        if (access("/proc/self/fd", X_OK) == 0) {
                fd = openat(wfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
                anon = fd >= 0;
        }
        for (int attempt = 0; !anon; attempt++) {
                tmp_name(tmp, sizeof tmp, name, attempt);
                fd = openat(wfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
                if (fd >= 0)
                        break;
                if (errno != EEXIST || attempt >= 16)
                        return dj_error_set(reterr, DJ_E_INTERNAL,
                                            "cannot create a file in the directory: %s", strerror(errno));
        }

        r = write_full(fd, data, len);
        if (r >= 0 && fchmod(fd, 0644) < 0)
                r = -errno;
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && anon) {
                char proc[64];

                (void) snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
                for (int attempt = 0;; attempt++) {
                        tmp_name(tmp, sizeof tmp, name, attempt);
                        if (linkat(AT_FDCWD, proc, wfd, tmp, AT_SYMLINK_FOLLOW) >= 0)
                                break;
                        if (errno != EEXIST || attempt >= 16) {
                                r = -errno;
                                break;
                        }
                }
                if (r < 0)
                        return dj_error_set(reterr, DJ_E_INTERNAL, "cannot write %s: %s", name,
                                            strerror(-r));
        }
        if (r >= 0 && renameat(wfd, tmp, wfd, name) < 0)
                r = -errno;
        if (r < 0) {
                if (tmp[0]) /* named, or linked */
                        (void) unlinkat(wfd, tmp, 0);
                return dj_error_set(reterr, DJ_E_INTERNAL, "cannot write %s: %s", name, strerror(-r));
        }
        (void) fsync(wfd);
        return 0;
}

/* The text of the first Markdown heading of the notebook ("# Title" -> "Title"), NULL when none. */
static char *first_heading(json_t *cells) {
        size_t i;
        json_t *c;

        json_array_foreach (cells, i, c) {
                if (!streq_ptr(json_string_value(json_object_get(c, "cell_type")), "markdown"))
                        continue;
                _cleanup_free_ char *src = source_join(json_object_get(c, "source"));
                for (char *line = src, *next; line && *line; line = next) {
                        next = strchr(line, '\n');
                        if (next)
                                *next++ = 0;
                        /* An ATX heading: 1 to 6 '#', then a space, a tab or the end ("#tag" is none). */
                        size_t k = strspn(line, "#");
                        if (k == 0 || k > 6 || !strchr(" \t\r", line[k]))
                                continue;
                        line += k;
                        line += strspn(line, " \t");
                        line[strcspn(line, "\r")] = 0;
                        if (*line)
                                return strdup(line);
                }
        }
        return NULL;
}

json_t *datalab_notebook_info(int dirfd, const char *dir_path, const char *name) {
        _cleanup_free_ char *text = NULL, *path = path_join(dir_path, name), *slug = NULL, *heading = NULL;
        _cleanup_(json_decrefp) json_t *info = NULL, *nb = NULL;
        char digest[DATALAB_SHA256_HEX];
        struct stat st;
        size_t len;
        int r;

        if (!path)
                return NULL;
        size_t n = strlen(name);
        slug = strndup(name, endswith(name, ".ipynb") ? n - strlen(".ipynb") : n);
        if (!slug)
                return NULL;
        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return NULL;

        info = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:n}", "slug", slug, "title", slug, "description", "",
                         "file", path, "size", (json_int_t) st.st_size, "modified_at",
                         (json_int_t) ((uint64_t) st.st_mtim.tv_sec * USEC_PER_SEC +
                                       (uint64_t) st.st_mtim.tv_nsec / NSEC_PER_USEC),
                         "template");
        if (!info)
                return NULL;

        r = S_ISREG(st.st_mode) ? datalab_read_file(dirfd, name, DATALAB_NOTEBOOK_MAX, &text, &len)
                                : -EBADFD;
        if (r < 0) {
                json_object_set_new(info, "sha256", json_null());
                json_object_set_new(info, "error",
                                    json_string(r == -EFBIG ? "larger than 64 MiB" : strerror(-r)));
                return TAKE_PTR(info);
        }
        datalab_sha256_hex(text, len, digest);
        json_object_set_new(info, "sha256", json_string(digest));

        nb = json_loadb(text, len, 0, NULL);
        if (!json_is_object(nb) || json_integer_value(json_object_get(nb, "nbformat")) != 4 ||
            !json_is_array(json_object_get(nb, "cells"))) {
                json_object_set_new(info, "error", json_string("not an nbformat 4 notebook"));
                return TAKE_PTR(info);
        }
        json_t *meta = json_object_get(json_object_get(nb, "metadata"), "djdesk");
        const char *title = json_string_value(json_object_get(meta, "title"));
        const char *desc = json_string_value(json_object_get(meta, "description"));
        const char *tmpl = json_string_value(json_object_get(meta, "template"));
        if (!title)
                title = heading = first_heading(json_object_get(nb, "cells"));
        if (title)
                json_object_set_new(info, "title", json_string(title));
        if (desc)
                json_object_set_new(info, "description", json_string(desc));
        if (tmpl)
                json_object_set_new(info, "template", json_string(tmpl));
        return TAKE_PTR(info);
}
