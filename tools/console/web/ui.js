/* ui.js — small DOM helpers for the console: element builder, human times, state badges,
 * tables, stacked progress bars, an SVG line chart, and the message banner. */
"use strict";
const Ui = (() => {
    function h(tag, attrs, ...kids) {
        const e = document.createElement(tag);
        for (const [k, v] of Object.entries(attrs || {})) {
            if (v === undefined || v === null || v === false) continue;
            if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
            else if (k === "class") e.className = v;
            else e.setAttribute(k, v === true ? "" : v);
        }
        for (const k of kids.flat(Infinity)) {
            if (k === undefined || k === null || k === false) continue;
            e.append(k instanceof Node ? k : document.createTextNode(String(k)));
        }
        return e;
    }

    const pad = (n) => String(n).padStart(2, "0");
    /* 2026-12-07 14:03:21 (local time), "—" for none. */
    function time(ms) {
        if (ms === undefined || ms === null || ms === 0) return "—";
        const d = new Date(ms);
        return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
            pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
    }
    /* "12 s ago", "3 min ago", "2 h ago", else the date. */
    function ago(ms) {
        if (!ms) return "—";
        const s = Math.round((Date.now() - ms) / 1000);
        if (s < 0) return "in " + duration(-s * 1000);
        if (s < 5) return "just now";
        if (s < 3600 * 24) return duration(s * 1000) + " ago";
        return time(ms);
    }
    function duration(ms) {
        const s = Math.round(ms / 1000);
        if (s < 60) return s + " s";
        if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60 ? (s % 60) + " s" : "");
        return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
    }
    function timeCell(ms) { return h("span", { title: time(ms), class: "time" }, ago(ms)); }
    function bytes(n) {
        if (n < 1024) return n + " B";
        if (n < 1048576) return (n / 1024).toFixed(1) + " KiB";
        if (n < 1073741824) return (n / 1048576).toFixed(1) + " MiB";
        return (n / 1073741824).toFixed(2) + " GiB";
    }
    const num = (n) => (n || 0).toLocaleString("en-US");

    function badge(word) { return h("span", { class: "badge b-" + word }, word.replace(/_/g, " ")); }

    /* A table: cols [{title, cell(row), cls?}], rows; empty text when no row. */
    function table(cols, rows, empty, attrs) {
        if (!rows.length) return h("p", { class: "muted empty" }, empty || "Nothing yet.");
        return h("table", attrs || {},
            h("thead", {}, h("tr", {}, cols.map((c) => h("th", { class: c.cls }, c.title)))),
            h("tbody", {}, rows.map((r) => h("tr", {}, cols.map((c) => h("td", { class: c.cls }, c.cell(r)))))));
    }

    /* A key/value list. */
    function facts(pairs) {
        return h("dl", { class: "facts" }, pairs.filter((p) => p).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
    }

    const EXEC_ORDER = ["succeeded", "failed", "installing", "downloading", "notified", "queued", "canceled", "rejected"];
    /* A stacked bar of execution counts. */
    function stack(counts, total) {
        total = total || EXEC_ORDER.reduce((n, k) => n + (counts[k] || 0), 0);
        return h("div", { class: "stack", title: EXEC_ORDER.filter((k) => counts[k]).map((k) => k + " " + counts[k]).join(", ") },
            EXEC_ORDER.filter((k) => counts[k]).map((k) =>
                h("span", { class: "seg s-" + k, style: "width:" + (100 * counts[k] / Math.max(total, 1)).toFixed(2) + "%" })));
    }
    function legend(counts) {
        return h("div", { class: "legend" }, EXEC_ORDER.map((k) =>
            h("span", { class: "lg" }, h("i", { class: "s-" + k }), k + " ", h("b", {}, num(counts[k])))));
    }
    function meter(frac) {
        return h("div", { class: "meter" }, h("span", { style: "width:" + (100 * frac).toFixed(1) + "%" }));
    }

    /* Line chart: series [{name, cls, points: [[t, v]...]}] over [t0, t1], values 0..ymax. */
    function chart(series, t0, t1, ymax) {
        const NS = "http://www.w3.org/2000/svg", W = 640, H = 220, L = 48, R = 12, T = 12, B = 28;
        const svg = document.createElementNS(NS, "svg");
        svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
        svg.setAttribute("class", "chart");
        const add = (tag, a, text) => {
            const e = document.createElementNS(NS, tag);
            for (const [k, v] of Object.entries(a)) e.setAttribute(k, v);
            if (text !== undefined) e.textContent = text;
            svg.append(e);
            return e;
        };
        t1 = Math.max(t1, t0 + 1000);
        ymax = Math.max(ymax, 1);
        const x = (t) => L + (W - L - R) * (t - t0) / (t1 - t0), y = (v) => H - B - (H - T - B) * v / ymax;
        for (let i = 0; i <= 4; i++) {
            const v = Math.round(ymax * i / 4);
            add("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" });
            add("text", { x: L - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, num(v));
        }
        for (let i = 0; i <= 4; i++) {
            const t = t0 + (t1 - t0) * i / 4;
            add("text", { x: x(t), y: H - 8, class: "axis", "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" },
                time(t).slice(11));
        }
        for (const s of series) {
            if (!s.points.length) continue;
            let d = "";
            let prev = 0;
            d += `M${x(t0).toFixed(1)},${y(0).toFixed(1)}`;
            for (const [t, v] of s.points) {
                d += ` L${x(t).toFixed(1)},${y(prev).toFixed(1)} L${x(t).toFixed(1)},${y(v).toFixed(1)}`;
                prev = v;
            }
            d += ` L${x(t1).toFixed(1)},${y(prev).toFixed(1)}`;
            add("path", { d, class: "line " + s.cls });
        }
        return svg;
    }

    /* kind: error | warn | ok; stays until dismissed or the page changes. */
    function banner(kind, text) {
        const b = document.getElementById("banner");
        if (!text) { b.hidden = true; return; }
        b.className = "banner-" + kind;
        b.replaceChildren(h("span", {}, text), h("button", { class: "link", onclick: () => { b.hidden = true; } }, "dismiss"));
        b.hidden = false;
    }

    return { h, time, ago, duration, timeCell, bytes, num, badge, table, facts, stack, legend, meter, chart, banner, EXEC_ORDER };
})();
