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
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "dj-macro.h"

#define BUF_SIZE (8 * 1024 * 1024)

static const char *arg_socket = NULL;
static const char *arg_http = NULL; /* HOST:PORT */
static const char *arg_path = "/";
static const char *arg_method = "workspace.status";
static const char *arg_params = NULL;
static const char *arg_dump = NULL;
static unsigned arg_clients = 1;
static uint64_t arg_count = 0;
static double arg_duration = 0;
static unsigned arg_warmup = 50;
static bool arg_reconnect = false;
static bool arg_quickack = true;
static long arg_expect_bytes = -1;

static struct sockaddr_in http_addr;
static char http_host[128];

typedef struct Worker {
        pthread_t thread;
        unsigned index;
        int fd;
        char *buf;     /* read buffer */
        size_t n_buf;  /* bytes in buf */
        uint32_t *lat; /* per-round-trip latency, ns */
        size_t n_lat, cap_lat;
        uint64_t start_ns, end_ns;
        uint64_t connects;
        size_t req_bytes, reply_bytes, result_bytes;
        int error;
        char errmsg[512];
} Worker;

static pthread_barrier_t barrier;

static uint64_t now_ns(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static int connect_server(void) {
        _cleanup_close_ int fd = -1;

        if (arg_socket) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };

                if (strlen(arg_socket) >= sizeof(sa.sun_path))
                        return -ENAMETOOLONG;
                strcpy(sa.sun_path, arg_socket);
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        return -errno;
                if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                        return -errno;
        } else {
                int one = 1;

                fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        return -errno;
                (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                if (connect(fd, (struct sockaddr *) &http_addr, sizeof(http_addr)) < 0)
                        return -errno;
        }
        return TAKE_FD(fd);
}

static int write_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

/* Reads more into w->buf; returns the bytes read, 0 at EOF, or -errno. */
static ssize_t read_more(Worker *w) {
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

static void consume(Worker *w, size_t n) {
        memmove(w->buf, w->buf + n, w->n_buf - n);
        w->n_buf -= n;
}

_printf_(2, 3) static int fail(Worker *w, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(w->errmsg, sizeof(w->errmsg), fmt, ap);
        va_end(ap);
        return -EBADMSG;
}

static int check_size(Worker *w, uint64_t id, size_t n) {
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
static ssize_t read_rpc(Worker *w, uint64_t id, bool first) {
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
static ssize_t read_http(Worker *w, uint64_t id, bool first, bool *ret_close) {
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

static int lat_push(Worker *w, uint64_t ns) {
        if (w->n_lat == w->cap_lat) {
                size_t cap = w->cap_lat ? w->cap_lat * 2 : 65536;
                uint32_t *p = realloc(w->lat, cap * sizeof(uint32_t));

                if (!p)
                        return -ENOMEM;
                w->lat = p;
                w->cap_lat = cap;
        }
        w->lat[w->n_lat++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t) ns;
        return 0;
}

/* One round trip (with --reconnect: connect and close included); returns its latency in ns, or -errno. */
static int64_t round_trip(Worker *w, uint64_t id, bool first) {
        char req[1024];
        uint64_t t0, t1;
        bool close_ = false;
        ssize_t len;
        int n, r;

        if (arg_socket)
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
        t0 = now_ns();
        if (w->fd < 0) {
                w->fd = connect_server();
                if (w->fd < 0) {
                        r = w->fd;
                        w->fd = -1;
                        (void) snprintf(w->errmsg, sizeof(w->errmsg), "client %u: connect: %s", w->index,
                                        strerror(-r));
                        return r;
                }
                w->n_buf = 0;
                w->connects++;
        }
        r = write_all(w->fd, req, (size_t) n);
        if (r < 0) {
                (void) snprintf(w->errmsg, sizeof(w->errmsg), "client %u: write request %" PRIu64 ": %s",
                                w->index, id, strerror(-r));
                return r;
        }
        len = arg_socket ? read_rpc(w, id, first) : read_http(w, id, first, &close_);
        if (len >= 0 && (arg_reconnect || close_)) {
                if (close_ && !arg_reconnect) {
                        (void) snprintf(w->errmsg, sizeof(w->errmsg),
                                        "client %u: the server sent Connection: close on a keep-alive run "
                                        "(use --reconnect)",
                                        w->index);
                        return -ECONNRESET;
                }
                w->fd = safe_close(w->fd);
        }
        t1 = now_ns();
        if (len < 0)
                return len;
        w->req_bytes = (size_t) n;
        w->reply_bytes = (size_t) len;
        return (int64_t) (t1 - t0);
}

static void *worker_run(void *userdata) {
        Worker *w = userdata;
        uint64_t id = 1, deadline = 0;
        int64_t ns;
        int r;

        for (unsigned i = 0; i < arg_warmup; i++) {
                ns = round_trip(w, id++, false);
                if (ns < 0) {
                        w->error = (int) ns;
                        break;
                }
        }
        (void) pthread_barrier_wait(&barrier);
        if (w->error < 0)
                return NULL;

        w->start_ns = now_ns();
        if (arg_duration > 0)
                deadline = w->start_ns + (uint64_t) (arg_duration * 1e9);
        for (uint64_t i = 0;; i++) {
                if (arg_count > 0 && i >= arg_count)
                        break;
                if (deadline > 0 && now_ns() >= deadline)
                        break;
                ns = round_trip(w, id++, i == 0 && w->index == 0);
                if (ns < 0) {
                        w->error = (int) ns;
                        break;
                }
                r = lat_push(w, (uint64_t) ns);
                if (r < 0) {
                        w->error = r;
                        break;
                }
        }
        w->end_ns = now_ns();
        return NULL;
}

static int cmp_u32(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;

        return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array, in µs. */
static double pct_us(const uint32_t *v, size_t n, double p) {
        size_t k;

        if (n == 0)
                return 0;
        k = (size_t) (p / 100.0 * (double) n + 0.999999);
        if (k < 1)
                k = 1;
        if (k > n)
                k = n;
        return v[k - 1] / 1000.0;
}

static void help(void) {
        printf("usage: bench-status-client (--socket PATH | --http HOST:PORT) [OPTIONS]\n"
               "  -s, --socket PATH       djdeskd's Unix socket: JSON-RPC requests, one line each\n"
               "  -H, --http HOST:PORT    an HTTP/1.1 server on TCP: GET --path\n"
               "  -p, --path PATH         HTTP path (default /)\n"
               "  -m, --method NAME       JSON-RPC method (default workspace.status)\n"
               "  -P, --params JSON       JSON-RPC params (default none)\n"
               "  -c, --clients N         concurrent connections, one thread each (default 1)\n"
               "  -n, --count N           round trips per connection\n"
               "  -d, --duration SEC      run each connection for SEC seconds instead\n"
               "  -w, --warmup N          unmeasured round trips per connection first (default 50)\n"
               "  -r, --reconnect         a new connection per request (connect..close is timed)\n"
               "  -e, --expect-bytes B    every result / body must be B bytes\n"
               "  -D, --dump FILE         write the first measured result / body to FILE\n"
               "      --no-quickack       HTTP: leave delayed ACKs on (default: TCP_QUICKACK before every "
               "read)\n");
}

static int parse_argv(int argc, char *argv[]) {
        enum { ARG_NO_QUICKACK = 0x100 };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "socket", required_argument, NULL, 's' },
                { "http", required_argument, NULL, 'H' },
                { "path", required_argument, NULL, 'p' },
                { "method", required_argument, NULL, 'm' },
                { "params", required_argument, NULL, 'P' },
                { "clients", required_argument, NULL, 'c' },
                { "count", required_argument, NULL, 'n' },
                { "duration", required_argument, NULL, 'd' },
                { "warmup", required_argument, NULL, 'w' },
                { "reconnect", no_argument, NULL, 'r' },
                { "expect-bytes", required_argument, NULL, 'e' },
                { "dump", required_argument, NULL, 'D' },
                { "no-quickack", no_argument, NULL, ARG_NO_QUICKACK },
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "hs:H:p:m:P:c:n:d:w:re:D:", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        return 1;
                case 's':
                        arg_socket = optarg;
                        break;
                case 'H':
                        arg_http = optarg;
                        break;
                case 'p':
                        arg_path = optarg;
                        break;
                case 'm':
                        arg_method = optarg;
                        break;
                case 'P':
                        arg_params = optarg;
                        break;
                case 'c':
                        arg_clients = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 'n':
                        arg_count = strtoull(optarg, NULL, 10);
                        break;
                case 'd':
                        arg_duration = strtod(optarg, NULL);
                        break;
                case 'w':
                        arg_warmup = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 'r':
                        arg_reconnect = true;
                        break;
                case 'e':
                        arg_expect_bytes = strtol(optarg, NULL, 10);
                        break;
                case 'D':
                        arg_dump = optarg;
                        break;
                case ARG_NO_QUICKACK:
                        arg_quickack = false;
                        break;
                default:
                        return -EINVAL;
                }
        }
        if (!arg_socket == !arg_http || arg_clients < 1 || arg_clients > 1024 ||
            (arg_count == 0) == (arg_duration <= 0))
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

typedef struct Workers {
        Worker *v;
        unsigned n;
} Workers;

static void workers_done(Workers *ws) {
        for (unsigned i = 0; i < ws->n; i++) {
                (void) safe_close(ws->v[i].fd);
                free(ws->v[i].lat);
                free(ws->v[i].buf);
        }
        free(ws->v);
}

int main(int argc, char *argv[]) {
        _cleanup_(workers_done) Workers ws = {};
        _cleanup_free_ uint32_t *all = NULL;
        uint64_t start = UINT64_MAX, end = 0, connects = 0;
        size_t n_all = 0, k = 0;
        double sum = 0, elapsed;
        int failed = 0, r;

        r = parse_argv(argc, argv);
        if (r > 0)
                return 0;
        if (r < 0) {
                fprintf(stderr,
                        "bench-status-client: need exactly one of --socket/--http (HTTP: IPv4:PORT) and "
                        "exactly one of --count/--duration (see --help)\n");
                return 2;
        }

        ws.v = calloc(arg_clients, sizeof(Worker));
        if (!ws.v)
                return 1;
        ws.n = arg_clients;
        for (unsigned i = 0; i < ws.n; i++)
                ws.v[i].fd = -1;
        (void) pthread_barrier_init(&barrier, NULL, arg_clients);
        for (unsigned i = 0; i < ws.n; i++) {
                Worker *w = &ws.v[i];

                w->index = i;
                w->buf = malloc(BUF_SIZE);
                if (!w->buf)
                        return 1;
        }
        for (unsigned i = 0; i < ws.n; i++)
                if (pthread_create(&ws.v[i].thread, NULL, worker_run, &ws.v[i]) != 0) {
                        fprintf(stderr, "bench-status-client: pthread_create failed\n");
                        return 1;
                }
        for (unsigned i = 0; i < ws.n; i++) {
                Worker *w = &ws.v[i];

                (void) pthread_join(w->thread, NULL);
                if (w->error < 0) {
                        fprintf(stderr, "bench-status-client: %s\n",
                                w->errmsg[0] ? w->errmsg : strerror(-w->error));
                        failed++;
                        continue;
                }
                start = w->start_ns < start ? w->start_ns : start;
                end = w->end_ns > end ? w->end_ns : end;
                n_all += w->n_lat;
                connects += w->connects;
        }
        if (failed > 0 || n_all == 0)
                return 1;

        all = malloc(n_all * sizeof(uint32_t));
        if (!all)
                return 1;
        for (unsigned i = 0; i < ws.n; i++) {
                memcpy(all + k, ws.v[i].lat, ws.v[i].n_lat * sizeof(uint32_t));
                k += ws.v[i].n_lat;
        }
        for (size_t i = 0; i < n_all; i++)
                sum += all[i];
        qsort(all, n_all, sizeof(uint32_t), cmp_u32);
        elapsed = (double) (end - start) / 1e9;

        printf("clients=%u round_trips=%zu elapsed_s=%.3f rps=%.1f p50_us=%.1f p90_us=%.1f p99_us=%.1f "
               "p999_us=%.1f max_us=%.1f mean_us=%.2f req_bytes=%zu reply_bytes=%zu result_bytes=%zu "
               "connects=%" PRIu64 "\n",
               arg_clients, n_all, elapsed, (double) n_all / elapsed, pct_us(all, n_all, 50),
               pct_us(all, n_all, 90), pct_us(all, n_all, 99), pct_us(all, n_all, 99.9),
               all[n_all - 1] / 1000.0, sum / (double) n_all / 1000.0, ws.v[0].req_bytes,
               ws.v[0].reply_bytes, ws.v[0].result_bytes, connects);
        return 0;
}
