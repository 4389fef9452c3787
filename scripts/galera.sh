#!/usr/bin/env bash
# galera.sh runs a private 3-node MariaDB Galera cluster on 127.0.0.1 for the
# scale-out tests and experiments: its own data directory and ports, never the
# machine's shared server, every wait bounded, every process stopped by the pid
# this script started. Recipe and pitfalls: ../shared/reference/GALERA-NOTES.md.
#
#   scripts/galera.sh start            create (first time) and start the 3 nodes, wait until all are Synced
#   scripts/galera.sh stop             SIGTERM every node (SIGKILL after 30 s), one by one
#   scripts/galera.sh kill N...        SIGKILL nodes N (1-3): a crash
#   scripts/galera.sh restart N...     stop nodes N if running, recover their position if they crashed
#                                      (--wsrep-recover), start them together, wait until all are Synced
#   scripts/galera.sh status           one line per node; exit 0 when all 3 are Synced, 3 otherwise
#   scripts/galera.sh url N            print node N's DATABASE_URL
#
# Environment: GALERA_DIR (default /tmp/opsvc-galera: the server drops to user mysql when
# run as root, so the directory must be reachable by it), GALERA_PORT_BASE (default 23300:
# node N takes client port BASE+N, Galera BASE+10+N, IST BASE+20+N, SST BASE+30+N),
# GALERA_START_TIMEOUT (seconds per wait, default 90), GALERA_FAST=1 for short failure
# detection (suspect after 2 s instead of 5 s). User root has no password; the database
# opsvc is created at the first start: mysql://root:@127.0.0.1:BASE+N/opsvc.
# Durable settings on purpose (innodb_flush_log_at_trx_commit=1, sync_binlog=1): a
# cluster acknowledging before the log is on disk loses commits when nodes crash together.
set -euo pipefail

DIR=${GALERA_DIR:-/tmp/opsvc-galera}
BASE=${GALERA_PORT_BASE:-23300}
WAIT=${GALERA_START_TIMEOUT:-90} # seconds
STOP_TIMEOUT=30                  # seconds
NODES=(1 2 3)

log() { printf 'galera.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[ $# -ge 1 ] || usage
CMD=$1
shift
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

client_port() { echo $((BASE + $1)); }
gcomm_port() { echo $((BASE + 10 + $1)); }

# The server refuses to run as root, and as root rsync's state transfer drops to
# nobody and cannot write the datadir: run it as mysql then.
if [ "$(id -u)" -eq 0 ]; then RUN_USER=mysql; else RUN_USER=$(id -un); fi

node_dir() { echo "$DIR/n$1"; }

write_cnf() {
	local n=$1 d lib opts
	d=$(node_dir "$n")
	lib=$(dpkg -L galera-4 2>/dev/null | grep -m1 'libgalera_smm\.so$' || true)
	[ -n "$lib" ] || lib=$(ls /usr/lib/galera/libgalera_smm.so /usr/lib/libgalera_smm.so 2>/dev/null | head -1)
	[ -n "$lib" ] || die "galera-4 is not installed (Debian: apt-get install galera-4 rsync)"
	opts="gmcast.listen_addr=tcp://127.0.0.1:$(gcomm_port "$n");ist.recv_addr=127.0.0.1:$((BASE + 20 + n));gcache.size=16M"
	if [ "${GALERA_FAST:-}" = 1 ]; then
		opts="$opts;evs.keepalive_period=PT0.5S;evs.suspect_timeout=PT2S;evs.inactive_timeout=PT3S;evs.install_timeout=PT2S"
	fi
	cat >"$d/my.cnf" <<EOF
[client]
socket=$d/mysqld.sock
user=root
[mariadbd]
user=$RUN_USER
datadir=$d/data
socket=$d/mysqld.sock
pid-file=$d/mysqld.pid
log-error=$d/error.log
port=$(client_port "$n")
bind-address=127.0.0.1
skip-name-resolve
performance_schema=OFF
max_connections=300
binlog_format=ROW
default_storage_engine=InnoDB
innodb_autoinc_lock_mode=2
innodb_buffer_pool_size=64M
innodb_log_file_size=16M
innodb_flush_log_at_trx_commit=1
sync_binlog=1
wsrep_on=ON
wsrep_provider=$lib
wsrep_cluster_name=opsvc
wsrep_cluster_address=gcomm://127.0.0.1:$(gcomm_port 1),127.0.0.1:$(gcomm_port 2),127.0.0.1:$(gcomm_port 3)
wsrep_node_name=n$n
wsrep_node_address=127.0.0.1:$(gcomm_port "$n")
wsrep_provider_options="$opts"
wsrep_sst_method=rsync
wsrep_sst_receive_address=127.0.0.1:$((BASE + 30 + n))
wsrep_slave_threads=2
EOF
}

# pid prints the pid of node $1's mariadbd when it is alive: the one this script
# started, and only if that process is a mariadbd, so a recycled pid is never signalled.
pid() {
	local p
	p=$(cat "$(node_dir "$1")/pid" 2>/dev/null) || return 1
	alive "$p" || return 1
	echo "$p"
}

alive() {
	[ -n "$1" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = mariadbd ] &&
		[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# wait_gone waits up to $1 seconds for pid $2 to exit.
wait_gone() {
	local i
	for ((i = 0; i < $1 * 10; i++)); do
		alive "$2" || return 0
		sleep 0.1
	done
	return 1
}

sql() {
	timeout 10 mariadb --defaults-file="$(node_dir "$1")/my.cnf" --connect-timeout=2 -N -B -e "$2" 2>/dev/null
}

# state prints node $1's wsrep_local_state_comment (Synced, Joining, Donor/Desynced, ...).
state() {
	sql "$1" "SHOW STATUS LIKE 'wsrep_local_state_comment'" | awk '{print $2}'
}

show_logs() {
	local n
	for n in "$@"; do
		log "--- tail of $(node_dir "$n")/error.log"
		tail -n 30 "$(node_dir "$n")/error.log" >&2 2>/dev/null || true
	done
}

# launch starts node $1's mariadbd in its own session with extra options $2...; the
# pid file is written by the process that then becomes mariadbd.
launch() {
	local n=$1 d
	shift
	d=$(node_dir "$n")
	# --defaults-file must come first: then no system-wide option file is read.
	setsid bash -c 'echo $$ >"$0"; exec "$@"' "$d/pid" \
		mariadbd --defaults-file="$d/my.cnf" "$@" </dev/null >>"$d/stdout.log" 2>&1 &
}

# wait_synced waits, at most WAIT seconds, until every node named is Synced.
wait_synced() {
	local i n p all
	for ((i = 0; i < WAIT * 5; i++)); do
		all=1
		for n in "$@"; do
			p=$(cat "$(node_dir "$n")/pid" 2>/dev/null || true)
			if ! alive "$p"; then
				# The pid file may not be written yet right after launch.
				[ "$i" -lt 10 ] && { all=0; continue; }
				show_logs "$n"
				die "node $n exited: see $(node_dir "$n")/error.log"
			fi
			[ "$(state "$n")" = Synced ] || all=0
		done
		[ "$all" = 1 ] && return 0
		sleep 0.2
	done
	show_logs "$@"
	die "nodes $* not Synced after ${WAIT}s"
}

# recovered prints node $1's last committed position (uuid:seqno) after a crash,
# found by running the server once with --wsrep-recover.
recovered() {
	local d
	d=$(node_dir "$1")
	: >"$d/recover.log"
	[ "$RUN_USER" = mysql ] && chown mysql: "$d/recover.log"
	timeout "$WAIT" mariadbd --defaults-file="$d/my.cnf" --wsrep-recover --log-error="$d/recover.log" \
		</dev/null >>"$d/stdout.log" 2>&1 || { show_logs "$1"; die "node $1: --wsrep-recover failed: see $d/recover.log"; }
	sed -n 's/.*WSREP: Recovered position: *//p' "$d/recover.log" | tail -1
}

# start_node starts node $1 to join the running cluster, from its recovered
# position when it crashed (a plain start after a crash does a full state transfer).
start_node() {
	local n=$1 d pos
	d=$(node_dir "$n")
	if grep -q '^seqno: *-1' "$d/data/grastate.dat" 2>/dev/null; then
		pos=$(recovered "$n")
		if [ -n "$pos" ]; then
			launch "$n" --wsrep-start-position="$pos"
			return
		fi
	fi
	launch "$n"
}

stop_node() {
	local n=$1 p
	p=$(pid "$n") || return 0
	kill -CONT "$p" 2>/dev/null || true
	kill -TERM "$p"
	if ! wait_gone "$STOP_TIMEOUT" "$p"; then
		log "node $n (pid $p) still running after ${STOP_TIMEOUT}s: SIGKILL"
		kill -KILL "$p"
		wait_gone 10 "$p" || die "node $n (pid $p) survives SIGKILL"
	fi
	log "node $n stopped"
}

check_nodes() {
	local n
	[ $# -ge 1 ] || usage
	for n in "$@"; do
		case $n in 1 | 2 | 3) ;; *) die "no node $n: nodes are 1, 2 and 3" ;; esac
	done
}

case $CMD in
start)
	running=
	for n in "${NODES[@]}"; do pid "$n" >/dev/null && running="$running $n"; done
	if [ -n "$running" ]; then
		log "nodes$running already running"
		for n in "${NODES[@]}"; do pid "$n" >/dev/null || start_node "$n"; done
		wait_synced "${NODES[@]}"
		exit 0
	fi
	command -v mariadbd >/dev/null && command -v mariadb-install-db >/dev/null ||
		die "needs mariadbd and mariadb-install-db (Debian: apt-get install mariadb-server galera-4 rsync)"
	command -v rsync >/dev/null || die "needs rsync for state transfers (Debian: apt-get install rsync)"
	fresh=0
	for n in "${NODES[@]}"; do
		d=$(node_dir "$n")
		mkdir -p "$d"
		write_cnf "$n"
		if [ ! -d "$d/data/mysql" ]; then
			fresh=1
			rm -rf "$d/data"
			mkdir -p "$d/data"
			timeout 120 mariadb-install-db --defaults-file="$d/my.cnf" --auth-root-authentication-method=normal \
				--skip-test-db >"$d/install.log" 2>&1 || die "mariadb-install-db failed: see $d/install.log"
		fi
	done
	[ "$RUN_USER" = mysql ] && chown -R mysql: "$DIR"
	# The first node forms a new cluster: the one marked safe to bootstrap (the last
	# one stopped), else, all having crashed, the one with the highest position.
	first=1
	startpos=()
	if [ "$fresh" = 0 ]; then
		first=
		for n in "${NODES[@]}"; do
			grep -q '^safe_to_bootstrap: *1' "$(node_dir "$n")/data/grastate.dat" 2>/dev/null && first=$n
		done
		if [ -z "$first" ]; then
			best=-2
			for n in "${NODES[@]}"; do
				pos=$(recovered "$n")
				seq=${pos##*:}
				[ -n "$seq" ] && [ "$seq" -gt "$best" ] && { best=$seq; first=$n; startpos=(--wsrep-start-position="$pos"); }
			done
			[ -n "$first" ] || die "no node to bootstrap from: remove $DIR to start afresh"
			sed -i 's/^safe_to_bootstrap: *0/safe_to_bootstrap: 1/' "$(node_dir "$first")/data/grastate.dat"
			log "all nodes had crashed: bootstrapping from node $first (seqno $best)"
		fi
	fi
	launch "$first" --wsrep-new-cluster "${startpos[@]}"
	wait_synced "$first"
	for n in "${NODES[@]}"; do
		[ "$n" = "$first" ] && continue
		start_node "$n"
		wait_synced "$n"
	done
	sql "$first" "CREATE DATABASE IF NOT EXISTS opsvc CHARACTER SET utf8mb4" || die "cannot create database opsvc"
	log "running: mysql://root:@127.0.0.1:{$(client_port 1),$(client_port 2),$(client_port 3)}/opsvc"
	;;
stop)
	# One by one, the first last: it is then the one safe to bootstrap from.
	for n in 3 2 1; do stop_node "$n"; done
	;;
kill)
	check_nodes "$@"
	for n in "$@"; do
		p=$(pid "$n") || die "node $n is not running"
		kill -KILL "$p"
	done
	for n in "$@"; do
		p=$(cat "$(node_dir "$n")/pid")
		wait_gone 10 "$p" || die "node $n (pid $p) survives SIGKILL"
		log "node $n killed (pid $p)"
	done
	;;
restart)
	check_nodes "$@"
	for n in "$@"; do stop_node "$n"; done
	for n in "$@"; do start_node "$n"; done
	wait_synced "$@"
	log "nodes $* Synced"
	;;
status)
	synced=0
	for n in "${NODES[@]}"; do
		if ! p=$(pid "$n"); then
			echo "n$n: not running (port $(client_port "$n"))"
			continue
		fi
		st=$(sql "$n" "SHOW STATUS WHERE Variable_name IN ('wsrep_local_state_comment','wsrep_cluster_status','wsrep_cluster_size','wsrep_ready')" |
			awk '{printf "%s=%s ", $1, $2}' | sed 's/wsrep_//g; s/local_state_comment/state/')
		echo "n$n: pid $p port $(client_port "$n") ${st:-does not answer}"
		[[ $st == *state=Synced* ]] && synced=$((synced + 1))
	done
	[ "$synced" = 3 ] || exit 3
	;;
url)
	check_nodes "$@"
	echo "mysql://root:@127.0.0.1:$(client_port "$1")/opsvc"
	;;
*)
	usage
	;;
esac
