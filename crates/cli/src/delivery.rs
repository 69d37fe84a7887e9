//! `slipway delivery list|get` and `slipway promote`: Deliveries of a running `slipway up`,
//! through its API; and the delivery controller `slipway up` starts.

use std::sync::Arc;

use clap::{Args, Subcommand};
use slipway_delivery::{
    DeliveryConfig, DeliveryController, DeliveryHandle, DeliveryStatus, PromoteOutcome,
    PromoteRequest, Services,
};
use slipway_reconcile::ControllerHandle;
use slipway_server::DeliveryDetail;
use slipway_store::Store;

use crate::api_client::{segment, short, show, table, Client, Output, ServerArgs};
use crate::{output, Global, EXIT_OK};

/// Deliveries of a running `slipway up`: the stages an image goes through, what each runs,
/// verified or not, and what waits for promotion
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  slipway delivery list
  slipway delivery get hello
  slipway delivery get hello -o json | jq '.stages[] | {name, digest, phase}'")]
pub struct DeliveryArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(subcommand)]
    pub command: DeliveryCommand,
}

/// The `delivery` verbs.
#[derive(Debug, Subcommand)]
pub enum DeliveryCommand {
    /// List Deliveries with the digest and phase of every stage
    List(ListArgs),
    /// Show one Delivery: stages, recent verifications and promotions
    Get(GetArgs),
}

/// `delivery list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// `delivery get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The Delivery's name
    pub name: String,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Promote the digest verified in the previous stage into STAGE of DELIVERY, by a commit
///
/// The commit sets the image in the stage's overlay and says who approved it
/// (`Approved-by: NAME (manual)`). Refused when the digest is not verified in the previous
/// stage, already in STAGE, or the stage's promotion is not `manual`; --force promotes
/// anyway in the first and last case (the commit then says `(manual, forced)`), never a digest
/// that is already there.
#[derive(Debug, Args)]
#[command(after_help = "\
Exit status: 0 promoted, 2 refused or failed (the message says why).

Examples:
  slipway promote hello production
  slipway promote hello production --digest sha256:0123... --as alice")]
pub struct PromoteArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The Delivery
    pub delivery: String,
    /// The stage the digest enters
    pub stage: String,
    /// The digest to promote (default: the one in the previous stage's overlay)
    #[arg(long, value_name = "DIGEST")]
    pub digest: Option<String>,
    /// Who approves (default: $USER)
    #[arg(long = "as", value_name = "NAME")]
    pub approver: Option<String>,
    /// Promote even when the stage is not manual or the digest is not verified
    #[arg(long)]
    pub force: bool,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// `slipway delivery ...`.
pub fn run(args: &DeliveryArgs, _global: &Global) -> anyhow::Result<u8> {
    let client = Client::new(&args.server)?;
    match &args.command {
        DeliveryCommand::List(a) => show(
            &client,
            "/api/v1/deliveries",
            a.output,
            |rows: &Vec<DeliveryStatus>| list_table(rows),
        ),
        DeliveryCommand::Get(a) => show(
            &client,
            &format!("/api/v1/deliveries/{}", segment(&a.name)),
            a.output,
            detail_text,
        ),
    }
}

/// `slipway promote ...`.
pub fn promote(args: &PromoteArgs, _global: &Global) -> anyhow::Result<u8> {
    let client = Client::new(&args.server)?;
    let approver = args
        .approver
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    let body = PromoteRequest {
        digest: args.digest.clone(),
        approver,
        force: args.force,
    };
    let path = format!(
        "/api/v1/deliveries/{}/stages/{}/promote",
        segment(&args.delivery),
        segment(&args.stage)
    );
    let out: PromoteOutcome = client.post(&path, &body)?;
    output::print(&match args.output {
        Output::Json => crate::api_client::json_text(&out)?,
        Output::Table => format!(
            "promoted {} {} to {} in {} on {}\n",
            out.delivery,
            short_digest(&out.digest),
            out.stage,
            short(&out.commit),
            out.branch
        ),
    })?;
    Ok(EXIT_OK)
}

fn short_digest(d: &str) -> String {
    slipway_delivery::plan::short_digest(d)
}

fn list_table(rows: &[DeliveryStatus]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .flat_map(|d| {
            if let Some(e) = &d.error {
                return vec![vec![
                    d.name.clone(),
                    "-".into(),
                    "-".into(),
                    "Error".into(),
                    e.lines().next().unwrap_or_default().to_string(),
                ]];
            }
            d.stages
                .iter()
                .map(|s| {
                    vec![
                        d.name.clone(),
                        s.name.clone(),
                        s.digest.as_deref().map_or("-".into(), short_digest),
                        format!("{:?}", s.phase),
                        s.message.clone(),
                    ]
                })
                .collect()
        })
        .collect();
    table(&["DELIVERY", "STAGE", "DIGEST", "PHASE", "MESSAGE"], &rows)
}

fn detail_text(d: &DeliveryDetail) -> String {
    let s = &d.status;
    let mut out = format!("Name:        {}\nFile:        {}\n", s.name, s.file);
    if let Some(e) = &s.error {
        out.push_str(&format!("Error:       {e}\n"));
        return out;
    }
    out.push_str(&format!("Image:       {} ({})\n", s.repository, s.image));
    if let Some(r) = &s.revision {
        out.push_str(&format!("Revision:    {}\n", short(r)));
    }
    out.push('\n');
    let rows: Vec<Vec<String>> = s
        .stages
        .iter()
        .map(|st| {
            vec![
                st.name.clone(),
                st.application.clone(),
                st.promotion.map_or("-".into(), |p| p.to_string()),
                st.digest.as_deref().map_or("-".into(), short_digest),
                format!("{:?}", st.phase),
                match &st.error {
                    Some(e) => format!("{} (error: {e})", st.message),
                    None => st.message.clone(),
                },
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "STAGE",
            "APPLICATION",
            "PROMOTION",
            "DIGEST",
            "PHASE",
            "MESSAGE",
        ],
        &rows,
    ));
    if !d.verifications.is_empty() {
        out.push_str("\nVerifications:\n");
        for v in &d.verifications {
            let v = &v.verification;
            out.push_str(&format!(
                "  {} {} {}: {}\n",
                v.stage,
                short_digest(&v.digest),
                if v.passed { "passed" } else { "FAILED" },
                v.summary
            ));
        }
    }
    if !d.promotions.is_empty() {
        out.push_str("\nPromotions:\n");
        for p in &d.promotions {
            let p = &p.promotion;
            out.push_str(&format!(
                "  {} {} from {} in {} on {} ({}, {})\n",
                p.stage,
                short_digest(&p.digest),
                p.from_stage,
                short(&p.commit),
                p.branch,
                p.policy,
                p.approver
            ));
        }
    }
    out
}

/// The delivery controller of `slipway up` over the GitOps repository `repo` (a path, where
/// promotion commits are made, or a URL, whose clone under `data_dir/git` they are made in
/// and pushed from). One that cannot start is a warning: the rest of Slipway goes on.
pub async fn start(
    repo: &str,
    revision: &str,
    apps_path: &str,
    data_dir: &std::path::Path,
    gitops: &ControllerHandle,
    services: Arc<dyn Services>,
    store: &Store,
) -> Option<DeliveryHandle> {
    let config = DeliveryConfig::new(repo, revision, apps_path, data_dir);
    match DeliveryController::start(config, Arc::new(gitops.clone()), services, store.clone()).await
    {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!("deliveries are not followed: {e}");
            None
        }
    }
}
