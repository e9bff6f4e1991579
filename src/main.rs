//! The `starfish` command line. Thin: parse arguments, call the library.

use std::process::ExitCode;

const USAGE: &str = "\
starfish — a Starfish JSON document sync server, replica and client

Usage:
  starfish --help       print this help
  starfish --version    print the version

The server (`starfish serve`) arrives with the server issue.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("--help" | "-h" | "help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("--version" | "-V") => {
            println!("starfish {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("starfish: unknown command {other:?}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
