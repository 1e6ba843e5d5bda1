/* SPDX-License-Identifier: MIT */
/* scan.c's pure helpers: kinds, counts and summary lines of probe documents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "dj-macro.h"
#include "scan.h"

static json_t *load(const char *text) {
        json_error_t e;
        json_t *j = json_loads(text, 0, &e);

        if (!j)
                fail_msg("bad test JSON: %s", e.text);
        return j;
}

static const char *const schema_text =
        "{\"apps\":[{\"label\":\"shop\",\"models\":2},{\"label\":\"auth\",\"models\":1}],"
        "\"models\":[{\"app\":\"shop\",\"name\":\"Order\",\"relations\":[{\"field\":\"customer\",\"kind\":"
        "\"fk\","
        "\"target\":\"auth.User\"},{\"field\":\"items\",\"kind\":\"many_to_many\",\"target\":\"shop.Item\"}]"
        "},"
        "{\"app\":\"shop\",\"name\":\"Item\",\"relations\":[]},{\"app\":\"auth\",\"name\":\"User\"}]}";

static const char *const migrations_text =
        "{\"database\":{\"exists\":true},\"migrations\":["
        "{\"app\":\"shop\",\"migrations\":[{\"name\":\"0001_initial\",\"applied\":true},"
        "{\"name\":\"0002_a\",\"applied\":false},{\"name\":\"0002_b\",\"applied\":false}],"
        "\"plan\":[\"0002_a\",\"0002_b\"],\"conflicts\":[[\"0002_a\",\"0002_b\"]]},"
        "{\"app\":\"auth\",\"migrations\":[{\"name\":\"0001_initial\",\"applied\":true}],\"plan\":[],"
        "\"conflicts\":[]}]}";

static const char *const checks_text = "{\"checks\":[{\"level\":\"WARNING\",\"id\":\"fields.W340\"},{"
                                       "\"level\":\"ERROR\",\"id\":\"admin.E108\"},"
                                       "{\"level\":\"CRITICAL\",\"id\":\"x.C1\"},{\"level\":\"INFO\",\"id\":"
                                       "\"x.I1\"},{\"level\":\"DEBUG\"}]}";

static void test_kinds(void **state) {
        assert_string_equal(scan_kind_to_string(SCAN_SCHEMA), "schema");
        assert_string_equal(scan_kind_to_string(SCAN_CHECKS), "checks");
        assert_null(scan_kind_to_string(_SCAN_KIND_MAX));
        assert_int_equal(scan_kind_from_string("migrations"), SCAN_MIGRATIONS);
        assert_true(scan_kind_from_string("all") < 0);
        assert_true(scan_kind_from_string(NULL) < 0);
        assert_int_equal(scan_status_from_string("failed"), SCAN_FAILED);
        assert_string_equal(scan_status_to_string(SCAN_RUNNING), "running");
        assert_true(scan_status_from_string("done") < 0);
        assert_int_equal(SCAN_ALL, 7);
}

static void test_counts(void **state) {
        json_t *schema = load(schema_text), *migrations = load(migrations_text), *checks = load(checks_text);
        ScanCounts c;

        scan_counts_from_results(schema, migrations, checks, &c);
        assert_int_equal(c.apps, 2);
        assert_int_equal(c.models, 3);
        assert_int_equal(c.relations, 2);
        assert_int_equal(c.applied_migrations, 2);
        assert_int_equal(c.pending_migrations, 2);
        assert_int_equal(c.migration_conflicts, 1);
        assert_int_equal(c.check_warnings, 1);
        assert_int_equal(c.check_errors, 2); /* ERROR and CRITICAL; INFO and DEBUG not counted */
        assert_int_equal(c.last_scan_at, 0);

        /* Nothing known: all zero. */
        scan_counts_from_results(NULL, NULL, NULL, &c);
        assert_int_equal(c.models + c.apps + c.pending_migrations + c.check_errors, 0);
        json_decref(schema);
        json_decref(migrations);
        json_decref(checks);
}

static void check_summary(ScanKind k, const char *text, const char *expected) {
        json_t *j = load(text);
        char *s = scan_summary(k, j);

        assert_non_null(s);
        assert_string_equal(s, expected);
        free(s);
        json_decref(j);
}

static void test_summary(void **state) {
        check_summary(SCAN_SCHEMA, schema_text, "3 models in 2 apps, 2 relations");
        check_summary(SCAN_SCHEMA, "{\"apps\":[{}],\"models\":[{\"relations\":[{}]}]}",
                      "1 model in 1 app, 1 relation");
        check_summary(SCAN_MIGRATIONS, migrations_text, "4 migrations, 2 pending, 1 conflict");
        check_summary(
                SCAN_MIGRATIONS,
                "{\"database\":{\"exists\":false},\"migrations\":[{\"migrations\":[{\"applied\":false}]}]}",
                "1 migration, 1 pending (database not created yet)");
        check_summary(SCAN_CHECKS, checks_text, "1 warning, 2 errors");
        check_summary(SCAN_CHECKS, "{\"checks\":[]}", "0 warnings, 0 errors");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_kinds),
                cmocka_unit_test(test_counts),
                cmocka_unit_test(test_summary),
        };

        return cmocka_run_group_tests_name("scan", tests, NULL, NULL);
}
