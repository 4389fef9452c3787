#!/usr/bin/env bash
# mariadb.sh runs a private MariaDB for fault tests and experiments: its own data
# directory and port, never the machine's shared server, and every process it stops
# is stopped by the pid it started.
#
#   scripts/mariadb.sh start  DIR [PORT]   create DIR/data if needed, start, wait until it answers
#   scripts/mariadb.sh stop   DIR          SIGTERM, then SIGKILL if still running after 30 s
#   scripts/mariadb.sh kill   DIR          SIGKILL: a crash (InnoDB recovers at the next start)
#   scripts/mariadb.sh freeze DIR          SIGSTOP: the server holds its connections and answers nothing
#   scripts/mariadb.sh thaw   DIR          SIGCONT
#   scripts/mariadb.sh status DIR          say whether it runs and answers; exit 0 if it does, 3 if not
#   scripts/mariadb.sh run    DIR PORT     create DIR/data if needed, then become mariadbd in the
#                                          foreground (what internal/dbtest starts)
#
# PORT defaults to 3307 and is remembered in DIR/port. The server listens on 127.0.0.1 only;
# user root has no password. URL: mysql://root:@127.0.0.1:PORT/opsvc (the opsvc database
# is created at start). Run as root it runs as root (--user=root).
set -euo pipefail

MARIADBD=${MARIADBD:-/usr/sbin/mariadbd}
START_TIMEOUT=${MARIADB_START_TIMEOUT:-60} # seconds
STOP_TIMEOUT=30                             # seconds

log() { printf 'mariadb.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[ $# -ge 2 ] || usage
CMD=$1
mkdir -p "$2"
DIR=$(cd "$2" && pwd)
PIDFILE=$DIR/mariadbd.pid
if [ $# -ge 3 ]; then
	PORT=$3
elif [ -f "$DIR/port" ]; then
	PORT=$(cat "$DIR/port")
else
	PORT=3307
fi

# Small buffers: these servers hold test data, and several may run at once.
SERVER_OPTS=(
	--no-defaults
	--datadir="$DIR/data"
	--innodb-buffer-pool-size=64M
	--innodb-log-file-size=16M
	--skip-name-resolve
)
if [ "$(id -u)" -eq 0 ]; then
	SERVER_OPTS+=(--user=root)
fi

install_db() {
	[ -d "$DIR/data/mysql" ] && return
	command -v mariadb-install-db >/dev/null 2>&1 && [ -x "$MARIADBD" ] ||
		die "needs mariadbd and mariadb-install-db (Debian: apt-get install mariadb-server)"
	rm -rf "$DIR/data"
	timeout 120 mariadb-install-db "${SERVER_OPTS[@]}" --auth-root-authentication-method=normal \
		--skip-test-db >"$DIR/install.log" 2>&1 || die "mariadb-install-db failed: see $DIR/install.log"
}

# pid prints the pid of our mariadbd when it is alive: the pid file's, and only if that
# process is a mariadbd, so that a recycled pid is never signalled.
pid() {
	local p
	p=$(cat "$PIDFILE" 2>/dev/null) || return 1
	[ -n "$p" ] && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = mariadbd ] || return 1
	# A zombie has exited already.
	[ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] || return 1
	echo "$p"
}

answers() {
	mariadb-admin --no-defaults --protocol=tcp -h127.0.0.1 -P"$PORT" -uroot --connect-timeout=2 ping >/dev/null 2>&1
}

# wait_gone waits up to $1 seconds for pid $2 to exit.
wait_gone() {
	local i
	for ((i = 0; i < $1 * 10; i++)); do
		[ "$(cat "/proc/$2/comm" 2>/dev/null)" = mariadbd ] || return 0
		[ "$(awk '{print $3}' "/proc/$2/stat" 2>/dev/null)" != Z ] || return 0
		sleep 0.1
	done
	return 1
}

case $CMD in
run)
	[ $# -ge 3 ] || usage
	install_db
	echo "$PORT" >"$DIR/port"
	echo 'CREATE DATABASE IF NOT EXISTS opsvc CHARACTER SET utf8mb4;' >"$DIR/init.sql"
	echo $$ >"$PIDFILE"
	exec "$MARIADBD" "${SERVER_OPTS[@]}" --port="$PORT" --bind-address=127.0.0.1 \
		--socket="$DIR/mysqld.sock" --pid-file="$PIDFILE" --log-error="$DIR/error.log" \
		--max-connections=500 --init-file="$DIR/init.sql"
	;;
start)
	if p=$(pid); then
		log "already running (pid $p) on port $PORT"
		exit 0
	fi
	# setsid: the server outlives this shell and its terminal.
	setsid "${BASH_SOURCE[0]}" run "$DIR" "$PORT" </dev/null >>"$DIR/mariadbd.out" 2>&1 &
	p=$!
	for ((i = 0; i < START_TIMEOUT * 10; i++)); do
		answers && break
		[ -e "/proc/$p" ] || die "mariadbd exited: see $DIR/error.log and $DIR/mariadbd.out"
		sleep 0.1
	done
	answers || die "mariadbd (pid $p) does not answer on 127.0.0.1:$PORT after ${START_TIMEOUT}s"
	log "running (pid $p): mysql://root:@127.0.0.1:$PORT/opsvc"
	;;
stop)
	p=$(pid) || { log "not running"; exit 0; }
	kill -CONT "$p" 2>/dev/null || true # a frozen server cannot act on SIGTERM
	kill -TERM "$p"
	if ! wait_gone "$STOP_TIMEOUT" "$p"; then
		log "pid $p still running after ${STOP_TIMEOUT}s: SIGKILL"
		kill -KILL "$p"
		wait_gone 10 "$p" || die "pid $p survives SIGKILL"
	fi
	log "stopped"
	;;
kill)
	p=$(pid) || die "not running"
	kill -KILL "$p"
	wait_gone 10 "$p" || die "pid $p survives SIGKILL"
	log "killed pid $p"
	;;
freeze)
	p=$(pid) || die "not running"
	kill -STOP "$p"
	log "froze pid $p"
	;;
thaw)
	p=$(pid) || die "not running"
	kill -CONT "$p"
	log "thawed pid $p"
	;;
status)
	if ! p=$(pid); then
		echo "not running"
		exit 3
	fi
	if [ "$(awk '{print $3}' "/proc/$p/stat")" = T ]; then
		echo "frozen (pid $p, port $PORT)"
		exit 3
	fi
	if answers; then
		echo "running (pid $p): mysql://root:@127.0.0.1:$PORT/opsvc"
		exit 0
	fi
	echo "pid $p does not answer on port $PORT"
	exit 3
	;;
*)
	usage
	;;
esac
