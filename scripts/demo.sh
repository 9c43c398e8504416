#!/usr/bin/env bash
# The demo: builds everything, starts Mosquitto with the mosquitto-ota plugin and its
# SQLite store in a temporary directory on a free loopback port, lets a simulated fleet
# report download/upgrade progress and status, shows the status events an operator
# receives, and prints what landed in the store. Installs missing Debian packages first.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bash scripts/setup-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
echo "built: build/plugin/mosquitto_ota.so, build/tools/ota-fleet"

VEHICLES=${VEHICLES:-20}
REPORTS=${REPORTS:-50}
EVENTS=${EVENTS:-4}
work=$(mktemp -d /tmp/ota-demo.XXXXXX)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/mosquitto.conf" <<CONF
# A broker with the OTA plugin. Vehicles are identified by client id (or username) = VIN.
listener $port 127.0.0.1
allow_anonymous true
persistence false
user $(id -un)
log_dest file $work/broker.log
max_inflight_messages 0
max_queued_messages 0
plugin $root/build/plugin/mosquitto_ota.so
plugin_opt_store sqlite:$work/ota.db
plugin_opt_spool_dir $work/spool
plugin_opt_file_dir $work/files
plugin_opt_admin_users admin
CONF

/usr/sbin/mosquitto -c "$work/mosquitto.conf" 2>>"$work/broker.log" &
broker=$!
events_pid=""
cleanup() {
    [ -n "$events_pid" ] && kill "$events_pid" 2>/dev/null || true
    kill "$broker" 2>/dev/null && wait "$broker" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
    sleep 0.1
done
echo "broker: mosquitto on 127.0.0.1:$port, plugin store sqlite:$work/ota.db"

otactl() { build/tools/otactl -p "$port" -u admin "$@"; }
echo "operator: catalog set-up with otactl"
otactl model set --model L9 --series 2024 --ecu BMS --ecu ADAS
/usr/bin/python3 - "$work/fleet.csv" "$VEHICLES" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("vin,model,series,status,usage,sold,activated,fw\n")
    for i in range(int(sys.argv[2])):
        f.write(f"LSVTA{i:012d},L9,2024,sold,retail,true,true,2.0.9\n")
PY
otactl vehicle import "$work/fleet.csv"
head -c 3000000 /dev/urandom > "$work/bms-2.1.0.bin"
sha=$(otactl --quiet file upload "$work/bms-2.1.0.bin" | tail -1)
otactl package add --model L9 --series 2024 --version 2.1.0 --kind full \
    --ecu "BMS:ecu:2.1.0:$sha:bms-2.1.0.bin"
otactl package status 1 released
otactl strategy set --id l9-default --ecu BMS:0 --ecu ADAS:1
otactl strategy bind l9-default --model L9 --series 2024
otactl package max L9 2024 --released
otactl vehicle get LSVTA000000000000

echo "operator: subscribing to ota/v1/events/status/# (first 5 shown)"
mosquitto_sub -p "$port" -u admin -t 'ota/v1/events/status/#' -C 5 -v > "$work/events.txt" &
events_pid=$!
sleep 0.3

echo "fleet: $VEHICLES vehicles x $REPORTS reports x $EVENTS events, QoS 1, MQTT 5"
build/tools/ota-fleet --port "$port" --vehicles "$VEHICLES" --reports "$REPORTS" \
    --events "$EVENTS" --json > "$work/fleet.json"
/usr/bin/python3 - "$work/fleet.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"fleet: {s['reports_acked']} reports / {s['events_acked']} events acked in "
      f"{s['seconds']:.2f} s ({s['acks_per_s']:.0f} reports/s)")
PY
expected=$(/usr/bin/python3 -c "import json;print(json.load(open('$work/fleet.json'))['events_acked'])")

count_events() {
    sqlite3 "$work/ota.db" "SELECT (SELECT count(*) FROM ota_vehicle_download_progress)
        + (SELECT count(*) FROM ota_vehicle_upgrade_progress)
        + (SELECT count(*) FROM ota_vehicle_upgrade_status)
        + (SELECT count(*) FROM ota_vehicle_upgrade_command)
        + (SELECT count(*) FROM ota_vehicle_eeprom_clear);" 2>/dev/null || echo 0
}
for _ in $(seq 100); do
    [ "$(count_events)" = "$expected" ] && break
    sleep 0.1
done
wait "$events_pid" 2>/dev/null || true
events_pid=""
echo; echo "status events received by the operator:"; sed 's/^/  /' "$work/events.txt"
cleanup
trap - EXIT

echo; echo "store ($work/ota.db):"
sqlite3 -column -header "$work/ota.db" "
SELECT 'ota_vehicle_download_progress' AS collection, count(*) AS events FROM ota_vehicle_download_progress
UNION ALL SELECT 'ota_vehicle_upgrade_progress', count(*) FROM ota_vehicle_upgrade_progress
UNION ALL SELECT 'ota_vehicle_upgrade_status', count(*) FROM ota_vehicle_upgrade_status
UNION ALL SELECT 'ota_vehicle_upgrade_command', count(*) FROM ota_vehicle_upgrade_command
UNION ALL SELECT 'ota_vehicle_eeprom_clear', count(*) FROM ota_vehicle_eeprom_clear;"
echo; echo "latest upgrade status of the first 5 vehicles:"
sqlite3 -column -header "$work/ota.db" "
SELECT s.vin, s.seq, s.task, s.status, s.trigger FROM ota_vehicle_upgrade_status s
WHERE s.seq = (SELECT max(seq) FROM ota_vehicle_upgrade_status t WHERE t.vin = s.vin)
GROUP BY s.vin ORDER BY s.vin LIMIT 5;"
stored=$(count_events)
echo; echo "acked events: $expected, stored events: $stored"
[ "$stored" = "$expected" ] || { echo "demo: MISMATCH"; exit 1; }
echo "demo: every acked event is in the store. Files: $work"
