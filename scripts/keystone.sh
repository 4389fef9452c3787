#!/usr/bin/env bash
# keystone.sh runs a throwaway OpenStack Keystone (identity v3) on 127.0.0.1 for
# development and CI: SQLite backend, Fernet tokens, everything under one directory.
#
#   scripts/keystone.sh start  [DIR]   install if needed, (re)start, provision, write DIR/keystone.env
#   scripts/keystone.sh stop   [DIR]   stop the server (safe when it is not running)
#   scripts/keystone.sh status [DIR]   say whether it runs and answers; exit 0 if it does, 3 if not
#
# DIR defaults to .keystone in the repository root (gitignored). KEYSTONE_PORT picks the
# port (default 5000). Re-running start on an existing DIR restarts the server and reuses
# the database, keys, users and passwords already there.
#
# DIR/keystone.env (mode 0600) holds the service's own credentials (KEYSTONE_URL,
# KEYSTONE_USERNAME, KEYSTONE_PASSWORD, KEYSTONE_PROJECT, KEYSTONE_DOMAIN) and the
# test users' (KS_TENANT_A_*, KS_TENANT_B_*, KS_ADMIN_*). It is sourceable and has
# no quoting, so it also works as a docker --env-file.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT=${KEYSTONE_PORT:-5000}
HOST=127.0.0.1
# The dev server needs a few seconds to import Keystone; a cold page cache makes it slower.
START_TIMEOUT=${KEYSTONE_START_TIMEOUT:-90}

log() { printf 'keystone.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
	sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# as_root runs a command as root, through sudo when we are not root (apt needs it).
as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root (or sudo) to run: $*"
	fi
}

# py picks Debian's interpreter when present: the keystone package guarantees it, and a
# pyenv or virtualenv shim earlier on PATH may not be usable from a script.
py() {
	if [ -x /usr/bin/python3 ]; then /usr/bin/python3 "$@"; else python3 "$@"; fi
}

# ---------------------------------------------------------------------------------------
# Installation

install_keystone() {
	if command -v keystone-manage >/dev/null 2>&1 && command -v keystone-wsgi-public >/dev/null 2>&1; then
		return
	fi
	log "installing Debian's keystone package (takes a few minutes)"
	# An empty or stale package list has no candidate for keystone: refresh it first.
	if ! apt-cache show keystone >/dev/null 2>&1; then
		as_root apt-get update
	fi
	if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y keystone; then
		# A stale list can name package versions the mirror no longer has.
		as_root apt-get update
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y keystone
	fi
	disable_packaged_service
}

# disable_packaged_service stops the keystone service the package may have started (on
# hosts whose policy-rc.d allows it), so that it neither holds our port now nor after a
# reboot. Containers usually refuse the start by policy, which leaves nothing to do.
disable_packaged_service() {
	if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
		as_root systemctl disable --now keystone >/dev/null 2>&1 || true
		as_root systemctl disable --now apache2 >/dev/null 2>&1 || true
	elif [ -x /etc/init.d/keystone ]; then
		as_root /etc/init.d/keystone stop >/dev/null 2>&1 || true
	fi
}

# ---------------------------------------------------------------------------------------
# Server process

# alive says whether pid runs. A server we killed stays a zombie until init reaps it,
# which can take a second or more; it holds no port, so it counts as gone.
alive() {
	[ -r "/proc/$1/stat" ] || return 1
	[ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" != Z ]
}

pid_of_server() {
	local pid
	[ -f "$DIR/keystone.pid" ] || return 1
	pid=$(cat "$DIR/keystone.pid" 2>/dev/null) || return 1
	[ -n "$pid" ] && alive "$pid" || return 1
	# Only our own server counts: the pid may have been reused by anything since.
	local cmdline
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline")
	case "$cmdline" in
	*keystone-wsgi-public*"--config-file $DIR/keystone.conf"*) ;;
	*) return 1 ;;
	esac
	echo "$pid"
}

stop_server() {
	local pid
	if ! pid=$(pid_of_server); then
		rm -f "$DIR/keystone.pid"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 50); do
		alive "$pid" || break
		sleep 0.1
	done
	if alive "$pid"; then
		log "server $pid ignored SIGTERM; killing it"
		kill -KILL "$pid" 2>/dev/null || true
		sleep 0.2
	fi
	rm -f "$DIR/keystone.pid"
	log "stopped server $pid"
}

port_in_use() {
	# bash's /dev/tcp avoids depending on ss or netstat being installed.
	(exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
}

port_holder() {
	if command -v ss >/dev/null 2>&1; then
		ss -Hltnp "sport = :$PORT" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -1
	fi
}

start_server() {
	local pid
	if port_in_use; then
		# Something else holds the port. A packaged keystone is ours to stop; anything
		# else is not, so we say what it is and let the user decide.
		local holder
		holder=$(port_holder)
		case "$holder" in
		*uwsgi* | *keystone-api* | *apache2*)
			log "port $PORT is held by a packaged service ($holder); stopping it"
			disable_packaged_service
			sleep 1
			;;
		esac
		if port_in_use; then
			die "port $PORT on $HOST is in use${holder:+ by $holder}; stop it or set KEYSTONE_PORT"
		fi
	fi
	: >"$DIR/keystone.log"
	# keystone-wsgi-public serves with Python's wsgiref: one connection at a time, behind
	# a listen backlog of 5. The tests, run in parallel, connect more often than that at
	# once, and a connection past the backlog waits a second or more for TCP to try again,
	# long enough for a Keystone call to time out. So it runs, under the interpreter its
	# first line names, with a backlog of 128: bursts then only wait their turn.
	local wsgi interp
	wsgi=$(command -v keystone-wsgi-public)
	interp=$(sed -n '1s/^#! *//p' "$wsgi")
	# setsid detaches the server from our process group, so that the CI step that runs
	# this script doesn't take the server down with it when it ends.
	# 9>&- keeps our lock's descriptor out of the server, which would otherwise hold the
	# lock for as long as it runs and block every later start or stop.
	# shellcheck disable=SC2086 # a first line of "/usr/bin/env python3" is two words
	setsid ${interp:-python3} -c 'import runpy, sys, wsgiref.simple_server as s; s.WSGIServer.request_queue_size = 128; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name="__main__")' \
		"$wsgi" --host "$HOST" --port "$PORT" -- --config-file "$DIR/keystone.conf" \
		</dev/null >>"$DIR/keystone.log" 2>&1 9>&- &
	pid=$!
	echo "$pid" >"$DIR/keystone.pid"
	echo "$PORT" >"$DIR/port"
	for _ in $(seq 1 $((START_TIMEOUT * 5))); do
		if curl -sf --noproxy '*' -o /dev/null --max-time 2 "http://$HOST:$PORT/v3"; then
			log "server $pid answers on http://$HOST:$PORT/v3"
			return 0
		fi
		if ! alive "$pid"; then
			tail -n 30 "$DIR/keystone.log" >&2 || true
			rm -f "$DIR/keystone.pid"
			die "keystone-wsgi-public exited during start-up (log: $DIR/keystone.log)"
		fi
		sleep 0.2
	done
	tail -n 30 "$DIR/keystone.log" >&2 || true
	stop_server
	die "keystone did not answer on port $PORT within ${START_TIMEOUT}s (log: $DIR/keystone.log)"
}

# ---------------------------------------------------------------------------------------
# Configuration and database

# secret prints a random alphanumeric string: no quoting needed in the env file.
secret() {
	local s
	# No head at the end of the pipe: under pipefail its early exit could fail tr.
	s=$(head -c 64 /dev/urandom | base64 -w0 | tr -dc 'A-Za-z0-9')
	[ ${#s} -ge 24 ] || die "could not generate a password"
	echo "${s:0:24}"
}

# load_secrets reads DIR/secrets.env, creating each missing password once, so that
# re-runs keep the passwords users and tests already hold.
load_secrets() {
	local f=$DIR/secrets.env name
	touch "$f"
	chmod 600 "$f"
	for name in ADMIN_PASSWORD SERVICE_PASSWORD TENANT_A_PASSWORD TENANT_B_PASSWORD; do
		if ! grep -q "^$name=" "$f"; then
			echo "$name=$(secret)" >>"$f"
		fi
	done
	# shellcheck disable=SC1090
	. "$f"
}

write_config() {
	local conf=$DIR/keystone.conf tmp
	tmp=$(mktemp "$DIR/keystone.conf.XXXXXX")
	cat >"$tmp" <<EOF
# Written by scripts/keystone.sh; rewritten on every start.
[DEFAULT]
# Logs go to stderr, which start redirects to $DIR/keystone.log.
use_stderr = true

[database]
connection = sqlite:///$DIR/keystone.db

[token]
provider = fernet

[fernet_tokens]
key_repository = $DIR/fernet

[credential]
key_repository = $DIR/cred

[identity]
# bcrypt's cheapest cost: every password login (tests make dozens) takes milliseconds
# instead of a quarter second. Right for a throwaway test server, wrong for production.
password_hash_rounds = 4
EOF
	mv "$tmp" "$conf"
}

# setup_stamp names what db_sync and bootstrap were last run for: the package version (an
# upgrade needs db_sync), the port (bootstrap records the endpoint URL) and the admin
# password (bootstrap sets it). It prints nothing when the version is unknown.
setup_stamp() {
	local version
	version=$(dpkg-query -W -f='${Version}' keystone 2>/dev/null) || return 0
	printf 'keystone=%s port=%s admin=%s\n' "$version" "$PORT" \
		"$(printf '%s' "$ADMIN_PASSWORD" | sha256sum | cut -c1-16)"
}

setup_database() {
	local owner=() conf=$DIR/keystone.conf stamp
	stamp=$(setup_stamp)
	# db_sync and bootstrap take 7 s and change nothing when nothing they depend on has
	# changed: on a restart, skip them.
	if [ -n "$stamp" ] && [ -f "$DIR/keystone.db" ] && [ -f "$DIR/fernet/0" ] &&
		[ "$(cat "$DIR/setup.stamp" 2>/dev/null)" = "$stamp" ]; then
		return 0
	fi
	rm -f "$DIR/setup.stamp"
	if [ "$(id -u)" -eq 0 ]; then
		# keystone-manage otherwise wants the keys owned by a "keystone" user.
		owner=(--keystone-user root --keystone-group root)
	else
		owner=(--keystone-user "$(id -un)" --keystone-group "$(id -gn)")
	fi
	manage() { keystone-manage --config-file "$conf" "$@" >>"$DIR/keystone-manage.log" 2>&1 ||
		{ tail -n 30 "$DIR/keystone-manage.log" >&2; die "keystone-manage $1 failed (log: $DIR/keystone-manage.log)"; }; }
	# db_sync and bootstrap are idempotent; the key setups are run only once because a
	# second run would have nothing to add (and must never replace keys in use).
	manage db_sync
	# WAL lets a write commit while another connection still reads. Keystone's sessions
	# sometimes overlap like that even in the single-threaded dev server, and SQLite's
	# default rollback journal then fails the write with "database is locked" (seen on
	# role grants). The setting is stored in the database file, so once is enough.
	py -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA journal_mode=WAL")' "$DIR/keystone.db"
	[ -f "$DIR/fernet/0" ] || manage fernet_setup "${owner[@]}"
	[ -f "$DIR/cred/0" ] || manage credential_setup "${owner[@]}"
	manage bootstrap \
		--bootstrap-username admin \
		--bootstrap-password "$ADMIN_PASSWORD" \
		--bootstrap-project-name admin \
		--bootstrap-role-name admin \
		--bootstrap-service-name keystone \
		--bootstrap-region-id RegionOne \
		--bootstrap-public-url "http://$HOST:$PORT/v3/"
	if [ -n "$stamp" ]; then echo "$stamp" >"$DIR/setup.stamp"; fi
}

# ---------------------------------------------------------------------------------------
# Provisioning through the v3 API

# provision creates (or finds) the projects, users and role assignments, and prints the
# project ids as KEY=value lines. It is Python rather than curl+jq because it parses a
# dozen JSON answers and must fail loudly on any unexpected one; python3 comes with the
# keystone package.
provision() {
	KS_URL="http://$HOST:$PORT/v3" \
		ADMIN_PASSWORD=$ADMIN_PASSWORD SERVICE_PASSWORD=$SERVICE_PASSWORD \
		TENANT_A_PASSWORD=$TENANT_A_PASSWORD TENANT_B_PASSWORD=$TENANT_B_PASSWORD \
		py - <<'EOF'
import json, os, sys, time, urllib.error, urllib.parse, urllib.request

URL = os.environ["KS_URL"]
# Never send 127.0.0.1 traffic through an http_proxy from the environment.
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

def call(method, path, body=None, token=None, ok=(200, 201, 204)):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(URL + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    for attempt in range(3):
        try:
            with opener.open(req, timeout=30) as resp:
                raw = resp.read()
                return resp.status, resp.headers, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            if e.code in ok:
                return e.code, e.headers, None
            # A 5xx (SQLite busy, say) is worth another try when repeating is harmless.
            if e.code >= 500 and method in ("GET", "PUT", "PATCH") and attempt < 2:
                time.sleep(1)
                continue
            sys.exit(f"keystone.sh: {method} {path}: HTTP {e.code}: {e.read()[:300]!r}")

def password_token(user, password, project):
    body = {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
    req = urllib.request.Request(URL + "/auth/tokens", data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    try:
        with opener.open(req, timeout=30) as resp:
            return resp.headers["X-Subject-Token"]
    except urllib.error.HTTPError as e:
        if e.code == 401:
            return None
        raise

admin = password_token("admin", os.environ["ADMIN_PASSWORD"], "admin")
if not admin:
    sys.exit("keystone.sh: the bootstrap admin cannot log in")

def find(collection, name, extra=""):
    q = urllib.parse.urlencode({"name": name})
    _, _, body = call("GET", f"/{collection}?{q}{extra}", token=admin)
    items = body[collection]
    return items[0]["id"] if items else None

def ensure_role(name):
    rid = find("roles", name)
    if rid:
        return rid
    _, _, body = call("POST", "/roles", {"role": {"name": name}}, token=admin)
    return body["role"]["id"]

def ensure_project(name, description):
    pid = find("projects", name, "&domain_id=default")
    if pid:
        return pid
    _, _, body = call("POST", "/projects", {"project": {
        "name": name, "domain_id": "default", "description": description, "enabled": True}}, token=admin)
    return body["project"]["id"]

def ensure_user(name, password, project_id):
    uid = find("users", name, "&domain_id=default")
    if not uid:
        _, _, body = call("POST", "/users", {"user": {
            "name": name, "domain_id": "default", "password": password,
            "default_project_id": project_id, "enabled": True}}, token=admin)
        return body["user"]["id"]
    return uid

def grant(project_id, user_id, role_id):
    # PUT is idempotent: 204 whether or not the assignment existed.
    call("PUT", f"/projects/{project_id}/users/{user_id}/roles/{role_id}", token=admin)

def check_login(name, password, project_name, user_id):
    # Only after the grant can a project-scoped login succeed. A user left over from a
    # DIR whose secrets.env was lost gets the current password back.
    if password_token(name, password, project_name):
        return
    call("PATCH", f"/users/{user_id}", {"user": {"password": password}}, token=admin)
    if not password_token(name, password, project_name):
        sys.exit(f"keystone.sh: user {name} cannot log in to project {project_name}")

out = {}
# Keystone 22's identity:validate_token allows role "service" (see keystone/doc.go), so
# the service user needs no admin. Bootstrap doesn't create that role in this release.
service_role = ensure_role("service")
member_role = ensure_role("member")

service_project = ensure_project("service", "Service users")
opsvc = ensure_user("opsvc", os.environ["SERVICE_PASSWORD"], service_project)
grant(service_project, opsvc, service_role)
check_login("opsvc", os.environ["SERVICE_PASSWORD"], "service", opsvc)

for tag, project, user in (("A", "tenant-a", "tenant-a-member"), ("B", "tenant-b", "tenant-b-member")):
    password = os.environ[f"TENANT_{tag}_PASSWORD"]
    pid = ensure_project(project, f"Test tenant {tag}")
    uid = ensure_user(user, password, pid)
    grant(pid, uid, member_role)
    check_login(user, password, project, uid)
    out[f"KS_TENANT_{tag}_PROJECT_ID"] = pid

out["KS_ADMIN_PROJECT_ID"] = find("projects", "admin", "&domain_id=default")
for k, v in out.items():
    print(f"{k}={v}")
EOF
}

write_env() {
	local ids=$1 tmp
	tmp=$(mktemp "$DIR/keystone.env.XXXXXX")
	chmod 600 "$tmp"
	{
		echo "# Written by scripts/keystone.sh start; sourceable (set -a; . FILE; set +a)."
		echo "# The service's own credentials:"
		echo "KEYSTONE_URL=http://$HOST:$PORT/v3"
		echo "KEYSTONE_USERNAME=opsvc"
		echo "KEYSTONE_PASSWORD=$SERVICE_PASSWORD"
		echo "KEYSTONE_PROJECT=service"
		echo "KEYSTONE_DOMAIN=Default"
		echo "# Test users:"
		echo "KS_TENANT_A_USER=tenant-a-member"
		echo "KS_TENANT_A_PASSWORD=$TENANT_A_PASSWORD"
		echo "KS_TENANT_A_PROJECT=tenant-a"
		echo "KS_TENANT_B_USER=tenant-b-member"
		echo "KS_TENANT_B_PASSWORD=$TENANT_B_PASSWORD"
		echo "KS_TENANT_B_PROJECT=tenant-b"
		echo "KS_ADMIN_USER=admin"
		echo "KS_ADMIN_PASSWORD=$ADMIN_PASSWORD"
		echo "KS_ADMIN_PROJECT=admin"
		echo "$ids"
	} >"$tmp"
	mv "$tmp" "$DIR/keystone.env"
}

# ---------------------------------------------------------------------------------------
# Commands

cmd_start() {
	local ids
	install_keystone
	command -v curl >/dev/null 2>&1 || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y curl
	stop_server
	load_secrets
	write_config
	setup_database
	start_server
	ids=$(provision) || die "provisioning failed (server log: $DIR/keystone.log)"
	write_env "$ids"
	log "ready: $DIR/keystone.env"
}

cmd_stop() {
	[ -d "$DIR" ] || return 0
	stop_server
}

cmd_status() {
	local pid
	if pid=$(pid_of_server); then
		if curl -sf --noproxy '*' -o /dev/null --max-time 2 "http://$HOST:$PORT/v3"; then
			echo "running: pid $pid, http://$HOST:$PORT/v3, env $DIR/keystone.env"
			return 0
		fi
		echo "running but not answering on port $PORT: pid $pid (log: $DIR/keystone.log)"
		return 3
	fi
	echo "not running (DIR $DIR)"
	return 3
}

main() {
	[ $# -ge 1 ] || usage
	local cmd=$1
	DIR=${2:-$ROOT/.keystone}
	case "$cmd" in
	start | stop | status) ;;
	-h | --help | help) usage ;;
	*) usage ;;
	esac
	if [ "$cmd" = start ]; then
		mkdir -p "$DIR"
		chmod 700 "$DIR"
	fi
	if [ -d "$DIR" ]; then
		DIR=$(cd "$DIR" && pwd)
		if [ "$cmd" = status ]; then
			# status looks where the last start put the server unless told otherwise.
			if [ -z "${KEYSTONE_PORT:-}" ] && [ -f "$DIR/port" ]; then
				PORT=$(cat "$DIR/port")
			fi
		else
			# One start or stop at a time per DIR: two CI jobs, or a user and CI, may run it at once.
			exec 9>"$DIR/.lock"
			flock -w 300 9 || die "another keystone.sh holds $DIR/.lock"
		fi
	fi
	"cmd_$cmd"
}

main "$@"
