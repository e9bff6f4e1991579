// Append-only collections on the wire: the official server (server.mjs) and the
// starfish-rs release binary, both on append-parity.json
// (../configs/append.json plus two chunked logs), get the same raw
// requests (appends with and without author proofs, every pull bound and its
// errors, maxItems, persist: false, batch appendParams); statuses and JSON bodies
// must be equal. Client-chosen `ts` values make hashes and element timestamps
// deterministic; only server-clock timestamps are masked (see normalise).
//
//   node append_parity.mjs   # STARFISH_BIN defaults to ../../../target/release/starfish
import { spawn } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { signAppendAuthor } from "@drakkar.software/starfish-protocol";

const here = path.dirname(fileURLToPath(import.meta.url));
const bin = path.resolve(here, process.env.STARFISH_BIN ?? "../../../target/release/starfish");
const config = path.resolve(here, "append-parity.json");
const children = [];
process.on("exit", () => children.forEach((c) => c.exitCode === null && c.kill("SIGKILL")));

function start(cmd, args, env, pattern) {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let out = "";
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${cmd} did not start:\n${out}`)), 30_000);
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
    child.on("exit", (code) => reject(new Error(`${cmd} exited ${code}:\n${out}`)));
  });
}

function stop(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", resolve);
    child.kill("SIGTERM");
  });
}

async function send(port, method, target, body, headers = {}) {
  const init = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  const r = await fetch(`http://127.0.0.1:${port}${target}`, init);
  const text = await r.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: r.status, etag: r.headers.get("etag"), body: json };
}

// An Ed25519 key as the official helpers take it (hex).
const { publicKey, privateKey } = generateKeyPairSync("ed25519");
const hex = (b64u) => Buffer.from(b64u, "base64url").toString("hex");
const pub = hex(publicKey.export({ format: "jwk" }).x);
const priv = hex(privateKey.export({ format: "jwk" }).d);
const other = hex(generateKeyPairSync("ed25519").publicKey.export({ format: "jwk" }).x);
const signed = (key, data, extra = {}) => ({ data, ...signAppendAuthor(key, data, pub, priv), ...extra });

const now = Date.now();
const startedAt = now;
const T = now - 60_000; // client ts base: recent (maxCheckpointAgeMs is one hour)

// [method, target, body, clock (an append without a client ts)?, headers]
const steps = (r) => {
  const open = `/v1/push/open/${r}`;
  const inbox = `/v1/push/inbox/${r}`;
  const s = [
    // body and ts checks
    ["POST", open, { data: { m: 1 }, ts: T + 1 }],
    ["POST", open, { data: { m: 2 }, ts: T + 1 }], // non_monotonic_timestamp
    ["POST", open, { data: { m: 2 }, ts: T }],
    ["POST", open, { data: { m: 2 }, ts: -1 }],
    ["POST", open, { data: { m: 2 }, ts: 1.5 }],
    ["POST", open, { data: { m: 2 }, ts: "5" }],
    ["POST", open, { data: { m: 2 }, ts: now + 3_600_000 }],
    ["POST", open, { data: [1] }],
    ["POST", open, { data: "x" }],
    ["POST", open, { ts: T + 2 }],
    ["POST", open, "[]"],
    ["POST", open, "{"],
    ["POST", open, { data: { m: 2 }, ts: T + 2, baseHash: "nonsense" }],
    ["POST", open, { data: { m: 3, __proto__x: 1 }, ts: T + 3, ts2: 1 }],
    ["POST", `/v1/push/open/clock${r}`, { data: { m: 4 }, ts: null }, true],
    ["POST", `/v1/push/open/clock${r}`, { data: { m: 5 } }, true],
    ["POST", open, { data: { m: 4 }, ts: T + 4 }],
    ["POST", open, { data: { m: 5 }, ts: T + 5 }],
    ["POST", open, { data: { m: 6 }, ts: T + 6 }], // append_limit_exceeded (maxItems 5)
    ["POST", open, { data: { m: 6 } }, true],
    ["POST", open, { data: { m: 7 }, ts: now + 1_000_000 }],
    // pull bounds on a full log
    ["GET", `/v1/pull/open/${r}`],
    ["GET", `/v1/pull/open/${r}?full=true`],
    ["GET", `/v1/pull/open/${r}?full=1`],
    ["GET", `/v1/pull/open/${r}?last=2`],
    ["GET", `/v1/pull/open/${r}?last=9`],
    ["GET", `/v1/pull/open/${r}?limit=1`],
    ["GET", `/v1/pull/open/${r}?limit=1&last=3`],
    ["GET", `/v1/pull/open/${r}?last=0`],
    ["GET", `/v1/pull/open/${r}?last=-1`],
    ["GET", `/v1/pull/open/${r}?last=abc`],
    ["GET", `/v1/pull/open/${r}?last=2.5`],
    ["GET", `/v1/pull/open/${r}?checkpoint=${T + 1}`],
    ["GET", `/v1/pull/open/${r}?checkpoint=${T + 2}&last=1`],
    ["GET", `/v1/pull/open/${r}?checkpoint=0`],
    ["GET", `/v1/pull/open/${r}?checkpoint=1`],
    ["GET", `/v1/pull/open/${r}?checkpoint=-5`],
    ["GET", `/v1/pull/open/${r}?checkpoint=01`],
    ["GET", `/v1/pull/open/${r}?checkpoint=x`],
    ["GET", `/v1/pull/open/${r}?checkpoint=${T}&full=true`],
    ["GET", `/v1/pull/open/${r}?last=1&full=true`],
    ["GET", `/v1/pull/open/never${r}?last=3`],
    ["GET", `/v1/pull/open/never${r}?checkpoint=${T}`],
    // requireAuthorSignature (the default) on "inbox", field "messages"
    ["POST", inbox, { data: { hi: 1 }, ts: T + 1 }],
    ["POST", inbox, { data: { hi: 1 }, ts: T + 1, authorPubkey: pub }],
    ["POST", inbox, { data: { hi: 1 }, ts: T + 1, authorPubkey: pub, authorSignature: 5 }],
    ["POST", inbox, { data: { hi: 1 }, ts: T + 1, authorPubkey: other, authorSignature: signed(`inbox/${r}`, { hi: 1 }).authorSignature }],
    ["POST", inbox, signed(`inbox/other${r}`, { hi: 1 }, { ts: T + 1 })], // bound to another document key
    ["POST", inbox, { ...signed(`inbox/${r}`, { hi: 1 }), data: { hi: 2 }, ts: T + 1 }], // data changed after signing
    ["POST", inbox, signed(`inbox/${r}`, { hi: 1 }, { ts: T + 1 })],
    ["POST", inbox, signed(`inbox/${r}`, { hi: 2, nested: { b: 1, a: [1, "x"] } }, { ts: T + 2 })],
    ["POST", inbox, signed(`inbox/${r}`, { hi: 3 }, { ts: T + 2 })],
    ["GET", `/v1/pull/inbox/${r}?full=true`],
    ["GET", `/v1/pull/inbox/${r}?checkpoint=${T + 1}`],
    ["GET", `/v1/pull/inbox/${r}?last=1`],
    // persist: false
    ["POST", `/v1/push/queue/${r}`, { data: { job: 1 }, ts: T + 9 }],
    ["POST", `/v1/push/queue/${r}`, { data: { job: 1 }, ts: T + 9 }],
    ["POST", `/v1/push/queue/${r}`, { data: { job: 2 } }, true],
    ["POST", `/v1/push/queue/${r}`, { data: 3 }],
    ["GET", `/v1/pull/queue/${r}?last=3`],
    // batch appendParams: one array per collection, parallel to its params sets
    ["GET", batch(["open", "inbox"], { open: [{ id: r }, { id: `never${r}` }], inbox: [{ id: r }] },
      { open: [{ last: 2 }, { last: 1 }], inbox: [{ since: T + 1 }] })],
    ["GET", batch(["open"], { open: [{ id: r }] }, { open: [{ limit: 1 }] })],
    ["GET", batch(["open"], { open: [{ id: r }] }, { open: [{ since: T + 3, limit: 1 }] })],
    ["GET", batch(["open"], { open: [{ id: r }] }, { open: [null] })],
    ["GET", batch(["open"], { open: [{ id: r }] }, { open: [{ last: "2" }] })],
    ["GET", batch(["open"], { open: [{ id: r }] }, { open: [{ since: "x" }] })],
    ["GET", batch(["open"], { open: [{ id: r }] }, { open: [{ full: true }] })],
    ["GET", batch(["open"], { open: [{ id: r }] }, { open: [{ full: "1" }] })],
    ["GET", batch(["open"], { open: [{ id: r }] }, { open: [{ last: -1 }] })],
    ["GET", batch(["open"], { open: [{ id: r }] }, { open: [{ last: 1.5 }] })],
    ["GET", batch(["open"], { open: [{ id: r }] }, { open: [{ last: 1 }, { last: 1 }] })],
    ["GET", batch(["open"], { open: [{ id: r }] }, { open: {} })],
    ["GET", batch(["open"], { open: [{ id: r }] }, { open: [[]] })],
    ["GET", batch(["open"], { open: [{ id: r }] }, [1])],
    ["GET", batch(["open"], { open: [{ id: r }] }, "{")],
    ["GET", batch(["open"], { open: [{ id: r }] })],
    ["GET", batch(["open", "notes"], { open: [{ id: r }], notes: [{ id: r }] }, { notes: [{ last: 1 }] })],
    ["GET", batch(["queue"], { queue: [{ id: r }] }, { queue: [{ last: 1 }] })],
    // chunked logs (chunkSize 2, field "ev"): bounded pulls across chunk boundaries
    ...[1, 2, 3, 4, 5, 6, 7].map((i) => ["POST", `/v1/push/chunked/${r}`, { data: { c: i }, ts: T + 10 * i }]),
    ["POST", `/v1/push/chunked/${r}`, { data: { c: 8 }, ts: T + 70 }],
    ["POST", `/v1/push/chunked/${r}`, { data: { c: 8 }, ts: T + 35 }],
    ["GET", `/v1/pull/chunked/${r}?full=true`],
    ...[0, T, T + 10, T + 15, T + 20, T + 30, T + 40, T + 69, T + 70, T + 99].map((cp) =>
      ["GET", `/v1/pull/chunked/${r}?checkpoint=${cp}`]),
    ...[1, 2, 3, 5, 7, 8].map((k) => ["GET", `/v1/pull/chunked/${r}?last=${k}`]),
    ["GET", `/v1/pull/chunked/${r}?checkpoint=${T + 20}&last=2`],
    ["GET", `/v1/pull/chunked/${r}?checkpoint=${T + 20}&limit=3`],
    ["GET", `/v1/pull/chunked/${r}?last=2`, undefined, false, { "If-None-Match": '"nope"' }],
    ["GET", batch(["chunked"], { chunked: [{ id: r }, { id: r }] }, { chunked: [{ since: T + 30 }, { last: 3 }] })],
    ["POST", `/v1/push/chunked/${r}`, { data: { c: 8 } }, true],
    ["GET", `/v1/pull/chunked/${r}?checkpoint=${T + 60}`, undefined, true],
    // signed chunked log with maxItems 4 (chunkSize 3)
    ...[1, 2, 3, 4, 5].map((i) => ["POST", `/v1/push/signedc/${r}`, signed(`signedc/${r}`, { s: i }, { ts: T + i })]),
    ["POST", `/v1/push/signedc/${r}`, { data: { s: 6 }, ts: T + 6 }],
    ["GET", `/v1/pull/signedc/${r}?checkpoint=${T + 2}`],
    ["GET", `/v1/pull/signedc/${r}?full=true`],
    // a regular collection next to them is unaffected
    ["POST", `/v1/push/notes/${r}`, { data: { n: 1 }, baseHash: null }],
    ["GET", `/v1/pull/notes/${r}?last=1`],
  ];
  return s;
};
const enc = (v) => encodeURIComponent(typeof v === "string" ? v : JSON.stringify(v));
const batch = (cols, params, appendParams) =>
  `/v1/batch/pull?collections=${cols.join(",")}&params=${enc(params)}` +
  (appendParams === undefined ? "" : `&appendParams=${enc(appendParams)}`);

// Every `timestamp` or element `ts` from the server's clock (a pull's, a batch
// entry's, an append's without a client `ts`) must be a number from this run,
// and is then masked; client `ts` values (older than the run) are compared
// exactly. `clock` steps (appends without a `ts`) also mask the hash
// and ETag, which cover the clock ts.
function mask(v) {
  if (Array.isArray(v)) return v.map(mask);
  if (v === null || typeof v !== "object") return v;
  return Object.fromEntries(Object.entries(v).map(([k, x]) =>
    [k, (k === "timestamp" || k === "ts") && typeof x === "number" && x >= startedAt ? "<server clock>" : mask(x)]));
}
function normalise(ans, clock) {
  const b = mask(ans.body);
  if (clock && b && typeof b === "object" && typeof b.hash === "string") b.hash = "<hash of a clock ts>";
  return JSON.stringify({ status: ans.status, etag: clock ? null : ans.etag, body: b });
}

const off = await start("node", [path.join(here, "server.mjs")], { PORT: "0", STARFISH_CONFIG: config }, /LISTENING (\d+)/);
const ours = await start(bin, ["serve", "--memory", "--listen", "127.0.0.1:0", "--config", config], {}, /listening on http:\/\/127\.0\.0\.1:(\d+)/);
const run = `ap${Date.now()}`;
let failures = 0;
let compared = 0;
for (const [method, target, body, clock, headers] of steps(run)) {
  const a = normalise(await send(off.port, method, target, body, headers), clock);
  const b = normalise(await send(ours.port, method, target, body, headers), clock);
  compared += 1;
  if (a !== b) {
    failures += 1;
    console.log(`append parity: MISMATCH ${method} ${target} ${body === undefined ? "" : JSON.stringify(body)}`);
    console.log(`  official ${a}`);
    console.log(`  ours     ${b}`);
  }
}
await stop(off.child);
await stop(ours.child);
console.log(`append parity: ${compared - failures} of ${compared} requests answered alike by both servers`);
process.exit(failures === 0 ? 0 : 1);
