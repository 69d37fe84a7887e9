//! GitHub's filter patterns for branches, tags and paths, and `on.push` matching.
//!
//! The rules are GitHub's (not shell globbing): `*` matches any run of characters except `/`,
//! `**` matches any run including `/` (and `**/` may match nothing, so `docs/**/*.md` matches
//! `docs/README.md`), `?` makes the preceding character optional, `+` repeats it one or more
//! times, `[...]` matches one listed character or range, `\` escapes the next character.
//! In a list, patterns apply in order and a leading `!` excludes again what earlier patterns
//! included: the last pattern that matches decides.

use super::PushTrigger;
use super::Triggers;

#[derive(Debug, Clone, PartialEq)]
enum Atom {
    Lit(char),
    Class(Vec<(char, char)>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// An atom with its repetition bounds: exactly one, zero or one (`?`), one or more (`+`).
    Atom(Atom, Rep),
    /// `*`: anything but `/`.
    Star,
    /// `**`: anything.
    DeepStar,
    /// `**/`: nothing, or anything that ends with `/`.
    DeepDir,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Rep {
    One,
    Opt,
    Plus,
}

/// One compiled filter pattern (without its `!`).
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    toks: Vec<Tok>,
}

impl Pattern {
    /// Compile a pattern. Every string is a pattern; malformed classes match literally.
    pub fn new(pattern: &str) -> Pattern {
        let chars: Vec<char> = pattern.chars().collect();
        let mut toks: Vec<Tok> = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            match c {
                '*' if chars.get(i + 1) == Some(&'*') => {
                    if chars.get(i + 2) == Some(&'/') {
                        toks.push(Tok::DeepDir);
                        i += 3;
                    } else {
                        toks.push(Tok::DeepStar);
                        i += 2;
                    }
                    continue;
                }
                '*' => toks.push(Tok::Star),
                '?' | '+' => match toks.last_mut() {
                    Some(Tok::Atom(_, rep @ Rep::One)) => {
                        *rep = if c == '?' { Rep::Opt } else { Rep::Plus }
                    }
                    _ => toks.push(Tok::Atom(Atom::Lit(c), Rep::One)),
                },
                '\\' if i + 1 < chars.len() => {
                    toks.push(Tok::Atom(Atom::Lit(chars[i + 1]), Rep::One));
                    i += 1;
                }
                '[' => match parse_class(&chars[i + 1..]) {
                    Some((ranges, used)) => {
                        toks.push(Tok::Atom(Atom::Class(ranges), Rep::One));
                        i += used;
                    }
                    None => toks.push(Tok::Atom(Atom::Lit('['), Rep::One)),
                },
                _ => toks.push(Tok::Atom(Atom::Lit(c), Rep::One)),
            }
            i += 1;
        }
        Pattern { toks }
    }

    /// True when the whole of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        let t: Vec<char> = text.chars().collect();
        match_at(&self.toks, &t)
    }
}

/// Parses the inside of `[...]`; returns the ranges and how many chars it used (incl. `]`).
fn parse_class(rest: &[char]) -> Option<(Vec<(char, char)>, usize)> {
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < rest.len() {
        let c = rest[i];
        if c == ']' && i > 0 {
            return Some((ranges, i + 1));
        }
        if rest.get(i + 1) == Some(&'-') && rest.get(i + 2).is_some_and(|&e| e != ']') {
            ranges.push((c, rest[i + 2]));
            i += 3;
        } else {
            ranges.push((c, c));
            i += 1;
        }
    }
    None
}

fn atom_matches(a: &Atom, c: char) -> bool {
    match a {
        Atom::Lit(l) => *l == c,
        Atom::Class(r) => r.iter().any(|&(lo, hi)| lo <= c && c <= hi),
    }
}

fn match_at(toks: &[Tok], t: &[char]) -> bool {
    let Some((first, rest)) = toks.split_first() else {
        return t.is_empty();
    };
    match first {
        Tok::Atom(a, rep) => {
            let (min, max) = match rep {
                Rep::One => (1, 1),
                Rep::Opt => (0, 1),
                Rep::Plus => (1, usize::MAX),
            };
            let mut n = 0;
            while n < max && n < t.len() && atom_matches(a, t[n]) {
                n += 1;
            }
            (min..=n).rev().any(|k| match_at(rest, &t[k..]))
        }
        Tok::Star => {
            let limit = t.iter().position(|&c| c == '/').unwrap_or(t.len());
            (0..=limit).rev().any(|k| match_at(rest, &t[k..]))
        }
        Tok::DeepStar => (0..=t.len()).rev().any(|k| match_at(rest, &t[k..])),
        Tok::DeepDir => {
            match_at(rest, t)
                || (0..t.len())
                    .rev()
                    .any(|k| t[k] == '/' && match_at(rest, &t[k + 1..]))
        }
    }
}

/// Applies an ordered pattern list (with `!` exclusions) to one name: the last matching
/// pattern decides; `false` when none matches.
pub fn filter_matches(patterns: &[String], text: &str) -> bool {
    let mut included = false;
    for p in patterns {
        match p.strip_prefix('!') {
            Some(neg) => {
                if included && Pattern::new(neg).matches(text) {
                    included = false;
                }
            }
            None => {
                if !included && Pattern::new(p).matches(text) {
                    included = true;
                }
            }
        }
    }
    included
}

/// Whether a push of `git_ref` (`refs/heads/<branch>` or `refs/tags/<tag>`; a bare name is a
/// branch) changing `changed_paths` triggers the workflow, by GitHub's rules:
///
/// - without a `push` trigger, never;
/// - with only branch filters, tag pushes do not run (and the other way round);
/// - path filters apply to branch pushes only, and both branch and path filters must pass;
/// - `paths`: some changed path must be included; `paths-ignore`: some path must be left
///   after ignoring.
pub fn matches_push(on: &Triggers, git_ref: &str, changed_paths: &[impl AsRef<str>]) -> bool {
    let Some(push) = &on.push else {
        return false;
    };
    if let Some(tag) = git_ref.strip_prefix("refs/tags/") {
        return ref_passes(&push.tags, &push.tags_ignore, has_branch_filter(push), tag);
    }
    let branch = git_ref.strip_prefix("refs/heads/").unwrap_or(git_ref);
    if !ref_passes(
        &push.branches,
        &push.branches_ignore,
        has_tag_filter(push),
        branch,
    ) {
        return false;
    }
    if let Some(paths) = &push.paths {
        return changed_paths
            .iter()
            .any(|p| filter_matches(paths, p.as_ref()));
    }
    if let Some(ignore) = &push.paths_ignore {
        return changed_paths
            .iter()
            .any(|p| !filter_matches(ignore, p.as_ref()));
    }
    true
}

fn has_branch_filter(p: &PushTrigger) -> bool {
    p.branches.is_some() || p.branches_ignore.is_some()
}

fn has_tag_filter(p: &PushTrigger) -> bool {
    p.tags.is_some() || p.tags_ignore.is_some()
}

fn ref_passes(
    include: &Option<Vec<String>>,
    ignore: &Option<Vec<String>>,
    other_kind_filtered: bool,
    name: &str,
) -> bool {
    match (include, ignore) {
        (Some(inc), _) => filter_matches(inc, name),
        (None, Some(ign)) => !filter_matches(ign, name),
        (None, None) => !other_kind_filtered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        Pattern::new(p).matches(t)
    }

    #[test]
    fn branch_cheat_sheet() {
        assert!(m("feature/*", "feature/my-branch"));
        assert!(!m("feature/*", "feature/a/b"));
        assert!(m("feature/**", "feature/beta-a/my-branch"));
        assert!(m("feature/**", "feature/mona/the/octocat"));
        assert!(m("*", "main") && m("*", "releases") && !m("*", "releases/v1"));
        assert!(m("**", "all/the/branches"));
        assert!(m("*feature", "mona-feature") && m("*feature", "feature"));
        assert!(m("*feature", "ver-10-feature"));
        assert!(m("v2*", "v2") && m("v2*", "v2.0") && m("v2*", "v2.9"));
        assert!(m("v[12].[0-9]+.[0-9]+", "v1.10.1") && m("v[12].[0-9]+.[0-9]+", "v2.0.0"));
        assert!(!m("v[12].[0-9]+.[0-9]+", "v3.0.0") && !m("v[12].[0-9]+.[0-9]+", "v1.0"));
    }

    #[test]
    fn path_cheat_sheet() {
        assert!(m("*", "README.md") && !m("*", "docs/README.md"));
        assert!(m("*.jsx?", "page.js") && m("*.jsx?", "page.jsx") && !m("*.jsx?", "page.jsxx"));
        assert!(m("*.js", "app.js") && !m("*.js", "js/app.js"));
        assert!(m("**.js", "index.js") && m("**.js", "js/index.js"));
        assert!(m("**.js", "src/js/app.js"));
        assert!(m("docs/*", "docs/README.md") && !m("docs/*", "docs/mona/octocat.txt"));
        assert!(m("docs/**", "docs/mona/octocat.txt"));
        assert!(m("docs/**/*.md", "docs/README.md"));
        assert!(m("docs/**/*.md", "docs/mona/hello-world.md"));
        assert!(m("docs/**/*.md", "docs/a/markdown/file.md"));
        assert!(m("**/docs/**", "docs/hello.md") && m("**/docs/**", "dir/docs/my-file.txt"));
        assert!(m("**/docs/**", "space/docs/plan/space.doc"));
        assert!(m("**/README.md", "README.md") && m("**/README.md", "js/README.md"));
        assert!(m("**/*src/**", "a/src/app.js") && m("**/*src/**", "my-src/code/js/app.js"));
        assert!(m("**/*-post.md", "my-post.md") && m("**/*-post.md", "path/their-post.md"));
        assert!(m("**/migrate-*.sql", "migrate-10909.sql"));
        assert!(m("**/migrate-*.sql", "db/migrate-v1.0.sql"));
        assert!(m("**/migrate-*.sql", "db/sept/migrate-v1.sql"));
        assert!(m(r"a\*b", "a*b") && !m(r"a\*b", "axb"));
    }

    #[test]
    fn ordered_negation() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let a = p(&["*.md", "!README.md"]);
        assert!(filter_matches(&a, "hello.md"));
        assert!(!filter_matches(&a, "README.md") && !filter_matches(&a, "docs/hello.md"));
        let b = p(&["*.md", "!README.md", "README*"]);
        assert!(filter_matches(&b, "hello.md") && filter_matches(&b, "README.md"));
        assert!(filter_matches(&b, "README.doc"));
    }
}
