//! The embedded driver (to be written).
