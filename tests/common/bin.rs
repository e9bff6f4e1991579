//! The `starfish` binary as a test server: `serve --memory --listen
//! 127.0.0.1:0` plus the test's flags, its stderr captured, killed on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use super::{send_raw, Req, Resp};

/// A `starfish serve --memory --listen 127.0.0.1:0 ...` process, killed on drop.
pub struct Bin {
    pub child: Child,
    pub addr: SocketAddr,
    pub metrics: Option<SocketAddr>,
    pub log: Arc<Mutex<String>>,
}

/// The `starfish` binary built for these tests.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_starfish"))
}

impl Bin {
    pub fn start(args: &[&str]) -> Bin {
        let mut child = bin()
            .args(["serve", "--listen", "127.0.0.1:0"])
            // --memory unless the test names a store.
            .args(
                (!args.iter().any(|a| *a == "--store" || *a == "--data-dir")).then_some("--memory"),
            )
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<(String, SocketAddr)>();
        let sink = log.clone();
        // Drain stderr for the life of the process, reporting the addresses.
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                for (tag, key) in [
                    ("listen", "listening on http://"),
                    ("metrics", "metrics on "),
                ] {
                    if let Some(rest) = line.split(key).nth(1) {
                        let rest = rest.trim_start_matches("http://");
                        if let Ok(a) = rest.split('/').next().unwrap().parse::<SocketAddr>() {
                            let _ = tx.send((tag.to_owned(), a));
                        }
                    }
                }
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let mut addr = None;
        let want_metrics = args.contains(&"--metrics-listen");
        let mut metrics = None;
        let deadline = Instant::now() + Duration::from_secs(15);
        while addr.is_none() || (want_metrics && metrics.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((tag, a)) if tag == "listen" => addr = Some(a),
                Ok((_, a)) => metrics = Some(a),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("server did not start: {}", log.lock().unwrap());
                }
            }
        }
        Bin {
            child,
            addr: addr.unwrap(),
            metrics,
            log,
        }
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn send(&self, req: &Req) -> Resp {
        send_raw(self.addr, &req.to_bytes(&self.host()))
    }

    pub fn get(&self, target: &str) -> Resp {
        self.send(&Req::new("GET", target))
    }
}

impl Drop for Bin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
