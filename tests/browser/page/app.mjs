// The page under test: bundled by esbuild with the official client and run
// by headless Chromium from the harness's origin (http://127.0.0.1:PAGE),
// talking to a starfish-rs server on another origin (http://127.0.0.1:API).
//
//   /?api=http://127.0.0.1:API&run=ID
//
// Every step runs (a failed step does not stop the others) and the results
// are POSTed to the page's own origin (/report, same-origin, no CORS
// involved) and summarised in document.title ("PASS" / "FAIL n").
import { ConflictError, StarfishClient, StarfishHttpError, SyncManager } from "@drakkar.software/starfish-client";
import { bootstrapRootIdentity } from "@drakkar.software/starfish-identities";
import { CORS_ALLOW_HEADERS } from "@drakkar.software/starfish-protocol";

const params = new URLSearchParams(location.search);
const api = params.get("api");
const run = params.get("run") ?? "0";
const base = `${api}/v1`;

const steps = [];
// Deep equality, ignoring object key order.
const canon = (v) =>
  Array.isArray(v) ? v.map(canon)
  : v && typeof v === "object" ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])]))
  : v;
const same = (a, b) => JSON.stringify(canon(a)) === JSON.stringify(canon(b));
function expect(cond, what) {
  if (!cond) throw new Error(`expectation failed: ${what}`);
}
async function step(name, fn) {
  const t0 = performance.now();
  try {
    const detail = await fn();
    steps.push({ name, ok: true, ms: Math.round(performance.now() - t0), detail: detail ?? null });
  } catch (e) {
    steps.push({ name, ok: false, ms: Math.round(performance.now() - t0), error: `${e?.name ?? "Error"}: ${e?.message ?? e}` });
  }
}

const anon = new StarfishClient({ baseUrl: base });
const notePath = `public/notes/browser-${run}`;
let noteHash = null;

await step("public pull (a simple GET, no preflight)", async () => {
  const r = await anon.pull(`/pull/${notePath}`);
  expect(r.hash === "", `missing document has hash "" (got ${JSON.stringify(r.hash)})`);
});

await step("public push (JSON POST, preflighted) and pull back", async () => {
  const pushed = await anon.push(`/push/${notePath}`, { from: "chromium", run }, null);
  const r = await anon.pull(`/pull/${notePath}`);
  expect(same(r.data, { from: "chromium", run }), `data round-trips (got ${JSON.stringify(r.data)})`);
  expect(r.hash === pushed.hash, "pull hash = push hash");
  noteHash = pushed.hash;
});

await step("ETag is readable cross-origin", async () => {
  const res = await fetch(`${base}/pull/${notePath}`, { headers: { Accept: "application/json" } });
  const etag = res.headers.get("ETag");
  expect(noteHash !== null && etag === `"${noteHash}"`, `ETag ${etag} = "${noteHash}"`);
  return etag;
});

await step("every header the official client may send passes the preflight", async () => {
  // The protocol package's CORS_ALLOW_HEADERS (the public collection ignores them).
  const headers = {};
  for (const h of CORS_ALLOW_HEADERS) headers[h] = h === "Content-Type" ? "application/json" : "x";
  const res = await fetch(`${base}/pull/${notePath}`, { headers });
  expect(res.status === 200, `status ${res.status}`);
  return CORS_ALLOW_HEADERS.join(", ");
});

let creds = null;
await step("bootstrapRootIdentity (Argon2id in the browser)", async () => {
  creds = await bootstrapRootIdentity(`browser test ${run}`);
  expect(/^[0-9a-f]{32}$/.test(creds.userId), "a user id");
  return creds.userId;
});

const capProvider = {
  getCap: async () => ({ cap: creds.capCert, devEdPrivHex: creds.device.edPriv }),
};
const signed = new StarfishClient({ baseUrl: base, capProvider });
const settings = () => `users/${creds.userId}/settings`;

await step("signed push and pull of a self document", async () => {
  expect(creds, "identity");
  const first = await signed.pull(`/pull/${settings()}`);
  const pushed = await signed.push(`/push/${settings()}`, { theme: "dark" }, first.hash === "" ? null : first.hash);
  const r = await signed.pull(`/pull/${settings()}`);
  expect(same(r.data, { theme: "dark" }), `data (got ${JSON.stringify(r.data)})`);
  expect(r.hash === pushed.hash, "hash");
});

await step("a stale push is a readable 409", async () => {
  expect(creds, "identity");
  try {
    await signed.push(`/push/${settings()}`, { theme: "light" }, null);
  } catch (e) {
    if (e instanceof ConflictError || (e instanceof StarfishHttpError && e.status === 409)) return e.name;
    throw e;
  }
  throw new Error("no conflict");
});

await step("SyncManager resolves a 409 (deepMerge, retry)", async () => {
  expect(creds, "identity");
  let conflicts = 0;
  const logger = new Proxy({}, {
    get: (_, name) => (name === "conflict" ? () => { conflicts += 1; } : () => {}),
  });
  const opts = { client: signed, pullPath: `/pull/${settings()}`, pushPath: `/push/${settings()}` };
  const tab1 = new SyncManager({ ...opts });
  const tab2 = new SyncManager({ ...opts, logger });
  await tab1.pull();
  await tab2.pull();
  await tab1.update((d) => ({ ...d, fromTab1: true }));
  // tab2's hash is stale now (update() would pull first; push() does not):
  // its push gets a 409, it pulls, merges (deepMerge) and retries.
  const r = await tab2.push({ ...tab2.getData(), fromTab2: true });
  expect(conflicts === 1, `one conflict resolved (saw ${conflicts})`);
  const back = await signed.pull(`/pull/${settings()}`);
  expect(back.hash === r.hash, "the merged push is the current document");
  expect(same(back.data, { theme: "dark", fromTab1: true, fromTab2: true }), `merged data (got ${JSON.stringify(back.data)})`);
  return back.data;
});

const failed = steps.filter((s) => !s.ok).length;
await fetch("/report", {
  method: "POST",
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify({ run, steps }),
});
document.title = failed === 0 ? "PASS" : `FAIL ${failed}`;
