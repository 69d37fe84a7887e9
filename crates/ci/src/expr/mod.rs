//! `${{ }}` expressions (being written).
