//! Settings from the environment, as Kubernetes passes them: every variable is optional, an
//! empty value counts as unset, and every bad value is reported (not just the first).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// The variables `hello` reads, with what each one does (for `--help`).
pub const VARIABLES: &[(&str, &str)] = &[
    (
        "PORT",
        "the port to listen on (default 8080; 0 picks a free one)",
    ),
    (
        "HOST",
        "the address to listen on (default 127.0.0.1; 0.0.0.0 in a container)",
    ),
    ("GREETING", "what GET / starts with (default hello)"),
    ("VERSION", "the version reported (default the crate's)"),
    (
        "POD_NAME",
        "the pod reported (default HOSTNAME, else the host name)",
    ),
    (
        "FAIL_RATE",
        "the share of GET / answered 500, exact over time (0.0..=1.0, default 0)",
    ),
    ("LATENCY_MS", "a delay added to GET / (default 0)"),
    (
        "LATENCY_JITTER_MS",
        "up to this much more delay, pseudo-random (default 0)",
    ),
    (
        "READY_AFTER_MS",
        "/healthz answers 503 until this long after start (default 0)",
    ),
    (
        "UNHEALTHY",
        "1 makes /healthz answer 503 forever (default 0)",
    ),
];

/// What the service was told to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where to listen.
    pub addr: SocketAddr,
    /// `GREETING`.
    pub greeting: String,
    /// `VERSION`, else the crate version.
    pub version: String,
    /// `POD_NAME`, else `HOSTNAME`, else the kernel's host name.
    pub pod: String,
    /// `FAIL_RATE` in parts per million, so the share of failures is exact.
    pub fail_ppm: u64,
    /// `LATENCY_MS`.
    pub latency: Duration,
    /// `LATENCY_JITTER_MS`.
    pub latency_jitter: Duration,
    /// `READY_AFTER_MS`.
    pub ready_after: Duration,
    /// `UNHEALTHY`.
    pub unhealthy: bool,
}

/// One bad variable: its name, what was expected and what it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The variable.
    pub name: &'static str,
    /// What it should hold.
    pub expected: &'static str,
    /// What it held.
    pub got: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {}, got {:?}",
            self.name, self.expected, self.got
        )
    }
}

/// Parts per million in a whole.
pub const PPM: u64 = 1_000_000;

impl Config {
    /// Read the settings through `get` (the process environment in `main`, a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, Vec<Invalid>> {
        let mut env = Env {
            get: |name: &str| get(name).filter(|v| !v.trim().is_empty()),
            errors: Vec::new(),
        };
        const MILLIS: &str = "a whole number of milliseconds such as 250";
        let ms = |v: &str| v.parse::<u64>().ok().map(Duration::from_millis);
        let port = env.read("PORT", "a port number between 0 and 65535", 8080, |v| {
            v.parse::<u16>().ok()
        });
        let host = env.read(
            "HOST",
            "an IP address such as 127.0.0.1, 0.0.0.0 or ::1 (or localhost)",
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            parse_host,
        );
        let fail_ppm = env.read("FAIL_RATE", "a number between 0.0 and 1.0", 0, parse_rate);
        let latency = env.read("LATENCY_MS", MILLIS, Duration::ZERO, ms);
        let latency_jitter = env.read("LATENCY_JITTER_MS", MILLIS, Duration::ZERO, ms);
        let ready_after = env.read("READY_AFTER_MS", MILLIS, Duration::ZERO, ms);
        let unhealthy = env.read(
            "UNHEALTHY",
            "1 or 0 (or true, false, yes, no)",
            false,
            parse_bool,
        );
        if !env.errors.is_empty() {
            return Err(env.errors);
        }
        let get = env.get;
        Ok(Config {
            addr: SocketAddr::new(host, port),
            greeting: get("GREETING").unwrap_or_else(|| "hello".to_string()),
            version: get("VERSION").unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string()),
            pod: get("POD_NAME")
                .or_else(|| get("HOSTNAME"))
                .or_else(host_name)
                .unwrap_or_else(|| "unknown".to_string()),
            fail_ppm,
            latency,
            latency_jitter,
            ready_after,
            unhealthy,
        })
    }
}

/// The environment being read, and what was wrong with it so far.
struct Env<G> {
    get: G,
    errors: Vec<Invalid>,
}

impl<G: Fn(&str) -> Option<String>> Env<G> {
    /// A setting: `default` when unset, else its parsed value (or an error and `default`).
    fn read<T>(
        &mut self,
        name: &'static str,
        expected: &'static str,
        default: T,
        parse: impl Fn(&str) -> Option<T>,
    ) -> T {
        let Some(v) = (self.get)(name) else {
            return default;
        };
        parse(v.trim()).unwrap_or_else(|| {
            self.errors.push(Invalid {
                name,
                expected,
                got: v,
            });
            default
        })
    }
}

fn parse_host(v: &str) -> Option<IpAddr> {
    if v.eq_ignore_ascii_case("localhost") {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    // `[::1]` as well as `::1`.
    v.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// A rate in `0.0..=1.0` as parts per million (the precision a float of text gives anyway).
fn parse_rate(v: &str) -> Option<u64> {
    let r: f64 = v.parse().ok()?;
    if !(0.0..=1.0).contains(&r) {
        return None; // NaN is refused here too
    }
    // In range, so the cast cannot truncate.
    Some((r * PPM as f64).round() as u64)
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// The kernel's host name, which is the pod name on Kubernetes too.
fn host_name() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
}

/// Whether the `n`th request (counting from 1) of a service failing `ppm` parts per million
/// fails: exactly `floor(n * ppm / 1e6)` of the first `n` do, spread evenly (at 0.25 every
/// fourth), so a test or a canary analysis sees the configured rate without sampling noise.
pub fn fails(n: u64, ppm: u64) -> bool {
    let share = |n: u64| u128::from(n) * u128::from(ppm) / u128::from(PPM);
    n > 0 && share(n) > share(n - 1)
}

/// The extra delay of the `n`th request: a splitmix64 draw in `0..=jitter`, the same for the
/// same `n` on every run.
pub fn jitter(n: u64, jitter: Duration) -> Duration {
    let max = u64::try_from(jitter.as_micros()).unwrap_or(u64::MAX);
    if max == 0 {
        return Duration::ZERO;
    }
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    Duration::from_micros(z % max.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(vars: &[(&str, &str)]) -> Result<Config, Vec<String>> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
            .map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn defaults_and_overrides() {
        let c = read(&[("HOSTNAME", "box")]).expect("valid");
        assert_eq!(c.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(
            (c.greeting.as_str(), c.pod.as_str(), c.fail_ppm),
            ("hello", "box", 0)
        );
        assert_eq!(c.version, env!("CARGO_PKG_VERSION"));
        let c = read(&[
            ("PORT", "0"),
            ("HOST", "::1"),
            ("POD_NAME", "web-1"),
            ("HOSTNAME", "box"),
            ("FAIL_RATE", "0.25"),
            ("LATENCY_MS", " 200 "),
            ("UNHEALTHY", "true"),
            ("GREETING", ""),
        ])
        .expect("valid");
        assert_eq!(c.addr.to_string(), "[::1]:0");
        assert_eq!(
            (c.greeting.as_str(), c.pod.as_str(), c.fail_ppm),
            ("hello", "web-1", 250_000)
        );
        assert_eq!(c.latency, Duration::from_millis(200));
        assert!(c.unhealthy);
    }

    #[test]
    fn every_bad_variable_is_named() {
        let errs = read(&[
            ("PORT", "http"),
            ("FAIL_RATE", "1.5"),
            ("LATENCY_MS", "-1"),
            ("UNHEALTHY", "maybe"),
            ("HOST", "example.com"),
        ])
        .expect_err("invalid");
        assert_eq!(
            errs,
            [
                "PORT: expected a port number between 0 and 65535, got \"http\"",
                "HOST: expected an IP address such as 127.0.0.1, 0.0.0.0 or ::1 (or localhost), got \"example.com\"",
                "FAIL_RATE: expected a number between 0.0 and 1.0, got \"1.5\"",
                "LATENCY_MS: expected a whole number of milliseconds such as 250, got \"-1\"",
                "UNHEALTHY: expected 1 or 0 (or true, false, yes, no), got \"maybe\"",
            ]
        );
        assert!(read(&[("FAIL_RATE", "NaN")]).is_err());
    }

    #[test]
    fn failures_are_exact_over_any_prefix() {
        for (rate, ppm) in [(0.0, 0), (0.1, 100_000), (0.25, 250_000), (1.0, PPM)] {
            for n in [1u64, 7, 400, 1000, 12345] {
                let failed = (1..=n).filter(|&i| fails(i, ppm)).count() as u64;
                assert_eq!(
                    failed,
                    (n as f64 * rate).floor() as u64,
                    "rate {rate} n {n}"
                );
            }
        }
        let quarter: Vec<bool> = (1..=8).map(|i| fails(i, 250_000)).collect();
        assert_eq!(
            quarter,
            [false, false, false, true, false, false, false, true]
        );
    }

    #[test]
    fn jitter_stays_in_bounds_and_repeats() {
        let max = Duration::from_millis(50);
        for n in 0..1000 {
            assert!(jitter(n, max) <= max);
            assert_eq!(jitter(n, max), jitter(n, max));
        }
        assert_eq!(jitter(3, Duration::ZERO), Duration::ZERO);
    }
}
