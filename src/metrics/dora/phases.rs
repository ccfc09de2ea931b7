//! Seconds each part of a model build took.

/// Seconds each part of a model build took, logged at debug level: where a rebuild on a large organisation
/// spends its time is the first thing its speed work needs.
pub(super) struct Phases {
    start: std::time::Instant,
    laps: Vec<(&'static str, f64)>,
}

impl Default for Phases {
    fn default() -> Self {
        Phases {
            start: std::time::Instant::now(),
            laps: Vec::new(),
        }
    }
}

impl Phases {
    /// Ends the part called `name` now.
    pub(super) fn lap(&mut self, name: &'static str) {
        let now = self.start.elapsed().as_secs_f64();
        let before: f64 = self.laps.iter().map(|(_, s)| s).sum();
        self.laps.push((name, now - before));
    }
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (name, secs)) in self.laps.iter().enumerate() {
            write!(f, "{}{name} {secs:.2} s", if i == 0 { "" } else { ", " })?;
        }
        Ok(())
    }
}
