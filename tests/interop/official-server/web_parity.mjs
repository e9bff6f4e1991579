// CORS and security headers on the wire: the official server (server.mjs,
// with its router's `cors` / `securityHeaders` options) and the starfish-rs
// release binary (with the equivalent flags) get the same raw requests, and
// their statuses and CORS / security / content-type headers must agree,
// except for the documented differences (COMPATIBILITY.md): our default
// allow and expose lists, and `Vary: Origin` with a list of origins.
//
//   node web_parity.mjs      # STARFISH_BIN defaults to ../../../target/release/starfish
import { spawn } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const bin = path.resolve(here, process.env.STARFISH_BIN ?? "../../../target/release/starfish");
const children = [];
process.on("exit", () => children.forEach((c) => c.exitCode === null && c.kill("SIGKILL")));

function start(cmd, args, env, pattern) {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let out = "";
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${cmd} did not start:\n${out}`)), 30_000);
    const onData = (d) => {
      out += d;
      const m = pattern.exec(out);
      if (m) {
        clearTimeout(t);
        resolve({ port: Number(m[1]), child });
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code) => reject(new Error(`${cmd} exited ${code}:\n${out}`)));
  });
}

function stop(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", resolve);
    child.kill("SIGTERM");
  });
}

/** One request on a fresh connection; the response head as {status, headers}. */
function raw(port, method, target, headers = {}, body = "") {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1");
    let buf = "";
    s.setEncoding("latin1");
    s.on("data", (d) => (buf += d));
    s.on("error", reject);
    s.on("end", () => {
      const head = buf.split("\r\n\r\n")[0].split("\r\n");
      const status = Number(head[0].split(" ")[1]);
      const h = {};
      for (const line of head.slice(1)) {
        const i = line.indexOf(":");
        h[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({ status, headers: h });
    });
    let req = `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n`;
    for (const [k, v] of Object.entries(headers)) req += `${k}: ${v}\r\n`;
    if (body || method === "POST") req += `Content-Length: ${Buffer.byteLength(body)}\r\n`;
    s.write(req + "\r\n" + body);
  });
}

const COMPARED = /^(access-control-.*|vary|content-type|x-content-type-options|x-frame-options|strict-transport-security|x-xss-protection|referrer-policy)$/;
const pick = (h) => Object.fromEntries(Object.entries(h).filter(([k]) => COMPARED.test(k)).sort());

const OUR_ALLOW = "Content-Type, Authorization, Accept, X-Starfish-Sig, X-Starfish-Ts, X-Starfish-Nonce, X-Starfish-Pub, X-Requested-With, If-None-Match";
const OUR_EXPOSE = "ETag, Retry-After";

const requests = (run) => [
  ["OPTIONS", "/v1/push/public/notes/x", { Origin: "http://b.test", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-starfish-sig" }],
  ["OPTIONS", "/v1/pull/public/notes/x", { Origin: "http://evil.test", "Access-Control-Request-Method": "GET" }],
  ["OPTIONS", "/v1/pull/public/notes/x", {}],
  ["OPTIONS", "/v1", { Origin: "http://a.test" }],
  ["OPTIONS", "/v1/", { Origin: "http://a.test" }],
  ["OPTIONS", "/elsewhere", { Origin: "http://a.test" }],
  ["OPTIONS", "/v1x/health", { Origin: "http://a.test" }],
  ["GET", "/v1/health", { Origin: "http://b.test" }],
  ["GET", "/v1/health", { Origin: "http://evil.test" }],
  ["GET", "/v1/health", {}],
  ["GET", "/v1/nope", { Origin: "http://b.test" }],
  ["GET", "/nope", { Origin: "http://b.test" }],
  ["POST", `/v1/push/public/notes/${run}`, { Origin: "http://a.test", "Content-Type": "application/json" }, '{"data":{"x":1},"baseHash":null}'],
  ["POST", `/v1/push/public/notes/${run}`, { Origin: "http://a.test", "Content-Type": "application/json" }, '{"data":{"x":1},"baseHash":null}'],
  ["POST", `/v1/push/public/notes/${run}`, { Origin: "http://a.test", "Content-Type": "text/plain" }, "x"],
  ["GET", `/v1/pull/public/notes/${run}`, { Origin: "http://b.test" }],
  ["GET", `/v1/pull/users/${"0".repeat(32)}/settings`, { Origin: "http://b.test" }],
];

const cases = [
  {
    name: "official defaults (cors: true, securityHeaders: true) vs --cors-origin * --security-headers",
    official: { STARFISH_CORS: "true", STARFISH_SECURITY_HEADERS: "true" },
    ours: ["--cors-origin", "*", "--security-headers"],
    // Documented: our allow list is longer and ETag / Retry-After are exposed.
    adjust: (o, preflight) => {
      if (preflight && o["access-control-allow-headers"] === OUR_ALLOW) o["access-control-allow-headers"] = "Content-Type, Authorization, Accept";
      if (!preflight && o["access-control-expose-headers"] === OUR_EXPOSE) delete o["access-control-expose-headers"];
    },
  },
  {
    name: "a list with credentials and max-age, two security headers changed",
    official: {
      STARFISH_CORS: JSON.stringify({
        origin: ["http://a.test", "http://b.test"],
        credentials: true,
        maxAge: 600,
        allowHeaders: OUR_ALLOW.split(", "),
        exposeHeaders: OUR_EXPOSE.split(", "),
      }),
      STARFISH_SECURITY_HEADERS: JSON.stringify({ frameOptions: false, referrerPolicy: "no-referrer" }),
    },
    ours: [
      "--cors-origin", "http://a.test", "--cors-origin", "http://b.test", "--cors-credentials", "--cors-max-age", "600",
      "--no-security-header", "frameOptions", "--security-header", "referrerPolicy=no-referrer",
    ],
    // Documented: Vary: Origin with a list, wherever CORS headers are sent.
    adjust: (o) => {
      if (o["access-control-allow-origin"] !== undefined && o.vary === "Origin") delete o.vary;
    },
  },
];

let failures = 0;
let compared = 0;
for (const c of cases) {
  const off = await start("node", [path.join(here, "server.mjs")], { PORT: "0", ...c.official }, /LISTENING (\d+)/);
  const ours = await start(bin, ["serve", "--memory", "--listen", "127.0.0.1:0", ...c.ours], {}, /listening on http:\/\/127\.0\.0\.1:(\d+)/);
  const run = `parity${Date.now()}`;
  for (const [method, target, headers, body] of requests(run)) {
    const a = await raw(off.port, method, target, headers, body);
    const b = await raw(ours.port, method, target, headers, body);
    const want = pick(a.headers);
    const got = pick(b.headers);
    c.adjust(got, method === "OPTIONS" && b.status === 204);
    const same = a.status === b.status && JSON.stringify(want) === JSON.stringify(got);
    compared += 1;
    if (!same) {
      failures += 1;
      console.log(`web parity: MISMATCH [${c.name}] ${method} ${target} ${JSON.stringify(headers)}`);
      console.log(`  official ${a.status} ${JSON.stringify(want)}`);
      console.log(`  ours     ${b.status} ${JSON.stringify(got)}`);
    }
  }
  await stop(off.child);
  await stop(ours.child);
}
// Credentials with the wildcard: both refuse to start.
const refused = await new Promise((resolve) => {
  const p = spawn(bin, ["serve", "--memory", "--listen", "127.0.0.1:0", "--cors-origin", "*", "--cors-credentials"], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  p.stderr.on("data", (d) => (err += d));
  p.on("exit", (code) => resolve({ code, err }));
});
const official = await new Promise((resolve) => {
  const p = spawn("node", [path.join(here, "server.mjs")], { env: { ...process.env, PORT: "0", STARFISH_CORS: '{"origin":"*","credentials":true}' }, stdio: ["ignore", "pipe", "pipe"] });
  children.push(p);
  let err = "";
  p.stderr.on("data", (d) => (err += d));
  p.stdout.on("data", () => p.kill("SIGKILL"));
  p.on("exit", (code) => resolve({ code, err }));
});
const message = "CORS misconfiguration: credentials cannot be used with wildcard origin '*'. Specify explicit origins.";
compared += 1;
if (!(refused.code === 2 && refused.err.includes(message) && official.code !== 0 && official.err.includes(message))) {
  failures += 1;
  console.log(`web parity: credentials with '*': ours exit ${refused.code}, official exit ${official.code}\n${refused.err}\n${official.err}`);
}
console.log(`web parity: ${compared - failures} of ${compared} comparisons agree with the official server`);
process.exit(failures === 0 ? 0 : 1);
