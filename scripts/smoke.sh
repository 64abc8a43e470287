#!/usr/bin/env bash
# End-to-end check of a new user's path: build with ./xcaddy.sh, run
# Caddyfile.example, send traffic through the sidecar to every route of the
# stand-in app, and find each request in the admin API with the right
# status, user, workspace and request id.
#
#   bash scripts/smoke.sh                     # from anywhere
#   SMOKE_SKIP_BUILD=1 bash scripts/smoke.sh  # reuse the ./caddy already built
#
# Caddy runs in a temporary directory with a copy of Caddyfile.example, so
# the audit data (./data) and Caddy's own state stay out of your checkout
# and home. Needs curl, python3 and promtool (Debian: apt-get install
# prometheus), and ports 8080, 9000, 9180 and 2019 free. After the HTTP
# checks it runs the CLI (simulate, alerts, report, export, verify) and
# lints a live /metrics scrape and the metric names deploy/ uses.
# The last line is "N passed, M failed"; the exit status is 0 only when
# nothing failed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/caddy-audit-smoke.XXXXXX")
pass=0 fail=0 caddy_pid=

ok() {
	pass=$((pass + 1))
	echo "ok    $*"
}
bad() {
	fail=$((fail + 1))
	echo "FAIL  $*"
}
die() {
	bad "$*"
	exit 1
}
check() { # check <description> <expected> <actual>
	if [[ "$2" == "$3" ]]; then ok "$1"; else bad "$1: got '$3', want '$2'"; fi
}

# stop_caddy: SIGTERM (graceful), SIGKILL after 10s; returns Caddy's status.
stop_caddy() {
	local pid=$caddy_pid status=0
	[[ -n "$pid" ]] || return 0
	caddy_pid=
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.2
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || status=$?
	return "$status"
}

finish() {
	local rc=$?
	stop_caddy || true
	if ((rc != 0 && fail == 0)); then # a command failed under set -e
		bad "unexpected error (exit status $rc); see the output above"
	fi
	if ((fail > 0)); then
		if [[ -s "$work/caddy.log" ]]; then
			echo "--- last lines of $work/caddy.log:"
			tail -n 30 "$work/caddy.log"
		fi
		echo "--- kept $work for inspection"
	else
		rm -rf "$work"
	fi
	echo "$pass passed, $fail failed"
	((fail == 0)) && exit 0 || exit 1
}
trap finish EXIT
trap 'exit 130' INT TERM

for tool in curl python3; do
	command -v "$tool" >/dev/null || die "$tool is required"
done

# Build, as a new user would.
if [[ "${SMOKE_SKIP_BUILD:-}" == 1 && -x "$root/caddy" ]]; then
	echo "smoke: reusing $root/caddy"
else
	echo "smoke: building with ./xcaddy.sh (log: $work/build.log)"
	if ! "$root/xcaddy.sh" build >"$work/build.log" 2>&1; then
		tail -n 30 "$work/build.log"
		die "./xcaddy.sh build failed"
	fi
	ok "./xcaddy.sh builds ./caddy"
fi
"$root/caddy" list-modules 2>/dev/null | grep -qx 'http.handlers.audit' ||
	die "./caddy does not include the audit handler"
if "$root/caddy" fmt "$root/Caddyfile.example" | cmp -s - "$root/Caddyfile.example"; then
	ok "Caddyfile.example is formatted (caddy fmt)"
else
	bad "Caddyfile.example differs from \`caddy fmt\` output: run ./caddy fmt --overwrite Caddyfile.example"
fi
if "$root/caddy" adapt --config "$root/Caddyfile.example" --adapter caddyfile >"$work/adapted.json" 2>"$work/adapt.log"; then
	ok "Caddyfile.example adapts to JSON"
else
	die "caddy adapt Caddyfile.example failed: $(tail -n 3 "$work/adapt.log")"
fi

for port in 8080 9000 9180 2019; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		die "port $port is already in use (is ./xcaddy.sh run still running?)"
	fi
done

# Run the example unchanged, from the temporary directory.
cp "$root/Caddyfile.example" "$work/Caddyfile"
cd "$work"
start_caddy() {
	env -u AUDIT_DATA_DIR -u AUDIT_ADMIN_BIND \
		XDG_CONFIG_HOME="$work/xdg-config" XDG_DATA_HOME="$work/xdg-data" \
		"$root/caddy" run --config Caddyfile --adapter caddyfile >>caddy.log 2>&1 &
	caddy_pid=$!
}
start_caddy

wait_for() { # wait_for <description> <command...>
	local what=$1
	shift
	for _ in $(seq 150); do
		"$@" >/dev/null 2>&1 && return 0
		kill -0 "$caddy_pid" 2>/dev/null || die "caddy exited while waiting for $what"
		sleep 0.2
	done
	die "timed out after 30s waiting for $what"
}
wait_for "GET 127.0.0.1:9180/healthz" curl -fsS http://127.0.0.1:9180/healthz
ok "admin API /healthz answers"
wait_for "the proxy on :8080" bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080'
wait_for "the stand-in app on 127.0.0.1:9000" bash -c 'exec 3<>/dev/tcp/127.0.0.1/9000'
ok "proxy :8080 and app 127.0.0.1:9000 listen"

keyfile=data/bootstrap-admin.key
wait_for "$keyfile" test -s "$keyfile"
check "$keyfile has mode 600" 600 \
	"$(python3 -c 'import os, sys; print("%o" % (os.stat(sys.argv[1]).st_mode & 0o777))' "$keyfile")"
key=$(tr -d '[:space:]' <"$keyfile")

# Traffic through the sidecar. Each request gets its own X-Request-ID;
# expected.tsv says what the audit trail must show for it.
run_id="smoke-$(date +%s)-$$"
n=0
send() { # send <want status> <user> <workspace> <method> <path> [curl args...]
	local want=$1 user=$2 ws=$3 method=$4 path=$5
	shift 5
	n=$((n + 1))
	local rid="$run_id-$n" got
	got=$(curl -sS -o "resp.$n" -w '%{http_code}' -X "$method" \
		-H "X-User-ID: $user" -H "X-Workspace-ID: $ws" -H "X-Request-ID: $rid" \
		"$@" "http://127.0.0.1:8080$path") || got="curl error"
	check "$method $path${*:+ [$*]} -> $want" "$want" "$got"
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$rid" "$method" "$path" "$want" "$user" "$ws" >>expected.tsv
}
: >expected.tsv
json=(-H 'Content-Type: application/json')
send 200 alice acme POST /login -d 'username=alice&password=demo'
send 200 alice acme POST /login "${json[@]}" -d '{"username":"alice","password":"demo"}'
send 401 alice acme POST /login -d 'username=alice&password=demox'
send 401 alice acme POST /login -d 'username=alice&password=notdemo'
send 401 alice acme POST /login "${json[@]}" -d '{"username":"alice","password":"wrong"}'
send 200 alice acme GET /api/items
items_via_proxy=$n
send 200 alice acme GET /api/items/42
item_via_proxy=$n
send 204 bob globex DELETE /api/items/42
send 403 bob globex GET /admin/users
# The app's answers depend on a header and on the body, so these two also
# show that both reach the app unchanged: X-User-Role, and a 256 KiB form
# whose password field comes last.
send 200 carol globex GET /admin/users -H 'X-User-Role: admin'
python3 -c 'print("username=alice&padding=" + "x" * 262144 + "&password=demo", end="")' >big-form
send 200 alice acme POST /login --data-binary @big-form
send 404 alice acme GET /no/such/page

# Responses pass through unchanged too.
curl -sS -o direct.items http://127.0.0.1:9000/api/items
if cmp -s direct.items "resp.$items_via_proxy"; then
	ok "GET /api/items body is the same through the proxy as from the app"
else
	bad "GET /api/items body differs through the proxy: $(head -c 200 "resp.$items_via_proxy")"
fi
if grep -q '"id":"42"' "resp.$item_via_proxy"; then
	ok "GET /api/items/42 echoes the id"
else
	bad "GET /api/items/42 body: $(head -c 200 "resp.$item_via_proxy")"
fi

# The admin API.
events_url='http://127.0.0.1:9180/api/v1/events?limit=100'
check "GET /api/v1/events without a key -> 401" 401 \
	"$(curl -sS -o /dev/null -w '%{http_code}' "$events_url")"
ctype=$(curl -sS -o /dev/null -w '%{content_type}' "$events_url")
check "the 401 is an RFC 9457 problem document" application/problem+json "${ctype%%;*}"
metrics=$(curl -sS -w '\n%{http_code}' http://127.0.0.1:9180/metrics)
check "GET /metrics -> 200" 200 "${metrics##*$'\n'}"

# Events are written asynchronously (best_effort): poll until every request
# id shows up, reading only HTTP events so the admin API's records of these
# very reads cannot push them out of the page.
verify() { # verify <events.json> [--quiet]: check each expected request
	python3 - "$@" <<'PY'
import csv, json, sys

quiet = "--quiet" in sys.argv
try:
    events = json.load(open(sys.argv[1]))["events"]
except Exception as err:
    if not quiet:
        print(f"FAIL  {sys.argv[1]} is not an events page: {err!r}")
    sys.exit(1)
by_rid = {}
for e in events:
    if e.get("kind") == "http" and e.get("request_id"):
        by_rid.setdefault(e["request_id"], []).append(e)
failed = 0
for rid, method, path, status, user, ws in csv.reader(open("expected.tsv"), delimiter="\t"):
    what = f"event {rid} ({method} {path})"
    got = by_rid.get(rid, [])
    if len(got) != 1:
        failed += 1
        if not quiet:
            print(f"FAIL  {what}: {len(got)} events with this request_id, want 1")
        continue
    e = got[0]
    want = {"method": method, "path": path, "status": int(status), "user": user, "workspace": ws}
    diff = {k: e.get(k) for k, v in want.items() if e.get(k) != v}
    if diff:
        failed += 1
        if not quiet:
            print(f"FAIL  {what}: got {diff}, want { {k: want[k] for k in diff} }")
    elif not quiet:
        print(f"ok    {what}: status {status}, user {user}, workspace {ws}")
sys.exit(1 if failed else 0)
PY
}
get_events() { # get_events <url> <file>
	curl -sS -f -H "Authorization: Bearer $key" -o "$2" "$1"
}
found=
for _ in $(seq 50); do
	if get_events "$events_url&kind=http" events.json && verify events.json --quiet; then
		found=1
		break
	fi
	sleep 0.2
done
[[ -n "$found" ]] || echo "smoke: not every request appeared within 10s; details follow"

get_events "$events_url" events.json || die "GET $events_url with the bootstrap key failed"
ok "GET /api/v1/events?limit=100 with the bootstrap key"
results=$(verify events.json || true)
echo "$results"
pass=$((pass + $(grep -c '^ok ' <<<"$results" || true)))
fail=$((fail + $(grep -c '^FAIL ' <<<"$results" || true)))

admin_events=$(python3 -c '
import json, sys
print(sum(e.get("kind") == "admin" for e in json.load(open(sys.argv[1]))["events"]))
' events.json)
if ((admin_events > 0)); then
	ok "the admin API's own reads are in the audit trail ($admin_events events)"
else
	bad "no kind=admin event for the admin API reads"
fi

# The admin API on the live sidecar: its OpenAPI document, a key scoped to
# one workspace that sees only that workspace in a CSV export, and a report.
api=http://127.0.0.1:9180/api/v1
ops=$(curl -sS -f "$api/openapi.json" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(d["openapi"], sum(len(v) for v in d["paths"].values()))' || echo "none 0")
if [[ ${ops% *} == 3.1.0 && ${ops#* } -ge 25 ]]; then
	ok "GET /api/v1/openapi.json is OpenAPI 3.1.0 with ${ops#* } operations"
else
	bad "GET /api/v1/openapi.json: $ops"
fi
scoped=$(curl -sS -f -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
	-d '{"name":"smoke acme viewer","role":"auditor","workspace":"acme","expires_in":"1h"}' "$api/keys" |
	python3 -c 'import json, sys; print(json.load(sys.stdin)["secret"])' || true)
check "POST /api/v1/keys issues a cka_ key" cka_ "${scoped:0:4}"
workspaces=$(curl -sS -f -H "Authorization: Bearer $scoped" "$api/events/export?format=csv&kind=http" | python3 -c '
import csv, sys
rows = list(csv.DictReader(sys.stdin))
print(len(rows), ",".join(sorted({r["workspace"] for r in rows})))' || echo "error")
check "a key scoped to acme exports only acme's events as CSV" "$(grep -c $'\tacme$' expected.tsv) acme" "$workspaces"
soc2=$(curl -sS -f -H "Authorization: Bearer $key" "$api/reports/soc2" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(d["report"], all(c in d for c in ("cc6_1", "cc6_2", "cc6_3", "cc7_2", "cc7_3")), d["totals"]["events"] > 0)' || echo "error")
check "GET /api/v1/reports/soc2 has all five criteria and counts the recorded events" "soc2 True True" "$soc2"

# A clean stop: exit status 0 and no errors logged.
if stop_caddy; then ok "caddy stops cleanly on SIGTERM"; else bad "caddy exited with status $? on SIGTERM"; fi
errors=$(grep -E '"level":"(error|panic|fatal)"' caddy.log || true)
if [[ -z "$errors" ]]; then ok "no errors in caddy.log"; else bad "errors in caddy.log: ${errors:0:600}"; fi

# Restart on the same data: the events and the bootstrap key are kept.
key_before=$(cat "$keyfile")
start_caddy
wait_for "GET 127.0.0.1:9180/healthz after a restart" curl -fsS http://127.0.0.1:9180/healthz
check "bootstrap-admin.key is unchanged after a restart" "$key_before" "$(cat "$keyfile")"
get_events "$events_url&kind=http" events.json || die "GET /api/v1/events after a restart failed"
if verify events.json --quiet; then
	ok "all $n events are still there after a restart"
else
	bad "events missing after a restart: $(verify events.json | grep -c '^FAIL ' || true) of $n"
fi

# The operator's tools on the running sidecar: the CLI as a user runs it
# from the directory Caddy was started in (./data/bootstrap-admin.key is
# the default key), the README demo, and Prometheus.
audit() { "$root/caddy" audit "$@"; }
if audit simulate --target http://127.0.0.1:8080 --requests 1000 >simulate.txt 2>simulate.err &&
	grep -q '^sent [0-9]* requests' simulate.txt && ! grep -q 'differ from the stand-in app' simulate.txt; then
	ok "caddy audit simulate: $(head -n 1 simulate.txt)"
else
	bad "caddy audit simulate: $(cat simulate.txt simulate.err | tail -n 15)"
fi
alerts_seen=
for _ in $(seq 50); do
	audit alerts list --limit 1000 >alerts.txt 2>alerts.err || true
	if grep -q brute_force alerts.txt && grep -q mass_deletion alerts.txt && grep -q privilege_escalation alerts.txt &&
		grep -q data_exfiltration alerts.txt && grep -q unauthorized_access alerts.txt; then
		alerts_seen=1
		break
	fi
	sleep 0.2
done
if [[ -n "$alerts_seen" ]]; then
	ok "caddy audit alerts list shows the simulated attacks ($(($(wc -l <alerts.txt) - 1)) alerts)"
else
	bad "caddy audit alerts list after the simulation: $(cat alerts.txt alerts.err | head -n 20)"
fi
if audit report score >score.txt 2>&1 && grep -q '^score: [0-9]* / 100' score.txt; then
	ok "caddy audit report score: $(grep '^score:' score.txt)"
else
	bad "caddy audit report score: $(head -n 10 score.txt)"
fi
if audit export -o export.ndjson 2>export.err && grep -q '(checked)' export.err &&
	audit verify --file export.ndjson >verify.txt 2>&1 && grep -q 'integrity: OK' verify.txt; then
	ok "caddy audit export (trailers checked) verifies offline: $(sed -n 2p verify.txt | sed 's/^ *//')"
else
	bad "caddy audit export + verify --file: $(cat export.err verify.txt 2>/dev/null | head -n 10)"
fi

# Prometheus: the live /metrics passes promtool's lint, and every metric
# the dashboard and the alert rules in deploy/ use is in it.
if ! command -v promtool >/dev/null; then
	bad "promtool is not installed (apt-get install prometheus; .ci/run installs it)"
elif ! curl -sS -f -o metrics.txt http://127.0.0.1:9180/metrics; then
	bad "GET /metrics for promtool failed"
elif lint=$(promtool check metrics <metrics.txt 2>&1); then
	ok "promtool check metrics passes on a live scrape of :9180/metrics ($(grep -c '^caddy_audit_' metrics.txt) caddy_audit_ series)"
else
	bad "promtool check metrics on the live scrape: $lint"
fi
missing=$(python3 - "$root/deploy/grafana/caddy-audit-dashboard.json" "$root/deploy/prometheus/caddy-audit-rules.yml" metrics.txt <<'PY'
import re, sys
scraped = set()
for line in open(sys.argv[3]):
    m = re.match(r"# TYPE (\S+)|([a-zA-Z_:][a-zA-Z0-9_:]*)", line)
    if m:
        scraped.add(m.group(1) or m.group(2))
used = set()
for path in sys.argv[1:3]:
    used |= set(re.findall(r"caddy_audit_[a-z_]*[a-z]", open(path).read()))
print(" ".join(sorted(used - scraped)) or "", end="")
print(f"\t{len(used)}", end="")
PY
) || missing="error"$'\t'0
if [[ "${missing%%$'\t'*}" == "" ]]; then
	ok "all ${missing#*$'\t'} metric names of the Grafana dashboard and the alert rules are in the live scrape"
else
	bad "metric names used in deploy/ but not in the live scrape: ${missing%%$'\t'*}"
fi
