//! Metric computation: pure polars functions (`fn(&DataFrame, &Params) -> PolarsResult<DataFrame>` at the
//! core), no I/O. [`Dataset`] is everything the store holds, loaded once per data version.

pub mod attribution;
pub mod catalog;
pub mod computed;
pub mod definitions;
pub mod dora;
pub mod frames;
pub mod levels;
pub mod scope;
pub mod stats;
pub use computed::Computed;

use crate::domain::*;
use crate::store::ServiceSnapshot;

/// Every live record, as loaded from the store (deduplicated, tombstones removed).
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    pub services: Vec<Service>,
    pub snapshots: Vec<ServiceSnapshot>,
    pub deployments: Vec<Deployment>,
    pub changes: Vec<Change>,
    pub incidents: Vec<Incident>,
    pub tickets: Vec<Ticket>,
    pub surveys: Vec<SurveyResponse>,
    pub pipeline_runs: Vec<PipelineRun>,
    pub self_service: Vec<SelfService>,
}

pub mod adoption;
pub mod common;
pub mod nps;
pub mod slo;
pub mod tickets;
pub mod ttfd;
