// Append-only collections (spec README EXTENDED "Append-only collections", "Batch appendParams")
// through the official client's append helpers: append, appendAnonymous, pull with
// since/last/limit/full, AppendLogCursor (cold and warm start, author verification),
// batchPull appendParams / batchPullManyAppend. Filesystem store, chunked and single logs.
import { after, before, describe, it } from "node:test";
import {
  AppendAuthorError,
  AppendHttpError,
  AppendLogCursor,
  StarfishClient,
  StarfishHttpError,
  checkpointOf,
} from "@drakkar.software/starfish-client";
import { bootstrapRootIdentity } from "@drakkar.software/starfish-identities";
import { signAppendAuthor } from "@drakkar.software/starfish-protocol";
import { check, expectError, fresh, HEX64 } from "../lib/check.mjs";
import { startServer } from "../lib/server.mjs";

let srv;
let alice;
let bob;
let anon;
const capOf = (creds) => ({ getCap: async () => ({ cap: creds.capCert, devEdPrivHex: creds.device.edPriv }) });
const signerOf = (creds) => ({ edPubHex: creds.device.edPub, edPrivHex: creds.device.edPriv });

const httpErr = (status, body) => (e) => {
  if (!(e instanceof StarfishHttpError)) throw e;
  if (e.status !== status) throw new Error(`status ${e.status} != ${status}: ${e.body}`);
  if (e.body !== body) throw new Error(`body ${e.body} != ${body}`);
  return true;
};

before(async () => {
  srv = await startServer({ config: "configs/append.json", memory: false });
  alice = await bootstrapRootIdentity(`interop append alice ${fresh()}`);
  bob = await bootstrapRootIdentity(`interop append bob ${fresh()}`);
  anon = new StarfishClient({ baseUrl: srv.base });
});
after(async () => {
  await srv?.stop();
});

describe("append with a cap: author proof bound to the presenter", () => {
  it("append → {hash, timestamp}; pull since/last/limit/full; chunked storage reads the same", async () => {
    const a = new StarfishClient({ baseUrl: srv.base, capProvider: capOf(alice) });
    const day = fresh("day");
    const push = `/push/events/${alice.userId}/${day}`;
    const pull = `/pull/events/${alice.userId}/${day}`;
    const stamps = [];
    for (let i = 0; i < 10; i++) {
      const r = await a.append(push, { i, text: `event ${i}` });
      check.match(r.hash, HEX64);
      check.equal(typeof r.timestamp, "number");
      stamps.push(r.timestamp);
    }
    check.ok(stamps.every((t, i) => i === 0 || t > stamps[i - 1]), "timestamps strictly increase");
    const all = await a.pull(pull, { full: true });
    check.deepEqual(all.map((e) => e.data.i), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    check.deepEqual(all.map((e) => e.ts), stamps);
    check.ok(all.every((e) => e.authorPubkey === alice.device.edPub && typeof e.authorSignature === "string"));
    check.deepEqual((await a.pull(pull, { since: stamps[6] })).map((e) => e.data.i), [7, 8, 9]);
    check.deepEqual((await a.pull(pull, { last: 2 })).map((e) => e.data.i), [8, 9]);
    check.deepEqual((await a.pull(pull, { limit: 3, last: 1 })).map((e) => e.data.i), [7, 8, 9], "limit wins");
    check.deepEqual((await a.pull(pull, { since: stamps[2], last: 1 })).map((e) => e.data.i), [9]);
    check.deepEqual(await a.pull(pull, { since: stamps[9] }), []);
    // an unbounded pull is refused; the client refuses full + bounds itself
    await check.rejects(a.pull(pull, {}), httpErr(400, '{"error":"pull_bound_required"}'));
    await check.rejects(a.pull(pull, { full: true, last: 1 }), /full cannot be combined/);
    // a client ts must exceed the last one
    await check.rejects(a.append(push, { late: true }, { ts: stamps[9] }), httpErr(409, '{"error":"non_monotonic_timestamp"}'));
    const r = await a.append(push, { late: false }, { ts: stamps[9] + 1 });
    check.equal(r.timestamp, stamps[9] + 1);
    // another identity has no access to alice's log
    const b = new StarfishClient({ baseUrl: srv.base, capProvider: capOf(bob) });
    await check.rejects(b.append(push, { x: 1 }), httpErr(403, '{"error":"Forbidden"}'));
  });

  it("a proof by another key than the presenter's is refused", async () => {
    const a = new StarfishClient({ baseUrl: srv.base, capProvider: capOf(alice) });
    const day = fresh("day");
    const key = `events/${alice.userId}/${day}`;
    // alice's cap signs the request, bob's key the element (client.push sends the proof as given)
    const proof = signAppendAuthor(key, { x: 1 }, bob.device.edPub, bob.device.edPriv);
    await check.rejects(
      a.push(`/push/${key}`, { x: 1 }, null, proof),
      httpErr(403, '{"error":"append author must be the request presenter"}'),
    );
    const own = signAppendAuthor(key, { x: 1 }, alice.device.edPub, alice.device.edPriv);
    const r = await a.push(`/push/${key}`, { x: 1 }, null, own);
    check.match(r.hash, HEX64);
  });
});

describe("AppendLogCursor", () => {
  it("cold start pulls everything (full=true), then only what is new; verifyAuthor checks every element", async () => {
    const a = new StarfishClient({ baseUrl: srv.base, capProvider: capOf(alice) });
    const day = fresh("day");
    const push = `/push/events/${alice.userId}/${day}`;
    const pullPath = `/pull/events/${alice.userId}/${day}`;
    for (let i = 0; i < 6; i++) await a.append(push, { i });
    const cursor = new AppendLogCursor({
      client: a,
      pullPath,
      verifyAuthor: { expectedAuthorPubkey: alice.device.edPub.toUpperCase() },
    });
    const first = await cursor.pull();
    check.deepEqual(first.map((e) => e.data.i), [0, 1, 2, 3, 4, 5]);
    check.equal(cursor.getCheckpoint(), checkpointOf(first));
    check.deepEqual(await cursor.pull(), []);
    await a.append(push, { i: 6 });
    await a.append(push, { i: 7 });
    // concurrent pulls are serialised by the cursor: no element twice
    const [x, y] = await Promise.all([cursor.pull(), cursor.pull()]);
    check.deepEqual([...x, ...y].map((e) => e.data.i), [6, 7]);
    check.deepEqual(cursor.getItems().map((e) => e.data.i), [0, 1, 2, 3, 4, 5, 6, 7]);
    // warm start from persisted items
    const warm = new AppendLogCursor({ client: a, pullPath, initialItems: cursor.getItems().slice(0, 3) });
    check.deepEqual((await warm.pull()).map((e) => e.data.i), [3, 4, 5, 6, 7]);
    // a verifier expecting bob rejects alice's elements
    const strict = new AppendLogCursor({ client: a, pullPath, verifyAuthor: { expectedAuthorPubkey: bob.device.edPub } });
    await check.rejects(strict.pull(), AppendAuthorError);
  });

  it("a custom appendField on a public log", async () => {
    const id = fresh("box");
    await anon.appendAnonymous(`/push/inbox/${id}`, { hello: "a" }, signerOf(bob));
    await anon.appendAnonymous(`/push/inbox/${id}`, { hello: "b" }, signerOf(alice));
    const cursor = new AppendLogCursor({ client: anon, pullPath: `/pull/inbox/${id}`, appendField: "messages", verifyAuthor: true });
    const got = await cursor.pull();
    check.deepEqual(got.map((e) => [e.data.hello, e.authorPubkey]), [["a", bob.device.edPub], ["b", alice.device.edPub]]);
  });
});

describe("appendAnonymous and requireAuthorSignature", () => {
  it("a public log takes signed anonymous appends and refuses unsigned ones", async () => {
    const id = fresh("box");
    await anon.appendAnonymous(`/push/inbox/${id}`, { n: 1 }, signerOf(bob));
    await check.rejects(
      anon.append(`/push/inbox/${id}`, { n: 2 }),
      httpErr(400, '{"error":"append requires authorPubkey and authorSignature"}'),
    );
    // the proof binds the document key
    const wrongKey = new StarfishClient({ baseUrl: srv.base, fetch: (url, init) => fetch(url.replace(id, `${id}x`), init) });
    await check.rejects(
      wrongKey.appendAnonymous(`/push/inbox/${id}`, { n: 3 }, signerOf(bob)),
      (e) => e instanceof AppendHttpError && e.status === 403 && /invalid append author signature/.test(e.message),
    );
    const items = await anon.pull(`/pull/inbox/${id}`, { appendField: "messages", full: true });
    check.deepEqual(items.map((e) => e.data), [{ n: 1 }]);
  });

  it("requireAuthorSignature: false takes unsigned appends; maxItems, maxPullLimit, allowFull, maxCheckpointAgeMs", async () => {
    const id = fresh("o");
    const t0 = Date.now();
    for (let i = 0; i < 5; i++) await anon.append(`/push/open/${id}`, { i });
    await check.rejects(anon.append(`/push/open/${id}`, { i: 5 }), httpErr(409, '{"error":"append_limit_exceeded","limit":5}'));
    check.deepEqual((await anon.pull(`/pull/open/${id}`, { last: 100 })).map((e) => e.data.i), [2, 3, 4], "clamped to maxPullLimit");
    check.deepEqual((await anon.pull(`/pull/open/${id}`, { since: t0 - 1 })).length, 5);
    await check.rejects(anon.pull(`/pull/open/${id}`, { full: true }), httpErr(400, '{"error":"full_not_allowed"}'));
    await check.rejects(anon.pull(`/pull/open/${id}`, { since: 1 }), httpErr(400, '{"error":"checkpoint_too_old"}'));
    const res = await fetch(`${srv.base}/pull/open/${id}?last=1`);
    check.equal(res.headers.get("cache-control"), "max-age=3");
    const etag = res.headers.get("etag");
    check.match(etag, /^"[0-9a-f]{64}"$/);
    check.equal((await fetch(`${srv.base}/pull/open/${id}?last=1`, { headers: { "If-None-Match": etag } })).status, 304);
  });

  it("persist: false answers a hash and stores nothing", async () => {
    const id = fresh("q");
    const r = await anon.append(`/push/queue/${id}`, { job: 1 }, { ts: 42 });
    check.match(r.hash, HEX64);
    check.equal(r.timestamp, 42);
    const doc = await anon.pull(`/pull/queue/${id}`);
    check.deepEqual(doc.data, {});
    check.equal(doc.hash, "");
  });
});

describe("batch pull appendParams", () => {
  it("batchPullManyAppend reads bounded tails per entry; errors are per entry", async () => {
    const ids = [fresh("x"), fresh("y")];
    for (const id of ids) for (let i = 0; i < 4; i++) await anon.appendAnonymous(`/push/inbox/${id}`, { id, i }, signerOf(bob));
    const tails = await anon.batchPullManyAppend("inbox", [
      { params: { id: ids[0] }, options: { last: 2, appendField: "messages" } },
      { params: { id: ids[1] }, options: { limit: 1, appendField: "messages" } },
      { params: { id: ids[1] }, options: { appendField: "messages" } },
    ]);
    check.deepEqual(tails[0].map((e) => e.data.i), [2, 3]);
    check.deepEqual(tails[1].map((e) => e.data.i), [3]);
    check.deepEqual(tails[2], { error: "pull_bound_required" });
    const since = (await anon.pull(`/pull/inbox/${ids[0]}`, { appendField: "messages", last: 4 }))[1].ts;
    const r = await anon.batchPull(["inbox", "notes"], {
      params: { inbox: [{ id: ids[0] }], notes: [{ id: "n" }] },
      appendParams: { inbox: [{ since }], notes: [{ last: 1 }] },
    });
    check.deepEqual(r.collections.inbox[0].data.messages.map((e) => e.data.i), [2, 3]);
    check.match(r.collections.inbox[0].hash, HEX64);
    check.deepEqual(r.collections.notes, [{ error: "append_params_not_supported" }]);
    await check.rejects(
      anon.batchPull(["inbox"], { params: { inbox: [{ id: ids[0] }] }, appendParams: { inbox: [{}, {}] } }),
      httpErr(400, '{"error":"appendParams length mismatch: must equal params length for each collection"}'),
    );
    await expectError(
      await fetch(`${srv.base}/batch/pull?collections=inbox&appendParams=${encodeURIComponent('{"inbox":[{"full":true}]}')}`),
      400,
      'appendParams["inbox"]: full is not allowed in batch pull',
    );
    const six = Array.from({ length: 6 }, () => ({ id: ids[0] }));
    await check.rejects(
      anon.batchPull(["inbox"], { params: { inbox: six }, appendParams: { inbox: six.map(() => ({})) } }),
      httpErr(400, '{"error":"Batch append element budget exceeded"}'),
    );
  });
});
