//! Workflow files (being written).
