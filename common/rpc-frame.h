/* SPDX-License-Identifier: MIT */
#pragma once

#include <jansson.h>
#include <stddef.h>

struct evbuffer;

/* JSON-RPC 2.0 over newline-delimited JSON: one message per line, at most RPC_MAX_MESSAGE bytes
 * (not counting the newline). Shared by djdeskd and djdeskctl. */
#define RPC_MAX_MESSAGE ((size_t) 1024 * 1024)

enum {
        RPC_PARSE_ERROR = -32700,
        RPC_INVALID_REQUEST = -32600,
        RPC_METHOD_NOT_FOUND = -32601,
        RPC_INVALID_PARAMS = -32602,
        RPC_INTERNAL_ERROR = -32603,
};

/* Splits a byte stream into lines. Remembers how far it already searched, so a large message arriving
 * in many small reads is scanned once. */
typedef struct RpcFramer {
        size_t scanned;
        size_t max;
} RpcFramer;

void rpc_framer_init(RpcFramer *f, size_t max);
/* Pops one line from in: 1 with *ret_line (malloc'ed, NUL-terminated, without "\n" or "\r\n"), 0 when no
 * complete line is buffered yet, -EMSGSIZE when the buffered line is longer than the maximum. */
int rpc_framer_pop(RpcFramer *f, struct evbuffer *in, char **ret_line, size_t *ret_len);

/* Parses one line. 0 with *ret set (an object or a non-empty array), 0 with *ret NULL for a blank line,
 * or RPC_PARSE_ERROR / RPC_INVALID_REQUEST with *reterr a static message. */
int rpc_parse(const char *line, size_t len, json_t **ret, const char **reterr);

/* Checks one request object: "jsonrpc":"2.0", "method" string, "params" absent or structured, "id"
 * absent (notification), string, integer or null. Returns 0 with borrowed pointers or
 * RPC_INVALID_REQUEST with *reterr. */
int rpc_request_check(json_t *req, const char **ret_method, json_t **ret_id, json_t **ret_params,
                      const char **reterr);

json_t *rpc_result_new(json_t *id, json_t *result /* stolen */);
json_t *rpc_error_new(json_t *id, int code, const char *message, json_t *data /* stolen, may be NULL */);
json_t *rpc_notification_new(const char *method, json_t *params /* stolen */);
json_t *rpc_request_new(json_int_t id, const char *method, json_t *params /* stolen */);

/* msg as compact JSON ending in "\n" (and NUL-terminated); *ret_len counts the newline. */
char *rpc_dumps_line(json_t *msg, size_t *ret_len);
/* The line of a result response whose result is already serialized (compact JSON text): the same bytes
 * rpc_dumps_line(rpc_result_new(id, result)) gives, without serializing result again. */
char *rpc_result_line(json_t *id, const char *result_text, size_t result_len, size_t *ret_len);
/* Appends msg as compact JSON and a newline. */
int rpc_write(struct evbuffer *out, json_t *msg);
/* Appends a line made by rpc_dumps_line() or rpc_result_line(); the buffer takes it over (also on
 * failure). */
int rpc_write_line(struct evbuffer *out, char *line, size_t len);
