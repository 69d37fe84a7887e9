//! Starting, refusing bad settings, keep-alive, and stopping on SIGTERM.

mod support;

use std::net::TcpStream;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::thread;

use support::{command, wait_for, Conn, Hello};

#[test]
fn sigterm_finishes_the_request_in_flight_refuses_new_ones_and_exits_0() {
    let mut hello = Hello::start(&[("LATENCY_MS", "3000")]);
    // An idle keep-alive connection must not hold the stop up.
    let mut idle = hello.conn();
    assert_eq!(idle.get("/healthz").status, 200);

    let mut slow = hello.conn();
    slow.send("GET", "/", &[]);
    // In flight: the slow request plus the scrape asking.
    wait_for(|| (hello.metric("hello_requests_in_flight") == Some(2.0)).then_some(()));

    hello.sigterm();
    let addr = hello.addr;
    wait_for(|| TcpStream::connect(addr).is_err().then_some(()));
    assert!(hello.running(), "still draining while refusing connections");
    assert!(idle.closed(), "the idle connection is closed");

    let r = slow.read_response(true);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.starts_with("hello from "), "{}", r.body);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(slow.closed());

    let status = hello.wait();
    assert_eq!(status.code(), Some(0), "{status:?}");
    let err = hello.stderr_lines();
    assert!(
        err.iter().any(|l| l.starts_with("hello: SIGTERM")),
        "{err:?}"
    );
    assert_eq!(err.last().map(String::as_str), Some("hello: stopped"));
}

#[test]
fn sigterm_when_idle_exits_0_at_once() {
    let mut hello = Hello::start(&[]);
    hello.sigterm();
    let status = hello.wait();
    assert_eq!((status.code(), status.signal()), (Some(0), None));
}

#[test]
fn invalid_settings_exit_2_naming_each_variable() {
    for (env, messages) in [
        (
            vec![("FAIL_RATE", "abc")],
            vec!["hello: FAIL_RATE: expected a number between 0.0 and 1.0, got \"abc\""],
        ),
        (
            vec![
                ("FAIL_RATE", "1.5"),
                ("LATENCY_MS", "fast"),
                ("PORT", "99999"),
            ],
            vec![
                "hello: PORT: expected a port number between 0 and 65535, got \"99999\"",
                "hello: FAIL_RATE: expected a number between 0.0 and 1.0, got \"1.5\"",
                "hello: LATENCY_MS: expected a whole number of milliseconds such as 250, got \"fast\"",
            ],
        ),
    ] {
        let out = command(&env)
            .stdin(Stdio::null())
            .output()
            .expect("run hello");
        assert_eq!(out.status.code(), Some(2), "{env:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().collect::<Vec<_>>(), messages);
    }
}

#[test]
fn a_taken_port_exits_1_with_the_address() {
    let hello = Hello::start(&[]);
    let port = hello.addr.port().to_string();
    let out = command(&[("PORT", &port)]).output().expect("run hello");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("hello: cannot listen on 127.0.0.1:{port}: ")),
        "{stderr}"
    );
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let hello = Hello::start(&[("POD_NAME", "p")]);
    let mut c = hello.conn();
    for path in ["/", "/healthz", "/version", "/nope", "/", "/metrics", "/"] {
        let r = c.get(path);
        assert_eq!(r.header("connection"), Some("keep-alive"), "{path}");
    }
    // A body sent with a request is skipped, keeping the connection in step.
    c.send_raw(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(c.read_response(true).status, 405);
    // Pipelined requests are answered in order.
    c.send_raw(b"GET /healthz HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n");
    assert_eq!(c.read_response(true).body, "ok");
    assert!(c.read_response(true).body.starts_with("hello from "));
    // Connection: close is honoured.
    let r = c.request("GET", "/healthz", &[("Connection", "close")]);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed());
    // Two clients at once do not wait for each other.
    let addr = hello.addr;
    let clients: Vec<_> = (0..4)
        .map(|_| thread::spawn(move || Conn::open(addr).get("/").status))
        .collect();
    for c in clients {
        assert_eq!(c.join().expect("client"), 200);
    }
}

#[test]
fn http_1_0_closes_unless_asked_to_keep_alive() {
    let hello = Hello::start(&[]);
    let mut c = hello.conn();
    c.send_raw(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(
        c.read_response(true).header("connection"),
        Some("keep-alive")
    );
    c.send_raw(b"GET /healthz HTTP/1.0\r\n\r\n");
    assert_eq!(c.read_response(true).header("connection"), Some("close"));
    assert!(c.closed());
}

#[test]
fn malformed_requests_get_400_and_a_closed_connection() {
    let hello = Hello::start(&[]);
    for raw in [
        &b"GET /\r\n\r\n"[..],
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ] {
        let mut c = hello.conn();
        c.send_raw(raw);
        let r = c.read_response(true);
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(raw));
        assert!(r.body.starts_with("bad request: "), "{}", r.body);
        assert!(c.closed());
    }
    // A head past 16 KiB is refused too.
    let mut c = hello.conn();
    c.send_raw(format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000)).as_bytes());
    assert_eq!(c.read_response(true).status, 431);
    assert_eq!(hello.get("/healthz").status, 200, "still serving");
}
