//! Validated domain types: the records of METRICS.md, their kinds, timestamps, slugs and periods.
//! Parse, don't validate: wire objects become records only through [`records::parse`].

pub mod fields;
pub mod ids;
pub mod kind;
pub mod period;
pub mod records;
pub mod time;

pub use fields::{FieldError, Limits};
pub use kind::Kind;
pub use records::*;
pub use time::Ts;
