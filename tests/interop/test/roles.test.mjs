// Bundles with pullOnly/pushOnly/mixed-role members and cap:<op>:<col> roles
// (wire.md §3, §6; auth.md §10; config.md §2). Config: configs/errors.json.
import { after, before, describe, it } from "node:test";
import { StarfishClient, StarfishHttpError } from "@drakkar.software/starfish-client";
import { bootstrapRootIdentity, generateDeviceKeys, mintDeviceCap } from "@drakkar.software/starfish-identities";
import { HEX64, check, expectError, expectText404, fresh } from "../lib/check.mjs";
import { startServer } from "../lib/server.mjs";

let srv;
let root;
let anon;
let rootClient;
before(async () => {
  srv = await startServer({ config: "configs/errors.json" });
  root = await bootstrapRootIdentity(`interop roles ${fresh()}`);
  anon = new StarfishClient({ baseUrl: srv.base });
  rootClient = new StarfishClient({
    baseUrl: srv.base,
    capProvider: { getCap: async () => ({ cap: root.capCert, devEdPrivHex: root.device.edPriv }) },
  });
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

describe("public bundle with pullOnly / pushOnly members (wire.md §6)", () => {
  it("member pushes: pullOnly member has no push route; pushOnly member is still pulled (quirk)", async () => {
    const id = fresh("kit");
    const ra = await anon.push(`/push/kits/${id}/a`, { a: 1 }, null);
    const rb = await anon.push(`/push/kits/${id}/b`, { b: 2 }, null);
    check.match(ra.hash, HEX64);
    await expectText404(
      await fetch(`${srv.base}/push/kits/${id}/c`, { method: "POST", headers: { "Content-Type": "application/json" }, body: '{"data":{}}' }),
      "push to a pullOnly member",
    );
    const bundle = await anon.pull(`/pull/kits/${id}`);
    check.deepEqual(bundle.collections, { a: { data: { a: 1 }, hash: ra.hash }, b: { data: { b: 2 }, hash: rb.hash }, c: { data: {}, hash: "" } });
    check.equal(typeof bundle.timestamp, "number");
    await expectText404(await fetch(`${srv.base}/pull/kits/${id}/a`), "no member pull route");
    await expectText404(await fetch(`${srv.base}/push/kits/${id}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: '{"data":{}}' }), "no base push route");
    await expectText404(await fetch(`${srv.base}/push/kits/${id}/zzz`, { method: "POST", headers: { "Content-Type": "application/json" }, body: '{"data":{}}' }), "unknown member");
  });

  it("bundle pull: no ETag / Cache-Control; member push errors match §5", async () => {
    const id = fresh("kit2");
    const res = await fetch(`${srv.base}/pull/kits/${id}`, { headers: { "If-None-Match": '""' } });
    check.equal(res.status, 200);
    check.equal(res.headers.get("etag"), null);
    check.match(await res.text(), /^\{"collections":\{"a":\{"data":\{\},"hash":""\},"b":\{"data":\{\},"hash":""\},"c":\{"data":\{\},"hash":""\}\},"timestamp":\d+\}$/);
    await expectError(
      await fetch(`${srv.base}/push/kits/${id}/a`, { method: "POST", headers: { "Content-Type": "text/plain" }, body: '{"data":{}}' }),
      415,
      "Content-Type must be application/json",
    );
    await expectError(
      await fetch(`${srv.base}/push/kits/${id}/a`, { method: "POST", headers: { "Content-Type": "application/json" }, body: '{"data":5}' }),
      400,
      "Missing or invalid data",
    );
    await expectError(await fetch(`${srv.base}/pull/kits/a%20b`), 400, "Invalid path parameter");
  });
});

describe("mixed-role bundle and cap:<op>:<col> roles (auth.md §10)", () => {
  it("anonymous sees only the public member; root cap (cap:read:*) sees both", async () => {
    const id = fresh("mixed");
    await anon.push(`/push/mixed/${id}/open`, { o: 1 }, null);
    await check.rejects(anon.push(`/push/mixed/${id}/closed`, { c: 1 }, null), httpErr(403, '{"error":"Forbidden"}'));
    const w = await rootClient.push(`/push/mixed/${id}/closed`, { c: 1 }, null);
    const a = await anon.pull(`/pull/mixed/${id}`);
    check.deepEqual(Object.keys(a.collections), ["open"]);
    const r = await rootClient.pull(`/pull/mixed/${id}`);
    check.deepEqual(r.collections.closed, { data: { c: 1 }, hash: w.hash });
    check.deepEqual(r.collections.open.data, { o: 1 });
  });

  it("a cap with ops [\"list\"] only (cap:list:*) skips the cap:read:* member", async () => {
    const dev = generateDeviceKeys();
    const cap = await mintDeviceCap(root.device.edPriv, root.device.edPub, { edPubHex: dev.edPub, kemPubHex: dev.kemPub }, { ops: ["list"], collections: ["*"] });
    const c = new StarfishClient({ baseUrl: srv.base, capProvider: { getCap: async () => ({ cap, devEdPrivHex: dev.edPriv }) } });
    const r = await c.pull(`/pull/mixed/${fresh()}`);
    check.deepEqual(Object.keys(r.collections), ["open"]);
  });

  it("cap:read:<col> is literal: collections [\"*\"] does not grant cap:read:capnotes (quirk)", async () => {
    const id = fresh("cn");
    await check.rejects(rootClient.pull(`/pull/capnotes/${id}`), httpErr(403, '{"error":"Forbidden"}'));
    const dev = generateDeviceKeys();
    const cap = await mintDeviceCap(root.device.edPriv, root.device.edPub, { edPubHex: dev.edPub, kemPubHex: dev.kemPub }, { ops: ["read"], collections: ["capnotes"] });
    const c = new StarfishClient({ baseUrl: srv.base, capProvider: { getCap: async () => ({ cap, devEdPrivHex: dev.edPriv }) } });
    const r = await c.pull(`/pull/capnotes/${id}`);
    check.equal(r.hash, "");
    // ops ["read"] gives no cap:write:capnotes
    await check.rejects(c.push(`/push/capnotes/${id}`, { x: 1 }, null), httpErr(403, '{"error":"Forbidden"}'));
    const b = await c.batchPullMany("capnotes", [{ id }]);
    check.equal(b[0].hash, "");
    const b2 = await rootClient.batchPullMany("capnotes", [{ id }]);
    check.deepEqual(b2, [{ error: "Forbidden" }]);
  });

  it("rootOnly needs device:root: a paired device (iss != sub) is refused", async () => {
    const dev = generateDeviceKeys();
    const cap = await mintDeviceCap(root.device.edPriv, root.device.edPub, { edPubHex: dev.edPub, kemPubHex: dev.kemPub }, { ops: ["read", "write"], collections: ["*"] });
    const c = new StarfishClient({ baseUrl: srv.base, capProvider: { getCap: async () => ({ cap, devEdPrivHex: dev.edPriv }) } });
    await check.rejects(c.pull(`/pull/rootdocs/${root.userId}`), httpErr(403, '{"error":"Forbidden"}'));
    const ok = await rootClient.pull(`/pull/rootdocs/${root.userId}`);
    check.equal(typeof ok.timestamp, "number");
  });
});
