/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "dj-macro.h"

/* NULL-terminated string arrays (argv, envp), each string and the array malloc'd. */

char **strv_free(char **l);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free);
#define _cleanup_strv_free_ _cleanup_(strv_freep)

size_t strv_length(char *const *l);
/* Appends a copy of s (the array grows; *l may be NULL to begin with). */
int strv_extend(char ***l, const char *s);
/* Appends s itself on success (s is owned by the array afterwards; freed on failure). */
int strv_push(char ***l, char *s /* stolen */);
/* Appends a formatted string. */
int strv_extendf(char ***l, const char *fmt, ...) _printf_(2, 3);
bool strv_contains(char *const *l, const char *s);

/* Environment blocks: "KEY=VALUE" entries. */
/* The value of key, or NULL. */
const char *strv_env_get(char *const *l, const char *key);
/* Sets key=value, replacing an existing assignment. */
int strv_env_set(char ***l, const char *key, const char *value);
/* Removes every assignment to key (exact), or to any key starting with key when it ends in '*'. */
void strv_env_unset(char **l, const char *key);
