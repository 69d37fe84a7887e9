//! `GET /api/v1/applications/{name}/logs`: the captured output of an application's replicas,
//! one line per output line: `<pod>/<container> <stream> <line>`.
//!
//! Without `follow` the answer is every file's content (or its last `tail` lines), files in
//! the runtime's order (oldest replicas first). With `follow` the same comes first, then the
//! response stays open and new lines are sent as they are written: files are polled every
//! [`crate::ServerConfig::poll_interval`], replicas that appear later are followed from their
//! first line, and a file that shrank (rotated or truncated) is read again from its start.
//! Only whole lines are sent while following; a partial last line waits for its newline.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::State;

/// Bytes read backwards per step when looking for the last lines.
const CHUNK: u64 = 64 * 1024;

/// One followed file.
struct Followed {
    label: String,
    offset: u64,
    /// The start of a line whose newline has not been written yet.
    partial: Vec<u8>,
}

/// Every followed file of an application.
pub(crate) struct Tail {
    files: HashMap<PathBuf, Followed>,
    /// Order of first sight, so output keeps the runtime's file order.
    order: Vec<PathBuf>,
}

impl Tail {
    /// The first answer: each file's last `tail` lines (all when `None`), prefixed. With
    /// `whole_lines_only` a partial last line is held back (following).
    pub(crate) fn start(
        files: Vec<(String, PathBuf)>,
        tail: Option<usize>,
        whole_lines_only: bool,
    ) -> (Tail, Vec<u8>) {
        let mut t = Tail {
            files: HashMap::new(),
            order: Vec::new(),
        };
        let mut out = Vec::new();
        for (label, path) in files {
            // While following, a partial last line is held back, so it must not count as
            // one of the `tail` lines.
            let tail = match tail {
                Some(n) if whole_lines_only && ends_mid_line(&path) => Some(n + 1),
                t => t,
            };
            let (mut text, end) = match read_tail(&path, tail) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::NotFound => (Vec::new(), 0),
                Err(e) => {
                    tracing::warn!("reading {}: {e}", path.display());
                    continue;
                }
            };
            let mut partial = Vec::new();
            if whole_lines_only && !text.is_empty() && !text.ends_with(b"\n") {
                let cut = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                partial = text.split_off(cut);
            }
            prefix_lines(&mut out, &label, &text);
            if !t.files.contains_key(&path) {
                t.order.push(path.clone());
            }
            t.files.insert(
                path,
                Followed {
                    label,
                    offset: end,
                    partial,
                },
            );
        }
        (t, out)
    }

    /// New whole lines since the last call; `files` is the runtime's current list (new files
    /// are followed from their start).
    pub(crate) fn poll(&mut self, files: Vec<(String, PathBuf)>) -> Vec<u8> {
        for (label, path) in files {
            if !self.files.contains_key(&path) {
                self.order.push(path.clone());
                self.files.insert(
                    path,
                    Followed {
                        label,
                        offset: 0,
                        partial: Vec::new(),
                    },
                );
            }
        }
        let mut out = Vec::new();
        for path in &self.order {
            let Some(f) = self.files.get_mut(path) else {
                continue;
            };
            if let Err(e) = read_new(path, f, &mut out) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!("following {}: {e}", path.display());
                }
            }
        }
        out
    }
}

fn read_new(path: &Path, f: &mut Followed, out: &mut Vec<u8>) -> io::Result<()> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    if len < f.offset {
        // Truncated or replaced: start over.
        f.offset = 0;
        f.partial.clear();
    }
    if len == f.offset {
        return Ok(());
    }
    file.seek(SeekFrom::Start(f.offset))?;
    let mut buf = Vec::new();
    file.take(len - f.offset).read_to_end(&mut buf)?;
    f.offset += buf.len() as u64;
    let mut data = std::mem::take(&mut f.partial);
    data.extend_from_slice(&buf);
    let cut = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    f.partial = data.split_off(cut);
    prefix_lines(out, &f.label, &data);
    Ok(())
}

/// `label` + space before each line of `text`; a missing final newline is added.
fn prefix_lines(out: &mut Vec<u8>, label: &str, text: &[u8]) {
    if text.is_empty() {
        return;
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    for line in body.split(|&b| b == b'\n') {
        out.extend_from_slice(label.as_bytes());
        out.push(b' ');
        out.extend_from_slice(line);
        out.push(b'\n');
    }
}

/// True when the file's last byte is not a newline (false when empty or unreadable).
fn ends_mid_line(path: &Path) -> bool {
    let last = || -> io::Result<Option<u8>> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        if len == 0 {
            return Ok(None);
        }
        file.seek(SeekFrom::Start(len - 1))?;
        let mut b = [0u8; 1];
        file.read_exact(&mut b)?;
        Ok(Some(b[0]))
    };
    matches!(last(), Ok(Some(b)) if b != b'\n')
}

/// The last `n` lines of the file (all when `None`), and the file's length when read.
fn read_tail(path: &Path, n: Option<usize>) -> io::Result<(Vec<u8>, u64)> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let Some(n) = n else {
        let mut buf = Vec::new();
        file.take(len).read_to_end(&mut buf)?;
        let end = buf.len() as u64;
        return Ok((buf, end));
    };
    if n == 0 {
        return Ok((Vec::new(), len));
    }
    // Read backwards until the buffer holds n line ends before the last line's start.
    let mut pos = len;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let ends = buf.strip_suffix(b"\n").unwrap_or(&buf);
        if pos == 0 || ends.iter().filter(|&&b| b == b'\n').count() >= n {
            break;
        }
        let step = CHUNK.min(pos);
        pos -= step;
        file.seek(SeekFrom::Start(pos))?;
        let mut chunk = vec![0; step as usize];
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
    }
    let body = buf.strip_suffix(b"\n").unwrap_or(&buf);
    let mut seen = 0;
    let mut start = 0;
    for (i, &b) in body.iter().enumerate().rev() {
        if b == b'\n' {
            seen += 1;
            if seen == n {
                start = i + 1;
                break;
            }
        }
    }
    Ok((buf[start..].to_vec(), len))
}

/// Stream the application's logs: the first part, then new lines until the client goes away
/// or the server stops.
pub(crate) fn follow(
    state: Arc<State>,
    app: String,
    tail: Option<usize>,
) -> tokio::sync::mpsc::Receiver<Result<Bytes, io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        let mut stopping = state.stopping.subscribe();
        let files = state.runtime.log_files(&app);
        let Ok((mut tail, first)) =
            tokio::task::spawn_blocking(move || Tail::start(files, tail, true)).await
        else {
            return;
        };
        if !first.is_empty() && tx.send(Ok(Bytes::from(first))).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                () = tokio::time::sleep(state.config.poll_interval) => {}
                _ = stopping.changed() => return,
                () = tx.closed() => return,
            }
            let files = state.runtime.log_files(&app);
            let Ok((t, out)) = tokio::task::spawn_blocking(move || {
                let out = tail.poll(files);
                (tail, out)
            })
            .await
            else {
                return;
            };
            tail = t;
            if !out.is_empty() && tx.send(Ok(Bytes::from(out))).await.is_err() {
                return;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(path: &Path, text: &str) {
        std::fs::write(path, text).expect("write");
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .expect("open");
        f.write_all(text.as_bytes()).expect("append");
    }

    fn s(b: &[u8]) -> &str {
        std::str::from_utf8(b).expect("utf-8")
    }

    #[test]
    fn tail_takes_the_last_lines() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("a.log");
        write(&p, "stdout 1\nstdout 2\nstderr 3\n");
        for (n, want) in [
            (Some(0), ""),
            (Some(1), "stderr 3\n"),
            (Some(2), "stdout 2\nstderr 3\n"),
            (Some(9), "stdout 1\nstdout 2\nstderr 3\n"),
            (None, "stdout 1\nstdout 2\nstderr 3\n"),
        ] {
            let (text, end) = read_tail(&p, n).expect("tail");
            assert_eq!(s(&text), want, "{n:?}");
            assert_eq!(end, 27);
        }
        write(&p, "stdout 1\nstdout partial");
        assert_eq!(
            s(&read_tail(&p, Some(1)).expect("tail").0),
            "stdout partial"
        );
    }

    #[test]
    fn tail_crosses_chunks() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("big.log");
        let line = format!("stdout {}\n", "x".repeat(1000));
        write(&p, &line.repeat(200));
        let (text, _) = read_tail(&p, Some(100)).expect("tail");
        assert_eq!(text.len(), line.len() * 100);
    }

    #[test]
    fn follow_prefixes_whole_lines_and_picks_up_new_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = dir.path().join("a.log");
        let b = dir.path().join("b.log");
        write(&a, "stdout one\nstdout two\nstdout par");
        let (mut t, first) = Tail::start(vec![("p1/c".into(), a.clone())], Some(1), true);
        assert_eq!(s(&first), "p1/c stdout two\n");
        assert_eq!(s(&t.poll(vec![("p1/c".into(), a.clone())])), "");
        append(&a, "tial\nstderr three\n");
        write(&b, "stdout hello\n");
        let files = vec![("p1/c".to_string(), a.clone()), ("p2/c".to_string(), b)];
        assert_eq!(
            s(&t.poll(files.clone())),
            "p1/c stdout partial\np1/c stderr three\np2/c stdout hello\n"
        );
        write(&a, "stdout again\n");
        assert_eq!(
            s(&t.poll(files)),
            "p1/c stdout again\n",
            "truncated: reread"
        );
    }

    #[test]
    fn without_follow_partial_lines_are_shown() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = dir.path().join("a.log");
        write(&a, "stdout one\nstderr no newline");
        let missing = dir.path().join("gone.log");
        let (_, out) = Tail::start(
            vec![("p/c".into(), a), ("q/c".into(), missing)],
            None,
            false,
        );
        assert_eq!(s(&out), "p/c stdout one\np/c stderr no newline\n");
    }
}
