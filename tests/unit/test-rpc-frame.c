/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/buffer.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rpc-frame.h"

static struct evbuffer *buf_with(const char *s, size_t n) {
        struct evbuffer *b = evbuffer_new();

        assert_non_null(b);
        assert_int_equal(evbuffer_add(b, s, n), 0);
        return b;
}

static void test_split_reads(void **state) {
        const char *msg = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.info\"}\n";
        struct evbuffer *b = evbuffer_new();
        RpcFramer f;
        char *line = NULL;
        size_t len = 0;

        rpc_framer_init(&f, RPC_MAX_MESSAGE);
        /* One byte at a time: nothing pops until the newline arrives. */
        for (size_t i = 0; i < strlen(msg) - 1; i++) {
                assert_int_equal(evbuffer_add(b, msg + i, 1), 0);
                assert_int_equal(rpc_framer_pop(&f, b, &line, &len), 0);
        }
        assert_int_equal(evbuffer_add(b, "\n", 1), 0);
        assert_int_equal(rpc_framer_pop(&f, b, &line, &len), 1);
        assert_int_equal(len, strlen(msg) - 1);
        assert_memory_equal(line, msg, len);
        assert_int_equal(line[len], '\0');
        assert_int_equal(evbuffer_get_length(b), 0);
        free(line);
        evbuffer_free(b);
}

static void test_several_per_read(void **state) {
        static const char *const expected[] = { "{\"a\":1}", "", "[1]", "{\"b\":2}" };
        const char *text = "{\"a\":1}\n\n[1]\r\n{\"b\":2}\n{\"partial";
        struct evbuffer *b = buf_with(text, strlen(text));
        RpcFramer f;

        rpc_framer_init(&f, RPC_MAX_MESSAGE);
        for (size_t i = 0; i < 4; i++) {
                char *line = NULL;
                size_t len = 0;

                assert_int_equal(rpc_framer_pop(&f, b, &line, &len), 1);
                assert_string_equal(line, expected[i]);
                assert_int_equal(len, strlen(expected[i]));
                free(line);
        }
        char *line = NULL;
        size_t len;
        assert_int_equal(rpc_framer_pop(&f, b, &line, &len), 0);
        assert_int_equal(evbuffer_get_length(b), strlen("{\"partial"));
        evbuffer_free(b);
}

static void run_size(size_t content, int expected) {
        char *data = malloc(content + 1);
        struct evbuffer *b;
        RpcFramer f;
        char *line = NULL;
        size_t len = 0;

        assert_non_null(data);
        memset(data, ' ', content);
        data[content] = '\n';
        b = buf_with(data, content + 1);
        rpc_framer_init(&f, RPC_MAX_MESSAGE);
        assert_int_equal(rpc_framer_pop(&f, b, &line, &len), expected);
        if (expected == 1) {
                assert_int_equal(len, content);
                free(line);
        }
        evbuffer_free(b);
        free(data);
}

static void test_exactly_max(void **state) {
        run_size(RPC_MAX_MESSAGE, 1);
}

static void test_max_plus_one(void **state) {
        run_size(RPC_MAX_MESSAGE + 1, -EMSGSIZE);
}

static void test_partial_over_max(void **state) {
        /* No newline yet, but already more than a message may hold (one byte of slack for a "\r"). */
        size_t n = RPC_MAX_MESSAGE + 2;
        char *data = malloc(n);
        struct evbuffer *b;
        RpcFramer f;
        char *line = NULL;
        size_t len;

        assert_non_null(data);
        memset(data, 'x', n);
        b = buf_with(data, n - 1);
        rpc_framer_init(&f, RPC_MAX_MESSAGE);
        assert_int_equal(rpc_framer_pop(&f, b, &line, &len), 0);
        assert_int_equal(evbuffer_add(b, data, 1), 0);
        assert_int_equal(rpc_framer_pop(&f, b, &line, &len), -EMSGSIZE);
        evbuffer_free(b);
        free(data);
}

static void test_parse(void **state) {
        static const struct {
                const char *text;
                int code;
                int is_null; /* blank line */
        } cases[] = {
                { "{\"jsonrpc\":\"2.0\",\"method\":\"x\"}", 0, 0 },
                { "[{\"jsonrpc\":\"2.0\",\"method\":\"x\"}]", 0, 0 },
                { "", 0, 1 },
                { "   \t ", 0, 1 },
                { "{", RPC_PARSE_ERROR, 0 },
                { "42", RPC_INVALID_REQUEST, 0 },
                { "\"str\"", RPC_INVALID_REQUEST, 0 },
                { "null", RPC_INVALID_REQUEST, 0 },
                { "[]", RPC_INVALID_REQUEST, 0 },
                { "{\"a\":1,\"a\":2}", RPC_PARSE_ERROR, 0 }, /* duplicate keys are refused */
                { "{\"a\":\"\xff\xfe\"}", RPC_PARSE_ERROR, 0 },
                { "{\"a\":\"\xc3\"}", RPC_PARSE_ERROR, 0 },
                { "{} {}", RPC_PARSE_ERROR, 0 },
        };
        json_t *nul = NULL;
        const char *nul_why = NULL;

        /* A NUL byte is not white space: the message gets an error, not silence. */
        assert_int_equal(rpc_parse("\0", 1, &nul, &nul_why), RPC_PARSE_ERROR);
        assert_int_equal(rpc_parse(" \0 ", 3, &nul, &nul_why), RPC_PARSE_ERROR);

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                json_t *j = NULL;
                const char *why = NULL;
                int r = rpc_parse(cases[i].text, strlen(cases[i].text), &j, &why);

                assert_int_equal(r, cases[i].code);
                if (r == 0 && cases[i].is_null)
                        assert_null(j);
                else if (r == 0)
                        assert_non_null(j);
                else
                        assert_non_null(why);
                json_decref(j);
        }
}

static void test_invalid_utf8_message(void **state) {
        json_t *j = NULL;
        const char *why = NULL;
        const char text[] = "{\"jsonrpc\":\"2.0\",\"method\":\"\xff\"}";

        assert_int_equal(rpc_parse(text, strlen(text), &j, &why), RPC_PARSE_ERROR);
        assert_non_null(strstr(why, "UTF-8"));
}

static void test_request_check(void **state) {
        static const struct {
                const char *text;
                int code;
        } cases[] = {
                { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\"}", 0 },
                { "{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"method\":\"m\",\"params\":{}}", 0 },
                { "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"m\",\"params\":[]}", 0 },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"m\"}", 0 },
                { "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"m\"}", RPC_INVALID_REQUEST },
                { "{\"id\":1,\"method\":\"m\"}", RPC_INVALID_REQUEST },
                { "{\"jsonrpc\":\"2.0\",\"id\":1}", RPC_INVALID_REQUEST },
                { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}", RPC_INVALID_REQUEST },
                { "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"m\"}", RPC_INVALID_REQUEST },
                { "{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"m\"}", RPC_INVALID_REQUEST },
                { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":3}", RPC_INVALID_REQUEST },
                { "[1]", RPC_INVALID_REQUEST },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                json_t *j = json_loads(cases[i].text, 0, NULL), *id = NULL, *params = NULL;
                const char *method = NULL, *why = NULL;

                assert_non_null(j);
                assert_int_equal(rpc_request_check(j, &method, &id, &params, &why), cases[i].code);
                if (cases[i].code == 0)
                        assert_string_equal(method, "m");
                json_decref(j);
        }
}

static void test_batch_elements(void **state) {
        const char *text = "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\"},42,{\"jsonrpc\":\"2.0\","
                           "\"method\":\"b\"}]";
        static const int expected[] = { 0, RPC_INVALID_REQUEST, 0 };
        json_t *j = NULL, *e;
        const char *why = NULL;
        size_t i;

        assert_int_equal(rpc_parse(text, strlen(text), &j, &why), 0);
        assert_true(json_is_array(j));
        assert_int_equal(json_array_size(j), 3);
        json_array_foreach (j, i, e) {
                const char *method;
                json_t *id, *params;

                assert_int_equal(rpc_request_check(e, &method, &id, &params, &why), expected[i]);
        }
        json_decref(j);
}

static void test_builders(void **state) {
        struct evbuffer *b = evbuffer_new();
        json_t *id = json_integer(7);
        json_t *r = rpc_result_new(id, json_pack("{s:i}", "x", 1));
        json_t *e = rpc_error_new(NULL, RPC_METHOD_NOT_FOUND, "nope", json_pack("{s:s}", "kind", "invalid"));
        char *line = NULL;
        size_t len;
        RpcFramer f;

        assert_int_equal(rpc_write(b, r), 0);
        assert_int_equal(rpc_write(b, e), 0);
        rpc_framer_init(&f, RPC_MAX_MESSAGE);
        assert_int_equal(rpc_framer_pop(&f, b, &line, &len), 1);
        assert_string_equal(line, "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"x\":1}}");
        free(line);
        assert_int_equal(rpc_framer_pop(&f, b, &line, &len), 1);
        assert_string_equal(
                line, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32601,\"message\":\"nope\","
                      "\"data\":{\"kind\":\"invalid\"}}}");
        free(line);
        json_decref(id);
        json_decref(r);
        json_decref(e);
        evbuffer_free(b);
}

/* A result that comes serialized gives the very bytes of the serialized response. */
static void test_result_line(void **state) {
        json_t *ids[] = { json_integer(7), json_string("a\"b"), json_null(), json_real(1.5) };
        json_t *result = json_pack("{s:s, s:[i, b], s:{}}", "workspace", "atlas", "n", 1, 1, "x");

        for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
                json_t *msg = rpc_result_new(ids[i], json_incref(result));
                char *text = json_dumps(result, JSON_COMPACT), *a, *b;
                size_t na = 0, nb = 0;

                a = rpc_dumps_line(msg, &na);
                b = rpc_result_line(ids[i], text, strlen(text), &nb);
                assert_non_null(a);
                assert_non_null(b);
                assert_int_equal(na, nb);
                assert_string_equal(a, b);
                free(a);
                free(b);
                free(text);
                json_decref(msg);
                json_decref(ids[i]);
        }
        assert_null(rpc_result_line(NULL, NULL, 0, &(size_t){ 0 }));
        json_decref(result);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_split_reads),          cmocka_unit_test(test_several_per_read),
                cmocka_unit_test(test_exactly_max),          cmocka_unit_test(test_max_plus_one),
                cmocka_unit_test(test_partial_over_max),     cmocka_unit_test(test_parse),
                cmocka_unit_test(test_invalid_utf8_message), cmocka_unit_test(test_request_check),
                cmocka_unit_test(test_batch_elements),       cmocka_unit_test(test_builders),
                cmocka_unit_test(test_result_line),
        };

        return cmocka_run_group_tests_name("rpc-frame", tests, NULL, NULL);
}
