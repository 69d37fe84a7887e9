//! Steady traffic to production while the quickstart runs, as users would send it: a canary
//! is judged on real requests, and what the users of a faulty release saw (how many errors,
//! for how long) is the number that matters.
//!
//! A few keep-alive HTTP/1.1 connections share a fixed request rate; every answer is
//! counted by status class, and the first and last 5xx are timed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the traffic saw so far.
#[derive(Debug, Default)]
pub struct Counts {
    /// Answers with a 2xx status.
    pub ok: AtomicU64,
    /// Answers with a 5xx status.
    pub errors: AtomicU64,
    /// Requests without an answer (connection refused or reset).
    pub failed: AtomicU64,
    /// When the first and the latest 5xx came.
    pub error_window: Mutex<Option<(Instant, Instant)>>,
}

impl Counts {
    /// `(ok, errors, failed)`.
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }

    fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut w = self.error_window.lock().unwrap_or_else(|e| e.into_inner());
        *w = Some(w.map_or((now, now), |(first, _)| (first, now)));
    }
}

/// Traffic running until dropped.
pub struct Load {
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
}

impl Load {
    /// `rps` requests per second to `GET /` at `addr` over `connections` connections.
    pub fn start(addr: SocketAddr, rps: u32, connections: u32) -> Load {
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let connections = connections.max(1);
        let per_connection = f64::from(rps.max(1)) / f64::from(connections);
        let period = Duration::from_secs_f64(1.0 / per_connection);
        for _ in 0..connections {
            tokio::spawn(connection(addr, period, counts.clone(), stop.clone()));
        }
        Load { counts, stop }
    }

    /// The counts so far.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

async fn connection(
    addr: SocketAddr,
    period: Duration,
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut conn: Option<TcpStream> = None;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        if conn.is_none() {
            conn = TcpStream::connect(addr).await.ok();
        }
        let Some(stream) = conn.as_mut() else {
            counts.failed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        match tokio::time::timeout(Duration::from_secs(5), request(stream)).await {
            Ok(Ok((status, keep_alive))) => {
                match status {
                    200..=299 => counts.ok.fetch_add(1, Ordering::Relaxed),
                    500..=599 => {
                        counts.error();
                        0
                    }
                    _ => 0,
                };
                if !keep_alive {
                    conn = None;
                }
            }
            _ => {
                counts.failed.fetch_add(1, Ordering::Relaxed);
                conn = None;
            }
        }
    }
}

/// One `GET /` on a kept-alive connection: the status and whether the connection stays open.
async fn request(stream: &mut TcpStream) -> std::io::Result<(u16, bool)> {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: hello\r\nUser-Agent: slipway-quickstart\r\n\r\n")
        .await?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let keep_alive = !head
        .lines()
        .any(|l| l.starts_with("connection:") && l.contains("close"));
    let mut have = buf.len() - head_end;
    while have < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        have += n;
    }
    Ok((status, keep_alive))
}
