//! Small value types shared by the operations: commit ids, signatures, log entries, changes.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// The id of a commit: a full SHA-1 object id.
///
/// It wraps libgit2's id type without exposing it, so callers depend only on the hex form:
/// [`Display`](fmt::Display) prints all 40 lowercase hex digits, [`CommitId::short`] the
/// first seven, and [`FromStr`] accepts exactly 40 hex digits (a short id is a *revision* and
/// goes through [`Repo::resolve`](crate::Repo::resolve), which can tell when it is ambiguous).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommitId(git2::Oid);

impl CommitId {
    pub(crate) fn from_oid(oid: git2::Oid) -> Self {
        CommitId(oid)
    }

    pub(crate) fn oid(&self) -> git2::Oid {
        self.0
    }

    /// The first seven hex digits, as `git log --oneline` shows them in small repositories.
    pub fn short(&self) -> String {
        let mut hex = self.0.to_string();
        hex.truncate(7);
        hex
    }
}

impl fmt::Display for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommitId({})", self.0)
    }
}

impl FromStr for CommitId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidCommitId {
            value: s.to_string(),
        };
        // `Oid::from_str` pads short input with zeros; a commit id must be complete.
        if s.len() != 40 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        git2::Oid::from_str(s).map(CommitId).map_err(|_| invalid())
    }
}

/// A point in time as Git records it: seconds since the Unix epoch and the author's offset
/// from UTC in minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Time {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub seconds: i64,
    /// Offset from UTC in minutes (`+0130` is 90).
    pub offset_minutes: i32,
}

/// Who made a commit, and optionally when.
///
/// When `time` is `None` the commit is stamped with the current time in UTC; give a time to
/// make commits reproducible (tests, replays). Log entries always fill `time` in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Signature {
    /// The person's name.
    pub name: String,
    /// The person's e-mail address, without angle brackets.
    pub email: String,
    /// When; `None` means now.
    pub time: Option<Time>,
}

impl Signature {
    /// A signature stamped with the time of the commit.
    pub fn new(name: impl Into<String>, email: impl Into<String>) -> Self {
        Signature {
            name: name.into(),
            email: email.into(),
            time: None,
        }
    }

    /// The same signature at a fixed time.
    pub fn at(mut self, seconds: i64, offset_minutes: i32) -> Self {
        self.time = Some(Time {
            seconds,
            offset_minutes,
        });
        self
    }

    pub(crate) fn to_git(&self) -> Result<git2::Signature<'static>, Error> {
        let signature = match self.time {
            Some(t) => git2::Signature::new(
                &self.name,
                &self.email,
                &git2::Time::new(t.seconds, t.offset_minutes),
            ),
            None => git2::Signature::now(&self.name, &self.email),
        };
        signature.map_err(|e| Error::InvalidSignature {
            name: self.name.clone(),
            email: self.email.clone(),
            reason: e.message().to_string(),
        })
    }

    pub(crate) fn from_git(sig: &git2::Signature<'_>) -> Self {
        let when = sig.when();
        Signature {
            name: String::from_utf8_lossy(sig.name_bytes()).into_owned(),
            email: String::from_utf8_lossy(sig.email_bytes()).into_owned(),
            time: Some(Time {
                seconds: when.seconds(),
                offset_minutes: when.offset_minutes(),
            }),
        }
    }
}

/// One change to make in a commit built by [`Repo::commit_files`](crate::Repo::commit_files).
///
/// Paths are relative to the repository root, `/`-separated; `.` and `..` components are
/// normalised lexically and a path may not leave the root or name `.git`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileChange {
    /// Create or replace a regular file (an executable file stays executable), creating the
    /// directories above it as needed.
    Write {
        /// Where.
        path: String,
        /// The complete new contents.
        contents: Vec<u8>,
    },
    /// Remove a file, symlink or whole directory. Removing something that is not there is
    /// not an error, so a retried change list stays valid; directories left empty vanish,
    /// as Git cannot store them.
    Delete {
        /// What.
        path: String,
    },
}

/// One commit as [`Repo::log`](crate::Repo::log) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The commit.
    pub id: CommitId,
    /// Who wrote the change, and when.
    pub author: Signature,
    /// Who committed it, and when.
    pub committer: Signature,
    /// The author time in seconds since the Unix epoch (the date `git log` shows).
    pub time: i64,
    /// The author's offset from UTC in minutes.
    pub time_offset_minutes: i32,
    /// The whole message.
    pub message: String,
    /// The first paragraph of the message on one line, as `git log --format=%s` prints it.
    pub summary: String,
    /// Paths of files added, modified or deleted relative to the first parent (every file for
    /// a root commit), sorted; renames show as a deletion and an addition.
    pub changed_paths: Vec<String>,
}
