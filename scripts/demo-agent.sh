#!/usr/bin/env bash
# The vehicle-side demo: builds everything, starts Mosquitto with the mosquitto-ota plugin
# on a free loopback port, sets up one vehicle (its own X25519 key registered) and an
# encrypted three-ECU package with otactl, starts ota-ecu-sim (three simulated ECUs behind
# one DoIP entity; VCU answers TransferData with response-pending and loses the link once
# in the middle of it) and runs ota-agent once: it verifies the signed description,
# unwraps the content key, downloads, checks and decrypts the files, flashes BMS, VCU and
# BCM in order over UDS, reads the versions back and reports. Then compares the
# simulator's flash images with the package files and prints the task's counts.
# The temporary directory is kept for inspection (docs/ota-agent.md explains its files).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
source scripts/demo-lib.sh
bash scripts/setup-deps.sh
build=${BUILD_DIR:-build} # BUILD_DIR: another build directory to use
echo "== building ($build/)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null
echo "built: $build/plugin/mosquitto_ota.so, $build/tools/ota-agent/ota-agent, $build/tools/ota-ecu-sim/ota-ecu-sim"

VIN=LSVTA000000000777
work=$(mktemp -d /tmp/ota-demo-agent.XXXXXX)
port=$(demo_free_port)
demo_broker_conf "$work" "$port" "$(cd "$build" && pwd)/plugin/mosquitto_ota.so" </dev/null
broker="" sim=""
cleanup() { demo_stop "$sim" "$broker"; }
trap cleanup EXIT
demo_start_broker "$work" "$port"
echo "== broker: mosquitto (pid $broker) on 127.0.0.1:$port"

otactl() { "$build"/tools/otactl/otactl -p "$port" -u admin "$@"; }

echo "== operator: one vehicle, an encrypted package for BMS, VCU and BCM"
# The vehicle's own X25519 key pair: the private half stays in the vehicle, the public
# half is registered so that descriptions carry the content key wrapped for it.
/usr/bin/python3 - "$work" <<'PY'
import sys
from cryptography.hazmat.primitives import serialization as s
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
k = X25519PrivateKey.generate()
open(sys.argv[1] + "/vehicle.key", "w").write(
    k.private_bytes(s.Encoding.Raw, s.PrivateFormat.Raw, s.NoEncryption()).hex() + "\n")
open(sys.argv[1] + "/vehicle.pub", "w").write(
    k.public_key().public_bytes(s.Encoding.Raw, s.PublicFormat.Raw).hex())
PY
otactl model set --model EX5 --series S1 --ecu BMS --ecu VCU --ecu BCM
{
    echo "vin,model,series,status,usage,sold,activated,fw,public_key"
    echo "$VIN,EX5,S1,sold,retail,true,true,1.0,$(cat "$work/vehicle.pub")"
} > "$work/fleet.csv"
otactl vehicle import "$work/fleet.csv"
ckey=$(/usr/bin/python3 -c 'import os; print(os.urandom(32).hex())')
ecus=()
for e in BMS:96 VCU:160 BCM:48; do
    name=${e%%:*} kb=${e##*:}
    head -c $((kb * 1024)) /dev/urandom > "$work/$name-2.0.bin"
    sha=$(otactl --quiet file upload "$work/$name-2.0.bin" --encrypt --key "$ckey" |
        sed -n 's/^sha256=\([0-9a-f]*\).*/\1/p')
    ecus+=(--ecu "$name:ecu:$name-2.0:$sha:$name-2.0.bin")
done
otactl package add --model EX5 --series S1 --version 2.0 --kind full --encrypted \
    --content-key "$ckey" --baseline "EX5 2.0" "${ecus[@]}"
otactl package status 1 released
otactl strategy set --id ex5 --ecu BMS:0 --ecu VCU:1 --ecu BCM:2
otactl strategy bind ex5 --model EX5 --series S1
echo "$VIN" > "$work/vins.txt"
task=$(otactl task create --name agent-demo --type normal --model EX5 --series S1 \
    --version 2.0 --vins-file "$work/vins.txt" | head -1 | awk '{print $NF}')
echo "== campaign: task $task"

echo "== vehicle: ota-ecu-sim with BMS 0701, VCU 0702, BCM 0703 (flash in $work/flash)"
"$build"/tools/ota-ecu-sim/ota-ecu-sim --dir "$work/flash" --port 0 --port-file "$work/sim.port" \
    --vin "$VIN" --ecu 0701:BMS:BMS-1.0 --ecu 0702:VCU:VCU-1.0 --ecu 0703:BCM:BCM-1.0 \
    --pending 0702:36:1 --pending-ms 5 --cut 0702:20 2>"$work/sim.log" &
sim=$!
for _ in $(seq 100); do [ -s "$work/sim.port" ] && break; sleep 0.05; done
sim_port=$(cat "$work/sim.port")
cat > "$work/agent.conf" <<CONF
# ota-agent's config (docs/ota-agent.md)
broker_host 127.0.0.1
broker_port $port
vin $VIN
server_pub $work/ota-signing.pem.pub
vehicle_key $work/vehicle.key
state_dir $work/agent-state
initial_fw 1.0
block_size 4096
ecu BMS uds 127.0.0.1:$sim_port 0701
ecu VCU uds 127.0.0.1:$sim_port 0702
ecu BCM uds 127.0.0.1:$sim_port 0703
CONF
echo "== ota-agent -c $work/agent.conf --once"
agent_rc=0
"$build"/tools/ota-agent/ota-agent -c "$work/agent.conf" --once 2>&1 | sed 's/^/  /' || agent_rc=$?

echo "== the ECUs after the update"
ok=1
for name in BMS VCU BCM; do
    if cmp -s "$work/flash/$name.bin" "$work/$name-2.0.bin"; then same="= package file"; else same="DIFFERS"; ok=0; fi
    echo "  $name: version $("$build"/tools/ota-agent/ota-agent version "127.0.0.1:$sim_port" \
        "$(case $name in BMS) echo 0701;; VCU) echo 0702;; BCM) echo 0703;; esac)"), flash image $same"
done
echo "  the simulator's log, VCU's transfer cut and resumed:"
grep -E "VCU: (fault|block .* repeated|transfer exit)" "$work/sim.log" | sed 's/^/    /'
echo "== the task (otactl task get $task)"
for _ in $(seq 50); do
    otactl task get "$task" > "$work/task.txt"
    grep -q "finished" "$work/task.txt" && break
    sleep 0.1
done
sed 's/^/  /' "$work/task.txt"
echo "  work dir: $work (agent state: $work/agent-state/agent.db)"
[ "$agent_rc" = 0 ] && [ "$ok" = 1 ] || { echo "demo-agent: FAILED"; exit 1; }
echo "demo-agent: three ECUs flashed over UDS/DoIP, images verified, success reported."
