// The browser test harness (run it through run.sh, which installs what it
// needs). For each case it starts the starfish-rs release binary on one
// loopback origin, serves page/app.mjs (bundled with the official client by
// esbuild) from another, loads the page in headless Chromium (driven by
// playwright-core, Debian's /usr/bin/chromium) and checks what the page
// reports back:
//
//   cors-origin     --cors-origin <the page's origin>   every step passes
//   cors-wildcard   --cors-origin '*'                   every step passes
//   cors-off        no CORS flags                       every network step fails,
//                                                       Chromium reports CORS
//   cors-elsewhere  --cors-origin <another origin>      likewise
//
// Exit status 0 only if every case behaves as expected. Every process it
// starts (servers, Chromium) is stopped before it exits.
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const bin = path.resolve(here, process.env.STARFISH_BIN ?? "../../target/release/starfish");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const STEP_TIMEOUT_MS = 120_000;

if (!existsSync(bin)) {
  console.error(`browser: starfish binary not found at ${bin} (cargo build --release, or set STARFISH_BIN)`);
  process.exit(2);
}

const children = new Set();
function killAll() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
}
process.on("exit", killAll);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130));

// --- the starfish server ----------------------------------------------------
async function startStarfish(args) {
  const child = spawn(bin, ["serve", "--memory", "--listen", "127.0.0.1:0", "--log-level", "info", ...args], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  children.add(child);
  let log = "";
  const origin = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`starfish did not start:\n${log}`)), 15_000);
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk) => {
      log += chunk;
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`starfish exited (${code}):\n${log}`));
    });
  });
  return {
    origin,
    get log() {
      return log;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(t);
      }
      children.delete(child);
    },
  };
}

// --- the page's origin --------------------------------------------------------
const bundle = await esbuild.build({
  entryPoints: [path.join(here, "page", "app.mjs")],
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "chrome120",
  write: false,
  logLevel: "warning",
});
const appJs = bundle.outputFiles[0].contents;
const html = `<!doctype html><html><head><meta charset="utf-8"><title>running</title></head>
<body><script type="module" src="/app.js"></script></body></html>`;

const reports = new Map(); // run id -> resolve
const pageServer = createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (req.method === "GET" && url.pathname === "/") {
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" }).end(html);
  } else if (req.method === "GET" && url.pathname === "/app.js") {
    res.writeHead(200, { "Content-Type": "text/javascript" }).end(appJs);
  } else if (req.method === "POST" && url.pathname === "/report") {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      res.writeHead(204).end();
      try {
        const report = JSON.parse(body);
        reports.get(report.run)?.(report);
      } catch (e) {
        console.error("browser: bad report", e, body);
      }
    });
  } else if (url.pathname === "/favicon.ico") {
    res.writeHead(204).end();
  } else {
    res.writeHead(404).end();
  }
});
await new Promise((r) => pageServer.listen(0, "127.0.0.1", r));
const pageOrigin = `http://127.0.0.1:${pageServer.address().port}`;

// --- Chromium ------------------------------------------------------------------
const browser = await chromium.launch({
  executablePath: chromiumPath,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
console.log(`browser: Chromium ${browser.version()}, page origin ${pageOrigin}`);

const NETWORK_STEPS = 7; // every step but bootstrapRootIdentity touches the server

async function runCase(name, args, expectPass) {
  const server = await startStarfish(args.map((a) => a.replace("{PAGE}", pageOrigin)));
  const context = await browser.newContext();
  const page = await context.newPage();
  const console_ = [];
  page.on("console", (m) => console_.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => console_.push(`pageerror: ${e.message}`));
  const run = `${name}-${Date.now()}`;
  const reported = new Promise((resolve, reject) => {
    reports.set(run, resolve);
    setTimeout(() => reject(new Error(`no report within ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS);
  });
  const problems = [];
  let report = null;
  try {
    await page.goto(`${pageOrigin}/?api=${encodeURIComponent(server.origin)}&run=${encodeURIComponent(run)}`);
    report = await reported;
    const title = await page.title();
    const failedSteps = report.steps.filter((s) => !s.ok);
    if (expectPass) {
      if (failedSteps.length > 0) problems.push(`${failedSteps.length} step(s) failed`);
      if (title !== "PASS") problems.push(`title ${JSON.stringify(title)}`);
    } else {
      const network = report.steps.filter((s) => !s.name.startsWith("bootstrapRootIdentity"));
      if (network.length !== NETWORK_STEPS) problems.push(`expected ${NETWORK_STEPS} network steps`);
      for (const s of network) {
        if (s.ok) problems.push(`"${s.name}" passed without CORS`);
        else if (!/TypeError: Failed to fetch/.test(s.error)) problems.push(`"${s.name}" failed for another reason: ${s.error}`);
      }
      const identity = report.steps.find((s) => s.name.startsWith("bootstrapRootIdentity"));
      if (!identity?.ok) problems.push("the local identity step failed");
      if (!console_.some((l) => /blocked by CORS policy/.test(l))) problems.push("Chromium reported no CORS block");
      if (!/^FAIL/.test(title)) problems.push(`title ${JSON.stringify(title)}`);
    }
  } catch (e) {
    problems.push(String(e?.stack ?? e));
  } finally {
    reports.delete(run);
    await context.close();
    await server.stop();
  }
  const verdict = problems.length === 0 ? "ok" : "FAILED";
  console.log(`browser: ${name} (${args.join(" ") || "no CORS flags"}) expecting ${expectPass ? "pass" : "CORS failure"}: ${verdict}`);
  for (const s of report?.steps ?? []) {
    console.log(`  ${s.ok ? "ok  " : "fail"} ${s.name} (${s.ms} ms)${s.ok ? "" : ` — ${s.error}`}`);
  }
  if (problems.length > 0) {
    for (const p of problems) console.log(`  problem: ${p}`);
    console.log("  console:");
    for (const l of console_.slice(0, 20)) console.log(`    ${l}`);
    console.log(`  server log:\n${server.log.replace(/^/gm, "    ")}`);
  }
  return problems.length === 0;
}

const cases = [
  ["cors-origin", ["--cors-origin", "{PAGE}"], true],
  ["cors-wildcard", ["--cors-origin", "*"], true],
  ["cors-off", [], false],
  ["cors-elsewhere", ["--cors-origin", "http://127.0.0.1:1"], false],
];
let failures = 0;
try {
  for (const [name, args, pass] of cases) {
    if (!(await runCase(name, args, pass))) failures += 1;
  }
} finally {
  await browser.close();
  await new Promise((r) => pageServer.close(r));
}
console.log(`browser: ${cases.length - failures} of ${cases.length} cases as expected`);
process.exit(failures === 0 ? 0 : 1);
