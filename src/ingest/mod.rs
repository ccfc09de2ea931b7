//! Ingest (being written).
