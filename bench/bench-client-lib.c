/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bench-client-lib.h"

static pthread_barrier_t barrier;

uint64_t bench_now_ns(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

int bench_connect_unix(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        return TAKE_FD(fd);
}

int bench_write_all(int fd, const char *p, size_t n) {
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

int bench_worker_fail(BenchWorker *w, int r, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(w->errmsg, sizeof(w->errmsg), fmt, ap);
        va_end(ap);
        return r;
}

static int lat_push(BenchWorker *w, uint64_t ns) {
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

static void *worker_run(void *userdata) {
        BenchWorker *w = userdata;
        const BenchConfig *c = w->config;
        uint64_t id = 1, deadline = 0;
        int64_t ns;
        int r;

        for (unsigned i = 0; i < c->warmup; i++) {
                ns = c->round_trip(w, id++, false);
                if (ns < 0) {
                        w->error = (int) ns;
                        break;
                }
        }
        (void) pthread_barrier_wait(&barrier);
        if (w->error < 0)
                return NULL;

        w->start_ns = bench_now_ns();
        if (c->duration > 0)
                deadline = w->start_ns + (uint64_t) (c->duration * 1e9);
        for (uint64_t i = 0;; i++) {
                if (c->count > 0 && i >= c->count)
                        break;
                if (deadline > 0 && bench_now_ns() >= deadline)
                        break;
                ns = c->round_trip(w, id++, i == 0 && w->index == 0);
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
        w->end_ns = bench_now_ns();
        return NULL;
}

static int cmp_u32(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;

        return (x > y) - (x < y);
}

static void bench_result_done(BenchResult *r) {
        for (unsigned i = 0; i < r->n_workers; i++) {
                (void) safe_close(r->workers[i].fd);
                free(r->workers[i].lat);
                free(r->workers[i].buf);
        }
        free(r->workers);
        free(r->all);
        *r = (BenchResult){};
}

static int bench_run(const BenchConfig *c, BenchResult *ret) {
        uint64_t start = UINT64_MAX, end = 0;
        size_t k = 0;
        int failed = 0, r;

        *ret = (BenchResult){};
        ret->workers = calloc(c->clients, sizeof(BenchWorker));
        if (!ret->workers)
                return -ENOMEM;
        ret->n_workers = c->clients;
        for (unsigned i = 0; i < ret->n_workers; i++)
                ret->workers[i].fd = -1;
        (void) pthread_barrier_init(&barrier, NULL, c->clients);
        for (unsigned i = 0; i < ret->n_workers; i++) {
                BenchWorker *w = &ret->workers[i];

                w->config = c;
                w->index = i;
                w->buf = malloc(c->buf_size);
                if (!w->buf)
                        return -ENOMEM;
                if (c->setup) {
                        r = c->setup(w);
                        if (r < 0)
                                return r;
                }
        }
        for (unsigned i = 0; i < ret->n_workers; i++)
                if (pthread_create(&ret->workers[i].thread, NULL, worker_run, &ret->workers[i]) != 0) {
                        fprintf(stderr, "%s: pthread_create failed\n", c->name);
                        return -EAGAIN;
                }
        for (unsigned i = 0; i < ret->n_workers; i++) {
                BenchWorker *w = &ret->workers[i];

                (void) pthread_join(w->thread, NULL);
                if (w->error < 0) {
                        fprintf(stderr, "%s: %s\n", c->name, w->errmsg[0] ? w->errmsg : strerror(-w->error));
                        failed++;
                        continue;
                }
                start = w->start_ns < start ? w->start_ns : start;
                end = w->end_ns > end ? w->end_ns : end;
                ret->n_all += w->n_lat;
                ret->connects += w->connects;
        }
        if (failed > 0 || ret->n_all == 0)
                return -EIO;

        ret->all = malloc(ret->n_all * sizeof(uint32_t));
        if (!ret->all)
                return -ENOMEM;
        for (unsigned i = 0; i < ret->n_workers; i++) {
                memcpy(ret->all + k, ret->workers[i].lat, ret->workers[i].n_lat * sizeof(uint32_t));
                k += ret->workers[i].n_lat;
        }
        for (size_t i = 0; i < ret->n_all; i++)
                ret->sum += ret->all[i];
        qsort(ret->all, ret->n_all, sizeof(uint32_t), cmp_u32);
        ret->elapsed = (double) (end - start) / 1e9;
        return 0;
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

void bench_result_print(const BenchResult *r, int rps_decimals) {
        size_t n = r->n_all;

        printf("clients=%u round_trips=%zu elapsed_s=%.3f rps=%.*f p50_us=%.1f p90_us=%.1f p99_us=%.1f "
               "p999_us=%.1f max_us=%.1f mean_us=%.2f",
               r->n_workers, n, r->elapsed, rps_decimals, (double) n / r->elapsed, pct_us(r->all, n, 50),
               pct_us(r->all, n, 90), pct_us(r->all, n, 99), pct_us(r->all, n, 99.9), r->all[n - 1] / 1000.0,
               r->sum / (double) n / 1000.0);
}

/* Returns 1 after --help, 0, or -EINVAL. */
static int parse_argv(BenchConfig *c, int argc, char *argv[]) {
        int opt, r;

        while ((opt = getopt_long(argc, argv, c->optstring, c->options, NULL)) >= 0) {
                switch (opt) {
                case 'h':
                        fputs(c->help, stdout);
                        return 1;
                case 's':
                        c->socket = optarg;
                        break;
                case 'c':
                        c->clients = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 'n':
                        c->count = strtoull(optarg, NULL, 10);
                        break;
                case 'd':
                        c->duration = strtod(optarg, NULL);
                        break;
                case 'w':
                        c->warmup = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                default:
                        r = c->parse_option(opt, optarg);
                        if (r < 0)
                                return r;
                }
        }
        if (c->clients < 1 || c->clients > c->max_clients || (c->count == 0) == (c->duration <= 0))
                return -EINVAL;
        return c->check(c);
}

int bench_main(BenchConfig *c, int argc, char *argv[]) {
        _cleanup_(bench_result_done) BenchResult res = {};
        int r;

        r = parse_argv(c, argc, argv);
        if (r > 0)
                return 0;
        if (r < 0) {
                fputs(c->usage_error, stderr);
                return 2;
        }
        r = bench_run(c, &res);
        if (r < 0)
                return 1;
        c->print(&res);
        return 0;
}
