// Differential test: one script of requests sent to the official Starfish
// server (official.mjs, pinned in package.json) and to the starfish-rs release
// binary, both started from the same config; every answer is compared (status,
// JSON body, the headers a client reads). Covers every EXTENDED feature of the
// official config (appendOnly, listable, rateLimit, objectSchema, ttlMs,
// fieldPermissions, restrictions, revocations, GET /config) with its error
// cases, plus hostile input (malformed bodies, traversal, bad and replayed
// signatures).
//
//   node run.mjs [--only PROFILE] [--verbose]
//
// STARFISH_BIN: our binary (default ../../../target/release/starfish).
// differences.json lists the documented differences (step name and the reason,
// each also in COMPATIBILITY.md); any other difference, or a documented one
// that no longer differs, fails the run.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  buildRevocationList,
  signAppendAuthor,
  signDocAuthor,
  signRequest,
  stableStringify,
} from "@drakkar.software/starfish-protocol";
import { bootstrapRootIdentity, generateDeviceKeys, mintDeviceCap } from "@drakkar.software/starfish-identities";
import { ConflictError, StarfishClient, StarfishHttpError, fetchServerConfig } from "@drakkar.software/starfish-client";

const here = path.dirname(fileURLToPath(import.meta.url));
const bin = path.resolve(here, process.env.STARFISH_BIN ?? "../../../target/release/starfish");
const args = process.argv.slice(2);
const only = args.includes("--only") ? args[args.indexOf("--only") + 1] : null;
const verbose = args.includes("--verbose");
const documented = new Map(
  JSON.parse(readFileSync(path.join(here, "differences.json"), "utf8")).differences.map((d) => [d.step, d.reason]),
);

const work = mkdtempSync(path.join(tmpdir(), "starfish-differential-"));
const children = new Set();
const killAll = () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
};
process.on("exit", () => {
  killAll();
  rmSync(work, { recursive: true, force: true });
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130));

// ---------------------------------------------------------------------------
// Servers

function start(cmd, argv, env, pattern) {
  const child = spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  let out = "";
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${cmd} did not start within 30 s:\n${out}`)), 30_000);
    const onData = (d) => {
      out += d;
      const m = pattern.exec(out);
      if (m) {
        clearTimeout(t);
        resolve({ port: Number(m[1]), child });
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code) => {
      clearTimeout(t);
      reject(new Error(`${cmd} exited ${code}:\n${out}`));
    });
  });
}

function stop(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const t = setTimeout(() => child.kill("SIGKILL"), 5000);
    child.once("exit", () => {
      clearTimeout(t);
      children.delete(child);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

async function startBoth(profile) {
  const config = path.join(work, `${profile.name}.json`);
  writeFileSync(config, JSON.stringify(profile.config));
  const opts = { ...(profile.official ?? {}) };
  const ours = ["serve", "--listen", "127.0.0.1:0", "--memory", "--config", config, "--log-level", "info"];
  if (profile.revocations) {
    const file = path.join(work, `${profile.name}-revocations.json`);
    writeFileSync(file, JSON.stringify(profile.revocations));
    opts.revocations = file;
    ours.push("--revocations", file);
  }
  if (opts.configEndpoint) ours.push("--config-endpoint", opts.configEndpoint);
  if (opts.allowAnonymous === false) ours.push("--no-anonymous");
  if (profile.root) {
    // Served at the root: the official client signs the full path.
    opts.mount = "";
    ours.push("--base-path", "/");
  }
  const official = await start(
    "node",
    [path.join(here, "official.mjs")],
    { DIFF_CONFIG: config, DIFF_OPTIONS: JSON.stringify(opts) },
    /LISTENING (\d+)/,
  );
  const rs = await start(bin, ours, {}, /listening on https?:\/\/127\.0\.0\.1:(\d+)/);
  return { official, ours: rs };
}

// ---------------------------------------------------------------------------
// Requests

const CLIENT_HEADERS = [
  "content-type",
  "cache-control",
  "etag",
  "retry-after",
  "x-ratelimit-limit",
  "x-ratelimit-remaining",
  "x-ratelimit-reset",
  "allow",
  "location",
];

/** The headers of a signed request by `who` to the server on `port`. */
async function signedHeaders(who, port, method, target, body) {
  const { sig, ts, nonce } = await signRequest(
    { method, pathAndQuery: target, body: body ?? "", host: `127.0.0.1:${port}` },
    who.priv,
  );
  const h = {
    Authorization: `Cap ${Buffer.from(stableStringify(who.cap), "utf8").toString("base64")}`,
    "X-Starfish-Sig": sig,
    "X-Starfish-Ts": String(ts),
    "X-Starfish-Nonce": nonce,
  };
  if (who.pub) h["X-Starfish-Pub"] = who.pub;
  return h;
}

/**
 * An official client step: { name, client(c, base), as }. `c` is a
 * StarfishClient on the server (signing as `as` when given); the value the
 * call resolves to, or the error it throws (class, status, JSON body), is
 * what is compared.
 */
async function sendClient(port, step) {
  // Client steps run on a profile served at the root: a `baseUrl` ending in
  // a mount makes the client sign the path after it, which only ours
  // accepts (COMPATIBILITY.md, "Request signature behind a mount").
  const base = `http://127.0.0.1:${port}`;
  const who = step.as;
  const c = new StarfishClient({
    baseUrl: base,
    capProvider: who ? { getCap: async () => ({ cap: who.cap, devEdPrivHex: who.priv }) } : undefined,
  });
  try {
    return { value: normalise(await step.client(c, base)) };
  } catch (e) {
    const kind = e instanceof ConflictError ? "ConflictError" : e instanceof StarfishHttpError ? "StarfishHttpError" : e.constructor.name;
    let body = e.body;
    try {
      body = JSON.parse(e.body);
    } catch {}
    return { error: kind, status: e.status, body: normalise(body), currentHash: e.currentHash };
  }
}

/**
 * One step: { name, method, path, body, as, headers, ctype, tamper, replay, wait }.
 * body: an object (sent as JSON) or a string (sent as is). as: an identity.
 * tamper(headers): changes a signed request's headers after signing.
 * replay: the name of an earlier step whose exact request is sent again.
 */
async function send(port, step, sent) {
  if (step.client) return sendClient(port, step);
  let method = step.method ?? "GET";
  let target = step.path;
  let body = step.body === undefined ? undefined : typeof step.body === "string" ? step.body : JSON.stringify(step.body);
  let headers = {};
  if (step.replay) {
    ({ method, target, body, headers } = sent.get(step.replay));
  } else {
    if (body !== undefined) headers["Content-Type"] = step.ctype ?? "application/json";
    if (step.as) Object.assign(headers, await signedHeaders(step.as, port, method, target, body));
    if (step.tamper) step.tamper(headers);
    Object.assign(headers, step.headers ?? {});
  }
  sent.set(step.name, { method, target, body, headers });
  const r = await fetch(`http://127.0.0.1:${port}${target}`, { method, headers, body });
  const text = await r.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = { "<text>": text };
  }
  const hs = {};
  for (const h of CLIENT_HEADERS) {
    const v = r.headers.get(h);
    if (v !== null) hs[h] = h === "content-type" ? v.replace(/\s+/g, "").toLowerCase() : v;
  }
  return { status: r.status, headers: hs, body: normalise(json) };
}

const T0 = Date.now();
/** Server-clock times (a `timestamp`/`ts` number within a day of now) masked. */
function normalise(v, key) {
  if (Array.isArray(v)) return v.map((x) => normalise(x));
  if (v && typeof v === "object") {
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = normalise(x, k);
    return o;
  }
  if ((key === "timestamp" || key === "ts" || key === "checkpoint") && typeof v === "number" && Math.abs(v - T0) < 86_400_000) {
    return "<server time>";
  }
  return v;
}

// ---------------------------------------------------------------------------
// Identities and configs

const fresh = () => Math.random().toString(36).slice(2, 10);
const alice = await bootstrapRootIdentity(`differential alice ${fresh()}`);
const bob = await bootstrapRootIdentity(`differential bob ${fresh()}`);
const carol = await bootstrapRootIdentity(`differential carol ${fresh()}`);
const root = (c) => ({ cap: c.capCert, priv: c.device.edPriv, userId: c.userId, edPub: c.device.edPub });
const A = root(alice);
const B = root(bob);
const C = root(carol);
async function device(owner, scope) {
  const keys = generateDeviceKeys();
  const cap = await mintDeviceCap(owner.priv, owner.edPub, { edPubHex: keys.edPub, kemPubHex: keys.kemPub }, scope);
  return { cap, priv: keys.edPriv, userId: owner.userId, sub: keys.edPub };
}
const ADMIN = await device(A, { ops: ["read", "write"], collections: ["*", "admin"] });
const READER = await device(A, { ops: ["read"], collections: ["*"] });
const NOTES_ONLY = await device(A, { ops: ["read", "write"], collections: ["notes"] });
const C1 = await device(C, { ops: ["read", "write"], collections: ["*"] });
const C2 = await device(C, { ops: ["read", "write"], collections: ["*"] });
const C3 = await device(C, { ops: ["read", "write"], collections: ["*"] });
const EXPIRED = {
  ...A,
  cap: await mintDeviceCap(A.priv, A.edPub, { edPubHex: A.edPub, kemPubHex: alice.device.kemPub }, { ops: ["read"], collections: ["*"] }, {
    nbf: Math.floor(Date.now() / 1000) - 7200,
    ttlSec: 60,
  }),
};

const PROFILE_SCHEMA = {
  type: "object",
  required: ["name"],
  additionalProperties: false,
  properties: {
    name: { type: "string", minLength: 1, maxLength: 20 },
    age: { type: "integer", minimum: 0, maximum: 150 },
    secret: { type: "string" },
    role: { type: "string", enum: ["user", "admin"] },
    tags: { type: "array", items: { type: "string" }, maxItems: 3 },
    email: { type: "string", pattern: "^[^@]+@[^@]+$" },
  },
};
const pub = (name, storagePath, extra = {}) => ({
  name,
  storagePath,
  readRoles: ["public"],
  writeRoles: ["public"],
  encryption: "none",
  maxBodyBytes: 4000,
  ...extra,
});
const featuresConfig = {
  version: 1,
  rateLimit: { windowMs: 60_000, maxRequests: 100_000 },
  restrictions: [{ mode: "deny", identities: [B.userId], actions: ["push"] }],
  collections: [
    pub("notes", "notes/{id}", { listable: true, maxBodyBytes: 2000 }),
    pub("days", "days/{user}/{day}", { listable: true }),
    { name: "private", storagePath: "users/{identity}/private/{id}", readRoles: ["self"], writeRoles: ["self"], encryption: "none", maxBodyBytes: 4000, listable: true },
    pub("log", "log/{id}", { appendOnly: { type: "by_timestamp", field: "items", maxItems: 5, requireAuthorSignature: false, allowFull: true, maxPullLimit: 3 } }),
    pub("nofull", "nofull/{id}", { appendOnly: { type: "by_timestamp", requireAuthorSignature: false, allowFull: false } }),
    pub("slog", "slog/{id}", { appendOnly: { type: "by_timestamp" } }),
    pub("chunk", "chunk/{id}", { appendOnly: { type: "by_timestamp", chunkSize: 2, requireAuthorSignature: false, maxCheckpointAgeMs: 3_600_000 } }),
    pub("queue", "queue/{id}", { appendOnly: { type: "by_timestamp", persist: false, requireAuthorSignature: false } }),
    {
      name: "profile",
      storagePath: "users/{identity}/profile",
      readRoles: ["self"],
      writeRoles: ["self"],
      encryption: "none",
      maxBodyBytes: 4000,
      objectSchema: PROFILE_SCHEMA,
      fieldPermissions: { secret: { readRoles: ["cap:read:admin"] }, role: { writeRoles: ["cap:write:admin"] } },
    },
    pub("board", "board/{id}", { fieldPermissions: { mine: { readRoles: ["self"] }, locked: { writeRoles: ["cap:write:admin"] } } }),
    pub("vip", "vip/{id}", { restrictions: [{ mode: "allow", identities: [A.userId] }] }),
    pub("nopull", "nopull/{id}", { restrictions: [{ mode: "deny", identities: [A.userId], actions: ["pull"] }] }),
    pub("eph", "eph/{id}", { ttlMs: 400, forceFullFetch: true }),
    pub("misc", "misc/{id}", { cacheDurationMs: 30_000 }),
    pub("drop", "drop/{id}", { pushOnly: true }),
    pub("ro", "ro/{id}", { pullOnly: true }),
    { name: "vault", storagePath: "users/{identity}/vault", readRoles: ["self"], writeRoles: ["self"], encryption: "none", maxBodyBytes: 4000, rootOnly: true },
    { name: "sealed", storagePath: "sealed/{identity}/{id}", readRoles: ["self"], writeRoles: ["self"], encryption: "delegated", maxBodyBytes: 4000, keyringPath: "sealed/{identity}/_kr" },
    pub("limited", "limited/{id}", { rateLimit: { pull: { maxRequests: 2, windowMs: 60_000 } } }),
  ],
  namespaces: {
    team: {
      restrictions: [{ mode: "deny", identities: [C.userId] }],
      collections: [pub("docs", "docs/{id}", { listable: true })],
    },
  },
};

const rateConfig = {
  version: 1,
  rateLimit: { windowMs: 60_000, maxRequests: 40 },
  collections: [
    pub("a", "a/{id}", { listable: true, rateLimit: { push: { maxRequests: 3, windowMs: 60_000 }, list: { maxRequests: 2, windowMs: 60_000 } } }),
    pub("b", "b/{id}", { rateLimit: { maxRequests: 4, windowMs: 60_000, bucket: "identity" } }),
    pub("c", "c/{id}", { rateLimit: { pull: { identity: { maxRequests: 2, windowMs: 60_000 }, ip: { maxRequests: 100, windowMs: 60_000 } } } }),
    pub("d", "d/{id}"),
    pub("e", "e/{id}", { rateLimit: { maxRequests: 2, windowMs: 60_000, bucket: "ip" } }),
    pub("f", "f/{id}", { rateLimit: { pull: { maxRequests: 2, windowMs: 60_000, bucket: "identity+ip" } } }),
  ],
};

// ---------------------------------------------------------------------------
// Steps

const T = Date.now() - 60_000; // client-chosen append timestamps: recent, deterministic
const get = (name, p, as, extra = {}) => ({ name, method: "GET", path: `/v1${p}`, as, ...extra });
const post = (name, p, body, as, extra = {}) => ({ name, method: "POST", path: `/v1${p}`, body, as, ...extra });
const authorDoc = (key, data) => ({ data, ...signDocAuthor(key, data, A.edPub, A.priv) });
const authorAppend = (key, data, ts) => ({ data, ts, ...signAppendAuthor(key, data, A.edPub, A.priv) });
const longId = "x".repeat(300);

function featureSteps() {
  const s = [];
  // --- plain documents, optimistic concurrency, hostile bodies
  s.push(post("doc create", "/push/notes/n1", { data: { a: 1, b: [1, 2], c: { z: 1, y: 2 } }, baseHash: null }));
  s.push(get("doc pull", "/pull/notes/n1"));
  s.push(post("doc create again", "/push/notes/n1", { data: { a: 2 }, baseHash: null }));
  s.push(post("doc stale base", "/push/notes/n1", { data: { a: 2 }, baseHash: "0".repeat(64) }));
  s.push(post("doc bad base type", "/push/notes/n1", { data: { a: 2 }, baseHash: 5 }));
  s.push(post("doc missing data", "/push/notes/n2", { baseHash: null }));
  s.push(post("doc array data", "/push/notes/n2", { data: [1, 2] }));
  s.push(post("doc string data", "/push/notes/n2", { data: "x" }));
  s.push(post("doc malformed", "/push/notes/n2", "{\"data\":"));
  s.push(post("doc not object", "/push/notes/n2", "[1]"));
  s.push(post("doc wrong ctype", "/push/notes/n2", { data: { a: 1 } }, undefined, { ctype: "text/plain" }));
  s.push(post("doc too large", "/push/notes/n2", { data: { big: "y".repeat(3000) } }));
  s.push(post("doc proto keys", "/push/notes/n3", { data: { __proto__x: 1, constructor: 2, ok: 3, nested: { prototype: 1, keep: 2 } } }));
  s.push(get("doc proto keys pull", "/pull/notes/n3"));
  s.push(post("doc unicode", "/push/notes/n4", "{\"data\":{\"é\":\"\\ud83d\\ude00\",\"n\":1e21,\"m\":-0,\"f\":0.1}}"));
  s.push(get("doc unicode pull", "/pull/notes/n4"));
  s.push(get("doc missing", "/pull/notes/none"));
  s.push(get("doc traversal dots", "/pull/notes/.."));
  s.push(get("doc traversal encoded", "/pull/notes/%2e%2e"));
  s.push(get("doc traversal slash", "/pull/notes/a%2Fb"));
  s.push(post("doc traversal push", "/push/notes/%2e%2e", { data: { a: 1 } }));
  s.push(get("doc long id pull", `/pull/misc/${longId}`));
  s.push(post("doc long id push", `/push/misc/${longId}`, { data: { a: 1 } }));
  s.push(get("doc long id pull after push", `/pull/misc/${longId}`));
  s.push(get("unknown route", "/pull/nothing/x"));
  s.push(get("health", "/health"));
  s.push(post("doc author proof", "/push/notes/n5", authorDoc("notes/n5", { signed: true })));
  s.push(get("doc author proof pull", "/pull/notes/n5"));
  s.push(post("doc author wrong key", "/push/notes/n6", authorDoc("notes/other", { signed: true })));
  s.push(post("doc author incomplete", "/push/notes/n6", { data: { x: 1 }, authorPubkey: A.edPub }));
  // --- listable
  for (const id of ["b", "a", "c", "a-1", "Z"]) s.push(post(`list seed ${id}`, `/push/days/u1/${id}`, { data: { id } }));
  s.push(post("list seed other user", "/push/days/u2/x", { data: {} }));
  s.push(get("list all", "/list/days/u1"));
  s.push(get("list limit 2", "/list/days/u1?limit=2"));
  s.push(get("list after a", "/list/days/u1?after=a"));
  s.push(get("list after a limit 1", "/list/days/u1?after=a&limit=1"));
  s.push(get("list limit 0", "/list/days/u1?limit=0"));
  s.push(get("list limit negative", "/list/days/u1?limit=-1"));
  s.push(get("list limit text", "/list/days/u1?limit=abc"));
  s.push(get("list limit padded", "/list/days/u1?limit=01"));
  s.push(get("list limit huge", "/list/days/u1?limit=5000"));
  s.push(get("list empty prefix", "/list/days/nobody"));
  s.push(get("list single-param collection", "/list/notes"));
  s.push(get("list not listable", "/list/board"));
  s.push(get("list private anonymous", `/list/users/${A.userId}/private`));
  s.push(post("list private seed", `/push/users/${A.userId}/private/p1`, { data: { s: 1 } }, A));
  s.push(get("list private self", `/list/users/${A.userId}/private`, A));
  s.push(get("list private other", `/list/users/${A.userId}/private`, B));
  s.push(get("list traversal", "/list/days/%2e%2e"));
  s.push(get("list namespace", "/team/list/docs"));
  // --- appendOnly: log (maxItems 5, allowFull, maxPullLimit 3)
  s.push(post("append 1", "/push/log/l1", { data: { m: 1 }, ts: T + 1 }));
  s.push(post("append same ts", "/push/log/l1", { data: { m: 2 }, ts: T + 1 }));
  s.push(post("append older ts", "/push/log/l1", { data: { m: 2 }, ts: T }));
  s.push(post("append negative ts", "/push/log/l1", { data: { m: 2 }, ts: -1 }));
  s.push(post("append fractional ts", "/push/log/l1", { data: { m: 2 }, ts: 1.5 }));
  s.push(post("append string ts", "/push/log/l1", { data: { m: 2 }, ts: "5" }));
  s.push(post("append future ts", "/push/log/l1", { data: { m: 2 }, ts: Date.now() + 3_600_000 }));
  s.push(post("append array data", "/push/log/l1", { data: [1] }));
  s.push(post("append no data", "/push/log/l1", { ts: T + 2 }));
  s.push(post("append baseHash", "/push/log/l1", { data: { m: 2 }, ts: T + 2, baseHash: "x" }));
  for (let i = 2; i <= 5; i++) s.push(post(`append ${i}`, "/push/log/l1", { data: { m: i }, ts: T + i }));
  s.push(post("append over maxItems", "/push/log/l1", { data: { m: 6 }, ts: T + 6 }));
  s.push(get("append pull default", "/pull/log/l1"));
  s.push(get("append pull full", "/pull/log/l1?full=true"));
  s.push(get("append pull full=1", "/pull/log/l1?full=1"));
  s.push(get("append pull last 2", "/pull/log/l1?last=2"));
  s.push(get("append pull last 9", "/pull/log/l1?last=9"));
  s.push(get("append pull last 0", "/pull/log/l1?last=0"));
  s.push(get("append pull last -1", "/pull/log/l1?last=-1"));
  s.push(get("append pull last text", "/pull/log/l1?last=abc"));
  s.push(get("append pull limit 1", "/pull/log/l1?limit=1"));
  s.push(get("append pull limit 7", "/pull/log/l1?limit=7"));
  s.push(get("append pull checkpoint", `/pull/log/l1?checkpoint=${T + 2}`));
  s.push(get("append pull checkpoint limit", `/pull/log/l1?checkpoint=${T + 1}&limit=2`));
  s.push(get("append pull checkpoint 0", "/pull/log/l1?checkpoint=0"));
  s.push(get("append pull checkpoint text", "/pull/log/l1?checkpoint=x"));
  s.push(get("append pull checkpoint negative", "/pull/log/l1?checkpoint=-5"));
  s.push(get("append pull checkpoint padded", "/pull/log/l1?checkpoint=01"));
  s.push(get("append pull missing", "/pull/log/none?last=3"));
  s.push(post("append nofull 1", "/push/nofull/x", { data: { k: 1 }, ts: T + 1 }));
  s.push(get("append nofull full", "/pull/nofull/x?full=true"));
  s.push(get("append nofull default", "/pull/nofull/x"));
  // --- appendOnly with author signatures (requireAuthorSignature default)
  s.push(post("slog unsigned", "/push/slog/s1", { data: { hi: 1 }, ts: T + 1 }));
  s.push(post("slog pubkey only", "/push/slog/s1", { data: { hi: 1 }, ts: T + 1, authorPubkey: A.edPub }));
  s.push(post("slog bad sig type", "/push/slog/s1", { data: { hi: 1 }, ts: T + 1, authorPubkey: A.edPub, authorSignature: 5 }));
  s.push(post("slog other key", "/push/slog/s1", authorAppend("slog/other", { hi: 1 }, T + 1)));
  s.push(post("slog tampered data", "/push/slog/s1", { ...authorAppend("slog/s1", { hi: 1 }, T + 1), data: { hi: 2 } }));
  s.push(post("slog signed", "/push/slog/s1", authorAppend("slog/s1", { hi: 1 }, T + 1)));
  s.push(post("slog signed nested", "/push/slog/s1", authorAppend("slog/s1", { hi: 2, n: { b: 1, a: [1, "x"] } }, T + 2)));
  s.push(post("slog signed by presenter", "/push/slog/s2", authorAppend("slog/s2", { hi: 3 }, T + 3), A));
  s.push(post("slog signed not presenter", "/push/slog/s2", authorAppend("slog/s2", { hi: 4 }, T + 4), B));
  s.push(get("slog pull", "/pull/slog/s1?full=true"));
  // --- chunked log (chunkSize 2, maxCheckpointAgeMs one hour)
  for (let i = 1; i <= 7; i++) s.push(post(`chunk ${i}`, "/push/chunk/c1", { data: { i }, ts: T + i }));
  s.push(get("chunk pull", "/pull/chunk/c1"));
  s.push(get("chunk pull last 3", "/pull/chunk/c1?last=3"));
  s.push(get("chunk pull checkpoint", `/pull/chunk/c1?checkpoint=${T + 3}`));
  s.push(get("chunk pull old checkpoint", `/pull/chunk/c1?checkpoint=${T - 7_200_000}`));
  s.push(get("chunk pull full", "/pull/chunk/c1?full=true"));
  // --- persist: false
  s.push(post("queue 1", "/push/queue/q1", { data: { job: 1 }, ts: T + 9 }));
  s.push(post("queue same ts", "/push/queue/q1", { data: { job: 1 }, ts: T + 9 }));
  s.push(post("queue bad data", "/push/queue/q1", { data: 3 }));
  s.push(get("queue pull", "/pull/queue/q1?last=3"));
  // --- objectSchema
  const prof = `/users/${A.userId}/profile`;
  const bad = [{}, { name: "" }, { name: "A", age: -1 }, { name: "A", age: 1.5 }, { name: "A", extra: 1 }, { name: 7 },
    { name: "A", role: "root" }, { name: "A", tags: ["a", "b", "c", "d"] }, { name: "A", tags: [1] }, { name: "A", email: "nope" },
    { name: "x".repeat(21) }, { name: "A", age: 151 }];
  bad.forEach((data, i) => s.push(post(`schema invalid ${i}`, `/push${prof}`, { data }, A)));
  s.push(post("schema valid", `/push${prof}`, { data: { name: "Alice", age: 30, secret: "s", tags: ["a"], email: "a@b" } }, A));
  s.push(post("schema anonymous", `/push${prof}`, { data: { name: "X" } }));
  s.push(post("schema other user", `/push${prof}`, { data: { name: "X" } }, B));
  // --- fieldPermissions
  s.push(get("fields self pull", `/pull${prof}`, A));
  s.push(get("fields admin pull", `/pull${prof}`, ADMIN));
  s.push(get("fields reader pull", `/pull${prof}`, READER));
  s.push(get("fields anonymous pull", `/pull${prof}`));
  s.push(post("fields write protected", `/push${prof}`, { data: { name: "A", role: "admin" }, baseHash: "" }, A));
  s.push(post("fields write admin stale", `/push${prof}`, { data: { name: "A", role: "admin", secret: "s" }, baseHash: "0".repeat(64) }, ADMIN));
  s.push(post("board seed", "/push/board/b1", { data: { mine: 1, all: 2 } }));
  s.push(get("board anonymous", "/pull/board/b1"));
  s.push(get("board alice", "/pull/board/b1", A));
  s.push(post("board locked anonymous", "/push/board/b2", { data: { locked: 1 } }));
  s.push(post("board locked admin", "/push/board/b2", { data: { locked: 1 } }, ADMIN));
  s.push(get("board b2", "/pull/board/b2"));
  // --- restrictions
  s.push(post("restrict bob push", "/push/notes/r1", { data: { x: 1 } }, B));
  s.push(get("restrict bob pull", "/pull/notes/n1", B));
  s.push(get("restrict vip anonymous", "/pull/vip/v"));
  s.push(get("restrict vip bob", "/pull/vip/v", B));
  s.push(get("restrict vip alice", "/pull/vip/v", A));
  s.push(post("restrict vip alice push", "/push/vip/v", { data: { ok: 1 } }, A));
  s.push(get("restrict nopull alice", "/pull/nopull/x", A));
  s.push(post("restrict nopull alice push", "/push/nopull/x", { data: { ok: 1 } }, A));
  s.push(get("restrict nopull anonymous", "/pull/nopull/x"));
  s.push(post("restrict namespace carol", "/team/push/docs/d1", { data: { x: 1 } }, C));
  s.push(post("restrict namespace alice", "/team/push/docs/d1", { data: { x: 1 } }, A));
  s.push(get("restrict namespace carol pull", "/team/pull/docs/d1", C));
  s.push(get("restrict namespace anonymous pull", "/team/pull/docs/d1"));
  // --- ttlMs
  s.push(post("ttl push", "/push/eph/t1", { data: { short: 1 } }));
  s.push(get("ttl pull fresh", "/pull/eph/t1"));
  s.push(post("ttl push 2", "/push/eph/t2", { data: { short: 2 } }));
  s.push(get("ttl pull expired", "/pull/eph/t1", undefined, { wait: 700 }));
  s.push(post("ttl push over expired null base", "/push/eph/t1", { data: { again: 1 }, baseHash: null }));
  s.push(get("ttl pull again", "/pull/eph/t1"));
  // --- pushOnly, pullOnly, rootOnly, cacheDurationMs
  s.push(post("pushOnly push", "/push/drop/d1", { data: { x: 1 } }));
  s.push(get("pushOnly pull", "/pull/drop/d1"));
  s.push(post("pullOnly push", "/push/ro/r1", { data: { x: 1 } }));
  s.push(get("pullOnly pull", "/pull/ro/r1"));
  s.push(post("rootOnly root push", `/push/users/${A.userId}/vault`, { data: { k: 1 } }, A));
  s.push(post("rootOnly device push", `/push/users/${A.userId}/vault`, { data: { k: 2 } }, ADMIN));
  s.push(get("rootOnly device pull", `/pull/users/${A.userId}/vault`, READER));
  s.push(get("rootOnly root pull", `/pull/users/${A.userId}/vault`, A));
  s.push(get("rootOnly anonymous pull", `/pull/users/${A.userId}/vault`));
  s.push(post("cacheDuration push", "/push/misc/m1", { data: { c: 1 } }));
  s.push(get("cacheDuration pull", "/pull/misc/m1"));
  // --- per-collection rate limit (pull 2 per minute)
  for (let i = 1; i <= 4; i++) s.push(get(`ratelimit limited pull ${i}`, "/pull/limited/x"));
  s.push(post("ratelimit limited push", "/push/limited/x", { data: { p: 1 } }));
  // --- signatures and caps
  s.push(get("sig valid", `/pull/users/${A.userId}/private/p1`, A));
  s.push(get("sig replay", "", undefined, { replay: "sig valid" }));
  s.push(get("sig tampered", `/pull/users/${A.userId}/private/p1`, A, { tamper: (h) => (h["X-Starfish-Sig"] = Buffer.alloc(64, 1).toString("base64")) }));
  s.push(get("sig old ts", `/pull/users/${A.userId}/private/p1`, A, { tamper: (h) => (h["X-Starfish-Ts"] = String(Date.now() - 3_600_000)) }));
  s.push(get("sig bad nonce", `/pull/users/${A.userId}/private/p1`, A, { tamper: (h) => (h["X-Starfish-Nonce"] = "!!") }));
  s.push(get("sig missing sig", `/pull/users/${A.userId}/private/p1`, A, { tamper: (h) => delete h["X-Starfish-Sig"] }));
  s.push(get("cap garbage", `/pull/users/${A.userId}/private/p1`, undefined, { headers: { Authorization: "Cap !!!" } }));
  s.push(get("cap not json", `/pull/users/${A.userId}/private/p1`, undefined, { headers: { Authorization: `Cap ${Buffer.from("nope").toString("base64")}` } }));
  s.push(get("cap bearer", `/pull/users/${A.userId}/private/p1`, undefined, { headers: { Authorization: "Bearer x" } }));
  s.push(get("cap expired", `/pull/users/${A.userId}/private/p1`, EXPIRED));
  s.push(get("cap wrong collection", `/pull/users/${A.userId}/private/p1`, NOTES_ONLY));
  s.push(get("cap notes collection", "/pull/notes/n1", NOTES_ONLY));
  s.push(post("cap read-only push", `/push/users/${A.userId}/private/p2`, { data: { x: 1 } }, READER));
  s.push(get("cap device self", `/pull/users/${A.userId}/private/p1`, READER));
  // --- batch pull over extended collections (GET /batch/pull?collections=&params=)
  const enc = (o) => encodeURIComponent(JSON.stringify(o));
  const batch = (name, cols, params, as, appendParams) =>
    get(name, `/batch/pull?collections=${cols.join(",")}&params=${enc(params)}` + (appendParams ? `&appendParams=${enc(appendParams)}` : ""), as);
  s.push(batch("batch notes+board", ["notes", "board"], { notes: [{ id: "n1" }, { id: "none" }], board: [{ id: "b1" }] }));
  s.push(batch("batch board alice", ["board"], { board: [{ id: "b1" }] }, A));
  s.push(batch("batch append log", ["log"], { log: [{ id: "l1" }] }, undefined, { log: [{ last: 2 }] }));
  s.push(batch("batch append since", ["chunk"], { chunk: [{ id: "c1" }] }, undefined, { chunk: [{ since: T + 4 }] }));
  s.push(batch("batch ttl", ["eph"], { eph: [{ id: "t1" }, { id: "t2" }] }));
  s.push(batch("batch restricted anonymous", ["vip"], { vip: [{ id: "v" }] }));
  s.push(batch("batch restricted bob", ["vip", "notes"], { vip: [{ id: "v" }], notes: [{ id: "n1" }] }, B));
  s.push(batch("batch restricted alice", ["vip"], { vip: [{ id: "v" }] }, A));
  s.push(batch("batch profile fields self", ["profile"], { profile: [{ identity: A.userId }] }, A));
  s.push(batch("batch profile fields admin", ["profile"], { profile: [{ identity: A.userId }] }, ADMIN));
  s.push(batch("batch profile other user", ["profile"], { profile: [{ identity: A.userId }] }, B));
  s.push(batch("batch long id", ["misc"], { misc: [{ id: longId }] }));
  s.push(batch("batch traversal", ["notes"], { notes: [{ id: ".." }] }));
  s.push(batch("batch unknown collection", ["nothing"], { nothing: [{ id: "x" }] }));
  s.push(batch("batch bad params json", ["notes"], "{"));
  s.push(batch("batch namespace restricted", ["docs"], { docs: [{ id: "d1" }] }, C));
  s.push(get("batch namespace carol", `/team/batch/pull?collections=docs&params=${enc({ docs: [{ id: "d1" }] })}`, C));
  s.push(get("batch namespace anonymous", `/team/batch/pull?collections=docs&params=${enc({ docs: [{ id: "d1" }] })}`));
  return s;
}

function configSteps(tag) {
  return [
    get(`config ${tag} anonymous`, "/config"),
    get(`config ${tag} alice`, "/config", A),
    get(`config ${tag} bob`, "/config", B),
    get(`config ${tag} reader device`, "/config", READER),
    get(`config ${tag} notes-only device`, "/config", NOTES_ONLY),
    post(`config ${tag} post`, "/config", { x: 1 }),
    get(`config ${tag} bad sig`, "/config", A, { tamper: (h) => (h["X-Starfish-Sig"] = Buffer.alloc(64, 2).toString("base64")) }),
  ];
}

function revocationSteps() {
  const p = `/pull/users/${C.userId}/private/x`;
  return [
    post("revoked seed", `/push/users/${C.userId}/private/x`, { data: { v: 1 } }, C),
    get("revoked cap by nonce", p, C1),
    get("revoked other cap same issuer", p, C2),
    get("revoked subject", p, C3),
    post("revoked cap push", `/push/users/${C.userId}/private/y`, { data: { v: 1 } }, C1),
    get("revoked root still valid", p, C),
    get("revoked unrelated issuer", `/pull/users/${A.userId}/private/p1`, A),
  ];
}

function anonymousOffSteps() {
  return [
    get("noanon public pull", "/pull/notes/n1"),
    post("noanon public push", "/push/notes/n9", { data: { a: 1 } }),
    get("noanon private pull", `/pull/users/${A.userId}/private/p1`),
    get("noanon private list", `/list/users/${A.userId}/private`),
    get("noanon signed", `/pull/users/${A.userId}/private/p1`, A),
    get("noanon batch", `/batch/pull?collections=notes,private&params=${encodeURIComponent(JSON.stringify({ notes: [{ id: "n1" }], private: [{ identity: A.userId, id: "p1" }] }))}`),
    get("noanon config", "/config"),
  ];
}

function rateSteps() {
  const s = [];
  for (let i = 1; i <= 4; i++) s.push(post(`rate push a ${i}`, `/push/a/x${i}`, { data: { i } }));
  s.push(get("rate pull a after push limit", "/pull/a/x1"));
  for (let i = 1; i <= 3; i++) s.push(get(`rate list a ${i}`, "/list/a"));
  for (let i = 1; i <= 5; i++) s.push(get(`rate b anonymous ${i}`, `/pull/b/y`));
  for (let i = 1; i <= 5; i++) s.push(get(`rate b alice ${i}`, `/pull/b/y`, A));
  s.push(post("rate b push alice", "/push/b/y", { data: {} }, A));
  for (let i = 1; i <= 3; i++) s.push(get(`rate c alice ${i}`, "/pull/c/z", A));
  s.push(get("rate c bob", "/pull/c/z", B));
  s.push(get("rate c anonymous", "/pull/c/z"));
  const xff = (ip) => ({ headers: { "X-Forwarded-For": ip } });
  s.push(get("rate e ip 1", "/pull/e/1", undefined, xff("10.0.0.1")));
  s.push(get("rate e ip 2 other forwarded", "/pull/e/1", undefined, xff("10.0.0.2")));
  s.push(get("rate e ip 3 forwarded ignored", "/pull/e/1", undefined, xff("10.0.0.3")));
  s.push(get("rate e ip signed", "/pull/e/1", A));
  s.push(post("rate e push", "/push/e/1", { data: {} }));
  for (let i = 1; i <= 3; i++) s.push(get(`rate f identity+ip anonymous ${i}`, "/pull/f/1"));
  for (let i = 1; i <= 3; i++) s.push(get(`rate f identity+ip alice ${i}`, "/pull/f/1", A));
  // the global limit (40 per minute, per client) counts every request above
  for (let i = 1; i <= 20; i++) s.push(get(`rate global ${i}`, `/pull/d/g${i % 3}`));
  return s;
}

/** The official client's calls, against the features config. */
function clientSteps() {
  const s = [];
  const c = (name, client, as) => s.push({ name, client, as });
  const mine = (who, id) => `users/${who.userId}/private/${id}`;
  c("client config", (_, base) => fetchServerConfig(base));
  c("client push new", (x) => x.push("/push/notes/cl1", { a: 1, b: [1, 2] }, null));
  c("client pull", (x) => x.pull("/pull/notes/cl1"));
  c("client pull missing", (x) => x.pull("/pull/notes/none"));
  c("client push stale", (x) => x.push("/push/notes/cl1", { a: 2 }, "0".repeat(64)));
  c("client push create over existing", (x) => x.push("/push/notes/cl1", { a: 3 }, null));
  c("client push update", async (x) => {
    const cur = await x.pull("/pull/notes/cl1");
    return x.push("/push/notes/cl1", { a: 4 }, cur.hash);
  });
  c("client push too large", (x) => x.push("/push/notes/big", { s: "x".repeat(3000) }, null));
  c("client push restricted", (x) => x.push("/push/notes/cl2", { a: 1 }, null), B);
  c("client private push", (x) => x.push(`/push/${mine(A, "p1")}`, { secret: 1 }, null), A);
  c("client private pull", (x) => x.pull(`/pull/${mine(A, "p1")}`), A);
  c("client private pull other", (x) => x.pull(`/pull/${mine(A, "p1")}`), B);
  c("client private pull anonymous", (x) => x.pull(`/pull/${mine(A, "p1")}`));
  c("client schema invalid", (x) => x.push(`/push/users/${A.userId}/profile`, { name: "" }, null), A);
  c("client schema valid", (x) => x.push(`/push/users/${A.userId}/profile`, { name: "Al", secret: "s" }, null), A);
  c("client fields filtered", (x) => x.pull(`/pull/users/${A.userId}/profile`), A);
  c("client fields admin", (x) => x.pull(`/pull/users/${A.userId}/profile`), ADMIN);
  c("client batch pull many", (x) => x.batchPullMany("notes", [{ id: "cl1" }, { id: "none" }]));
  c("client pull-only push", (x) => x.push("/push/ro/1", { a: 1 }, null));
  c("client push-only pull", (x) => x.pull("/pull/drop/1"));
  for (let i = 1; i <= 3; i++) c(`client rate limited pull ${i}`, (x) => x.pull("/pull/limited/cl"));
  c("client ttl push", (x) => x.push("/push/eph/cl", { v: 1 }, null));
  s.push({ name: "client ttl pull expired", wait: 600, client: (x) => x.pull("/pull/eph/cl") });
  return s;
}

const profiles = [
  {
    name: "features",
    config: featuresConfig,
    steps: featureSteps,
  },
  {
    name: "config-public",
    config: featuresConfig,
    official: { configEndpoint: "public" },
    steps: () => configSteps("public"),
  },
  {
    name: "config-role-filtered",
    config: featuresConfig,
    official: { configEndpoint: "role-filtered" },
    steps: () => configSteps("role-filtered"),
  },
  {
    name: "revocations",
    config: featuresConfig,
    revocations: [
      buildRevocationList({ issEdPubHex: C.edPub, issEdPrivHex: C.priv, generation: 3,
        revoked: [{ sub: C1.sub, nonce: C1.cap.nonce, exp: C1.cap.exp }], revokedSubjects: [{ sub: C3.sub, exp: C3.cap.exp }] }),
    ],
    steps: revocationSteps,
  },
  {
    name: "anonymous-off",
    config: featuresConfig,
    official: { allowAnonymous: false },
    steps: anonymousOffSteps,
  },
  {
    name: "client",
    root: true,
    config: featuresConfig,
    official: { configEndpoint: "public" },
    steps: clientSteps,
  },
  {
    name: "rate-limits",
    config: rateConfig,
    steps: rateSteps,
  },
];

// ---------------------------------------------------------------------------
// Run

let total = 0;
let passed = 0;
let documentedSeen = 0;
const failures = [];
const seenNames = new Set();
for (const profile of profiles) {
  if (only && profile.name !== only) continue;
  const { official, ours } = await startBoth(profile);
  const sentO = new Map();
  const sentR = new Map();
  for (const step of profile.steps()) {
    if (seenNames.has(step.name)) throw new Error(`duplicate step name ${step.name}`);
    seenNames.add(step.name);
    if (step.wait) await new Promise((r) => setTimeout(r, step.wait));
    const o = await send(official.port, step, sentO);
    const r = await send(ours.port, step, sentR);
    total++;
    const same = JSON.stringify(o) === JSON.stringify(r);
    const doc = documented.get(step.name);
    if (same && !doc) {
      passed++;
      if (verbose) console.log(`ok   ${profile.name}: ${step.name} -> ${o.status ?? "value"} ${JSON.stringify(o).slice(0, 160)}`);
    } else if (!same && doc) {
      documentedSeen++;
      console.log(`doc  ${profile.name}: ${step.name} (documented: ${doc})`);
      if (verbose) console.log(`     official ${JSON.stringify(o)}\n     ours     ${JSON.stringify(r)}`);
    } else if (same && doc) {
      failures.push(`${step.name}: documented as a difference but both answered ${JSON.stringify(o)}`);
      console.log(`FAIL ${profile.name}: ${step.name}: no longer differs; remove it from differences.json`);
    } else {
      failures.push(`${step.name}:\n  official ${JSON.stringify(o)}\n  ours     ${JSON.stringify(r)}`);
      console.log(`FAIL ${profile.name}: ${step.name}\n  official ${JSON.stringify(o)}\n  ours     ${JSON.stringify(r)}`);
    }
  }
  await Promise.all([stop(official.child), stop(ours.child)]);
}
for (const name of documented.keys()) {
  if (!only && !seenNames.has(name)) failures.push(`differences.json names an unknown step: ${name}`);
}
console.log(
  `differential: ${total} steps, ${passed} passed, ${failures.length} failed, ${documentedSeen} documented differences`,
);
if (failures.length) process.exit(1);
