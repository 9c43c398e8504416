/* app.js — the console's shell: login form, hash routes (#/fleet, #/campaigns,
 * #/campaign/ID, #/vehicle/VIN, #/packages, #/new-task), the connection indicator and
 * banner, and live refresh: a campaign page redraws on its task's status events
 * (ota/v1/events/status/...) and every few seconds while the task is active. */
"use strict";
const App = (() => {
    const $ = (id) => document.getElementById(id);
    let route = null, live = null, redrawTimer = null, busy = false, again = false, flash = null;

    function setConn(kind, text) {
        const c = $("conn");
        c.className = "conn " + kind;
        c.textContent = text;
    }

    function parseRoute() {
        const parts = location.hash.replace(/^#\/?/, "").split("/");
        return { page: parts[0] || "fleet", arg: decodeURIComponent(parts[1] || "") };
    }

    const PAGES = {
        fleet: (el) => Pages.fleet(el), campaigns: (el) => Pages.campaigns(el),
        campaign: (el, a) => Pages.campaign(el, a), vehicle: (el, a) => Pages.vehicle(el, a),
        packages: (el) => Pages.packages(el), "new-task": (el) => Pages.newTask(el),
    };

    /* Draws the current route; a second call while drawing draws once more after. */
    async function refresh() {
        if (!Api.connected()) return;
        if (busy) { again = true; return; }
        busy = true;
        const r = parseRoute(), el = $("page");
        const first = !route || route.page !== r.page || route.arg !== r.arg;
        route = r;
        for (const a of document.querySelectorAll("#nav a"))
            a.classList.toggle("here", a.dataset.page === r.page || (r.page === "campaign" && a.dataset.page === "campaigns"));
        const fn = PAGES[r.page] || PAGES.fleet;
        const into = document.createElement("div");
        if (first) el.replaceChildren(Ui.h("p", { class: "muted" }, "Loading…"));
        try {
            const active = await fn(into, r.arg);
            el.replaceChildren(...into.childNodes);
            el.dataset.page = r.page;
            live = r.page === "campaign" && active ? r.arg : null;
        } catch (e) {
            el.replaceChildren(Ui.h("div", { class: "card" }, Ui.h("h1", {}, "Cannot show this page"), Ui.h("p", { class: "error", id: "page-error" }, e.message)));
            el.dataset.page = r.page;
        }
        busy = false;
        if (again) { again = false; refresh(); }
    }

    /* Redraws the live campaign at most once a second. */
    function soon() {
        if (redrawTimer) return;
        redrawTimer = setTimeout(() => { redrawTimer = null; refresh(); }, 1000);
    }

    function showLogin(message) {
        $("login").hidden = false;
        $("page").hidden = true;
        $("nav").hidden = true;
        $("logout").hidden = true;
        $("login-msg").textContent = message || "";
        setConn("off", "not connected");
    }

    async function login(e) {
        e.preventDefault();
        const url = $("login-url").value.trim(), user = $("login-user").value.trim();
        $("login-go").disabled = true;
        $("login-msg").textContent = "";
        setConn("wait", "connecting…");
        try {
            await Api.connect(url, user, $("login-pass").value);
            localStorage.setItem("ota-console", JSON.stringify({ url, user }));
            $("login").hidden = true;
            $("page").hidden = false;
            $("nav").hidden = false;
            $("logout").hidden = false;
            setConn("on", user + " @ " + url.replace(/^wss?:\/\//, ""));
            if (!location.hash) location.hash = "#/fleet";
            route = null;
            refresh();
        } catch (err) {
            showLogin(err.message);
        } finally {
            $("login-go").disabled = false;
        }
    }

    function start() {
        const saved = JSON.parse(localStorage.getItem("ota-console") || "{}");
        const def = (location.protocol === "https:" ? "wss://" : "ws://") + (location.host || "127.0.0.1:8080") + "/";
        $("login-url").value = saved.url || def;
        $("login-user").value = saved.user || "";
        $("login-form").addEventListener("submit", login);
        $("logout").addEventListener("click", () => { Api.disconnect(); Ui.banner(); showLogin("Logged out."); });
        window.addEventListener("hashchange", () => {
            Ui.banner(...(flash || []));
            flash = null;
            refresh();
        });
        Api.on("state", (kind, text) => {
            const user = $("login-user").value;
            if (kind === "online") {
                setConn("on", user + " @ " + $("login-url").value.replace(/^wss?:\/\//, ""));
                if (text) { Ui.banner("ok", text); refresh(); }
            } else if (kind === "offline") {
                setConn("off", "connection lost");
                Ui.banner("error", text);
            } else {
                Ui.banner("error", text);
            }
        });
        Api.on("event", (topic, ev) => {
            if (live && ev.task === live) soon();
        });
        setInterval(() => { if (live) refresh(); }, 3000);
        showLogin("");
    }

    /* Goes to a route, showing a message there (a change of page clears the banner). */
    function goTo(hash, kind, text) {
        flash = [kind, text];
        location.hash = hash;
    }

    return { start, refresh, goTo };
})();
App.start();
