/* cbor.js — the little CBOR the console writes: the upload chunk map {sha256: text,
 * offset: uint, total: uint, data: bytes} of $CONTROL/ota/v1/file (RFC 8949 major types
 * 0, 2, 3, 5; definite lengths only). */
"use strict";
const Cbor = (() => {
    function head(major, n) {
        const m = major << 5;
        if (n < 24) return [m | n];
        if (n < 0x100) return [m | 24, n];
        if (n < 0x10000) return [m | 25, n >> 8, n & 0xff];
        if (n < 0x100000000) return [m | 26, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
        const hi = Math.floor(n / 0x100000000), lo = n >>> 0;
        return [m | 27, (hi >>> 24) & 0xff, (hi >> 16) & 0xff, (hi >> 8) & 0xff, hi & 0xff,
                (lo >>> 24) & 0xff, (lo >> 16) & 0xff, (lo >> 8) & 0xff, lo & 0xff];
    }
    function item(v, parts) {
        if (typeof v === "number") {
            parts.push(Uint8Array.from(head(0, v)));
        } else if (typeof v === "string") {
            const b = new TextEncoder().encode(v);
            parts.push(Uint8Array.from(head(3, b.length)), b);
        } else if (v instanceof Uint8Array) {
            parts.push(Uint8Array.from(head(2, v.length)), v);
        } else {
            const keys = Object.keys(v);
            parts.push(Uint8Array.from(head(5, keys.length)));
            for (const k of keys) { item(k, parts); item(v[k], parts); }
        }
    }
    function encode(v) {
        const parts = [];
        item(v, parts);
        const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        let off = 0;
        for (const p of parts) { out.set(p, off); off += p.length; }
        return out;
    }
    return { encode };
})();
