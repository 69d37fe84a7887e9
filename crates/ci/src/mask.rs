//! Secret masking for every log line.
//!
//! A [`Masker`] holds the values to hide: the values of `secrets.*` ([`Masker::add_secret`])
//! and what steps register with `::add-mask::VALUE` ([`Masker::process_line`] or
//! [`Masker::add_mask`]). Both go through the same encoders, as in GitHub's runner, so each
//! registered value `V` also hides:
//!
//! - `V` exactly as registered (whatever its length, once non-empty);
//! - each line of a multi-line `V`, trimmed, so a secret printed across several log lines is
//!   still masked line by line. Lines shorter than [`MIN_DERIVED_LEN`] characters are skipped:
//!   masking `}` or `a` everywhere would wreck logs (a one-line secret is always masked whole);
//! - its JSON-escaped form (`"` → `\"`, `\` → `\\`, newline → `\n`, ...), as it appears inside
//!   JSON output;
//! - its URL-encoded form (every byte but `A-Z a-z 0-9 - _ . ~` as upper-case `%XX`, what
//!   `encodeURIComponent`, `curl --data-urlencode` and Python's `quote` produce), and the
//!   form-encoded variant with `+` for spaces;
//! - its base64, automatically: standard and URL-safe alphabets, at the three alignments a
//!   value can have inside a larger encoded string (so `base64(user:SECRET)` is masked too),
//!   keeping only the characters that depend on `V` alone. Base64 forms shorter than
//!   [`MIN_DERIVED_LEN`] are skipped. A base64 registered with `::add-mask::` is, of course,
//!   masked exactly as registered.
//!
//! Every occurrence of every form is replaced by `***`; overlapping or adjacent occurrences
//! (two secrets sharing characters) merge into one `***`, so no part of either shows. Matching
//! is a single left-to-right scan with candidates indexed by first byte, longest first.

use std::collections::BTreeSet;

/// The shortest derived form (a line of a multi-line secret, a base64 fragment, ...) worth
/// masking. Values registered directly are always masked whatever their length.
pub const MIN_DERIVED_LEN: usize = 3;

/// What masked text becomes.
pub const MASK: &str = "***";

/// Replaces registered secrets in log lines.
#[derive(Clone, Debug, Default)]
pub struct Masker {
    /// Every form to hide, each once.
    patterns: BTreeSet<String>,
    /// Pattern indexes by first byte, longest pattern first.
    by_first: Vec<Vec<usize>>,
    /// The patterns in `by_first`'s numbering.
    list: Vec<String>,
}

impl Masker {
    /// A masker with nothing to hide yet.
    pub fn new() -> Self {
        Masker::default()
    }

    /// A masker hiding each of `secrets` (for example the values of `secrets.*`).
    pub fn with_secrets<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut m = Masker::new();
        for s in secrets {
            m.add_secret(s.as_ref());
        }
        m
    }

    /// Registers a secret's value and its derived forms. Empty values are ignored.
    pub fn add_secret(&mut self, value: &str) {
        self.register(value);
    }

    /// Registers a value from `::add-mask::` (same treatment as a secret).
    pub fn add_mask(&mut self, value: &str) {
        self.register(value);
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Handles one line of step output: `::add-mask::VALUE` registers VALUE (with the workflow
    /// command escapes `%25`, `%0D`, `%0A` undone) and the line comes back as
    /// `::add-mask::***`; any other line comes back masked.
    pub fn process_line(&mut self, line: &str) -> String {
        let body = line.trim_end_matches(['\r', '\n']);
        if let Some(value) = body.trim_start().strip_prefix("::add-mask::") {
            self.add_mask(&unescape_command_data(value));
            return format!("::add-mask::{MASK}");
        }
        self.mask(line)
    }

    /// The line with every registered form replaced by `***`.
    pub fn mask(&self, line: &str) -> String {
        if self.list.is_empty() {
            return line.to_owned();
        }
        let bytes = line.as_bytes();
        // Covered ranges, merged as they are found (the scan goes left to right).
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        for i in 0..bytes.len() {
            for &p in &self.by_first[bytes[i] as usize] {
                let pat = self.list[p].as_bytes();
                if bytes[i..].starts_with(pat) {
                    let end = i + pat.len();
                    match ranges.last_mut() {
                        Some(last) if i <= last.1 => last.1 = last.1.max(end),
                        _ => ranges.push((i, end)),
                    }
                    break; // longest first: shorter ones starting here lie inside
                }
            }
        }
        if ranges.is_empty() {
            return line.to_owned();
        }
        let mut out = String::with_capacity(line.len());
        let mut at = 0;
        for (start, end) in ranges {
            out.push_str(&line[at..start]);
            out.push_str(MASK);
            at = end;
        }
        out.push_str(&line[at..]);
        out
    }

    fn register(&mut self, value: &str) {
        if value.is_empty() {
            return;
        }
        let mut forms = vec![value.to_owned()];
        let mut bases = vec![value.to_owned()];
        if value.contains(['\n', '\r']) {
            for l in value.split(['\n', '\r']) {
                let l = l.trim();
                if l.chars().count() >= MIN_DERIVED_LEN {
                    forms.push(l.to_owned());
                    bases.push(l.to_owned());
                }
            }
        }
        for b in &bases {
            let json = serde_json::to_string(b).unwrap_or_default();
            forms.push(json[1..json.len() - 1].to_owned());
            let url = url_encode(b);
            forms.push(url.replace("%20", "+"));
            forms.push(url);
            for shift in 0..3 {
                let b64 = base64_core(b.as_bytes(), shift);
                forms.push(b64.replace('+', "-").replace('/', "_"));
                forms.push(b64);
            }
        }
        let mut changed = self.patterns.insert(value.to_owned());
        for f in forms {
            if f.chars().count() >= MIN_DERIVED_LEN {
                changed |= self.patterns.insert(f);
            }
        }
        if changed {
            self.reindex();
        }
    }

    fn reindex(&mut self) {
        let mut list: Vec<String> = self.patterns.iter().cloned().collect();
        list.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        let mut by_first = vec![Vec::new(); 256];
        for (i, p) in list.iter().enumerate() {
            by_first[p.as_bytes()[0] as usize].push(i);
        }
        self.list = list;
        self.by_first = by_first;
    }
}

/// Percent-encodes every byte outside RFC 3986's unreserved set, upper-case hex.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Undoes the escapes of workflow command data.
fn unescape_command_data(s: &str) -> String {
    s.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%3A", ":")
        .replace("%2C", ",")
        .replace("%25", "%")
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The base64 characters that depend only on `data` when it sits `shift` bytes (0, 1 or 2)
/// into a 3-byte group of a larger encoded stream: characters mixing in bits of the
/// neighbouring bytes are dropped. With shift 0 this is the plain encoding without its last
/// partial character and padding.
fn base64_core(data: &[u8], shift: usize) -> String {
    let mut buf = vec![0u8; shift];
    buf.extend_from_slice(data);
    let (lo, hi) = (8 * shift, 8 * (shift + data.len()));
    let mut out = String::new();
    let total_bits = buf.len() * 8;
    let mut bit = 0;
    while bit + 6 <= total_bits {
        if bit >= lo && bit + 6 <= hi {
            let mut v = 0usize;
            for k in bit..bit + 6 {
                v = (v << 1) | usize::from((buf[k / 8] >> (7 - k % 8)) & 1);
            }
            out.push(B64[v] as char);
        }
        bit += 6;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_b64(data: &[u8]) -> String {
        let mut out = base64_core(data, 0);
        // The complete standalone encoding, for comparison.
        let rem = data.len() % 3;
        if rem != 0 {
            let last = &data[data.len() - rem..];
            let v = (usize::from(last[0]) << 16) | (usize::from(*last.get(1).unwrap_or(&0)) << 8);
            let chars = [(v >> 18) & 63, (v >> 12) & 63, (v >> 6) & 63];
            out.truncate(out.len() - (rem * 8 / 6));
            for c in chars.iter().take(rem + 1) {
                out.push(B64[*c] as char);
            }
            out.push_str(if rem == 1 { "==" } else { "=" });
        }
        out
    }

    #[test]
    fn base64_matches_the_standard_encoding() {
        assert_eq!(full_b64(b"Man"), "TWFu");
        assert_eq!(full_b64(b"Ma"), "TWE=");
        assert_eq!(full_b64(b"M"), "TQ==");
        assert_eq!(full_b64(b"hunter2"), "aHVudGVyMg==");
        // "user:hunter2" → dXNlcjpodW50ZXIy: "hunter2" at offset 5 (shift 2).
        assert!("dXNlcjpodW50ZXIy".contains(&base64_core(b"hunter2", 5 % 3)));
    }
}
