// Document author proofs (documents.md §5.4; client.md §5.2) and withKeyring (wire.md §4.3),
// SyncManager with `signer` + `verifyAuthor`, against the embedded default config.
import { after, before, describe, it } from "node:test";
import { createPrivateKey, sign as edSign } from "node:crypto";
import { DocAuthorError, StarfishClient, StarfishHttpError, SyncManager, stableStringify } from "@drakkar.software/starfish-client";
import { bootstrapRootIdentity } from "@drakkar.software/starfish-identities";
import { check, expectError, fresh } from "../lib/check.mjs";
import { startServer } from "../lib/server.mjs";

let srv;
let alice;
let bob;
const capOf = (creds) => ({ getCap: async () => ({ cap: creds.capCert, devEdPrivHex: creds.device.edPriv }) });

// Ed25519 with node:crypto from a raw 32-byte seed (PKCS#8 wrapping).
function edSigner(privHex) {
  const key = createPrivateKey({
    key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), Buffer.from(privHex, "hex")]),
    format: "der",
    type: "pkcs8",
  });
  return (bytes) => new Uint8Array(edSign(null, Buffer.from(bytes), key));
}
const syncSigner = (creds) => ({
  getSigner: async () => ({ devEdPubHex: creds.device.edPub, sign: async (payload) => edSigner(creds.device.edPriv)(payload) }),
});
const authorProof = (creds, data, key) => ({
  authorPubkey: creds.device.edPub,
  authorSignature: Buffer.from(
    edSigner(creds.device.edPriv)(new TextEncoder().encode("starfish-doc-author-v1\n" + stableStringify({ d: data, k: key }))),
  ).toString("base64"),
});

before(async () => {
  srv = await startServer({ memory: false }); // filesystem store
  alice = await bootstrapRootIdentity(`interop author alice ${fresh()}`);
  bob = await bootstrapRootIdentity(`interop author bob ${fresh()}`);
});
after(async () => {
  await srv?.stop();
});

describe("author proofs", () => {
  it("SyncManager with signer stores the proof; verifyAuthor accepts it on pull", async () => {
    const a = new StarfishClient({ baseUrl: srv.base, capProvider: capOf(alice) });
    const pullPath = `/pull/users/${alice.userId}/settings`;
    const pushPath = `/push/users/${alice.userId}/settings`;
    const sm = new SyncManager({ client: a, pullPath, pushPath, signer: syncSigner(alice) }); // verifyAuthor would reject the initial empty doc
    await sm.pull();
    await sm.push({ signed: true, n: [1, 2] });
    const raw = await a.pull(pullPath);
    check.equal(raw.authorPubkey, alice.device.edPub);
    check.equal(typeof raw.authorSignature, "string");
    check.deepEqual(Object.keys(raw), ["data", "hash", "timestamp", "authorPubkey", "authorSignature"]);
    const sm2 = new SyncManager({ client: a, pullPath, pushPath, verifyAuthor: true });
    const r = await sm2.pull();
    check.deepEqual(r.data, { signed: true, n: [1, 2] });
  });

  it("bundle member author proof binds <base>/<member>", async () => {
    const a = new StarfishClient({ baseUrl: srv.base, capProvider: capOf(alice) });
    const base = `users/${alice.userId}/profile`;
    const sm = new SyncManager({
      client: a,
      pullPath: `/pull/${base}/contacts`, // not pulled: only used for the documentKey
      pushPath: `/push/${base}/contacts`,
      signer: syncSigner(alice),
    });
    const r = await sm.push({ friends: ["bob"] });
    const bundle = await a.pull(`/pull/${base}`);
    check.equal(bundle.collections.contacts.hash, r.hash);
    check.deepEqual(Object.keys(bundle.collections.contacts), ["data", "hash"], "no author fields in bundle members");
  });

  it("author must be the presenter → 403; bad signature → 403; partial proof → 400", async () => {
    const a = new StarfishClient({ baseUrl: srv.base, capProvider: capOf(alice) });
    const key = `users/${alice.userId}/settings`;
    const cur = await a.pull(`/pull/${key}`);
    const data = { x: 1 };
    const asBob = authorProof(bob, data, key);
    const e1 = await a.push(`/push/${key}`, data, cur.hash, asBob).catch((e) => e);
    check.ok(e1 instanceof StarfishHttpError);
    check.equal(e1.status, 403);
    check.equal(e1.body, '{"error":"document author must be the request presenter"}');
    const wrongKey = authorProof(alice, data, `users/${alice.userId}/other`);
    const e2 = await a.push(`/push/${key}`, data, cur.hash, wrongKey).catch((e) => e);
    check.equal(e2.status, 403);
    check.equal(e2.body, '{"error":"invalid document author signature"}');
    const e3 = await a.push(`/push/${key}`, data, cur.hash, { authorPubkey: alice.device.edPub }).catch((e) => e);
    check.equal(e3.status, 400);
    check.equal(e3.body, '{"error":"author proof requires authorPubkey and authorSignature"}');
    const ok = await a.push(`/push/${key}`, data, cur.hash, authorProof(alice, data, key));
    check.equal((await a.pull(`/pull/${key}`)).hash, ok.hash);
  });

  it("public collection: anyone's valid proof is accepted (no presenter), proof is returned", async () => {
    const anon = new StarfishClient({ baseUrl: srv.base });
    const key = `public/notes/${fresh("auth")}`;
    const data = { by: "bob" };
    await anon.push(`/push/${key}`, data, null, authorProof(bob, data, key));
    const r = await anon.pull(`/pull/${key}`);
    check.equal(r.authorPubkey, bob.device.edPub);
    const sm = new SyncManager({ client: anon, pullPath: `/pull/${key}`, pushPath: `/push/${key}`, verifyAuthor: true });
    check.deepEqual((await sm.pull()).data, data);
    // sanitised data is what gets signed: a proof over unsanitised data is invalid
    const key2 = `public/notes/${fresh("auth2")}`;
    const dirty = JSON.parse('{"constructor":1,"ok":2}');
    const res = await fetch(`${srv.base}/push/${key2}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ data: dirty, baseHash: null, ...authorProof(bob, dirty, key2) }),
    });
    await expectError(res, 403, "invalid document author signature");
  });

  it("verifyAuthor rejects an unsigned document (client side)", async () => {
    const anon = new StarfishClient({ baseUrl: srv.base });
    const key = `public/notes/${fresh("unsigned")}`;
    await anon.push(`/push/${key}`, { u: 1 }, null);
    const sm = new SyncManager({ client: anon, pullPath: `/pull/${key}`, pushPath: `/push/${key}`, verifyAuthor: true });
    await check.rejects(sm.pull(), DocAuthorError);
  });
});

describe("withKeyring (wire.md §4.3)", () => {
  it("public collection: ?withKeyring=1|true adds keyring:null when the sibling is missing", async () => {
    const anon = new StarfishClient({ baseUrl: srv.base });
    const key = `public/notes/${fresh("kr")}`;
    await anon.push(`/push/${key}`, { k: 1 }, null);
    const r = await anon.pull(`/pull/${key}`, { withKeyring: true });
    check.equal(r.keyring, null);
    check.deepEqual(Object.keys(r), ["data", "hash", "timestamp", "keyring"]);
    for (const q of ["true", "TRUE", "1"]) {
      const body = await (await fetch(`${srv.base}/pull/${key}?withKeyring=${q}`)).text();
      check.ok(body.endsWith(',"keyring":null}'), `${q}: ${body}`);
    }
    for (const q of ["0", "yes", ""]) {
      const body = await (await fetch(`${srv.base}/pull/${key}?withKeyring=${q}`)).json();
      check.equal("keyring" in body, false, q);
    }
  });

  it("self collection with a full-scope device cap keeps the flag", async () => {
    const a = new StarfishClient({ baseUrl: srv.base, capProvider: capOf(alice) });
    const r = await a.pull(`/pull/users/${alice.userId}/settings`, { withKeyring: true, checkpoint: 5 });
    check.equal(r.keyring, null);
  });
});
