#!/usr/bin/env bash
# Prepares the data dirs of a federation of orgs, one node each, on one machine: founds every org
# (a first start, stopped at once), has the first org write the genesis naming the others, imports
# it into every other org's data dir, and points every node at the others (config.json bootstrap).
# Then each node is started with plain `fedmesh start --data-dir DATA_ROOT/ORG`: no restart needed.
#
#   federation-up.sh DATA_ROOT ORG=ADDRESS ORG=ADDRESS ORG=ADDRESS ORG=ADDRESS [...]
#
# ADDRESS is the multiaddr the other nodes dial ORG's node at, without /p2p/: /dns4/alpha/tcp/7400
# in compose (the node listens on the default /ip4/0.0.0.0/tcp/7400), or /ip4/127.0.0.1/tcp/7410 for
# processes on one host (an /ip4 or /ip6 ADDRESS is also written as the node's listen address).
# FEDMESH_CLI is the command that runs fedmesh (default: fedmesh). A federation already set up in
# DATA_ROOT is left as it is (exit 0), so the step can run at every `docker compose up`.
#
# Here every org's data dir is on one machine, so one script holds every org root: fine for a demo
# or a test, not across real organisations, which each run `fedmesh id` and send their org root to
# whoever writes the genesis (README: A federation of organisations).
set -euo pipefail

usage () { echo "usage: $0 DATA_ROOT ORG=ADDRESS ORG=ADDRESS ORG=ADDRESS ORG=ADDRESS [...] (at least 4 orgs)" >&2; exit 2; }
[ "$#" -ge 5 ] || usage
root=$1; shift
read -r -a fedmesh <<< "${FEDMESH_CLI:-fedmesh}"
orgs=(); addrs=()
for arg in "$@"; do
  [[ "$arg" =~ ^([a-z0-9][a-z0-9._-]*)=(/.+)$ ]] || usage
  orgs+=("${BASH_REMATCH[1]}"); addrs+=("${BASH_REMATCH[2]}")
done

# One JSON field of stdin (node is there wherever fedmesh is).
field () { node -e 'let s = ""; process.stdin.on("data", (d) => { s += d }).on("end", () => process.stdout.write(String(JSON.parse(s)[process.argv[1]])))' "$1"; }

done_count=0
for org in "${orgs[@]}"; do [ -f "$root/$org/federation.json" ] && done_count=$((done_count + 1)); done
if [ "$done_count" -eq "${#orgs[@]}" ]; then echo "federation-up: ${orgs[*]} already federated in $root"; exit 0; fi
if [ "$done_count" -ne 0 ]; then echo "federation-up: $root holds a partly set-up federation; start from empty data dirs" >&2; exit 1; fi

# Found an org: its first start writes org-root.key and node.cert; SIGTERM stops it (the only voter stays).
found () {
  local org=$1 dir=$root/$1 log pid
  mkdir -p "$dir"
  log=$(mktemp)
  "${fedmesh[@]}" start --data-dir "$dir" --org "$org" --listen /ip4/127.0.0.1/tcp/0 --api 127.0.0.1:0 > /dev/null 2> "$log" &
  pid=$!
  for _ in $(seq 300); do
    [ -f "$dir/runtime.json" ] && break
    if ! kill -0 "$pid" 2> /dev/null; then echo "federation-up: the first start of $org failed:" >&2; cat "$log" >&2; return 1; fi
    sleep 0.1
  done
  [ -f "$dir/runtime.json" ] || { echo "federation-up: $org did not start within 30 s" >&2; kill -KILL "$pid"; return 1; }
  kill -TERM "$pid"
  wait "$pid"
  rm -f "$log"
}
pids=()
for org in "${orgs[@]}"; do found "$org" & pids+=($!); done
for pid in "${pids[@]}"; do wait "$pid"; done

peer_ids=(); members=()
for i in "${!orgs[@]}"; do
  id=$("${fedmesh[@]}" id --json --data-dir "$root/${orgs[$i]}")
  peer_ids+=("$(field peerId <<< "$id")")
  [ "$i" -eq 0 ] || members+=(--member "${orgs[$i]}=$(field orgRoot <<< "$id")")
done

# The first org writes and signs the genesis (and imports it); every other org imports it.
"${fedmesh[@]}" federation create --data-dir "$root/${orgs[0]}" "${members[@]}" --out "$root/genesis.json"
for org in "${orgs[@]:1}"; do "${fedmesh[@]}" federation join "$root/genesis.json" --data-dir "$root/$org" > /dev/null; done

# Every node bootstraps from the others (a node alone keeps dialling them, so start order does not matter).
for i in "${!orgs[@]}"; do
  bootstrap=()
  for j in "${!orgs[@]}"; do [ "$i" -eq "$j" ] || bootstrap+=("${addrs[$j]}/p2p/${peer_ids[$j]}"); done
  node -e '
    const [file, address, ...bootstrap] = process.argv.slice(1)
    const fs = require("node:fs")
    const config = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, "utf8")) : {}
    config.bootstrap = bootstrap
    if (/^\/ip[46]\//.test(address)) config.listen = [address]
    fs.writeFileSync(file, JSON.stringify(config, null, 2) + "\n", { mode: 0o600 })
  ' "$root/${orgs[$i]}/config.json" "${addrs[$i]}" "${bootstrap[@]}"
done
echo "federation-up: ${orgs[*]} federated in $root; start each node with: fedmesh start --data-dir $root/ORG"
