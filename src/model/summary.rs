//! Daily summaries (每日汇总) to a building's fire-safety manager: what one says is fixed when it
//! is made (a snapshot in the store, rendered by each channel when it sends), and why it was
//! made.

/// Why a summary was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SummaryReason {
    /// The daily schedule (`summary.at`, local time): at most one per building and local day.
    Scheduled,
    /// Someone asked (`POST /api/v1/summaries/send`).
    OnDemand,
}

impl SummaryReason {
    /// Every reason.
    pub const ALL: [SummaryReason; 2] = [SummaryReason::Scheduled, SummaryReason::OnDemand];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            SummaryReason::Scheduled => "scheduled",
            SummaryReason::OnDemand => "on_demand",
        }
    }
}

wire_enum!(SummaryReason);

/// The id people read: `s-000001`.
pub fn summary_id(id: i64) -> String {
    format!("s-{id:06}")
}

/// Parses `s-000001` (or `1`).
pub fn parse_summary_id(s: &str) -> Option<i64> {
    s.strip_prefix("s-")
        .unwrap_or(s)
        .parse()
        .ok()
        .filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_reasons_read_back() {
        assert_eq!(summary_id(12), "s-000012");
        assert_eq!(parse_summary_id("s-000012"), Some(12));
        assert_eq!(parse_summary_id("12"), Some(12));
        assert_eq!(parse_summary_id("s-0"), None);
        assert_eq!(parse_summary_id("w-000001"), None);
        for r in SummaryReason::ALL {
            assert_eq!(r.as_str().parse::<SummaryReason>(), Ok(r));
        }
    }
}
