//! `slipway app list|get|diff|sync|history|rollback`: applications of a running
//! `slipway up`, through its API.

use anyhow::Context;
use clap::{Args, Subcommand};
use slipway_reconcile::{
    AppDetail, AppSummary, OperationPhase, OperationState, ResourceStatus, RollbackResult,
    SyncStatus,
};
use slipway_runtime::HealthStatus;
use slipway_server::{RollbackBody, SyncBody};
use slipway_store::SyncRecord;

use crate::api_client::{
    json_text, print_as, rollback_text, segment, short, show, table, time, Client, Output,
    ServerArgs,
};
use crate::{color, output, Global, EXIT_DIFFERENT, EXIT_OK};

/// Applications of a running `slipway up`: list, inspect, diff, sync, history, rollback
#[derive(Debug, Args)]
pub struct AppArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(subcommand)]
    pub command: AppCommand,
}

/// The `app` verbs.
#[derive(Debug, Subcommand)]
pub enum AppCommand {
    List(ListArgs),
    Get(GetArgs),
    Diff(DiffArgs),
    Sync(SyncArgs),
    History(HistoryArgs),
    Rollback(RollbackArgs),
}

/// List applications with their sync status, health and revision
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  slipway app list
  slipway app list --output json | jq -r '.[] | select(.sync != \"Synced\") | .name'
  slipway app list --server http://10.0.0.5:7070 --token-file ~/.slipway/token")]
pub struct ListArgs {
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Show one application: its source, status, last operation and every resource
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  slipway app get hello
  slipway app get hello --output json")]
pub struct GetArgs {
    /// Application name
    pub name: String,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Show what differs between what runs and Git (exit 1 when OutOfSync, like diff)
#[derive(Debug, Args)]
#[command(after_help = "\
The unified diff goes from live (---) to Git (+++). With -q nothing is printed: only the
exit status answers (0 Synced, 1 OutOfSync).

Examples:
  slipway app diff hello
  slipway app diff hello -q || slipway app sync hello")]
pub struct DiffArgs {
    /// Application name
    pub name: String,
    /// Output format (json: the application with its diff)
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Sync an application now, whatever its sync policy, and wait for the result
#[derive(Debug, Args)]
#[command(after_help = "\
Exits 0 when the sync succeeded, 1 when it ran and failed, 2 when it could not be asked.

Examples:
  slipway app sync hello
  slipway app sync hello --revision 4f2a9c1 --prune")]
pub struct SyncArgs {
    /// Application name
    pub name: String,
    /// Sync this revision (branch, tag or SHA) instead of the tracked one
    #[arg(long, value_name = "REV")]
    pub revision: Option<String>,
    /// Delete live objects that are no longer in Git, even if the policy does not prune
    #[arg(long)]
    pub prune: bool,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Show an application's sync history, newest first
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  slipway app history hello
  slipway app history hello --limit 5 --output json")]
pub struct HistoryArgs {
    /// Application name
    pub name: String,
    /// Show at most this many syncs
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Roll an application back by a revert commit in the GitOps repository
#[derive(Debug, Args)]
#[command(after_help = "\
Git stays the truth: the commits that changed the application since --to are reverted in
one new commit on the tracked branch (pushed when the repository is remote), and the
controller syncs it like any other commit.

Examples:
  slipway app rollback hello
  slipway app rollback hello --to 4f2a9c1")]
pub struct RollbackArgs {
    /// Application name
    pub name: String,
    /// Restore this revision (default: the one synced before the current one)
    #[arg(long, value_name = "REV")]
    pub to: Option<String>,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Run an `app` verb.
pub fn run(args: &AppArgs, global: &Global) -> anyhow::Result<u8> {
    let client = Client::new(&args.server)?;
    match &args.command {
        AppCommand::List(a) => show(
            &client,
            "/api/v1/applications",
            a.output,
            |apps: &Vec<AppSummary>| list_table(apps),
        ),
        AppCommand::Get(a) => show(&client, &app_path(&a.name, ""), a.output, detail_text),
        AppCommand::Diff(a) => {
            let app: AppDetail = client.get(&app_path(&a.name, ""))?;
            let differs = app.summary.sync == SyncStatus::OutOfSync;
            if !global.quiet {
                match a.output {
                    Output::Json => output::print(&json_text(&app)?)?,
                    Output::Table if global.color.enabled() => {
                        output::print(&color::paint_diff(&app.diff))?
                    }
                    Output::Table => output::print(&app.diff)?,
                }
                if differs && app.diff.is_empty() && a.output == Output::Table {
                    eprintln!("{}: OutOfSync", app.summary.name);
                }
            }
            Ok(if differs { EXIT_DIFFERENT } else { EXIT_OK })
        }
        AppCommand::Sync(a) => {
            let body = SyncBody {
                revision: a.revision.clone(),
                prune: a.prune,
                initiated_by: std::env::var("USER").ok(),
            };
            let op: OperationState = client.post(&app_path(&a.name, "/sync"), &body)?;
            print_as(a.output, &op, |op| {
                format!(
                    "{}: {} {:?} at {}{}\n",
                    a.name,
                    op.kind,
                    op.phase,
                    short(&op.revision),
                    if op.message.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", op.message)
                    }
                )
            })?;
            Ok(if op.phase == OperationPhase::Succeeded {
                EXIT_OK
            } else {
                EXIT_DIFFERENT
            })
        }
        AppCommand::History(a) => {
            let path = app_path(&a.name, &format!("/history?limit={}", a.limit));
            show(&client, &path, a.output, |records: &Vec<SyncRecord>| {
                history_table(records)
            })
        }
        AppCommand::Rollback(a) => {
            let body = RollbackBody {
                to: a.to.clone(),
                author: std::env::var("USER").ok(),
            };
            let result: RollbackResult = client
                .post(&app_path(&a.name, "/rollback"), &body)
                .with_context(|| format!("cannot roll {} back", a.name))?;
            print_as(a.output, &result, |r| {
                format!("{}: {}\n", a.name, rollback_text(r))
            })?;
            Ok(EXIT_OK)
        }
    }
}

fn app_path(name: &str, rest: &str) -> String {
    format!("/api/v1/applications/{}{rest}", segment(name))
}

fn sync_str(s: SyncStatus) -> &'static str {
    match s {
        SyncStatus::Synced => "Synced",
        SyncStatus::OutOfSync => "OutOfSync",
        SyncStatus::Unknown => "Unknown",
    }
}

/// What the MESSAGE column says: the error, else the health message, else the operation's.
fn message(a: &AppSummary) -> String {
    if let Some(e) = &a.error {
        return first_line(e);
    }
    if a.health.status != HealthStatus::Healthy && !a.health.message.is_empty() {
        return first_line(&a.health.message);
    }
    match &a.operation {
        Some(op) if op.phase != OperationPhase::Succeeded => {
            first_line(&format!("{} {:?}: {}", op.kind, op.phase, op.message))
        }
        _ => String::new(),
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

/// `NAME SYNC HEALTH REVISION MESSAGE`, like `argocd app list`.
pub fn list_table(apps: &[AppSummary]) -> String {
    let rows: Vec<Vec<String>> = apps
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                sync_str(a.sync).to_string(),
                a.health.status.as_str().to_string(),
                a.revision.as_deref().map(short).unwrap_or("").to_string(),
                message(a),
            ]
        })
        .collect();
    table(&["NAME", "SYNC", "HEALTH", "REVISION", "MESSAGE"], &rows)
}

fn detail_text(app: &AppDetail) -> String {
    let a = &app.summary;
    let mut policy = Vec::new();
    if a.prune {
        policy.push("prune");
    }
    if a.self_heal {
        policy.push("selfHeal");
    }
    let policy = match (a.automated, policy.is_empty()) {
        (false, _) => "manual".to_string(),
        (true, true) => "automated".to_string(),
        (true, false) => format!("automated ({})", policy.join(", ")),
    };
    let mut fields: Vec<(&str, String)> = vec![
        ("Name", a.name.clone()),
        ("Project", a.project.clone()),
        ("Repo", a.repo_url.clone()),
        ("Path", a.path.clone()),
        ("Target", a.target_revision.clone()),
        ("Revision", a.revision.clone().unwrap_or_default()),
        ("Synced", a.synced_revision.clone().unwrap_or_default()),
        ("Namespace", a.namespace.clone()),
        ("Sync policy", policy),
        ("Sync status", sync_str(a.sync).to_string()),
        (
            "Health",
            if a.health.message.is_empty() {
                a.health.status.as_str().to_string()
            } else {
                format!("{}: {}", a.health.status.as_str(), a.health.message)
            },
        ),
    ];
    if let Some(op) = &a.operation {
        fields.push((
            "Operation",
            format!(
                "{} {:?} at {} by {}, {}{}",
                op.kind,
                op.phase,
                short(&op.revision),
                op.initiated_by,
                time(op.started_at),
                if op.message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", op.message)
                }
            ),
        ));
    }
    if let Some(e) = &a.error {
        fields.push(("Error", e.clone()));
    }
    let mut out = String::new();
    for (k, v) in fields {
        out.push_str(&format!("{:<13}{v}\n", format!("{k}:")));
    }
    if !app.resources.is_empty() {
        out.push('\n');
        out.push_str(&resources_table(&app.resources));
    }
    out
}

fn resources_table(resources: &[ResourceStatus]) -> String {
    let rows: Vec<Vec<String>> = resources
        .iter()
        .map(|r| {
            let status = if r.requires_pruning {
                "OutOfSync (prune)".to_string()
            } else {
                sync_str(r.sync).to_string()
            };
            let msg = r
                .health
                .as_ref()
                .map(|h| h.message.clone())
                .filter(|m| !m.is_empty())
                .or_else(|| r.drift.first().cloned())
                .unwrap_or_default();
            vec![
                r.id.group.clone(),
                r.id.kind.clone(),
                r.id.namespace.clone(),
                r.id.name.clone(),
                status,
                r.health
                    .as_ref()
                    .map_or("", |h| h.status.as_str())
                    .to_string(),
                r.hook.clone().unwrap_or_default(),
                first_line(&msg),
            ]
        })
        .collect();
    table(
        &[
            "GROUP",
            "KIND",
            "NAMESPACE",
            "NAME",
            "STATUS",
            "HEALTH",
            "HOOK",
            "MESSAGE",
        ],
        &rows,
    )
}

fn history_table(records: &[SyncRecord]) -> String {
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                r.id.0.to_string(),
                time(r.started_at),
                short(&r.revision).to_string(),
                r.result.to_string(),
                r.operation.to_string(),
                r.initiated_by.clone(),
                format!("{:.1}s", r.duration_ms as f64 / 1000.0),
                first_line(r.error.as_deref().unwrap_or(&r.message)),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "STARTED",
            "REVISION",
            "RESULT",
            "OPERATION",
            "BY",
            "DURATION",
            "MESSAGE",
        ],
        &rows,
    )
}
