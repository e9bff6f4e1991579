//! # The listener
//!
//! Accept loop, connection cap, `TCP_NODELAY`, and graceful shutdown.
//!
//! * **Connection cap** and **per-address limit**
//!   ([`ServerConfig::max_connections`], [`ServerConfig::max_connections_per_ip`]):
//!   when one is reached, the connection that has waited longest without a
//!   complete request head is closed to make room (see `admission`); only
//!   when every open connection is mid-request is the new one accepted and
//!   closed at once. The client then sees an immediate EOF/reset it can
//!   retry on, instead of hanging in the kernel backlog.
//! * **Shutdown**: when the `shutdown` future resolves, the listener is closed
//!   (new connections are refused), idle connections are closed, requests in
//!   flight run to completion and are answered with `Connection: close`. After
//!   [`ServerConfig::shutdown_grace`], connections still open are dropped.
//! * **Sockets**: an accepted socket is async-io's `Async<TcpStream>` itself
//!   (`Tcp`), not async-net's `TcpStream`, which wraps it in an `Arc` with
//!   readiness futures and a waker slab: what an idle connection holds is
//!   kept small (issue 13, see bench/README.md "Memory per idle connection").
//! * **Accept errors** (e.g. out of file descriptors) are logged and retried
//!   after 100 ms; they never end the server.
//! * **TLS** ([`serve_tls`], [`serve_tls_on`], feature `tls`): each accepted
//!   connection first completes a TLS handshake within
//!   [`ServerConfig::handshake_timeout`] (and is closed at shutdown while
//!   still handshaking), then runs the same connection loop as plain HTTP.
//!   A failed handshake (garbage, plain HTTP, an unknown CA on the client's
//!   side) just closes the connection.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_executor::{Executor, Task};
use async_io::{Async, Timer};
use async_net::TcpListener;
use futures_lite::{AsyncRead, AsyncWrite, FutureExt};
use std::pin::Pin;
use std::task::{Context, Poll};

#[cfg(feature = "tls")]
use super::admission::Slot;
use super::admission::{Admission, Limits};
use super::conn::{self, ActiveGuard, Shared};
use super::signal::Signal;
use super::{Handler, ServerConfig};

/// Serve HTTP/1 on `listener` until `shutdown` resolves, then stop accepting,
/// let in-flight requests finish (up to [`ServerConfig::shutdown_grace`]) and
/// return.
///
/// Connection tasks run on an internal [`Executor`] that this future drives
/// itself, so it runs on any executor, or alone under
/// `futures_lite::future::block_on`. It starts no thread.
///
/// Returns an error only if the listener's local address cannot be read.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let ex = Executor::new();
    run_polling(&ex, serve_on(&ex, listener, handler, config, shutdown)).await
}

/// Tasks run between two turns of the reactor on an executor thread
/// ([`run_polling`]).
const TASKS_PER_IO_TURN: usize = 8;

/// Run `ex`'s tasks on this thread until `fut` completes, like
/// `Executor::run`, but hand the thread back to `async_io::block_on` after
/// every [`TASKS_PER_IO_TURN`] tasks; `block_on` then polls the reactor
/// without blocking before going on.
///
/// Why (issue 13, the drop at 256 connections): `Executor::run` yields only
/// every 200 tasks, so under load this thread went milliseconds without
/// polling I/O. async-io's helper thread ("async-io") then found the
/// reactor idle and took it over, checking every 50 µs: with the server on
/// one core it preempted this thread about 7,000 times a second (pull1k
/// c=256: 34,000 context switches in 4 s, against 600 at c=16), and every
/// I/O wake-up crossed threads. Polling here every few tasks keeps the
/// reactor ticking on this thread, so the helper backs off to its 10 ms
/// sleeps: 600 context switches in 4 s at c=256, and pull1k c=256 went
/// from about 18.5k to 26k req/s on the same machine (c=16 unchanged
/// within noise; A/B with wrk, server pinned to one core).
pub async fn run_polling<T>(ex: &async_executor::Executor<'_>, fut: impl Future<Output = T>) -> T {
    let runner = async {
        loop {
            ex.tick().await;
            for _ in 1..TASKS_PER_IO_TURN {
                if !ex.try_tick() {
                    break;
                }
            }
            futures_lite::future::yield_now().await;
        }
    };
    futures_lite::future::or(fut, runner).await
}

/// Like [`serve`], but spawns the connection tasks on `ex`, which the caller
/// must drive (for example with [`run_polling`] on several threads), so
/// connections are served in parallel. Connection tasks still running when
/// this future returns (after the shutdown grace period) are cancelled.
pub async fn serve_on<H: Handler>(
    ex: &Executor<'_>,
    listener: TcpListener,
    handler: Arc<H>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve_with(ex, listener, handler, config, Transport::Plain, shutdown).await
}

/// [`serve`] over TLS: HTTPS with the certificate `tls` presents at the
/// time of each handshake (see [`crate::tls::ServerTls::reload`]).
#[cfg(feature = "tls")]
pub async fn serve_tls<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    config: ServerConfig,
    tls: Arc<crate::tls::ServerTls>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let ex = Executor::new();
    run_polling(
        &ex,
        serve_tls_on(&ex, listener, handler, config, tls, shutdown),
    )
    .await
}

/// [`serve_on`] over TLS.
#[cfg(feature = "tls")]
pub async fn serve_tls_on<H: Handler>(
    ex: &Executor<'_>,
    listener: TcpListener,
    handler: Arc<H>,
    config: ServerConfig,
    tls: Arc<crate::tls::ServerTls>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve_with(ex, listener, handler, config, Transport::Tls(tls), shutdown).await
}

/// The stream of one connection. The connection loop is generic over its
/// stream but instantiated with this one type only, so the binary holds one
/// copy of it for plain and TLS connections.
enum Io {
    Plain(Tcp),
    #[cfg(feature = "tls")]
    Tls(Box<futures_rustls::server::TlsStream<Tcp>>),
}

/// An accepted TCP socket: async-io's [`Async`] itself, 16 bytes. (An
/// `async_net::TcpStream` adds an `Arc` around it, two readiness futures
/// inline, and a waker slab in the socket's source on its first wait: about
/// 250 bytes more per idle connection.) Closing half-closes, as
/// async-net's does.
struct Tcp(Async<std::net::TcpStream>);

impl AsyncRead for Tcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.0.get_ref().shutdown(std::net::Shutdown::Write))
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Io::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Io::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }
    // Forwarded, or every vectored write would send its first slice only:
    // `writev` on TCP, one TLS record for all slices on TLS.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            #[cfg(feature = "tls")]
            Io::Tls(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Io::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_close(cx),
            #[cfg(feature = "tls")]
            Io::Tls(s) => Pin::new(&mut **s).poll_close(cx),
        }
    }
}

/// What runs over each accepted TCP connection.
enum Transport {
    Plain,
    #[cfg(feature = "tls")]
    Tls(Arc<crate::tls::ServerTls>),
}

async fn serve_with<H: Handler>(
    ex: &Executor<'_>,
    listener: TcpListener,
    handler: Arc<H>,
    config: ServerConfig,
    transport: Transport,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let local_addr = listener.local_addr()?;
    // Accepted sockets are `Async` themselves (see `Tcp`).
    let listener: Arc<Async<std::net::TcpListener>> = listener.into();
    let grace = config.shutdown_grace;
    let admission = Admission::new(Limits {
        cap: config.max_connections,
        per_ip: config.per_ip_limit(),
        exempt: config.per_ip_exempt.clone(),
    });
    let shared = Arc::new(Shared {
        admission,
        handler,
        config,
        local_addr,
        local_text: local_addr.to_string(),
        shutdown: Signal::default(),
        drained: Signal::default(),
        active: AtomicUsize::new(0),
    });
    let mut tasks: Vec<Task<()>> = Vec::new();
    {
        let accept_loop = async {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        let slot = match shared.admission.admit(peer) {
                            Ok(slot) => slot,
                            Err(refusal) => {
                                super::defense_log::connection_refused(&peer, &refusal);
                                if let Some(m) = &shared.config.metrics {
                                    m.http.connection_rejected();
                                }
                                drop(stream);
                                continue;
                            }
                        };
                        if let Err(e) = stream.get_ref().set_nodelay(true) {
                            log::debug!("TCP_NODELAY on {peer}: {e}");
                        }
                        let guard = ActiveGuard::new(shared.clone());
                        tasks.retain(|t| !t.is_finished());
                        let task = match &transport {
                            Transport::Plain => ex.spawn(conn::run(
                                shared.clone(),
                                guard,
                                slot,
                                Io::Plain(Tcp(stream)),
                            )),
                            #[cfg(feature = "tls")]
                            Transport::Tls(tls) => ex.spawn(handshake_then_run(
                                shared.clone(),
                                guard,
                                slot,
                                tls.acceptor(),
                                stream,
                                peer,
                            )),
                        };
                        tasks.push(task);
                    }
                    Err(e) => {
                        log::warn!("accept failed: {e}");
                        Timer::after(Duration::from_millis(100)).await;
                    }
                }
            }
        };
        let stop = async {
            shutdown.await;
        };
        stop.or(accept_loop).await;
    }
    // Stop accepting: the listening socket is closed, new connects are refused.
    drop(listener);
    shared.shutdown.set();
    shared.admission.shut_down();
    if shared.active.load(Ordering::SeqCst) > 0 {
        let drained = async {
            shared.drained.wait().await;
        };
        drained
            .or(async {
                Timer::after(grace).await;
            })
            .await;
    }
    let left = shared.active.load(Ordering::SeqCst);
    if left > 0 {
        log::warn!("shutdown grace over; dropping {left} connection(s)");
    }
    // Dropping the handles cancels whatever is still running.
    drop(tasks);
    Ok(())
}

/// Complete the TLS handshake within the deadline (or until shutdown), then
/// serve the connection like a plain one.
#[cfg(feature = "tls")]
async fn handshake_then_run<H: Handler>(
    shared: Arc<Shared<H>>,
    guard: ActiveGuard<H>,
    slot: Slot,
    acceptor: crate::tls::TlsAcceptor,
    stream: Async<std::net::TcpStream>,
    peer: std::net::SocketAddr,
) {
    let deadline = shared.config.handshake_timeout;
    let handshake = async { Some(acceptor.accept(Tcp(stream)).await) };
    let timer = async {
        Timer::after(deadline).await;
        None
    };
    // A handshake still running waits for its first request head: it may
    // be chosen to make room, and it ends at shutdown.
    let closed = async {
        slot.closed(true).await;
        None
    };
    match handshake.or(timer).or(closed).await {
        Some(Ok(tls)) => conn::run(shared, guard, slot, Io::Tls(Box::new(tls))).await,
        Some(Err(e)) => log::debug!("TLS handshake with {peer} failed: {e}"),
        None => log::debug!(
            "TLS handshake with {peer} did not complete in time or was closed to make room"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{BoxFuture, Request, Response};

    struct Nothing;

    impl Handler for Nothing {
        fn handle(&self, _req: Request) -> BoxFuture<'_, Response> {
            Box::pin(async { Response::new(http_types::StatusCode::Ok) })
        }
    }

    /// What an idle keep-alive connection holds in its task (issue 13):
    /// the connection's future. It must stay small: rarely used states
    /// (an exchange, an error's answer) live in their own allocations.
    #[test]
    fn a_connection_future_is_small() {
        let config = ServerConfig::default();
        let admission = Admission::new(Limits {
            cap: 10,
            per_ip: 10,
            exempt: Vec::new(),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let local_addr = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(local_addr).unwrap();
        let (stream, peer) = listener.accept().unwrap();
        let shared = Arc::new(Shared {
            admission: admission.clone(),
            handler: Arc::new(Nothing),
            config,
            local_addr,
            local_text: local_addr.to_string(),
            shutdown: Signal::default(),
            drained: Signal::default(),
            active: AtomicUsize::new(0),
        });
        let slot = admission.admit(peer).unwrap();
        let guard = ActiveGuard::new(shared.clone());
        let io = Io::Plain(Tcp(Async::new(stream).unwrap()));
        let fut = conn::run(shared, guard, slot, io);
        let size = std::mem::size_of_val(&fut);
        eprintln!("connection future: {size} bytes");
        // 432 bytes in a test build when this was written (888 before issue
        // 13 item 5); the whole task is 506 bytes in a release build.
        assert!(size <= 560, "connection future is {size} bytes");
        drop(fut);
        drop(client);
    }
}
