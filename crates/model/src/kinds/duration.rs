//! Durations as Argo writes them: Go duration strings (`30s`, `5m`, `1h30m`, `250ms`) and,
//! where Argo allows it, plain integers meaning seconds.

use std::fmt;

use crate::kinds::IntOrString;

/// A non-negative span of time read from a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

/// Why a duration did not parse. Displays as the reason only (`unknown unit "x"`), so callers
/// can put it after their own "expected ..., got ..." text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing to parse.
    #[error("empty duration")]
    Empty,
    /// A leading `-`.
    #[error("negative durations are not allowed")]
    Negative,
    /// A number with no unit after it (`10` where a unit is required).
    #[error("missing unit after {0} (use ns, us, ms, s, m or h)")]
    MissingUnit(String),
    /// A unit that Go's `time.ParseDuration` does not know.
    #[error("unknown unit {0:?} (use ns, us, ms, s, m or h)")]
    UnknownUnit(String),
    /// Something other than a number where a number must be.
    #[error("expected a number at {0:?}")]
    ExpectedNumber(String),
    /// Longer than this program can represent.
    #[error("duration too large")]
    TooLarge,
}

const UNITS: [(&str, f64); 8] = [
    ("ns", 1e-9),
    ("us", 1e-6),
    ("µs", 1e-6),
    ("μs", 1e-6),
    ("ms", 1e-3),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3600.0),
];

impl Duration {
    /// A duration of whole seconds.
    pub fn from_secs(secs: u64) -> Self {
        Duration(std::time::Duration::from_secs(secs))
    }

    /// Parse Go's duration syntax, as Argo's `DurationString` does: one or more
    /// `<decimal><unit>` parts (`1h30m`, `1.5s`, `300ms`); `0` alone is allowed.
    pub fn parse(s: &str) -> Result<Self, DurationError> {
        let s = s.trim();
        let s = match s.strip_prefix('-') {
            Some(_) => return Err(DurationError::Negative),
            None => s.strip_prefix('+').unwrap_or(s),
        };
        if s.is_empty() {
            return Err(DurationError::Empty);
        }
        if s == "0" {
            return Ok(Duration::default());
        }
        let mut total = 0f64;
        let mut rest = s;
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let num = &rest[..num_len];
            if num.is_empty() || num == "." || num.matches('.').count() > 1 {
                return Err(DurationError::ExpectedNumber(rest.to_string()));
            }
            let n: f64 = num
                .parse()
                .map_err(|_| DurationError::ExpectedNumber(rest.to_string()))?;
            rest = &rest[num_len..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            if unit.is_empty() {
                return Err(DurationError::MissingUnit(num.to_string()));
            }
            let Some((_, scale)) = UNITS.iter().find(|(u, _)| *u == unit) else {
                return Err(DurationError::UnknownUnit(unit.to_string()));
            };
            total += n * scale;
            rest = &rest[unit_len..];
        }
        std::time::Duration::try_from_secs_f64(total)
            .map(Duration)
            .map_err(|_| DurationError::TooLarge)
    }

    /// Parse a duration where Argo also takes a bare integer as seconds (a canary `pause`,
    /// Argo CD's retry `backoff`): `"30"` is 30 seconds, anything else as [`Duration::parse`].
    pub fn parse_seconds_or_go(s: &str) -> Result<Self, DurationError> {
        let t = s.trim();
        if t.starts_with('-') {
            return Err(DurationError::Negative);
        }
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            return t
                .parse()
                .map(Duration::from_secs)
                .map_err(|_| DurationError::TooLarge);
        }
        Duration::parse(t)
    }

    /// Read an int-or-string duration: an integer is seconds, a string as
    /// [`Duration::parse_seconds_or_go`].
    pub fn from_int_or_string(v: &IntOrString) -> Result<Self, DurationError> {
        match v {
            IntOrString::Int(i) => u64::try_from(*i)
                .map(Duration::from_secs)
                .map_err(|_| DurationError::Negative),
            IntOrString::String(s) => Duration::parse_seconds_or_go(s),
        }
    }

    /// The standard library's duration.
    pub fn as_std(&self) -> std::time::Duration {
        self.0
    }
}

impl fmt::Display for Duration {
    /// Compact Go-like text: `1h30m`, `45s`, `1.5s`, `300ms`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_nanos() != 0 && d.as_secs() == 0 {
            let ms = d.as_secs_f64() * 1e3;
            return write!(f, "{ms}ms");
        }
        if d.subsec_nanos() != 0 {
            return write!(f, "{}s", d.as_secs_f64());
        }
        let secs = d.as_secs();
        if secs == 0 {
            return write!(f, "0s");
        }
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 {
            write!(f, "{s}s")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: Result<&str, &str>) {
        let got = Duration::parse(input)
            .map(|d| d.to_string())
            .map_err(|e| e.to_string());
        assert_eq!(got.as_deref().map_err(|e| e.as_ref()), expect, "{input:?}");
    }

    #[test]
    fn go_durations_parse() {
        check("30s", Ok("30s"));
        check("5m", Ok("5m"));
        check("1h30m", Ok("1h30m"));
        check("1.5h", Ok("1h30m"));
        check("300ms", Ok("300ms"));
        check("0", Ok("0s"));
        check("90s", Ok("1m30s"));
        check("", Err("empty duration"));
        check("-5s", Err("negative durations are not allowed"));
        check(
            "10",
            Err("missing unit after 10 (use ns, us, ms, s, m or h)"),
        );
        check(
            "5 minutes",
            Err("unknown unit \" minutes\" (use ns, us, ms, s, m or h)"),
        );
        check(
            "5min",
            Err("unknown unit \"min\" (use ns, us, ms, s, m or h)"),
        );
        check("abc", Err("expected a number at \"abc\""));
        check("1h.m", Err("expected a number at \".m\""));
    }

    #[test]
    fn argo_seconds_forms() {
        assert_eq!(
            Duration::parse_seconds_or_go("30"),
            Ok(Duration::from_secs(30))
        );
        assert_eq!(
            Duration::from_int_or_string(&IntOrString::Int(10)),
            Ok(Duration::from_secs(10))
        );
        assert_eq!(
            Duration::from_int_or_string(&IntOrString::Int(-1)),
            Err(DurationError::Negative)
        );
        assert_eq!(
            Duration::from_int_or_string(&IntOrString::String("2m".into())),
            Ok(Duration::from_secs(120))
        );
    }
}
