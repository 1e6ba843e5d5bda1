/* SPDX-License-Identifier: MIT */
/* The HTML preview of a notebook (preview.h).
 *
 * Safety rests on three rules, each enforced in exactly one place:
 *   1. Every byte of notebook text that reaches the page goes through html_escape() (&, <, >, ", ' become
 *      entities), except the Markdown cells, which md4c-html renders with raw HTML off (it escapes the
 *      same way) and whose output then goes through markdown_sanitize_urls() (see there).
 *   2. Images are embedded only as data: URLs built here from base64 that was checked to be made of
 *      [A-Za-z0-9+/=] alone, to decode, and to start with the PNG or JPEG signature. text/html,
 *      image/svg+xml, application/javascript and every other MIME type of an output are never rendered.
 *   3. The page carries a Content-Security-Policy that allows no script, no network, and only data:
 *      images, should anything slip through 1 and 2. */
#include <assert.h>
#include <errno.h>
#include <md4c-html.h>
#include <nettle/base64.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dj-macro.h"
#include "nbjson.h"
#include "preview.h"

#define PREVIEW_MD_FLAGS (MD_FLAG_TABLES | MD_FLAG_STRIKETHROUGH | MD_FLAG_TASKLISTS | MD_FLAG_NOHTML)

static const char preview_head[] =
        "<!DOCTYPE html>\n"
        "<html>\n"
        "<head>\n"
        "<meta charset=\"utf-8\">\n"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'\">\n"
        "<meta name=\"referrer\" content=\"no-referrer\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";

static const char preview_style[] =
        "<style>\n"
        "body { margin: 0; background: #fff; color: #1f2328;\n"
        "       font: 15px/1.5 system-ui, -apple-system, \"Segoe UI\", Roboto, sans-serif; }\n"
        "main { max-width: 64rem; margin: 0 auto; padding: 1.5rem 1rem 3rem; }\n"
        "h1.title { font-size: 1.6rem; margin: 0 0 1rem; padding-bottom: .4rem; border-bottom: 1px solid "
        "#d0d7de; }\n"
        ".cell { margin: .9rem 0; }\n"
        ".row { display: flex; gap: .6rem; }\n"
        ".row + .row { margin-top: .3rem; }\n"
        ".prompt { flex: 0 0 5.5rem; text-align: right; white-space: nowrap; color: #57606a;\n"
        "          font: .8rem/2.1 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }\n"
        ".prompt.out { color: #953800; }\n"
        ".body { flex: 1; min-width: 0; }\n"
        "pre, code, samp { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; "
        "font-size: .88rem; }\n"
        "pre { margin: 0; padding: .5rem .75rem; overflow-x: auto; }\n"
        ".input pre, .markdown pre, pre.raw { background: #f6f8fa; border: 1px solid #d0d7de; "
        "border-radius: 4px; }\n"
        ".markdown code { background: #f6f8fa; padding: .1em .3em; border-radius: 3px; }\n"
        ".markdown pre code { padding: 0; background: none; }\n"
        ".output pre { border-left: 3px solid #d0d7de; white-space: pre-wrap; overflow-wrap: anywhere; }\n"
        ".output pre.stderr { background: #fff8f0; border-left-color: #d4a72c; }\n"
        ".output pre.error { background: #fff5f5; border-left-color: #cf222e; color: #82071e; }\n"
        ".output img { max-width: 100%; height: auto; }\n"
        "table { border-collapse: collapse; margin: .5rem 0; }\n"
        "th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; }\n"
        "th { background: #f6f8fa; }\n"
        "blockquote { margin: .5rem 0; padding: 0 1rem; color: #57606a; border-left: 3px solid #d0d7de; }\n"
        ".note { margin: .3rem 0; color: #57606a; font-style: italic; }\n"
        "</style>\n";

/* A growable buffer whose first failure is sticky: appends after it do nothing, and preview_render() checks
 * .error once at the end (as one checks ferror() after a series of fputs()). Always NUL-terminated once
 * anything was appended. */
typedef struct HtmlBuf {
        char *data;
        size_t len, cap;
        int error;
} HtmlBuf;

static void html_buf_done(HtmlBuf *b) {
        b->data = mfree(b->data);
        b->len = b->cap = 0;
}

static void html_put(HtmlBuf *b, const char *p, size_t n) {
        if (b->error < 0 || n == 0)
                return;
        if (n >= b->cap - b->len) {
                size_t need, cap;
                char *d;

                if (n > SIZE_MAX / 4 - b->len) {
                        b->error = -ENOMEM;
                        return;
                }
                need = b->len + n + 1;
                cap = b->cap ?: 4096;
                while (cap < need)
                        cap *= 2;
                d = realloc(b->data, cap);
                if (!d) {
                        b->error = -ENOMEM;
                        return;
                }
                b->data = d;
                b->cap = cap;
        }
        memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = 0;
}

static void html_puts(HtmlBuf *b, const char *s) {
        html_put(b, s, strlen(s));
}

/* Text into HTML, in element content and in quoted attribute values alike. NUL bytes are dropped. */
static void html_escape(HtmlBuf *b, const char *s, size_t n) {
        size_t start = 0;

        if (n == 0)
                return;
        for (size_t i = 0; i < n; i++) {
                const char *e;

                switch (s[i]) {
                case '&':
                        e = "&amp;";
                        break;
                case '<':
                        e = "&lt;";
                        break;
                case '>':
                        e = "&gt;";
                        break;
                case '"':
                        e = "&quot;";
                        break;
                case '\'':
                        e = "&#39;";
                        break;
                case '\0':
                        e = "";
                        break;
                default:
                        continue;
                }
                html_put(b, s + start, i - start);
                html_puts(b, e);
                start = i + 1;
        }
        html_put(b, s + start, n - start);
}

/* A notebook "multiline string" into a fresh buffer (nbjson_join_lines()). -EINVAL when v is neither a
 * string nor lines (nothing allocated then). */
static int nb_text(const json_t *v, HtmlBuf *ret) {
        char *s;
        size_t n;
        int r = nbjson_join_lines(v, &s, &n);

        if (r < 0)
                return r;
        *ret = (HtmlBuf){ .data = s, .len = n, .cap = n + 1 };
        return 0;
}

/* Removes terminal escape sequences in place: CSI (ESC [ parameters intermediates final: the colours of
 * IPython's tracebacks), OSC (ESC ] ... BEL or ESC \: terminal hyperlinks), two-byte ESC @..._ sequences,
 * and any other lone ESC. */
static void strip_ansi(HtmlBuf *b) {
        size_t i = 0, j = 0, n = b->len;
        char *s = b->data;

        while (i < n) {
                if (s[i] != '\033') {
                        s[j++] = s[i++];
                        continue;
                }
                i++;
                if (i >= n)
                        break;
                if (s[i] == '[') {
                        i++;
                        while (i < n && (unsigned char) s[i] >= 0x20 && (unsigned char) s[i] <= 0x3f)
                                i++;
                        if (i < n && (unsigned char) s[i] >= 0x40 && (unsigned char) s[i] <= 0x7e)
                                i++; /* the final byte; anything else is kept as text */
                } else if (s[i] == ']') {
                        for (i++; i < n; i++) {
                                if (s[i] == '\a') {
                                        i++;
                                        break;
                                }
                                if (s[i] == '\033' && i + 1 < n && s[i + 1] == '\\') {
                                        i += 2;
                                        break;
                                }
                        }
                } else if ((unsigned char) s[i] >= 0x40 && (unsigned char) s[i] <= 0x5f)
                        i++;
        }
        b->len = j;
        if (s)
                s[j] = 0;
}

/* Link sanitising.
 *
 * md4c-html has no hook for link destinations, so its output is post-processed: every href="..." and
 * src="..." attribute value in it is checked, and replaced by "#" unless it is a relative reference or its
 * scheme is http, https or mailto. This is sound because md4c-html (with raw HTML off) escapes '"' as
 * &quot; in all text, code and titles, so a '"' in its output only ever delimits an attribute value it
 * wrote itself; and the value is judged the way a browser reads it:
 *   - character references are decoded first (&#106; &#x6A; &amp;..., with or without ';'); a named
 *     reference other than amp, lt, gt, quot, apos (say &colon; or &Tab;) makes the value unsafe outright;
 *   - every ASCII control character and space is then dropped (browsers strip leading and trailing ones
 *     and remove tab/CR/LF anywhere, so "java\tscript:" is javascript:; dropping them all errs on the
 *     safe side);
 *   - the scheme is what comes before the first ':' when no '/', '?' or '#' comes before it (otherwise
 *     the value is a path, query or fragment, relative to the page), compared case-insensitively.
 * (md4c-html also percent-encodes every byte outside [A-Za-z0-9] and "~-_.+!*(),%#@?=;:/$" and writes
 * '&' as &amp;, so in practice the first two steps have little to do: they are there so that the check
 * does not depend on that.) A Markdown image's src always becomes "#": the page loads nothing, not even
 * what the CSP would block. */

/* Decodes the character reference at s[0] == '&' into *ret_c (the code point), returning the number of
 * bytes it spans, or -EINVAL for a named reference this code does not know. A '&' that starts no reference
 * is the character '&' itself. */
static int decode_reference(const char *s, size_t n, uint32_t *ret_c) {
        static const struct {
                const char *name;
                uint32_t c;
        } names[] = { { "amp", '&' }, { "lt", '<' }, { "gt", '>' }, { "quot", '"' }, { "apos", '\'' } };
        size_t i = 1;

        assert(n > 0 && s[0] == '&');
        if (i < n && s[i] == '#') {
                bool hex = i + 1 < n && (s[i + 1] == 'x' || s[i + 1] == 'X');
                uint32_t c = 0;
                size_t digits = 0;

                i += hex ? 2 : 1;
                for (; i < n; i++, digits++) {
                        unsigned d;

                        if (s[i] >= '0' && s[i] <= '9')
                                d = s[i] - '0';
                        else if (hex && s[i] >= 'a' && s[i] <= 'f')
                                d = s[i] - 'a' + 10;
                        else if (hex && s[i] >= 'A' && s[i] <= 'F')
                                d = s[i] - 'A' + 10;
                        else
                                break;
                        c = c > 0x10ffff ? c : c * (hex ? 16 : 10) + d;
                }
                if (digits == 0) {
                        *ret_c = '&';
                        return 1;
                }
                if (i < n && s[i] == ';')
                        i++;
                *ret_c = c == 0 || c > 0x10ffff ? 0xfffd : c;
                return (int) i;
        }

        size_t len = 0;
        while (i + len < n &&
               ((s[i + len] >= 'a' && s[i + len] <= 'z') || (s[i + len] >= 'A' && s[i + len] <= 'Z') ||
                (s[i + len] >= '0' && s[i + len] <= '9')))
                len++;
        if (len == 0) {
                *ret_c = '&';
                return 1;
        }
        for (size_t k = 0; k < ELEMENTSOF(names); k++)
                if (strlen(names[k].name) == len && memcmp(s + i, names[k].name, len) == 0) {
                        i += len;
                        if (i < n && s[i] == ';')
                                i++;
                        *ret_c = names[k].c;
                        return (int) i;
                }
        return -EINVAL;
}

static bool url_is_safe(const char *v, size_t n) {
        static const char *const allowed[] = { "http", "https", "mailto" };
        char scheme[8];
        size_t k = 0;
        bool long_scheme = false;

        for (size_t i = 0; i < n;) {
                uint32_t c;

                if (v[i] == '&') {
                        int r = decode_reference(v + i, n - i, &c);
                        if (r < 0)
                                return false;
                        i += r;
                } else
                        c = (unsigned char) v[i++];

                if (c <= 0x20 || c == 0x7f)
                        continue;
                if (c == '/' || c == '?' || c == '#')
                        return true; /* no scheme: relative to the page */
                if (c == ':') {
                        if (long_scheme)
                                return false;
                        for (size_t a = 0; a < ELEMENTSOF(allowed); a++)
                                if (strlen(allowed[a]) == k && memcmp(scheme, allowed[a], k) == 0)
                                        return true;
                        return false;
                }
                if (k >= sizeof(scheme))
                        long_scheme = true;
                else
                        /* ASCII lower-cased; anything else (also decoded references past ASCII) becomes a
                         * byte that matches no allowed scheme */
                        scheme[k++] = c >= 'A' && c <= 'Z' ? (char) (c + 'a' - 'A')
                                      : c < 0x80           ? (char) c
                                                           : '\x01';
        }
        return true; /* no ':' at all: a relative path */
}

static void markdown_sanitize_urls(HtmlBuf *b, const char *html, size_t n) {
        static const char *const attrs[] = { " href=\"", " src=\"" };
        size_t i = 0, start = 0;

        while (i < n) {
                size_t alen = 0;
                bool is_src = false;

                for (size_t a = 0; a < ELEMENTSOF(attrs); a++) {
                        size_t l = strlen(attrs[a]);
                        if (n - i >= l && memcmp(html + i, attrs[a], l) == 0) {
                                alen = l;
                                is_src = a == 1;
                                break;
                        }
                }
                if (alen == 0) {
                        i++;
                        continue;
                }

                const char *value = html + i + alen;
                const char *end = memchr(value, '"', n - i - alen);

                html_put(b, html + start, i + alen - start);
                if (!end) {
                        /* cannot happen with md4c-html; never pass on an unterminated attribute */
                        html_puts(b, "#\">");
                        return;
                }
                /* A Markdown image never loads anything: the page makes no request, whatever the CSP. */
                if (!is_src && url_is_safe(value, end - value))
                        html_put(b, value, end - value);
                else
                        html_puts(b, "#");
                i = start = end - html; /* the closing quote is copied with what follows */
        }
        html_put(b, html + start, n - start);
}

static void md_output_cb(const MD_CHAR *text, MD_SIZE size, void *userdata) {
        html_put(userdata, text, size);
}

/* A fixed sentence about what is in the notebook but not shown; fmt and its arguments are never notebook
 * text. */
_printf_(2, 3) static void render_note(HtmlBuf *b, const char *fmt, ...) {
        char line[192];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        html_puts(b, "<p class=\"note\">");
        html_puts(b, line);
        html_puts(b, "</p>\n");
}

static void render_prompt(HtmlBuf *b, const char *label, const json_t *count, const char *class) {
        char line[96];

        if (json_is_integer(count))
                (void) snprintf(line, sizeof(line), "<div class=\"%s\">%s [%" JSON_INTEGER_FORMAT "]:</div>",
                                class, label, json_integer_value(count));
        else
                (void) snprintf(line, sizeof(line), "<div class=\"%s\">%s [ ]:</div>", class, label);
        html_puts(b, line);
}

static void render_markdown_cell(HtmlBuf *b, const HtmlBuf *src, size_t index) {
        _cleanup_(html_buf_done) HtmlBuf md = {};

        if (src->len > UINT32_MAX) {
                render_note(b, "Cell %zu is not shown: it is too large.", index + 1);
                return;
        }
        if (md_html(src->data ?: "", (MD_SIZE) src->len, md_output_cb, &md, PREVIEW_MD_FLAGS, 0) < 0 ||
            md.error < 0) {
                b->error = -ENOMEM; /* md_parse() only fails when out of memory */
                return;
        }
        html_puts(b, "<div class=\"cell markdown\">\n<div class=\"row\"><div class=\"prompt\"></div>"
                     "<div class=\"body\">\n");
        markdown_sanitize_urls(b, md.data ?: "", md.len);
        html_puts(b, "</div></div>\n</div>\n");
}

/* Embeds data[mime] when it is base64 (whitespace anywhere, as nbformat stores it) of bytes that start with
 * sig. 1 when embedded, 0 when not. */
static int render_image(HtmlBuf *b, const json_t *data, const char *mime, const uint8_t *sig,
                        size_t sig_len) {
        _cleanup_(html_buf_done) HtmlBuf t = {};
        _cleanup_free_ uint8_t *bytes = NULL;
        struct base64_decode_ctx ctx;
        size_t j = 0, len;

        if (nb_text(json_object_get(data, mime), &t) < 0)
                return 0;
        for (size_t i = 0; i < t.len; i++) {
                char c = t.data[i];

                if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
                        continue;
                if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '+' || c == '/' || c == '='))
                        return 0;
                t.data[j++] = c;
        }
        t.len = j;
        if (t.len == 0)
                return 0;

        bytes = malloc(BASE64_DECODE_LENGTH(t.len));
        if (!bytes) {
                b->error = -ENOMEM;
                return 0;
        }
        base64_decode_init(&ctx);
        len = BASE64_DECODE_LENGTH(t.len);
        if (!base64_decode_update(&ctx, &len, bytes, t.len, t.data) || !base64_decode_final(&ctx))
                return 0;
        if (len < sig_len || memcmp(bytes, sig, sig_len) != 0)
                return 0;

        html_puts(b, "<img alt=\"\" src=\"data:");
        html_puts(b, mime);
        html_puts(b, ";base64,");
        html_put(b, t.data, t.len); /* [A-Za-z0-9+/=] only: checked above */
        html_puts(b, "\">");
        return 1;
}

/* Output text (stream, text/plain, traceback): terminal colours removed, then escaped. */
static void render_samp(HtmlBuf *b, const char *class, HtmlBuf *text) {
        strip_ansi(text);
        html_puts(b, "<pre class=\"");
        html_puts(b, class);
        html_puts(b, "\"><samp>");
        html_escape(b, text->data, text->len);
        html_puts(b, "</samp></pre>");
}

static void render_output(HtmlBuf *b, const json_t *o, size_t index, size_t cell_index) {
        static const uint8_t png_sig[] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
        static const uint8_t jpeg_sig[] = { 0xff, 0xd8, 0xff };
        _cleanup_(html_buf_done) HtmlBuf text = {};
        const char *type = json_string_value(json_object_get(o, "output_type"));

        if (!json_is_object(o) || !type) {
                render_note(b, "Output %zu of cell %zu is not shown: it is not an nbformat 4 output.",
                            index + 1, cell_index + 1);
                return;
        }

        if (streq(type, "stream")) {
                const char *name = json_string_value(json_object_get(o, "name"));

                if (nb_text(json_object_get(o, "text"), &text) < 0) {
                        render_note(b, "Output %zu of cell %zu is not shown: its text is not a string.",
                                    index + 1, cell_index + 1);
                        return;
                }
                html_puts(b, "<div class=\"row output\"><div class=\"prompt\"></div><div class=\"body\">");
                render_samp(b, streq_ptr(name, "stderr") ? "stream stderr" : "stream stdout", &text);
                html_puts(b, "</div></div>\n");

        } else if (streq(type, "execute_result") || streq(type, "display_data")) {
                const json_t *data = json_object_get(o, "data");

                html_puts(b, "<div class=\"row output\">");
                if (streq(type, "execute_result"))
                        render_prompt(b, "Out", json_object_get(o, "execution_count"), "prompt out");
                else
                        html_puts(b, "<div class=\"prompt\"></div>");
                html_puts(b, "<div class=\"body\">");
                if (render_image(b, data, "image/png", png_sig, sizeof(png_sig)) == 0 &&
                    render_image(b, data, "image/jpeg", jpeg_sig, sizeof(jpeg_sig)) == 0) {
                        if (nb_text(json_object_get(data, "text/plain"), &text) >= 0)
                                render_samp(b, "result", &text);
                        else
                                html_puts(b, "<p class=\"note\">This output has no text or image form the "
                                             "preview shows.</p>");
                }
                html_puts(b, "</div></div>\n");

        } else if (streq(type, "error")) {
                const char *ename = json_string_value(json_object_get(o, "ename")) ?: "",
                           *evalue = json_string_value(json_object_get(o, "evalue")) ?: "";
                const json_t *tb = json_object_get(o, "traceback");
                size_t i;
                json_t *line;

                html_puts(&text, ename);
                html_puts(&text, ": ");
                html_puts(&text, evalue);
                json_array_foreach (tb, i, line)
                        if (json_is_string(line)) {
                                html_puts(&text, "\n");
                                html_put(&text, json_string_value(line), json_string_length(line));
                        }
                if (text.error < 0) {
                        b->error = text.error;
                        return;
                }
                html_puts(b, "<div class=\"row output\"><div class=\"prompt\"></div><div class=\"body\">");
                render_samp(b, "error", &text);
                html_puts(b, "</div></div>\n");
        }
        /* other output types: not in nbformat 4, ignored */
}

static void render_code_cell(HtmlBuf *b, const json_t *cell, const HtmlBuf *src, size_t index) {
        const json_t *outputs = json_object_get(cell, "outputs");
        size_t i;
        json_t *o;

        html_puts(b, "<div class=\"cell code\">\n<div class=\"row input\">");
        render_prompt(b, "In", json_object_get(cell, "execution_count"), "prompt");
        html_puts(b, "<div class=\"body\"><pre><code>");
        html_escape(b, src->data, src->len);
        html_puts(b, "</code></pre></div></div>\n");
        if (outputs && !json_is_array(outputs))
                render_note(b, "The outputs of cell %zu are not shown: they are not a list.", index + 1);
        json_array_foreach (outputs, i, o)
                render_output(b, o, i, index);
        html_puts(b, "</div>\n");
}

static void render_raw_cell(HtmlBuf *b, const HtmlBuf *src) {
        html_puts(b, "<div class=\"cell raw\">\n<div class=\"row\"><div class=\"prompt\"></div>"
                     "<div class=\"body\"><pre class=\"raw\"><code>");
        html_escape(b, src->data, src->len);
        html_puts(b, "</code></pre></div></div>\n</div>\n");
}

static void render_cell(HtmlBuf *b, const json_t *cell, size_t index) {
        _cleanup_(html_buf_done) HtmlBuf src = {};
        const char *type = json_string_value(json_object_get(cell, "cell_type"));

        if (!json_is_object(cell) || !type) {
                render_note(b, "Cell %zu is not shown: it is not an nbformat 4 cell.", index + 1);
                return;
        }
        if (!streq(type, "markdown") && !streq(type, "code") && !streq(type, "raw"))
                return; /* unknown cell types are ignored, as Jupyter does */
        if (nb_text(json_object_get(cell, "source"), &src) < 0) {
                render_note(b, "Cell %zu is not shown: its source is not text.", index + 1);
                return;
        }

        if (streq(type, "markdown"))
                render_markdown_cell(b, &src, index);
        else if (streq(type, "code"))
                render_code_cell(b, cell, &src, index);
        else
                render_raw_cell(b, &src);
}

int preview_render(json_t *nb, const char *title, char **ret, size_t *ret_len, DjError *reterr) {
        _cleanup_(html_buf_done) HtmlBuf b = {};
        const json_t *cells, *format;
        size_t i;
        json_t *cell;

        assert(ret);

        if (!json_is_object(nb))
                return dj_error_set(reterr, DJ_E_INVALID, "the notebook is not a JSON object");
        format = json_object_get(nb, "nbformat");
        if (!json_is_integer(format))
                return dj_error_set(reterr, DJ_E_INVALID, "the notebook has no \"nbformat\" version");
        if (json_integer_value(format) != 4)
                return dj_error_set(reterr, DJ_E_INVALID,
                                    "the notebook is in nbformat %" JSON_INTEGER_FORMAT
                                    ", only nbformat 4 is supported",
                                    json_integer_value(format));
        cells = json_object_get(nb, "cells");
        if (!json_is_array(cells))
                return dj_error_set(reterr, DJ_E_INVALID, "the notebook has no \"cells\" array");
        if (!title)
                title = "Notebook";

        html_puts(&b, preview_head);
        html_puts(&b, "<title>");
        html_escape(&b, title, strlen(title));
        html_puts(&b, "</title>\n");
        html_puts(&b, preview_style);
        html_puts(&b, "</head>\n<body>\n<main>\n<h1 class=\"title\">");
        html_escape(&b, title, strlen(title));
        html_puts(&b, "</h1>\n");
        json_array_foreach (cells, i, cell)
                render_cell(&b, cell, i);
        html_puts(&b, "</main>\n</body>\n</html>\n");
        if (b.error < 0)
                return b.error;

        if (ret_len)
                *ret_len = b.len;
        *ret = TAKE_PTR(b.data);
        return 0;
}
