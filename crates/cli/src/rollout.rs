//! `slipway rollout get|list|watch|promote|abort|retry|pause|resume|undo`: Argo Rollouts of a
//! running `slipway up`, through its API.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand};
use slipway_reconcile::RollbackResult;
use slipway_server::{RolloutCommandBody, RolloutCommandReply, RolloutDetail, RolloutSummary};

use crate::api_client::{
    json_text, print_as, rollback_text, segment, show, table, Client, Output, ServerArgs,
};
use crate::{output, Global, EXIT_DIFFERENT, EXIT_OK};

/// How often `watch` asks the server.
const WATCH_INTERVAL: Duration = Duration::from_millis(250);
/// Width of the weight bars of `watch`.
const BAR: usize = 20;

/// Argo Rollouts of a running `slipway up`: status, a live view, and the commands that move
/// an update along (promote, abort, retry, pause, resume, undo)
#[derive(Debug, Args)]
#[command(after_help = "\
A Rollout is named NAME (when no other namespace has one of that name), NAMESPACE/NAME, or
NAME with -n NAMESPACE.

Examples:
  slipway rollout list
  slipway rollout get hello
  slipway rollout watch hello
  slipway rollout promote hello")]
pub struct RolloutArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(subcommand)]
    pub command: RolloutCommand,
}

/// The `rollout` verbs.
#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Show one Rollout: status, step, weights, revisions and analysis runs
    #[command(after_help = "\
Examples:
  slipway rollout get hello
  slipway rollout get hello -n shop
  slipway rollout get shop/hello --output json")]
    Get(Target),
    /// List Rollouts with their status, step and weights
    #[command(after_help = "\
Examples:
  slipway rollout list
  slipway rollout list --output json | jq -r '.[] | select(.phase == \"Paused\") | .name'")]
    List(ListArgs),
    /// A live view of a Rollout: steps, weights and analysis, until it is Healthy or Degraded
    #[command(after_help = "\
On a terminal the view is redrawn in place every 250 ms; otherwise one line is printed each
time something changes. Exits 0 once the Rollout is Healthy, 1 once it is Degraded (aborted),
unless --follow.

Examples:
  slipway rollout watch hello
  slipway rollout watch shop/hello --follow")]
    Watch(WatchArgs),
    /// Go past the current pause or step (--full: skip every remaining step and analysis)
    #[command(after_help = "\
Exits 0 when the controller applied the command, 1 when it ignored it (the Rollout is not
updating), 2 when it could not be asked.

Examples:
  slipway rollout promote hello
  slipway rollout promote hello --full")]
    Promote(PromoteArgs),
    /// Abort the update: all traffic back to the stable revision, the Rollout Degraded
    #[command(after_help = "\
Examples:
  slipway rollout abort hello
  slipway rollout abort hello -n shop")]
    Abort(Target),
    /// Start an aborted update again from its first step
    #[command(after_help = "\
Examples:
  slipway rollout retry hello")]
    Retry(Target),
    /// Stop the update where it is (traffic stays as it is) until resume or promote
    #[command(after_help = "\
Examples:
  slipway rollout pause hello")]
    Pause(Target),
    /// Continue an update stopped by pause
    #[command(after_help = "\
Examples:
  slipway rollout resume hello")]
    Resume(Target),
    /// Roll back to the previous revision by a revert commit of the Rollout's application
    #[command(after_help = "\
Git stays the truth: like `slipway app rollback`, the application that owns the Rollout is
restored by a new commit to the last revision synced successfully before the one Git asks
for now (during an update: the stable revision's); the controller syncs that commit and the
Rollout rolls it out like any other.

Examples:
  slipway rollout undo hello")]
    Undo(Target),
}

/// Which Rollout.
#[derive(Debug, Args)]
pub struct Target {
    /// Rollout name (or NAMESPACE/NAME)
    pub name: String,
    /// The Rollout's namespace (default: the only namespace with a Rollout of that name)
    #[arg(long, short = 'n', value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// `rollout list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// `rollout promote`.
#[derive(Debug, Args)]
pub struct PromoteArgs {
    #[command(flatten)]
    pub target: Target,
    /// Skip every remaining step and analysis
    #[arg(long)]
    pub full: bool,
}

/// `rollout watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Rollout name (or NAMESPACE/NAME)
    pub name: String,
    /// The Rollout's namespace (default: the only namespace with a Rollout of that name)
    #[arg(long, short = 'n', value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Keep watching after the Rollout is Healthy or Degraded (until Ctrl-C)
    #[arg(long)]
    pub follow: bool,
}

/// Run a `rollout` verb.
pub fn run(args: &RolloutArgs, _global: &Global) -> anyhow::Result<u8> {
    let client = Client::new(&args.server)?;
    match &args.command {
        RolloutCommand::List(a) => show(
            &client,
            "/api/v1/rollouts",
            a.output,
            |rows: &Vec<RolloutSummary>| list_table(rows),
        ),
        RolloutCommand::Get(t) => {
            let key = resolve(&client, &t.name, t.namespace.as_deref())?;
            show(&client, &path(&key, ""), t.output, detail_text)
        }
        RolloutCommand::Watch(w) => {
            let key = resolve(&client, &w.name, w.namespace.as_deref())?;
            watch(&client, &key, w.follow)
        }
        RolloutCommand::Promote(p) => command(&client, &p.target, "promote", p.full),
        RolloutCommand::Abort(t) => command(&client, t, "abort", false),
        RolloutCommand::Retry(t) => command(&client, t, "retry", false),
        RolloutCommand::Pause(t) => command(&client, t, "pause", false),
        RolloutCommand::Resume(t) => command(&client, t, "resume", false),
        RolloutCommand::Undo(t) => {
            let key = resolve(&client, &t.name, t.namespace.as_deref())?;
            let result: RollbackResult = client.post(&path(&key, "/undo"), &body(false))?;
            print_as(t.output, &result, |r| {
                format!("{key}: its application {}\n", rollback_text(r))
            })?;
            Ok(EXIT_OK)
        }
    }
}

fn body(full: bool) -> RolloutCommandBody {
    RolloutCommandBody {
        full,
        initiated_by: std::env::var("USER").ok(),
    }
}

/// `/api/v1/rollouts/<ns>/<name><rest>` for `<ns>/<name>`.
fn path(key: &str, rest: &str) -> String {
    let (ns, name) = key.split_once('/').unwrap_or(("default", key));
    format!("/api/v1/rollouts/{}/{}{rest}", segment(ns), segment(name))
}

/// `<namespace>/<name>` of the Rollout the user means.
fn resolve(client: &Client, name: &str, namespace: Option<&str>) -> anyhow::Result<String> {
    if let Some(ns) = namespace {
        let name = name.rsplit_once('/').map_or(name, |(_, n)| n);
        return Ok(format!("{ns}/{name}"));
    }
    if name.contains('/') {
        return Ok(name.to_string());
    }
    let rows: Vec<RolloutSummary> = client.get("/api/v1/rollouts")?;
    pick(name, &rows)
}

/// The unique Rollout named `name` among `rows`.
fn pick(name: &str, rows: &[RolloutSummary]) -> anyhow::Result<String> {
    let found: Vec<String> = rows
        .iter()
        .filter(|r| r.name == name)
        .map(|r| format!("{}/{}", r.namespace, r.name))
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("no rollout named {name:?}"),
        many => bail!(
            "rollout {name:?} exists in several namespaces: {}; name one with -n NAMESPACE \
             or NAMESPACE/NAME",
            many.join(", ")
        ),
    }
}

fn command(client: &Client, t: &Target, verb: &str, full: bool) -> anyhow::Result<u8> {
    let key = resolve(client, &t.name, t.namespace.as_deref())?;
    let reply: RolloutCommandReply = client.post(&path(&key, &format!("/{verb}")), &body(full))?;
    if t.output == Output::Json {
        output::print(&json_text(&reply)?)?;
    } else if let Some(why) = &reply.ignored {
        eprintln!("{key}: {} ignored: {why}", reply.command);
    } else if !reply.applied {
        output::print(&format!(
            "{key}: {} queued (the controller has not applied it yet)\n",
            reply.command
        ))?;
    } else {
        let state = reply.status.as_ref().map(state_line).unwrap_or_default();
        output::print(&format!("{key}: {} applied; {state}\n", reply.command))?;
    }
    Ok(if reply.ignored.is_some() {
        EXIT_DIFFERENT
    } else {
        EXIT_OK
    })
}

fn opt(o: &Option<String>) -> String {
    o.clone().unwrap_or_else(|| "-".to_string())
}

fn step_str(s: &RolloutSummary) -> String {
    match (s.step, s.steps_total) {
        (Some(i), Some(n)) => format!("{i}/{n}"),
        _ => "-".to_string(),
    }
}

/// `NAMESPACE NAME APPLICATION STRATEGY STATUS STEP SET-WEIGHT ACTUAL-WEIGHT STABLE CANARY MESSAGE`.
fn list_table(rows: &[RolloutSummary]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.namespace.clone(),
                r.name.clone(),
                opt(&r.application),
                r.strategy.clone(),
                r.phase.clone(),
                step_str(r),
                r.set_weight.map_or("-".to_string(), |w| w.to_string()),
                r.canary_weight.to_string(),
                opt(&r.stable),
                opt(&r.canary),
                r.message.lines().next().unwrap_or("").to_string(),
            ]
        })
        .collect();
    table(
        &[
            "NAMESPACE",
            "NAME",
            "APPLICATION",
            "STRATEGY",
            "STATUS",
            "STEP",
            "SET-WEIGHT",
            "ACTUAL-WEIGHT",
            "STABLE",
            "CANARY",
            "MESSAGE",
        ],
        &rows,
    )
}

/// `Paused, step 2/3, canary 20%`.
fn state_line(d: &RolloutDetail) -> String {
    let s = &d.summary;
    let mut out = s.phase.clone();
    if let Some(i) = s.step {
        out.push_str(&format!(", step {i}/{}", s.steps_total.unwrap_or(0)));
    }
    if s.strategy == "Canary" {
        out.push_str(&format!(", canary {}%", s.canary_weight));
    }
    if !s.message.is_empty() {
        out.push_str(&format!(": {}", s.message));
    }
    out
}

/// `kubectl argo rollouts get rollout`-like text.
fn detail_text(d: &RolloutDetail) -> String {
    let s = &d.summary;
    let mut fields: Vec<(&str, String)> = vec![
        ("Name", s.name.clone()),
        ("Namespace", s.namespace.clone()),
        ("Application", opt(&s.application)),
        ("Status", s.phase.clone()),
    ];
    if !s.message.is_empty() {
        fields.push(("Message", s.message.clone()));
    }
    fields.push(("Strategy", s.strategy.clone()));
    if s.strategy == "Canary" {
        fields.push(("  Step", step_str(s)));
        fields.push((
            "  SetWeight",
            s.set_weight.map_or("-".to_string(), |w| w.to_string()),
        ));
        fields.push(("  ActualWeight", s.canary_weight.to_string()));
    } else {
        fields.push(("  Active", opt(&d.active)));
        fields.push(("  Preview", opt(&d.preview)));
    }
    for image in &d.images {
        let rev = d.revision.as_deref().unwrap_or("-");
        let role = if s.canary.as_deref() == Some(rev) {
            "canary"
        } else if s.stable.as_deref() == Some(rev) {
            "stable"
        } else {
            "desired"
        };
        fields.push(("Images", format!("{image} ({role}, revision {rev})")));
    }
    fields.push(("Stable", opt(&s.stable)));
    if s.canary.is_some() {
        fields.push(("Canary", opt(&s.canary)));
    }
    for r in &d.replicas {
        fields.push(("Replicas", format!("{} {}", r.revision, r.replicas)));
    }
    for r in &d.header_routes {
        fields.push(("Header route", r.clone()));
    }
    for r in &d.mirror_routes {
        fields.push(("Mirror route", format!("{} ({}%)", r.name, r.percentage)));
    }
    for sd in &d.scale_downs {
        fields.push((
            "Scale down",
            format!("{} at {}", sd.revision, crate::api_client::time(sd.at_ms)),
        ));
    }
    let mut out = String::new();
    for (k, v) in fields {
        // Repeated keys (several images or revisions) are shown once.
        let key = if out
            .lines()
            .last()
            .is_some_and(|l| l.starts_with(&format!("{k}:")))
        {
            String::new()
        } else {
            format!("{k}:")
        };
        out.push_str(&format!("{key:<16}{v}\n"));
    }
    if !d.steps.is_empty() {
        out.push_str("\nSteps:\n");
        out.push_str(&steps_text(d));
    }
    if !d.analyses.is_empty() {
        out.push_str("\nAnalysis runs:\n");
        out.push_str(&analysis_table(d));
    }
    out
}

fn analysis_table(d: &RolloutDetail) -> String {
    let rows: Vec<Vec<String>> = d
        .analyses
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                a.kind.clone(),
                a.phase.clone(),
                a.message.clone(),
            ]
        })
        .collect();
    table(&["NAME", "KIND", "PHASE", "MESSAGE"], &rows)
        .lines()
        .map(|l| format!("  {l}\n"))
        .collect()
}

/// Every step, the current one marked `>`; done steps say so.
fn steps_text(d: &RolloutDetail) -> String {
    let s = &d.summary;
    // 0-based index of the current step; all done when no update runs.
    let current = match s.step {
        Some(i) if s.canary.is_some() => Some(i.saturating_sub(1) as usize),
        _ => None,
    };
    let done_all = s.canary.is_none() && s.phase == "Healthy";
    let width = d.steps.iter().map(|t| t.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (i, text) in d.steps.iter().enumerate() {
        let (marker, state) = match current {
            Some(c) if i < c => (" ", "done"),
            Some(c) if i == c && s.aborted => (">", "aborted"),
            Some(c) if i == c => (">", s.phase.as_str()),
            None if done_all => (" ", "done"),
            _ => (" ", ""),
        };
        let line = format!("  {marker} {:>2}. {text:<width$}  {state}", i + 1);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn bar(weight: u32) -> String {
    let filled = (weight.min(100) as usize * BAR + 50) / 100;
    format!("[{}{}]", "#".repeat(filled), ".".repeat(BAR - filled))
}

/// The live view.
fn frame(d: &RolloutDetail) -> String {
    let s = &d.summary;
    let mut out = format!("{}/{}", s.namespace, s.name);
    if let Some(app) = &s.application {
        out.push_str(&format!(" (application {app})"));
    }
    out.push_str(&format!("  {}  {}", s.strategy, s.phase));
    if let (Some(i), Some(n)) = (s.step, s.steps_total) {
        out.push_str(&format!("  step {i}/{n}"));
    }
    out.push('\n');
    if !s.message.is_empty() {
        out.push_str(&format!("  {}\n", s.message));
    }
    if !d.steps.is_empty() {
        out.push_str("Steps:\n");
        out.push_str(&steps_text(d));
    }
    if s.strategy == "Canary" {
        out.push_str("Weights:\n");
        out.push_str(&format!(
            "  stable  {} {:>3}%  {}\n",
            bar(s.stable_weight),
            s.stable_weight,
            opt(&s.stable)
        ));
        if let Some(c) = &s.canary {
            out.push_str(&format!(
                "  canary  {} {:>3}%  {c}\n",
                bar(s.canary_weight),
                s.canary_weight
            ));
        }
    } else {
        out.push_str(&format!(
            "Active: {}  Preview: {}\n",
            opt(&d.active),
            opt(&d.preview)
        ));
    }
    if !d.analyses.is_empty() {
        out.push_str("Analysis:\n");
        out.push_str(&analysis_table(d));
    }
    out
}

/// One line per change when stdout is not a terminal.
fn watch_line(d: &RolloutDetail) -> String {
    let s = &d.summary;
    let mut out = s.phase.clone();
    if let (Some(i), Some(n)) = (s.step, s.steps_total) {
        out.push_str(&format!("  step {i}/{n}"));
        if let Some(text) = d.steps.get(i.saturating_sub(1) as usize) {
            out.push_str(&format!(" ({text})"));
        }
    }
    if s.strategy == "Canary" {
        out.push_str(&format!(
            "  stable {}% / canary {}%",
            s.stable_weight, s.canary_weight
        ));
    } else {
        out.push_str(&format!(
            "  active {} / preview {}",
            opt(&d.active),
            opt(&d.preview)
        ));
    }
    for a in &d.analyses {
        out.push_str(&format!("  analysis {} {}", a.name, a.phase));
    }
    if !s.message.is_empty() {
        out.push_str(&format!("  {}", s.message));
    }
    out.push('\n');
    out
}

fn watch(client: &Client, key: &str, follow: bool) -> anyhow::Result<u8> {
    let tty = std::io::stdout().is_terminal();
    let mut last = String::new();
    let mut drawn_lines = 0usize;
    loop {
        let d: RolloutDetail = client.get(&path(key, ""))?;
        let text = if tty { frame(&d) } else { watch_line(&d) };
        if text != last {
            let mut out = std::io::stdout().lock();
            if tty && drawn_lines > 0 {
                // Back to the top of the previous frame, and clear it.
                write!(out, "\x1b[{drawn_lines}A\r\x1b[J")?;
            }
            out.write_all(text.as_bytes())?;
            out.flush()?;
            drawn_lines = text.lines().count();
            last = text;
        }
        if !follow {
            match d.summary.phase.as_str() {
                "Healthy" => return Ok(EXIT_OK),
                "Degraded" => return Ok(EXIT_DIFFERENT),
                _ => {}
            }
        }
        std::thread::sleep(WATCH_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(ns: &str, name: &str) -> RolloutSummary {
        RolloutSummary {
            namespace: ns.into(),
            name: name.into(),
            application: Some("hello".into()),
            phase: "Paused".into(),
            message: "CanaryPauseStep".into(),
            strategy: "Canary".into(),
            step: Some(2),
            steps_total: Some(3),
            set_weight: Some(20),
            canary_weight: 20,
            stable_weight: 80,
            stable: Some("aaa".into()),
            canary: Some("bbb".into()),
            aborted: false,
        }
    }

    #[test]
    fn names_resolve_to_one_rollout() {
        let rows = vec![summary("default", "hello"), summary("shop", "hello")];
        let err = pick("hello", &rows).expect_err("ambiguous");
        assert!(
            err.to_string().contains("default/hello, shop/hello"),
            "{err}"
        );
        assert_eq!(pick("hello", &rows[1..]).expect("one"), "shop/hello");
        assert!(pick("nope", &rows).is_err());
        assert_eq!(
            path("a b/c", "/promote"),
            "/api/v1/rollouts/a%20b/c/promote"
        );
    }

    #[test]
    fn the_live_view_marks_the_current_step() {
        let d = RolloutDetail {
            summary: summary("default", "hello"),
            revision: Some("bbb".into()),
            images: vec!["img:v2".into()],
            steps: vec![
                "setWeight: 20".into(),
                "pause".into(),
                "setWeight: 100".into(),
            ],
            header_routes: vec![],
            mirror_routes: vec![],
            active: None,
            preview: None,
            analyses: vec![],
            replicas: vec![],
            scale_downs: vec![],
        };
        let f = frame(&d);
        assert!(f.contains("  >  2. pause           Paused\n"), "{f}");
        assert!(f.contains("     1. setWeight: 20   done\n"), "{f}");
        assert!(
            f.contains("canary  [####................]  20%  bbb"),
            "{f}"
        );
        assert_eq!(
            watch_line(&d),
            "Paused  step 2/3 (pause)  stable 80% / canary 20%  CanaryPauseStep\n"
        );
        let g = detail_text(&d);
        assert!(g.contains("  SetWeight:    20\n"), "{g}");
        assert!(
            g.contains("Images:         img:v2 (canary, revision bbb)\n"),
            "{g}"
        );
    }
}
