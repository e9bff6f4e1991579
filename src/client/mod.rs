//! The Starfish client: the Rust counterpart of the official
//! `StarfishClient` (`shared/spec/client.md`), plus [`SyncManager`] and
//! device [`identity`] handling.
//!
//! * [`Client`]: base URL, optional namespace (the official
//!   `applyNamespace` rule: `/pull/...` becomes `/v1/<ns>/pull/...`),
//!   optional [`Signer`] (device credentials, with automatic re-minting of
//!   self-signed root caps), default headers, a per-request timeout.
//!   Operations: [`Client::pull`], [`Client::pull_with`] (checkpoint,
//!   `withKeyring`, `If-None-Match`), [`Client::push`], [`Client::batch_pull`],
//!   [`Client::batch_pull_many`].
//! * Signing: the signature covers the path and query **as sent on the
//!   wire**, i.e. including the path inside the base URL (a `/v1` mount).
//!   The official client signs only what follows its `baseUrl`; signing the
//!   full path is what a mount-aware server verifies, so a `/v1`-mounted
//!   official server accepts our requests with or without a namespace
//!   (auth.md §7.4). `h` is the base URL's host (`new URL(baseUrl).host`).
//! * Transport: HTTP/1.1 over `async-h1`'s client on `async-net` TCP
//!   streams with a small keep-alive pool; `https://` over rustls (feature
//!   `tls`) with the bundled Mozilla roots or, with
//!   [`ClientOptions::ca_file`], a private CA. Hostname verification is
//!   always on. Runs on any executor (I/O and timers come from `async-io`).
//!
//! ```no_run
//! # futures_lite::future::block_on(async {
//! use starfish::client::Client;
//! use starfish::proto::json::parse;
//! let client = Client::new("http://127.0.0.1:8787/v1")?;
//! let doc = client.pull("/pull/public/notes/hello").await?;
//! let data = parse(br#"{"text":"hi"}"#).unwrap();
//! client.push("/push/public/notes/hello", &data, Some(&doc.hash)).await?;
//! # Ok::<(), starfish::client::ClientError>(()) });
//! ```

pub mod cli;
mod error;
pub mod identity;
mod sync_manager;
mod transport;

pub use error::ClientError;
pub use identity::{CredentialsError, DeviceCredentials, DeviceKeys, Signer};
pub use sync_manager::{default_resolver, Resolver, SyncManager};

use crate::proto::canonical::{js_number, write_quoted};
use crate::proto::json::{parse, to_js_json, Object, Value};
use crate::proto::request_sig::{sign_request, RequestToSign};
use http_types::{Method, Request};
use std::sync::Arc;
use std::time::Duration;
use transport::{BaseUrl, Connector, Pool, RawResponse};

/// Default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default bound on a response body.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Client settings beyond the base URL. `Default` gives no namespace, no
/// signer, no extra headers, a 30 s timeout and a pool of 4 idle
/// connections kept for up to 4 s (below the usual 5 s server keep-alive).
#[derive(Clone)]
pub struct ClientOptions {
    /// Namespace name; `None` or `""` means none.
    pub namespace: Option<String>,
    /// Signs requests; without it requests carry no auth headers.
    pub signer: Option<Arc<Signer>>,
    /// Extra headers on every request (auth and framing headers win).
    pub headers: Vec<(String, String)>,
    /// Whole-request timeout (connect, send, receive).
    pub timeout: Duration,
    /// Most idle keep-alive connections kept.
    pub max_idle_connections: usize,
    /// How long an idle connection is kept for reuse.
    pub idle_timeout: Duration,
    /// Largest response body accepted.
    pub max_response_bytes: usize,
    /// `https://` only: trust the CA certificates in this PEM file instead
    /// of the bundled Mozilla roots (a private CA). Read when the client is
    /// built.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            namespace: None,
            signer: None,
            headers: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            max_idle_connections: 4,
            idle_timeout: Duration::from_secs(4),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            ca_file: None,
        }
    }
}

/// A pulled document: `{data, hash, timestamp, ...}`.
#[derive(Clone, Debug, PartialEq)]
pub struct PullResult {
    /// The document (`{}` when missing).
    pub data: Value,
    /// The document hash (`""` when missing).
    pub hash: String,
    /// The server's pull time, Unix ms.
    pub timestamp: f64,
    /// The whole response object (with `authorPubkey`, `keyring`, ... when
    /// the server sent them).
    pub body: Object,
}

/// Options of [`Client::pull_with`].
#[derive(Clone, Debug, Default)]
pub struct PullOptions {
    /// `?checkpoint=<n>` when `n > 0`.
    pub checkpoint: f64,
    /// `?withKeyring=1`.
    pub with_keyring: bool,
    /// Send `If-None-Match: "<hash>"`; a 304 gives `Ok(None)`.
    pub if_none_match: Option<String>,
}

/// What a push returned.
#[derive(Clone, Debug, PartialEq)]
pub struct PushResult {
    pub hash: String,
    pub timestamp: f64,
}

/// One entry of a batch pull answer, index-aligned with the param-sets.
#[derive(Clone, Debug, PartialEq)]
pub enum BatchEntry {
    /// `{data, hash, timestamp}`.
    Document {
        data: Value,
        hash: String,
        timestamp: f64,
    },
    /// `{error}`: e.g. `Missing required path parameter`, `Forbidden`.
    Error(String),
}

/// A batch pull answer: `collections` in the server's order.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct BatchPullResult {
    pub collections: Vec<(String, Vec<BatchEntry>)>,
}

impl BatchPullResult {
    /// The entries of one collection.
    pub fn get(&self, name: &str) -> Option<&[BatchEntry]> {
        self.collections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, e)| e.as_slice())
    }
}

struct Inner {
    base: BaseUrl,
    namespace: Option<String>,
    signer: Option<Arc<Signer>>,
    headers: Vec<(String, String)>,
    timeout: Duration,
    max_response_bytes: usize,
    connector: Connector,
    pool: Pool,
}

/// A Starfish client. Cheap to clone (shared connection pool).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("host", &self.inner.base.host)
            .field("base_path", &self.inner.base.path)
            .field("namespace", &self.inner.namespace)
            .field("signed", &self.inner.signer.is_some())
            .finish_non_exhaustive()
    }
}

/// `URLSearchParams` encoding of one name or value
/// (`application/x-www-form-urlencoded`): space → `+`, everything except
/// `A–Z a–z 0–9 * - . _` percent-encoded (upper-case hex).
pub fn form_urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn protocol(what: &str) -> ClientError {
    ClientError::Protocol(what.to_owned())
}

fn parse_object(body: &[u8]) -> Result<Object, ClientError> {
    match parse(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(protocol("response is not a JSON object")),
        Err(e) => Err(ClientError::Protocol(format!("response is not JSON: {e}"))),
    }
}

fn str_field(o: &Object, name: &str) -> Result<String, ClientError> {
    o.get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ClientError::Protocol(format!("response field {name:?} is not a string")))
}

fn num_field(o: &Object, name: &str) -> Result<f64, ClientError> {
    o.get(name)
        .and_then(Value::as_f64)
        .ok_or_else(|| ClientError::Protocol(format!("response field {name:?} is not a number")))
}

fn batch_entry(v: &Value) -> Result<BatchEntry, ClientError> {
    let o = v
        .as_object()
        .ok_or_else(|| protocol("batch entry is not an object"))?;
    if let Some(e) = o.get("error") {
        return Ok(BatchEntry::Error(
            e.as_str().map(str::to_owned).unwrap_or_default(),
        ));
    }
    Ok(BatchEntry::Document {
        data: o
            .get("data")
            .cloned()
            .ok_or_else(|| protocol("batch entry has no data"))?,
        hash: str_field(o, "hash")?,
        timestamp: num_field(o, "timestamp")?,
    })
}

impl Client {
    /// A client with default options (no namespace, unsigned).
    pub fn new(base_url: &str) -> Result<Client, ClientError> {
        Client::with_options(base_url, ClientOptions::default())
    }

    /// A client with options.
    pub fn with_options(base_url: &str, opts: ClientOptions) -> Result<Client, ClientError> {
        let base = BaseUrl::parse(base_url)?;
        let connector = Connector::new(&base, opts.ca_file.as_deref())?;
        let namespace = opts.namespace.filter(|n| !n.is_empty());
        if let Some(ns) = &namespace {
            if ns.contains(['/', '?', '#']) {
                return Err(ClientError::Config(format!(
                    "namespace {ns:?} must be one path segment"
                )));
            }
        }
        Ok(Client {
            inner: Arc::new(Inner {
                base,
                namespace,
                signer: opts.signer,
                headers: opts.headers,
                timeout: opts.timeout,
                max_response_bytes: opts.max_response_bytes,
                connector,
                pool: Pool::new(opts.max_idle_connections, opts.idle_timeout),
            }),
        })
    }

    /// The host that requests are signed for and sent to (`Host`).
    pub fn host(&self) -> &str {
        &self.inner.base.host
    }

    /// The path inside the base URL (`""` or e.g. `/v1`).
    pub fn base_path(&self) -> &str {
        &self.inner.base.path
    }

    /// The namespace, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.inner.namespace.as_deref()
    }

    /// The signer, if any.
    pub fn signer(&self) -> Option<&Arc<Signer>> {
        self.inner.signer.as_ref()
    }

    /// Idle pooled connections right now.
    pub fn idle_connections(&self) -> usize {
        self.inner.pool.idle_len()
    }

    /// The official `applyNamespace`: `/v1/<ns><path>` with a namespace,
    /// `path` without.
    pub fn apply_namespace(&self, path: &str) -> String {
        match &self.inner.namespace {
            Some(ns) => format!("/v1/{ns}{path}"),
            None => path.to_owned(),
        }
    }

    /// The path and query that a request for `path_and_query` (relative to
    /// the base, namespace not yet applied) puts on the request line, which
    /// is also what gets signed.
    pub fn wire_path(&self, path_and_query: &str) -> Result<String, ClientError> {
        Ok(self
            .inner
            .base
            .resolve(&self.apply_namespace(path_and_query))?
            .1)
    }

    /// Send a raw request and return the status and body whatever they are
    /// (no status mapping). `rel` is relative to the base URL (no namespace
    /// rewrite); `headers` are sent as given, except that a signer's
    /// `Authorization` and `X-Starfish-*` headers replace same-named ones.
    /// The replica uses this to talk to its primary.
    pub async fn send_raw(
        &self,
        method: &str,
        rel: &str,
        headers: &[(String, String)],
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let method: Method = method
            .parse()
            .map_err(|_| ClientError::Config(format!("unsupported method {method:?}")))?;
        let extra: Vec<(&str, String)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        let resp = self.request(method, rel, body, &extra).await?;
        Ok((resp.status, resp.body))
    }

    /// Send one request; `rel` is relative to the base with the namespace
    /// already applied. Applies the timeout.
    async fn request(
        &self,
        method: Method,
        rel: &str,
        body: Option<Vec<u8>>,
        extra: &[(&str, String)],
    ) -> Result<RawResponse, ClientError> {
        let fut = self.request_inner(method, rel, body, extra);
        let timeout = self.inner.timeout;
        futures_lite::future::or(fut, async move {
            async_io::Timer::after(timeout).await;
            Err(ClientError::Timeout)
        })
        .await
    }

    async fn request_inner(
        &self,
        method: Method,
        rel: &str,
        body: Option<Vec<u8>>,
        extra: &[(&str, String)],
    ) -> Result<RawResponse, ClientError> {
        let inner = &*self.inner;
        let (url, wire) = inner.base.resolve(rel)?;
        let build = || -> Result<Request, ClientError> {
            let mut req = Request::new(method, url.clone());
            for (k, v) in &inner.headers {
                req.insert_header(k.as_str(), v.as_str());
            }
            req.insert_header("Host", inner.base.host.as_str());
            req.insert_header("Accept", "application/json");
            for (k, v) in extra {
                req.insert_header(*k, v.as_str());
            }
            if let Some(signer) = &inner.signer {
                let cred = |e: identity::CredentialsError| ClientError::Config(e.to_string());
                let cap = signer.cap().map_err(cred)?;
                let nonce = identity::request_nonce().map_err(cred)?;
                let ts = identity::now_ms();
                let signed_body: &[u8] = match (&body, method) {
                    (Some(b), Method::Post | Method::Put | Method::Patch | Method::Delete) => b,
                    _ => b"",
                };
                let sig = sign_request(
                    &RequestToSign {
                        method: method.as_ref(),
                        path_and_query: &wire,
                        host: &inner.base.host,
                        body: signed_body,
                        ts: ts as f64,
                        nonce_b64: &nonce,
                    },
                    signer.seed(),
                );
                req.insert_header("Authorization", cap.authorization_header());
                req.insert_header("X-Starfish-Sig", sig);
                req.insert_header("X-Starfish-Ts", ts.to_string());
                req.insert_header("X-Starfish-Nonce", nonce);
            }
            if let Some(b) = &body {
                let ct = req.header("content-type").map(|v| v.last().to_string());
                req.set_body(b.clone());
                // `set_body` invents a Content-Type from the body's mime.
                match ct {
                    Some(ct) => {
                        req.insert_header("Content-Type", ct);
                    }
                    None => {
                        req.remove_header("Content-Type");
                    }
                }
            }
            Ok(req)
        };
        transport::send(
            &inner.base,
            &inner.connector,
            &inner.pool,
            inner.max_response_bytes,
            build,
        )
        .await
    }

    fn fail(resp: RawResponse) -> ClientError {
        ClientError::from_status(
            resp.status,
            String::from_utf8_lossy(&resp.body).into_owned(),
        )
    }

    /// `pull(path)`: GET the document. `path` starts with `/pull/`.
    pub async fn pull(&self, path: &str) -> Result<PullResult, ClientError> {
        match self.pull_with(path, &PullOptions::default()).await? {
            Some(r) => Ok(r),
            None => Err(protocol("304 Not Modified without If-None-Match")),
        }
    }

    /// Pull with a checkpoint, `withKeyring`, or `If-None-Match`. `Ok(None)`
    /// means 304: the document still has the hash given in `if_none_match`.
    pub async fn pull_with(
        &self,
        path: &str,
        opts: &PullOptions,
    ) -> Result<Option<PullResult>, ClientError> {
        let mut rel = self.apply_namespace(path);
        let mut q = Vec::new();
        if opts.checkpoint > 0.0 {
            q.push(format!("checkpoint={}", js_number(opts.checkpoint)));
        }
        if opts.with_keyring {
            q.push("withKeyring=1".to_owned());
        }
        if !q.is_empty() {
            rel.push('?');
            rel.push_str(&q.join("&"));
        }
        let mut extra = Vec::new();
        if let Some(h) = &opts.if_none_match {
            extra.push(("If-None-Match", format!("\"{h}\"")));
        }
        let resp = self.request(Method::Get, &rel, None, &extra).await?;
        if resp.status == 304 {
            return Ok(None);
        }
        if !(200..300).contains(&resp.status) {
            return Err(Self::fail(resp));
        }
        let body = parse_object(&resp.body)?;
        Ok(Some(PullResult {
            data: body
                .get("data")
                .cloned()
                .ok_or_else(|| protocol("pull response has no data"))?,
            hash: str_field(&body, "hash")?,
            timestamp: num_field(&body, "timestamp")?,
            body,
        }))
    }

    /// The push body `{"data":...,"baseHash":...}` exactly as sent and signed.
    pub fn push_body(data: &Value, base_hash: Option<&str>) -> Vec<u8> {
        let mut body = b"{\"data\":".to_vec();
        body.extend_from_slice(&to_js_json(data));
        body.extend_from_slice(b",\"baseHash\":");
        match base_hash {
            Some(h) => write_quoted(&mut body, h.as_bytes()),
            None => body.extend_from_slice(b"null"),
        }
        body.push(b'}');
        body
    }

    /// `push(path, data, baseHash)`: POST the whole document. `base_hash`
    /// `None` sends `"baseHash":null` (create only). A 409 is
    /// [`ClientError::Conflict`].
    pub async fn push(
        &self,
        path: &str,
        data: &Value,
        base_hash: Option<&str>,
    ) -> Result<PushResult, ClientError> {
        let rel = self.apply_namespace(path);
        let body = Client::push_body(data, base_hash);
        let extra = [("Content-Type", "application/json".to_owned())];
        let resp = self.request(Method::Post, &rel, Some(body), &extra).await?;
        if !(200..300).contains(&resp.status) {
            return Err(Self::fail(resp));
        }
        let o = parse_object(&resp.body)?;
        Ok(PushResult {
            hash: str_field(&o, "hash")?,
            timestamp: num_field(&o, "timestamp")?,
        })
    }

    /// `batchPull(collections, {params})`: `GET /batch/pull?collections=a,b
    /// &params={"a":[{...}],...}` (`params` omitted when empty).
    pub async fn batch_pull(
        &self,
        collections: &[&str],
        params: &Object,
    ) -> Result<BatchPullResult, ClientError> {
        let mut rel = self.apply_namespace("/batch/pull");
        rel.push_str("?collections=");
        rel.push_str(&form_urlencode(&collections.join(",")));
        if !params.is_empty() {
            let json = to_js_json(&Value::Object(params.clone()));
            rel.push_str("&params=");
            rel.push_str(&form_urlencode(&String::from_utf8_lossy(&json)));
        }
        let resp = self.request(Method::Get, &rel, None, &[]).await?;
        if !(200..300).contains(&resp.status) {
            return Err(Self::fail(resp));
        }
        let o = parse_object(&resp.body)?;
        let cols = o
            .get("collections")
            .and_then(Value::as_object)
            .ok_or_else(|| protocol("batch response has no collections object"))?;
        let mut out = BatchPullResult::default();
        for (name, entries) in cols.iter() {
            let entries = entries
                .as_array()
                .ok_or_else(|| protocol("batch collection entry is not an array"))?
                .iter()
                .map(batch_entry)
                .collect::<Result<Vec<_>, _>>()?;
            out.collections.push((name.to_string_lossy(), entries));
        }
        Ok(out)
    }

    /// `batchPullMany(collection, paramSets)`: many documents of one
    /// collection, index-aligned with `param_sets`. No request for an empty
    /// list. `{identity}` may be left out (the server fills in the caller).
    pub async fn batch_pull_many(
        &self,
        collection: &str,
        param_sets: &[Object],
    ) -> Result<Vec<BatchEntry>, ClientError> {
        if param_sets.is_empty() {
            return Ok(Vec::new());
        }
        let mut params = Object::new();
        params.insert(
            collection,
            Value::Array(param_sets.iter().cloned().map(Value::Object).collect()),
        );
        let r = self.batch_pull(&[collection], &params).await?;
        Ok(r.get(collection).map(<[_]>::to_vec).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_search_params_encoding() {
        assert_eq!(form_urlencode("a,b"), "a%2Cb");
        assert_eq!(
            form_urlencode(r#"{"n":[{"id":"x y~é"}]}"#),
            "%7B%22n%22%3A%5B%7B%22id%22%3A%22x+y%7E%C3%A9%22%7D%5D%7D"
        );
        assert_eq!(form_urlencode("*-._AZaz09"), "*-._AZaz09");
    }

    #[test]
    fn namespaces_and_wire_paths() {
        let c = Client::with_options(
            "http://h:1",
            ClientOptions {
                namespace: Some("tenantA".into()),
                ..ClientOptions::default()
            },
        )
        .unwrap();
        assert_eq!(
            c.wire_path("/pull/tenantA/users/x/settings").unwrap(),
            "/v1/tenantA/pull/tenantA/users/x/settings"
        );
        let c = Client::new("http://h:1/v1/").unwrap();
        assert_eq!(c.wire_path("/pull/a").unwrap(), "/v1/pull/a");
        let c = Client::with_options(
            "http://h:1",
            ClientOptions {
                namespace: Some(String::new()),
                ..ClientOptions::default()
            },
        )
        .unwrap();
        assert_eq!(c.namespace(), None);
    }

    #[test]
    fn futures_are_send_and_the_client_is_shareable() {
        fn send<T: Send>(_: &T) {}
        fn share<T: Send + Sync + Clone>() {}
        share::<Client>();
        let c = Client::new("http://127.0.0.1:1").unwrap();
        send(&c.pull("/pull/x"));
        send(&c.push("/push/x", &Value::Null, None));
        send(&c.batch_pull_many("x", &[]));
        let mut m = SyncManager::new(c.clone(), "/pull/x", "/push/x");
        send(&m.push(Object::new()));
    }

    #[test]
    fn push_body_key_order() {
        let d = parse(br#"{"theme":"dark"}"#).unwrap();
        assert_eq!(
            Client::push_body(&d, None),
            br#"{"data":{"theme":"dark"},"baseHash":null}"#
        );
        assert_eq!(
            Client::push_body(&d, Some("ab")),
            br#"{"data":{"theme":"dark"},"baseHash":"ab"}"#
        );
    }
}
