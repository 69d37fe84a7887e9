//! The server: a thread per connection, keep-alive, and a graceful stop on SIGTERM or
//! SIGINT (stop accepting at once, finish what is in flight, give up after [`GRACE`]).

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::config::{self, Config};
use crate::http::{self, Body, Request, Response};
use crate::metrics::{self, Metrics};

/// How long a stop waits for requests in flight.
pub const GRACE: Duration = Duration::from_secs(5);
/// How often an idle connection looks whether the server is stopping.
const POLL: Duration = Duration::from_millis(100);
/// An idle keep-alive connection is closed after this long: well past the 90 s that common
/// client pools keep idle connections, so a pool never reuses one this server just closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// A request whose head or body stops arriving for this long is answered 408.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The process exit code when serving ended: 0 after a stop, 1 when it could not start.
pub fn run(cfg: Config) -> i32 {
    let started = (Instant::now(), SystemTime::now());
    // Before the listening line, so a signal sent right after it is already ours.
    let mut signals = match Signals::new([SIGTERM, SIGINT]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hello: cannot handle signals: {e}");
            return 1;
        }
    };
    let listener = match TcpListener::bind(cfg.addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hello: cannot listen on {}: {e}", cfg.addr);
            return 1;
        }
    };
    let local = listener.local_addr().unwrap_or(cfg.addr);
    eprintln!("hello {} listening on http://{local}", cfg.version);
    let app = Arc::new(App::new(cfg, started));

    let stopper = Arc::clone(&app);
    let spawned = thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for (i, signal) in signals.forever().enumerate() {
                let name = if signal == SIGTERM {
                    "SIGTERM"
                } else {
                    "SIGINT"
                };
                if i > 0 {
                    eprintln!("hello: {name} again; exiting without waiting");
                    std::process::exit(1);
                }
                eprintln!(
                    "hello: {name}: no new connections; finishing requests in flight (up to {} s)",
                    GRACE.as_secs()
                );
                stopper.stopping.store(true, Ordering::SeqCst);
                // Wake the accept loop, which then closes the listener.
                let _ = TcpStream::connect_timeout(&reachable(local), Duration::from_secs(1));
            }
        });
    if let Err(e) = spawned {
        eprintln!("hello: cannot start the signal thread: {e}");
        return 1;
    }

    for conn in listener.incoming() {
        if app.stopping.load(Ordering::SeqCst) {
            break;
        }
        match conn {
            Ok(stream) => {
                let guard = Open::new(&app);
                let worker = Arc::clone(&app);
                let spawned = thread::Builder::new().spawn(move || {
                    let _guard = guard;
                    worker.serve(stream);
                });
                if let Err(e) = spawned {
                    eprintln!("hello: cannot start a connection thread: {e}");
                }
            }
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                eprintln!("hello: accept: {e}");
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    drop(listener); // from here on, connecting is refused

    let deadline = Instant::now() + GRACE;
    let mut open = app.lock_open();
    while *open > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        open = app
            .closed
            .wait_timeout(open, left)
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0);
    }
    if *open > 0 {
        eprintln!(
            "hello: {} connections still busy after {} s; exiting",
            *open,
            GRACE.as_secs()
        );
    } else {
        eprintln!("hello: stopped");
    }
    0
}

/// Where to connect to reach a listener bound to `addr` (an unspecified address is reached
/// on loopback).
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

struct App {
    cfg: Config,
    started: Instant,
    started_unix_ms: u128,
    /// `GET /` requests so far, which decide failures and jitter.
    root_requests: AtomicU64,
    metrics: Metrics,
    stopping: AtomicBool,
    /// Connections being served, and a signal when one closes.
    open: Mutex<usize>,
    closed: Condvar,
}

/// One open connection, counted while it lives (even if its thread panics).
struct Open(Arc<App>);

impl Open {
    fn new(app: &Arc<App>) -> Open {
        *app.lock_open() += 1;
        Open(Arc::clone(app))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        *self.0.lock_open() -= 1;
        self.0.closed.notify_all();
    }
}

/// What a connection does after an answer.
enum Next {
    /// Read the next request after skipping this many body bytes.
    KeepAlive(u64),
    Close,
}

impl App {
    fn new(cfg: Config, (started, started_wall): (Instant, SystemTime)) -> App {
        App {
            cfg,
            started,
            started_unix_ms: started_wall
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis()),
            root_requests: AtomicU64::new(0),
            metrics: Metrics::new(),
            stopping: AtomicBool::new(false),
            open: Mutex::new(0),
            closed: Condvar::new(),
        }
    }

    fn lock_open(&self) -> std::sync::MutexGuard<'_, usize> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Serve requests on one connection until either side ends it.
    fn serve(&self, mut stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(POLL));
        let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
        let mut buf: Vec<u8> = Vec::new();
        let mut skip: u64 = 0; // body bytes of the last request still to discard
        let mut last_read = Instant::now();
        let mut chunk = [0u8; 8192];
        loop {
            if skip > 0 {
                let n = buf.len().min(usize::try_from(skip).unwrap_or(usize::MAX));
                buf.drain(..n);
                skip -= n as u64;
            }
            if skip == 0 {
                if let Some(end) = http::head_end(&buf).filter(|&e| e <= http::MAX_HEAD) {
                    match self.answer(&mut stream, &buf[..end]) {
                        Next::KeepAlive(body) => {
                            buf.drain(..end);
                            skip = body;
                            continue;
                        }
                        Next::Close => return,
                    }
                }
                if buf.len() > http::MAX_HEAD {
                    let r = Response::text(431, "request head too large\n");
                    self.finish(&mut stream, Instant::now(), "-", "-", &r, false, false);
                    return;
                }
            }
            match stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    last_read = Instant::now();
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    let between_requests = buf.is_empty() && skip == 0;
                    if between_requests {
                        if self.stopping() || last_read.elapsed() > IDLE_TIMEOUT {
                            return;
                        }
                    } else if last_read.elapsed() > REQUEST_TIMEOUT {
                        let r = Response::text(408, "request timed out\n");
                        self.finish(&mut stream, Instant::now(), "-", "-", &r, false, false);
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// Answer the request whose head is `head`.
    fn answer(&self, stream: &mut TcpStream, head: &[u8]) -> Next {
        let t0 = Instant::now();
        let _in_flight = self.metrics.start();
        let req = match http::parse_head(head).and_then(|r| Ok((r.body()?, r))) {
            Ok(r) => r,
            Err(http::BadRequest(why)) => {
                let r = Response::text(400, format!("bad request: {why}\n"));
                self.finish(stream, t0, "-", "-", &r, false, false);
                return Next::Close;
            }
        };
        let (body, req) = req;
        let response = self.route(&req);
        let keep_alive = req.keep_alive() && body != Body::Unframed;
        let head_only = req.method == "HEAD";
        if self.finish(
            stream,
            t0,
            &req.method,
            &req.target,
            &response,
            keep_alive,
            head_only,
        ) {
            match body {
                Body::Length(n) => Next::KeepAlive(n),
                Body::Unframed => Next::Close,
            }
        } else {
            Next::Close
        }
    }

    /// Count, log and send a response; whether the connection stays open.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        stream: &mut TcpStream,
        t0: Instant,
        method: &str,
        target: &str,
        response: &Response,
        keep_alive: bool,
        head_only: bool,
    ) -> bool {
        let keep_alive = keep_alive && !self.stopping();
        let took = t0.elapsed();
        // Counted and logged before the client sees the answer, so a client that reads
        // /metrics after its answers finds them all there.
        self.metrics.record(response.status, took);
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "{method} {target} {} {:.3}ms",
            response.status,
            took.as_secs_f64() * 1000.0
        );
        let _ = out.flush();
        drop(out);
        stream
            .write_all(&response.encode(keep_alive, head_only))
            .is_ok()
            && keep_alive
    }

    fn route(&self, req: &Request) -> Response {
        let path = req.path();
        if !matches!(path, "/" | "/healthz" | "/version" | "/metrics") {
            return Response::text(404, "not found\n");
        }
        if req.method != "GET" && req.method != "HEAD" {
            let mut r = Response::text(405, "method not allowed\n");
            r.headers.push(("Allow", "GET, HEAD".into()));
            return r;
        }
        let cfg = &self.cfg;
        match path {
            "/" => {
                let n = self.root_requests.fetch_add(1, Ordering::SeqCst) + 1;
                let delay = cfg.latency + config::jitter(n, cfg.latency_jitter);
                if !delay.is_zero() {
                    thread::sleep(delay);
                }
                if config::fails(n, cfg.fail_ppm) {
                    Response::text(500, "failed on purpose (FAIL_RATE)\n")
                } else {
                    Response::text(
                        200,
                        format!("{} from {} (pod {})\n", cfg.greeting, cfg.version, cfg.pod),
                    )
                }
            }
            "/healthz" => {
                if cfg.unhealthy {
                    Response::text(503, "unhealthy (UNHEALTHY is set)\n")
                } else if self.stopping() {
                    Response::text(503, "stopping\n")
                } else if self.started.elapsed() < cfg.ready_after {
                    Response::text(503, "not ready yet (READY_AFTER_MS)\n")
                } else {
                    Response::text(200, "ok")
                }
            }
            "/version" => Response {
                status: 200,
                content_type: "application/json",
                headers: Vec::new(),
                body: format!(
                    "{{\"version\": {}, \"pod\": {}, \"started_at\": {}}}\n",
                    json_string(&cfg.version),
                    json_string(&cfg.pod),
                    self.started_unix_ms
                )
                .into_bytes(),
            },
            _ => Response {
                status: 200,
                content_type: metrics::CONTENT_TYPE,
                headers: Vec::new(),
                body: self
                    .metrics
                    .render(&cfg.version, self.started_unix_ms)
                    .into_bytes(),
            },
        }
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\nd\u{1}é"), r#""a\"b\\c\nd\u0001é""#);
    }

    #[test]
    fn unspecified_addresses_are_reached_on_loopback() {
        let r = |s: &str| reachable(s.parse().expect("address")).to_string();
        assert_eq!(r("0.0.0.0:80"), "127.0.0.1:80");
        assert_eq!(r("[::]:80"), "[::1]:80");
        assert_eq!(r("10.0.0.1:80"), "10.0.0.1:80");
    }
}
