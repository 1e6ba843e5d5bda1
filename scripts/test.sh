#!/usr/bin/env bash
# Runs every djdesk test and prints, as its very last line, "N passed, M failed[, K skipped]".
#
#   1. installs the Debian packages the build and the tests need (as root; otherwise prints the command)
#   2. build A (build-test):  -Dwerror=true, unit + integration + python tests
#   3. build B (build-asan):  the same with AddressSanitizer + UndefinedBehaviorSanitizer
#   4. clang-format --dry-run --Werror over the C sources (counts as one test)
#   5. sums the JUnit XML of both builds (cmocka and pytest write it to <build>/test-results/)
#
# Exits non-zero if anything failed or if no test ran. Runnable from any directory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PACKAGES=(meson ninja-build pkg-config gcc libsystemd-dev libevent-dev libsqlite3-dev libjansson-dev
          libnotify-dev libinih-dev libcmocka-dev scdoc dbus dbus-user-session python3-pytest python3-django
          python3-dbusmock sqlite3 util-linux systemd clang-format libdbus-1-dev
          desktop-file-utils graphviz python3-jsonschema libmd4c-dev libmd4c-html0-dev nettle-dev
          python3-nbformat python3-nbclient python3-ipykernel)
SYS_PYTHON=/usr/bin/python3

say() { printf '==> %s\n' "$*"; }

summary_fail() {  # a failure before any test could run
        printf '%s\n' "0 passed, 1 failed"
        exit 1
}

# ---- 1. packages ----------------------------------------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
        status="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
        [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
        if [[ "$(id -u)" == 0 ]]; then
                say "installing missing packages: ${missing[*]}"
                export DEBIAN_FRONTEND=noninteractive
                if ! { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; } </dev/null; then
                        say "package installation failed"
                        summary_fail
                fi
        else
                say "missing packages: ${missing[*]}"
                echo "Install them with:"
                echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}"
                summary_fail
        fi
fi

LOGDIR="$(mktemp -d /tmp/djdesk-test-logs.XXXXXX)"
trap 'rm -rf "$LOGDIR"' EXIT
BUILD_FAILURES=()  # builds that could not be set up or compiled (one failure each)
BUILDS=()

# ---- 2./3. builds ---------------------------------------------------------------------------------------
# run_build NAME [meson options...]: fresh setup, compile, unit + integration + python tests.
run_build() {
        local name="$1"
        shift
        local dir="$ROOT/$name"
        local mtest_args=(--suite unit --suite integration --suite python --print-errorlogs)

        say "$name: meson setup -Dwerror=true $*"
        rm -rf "$dir"
        if ! meson setup "$dir" "$ROOT" -Dwerror=true "$@" >"$LOGDIR/$name-setup.log" 2>&1; then
                tail -n 60 "$LOGDIR/$name-setup.log"
                say "$name: meson setup FAILED"
                BUILD_FAILURES+=("$name: meson setup")
                return 0
        fi
        say "$name: ninja"
        if ! ninja -C "$dir" >"$LOGDIR/$name-ninja.log" 2>&1; then
                grep -E 'error|warning' "$LOGDIR/$name-ninja.log" | head -n 80 || true
                tail -n 40 "$LOGDIR/$name-ninja.log"
                say "$name: build FAILED"
                BUILD_FAILURES+=("$name: build")
                return 0
        fi
        BUILDS+=("$dir")
        rm -rf "$dir/test-results"
        mkdir -p "$dir/test-results"
        if [[ "$name" == build-asan ]]; then
                mtest_args+=(--timeout-multiplier 3)
        fi
        say "$name: meson test ${mtest_args[*]}"
        if meson test -C "$dir" "${mtest_args[@]}"; then
                say "$name: tests passed"
        else
                say "$name: some tests FAILED (counted below)"
        fi
        return 0
}

run_build build-test

# LeakSanitizer stops the world with ptrace-like thread suspension; where that is not allowed (some
# containers, or a process already being traced) it dies with a fatal error instead of reporting leaks.
# Probe it once: if it cannot work here, run ASan/UBSan without leak detection and say so.
detect_leaks=1
probe_dir="$LOGDIR/lsan-probe"
mkdir -p "$probe_dir"
printf '#include <stdlib.h>\nvoid *volatile keep;\nint main(void) { keep = malloc(33); keep = 0; return 0; }\n' \
        >"$probe_dir/leak.c"
if cc -fsanitize=address -g -o "$probe_dir/leak" "$probe_dir/leak.c" >"$probe_dir/cc.log" 2>&1; then
        ASAN_OPTIONS=detect_leaks=1 "$probe_dir/leak" >"$probe_dir/run.log" 2>&1 || true
        if ! grep -q "detected memory leaks" "$probe_dir/run.log"; then
                detect_leaks=0
                say "LeakSanitizer does not work on this machine (ptrace restricted?):"
                head -n 5 "$probe_dir/run.log"
                say "running the sanitizer build with detect_leaks=0"
        fi
else
        cat "$probe_dir/cc.log"
        say "cannot build with -fsanitize=address"
fi

export ASAN_OPTIONS="detect_leaks=${detect_leaks}:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="print_suppressions=0"
run_build build-asan -Db_sanitize=address,undefined -Db_lundef=false
unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS

# ---- 4. formatting --------------------------------------------------------------------------------------
format_status=pass
say "clang-format --dry-run --Werror"
mapfile -t c_files < <(for d in common datalab daemon client tests/unit bench; do
        [[ -d "$d" ]] && find "$d" -type f \( -name '*.c' -o -name '*.h' \)
done | sort)
if ((${#c_files[@]} > 0)); then
        if clang-format --dry-run --Werror "${c_files[@]}" >"$LOGDIR/format.log" 2>&1; then
                say "clang-format: ${#c_files[@]} files formatted"
        else
                format_status=fail
                head -n 60 "$LOGDIR/format.log"
                say "clang-format: FAILED ($(grep -c 'error:' "$LOGDIR/format.log" || true) findings; run clang-format -i)"
        fi
else
        say "clang-format: no C files"
fi

# ---- 5. counting ----------------------------------------------------------------------------------------
say "results"
for f in "${BUILD_FAILURES[@]}"; do
        echo "  FAILED: $f"
done
rc=0
"$SYS_PYTHON" - "$format_status" "${#BUILD_FAILURES[@]}" "${BUILDS[@]}" <<'PY' || rc=$?
import glob, json, os, sys
import xml.etree.ElementTree as ET

format_status, n_build_failures, builds = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
passed = failed = skipped = 0
ran = 0  # tests reported by the XML files (the format check not included)
failing = []

for b in builds:
    name = os.path.basename(b)
    failing_xml = 0
    for f in sorted(glob.glob(os.path.join(b, "test-results", "*.xml"))):
        try:
            root = ET.parse(f).getroot()
        except (ET.ParseError, OSError) as e:
            print(f"  {name}: {os.path.basename(f)}: unreadable ({e})")
            failed += 1
            failing_xml += 1
            continue
        suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
        t = fl = er = sk = 0
        for s in suites:
            t += int(s.get("tests") or 0)
            fl += int(s.get("failures") or 0)
            er += int(s.get("errors") or 0)
            sk += int(s.get("skipped") or 0)
        p = max(0, t - fl - er - sk)
        ran += p + fl + er
        passed += p
        failed += fl + er
        skipped += sk
        if fl + er:
            failing_xml += 1
            for tc in root.iter("testcase"):
                if tc.find("failure") is not None or tc.find("error") is not None:
                    t_name = f"{name}: {tc.get('classname') or ''}::{tc.get('name')}"
                    if t_name not in failing:
                        failing.append(t_name)
        print(f"  {name}: {os.path.basename(f)}: {p} passed, {fl + er} failed, {sk} skipped")
    # A meson test that failed without leaving a failing XML report (a crash, a sanitizer abort at exit, a
    # timeout, a test runner that never started) counts as one failure.
    mfailed = []
    reported = {os.path.splitext(os.path.basename(f))[0] for f in glob.glob(os.path.join(b, "test-results", "*.xml"))}
    log = os.path.join(b, "meson-logs", "testlog.json")
    if os.path.exists(log):
        with open(log) as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                if r.get("result") in ("FAIL", "TIMEOUT", "ERROR", "UNEXPECTEDPASS"):
                    mfailed.append(f"{r.get('name')} ({r.get('result')})")
                elif r.get("result") == "OK" and r.get("name", "").rsplit(" / ", 1)[-1] not in reported:
                    # A test that writes no JUnit report (the fuzz corpus replay) counts as one. Names in the
                    # log are "project:suite / test"; reports are named after the test (cmocka's %g is the
                    # group name, which tests/unit keeps equal to the meson test name).
                    passed += 1
                    ran += 1
                    print(f"  {name}: {r.get('name')}: passed (no report, counted as one test)")
    else:
        print(f"  {name}: no meson test log")
        mfailed.append("meson test (no log)")
    extra = max(0, len(mfailed) - failing_xml)
    if extra:
        print(f"  {name}: {extra} meson test(s) failed without a failing report: {', '.join(mfailed)}")
        failed += extra
        failing.extend(f"{name}: {m}" for m in mfailed)

failed += n_build_failures
if format_status == "pass":
    passed += 1
else:
    failed += 1
    failing.append("clang-format")

if failing:
    print("  failing:")
    for f in failing[:200]:
        print(f"    {f}")
if ran == 0:
    print("  no test ran")
line = f"{passed} passed, {failed} failed"
if skipped:
    line += f", {skipped} skipped"
print(line)
sys.exit(1 if failed or ran == 0 else 0)
PY
exit "$rc"
