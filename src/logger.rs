//! A tiny stderr logger for the `log` facade: `LEVEL target: message`, one
//! line per record. The level comes from `--log-level` or the
//! `STARFISH_LOG` / `RUST_LOG` environment variables (`error`, `warn`,
//! `info`, `debug`, `trace`, `off`); the default is `info`.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;

struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        let _ = writeln!(
            std::io::stderr().lock(),
            "{level} {}: {}",
            record.target(),
            record.args()
        );
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

/// Parse a level name.
pub fn parse_level(s: &str) -> Option<LevelFilter> {
    s.trim().parse().ok()
}

/// The level from `STARFISH_LOG` or `RUST_LOG` (`info` when unset or invalid).
pub fn level_from_env() -> LevelFilter {
    ["STARFISH_LOG", "RUST_LOG"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find_map(|v| parse_level(&v))
        .unwrap_or(LevelFilter::Info)
}

/// Install the logger (once; later calls only change the level).
pub fn init(level: LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
