// EXTENDED config features through the official client against the release binary:
// objectSchema (answers compared with Ajv run here, the way the official server runs it),
// fieldPermissions, restrictions, and --revocations fed with lists made by the official
// buildRevocationList.
import { after, before, describe, it } from "node:test";
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { StarfishClient, StarfishHttpError } from "@drakkar.software/starfish-client";
import { bootstrapRootIdentity, generateDeviceKeys, mintDeviceCap } from "@drakkar.software/starfish-identities";
import { buildRevocationList } from "@drakkar.software/starfish-protocol";
import { officialAnswer, vectors } from "../ajv/generate.mjs";
import { INTEROP_DIR } from "../lib/server.mjs";
import { check, fresh } from "../lib/check.mjs";
import { startServer } from "../lib/server.mjs";

const PROFILE_SCHEMA = {
  type: "object",
  required: ["name"],
  additionalProperties: false,
  properties: {
    name: { type: "string", minLength: 1 },
    age: { type: "integer", minimum: 0 },
    secret: { type: "string" },
    role: { type: "string", enum: ["user", "admin"] },
  },
};

let srv;
let dir;
let alice;
let bob;
let revocations;
const capClient = (cap, priv, o = {}) =>
  new StarfishClient({ baseUrl: srv.base, capProvider: { getCap: async () => ({ cap, devEdPrivHex: priv }) }, ...o });
const clientOf = (creds) => capClient(creds.capCert, creds.device.edPriv);
const writeRevocations = (lists) => {
  const tmp = `${revocations}.tmp`;
  writeFileSync(tmp, JSON.stringify(lists));
  renameSync(tmp, revocations);
};
const httpErr = (status, body) => (e) => {
  if (!(e instanceof StarfishHttpError)) throw e;
  if (e.status !== status) throw new Error(`status ${e.status} != ${status}: ${e.body}`);
  if (body !== undefined && e.body !== body) throw new Error(`body ${e.body} != ${body}`);
  return true;
};

before(async () => {
  alice = await bootstrapRootIdentity(`interop extended alice ${fresh()}`);
  bob = await bootstrapRootIdentity(`interop extended bob ${fresh()}`);
  dir = mkdtempSync(path.join(tmpdir(), "starfish-interop-extended-"));
  const config = {
    restrictions: [{ mode: "deny", identities: [bob.userId], actions: ["push"] }],
    collections: [
      { name: "profile", storagePath: "users/{identity}/profile", readRoles: ["self"], writeRoles: ["self"],
        objectSchema: PROFILE_SCHEMA,
        fieldPermissions: { secret: { readRoles: ["cap:read:admin"] }, role: { writeRoles: ["cap:write:admin"] } } },
      { name: "board", storagePath: "board/{id}", readRoles: ["public"], writeRoles: ["public"],
        fieldPermissions: { mine: { readRoles: ["self"] } } },
      { name: "vip", storagePath: "vip/{id}", readRoles: ["public"], writeRoles: ["public"],
        restrictions: [{ mode: "allow", identities: [alice.userId] }] },
    ],
  };
  const configPath = path.join(dir, "config.json");
  writeFileSync(configPath, JSON.stringify(config));
  revocations = path.join(dir, "revocations.json");
  writeRevocations([]);
  srv = await startServer({ config: configPath, args: ["--revocations", revocations] });
});
after(async () => {
  await srv?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("objectSchema", () => {
  it("the committed vectors are what Ajv answers (tests/vectors/object-schema.json)", () => {
    const committed = JSON.parse(readFileSync(path.join(INTEROP_DIR, "../vectors/object-schema.json"), "utf8"));
    // Compared as JSON text: that is what the Rust tests read (and -0 is 0 there).
    check.equal(JSON.stringify(committed.cases), JSON.stringify(vectors()));
  });

  it("pushes get Ajv's first error in the official 400 body", async () => {
    const c = clientOf(alice);
    const p = `/push/users/${alice.userId}/profile`;
    for (const data of [{}, { name: "" }, { name: "A", age: -1 }, { name: "A", age: 1.5 }, { name: "A", extra: 1 }, { name: 7 }]) {
      const want = officialAnswer(PROFILE_SCHEMA, data);
      check.equal(want.status, 400);
      await check.rejects(c.push(p, data, null), httpErr(400, JSON.stringify(want.body)), JSON.stringify(data));
    }
    const ok = await c.push(p, { name: "Alice", age: 30, secret: "s" }, null);
    check.equal(officialAnswer(PROFILE_SCHEMA, { name: "Alice", age: 30, secret: "s" }).status, 200);
    check.ok(/^[0-9a-f]{64}$/.test(ok.hash));
  });
});

describe("fieldPermissions", () => {
  it("unreadable fields are stripped, protected fields refuse writes", async () => {
    const c = clientOf(alice);
    const r = await c.pull(`/pull/users/${alice.userId}/profile`);
    check.deepEqual(r.data, { name: "Alice", age: 30 });
    await check.rejects(
      c.push(`/push/users/${alice.userId}/profile`, { name: "A", role: "admin" }, r.hash),
      httpErr(403, JSON.stringify({ error: "Field 'role' is not writable with your roles" })),
    );
  });

  it("a public collection's pull has no roles, even for the owner", async () => {
    const anon = new StarfishClient({ baseUrl: srv.base });
    await anon.push("/push/board/b1", { mine: 1, all: 2 }, null);
    check.deepEqual((await clientOf(alice).pull("/pull/board/b1")).data, { all: 2 });
  });
});

describe("restrictions", () => {
  it("deny for one action, allow lists, anonymous callers", async () => {
    await check.rejects(
      clientOf(bob).push("/push/board/b2", { x: 1 }, null),
      httpErr(403, '{"error":"identity restricted"}'),
    );
    check.deepEqual((await clientOf(bob).pull("/pull/board/b1")).data, { all: 2 });
    await check.rejects(clientOf(bob).pull("/pull/vip/v"), httpErr(403, '{"error":"identity restricted"}'));
    await check.rejects(new StarfishClient({ baseUrl: srv.base }).pull("/pull/vip/v"), httpErr(403, '{"error":"identity restricted"}'));
    check.equal((await clientOf(alice).pull("/pull/vip/v")).hash, "");
  });
});

describe("--revocations", () => {
  const waitFor = async (what, probe) => {
    const deadline = Date.now() + 10000;
    for (;;) {
      if (await probe()) return;
      if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const refused = (p) => p.then(() => false, (e) => e instanceof StarfishHttpError && e.status === 401 && e.body === '{"error":"Unauthorized"}');

  it("a list from the official buildRevocationList revokes one paired device, then the whole subject", async () => {
    const keys1 = generateDeviceKeys();
    const keys2 = generateDeviceKeys();
    const scope = { ops: ["read", "write"], collections: ["*"] };
    const cap1 = await mintDeviceCap(alice.device.edPriv, alice.device.edPub, { edPubHex: keys1.edPub, kemPubHex: keys1.kemPub }, scope);
    const cap1b = await mintDeviceCap(alice.device.edPriv, alice.device.edPub, { edPubHex: keys1.edPub, kemPubHex: keys1.kemPub }, scope);
    const cap2 = await mintDeviceCap(alice.device.edPriv, alice.device.edPub, { edPubHex: keys2.edPub, kemPubHex: keys2.kemPub }, scope);
    const d1 = capClient(cap1, keys1.edPriv);
    const d1b = capClient(cap1b, keys1.edPriv);
    const d2 = capClient(cap2, keys2.edPriv);
    const p = `/pull/users/${alice.userId}/profile`;
    for (const c of [d1, d1b, d2]) check.deepEqual((await c.pull(p)).data, { name: "Alice", age: 30 });
    const list = (generation, revoked, revokedSubjects) =>
      buildRevocationList({ issEdPubHex: alice.device.edPub, issEdPrivHex: alice.device.edPriv, generation, revoked, revokedSubjects });
    writeRevocations([list(1, [{ sub: keys1.edPub, nonce: cap1.nonce, exp: cap1.exp }])]);
    await waitFor("cap1 revoked", () => refused(d1.pull(p)));
    check.deepEqual((await d1b.pull(p)).data, { name: "Alice", age: 30 }, "same device, another cap");
    check.deepEqual((await d2.pull(p)).data, { name: "Alice", age: 30 });
    check.deepEqual((await clientOf(alice).pull(p)).data, { name: "Alice", age: 30 });
    writeRevocations([list(2, [], [{ sub: keys1.edPub, exp: cap1.exp }])]);
    await waitFor("every cap of device 1 revoked", () => refused(d1b.pull(p)));
    check.ok(await refused(d1.pull(p)), "cap1 is still revoked: the subject covers it");
    check.deepEqual((await d2.pull(p)).data, { name: "Alice", age: 30 });
  });
});
