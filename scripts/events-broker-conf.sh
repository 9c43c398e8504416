#!/bin/sh
# events-broker-conf.sh — prints the events broker's side of the events bridge (issue 15,
# docs/mongodb.md "Events downstream", docs/events.md "Deduplication on the events broker"):
# the plugin mosquitto_ota_dedupe.so, which drops an event whose (topic, id) it saw in its
# window, so that downstream sees each event once even when a killed vehicle-facing broker
# replays its spool. Include the output in the events broker's mosquitto.conf (the vehicle
# brokers' side is scripts/bridge-events-conf.sh).
#
#   scripts/events-broker-conf.sh [STATE_FILE]
#
# STATE_FILE (default /var/lib/mosquitto-ota/dedupe.window): the window saved at a clean
# stop and read at start; writable by the broker's user. Optional environment:
#   OTA_DEDUPE_PLUGIN  the plugin (default /usr/lib/mosquitto-ota/mosquitto_ota_dedupe.so)
#   OTA_DEDUPE_WINDOW  keys kept (default 4194304: 96 MB, docs/events.md for the sizing)
#   OTA_EVENTS_MAX_QUEUED  max_queued_messages (default 1000000; never 0, see below)
set -eu
if [ $# -gt 1 ]; then
    echo "usage: $0 [STATE_FILE]" >&2
    exit 2
fi
state=${1:-/var/lib/mosquitto-ota/dedupe.window}
echo "# ota: the events broker drops duplicate events (scripts/events-broker-conf.sh)"
echo "# Global (per_listener_settings false, the default): it sees the bridges' messages on"
echo "# every listener; with per_listener_settings true, 2.0.11 runs it only for clients of"
echo "# the listener whose section holds these lines."
echo "# Never 0 here: Debian's 2.0.11 (the CVE-2023-28366 fix) disconnects a client whose"
echo "# dropped PUBLISH it acks while that client has max_queued_messages packets queued,"
echo "# which with 0 is always: the bridge would reconnect after every duplicate. It also"
echo "# bounds the QoS 1 messages waiting for each downstream subscriber."
echo "max_queued_messages ${OTA_EVENTS_MAX_QUEUED:-1000000}"
echo "plugin ${OTA_DEDUPE_PLUGIN:-/usr/lib/mosquitto-ota/mosquitto_ota_dedupe.so}"
echo "plugin_opt_window ${OTA_DEDUPE_WINDOW:-4194304}"
echo "plugin_opt_state_file $state"
