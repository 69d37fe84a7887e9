//! The system under test for `bench/proxy.sh`: `BACKENDS` minimal HTTP/1.1 backends (default
//! 2) answering `ok`, a proxy listener in front of them as one plain pool, and a second one
//! with the first backend labelled `stable`, the others `canary`, and a 95/5 split. Prints
//! `backend <addr>` lines, a `proxy <addr>` line and a `split <addr>` line, then serves until
//! standard input closes.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::Response;
use hyper_util::rt::TokioIo;
use slipway_traffic::{Backend, Listener};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: usize = std::env::var("BACKENDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let mut backends = Vec::new();
    for i in 0..count {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(serve(listener));
        println!("backend {addr}");
        backends.push(Backend::new(format!("b{i}"), addr));
    }
    let labelled = backends
        .iter()
        .enumerate()
        .map(|(i, b)| {
            b.clone()
                .with_revision(if i == 0 { "stable" } else { "canary" })
        })
        .collect();
    let proxy = Listener::bind(SocketAddr::from(([127, 0, 0, 1], 0)), "bench")?;
    proxy.set_backends(backends);
    println!("proxy {}", proxy.local_addr());
    let split = Listener::bind(SocketAddr::from(([127, 0, 0, 1], 0)), "bench-split")?;
    split.set_backends(labelled);
    split.set_split([("stable", 95), ("canary", 5)])?;
    println!("split {}", split.local_addr());

    // Serve until whoever started us closes our standard input.
    let (closed, stdin_closed) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        let _ = closed.send(());
    });
    let _ = stdin_closed.await;
    Ok(())
}

async fn serve(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(|_req| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
