//! `slipway logs <app>`: the captured output of an application's replicas.

use clap::Args;

use crate::api_client::{segment, Client, ServerArgs};
use crate::{Global, EXIT_OK};

/// Print an application's logs (every replica, every container)
///
/// Each line is `<pod>/<container> <stream> <line>`, stream being stdout or stderr.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  slipway logs hello
  slipway logs hello --tail 20 --follow
  slipway logs hello | grep stderr")]
pub struct LogsArgs {
    /// Application name
    pub name: String,
    /// Keep printing new lines as they are written (Ctrl-C to stop)
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Start with only the last N lines of each container
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Run `slipway logs`.
pub fn run(args: &LogsArgs, _global: &Global) -> anyhow::Result<u8> {
    let client = Client::new(&args.server)?;
    let mut path = format!("/api/v1/applications/{}/logs", segment(&args.name));
    let mut query = Vec::new();
    if args.follow {
        query.push("follow=true".to_string());
    }
    if let Some(n) = args.tail {
        query.push(format!("tail={n}"));
    }
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query.join("&"));
    }
    client.stream_to_stdout(&path)?;
    Ok(EXIT_OK)
}
