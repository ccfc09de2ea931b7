//! This process's memory and what the machine has left, from `/proc` and the cgroup (Linux). Elsewhere every
//! reading is `None`, and callers act as if memory were plentiful.

/// A `kB` line of `/proc/self/status` (`VmRSS`, `VmHWM`), in bytes.
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    kib_line(&status, field)
}

/// The value of `field:   N kB` in `text`, in bytes.
fn kib_line(text: &str, field: &str) -> Option<u64> {
    let line = text
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Resident memory now.
pub fn resident_bytes() -> Option<u64> {
    status_bytes("VmRSS")
}

/// The most this process has had resident.
pub fn peak_resident_bytes() -> Option<u64> {
    status_bytes("VmHWM")
}

/// What can still be allocated without swapping or the OOM killer: the kernel's `MemAvailable`, or less when a
/// cgroup (v2) limit is nearer.
pub fn available_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let machine = kib_line(&meminfo, "MemAvailable")?;
    let cgroup = (|| {
        let max = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok()?;
        let current = std::fs::read_to_string("/sys/fs/cgroup/memory.current").ok()?;
        let (max, current): (u64, u64) = (max.trim().parse().ok()?, current.trim().parse().ok()?);
        Some(max.saturating_sub(current))
    })();
    Some(cgroup.map_or(machine, |c| c.min(machine)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kib_lines_by_their_exact_field() {
        let text = "MemTotal:       24683520 kB\nMemFree:  100 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(kib_line(text, "MemAvailable"), Some(2048 * 1024));
        assert_eq!(kib_line(text, "MemFree"), Some(100 * 1024));
        assert_eq!(kib_line(text, "Mem"), None);
        assert_eq!(kib_line(text, "SwapTotal"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_and_the_machine_have_readings() {
        let rss = resident_bytes().expect("VmRSS");
        assert!(rss > 0 && rss <= peak_resident_bytes().expect("VmHWM"));
        assert!(available_bytes().expect("MemAvailable") > 0);
    }
}
