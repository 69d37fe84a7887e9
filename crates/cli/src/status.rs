//! `slipway status`: what a running `slipway up` manages, at a glance.

use clap::Args;
use slipway_reconcile::AppSummary;
use slipway_server::StatusReport;

use crate::api_client::{json_text, table, Client, Output, ServerArgs};
use crate::{app, output, Global, EXIT_OK};

/// Show the server's version, application counts, applications and Service addresses
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  slipway status
  slipway status --output json
  SLIPWAY_SERVER=http://10.0.0.5:7070 SLIPWAY_TOKEN=... slipway status")]
pub struct StatusArgs {
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Run `slipway status`.
pub fn run(args: &StatusArgs, _global: &Global) -> anyhow::Result<u8> {
    let client = Client::new(&args.server)?;
    let status: StatusReport = client.get("/api/v1/status")?;
    if args.output == Output::Json {
        output::print(&json_text(&status)?)?;
        return Ok(EXIT_OK);
    }
    let apps: Vec<AppSummary> = client.get("/api/v1/applications")?;
    output::print(&status_text(&args.server.server, &status, &apps))?;
    Ok(EXIT_OK)
}

fn counts(map: &std::collections::BTreeMap<String, usize>) -> String {
    map.iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn status_text(server: &str, status: &StatusReport, apps: &[AppSummary]) -> String {
    let mut out = format!(
        "Slipway {} at {server}, data in {}\n",
        status.version,
        status.data_dir.display()
    );
    let a = &status.applications;
    out.push_str(&format!("Applications: {}", a.total));
    if a.total > 0 {
        out.push_str(&format!(" ({}; {})", counts(&a.sync), counts(&a.health)));
    }
    out.push('\n');
    if !apps.is_empty() {
        out.push('\n');
        out.push_str(&app::list_table(apps));
    }
    let rows: Vec<Vec<String>> = status
        .services
        .iter()
        .flat_map(|s| {
            s.ports.iter().map(move |p| {
                vec![
                    s.application.clone(),
                    s.namespace.clone(),
                    s.name.clone(),
                    p.name.clone(),
                    format!("http://{}", p.address),
                ]
            })
        })
        .collect();
    if !rows.is_empty() {
        out.push('\n');
        out.push_str(&table(
            &["APPLICATION", "NAMESPACE", "SERVICE", "PORT", "ADDRESS"],
            &rows,
        ));
    }
    out
}
