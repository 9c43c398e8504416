/* pages.js — the console's pages, each a function that fills the page element from
 * operator API answers: fleet overview, campaigns and one campaign live, vehicle detail,
 * packages (upload, release), and a new task with a target preview. */
"use strict";
const Pages = (() => {
    const { h, badge, table, facts, num, timeCell, time } = Ui;
    const plural = (n, one, many) => num(n) + " " + (n === 1 ? one : many || one + "s");
    const vinLink = (v) => h("a", { href: "#/vehicle/" + v, class: "mono" }, v);
    const taskLink = (t) => h("a", { href: "#/campaign/" + t, class: "mono" }, t);
    const ACTIVE = ["queued", "notified", "downloading", "installing"];

    /* Runs fn, showing a refused command in the banner; returns its result or null. */
    async function tryCall(what, fn) {
        try { return await fn(); } catch (e) { Ui.banner("error", what + " refused: " + e.message); return null; }
    }

    /* ---- fleet ---- */
    async function fleet(el) {
        const s = await Api.call("getFleetSummary");
        const card = (title, value, sub) => h("div", { class: "stat" }, h("div", { class: "v" }, value), h("div", { class: "t" }, title), sub && h("div", { class: "sub" }, sub));
        const inFlight = ACTIVE.reduce((n, k) => n + (s.executions[k] || 0), 0);
        const words = (o) => Object.entries(o).sort((a, b) => b[1] - a[1]);
        const maxFw = Math.max(1, ...s.by_firmware.map((r) => r.vehicles));
        el.replaceChildren(
            h("h1", {}, "Fleet"),
            h("div", { class: "stats" },
                card("vehicles", num(s.vehicles), s.by_model.length + " model/series"),
                card("active tasks", num(s.tasks.active), num(s.tasks.finished) + " finished, " + num(s.tasks.canceled + s.tasks.aborted) + " stopped"),
                card("updates in flight", num(inFlight), num(s.executions.queued) + " queued"),
                card("updates succeeded", num(s.executions.succeeded), num(s.executions.failed) + " failed")),
            h("div", { class: "cols" },
                h("div", { class: "card" }, h("h2", {}, "By model"),
                    table([{ title: "Model", cell: (r) => r.model }, { title: "Series", cell: (r) => r.series },
                           { title: "Vehicles", cls: "num", cell: (r) => num(r.vehicles) }], s.by_model, "No vehicles yet.")),
                h("div", { class: "card" }, h("h2", {}, "By status"),
                    table([{ title: "Status", cell: (r) => badge(r[0]) }, { title: "Vehicles", cls: "num", cell: (r) => num(r[1]) }], words(s.by_status))),
                h("div", { class: "card" }, h("h2", {}, "By usage"),
                    table([{ title: "Usage", cell: (r) => r[0] }, { title: "Vehicles", cls: "num", cell: (r) => num(r[1]) }], words(s.by_usage)))),
            h("div", { class: "card" }, h("h2", {}, "By firmware"),
                table([{ title: "Model", cell: (r) => r.model + " " + r.series },
                       { title: "Firmware", cell: (r) => h("span", { class: "mono" }, r.fw || "unknown") },
                       { title: "Vehicles", cls: "num", cell: (r) => num(r.vehicles) },
                       { title: "", cls: "wide", cell: (r) => Ui.meter(r.vehicles / maxFw) }], s.by_firmware, "No vehicles yet.")),
            await vehicleList());
    }

    async function vehicleList() {
        const box = h("div", { class: "card" });
        const form = h("form", { class: "filters" },
            h("input", { name: "vin_prefix", placeholder: "VIN starts with", size: 17 }),
            h("input", { name: "model", placeholder: "model", size: 8 }),
            h("input", { name: "fw", placeholder: "firmware", size: 8 }),
            h("select", { name: "status" }, h("option", { value: "" }, "any status"),
                ["assembly_offline", "ok_offline", "certificate_printed", "in_stock", "sold", "scrapped"].map((w) => h("option", { value: w }, w))),
            h("button", { type: "submit" }, "Find"));
        const out = h("div", {});
        const cursors = [];
        async function load(cursor) {
            const q = { limit: 25 };
            for (const [k, v] of new FormData(form)) if (v) q[k] = v;
            if (cursor) q.cursor = cursor;
            const r = await tryCall("listVehicles", () => Api.call("listVehicles", q));
            if (!r) return;
            out.replaceChildren(
                h("p", { class: "muted" }, plural(r.total, "vehicle") + (r.total === 1 ? " matches" : " match")),
                table([{ title: "VIN", cell: (v) => vinLink(v.vin) }, { title: "Model", cell: (v) => v.model + " " + v.series },
                       { title: "Firmware", cell: (v) => h("span", { class: "mono" }, v.fw || "—") },
                       { title: "Status", cell: (v) => badge(v.status) }, { title: "Usage", cell: (v) => v.usage }],
                      r.vehicles, "No vehicle matches.", { id: "vehicles" }),
                h("div", { class: "pager" },
                    cursors.length ? h("button", { onclick: () => { cursors.pop(); load(cursors[cursors.length - 1]); } }, "← previous") : null,
                    r.next_cursor ? h("button", { onclick: () => { cursors.push(r.next_cursor); load(r.next_cursor); } }, "next →") : null));
        }
        form.addEventListener("submit", (e) => { e.preventDefault(); cursors.length = 0; load(); });
        box.append(h("h2", {}, "Vehicles"), form, out);
        await load();
        return box;
    }

    /* ---- campaigns ---- */
    function done(c) { return (c.succeeded || 0) + (c.failed || 0) + (c.canceled || 0); }
    function targeted(c) { return Ui.EXEC_ORDER.reduce((n, k) => n + (k === "rejected" ? 0 : c[k] || 0), 0); }

    async function campaigns(el) {
        const r = await Api.call("listTasks", { limit: 100 });
        el.replaceChildren(
            h("div", { class: "titlebar" }, h("h1", {}, "Campaigns"), h("a", { class: "button primary", href: "#/new-task" }, "New task")),
            h("div", { class: "card" },
                h("p", { class: "muted" }, plural(r.total, "task") + ", newest first"),
                table([{ title: "Task", cell: (t) => taskLink(t.id) }, { title: "Name", cell: (t) => t.name },
                       { title: "Target", cell: (t) => t.model + " " + t.series + " → " + t.version },
                       { title: "Type", cell: (t) => t.type }, { title: "State", cell: (t) => badge(t.state) },
                       { title: "Progress", cls: "wide", cell: (t) => Ui.stack(t.counts) },
                       { title: "Done", cls: "num", cell: (t) => num(done(t.counts)) + " / " + num(targeted(t.counts)) },
                       { title: "Created", cell: (t) => timeCell(t.created_at) }],
                      r.tasks, "No task yet: create one under New task.", { id: "tasks" })));
    }

    /* Cumulative succeeded / failed over time from the executions' last updates. */
    function progressChart(task, vehicles) {
        const fin = vehicles.filter((v) => v.state === "succeeded" || v.state === "failed").sort((a, b) => a.updated_at - b.updated_at);
        const series = [{ name: "succeeded", cls: "s-succeeded", points: [] }, { name: "failed", cls: "s-failed", points: [] }];
        const n = { succeeded: 0, failed: 0 };
        for (const v of fin) {
            n[v.state]++;
            series[v.state === "succeeded" ? 0 : 1].points.push([v.updated_at, n[v.state]]);
        }
        const t0 = task.created_at, t1 = task.state === "active" ? Date.now() : Math.max(t0 + 1000, ...fin.map((v) => v.updated_at));
        return Ui.chart(series, t0, t1, targeted(task.counts));
    }

    /* exportTask answers every vehicle of the task (~100 bytes each): a live page asks for
     * it again at most every total/1000 s (a 100,000-vehicle task: every 100 s; at least
     * 2.5 s), and once more when the task stops being active; getTask's counts every time. */
    const exports = new Map(); // task id -> {at, x}
    async function taskExport(id, total, state) {
        const c = exports.get(id);
        if (c && c.state === state && state === "active" && Date.now() - c.at < Math.max(2500, total)) return c.x;
        const x = await Api.call("exportTask", { id });
        exports.set(id, { at: Date.now(), x, state });
        return x;
    }

    async function campaign(el, id) {
        const t = await Api.call("getTask", { id });
        const x = await taskExport(id, targeted(t.counts), t.state);
        const task = Object.assign({}, x.task, { state: t.state, counts: t.counts, created_at: t.created_at });
        const c = t.counts, total = targeted(c);
        const byWord = {};
        for (const v of x.vehicles) if (v.state === "failed") byWord[v.code || "(no error word)"] = (byWord[v.code || "(no error word)"] || 0) + 1;
        const words = Object.entries(byWord).sort((a, b) => b[1] - a[1]);
        const rejected = {};
        for (const v of x.vehicles) if (v.state === "rejected") rejected[v.code] = (rejected[v.code] || 0) + 1;
        const actions = [];
        if (t.state === "active")
            actions.push(h("button", { class: "danger", id: "cancel-task", onclick: async () => {
                if (!confirm("Cancel task " + id + "? Queued vehicles are dropped; vehicles already updating are asked to stop.")) return;
                const r = await tryCall("cancelTask", () => Api.call("cancelTask", { id }));
                if (r) { Ui.banner("ok", "Task " + id + " canceled: " + r.canceled + " dropped, " + r.pending + " asked to stop."); App.refresh(); }
            } }, "Cancel task"));
        const pct = total ? Math.round(100 * done(c) / total) : 0;
        el.replaceChildren(
            h("div", { class: "titlebar" },
                h("h1", {}, "Campaign ", h("span", { class: "mono" }, id), " ", badge(t.state)),
                h("div", { class: "actions" }, actions,
                  h("a", { class: "button", href: "#/campaigns" }, "All campaigns"))),
            h("div", { class: "card" },
                facts([["Name", task.name], ["Package", task.model + " " + task.series + " → " + task.version + " (package " + t.package + ")"],
                       ["Type", task.type + (task.source === "diagnostic_tool" ? " (diagnostic tool)" : "")],
                       ["Created", time(t.created_at)], task.start ? ["Start", time(task.start)] : null, task.end ? ["End", time(task.end)] : null,
                       t.task.rate ? ["Rate", t.task.rate + " notices/s"] : null,
                       t.task.abort ? ["Abort", "after " + t.task.abort.min_executed + " finished if ≥ " + t.task.abort.failure_pct + " % failed"] : null]),
                h("div", { class: "progress-head" }, h("b", { id: "task-progress" }, pct + " % done"),
                  " — " + num(done(c)) + " of " + num(total) + " vehicles finished" + (c.rejected ? ", " + num(c.rejected) + " rejected at creation" : "")),
                Ui.stack(c), Ui.legend(c)),
            h("div", { class: "cols" },
                h("div", { class: "card grow" }, h("h2", {}, "Progress over time"), progressChart(task, x.vehicles),
                  h("div", { class: "legend" }, h("span", { class: "lg" }, h("i", { class: "s-succeeded" }), "succeeded"), h("span", { class: "lg" }, h("i", { class: "s-failed" }), "failed"))),
                h("div", { class: "card" }, h("h2", {}, "Failures by error word"),
                    table([{ title: "Error", cell: (r) => h("span", { class: "mono" }, r[0]) }, { title: "Vehicles", cls: "num", cell: (r) => num(r[1]) }],
                          words, "No failure.", { id: "failures" }),
                    Object.keys(rejected).length ? [h("h2", {}, "Rejected at creation"),
                        table([{ title: "Code", cell: (r) => h("span", { class: "mono" }, r[0]) }, { title: "Vehicles", cls: "num", cell: (r) => num(r[1]) }],
                              Object.entries(rejected))] : null)),
            h("div", { class: "card" }, h("h2", {}, "Vehicles"),
                table([{ title: "VIN", cell: (v) => vinLink(v.vin) }, { title: "State", cell: (v) => badge(v.state) },
                       { title: "Error / code", cell: (v) => h("span", { class: "mono" }, v.code || "") },
                       { title: "Attempts", cls: "num", cell: (v) => v.attempts }, { title: "Notified", cell: (v) => timeCell(v.notified_at) },
                       { title: "Last change", cell: (v) => timeCell(v.updated_at) },
                       { title: "Firmware now", cell: (v) => h("span", { class: "mono" }, v.fw || "—") },
                       { title: "RXSWIN after", cell: (v) => h("span", { class: "mono small" }, (v.rxswin_after || []).join(", ")) }],
                      x.vehicles, "No vehicle.", { id: "task-vehicles" })));
        return t.state === "active";
    }

    /* ---- vehicle ---- */
    function eventDetail(e) {
        const parts = [];
        for (const k of ["ecu", "status", "error", "trigger", "pct", "step", "bytes", "fw", "cmd", "result"])
            if (e[k] !== undefined) parts.push(k === "pct" ? e[k] + " %" : k === "bytes" ? Ui.bytes(e[k]) : k + " " + e[k]);
        return parts.join(" · ");
    }
    const execCols = [{ title: "Task", cell: (x) => taskLink(x.task) }, { title: "Task state", cell: (x) => badge(x.task_state) },
        { title: "Version", cell: (x) => h("span", { class: "mono" }, x.version) }, { title: "State", cell: (x) => badge(x.state) },
        { title: "Code", cell: (x) => h("span", { class: "mono" }, x.code || "") }, { title: "Resends", cls: "num", cell: (x) => x.resends },
        { title: "Notified", cell: (x) => timeCell(x.notified_at) }, { title: "Updated", cell: (x) => timeCell(x.updated_at) }];

    async function vehicle(el, vin) {
        const [s, hist] = await Promise.all([Api.call("getVehicleStatus", { vin }), Api.call("getVehicleHistory", { vin, limit: 50 })]);
        const v = s.vehicle;
        const json = (o) => h("pre", { class: "json" }, JSON.stringify(o, null, 2));
        el.replaceChildren(
            h("div", { class: "titlebar" }, h("h1", {}, "Vehicle ", h("span", { class: "mono", id: "vehicle-vin" }, vin))),
            h("div", { class: "cols" },
                h("div", { class: "card" }, h("h2", {}, "Catalog"),
                    facts([["Model", v.model + " " + v.series], ["Firmware", h("span", { class: "mono" }, v.fw || "—")], ["Status", badge(v.status)],
                           ["Usage", v.usage], ["Sold / activated", (v.sold ? "sold" : "not sold") + ", " + (v.activated ? "activated" : "not activated")],
                           v.config_word ? ["Config word", h("span", { class: "mono" }, v.config_word)] : null,
                           ["RXSWIN", h("span", { class: "mono", id: "vehicle-rxswin" }, (v.rxswin || []).join(", ") || "none")],
                           ["Public key", v.public_key ? h("span", { class: "mono small" }, v.public_key.slice(0, 16) + "…") : "none"]])),
                h("div", { class: "card" }, h("h2", {}, "Latest"),
                    facts([["Upgrade status", s.latest_status ? [badge(s.latest_status.status), " (" + s.latest_status.trigger + ")"] : "none reported"],
                           ["Last error", s.last_error ? [h("span", { class: "mono" }, s.last_error.code), " in ", taskLink(s.last_error.task), ", ", Ui.ago(s.last_error.at)] : "none"],
                           ["Shadow version", s.shadow ? s.shadow.version : "no shadow"]])),
                h("div", { class: "card grow" }, h("h2", {}, "Shadow"),
                    s.shadow ? h("div", { class: "cols" }, h("div", {}, h("h3", {}, "reported"), json(s.shadow.reported)), h("div", {}, h("h3", {}, "desired"), json(s.shadow.desired)))
                             : h("p", { class: "muted" }, "The vehicle has not sent a shadow yet."))),
            h("div", { class: "card" }, h("h2", {}, "Current executions"), table(execCols, s.current, "No update in progress.")),
            h("div", { class: "card" }, h("h2", {}, "Past executions"), table(execCols, s.past, "No past update.", { id: "past" })),
            h("div", { class: "card" }, h("h2", {}, "History (newest first)"),
                table([{ title: "Time", cell: (e) => h("span", { title: "received " + time(e.received_at) }, time(e.ts)) },
                       { title: "Kind", cell: (e) => e.kind.replace(/_/g, " ") }, { title: "Task", cell: (e) => e.task ? taskLink(e.task) : "" },
                       { title: "Details", cell: eventDetail }, { title: "Report seq", cls: "num mono", cell: (e) => e.seq + (e.index ? " #" + e.index : "") }],
                      hist.events, "No report stored.", { id: "history" })));
    }

    /* ---- packages ---- */
    const NEXT = { draft: "verified", verified: "released", released: "deprecated" };
    const NEXT_LABEL = { draft: "Mark verified", verified: "Release", released: "Deprecate" };

    async function sha256(file) {
        if (!window.crypto || !crypto.subtle)
            throw new Error("the browser gives no SHA-256 here (open the console over http://127.0.0.1 or https)");
        const d = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
        return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
    }

    /* Uploads a file as otactl does: uploadStatus, then chunks from `received`, a window of
     * 4 unanswered at a time; progress(received, total). Resolves with the sha256. */
    async function upload(file, progress) {
        const CHUNK = 256 * 1024, WINDOW = 4;
        const sum = await sha256(file);
        const st = await Api.call("uploadStatus", { sha256: sum });
        if (st.stored) { progress(file.size, file.size); return { sha256: sum, already: true }; }
        let next = st.received || 0, acked = next;
        const inflight = [];
        progress(acked, file.size);
        while (acked < file.size) {
            while (inflight.length < WINDOW && next < file.size) {
                const len = Math.min(CHUNK, file.size - next);
                const data = new Uint8Array(await file.slice(next, next + len).arrayBuffer());
                inflight.push(Api.chunk(sum, next, file.size, data));
                next += len;
            }
            const r = await inflight.shift();
            acked = r.received;
            progress(acked, file.size);
            if (r.stored) break;
        }
        await Promise.allSettled(inflight);
        return { sha256: sum, already: false };
    }

    async function packages(el) {
        const r = await Api.call("listPackages");
        const bar = h("div", { class: "meter big", id: "upload-bar" }, h("span", { style: "width:0%" }));
        const upMsg = h("p", { id: "upload-msg", class: "muted" }, "Files go into the plugin's repository by SHA-256; packages then name them.");
        const fileIn = h("input", { type: "file", id: "upload-file" });
        const upBtn = h("button", { class: "primary", id: "upload-go", onclick: async () => {
            const f = fileIn.files[0];
            if (!f) { upMsg.textContent = "Choose a file first."; return; }
            upBtn.disabled = true;
            const t0 = Date.now();
            try {
                upMsg.textContent = "Hashing " + f.name + "…";
                const res = await upload(f, (got, total) => {
                    bar.firstChild.style.width = (100 * got / Math.max(total, 1)).toFixed(1) + "%";
                    const rate = got / Math.max((Date.now() - t0) / 1000, 0.001);
                    upMsg.textContent = Ui.bytes(got) + " of " + Ui.bytes(total) + " (" + Math.floor(100 * got / Math.max(total, 1)) + " %, " + Ui.bytes(rate) + "/s)";
                });
                upMsg.replaceChildren(h("b", {}, res.already ? "Already stored: " : "Stored: "), f.name + " — sha256 ", h("code", { id: "upload-sha" }, res.sha256));
                addForm.elements.sha256.value = res.sha256;
                addForm.elements.name.value = f.name;
            } catch (e) {
                upMsg.textContent = "Upload failed: " + e.message;
                Ui.banner("error", "Upload of " + f.name + " failed: " + e.message);
            } finally { upBtn.disabled = false; }
        } }, "Upload");
        const addForm = h("form", { class: "grid-form", id: "add-package" },
            h("label", {}, "Model", h("input", { name: "model", required: true })), h("label", {}, "Series", h("input", { name: "series", required: true })),
            h("label", {}, "Version", h("input", { name: "version", required: true })), h("label", {}, "ECU", h("input", { name: "ecu", required: true })),
            h("label", { class: "span2" }, "File SHA-256", h("input", { name: "sha256", required: true, class: "mono" })),
            h("label", {}, "File name", h("input", { name: "name", required: true })),
            h("label", { class: "span3" }, "Baseline description", h("input", { name: "baseline", required: true })),
            h("button", { type: "submit" }, "Add package (draft)"));
        addForm.addEventListener("submit", async (e) => {
            e.preventDefault();
            const f = Object.fromEntries(new FormData(addForm));
            const p = { model: f.model, series: f.series, version: f.version, kind: "full", baseline_description: f.baseline,
                        ecus: [{ ecu: f.ecu, type: "ecu", version: f.version, file: { sha256: f.sha256, name: f.name } }] };
            const res = await tryCall("addPackage", () => Api.call("addPackage", { package: p }));
            if (res) { Ui.banner("ok", "Package " + res.id + " added as draft."); App.refresh(); }
        });
        const action = (p) => {
            const b = [];
            if (NEXT[p.status]) b.push(h("button", { class: p.status === "verified" ? "primary small" : "small", "data-id": p.id, "data-action": NEXT[p.status], onclick: async () => {
                const ok = await tryCall("setPackageStatus", () => Api.call("setPackageStatus", { id: p.id, status: NEXT[p.status] }));
                if (ok) { Ui.banner("ok", "Package " + p.id + " is " + NEXT[p.status] + "."); App.refresh(); }
            } }, NEXT_LABEL[p.status]));
            b.push(h("button", { class: "small danger", onclick: async () => {
                if (!confirm("Delete package " + p.id + "? Only a package no task uses can be deleted.")) return;
                const ok = await tryCall("deletePackage", () => Api.call("deletePackage", { id: p.id }));
                if (ok) { Ui.banner("ok", "Package " + p.id + " deleted."); App.refresh(); }
            } }, "Delete"));
            return b;
        };
        el.replaceChildren(
            h("h1", {}, "Packages"),
            h("div", { class: "card" },
                table([{ title: "Id", cls: "num", cell: (p) => p.id }, { title: "Model", cell: (p) => p.model + " " + p.series },
                       { title: "Version", cell: (p) => h("span", { class: "mono" }, p.version + (p.kind === "delta" ? " (delta from " + p.from + ")" : "")) },
                       { title: "Status", cell: (p) => badge(p.status) },
                       { title: "ECUs", cell: (p) => p.ecus.map((e) => e.ecu + " " + e.version).join(", ") },
                       { title: "Size", cls: "num", cell: (p) => Ui.bytes(p.ecus.reduce((n, e) => n + (e.file.size || 0), 0)) },
                       { title: "Encrypted", cell: (p) => p.encrypted ? "yes" : "no" },
                       { title: "Baseline", cell: (p) => p.baseline_description || h("span", { class: "warn" }, "none (tasks refuse it)") },
                       { title: "", cls: "actions", cell: action }],
                      r.packages, "No package yet: upload its files, then add it.", { id: "packages" })),
            h("div", { class: "cols" },
                h("div", { class: "card" }, h("h2", {}, "Upload a file"), h("div", { class: "row" }, fileIn, upBtn), bar, upMsg),
                h("div", { class: "card grow" }, h("h2", {}, "Add a package"), addForm)));
    }

    /* ---- new task ---- */
    async function newTask(el) {
        const [s, pk] = await Promise.all([Api.call("getFleetSummary"), Api.call("listPackages")]);
        const models = s.by_model.map((m) => m.model + "/" + m.series);
        const versions = (ms) => pk.packages.filter((p) => p.model + "/" + p.series === ms && p.kind === "full" && p.status !== "deprecated").map((p) => p.version);
        const sel = (name, opts) => h("select", { name }, opts.map((o) => h("option", { value: o }, o)));
        const verSel = sel("version", versions(models[0] || ""));
        const form = h("form", { class: "grid-form", id: "task-form" },
            h("label", {}, "Name", h("input", { name: "name", required: true, value: "campaign-" + new Date().toISOString().slice(0, 10) })),
            h("label", {}, "Type", sel("type", ["normal", "forced", "factory", "spot_check", "diagnostic"])),
            h("label", {}, "Model / series", sel("model", models)),
            h("label", {}, "Target version", verSel),
            h("fieldset", { class: "span3" }, h("legend", {}, "Which vehicles"),
                h("label", { class: "inline" }, h("input", { type: "radio", name: "by", value: "query", checked: true }), " by query"),
                h("label", { class: "inline" }, h("input", { type: "radio", name: "by", value: "vins" }), " by VIN list"),
                h("div", { class: "grid-form q" },
                    h("label", {}, "Firmware below", h("input", { name: "fw_below", placeholder: "e.g. 2.1.0" })),
                    h("label", {}, "Firmware exactly", h("input", { name: "fw" })),
                    h("label", {}, "Status (comma separated)", h("input", { name: "status", placeholder: "e.g. sold, in_stock" })),
                    h("label", {}, "Usage (comma separated)", h("input", { name: "usage", placeholder: "e.g. retail" })),
                    h("label", {}, "VIN prefix", h("input", { name: "vin_prefix" })),
                    h("label", {}, "Groups (comma separated)", h("input", { name: "groups" })),
                    h("label", { class: "inline" }, h("input", { type: "checkbox", name: "no_blacklist", checked: true }), " leave out blacklisted vehicles")),
                h("label", { class: "span3" }, "VINs (one per line or comma separated)", h("textarea", { name: "vins", rows: 3 }))),
            h("label", {}, "Notices per second (0 = no limit)", h("input", { name: "rate", type: "number", min: 0, value: 0 })),
            h("label", {}, "Resends", h("input", { name: "max_resend", type: "number", min: 0, max: 1000, value: 0 })),
            h("label", {}, "Start (empty = now)", h("input", { name: "start", type: "datetime-local" })),
            h("div", { class: "span3 row" },
                h("button", { type: "button", id: "preview", onclick: () => preview() }, "Preview target"),
                h("button", { type: "submit", class: "primary", id: "create" }, "Create task")));
        form.elements.model.addEventListener("change", () => verSel.replaceChildren(...versions(form.elements.model.value).map((v) => h("option", { value: v }, v))));
        const out = h("div", { id: "preview-out" });
        const list = (v) => v.split(/[\s,]+/).filter((w) => w);

        function task() {
            const f = form.elements, [model, series] = f.model.value.split("/");
            const t = { name: f.name.value, type: f.type.value, model, series, version: f.version.value };
            if (form.querySelector("input[name=by]:checked").value === "vins") {
                t.vins = list(f.vins.value);
            } else {
                const q = {};
                for (const k of ["fw_below", "fw", "vin_prefix"]) if (f[k].value) q[k] = f[k].value.trim();
                for (const k of ["status", "usage", "groups"]) if (list(f[k].value).length) q[k] = list(f[k].value);
                if (f.no_blacklist.checked) q.not_lists = ["blacklist"];
                t.target = q;
            }
            if (+f.rate.value) t.rate = +f.rate.value;
            if (+f.max_resend.value) t.max_resend = +f.max_resend.value;
            if (f.start.value) t.start = new Date(f.start.value).toISOString().replace(/\.\d+Z$/, "Z");
            return t;
        }
        async function preview() {
            const p = await tryCall("previewTarget", () => Api.call("previewTarget", { task: task() }));
            if (!p) return;
            const rej = Object.entries(p.rejected || {});
            out.replaceChildren(h("div", { class: "card preview" }, h("h2", {}, "Preview"),
                h("p", { class: "big" }, h("b", { id: "preview-accepted" }, num(p.accepted)), " vehicles would be updated, of ",
                  h("b", {}, num(p.matched)), " matching."),
                p.task_error ? h("p", { class: "error" }, "The task itself would be refused: " + p.task_error) : null,
                p.too_large ? h("p", { class: "error" }, "Too many vehicles for one task.") : null,
                rej.length ? table([{ title: "Would be rejected", cell: (r) => h("span", { class: "mono" }, r[0]) }, { title: "Vehicles", cls: "num", cell: (r) => num(r[1]) }], rej) : null));
        }
        form.addEventListener("submit", async (e) => {
            e.preventDefault();
            const r = await tryCall("createTask", () => Api.call("createTask", { task: task() }));
            if (!r) return;
            App.goTo("#/campaign/" + r.id, "ok", "Task " + r.id + " created: " + r.accepted.length + " vehicles accepted, " + r.rejected.length + " rejected.");
        });
        el.replaceChildren(h("h1", {}, "New task"), h("div", { class: "cols" }, h("div", { class: "card grow" }, form), out));
    }

    return { fleet, campaigns, campaign, vehicle, packages, newTask };
})();
