#!/usr/bin/env bash
# make ts-check: the TypeScript client check (ts/). Installs ts/'s pinned
# packages (package-lock.json), checks that ts/src/api.ts is what
# openapi-typescript makes of openapi.yaml, type-checks the openapi-fetch
# example (tsc --noEmit), then runs it against a fresh service (the opsvc
# binary, SQLite in a temporary directory, testdata/tokens.json).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tmp=$(mktemp -d)
pid=
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

cd ts
npm ci --no-audit --no-fund --loglevel=error
npx --no-install openapi-typescript ../openapi.yaml -o "$tmp/api.ts" >/dev/null
if ! cmp -s "$tmp/api.ts" src/api.ts; then
	diff -u src/api.ts "$tmp/api.ts" | head -40 || true
	echo "ts/src/api.ts is stale: run make ts-generate and commit it"
	exit 1
fi
npx --no-install tsc --noEmit
echo "tsc --noEmit: ok"
npx --no-install tsc --noCheck

go build -o "$tmp/opsvc" "$root/cmd/opsvc"
LISTEN_ADDR=127.0.0.1:0 DATABASE_URL="sqlite:$tmp/operations.db" \
	AUTH_TOKENS_FILE="$root/testdata/tokens.json" "$tmp/opsvc" >"$tmp/log" 2>&1 &
pid=$!
addr=
for _ in $(seq 100); do
	addr=$(sed -n 's/.*"msg":"listening".*"addr":"\([^"]*\)".*/\1/p' "$tmp/log")
	[ -n "$addr" ] && break
	kill -0 "$pid" 2>/dev/null || { cat "$tmp/log"; echo "opsvc ended"; exit 1; }
	sleep 0.1
done
[ -n "$addr" ] || { cat "$tmp/log"; echo "opsvc did not listen"; exit 1; }
OPSVC_URL="http://$addr" node dist/example.js
