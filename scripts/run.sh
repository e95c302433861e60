#!/usr/bin/env bash
# The main job: build, start a 3-node cluster on loopback, load a synthetic city dataset,
# verify licenses for the plan's service items, change a status, kill the leader with SIGKILL,
# show that a new leader took over and no acknowledged write was lost, show the change feed and
# indexed queries, take a backup, and leave the cluster running, with TLS on. Data and logs go to ./run (wiped at each start). Stop it with scripts/stop.sh.
#
# Settings (environment): COUNT (licenses to generate, default 100000), BASE_PORT (7001).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

COUNT="${COUNT:-100000}"
BASE_PORT="${BASE_PORT:-7001}"
RUN_DIR="$PWD/run"
BIN="$CARGO_TARGET_DIR/release"
EPS="127.0.0.1:$BASE_PORT,127.0.0.1:$((BASE_PORT + 1)),127.0.0.1:$((BASE_PORT + 2))"
export LICSTORE_ENDPOINTS="$EPS"

say() { printf '\n== %s\n' "$*"; }
licctl() { "$BIN/licctl" "$@"; }

say "building (release; the first build compiles RocksDB and takes a while)"
# The same build as scripts/test.sh (all targets of the workspace), so RocksDB is built once.
cargo build --release --locked --workspace --all-targets

bash scripts/stop.sh >/dev/null 2>&1 || true
rm -rf "$RUN_DIR"
mkdir -p "$RUN_DIR"

# TLS: a local CA, one certificate for the three nodes (served, and presented to peers), one
# for licctl as the operator and one for a service counter, all for 127.0.0.1 and valid 30
# days. Nodes require client certificates and know callers by their common names.
make_pki() {
  local d="$RUN_DIR/tls"
  mkdir -p "$d"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
  openssl req -x509 "${ec[@]}" -keyout "$d/ca.key" -out "$d/ca.crt" -days 30 \
    -subj "/CN=licstore local CA" 2>/dev/null
  local name usage
  for name in node licctl counter; do
    usage="clientAuth"
    [ "$name" = node ] && usage="serverAuth,clientAuth"
    openssl req "${ec[@]}" -keyout "$d/$name.key" -out "$d/$name.csr" \
      -subj "/CN=licstore $name" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=%s\n' "$usage" \
      >"$d/$name.ext"
    openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
      -CAcreateserial -days 30 -extfile "$d/$name.ext" -out "$d/$name.crt" 2>/dev/null
  done
  chmod 600 "$d"/*.key
  cat >"$RUN_DIR/tls.env" <<ENV
export LICSTORE_CACERT=$d/ca.crt LICSTORE_CERT=$d/licctl.crt LICSTORE_KEY=$d/licctl.key
ENV
}
say "making a local CA and certificates (run/tls); the cluster speaks TLS"
make_pki
# shellcheck disable=SC1091
source "$RUN_DIR/tls.env"

# toml_str S: S as a TOML basic string (backslashes and quotes escaped; paths may hold them).
toml_str() {
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}

# Each node gets a config file (the keys are documented in deploy/licstored.toml); the first
# start of node 1 also names the initial members, given as a flag because it applies once.
write_config() {
  local id=$1
  cat >"$RUN_DIR/n$id.toml" <<TOML
[node]
id = $id
addr = "127.0.0.1:$((BASE_PORT + id - 1))"
metrics_addr = "127.0.0.1:$((9200 + id))"
data_dir = $(toml_str "$RUN_DIR/n$id")

[feed]
expiry_sweep_ms = 60000

[seal]
key_files = [$(toml_str "$RUN_DIR/seal/pudong-police.key")]

[tls]
cert_file = $(toml_str "$RUN_DIR/tls/node.crt")
key_file = $(toml_str "$RUN_DIR/tls/node.key")
client_ca_file = $(toml_str "$RUN_DIR/tls/ca.crt")
peer_ca_file = $(toml_str "$RUN_DIR/tls/ca.crt")

[access]
node_names = ["licstore node"]
admin_names = ["licstore licctl"]
TOML
}

start_node() {
  local id=$1 init=${2:-}
  [ -f "$RUN_DIR/n$id.toml" ] || write_config "$id"
  local args=(--config "$RUN_DIR/n$id.toml")
  [ -n "$init" ] && args+=(--init "$init")
  setsid "$BIN/licstored" "${args[@]}" >>"$RUN_DIR/n$id.log" 2>&1 < /dev/null &
  echo $! > "$RUN_DIR/n$id.pid"
  disown  # the nodes outlive this script; no job-control notice when one is killed
}

say "making a seal key for the Pudong police office (run/seal); the nodes seal its licenses"
mkdir -p "$RUN_DIR/seal"
licctl keys generate --suite sm2-sm3 --out "$RUN_DIR/seal/pudong-police.key"
licctl keys generate --suite sm2-sm3 --out "$RUN_DIR/seal/trust-root.key" >/dev/null

say "starting 3 nodes on $EPS (data and logs in run/)"
INIT="1=127.0.0.1:$BASE_PORT,2=127.0.0.1:$((BASE_PORT + 1)),3=127.0.0.1:$((BASE_PORT + 2))"
start_node 1 "$INIT"
start_node 2
start_node 3
licctl wait-leader --timeout-s 60
licctl endpoint status

say "registering the plan's service items and the license types each accepts"
licctl item load data/service-items.csv

say "registering principals: licctl's certificate (an admin by configuration) also issues any"
say "license, verifies for every service item and audits; a marriage-registry counter verifies"
ITEMS=()
while IFS= read -r item; do
  ITEMS+=(--service-item "$item")
done < <(tail -n +2 data/service-items.csv | cut -d, -f4 | sort -u)
licctl principal put "licstore licctl" --role admin,issuer,verifier,auditor \
  --issuer-code '*' --type '*' "${ITEMS[@]}" >/dev/null
licctl principal put "licstore counter" --role verifier --service-item 婚姻登记档案查询 >/dev/null
licctl principal list

say "generating $COUNT synthetic licenses (four pilot types, Shanghai holders dominant)"
licctl gen --count "$COUNT" --seed 2018 --out "$RUN_DIR/dataset.jsonl"

say "importing them through Raft"
licctl import "$RUN_DIR/dataset.jsonl" --reject-file "$RUN_DIR/rejects.jsonl"

say "issuing a resident ID card and a business license for two demo holders"
licctl demo-issue --out "$RUN_DIR/demo.env" --seal-key "$RUN_DIR/seal/pudong-police.key.pub"
# shellcheck disable=SC1091
source "$RUN_DIR/demo.env"

say "the ID card is sealed (SM2/SM3): exported and checked offline against a signed trust list"
licctl keys list
licctl export "$DEMO_CARD" --out "$RUN_DIR/demo-card.lic"
licctl trust export --root-key "$RUN_DIR/seal/trust-root.key" --issued-by 310000 \
  --out "$RUN_DIR/trust.bin"
ROOT_ID=$(grep '^key_id: ' "$RUN_DIR/seal/trust-root.key" | cut -d' ' -f2)
licctl verify-offline "$RUN_DIR/demo-card.lic" --trust "$RUN_DIR/trust.bin" --root-key-id "$ROOT_ID"

say "the holder shows only name and validity: a presentation, checked offline"
licctl present "$DEMO_CARD" --field @holder.name,@valid_until \
  --out "$RUN_DIR/demo-card.presentation"
licctl verify-presentation "$RUN_DIR/demo-card.presentation" --trust "$RUN_DIR/trust.bin" \
  --root-key-id "$ROOT_ID"

say "the marriage-registry archive sees the card holder's name and validity, and nothing else"
licctl policy set-disclosure --service-item 婚姻登记档案查询 --type resident-id-card \
  --field @holder.name --field @valid_until
licctl verify --holder-kind citizen_id --holder "$DEMO_CITIZEN" --type resident-id-card \
  --service-item 婚姻登记档案查询 --purpose "marriage file 2026-0412"

say "the counter's own certificate verifies, but may not change a license"
COUNTER=(--cert "$RUN_DIR/tls/counter.crt" --key "$RUN_DIR/tls/counter.key")
licctl "${COUNTER[@]}" verify --holder-kind citizen_id --holder "$DEMO_CITIZEN" \
  --type resident-id-card --service-item 婚姻登记档案查询 --purpose "counter case 17"
if licctl "${COUNTER[@]}" status "$DEMO_CARD" suspend --reason "not its call" \
  2>"$RUN_DIR/denied.txt"; then
  echo "unexpected: a verifier changed a license's status" >&2
  exit 1
fi
grep -o 'missing right [a-z.]*' "$RUN_DIR/denied.txt"

say "verifying the demo citizen's ID card for every service item that accepts it"
licctl verify-items --holder-kind citizen_id --holder "$DEMO_CITIZEN" \
  --purpose "eligibility check"

say "suspending the ID card; the verdict changes"
licctl status "$DEMO_CARD" suspend --reason "reported lost at a service counter"
licctl verify --holder-kind citizen_id --holder "$DEMO_CITIZEN" --type resident-id-card \
  --service-item 婚姻登记档案查询 --purpose "marriage file 2026-0412"

say "who looked at the demo citizen's licenses: the audit trail, its chain checked on every node"
sleep 1  # each node ships its audit records every 200 ms
licctl audit list --holder-kind citizen_id --holder "$DEMO_CITIZEN"
licctl audit verify

say "the suspension is in the signed status list: the offline check of the card now fails"
licctl export "$DEMO_CARD" --out "$RUN_DIR/demo-card.lic"
for purpose in revocation suspension; do
  licctl status-list get --authority "$DEMO_CARD_ISSUER" --type resident-id-card \
    --purpose "$purpose" --out "$RUN_DIR/status-$purpose.bin"
done
if licctl verify-offline "$RUN_DIR/demo-card.lic" --trust "$RUN_DIR/trust.bin" \
  --root-key-id "$ROOT_ID" --status-list "$RUN_DIR/status-revocation.bin" \
  --status-list "$RUN_DIR/status-suspension.bin"; then
  echo "unexpected: a suspended card passed its offline status check" >&2
  exit 1
fi

say "issuing 300 licenses one by one; the leader is killed with SIGKILL while they run"
licctl gen --count 300 --seed 77 --out "$RUN_DIR/acked-input.jsonl" >/dev/null
licctl issue-each "$RUN_DIR/acked-input.jsonl" --acked-file "$RUN_DIR/acked.txt" \
  >"$RUN_DIR/issue-each.log" 2>&1 &
EACH_PID=$!
sleep 1
LEADER_LINE=$(licctl leader)
LEADER_ID=${LEADER_LINE%% *}
echo "killing the leader, node $LEADER_ID (pid $(cat "$RUN_DIR/n$LEADER_ID.pid"))"
kill -9 "$(cat "$RUN_DIR/n$LEADER_ID.pid")"
licctl wait-leader --timeout-s 60
wait "$EACH_PID" || echo "(issue-each reported refusals or failures; see run/issue-each.log)"
cat "$RUN_DIR/issue-each.log"
licctl endpoint status || true

say "checking that every acknowledged write is still there (linearizable reads)"
licctl check-acked "$RUN_DIR/acked.txt" "$DEMO_CARD" "$DEMO_LICENSE"

say "restarting node $LEADER_ID from its data directory; it catches up"
start_node "$LEADER_ID"
licctl wait-converged --timeout-s 120
licctl digest

say "the change feed of the demo citizen, from the first revision (Licenses.Watch)"
licctl watch --from-revision 1 --holder "$DEMO_CITIZEN" --duration-ms 1500

say "queries through the secondary indexes (Licenses.Query --explain)"
licctl query --status suspended --page-size 5 --explain
licctl query -t resident-id-card --expires-before "$(date -d '+1 year' +%F)" --count --explain

say "a consistent online backup (licctl snapshot save), checked"
licctl snapshot save "$RUN_DIR/backup.snap"

say "a few of node 1's Prometheus metrics (http://127.0.0.1:9201/metrics)"
metrics() {
  # Plain bash, no HTTP client needed: one GET over /dev/tcp.
  exec 3<>/dev/tcp/127.0.0.1/9201
  printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  timeout 10 cat <&3
  exec 3<&-
}
metrics | grep -E '^(licstore_server_(has_leader|leader_changes_seen_total|proposals_applied_total)|licstore_disk_wal_fsync_duration_seconds_count|licstore_mvcc_db_total_size_in_bytes) ' || true

cat <<MSG

The cluster is running: nodes 1-3 on $EPS, data and logs in run/.
It speaks TLS and wants a client certificate: licctl finds them through run/tls.env.
Try:
  export LICSTORE_ENDPOINTS=$EPS
  source run/tls.env
  $BIN/licctl endpoint status
  $BIN/licctl list --holder-kind citizen_id --holder $DEMO_CITIZEN
  $BIN/licctl verify --holder-kind citizen_id --holder $DEMO_CITIZEN --type resident-id-card --service-item 婚姻登记档案查询 --purpose demo
  $BIN/licctl query --region 3101 --status valid --count --explain
  $BIN/licctl watch --show-progress        # live changes; Ctrl-C to stop
  $BIN/licctl snapshot status run/backup.snap
  curl -s 127.0.0.1:9201/metrics           # Prometheus metrics of node 1 (9202, 9203: nodes 2, 3)
  $BIN/licctl --help
Stop it with: bash scripts/stop.sh   (or: make stop)
MSG
