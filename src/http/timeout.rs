//! # Request timeout
//!
//! The official `requestTimeoutMiddleware`: if the application has not
//! answered a request under the mount within the limit, answer
//! `408 {"error":"Request timeout"}` (the official body; the HTTP layer's
//! own read timeout says `Request Timeout`).
//!
//! As in the official server (a `Promise.race` that cancels nothing), the
//! application's work is *not* abandoned half-way: it runs to completion in
//! the background and its answer is dropped. That matters for a write: the
//! per-key lock is held until the store call that runs under it is done, so
//! a later push can never interleave with a timed-out one.
//!
//! The limit counts from when the application is called, that is after the
//! request head and body have been received (bounded by the HTTP layer's
//! head and body timeouts).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_io::Timer;
use futures_lite::FutureExt;

use super::layers::under_mount;
use super::response::{error_body, json_status};
use super::{BoxFuture, Handler, Request, Response};

/// The timeout wrapper around an application.
pub struct Timeout {
    inner: Arc<dyn Handler>,
    limit: Duration,
    mount: String,
}

impl Timeout {
    pub fn new(inner: Arc<dyn Handler>, limit: Duration, mount: &str) -> Self {
        Timeout {
            inner,
            limit,
            mount: mount.to_owned(),
        }
    }

    async fn serve(&self, req: Request) -> Response {
        if !under_mount(req.url().path(), &self.mount) {
            return self.inner.handle(req).await;
        }
        let inner = self.inner.clone();
        let mut work: BoxFuture<'static, Response> =
            Box::pin(async move { inner.handle(req).await });
        let answered = async { Some((&mut work).await) };
        let expired = async {
            Timer::after(self.limit).await;
            None
        };
        match answered.or(expired).await {
            Some(res) => res,
            None => {
                log::warn!(
                    "request timed out after {} ms (answered 408; the work finishes in the background)",
                    self.limit.as_millis() as u64
                );
                finish_in_background(work);
                json_status(408, &error_body("Request timeout"))
            }
        }
    }
}

/// Drive a timed-out request to completion on the blocking pool and drop
/// its answer.
fn finish_in_background(work: BoxFuture<'static, Response>) {
    blocking::unblock(move || {
        let done = std::panic::catch_unwind(AssertUnwindSafe(|| async_io::block_on(work)));
        if done.is_err() {
            log::error!("a timed-out request panicked while finishing");
        }
    })
    .detach();
}

impl Handler for Timeout {
    fn handle(&self, req: Request) -> BoxFuture<'_, Response> {
        Box::pin(self.serve(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_types::{Method, StatusCode, Url};
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Sleeps for the number of milliseconds in the path, then answers 200
    /// and records that it finished.
    struct Slow(Arc<AtomicBool>);

    impl Handler for Slow {
        fn handle(&self, req: Request) -> BoxFuture<'_, Response> {
            let ms: u64 = req.url().path()[4..].parse().unwrap();
            let done = self.0.clone();
            Box::pin(async move {
                Timer::after(Duration::from_millis(ms)).await;
                done.store(true, Ordering::SeqCst);
                Response::new(StatusCode::Ok)
            })
        }
    }

    fn get(path: &str) -> Request {
        Request::new(Method::Get, Url::parse(&format!("http://x{path}")).unwrap())
    }

    #[test]
    fn answers_408_in_time_and_lets_the_work_finish() {
        let done = Arc::new(AtomicBool::new(false));
        let t = Timeout::new(
            Arc::new(Slow(done.clone())),
            Duration::from_millis(50),
            "/v1",
        );
        let started = std::time::Instant::now();
        let mut res = async_io::block_on(t.handle(get("/v1/300")));
        assert!(started.elapsed() < Duration::from_millis(250));
        assert_eq!(res.status(), StatusCode::RequestTimeout);
        let body = async_io::block_on(res.body_string()).unwrap();
        assert_eq!(body, r#"{"error":"Request timeout"}"#);
        assert!(!done.load(Ordering::SeqCst));
        // The abandoned work still completes.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !done.load(Ordering::SeqCst) {
            assert!(std::time::Instant::now() < deadline, "work never finished");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn fast_answers_and_paths_outside_the_mount_pass() {
        let t = Timeout::new(
            Arc::new(Slow(Arc::default())),
            Duration::from_millis(50),
            "/v1",
        );
        let res = async_io::block_on(t.handle(get("/v1/0")));
        assert_eq!(res.status(), StatusCode::Ok);
        let res = async_io::block_on(t.handle(get("/v2/100")));
        assert_eq!(res.status(), StatusCode::Ok);
    }
}
