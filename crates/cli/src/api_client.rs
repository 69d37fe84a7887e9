//! The HTTP client of the verbs that talk to a running `slipway up` (`app`, `logs`,
//! `status`, `rollout`): where the server is, the token, JSON in and out, errors for people,
//! and the printing the read verbs share (`--output table|json`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use serde::de::DeserializeOwned;
use serde::Serialize;
use slipway_server::ErrorBody;

/// The default API address (what `slipway up` listens on by default).
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

/// Where the server is and how to authenticate.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The Slipway API (a running `slipway up`)
    #[arg(
        long,
        env = "SLIPWAY_SERVER",
        value_name = "URL",
        default_value = DEFAULT_SERVER,
        global = true
    )]
    pub server: String,

    /// File holding the API token (its first line); else the SLIPWAY_TOKEN variable
    #[arg(long, value_name = "FILE", global = true)]
    pub token_file: Option<PathBuf>,
}

/// The `--output` of read verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns for people
    Table,
    /// The API's JSON, pretty-printed
    Json,
}

/// Read a token file: its first line, trimmed; an empty file is an error.
pub fn read_token_file(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the token file {}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        bail!("the token file {} is empty", path.display());
    }
    Ok(token)
}

/// A client for one server.
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Client {
    /// From the flags (and environment).
    pub fn new(args: &ServerArgs) -> anyhow::Result<Client> {
        let token = match &args.token_file {
            Some(path) => Some(read_token_file(path)?),
            None => std::env::var("SLIPWAY_TOKEN")
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
        };
        let base = args.server.trim_end_matches('/').to_string();
        if !base.starts_with("http://") {
            bail!(
                "--server {base}: expected an http:// URL (TLS is not built in: reach a remote \
                 server through a tunnel or a TLS proxy)"
            );
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        Ok(Client {
            base,
            token,
            http: reqwest::Client::new(),
            rt,
        })
    }

    /// `GET path` as JSON.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.rt.block_on(async {
            let r = self.send(self.http.get(self.url(path))).await?;
            r.json::<T>()
                .await
                .with_context(|| format!("unexpected answer from {}", self.url(path)))
        })
    }

    /// `POST path` with a JSON body, answer as JSON.
    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        self.rt.block_on(async {
            let r = self.send(self.http.post(self.url(path)).json(body)).await?;
            r.json::<T>()
                .await
                .with_context(|| format!("unexpected answer from {}", self.url(path)))
        })
    }

    /// `GET path` and copy the body to stdout as it arrives (log streams).
    pub fn stream_to_stdout(&self, path: &str) -> anyhow::Result<()> {
        self.rt.block_on(async {
            let mut r = self.send(self.http.get(self.url(path))).await?;
            let mut out = std::io::stdout().lock();
            while let Some(chunk) = r
                .chunk()
                .await
                .with_context(|| format!("reading {}", self.url(path)))?
            {
                out.write_all(&chunk)
                    .and_then(|()| out.flush())
                    .context("cannot write to stdout")?;
            }
            Ok(())
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let request = match &self.token {
            Some(t) => request.bearer_auth(t),
            None => request,
        };
        let response = request.send().await.map_err(|e| {
            if e.is_connect() {
                anyhow::anyhow!(
                    "no Slipway server at {} (start one with: slipway up)",
                    self.base
                )
            } else {
                anyhow::Error::new(e).context(format!("cannot reach {}", self.base))
            }
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&text)
            .map(|b| b.error)
            .unwrap_or_else(|_| text.trim().to_string());
        if status == reqwest::StatusCode::UNAUTHORIZED && self.token.is_none() {
            bail!("{message} (HTTP 401; pass --token-file or set SLIPWAY_TOKEN)");
        }
        bail!("{message} (HTTP {})", status.as_u16())
    }
}

/// Percent-encode a path segment (application names are DNS labels, but be safe).
pub fn segment(s: &str) -> String {
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

/// Prints `value` as `output` asks: the API's JSON, or what `table` makes of it for people.
pub fn print_as<T: Serialize>(
    output: Output,
    value: &T,
    table: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    crate::output::print(&match output {
        Output::Json => json_text(value)?,
        Output::Table => table(value),
    })
}

/// The read verbs: GET `path` and print the answer with [`print_as`]; exits 0.
pub fn show<T: DeserializeOwned + Serialize>(
    client: &Client,
    path: &str,
    output: Output,
    table: impl FnOnce(&T) -> String,
) -> anyhow::Result<u8> {
    let value: T = client.get(path)?;
    print_as(output, &value, table)?;
    Ok(crate::EXIT_OK)
}

/// What a rollback's revert commit did: `reverted 2 commits in 4f2a9c1; 1a2b3c4 restored`.
pub fn rollback_text(result: &slipway_reconcile::RollbackResult) -> String {
    format!(
        "reverted {} commit{} in {}; {} restored",
        result.reverted.len(),
        if result.reverted.len() == 1 { "" } else { "s" },
        short(&result.commit),
        short(&result.restored)
    )
}

/// Pretty JSON with a final newline.
pub fn json_text<T: Serialize>(value: &T) -> anyhow::Result<String> {
    let mut s = serde_json::to_string_pretty(value)?;
    s.push('\n');
    Ok(s)
}

/// Rows as aligned columns (two spaces apart; the last column is not padded).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The first 7 characters of a SHA (a tag or branch stays as is).
pub fn short(rev: &str) -> &str {
    if rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
        &rev[..7]
    } else {
        rev
    }
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let t = table(
            &["NAME", "SYNC", "MESSAGE"],
            &[
                vec!["hello".into(), "Synced".into(), "".into()],
                vec!["a".into(), "OutOfSync".into(), "2 changed".into()],
            ],
        );
        assert_eq!(
            t,
            "NAME   SYNC       MESSAGE\nhello  Synced\na      OutOfSync  2 changed\n"
        );
    }

    #[test]
    fn times_and_shas() {
        assert_eq!(time(0), "1970-01-01 00:00:00");
        assert_eq!(time(1_795_876_200_000), "2026-11-28 14:30:00");
        assert_eq!(time(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(short(&"ab12".repeat(10)), "ab12ab1");
        assert_eq!(short("main"), "main");
        assert_eq!(segment("hello-web"), "hello-web");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
