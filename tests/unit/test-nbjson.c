/* SPDX-License-Identifier: MIT */
/* Jupyter's canonical JSON (nbjson.h). Every expected string below was printed by CPython 3.11 itself:
 *     repr(x)                                   for nbjson_format_real()
 *     s.splitlines(keepends=True)               for nbjson_splitlines()
 *     json.dumps(v, sort_keys=True, ensure_ascii=False, indent=1, separators=(",", ": "))  (NBJSON_INDENT)
 *     json.dumps(v, sort_keys=True, ensure_ascii=False, separators=(",", ":"))             (compact)
 * and, for NBJSON_PYTHON_EMBED, the same with ' U+0085 U+2028 U+2029 then replaced by their \uXXXX escapes
 * (json.loads() of that gives v back). Never regenerate them from this C code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dj-macro.h"
#include "nbjson.h"

static void test_format_real(void **state) {
        static const struct {
                double x;
                const char *repr;
        } cases[] = {
                { 0.0, "0.0" },
                { -0.0, "-0.0" },
                { 1.0, "1.0" },
                { -1.0, "-1.0" },
                { 0.1, "0.1" },
                { 0.1 + 0.2, "0.30000000000000004" },
                { 0.5, "0.5" },
                { 2.5, "2.5" },
                { -2.5, "-2.5" },
                { 100.0, "100.0" },
                { 123.0, "123.0" },
                { 3.14159, "3.14159" },
                { 2.0 / 3, "0.6666666666666666" },
                { 1.0 / 3, "0.3333333333333333" },
                { 0.004187, "0.004187" },
                { 12.345678, "12.345678" },
                { 0.000123, "0.000123" },
                { 1e15, "1000000000000000.0" },
                { 1e16, "1e+16" },
                { 9999999999999998.0, "9999999999999998.0" },
                { 1234567890123456.0, "1234567890123456.0" },
                { 12345678901234567.0, "1.2345678901234568e+16" },
                { 9007199254740993.0, "9007199254740992.0" },
                { 1e-4, "0.0001" },
                { 1e-5, "1e-05" },
                { 0.001, "0.001" },
                { 0.00012345, "0.00012345" },
                { 0.000012345, "1.2345e-05" },
                { 123456789.125, "123456789.125" },
                { 123456.789, "123456.789" },
                { -123.456, "-123.456" },
                { 1.5e300, "1.5e+300" },
                { 1e100, "1e+100" },
                { 1e21, "1e+21" },
                { 1e22, "1e+22" },
                { 1e23, "1e+23" },
                { -1e-7, "-1e-07" },
                { 5e-324, "5e-324" },
                { 1e-323, "1e-323" },
                { 2.2250738585072014e-308, "2.2250738585072014e-308" },
                { 2.225073858507201e-308, "2.225073858507201e-308" },
                { 1.7976931348623157e308, "1.7976931348623157e+308" },
                { 4.35, "4.35" },
                { 0.07, "0.07" },
                { 1.1 * 1.1, "1.2100000000000002" },
                { 0x1p-24, "5.960464477539063e-08" },
                { 0x1p-44, "5.684341886080802e-14" },
                { 0x1p89, "6.189700196426902e+26" },
                { 0x1p-1017, "7.120236347223045e-307" },
                { 0x1p53, "9007199254740992.0" },
                { 0x1p63, "9.223372036854776e+18" },
                { 1e-6, "1e-06" },
                { 99.99, "99.99" },
                { -0.0001, "-0.0001" },
                { 1.0e-4 * 9.99, "0.000999" },
                { 299792458.0, "299792458.0" },
                { 6.02214076e23, "6.02214076e+23" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char buf[NBJSON_REAL_MAX];
                size_t n;

                memset(buf, 'X', sizeof(buf));
                n = nbjson_format_real(cases[i].x, buf);
                if (!streq(buf, cases[i].repr))
                        fail_msg("case %zu (%.17g): got '%s', Python says '%s'", i, cases[i].x, buf,
                                 cases[i].repr);
                assert_int_equal(n, strlen(cases[i].repr));
        }
}

/* Not against Python, but a property Python's repr has for every double: it reads back as the same value
 * (bit for bit: -0.0 stays negative), and it fits in NBJSON_REAL_MAX. */
static void test_format_real_round_trip(void **state) {
        uint64_t seed = UINT64_C(0x9e3779b97f4a7c15);

        for (unsigned i = 0; i < 50000; i++) {
                char buf[NBJSON_REAL_MAX];
                uint64_t bits;
                double x, back;
                size_t n;

                seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17; /* xorshift64 */
                bits = seed;
                memcpy(&x, &bits, sizeof(x));
                if (!isfinite(x))
                        continue;
                n = nbjson_format_real(x, buf);
                assert_true(n > 0 && n < NBJSON_REAL_MAX);
                assert_int_equal(n, strlen(buf));
                back = strtod(buf, NULL);
                if (memcmp(&back, &x, sizeof(x)) != 0)
                        fail_msg("%a printed as '%s', which reads back as %a", x, buf, back);
                assert_true(strchr(buf, '.') || strchr(buf, 'e'));
        }
}

static void test_splitlines(void **state) {
        static const struct {
                const char *text;
                const char *lines[8]; /* NULL-terminated */
        } cases[] = {
                { "", { NULL } },
                { "a", { "a", NULL } },
                { "a\nb", { "a\n", "b", NULL } },
                { "a\nb\n", { "a\n", "b\n", NULL } },
                { "a\r\nb", { "a\r\n", "b", NULL } },
                { "a\r\r\nb", { "a\r", "\r\n", "b", NULL } },
                { "a\rb", { "a\r", "b", NULL } },
                { "a\n\rb", { "a\n", "\r", "b", NULL } },
                { "\n\r", { "\n", "\r", NULL } },
                { "one\vtwo", { "one\v", "two", NULL } },
                { "one\ftwo", { "one\f", "two", NULL } },
                { "fs\x1cgs\x1drs\x1eus\x1f", { "fs\x1c", "gs\x1d", "rs\x1e", "us\x1f", NULL } },
                { "nel\xc2\x85next", { "nel\xc2\x85", "next", NULL } },
                { "ls\xe2\x80\xa8ps\xe2\x80\xa9"
                  "end",
                  { "ls\xe2\x80\xa8", "ps\xe2\x80\xa9", "end", NULL } },
                { "not‧a\xc2\xa0"
                  "break",
                  { "not‧a\xc2\xa0"
                    "break",
                    NULL } },
                { "\n\n\n", { "\n", "\n", "\n", NULL } },
                { "\r\n\r\n", { "\r\n", "\r\n", NULL } },
                { "x = 1\r\n\r\ny = 2", { "x = 1\r\n", "\r\n", "y = 2", NULL } },
                { "héllo\nwörld 🎉\n日本語", { "héllo\n", "wörld 🎉\n", "日本語", NULL } },
                { "\r", { "\r", NULL } },
                { "\t tab\n  indented\n", { "\t tab\n", "  indented\n", NULL } },
                { "last\r\n", { "last\r\n", NULL } },
                { "\xe2\x80\xa8", { "\xe2\x80\xa8", NULL } },
                { "é\xc2\x85é", { "é\xc2\x85", "é", NULL } },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                json_auto_t *lines = nbjson_splitlines(cases[i].text, strlen(cases[i].text));
                size_t n = 0;

                assert_non_null(lines);
                assert_true(json_is_array(lines));
                while (cases[i].lines[n])
                        n++;
                if (json_array_size(lines) != n)
                        fail_msg("case %zu: %zu lines, Python says %zu", i, json_array_size(lines), n);
                for (size_t j = 0; j < n; j++) {
                        json_t *line = json_array_get(lines, j);

                        assert_true(json_is_string(line));
                        assert_int_equal(json_string_length(line), strlen(cases[i].lines[j]));
                        assert_string_equal(json_string_value(line), cases[i].lines[j]);
                }
        }
}

/* Length-aware: a NUL is an ordinary character, and only the given bytes are looked at. */
/* nbjson_join_lines() undoes nbjson_splitlines(): a string or lines, NULs kept; anything else refused. */
static void test_join_lines(void **state) {
        static const char text[] = "one\r\ntwo\0\u2028three";
        json_auto_t *lines = nbjson_splitlines(text, sizeof(text) - 1);
        json_auto_t *one = json_stringn(text, sizeof(text) - 1);
        json_auto_t *empty = json_array();
        json_auto_t *mixed = json_pack("[s,i]", "a", 1);
        json_auto_t *number = json_integer(3);
        char *s = NULL;
        size_t n = 0;

        assert_int_equal(json_array_size(lines), 3);
        assert_int_equal(nbjson_join_lines(lines, &s, &n), 0);
        assert_int_equal(n, sizeof(text) - 1);
        assert_memory_equal(s, text, sizeof(text));
        s = mfree(s);
        assert_int_equal(nbjson_join_lines(one, &s, &n), 0);
        assert_int_equal(n, sizeof(text) - 1);
        assert_memory_equal(s, text, sizeof(text));
        s = mfree(s);
        assert_int_equal(nbjson_join_lines(empty, &s, NULL), 0);
        assert_string_equal(s, "");
        s = mfree(s);
        assert_int_equal(nbjson_join_lines(mixed, &s, &n), -EINVAL);
        assert_int_equal(nbjson_join_lines(number, &s, &n), -EINVAL);
        assert_int_equal(nbjson_join_lines(NULL, &s, &n), -EINVAL);
        assert_null(s);
}

static void test_splitlines_nul(void **state) {
        static const char text[] = "a\0b\r\nc\0"; /* Python: ['a\x00b\r\n', 'c\x00'] */
        json_auto_t *lines = nbjson_splitlines(text, sizeof(text) - 1);
        json_auto_t *prefix = nbjson_splitlines("a\r\nb", 2); /* "a\r" then the "\n" is not part of it */
        json_auto_t *empty = nbjson_splitlines(NULL, 0);

        assert_non_null(lines);
        assert_int_equal(json_array_size(lines), 2);
        assert_int_equal(json_string_length(json_array_get(lines, 0)), 5);
        assert_memory_equal(json_string_value(json_array_get(lines, 0)), "a\0b\r\n", 5);
        assert_int_equal(json_string_length(json_array_get(lines, 1)), 2);
        assert_memory_equal(json_string_value(json_array_get(lines, 1)), "c\0", 2);

        assert_non_null(prefix);
        assert_int_equal(json_array_size(prefix), 1);
        assert_string_equal(json_string_value(json_array_get(prefix, 0)), "a\r");

        assert_non_null(empty);
        assert_int_equal(json_array_size(empty), 0);
}

typedef struct DumpsCase {
        const char *json;
        const char *compact, *indent;
        const char *embed_compact, *embed_indent; /* NULL: same as without NBJSON_PYTHON_EMBED */
} DumpsCase;

static const DumpsCase dumps_cases[] = {
        {
                .json = "{\"b\": 1, \"a\": {\"z\": [], \"y\": {}, \"x\": [1, 2.5, \"s\"]}, \"A\": null, "
                        "\"_\": true, \"aa\": false, \"a0\": -3}",
                .compact = "{\"A\":null,\"_\":true,\"a\":{\"x\":[1,2.5,\"s\"],\"y\":{},\"z\":[]},\"a0\":-3,"
                           "\"aa\":false,\"b\":1}",
                .indent = "{\n"
                          " \"A\": null,\n"
                          " \"_\": true,\n"
                          " \"a\": {\n"
                          "  \"x\": [\n"
                          "   1,\n"
                          "   2.5,\n"
                          "   \"s\"\n"
                          "  ],\n"
                          "  \"y\": {},\n"
                          "  \"z\": []\n"
                          " },\n"
                          " \"a0\": -3,\n"
                          " \"aa\": false,\n"
                          " \"b\": 1\n"
                          "}",
        },
        {
                .json = "{\"cells\": [], \"metadata\": {}, \"deep\": [[], {}, [[]], [{}], {\"e\": {\"f\": "
                        "[]}}]}",
                .compact = "{\"cells\":[],\"deep\":[[],{},[[]],[{}],{\"e\":{\"f\":[]}}],\"metadata\":{}}",
                .indent = "{\n"
                          " \"cells\": [],\n"
                          " \"deep\": [\n"
                          "  [],\n"
                          "  {},\n"
                          "  [\n"
                          "   []\n"
                          "  ],\n"
                          "  [\n"
                          "   {}\n"
                          "  ],\n"
                          "  {\n"
                          "   \"e\": {\n"
                          "    \"f\": []\n"
                          "   }\n"
                          "  }\n"
                          " ],\n"
                          " \"metadata\": {}\n"
                          "}",
        },
        {
                .json = "[]",
                .compact = "[]",
                .indent = "[]",
        },
        {
                .json = "{}",
                .compact = "{}",
                .indent = "{}",
        },
        {
                .json = "\"str\"",
                .compact = "\"str\"",
                .indent = "\"str\"",
        },
        {
                .json = "42",
                .compact = "42",
                .indent = "42",
        },
        {
                .json = "-0.0",
                .compact = "-0.0",
                .indent = "-0.0",
        },
        {
                .json = "null",
                .compact = "null",
                .indent = "null",
        },
        {
                .json = "[[[[{\"k\": [1, {\"j\": true}]}]]]]",
                .compact = "[[[[{\"k\":[1,{\"j\":true}]}]]]]",
                .indent = "[\n"
                          " [\n"
                          "  [\n"
                          "   [\n"
                          "    {\n"
                          "     \"k\": [\n"
                          "      1,\n"
                          "      {\n"
                          "       \"j\": true\n"
                          "      }\n"
                          "     ]\n"
                          "    }\n"
                          "   ]\n"
                          "  ]\n"
                          " ]\n"
                          "]",
        },
        {
                .json = "[\"\\u0001\", \"\\u001b[31mred\\u001b[0m\", \"\\u0000nul\", \"\\b\\f\\n\\r\\t\", "
                        "\"\\u007f\", \"\\u001f\", \"quote \\\" back \\\\ slash /\", "
                        "\"\\u000b\\u000c\\u001c\"]",
                .compact = "[\"\\u0001\",\"\\u001b[31mred\\u001b[0m\",\"\\u0000nul\",\"\\b\\f\\n\\r\\t\","
                           "\"\x7f\",\"\\u001f\",\"quote \\\" back \\\\ slash /\",\"\\u000b\\f\\u001c\"]",
                .indent = "[\n"
                          " \"\\u0001\",\n"
                          " \"\\u001b[31mred\\u001b[0m\",\n"
                          " \"\\u0000nul\",\n"
                          " \"\\b\\f\\n\\r\\t\",\n"
                          " \"\x7f\",\n"
                          " \"\\u001f\",\n"
                          " \"quote \\\" back \\\\ slash /\",\n"
                          " \"\\u000b\\f\\u001c\"\n"
                          "]",
        },
        {
                .json = "[\"é\", \"🎉\", \"\xe2\x80\xa8\", \"\xe2\x80\xa9\", \"\xc2\x85\", \"it's\", "
                        "\"日本語\", \"café\xe2\x80\xa8x\"]",
                .compact = "[\"é\",\"🎉\",\"\xe2\x80\xa8\",\"\xe2\x80\xa9\",\"\xc2\x85\",\"it's\",\"日本語\","
                           "\"café\xe2\x80\xa8x\"]",
                .indent = "[\n"
                          " \"é\",\n"
                          " \"🎉\",\n"
                          " \"\xe2\x80\xa8\",\n"
                          " \"\xe2\x80\xa9\",\n"
                          " \"\xc2\x85\",\n"
                          " \"it's\",\n"
                          " \"日本語\",\n"
                          " \"café\xe2\x80\xa8x\"\n"
                          "]",
                .embed_compact = "[\"é\",\"🎉\",\"\\u2028\",\"\\u2029\",\"\\u0085\",\"it\\u0027s\","
                                 "\"日本語\",\"café\\u2028x\"]",
                .embed_indent = "[\n"
                                " \"é\",\n"
                                " \"🎉\",\n"
                                " \"\\u2028\",\n"
                                " \"\\u2029\",\n"
                                " \"\\u0085\",\n"
                                " \"it\\u0027s\",\n"
                                " \"日本語\",\n"
                                " \"café\\u2028x\"\n"
                                "]",
        },
        {
                .json = "{\"é\": 1, \"z\": 2, \"ä\": 3, \"Z\": 4, \"🎉\": 5, \"ÿ\": 6, \"￮\": 7, \"ab\": 8, "
                        "\"a\": 9, \"\": 10}",
                .compact =
                        "{\"\":10,\"Z\":4,\"a\":9,\"ab\":8,\"z\":2,\"ä\":3,\"é\":1,\"ÿ\":6,\"￮\":7,\"🎉\":5}",
                .indent = "{\n"
                          " \"\": 10,\n"
                          " \"Z\": 4,\n"
                          " \"a\": 9,\n"
                          " \"ab\": 8,\n"
                          " \"z\": 2,\n"
                          " \"ä\": 3,\n"
                          " \"é\": 1,\n"
                          " \"ÿ\": 6,\n"
                          " \"￮\": 7,\n"
                          " \"🎉\": 5\n"
                          "}",
        },
        {
                .json = "[0.1, 1e16, 1e-5, 2.5, -0.0, 100.0, 5e-324, 1.7976931348623157e308, "
                        "0.30000000000000004, 1e22, 0.004187, 1, -1, 0, 9223372036854775807, "
                        "-9223372036854775808]",
                .compact =
                        "[0.1,1e+16,1e-05,2.5,-0.0,100.0,5e-324,1.7976931348623157e+308,0.30000000000000004,"
                        "1e+22,0.004187,1,-1,0,9223372036854775807,-9223372036854775808]",
                .indent = "[\n"
                          " 0.1,\n"
                          " 1e+16,\n"
                          " 1e-05,\n"
                          " 2.5,\n"
                          " -0.0,\n"
                          " 100.0,\n"
                          " 5e-324,\n"
                          " 1.7976931348623157e+308,\n"
                          " 0.30000000000000004,\n"
                          " 1e+22,\n"
                          " 0.004187,\n"
                          " 1,\n"
                          " -1,\n"
                          " 0,\n"
                          " 9223372036854775807,\n"
                          " -9223372036854775808\n"
                          "]",
        },
        {
                .json = "{\"a\\\"b\": 1, \"a\\nb\": 2, \"a'b\": 3, \"\\u2028\": 4, \"a\\\\b\": {\"it's\": "
                        "\"don't\"}}",
                .compact = "{\"a\\nb\":2,\"a\\\"b\":1,\"a'b\":3,\"a\\\\b\":{\"it's\":\"don't\"},"
                           "\"\xe2\x80\xa8\":4}",
                .indent = "{\n"
                          " \"a\\nb\": 2,\n"
                          " \"a\\\"b\": 1,\n"
                          " \"a'b\": 3,\n"
                          " \"a\\\\b\": {\n"
                          "  \"it's\": \"don't\"\n"
                          " },\n"
                          " \"\xe2\x80\xa8\": 4\n"
                          "}",
                .embed_compact = "{\"a\\nb\":2,\"a\\\"b\":1,\"a\\u0027b\":3,\"a\\\\b\":{\"it\\u0027s\":"
                                 "\"don\\u0027t\"},\"\\u2028\":4}",
                .embed_indent = "{\n"
                                " \"a\\nb\": 2,\n"
                                " \"a\\\"b\": 1,\n"
                                " \"a\\u0027b\": 3,\n"
                                " \"a\\\\b\": {\n"
                                "  \"it\\u0027s\": \"don\\u0027t\"\n"
                                " },\n"
                                " \"\\u2028\": 4\n"
                                "}",
        },
        {
                .json = "{\"cells\": [{\"cell_type\": \"code\", \"execution_count\": null, \"metadata\": "
                        "{}, \"outputs\": [], \"source\": [\"import django\\n\", \"print('hi')\"]}, "
                        "{\"cell_type\": \"markdown\", \"metadata\": {\"tags\": []}, \"source\": [\"# Title "
                        "\\u2014 r\\u00e9sum\\u00e9\"]}], \"metadata\": {\"kernelspec\": {\"display_name\": "
                        "\"Python 3\", \"language\": \"python\", \"name\": \"python3\"}, \"language_info\": "
                        "{\"name\": \"python\"}}, \"nbformat\": 4, \"nbformat_minor\": 5}",
                .compact = "{\"cells\":[{\"cell_type\":\"code\",\"execution_count\":null,\"metadata\":{},"
                           "\"outputs\":[],\"source\":[\"import "
                           "django\\n\",\"print('hi')\"]},{\"cell_type\":\"markdown\",\"metadata\":{"
                           "\"tags\":[]},\"source\":[\"# Title — "
                           "résumé\"]}],\"metadata\":{\"kernelspec\":{\"display_name\":\"Python "
                           "3\",\"language\":\"python\",\"name\":\"python3\"},\"language_info\":{\"name\":"
                           "\"python\"}},\"nbformat\":4,\"nbformat_minor\":5}",
                .indent = "{\n"
                          " \"cells\": [\n"
                          "  {\n"
                          "   \"cell_type\": \"code\",\n"
                          "   \"execution_count\": null,\n"
                          "   \"metadata\": {},\n"
                          "   \"outputs\": [],\n"
                          "   \"source\": [\n"
                          "    \"import django\\n\",\n"
                          "    \"print('hi')\"\n"
                          "   ]\n"
                          "  },\n"
                          "  {\n"
                          "   \"cell_type\": \"markdown\",\n"
                          "   \"metadata\": {\n"
                          "    \"tags\": []\n"
                          "   },\n"
                          "   \"source\": [\n"
                          "    \"# Title — résumé\"\n"
                          "   ]\n"
                          "  }\n"
                          " ],\n"
                          " \"metadata\": {\n"
                          "  \"kernelspec\": {\n"
                          "   \"display_name\": \"Python 3\",\n"
                          "   \"language\": \"python\",\n"
                          "   \"name\": \"python3\"\n"
                          "  },\n"
                          "  \"language_info\": {\n"
                          "   \"name\": \"python\"\n"
                          "  }\n"
                          " },\n"
                          " \"nbformat\": 4,\n"
                          " \"nbformat_minor\": 5\n"
                          "}",
                .embed_compact = "{\"cells\":[{\"cell_type\":\"code\",\"execution_count\":null,\"metadata\":"
                                 "{},\"outputs\":[],\"source\":[\"import "
                                 "django\\n\",\"print(\\u0027hi\\u0027)\"]},{\"cell_type\":\"markdown\","
                                 "\"metadata\":{\"tags\":[]},\"source\":[\"# Title — "
                                 "résumé\"]}],\"metadata\":{\"kernelspec\":{\"display_name\":\"Python "
                                 "3\",\"language\":\"python\",\"name\":\"python3\"},\"language_info\":{"
                                 "\"name\":\"python\"}},\"nbformat\":4,\"nbformat_minor\":5}",
                .embed_indent = "{\n"
                                " \"cells\": [\n"
                                "  {\n"
                                "   \"cell_type\": \"code\",\n"
                                "   \"execution_count\": null,\n"
                                "   \"metadata\": {},\n"
                                "   \"outputs\": [],\n"
                                "   \"source\": [\n"
                                "    \"import django\\n\",\n"
                                "    \"print(\\u0027hi\\u0027)\"\n"
                                "   ]\n"
                                "  },\n"
                                "  {\n"
                                "   \"cell_type\": \"markdown\",\n"
                                "   \"metadata\": {\n"
                                "    \"tags\": []\n"
                                "   },\n"
                                "   \"source\": [\n"
                                "    \"# Title — résumé\"\n"
                                "   ]\n"
                                "  }\n"
                                " ],\n"
                                " \"metadata\": {\n"
                                "  \"kernelspec\": {\n"
                                "   \"display_name\": \"Python 3\",\n"
                                "   \"language\": \"python\",\n"
                                "   \"name\": \"python3\"\n"
                                "  },\n"
                                "  \"language_info\": {\n"
                                "   \"name\": \"python\"\n"
                                "  }\n"
                                " },\n"
                                " \"nbformat\": 4,\n"
                                " \"nbformat_minor\": 5\n"
                                "}",
        },
};

static json_t *parse(const char *text) {
        json_error_t err;
        json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);

        if (!j)
                fail_msg("bad test JSON at %d: %s", err.position, err.text);
        return j;
}

static void assert_dumps(const char *what, const json_t *v, NbJsonFlags flags, const char *expected,
                         size_t expected_len) {
        _cleanup_free_ char *got = NULL;
        size_t len = SIZE_MAX;

        assert_int_equal(nbjson_dumps(v, flags, &got, &len), 0);
        assert_non_null(got);
        assert_int_equal(got[len], '\0');
        if (len != expected_len || memcmp(got, expected, len) != 0)
                fail_msg("%s, flags %d:\ngot\n%.*s\nPython says\n%.*s", what, (int) flags, (int) len, got,
                         (int) expected_len, expected);
}

static void test_dumps(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(dumps_cases); i++) {
                const DumpsCase *c = &dumps_cases[i];
                json_auto_t *v = parse(c->json);
                const char *ec = c->embed_compact ?: c->compact, *ei = c->embed_indent ?: c->indent;

                assert_dumps(c->json, v, 0, c->compact, strlen(c->compact));
                assert_dumps(c->json, v, NBJSON_INDENT, c->indent, strlen(c->indent));
                assert_dumps(c->json, v, NBJSON_PYTHON_EMBED, ec, strlen(ec));
                assert_dumps(c->json, v, NBJSON_INDENT | NBJSON_PYTHON_EMBED, ei, strlen(ei));
        }
}

/* Keys are compared with their lengths: a key with a NUL in it (only json_object_setn() makes one) sorts
 * after its prefix, as in Python. */
static void test_dumps_nul_keys(void **state) {
#if JANSSON_VERSION_HEX >= 0x020e00
        /* Python: json.dumps({"a\0b": 1, "a": 2, "a\0": 3, "\0": [], "b\x85": "\x85"}, sort_keys=True,
         *                    separators=(",", ":"), ensure_ascii=False) */
        static const char expected[] =
                "{\"\\u0000\":[],\"a\":2,\"a\\u0000\":3,\"a\\u0000b\":1,\"b\xc2\x85\":\"\xc2\x85\"}";
        static const char embedded[] =
                "{\"\\u0000\":[],\"a\":2,\"a\\u0000\":3,\"a\\u0000b\":1,\"b\\u0085\":\"\\u0085\"}";
        json_auto_t *v = json_object();

        assert_non_null(v);
        assert_int_equal(json_object_setn_new(v, "a\0b", 3, json_integer(1)), 0);
        assert_int_equal(json_object_setn_new(v, "a", 1, json_integer(2)), 0);
        assert_int_equal(json_object_setn_new(v, "a\0", 2, json_integer(3)), 0);
        assert_int_equal(json_object_setn_new(v, "\0", 1, json_array()), 0);
        assert_int_equal(json_object_setn_new(v, "b\xc2\x85", 3, json_string("\xc2\x85")), 0);
        assert_dumps("NUL keys", v, 0, expected, sizeof(expected) - 1);
        assert_dumps("NUL keys", v, NBJSON_PYTHON_EMBED, embedded, sizeof(embedded) - 1);
#else
        skip();
#endif
}

/* Embedded NUL bytes in a string value, and a NULL ret_len. */
static void test_dumps_misc(void **state) {
        json_auto_t *v = json_stringn("a\0b", 3);
        _cleanup_free_ char *text = NULL;

        assert_non_null(v);
        assert_dumps("NUL in a string", v, 0, "\"a\\u0000b\"", 10); /* Python: json.dumps("a\0b") */
        assert_int_equal(nbjson_dumps(v, NBJSON_INDENT, &text, NULL), 0);
        assert_string_equal(text, "\"a\\u0000b\"");
}

/* A notebook of several MB: 500 models x 20 fields, with escapes, non-ASCII, reals and nesting. It must
 * serialize, parse back to an equal value in both forms, and not take long. */
static void test_dumps_large(void **state) {
        json_auto_t *models = json_array();
        _cleanup_free_ char *indented = NULL, *compact = NULL;
        size_t indented_len = 0, compact_len = 0;
        json_error_t err;
        struct timespec t0, t1;

        assert_non_null(models);
        for (unsigned m = 0; m < 500; m++) {
                json_t *fields = json_object();

                assert_non_null(fields);
                for (unsigned f = 0; f < 20; f++) {
                        char key[32], help[256];

                        (void) snprintf(key, sizeof(key), "field_%02u",
                                        (f * 7) % 20); /* inserted unsorted */
                        (void) snprintf(help, sizeof(help),
                                        "Field %u of model %u: \"quoted\", back\\slash, tab\t, newline\n, "
                                        "escape \x1b[0m, caf\xc3\xa9 \xf0\x9f\x8e\x89, line\xe2\x80\xa8sep, "
                                        "and it's long enough to weigh something.",
                                        f, m);
                        assert_int_equal(json_object_set_new(
                                                 fields, key,
                                                 json_pack("{s:s, s:i, s:f, s:b, s:n, s:[s, s], s:{}}",
                                                           "help_text", help, "max_length", m * f, "weight",
                                                           m / 7.0 + f * 1e-5, "null", f & 1, "default",
                                                           "choices", "a", "\xc3\xa9", "options")),
                                         0);
                }
                assert_int_equal(
                        json_array_append_new(models, json_pack("{s:o, s:s, s:f}", "fields", fields, "name",
                                                                "Model", "ratio", 1.0 / (m + 1))),
                        0);
        }

        assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &t0), 0);
        assert_int_equal(nbjson_dumps(models, NBJSON_INDENT, &indented, &indented_len), 0);
        assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &t1), 0);
        print_message("%zu bytes indented in %.1f ms\n", indented_len,
                      (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
        assert_true(indented_len > 2 * 1024 * 1024);
        assert_int_equal(strlen(indented), indented_len);

        assert_int_equal(nbjson_dumps(models, NBJSON_PYTHON_EMBED, &compact, &compact_len), 0);
        assert_true(compact_len < indented_len);
        assert_null(memchr(compact, '\n', compact_len));
        assert_null(memchr(compact, '\'', compact_len));

        {
                json_auto_t *back = json_loadb(indented, indented_len, 0, &err);
                json_auto_t *back_compact = json_loadb(compact, compact_len, 0, &err);

                if (!back || !back_compact)
                        fail_msg("output does not parse at %d: %s", err.position, err.text);
                assert_true(json_equal(back, models));
                assert_true(json_equal(back_compact, models));
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_format_real),    cmocka_unit_test(test_format_real_round_trip),
                cmocka_unit_test(test_splitlines),     cmocka_unit_test(test_splitlines_nul),
                cmocka_unit_test(test_join_lines),     cmocka_unit_test(test_dumps),
                cmocka_unit_test(test_dumps_nul_keys), cmocka_unit_test(test_dumps_misc),
                cmocka_unit_test(test_dumps_large),
        };

        return cmocka_run_group_tests_name("nbjson", tests, NULL, NULL);
}
