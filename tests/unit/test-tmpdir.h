/* SPDX-License-Identifier: MIT */
/* Scaffolding shared by the unit tests: a private temporary directory, made in setup() and removed with
 * everything in it in teardown(). Include after <cmocka.h>. */
#pragma once

#include <stdio.h>
#include <stdlib.h>

/* Makes a new directory "/tmp/djdesk-test-<name>-XXXXXX" and puts its path in dir (n bytes). */
static inline void test_mkdtemp(char *dir, size_t n, const char *name) {
        int k = snprintf(dir, n, "/tmp/djdesk-test-%s-XXXXXX", name);

        assert_true(k > 0 && (size_t) k < n);
        assert_non_null(mkdtemp(dir));
}

/* Removes path and everything below it (rm -rf). */
static inline void test_rm_rf(const char *path) {
        char cmd[4200];
        int k = snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);

        assert_true(k > 0 && (size_t) k < sizeof(cmd));
        assert_int_equal(system(cmd), 0);
}
