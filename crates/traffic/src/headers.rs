//! Header rewriting: hop-by-hop headers out, forwarding headers in.

use std::net::IpAddr;

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::Version;

/// `Via` pseudonym of this proxy.
const PSEUDONYM: &str = "slipway";

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers that describe one connection, not the message (RFC 9110 section 7.6.1, plus the
/// historical `Keep-Alive`, `Proxy-Connection` and the proxy authentication pair, which are
/// meant for this proxy and no one behind it).
fn hop_by_hop() -> [&'static HeaderName; 9] {
    [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::PROXY_AUTHENTICATE,
        &header::PROXY_AUTHORIZATION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ]
}

/// Removes the hop-by-hop headers and every header the `Connection` header names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in hop_by_hop() {
        headers.remove(name);
    }
}

/// Rewrites a request's headers for the backend: hop-by-hop headers and `Expect` out (the
/// proxy answers `100-continue` itself and streams the body at once), then
/// `X-Forwarded-For` and `Forwarded` extended with the client, `X-Forwarded-Proto` set when
/// absent (an earlier proxy that terminated TLS knows better), and `Via` extended with this
/// hop.
pub(crate) fn prepare_request(headers: &mut HeaderMap, client: IpAddr, version: Version) {
    strip_hop_by_hop(headers);
    headers.remove(header::EXPECT);
    let client = client.to_canonical();
    append(headers, &X_FORWARDED_FOR, client.to_string().as_bytes());
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    }
    let forwarded = match client {
        IpAddr::V4(ip) => format!("for={ip};proto=http"),
        IpAddr::V6(ip) => format!("for=\"[{ip}]\";proto=http"),
    };
    append(headers, &header::FORWARDED, forwarded.as_bytes());
    append(headers, &header::VIA, via(version).as_bytes());
}

/// Rewrites a backend's response headers for the client: hop-by-hop headers out, `Via`
/// extended with this hop (backends speak HTTP/1.1 to the proxy).
pub(crate) fn prepare_response(headers: &mut HeaderMap) {
    strip_hop_by_hop(headers);
    append(headers, &header::VIA, via(Version::HTTP_11).as_bytes());
}

fn via(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9 slipway",
        Version::HTTP_10 => "1.0 slipway",
        Version::HTTP_2 => "2 slipway",
        Version::HTTP_3 => "3 slipway",
        _ => "1.1 slipway",
    }
}

/// Appends `value` to the comma-separated list in `name`, folding repeated header lines into
/// one.
fn append(headers: &mut HeaderMap, name: &HeaderName, value: &[u8]) {
    let mut joined = Vec::new();
    for existing in headers.get_all(name) {
        joined.extend_from_slice(existing.as_bytes());
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(value);
    let value = HeaderValue::from_bytes(&joined)
        .or_else(|_| HeaderValue::from_bytes(value))
        .unwrap_or_else(|_| HeaderValue::from_static(PSEUDONYM));
    headers.insert(name.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("test header name"),
                HeaderValue::from_str(v).expect("test header value"),
            );
        }
        h
    }

    fn get<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
        h.get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Private"),
            ("connection", "x-other"),
            ("x-private", "1"),
            ("x-other", "2"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authorization", "Basic Zm9v"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-end-to-end", "kept"),
            ("content-length", "3"),
        ]);
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-length", "x-end-to-end"]);
    }

    #[test]
    fn forwarding_headers_extend_what_came_before() {
        let mut h = map(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-for", "198.51.100.2"),
            ("x-forwarded-proto", "https"),
            ("via", "1.1 edge"),
            ("expect", "100-continue"),
        ]);
        prepare_request(
            &mut h,
            "::ffff:127.0.0.1".parse().expect("ip"),
            Version::HTTP_2,
        );
        assert_eq!(
            get(&h, "x-forwarded-for"),
            Some("203.0.113.7, 198.51.100.2, 127.0.0.1")
        );
        assert_eq!(get(&h, "x-forwarded-proto"), Some("https"));
        assert_eq!(get(&h, "forwarded"), Some("for=127.0.0.1;proto=http"));
        assert_eq!(get(&h, "via"), Some("1.1 edge, 2 slipway"));
        assert_eq!(get(&h, "expect"), None);

        let mut h = HeaderMap::new();
        prepare_request(&mut h, "::1".parse().expect("ip"), Version::HTTP_11);
        assert_eq!(get(&h, "x-forwarded-for"), Some("::1"));
        assert_eq!(get(&h, "x-forwarded-proto"), Some("http"));
        assert_eq!(get(&h, "forwarded"), Some("for=\"[::1]\";proto=http"));
        assert_eq!(get(&h, "via"), Some("1.1 slipway"));
    }

    #[test]
    fn response_headers() {
        let mut h = map(&[
            ("connection", "close"),
            ("keep-alive", "timeout=5"),
            ("content-type", "text/plain"),
        ]);
        prepare_response(&mut h);
        assert_eq!(get(&h, "connection"), None);
        assert_eq!(get(&h, "keep-alive"), None);
        assert_eq!(get(&h, "via"), Some("1.1 slipway"));
        assert_eq!(get(&h, "content-type"), Some("text/plain"));
    }
}
