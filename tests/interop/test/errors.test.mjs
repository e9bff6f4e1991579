// Error bodies and framework-level responses via raw fetch / raw HTTP (wire.md §1, §4, §5, §9).
import { after, before, describe, it } from "node:test";
import { StarfishClient, StarfishHttpError } from "@drakkar.software/starfish-client";
import { bootstrapRootIdentity } from "@drakkar.software/starfish-identities";
import { check, expectError, expectText404, fresh, rawRequest } from "../lib/check.mjs";
import { startServer } from "../lib/server.mjs";

let srv;
before(async () => {
  srv = await startServer({ config: "configs/errors.json" });
});
after(async () => {
  await srv?.stop();
});

const post = (path, body, contentType = "application/json") =>
  fetch(`${srv.base}${path}`, {
    method: "POST",
    headers: contentType === null ? {} : { "Content-Type": contentType },
    body,
  });

describe("framework 404s (wire.md §1.2, §1.3)", () => {
  it("unknown route → text 404", async () => {
    await expectText404(await fetch(`${srv.base}/nope`), "/v1/nope");
    await expectText404(await fetch(`${srv.base}/pull/unknown/x`), "unknown collection path");
    await expectText404(await fetch(`${srv.origin}/health`), "outside the /v1 mount");
    await expectText404(await fetch(`${srv.origin}/`), "root");
    await expectText404(await fetch(`${srv.base}/demo/health`), "no /<ns>/health");
  });

  it("trailing slash and empty segment → text 404", async () => {
    await expectText404(await fetch(`${srv.base}/pull/pub/a/`), "trailing slash");
    await expectText404(await fetch(`${srv.base}/health/`), "health trailing slash");
    await expectText404(await fetch(`${srv.base}/pull/pub/`), "empty param");
    const r = await rawRequest(srv.port, "GET", "/v1/pull//pub/a");
    check.equal(r.status, 404, "empty segment");
    check.equal(r.body, "404 Not Found");
  });

  it("wrong method → text 404, never 405", async () => {
    await expectText404(await fetch(`${srv.base}/push/pub/a`), "GET on push");
    await expectText404(await fetch(`${srv.base}/pull/pub/a`, { method: "PUT", body: "{}" }), "PUT on pull");
    await expectText404(await fetch(`${srv.base}/pull/pub/a`, { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" }), "POST on pull");
    await expectText404(await fetch(`${srv.base}/health`, { method: "DELETE" }), "DELETE health");
    await expectText404(await fetch(`${srv.base}/batch/pull?collections=pub`, { method: "POST" }), "POST batch");
    await expectText404(await fetch(`${srv.base}/health`, { method: "OPTIONS" }), "OPTIONS without CORS");
  });

  it("pullOnly has no push route, pushOnly no pull route (config.md §2)", async () => {
    await expectText404(await post("/push/ro/a", '{"data":{}}'), "push on pullOnly");
    await expectText404(await fetch(`${srv.base}/pull/wo/a`), "pull on pushOnly");
    const ok = await post("/push/wo/a", '{"data":{"w":1},"baseHash":null}');
    check.equal(ok.status, 200);
    await ok.arrayBuffer();
    const pulled = await fetch(`${srv.base}/pull/ro/a`);
    check.equal(pulled.status, 200);
    await pulled.arrayBuffer();
  });

  it("dot segments are removed before routing (wire.md §1.3)", async () => {
    for (const target of ["/v1/pull/pub/%2E%2E", "/v1/pull/pub/..", "/v1/pull/pub/%2e"]) {
      const r = await rawRequest(srv.port, "GET", target);
      check.equal(r.status, 404, target);
      check.equal(r.body, "404 Not Found", target);
    }
    // /v1/pull/x/../health normalises to /v1/pull/health (404), /v1/x/../health to /v1/health (200)
    const h = await rawRequest(srv.port, "GET", "/v1/x/../health");
    check.equal(h.status, 200, "/v1/x/../health → /v1/health");
  });

  it("HEAD on a GET route: status and headers, empty body (wire.md §1.2)", async () => {
    const res = await fetch(`${srv.base}/health`, { method: "HEAD" });
    check.equal(res.status, 200);
    check.equal(res.headers.get("content-type"), "application/json");
    check.equal(await res.text(), "");
  });
});

describe("path parameters (wire.md §4.1 steps 2 and 6)", () => {
  const bad = ["a%20b", "x%2E%2E", "a..b", "a%2Fb", "%00", "a%2Cb", "%E2%82%AC", "a%25b"];
  it("pull with an invalid param → 400 Invalid path parameter", async () => {
    for (const v of bad) {
      await expectError(await fetch(`${srv.base}/pull/pub/${v}`), 400, "Invalid path parameter", v);
    }
  });
  it("push with an invalid param → 400 Invalid path parameter", async () => {
    for (const v of ["a%20b", "x%2E%2E", "a..b"]) {
      await expectError(await post(`/push/pub/${v}`, '{"data":{}}'), 400, "Invalid path parameter", v);
    }
  });
  it("valid charset including . _ : @ - and escapes of allowed chars", async () => {
    for (const v of ["a.b_c:d@e-f", "%41bc", "x.y"]) {
      const res = await fetch(`${srv.base}/pull/pub/${v}`);
      check.equal(res.status, 200, v);
      await res.arrayBuffer();
    }
    // %41 decodes to A: same document as /pull/pub/Abc
    const id = fresh("esc");
    const w = await post(`/push/pub/${id}`, '{"data":{"e":1}}');
    check.equal(w.status, 200);
    const { hash } = await w.json();
    const enc = id.replace(/^e/, "%65");
    const r = await (await fetch(`${srv.base}/pull/pub/${enc}`)).json();
    check.equal(r.hash, hash);
  });
});

describe("push body validation (wire.md §5.1)", () => {
  it("415 Content-Type must be application/json", async () => {
    for (const ct of ["text/plain", "APPLICATION/JSON", null]) {
      await expectError(await post(`/push/pub/${fresh()}`, '{"data":{}}', ct), 415, "Content-Type must be application/json", String(ct));
    }
    // substring match: charset param and the application/jsonx quirk pass
    for (const ct of ["application/json; charset=utf-8", "application/jsonx"]) {
      const res = await post(`/push/pub/${fresh()}`, '{"data":{}}', ct);
      check.equal(res.status, 200, ct);
      await res.arrayBuffer();
    }
  });

  it("400 Body must be a JSON object", async () => {
    for (const body of ["not json", "[1,2]", "null", "42", '"str"', "", "{"]) {
      await expectError(await post(`/push/pub/${fresh()}`, body), 400, "Body must be a JSON object", JSON.stringify(body));
    }
    // a leading BOM is allowed
    const res = await post(`/push/pub/${fresh()}`, '\uFEFF{"data":{"bom":1}}');
    check.equal(res.status, 200, "BOM");
    await res.arrayBuffer();
  });

  it("400 Missing or invalid data", async () => {
    for (const body of ['{"baseHash":null}', '{"data":[1]}', '{"data":null}', '{"data":"x"}', '{"data":1}']) {
      await expectError(await post(`/push/pub/${fresh()}`, body), 400, "Missing or invalid data", body);
    }
  });

  it("400 baseHash must be a string or null", async () => {
    for (const body of ['{"data":{},"baseHash":5}', '{"data":{},"baseHash":{}}', '{"data":{},"baseHash":false}', '{"data":{},"baseHash":[]}']) {
      await expectError(await post(`/push/pub/${fresh()}`, body), 400, "baseHash must be a string or null", body);
    }
  });

  it("400 author proof requires authorPubkey and authorSignature", async () => {
    await expectError(await post(`/push/pub/${fresh()}`, '{"data":{},"authorPubkey":"ab"}'), 400, "author proof requires authorPubkey and authorSignature");
    await expectError(await post(`/push/pub/${fresh()}`, '{"data":{},"authorPubkey":"ab","authorSignature":"cd"}'), 403, "invalid document author signature");
  });

  it("413 Payload too large (Content-Length > maxBodyBytes 64)", async () => {
    const body = JSON.stringify({ data: { pad: "x".repeat(80) }, baseHash: null });
    await expectError(await post(`/push/tiny/${fresh()}`, body), 413, "Payload too large");
    const small = JSON.stringify({ data: { p: 1 }, baseHash: null });
    check.ok(small.length <= 64);
    const ok = await post(`/push/tiny/${fresh()}`, small);
    check.equal(ok.status, 200);
    await ok.arrayBuffer();
    // the size check runs before the Content-Type check (step 6 before step 8)
    await expectError(await post(`/push/tiny/${fresh()}`, body, "text/plain"), 413, "Payload too large");
  });

  it("400 Body nesting too deep (depth > 64 counting the body object)", async () => {
    const nest = (k) => (k === 0 ? {} : { n: nest(k - 1) });
    // body depth = 1 + depth(data); data = nest(62) has depth 63 → total 64: accepted
    const ok = await post(`/push/pub/${fresh()}`, JSON.stringify({ data: nest(62) }));
    check.equal(ok.status, 200, "depth 64");
    await ok.arrayBuffer();
    await expectError(await post(`/push/pub/${fresh()}`, JSON.stringify({ data: nest(63) })), 400, "Body nesting too deep", "depth 65");
    // arrays count too
    let arr = {};
    for (let i = 0; i < 70; i++) arr = [arr];
    await expectError(await post(`/push/pub/${fresh()}`, JSON.stringify({ data: { a: arr } })), 400, "Body nesting too deep", "arrays");
  });

  it("official client surfaces these as StarfishHttpError(status, body)", async () => {
    const c = new StarfishClient({ baseUrl: srv.base });
    const e = await c.push(`/push/tiny/${fresh()}`, { pad: "y".repeat(100) }, null).catch((x) => x);
    check.ok(e instanceof StarfishHttpError);
    check.equal(e.status, 413);
    check.equal(e.body, '{"error":"Payload too large"}');
    check.equal(e.message, 'HTTP 413: {"error":"Payload too large"}');
    const e2 = await c.pull("/pull/nothing/here").catch((x) => x);
    check.equal(e2.status, 404);
    check.equal(e2.body, "404 Not Found");
  });
});

describe("Cache-Control and rootOnly (wire.md §4.2, §3)", () => {
  it("public cacheDurationMs → Cache-Control: max-age=floor(ms/1000)", async () => {
    const res = await fetch(`${srv.base}/pull/cached/${fresh()}`);
    check.equal(res.headers.get("cache-control"), "max-age=90");
    await res.arrayBuffer();
    const none = await fetch(`${srv.base}/pull/pub/${fresh()}`);
    check.equal(none.headers.get("cache-control"), null);
    await none.arrayBuffer();
  });

  it("non-public cacheDurationMs → private; rootOnly passes for a self-signed root cap", async () => {
    const creds = await bootstrapRootIdentity(`interop errors ${fresh()}`);
    const c = new StarfishClient({
      baseUrl: srv.base,
      capProvider: { getCap: async () => ({ cap: creds.capCert, devEdPrivHex: creds.device.edPriv }) },
      fetch: async (url, init) => {
        const res = await fetch(url, init);
        if (url.includes("/privcached")) lastCacheControl = res.headers.get("cache-control");
        return res;
      },
    });
    let lastCacheControl;
    await c.pull(`/pull/users/${creds.userId}/privcached`);
    check.equal(lastCacheControl, "private, max-age=2");
    const w = await c.push(`/push/rootdocs/${creds.userId}`, { root: true }, null);
    const r = await c.pull(`/pull/rootdocs/${creds.userId}`);
    check.equal(r.hash, w.hash);
    // anonymous → 403
    await expectError(await fetch(`${srv.base}/pull/rootdocs/${creds.userId}`), 403, "Forbidden");
  });

  it("cap resolver body guard: 413 request body too large over 65536 (auth.md §8 step 9)", async () => {
    const creds = await bootstrapRootIdentity(`interop big ${fresh()}`);
    const c = new StarfishClient({
      baseUrl: srv.base,
      capProvider: { getCap: async () => ({ cap: creds.capCert, devEdPrivHex: creds.device.edPriv }) },
    });
    const e = await c.push(`/push/rootdocs/${creds.userId}`, { pad: "z".repeat(70000) }, null).catch((x) => x);
    check.equal(e.status, 413);
    check.equal(e.body, '{"error":"request body too large"}');
  });
});
