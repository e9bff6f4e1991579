// Cap-cert edge cases with raw signed requests (auth.md §5–§11): paired devices, scope.paths,
// expiry, signature binding (method, host, ts), anonymous fallbacks, body guard.
import { after, before, describe, it } from "node:test";
import { StarfishClient, StarfishHttpError, stableStringify } from "@drakkar.software/starfish-client";
import { bootstrapRootIdentity, generateDeviceKeys, mintDeviceCap } from "@drakkar.software/starfish-identities";
import { signRequest } from "@drakkar.software/starfish-protocol";
import { check, expectError, fresh, rawRequest } from "../lib/check.mjs";
import { startServer } from "../lib/server.mjs";

let srv;
let root;
before(async () => {
  srv = await startServer();
  root = await bootstrapRootIdentity(`interop caps ${fresh()}`);
});
after(async () => {
  await srv?.stop();
});

const b64 = (s) => Buffer.from(s, "utf8").toString("base64");
async function signed(cap, privHex, method, p, { body, host, ts, contentType } = {}) {
  const sig = await signRequest({ method, pathAndQuery: p, body: body ?? undefined, host: host ?? srv.host }, privHex, ts ? { ts } : {});
  const headers = {
    Authorization: `Cap ${b64(stableStringify(cap))}`,
    "X-Starfish-Sig": sig.sig,
    "X-Starfish-Ts": String(sig.ts),
    "X-Starfish-Nonce": sig.nonce,
  };
  if (contentType) headers["Content-Type"] = contentType;
  return headers;
}
const httpErr = (status, body) => (e) => {
  if (!(e instanceof StarfishHttpError)) throw e;
  if (e.status !== status) throw new Error(`status ${e.status} != ${status}: ${e.body}`);
  if (body !== undefined && e.body !== body) throw new Error(`body ${e.body} != ${body}`);
  return true;
};
async function device(scope, opts) {
  const dev = generateDeviceKeys();
  const cap = await mintDeviceCap(root.device.edPriv, root.device.edPub, { edPubHex: dev.edPub, kemPubHex: dev.kemPub }, scope, opts);
  return { cap, priv: dev.edPriv, client: (o = {}) => new StarfishClient({ baseUrl: srv.base, capProvider: { getCap: async () => ({ cap, devEdPrivHex: dev.edPriv }) }, ...o }) };
}

describe("paired devices and scope.paths", () => {
  it("a paired device (iss != sub) acts as the root user (auth.md §10)", async () => {
    const d = await device({ ops: ["read", "write"], collections: ["*"] });
    const c = d.client();
    const path = `users/${root.userId}/settings`;
    const w = await c.push(`/push/${path}`, { paired: true }, null);
    const r = await c.pull(`/pull/${path}`);
    check.equal(r.hash, w.hash);
    check.deepEqual(r.data, { paired: true });
  });

  it("scope.paths restricts the request path; public collections ignore it", async () => {
    const d = await device({ ops: ["read", "write"], collections: ["*"], paths: ["users/{identity}/settings"] });
    const c = d.client();
    const r = await c.pull(`/pull/users/${root.userId}/settings`);
    check.deepEqual(r.data, { paired: true });
    await check.rejects(c.pull(`/pull/users/${root.userId}/profile`), httpErr(403, '{"error":"Forbidden"}'));
    await check.rejects(c.push(`/push/users/${root.userId}/profile/preferences`, { a: 1 }, null), httpErr(403, '{"error":"Forbidden"}'));
    const pub = await c.pull(`/pull/public/notes/${fresh()}`);
    check.equal(pub.hash, "");
    // withKeyring is dropped silently when <key>/_keyring is outside the scope (wire.md §4.3)
    const k = await c.pull(`/pull/users/${root.userId}/settings`, { withKeyring: true });
    check.equal("keyring" in k, false);
    // batch: per-entry scope check (wire.md §7.4 step 10)
    const b = await c.batchPull(["settings", "preferences"]);
    check.deepEqual(b.collections.settings[0].data, { paired: true });
    check.deepEqual(b.collections.preferences, [{ error: "Forbidden" }]);
  });

  it("scope covering **: withKeyring kept", async () => {
    const d = await device({ ops: ["read"], collections: ["*"], paths: ["users/{identity}/**"] });
    const k = await d.client().pull(`/pull/users/${root.userId}/settings`, { withKeyring: true });
    check.equal(k.keyring, null);
  });

  it("deny entries beat allow entries", async () => {
    const d = await device({ ops: ["read"], collections: ["*"], paths: ["users/**", "!users/{identity}/profile"] });
    const c = d.client();
    const r = await c.pull(`/pull/users/${root.userId}/settings`);
    check.deepEqual(r.data, { paired: true });
    await check.rejects(c.pull(`/pull/users/${root.userId}/profile`), httpErr(403));
  });

  // DELIBERATE FIX (COMPATIBILITY.md; spec README policy, quirk 15): /<mount>/<ns>/batch/pull is
  // recognised as a batch path, so a narrowly scoped cap keeps its identity and the scope is
  // applied per entry (the official server degrades the request to anonymous).
  it("namespaced batch behind the mount keeps the cap's identity (deliberate fix of auth.md §11.1 quirk)", async () => {
    const d = await device({ ops: ["read"], collections: ["*"], paths: ["demo/users/{identity}/inbox"] });
    const n = d.client({ baseUrl: srv.origin, namespace: "demo" });
    const direct = await n.pull(`/pull/demo/users/${root.userId}/inbox`);
    const b = await n.batchPull(["inbox"]);
    check.deepEqual(b.collections.inbox.map((e) => [e.data, e.hash]), [[direct.data, direct.hash]]);
  });
});

describe("cap validity (auth.md §5, §8)", () => {
  const now = () => Math.floor(Date.now() / 1000);
  it("expired / not-yet-valid caps → 401", async () => {
    const expired = await device({ ops: ["read"], collections: ["*"] }, { nbf: now() - 10 * 86400, ttlSec: 3600 });
    await check.rejects(expired.client().pull(`/pull/users/${root.userId}/settings`), httpErr(401, '{"error":"Unauthorized"}'));
    const future = await device({ ops: ["read"], collections: ["*"] }, { nbf: now() + 3600 });
    await check.rejects(future.client().pull(`/pull/users/${root.userId}/settings`), httpErr(401, '{"error":"Unauthorized"}'));
    // within the 300 s skew: ok
    const early = await device({ ops: ["read"], collections: ["*"] }, { nbf: now() + 100 });
    const r = await early.client().pull(`/pull/users/${root.userId}/settings`);
    check.deepEqual(r.data, { paired: true });
  });

  it("a tampered cap (scope widened after signing) → 401", async () => {
    const d = await device({ ops: ["read"], collections: ["*"], paths: ["users/{identity}/settings"] });
    const tampered = { ...d.cap, scope: { ...d.cap.scope, paths: ["**"] } };
    const c = new StarfishClient({ baseUrl: srv.base, capProvider: { getCap: async () => ({ cap: tampered, devEdPrivHex: d.priv }) } });
    await check.rejects(c.pull(`/pull/users/${root.userId}/settings`), httpErr(401));
  });
});

describe("raw signed requests (auth.md §7)", () => {
  const p = () => `/v1/pull/users/${root.userId}/settings`;
  const get = async (headers, target = p(), method = "GET") => rawRequest(srv.port, method, target, { headers });

  it("a correctly signed full-path request → 200", async () => {
    const r = await get(await signed(root.capCert, root.device.edPriv, "GET", p()));
    check.equal(r.status, 200);
  });

  it("host binding: signed for another host → 401", async () => {
    const r = await get(await signed(root.capCert, root.device.edPriv, "GET", p(), { host: "example.com" }));
    check.equal(r.status, 401);
    check.equal(r.body, '{"error":"Unauthorized"}');
  });

  it("clock skew: ts 301 s old → 401; 200 s old → 200", async () => {
    const old = await get(await signed(root.capCert, root.device.edPriv, "GET", p(), { ts: Date.now() - 301000 }));
    check.equal(old.status, 401);
    const ok = await get(await signed(root.capCert, root.device.edPriv, "GET", p(), { ts: Date.now() - 200000 }));
    check.equal(ok.status, 200);
  });

  it("query is part of the signed path", async () => {
    const h = await signed(root.capCert, root.device.edPriv, "GET", p() + "?checkpoint=5");
    check.equal((await get(h, p() + "?checkpoint=6")).status, 401);
    const h2 = await signed(root.capCert, root.device.edPriv, "GET", p() + "?checkpoint=5");
    check.equal((await get(h2, p() + "?checkpoint=5")).status, 200);
  });

  it("HEAD must be signed as HEAD", async () => {
    const asGet = await get(await signed(root.capCert, root.device.edPriv, "GET", p()), p(), "HEAD");
    check.equal(asGet.status, 401);
    const asHead = await get(await signed(root.capCert, root.device.edPriv, "HEAD", p()), p(), "HEAD");
    check.equal(asHead.status, 200);
    check.equal(asHead.body, "");
  });

  it("missing signature headers / malformed cap → 401; non-Cap Authorization → anonymous (403)", async () => {
    const h = await signed(root.capCert, root.device.edPriv, "GET", p());
    delete h["X-Starfish-Nonce"];
    check.equal((await get(h)).status, 401);
    check.equal((await get({ Authorization: "Cap bm90IGpzb24=" })).status, 401);
    for (const auth of ["Bearer abc", "cap abc", "CAP abc"]) {
      const r = await get({ Authorization: auth });
      check.equal(r.status, 403, auth);
      check.equal(r.body, '{"error":"Forbidden"}', auth);
    }
    const big = await get({ Authorization: "Cap " + "A".repeat(9000) });
    check.equal(big.status, 401, "cap header > 8192");
  });

  it("push without Content-Length (chunked) → 413 missing Content-Length on write (auth.md §8 step 9)", async () => {
    const target = `/v1/push/users/${root.userId}/settings`;
    const body = JSON.stringify({ data: { c: 1 }, baseHash: null });
    const headers = await signed(root.capCert, root.device.edPriv, "POST", target, { body, contentType: "application/json" });
    headers["Transfer-Encoding"] = "chunked";
    const r = await rawRequest(srv.port, "POST", target, { headers, body });
    check.equal(r.status, 413);
    check.equal(r.body, '{"error":"missing Content-Length on write"}');
  });

  it("push body is signed: tampering → 401; JSON signed exactly → 409 on stale create", async () => {
    const target = `/v1/push/users/${root.userId}/settings`;
    const body = JSON.stringify({ data: { c: 1 }, baseHash: null });
    const headers = await signed(root.capCert, root.device.edPriv, "POST", target, { body, contentType: "application/json" });
    const bad = await rawRequest(srv.port, "POST", target, { headers, body: body.replace("1", "2") });
    check.equal(bad.status, 401);
    const h2 = await signed(root.capCert, root.device.edPriv, "POST", target, { body, contentType: "application/json" });
    const ok = await rawRequest(srv.port, "POST", target, { headers: h2, body });
    check.equal(ok.status, 409);
    check.equal(ok.body, '{"error":"hash_mismatch"}');
  });

  it("a replayed nonce → 401 (auth.md §9), even after the first request succeeded", async () => {
    const h = await signed(root.capCert, root.device.edPriv, "GET", p());
    check.equal((await get(h)).status, 200);
    const again = await get(h);
    check.equal(again.status, 401);
    check.equal(again.body, '{"error":"Unauthorized"}');
  });

  it("method and path binding: a GET signature replayed as another path or method → 401", async () => {
    const other = `/v1/pull/users/${root.userId}/profile`;
    check.equal((await get(await signed(root.capCert, root.device.edPriv, "GET", p()), other)).status, 401);
    const target = `/v1/push/users/${root.userId}/settings`;
    const body = JSON.stringify({ data: { m: 1 }, baseHash: null });
    const asGet = await signed(root.capCert, root.device.edPriv, "GET", target, { body, contentType: "application/json" });
    const r = await rawRequest(srv.port, "POST", target, { headers: asGet, body });
    check.equal(r.status, 401);
  });

  it("a forged cap (signed by a key that is not iss) and a not-yet-valid cap → 401", async () => {
    const other = await bootstrapRootIdentity(`interop forger ${fresh()}`);
    const forged = { ...root.capCert, sig: other.capCert.sig };
    check.equal((await get(await signed(forged, root.device.edPriv, "GET", p()))).status, 401);
    const now = Math.floor(Date.now() / 1000);
    const future = await mintDeviceCap(root.device.edPriv, root.device.edPub, { edPubHex: root.device.edPub, kemPubHex: root.device.kemPub }, { ops: ["read"], collections: ["*"] }, { nbf: now + 3600 });
    check.equal((await get(await signed(future, root.device.edPriv, "GET", p()))).status, 401);
  });

  // DELIBERATE FIX (COMPATIBILITY.md; spec README policy, quirk 12): scope.ops without "write"
  // cannot push, even to a `self` collection (the official server lets it through).
  it("a read-only cap cannot push to its own self document → 403", async () => {
    const d = await device({ ops: ["read"], collections: ["*"] });
    await check.rejects(d.client().push(`/push/users/${root.userId}/settings`, { ro: true }, null), httpErr(403, '{"error":"Forbidden"}'));
    const r = await d.client().pull(`/pull/users/${root.userId}/settings`);
    check.ok(r.data.ro === undefined, "nothing was written");
  });
});
