// Start/stop the starfish-rs release binary for one test file.
//
//   const srv = await startServer({ config: "configs/errors.json" });
//   srv.origin   -> "http://127.0.0.1:PORT"
//   srv.base     -> "http://127.0.0.1:PORT/v1"   (the default /v1 mount)
//   await srv.stop();
//
// The binary comes from $STARFISH_BIN, default ../../target/release/starfish
// relative to this interop folder.
//
// With $STARFISH_PG_BASE (postgres://USER@HOST:PORT) and $STARFISH_PG_CREATEDB
// (the createdb program) set, as tests/postgres/run.sh does, every server
// gets a fresh PostgreSQL database (`--store`) instead of --memory or
// --data-dir: the whole suite then runs on the postgres store.
//
// With $STARFISH_TLS_DIR set (run.sh --tls), the server serves HTTPS with
// $STARFISH_TLS_DIR/cert.pem and key.pem (`--tls-cert/--tls-key`), and
// srv.origin / srv.base are https:// URLs; Node trusts the throw-away CA
// through NODE_EXTRA_CA_CERTS, set by run.sh before node starts.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const INTEROP_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export function starfishBin() {
  const fromEnv = process.env.STARFISH_BIN;
  const bin = fromEnv
    ? path.resolve(INTEROP_DIR, fromEnv)
    : path.resolve(INTEROP_DIR, "../../target/release/starfish");
  if (!existsSync(bin)) {
    throw new Error(
      `starfish binary not found at ${bin} (build it with 'cargo build --release' or set STARFISH_BIN)`,
    );
  }
  return bin;
}

const LISTEN_RE = /listening on (https?:\/\/127\.0\.0\.1:(\d+))(\S*)/;

let databases = 0;
/** A new empty database on $STARFISH_PG_BASE's server; its URL. */
function freshDatabase() {
  const base = new URL(process.env.STARFISH_PG_BASE);
  const name = `interop_${process.pid}_${databases++}`;
  const r = spawnSync(
    process.env.STARFISH_PG_CREATEDB,
    ["-h", base.hostname, "-p", base.port, "-U", base.username, name],
    { encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(`createdb ${name} failed: ${r.stderr}`);
  return `${process.env.STARFISH_PG_BASE}/${name}`;
}

/** The HTTPS material of a --tls run, or null for plain HTTP. */
export function tlsDir() {
  return process.env.STARFISH_TLS_DIR || null;
}

/**
 * @param {object} [opts]
 * @param {string} [opts.config]   config JSON path (relative to the interop dir); default: embedded config
 * @param {boolean} [opts.memory]  --memory (default) or a temp --data-dir
 * @param {string[]} [opts.args]   extra CLI arguments
 */
export async function startServer(opts = {}) {
  const bin = starfishBin();
  const args = ["serve", "--listen", "127.0.0.1:0", "--log-level", process.env.STARFISH_LOG_LEVEL ?? "info"];
  let dataDir = null;
  if (process.env.STARFISH_PG_BASE) {
    args.push("--store", freshDatabase());
  } else if (opts.memory === false) {
    dataDir = mkdtempSync(path.join(tmpdir(), "starfish-interop-"));
    args.push("--data-dir", dataDir);
  } else {
    args.push("--memory");
  }
  if (opts.config) args.push("--config", path.resolve(INTEROP_DIR, opts.config));
  if (opts.args) args.push(...opts.args);
  const tls = tlsDir();
  if (tls) args.push("--tls-cert", path.join(tls, "cert.pem"), "--tls-key", path.join(tls, "key.pem"));

  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
  // Safety net: never leave the server behind if the test process exits early.
  const killOnExit = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  process.once("exit", killOnExit);
  let stderr = "";
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`starfish did not print its listening line within 15 s; stderr:\n${stderr}`));
    }, 15000);
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk) => {
      if (stderr.length < 1 << 20) stderr += chunk;
      const m = LISTEN_RE.exec(stderr);
      if (m && m[1].startsWith("https:") !== Boolean(tls)) {
        clearTimeout(timer);
        reject(new Error(`starfish serves ${m[1]}, expected ${tls ? "https" : "http"}`));
      } else if (m) {
        clearTimeout(timer);
        resolve({ origin: m[1], port: Number(m[2]), mount: m[3] });
      }
      if (process.env.STARFISH_ECHO_LOG) process.stderr.write(chunk);
    });
    child.stdout.resume();
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`starfish exited early (code ${code}, signal ${signal}); stderr:\n${stderr}`));
    });
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
  let info;
  try {
    info = await ready;
  } catch (err) {
    child.kill("SIGKILL");
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const exited = new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
  return {
    origin: info.origin,
    port: info.port,
    base: info.origin + info.mount,
    host: `127.0.0.1:${info.port}`,
    get stderr() {
      return stderr;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(t);
      }
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
