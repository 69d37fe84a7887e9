//! `hello`: the demo service Slipway's quickstart, tests and benchmarks deploy.
//!
//! A small HTTP/1.1 server (std only, a thread per connection, keep-alive) configured
//! entirely by environment, as Kubernetes passes settings: it answers `GET /` with a greeting
//! that names its version and pod, and can be told to fail an exact share of those requests
//! (`FAIL_RATE`), to answer slowly (`LATENCY_MS`), or to report unready (`READY_AFTER_MS`,
//! `UNHEALTHY`), which is what a canary that must roll back needs. `/healthz`, `/version`
//! and `/metrics` (Prometheus text) serve probes and analysis. SIGTERM stops it gracefully.
//!
//! Exit codes: 0 after a stop, 1 when it cannot start (the port is taken), 2 for bad
//! settings or arguments.

#![forbid(unsafe_code)]

mod config;
mod http;
mod metrics;
mod server;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {}
        Some("-h" | "--help") => {
            print!("{}", help());
            return ExitCode::SUCCESS;
        }
        Some("-V" | "--version") => {
            println!("hello {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!(
                "hello: unexpected argument {other:?}: hello is configured by environment (see --help)"
            );
            return ExitCode::from(2);
        }
    }
    let cfg = config::Config::from_lookup(|name| {
        std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
    });
    match cfg {
        Ok(cfg) => ExitCode::from(u8::try_from(server::run(cfg)).unwrap_or(1)),
        Err(errors) => {
            for e in errors {
                eprintln!("hello: {e}");
            }
            ExitCode::from(2)
        }
    }
}

fn help() -> String {
    let mut out = format!(
        "hello {}: Slipway's demo service\n\nUsage: hello (settings come from the environment)\n\n\
         GET /         GREETING from VERSION (pod POD_NAME)\n\
         GET /healthz  ok, or 503 before READY_AFTER_MS, with UNHEALTHY, or while stopping\n\
         GET /version  {{\"version\", \"pod\", \"started_at\" (unix ms)}}\n\
         GET /metrics  hello_requests_total{{code}}, hello_request_duration_seconds, ...\n\n\
         Environment:\n",
        env!("CARGO_PKG_VERSION")
    );
    for (name, what) in config::VARIABLES {
        out.push_str(&format!("  {name:<18} {what}\n"));
    }
    out
}
