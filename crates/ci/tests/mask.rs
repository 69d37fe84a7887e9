//! Secret masking: a secret printed in many forms never reaches the log.

use slipway_ci::mask::{Masker, MASK};

const SECRET: &str = "S3cr3t-Value!";
const TRICKY: &str = "p@ss w0rd\"\\x/y"; // a quote, a backslash, a space, a slash
const MULTI: &str = "-----BEGIN KEY-----\nMIIEvQIBADANBgkq\nhkiG9w0BAQEFAASC\n-----END KEY-----";

/// Runs step output through the masker like the runner does, line by line.
fn log(masker: &mut Masker, output: &str) -> Vec<String> {
    output.lines().map(|l| masker.process_line(l)).collect()
}

fn assert_clean(lines: &[String], forbidden: &[&str]) {
    let all = lines.join("\n");
    for f in forbidden {
        assert!(!all.contains(f), "{f:?} leaked in:\n{all}");
    }
}

#[test]
fn a_secret_in_many_forms_never_reaches_the_log() {
    let mut m = Masker::with_secrets([SECRET, TRICKY, MULTI]);
    let json_tricky = serde_json::to_string(TRICKY).unwrap();
    let json_multi = serde_json::to_string(MULTI).unwrap();
    let output = format!(
        "plain: {SECRET}\n\
         twice: {SECRET}{SECRET} and {TRICKY}\n\
         json: {{\"token\": {json_tricky}, \"key\": {json_multi}}}\n\
         {MULTI}\n\
         indented:\n    MIIEvQIBADANBgkq\n\
         ::add-mask::UzNjcjN0LVZhbHVlIQ==\n\
         base64: UzNjcjN0LVZhbHVlIQ==\n\
         basic auth: Authorization: Basic dXNlcjpTM2NyM3QtVmFsdWUh\n\
         url: https://x.test/?token=S3cr3t-Value%21&p=p%40ss%20w0rd%22%5Cx%2Fy\n\
         form: p=p%40ss+w0rd%22%5Cx%2Fy\n\
         done\n"
    );
    let lines = log(&mut m, &output);
    assert_clean(
        &lines,
        &[
            SECRET,
            "S3cr3t",
            TRICKY,
            "p@ss",
            "w0rd",
            &json_tricky[1..json_tricky.len() - 1],
            "MIIEvQIBADANBgkq",
            "hkiG9w0BAQEFAASC",
            "BEGIN KEY",
            "UzNjcjN0LVZhbHVlIQ",
            "TM2NyM3QtVmFsdWU",
            "S3cr3t-Value%21",
            "p%40ss",
        ],
    );
    assert_eq!(lines[0], format!("plain: {MASK}"));
    assert_eq!(lines[1], format!("twice: {MASK} and {MASK}"));
    assert_eq!(lines.last().unwrap(), "done");
    assert!(lines.contains(&format!("::add-mask::{MASK}")));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("url: https://x.test/?token=")));
}

#[test]
fn add_mask_registers_exactly_what_was_given() {
    let mut m = Masker::new();
    assert_eq!(
        m.process_line("before: c29tZXRoaW5n"),
        "before: c29tZXRoaW5n"
    );
    assert_eq!(
        m.process_line("::add-mask::c29tZXRoaW5n"),
        "::add-mask::***"
    );
    assert_eq!(m.process_line("after: c29tZXRoaW5n."), "after: ***.");
    // Workflow-command escapes: a multi-line value registered in one command.
    m.process_line("::add-mask::first-line%0Asecond-line");
    assert_eq!(m.mask("a first-line b"), "a *** b");
    assert_eq!(m.mask("second-line"), "***");
    assert_eq!(m.process_line("::add-mask::"), "::add-mask::***");
    assert_eq!(m.mask("nothing here"), "nothing here");
}

#[test]
fn non_secrets_are_untouched_and_empty_secrets_ignored() {
    let m = Masker::with_secrets(["", "hunter2"]);
    assert!(!m.is_empty());
    for line in [
        "",
        "hello world",
        "hunter",
        "unter2",
        "ünïcödé ✓ hunte r2",
        "{\"a\": 1}",
    ] {
        assert_eq!(m.mask(line), line);
    }
    assert_eq!(m.mask("ünïcödé hunter2 ✓"), "ünïcödé *** ✓");
    let empty = Masker::with_secrets([""]);
    assert!(empty.is_empty());
    assert_eq!(empty.mask("anything"), "anything");
}

#[test]
fn overlapping_secrets_hide_every_character() {
    let m = Masker::with_secrets(["abcd", "cdef", "abcdefgh", "xyz"]);
    assert_eq!(m.mask("..abcdef.."), "..***..");
    assert_eq!(m.mask("abcdefgh"), "***");
    assert_eq!(m.mask("abcdxyz"), "***");
    assert_eq!(m.mask("abcd xyz cdef"), "*** *** ***");
}

#[test]
fn short_secrets_are_masked_whole_but_short_lines_are_not_derived() {
    // A one-character secret is still masked where it appears (GitHub does the same).
    let m = Masker::with_secrets(["Q"]);
    assert_eq!(m.mask("a Q b"), "a *** b");
    // Lines of a multi-line secret shorter than MIN_DERIVED_LEN are not masked on their own.
    let m = Masker::with_secrets(["{\n  \"k\": \"value-123\"\n}"]);
    assert_eq!(m.mask("  \"k\": \"value-123\""), "  ***");
    assert_eq!(m.mask("}"), "}");
    assert_eq!(m.mask("{"), "{");
}

#[test]
fn many_lines_stay_fast() {
    let secrets: Vec<String> = (0..200).map(|i| format!("secret-value-{i:04}")).collect();
    let m = Masker::with_secrets(&secrets);
    let line = "an ordinary log line with some words, numbers 12345 and secret-value-0150 inside";
    let start = std::time::Instant::now();
    for _ in 0..20_000 {
        let out = m.mask(line);
        assert!(!out.contains("secret-value-0150"));
    }
    // Generous even for a debug build on a shared machine.
    assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());
}
