//! A set of `u64` kept as disjoint half-open ranges: sequence numbers delivered or refused.
//!
//! Runs of consecutive numbers cost one entry, so a stream that loses nothing costs one range
//! however long the soak runs; each gap adds one.

use std::collections::BTreeMap;
use std::ops::Range;

/// Disjoint, non-adjacent half-open ranges, keyed by start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Intervals {
    ranges: BTreeMap<u64, u64>,
}

impl Intervals {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `x` is in the set.
    pub fn contains(&self, x: u64) -> bool {
        self.ranges
            .range(..=x)
            .next_back()
            .is_some_and(|(_, &end)| x < end)
    }

    /// Adds `x`; returns `false` if it was already there.
    pub fn insert(&mut self, x: u64) -> bool {
        if self.contains(x) {
            return false;
        }
        self.insert_range(x..x.saturating_add(1));
        true
    }

    /// Adds every number of `range`, merging with neighbours.
    pub fn insert_range(&mut self, range: Range<u64>) {
        let (mut start, mut end) = (range.start, range.end);
        if start >= end {
            return;
        }
        // A range that starts at or before `start` and reaches it.
        if let Some((&s, &e)) = self.ranges.range(..=start).next_back()
            && e >= start
        {
            start = s;
            end = end.max(e);
        }
        // Ranges that start inside [start, end].
        let inside: Vec<(u64, u64)> = self
            .ranges
            .range(start..=end)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in inside {
            self.ranges.remove(&s);
            end = end.max(e);
        }
        self.ranges.insert(start, end);
    }

    /// Adds every number of `other`.
    pub fn extend(&mut self, other: &Self) {
        for r in other.iter() {
            self.insert_range(r);
        }
    }

    /// The ranges, in order.
    pub fn iter(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.ranges.iter().map(|(&s, &e)| s..e)
    }

    /// How many numbers the set holds.
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|(s, e)| e - s).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The smallest number, if any.
    pub fn min(&self) -> Option<u64> {
        self.ranges.keys().next().copied()
    }

    /// The largest number, if any.
    pub fn max(&self) -> Option<u64> {
        self.ranges.values().next_back().map(|e| e - 1)
    }

    /// How many numbers of `range` are in the set.
    pub fn count_in(&self, range: Range<u64>) -> u64 {
        self.iter()
            .map(|r| {
                let s = r.start.max(range.start);
                let e = r.end.min(range.end);
                e.saturating_sub(s)
            })
            .sum()
    }

    /// How many numbers are in both sets.
    pub fn count_common(&self, other: &Self) -> u64 {
        other.iter().map(|r| self.count_in(r)).sum()
    }

    /// The numbers of `self` that are not in `other`.
    pub fn minus(&self, other: &Self) -> Self {
        let mut out = Self::new();
        for r in self.iter() {
            let mut cursor = r.start;
            for o in other.iter() {
                if o.end <= cursor {
                    continue;
                }
                if o.start >= r.end {
                    break;
                }
                if o.start > cursor {
                    out.insert_range(cursor..o.start);
                }
                cursor = cursor.max(o.end);
                if cursor >= r.end {
                    break;
                }
            }
            if cursor < r.end {
                out.insert_range(cursor..r.end);
            }
        }
        out
    }

    /// Removes and returns every range (the set is empty afterwards).
    pub fn take(&mut self) -> Self {
        std::mem::take(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ranges: &[(u64, u64)]) -> Intervals {
        let mut s = Intervals::new();
        for &(a, b) in ranges {
            s.insert_range(a..b);
        }
        s
    }

    #[test]
    fn inserts_merge_and_detect_repeats() {
        let mut s = Intervals::new();
        assert!(s.insert(3));
        assert!(s.insert(5));
        assert!(!s.insert(3));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![3..4, 5..6]);
        assert!(s.insert(4));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![3..6]);
        s.insert_range(0..10);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0..10]);
        s.insert_range(12..14);
        s.insert_range(9..12);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0..14]);
        assert_eq!((s.len(), s.min(), s.max()), (14, Some(0), Some(13)));
    }

    #[test]
    fn difference_and_counts() {
        let a = set(&[(0, 10), (20, 30)]);
        let b = set(&[(2, 4), (8, 22), (29, 40)]);
        assert_eq!(
            a.minus(&b).iter().collect::<Vec<_>>(),
            vec![0..2, 4..8, 22..29]
        );
        assert_eq!(a.count_common(&b), 2 + 2 + 2 + 1);
        assert_eq!(a.count_in(5..25), 5 + 5);
        assert_eq!(a.minus(&Intervals::new()), a);
        assert!(Intervals::new().minus(&a).is_empty());
    }
}
