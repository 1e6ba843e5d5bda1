/* SPDX-License-Identifier: MIT */
/* djdeskctl info, djdeskctl reload */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "dj-util.h"

#define INFO_LABEL_WIDTH 19 /* strlen("Previous shutdown:") + 1 */

void help_info(void) {
        printf("Usage: djdeskctl info [--json]\n"
               "\n"
               "Show what the daemon is running with: version, PID, uptime, socket, D-Bus\n"
               "connection, database, configuration file, clients and events.\n"
               "\n"
               "Options:\n"
               "  -h, --help         Show this help\n"
               "      --socket PATH  Daemon socket\n"
               "      --json         Print the daemon.info result as JSON\n");
}

void help_reload(void) {
        printf("Usage: djdeskctl reload [--json]\n"
               "\n"
               "Ask the daemon to re-read its configuration file and environment (like\n"
               "SIGHUP). On a bad value the daemon keeps its current configuration and\n"
               "this command fails.\n"
               "\n"
               "Options:\n"
               "  -h, --help         Show this help\n"
               "      --socket PATH  Daemon socket\n"
               "      --json         Print the daemon.reload result as JSON\n");
}

#define print_field(label, ...) ctl_print_field(INFO_LABEL_WIDTH, label, __VA_ARGS__)

/* A string member, or "-" when it is missing (or not a string). */
static const char *info_str(json_t *o, const char *key) {
        return ctl_str(o, key, "-");
}

static void print_int_field(const char *label, json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);

        if (json_is_integer(v))
                print_field(label, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        else
                print_field(label, "-");
}

static void print_info(json_t *info) {
        json_t *counts = json_object_get(info, "counts"), *limits = json_object_get(info, "limits"), *v;
        _cleanup_free_ char *started = NULL;
        char buf[64];

        print_field("Version:", "%s", info_str(info, "version"));
        print_int_field("PID:", info, "pid");

        v = json_object_get(info, "uptime_usec");
        print_field("Uptime:", "%s",
                    json_is_integer(v) && json_integer_value(v) >= 0
                            ? format_duration(buf, sizeof(buf), (uint64_t) json_integer_value(v))
                            : "-");

        v = json_object_get(info, "started_at_usec");
        if (!json_is_string(json_object_get(info, "started_at")) && json_is_integer(v) &&
            json_integer_value(v) > 0)
                started = format_timestamp_iso((uint64_t) json_integer_value(v));
        print_field("Started:", "%s", started ?: info_str(info, "started_at"));

        print_field("Socket:", "%s%s", info_str(info, "socket_path"),
                    json_is_true(json_object_get(info, "socket_activated")) ? " (socket-activated)" : "");
        print_field("D-Bus:", "%s (%s)", info_str(info, "bus_name"),
                    json_is_true(json_object_get(info, "bus_connected")) ? "connected" : "not connected");
        v = json_object_get(info, "schema_version");
        if (json_is_integer(v))
                print_field("Database:", "%s (schema %" JSON_INTEGER_FORMAT ")", info_str(info, "db_path"),
                            json_integer_value(v));
        else
                print_field("Database:", "%s", info_str(info, "db_path"));
        print_field("Config:", "%s%s", info_str(info, "config_path"),
                    json_is_false(json_object_get(info, "config_loaded")) ? " (not present, defaults)" : "");
        print_field("Log level:", "%s", info_str(info, "log_level"));

        v = json_object_get(counts, "clients");
        if (json_is_integer(v) && json_is_integer(json_object_get(limits, "max_clients")))
                print_field("Clients:", "%" JSON_INTEGER_FORMAT " (max %" JSON_INTEGER_FORMAT ")",
                            json_integer_value(v),
                            json_integer_value(json_object_get(limits, "max_clients")));
        else
                print_int_field("Clients:", counts, "clients");
        print_int_field("Subscribers:", counts, "subscribers");

        v = json_object_get(counts, "events_in_ring");
        if (json_is_integer(v) && json_is_integer(json_object_get(info, "seq")))
                print_field("Events:", "%" JSON_INTEGER_FORMAT " in ring, last seq %" JSON_INTEGER_FORMAT,
                            json_integer_value(v), json_integer_value(json_object_get(info, "seq")));
        else
                print_int_field("Events:", counts, "events_in_ring");

        print_field("Previous shutdown:", "%s", info_str(info, "previous_shutdown"));
}

int verb_info(int argc, char *argv[]) {
        json_auto_t *result = NULL;
        int r;

        r = ctl_call_command(argc, argv, "info", help_info, "daemon.info", &result);
        if (r != CTL_EXIT_OK || !result)
                return r;
        if (!json_is_object(result))
                return ctl_malformed("daemon.info");
        if (arg_json)
                return ctl_print_result(result);
        print_info(result);
        return ctl_finish_stdout();
}

int verb_reload(int argc, char *argv[]) {
        json_auto_t *result = NULL;
        int r;

        r = ctl_call_command(argc, argv, "reload", help_reload, "daemon.reload", &result);
        if (r != CTL_EXIT_OK || !result)
                return r;
        if (arg_json)
                return ctl_print_result(result);
        printf("configuration reloaded\n");
        return ctl_finish_stdout();
}
