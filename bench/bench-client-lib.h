/* SPDX-License-Identifier: MIT */
/* bench-client-lib: what bench-ipc-client and bench-status-client share -- the command line's common
 * options, N threads with one connection each, unmeasured warm-up round trips, a barrier, then timed
 * round trips for --count or --duration; the latencies of all threads merged into one key=value line
 * (percentiles, mean, req/s).
 *
 * A client fills a BenchConfig (its options, its round_trip and print callbacks) and returns
 * bench_main() from main(). */
#pragma once

#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dj-macro.h"

typedef struct BenchConfig BenchConfig;
typedef struct BenchResult BenchResult;

typedef struct BenchWorker {
        const BenchConfig *config;
        pthread_t thread;
        unsigned index;
        int fd;
        char *buf;       /* read buffer, config->buf_size bytes */
        size_t n_buf;    /* bytes in buf */
        size_t consumed; /* bytes of buf the previous reply used (left to the round_trip callback) */
        uint32_t *lat;   /* per-round-trip latency, ns */
        size_t n_lat, cap_lat;
        uint64_t start_ns, end_ns;
        uint64_t connects;
        size_t req_bytes, reply_bytes, result_bytes;
        int error;
        char errmsg[512];
} BenchWorker;

struct BenchConfig {
        const char *name; /* prefix of error messages */
        /* Set by the common options. */
        const char *socket;
        unsigned clients;
        uint64_t count;
        double duration;
        unsigned warmup;

        size_t buf_size;
        unsigned max_clients;
        /* The command line: options holds BENCH_OPTIONS and the client's own, optstring starts with
         * BENCH_OPTSTRING. */
        const struct option *options;
        const char *optstring;
        const char *help;                              /* --help prints it on stdout */
        const char *usage_error;                       /* a bad command line prints it on stderr (exit 2) */
        int (*parse_option)(int opt, const char *arg); /* the client's own options: 0 or -EINVAL */
        int (*check)(const BenchConfig *c);            /* after parsing: 0 or -EINVAL */

        /* Optional, called for each worker before the threads start; logs its own error. */
        int (*setup)(BenchWorker *w);
        /* One round trip; returns its latency in ns, or -errno (with w->errmsg filled, or not).
         * first: the first measured round trip of worker 0. */
        int64_t (*round_trip)(BenchWorker *w, uint64_t id, bool first);
        /* Prints the result line: bench_result_print() and the client's own keys, then a newline. */
        void (*print)(const BenchResult *r);
};

struct BenchResult {
        BenchWorker *workers;
        unsigned n_workers;
        uint32_t *all; /* every measured latency, sorted, ns */
        size_t n_all;
        double sum, elapsed;
        uint64_t connects;
};

/* The options every client takes: -h/--help, -s/--socket, -c/--clients, -n/--count, -d/--duration,
 * -w/--warmup. */
#define BENCH_OPTIONS                                                                                   \
        { "help", no_argument, NULL, 'h' }, { "socket", required_argument, NULL, 's' },                 \
                { "clients", required_argument, NULL, 'c' }, { "count", required_argument, NULL, 'n' }, \
                { "duration", required_argument, NULL, 'd' }, {                                         \
                "warmup", required_argument, NULL, 'w'                                                  \
        }
#define BENCH_OPTSTRING "hs:c:n:d:w:"

uint64_t bench_now_ns(void);
int bench_connect_unix(const char *path);
int bench_write_all(int fd, const char *p, size_t n);
_printf_(3, 4) int bench_worker_fail(BenchWorker *w, int r, const char *fmt, ...);

/* Prints "clients=... mean_us=..." without a newline; rps with rps_decimals decimals. */
void bench_result_print(const BenchResult *r, int rps_decimals);

/* The whole client: parses the command line, runs the workers and prints the result line. Returns the
 * exit status: 0, 1 when the setup or a round trip failed, 2 for a bad command line. */
int bench_main(BenchConfig *c, int argc, char *argv[]);
