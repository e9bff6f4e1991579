// Authenticated flows with cap-certs from bootstrapRootIdentity (auth.md §7, §8, §10, §13),
// against the embedded default config: settings (self), bundle profile (self),
// namespace demo (board public, inbox self).
import { after, before, describe, it } from "node:test";
import { StarfishClient, StarfishHttpError, SyncManager, computeHash } from "@drakkar.software/starfish-client";
import { bootstrapRootIdentity } from "@drakkar.software/starfish-identities";
import { HEX64, check, expectError, fresh } from "../lib/check.mjs";
import { startServer } from "../lib/server.mjs";

let srv;
let alice; // DeviceCredentials
let bob;
const capOf = (creds) => ({ getCap: async () => ({ cap: creds.capCert, devEdPrivHex: creds.device.edPriv }) });

before(async () => {
  srv = await startServer();
  // Spec vector (auth.md §7.5): the passphrase → userId derivation must agree.
  alice = await bootstrapRootIdentity("correct horse battery staple");
  bob = await bootstrapRootIdentity(`interop bob ${fresh()}`);
});
after(async () => {
  await srv?.stop();
});

const httpErr = (status, body) => (e) => {
  if (!(e instanceof StarfishHttpError)) throw e;
  if (e.status !== status) throw new Error(`status ${e.status} != ${status}: ${e.body}`);
  if (body !== undefined && e.body !== body) throw new Error(`body ${e.body} != ${body}`);
  return true;
};

describe("identity", () => {
  it("bootstrapRootIdentity matches the auth.md §7.5 vector and mints a self-signed cap", () => {
    check.equal(alice.userId, "3a2587855944c8ebee1ad9e796d44149");
    check.equal(alice.device.edPub, "1bcbe88076048aed74230f254f5c79babaf43bf41cbee692833f87acf6be0c1b");
    check.equal(alice.capCert.iss, alice.capCert.sub);
    check.equal(alice.capCert.issUserId, alice.userId);
  });
});

describe("without namespace, baseUrl = .../v1 (mount-stripped signature: documented deviation)", () => {
  // The client signs p = /pull/... while the server sees /v1/pull/...; the official
  // server answers 401 here (auth.md §7.4, client.md §2). starfish-rs MAY accept the
  // mount-stripped path (auth.md §7.4 last bullet) and does.
  let a;
  before(() => {
    a = new StarfishClient({ baseUrl: srv.base, capProvider: capOf(alice) });
  });

  it("self push/pull on users/{identity}/settings", async () => {
    const path = `users/${alice.userId}/settings`;
    const first = await a.pull(`/pull/${path}`);
    check.ok(first.hash === "" || HEX64.test(first.hash));
    const pushed = await a.push(`/push/${path}`, { theme: "dark", fontSize: 14 }, first.hash === "" ? null : first.hash);
    check.equal(pushed.hash, await computeHash({ theme: "dark", fontSize: 14 }));
    const r = await a.pull(`/pull/${path}`);
    check.deepEqual(r.data, { theme: "dark", fontSize: 14 });
    check.equal(r.hash, pushed.hash);
  });

  it("another user's path → 403 Forbidden (auth.md §8 step 18)", async () => {
    await check.rejects(a.pull(`/pull/users/${bob.userId}/settings`), httpErr(403, '{"error":"Forbidden"}'));
    await check.rejects(a.push(`/push/users/${bob.userId}/settings`, { x: 1 }, null), httpErr(403, '{"error":"Forbidden"}'));
  });

  it("anonymous on a self collection → 403 Forbidden (wire.md §3 step 4)", async () => {
    const anon = new StarfishClient({ baseUrl: srv.base });
    await check.rejects(anon.pull(`/pull/users/${alice.userId}/settings`), httpErr(403, '{"error":"Forbidden"}'));
    await check.rejects(anon.push(`/push/users/${alice.userId}/settings`, { x: 1 }, null), httpErr(403, '{"error":"Forbidden"}'));
    // bundle: every member skipped → 200 {"collections":{},"timestamp":0} (wire.md §6.2)
    const res = await fetch(`${srv.base}/pull/users/${alice.userId}/profile`);
    check.equal(res.status, 200);
    check.equal(await res.text(), '{"collections":{},"timestamp":0}');
  });

  it("a signature by the wrong key → 401 Unauthorized (auth.md §8 step 11)", async () => {
    const forged = new StarfishClient({
      baseUrl: srv.base,
      capProvider: { getCap: async () => ({ cap: alice.capCert, devEdPrivHex: bob.device.edPriv }) },
    });
    await check.rejects(forged.pull(`/pull/users/${alice.userId}/settings`), httpErr(401, '{"error":"Unauthorized"}'));
  });

  it("a replayed nonce → 401 (auth.md §8 step 13)", async () => {
    let captured;
    const spy = new StarfishClient({
      baseUrl: srv.base,
      capProvider: capOf(alice),
      fetch: (url, init) => {
        captured = { url, init };
        return fetch(url, init);
      },
    });
    await spy.pull(`/pull/users/${alice.userId}/settings`);
    const replay = await fetch(captured.url, captured.init);
    await expectError(replay, 401, "Unauthorized");
  });

  it("public collections ignore (even invalid) auth headers (wire.md §3 step 1)", async () => {
    const res = await fetch(`${srv.base}/pull/public/notes/${fresh()}`, {
      headers: { Authorization: "Cap !!!notbase64", "X-Starfish-Sig": "x", "X-Starfish-Ts": "1", "X-Starfish-Nonce": "n" },
    });
    check.equal(res.status, 200);
    await res.arrayBuffer();
  });

  it("bundle pull and member push (wire.md §6)", async () => {
    const base = `users/${alice.userId}/profile`;
    const empty = await a.pull(`/pull/${base}`);
    check.deepEqual(empty.collections, { preferences: { data: {}, hash: "" }, contacts: { data: {}, hash: "" } });
    check.ok(typeof empty.timestamp === "number" && empty.timestamp > 0, "timestamp = member pull time");
    const pushed = await a.push(`/push/${base}/preferences`, { lang: "fr" }, null);
    check.match(pushed.hash, HEX64);
    const r = await a.pull(`/pull/${base}`);
    check.deepEqual(Object.keys(r), ["collections", "timestamp"]);
    check.deepEqual(r.collections.preferences, { data: { lang: "fr" }, hash: pushed.hash });
    check.deepEqual(r.collections.contacts, { data: {}, hash: "" });
    // no standalone member pull route (wire.md §6.2)
    await check.rejects(a.pull(`/pull/${base}/preferences`), httpErr(404, "404 Not Found"));
    // other user's bundle → 403
    await check.rejects(a.pull(`/pull/users/${bob.userId}/profile`), httpErr(403, '{"error":"Forbidden"}'));
    // bundle member conflict
    await check.rejects(a.push(`/push/${base}/preferences`, { lang: "en" }, null), (e) => e.message === "hash_mismatch");
  });

  it("batchPull with {identity} auto-fill, explicit other identity → Forbidden (wire.md §7.4)", async () => {
    const noteId = fresh("bn");
    await a.push(`/push/public/notes/${noteId}`, { pub: true }, null);
    const settings = await a.pull(`/pull/users/${alice.userId}/settings`);
    const res = await a.batchPull(["settings", "notes", "nope"], {
      params: { notes: [{ id: noteId }, { id: "missing-" + noteId }, {}] },
    });
    check.deepEqual(Object.keys(res.collections), ["settings", "notes", "nope"]);
    check.equal(res.collections.settings.length, 1);
    check.deepEqual(res.collections.settings[0].data, settings.data);
    check.equal(res.collections.settings[0].hash, settings.hash);
    check.equal(typeof res.collections.settings[0].timestamp, "number");
    check.deepEqual(res.collections.notes[0].data, { pub: true });
    check.deepEqual(res.collections.notes[1].data, {});
    check.equal(res.collections.notes[1].hash, "");
    check.deepEqual(res.collections.notes[2], { error: "Missing required path parameter" });
    check.deepEqual(res.collections.nope, [{ error: "Collection not found" }]);

    const many = await a.batchPullMany("settings", [{}, { identity: bob.userId }, { identity: alice.userId }, { identity: "bad value" }]);
    check.equal(many.length, 4);
    check.equal(many[0].hash, settings.hash);
    check.deepEqual(many[1], { error: "Forbidden" });
    check.equal(many[2].hash, settings.hash);
    check.deepEqual(many[3], { error: "Invalid path parameter" });
    check.deepEqual(await a.batchPullMany("settings", []), []);
  });

  // DELIBERATE FIX (COMPATIBILITY.md; spec README policy, quirk 14): the official server
  // reads the bundle base key for a bundle member in a batch (an empty document); we read
  // <base>/<member>, exactly what the bundle pull serves.
  it("batch reads a bundle member's own document (deliberate fix of wire.md §7.4 quirk)", async () => {
    const bundle = await a.pull(`/pull/users/${alice.userId}/profile`);
    const res = await a.batchPull(["preferences", "contacts"]);
    check.deepEqual(res.collections.preferences.map((e) => [e.data, e.hash]), [[bundle.collections.preferences.data, bundle.collections.preferences.hash]]);
    check.ok(bundle.collections.preferences.hash !== "", "the member document exists");
    check.deepEqual(res.collections.contacts.map((e) => [e.data, e.hash]), [[bundle.collections.contacts.data, bundle.collections.contacts.hash]]);
  });

  it("batch with a failing signature continues as anonymous (wire.md §7.3)", async () => {
    const forged = new StarfishClient({
      baseUrl: srv.base,
      capProvider: { getCap: async () => ({ cap: alice.capCert, devEdPrivHex: bob.device.edPriv }) },
    });
    const res = await forged.batchPull(["settings", "notes"], { params: { settings: [{ identity: alice.userId }], notes: [{ id: "x" }] } });
    check.deepEqual(res.collections.settings, [{ error: "Forbidden" }]);
    check.equal(res.collections.notes[0].hash, "");
  });

  it("SyncManager on a self document", async () => {
    const sm = new SyncManager({
      client: a,
      pullPath: `/pull/users/${alice.userId}/settings`,
      pushPath: `/push/users/${alice.userId}/settings`,
    });
    await sm.pull();
    const r = await sm.update((d) => ({ ...d, synced: true }));
    const back = await a.pull(`/pull/users/${alice.userId}/settings`, sm.lastCheckpoint);
    check.equal(back.hash, r.hash);
    check.equal(back.data.synced, true);
  });

  it("hand-prefixed namespaced path via the /v1 baseUrl (client.md §2 guide example; deviation)", async () => {
    const path = `demo/users/${alice.userId}/inbox`;
    const pushed = await a.push(`/demo/push/${path}`, { via: "hand-prefix" }, null);
    const r = await a.pull(`/demo/pull/${path}`);
    check.equal(r.hash, pushed.hash);
  });
});

describe("baseUrl = origin, full /v1 paths (signature over the full path, auth.md §7.4 (a))", () => {
  it("self push/pull with p = /v1/...", async () => {
    const c = new StarfishClient({ baseUrl: srv.origin, capProvider: capOf(bob) });
    const path = `users/${bob.userId}/settings`;
    const pushed = await c.push(`/v1/push/${path}`, { bob: 1 }, null);
    const r = await c.pull(`/v1/pull/${path}`);
    check.equal(r.hash, pushed.hash);
    check.deepEqual(r.data, { bob: 1 });
  });
});

describe("namespace option against the demo namespace (client.md §2: /v1/<ns> signing)", () => {
  let n;
  before(() => {
    n = new StarfishClient({ baseUrl: srv.origin, namespace: "demo", capProvider: capOf(bob) });
  });

  it("self push/pull on demo/users/{identity}/inbox", async () => {
    const path = `demo/users/${bob.userId}/inbox`;
    const empty = await n.pull(`/pull/${path}`);
    check.equal(empty.hash, "");
    const pushed = await n.push(`/push/${path}`, { msgs: ["hi"] }, null);
    const r = await n.pull(`/pull/${path}`);
    check.equal(r.hash, pushed.hash);
    check.deepEqual(r.data, { msgs: ["hi"] });
    // same document reachable through the raw /v1/demo mount (no namespace in the key, wire.md §2.3)
    const c = new StarfishClient({ baseUrl: srv.base, capProvider: capOf(bob) });
    const via = await c.pull(`/demo/pull/${path}`);
    check.equal(via.hash, pushed.hash);
  });

  it("another user's inbox → 403", async () => {
    await check.rejects(n.pull(`/pull/demo/users/${alice.userId}/inbox`), httpErr(403, '{"error":"Forbidden"}'));
  });

  it("public board through the namespace", async () => {
    const id = fresh("board");
    const pushed = await n.push(`/push/demo/board/${id}`, { card: 1 }, null);
    const anon = new StarfishClient({ baseUrl: srv.origin, namespace: "demo" });
    const r = await anon.pull(`/pull/demo/board/${id}`);
    check.equal(r.hash, pushed.hash);
    // root collections do not exist under the namespace
    await check.rejects(anon.pull(`/pull/public/notes/${id}`), httpErr(404, "404 Not Found"));
  });

  it("namespaced batchPull: identity auto-fill, root names not found (wire.md §2.3, §7.4)", async () => {
    const res = await n.batchPull(["inbox", "board", "settings"], { params: { board: [{ id: "nothing-here" }] } });
    check.deepEqual(res.collections.inbox.map((e) => e.data), [{ msgs: ["hi"] }]);
    check.equal(res.collections.board[0].hash, "");
    check.deepEqual(res.collections.settings, [{ error: "Collection not found" }]);
    const many = await n.batchPullMany("inbox", [{}, { identity: alice.userId }]);
    check.deepEqual(many[0].data, { msgs: ["hi"] });
    check.deepEqual(many[1], { error: "Forbidden" });
    // root batch does not see namespaced collections
    const root = new StarfishClient({ baseUrl: srv.base, capProvider: capOf(bob) });
    const r2 = await root.batchPull(["inbox"]);
    check.deepEqual(r2.collections.inbox, [{ error: "Collection not found" }]);
  });

  it("namespaced SyncManager", async () => {
    const sm = new SyncManager({
      client: n,
      pullPath: `/pull/demo/users/${bob.userId}/inbox`,
      pushPath: `/push/demo/users/${bob.userId}/inbox`,
    });
    // fresh manager: lastHash null → 409 → merge → retry
    const r = await sm.push({ extra: 1 });
    const back = await n.pull(`/pull/demo/users/${bob.userId}/inbox`);
    check.equal(back.hash, r.hash);
    check.deepEqual(back.data, { extra: 1, msgs: ["hi"] });
  });
});
