/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "dj-macro.h"
#include "rpc-frame.h"

void rpc_framer_init(RpcFramer *f, size_t max) {
        f->scanned = 0;
        f->max = max;
}

int rpc_framer_pop(RpcFramer *f, struct evbuffer *in, char **ret_line, size_t *ret_len) {
        struct evbuffer_ptr start, eol;
        size_t len = evbuffer_get_length(in), n, content;
        char *line;

        if (f->scanned > len)
                f->scanned = 0;
        if (evbuffer_ptr_set(in, &start, f->scanned, EVBUFFER_PTR_SET) < 0)
                return -EINVAL;
        eol = evbuffer_search_eol(in, &start, NULL, EVBUFFER_EOL_LF);
        if (eol.pos < 0) {
                f->scanned = len;
                /* One more byte may still be the "\r" of a "\r\n" */
                return len > f->max + 1 ? -EMSGSIZE : 0;
        }
        f->scanned = 0;
        n = (size_t) eol.pos;
        line = malloc(n + 1);
        if (!line)
                return -ENOMEM;
        if (evbuffer_remove(in, line, n) != (int) n) {
                free(line);
                return -EIO;
        }
        (void) evbuffer_drain(in, 1); /* the newline */
        content = n > 0 && line[n - 1] == '\r' ? n - 1 : n;
        if (content > f->max) {
                free(line);
                return -EMSGSIZE;
        }
        line[content] = '\0';
        *ret_line = line;
        *ret_len = content;
        return 1;
}

int rpc_parse(const char *line, size_t len, json_t **ret, const char **reterr) {
        json_error_t jerr;
        json_t *j;
        size_t i;

        for (i = 0; i < len; i++)
                if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r') /* not strchr(): it matches '\0' */
                        break;
        if (i == len) {
                *ret = NULL;
                return 0;
        }
        j = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
        if (!j) {
                *reterr = json_error_code(&jerr) == json_error_invalid_utf8 ? "Parse error: invalid UTF-8"
                                                                            : "Parse error";
                return RPC_PARSE_ERROR;
        }
        if (!json_is_object(j) && !(json_is_array(j) && json_array_size(j) > 0)) {
                *reterr = json_is_array(j) ? "Invalid Request: empty batch"
                                           : "Invalid Request: not an object or array";
                json_decref(j);
                return RPC_INVALID_REQUEST;
        }
        *ret = j;
        return 0;
}

int rpc_request_check(json_t *req, const char **ret_method, json_t **ret_id, json_t **ret_params,
                      const char **reterr) {
        json_t *v, *id, *params, *method;

        if (!json_is_object(req)) {
                *reterr = "Invalid Request: not an object";
                return RPC_INVALID_REQUEST;
        }
        v = json_object_get(req, "jsonrpc");
        if (!json_is_string(v) || !streq(json_string_value(v), "2.0")) {
                *reterr = "Invalid Request: \"jsonrpc\" must be \"2.0\"";
                return RPC_INVALID_REQUEST;
        }
        id = json_object_get(req, "id");
        if (id && !json_is_string(id) && !json_is_integer(id) && !json_is_null(id)) {
                *reterr = "Invalid Request: \"id\" must be a string, an integer or null";
                return RPC_INVALID_REQUEST;
        }
        method = json_object_get(req, "method");
        if (!json_is_string(method)) {
                *reterr = "Invalid Request: \"method\" must be a string";
                return RPC_INVALID_REQUEST;
        }
        params = json_object_get(req, "params");
        if (params && !json_is_object(params) && !json_is_array(params)) {
                *reterr = "Invalid Request: \"params\" must be an object or an array";
                return RPC_INVALID_REQUEST;
        }
        *ret_method = json_string_value(method);
        *ret_id = id;
        *ret_params = params;
        return 0;
}

json_t *rpc_result_new(json_t *id, json_t *result) {
        return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ?: json_null(), "result",
                         result ?: json_null());
}

json_t *rpc_error_new(json_t *id, int code, const char *message, json_t *data) {
        json_t *err = json_pack("{s:i, s:s}", "code", code, "message", message ?: "");

        if (!err) {
                json_decref(data);
                return NULL;
        }
        if (data && json_object_set_new(err, "data", data) < 0) {
                json_decref(err);
                return NULL;
        }
        return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ?: json_null(), "error", err);
}

json_t *rpc_notification_new(const char *method, json_t *params) {
        return json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method", method, "params",
                         params ?: json_object());
}

json_t *rpc_request_new(json_int_t id, const char *method, json_t *params) {
        return json_pack("{s:s, s:I, s:s, s:o}", "jsonrpc", "2.0", "id", id, "method", method, "params",
                         params ?: json_object());
}

char *rpc_dumps_line(json_t *msg, size_t *ret_len) {
        char *s, *line;
        size_t n;

        if (!msg)
                return NULL;
        s = json_dumps(msg, JSON_COMPACT);
        if (!s)
                return NULL;
        n = strlen(s);
        line = realloc(s, n + 2); /* usually in place: jansson's buffer has room to spare */
        if (!line) {
                free(s);
                return NULL;
        }
        line[n] = '\n';
        line[n + 1] = '\0';
        *ret_len = n + 1;
        return line;
}

char *rpc_result_line(json_t *id, const char *result_text, size_t result_len, size_t *ret_len) {
        static const char head[] = "{\"jsonrpc\":\"2.0\",\"id\":", mid[] = ",\"result\":";
        _cleanup_free_ char *id_text = json_dumps(id ?: json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
        size_t id_len, n;
        char *line, *p;

        if (!id_text || !result_text)
                return NULL;
        id_len = strlen(id_text);
        n = sizeof(head) - 1 + id_len + sizeof(mid) - 1 + result_len + 2;
        line = malloc(n + 1);
        if (!line)
                return NULL;
        p = mempcpy(line, head, sizeof(head) - 1);
        p = mempcpy(p, id_text, id_len);
        p = mempcpy(p, mid, sizeof(mid) - 1);
        p = mempcpy(p, result_text, result_len);
        *p++ = '}';
        *p++ = '\n';
        *p = '\0';
        *ret_len = n;
        return line;
}

static void free_cb(const void *data, size_t len, void *extra) {
        free((void *) data);
}

int rpc_write_line(struct evbuffer *out, char *line, size_t len) {
        if (!line)
                return -ENOMEM;
        /* One buffer segment per message; the evbuffer takes the string over. */
        if (evbuffer_add_reference(out, line, len, free_cb, NULL) < 0) {
                free(line);
                return -ENOMEM;
        }
        return 0;
}

int rpc_write(struct evbuffer *out, json_t *msg) {
        size_t n = 0;
        char *line = rpc_dumps_line(msg, &n);

        return rpc_write_line(out, line, n);
}
