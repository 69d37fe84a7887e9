//! Secret masking (being written).
