//! The client subcommands of the `starfish` binary: `identity new`, `push`
//! and `pull`. `main.rs` only dispatches here.
//!
//! Flags (scripts depend on them, keep them stable):
//!
//! ```text
//! starfish identity new [--passphrase-file FILE] [--out FILE]
//! starfish push PATH --data FILE|- [--server URL] [--namespace NS] [--credentials FILE] [--base-hash H] [--ca-file PEM]
//! starfish pull PATH [--server URL] [--namespace NS] [--credentials FILE] [--ca-file PEM]
//! ```
//!
//! An `https://` `--server` is verified against the bundled Mozilla roots,
//! or with `--ca-file` against the CA certificates of that PEM file instead.
//! There is no way to skip verification. A TLS failure is one line naming
//! the host and the reason.
//!
//! `--server` defaults to [`DEFAULT_SERVER`]. With `--namespace`, the
//! official rule inserts `/v1/<ns>` after the server's origin, so a trailing
//! `/v1` on `--server` (as in the default) is dropped first: `--server
//! http://h/v1 --namespace demo` and `--server http://h --namespace demo`
//! both reach `http://h/v1/demo/...`.
//!
//! Exit status: 0 on success, 2 for a bad command line, 1 for anything else
//! (with a one-line message on stderr).

use super::{Client, ClientError, ClientOptions, DeviceCredentials, Signer};
use crate::proto::json::{parse, to_js_json, Value};
use std::io::{Read, Write};
use std::process::ExitCode;
use std::sync::Arc;

/// The default `--server`.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8787/v1";

/// Usage text of the client subcommands (appended to the binary's usage).
pub const USAGE: &str = "  starfish identity new [--passphrase-file FILE] [--out FILE]
                                    derive a root identity from a passphrase
                                    (the file's content minus one trailing
                                    newline; stdin without the flag) and write
                                    the device-credentials JSON to FILE (stdout
                                    without --out)
  starfish push PATH --data FILE|- [--server URL] [--namespace NS]
                [--credentials FILE] [--base-hash H] [--ca-file PEM]
                                    push the JSON in FILE (- for stdin) to PATH
                                    (e.g. /push/users/<id>/settings); the current
                                    hash is pulled first unless --base-hash is given
  starfish pull PATH [--server URL] [--namespace NS] [--credentials FILE]
                [--ca-file PEM]
                                    pull PATH (e.g. /pull/users/<id>/settings) and
                                    print the response JSON
  (--server defaults to http://127.0.0.1:8787/v1; with --namespace a trailing
   /v1 is dropped because the namespace rule adds /v1/<ns>. An https:// server
   is verified against the bundled Mozilla roots, or only against the CA
   certificates in --ca-file PEM; there is no switch to skip verification)
";

/// A command-line mistake (exit status 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Anything a client subcommand can fail with.
#[derive(Debug)]
pub enum CliError {
    Usage(UsageError),
    Client(ClientError),
    Credentials(super::CredentialsError),
    Io(String, std::io::Error),
    Json(String),
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Usage(u) => write!(f, "{u}"),
            CliError::Client(ClientError::Conflict { .. }) => f.write_str(
                "conflict (409): the document changed on the server; pull it again \
                 (or pass the current hash with --base-hash)",
            ),
            CliError::Client(e) => write!(f, "{e}"),
            CliError::Credentials(e) => write!(f, "{e}"),
            CliError::Io(what, e) => write!(f, "{what}: {e}"),
            CliError::Json(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CliError {}

impl CliError {
    /// The process exit status.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            _ => 1,
        }
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        CliError::Client(e)
    }
}

fn usage(m: impl Into<String>) -> CliError {
    CliError::Usage(UsageError(m.into()))
}

/// Flags shared by `push` and `pull`.
#[derive(Debug, Default)]
struct Common {
    path: Option<String>,
    server: Option<String>,
    namespace: Option<String>,
    credentials: Option<String>,
    data: Option<String>,
    base_hash: Option<String>,
    ca_file: Option<String>,
}

fn parse_common(args: Vec<String>, push: bool) -> Result<Common, CliError> {
    let mut c = Common::default();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut val = |flag: &str| {
            it.next()
                .ok_or_else(|| usage(format!("{flag} needs a value")))
        };
        match a.as_str() {
            "--server" => c.server = Some(val(&a)?),
            "--namespace" => c.namespace = Some(val(&a)?),
            "--credentials" => c.credentials = Some(val(&a)?),
            "--ca-file" => c.ca_file = Some(val(&a)?),
            "--data" if push => c.data = Some(val(&a)?),
            "--base-hash" if push => c.base_hash = Some(val(&a)?),
            flag if flag.starts_with("--") => {
                return Err(usage(format!("unknown option {flag:?}")))
            }
            _ if c.path.is_none() => c.path = Some(a),
            other => return Err(usage(format!("unexpected argument {other:?}"))),
        }
    }
    Ok(c)
}

/// The base URL to use: `--server` (default [`DEFAULT_SERVER`]), minus a
/// trailing `/v1` when a namespace is given.
pub fn effective_server(server: Option<&str>, namespace: Option<&str>) -> String {
    let s = server.unwrap_or(DEFAULT_SERVER);
    let s = s.strip_suffix('/').unwrap_or(s);
    match namespace {
        Some(ns) if !ns.is_empty() => s.strip_suffix("/v1").unwrap_or(s).to_owned(),
        _ => s.to_owned(),
    }
}

fn make_client(c: &Common) -> Result<Client, CliError> {
    let signer = match &c.credentials {
        Some(path) => {
            let creds = DeviceCredentials::load(path).map_err(CliError::Credentials)?;
            Some(Arc::new(
                Signer::from_credentials(&creds).map_err(CliError::Credentials)?,
            ))
        }
        None => None,
    };
    let base = effective_server(c.server.as_deref(), c.namespace.as_deref());
    Ok(Client::with_options(
        &base,
        ClientOptions {
            namespace: c.namespace.clone(),
            signer,
            ca_file: c.ca_file.as_ref().map(std::path::PathBuf::from),
            ..ClientOptions::default()
        },
    )?)
}

fn read_input(name: &str) -> Result<Vec<u8>, CliError> {
    if name == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| CliError::Io("stdin".into(), e))?;
        Ok(buf)
    } else {
        std::fs::read(name).map_err(|e| CliError::Io(name.into(), e))
    }
}

fn print_json(v: &Value) -> Result<(), CliError> {
    let mut out = to_js_json(v);
    out.push(b'\n');
    std::io::stdout()
        .write_all(&out)
        .map_err(|e| CliError::Io("stdout".into(), e))
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    futures_lite::future::block_on(f)
}

/// `starfish pull PATH ...`: print the pulled response JSON.
pub fn pull_cmd(args: Vec<String>) -> Result<(), CliError> {
    let c = parse_common(args, false)?;
    let path = c.path.clone().ok_or_else(|| usage("pull needs a PATH"))?;
    let client = make_client(&c)?;
    let r = block_on(client.pull(&path))?;
    print_json(&Value::Object(r.body))
}

/// `starfish push PATH --data FILE|- ...`: print `{hash, timestamp}`.
pub fn push_cmd(args: Vec<String>) -> Result<(), CliError> {
    let c = parse_common(args, true)?;
    let path = c.path.clone().ok_or_else(|| usage("push needs a PATH"))?;
    let data_src = c
        .data
        .clone()
        .ok_or_else(|| usage("push needs --data FILE|-"))?;
    let text = read_input(&data_src)?;
    let data = parse(&text).map_err(|e| CliError::Json(format!("{data_src}: {e}")))?;
    let client = make_client(&c)?;
    block_on(async {
        let base = match &c.base_hash {
            Some(h) => h.clone(),
            None => {
                let rest = path
                    .strip_prefix("/push/")
                    .ok_or_else(|| usage("PATH must start with /push/ (or give --base-hash)"))?;
                client.pull(&format!("/pull/{rest}")).await?.hash
            }
        };
        let r = client.push(&path, &data, Some(&base)).await?;
        let mut o = crate::proto::json::Object::new();
        o.insert("hash", r.hash.into());
        o.insert("timestamp", Value::Number(r.timestamp));
        print_json(&Value::Object(o))
    })
}

/// Strip one trailing line ending (`\n` or `\r\n`).
fn strip_newline(s: &str) -> &str {
    s.strip_suffix("\r\n")
        .or_else(|| s.strip_suffix('\n'))
        .unwrap_or(s)
}

/// `starfish identity new ...`.
pub fn identity_cmd(args: Vec<String>) -> Result<(), CliError> {
    let mut it = args.into_iter();
    match it.next().as_deref() {
        Some("new") => {}
        Some(other) => return Err(usage(format!("unknown identity command {other:?}"))),
        None => return Err(usage("identity needs a command: new")),
    }
    let (mut pass_file, mut out) = (None, None);
    while let Some(a) = it.next() {
        let mut val = |flag: &str| {
            it.next()
                .ok_or_else(|| usage(format!("{flag} needs a value")))
        };
        match a.as_str() {
            "--passphrase-file" => pass_file = Some(val(&a)?),
            "--out" => out = Some(val(&a)?),
            other => return Err(usage(format!("unknown option {other:?}"))),
        }
    }
    let raw = read_input(pass_file.as_deref().unwrap_or("-"))?;
    let text =
        String::from_utf8(raw).map_err(|_| CliError::Json("the passphrase is not UTF-8".into()))?;
    let creds =
        DeviceCredentials::bootstrap(strip_newline(&text)).map_err(CliError::Credentials)?;
    match out {
        Some(path) => {
            creds.save(&path).map_err(CliError::Credentials)?;
            eprintln!("wrote {path} (userId {})", creds.user_id);
            Ok(())
        }
        None => print_json(&creds.to_value()),
    }
}

/// Run a client subcommand (`identity`, `push`, `pull`) and map the result
/// to an exit status, printing errors to stderr.
pub fn run(command: &str, args: Vec<String>) -> ExitCode {
    let r = match command {
        "identity" => identity_cmd(args),
        "push" => push_cmd(args),
        "pull" => pull_cmd(args),
        other => Err(usage(format!("unknown command {other:?}"))),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("starfish {command}: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_and_namespace() {
        assert_eq!(effective_server(None, None), "http://127.0.0.1:8787/v1");
        assert_eq!(
            effective_server(None, Some("demo")),
            "http://127.0.0.1:8787"
        );
        assert_eq!(
            effective_server(Some("http://h/"), Some("demo")),
            "http://h"
        );
        assert_eq!(
            effective_server(Some("http://h/v1"), Some("")),
            "http://h/v1"
        );
    }

    #[test]
    fn flags() {
        let a = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let c = parse_common(a(&["/pull/x", "--server", "http://h"]), false).unwrap();
        assert_eq!(c.path.as_deref(), Some("/pull/x"));
        assert!(parse_common(a(&["/pull/x", "--data", "f"]), false).is_err());
        assert!(parse_common(a(&["/pull/x", "/pull/y"]), false).is_err());
        let c = parse_common(a(&["/push/x", "--data", "-", "--base-hash", ""]), true).unwrap();
        assert_eq!(c.base_hash.as_deref(), Some(""));
        assert_eq!(strip_newline("pw\n"), "pw");
        assert_eq!(strip_newline("pw\r\n"), "pw");
        assert_eq!(strip_newline("pw\n\n"), "pw\n");
    }
}
