// EXTENDED features with the official client: GET /config (fetchServerConfig),
// the list route, rate limits (429 as the client classifies it) and ttlMs.
import { after, before, describe, it } from "node:test";
import { StarfishClient, StarfishHttpError, classifyError, fetchServerConfig } from "@drakkar.software/starfish-client";
import { check, expectError, expectJson, fresh } from "../lib/check.mjs";
import { startServer } from "../lib/server.mjs";

let srv;
let client;
before(async () => {
  srv = await startServer({ config: "configs/extended.json", args: ["--config-endpoint", "public"] });
  client = new StarfishClient({ baseUrl: srv.base });
});
after(async () => {
  await srv?.stop();
});

describe("GET /config", () => {
  it("fetchServerConfig reads the official client view", async () => {
    const cfg = await fetchServerConfig(srv.base);
    check.deepEqual(cfg, {
      collections: [
        { name: "days", maxBodyBytes: 10000, encryption: "none", allowedMimeTypes: ["application/json"] },
        { name: "limited", maxBodyBytes: 10000, encryption: "none", allowedMimeTypes: ["application/json"] },
        { name: "eph", maxBodyBytes: 10000, encryption: "none", allowedMimeTypes: ["application/json"], ttlMs: 500, forceFullFetch: true },
      ],
    });
  });
});

describe("list", () => {
  it("keys pushed by the client are listed in order, with paging", async () => {
    const user = fresh("u");
    for (const day of ["2024-01-02", "2024-01-01", "2024-01-03"]) {
      await client.push(`/push/days/${user}/${day}`, { day }, null);
    }
    await expectJson(await fetch(`${srv.base}/list/days/${user}?limit=2`), 200, {
      items: ["2024-01-01", "2024-01-02"],
      hasMore: true,
    });
    await expectJson(await fetch(`${srv.base}/list/days/${user}?limit=2&after=2024-01-02`), 200, {
      items: ["2024-01-03"],
      hasMore: false,
    });
    await expectError(await fetch(`${srv.base}/list/days/${user}?limit=0`), 400, "Invalid limit parameter");
  });
});

describe("rateLimit", () => {
  it("the third pull in a window is 429, which the client classifies as rate-limited", async () => {
    const id = fresh("r");
    await client.pull(`/pull/limited/${id}`);
    await client.pull(`/pull/limited/${id}`);
    let caught;
    try {
      await client.pull(`/pull/limited/${id}`);
    } catch (e) {
      caught = e;
    }
    check.ok(caught instanceof StarfishHttpError, `a StarfishHttpError, got ${caught}`);
    check.equal(caught.status, 429);
    check.equal(caught.body, '{"error":"Rate limit exceeded"}');
    check.equal(classifyError(caught), "rate-limited");
  });
});

describe("ttlMs", () => {
  it("an expired document pulls empty", async () => {
    const id = fresh("t");
    const pushed = await client.push(`/push/eph/${id}`, { v: 1 }, null);
    const live = await client.pull(`/pull/eph/${id}`);
    check.equal(live.hash, pushed.hash);
    await new Promise((r) => setTimeout(r, 800));
    const gone = await client.pull(`/pull/eph/${id}`);
    check.deepEqual(gone.data, {});
    check.equal(gone.hash, "");
  });
});
