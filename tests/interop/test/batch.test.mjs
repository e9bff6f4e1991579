// Batch pull request-level and per-entry errors (wire.md §7), official client + raw fetch.
import { after, before, describe, it } from "node:test";
import { StarfishClient, StarfishHttpError } from "@drakkar.software/starfish-client";
import { check, expectError, expectJson, fresh } from "../lib/check.mjs";
import { startServer } from "../lib/server.mjs";

let srv;
let client;
before(async () => {
  srv = await startServer({ config: "configs/errors.json" });
  client = new StarfishClient({ baseUrl: srv.base });
});
after(async () => {
  await srv?.stop();
});

const httpErr = (status, body) => (e) => {
  if (!(e instanceof StarfishHttpError)) throw e;
  if (e.status !== status) throw new Error(`status ${e.status} != ${status}: ${e.body}`);
  if (e.body !== body) throw new Error(`body ${e.body} != ${body}`);
  return true;
};

describe("batch pull: request-level errors (wire.md §7.2)", () => {
  it("missing or empty collections → 400 Missing collections parameter", async () => {
    await expectError(await fetch(`${srv.base}/batch/pull`), 400, "Missing collections parameter");
    await expectError(await fetch(`${srv.base}/batch/pull?collections=`), 400, "Missing collections parameter");
    await expectError(await fetch(`${srv.base}/batch/pull?Collections=pub`), 400, "Missing collections parameter", "names are case-sensitive");
    await check.rejects(client.batchPull([]), httpErr(400, '{"error":"Missing collections parameter"}'));
  });

  it("collections=,, → 200 {collections:{}}", async () => {
    await expectJson(await fetch(`${srv.base}/batch/pull?collections=,,`), 200, { collections: {} });
  });

  it("more than 100 distinct names → 400 Too many collections; 100 is fine", async () => {
    const names = Array.from({ length: 101 }, (_, i) => `c${i}`);
    await check.rejects(client.batchPull(names), httpErr(400, '{"error":"Too many collections"}'));
    const ok = await client.batchPull(names.slice(0, 100));
    check.equal(Object.keys(ok.collections).length, 100);
    check.deepEqual(ok.collections.c0, [{ error: "Collection not found" }]);
    // duplicates collapse before counting
    const dup = await client.batchPull([...names.slice(0, 100), "c0", " c1 "]);
    check.equal(Object.keys(dup.collections).length, 100);
  });

  it("total reads > 100 → 400 Too many collections", async () => {
    const params = { pub: Array.from({ length: 101 }, (_, i) => ({ id: `x${i}` })) };
    await check.rejects(client.batchPull(["pub"], { params }), httpErr(400, '{"error":"Too many collections"}'));
    const many = await client.batchPullMany("pub", params.pub.slice(0, 100));
    check.equal(many.length, 100);
    // params for a collection not requested do not count towards the total
    const r = await client.batchPull(["fixed"], { params });
    check.equal(r.collections.fixed.length, 1);
    // params[name] = [] counts 0 and yields []
    const e = await client.batchPull(["pub", "fixed"], { params: { pub: [] } });
    check.deepEqual(e.collections.pub, []);
  });

  it("invalid params → 400 Invalid params parameter", async () => {
    for (const p of ["{", "[]", "null", '{"pub":{}}', '{"pub":[1]}', '{"pub":[null]}', '{"pub":[[]]}', '{"other":5}']) {
      const res = await fetch(`${srv.base}/batch/pull?collections=pub&params=${encodeURIComponent(p)}`);
      await expectError(res, 400, "Invalid params parameter", p);
    }
    // empty params= is ignored
    const res = await fetch(`${srv.base}/batch/pull?collections=fixed&params=`);
    check.equal(res.status, 200);
    await res.arrayBuffer();
  });
});

describe("batch pull: per-entry results (wire.md §7.4)", () => {
  it("Collection not found / Missing required path parameter / Forbidden / Invalid path parameter", async () => {
    const id = fresh("b");
    await client.push(`/push/pub/${id}`, { v: 1 }, null);
    const res = await client.batchPull(["pub", "ghost", "privcached", "fixed", "rootdocs"], {
      params: {
        pub: [{ id }, { id: 42 }, { id: true }, { id: "a b" }, { id: "a..b" }, {}, { id, extra: "ignored" }],
        ghost: [{}, {}],
        privcached: [{ identity: "someone" }, {}],
        rootdocs: [{ identity: "someone" }],
      },
    });
    check.deepEqual(Object.keys(res.collections), ["pub", "ghost", "privcached", "fixed", "rootdocs"]);
    const pub = res.collections.pub;
    check.equal(pub.length, 7);
    check.deepEqual(pub[0].data, { v: 1 });
    check.deepEqual(Object.keys(pub[0]), ["data", "hash", "timestamp"]);
    check.deepEqual(pub[1].data, {}, "number param stringified (pub/42 is empty)");
    check.deepEqual(pub[2], { error: "Missing required path parameter" }, "boolean param is missing");
    check.deepEqual(pub[3], { error: "Invalid path parameter" });
    check.deepEqual(pub[4], { error: "Invalid path parameter" }, "unsafe key (..)");
    check.deepEqual(pub[5], { error: "Missing required path parameter" });
    check.deepEqual(pub[6].data, { v: 1 });
    check.deepEqual(res.collections.ghost, [{ error: "Collection not found" }, { error: "Collection not found" }]);
    check.deepEqual(res.collections.privcached, [{ error: "Forbidden" }, { error: "Missing required path parameter" }]);
    check.equal(res.collections.fixed.length, 1);
    check.deepEqual(res.collections.rootdocs, [{ error: "Forbidden" }]);
  });

  it("number params use JS number→string formatting (wire.md §7.4 step 2)", async () => {
    // push documents at the keys JS would produce, then address them with JSON numbers
    const cases = [[1e-7, "1e-7"], [1.5, "1.5"], [-0, "0"], [100, "100"], [123456789012345680000, "123456789012345680000"], [0.1 + 0.2, "0.30000000000000004"]];
    for (const [, key] of cases) {
      const res = await fetch(`${srv.base}/pull/pub/${key}`);
      const cur = await res.json();
      await client.push(`/push/pub/${key}`, { key }, cur.hash === "" ? null : cur.hash);
    }
    // raw query so the JSON numbers are exactly as written
    const params = `{"pub":[{"id":1e-7},{"id":1.50},{"id":-0},{"id":1E2},{"id":123456789012345678901},{"id":0.30000000000000004},{"id":1e21}]}`;
    const res = await fetch(`${srv.base}/batch/pull?collections=pub&params=${encodeURIComponent(params)}`);
    check.equal(res.status, 200);
    const body = await res.json();
    const got = body.collections.pub;
    for (let i = 0; i < cases.length; i++) check.deepEqual(got[i].data, { key: cases[i][1] }, `number ${cases[i][1]}`);
    check.deepEqual(got[6], { error: "Invalid path parameter" }, "1e21 → \"1e+21\" has a +");
  });

  it("_keyring / _members keys are denied even for public collections (wire.md §7.4 step 11)", async () => {
    const res = await client.batchPullMany("pub", [{ id: "_keyring" }, { id: "_members" }, { id: "x_keyring" }]);
    check.deepEqual(res[0], { error: "Forbidden" });
    check.deepEqual(res[1], { error: "Forbidden" });
    check.equal(res[2].hash, "");
  });

  it("namespaced batch searches only the namespace (wire.md §2.3)", async () => {
    const ns = new StarfishClient({ baseUrl: srv.origin, namespace: "ns1" });
    const id = fresh("n");
    await ns.push(`/push/ns1/pub/${id}`, { ns: 1 }, null);
    const r = await ns.batchPull(["pub", "fixed"], { params: { pub: [{ id }] } });
    check.deepEqual(r.collections.pub[0].data, { ns: 1 });
    check.deepEqual(r.collections.fixed, [{ error: "Collection not found" }]);
    const root = await client.batchPullMany("pub", [{ id }]);
    check.deepEqual(root[0].data, {}, "root pub is pub/{id}, a different key");
  });

  it("raw query: + is a space, %2C a comma, names trimmed, first occurrence wins (wire.md §1.4, §7.1)", async () => {
    const res = await fetch(`${srv.base}/batch/pull?collections=fixed%2C+ghost+&collections=pub`);
    check.equal(res.status, 200);
    const body = await res.json();
    check.deepEqual(Object.keys(body.collections), ["fixed", "ghost"]);
    check.deepEqual(body.collections.ghost, [{ error: "Collection not found" }]);
    check.equal(body.collections.fixed[0].hash, "");
  });
});
