/* SPDX-License-Identifier: MIT */
/* bench-status-client: one request, the full response, the next request -- the same loop against djdeskd
 * (a JSON-RPC line over its Unix socket) and against an HTTP server (HTTP/1.1 GET over TCP), so that
 * bench/status compares the two servers and nothing else.
 *
 * N threads, one connection each (or, with --reconnect, a new connection per request: connect, request,
 * full response, close, all inside the timed interval). Every round trip is timed with CLOCK_MONOTONIC;
 * the result is one line of key=value pairs on stdout.
 *
 * Checks, on every response:
 *   JSON-RPC: one line that starts with {"jsonrpc":"2.0","id":N, (N the request's id) followed by "result"
 *             (an "error" member fails the run);
 *   HTTP:     status 200 and a body of exactly Content-Length bytes (or up to EOF with Connection: close
 *             and no Content-Length); a keep-alive run fails when the server closes the connection.
 * With --expect-bytes B every result (JSON-RPC: the text of the "result" member; HTTP: the body) must be
 * B bytes long. --dump FILE writes the first measured result there. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench-client-lib.h"

#define BUF_SIZE (8 * 1024 * 1024)

static const char *arg_http = NULL; /* HOST:PORT */
static const char *arg_path = "/";
static const char *arg_method = "workspace.status";
static const char *arg_params = NULL;
static const char *arg_dump = NULL;
static bool arg_reconnect = false;
static bool arg_quickack = true;
static long arg_expect_bytes = -1;

enum { ARG_NO_QUICKACK = 0x100 };

/* A wrong or missing response. */
#define fail(w, ...) bench_worker_fail(w, -EBADMSG, __VA_ARGS__)

static struct sockaddr_in http_addr;
static char http_host[128];

static int connect_server(const char *socket_path) {
        _cleanup_close_ int fd = -1;

        int one = 1;

        if (socket_path)
                return bench_connect_unix(socket_path);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, (struct sockaddr *) &http_addr, sizeof(http_addr)) < 0)
                return -errno;
        return TAKE_FD(fd);
}

/* Reads more into w->buf; returns the bytes read, 0 at EOF, or -errno. */
static ssize_t read_more(BenchWorker *w) {
        for (;;) {
                ssize_t k;

                if (w->n_buf >= BUF_SIZE)
                        return -EMSGSIZE;
                if (arg_http && arg_quickack) {
                        /* ACK at once, not after the delayed-ACK timeout (~40 ms): servers that write the head
                         * and the body in two send()s without TCP_NODELAY (wsgiref, so runserver) otherwise
                         * wait for that ACK before the body goes out (Nagle). Not sticky: set before every
                         * read. */
                        int one = 1;

                        (void) setsockopt(w->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
                }
                k = read(w->fd, w->buf + w->n_buf, BUF_SIZE - w->n_buf);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                w->n_buf += (size_t) k;
                return k;
        }
}

static void consume(BenchWorker *w, size_t n) {
        memmove(w->buf, w->buf + n, w->n_buf - n);
        w->n_buf -= n;
}

static int check_size(BenchWorker *w, uint64_t id, size_t n) {
        if (arg_expect_bytes >= 0 && n != (size_t) arg_expect_bytes)
                return fail(w, "client %u: request %" PRIu64 ": result of %zu bytes, expected %ld", w->index,
                            id, n, arg_expect_bytes);
        return 0;
}

static void dump(const char *p, size_t n) {
        FILE *f = fopen(arg_dump, "we");

        if (!f)
                return;
        (void) fwrite(p, 1, n, f);
        (void) fclose(f);
}

/* JSON-RPC: one reply line. Returns its bytes (the newline included). */
static ssize_t read_rpc(BenchWorker *w, uint64_t id, bool first) {
        char prefix[64];
        size_t plen, len;
        char *nl;
        int r;

        for (;;) {
                ssize_t k;

                nl = memchr(w->buf, '\n', w->n_buf);
                if (nl)
                        break;
                k = read_more(w);
                if (k < 0)
                        return fail(w, "client %u: read after request %" PRIu64 ": %s", w->index, id,
                                    strerror((int) -k));
                if (k == 0)
                        return fail(w, "client %u: djdeskd closed the connection after request %" PRIu64,
                                    w->index, id);
        }
        len = (size_t) (nl - w->buf) + 1;
        plen = (size_t) snprintf(prefix, sizeof(prefix),
                                 "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64 ",\"result\":", id);
        if (len < plen + 2 || memcmp(w->buf, prefix, plen) != 0 || w->buf[len - 2] != '}')
                return fail(w, "client %u: unexpected reply to request %" PRIu64 ": %.*s", w->index, id,
                            (int) MIN(len, 400), w->buf);
        /* the result: from after the prefix to before the closing '}' and the newline */
        r = check_size(w, id, len - plen - 2);
        if (r < 0)
                return r;
        if (first && arg_dump)
                dump(w->buf + plen, len - plen - 2);
        w->result_bytes = len - plen - 2;
        consume(w, len);
        return (ssize_t) len;
}

static const char *find_header(const char *hdr, size_t n, const char *name) {
        size_t nl = strlen(name);

        for (const char *p = hdr; p && p < hdr + n;) {
                const char *eol = memmem(p, (size_t) (hdr + n - p), "\r\n", 2);

                if (!eol)
                        break;
                if ((size_t) (eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
                        p += nl + 1;
                        while (*p == ' ' || *p == '\t')
                                p++;
                        return p;
                }
                p = eol + 2;
        }
        return NULL;
}

/* HTTP: one response. Returns its bytes (head + body); *ret_close: the server will close. */
static ssize_t read_http(BenchWorker *w, uint64_t id, bool first, bool *ret_close) {
        const char *end, *v;
        size_t head, body;
        long clen = -1;
        bool close_ = false;
        int r;

        for (;;) {
                ssize_t k;

                end = w->n_buf >= 4 ? memmem(w->buf, w->n_buf, "\r\n\r\n", 4) : NULL;
                if (end)
                        break;
                k = read_more(w);
                if (k < 0)
                        return fail(w, "client %u: read after request %" PRIu64 ": %s", w->index, id,
                                    strerror((int) -k));
                if (k == 0)
                        return fail(w,
                                    "client %u: the server closed the connection before a response to "
                                    "request %" PRIu64 "%s",
                                    w->index, id, arg_reconnect ? "" : " (keep-alive run: try --reconnect)");
        }
        head = (size_t) (end - w->buf) + 4;
        if (head < 12 || strncmp(w->buf, "HTTP/1.", 7) != 0 || strncmp(w->buf + 8, " 200", 4) != 0)
                return fail(w, "client %u: request %" PRIu64 ": not a 200: %.*s", w->index, id,
                            (int) MIN(head, 300), w->buf);
        v = find_header(w->buf, head, "Content-Length");
        if (v)
                clen = strtol(v, NULL, 10);
        v = find_header(w->buf, head, "Connection");
        if (v && strncasecmp(v, "close", 5) == 0)
                close_ = true;
        if (strncmp(w->buf, "HTTP/1.0", 8) == 0 && !(v && strncasecmp(v, "keep-alive", 10) == 0))
                close_ = true;
        if (clen < 0 && !close_)
                return fail(w,
                            "client %u: request %" PRIu64 ": neither Content-Length nor Connection: close",
                            w->index, id);
        for (;;) {
                ssize_t k;

                if (clen >= 0 && w->n_buf >= head + (size_t) clen)
                        break;
                k = read_more(w);
                if (k < 0)
                        return fail(w, "client %u: read body of request %" PRIu64 ": %s", w->index, id,
                                    strerror((int) -k));
                if (k == 0) {
                        if (clen < 0)
                                break;
                        return fail(w, "client %u: request %" PRIu64 ": body cut short (%zu of %ld bytes)",
                                    w->index, id, w->n_buf - head, clen);
                }
        }
        body = clen >= 0 ? (size_t) clen : w->n_buf - head;
        r = check_size(w, id, body);
        if (r < 0)
                return r;
        if (first && arg_dump)
                dump(w->buf + head, body);
        w->result_bytes = body;
        consume(w, head + body);
        *ret_close = close_;
        return (ssize_t) (head + body);
}

/* One round trip (with --reconnect: connect and close included); returns its latency in ns, or -errno. */
static int64_t round_trip(BenchWorker *w, uint64_t id, bool first) {
        char req[1024];
        uint64_t t0, t1;
        bool close_ = false;
        ssize_t len;
        int n, r;

        if (w->config->socket)
                n = snprintf(req, sizeof(req),
                             "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64 ",\"method\":\"%s\"%s%s}\n", id,
                             arg_method, arg_params ? ",\"params\":" : "", arg_params ?: "");
        else
                n = snprintf(req, sizeof(req),
                             "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: bench-status-client\r\nAccept: "
                             "*/*\r\n%s\r\n",
                             arg_path, http_host, arg_reconnect ? "Connection: close\r\n" : "");
        if (n < 0 || (size_t) n >= sizeof(req))
                return -EINVAL;
        t0 = bench_now_ns();
        if (w->fd < 0) {
                w->fd = connect_server(w->config->socket);
                if (w->fd < 0) {
                        r = w->fd;
                        w->fd = -1;
                        return bench_worker_fail(w, r, "client %u: connect: %s", w->index, strerror(-r));
                }
                w->n_buf = 0;
                w->connects++;
        }
        r = bench_write_all(w->fd, req, (size_t) n);
        if (r < 0) {
                return bench_worker_fail(w, r, "client %u: write request %" PRIu64 ": %s", w->index, id,
                                         strerror(-r));
        }
        len = w->config->socket ? read_rpc(w, id, first) : read_http(w, id, first, &close_);
        if (len >= 0 && (arg_reconnect || close_)) {
                if (close_ && !arg_reconnect) {
                        return bench_worker_fail(w, -ECONNRESET,
                                                 "client %u: the server sent Connection: close on a "
                                                 "keep-alive run (use --reconnect)",
                                                 w->index);
                }
                w->fd = safe_close(w->fd);
        }
        t1 = bench_now_ns();
        if (len < 0)
                return len;
        w->req_bytes = (size_t) n;
        w->reply_bytes = (size_t) len;
        return (int64_t) (t1 - t0);
}

static int parse_option(int opt, const char *arg) {
        switch (opt) {
        case 'H':
                arg_http = arg;
                return 0;
        case 'p':
                arg_path = arg;
                return 0;
        case 'm':
                arg_method = arg;
                return 0;
        case 'P':
                arg_params = arg;
                return 0;
        case 'r':
                arg_reconnect = true;
                return 0;
        case 'e':
                arg_expect_bytes = strtol(arg, NULL, 10);
                return 0;
        case 'D':
                arg_dump = arg;
                return 0;
        case ARG_NO_QUICKACK:
                arg_quickack = false;
                return 0;
        default:
                return -EINVAL;
        }
}

static int check(const BenchConfig *c) {
        if (!c->socket == !arg_http)
                return -EINVAL;
        if (arg_http) {
                const char *colon = strrchr(arg_http, ':');
                char host[64];
                size_t hl;

                if (!colon || (hl = (size_t) (colon - arg_http)) == 0 || hl >= sizeof(host))
                        return -EINVAL;
                memcpy(host, arg_http, hl);
                host[hl] = 0;
                http_addr.sin_family = AF_INET;
                http_addr.sin_port = htons((uint16_t) strtoul(colon + 1, NULL, 10));
                if (inet_pton(AF_INET, host, &http_addr.sin_addr) != 1)
                        return -EINVAL;
                (void) snprintf(http_host, sizeof(http_host), "%s", arg_http);
        }
        return 0;
}

static void print(const BenchResult *r) {
        bench_result_print(r, 1);
        printf(" req_bytes=%zu reply_bytes=%zu result_bytes=%zu connects=%" PRIu64 "\n",
               r->workers[0].req_bytes, r->workers[0].reply_bytes, r->workers[0].result_bytes, r->connects);
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                BENCH_OPTIONS,
                { "http", required_argument, NULL, 'H' },
                { "path", required_argument, NULL, 'p' },
                { "method", required_argument, NULL, 'm' },
                { "params", required_argument, NULL, 'P' },
                { "reconnect", no_argument, NULL, 'r' },
                { "expect-bytes", required_argument, NULL, 'e' },
                { "dump", required_argument, NULL, 'D' },
                { "no-quickack", no_argument, NULL, ARG_NO_QUICKACK },
                {},
        };

        static BenchConfig config = {
                .name = "bench-status-client",
                .clients = 1,
                .warmup = 50,
                .buf_size = BUF_SIZE,
                .max_clients = 1024,
                .options = options,
                .optstring = BENCH_OPTSTRING "H:p:m:P:re:D:",
                .help = "usage: bench-status-client (--socket PATH | --http HOST:PORT) [OPTIONS]\n"
                        "  -s, --socket PATH       djdeskd's Unix socket: JSON-RPC requests, one line each\n"
                        "  -H, --http HOST:PORT    an HTTP/1.1 server on TCP: GET --path\n"
                        "  -p, --path PATH         HTTP path (default /)\n"
                        "  -m, --method NAME       JSON-RPC method (default workspace.status)\n"
                        "  -P, --params JSON       JSON-RPC params (default none)\n"
                        "  -c, --clients N         concurrent connections, one thread each (default 1)\n"
                        "  -n, --count N           round trips per connection\n"
                        "  -d, --duration SEC      run each connection for SEC seconds instead\n"
                        "  -w, --warmup N          unmeasured round trips per connection first (default "
                        "50)\n"
                        "  -r, --reconnect         a new connection per request (connect..close is timed)\n"
                        "  -e, --expect-bytes B    every result / body must be B bytes\n"
                        "  -D, --dump FILE         write the first measured result / body to FILE\n"
                        "      --no-quickack       HTTP: leave delayed ACKs on (default: TCP_QUICKACK "
                        "before every "
                        "read)\n",
                .usage_error =
                        "bench-status-client: need exactly one of --socket/--http (HTTP: IPv4:PORT) and "
                        "exactly one of --count/--duration (see --help)\n",
                .parse_option = parse_option,
                .check = check,
                .round_trip = round_trip,
                .print = print,
        };

        return bench_main(&config, argc, argv);
}
