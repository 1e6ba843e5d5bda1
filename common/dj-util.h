/* SPDX-License-Identifier: MIT */
#pragma once

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "dj-macro.h"

/* Microseconds on the given clock (CLOCK_REALTIME, CLOCK_MONOTONIC). */
uint64_t now_usec(clockid_t clock);

/* "2026-11-24T03:52:18.123+00:00" style, local time with an explicit offset. Returns a malloc'ed string
 * or NULL on OOM. */
char *format_timestamp_iso(uint64_t usec_realtime);

/* Parses a size such as "8M", "512K", "1048576" (binary suffixes K, M, G). */
int parse_size(const char *s, uint64_t *ret);
/* Parses a non-negative decimal integer that fits in [min, max]. */
int parse_uint_range(const char *s, uint64_t min, uint64_t max, uint64_t *ret);
/* Parses yes/no/true/false/on/off/1/0. */
int parse_boolean(const char *s);

/* mkdir -p with the given mode for each created component. */
int mkdir_parents(const char *path, unsigned mode);

char *path_join(const char *a, const char *b);

/* Makes the array *p (of *allocated elements of size bytes) hold at least need elements, doubling (64 at
 * least): amortized O(1) appends. *p and *allocated change only on success. 0 or -ENOMEM. */
int greedy_realloc(void **p, size_t *allocated, size_t need, size_t size);

/* Reads until n bytes or end of file, retrying on EINTR: the byte count (below n only at end of file), or
 * -errno. */
ssize_t read_full(int fd, void *buf, size_t n);
/* Writes all n bytes, retrying on EINTR and short writes: 0 or -errno. */
int write_full(int fd, const void *buf, size_t n);

/* Human duration "3d 4h", "2m 5s", "250ms" into buf. */
const char *format_duration(char *buf, size_t n, uint64_t usec);

/* getpid() without a system call after the first (the daemon never forks without exec). */
pid_t getpid_cached(void);

/* The length of the valid UTF-8 sequence at s (at most n bytes, n > 0; NUL counts as invalid), or 0 with
 * *ret_bad set to the length of the maximal invalid subpart there. */
size_t utf8_sequence(const unsigned char *s, size_t n, size_t *ret_bad);

/* A copy of s[0..len) that is valid UTF-8: each maximal invalid subpart (a stray continuation byte, a
 * truncated sequence, an overlong form, a surrogate, a code point past U+10FFFF) and each NUL byte become
 * U+FFFD. NUL-terminated; NULL on OOM. */
char *utf8_sanitize(const char *s, size_t len);

/* Opens dfd/name as a directory stream; flags are added to O_RDONLY|O_DIRECTORY|O_CLOEXEC. */
int opendir_at(int dfd, const char *name, int flags, DIR **ret);
DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir);

/* Finds an executable regular file called name in search_path (':'-separated; entries that are not
 * absolute are skipped: a daemon never runs programs from its working directory). -ENOENT when there is
 * none, -EACCES when one exists but is not executable. */
int path_find_executable(const char *name, const char *search_path, char **ret);
