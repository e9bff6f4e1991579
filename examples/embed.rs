//! Embedding the starfish HTTP/1 layer in a plain (non-tokio) application.
//!
//! `serve` drives its own connection executor, so a bare `smol::block_on`
//! (or `futures_lite::future::block_on`) is all it takes. Stop with Ctrl-C,
//! or send `GET /quit`.
//!
//! ```text
//! cargo run --example embed -- 127.0.0.1:8080
//! curl -i http://127.0.0.1:8080/hello
//! ```

use std::sync::Arc;

use starfish::http::{serve, BoxFuture, Handler, RawTarget, Request, Response, ServerConfig};

struct Hello {
    quit: smol::channel::Sender<()>,
}

impl Handler for Hello {
    fn handle(&self, req: Request) -> BoxFuture<'_, Response> {
        Box::pin(async move {
            let target = req
                .ext()
                .get::<RawTarget>()
                .map(|t| t.0.clone())
                .unwrap_or_default();
            if target == "/quit" {
                let _ = self.quit.try_send(());
            }
            let mut res = Response::new(200);
            res.set_body(format!(
                "{{\"method\":\"{}\",\"target\":\"{}\"}}",
                req.method(),
                target
            ));
            res.insert_header("content-type", "application/json");
            res
        })
    }
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    smol::block_on(async {
        let listener = async_net::TcpListener::bind(addr.as_str()).await?;
        eprintln!("listening on http://{}", listener.local_addr()?);
        let (tx, rx) = smol::channel::bounded(1);
        let handler = Arc::new(Hello { quit: tx });
        let shutdown = async move {
            let _ = rx.recv().await;
            eprintln!("shutting down");
        };
        serve(listener, handler, ServerConfig::default(), shutdown).await
    })
}
