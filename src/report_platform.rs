//! The platform sections of the quarterly review (filled from the platform metrics).

use crate::config::MetricsConfig;
use crate::domain::period::Calendar;
use crate::metrics::Computed;
use crate::report::Table;

pub fn tables(
    _c: &Computed,
    _cfg: &MetricsConfig,
    _cal: &Calendar,
    _period: &str,
    _team: Option<&str>,
) -> Result<Vec<Table>, String> {
    Ok(Vec::new())
}
