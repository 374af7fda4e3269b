//! Scheduled duty checks (查岗) of a control room: fixed local times and random times within
//! each shift. Pure: instants are parameters, and the random times come from a hash of
//! (room, shift, day, n), so every run (a restart included) picks the same ones.

use crate::model::Millis;

/// Default seconds a control room has to answer a duty check (the de-facto 10 minutes).
pub const DEFAULT_DEADLINE_S: u32 = 600;

/// Shortest and longest answer deadline.
pub const DEADLINE_RANGE_S: std::ops::RangeInclusive<u32> = 10..=86_400;

/// Random checks keep this far from a shift's start and end.
pub const SHIFT_MARGIN_MS: Millis = 15 * 60_000;

/// Most random checks per shift.
pub const MAX_RANDOM_PER_SHIFT: u32 = 24;

/// A control room's duty-check schedule (`[control_room.duty_check]`), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckPlan {
    /// Fixed local times, minutes after midnight, sorted.
    pub times: Vec<u16>,
    /// Random checks per shift occurrence.
    pub random_per_shift: u32,
    /// Seconds to answer.
    pub deadline_s: u32,
}

/// FNV-1a, 64 bit: stable across builds and platforms (unlike `std`'s hasher, whose
/// algorithm may change), which is what makes the random times reproducible.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.iter().chain(std::iter::once(&0xff)) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// The random check times of one shift occurrence `[start, end)` of `shift` in `room`,
/// starting on local date `day`: `n` whole minutes inside `[start + 15 min, end − 15 min]`,
/// sorted. Empty when the shift is too short for the margins.
pub fn random_times(
    room: &str,
    shift: &str,
    day: &str,
    start: Millis,
    end: Millis,
    n: u32,
) -> Vec<Millis> {
    let lo = start + SHIFT_MARGIN_MS;
    let hi = end - SHIFT_MARGIN_MS;
    if hi <= lo {
        return Vec::new();
    }
    let minutes = u64::try_from((hi - lo) / 60_000).unwrap_or(0) + 1;
    let mut v: Vec<Millis> = (0..n)
        .map(|i| {
            let h = fnv1a(&[
                room.as_bytes(),
                shift.as_bytes(),
                day.as_bytes(),
                &i.to_le_bytes(),
            ]);
            lo + i64::try_from(h % minutes).unwrap_or(0) * 60_000
        })
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_times_are_reproducible_and_keep_off_the_shift_edges() {
        let (s, e) = (1_000 * 60_000, 1_000 * 60_000 + 8 * 3_600_000);
        let a = random_times("cr-main", "day", "2026-11-29", s, e, 3);
        assert_eq!(a, random_times("cr-main", "day", "2026-11-29", s, e, 3));
        assert!(!a.is_empty());
        assert!(a
            .iter()
            .all(|t| *t >= s + SHIFT_MARGIN_MS && *t <= e - SHIFT_MARGIN_MS));
        assert!(a.iter().all(|t| t % 60_000 == 0));
        let b = random_times("cr-main", "day", "2026-11-30", s, e, 3);
        assert_ne!(a, b, "another day, other times");
        assert!(random_times("cr", "x", "d", s, s + 20 * 60_000, 2).is_empty());
    }
}
