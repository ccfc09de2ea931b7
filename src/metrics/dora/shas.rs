//! Look-ups by sha and by deployment id that keep no copy of the dataset's strings.

use crate::domain::Deployment;
use crate::metrics::frames::FastSet;
use std::borrow::Cow;

pub(super) fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Sorted (key, value) pairs answering exact and 7-39 hex prefix look-ups; values sorted by preference.
pub(super) struct ShaIndex<'a, T: Copy> {
    entries: Vec<(Cow<'a, str>, T)>,
}

pub(super) enum ShaMatch<T> {
    One(T),
    Ambiguous(usize),
    None,
}

/// The shortest sha prefix [`ShaIndex::find`] matches.
pub(super) const MIN_SHA_PREFIX: usize = 7;

impl<'a, T: Copy + Ord> ShaIndex<'a, T> {
    /// Keeps only the entries one of the lower-cased `wanted` shas can find (equal, or sharing its first
    /// [`MIN_SHA_PREFIX`] characters), so millions of record shas are hashed but never stored or sorted.
    pub(super) fn new(entries: impl Iterator<Item = (&'a Cow<'a, str>, T)>, wanted: &[String]) -> Self {
        let exact: FastSet<&str> = wanted.iter().map(String::as_str).collect();
        let prefixes: FastSet<&str> = wanted.iter().filter_map(|w| w.get(..MIN_SHA_PREFIX)).collect();
        let mut entries: Vec<(Cow<'a, str>, T)> = if wanted.is_empty() {
            Vec::new()
        } else {
            entries
                .filter(|(sha, _)| {
                    exact.contains(sha.as_ref()) || sha.get(..MIN_SHA_PREFIX).is_some_and(|p| prefixes.contains(p))
                })
                .map(|(sha, v)| (Cow::Borrowed(sha.as_ref()), v))
                .collect()
        };
        entries.sort();
        ShaIndex { entries }
    }
    pub(super) fn find(&self, sha: &str) -> ShaMatch<T> {
        let sha = sha.to_ascii_lowercase();
        let lo = self.entries.partition_point(|e| e.0.as_ref() < sha.as_str());
        if self.entries.get(lo).is_some_and(|e| e.0 == sha) {
            return ShaMatch::One(self.entries[lo].1);
        }
        if !(MIN_SHA_PREFIX..=39).contains(&sha.len()) || !is_hex(&sha) {
            return ShaMatch::None;
        }
        let mut distinct = 0;
        let mut first = None;
        let mut last_key: Option<&str> = None;
        for e in self.entries[lo..].iter().take_while(|e| e.0.starts_with(sha.as_str())) {
            if last_key != Some(e.0.as_ref()) {
                distinct += 1;
                last_key = Some(e.0.as_ref());
                if first.is_none() {
                    first = Some(e.1);
                }
            }
        }
        match (distinct, first) {
            (1, Some(v)) => ShaMatch::One(v),
            (0, _) | (_, None) => ShaMatch::None,
            (n, _) => ShaMatch::Ambiguous(n),
        }
    }
}

/// A deployment id's key in [`find_deployment`]'s table; equal keys are checked against the id itself.
pub(super) fn id_hash(id: &str) -> u64 {
    use std::hash::BuildHasher;
    static IDS: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x6465_706c_6f79_6964);
    IDS.hash_one(id)
}

/// The deployment with `id`, through the (id hash, index) pairs of `deps` sorted by hash.
pub(super) fn find_deployment(deps: &[Deployment], by_id: &[(u64, u32)], id: &str) -> Option<u32> {
    let h = id_hash(id);
    let p = by_id.partition_point(|e| e.0 < h);
    by_id[p..]
        .iter()
        .take_while(|e| e.0 == h)
        .map(|e| e.1)
        .find(|&d| deps[d as usize].id == id)
}
