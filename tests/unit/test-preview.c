/* SPDX-License-Identifier: MIT */
/* The HTML preview of a notebook (preview.h). Notebooks are written below as JSON with ' for " (parse()
 * swaps them; a real apostrophe is \u0027). Every rendered page also goes through assert_html_safe(), a
 * small tag scanner: each '<' must open an allowed tag, each attribute must be an allowed one, and every
 * href/src must be harmless. The PNG and JPEG base64 were printed by /usr/bin/python3 (zlib + struct for a
 * 1x1 RGBA PNG; base64.b64encode of a JFIF header). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dj-error.h"
#include "dj-macro.h"
#include "preview.h"

#define PNG_1X1 \
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg=="
#define JPEG_HEAD  "/9j/4AAQSkZJRgAB"
#define GIF_BYTES  "R0lGODlhIG5vdCBhIHBuZyBhdCBhbGw=" /* "GIF89a not a png at all" */
#define SCRIPT     "<script>alert(1)</script>"
#define SCRIPT_ESC "&lt;script&gt;alert(1)&lt;/script&gt;"
#define IMG        "<img src=x onerror=alert(1)>"
#define IMG_ESC    "&lt;img src=x onerror=alert(1)&gt;"

static json_t *parse(const char *text) {
        _cleanup_free_ char *t = strdup(text);
        json_error_t err;
        json_t *j;

        assert_non_null(t);
        for (char *p = t; *p; p++)
                if (*p == '\'')
                        *p = '"';
        j = json_loads(t, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
        if (!j)
                fail_msg("bad test JSON at %d: %s\n%s", err.position, err.text, t);
        return j;
}

/* An nbformat 4.5 notebook with these cells (JSON text, ' for "). */
static json_t *notebook(const char *cells) {
        _cleanup_free_ char *t = NULL;

        assert_true(asprintf(&t, "{'nbformat': 4, 'nbformat_minor': 5, 'metadata': {}, 'cells': [%s]}",
                             cells) > 0);
        return parse(t);
}

static size_t count(const char *hay, const char *needle) {
        size_t n = 0;

        for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
                n++;
        return n;
}

#define assert_contains(hay, needle)                                                 \
        do {                                                                         \
                if (!strstr((hay), (needle)))                                        \
                        fail_msg("expected to find\n  %s\nin\n%s", (needle), (hay)); \
        } while (0)
#define assert_not_contains(hay, needle)                                                   \
        do {                                                                               \
                if (strstr((hay), (needle)))                                               \
                        fail_msg("did not expect to find\n  %s\nin\n%s", (needle), (hay)); \
        } while (0)
#define assert_not_contains_ci(hay, needle)                                                   \
        do {                                                                                  \
                if (strcasestr((hay), (needle)))                                              \
                        fail_msg("did not expect (any case)\n  %s\nin\n%s", (needle), (hay)); \
        } while (0)

static bool strv_has(const char *const *v, const char *s, size_t n) {
        for (; *v; v++)
                if (strlen(*v) == n && strncasecmp(*v, s, n) == 0)
                        return true;
        return false;
}

/* What a browser could be made to load or run: a scheme other than http(s)/mailto, found the way
 * url_is_safe() in preview.c is specified (case-insensitive, before the first '/', '?', '#'). md4c-html
 * percent-encodes everything else, so a value here holds no control character or entity but &amp;. */
static void assert_url_safe(const char *attr, const char *v, size_t n, const char *html) {
        size_t k = strcspn(v, ":/?#\"");

        assert_true(k <= n);
        if (strncasecmp(attr, "src", 3) == 0 && n >= 22 &&
            (strncmp(v, "data:image/png;base64,", 22) == 0 ||
             strncmp(v, "data:image/jpeg;base64,", 23) == 0)) {
                const char *b = memchr(v, ',', n) + 1;
                for (; b < v + n; b++)
                        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", *b))
                                fail_msg("bad base64 byte '%c' in %.*s", *b, (int) n, v);
                return;
        }
        if (k < n && v[k] == ':') {
                if ((k == 4 && strncasecmp(v, "http", 4) == 0) ||
                    (k == 5 && strncasecmp(v, "https", 5) == 0) ||
                    (k == 6 && strncasecmp(v, "mailto", 6) == 0))
                        return;
                fail_msg("unsafe %s=\"%.*s\" in\n%s", attr, (int) n, v, html);
        }
        for (const char *a = v; (a = memchr(a, '&', v + n - a)); a++)
                if (v + n - a < 5 || strncmp(a, "&amp;", 5) != 0)
                        fail_msg("entity in %s=\"%.*s\"", attr, (int) n, v);
}

/* Every '<' opens (or closes) an allowed tag with allowed, quoted-or-bare attributes; <style> holds no
 * '<'; no href/src can run or load anything but a data: image. */
static void assert_html_safe(const char *html) {
        static const char *const tags[] = {
                "html",   "head",  "meta",       "title", "style", "body",  "main", "h1",   "h2",  "h3",
                "h4",     "h5",    "h6",         "div",   "p",     "pre",   "code", "samp", "img", "a",
                "table",  "thead", "tbody",      "tr",    "th",    "td",    "ul",   "ol",   "li",  "em",
                "strong", "del",   "blockquote", "hr",    "br",    "input", NULL
        };
        static const char *const attrs[] = { "class",    "href",       "src",     "alt",   "title",
                                             "charset",  "http-equiv", "content", "name",  "type",
                                             "disabled", "checked",    "align",   "start", NULL };
        const char *p = html;

        assert_not_contains_ci(html, "<script");
        assert_not_contains_ci(html, "<iframe");
        assert_not_contains_ci(html, "<svg");
        assert_not_contains_ci(html, "<object");
        assert_not_contains_ci(html, "<embed");
        assert_not_contains_ci(html, "<link");
        assert_not_contains_ci(html, "<base");
        assert_true(strncmp(html, "<!DOCTYPE html>\n", 16) == 0);
        p = html + 16;

        while ((p = strchr(p, '<'))) {
                size_t n;

                p++;
                if (*p == '/')
                        p++;
                n = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789");
                if (!strv_has(tags, p, n))
                        fail_msg("tag <%.*s> at ...%.40s", (int) (n + 1), p, p);
                bool style = n == 5 && strncmp(p, "style", 5) == 0 && p[-1] == '<';
                p += n;
                for (;;) {
                        p += strspn(p, " \n");
                        if (*p == '>')
                                break;
                        n = strspn(p, "abcdefghijklmnopqrstuvwxyz-");
                        if (n == 0 || !strv_has(attrs, p, n))
                                fail_msg("attribute %.*s at ...%.60s", (int) (n + 1), p, p);
                        const char *name = p;
                        p += n;
                        if (*p != '=')
                                continue;
                        p++;
                        if (*p != '"')
                                fail_msg("unquoted value at ...%.40s", p);
                        const char *v = p + 1, *end = strchr(v, '"');
                        assert_non_null(end);
                        if (memchr(v, '<', end - v))
                                fail_msg("'<' in an attribute value at ...%.60s", v);
                        if (strncmp(name, "href", 4) == 0 || strncmp(name, "src", 3) == 0)
                                assert_url_safe(name, v, end - v, html);
                        p = end + 1;
                }
                p++;
                if (style) {
                        const char *end = strstr(p, "</style>");
                        assert_non_null(end);
                        if (memchr(p, '<', end - p))
                                fail_msg("'<' inside <style>");
                        p = end;
                }
        }
}

/* Renders nb (taken) and checks what every page must satisfy. */
static char *render(json_t *nb, const char *title) {
        _cleanup_(dj_error_done) DjError err = DJ_ERROR_INIT;
        char *html = NULL;
        size_t len = 0;
        int r;

        r = preview_render(nb, title, &html, &len, &err);
        if (r < 0)
                fail_msg("preview_render: %d %s", r, err.message ?: "");
        json_decref(nb);
        assert_non_null(html);
        assert_int_equal(len, strlen(html));
        assert_html_safe(html);
        return html;
}

static void test_page(void **state) {
        _cleanup_free_ char *html = render(notebook(""), "Sales & <Q3> \"report\" 'draft'");

        assert_contains(html, "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n");
        assert_contains(html, "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
                              "img-src data:; style-src 'unsafe-inline'\">");
        assert_contains(html, "<title>Sales &amp; &lt;Q3&gt; &quot;report&quot; &#39;draft&#39;</title>");
        assert_contains(
                html, "<h1 class=\"title\">Sales &amp; &lt;Q3&gt; &quot;report&quot; &#39;draft&#39;</h1>");
        assert_int_equal(count(html, "<style>"), 1);
        assert_not_contains_ci(html, "http://");
        assert_not_contains_ci(html, "https://");
        assert_not_contains(html, "url(");
        assert_not_contains(html, "@import");
        assert_true(strlen(html) > 20 && streq(html + strlen(html) - 16, "</body>\n</html>\n"));
}

/* <script>alert(1)</script> in every place notebook text can reach comes out escaped, in its place. */
static void test_script_escaped(void **state) {
        _cleanup_free_ char *html = render(
                notebook("{'cell_type': 'markdown', 'metadata': {}, 'source': '# T\\n\\n" SCRIPT "\\n'},"
                         "{'cell_type': 'markdown', 'metadata': {}, 'source': 'inline " SCRIPT " here'},"
                         "{'cell_type': 'code', 'metadata': {}, 'execution_count': 1, 'source': "
                         "'print(\\u0027" SCRIPT "\\u0027)',"
                         " 'outputs': ["
                         "  {'output_type': 'stream', 'name': 'stdout', 'text': ['" SCRIPT "\\n']},"
                         "  {'output_type': 'stream', 'name': 'stderr', 'text': '" SCRIPT "'},"
                         "  {'output_type': 'execute_result', 'execution_count': 1, 'metadata': {},"
                         "   'data': {'text/plain': '" SCRIPT "', 'text/html': '" SCRIPT "'}},"
                         "  {'output_type': 'display_data', 'metadata': {}, 'data': {'text/plain': ['" SCRIPT
                         "']}},"
                         "  {'output_type': 'error', 'ename': '" SCRIPT "', 'evalue': '" SCRIPT "',"
                         "   'traceback': ['" SCRIPT "']}]},"
                         "{'cell_type': 'raw', 'metadata': {}, 'source': '" SCRIPT "'}"),
                SCRIPT);

        /* title x2, markdown x2, code, stdout, stderr, text/plain x2, error x3, raw */
        assert_int_equal(count(html, SCRIPT_ESC), 13);
        assert_contains(html, "<title>" SCRIPT_ESC "</title>");
        assert_contains(html, "<h1 class=\"title\">" SCRIPT_ESC "</h1>");
        assert_contains(html, "<p>" SCRIPT_ESC "</p>");
        assert_contains(html, "<p>inline " SCRIPT_ESC " here</p>");
        assert_contains(html, "<pre><code>print(&#39;" SCRIPT_ESC "&#39;)</code></pre>");
        assert_contains(html, "<pre class=\"stream stdout\"><samp>" SCRIPT_ESC "\n</samp></pre>");
        assert_contains(html, "<pre class=\"stream stderr\"><samp>" SCRIPT_ESC "</samp></pre>");
        assert_contains(html, "<pre class=\"result\"><samp>" SCRIPT_ESC "</samp></pre>");
        assert_contains(html, "<pre class=\"error\"><samp>" SCRIPT_ESC ": " SCRIPT_ESC "\n" SCRIPT_ESC);
        assert_contains(html, "<pre class=\"raw\"><code>" SCRIPT_ESC "</code></pre>");
}

static void test_img_onerror_escaped(void **state) {
        _cleanup_free_ char *html = render(
                notebook("{'cell_type': 'markdown', 'metadata': {}, 'source': '" IMG "'},"
                         "{'cell_type': 'markdown', 'metadata': {}, 'source': 'a " IMG
                         " b <a href=\\'javascript:x\\' "
                         "onclick=\\'y\\'>z</a>'},"
                         "{'cell_type': 'markdown', 'metadata': {}, 'source': '<div "
                         "onmouseover=\\'x\\'>\\n\\nhi\\n\\n</div>'},"
                         "{'cell_type': 'code', 'metadata': {}, 'execution_count': null, 'source': '" IMG
                         "',"
                         " 'outputs': ["
                         "  {'output_type': 'stream', 'name': 'stdout', 'text': '" IMG "'},"
                         "  {'output_type': 'display_data', 'metadata': {}, 'data': {'text/plain': '" IMG
                         "'}}]}"),
                "t");

        assert_int_equal(count(html, IMG_ESC), 5);
        assert_not_contains(html, "<img src=x");
        assert_not_contains(html, "<a href=\"javascript");
        assert_contains(html, "&lt;a href=&quot;javascript:x&quot; onclick=&quot;y&quot;&gt;z&lt;/a&gt;");
        assert_contains(html, "&lt;div onmouseover=&quot;x&quot;&gt;");
        assert_not_contains(html, "<img");
}

static void test_markdown_gfm(void **state) {
        _cleanup_free_ char *html =
                render(notebook("{'cell_type': 'markdown', 'metadata': {}, 'source': ["
                                "'## Results\\n', '\\n',"
                                "'| a | b |\\n', '|---|:-:|\\n', '| 1 | <b>2</b> |\\n', '\\n',"
                                "'~~old~~ *em* **strong** `x < y`\\n', '\\n',"
                                "'- [x] done\\n', '- [ ] todo\\n', '\\n',"
                                "'```python\\n', 'if a < b and c > d: print(\\'&\\')\\n', '```\\n',"
                                "'> quoted\\n']}"),
                       "t");

        assert_contains(html, "<h2>Results</h2>");
        assert_contains(html, "<table>");
        assert_contains(html, "<th>a</th>");
        assert_contains(html, "<td>1</td>");
        assert_contains(html, "<td align=\"center\">&lt;b&gt;2&lt;/b&gt;</td>");
        assert_contains(html, "<del>old</del>");
        assert_contains(html, "<em>em</em>");
        assert_contains(html, "<strong>strong</strong>");
        assert_contains(html, "<code>x &lt; y</code>");
        assert_contains(html,
                        "<input type=\"checkbox\" class=\"task-list-item-checkbox\" disabled checked>");
        assert_contains(
                html, "<code class=\"language-python\">if a &lt; b and c &gt; d: print(&quot;&amp;&quot;)");
        assert_contains(html, "<blockquote>");
}

/* Each Markdown source and the exact link markup it must produce. */
static void test_markdown_links(void **state) {
        static const struct {
                const char *md, *expected;
        } cases[] = {
                /* schemes that run or load something: the link stays, pointing nowhere */
                { "[x](javascript:alert(1))", "<a href=\"#\">x</a>" },
                { "[x](JaVaScRiPt:alert(1))", "<a href=\"#\">x</a>" },
                { "[x]( javascript:alert(1))", "<a href=\"#\">x</a>" },
                { "[x](<java script:alert(1)>)", "<a href=\"#\">x</a>" },
                { "[x](java&#115;cript:alert(1))", "<a href=\"#\">x</a>" },
                { "[x](&#x6A;avascript:alert(1))", "<a href=\"#\">x</a>" },
                { "[x](java&Tab;script:alert(1))", "<a href=\"#\">x</a>" },
                { "[x](javascript&colon;alert(1))", "<a href=\"#\">x</a>" },
                { "[x](javascript:alert(1) \"t\")", "<a href=\"#\" title=\"t\">x</a>" },
                { "[x](vbscript:msgbox(1))", "<a href=\"#\">x</a>" },
                { "[x](data:text/html;base64,PHNjcmlwdD4=)", "<a href=\"#\">x</a>" },
                { "[x](file:///etc/passwd)", "<a href=\"#\">x</a>" },
                { "[x](a:b)", "<a href=\"#\">x</a>" },
                { "<javascript:alert(1)>", "<a href=\"#\">javascript:alert(1)</a>" },
                { "[x][r]\n\n[r]: javascript:alert(1)", "<a href=\"#\">x</a>" },
                { "![x](javascript:alert(1))", "<img src=\"#\" alt=\"x\">" },
                { "![x](data:image/svg+xml,<svg/onload=alert(1)>)", "<img src=\"#\"" },
                { "[x](\"><script>alert(1)</script>)", NULL },
                /* ordinary links are kept */
                { "[x](https://example.com/a?b=1&c=2#d)",
                  "<a href=\"https://example.com/a?b=1&amp;c=2#d\">x</a>" },
                { "[x](HTTP://EXAMPLE.COM)", "<a href=\"HTTP://EXAMPLE.COM\">x</a>" },
                { "[x](mailto:a@example.com)", "<a href=\"mailto:a@example.com\">x</a>" },
                { "<https://example.com>", "<a href=\"https://example.com\">https://example.com</a>" },
                { "[x](#results)", "<a href=\"#results\">x</a>" },
                { "[x](other.html)", "<a href=\"other.html\">x</a>" },
                { "[x](./a:b)", "<a href=\"./a:b\">x</a>" },
                { "[x](?q=javascript:1)", "<a href=\"?q=javascript:1\">x</a>" },
                { "![p](https://example.com/p.png)", "<img src=\"#\" alt=\"p\">" }, /* never loaded */
                /* text that merely looks like a link stays text (no permissive autolinks) */
                { "see www.example.com and http://example.com",
                  "<p>see www.example.com and http://example.com</p>" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                json_t *nb = notebook("");
                json_t *cell = json_pack("{s:s, s:{}, s:s}", "cell_type", "markdown", "metadata", "source",
                                         cases[i].md);

                assert_non_null(cell);
                assert_int_equal(json_array_append_new(json_object_get(nb, "cells"), cell), 0);
                _cleanup_free_ char *html = render(nb, "t");

                if (cases[i].expected)
                        assert_contains(html, cases[i].expected);
                /* render() ran assert_html_safe(): every href and src has an allowed scheme or none */
                assert_not_contains_ci(html, "href=\"javascript");
                assert_not_contains_ci(html, "href=\"vbscript");
                assert_not_contains_ci(html, "href=\"data");
                assert_not_contains_ci(html, "src=\"javascript");
                assert_not_contains_ci(html, "src=\"data:image/svg");
        }
}

static char *render_outputs(const char *outputs) {
        _cleanup_free_ char *cells = NULL;

        assert_true(asprintf(&cells,
                             "{'cell_type': 'code', 'metadata': {}, 'execution_count': 7, 'source': 'f()',"
                             " 'outputs': [%s]}",
                             outputs) > 0);
        return render(notebook(cells), "t");
}

static void test_images(void **state) {
        static const struct {
                const char *output, *expected, *not_expected;
                bool img;
        } cases[] = {
                { "{'output_type': 'display_data', 'metadata': {}, 'data': {'image/png': '" PNG_1X1
                  "', 'text/plain': 'fig'}}",
                  "<img alt=\"\" src=\"data:image/png;base64," PNG_1X1 "\">", "fig", true },
                /* nbformat may break the base64 into lines, or hold it as a list of them */
                { "{'output_type': 'display_data', 'metadata': {}, 'data': {'image/png': "
                  "'iVBORw0KGgoAAAANSUhEUg"
                  "\\nAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/\\r\\n "
                  "iZk9HQAAAABJRU5ErkJggg==\\n'}}",
                  "<img alt=\"\" src=\"data:image/png;base64," PNG_1X1 "\">", NULL, true },
                { "{'output_type': 'execute_result', 'execution_count': 7, 'metadata': {}, 'data': "
                  "{'image/png': "
                  "['iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/\\n',"
                  " 'iZk9HQAAAABJRU5ErkJggg==\\n']}}",
                  "<div class=\"prompt out\">Out [7]:</div><div class=\"body\"><img alt=\"\" "
                  "src=\"data:image/png;base64," PNG_1X1 "\">",
                  NULL, true },
                { "{'output_type': 'display_data', 'metadata': {}, 'data': {'image/jpeg': '" JPEG_HEAD "'}}",
                  "<img alt=\"\" src=\"data:image/jpeg;base64," JPEG_HEAD "\">", NULL, true },
                /* PNG preferred over JPEG */
                { "{'output_type': 'display_data', 'metadata': {}, 'data': {'image/jpeg': '" JPEG_HEAD
                  "', 'image/png': '" PNG_1X1 "'}}",
                  "data:image/png;base64,", "data:image/jpeg", true },
                /* bytes that are no PNG: the text form instead */
                { "{'output_type': 'display_data', 'metadata': {}, 'data': {'image/png': '" GIF_BYTES
                  "', 'text/plain': '<Figure size 640x480>'}}",
                  "<pre class=\"result\"><samp>&lt;Figure size 640x480&gt;</samp></pre>", "<img" },
                { "{'output_type': 'display_data', 'metadata': {}, 'data': {'image/jpeg': '" PNG_1X1 "'}}",
                  NULL, "<img" },
                { "{'output_type': 'display_data', 'metadata': {}, 'data': {'image/png': '" JPEG_HEAD "'}}",
                  NULL, "<img" },
                /* not base64, or not all of it */
                { "{'output_type': 'display_data', 'metadata': {}, 'data': {'image/png': '" PNG_1X1
                  "\\\"><script>alert(1)</script>'}}",
                  NULL, "<img" },
                { "{'output_type': 'display_data', 'metadata': {}, 'data': {'image/png': "
                  "'iVBORw0KGgo=AAAA'}}",
                  NULL, "<img" },
                { "{'output_type': 'display_data', 'metadata': {}, 'data': {'image/png': 'iVBORw0KGgoAAA'}}",
                  NULL, "<img" },
                { "{'output_type': 'display_data', 'metadata': {}, 'data': {'image/png': "
                  "'iVBORw0K-_oAAAA'}}",
                  NULL, "<img" },
                { "{'output_type': 'display_data', 'metadata': {}, 'data': {'image/png': ''}}", NULL,
                  "<img" },
                { "{'output_type': 'display_data', 'metadata': {}, 'data': {'image/png': 42}}", NULL,
                  "<img" },
                /* never rendered, whatever they hold */
                { "{'output_type': 'display_data', 'metadata': {}, 'data': {'image/svg+xml': '<svg "
                  "onload=\\'alert(1)\\'></svg>'}}",
                  "<p class=\"note\">", "svg" },
                { "{'output_type': 'display_data', 'metadata': {}, 'data': {'text/html': '<b "
                  "onclick=x>hi</b><script>alert(1)</script>'}}",
                  "<p class=\"note\">", "onclick" },
                { "{'output_type': 'display_data', 'metadata': {}, 'data': {'application/javascript': "
                  "'alert(1)', 'text/plain': '<IPython.core.display.Javascript object>'}}",
                  "&lt;IPython.core.display.Javascript object&gt;", "alert(1)" },
                { "{'output_type': 'display_data', 'metadata': {}, 'data': {'image/gif': '" GIF_BYTES "'}}",
                  "<p class=\"note\">", "<img" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *html = render_outputs(cases[i].output);

                if (cases[i].expected)
                        assert_contains(html, cases[i].expected);
                if (cases[i].not_expected)
                        assert_not_contains(html, cases[i].not_expected);
                assert_int_equal(count(html, "<img"), cases[i].img ? 1 : 0);
        }
}

static void test_ansi_stripped(void **state) {
        _cleanup_free_ char *html =
                render_outputs("{'output_type': 'error', 'ename': 'NameError', 'evalue': 'name "
                               "\\u0027x\\u0027 is not defined',"
                               " 'traceback': ['\\u001b[0;31m------------------------\\u001b[0m',"
                               "  '\\u001b[0;31mNameError\\u001b[0m Traceback (most recent call "
                               "last)\\nCell \\u001b[1;32mIn[1], "
                               "line 1\\u001b[0m\\n\\u001b[1;32m----> 1\\u001b[0m x',"
                               "  '\\u001b[38;5;196mNameError\\u001b[39m: name \\u0027x\\u0027 is not "
                               "defined\\u001b]8;;http://x\\u0007"
                               "link\\u001b]8;;\\u0007\\u001b[K']"
                               "}"
                               ",{'output_type': 'stream', 'name': 'stderr', 'text': "
                               "'\\u001b[33mWARNING\\u001b[0m: <careful>\\n'}");

        assert_not_contains(html, "\033");
        assert_not_contains(html, "[0;31m");
        assert_not_contains(html, "[0m");
        assert_not_contains(html, "38;5;196m");
        assert_not_contains(html, "8;;");
        assert_contains(html,
                        "<pre class=\"error\"><samp>NameError: name &#39;x&#39; is not defined\n"
                        "------------------------\n"
                        "NameError Traceback (most recent call last)\nCell In[1], line 1\n----&gt; 1 x\n"
                        "NameError: name &#39;x&#39; is not defined"
                        "link</samp></pre>");
        assert_contains(html, "<pre class=\"stream stderr\"><samp>WARNING: &lt;careful&gt;\n</samp></pre>");
}

static void test_prompts(void **state) {
        _cleanup_free_ char *html = render(
                notebook("{'cell_type': 'code', 'metadata': {}, 'execution_count': 3, 'source': '1+1',"
                         " 'outputs': [{'output_type': 'execute_result', 'execution_count': 3, 'metadata': "
                         "{},"
                         "              'data': {'text/plain': '2'}}]},"
                         "{'cell_type': 'code', 'metadata': {}, 'execution_count': null, 'source': '', "
                         "'outputs': []},"
                         "{'cell_type': 'code', 'metadata': {}, 'execution_count': 'x', 'source': 'y'},"
                         "{'cell_type': 'heading', 'metadata': {}, 'source': 'NOT SHOWN', 'level': 1},"
                         "{'cell_type': 'raw', 'metadata': {}, 'source': 'a\\nb'}"),
                "t");

        assert_contains(
                html, "<div class=\"prompt\">In [3]:</div><div class=\"body\"><pre><code>1+1</code></pre>");
        assert_contains(html, "<div class=\"prompt out\">Out [3]:</div><div class=\"body\"><pre "
                              "class=\"result\"><samp>2</samp></pre>");
        assert_contains(html,
                        "<div class=\"prompt\">In [ ]:</div><div class=\"body\"><pre><code></code></pre>");
        assert_contains(html,
                        "<div class=\"prompt\">In [ ]:</div><div class=\"body\"><pre><code>y</code></pre>");
        assert_not_contains(html, "NOT SHOWN");
        assert_contains(html, "<pre class=\"raw\"><code>a\nb</code></pre>");
        assert_int_equal(count(html, "<div class=\"cell "), 4);
}

static void test_invalid_notebooks(void **state) {
        static const char *const cases[] = {
                "[]",
                "'notebook'",
                "{}",
                "{'nbformat': 3, 'nbformat_minor': 0, 'worksheets': [{'cells': []}], 'metadata': {}}",
                "{'nbformat': 3, 'cells': []}",
                "{'nbformat': 5, 'cells': []}",
                "{'nbformat': '4', 'cells': []}",
                "{'nbformat': 4.0, 'cells': []}",
                "{'cells': []}",
                "{'nbformat': 4}",
                "{'nbformat': 4, 'cells': {}}",
                "{'nbformat': 4, 'cells': null}",
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(dj_error_done) DjError err = DJ_ERROR_INIT;
                json_t *nb = parse(cases[i]);
                char *html = NULL;
                size_t len = 4242;

                assert_int_equal(preview_render(nb, "t", &html, &len, &err), -EINVAL);
                assert_int_equal(err.kind, DJ_E_INVALID);
                assert_non_null(err.message);
                assert_null(html);
                assert_int_equal(len, 4242);
                json_decref(nb);
        }

        _cleanup_(dj_error_done) DjError err = DJ_ERROR_INIT;
        json_t *nb = parse("{'nbformat': 3, 'cells': []}");
        char *html = NULL;
        assert_int_equal(preview_render(nb, "t", &html, NULL, &err), -EINVAL);
        assert_string_equal(err.message, "the notebook is in nbformat 3, only nbformat 4 is supported");
        json_decref(nb);
        nb = parse("{'nbformat': 4, 'nbformat_minor': 5}");
        assert_int_equal(preview_render(nb, "t", &html, NULL, NULL), -EINVAL);
        json_decref(nb);
}

/* Wrong types inside a valid notebook: a note or nothing, never a crash, never their text. */
static void test_bad_types(void **state) {
        _cleanup_free_ char *html = render(
                notebook(
                        "42, null, 'cell', [], {}, {'cell_type': 7},"
                        "{'cell_type': 'markdown', 'source': 42},"
                        "{'cell_type': 'markdown', 'source': ['a', 1, 'b']},"
                        "{'cell_type': 'markdown'},"
                        "{'cell_type': 'code', 'source': {'x': 1}},"
                        "{'cell_type': 'code', 'source': 'ok1', 'outputs': 'no'},"
                        "{'cell_type': 'code', 'source': 'ok2', 'outputs': [1, null, {}, {'output_type': 1},"
                        "  {'output_type': 'stream', 'name': 5, 'text': 5},"
                        "  {'output_type': 'stream', 'text': ['a', {}]},"
                        "  {'output_type': 'stream', 'name': 'stdout', 'text': ['ok3']},"
                        "  {'output_type': 'execute_result', 'data': 5, 'execution_count': -1},"
                        "  {'output_type': 'display_data'},"
                        "  {'output_type': 'display_data', 'data': {'text/plain': [1, 2]}},"
                        "  {'output_type': 'display_data', 'data': {'image/png': ['" PNG_1X1 "', 3]}},"
                        "  {'output_type': 'error'},"
                        "  {'output_type': 'error', 'ename': 1, 'evalue': [], 'traceback': 'x'},"
                        "  {'output_type': 'error', 'ename': 'E', 'evalue': 'v', 'traceback': [1, 'ok4', "
                        "null]},"
                        "  {'output_type': 'update_display_data', 'data': {'text/plain': 'NOT SHOWN'}}]},"
                        "{'cell_type': 'raw', 'source': []}"),
                "t");

        assert_contains(html, "<p class=\"note\">Cell 1 is not shown: it is not an nbformat 4 cell.</p>");
        assert_contains(html, "<p class=\"note\">Cell 7 is not shown: its source is not text.</p>");
        assert_contains(html, "<p class=\"note\">Cell 8 is not shown: its source is not text.</p>");
        assert_contains(html, "<p class=\"note\">Cell 9 is not shown: its source is not text.</p>");
        assert_contains(html, "<p class=\"note\">Cell 10 is not shown: its source is not text.</p>");
        assert_contains(html, "<code>ok1</code>");
        assert_contains(html,
                        "<p class=\"note\">The outputs of cell 11 are not shown: they are not a list.</p>");
        assert_contains(
                html,
                "<p class=\"note\">Output 1 of cell 12 is not shown: it is not an nbformat 4 output.</p>");
        assert_contains(html,
                        "<p class=\"note\">Output 5 of cell 12 is not shown: its text is not a string.</p>");
        assert_contains(html,
                        "<p class=\"note\">Output 6 of cell 12 is not shown: its text is not a string.</p>");
        assert_contains(html, "<pre class=\"stream stdout\"><samp>ok3</samp></pre>");
        assert_contains(html, "<div class=\"prompt out\">Out [-1]:</div>");
        assert_contains(html, "<pre class=\"error\"><samp>: </samp></pre>");
        assert_contains(html, "<pre class=\"error\"><samp>E: v\nok4</samp></pre>");
        assert_not_contains(html, "<img");
        assert_not_contains(html, "NOT SHOWN");
        assert_contains(html, "<pre class=\"raw\"><code></code></pre>");
}

static void test_array_equals_string(void **state) {
        static const char *const as_strings =
                "{'cell_type': 'markdown', 'metadata': {}, 'source': '# Title\\n\\n| a | b "
                "|\\n|---|---|\\n| "
                "1 | 2 |\\n\\n[l](javascript:x) *e*'},"
                "{'cell_type': 'code', 'metadata': {}, 'execution_count': 2, 'source': 'import os\\nprint(1 "
                "< "
                "2)\\n', 'outputs': ["
                " {'output_type': 'stream', 'name': 'stdout', 'text': 'True\\nmore\\n'},"
                " {'output_type': 'execute_result', 'execution_count': 2, 'metadata': {}, 'data': "
                "{'text/plain': "
                "'a\\nb', 'image/png': '" PNG_1X1 "'}}]},"
                "{'cell_type': 'raw', 'metadata': {}, 'source': 'r1\\nr2'}";
        static const char *const as_arrays =
                "{'cell_type': 'markdown', 'metadata': {}, 'source': ['# Title\\n', '\\n', '| a | b |\\n', "
                "'|---|---|\\n', '| 1 | 2 |\\n', '\\n', '[l](javascript:x) *e*']},"
                "{'cell_type': 'code', 'metadata': {}, 'execution_count': 2, 'source': ['import os\\n', "
                "'print(1 "
                "< 2)\\n'], 'outputs': ["
                " {'output_type': 'stream', 'name': 'stdout', 'text': ['True\\n', 'more\\n']},"
                " {'output_type': 'execute_result', 'execution_count': 2, 'metadata': {}, 'data': "
                "{'text/plain': "
                "['a\\n', 'b'], 'image/png': "
                "['iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/"
                "\\n', 'iZk9HQAAAABJRU5ErkJggg==\\n']}}]},"
                "{'cell_type': 'raw', 'metadata': {}, 'source': ['r1\\n', 'r2']}";
        _cleanup_free_ char *a = render(notebook(as_strings), "Same"),
                            *b = render(notebook(as_arrays), "Same");

        assert_string_equal(a, b);
        assert_contains(a, "<a href=\"#\">l</a>");
        assert_contains(a, "<pre><code>import os\nprint(1 &lt; 2)\n</code></pre>");
}

static void test_deterministic(void **state) {
        static const char *const cells =
                "{'cell_type': 'markdown', 'metadata': {}, 'source': '# A\\n\\n- one\\n- two'},"
                "{'cell_type': 'code', 'metadata': {'tags': []}, 'execution_count': 1, 'source': 'x', "
                "'outputs': ["
                " {'output_type': 'display_data', 'metadata': {}, 'data': {'text/plain': 'p', 'image/jpeg': "
                "'" JPEG_HEAD "', 'text/html': '<i>h</i>'}},"
                " {'output_type': 'error', 'ename': 'E', 'evalue': 'v', 'traceback': "
                "['\\u001b[31mE\\u001b[0m']}]}";
        json_t *nb = notebook(cells);
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;
        size_t la, lb;

        assert_int_equal(preview_render(nb, "T", &a, &la, NULL), 0);
        assert_int_equal(preview_render(nb, "T", &b, &lb, NULL), 0);
        json_decref(nb);
        assert_int_equal(la, lb);
        assert_memory_equal(a, b, la);
        c = render(notebook(cells), "T");
        assert_string_equal(a, c);
        assert_html_safe(a);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_page),
                cmocka_unit_test(test_script_escaped),
                cmocka_unit_test(test_img_onerror_escaped),
                cmocka_unit_test(test_markdown_gfm),
                cmocka_unit_test(test_markdown_links),
                cmocka_unit_test(test_images),
                cmocka_unit_test(test_ansi_stripped),
                cmocka_unit_test(test_prompts),
                cmocka_unit_test(test_invalid_notebooks),
                cmocka_unit_test(test_bad_types),
                cmocka_unit_test(test_array_equals_string),
                cmocka_unit_test(test_deterministic),
        };

        return cmocka_run_group_tests_name("preview", tests, NULL, NULL);
}
