# demo-lib.sh — what both demos (demo.sh, demo-agent.sh) do the same way: a free loopback
# port, the broker's configuration with the plugin and its files in a work directory,
# starting the broker and waiting for its port, and stopping child processes on exit.
# Sourced, never run; needs bash.

# demo_free_port: prints a free TCP port on 127.0.0.1.
demo_free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# demo_broker_conf WORK PORT PLUGIN: writes WORK/mosquitto.conf, a broker with the OTA
# plugin and every file it writes under WORK (store, spool, files, keys); lines on stdin
# are appended (demo-specific settings).
demo_broker_conf() {
    local work=$1 port=$2 plugin=$3
    cat > "$work/mosquitto.conf" <<CONF
# A broker with the OTA plugin. Vehicles: username = client id = VIN.
listener $port 127.0.0.1
allow_anonymous true
persistence false
user $(id -un)
log_dest file $work/broker.log
set_tcp_nodelay true
plugin $plugin
plugin_opt_store sqlite:$work/ota.db
plugin_opt_spool_dir $work/spool
plugin_opt_file_dir $work/files
plugin_opt_signing_key $work/ota-signing.pem
plugin_opt_content_kek $work/ota-content.kek
plugin_opt_admin_users admin
# A demo broker has no password file: usernames are taken as given (never in production,
# see README "Configuration").
plugin_opt_auth none
CONF
    cat >> "$work/mosquitto.conf"
}

# demo_start_broker WORK PORT: starts mosquitto with WORK/mosquitto.conf in WORK, sets
# `broker` to its pid and waits (up to 10 s) until PORT accepts connections.
demo_start_broker() {
    local work=$1 port=$2
    (cd "$work" && exec /usr/sbin/mosquitto -c "$work/mosquitto.conf" 2>>"$work/broker.log") &
    broker=$!
    for _ in $(seq 100); do
        (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "demo: the broker did not open port $port (see $work/broker.log)" >&2
    return 1
}

# demo_stop PID...: SIGTERM to each process still running, then waits for it.
demo_stop() {
    local pid
    for pid in "$@"; do
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            wait "$pid" 2>/dev/null || true
        fi
    done
}
