/* SPDX-License-Identifier: MIT */
/*
 * bench-ipc-client: sequential JSON-RPC round trips over Unix stream sockets.
 *
 * Each of --clients threads opens one persistent connection and, after --warmup unmeasured round trips
 * and a barrier, does blocking round trips: write one request line
 *   {"jsonrpc":"2.0","id":N,"method":"daemon.info"}\n
 * then read until the reply's newline. It stops after --count round trips or after --duration seconds.
 * Every round trip is timed with CLOCK_MONOTONIC; the result is one line of key=value pairs on stdout.
 *
 * --check jsonrpc: each reply must carry "result" and the request's id (djdeskd).
 * --check echo:    each reply must be byte-identical to the request (bench-echo-server).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench-client-lib.h"

#define BUF_SIZE (2 * 1024 * 1024)

typedef enum CheckMode { CHECK_NONE, CHECK_JSONRPC, CHECK_ECHO } CheckMode;

static const char *arg_method = "daemon.info";
static CheckMode arg_check = CHECK_JSONRPC;
static bool arg_show_reply = false;

enum { ARG_SHOW_REPLY = 0x100 };

/* Drop the previous line, then read until buf holds a complete line; returns its length incl. '\n'. */
static ssize_t read_line(BenchWorker *w, size_t consumed) {
        char *nl;

        if (consumed > 0) {
                memmove(w->buf, w->buf + consumed, w->n_buf - consumed);
                w->n_buf -= consumed;
        }
        for (;;) {
                ssize_t k;

                nl = memchr(w->buf, '\n', w->n_buf);
                if (nl)
                        return nl - w->buf + 1;
                if (w->n_buf >= BUF_SIZE)
                        return -EMSGSIZE;
                k = read(w->fd, w->buf + w->n_buf, BUF_SIZE - w->n_buf);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return -ECONNRESET;
                w->n_buf += (size_t) k;
        }
}

static int check_reply(BenchWorker *w, const char *req, size_t req_len, uint64_t id, const char *reply,
                       size_t len) {
        const char *p;
        char *end;

        switch (arg_check) {
        case CHECK_NONE:
                return 0;
        case CHECK_ECHO:
                if (len == req_len && memcmp(req, reply, len) == 0)
                        return 0;
                break;
        case CHECK_JSONRPC:
                if (!memmem(reply, len, "\"result\"", 8))
                        break;
                p = memmem(reply, len, "\"id\"", 4);
                if (!p)
                        break;
                p += 4;
                while (*p == ' ' || *p == ':')
                        p++;
                errno = 0;
                if (strtoull(p, &end, 10) == id && errno == 0 && end != p)
                        return 0;
                break;
        }
        (void) snprintf(w->errmsg, sizeof(w->errmsg), "client %u: unexpected reply to id %" PRIu64 ": %.*s",
                        w->index, id, (int) (len > 400 ? 400 : len), reply);
        return -EBADMSG;
}

/* One round trip; returns its latency in ns, or -errno. */
static int64_t round_trip(BenchWorker *w, uint64_t id, bool first) {
        char req[256];
        uint64_t t0, t1;
        ssize_t len;
        int n, r;

        n = snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64 ",\"method\":\"%s\"}\n", id,
                     arg_method);
        if (n < 0 || (size_t) n >= sizeof(req))
                return -EINVAL;
        t0 = bench_now_ns();
        r = bench_write_all(w->fd, req, (size_t) n);
        if (r < 0)
                return r;
        len = read_line(w, w->consumed);
        t1 = bench_now_ns();
        if (len < 0)
                return bench_worker_fail(w, (int) len, "client %u: read failed after id %" PRIu64 ": %s",
                                         w->index, id, strerror((int) -len));
        w->consumed = (size_t) len;
        r = check_reply(w, req, (size_t) n, id, w->buf, (size_t) len);
        if (r < 0)
                return r;
        if (arg_show_reply && w->index == 0 && id == 1)
                fprintf(stderr, "%.*s", (int) len, w->buf);
        w->req_bytes = (size_t) n;
        w->reply_bytes = (size_t) len;
        return (int64_t) (t1 - t0);
}

static int connect_worker(BenchWorker *w) {
        w->fd = bench_connect_unix(w->config->socket);
        if (w->fd < 0) {
                fprintf(stderr, "bench-ipc-client: connect '%s' (client %u): %s\n", w->config->socket,
                        w->index, strerror(-w->fd));
                return w->fd;
        }
        return 0;
}

static int parse_option(int opt, const char *arg) {
        switch (opt) {
        case 'm':
                arg_method = arg;
                return 0;
        case 'k':
                if (streq(arg, "jsonrpc"))
                        arg_check = CHECK_JSONRPC;
                else if (streq(arg, "echo"))
                        arg_check = CHECK_ECHO;
                else if (streq(arg, "none"))
                        arg_check = CHECK_NONE;
                else
                        return -EINVAL;
                return 0;
        case ARG_SHOW_REPLY:
                arg_show_reply = true;
                return 0;
        default:
                return -EINVAL;
        }
}

static int check(const BenchConfig *c) {
        return c->socket ? 0 : -EINVAL;
}

static void print(const BenchResult *r) {
        bench_result_print(r, 0);
        printf(" req_bytes=%zu reply_bytes=%zu\n", r->workers[0].req_bytes, r->workers[0].reply_bytes);
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                BENCH_OPTIONS,
                { "method", required_argument, NULL, 'm' },
                { "check", required_argument, NULL, 'k' },
                { "show-reply", no_argument, NULL, ARG_SHOW_REPLY },
                {},
        };

        static BenchConfig config = {
                .name = "bench-ipc-client",
                .clients = 1,
                .warmup = 200,
                .buf_size = BUF_SIZE,
                .max_clients = 4096,
                .options = options,
                .optstring = BENCH_OPTSTRING "m:k:",
                .help = "usage: bench-ipc-client --socket PATH [OPTIONS]\n"
                        "  -s, --socket PATH     Unix socket to connect to\n"
                        "  -c, --clients N       concurrent connections, one thread each (default 1)\n"
                        "  -n, --count N         round trips per connection\n"
                        "  -d, --duration SEC    run each connection for SEC seconds instead\n"
                        "  -w, --warmup N        unmeasured round trips per connection first (default 200)\n"
                        "  -m, --method NAME     JSON-RPC method (default daemon.info)\n"
                        "  -k, --check MODE      jsonrpc|echo|none (default jsonrpc)\n"
                        "      --show-reply      print the first measured reply to stderr\n",
                .usage_error = "bench-ipc-client: need --socket and exactly one of --count/--duration (see "
                               "--help)\n",
                .parse_option = parse_option,
                .check = check,
                .setup = connect_worker,
                .round_trip = round_trip,
                .print = print,
        };

        return bench_main(&config, argc, argv);
}
