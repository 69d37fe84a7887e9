//! Just enough HTTP/1.1: request heads in, whole responses out. Bodies sent to us are
//! skipped by `Content-Length`; a chunked body ends the connection after the answer.

/// The most a request head may take (request line and headers).
pub const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 100;

/// A request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target as sent: `/version?x=1`.
    pub target: String,
    /// `HTTP/1.1` is 1, `HTTP/1.0` is 0.
    pub minor: u8,
    /// The headers in order, names as sent.
    pub headers: Vec<(String, String)>,
}

/// What is wrong with a request head; every one is answered 400 and ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadRequest(pub &'static str);

impl Request {
    /// The target without its query.
    pub fn path(&self) -> &str {
        self.target.split(['?', '#']).next().unwrap_or("")
    }

    fn header<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn connection_has(&self, token: &str) -> bool {
        self.header("connection")
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Whether the client wants the connection kept open after the answer.
    pub fn keep_alive(&self) -> bool {
        if self.minor == 0 {
            self.connection_has("keep-alive")
        } else {
            !self.connection_has("close")
        }
    }

    /// How the body that follows the head is framed.
    pub fn body(&self) -> Result<Body, BadRequest> {
        if self.header("transfer-encoding").next().is_some() {
            if self.header("content-length").next().is_some() {
                return Err(BadRequest("both Transfer-Encoding and Content-Length"));
            }
            return Ok(Body::Unframed);
        }
        let mut length = None;
        for v in self.header("content-length").flat_map(|v| v.split(',')) {
            let v = v.trim();
            let n = if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
                v.parse::<u64>().ok()
            } else {
                None
            };
            match (n, length) {
                (None, _) => return Err(BadRequest("an invalid Content-Length")),
                (Some(n), Some(l)) if n != l => {
                    return Err(BadRequest("conflicting Content-Length values"))
                }
                (Some(n), _) => length = Some(n),
            }
        }
        Ok(Body::Length(length.unwrap_or(0)))
    }
}

/// The body after a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// This many bytes (0: none).
    Length(u64),
    /// Chunked or otherwise encoded: not read, so the connection ends after the answer.
    Unframed,
}

/// Where the head in `buf` ends (the index after its blank line), if it is all there.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Parse a request head (up to and including its blank line).
pub fn parse_head(head: &[u8]) -> Result<Request, BadRequest> {
    let text = std::str::from_utf8(head).map_err(|_| BadRequest("a head that is not UTF-8"))?;
    let mut lines = text
        .strip_suffix("\r\n\r\n")
        .ok_or(BadRequest("an unterminated head"))?
        .split("\r\n");
    let line = lines.next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BadRequest("a malformed request line"));
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(BadRequest("a malformed method"));
    }
    if !(target.starts_with('/') || target == "*") || target.bytes().any(|b| b <= b' ') {
        return Err(BadRequest("a malformed request target"));
    }
    let minor = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        _ => return Err(BadRequest("an HTTP version other than 1.0 or 1.1")),
    };
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or(BadRequest("a header line without a colon"))?;
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(BadRequest("a malformed header name"));
        }
        if headers.len() == MAX_HEADERS {
            return Err(BadRequest("too many headers"));
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    Ok(Request {
        method: method.to_string(),
        target: target.to_string(),
        minor,
        headers,
    })
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A whole response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// Headers besides the framing ones.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// Plain text, the type of most answers.
pub const TEXT: &str = "text/plain; charset=utf-8";

impl Response {
    /// A plain-text response.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: TEXT,
            headers: Vec::new(),
            body: body.into().into_bytes(),
        }
    }

    /// The bytes on the wire; `head_only` for HEAD requests (the length still says the
    /// body's).
    pub fn encode(&self, keep_alive: bool, head_only: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len(),
            if keep_alive { "keep-alive" } else { "close" },
        );
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(head: &str, expect: Result<(&str, &str, bool, Body), &'static str>) {
        let got = parse_head(head.as_bytes()).and_then(|r| {
            let body = r.body()?;
            Ok((r.method.clone(), r.path().to_string(), r.keep_alive(), body))
        });
        let want = expect
            .map(|(m, p, k, b)| (m.to_string(), p.to_string(), k, b))
            .map_err(BadRequest);
        assert_eq!(got, want, "{head:?}");
    }

    #[test]
    fn heads() {
        check(
            "GET /version?x=1 HTTP/1.1\r\nHost: a\r\n\r\n",
            Ok(("GET", "/version", true, Body::Length(0))),
        );
        check(
            "GET / HTTP/1.1\r\nConnection: Upgrade, Close\r\n\r\n",
            Ok(("GET", "/", false, Body::Length(0))),
        );
        check(
            "GET / HTTP/1.0\r\n\r\n",
            Ok(("GET", "/", false, Body::Length(0))),
        );
        check(
            "GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n",
            Ok(("GET", "/", true, Body::Length(0))),
        );
        check(
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            Ok(("POST", "/", true, Body::Length(5))),
        );
        check(
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            Ok(("POST", "/", true, Body::Unframed)),
        );
        check(
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            Err("conflicting Content-Length values"),
        );
        check(
            "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            Err("an invalid Content-Length"),
        );
        check(
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            Err("both Transfer-Encoding and Content-Length"),
        );
        check("GET /\r\n\r\n", Err("a malformed request line"));
        check(
            "GET / HTTP/2.0\r\n\r\n",
            Err("an HTTP version other than 1.0 or 1.1"),
        );
        check("GET x HTTP/1.1\r\n\r\n", Err("a malformed request target"));
        check(
            "GET / HTTP/1.1\r\nno colon\r\n\r\n",
            Err("a header line without a colon"),
        );
        check(
            "GET / HTTP/1.1\r\nbad name: x\r\n\r\n",
            Err("a malformed header name"),
        );
    }

    #[test]
    fn head_end_finds_the_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nGET"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
    }

    #[test]
    fn responses_frame_their_body() {
        let r = Response::text(200, "ok\n");
        let wire = String::from_utf8(r.encode(true, false)).expect("utf-8");
        assert_eq!(
            wire,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n"
        );
        let head = String::from_utf8(r.encode(false, true)).expect("utf-8");
        assert!(head.ends_with("Content-Length: 3\r\nConnection: close\r\n\r\n"));
    }
}
