//! Observe (being written).
