/* SPDX-License-Identifier: MIT */
/* The pure helpers of the workspace status document (status.h): part names, docs URL resolution, and the
 * apps, schema and insights parts computed from scan results. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "scan.h"
#include "status.h"

static json_t *parse(const char *text) {
        json_error_t err;
        json_t *j = json_loads(text, 0, &err);

        if (!j)
                fail_msg("bad test JSON at %d: %s", err.position, err.text);
        return j;
}

static void assert_json_equal(json_t *got, const char *expected) {
        json_t *want = parse(expected);

        if (!json_equal(got, want)) {
                char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS),
                     *w = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS);

                fail_msg("got\n  %s\nexpected\n  %s", g ?: "NULL", w ?: "NULL");
        }
        json_decref(want);
}

static void test_part_names(void **state) {
        static const char *const names[] = { "workspace", "server",   "insights",    "apps",
                                             "schema",    "activity", "log_excerpt", "scans",
                                             "tasks",     "docs",     "data_lab" };

        assert_int_equal(sizeof(names) / sizeof(names[0]), _STATUS_PART_MAX);
        for (StatusPart p = 0; p < _STATUS_PART_MAX; p++) {
                assert_string_equal(status_part_to_string(p), names[p]);
                assert_int_equal(status_part_from_string(names[p]), p);
        }
        assert_null(status_part_to_string(_STATUS_PART_MAX));
        assert_null(status_part_to_string(_STATUS_PART_INVALID));
        assert_int_equal(status_part_from_string("nope"), _STATUS_PART_INVALID);
        assert_int_equal(status_part_from_string("Server"), _STATUS_PART_INVALID);
        assert_int_equal(status_part_from_string(NULL), _STATUS_PART_INVALID);
        assert_int_equal(STATUS_PART_MASK(STATUS_PART_DOCS), 1u << 9);
}

/* The local docs "installed": exactly these files exist. */
static const char *const local_files[] = {
        "/docs/html/ref/django-admin.html",
        "/docs/html/index.html",
        "/docs/html/topics/db/models.html",
        "/docs/html/releases/index.html",
};
static unsigned exists_calls;

static bool fake_exists(const char *path) {
        exists_calls++;
        for (size_t i = 0; i < sizeof(local_files) / sizeof(local_files[0]); i++)
                if (strcmp(local_files[i], path) == 0)
                        return true;
        return false;
}

#define DJ     "https://docs.djangoproject.com/en/"
#define BASE   DJ "{version}/"
#define MIRROR "https://mirror.example/django/{version}"

static void test_resolve_docs_url(void **state) {
        static const struct {
                const char *url, *base, *dir, *version;
                bool with_exists;
                const char *expected;
                bool local;
        } cases[] = {
                /* locally installed pages: PATH/ -> PATH.html, the fragment kept */
                { DJ "stable/ref/django-admin/#check", BASE, "/docs/html", "3.2.25", true,
                  "file:///docs/html/ref/django-admin.html#check", true },
                { DJ "4.2/ref/django-admin/", BASE, "/docs/html/", NULL, true,
                  "file:///docs/html/ref/django-admin.html", true },
                { DJ "dev/topics/db/models/#fields", BASE, "/docs/html", "5.0", true,
                  "file:///docs/html/topics/db/models.html#fields", true },
                { DJ "stable/", BASE, "/docs/html", "3.2.25", true, "file:///docs/html/index.html", true },
                { DJ "stable/releases/index.html", BASE, "/docs/html", "3.2", true,
                  "file:///docs/html/releases/index.html", true },
                { DJ "stable/ref/django-admin/?x=1#check", BASE, "/docs/html", "3.2.25", true,
                  "file:///docs/html/ref/django-admin.html#check", true },
                /* not installed: the base with {version} = major.minor of the workspace's Django */
                { DJ "stable/topics/testing/", BASE, "/docs/html", "3.2.25", true, DJ "3.2/topics/testing/",
                  false },
                { DJ "stable/topics/testing/#x", BASE, "/docs/html", "4.2.11", true,
                  DJ "4.2/topics/testing/#x", false },
                { DJ "stable/topics/testing/", BASE, "/docs/html", "5.1rc1", true, DJ "5.1/topics/testing/",
                  false },
                { DJ "stable/topics/testing/", BASE, "/docs/html", "10.12.3", true,
                  DJ "10.12/topics/testing/", false },
                /* unknown version: "stable" */
                { DJ "3.2/topics/testing/", BASE, "/docs/html", NULL, true, DJ "stable/topics/testing/",
                  false },
                { DJ "3.2/topics/testing/", BASE, "/docs/html", "", true, DJ "stable/topics/testing/",
                  false },
                { DJ "3.2/topics/testing/", BASE, "/docs/html", "dev", true, DJ "stable/topics/testing/",
                  false },
                { DJ "3.2/topics/testing/", BASE, "/docs/html", "4", true, DJ "stable/topics/testing/",
                  false },
                /* no local docs at all: no dir, a relative dir, no exists() */
                { DJ "stable/ref/django-admin/#check", BASE, NULL, "3.2.25", true,
                  DJ "3.2/ref/django-admin/#check", false },
                { DJ "stable/ref/django-admin/#check", BASE, "", "3.2.25", true,
                  DJ "3.2/ref/django-admin/#check", false },
                { DJ "stable/ref/django-admin/#check", BASE, "docs/html", "3.2.25", true,
                  DJ "3.2/ref/django-admin/#check", false },
                { DJ "stable/ref/django-admin/#check", BASE, "/docs/html", "3.2.25", false,
                  DJ "3.2/ref/django-admin/#check", false },
                /* never a path that climbs out of the docs directory */
                { DJ "stable/../../docs/html/index/", BASE, "/docs/html", "3.2", true,
                  DJ "3.2/../../docs/html/index/", false },
                /* another base URL (without a trailing slash, or without {version}); NULL: the default */
                { DJ "stable/ref/django-admin/#check", MIRROR, "/nowhere", "3.2.25", true,
                  "https://mirror.example/django/3.2/ref/django-admin/#check", false },
                { DJ "stable/ref/django-admin/#check", "https://docs.local/", NULL, "3.2.25", true,
                  "https://docs.local/ref/django-admin/#check", false },
                { DJ "stable/ref/settings/#debug", NULL, NULL, "4.2.1", true, DJ "4.2/ref/settings/#debug",
                  false },
                { DJ "stable/ref/settings/#debug", "", NULL, NULL, true, DJ "stable/ref/settings/#debug",
                  false },
                { DJ "stable", BASE, NULL, "3.2", true, DJ "3.2/", false },
                { DJ "stable#top", BASE, NULL, "3.2", true, DJ "3.2/#top", false },
                /* any other URL is kept as it is */
                { "https://example.com/guide/", BASE, "/docs/html", "3.2", true,
                  "https://example.com/guide/", false },
                { "https://docs.djangoproject.com/fr/3.2/ref/", BASE, "/docs/html", "3.2", true,
                  "https://docs.djangoproject.com/fr/3.2/ref/", false },
                { "file:///usr/share/doc/x/index.html", BASE, "/docs/html", "3.2", true,
                  "file:///usr/share/doc/x/index.html", false },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                bool local = !cases[i].local;
                char *got =
                        status_resolve_docs_url(cases[i].url, cases[i].base, cases[i].dir, cases[i].version,
                                                cases[i].with_exists ? fake_exists : NULL, &local);

                if (!got || strcmp(got, cases[i].expected) != 0 || local != cases[i].local)
                        fail_msg("case %zu: '%s' -> '%s' (local %d), expected '%s' (local %d)", i,
                                 cases[i].url, got ?: "NULL", local, cases[i].expected, cases[i].local);
                free(got);
        }

        /* NULL in, NULL out; ret_local may be NULL */
        assert_null(status_resolve_docs_url(NULL, BASE, "/docs/html", "3.2", fake_exists, NULL));
        char *got = status_resolve_docs_url(DJ "stable/ref/django-admin/", BASE, "/docs/html", "3.2",
                                            fake_exists, NULL);
        assert_string_equal(got, "file:///docs/html/ref/django-admin.html");
        free(got);

        /* exists() is only asked about Django docs URLs */
        exists_calls = 0;
        got = status_resolve_docs_url("https://example.com/x/", BASE, "/docs/html", "3.2", fake_exists,
                                      NULL);
        free(got);
        assert_int_equal(exists_calls, 0);
}

/* A schema scan of an atlas-like project (with a contrib app), the migrations and checks scans. */
static const char SCHEMA[] =
        "{\"django_version\": \"3.2.25\", \"apps\": ["
        " {\"label\": \"auth\", \"name\": \"django.contrib.auth\", \"models\": 2},"
        " {\"label\": \"catalog\", \"name\": \"catalog\", \"models\": 2},"
        " {\"label\": \"ledger\", \"name\": \"ledger\", \"models\": 1},"
        " {\"label\": \"alerts\", \"name\": \"alerts\", \"models\": 1},"
        " {\"label\": \"ledgerx\", \"name\": \"ledgerx\", \"models\": 0}],"
        "\"models\": ["
        " {\"app\": \"auth\", \"name\": \"User\", \"fields\": [{\"name\": \"id\"},"
        "   {\"name\": \"username\"}], \"relations\": []},"
        " {\"app\": \"auth\", \"name\": \"Group\", \"fields\": [{\"name\": \"id\"}],"
        "   \"relations\": []},"
        " {\"app\": \"catalog\", \"name\": \"Instrument\", \"fields\": [{\"name\": \"id\"},"
        "   {\"name\": \"name\"}], \"relations\": []},"
        " {\"app\": \"catalog\", \"name\": \"Sensor\", \"fields\": [{\"name\": \"id\"},"
        "   {\"name\": \"instrument\"}],"
        "   \"relations\": [{\"field\": \"instrument\", \"kind\": \"fk\","
        "     \"target\": \"catalog.Instrument\"}]},"
        " {\"app\": \"ledger\", \"name\": \"Batch\", \"fields\": [{\"name\": \"id\"},"
        "   {\"name\": \"readings\"}, {\"name\": \"owner\"}, {\"name\": \"sensor\"}],"
        "   \"relations\": [{\"field\": \"readings\", \"kind\": \"many_to_many\","
        "     \"target\": \"catalog.Sensor\"},"
        "    {\"field\": \"owner\", \"kind\": \"fk\", \"target\": \"auth.User\"},"
        "    {\"field\": \"sensor\", \"kind\": \"one_to_one\", \"target\": \"catalog.Sensor\"}]},"
        " {\"app\": \"alerts\", \"name\": \"Alert\", \"fields\": [], \"relations\": []}]}";

static const char MIGRATIONS[] =
        "{\"database\": {\"exists\": true}, \"migrations\": ["
        " {\"app\": \"auth\", \"migrations\": [{\"name\": \"0001_initial\", \"applied\": true}],"
        "  \"plan\": [], \"conflicts\": []},"
        " {\"app\": \"catalog\", \"migrations\": [{\"name\": \"0001_initial\", \"applied\": true},"
        "   {\"name\": \"0002_x\", \"applied\": false}], \"plan\": [\"0002_x\"], \"conflicts\": []},"
        " {\"app\": \"ledger\", \"migrations\": [{\"name\": \"0001_initial\", \"applied\": true}],"
        "  \"plan\": [], \"conflicts\": []},"
        " {\"app\": \"alerts\", \"migrations\": [{\"name\": \"0001_initial\", \"applied\": true},"
        "   {\"name\": \"0002_a\", \"applied\": false}, {\"name\": \"0002_b\", \"applied\": false}],"
        "  \"plan\": [], \"conflicts\": [[\"0002_a\", \"0002_b\"]]}]}";

static const char CHECKS[] =
        "{\"checks\": ["
        " {\"level\": \"WARNING\", \"id\": \"fields.W340\", \"msg\": \"null has no effect\","
        "  \"hint\": null, \"obj\": \"ledger.Batch.readings\"},"
        " {\"level\": \"ERROR\", \"id\": \"alerts.E001\", \"msg\": \"bad\", \"hint\": null,"
        "  \"obj\": \"alerts\"},"
        " {\"level\": \"INFO\", \"id\": \"x.I001\", \"msg\": \"fyi\", \"hint\": null,"
        "  \"obj\": \"catalog.Sensor\"},"
        " {\"level\": \"CRITICAL\", \"id\": \"ledgerx.C001\", \"msg\": \"no\", \"hint\": null,"
        "  \"obj\": \"ledgerx.Thing\"}]}";

static void test_apps(void **state) {
        json_t *schema = parse(SCHEMA), *migrations = parse(MIGRATIONS), *checks = parse(CHECKS), *apps;

        /* conflict > error > pending > warning > ok; "ledgerx.*" is not ledger's */
        apps = status_apps_json(schema, migrations, checks);
        assert_json_equal(
                apps, "[{\"label\": \"auth\", \"models\": 2, \"pending_migrations\": 0, \"status\": \"ok\"},"
                      " {\"label\": \"catalog\", \"models\": 2, \"pending_migrations\": 1, \"status\": "
                      "\"pending\"},"
                      " {\"label\": \"ledger\", \"models\": 1, \"pending_migrations\": 0, \"status\": "
                      "\"warning\"},"
                      " {\"label\": \"alerts\", \"models\": 1, \"pending_migrations\": 2, \"status\": "
                      "\"conflict\"},"
                      " {\"label\": \"ledgerx\", \"models\": 0, \"pending_migrations\": 0, \"status\": "
                      "\"error\"}]");
        json_decref(apps);

        /* an error beats pending: alerts without its conflict */
        json_object_set_new(json_array_get(json_object_get(migrations, "migrations"), 3), "conflicts",
                            json_array());
        apps = status_apps_json(schema, migrations, checks);
        assert_string_equal(json_string_value(json_object_get(json_array_get(apps, 3), "status")), "error");
        json_decref(apps);

        /* checks or migrations never scanned: what is known still shows, the rest is unknown */
        apps = status_apps_json(schema, migrations, NULL);
        assert_json_equal(
                apps,
                "[{\"label\": \"auth\", \"models\": 2, \"pending_migrations\": 0, \"status\": \"unknown\"},"
                " {\"label\": \"catalog\", \"models\": 2, \"pending_migrations\": 1, \"status\": "
                "\"pending\"},"
                " {\"label\": \"ledger\", \"models\": 1, \"pending_migrations\": 0, \"status\": "
                "\"unknown\"},"
                " {\"label\": \"alerts\", \"models\": 1, \"pending_migrations\": 2, \"status\": "
                "\"pending\"},"
                " {\"label\": \"ledgerx\", \"models\": 0, \"pending_migrations\": 0, \"status\": "
                "\"unknown\"}]");
        json_decref(apps);
        apps = status_apps_json(schema, NULL, checks);
        assert_string_equal(json_string_value(json_object_get(json_array_get(apps, 0), "status")),
                            "unknown");
        assert_string_equal(json_string_value(json_object_get(json_array_get(apps, 2), "status")),
                            "warning");
        json_decref(apps);

        /* no schema scan: no apps */
        apps = status_apps_json(NULL, migrations, checks);
        assert_json_equal(apps, "[]");
        json_decref(apps);

        json_decref(schema);
        json_decref(migrations);
        json_decref(checks);
}

static void test_schema(void **state) {
        json_t *schema = parse(SCHEMA), *migrations = parse(MIGRATIONS), *graph;

        graph = status_schema_json(schema, migrations);
        assert_json_equal(
                graph,
                "{\"nodes\": ["
                " {\"id\": \"auth.User\", \"name\": \"User\", \"app\": \"auth\", \"fields\": [\"id\", "
                "\"username\"],"
                "  \"badge\": \"contrib\"},"
                " {\"id\": \"auth.Group\", \"name\": \"Group\", \"app\": \"auth\", \"fields\": [\"id\"],"
                "  \"badge\": \"contrib\"},"
                " {\"id\": \"catalog.Instrument\", \"name\": \"Instrument\", \"app\": \"catalog\","
                "  \"fields\": [\"id\", \"name\"], \"badge\": \"pending\"},"
                " {\"id\": \"catalog.Sensor\", \"name\": \"Sensor\", \"app\": \"catalog\","
                "  \"fields\": [\"id\", \"instrument\"], \"badge\": \"pending\"},"
                " {\"id\": \"ledger.Batch\", \"name\": \"Batch\", \"app\": \"ledger\","
                "  \"fields\": [\"id\", \"readings\", \"owner\", \"sensor\"], \"badge\": null},"
                " {\"id\": \"alerts.Alert\", \"name\": \"Alert\", \"app\": \"alerts\", \"fields\": [],"
                "  \"badge\": \"pending\"}],"
                "\"connections\": ["
                " {\"source\": \"catalog.Sensor\", \"target\": \"catalog.Instrument\", \"field\": "
                "\"instrument\","
                "  \"kind\": \"fk\"},"
                " {\"source\": \"ledger.Batch\", \"target\": \"catalog.Sensor\", \"field\": \"readings\","
                "  \"kind\": \"many_to_many\"},"
                " {\"source\": \"ledger.Batch\", \"target\": \"auth.User\", \"field\": \"owner\", \"kind\": "
                "\"fk\"},"
                " {\"source\": \"ledger.Batch\", \"target\": \"catalog.Sensor\", \"field\": \"sensor\","
                "  \"kind\": \"one_to_one\"}]}");
        json_decref(graph);

        /* no migrations scan: no "pending" badge */
        graph = status_schema_json(schema, NULL);
        assert_true(
                json_is_null(json_object_get(json_array_get(json_object_get(graph, "nodes"), 2), "badge")));
        assert_string_equal(json_string_value(json_object_get(
                                    json_array_get(json_object_get(graph, "nodes"), 0), "badge")),
                            "contrib");
        json_decref(graph);

        /* never scanned: an empty graph */
        graph = status_schema_json(NULL, NULL);
        assert_json_equal(graph, "{\"nodes\": [], \"connections\": []}");
        json_decref(graph);

        json_decref(schema);
        json_decref(migrations);
}

static json_t *insight_of(json_t *insights, const char *key) {
        size_t i;
        json_t *o;

        json_array_foreach (insights, i, o)
                if (strcmp(json_string_value(json_object_get(o, "key")), key) == 0)
                        return o;
        fail_msg("no insight '%s'", key);
        return NULL;
}

static void assert_insight(json_t *insights, const char *key, const char *value, const char *severity,
                           const char *caption) {
        json_t *o = insight_of(insights, key);

        assert_string_equal(json_string_value(json_object_get(o, "value")), value);
        assert_string_equal(json_string_value(json_object_get(o, "severity")), severity);
        if (caption)
                assert_string_equal(json_string_value(json_object_get(o, "caption")), caption);
        assert_non_null(json_string_value(json_object_get(o, "title")));
}

static void test_insights_never_scanned(void **state) {
        static const char *const keys[] = { "pending_migrations", "models",       "apps",
                                            "check_warnings",     "check_errors", "last_run",
                                            "server_uptime" };
        json_t *server = parse("{\"state\": \"stopped\", \"ready_at\": null, \"last_error\": null}"), *a,
               *again;
        ScanCounts c = {};
        size_t i;
        json_t *o;

        a = status_insights_json(&c, NULL, NULL, NULL, server, NULL);
        assert_int_equal(json_array_size(a), 7);
        json_array_foreach (a, i, o) {
                assert_string_equal(json_string_value(json_object_get(o, "key")), keys[i]);
                /* only server_uptime has "since" */
                assert_int_equal(json_object_get(o, "since") != NULL, i == 6);
                assert_int_equal(json_object_size(o), i == 6 ? 6 : 5);
        }
        for (i = 0; i < 5; i++)
                assert_insight(a, keys[i], "unknown", "info", NULL);
        assert_insight(a, "last_run", "none", "info", NULL);
        assert_insight(a, "server_uptime", "stopped", "info", NULL);
        assert_true(json_is_null(json_object_get(insight_of(a, "server_uptime"), "since")));

        /* nothing depends on the time of the call */
        again = status_insights_json(&c, NULL, NULL, NULL, server, NULL);
        assert_true(json_equal(a, again));
        json_decref(again);
        json_decref(a);
        json_decref(server);
}

static void test_insights_scanned(void **state) {
        json_t *schema = parse(SCHEMA), *migrations = parse(MIGRATIONS), *checks = parse(CHECKS), *a;
        json_t *server = parse("{\"state\": \"ready\", \"ready_at\": \"2026-11-24T10:00:00.000+00:00\","
                               " \"last_error\": null}");
        json_t *run = parse("{\"id\": 3, \"status\": \"failed\", \"label\": \"Apply migrations\","
                            " \"preset\": \"migrate\", \"finished_at\": \"2026-11-24T10:01:00.000+00:00\"}");
        /* the counts scan_counts_from_results() makes of these (scan.c's, not tested here) */
        ScanCounts c = { .pending_migrations = 3,
                         .applied_migrations = 4,
                         .migration_conflicts = 1,
                         .models = 6,
                         .apps = 5,
                         .relations = 4,
                         .check_warnings = 1,
                         .check_errors = 2 };

        a = status_insights_json(&c, schema, migrations, checks, server, run);
        assert_insight(a, "pending_migrations", "3", "error", NULL); /* a conflict */
        assert_insight(a, "models", "6", "info", "4 in project apps, 4 relations");
        assert_insight(a, "apps", "5", "info", "4 project, 1 django.contrib");
        assert_insight(a, "check_warnings", "1", "warning", "fields.W340");
        assert_insight(a, "check_errors", "2", "error", "alerts.E001, ledgerx.C001");
        assert_insight(a, "last_run", "failed", "error", NULL);
        assert_non_null(strstr(json_string_value(json_object_get(insight_of(a, "last_run"), "caption")),
                               "2026-11-24T10:01:00.000+00:00"));
        assert_insight(a, "server_uptime", "running", "ok", "since 2026-11-24T10:00:00.000+00:00");
        assert_string_equal(json_string_value(json_object_get(insight_of(a, "server_uptime"), "since")),
                            "2026-11-24T10:00:00.000+00:00");
        json_decref(a);

        /* no conflict, nothing pending, no checks: all ok */
        {
                json_t *m = parse(
                               "{\"database\": {\"exists\": true}, \"migrations\": [{\"app\": \"catalog\","
                               " \"migrations\": [{\"name\": \"0001_initial\", \"applied\": true}],"
                               " \"plan\": [], \"conflicts\": []}]}"),
                       *k = parse("{\"checks\": []}");
                ScanCounts c2 = { .applied_migrations = 1, .models = 6, .apps = 5, .relations = 4 };

                a = status_insights_json(&c2, schema, m, k, server, NULL);
                assert_insight(a, "pending_migrations", "0", "ok", NULL);
                assert_insight(a, "check_warnings", "0", "ok", NULL);
                assert_insight(a, "check_errors", "0", "ok", NULL);
                json_decref(a);
                json_decref(m);
                json_decref(k);
        }

        /* pending, without a database: the caption says so */
        {
                json_t *m = parse(
                        "{\"database\": {\"exists\": false, \"message\": \"database not created yet\"},"
                        " \"migrations\": [{\"app\": \"catalog\", \"migrations\": [{\"name\": "
                        "\"0001_initial\","
                        " \"applied\": false}], \"plan\": [\"0001_initial\"], \"conflicts\": []}]}");
                ScanCounts c2 = { .pending_migrations = 1,
                                  .models = 6,
                                  .apps = 5,
                                  .relations = 4,
                                  .check_warnings = 1,
                                  .check_errors = 2 };

                a = status_insights_json(&c2, schema, m, checks, server, NULL);
                assert_insight(a, "pending_migrations", "1", "warning", "database not created yet");
                json_decref(a);
                json_decref(m);
        }

        json_decref(schema);
        json_decref(migrations);
        json_decref(checks);
        json_decref(server);
        json_decref(run);
}

static void test_insights_server_states(void **state) {
        static const struct {
                const char *server, *value, *severity, *caption;
                bool since;
        } cases[] = {
                { "{\"state\": \"reloading\", \"ready_at\": \"2026-11-24T10:00:00.000+00:00\"}", "running",
                  "ok", "since 2026-11-24T10:00:00.000+00:00", true },
                { "{\"state\": \"crashed\", \"ready_at\": null, \"last_error\": \"exited with status 1\"}",
                  "crashed", "warning", "exited with status 1", false },
                { "{\"state\": \"failed\", \"ready_at\": null, \"last_error\": \"port in use\"}", "failed",
                  "error", "port in use", false },
                { "{\"state\": \"starting\", \"ready_at\": null, \"last_error\": null}", "starting", "info",
                  "starting", false },
                { "{\"state\": \"stopped\", \"ready_at\": null, \"last_error\": \"old\"}", "stopped", "info",
                  "not running", false },
        };
        ScanCounts c = {};

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                json_t *server = parse(cases[i].server),
                       *a = status_insights_json(&c, NULL, NULL, NULL, server, NULL);
                json_t *o = insight_of(a, "server_uptime");

                assert_insight(a, "server_uptime", cases[i].value, cases[i].severity, cases[i].caption);
                assert_int_equal(json_is_string(json_object_get(o, "since")), cases[i].since);
                json_decref(a);
                json_decref(server);
        }
}

static void test_insights_bounded_caption(void **state) {
        json_t *checks = json_array(), *doc, *a;
        ScanCounts c = {};

        for (int i = 0; i < 200; i++) {
                char id[16];

                snprintf(id, sizeof(id), "app.W%03d", i);
                json_array_append_new(checks, json_pack("{s:s, s:s, s:s, s:n, s:s}", "level", "WARNING",
                                                        "id", id, "msg", "m", "hint", "obj", "app.Model"));
        }
        doc = json_pack("{s:o}", "checks", checks);
        c.check_warnings = 200;
        a = status_insights_json(&c, NULL, NULL, doc, NULL, NULL);
        assert_insight(a, "check_warnings", "200", "warning", NULL);
        {
                const char *caption =
                        json_string_value(json_object_get(insight_of(a, "check_warnings"), "caption"));

                assert_true(strlen(caption) < 120);
                assert_non_null(strstr(caption, "and 195 more"));
        }
        json_decref(a);
        json_decref(doc);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_part_names),
                cmocka_unit_test(test_resolve_docs_url),
                cmocka_unit_test(test_apps),
                cmocka_unit_test(test_schema),
                cmocka_unit_test(test_insights_never_scanned),
                cmocka_unit_test(test_insights_scanned),
                cmocka_unit_test(test_insights_server_states),
                cmocka_unit_test(test_insights_bounded_caption),
        };

        return cmocka_run_group_tests_name("status", tests, NULL, NULL);
}
