// The official Starfish server (pinned in package.json), for scripts/bench.
// Env: PORT (default 8788), STORE=memory|fs, DATA_DIR (fs store), CONFIG
// (SyncConfig JSON file), NONCE_MAX_ENTRIES (default 100000, the official's).
import { readFileSync } from "node:fs";
import { Hono } from "hono";
import { serve } from "@hono/node-server";
import {
  createSyncRouter,
  parseConfigJson,
  MemoryObjectStore,
  createCapCertRoleResolver,
  createInMemoryNonceCache,
  createInMemoryRevocationStore,
  createNoopLogger,
} from "@drakkar.software/starfish-server";
import { FilesystemObjectStore } from "@drakkar.software/starfish-server/node";

const port = Number(process.env.PORT ?? 8788);
const kind = process.env.STORE ?? "memory";
const config = parseConfigJson(readFileSync(process.env.CONFIG, "utf8"));
const store =
  kind === "fs"
    ? new FilesystemObjectStore({ baseDir: process.env.DATA_DIR })
    : new MemoryObjectStore();
const maxBody = Math.max(
  65536,
  ...config.collections.map((c) => c.maxBodyBytes ?? 0),
);
const roleResolver = createCapCertRoleResolver({
  nonceCache: createInMemoryNonceCache({
    maxEntries: Number(process.env.NONCE_MAX_ENTRIES ?? 100000),
  }),
  revocationStore: createInMemoryRevocationStore(),
  maxBodyBytes: maxBody,
});
const app = new Hono();
app.route("/v1", createSyncRouter({ store, config, roleResolver, logger: createNoopLogger() }));
serve({ fetch: app.fetch, port, hostname: "127.0.0.1" });
