#!/bin/sh
# bridge-events-conf.sh — prints the Mosquitto bridge section that forwards a
# vehicle-facing broker's ota/v1/events/# to an events broker (issue 15,
# docs/mongodb.md "Events downstream"). Include its output in that broker's
# mosquitto.conf (e.g. `include_dir /etc/mosquitto/conf.d`).
# The events broker's side (the plugin that drops duplicate events) is printed by
# scripts/events-broker-conf.sh.
#
#   scripts/bridge-events-conf.sh BROKER_ID EVENTS_HOST:PORT [MORE_HOST:PORT...]
#
# BROKER_ID names the bridge and its client id on the events broker: it must be unique
# per vehicle-facing broker and stable across restarts (cleansession false: the events
# broker keeps the bridge's session, the bridge keeps its outgoing queue).
# More addresses are tried in order when the first is down (round_robin false: back to
# the first when it returns). Optional environment:
#   OTA_BRIDGE_USER / OTA_BRIDGE_PASSWORD  credentials on the events broker
#   OTA_BRIDGE_CAFILE                      TLS to the events broker with this CA
set -eu
if [ $# -lt 2 ]; then
    echo "usage: $0 BROKER_ID EVENTS_HOST:PORT [MORE_HOST:PORT...]" >&2
    exit 2
fi
id=$1
shift
case $id in
    *[!A-Za-z0-9_.:-]*) echo "$0: BROKER_ID may hold letters, digits and _.:- only" >&2; exit 2 ;;
esac
echo "# ota: events of this broker to the events broker (scripts/bridge-events-conf.sh)"
echo "connection ota-events-$id"
echo "addresses $*"
echo "round_robin false"
echo "topic ota/v1/events/# out 1"
echo "remote_clientid ota-events-bridge-$id"
echo "local_clientid ota-events-local-$id"
echo "cleansession false"
echo "bridge_protocol_version mqttv311"
echo "try_private true"
echo "notifications false"
echo "keepalive_interval 30"
echo "restart_timeout 1 30"
if [ -n "${OTA_BRIDGE_USER:-}" ]; then
    echo "remote_username $OTA_BRIDGE_USER"
    echo "remote_password ${OTA_BRIDGE_PASSWORD:-}"
fi
if [ -n "${OTA_BRIDGE_CAFILE:-}" ]; then
    echo "bridge_cafile $OTA_BRIDGE_CAFILE"
fi
