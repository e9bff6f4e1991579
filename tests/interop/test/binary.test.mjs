// Binary collections with pushBlob / pullBlob (wire.md §4.4, §5.4; client.md §4.5; auth.md §7.1).
// configs/errors.json: `files` (public, text/plain + image/*, maxBodyBytes 1024, cacheDurationMs 60000)
// and `avatars` (self, image/*, maxBodyBytes 4096). Run against the filesystem store too.
import { after, before, describe, it } from "node:test";
import { createHash } from "node:crypto";
import { StarfishClient, StarfishHttpError } from "@drakkar.software/starfish-client";
import { bootstrapRootIdentity } from "@drakkar.software/starfish-identities";
import { HEX64, check, expectError, fresh } from "../lib/check.mjs";
import { startServer } from "../lib/server.mjs";

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");
const ALLOWED = '[\\"text/plain\\",\\"image/*\\"]';

for (const store of ["memory", "filesystem"]) {
  describe(`binary collections (${store} store)`, () => {
    let srv;
    let client;
    before(async () => {
      srv = await startServer({ config: "configs/errors.json", memory: store === "memory" });
      client = new StarfishClient({ baseUrl: srv.base });
    });
    after(async () => {
      await srv?.stop();
    });

    it("pushBlob → {hash: sha256}, pullBlob → bytes, ETag hash, content type", async () => {
      const id = fresh("f");
      const bytes = new TextEncoder().encode("hello blob\n");
      const pushed = await client.pushBlob(`/push/files/${id}`, bytes, "text/plain");
      check.deepEqual(pushed, { hash: sha256(bytes) });
      const pulled = await client.pullBlob(`/pull/files/${id}`);
      check.deepEqual(new Uint8Array(pulled.data), bytes);
      check.equal(pulled.hash, sha256(bytes));
      check.equal(pulled.contentType, "text/plain");
    });

    it("raw pull: ETag \"<sha256>\", Cache-Control max-age=60, If-None-Match → 304", async () => {
      const id = fresh("r");
      const bytes = new Uint8Array([0, 1, 2, 255, 254, 10, 13]);
      await client.pushBlob(`/push/files/${id}`, bytes, "image/png; q=1");
      const res = await fetch(`${srv.base}/pull/files/${id}?withKeyring=1`);
      check.equal(res.status, 200);
      check.equal(res.headers.get("etag"), `"${sha256(bytes)}"`);
      check.equal(res.headers.get("content-type"), "image/png", "media type stored before ';', case preserved");
      check.equal(res.headers.get("cache-control"), "max-age=60");
      check.deepEqual(new Uint8Array(await res.arrayBuffer()), bytes);
      const nm = await fetch(`${srv.base}/pull/files/${id}`, { headers: { "If-None-Match": `"${sha256(bytes)}"` } });
      check.equal(nm.status, 304);
      check.equal(nm.headers.get("etag"), null);
      check.equal(await nm.text(), "");
    });

    it("last write wins, no baseHash", async () => {
      const id = fresh("lww");
      await client.pushBlob(`/push/files/${id}`, new TextEncoder().encode("one"), "text/plain");
      const second = new TextEncoder().encode("two");
      const r = await client.pushBlob(`/push/files/${id}`, second, "Image/GIF");
      check.equal(r.hash, sha256(second));
      const pulled = await client.pullBlob(`/pull/files/${id}`);
      check.equal(pulled.contentType, "Image/GIF");
      check.deepEqual(new Uint8Array(pulled.data), second);
    });

    it("missing blob → 404 with an empty body and no Content-Type", async () => {
      const res = await fetch(`${srv.base}/pull/files/${fresh("none")}`);
      check.equal(res.status, 404);
      check.equal(res.headers.get("content-type"), null);
      check.equal(await res.text(), "");
      const e = await client.pullBlob(`/pull/files/${fresh("none")}`).catch((x) => x);
      check.ok(e instanceof StarfishHttpError);
      check.equal(e.status, 404);
      check.equal(e.body, "");
    });

    it("415 with the exact not-allowed message", async () => {
      const cases = [
        ["application/json", "application/json"],
        ["text/html; charset=utf-8", "text/html; charset=utf-8"],
        ["image", "image"],
      ];
      for (const [sent, shown] of cases) {
        const e = await client.pushBlob(`/push/files/${fresh()}`, new Uint8Array([1]), sent).catch((x) => x);
        check.ok(e instanceof StarfishHttpError, sent);
        check.equal(e.status, 415, sent);
        check.equal(e.body, `{"error":"Content-Type '${shown}' is not allowed. Allowed: ${ALLOWED}"}`, sent);
      }
      // no Content-Type at all → shown as empty
      const res = await fetch(`${srv.base}/push/files/${fresh()}`, { method: "POST", body: new Uint8Array([1, 2]) });
      const text = await res.text();
      check.equal(res.status, 415);
      check.equal(text, `{"error":"Content-Type '' is not allowed. Allowed: ${ALLOWED}"}`);
    });

    it("413 Payload too large over maxBodyBytes 1024", async () => {
      const big = new Uint8Array(1025);
      await expectError(
        await fetch(`${srv.base}/push/files/${fresh()}`, { method: "POST", headers: { "Content-Type": "text/plain" }, body: big }),
        413,
        "Payload too large",
      );
      const ok = await client.pushBlob(`/push/files/${fresh()}`, new Uint8Array(1024), "text/plain");
      check.match(ok.hash, HEX64);
    });

    it("binary param validation: 400 Invalid path parameter", async () => {
      await expectError(await fetch(`${srv.base}/pull/files/a%20b`), 400, "Invalid path parameter");
      await expectError(
        await fetch(`${srv.base}/push/files/a..b`, { method: "POST", headers: { "Content-Type": "text/plain" }, body: "x" }),
        400,
        "Invalid path parameter",
      );
    });

    it("authenticated pushBlob/pullBlob on a self binary collection (signature over an empty body)", async () => {
      const creds = await bootstrapRootIdentity(`interop blob ${store}`);
      const c = new StarfishClient({
        baseUrl: srv.base,
        capProvider: { getCap: async () => ({ cap: creds.capCert, devEdPrivHex: creds.device.edPriv }) },
      });
      const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);
      const r = await c.pushBlob(`/push/users/${creds.userId}/avatar`, png, "image/png");
      check.equal(r.hash, sha256(png));
      const back = await c.pullBlob(`/pull/users/${creds.userId}/avatar`);
      check.deepEqual(new Uint8Array(back.data), png);
      check.equal(back.contentType, "image/png");
      // namespace-free anonymous read → 403
      await expectError(await fetch(`${srv.base}/pull/users/${creds.userId}/avatar`), 403, "Forbidden");
      // wrong media type under auth → 415 after auth
      const e = await c.pushBlob(`/push/users/${creds.userId}/avatar`, png, "text/plain").catch((x) => x);
      check.equal(e.status, 415);
      check.equal(e.body, `{"error":"Content-Type 'text/plain' is not allowed. Allowed: [\\"image/*\\"]"}`);
    });
  });
}
