#!/usr/bin/env bash
# Starts the web console: builds its files (tools/console/build.sh into build/console/www) and runs
# Debian's websockify, which serves them and relays the browser's MQTT-over-WebSocket to the
# broker's TCP listener (Mosquitto 2.0.11 from Debian has no WebSocket listener).
#
#   scripts/console.sh [--broker HOST:PORT] [--listen HOST:PORT] [--build DIR]
#
# Defaults: broker 127.0.0.1:1883, listen 127.0.0.1:8080, build dir build/. Open
# http://LISTEN/ and log in with an operator account (plugin_opt_admin_users). websockify
# runs in the foreground (Ctrl-C stops it); its output goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
broker=127.0.0.1:1883 listen=127.0.0.1:8080 build=build
while [ $# -gt 0 ]; do
    case "$1" in
    --broker) broker=$2; shift 2 ;;
    --listen) listen=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "console.sh: unknown option $1 (--help)" >&2; exit 2 ;;
    esac
done
command -v websockify >/dev/null || { echo "console.sh: websockify missing (scripts/setup-deps.sh)" >&2; exit 1; }
bash tools/console/build.sh "$build/console" >&2
echo "console: http://$listen/ (relaying to the broker at $broker)" >&2
exec websockify --web "$build/console/www" "$listen" "$broker"
