//! The `starfish` command line. Thin: parse arguments, call the library.

use starfish::http::client_ip::{Cidr, TrustedProxies};
use starfish::http::cors::CorsConfig;
use starfish::http::headers::SecurityHeaders;
use starfish::server::{load_config, ServeOptions, Server, StoreChoice, TlsFiles};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE_TEMPLATE: &str = "\
starfish — a Starfish JSON document sync server and client

Usage:
  starfish serve [options]          run the server (no flags: embedded default
                                    config, 127.0.0.1:8787, data in ./starfish-data)
  starfish check-config FILE        validate a config file and print its warnings
{CLIENT}  starfish --help | --version

Options for serve:
  --config FILE           sync config JSON (default: the embedded default)
  --listen ADDR           address to listen on (default 127.0.0.1:8787)
  --data-dir DIR          filesystem store directory (default ./starfish-data)
  --memory                keep documents in memory instead
  --store URL             postgres://USER[:PASSWORD]@HOST[:PORT]/DB: documents in
                          PostgreSQL, shared by every node on it (password also
                          from PGPASSWORD; builds with --features postgres)
  --base-path PREFIX      mount prefix (default /v1; use / for the root)
  --no-anonymous          unsigned requests to non-public collections get 401
                          (default: served as anonymous, so 403); public
                          collections, and a batch pull's public entries, still
                          answer unsigned requests, as the official server does
  --max-body-bytes N      hard bound on request bodies (default: the larger of
                          1 MiB and the largest collection maxBodyBytes)
  --max-connections N     open connection cap (default 1024, about 2.7 MiB when
                          all are idle); when reached, the connection waiting
                          longest for a request head is closed to make room
  --max-connections-per-ip N
                          open connections from one address, enforced the same
                          way (default: a quarter of --max-connections)
  --per-ip-exempt CIDR    no per-address limit for these addresses (repeatable;
                          --trusted-proxy blocks are exempt too)
  --min-receive-rate N    request heads and bodies slower than N bytes/s after a
                          2 s grace get 408 (default 256; 0: off)
  --threads N             executor threads (default: available cores)
  --replica FILE          replicate collections from a primary (settings JSON,
                          see README: collections by name, optional auth, caFile)
  --tls-cert FILE         serve HTTPS: PEM certificate chain, leaf first (with
                          --tls-key); re-read with the key on SIGHUP
  --tls-key FILE          PEM private key of --tls-cert (RSA, ECDSA or Ed25519)
  --tls-handshake-timeout-ms N
                          time to complete a TLS handshake (default 10000)
  --revocations FILE      signed cap revocation lists (the official
                          buildRevocationList JSON, one list or an array);
                          re-read when the file changes and on SIGHUP
  --trusted-proxy CIDR    a reverse proxy whose X-Forwarded-For names the client
                          (repeatable; e.g. 127.0.0.1, 10.0.0.0/8, fd00::/8).
                          Without it, rate limits key ip on the TCP peer only
  --rate-limit-buckets N  buckets kept per rate-limit counter (default 10000;
                          the oldest window is dropped when full)
  --config-endpoint MODE  serve GET /config: public | role-filtered (default: off)
  --ttl-sweep-ms N        remove documents past their collection's ttlMs every
                          N ms (default 60000; 0: never, as the official server)
  --max-store-bytes N     refuse writes (507 {\"error\":\"Insufficient storage\"})
                          that would grow the stored values above N bytes
                          (default: no limit)
  --max-documents N       refuse writes (507) that would store more than N
                          documents and binary values (default: no limit)
  --min-free-bytes N      refuse writes (507) that would leave less than N bytes
                          free on the data directory's filesystem (default: off)
  --cache-bytes N         filesystem store: keep up to N bytes of hot documents in
                          memory, so their pulls read no file and wait for no
                          thread (default 4194304; 0: off; ignored for
                          --memory and --store)
  --cap-cache N           verified cap-certs remembered (default 1024; 0 disables)
  --nonce-max-entries N   live replay nonces kept in total (default 100000)
  --nonce-per-signer N    live nonces per signing key (default 4096)
  --nonce-window-ms N     how long a nonce is remembered (default 600000)
  --max-head-bytes N      request head limit, 431 above it (default 16384)
  --head-timeout-ms N     time to receive a request head (default 10000)
  --body-timeout-ms N     time to receive a request body (default 30000)
  --write-timeout-ms N    time to write a response (default 30000)
  --idle-timeout-ms N     keep-alive idle time before closing (default 5000)
  --shutdown-grace-ms N   time in-flight requests get on shutdown (default 10000)
  --request-timeout-ms N  answer 408 {\"error\":\"Request timeout\"} when a request
                          under the mount takes longer (default: off)
  --cors-origin ORIGIN    allow cross-origin requests from ORIGIN (scheme://host[:port]);
                          repeat for several, or * for any (default: CORS off)
  --cors-credentials      send Access-Control-Allow-Credentials: true (not with *)
  --cors-max-age SECONDS  Access-Control-Max-Age of preflights (default 86400)
  --security-headers      send X-Content-Type-Options, X-Frame-Options,
                          Strict-Transport-Security, X-XSS-Protection and
                          Referrer-Policy with the official defaults
  --security-header NAME=VALUE
                          change one of them (header name or official option
                          name, e.g. frameOptions=SAMEORIGIN); implies
                          --security-headers
  --no-security-header NAME
                          leave one of them out; implies --security-headers
  --metrics               count requests, connections, store calls and replica
                          syncs; serve them at GET /metrics (Prometheus text)
  --metrics-listen ADDR   serve /metrics on this address instead of the main
                          listener (implies --metrics)
  --log-level LEVEL       error|warn|info|debug|trace|off (default: $STARFISH_LOG,
                          $RUST_LOG, or info)

Exit status: 0 on success, 2 for a bad command line or configuration, 1 otherwise.
";

/// A command-line mistake.
struct Usage(String);

fn value(args: &mut std::vec::IntoIter<String>, flag: &str) -> Result<String, Usage> {
    args.next()
        .ok_or_else(|| Usage(format!("{flag} needs a value")))
}

fn number<T: std::str::FromStr>(
    args: &mut std::vec::IntoIter<String>,
    flag: &str,
) -> Result<T, Usage> {
    let v = value(args, flag)?;
    v.parse()
        .map_err(|_| Usage(format!("{flag}: not a number: {v:?}")))
}

fn millis(args: &mut std::vec::IntoIter<String>, flag: &str) -> Result<std::time::Duration, Usage> {
    number::<u64>(args, flag).map(std::time::Duration::from_millis)
}

fn security_headers(opts: &mut ServeOptions) -> &mut SecurityHeaders {
    opts.middleware
        .security_headers
        .get_or_insert_with(SecurityHeaders::default)
}

fn parse_serve(args: Vec<String>) -> Result<(ServeOptions, Option<log::LevelFilter>), Usage> {
    let mut opts = ServeOptions::default();
    let mut level = None;
    let mut args = args.into_iter();
    let (mut data_dir, mut memory) = (None, false);
    let mut store_url: Option<String> = None;
    let (mut tls_cert, mut tls_key) = (None, None);
    let mut cors_origins: Vec<String> = Vec::new();
    let (mut cors_credentials, mut cors_max_age) = (false, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => opts.config = Some(PathBuf::from(value(&mut args, &a)?)),
            "--listen" => {
                let v = value(&mut args, &a)?;
                opts.listen = v
                    .parse()
                    .map_err(|_| Usage(format!("--listen: not an address: {v:?}")))?;
            }
            "--data-dir" => data_dir = Some(PathBuf::from(value(&mut args, &a)?)),
            "--memory" => memory = true,
            "--store" => store_url = Some(value(&mut args, &a)?),
            "--base-path" => opts.base_path = value(&mut args, &a)?,
            "--no-anonymous" => opts.auth.allow_anonymous = false,
            "--max-body-bytes" => opts.max_body_bytes = Some(number(&mut args, &a)?),
            "--max-connections" => opts.http.max_connections = number(&mut args, &a)?,
            "--max-connections-per-ip" => {
                let n: usize = number(&mut args, &a)?;
                if n == 0 {
                    return Err(Usage("--max-connections-per-ip must be at least 1".into()));
                }
                opts.http.max_connections_per_ip = Some(n);
            }
            "--per-ip-exempt" => {
                let v = value(&mut args, &a)?;
                let block: Cidr = v
                    .parse()
                    .map_err(|e| Usage(format!("--per-ip-exempt: {e}")))?;
                opts.http.per_ip_exempt.push(block);
            }
            "--min-receive-rate" => opts.http.min_receive_rate = number(&mut args, &a)?,
            "--threads" => opts.threads = number(&mut args, &a)?,
            "--replica" => opts.replica = Some(PathBuf::from(value(&mut args, &a)?)),
            "--revocations" => opts.revocations = Some(PathBuf::from(value(&mut args, &a)?)),
            "--tls-cert" => tls_cert = Some(PathBuf::from(value(&mut args, &a)?)),
            "--tls-key" => tls_key = Some(PathBuf::from(value(&mut args, &a)?)),
            "--tls-handshake-timeout-ms" => opts.http.handshake_timeout = millis(&mut args, &a)?,
            "--trusted-proxy" => {
                let v = value(&mut args, &a)?;
                let block: Cidr = v
                    .parse()
                    .map_err(|e| Usage(format!("--trusted-proxy: {e}")))?;
                let mut blocks = opts.trusted_proxies.blocks().to_vec();
                blocks.push(block);
                opts.trusted_proxies = TrustedProxies::new(blocks);
            }
            "--rate-limit-buckets" => {
                opts.rate_limit_buckets = number(&mut args, &a)?;
                if opts.rate_limit_buckets == 0 {
                    return Err(Usage("--rate-limit-buckets must be at least 1".into()));
                }
            }
            "--config-endpoint" => {
                let v = value(&mut args, &a)?;
                opts.config_endpoint = Some(
                    v.parse()
                        .map_err(|e| Usage(format!("--config-endpoint: {e}")))?,
                );
            }
            "--ttl-sweep-ms" => {
                let ms: u64 = number(&mut args, &a)?;
                opts.ttl_sweep = (ms > 0).then(|| std::time::Duration::from_millis(ms));
            }
            "--max-store-bytes" => opts.quota.max_bytes = Some(number(&mut args, &a)?),
            "--max-documents" => opts.quota.max_documents = Some(number(&mut args, &a)?),
            "--min-free-bytes" => opts.quota.min_free_bytes = Some(number(&mut args, &a)?),
            "--cache-bytes" => opts.cache_bytes = number(&mut args, &a)?,
            "--cap-cache" => opts.auth.verified_cap_cache = number(&mut args, &a)?,
            "--nonce-max-entries" => opts.auth.nonce.max_entries = number(&mut args, &a)?,
            "--nonce-per-signer" => opts.auth.nonce.per_signer_limit = number(&mut args, &a)?,
            "--nonce-window-ms" => opts.auth.nonce.window_ms = number(&mut args, &a)?,
            "--max-head-bytes" => opts.http.max_head_bytes = number(&mut args, &a)?,
            "--head-timeout-ms" => opts.http.head_timeout = millis(&mut args, &a)?,
            "--body-timeout-ms" => opts.http.body_timeout = millis(&mut args, &a)?,
            "--write-timeout-ms" => opts.http.write_timeout = millis(&mut args, &a)?,
            "--idle-timeout-ms" => opts.http.keep_alive_timeout = millis(&mut args, &a)?,
            "--shutdown-grace-ms" => opts.http.shutdown_grace = millis(&mut args, &a)?,
            "--request-timeout-ms" => {
                let t = millis(&mut args, &a)?;
                opts.middleware.request_timeout = (!t.is_zero()).then_some(t);
            }
            "--cors-origin" => cors_origins.push(value(&mut args, &a)?),
            "--cors-credentials" => cors_credentials = true,
            "--cors-max-age" => cors_max_age = Some(number::<u64>(&mut args, &a)?),
            "--security-headers" => {
                security_headers(&mut opts);
            }
            "--security-header" => {
                let v = value(&mut args, &a)?;
                let (name, val) = v
                    .split_once('=')
                    .ok_or_else(|| Usage(format!("{a}: expected NAME=VALUE, got {v:?}")))?;
                security_headers(&mut opts)
                    .set(name.trim(), val.trim())
                    .map_err(|e| Usage(format!("{a}: {e}")))?;
            }
            "--no-security-header" => {
                let name = value(&mut args, &a)?;
                security_headers(&mut opts)
                    .disable(name.trim())
                    .map_err(|e| Usage(format!("{a}: {e}")))?;
            }
            "--metrics" => opts.metrics.enabled = true,
            "--metrics-listen" => {
                let v = value(&mut args, &a)?;
                opts.metrics.listen = Some(
                    v.parse()
                        .map_err(|_| Usage(format!("{a}: not an address: {v:?}")))?,
                );
            }
            "--log-level" => {
                let v = value(&mut args, &a)?;
                level = Some(
                    starfish::logger::parse_level(&v)
                        .ok_or_else(|| Usage(format!("--log-level: unknown level {v:?}")))?,
                );
            }
            other => return Err(Usage(format!("unknown option {other:?}"))),
        }
    }
    opts.tls = match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (None, None) => None,
        _ => return Err(Usage("--tls-cert and --tls-key go together".into())),
    };
    if cors_origins.is_empty() {
        if cors_credentials || cors_max_age.is_some() {
            return Err(Usage(
                "--cors-credentials and --cors-max-age need --cors-origin".into(),
            ));
        }
    } else {
        let mut cors = CorsConfig::for_origins(&cors_origins);
        cors.credentials = cors_credentials;
        if let Some(age) = cors_max_age {
            cors.max_age = age;
        }
        // Refused settings (credentials with *) stop start-up in
        // Server::bind with the official message and exit status 2.
        opts.middleware.cors = Some(cors);
    }
    if let Some(url) = store_url {
        if data_dir.is_some() || memory {
            return Err(Usage("--store excludes --data-dir and --memory".into()));
        }
        opts.store = store_choice(&url)?;
        return Ok((opts, level));
    }
    opts.store = match (data_dir, memory) {
        (Some(_), true) => return Err(Usage("--data-dir and --memory exclude each other".into())),
        (_, true) => StoreChoice::Memory,
        (Some(d), false) => StoreChoice::Dir(d),
        (None, false) => opts.store,
    };
    Ok((opts, level))
}

/// `--store URL`: a PostgreSQL database (feature `postgres`).
fn store_choice(url: &str) -> Result<StoreChoice, Usage> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(Usage(format!(
            "--store: expected postgres://USER@HOST[:PORT]/DB, got {url:?}"
        )));
    }
    #[cfg(feature = "postgres")]
    {
        Ok(StoreChoice::Postgres(url.to_owned()))
    }
    #[cfg(not(feature = "postgres"))]
    {
        Err(Usage(
            "--store postgres://...: this build has no PostgreSQL store (cargo build --features postgres)"
                .into(),
        ))
    }
}

fn serve(args: Vec<String>) -> ExitCode {
    let (opts, level) = match parse_serve(args) {
        Ok(x) => x,
        Err(Usage(m)) => return usage_error(&m),
    };
    starfish::logger::init(level.unwrap_or_else(starfish::logger::level_from_env));
    match Server::bind(opts).and_then(Server::run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn check_config(args: Vec<String>) -> ExitCode {
    let [file] = args.as_slice() else {
        return usage_error("check-config takes exactly one FILE");
    };
    match load_config(Some(&PathBuf::from(file))) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("[Starfish] config warning: {w}");
            }
            println!(
                "{file}: valid ({} routes)",
                starfish::server::route_count(&loaded.config)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn usage() -> String {
    #[cfg(feature = "client")]
    let client = starfish::client::cli::USAGE;
    #[cfg(not(feature = "client"))]
    let client = "";
    USAGE_TEMPLATE.replace("{CLIENT}", client)
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("starfish: {message}\n\n{}", usage());
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = if args.is_empty() {
        None
    } else {
        Some(args.remove(0))
    };
    match cmd.as_deref() {
        None | Some("--help" | "-h" | "help") => {
            print!("{}", usage());
            ExitCode::SUCCESS
        }
        Some("--version" | "-V") => {
            println!("starfish {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("serve") => serve(args),
        Some("check-config") => check_config(args),
        #[cfg(feature = "client")]
        Some(cmd @ ("identity" | "push" | "pull")) => starfish::client::cli::run(cmd, args),
        Some(other) => usage_error(&format!("unknown command {other:?}")),
    }
}
