// The official Starfish server (pinned in package.json), mounted at /v1 with
// the cap-cert role resolver, a memory store, and the same config as our
// server's embedded default (src/config/default_config.json).
//
//   PORT=0 node server.mjs        # prints "LISTENING <port>" once ready
//
// Env: PORT (default 0 = any free port), STARFISH_CONFIG (config file path),
// STARFISH_NO_ANONYMOUS=1 (refuse unsigned requests to non-public collections),
// STARFISH_CORS / STARFISH_SECURITY_HEADERS (JSON for the router's `cors` /
// `securityHeaders` options), STARFISH_REQUEST_TIMEOUT_MS (`requestTimeoutMs`).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import {
  MemoryObjectStore,
  createCapCertRoleResolver,
  createInMemoryNonceCache,
  createInMemoryRevocationStore,
  createSyncRouter,
  parseConfigJson,
} from "@drakkar.software/starfish-server";

const configPath =
  process.env.STARFISH_CONFIG ??
  fileURLToPath(new URL("../../../src/config/default_config.json", import.meta.url));
const config = parseConfigJson(readFileSync(configPath, "utf8"));

const router = createSyncRouter({
  store: new MemoryObjectStore(),
  config,
  roleResolver: createCapCertRoleResolver({
    nonceCache: createInMemoryNonceCache(),
    revocationStore: createInMemoryRevocationStore(),
    allowAnonymous: process.env.STARFISH_NO_ANONYMOUS !== "1",
  }),
  cors: JSON.parse(process.env.STARFISH_CORS ?? "false"),
  securityHeaders: JSON.parse(process.env.STARFISH_SECURITY_HEADERS ?? "false"),
  requestTimeoutMs: Number(process.env.STARFISH_REQUEST_TIMEOUT_MS ?? 0),
});

const app = new Hono();
app.route("/v1", router);

const server = serve(
  { fetch: app.fetch, port: Number(process.env.PORT ?? 0), hostname: "127.0.0.1" },
  (info) => console.log(`LISTENING ${info.port}`),
);
const stop = () => server.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
