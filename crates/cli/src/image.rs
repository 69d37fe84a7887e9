//! `slipway image ...` (being built).

use clap::Subcommand;

use crate::Global;

/// `slipway image` verbs.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {}

/// Run a `slipway image` verb.
pub fn run(cmd: &ImageCommand, _global: &Global) -> anyhow::Result<u8> {
    match *cmd {}
}
