#!/usr/bin/env bash
# The demo: builds everything, starts Mosquitto with the mosquitto-ota plugin and its SQLite
# store in a temporary directory on a free loopback port, sets up a catalog with otactl
# (model, a fleet with its vehicles' public keys, an encrypted two-file package, a
# strategy), creates a campaign task, and runs a simulated fleet through it (ota-fleet
# campaign: signed descriptions checked, content keys unwrapped, blocks downloaded with
# resume and checked, progress and final statuses reported, with injected failures, cut
# links and lost blocks). Prints the task's final counts and where the data is, and stops
# the broker cleanly. Installs missing Debian packages first.
#
# Knobs: VEHICLES (default 500), FAILURE_RATE (0.05), DISCONNECT_RATE (0.05),
# DROP_RATE (0.01), FILE_KB (size of the BMS file in KiB, default 1024; the ADAS file is a
# quarter of it). The temporary directory is kept for inspection: the broker runs in it,
# and every file it writes (store, spool, files, the signing key and the content-key KEK)
# is given there by an absolute path, never in the repository.
# The web console (docs/console.md) is served by websockify on a free port for the length
# of the demo; its address is printed. Interactive runs wait for Enter before the fleet
# starts and before the broker stops, so the campaign can be watched in a browser.
# CONSOLE=0 leaves the console out.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
source scripts/demo-lib.sh
bash scripts/setup-deps.sh
echo "== building (build/)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
echo "built: build/plugin/mosquitto_ota.so, build/tools/otactl/otactl, build/tools/ota-fleet/ota-fleet"
CONSOLE=${CONSOLE:-1}
if [ "$CONSOLE" = 1 ]; then
    bash tools/console/build.sh build/console >/dev/null && echo "built: build/console/www (web console)" ||
        { echo "console: build failed (npm ci), the demo runs without it"; CONSOLE=0; }
fi

VEHICLES=${VEHICLES:-500}
FAILURE_RATE=${FAILURE_RATE:-0.05}
DISCONNECT_RATE=${DISCONNECT_RATE:-0.05}
DROP_RATE=${DROP_RATE:-0.01}
FILE_KB=${FILE_KB:-1024}
KEY_SEED=demo
work=$(mktemp -d /tmp/ota-demo.XXXXXX)
port=$(demo_free_port)
demo_broker_conf "$work" "$port" "$root/build/plugin/mosquitto_ota.so" <<CONF
max_inflight_messages 0
max_queued_messages 0
CONF
cleanup() { demo_stop "${relay:-}" "${broker:-}"; }
trap cleanup EXIT
demo_start_broker "$work" "$port"
echo "== broker: mosquitto (pid $broker) on 127.0.0.1:$port, store sqlite:$work/ota.db"

otactl() { build/tools/otactl/otactl -p "$port" -u admin "$@"; }

if [ "$CONSOLE" = 1 ]; then
    wsport=$(demo_free_port)
    websockify --web build/console/www "127.0.0.1:$wsport" "127.0.0.1:$port" >"$work/websockify.log" 2>&1 &
    relay=$!
    echo "== console: http://127.0.0.1:$wsport/ (log in as admin, any password; websockify pid $relay)"
fi

echo "== operator: catalog set-up with otactl"
otactl model set --model L9 --series 2024 --ecu BMS --ecu ADAS
# The vehicles' X25519 public keys (derived by ota-fleet from a seed and the VIN), so
# that each encrypted description carries the content key wrapped for its vehicle.
build/tools/ota-fleet/ota-fleet keys --vehicles "$VEHICLES" --key-seed "$KEY_SEED" > "$work/keys.csv"
{
    echo "vin,model,series,status,usage,sold,activated,fw,public_key"
    sed 's/^\([^,]*\),\(.*\)$/\1,L9,2024,sold,retail,true,true,2.0.9,\2/' "$work/keys.csv"
} > "$work/fleet.csv"
otactl vehicle import "$work/fleet.csv"

head -c $((FILE_KB * 1024)) /dev/urandom > "$work/bms-2.1.0.bin"
head -c $((FILE_KB * 256)) /dev/urandom > "$work/adas-2.1.0.bin"
encrypted=()
if build/tools/otactl/otactl file --help 2>&1 | grep -q -- "--encrypt"; then
    # Encrypted package: both files under one content key; the plugin keeps the key
    # sealed and wraps it for each vehicle in its description.
    ckey=$(/usr/bin/python3 -c 'import os; print(os.urandom(32).hex())')
    bms=$(otactl --quiet file upload "$work/bms-2.1.0.bin" --encrypt --key "$ckey" | sed -n 's/^sha256=\([0-9a-f]*\).*/\1/p')
    adas=$(otactl --quiet file upload "$work/adas-2.1.0.bin" --encrypt --key "$ckey" | sed -n 's/^sha256=\([0-9a-f]*\).*/\1/p')
    encrypted=(--encrypted --content-key "$ckey")
    echo "uploaded 2 files, encrypted (AES-256-GCM): $bms, $adas"
else
    bms=$(otactl --quiet file upload "$work/bms-2.1.0.bin" | tail -1)
    adas=$(otactl --quiet file upload "$work/adas-2.1.0.bin" | tail -1)
    echo "uploaded 2 files: $bms, $adas"
fi
otactl package add --model L9 --series 2024 --version 2.1.0 --kind full "${encrypted[@]}" \
    --baseline "L9 2.1.0: battery management and ADAS update" --prompt "Update to 2.1.0" \
    --ecu "BMS:ecu:2.1.0:$bms:bms-2.1.0.bin" --ecu "ADAS:ecu:2.1.0:$adas:adas-2.1.0.bin"
otactl package status 1 released
otactl strategy set --id l9-default --ecu BMS:0 --ecu ADAS:1
otactl strategy bind l9-default --model L9 --series 2024
cut -d, -f1 "$work/keys.csv" > "$work/vins.txt"
task=$(otactl task create --name demo-campaign --type normal --model L9 --series 2024 \
    --version 2.1.0 --vins-file "$work/vins.txt" | tee "$work/task-create.txt" | head -1 | awk '{print $NF}')
echo "== campaign: task $task for $VEHICLES vehicles"

if [ "$CONSOLE" = 1 ] && [ -t 0 ]; then
    read -r -p "Open http://127.0.0.1:$wsport/#/campaign/$task to watch; press Enter to start the fleet. "
fi
echo "== fleet: $VEHICLES simulated vehicles (failure rate $FAILURE_RATE, cut links" \
     "$DISCONNECT_RATE per window, lost blocks $DROP_RATE)"
fleet_rc=0
build/tools/ota-fleet/ota-fleet campaign --port "$port" --vehicles "$VEHICLES" \
    --pub "$work/ota-signing.pem.pub" --key-seed "$KEY_SEED" --fw 2.0.9 \
    --failure-rate "$FAILURE_RATE" --disconnect-rate "$DISCONNECT_RATE" \
    --drop-rate "$DROP_RATE" --install-step 0.5 --timeout 150 || fleet_rc=$?

echo "== the task's final counts (otactl task get $task)"
for _ in $(seq 50); do # the last statuses reach the engine within a few ms
    otactl task get "$task" > "$work/task.txt"
    grep -q "finished" "$work/task.txt" && break
    sleep 0.1
done
sed 's/^/  /' "$work/task.txt"

if [ "$CONSOLE" = 1 ] && [ -t 0 ]; then
    read -r -p "The console still shows the broker (http://127.0.0.1:$wsport/); press Enter to stop it. "
fi
echo "== stopping the broker"
kill -TERM "$broker"
broker_rc=0
wait "$broker" || broker_rc=$?
broker=""
echo "broker stopped (exit $broker_rc)"

echo "== the data ($work)"
sqlite3 -column -header "$work/ota.db" "
SELECT 'descriptions issued' AS what, count(*) AS n FROM ota_vehicle_package_description
UNION ALL SELECT 'notices sent', count(*) FROM ota_vehicle_download_notice
UNION ALL SELECT 'download_progress events', count(*) FROM ota_vehicle_download_progress
UNION ALL SELECT 'upgrade_progress events', count(*) FROM ota_vehicle_upgrade_progress
UNION ALL SELECT 'upgrade_status events', count(*) FROM ota_vehicle_upgrade_status;" |
    sed 's/^/  /'
echo "  failures by error word:"
sqlite3 "$work/ota.db" "SELECT error, count(*) FROM ota_vehicle_upgrade_status
    WHERE status = 'failed' GROUP BY error ORDER BY 2 DESC;" | sed 's/^/    /'
cat <<WHERE
  store:        $work/ota.db (SQLite; sqlite3 $work/ota.db .tables)
  spool:        $work/spool (durable report spool)
  files:        $work/files (content-addressed package files, stored encrypted)
  signing key:  $work/ota-signing.pem (+ .pub, what the vehicles verify with)
  content KEK:  $work/ota-content.kek (seals the packages' content keys)
  broker log:   $work/broker.log; config: $work/mosquitto.conf
  fleet input:  $work/fleet.csv (vehicles and their public keys)
WHERE
[ "$fleet_rc" = 0 ] && [ "$broker_rc" = 0 ] || { echo "demo: FAILED (fleet exit $fleet_rc, broker exit $broker_rc)"; exit 1; }
echo "demo: every signature, key, file and count checked out; the broker stopped cleanly."
