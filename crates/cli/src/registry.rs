//! `slipway registry ...` (being built).

use clap::Subcommand;

use crate::Global;

/// `slipway registry` verbs.
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {}

/// Run a `slipway registry` verb.
pub fn run(cmd: &RegistryCommand, _global: &Global) -> anyhow::Result<u8> {
    match *cmd {}
}
