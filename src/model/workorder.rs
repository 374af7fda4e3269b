//! Hazard work orders (隐患整改): a fire-safety hazard that stays open becomes a task for the
//! building's fire-safety manager, with a deadline. `open` → (manager) rectified →
//! (operator) accepted: `closed`, or sent back (退回): `open` again. A deadline that passes
//! while the order is `open` marks it overdue, once.

use super::{rfc3339, Millis};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Where a work order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkorderStatus {
    /// Waiting for the manager to rectify the hazard (also after being sent back).
    Open,
    /// The manager says it is rectified; an operator checks.
    Rectified,
    /// An operator accepted the rectification.
    Closed,
}

impl WorkorderStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [WorkorderStatus; 3] = [
        WorkorderStatus::Open,
        WorkorderStatus::Rectified,
        WorkorderStatus::Closed,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            WorkorderStatus::Open => "open",
            WorkorderStatus::Rectified => "rectified",
            WorkorderStatus::Closed => "closed",
        }
    }
}

wire_enum!(WorkorderStatus);

/// A step of the lifecycle, asked for by a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The manager reports the hazard rectified.
    Rectify,
    /// An operator accepts the rectification.
    Accept,
    /// An operator sends it back.
    SendBack,
}

impl Step {
    /// The status after the step, or why the step does not fit `from` (a conflict).
    pub fn apply(self, from: WorkorderStatus) -> Result<WorkorderStatus, String> {
        match (self, from) {
            (Step::Rectify, WorkorderStatus::Open) => Ok(WorkorderStatus::Rectified),
            (Step::Accept, WorkorderStatus::Rectified) => Ok(WorkorderStatus::Closed),
            (Step::SendBack, WorkorderStatus::Rectified) => Ok(WorkorderStatus::Open),
            (Step::Rectify, s) => Err(format!("is {s}, only open work orders can be rectified")),
            (_, s) => Err(format!(
                "is {s}, only rectified work orders can be verified"
            )),
        }
    }

    /// The history entry it writes.
    pub const fn what(self) -> &'static str {
        match self {
            Step::Rectify => "rectified",
            Step::Accept => "accepted",
            Step::SendBack => "sent_back",
        }
    }
}

/// One work order.
#[derive(Debug, Clone, PartialEq)]
pub struct Workorder {
    /// Numeric id (shown as `w-000001`).
    pub id: i64,
    /// The alert it was raised for, if any.
    pub alert: Option<i64>,
    /// Building.
    pub building: String,
    /// The alert's rule, if any.
    pub rule: Option<String>,
    /// What is to be rectified.
    pub description: String,
    /// A photo of the hazard.
    pub photo_url: Option<String>,
    /// Where it stands.
    pub status: WorkorderStatus,
    /// Raised automatically (an open hazard alert), not by a person.
    pub auto: bool,
    /// Created.
    pub created_at: Millis,
    /// By whom (`firewatch` when automatic).
    pub created_by: String,
    /// To be rectified by.
    pub deadline_at: Millis,
    /// When the deadline passed while it was open.
    pub overdue_at: Option<Millis>,
    /// Last reported rectified.
    pub rectified_at: Option<Millis>,
    /// By whom.
    pub rectified_by: Option<String>,
    /// Closed.
    pub closed_at: Option<Millis>,
    /// By whom.
    pub closed_by: Option<String>,
    /// Last change.
    pub updated_at: Millis,
}

/// Formats a work order id.
pub fn workorder_id(id: i64) -> String {
    format!("w-{id:06}")
}

/// Parses `w-000001` (or `1`).
pub fn parse_workorder_id(s: &str) -> Option<i64> {
    s.strip_prefix("w-")
        .unwrap_or(s)
        .parse()
        .ok()
        .filter(|n| *n > 0)
}

impl Workorder {
    /// The API's JSON.
    pub fn to_json(&self) -> Value {
        let t = |v: Option<Millis>| v.map(rfc3339);
        json!({
            "id": workorder_id(self.id),
            "alert": self.alert.map(super::alert::alert_id),
            "building": self.building,
            "rule": self.rule,
            "description": self.description,
            "photo_url": self.photo_url,
            "status": self.status.as_str(),
            "auto": self.auto,
            "created_at": rfc3339(self.created_at),
            "created_by": self.created_by,
            "deadline_at": rfc3339(self.deadline_at),
            "overdue": self.overdue_at.is_some(),
            "overdue_at": t(self.overdue_at),
            "rectified_at": t(self.rectified_at),
            "rectified_by": self.rectified_by,
            "closed_at": t(self.closed_at),
            "closed_by": self.closed_by,
            "updated_at": rfc3339(self.updated_at),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifecycle_allows_only_its_own_steps() {
        use WorkorderStatus::*;
        assert_eq!(Step::Rectify.apply(Open), Ok(Rectified));
        assert_eq!(Step::Accept.apply(Rectified), Ok(Closed));
        assert_eq!(Step::SendBack.apply(Rectified), Ok(Open));
        assert!(Step::Rectify.apply(Rectified).is_err());
        assert!(Step::Rectify.apply(Closed).is_err());
        assert!(Step::Accept.apply(Open).is_err());
        assert!(Step::SendBack.apply(Closed).is_err());
    }

    #[test]
    fn ids_read_back() {
        assert_eq!(workorder_id(7), "w-000007");
        assert_eq!(parse_workorder_id("w-000007"), Some(7));
        assert_eq!(parse_workorder_id("7"), Some(7));
        assert_eq!(parse_workorder_id("w-0"), None);
        for s in WorkorderStatus::ALL {
            assert_eq!(s.as_str().parse::<WorkorderStatus>(), Ok(s));
        }
    }
}
