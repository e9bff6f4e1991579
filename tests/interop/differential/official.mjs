// The official Starfish server (pinned in package.json) for the differential
// run: mounted at /v1 with the cap-cert role resolver, a memory store and the
// restrictions plugin, started from a config file and a few router options.
//
//   DIFF_CONFIG=config.json DIFF_OPTIONS='{"configEndpoint":"public"}' node official.mjs
//
// Prints "LISTENING <port>" once ready. DIFF_OPTIONS (JSON, all optional):
//   configEndpoint   "public" | "role-filtered" (the router's configEndpoint.auth)
//   revocations      path of a JSON array of signed revocation lists, each given
//                    to the revocation store's acceptList at start (what our
//                    server reads with --revocations)
//   allowAnonymous   false to refuse unsigned requests (our --no-anonymous)
import { readFileSync } from "node:fs";
import Ajv from "ajv";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { createRestrictionsPlugin } from "@drakkar.software/starfish-restrictions";
import {
  MemoryObjectStore,
  defaultServerPlugin,
  createCapCertRoleResolver,
  createInMemoryNonceCache,
  createInMemoryRevocationStore,
  createSyncRouter,
  parseConfigJson,
  setAjv,
} from "@drakkar.software/starfish-server";

const config = parseConfigJson(readFileSync(process.env.DIFF_CONFIG, "utf8"));
const options = JSON.parse(process.env.DIFF_OPTIONS ?? "{}");

// The official server loads Ajv with require(), which an ES module lacks:
// hand it the same Ajv 8 it would load.
setAjv(new Ajv());

function hasRestrictions(c) {
  const cols = (list) => (list ?? []).some((col) => (col.restrictions ?? []).length > 0);
  return (
    (c.restrictions ?? []).length > 0 ||
    cols(c.collections) ||
    Object.values(c.namespaces ?? {}).some((ns) => (ns.restrictions ?? []).length > 0 || cols(ns.collections))
  );
}

const revocationStore = createInMemoryRevocationStore();
if (options.revocations) {
  for (const list of JSON.parse(readFileSync(options.revocations, "utf8"))) {
    const r = revocationStore.acceptList(list);
    if (!r.ok) throw new Error(`revocation list refused: ${r.reason}`);
  }
}

const router = createSyncRouter({
  store: new MemoryObjectStore(),
  config,
  roleResolver: createCapCertRoleResolver({
    nonceCache: createInMemoryNonceCache(),
    revocationStore,
    allowAnonymous: options.allowAnonymous !== false,
  }),
  // Restrictions in the config take effect only through this plugin (the
  // official packaging); starfish-rs always enforces them.
  // Installed only when the config declares restrictions, as a deployment would:
  // with it, public collections resolve their callers (the plugin's authorize
  // hook), which starfish-rs also does once any restriction exists.
  plugins: hasRestrictions(config) ? [defaultServerPlugin, createRestrictionsPlugin({ config })] : [defaultServerPlugin],
  ...(options.configEndpoint ? { configEndpoint: { auth: options.configEndpoint } } : {}),
});

const app = new Hono();
// The mount: /v1 unless the profile serves at the root (`mount: ""`).
app.route(options.mount ?? "/v1", router);

const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info) =>
  console.log(`LISTENING ${info.port}`),
);
const stop = () => server.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
