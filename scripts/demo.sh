#!/usr/bin/env bash
# djdesk demo: builds the tree, runs djdeskd in a throw-away environment (temporary XDG directories,
# a private D-Bus session bus) and shows what this release does: info over the socket and D-Bus,
# events with replay, configuration reload (good and bad), the atlas sample installed and its Django
# server started (URL, state, page, log, a reload on edit), graceful shutdown, and activation by
# socket and by D-Bus. Nothing outside the build directory and a temporary directory is touched.
#
#   scripts/demo.sh            # installs missing Debian packages first when run as root
#
# Environment: DJDESK_DEMO_BUILD (build directory, default build-demo in the source tree);
# DJDESK_PYTHON (an interpreter that imports Django; default: python3 from PATH if it can, else
# /usr/bin/python3, Debian's python3-django).
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${DJDESK_DEMO_BUILD:-$src/build-demo}
self="$src/scripts/demo.sh"

if [[ -t 1 ]]; then
        bold=$'\e[1m' dim=$'\e[2m' green=$'\e[32m' red=$'\e[31m' reset=$'\e[0m'
else
        bold='' dim='' green='' red='' reset=''
fi
step() { printf '\n%s==> %s%s\n' "$bold" "$*" "$reset"; }
show() { printf '%s$ %s%s\n' "$dim" "$*" "$reset"; "$@"; }
die() { printf '%sdemo: %s%s\n' "$red" "$*" "$reset" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------------
# Outside the private bus: dependencies, build, temporary tree, then re-exec inside dbus-run-session.
# ---------------------------------------------------------------------------------------------------
if [[ "${1:-}" != --inner ]]; then
        # scripts/test.sh's list minus its lint-only extras (clang-format, dbus-user-session).
        # busctl and systemd-socket-activate come from "systemd".
        deps=(meson ninja-build pkg-config gcc libsystemd-dev libevent-dev libsqlite3-dev libjansson-dev
              libnotify-dev libinih-dev libcmocka-dev scdoc dbus python3-pytest python3-django
              python3-dbusmock sqlite3 util-linux systemd libdbus-1-dev curl)
        if command -v dpkg-query >/dev/null; then
                missing=()
                for p in "${deps[@]}"; do
                        [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" == "install ok installed" ]] ||
                                missing+=("$p")
                done
                if ((${#missing[@]})); then
                        if ((EUID == 0)); then
                                step "Installing missing packages: ${missing[*]}"
                                export DEBIAN_FRONTEND=noninteractive
                                apt-get update -qq
                                apt-get install -y -qq --no-install-recommends "${missing[@]}"
                        else
                                echo "demo: missing Debian packages. Install them with:" >&2
                                echo "  sudo apt-get install ${missing[*]}" >&2
                                exit 1
                        fi
                fi
        else
                echo "demo: not a Debian system, assuming the build dependencies are installed" >&2
        fi

        step "Building into ${build#"$src"/}"
        if [[ ! -f "$build/build.ninja" ]]; then
                meson setup "$build" "$src" >/dev/null || die "meson setup failed (see $build/meson-logs/meson-log.txt)"
        fi
        ninja -C "$build" daemon/djdeskd client/djdeskctl
        [[ -x "$build/daemon/djdeskd" && -x "$build/client/djdeskctl" ]] || die "the build did not produce djdeskd and djdeskctl"

        tmp=$(mktemp -d "${TMPDIR:-/tmp}/djdesk-demo.XXXXXX")
        trap 'rm -rf "$tmp"' EXIT
        mkdir -m 0700 "$tmp/runtime" "$tmp/services"
        mkdir -p "$tmp/config" "$tmp/state" "$tmp/data" "$tmp/cache"

        # A private session bus whose only activatable service is this build's daemon, so that D-Bus
        # activation can be shown without installing anything (and an installed djdesk is not hit).
        cat >"$tmp/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=$tmp/runtime/bus</listen>
  <auth>EXTERNAL</auth>
  <servicedir>$tmp/services</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
EOF
        # Written into the service directory only when step 7 shows D-Bus activation, so that no
        # earlier call can start a daemon behind the demo's back.
        sed -e "s|^Exec=.*|Exec=$build/daemon/djdeskd --log-level=warning|" \
                "$build/dbus/io.djdesk.Desk1.service" >"$tmp/io.djdesk.Desk1.service"

        export XDG_RUNTIME_DIR="$tmp/runtime" XDG_CONFIG_HOME="$tmp/config" XDG_STATE_HOME="$tmp/state" \
               XDG_DATA_HOME="$tmp/data" XDG_CACHE_HOME="$tmp/cache"
        # The Django servers need an interpreter that imports Django. The python3 first on PATH may
        # not (a pyenv or virtualenv build): then use Debian's, which python3-django above provides.
        demo_python=${DJDESK_PYTHON:-}
        if [[ -z "$demo_python" ]] && ! python3 -c 'import django' >/dev/null 2>&1; then
                demo_python=/usr/bin/python3
        fi
        if [[ -n "$demo_python" ]] && ! "$demo_python" -c 'import django' >/dev/null 2>&1; then
                die "$demo_python cannot import django (Debian package python3-django; or set DJDESK_PYTHON)"
        fi
        unset DJDESK_SOCKET DJDESK_LOG_LEVEL DJDESK_PYTHON DJDESK_FORCE_PORT DJANGO_SETTINGS_MODULE \
              INSPECTOR_DATA_LAB_ROOT DJDESK_DATA_LAB_ROOT DJDESK_SAMPLE_ROOT \
              NOTIFY_SOCKET WATCHDOG_USEC WATCHDOG_PID LISTEN_FDS LISTEN_PID LISTEN_FDNAMES \
              DBUS_SESSION_BUS_ADDRESS
        [[ -z "$demo_python" ]] || export DJDESK_PYTHON="$demo_python"
        # Run the helper and the samples from this source tree, not from an installed djdesk.
        export DJDESK_SERVE="$src/python/djdesk-serve" DJDESK_SAMPLES_DIR="$src/samples" \
               DJDESK_PRESETS_DIR="$src/data/presets.d" DJDESK_PROBE="$src/python/djdesk-probe"
        command -v dbus-run-session >/dev/null || die "dbus-run-session not found (Debian package: dbus)"
        # The inner run stops everything it started; $tmp goes once the bus is gone too (trap above).
        # As root in a container dbus-daemon complains that it cannot raise its fd limit: harmless.
        rc=0
        dbus-run-session --config-file="$tmp/bus.conf" -- bash "$self" --inner "$tmp" "$build" \
                2> >(grep --line-buffered -v 'Failed to set fd limit' >&2) || rc=$?
        exit "$rc"
fi

# ---------------------------------------------------------------------------------------------------
# Inside the private bus.
# ---------------------------------------------------------------------------------------------------
tmp=$2
build=$3
djdeskd="$build/daemon/djdeskd"
djdeskctl="$build/client/djdeskctl"
# So that "show djdeskctl info" prints what a user would type.
djdeskd() { "$djdeskd" "$@"; }
djdeskctl() { "$djdeskctl" "$@"; }
sock="$XDG_RUNTIME_DIR/djdesk/daemon.sock"
conf="$XDG_CONFIG_HOME/djdesk/djdesk.conf"
bus=(io.djdesk.Desk1 /io/djdesk/Desk1 io.djdesk.Desk1.Manager)
pids=() # every process we started and may have to stop, by id

# Prints the pid that owns io.djdesk.Desk1 on our private bus, if any.
bus_owner_pid() {
        busctl --user call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
                GetConnectionUnixProcessID s io.djdesk.Desk1 2>/dev/null | sed -n 's/^u //p'
}

cleanup() {
        local rc=$? p owner
        trap - EXIT INT TERM
        if ((rc != 0)) && [[ -s "$tmp/djdeskd.log" ]]; then
                echo "Daemon log:" >&2
                sed 's/^/  /' "$tmp/djdeskd.log" >&2
        fi
        owner=$(bus_owner_pid || true) # a daemon the bus may have activated
        [[ -n "$owner" ]] && pids+=("$owner")
        for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
        for p in "${pids[@]}"; do
                for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
                kill -KILL "$p" 2>/dev/null || true
        done
        exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

alive() { kill -0 "$1" 2>/dev/null; }

# Waits until a command succeeds, at most $1 seconds.
wait_for() {
        local timeout=$1 i
        shift
        for ((i = 0; i < timeout * 20; i++)); do
                "$@" >/dev/null 2>&1 && return 0
                sleep 0.05
        done
        return 1
}

info_field() { # info_field EXPR: evaluates EXPR (python, on the info dict "i") against daemon.info
        djdeskctl --json info | python3 -c 'import json, sys; i = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}

publish() { # publish TOPIC JSON: events.publish over the raw socket, the way any script can
        python3 - "$sock" "$1" "$2" <<'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
req = {"jsonrpc": "2.0", "id": 1, "method": "events.publish",
       "params": {"topic": sys.argv[2], "data": json.loads(sys.argv[3])}}
line = json.dumps(req)
print("> " + line)
s.sendall(line.encode() + b"\n")
print("< " + s.makefile("r").readline().rstrip("\n"))
EOF
}

# A stand-in for systemd's end of the sd_notify protocol: prints every datagram the daemon sends.
notify_listener() {
        exec python3 -u - "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
while True:
    msg = s.recv(4096).decode(errors="replace")
    for line in msg.splitlines():
        print(line, flush=True)
    if "STOPPING=1" in msg.splitlines():
        break
EOF
}

# ---- 1. start ----
step "Starting djdeskd in a private environment"
echo "XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR"
echo "DBUS_SESSION_BUS_ADDRESS=$DBUS_SESSION_BUS_ADDRESS"
mkdir -p "$(dirname "$conf")"
cat >"$conf" <<'EOF'
# written by scripts/demo.sh
[daemon]
log_level = info
max_clients = 64
EOF

notify_listener "$tmp/notify.sock" >"$tmp/notify.log" &
pids+=($!)
wait_for 5 test -S "$tmp/notify.sock" || die "the sd_notify listener did not start"

NOTIFY_SOCKET="$tmp/notify.sock" "$djdeskd" 2>"$tmp/djdeskd.log" &
daemon=$!
pids+=("$daemon")
ready() { alive "$daemon" && grep -qx 'READY=1' "$tmp/notify.log"; }
if ! wait_for 10 ready; then
        cat "$tmp/djdeskd.log" >&2
        die "djdeskd did not become ready"
fi
printf '%sdjdeskd (pid %s) told "systemd":%s\n' "$green" "$daemon" "$reset"
sed 's/^/  /' "$tmp/notify.log"

# ---- 2. info ----
step "djdeskctl info (JSON-RPC over $sock)"
show djdeskctl info

step "The same daemon over D-Bus"
show busctl --user get-property "${bus[@]}" Version
show busctl --user get-property "${bus[@]}" StartedAt
printf '%s$ busctl --user --json=short call %s GetInfo | python3 -m json.tool%s\n' "$dim" "${bus[*]}" "$reset"
busctl --user --json=short call "${bus[@]}" GetInfo |
        python3 -c 'import json, sys; print(json.dumps(json.loads(json.load(sys.stdin)["data"][0]), indent=2, sort_keys=True))'
show busctl --user introspect "${bus[@]}"

# ---- 3. events ----
step "Events: djdeskctl watch in the background while things happen"
"$djdeskctl" watch >"$tmp/watch.log" 2>&1 &
watcher=$!
pids+=("$watcher")
subscribed() { (($(info_field 'i["counts"]["subscribers"]') >= 1)); }
wait_for 5 subscribed || die "djdeskctl watch did not subscribe"

echo "A script publishes a user event on the raw socket:"
publish user.demo '{"hello":"world"}'

echo
echo "Reload with a valid change (max_clients 64 -> 128):"
sed -i 's/^max_clients = 64$/max_clients = 128/' "$conf"
show djdeskctl reload
echo "limits.max_clients is now $(info_field 'i["limits"]["max_clients"]')"

echo
echo "Reload with a broken file: the daemon refuses it and keeps its running configuration."
printf '[daemon]\nmax_clients = lots\n' >>"$conf"
rc=0
show djdeskctl reload || rc=$?
echo "djdeskctl reload exited with $rc; limits.max_clients is still $(info_field 'i["limits"]["max_clients"]')"
sed -i '/^max_clients = lots$/d' "$conf"

echo
echo "Reload through D-Bus (the same operation):"
show busctl --user call "${bus[@]}" Reload

watched_all() { (($(grep -c -e daemon.reloaded -e user.demo "$tmp/watch.log") >= 4)); }
wait_for 5 watched_all || true
echo
echo "What the watcher printed:"
sed 's/^/  /' "$tmp/watch.log"

last_seq=$(info_field 'i["seq"]')
step "Replay: a new client catches up with --since (events after seq $((last_seq - 2)))"
printf '%s$ djdeskctl watch --json --since %s%s\n' "$dim" "$((last_seq - 2))" "$reset"
"$djdeskctl" watch --json --since "$((last_seq - 2))" >"$tmp/replay.log" 2>&1 &
replayer=$!
pids+=("$replayer")
replayed() { (($(wc -l <"$tmp/replay.log") >= 2)); }
wait_for 5 replayed || true
kill -INT "$replayer" 2>/dev/null || true
wait "$replayer" 2>/dev/null || true
sed 's/^/  /' "$tmp/replay.log"

# ---- 4. a workspace and its Django server ----
step "A workspace: the atlas sample, installed, registered and served"
echo "Servers run with ${DJDESK_PYTHON:-python3 from PATH} (DJDESK_PYTHON), djdesk-serve and the samples from the source tree."
show djdeskctl sample ls
show djdeskctl sample install atlas || die "djdeskctl sample install atlas failed"
show djdeskctl server start atlas || die "the atlas server did not start"
url=$("$djdeskctl" url atlas) || die "djdeskctl url atlas failed"
ws_field() { # ws_field EXPR: evaluates EXPR (python, on the workspace dict "w") against ws show --json
        djdeskctl --json ws show atlas | python3 -c 'import json, sys; w = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}
server_pid=$(ws_field 'w["server"]["pid"]')
printf '%satlas is %s at %s (pid %s)%s\n' "$green" "$(ws_field 'w["server"]["state"]')" "$url" "$server_pid" "$reset"
printf '%s$ curl -s %s | grep -o "<title>.*</title>"%s\n' "$dim" "$url" "$reset"
curl -s "$url" | grep -o '<title>.*</title>' || die "GET $url did not return the atlas page"
show djdeskctl ws ls
show djdeskctl ws show atlas
show djdeskctl logs atlas -n 5
echo
echo "The same workspace over D-Bus:"
show busctl --user get-property io.djdesk.Desk1 /io/djdesk/Desk1/workspace/atlas io.djdesk.Desk1.Workspace \
        ServerState URL Pid || echo "(the workspace object is not on the bus)"

echo
echo "Edit a view: the daemon starts a new server process on the same socket and stops the old one once"
echo "the new one is ready; no request is refused in between."
view="$XDG_DATA_HOME/djdesk/samples/atlas/catalog/views.py"
show sed -i "s|('Instruments', |('Instruments (edited)', |" "$view"
reloaded() {
        [[ "$(ws_field 'w["server"]["state"]')" == ready ]] && curl -s "$url" | grep -q 'Instruments (edited)'
}
if wait_for 20 reloaded; then
        new_pid=$(ws_field 'w["server"]["pid"]')
        printf '%sthe page shows the edit; same URL %s, server pid %s -> %s%s\n' "$green" "$url" "$server_pid" \
                "$new_pid" "$reset"
        server_pid=$new_pid
else
        echo "the edit did not show within 20 s" >&2
fi
show djdeskctl server status atlas

step "Safe automation: allowlisted runs, streamed, persisted"
echo "Only presets run (data/presets.d and ~/.config/djdesk/presets.d): argv only, never a shell."
show djdeskctl presets atlas
show djdeskctl run atlas check --follow || echo "(the check run did not succeed)" >&2
show djdeskctl run atlas showmigrations --follow || echo "(the showmigrations run did not succeed)" >&2
echo "A preset that changes the project needs --confirm; without it nothing is queued:"
show djdeskctl run atlas migrate && die "migrate ran without --confirm"
show djdeskctl run atlas sqlmigrate --param app=catalog --param 'migration=0001; rm -rf ~' &&
        die "a parameter that fails its regex was accepted"
show djdeskctl runs atlas

step "Inspection: the project scanned, one live status document"
echo "atlas was scanned when it was added (schema, migrations, checks); the probe never writes its database."
show djdeskctl scan atlas --wait || echo "(a scan failed)" >&2
show djdeskctl status atlas
show djdeskctl schema atlas
echo "As Graphviz (djdeskctl schema atlas --dot | dot -Tsvg > atlas.svg):"
"$djdeskctl" schema atlas --dot | head -n 12
echo "A migrate run rescans by itself (here nothing is pending: the server applied the migrations as it started):"
show djdeskctl run atlas migrate --confirm --follow || echo "(migrate did not succeed)" >&2
sleep 2
show djdeskctl status atlas

# ---- 5. effective configuration ----
step "Where every setting comes from"
printf '%s$ DJDESK_FORCE_PORT=8001 djdeskd --print-config%s\n' "$dim" "$reset"
DJDESK_FORCE_PORT=8001 "$djdeskd" --print-config

# ---- 6. shutdown ----
step "Graceful shutdown with SIGTERM"
alive "$daemon" || die "djdeskd (pid $daemon) is no longer running"
show kill -TERM "$daemon"
rc=0
wait "$daemon" || rc=$?
echo "djdeskd exited with status $rc"
wrc=0
wait "$watcher" || wrc=$?
echo "djdeskctl watch saw the shutdown and exited with status $wrc; its last line:"
tail -n 1 "$tmp/watch.log" | sed 's/^/  /'
echo "Last notifications to \"systemd\":"
tail -n 2 "$tmp/notify.log" | sed 's/^/  /'
[[ -e "$sock" ]] && echo "socket file still present (unexpected)" || echo "socket file removed"
echo "Daemon log:"
sed 's/^/  /' "$tmp/djdeskd.log"
((rc == 0)) || die "djdeskd did not exit cleanly"
if alive "$server_pid"; then
        die "the atlas server (pid $server_pid) outlived the daemon"
fi
echo "the atlas server (pid $server_pid) was stopped with the daemon"

# ---- 7. activation ----
if command -v systemd-socket-activate >/dev/null; then
        step "Socket activation: systemd-socket-activate holds the socket, the first client starts djdeskd"
        printf '%s$ systemd-socket-activate -l %s djdeskd%s\n' "$dim" "$sock" "$reset"
        [[ -d "$(dirname "$sock")" ]] || mkdir -m 0700 "$(dirname "$sock")"
        systemd-socket-activate -l "$sock" \
                -E HOME -E PATH -E XDG_RUNTIME_DIR -E XDG_CONFIG_HOME -E XDG_STATE_HOME -E XDG_DATA_HOME \
                -E XDG_CACHE_HOME -E DBUS_SESSION_BUS_ADDRESS \
                "$djdeskd" --log-level=warning 2>"$tmp/activated.log" &
        activated=$!
        pids+=("$activated")
        wait_for 5 test -S "$sock" || die "systemd-socket-activate did not listen"
        show djdeskctl info
        echo "socket_activated=$(info_field 'i["socket_activated"]')" \
                "previous_shutdown=$(info_field 'i["previous_shutdown"]')" \
                "seq=$(info_field 'i["seq"]') (numbering survives restarts)"
        kill -TERM "$activated"
        wait "$activated" || die "the socket-activated djdeskd did not exit cleanly"
        rm -f "$sock" # ours to remove: a socket-activated daemon leaves it to its activator
fi

step "D-Bus activation: calling io.djdesk.Desk1 while no daemon runs starts one"
[[ -z "$(bus_owner_pid)" ]] || die "io.djdesk.Desk1 is still owned"
cp "$tmp/io.djdesk.Desk1.service" "$tmp/services/"
echo "Activation file (Exec= points at this build):"
sed 's/^/  /' "$tmp/services/io.djdesk.Desk1.service"
printf '%s$ busctl --user call %s GetInfo%s\n' "$dim" "${bus[*]}" "$reset"
busctl --user --json=short call "${bus[@]}" GetInfo >"$tmp/activated-info"
dpid=$(python3 -c 'import json, sys; print(json.loads(json.load(sys.stdin)["data"][0])["pid"])' <"$tmp/activated-info")
pids+=("$dpid")
echo "the bus started djdeskd as pid $dpid; busctl --user status io.djdesk.Desk1:"
busctl --user status io.djdesk.Desk1 | grep -E '^(PID|Comm|CommandLine)=' | sed 's/^/  /' || true
show djdeskctl info
kill -TERM "$dpid"
gone() { ! alive "$dpid"; }
wait_for 10 gone || die "the D-Bus-activated djdeskd did not stop"

step "Done"
echo "Everything ran in $tmp, which is now removed. See README.md and docs/guide.md to install djdesk for real."
