// Counting assertions. Every helper here is one "check"; the per-process total
// is appended to $INTEROP_COUNT_FILE on exit so run.sh can print
// "interop: N checks passed". Only checks that passed are counted.
import assert from "node:assert/strict";
import { appendFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";

let passed = 0;
process.on("exit", () => {
  const file = process.env.INTEROP_COUNT_FILE;
  if (file) appendFileSync(file, `${passed}\n`);
});

function count(fn) {
  fn();
  passed += 1;
}

export const check = {
  equal: (actual, expected, msg) => count(() => assert.equal(actual, expected, msg)),
  deepEqual: (actual, expected, msg) => count(() => assert.deepEqual(actual, expected, msg)),
  ok: (value, msg) => count(() => assert.ok(value, msg)),
  match: (value, re, msg) => count(() => assert.match(value, re, msg)),
  async rejects(promise, matcher, msg) {
    await assert.rejects(promise, matcher, msg);
    passed += 1;
  },
};

export const HEX64 = /^[0-9a-f]{64}$/;

/** Expect a JSON response with exactly this status and body object. */
export async function expectJson(res, status, body, msg = "") {
  const text = await res.text();
  check.equal(res.status, status, `${msg} status (body ${text})`);
  check.equal(res.headers.get("content-type"), "application/json", `${msg} content-type`);
  check.deepEqual(JSON.parse(text), body, `${msg} body`);
}

/** Exact JSON error body text `{"error":"..."}`. */
export async function expectError(res, status, message, msg = "") {
  const text = await res.text();
  check.equal(res.status, status, `${msg} status (body ${text})`);
  check.equal(res.headers.get("content-type"), "application/json", `${msg} content-type`);
  check.equal(text, JSON.stringify({ error: message }), `${msg} body`);
}

/** The framework-level plain-text 404 (wire.md §1.2). */
export async function expectText404(res, msg = "") {
  const text = await res.text();
  check.equal(res.status, 404, `${msg} status`);
  check.equal(res.headers.get("content-type"), "text/plain; charset=UTF-8", `${msg} content-type`);
  check.equal(text, "404 Not Found", `${msg} body`);
}

/**
 * A raw HTTP/1.1 request with a verbatim request-target (fetch/URL would
 * normalise dot segments and escapes before sending). Over TLS in a --tls
 * run (the certificate verified against NODE_EXTRA_CA_CERTS).
 */
export function rawRequest(port, method, target, { headers = {}, body } = {}) {
  headers = { ...headers };
  const has = (n) => Object.keys(headers).some((k) => k.toLowerCase() === n);
  if (body !== undefined && !has("content-length") && !has("transfer-encoding")) {
    headers["Content-Length"] = String(Buffer.byteLength(body));
  }
  return new Promise((resolve, reject) => {
    const proto = process.env.STARFISH_TLS_DIR ? https : http;
    const req = proto.request(
      { host: "127.0.0.1", port, method, path: target, headers, agent: false },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

let uniq = 0;
/** A fresh param value so tests never collide on document keys. */
export function fresh(prefix = "d") {
  uniq += 1;
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${uniq}`;
}
