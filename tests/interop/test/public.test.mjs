// Public JSON collection (`notes`, public/notes/{id}) with the official client,
// anonymous. Spec: wire.md §4, §5, §8; documents.md §5, §7; client.md §4, §5.
import { after, before, describe, it } from "node:test";
import { ConflictError, StarfishClient, SyncManager, computeHash } from "@drakkar.software/starfish-client";
import { HEX64, check, expectError, fresh } from "../lib/check.mjs";
import { startServer } from "../lib/server.mjs";

let srv;
let client;
before(async () => {
  srv = await startServer();
  client = new StarfishClient({ baseUrl: srv.base + "/" }); // one trailing slash is removed (client.md §1)
});
after(async () => {
  await srv?.stop();
});

describe("health", () => {
  it("GET /v1/health → 200 {ok:true,ts} (wire.md §8)", async () => {
    const before = Date.now();
    const res = await fetch(`${srv.base}/health`);
    check.equal(res.status, 200);
    check.equal(res.headers.get("content-type"), "application/json");
    const text = await res.text();
    check.match(text, /^\{"ok":true,"ts":\d+\}$/);
    const ts = JSON.parse(text).ts;
    check.ok(ts >= before - 5000 && ts <= Date.now() + 5000, "ts is the server clock in ms");
  });
});

describe("public pull / push / ETag", () => {
  const id = fresh("note");
  const path = `public/notes/${id}`;
  let created;

  it("pull of a missing document is 200 with an empty document, no ETag (wire.md §4.2)", async () => {
    const r = await client.pull(`/pull/${path}`);
    check.deepEqual(r.data, {});
    check.equal(r.hash, "");
    check.equal(typeof r.timestamp, "number");
    check.ok(Math.abs(r.timestamp - Date.now()) < 60000, "timestamp is now");
    const raw = await fetch(`${srv.base}/pull/${path}`);
    check.equal(raw.status, 200);
    check.equal(raw.headers.get("etag"), null);
    check.equal(raw.headers.get("cache-control"), null);
    check.match(await raw.text(), /^\{"data":\{\},"hash":"","timestamp":\d+\}$/);
  });

  it("push create with baseHash null → {hash,timestamp} (wire.md §5.3)", async () => {
    const data = { title: "hello", n: 1, nested: { a: [1, 2, { b: null }] } };
    created = await client.push(`/push/${path}`, data, null);
    check.match(created.hash, HEX64);
    check.equal(created.hash, await computeHash(data), "hash = sha256(stableStringify(data))");
    check.equal(typeof created.timestamp, "number");
    check.deepEqual(Object.keys(created), ["hash", "timestamp"]);
  });

  it("pull back returns the data and the same hash, with an ETag", async () => {
    const r = await client.pull(`/pull/${path}`);
    check.deepEqual(r.data, { title: "hello", n: 1, nested: { a: [1, 2, { b: null }] } });
    check.equal(r.hash, created.hash);
    check.ok(r.timestamp >= created.timestamp, "pull timestamp is the pull time");
    check.equal(r.authorPubkey, undefined);
    const raw = await fetch(`${srv.base}/pull/${path}`);
    check.equal(raw.status, 200);
    check.equal(raw.headers.get("content-type"), "application/json");
    check.equal(raw.headers.get("etag"), `"${created.hash}"`);
    const body = await raw.text();
    check.ok(body.startsWith(`{"data":{"title":"hello","n":1,"nested":{"a":[1,2,{"b":null}]}},"hash":"${created.hash}","timestamp":`), body);
  });

  it("If-None-Match equal to the ETag → 304, empty body, no ETag (wire.md §1.2, §4.1 step 11)", async () => {
    const res = await fetch(`${srv.base}/pull/${path}`, { headers: { "If-None-Match": `"${created.hash}"` } });
    check.equal(res.status, 304);
    check.equal(await res.text(), "");
    check.equal(res.headers.get("etag"), null);
    check.equal(res.headers.get("content-type"), null);
  });

  it("weak or unquoted If-None-Match never matches → 200", async () => {
    for (const inm of [`W/"${created.hash}"`, created.hash, `"${created.hash}", "x"`]) {
      const res = await fetch(`${srv.base}/pull/${path}`, { headers: { "If-None-Match": inm } });
      check.equal(res.status, 200, inm);
      await res.arrayBuffer();
    }
  });

  it("checkpoint query is accepted and ignored (wire.md §4.1)", async () => {
    const r = await client.pull(`/pull/${path}`, 12345);
    check.equal(r.hash, created.hash);
  });

  it("push with a stale baseHash → ConflictError (409 hash_mismatch, no currentHash)", async () => {
    const err = await client.push(`/push/${path}`, { title: "x" }, "0".repeat(64)).then(
      () => null,
      (e) => e,
    );
    check.ok(err instanceof ConflictError, `expected ConflictError, got ${err}`);
    check.equal(err.message, "hash_mismatch");
    check.equal(err.currentHash, "", "server must not send currentHash (wire.md §5.3)");
  });

  it("raw 409 body is exactly {\"error\":\"hash_mismatch\"}; create-only null on existing doc → 409", async () => {
    for (const baseHash of [null, "", "deadbeef"]) {
      const res = await fetch(`${srv.base}/push/${path}`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ data: { x: 1 }, baseHash }),
      });
      await expectError(res, 409, "hash_mismatch", `baseHash ${JSON.stringify(baseHash)}`);
    }
    const body = JSON.stringify({ data: { x: 1 } }); // absent baseHash = null
    const res = await fetch(`${srv.base}/push/${path}`, { method: "POST", headers: { "Content-Type": "application/json" }, body });
    await expectError(res, 409, "hash_mismatch", "absent baseHash");
  });

  it("push with the right baseHash updates; identical data gives the same hash (documents.md §5.2)", async () => {
    const r1 = await client.push(`/push/${path}`, { title: "v2" }, created.hash);
    check.equal(r1.hash, await computeHash({ title: "v2" }));
    const r2 = await client.push(`/push/${path}`, { title: "v2" }, r1.hash);
    check.equal(r2.hash, r1.hash);
    check.ok(r2.timestamp >= r1.timestamp);
    const p = await client.pull(`/pull/${path}`);
    check.deepEqual(p.data, { title: "v2" });
  });

  it("baseHash \"\" creates a missing document (documents.md §5.2)", async () => {
    const r = await client.push(`/push/public/notes/${fresh("empty")}`, { a: 1 }, "");
    check.match(r.hash, HEX64);
    await check.rejects(
      client.push(`/push/public/notes/${fresh("other")}`, { a: 1 }, "f".repeat(64)),
      ConflictError,
    );
  });

  it("unsafe keys are sanitised before hashing and storing (documents.md §5.1)", async () => {
    const p2 = `public/notes/${fresh("san")}`;
    const body = '{"data":{"__proto__":{"x":1},"constructor":1,"k":{"prototype":2,"z":3},"arr":[{"constructor":2}]},"baseHash":null}';
    const res = await fetch(`${srv.base}/push/${p2}`, { method: "POST", headers: { "Content-Type": "application/json" }, body });
    check.equal(res.status, 200);
    const { hash } = await res.json();
    const expected = JSON.parse('{"k":{"z":3},"arr":[{"constructor":2}]}');
    check.equal(hash, await computeHash(expected));
    const pulled = await (await fetch(`${srv.base}/pull/${p2}`)).text();
    check.ok(pulled.startsWith('{"data":{"k":{"z":3},"arr":[{"constructor":2}]},"hash":'), pulled);
  });
});

describe("SyncManager", () => {
  it("pull → push → update round trip", async () => {
    const id = fresh("sm");
    const sm = new SyncManager({ client, pullPath: `/pull/public/notes/${id}`, pushPath: `/push/public/notes/${id}` });
    const first = await sm.pull();
    check.deepEqual(first.data, {});
    check.equal(first.hash, "");
    // lastHash "" → baseHash "" is accepted on a missing doc (client.md §5.2)
    const pushed = await sm.push({ a: 1 });
    check.match(pushed.hash, HEX64);
    const updated = await sm.update((d) => ({ ...d, b: 2 }));
    check.equal(updated.hash, await computeHash({ a: 1, b: 2 }));
    const r = await client.pull(`/pull/public/notes/${id}`);
    check.deepEqual(r.data, { a: 1, b: 2 });
  });

  it("a fresh manager pushing to an existing doc gets 409, pulls, deep-merges (server wins) and retries", async () => {
    const id = fresh("conflict");
    const pullPath = `/pull/public/notes/${id}`;
    const pushPath = `/push/public/notes/${id}`;
    const a = new SyncManager({ client, pullPath, pushPath });
    const b = new SyncManager({ client, pullPath, pushPath });
    await a.push({ shared: "from-a", onlyA: 1, deep: { x: 1 } });
    // b has lastHash null → create-only push → 409 → resolve with deepMerge
    let pushes = 0;
    const countingClient = new StarfishClient({
      baseUrl: srv.base,
      fetch: (url, init) => {
        if (init?.method === "POST") pushes += 1;
        return fetch(url, init);
      },
    });
    const b2 = new SyncManager({ client: countingClient, pullPath, pushPath });
    const res = await b2.push({ shared: "from-b", onlyB: 2, deep: { y: 2 } });
    check.equal(pushes, 2, "one conflicting push, one successful retry");
    const server = await client.pull(pullPath);
    check.equal(server.hash, res.hash);
    check.deepEqual(server.data, { shared: "from-a", onlyB: 2, deep: { y: 2, x: 1 }, onlyA: 1 });
    // a's hash is now stale: a plain push conflicts, SyncManager resolves again
    const res2 = await a.push({ shared: "a2" });
    const after = await client.pull(pullPath);
    check.equal(after.hash, res2.hash);
    check.equal(after.data.shared, "from-a", "server value wins on a shared key (documents.md §7)");
    check.equal(after.data.onlyB, 2);
    void b;
  });

  it("custom onConflict resolver result is what gets pushed", async () => {
    const id = fresh("resolver");
    const pullPath = `/pull/public/notes/${id}`;
    const pushPath = `/push/public/notes/${id}`;
    await client.push(pushPath, { count: 5 }, null);
    const sm = new SyncManager({
      client,
      pullPath,
      pushPath,
      onConflict: (local, remote) => ({ count: (remote.count ?? 0) + (local.count ?? 0) }),
    });
    await sm.push({ count: 1 });
    const r = await client.pull(pullPath);
    check.deepEqual(r.data, { count: 6 });
  });
});

describe("wire details", () => {
  it("concurrent pushes with the same baseHash: exactly one 200 and one 409 (documents.md §5.3)", async () => {
    const path = `public/notes/${fresh("race")}`;
    const base = await client.push(`/push/${path}`, { v: 0 }, null);
    for (let round = 0; round < 5; round++) {
      const cur = await client.pull(`/pull/${path}`);
      const results = await Promise.allSettled(
        Array.from({ length: 4 }, (_, i) => client.push(`/push/${path}`, { v: round, who: i }, cur.hash)),
      );
      const ok = results.filter((r) => r.status === "fulfilled").length;
      const conflicts = results.filter((r) => r.status === "rejected" && r.reason instanceof ConflictError).length;
      check.equal(ok, 1, `round ${round}: one winner`);
      check.equal(conflicts, 3, `round ${round}: three conflicts`);
    }
    void base;
  });

  it("data key order: array-index keys first ascending, then insertion order (wire.md §1.1)", async () => {
    const path = `public/notes/${fresh("order")}`;
    const body = '{"data":{"b":1,"10":"ten","a":2,"2":"two","-1":"neg","01":"lead"},"baseHash":null}';
    const res = await fetch(`${srv.base}/push/${path}`, { method: "POST", headers: { "Content-Type": "application/json" }, body });
    check.equal(res.status, 200);
    const { hash } = await res.json();
    check.equal(hash, await computeHash(JSON.parse(body).data));
    const text = await (await fetch(`${srv.base}/pull/${path}`)).text();
    check.ok(text.startsWith('{"data":{"2":"two","10":"ten","b":1,"a":2,"-1":"neg","01":"lead"},"hash":'), text);
  });

  it("unicode and number formatting hash like the client's stableStringify", async () => {
    const path = `public/notes/${fresh("uni")}`;
    const data = { s: "é😀\u2028\"\\", f: 1.5, big: 1e21, small: 1e-7, neg: -0.0001, int: 12345678901234, nul: null, t: true };
    const r = await client.push(`/push/${path}`, data, null);
    check.equal(r.hash, await computeHash(data));
    const back = await client.pull(`/pull/${path}`);
    check.deepEqual(back.data, data);
  });

  it("HEAD on a pull: 200, ETag, no body (wire.md §1.2)", async () => {
    const path = `public/notes/${fresh("head")}`;
    const { hash } = await client.push(`/push/${path}`, { h: 1 }, null);
    const res = await fetch(`${srv.base}/pull/${path}`, { method: "HEAD" });
    check.equal(res.status, 200);
    check.equal(res.headers.get("etag"), `"${hash}"`);
    check.equal(await res.text(), "");
  });
});
