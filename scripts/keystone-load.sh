#!/usr/bin/env bash
# keystone-load.sh measures the token cache: it sends 1,000 ICC list requests
# over 10 distinct Keystone tokens to a freshly built service in Keystone mode
# and counts the token validations Keystone served meanwhile (from its log).
#
#   scripts/keystone.sh start && scripts/keystone-load.sh [DIR]
#
# DIR is scripts/keystone.sh's directory (default .keystone). Nothing else may
# use that Keystone during the run, or its calls are counted too.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${1:-$ROOT/.keystone}
cd "$ROOT"
set -a; . "$DIR/keystone.env"; set +a

login() {
	curl -fsS -o /dev/null -D - -H 'Content-Type: application/json' "$KEYSTONE_URL/auth/tokens" \
		-d "{\"auth\":{\"identity\":{\"methods\":[\"password\"],\"password\":{\"user\":{\"name\":\"$1\",\"domain\":{\"id\":\"default\"},\"password\":\"$2\"}}},\"scope\":{\"project\":{\"name\":\"$3\",\"domain\":{\"id\":\"default\"}}}}}" |
		awk -F': ' 'tolower($1)=="x-subject-token"{print $2}' | tr -d '\r'
}
tokens=()
for _ in 1 2 3 4 5; do
	tokens+=("$(login "$KS_TENANT_A_USER" "$KS_TENANT_A_PASSWORD" "$KS_TENANT_A_PROJECT")")
	tokens+=("$(login "$KS_TENANT_B_USER" "$KS_TENANT_B_PASSWORD" "$KS_TENANT_B_PROJECT")")
done
echo "distinct tokens: $(printf '%s\n' "${tokens[@]}" | sort -u | wc -l)"

make -s build
db=$(mktemp -d)
trap 'kill -TERM "$pid" 2>/dev/null || true; rm -rf "$db"' EXIT
LISTEN_ADDR=127.0.0.1:18081 DATABASE_URL="sqlite:$db/operations.db" bin/opsvc >"$db/log" 2>&1 &
pid=$!
for _ in $(seq 50); do curl -fsS -o /dev/null http://127.0.0.1:18081/healthz 2>/dev/null && break; sleep 0.1; done

calls() { grep -c '"GET /v3/auth/tokens HTTP' "$DIR/keystone.log" || true; }
before=$(calls)
start=$(date +%s.%N)
for i in $(seq 0 999); do
	curl -sS -o /dev/null -w '%{http_code}\n' -H "X-Auth-Token: ${tokens[$((i % 10))]}" \
		http://127.0.0.1:18081/v1.0/icc/operations
done | sort | uniq -c | sed 's/^ */answers: /'
end=$(date +%s.%N)
echo "Keystone validations for 1000 requests: $(($(calls) - before)); wall $(echo "$end - $start" | bc) s"
