#!/usr/bin/env bash
# Starts a local KRaft cluster of N combined (broker + controller) nodes on
# localhost: node i serves clients on 127.0.0.1:(9091+i) and the quorum on
# 127.0.0.1:(19091+i), with its data under ./data/node-i. The first run
# formats the directories with one new cluster id (kept in
# ./data/cluster.id); later runs reuse them. Ctrl-C stops every node
# cleanly (SIGTERM to each, by PID) and waits for them.
#
#   scripts/run-cluster.sh [N]     (make run-cluster, N=3 by default)
set -euo pipefail
N=${1:-3}
BUILD=${BUILD:-build/release}
DATA=${DATA:-./data}
if ! [[ "$N" =~ ^[0-9]+$ ]] || [ "$N" -lt 1 ] || [ "$N" -gt 9 ]; then
    echo "run-cluster: N must be 1 to 9" >&2
    exit 2
fi
mkdir -p "$DATA"
if [ ! -s "$DATA/cluster.id" ]; then
    "$BUILD/sluice" storage random-uuid > "$DATA/cluster.id"
fi
CID=$(cat "$DATA/cluster.id")
VOTERS=""
for i in $(seq 1 "$N"); do
    VOTERS="$VOTERS${VOTERS:+,}$i@127.0.0.1:$((19091 + i))"
done
pids=()
stop() {
    trap - INT TERM
    echo
    echo "run-cluster: stopping ${#pids[@]} nodes"
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    exit 0
}
trap stop INT TERM
for i in $(seq 1 "$N"); do
    dir="$DATA/node-$i"
    args=(--override "node.id=$i"
          --override "listeners=PLAINTEXT://127.0.0.1:$((9091 + i)),CONTROLLER://127.0.0.1:$((19091 + i))"
          --override "controller.listener.names=CONTROLLER"
          --override "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
          --override "controller.quorum.voters=$VOTERS"
          --override "log.dirs=$dir"
          --override "offsets.topic.replication.factor=$(( N < 3 ? N : 3 ))"
          --override "transaction.state.log.replication.factor=$(( N < 3 ? N : 3 ))"
          --override "transaction.state.log.min.isr=$(( N < 3 ? 1 : 2 ))")
    "$BUILD/sluice" storage format --cluster-id "$CID" --ignore-formatted "${args[@]}" > /dev/null
    "$BUILD/sluiced" "${args[@]}" > "$dir/sluiced.log" 2>&1 &
    pids+=($!)
done
BOOT=""
for i in $(seq 1 "$N"); do BOOT="$BOOT${BOOT:+,}127.0.0.1:$((9091 + i))"; done
echo "run-cluster: cluster $CID, $N nodes (logs in $DATA/node-*/sluiced.log)"
for i in $(seq 1 "$N"); do
    echo "  node $i: clients 127.0.0.1:$((9091 + i)), quorum 127.0.0.1:$((19091 + i)), pid ${pids[$((i - 1))]}"
done
echo "  bootstrap.servers=$BOOT"
echo "Ctrl-C stops the cluster."
# Stops the others when one exits on its own.
while true; do
    for p in "${pids[@]}"; do
        if ! kill -0 "$p" 2>/dev/null; then
            echo "run-cluster: node with pid $p exited; see its log" >&2
            stop
        fi
    done
    sleep 1
done
