/* api.js — the console's one connection: MQTT 5 over WebSocket (mqtt.js, offering the
 * `binary` subprotocol that websockify accepts) with the operator's credentials. Commands
 * go to $CONTROL/ota/v1 one per request, each with a correlationData the plugin echoes;
 * upload chunks go to $CONTROL/ota/v1/file and are answered in order by `upload`
 * responses. Events of ota/v1/events/# are handed to listeners. */
"use strict";
const Api = (() => {
    const CMD_TOPIC = "$CONTROL/ota/v1", FILE_TOPIC = "$CONTROL/ota/v1/file";
    const RESP_TOPIC = "$CONTROL/ota/v1/response", EVENTS = "ota/v1/events/#";
    const TIMEOUT_MS = 30000;
    let client = null, seq = 0, everConnected = false, url = "";
    const pending = new Map();      // correlationData -> {resolve, reject, timer}
    const uploads = [];             // FIFO of {resolve, reject} for chunk answers
    const listeners = { state: [], event: [] };

    function emit(kind, ...args) { for (const f of listeners[kind]) f(...args); }
    function on(kind, f) { listeners[kind].push(f); }

    /* Human text of a refused CONNECT (MQTT 5 reason codes, 3.1.1 return codes). */
    function refusal(err) {
        const code = err && err.code;
        if (code === 134 || code === 135 || code === 4 || code === 5)
            return "Login refused: not authorised (wrong username or password).";
        if (code === 136 || code === 3) return "Login refused: the broker is unavailable.";
        if (code === 133) return "Login refused: client id not accepted.";
        return "Login failed: " + ((err && err.message) || String(err));
    }

    function failAll(text) {
        for (const [, p] of pending) { clearTimeout(p.timer); p.reject(new Error(text)); }
        pending.clear();
        while (uploads.length) uploads.shift().reject(new Error(text));
    }

    function onMessage(topic, payload) {
        if (topic === RESP_TOPIC) {
            let msg;
            try { msg = JSON.parse(new TextDecoder().decode(payload)); } catch (e) { return; }
            for (const r of msg.responses || []) {
                if (r.command === "upload") {
                    const u = uploads.shift();
                    if (u) (r.error ? u.reject(new Error(r.error)) : u.resolve(r.data));
                    continue;
                }
                const p = pending.get(r.correlationData);
                if (!p) continue;
                pending.delete(r.correlationData);
                clearTimeout(p.timer);
                if (r.error !== undefined) p.reject(Object.assign(new Error(r.error), { command: r.command }));
                else p.resolve(r.data || {});
            }
            return;
        }
        let ev = null;
        try { ev = JSON.parse(new TextDecoder().decode(payload)); } catch (e) { return; }
        emit("event", topic, ev);
    }

    /* Connects; resolves once subscribed, rejects with a human message if refused. */
    function connect(wsUrl, username, password) {
        disconnect();
        url = wsUrl;
        everConnected = false;
        return new Promise((resolve, reject) => {
            const c = mqtt.connect(wsUrl, {
                protocolVersion: 5,
                clientId: "ota-console-" + Math.random().toString(16).slice(2, 10),
                username, password,
                clean: true,
                reconnectPeriod: 2000,
                connectTimeout: 10000,
                createWebsocket: (u) => new WebSocket(u, ["binary"]),
            });
            client = c;
            c.on("connect", () => {
                c.subscribe([RESP_TOPIC, EVENTS], { qos: 1 }, (err, granted) => {
                    const bad = (granted || []).find((g) => g.qos > 2);
                    if (err || bad) {
                        const text = "Subscribing failed: is " + username + " an operator (plugin_opt_admin_users)?";
                        if (!everConnected) { disconnect(); reject(new Error(text)); }
                        else emit("state", "error", text);
                        return;
                    }
                    const first = !everConnected;
                    everConnected = true;
                    emit("state", "online", first ? "" : "Reconnected to " + url + ".");
                    if (first) resolve();
                });
            });
            c.on("error", (err) => {
                if (!everConnected) { disconnect(); reject(new Error(refusal(err))); }
                else emit("state", "error", refusal(err));
            });
            c.on("close", () => {
                if (client !== c) return;
                failAll("connection to the broker lost");
                if (!everConnected) {
                    disconnect();
                    reject(new Error("Cannot reach " + wsUrl + ": is the console's relay (scripts/console.sh) running?"));
                    return;
                }
                emit("state", "offline", "Connection lost to " + url + " — reconnecting every 2 s…");
            });
            c.on("message", onMessage);
        });
    }

    function disconnect() {
        if (client) { const c = client; client = null; c.end(true); }
        failAll("disconnected");
    }

    function connected() { return client !== null && client.connected; }

    /* One command; resolves with its data, rejects with the plugin's error text. */
    function call(command, fields) {
        if (!connected()) return Promise.reject(new Error("not connected to the broker"));
        const id = "c" + (++seq);
        const body = JSON.stringify({ commands: [Object.assign({ command }, fields || {}, { correlationData: id })] });
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                pending.delete(id);
                reject(new Error(command + ": no answer within " + TIMEOUT_MS / 1000 + " s"));
            }, TIMEOUT_MS);
            pending.set(id, { resolve, reject, timer });
            client.publish(CMD_TOPIC, body, { qos: 1, properties: { contentType: "application/json" } });
        });
    }

    /* One upload chunk; resolves with the `upload` answer {sha256, received, total, stored}. */
    function chunk(sha256, offset, total, data) {
        if (!connected()) return Promise.reject(new Error("not connected to the broker"));
        return new Promise((resolve, reject) => {
            uploads.push({ resolve, reject });
            client.publish(FILE_TOPIC, Cbor.encode({ sha256, offset, total, data }), { qos: 1 });
        });
    }

    return { connect, disconnect, connected, call, chunk, on };
})();
