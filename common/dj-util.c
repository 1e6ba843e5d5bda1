/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dj-macro.h"
#include "dj-util.h"

uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        (void) clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

char *format_timestamp_iso(uint64_t usec) {
        time_t sec = (time_t) (usec / USEC_PER_SEC);
        struct tm tm;
        char date[32], *s = NULL;
        long off;

        if (!localtime_r(&sec, &tm))
                return NULL;
        if (strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
                return NULL;
        off = tm.tm_gmtoff / 60;
        if (asprintf(&s, "%s.%03u%c%02ld:%02ld", date, (unsigned) ((usec / USEC_PER_MSEC) % 1000),
                     off < 0 ? '-' : '+', labs(off) / 60, labs(off) % 60) < 0)
                return NULL;
        return s;
}

/* A decimal number at the start of s (no sign, no leading space); *ret_end points after it. */
static int parse_u64_prefix(const char *s, uint64_t *ret, char **ret_end) {
        unsigned long long v;

        if (isempty(s) || !isdigit((unsigned char) s[0]))
                return -EINVAL;
        errno = 0;
        v = strtoull(s, ret_end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        *ret = v;
        return 0;
}

int parse_uint_range(const char *s, uint64_t min, uint64_t max, uint64_t *ret) {
        char *end = NULL;
        uint64_t v;
        int r;

        r = parse_u64_prefix(s, &v, &end);
        if (r < 0)
                return r;
        if (*end != '\0')
                return -EINVAL;
        if (v < min || v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

int parse_size(const char *s, uint64_t *ret) {
        char *end = NULL;
        uint64_t v, factor = 1;
        int r;

        r = parse_u64_prefix(s, &v, &end);
        if (r < 0)
                return r;
        if (*end != '\0') {
                switch (*end) {
                case 'K':
                case 'k':
                        factor = UINT64_C(1) << 10;
                        break;
                case 'M':
                case 'm':
                        factor = UINT64_C(1) << 20;
                        break;
                case 'G':
                case 'g':
                        factor = UINT64_C(1) << 30;
                        break;
                default:
                        return -EINVAL;
                }
                end++;
                if (*end == 'i' || *end == 'I')
                        end++;
                if (*end == 'B' || *end == 'b')
                        end++;
                if (*end != '\0')
                        return -EINVAL;
        }
        if (v > UINT64_MAX / factor)
                return -ERANGE;
        *ret = v * factor;
        return 0;
}

int parse_boolean(const char *s) {
        static const char *const yes[] = { "1", "yes", "y", "true", "t", "on" };
        static const char *const no[] = { "0", "no", "n", "false", "f", "off" };

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                if (strcasecmp(s, yes[i]) == 0)
                        return 1;
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                if (strcasecmp(s, no[i]) == 0)
                        return 0;
        return -EINVAL;
}

int mkdir_parents(const char *path, unsigned mode) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = '\0';
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

char *path_join(const char *a, const char *b) {
        char *s = NULL;
        size_t n = strlen(a);

        if (asprintf(&s, "%s%s%s", a, n > 0 && a[n - 1] == '/' ? "" : "/", b) < 0)
                return NULL;
        return s;
}

ssize_t read_full(int fd, void *buf, size_t n) {
        size_t done = 0;

        while (done < n) {
                ssize_t k = read(fd, (char *) buf + done, n - done);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                done += (size_t) k;
        }
        return (ssize_t) done;
}

int write_full(int fd, const void *buf, size_t n) {
        size_t done = 0;

        while (done < n) {
                ssize_t k = write(fd, (const char *) buf + done, n - done);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                done += (size_t) k;
        }
        return 0;
}

const char *format_duration(char *buf, size_t n, uint64_t usec) {
        uint64_t s = usec / USEC_PER_SEC;

        if (s == 0)
                (void) snprintf(buf, n, "%" PRIu64 "ms", usec / USEC_PER_MSEC);
        else if (s < 60)
                (void) snprintf(buf, n, "%" PRIu64 ".%01" PRIu64 "s", s, (usec / 100000) % 10);
        else if (s < 3600)
                (void) snprintf(buf, n, "%" PRIu64 "m %" PRIu64 "s", s / 60, s % 60);
        else if (s < 86400)
                (void) snprintf(buf, n, "%" PRIu64 "h %" PRIu64 "m", s / 3600, (s % 3600) / 60);
        else
                (void) snprintf(buf, n, "%" PRIu64 "d %" PRIu64 "h", s / 86400, (s % 86400) / 3600);
        return buf;
}

size_t utf8_sequence(const unsigned char *s, size_t n, size_t *ret_bad) {
        unsigned char lo = 0x80, hi = 0xBF;
        size_t need, i;

        if (s[0] > 0 && s[0] < 0x80)
                return 1;
        if (s[0] >= 0xC2 && s[0] <= 0xDF)
                need = 2;
        else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
                need = 3;
                if (s[0] == 0xE0)
                        lo = 0xA0; /* overlong */
                else if (s[0] == 0xED)
                        hi = 0x9F; /* surrogates */
        } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
                need = 4;
                if (s[0] == 0xF0)
                        lo = 0x90; /* overlong */
                else if (s[0] == 0xF4)
                        hi = 0x8F; /* past U+10FFFF */
        } else {
                *ret_bad = 1; /* NUL, a continuation byte, C0, C1, F5..FF */
                return 0;
        }
        for (i = 1; i < need; i++) {
                unsigned char c = i < n ? s[i] : 0;

                if (c < (i == 1 ? lo : 0x80) || c > (i == 1 ? hi : 0xBF)) {
                        *ret_bad = i;
                        return 0;
                }
        }
        return need;
}

char *utf8_sanitize(const char *s, size_t len) {
        const unsigned char *u = (const unsigned char *) s;
        char *out, *p;
        size_t i = 0;

        /* At worst every byte becomes the three bytes of U+FFFD. */
        out = malloc(len * 3 + 1);
        if (!out)
                return NULL;
        p = out;
        while (i < len) {
                size_t bad = 0, k = utf8_sequence(u + i, len - i, &bad);

                if (k > 0) {
                        memcpy(p, u + i, k);
                        p += k;
                        i += k;
                } else {
                        memcpy(p, "\xEF\xBF\xBD", 3);
                        p += 3;
                        i += bad;
                }
        }
        *p = '\0';
        return out;
}

pid_t getpid_cached(void) {
        static pid_t cached = 0;

        if (cached == 0)
                cached = getpid();
        return cached;
}

int opendir_at(int dfd, const char *name, int flags, DIR **ret) {
        DIR *dir;
        int fd, r;

        fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | flags);
        if (fd < 0)
                return -errno;
        dir = fdopendir(fd);
        if (!dir) {
                r = -errno;
                (void) close(fd);
                return r;
        }
        *ret = dir;
        return 0;
}

int path_find_executable(const char *name, const char *search_path, char **ret) {
        int r = -ENOENT;

        if (!name || !*name || strchr(name, '/'))
                return -ENOENT;
        for (const char *p = search_path ?: ""; *p;) {
                size_t n = strcspn(p, ":");

                if (n > 0 && p[0] == '/') {
                        _cleanup_free_ char *f = NULL;
                        struct stat st;

                        if (asprintf(&f, "%.*s/%s", (int) n, p, name) < 0)
                                return -ENOMEM;
                        if (stat(f, &st) >= 0 && S_ISREG(st.st_mode)) {
                                if (access(f, X_OK) >= 0) {
                                        *ret = TAKE_PTR(f);
                                        return 0;
                                }
                                r = -EACCES;
                        }
                }
                p += n;
                if (*p == ':')
                        p++;
        }
        return r;
}

int greedy_realloc(void **p, size_t *allocated, size_t need, size_t size) {
        size_t m;
        void *a;

        if (need <= *allocated)
                return 0;
        m = MAX(need, MAX(*allocated * 2, (size_t) 64));
        if (size > 0 && m > SIZE_MAX / size)
                return -ENOMEM;
        a = realloc(*p, m * size);
        if (!a)
                return -ENOMEM;
        *p = a;
        *allocated = m;
        return 0;
}
