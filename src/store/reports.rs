//! Reports over a time window (`GET /api/v1/reports/…`): alerts per building and severity,
//! duty checks per control room, work orders per building. The SQL reads the rows; medians and worst cases are taken
//! here. Read-only.

use super::sql::{Db, Row};
use super::Result;
use crate::args;
use crate::model::{Millis, Severity};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Median and worst of durations (ms), as seconds.
fn median_worst(mut v: Vec<Millis>) -> (Option<f64>, Option<f64>) {
    if v.is_empty() {
        return (None, None);
    }
    v.sort_unstable();
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2] as f64
    } else {
        (v[n / 2 - 1] as f64 + v[n / 2] as f64) / 2.0
    };
    (Some(median / 1000.0), v.last().map(|w| *w as f64 / 1000.0))
}

/// Column `i`, a count, as `u64`.
fn count(r: &Row, i: usize) -> Result<u64> {
    Ok(r.get::<usize>(i)? as u64)
}

fn severity_rank(s: &str) -> u8 {
    match s.parse::<Severity>() {
        Ok(Severity::Critical) => 0,
        Ok(Severity::Major) => 1,
        Ok(Severity::Minor) => 2,
        Ok(Severity::Info) => 3,
        Err(_) => 4,
    }
}

/// One row of the alerts report: the alerts of one building and severity that fired in the
/// window.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    /// Building id.
    pub building: String,
    /// Severity.
    pub severity: String,
    /// Alerts that fired in the window.
    pub alerts: u64,
    /// Of them, acknowledged.
    pub acknowledged: u64,
    /// Time from firing to acknowledgement, median and worst (seconds).
    pub ack_median_s: Option<f64>,
    /// Worst.
    pub ack_worst_s: Option<f64>,
    /// Of them, closed.
    pub closed: u64,
    /// Time from firing to closing, median (seconds).
    pub close_median_s: Option<f64>,
    /// Worst.
    pub close_worst_s: Option<f64>,
    /// Alerts whose acknowledgement deadline passed (`sla_missed_at`).
    pub sla_missed: u64,
    /// `escalated` history entries of these alerts.
    pub escalations: u64,
    /// Work orders raised for these alerts that went past their deadline unrectified.
    pub workorders_overdue: u64,
}

impl AlertRow {
    /// The report's columns, in order (JSON keys and the CSV header).
    pub const COLUMNS: &'static [&'static str] = &[
        "building",
        "severity",
        "alerts",
        "acknowledged",
        "ack_median_s",
        "ack_worst_s",
        "closed",
        "close_median_s",
        "close_worst_s",
        "sla_missed",
        "escalations",
        "workorders_overdue",
    ];

    /// The row as JSON.
    pub fn json(&self) -> Value {
        let r = self;
        json!({
            "building": r.building, "severity": r.severity, "alerts": r.alerts,
            "acknowledged": r.acknowledged, "ack_median_s": r.ack_median_s,
            "ack_worst_s": r.ack_worst_s, "closed": r.closed,
            "close_median_s": r.close_median_s, "close_worst_s": r.close_worst_s,
            "sla_missed": r.sla_missed, "escalations": r.escalations,
            "workorders_overdue": r.workorders_overdue,
        })
    }

    /// The row's cells, in [`AlertRow::COLUMNS`] order.
    pub fn cells(&self) -> Vec<String> {
        let r = self;
        let num = cell;
        vec![
            r.building.clone(),
            r.severity.clone(),
            r.alerts.to_string(),
            r.acknowledged.to_string(),
            num(r.ack_median_s),
            num(r.ack_worst_s),
            r.closed.to_string(),
            num(r.close_median_s),
            num(r.close_worst_s),
            r.sla_missed.to_string(),
            r.escalations.to_string(),
            r.workorders_overdue.to_string(),
        ]
    }
}

/// A report cell of an optional number: empty when there is none.
pub fn cell(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// The alerts report: alerts that fired in `[from, until)` (their first `fired` history
/// entry), optionally of one building, per building and severity (critical first).
pub fn alerts(
    c: &dyn Db,
    from: Millis,
    until: Millis,
    building: Option<&str>,
) -> Result<Vec<AlertRow>> {
    // `started_at` ≤ the firing time, so it bounds the scan from above.
    let rows = c.rows(
        "SELECT a.building, a.severity, f.fired_at, a.acknowledged_at, a.closed_at,
                a.sla_missed_at IS NOT NULL,
                (SELECT count(*) FROM alert_history h WHERE h.alert_id = a.id
                    AND h.what = 'escalated'),
                (SELECT count(*) FROM workorders w WHERE w.alert_id = a.id
                    AND w.overdue_at IS NOT NULL)
         FROM alerts a JOIN (
             SELECT id, coalesce((SELECT min(h.at) FROM alert_history h
                 WHERE h.alert_id = x.id AND h.what = 'fired'), x.updated_at) AS fired_at
             FROM alerts x WHERE x.started_at < ?2 AND (?3 IS NULL OR x.building = ?3)
         ) f ON f.id = a.id
         WHERE f.fired_at >= ?1 AND f.fired_at < ?2",
        args![from, until, building],
    )?;
    type Raw = (
        String,
        String,
        Millis,
        Option<Millis>,
        Option<Millis>,
        bool,
        u64,
        u64,
    );
    let raws = rows
        .iter()
        .map(|r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                count(r, 6)?,
                count(r, 7)?,
            ))
        })
        .collect::<Result<Vec<Raw>>>()?;
    #[derive(Default)]
    struct Acc {
        alerts: u64,
        ack: Vec<Millis>,
        close: Vec<Millis>,
        sla: u64,
        esc: u64,
        overdue: u64,
    }
    let mut groups: BTreeMap<(String, u8, String), Acc> = BTreeMap::new();
    for (b, sev, fired, acked, closed, sla, esc, overdue) in raws {
        let rank = severity_rank(&sev);
        let g = groups.entry((b, rank, sev)).or_default();
        g.alerts += 1;
        if let Some(a) = acked {
            g.ack.push((a - fired).max(0));
        }
        if let Some(x) = closed {
            g.close.push((x - fired).max(0));
        }
        g.sla += u64::from(sla);
        g.esc += esc;
        g.overdue += overdue;
    }
    Ok(groups
        .into_iter()
        .map(|((building, _, severity), g)| {
            let (acknowledged, closed) = (g.ack.len() as u64, g.close.len() as u64);
            let (ack_median_s, ack_worst_s) = median_worst(g.ack);
            let (close_median_s, close_worst_s) = median_worst(g.close);
            AlertRow {
                building,
                severity,
                alerts: g.alerts,
                acknowledged,
                ack_median_s,
                ack_worst_s,
                closed,
                close_median_s,
                close_worst_s,
                sla_missed: g.sla,
                escalations: g.esc,
                workorders_overdue: g.overdue,
            }
        })
        .collect())
}

/// One row of the duty-check report: one control room's checks sent in the window.
#[derive(Debug, Clone, PartialEq)]
pub struct DutyCheckRow {
    /// Control-room id.
    pub control_room: String,
    /// Checks sent.
    pub checks: u64,
    /// Transmitters asked (one command each).
    pub sent: u64,
    /// Answered by the deadline.
    pub answered: u64,
    /// Answered after the deadline (the alert was raised).
    pub late: u64,
    /// Not answered, deadline passed.
    pub unanswered: u64,
    /// Not answered yet, deadline still ahead.
    pub waiting: u64,
    /// `answered` ÷ `sent`.
    pub answer_rate: Option<f64>,
    /// Answer delay of the answers (late ones included), median (seconds).
    pub delay_median_s: Option<f64>,
    /// Worst.
    pub delay_worst_s: Option<f64>,
}

/// The duty-check report: checks created in `[from, until)`, optionally of one room, per
/// control room. `now` decides which unanswered ones are still waiting.
pub fn duty_checks(
    c: &dyn Db,
    from: Millis,
    until: Millis,
    room: Option<&str>,
    now: Millis,
) -> Result<Vec<DutyCheckRow>> {
    let rows = c.rows(
        "SELECT k.room, k.id, c.answered_at, c.answer_delay_ms, d.deadline_at
         FROM duty_checks k
         JOIN duty_check_commands d ON d.check_id = k.id
         JOIN commands c ON c.id = d.command_id
         WHERE k.created_at >= ?1 AND k.created_at < ?2 AND (?3 IS NULL OR k.room = ?3)
         ORDER BY k.room, k.id",
        args![from, until, room],
    )?;
    type Raw = (String, i64, Option<Millis>, Option<i64>, Millis);
    let raws = rows
        .iter()
        .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .collect::<Result<Vec<Raw>>>()?;
    let mut groups: BTreeMap<String, (DutyCheckRow, Option<i64>, Vec<Millis>)> = BTreeMap::new();
    for (room, check, answered_at, delay, deadline_at) in raws {
        let (row, last, delays) = groups.entry(room.clone()).or_insert_with(|| {
            (
                DutyCheckRow {
                    control_room: room,
                    checks: 0,
                    sent: 0,
                    answered: 0,
                    late: 0,
                    unanswered: 0,
                    waiting: 0,
                    answer_rate: None,
                    delay_median_s: None,
                    delay_worst_s: None,
                },
                None,
                Vec::new(),
            )
        });
        if *last != Some(check) {
            row.checks += 1;
            *last = Some(check);
        }
        row.sent += 1;
        match answered_at {
            Some(a) if a <= deadline_at => row.answered += 1,
            Some(_) => row.late += 1,
            None if deadline_at <= now => row.unanswered += 1,
            None => row.waiting += 1,
        }
        if let Some(d) = delay.filter(|_| answered_at.is_some()) {
            delays.push(d);
        }
    }
    Ok(groups
        .into_values()
        .map(|(mut row, _, delays)| {
            row.answer_rate = (row.sent > 0).then(|| row.answered as f64 / row.sent as f64);
            (row.delay_median_s, row.delay_worst_s) = median_worst(delays);
            row
        })
        .collect())
}

/// One row of the work-order report: one building's work orders raised in the window.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkorderRow {
    /// Building id.
    pub building: String,
    /// Work orders raised.
    pub raised: u64,
    /// Of them, raised automatically for an open hazard alert.
    pub auto: u64,
    /// Of them, reported rectified at least once.
    pub rectified: u64,
    /// Times a rectification was sent back.
    pub sent_back: u64,
    /// Closed (accepted).
    pub closed: u64,
    /// Went past the deadline unrectified.
    pub overdue: u64,
    /// Not closed yet.
    pub open: u64,
    /// Time from raising to the first rectified report, median (seconds).
    pub rectify_median_s: Option<f64>,
    /// Worst.
    pub rectify_worst_s: Option<f64>,
    /// Time from raising to closing, median (seconds).
    pub close_median_s: Option<f64>,
    /// Worst.
    pub close_worst_s: Option<f64>,
}

/// The work-order report: orders raised in `[from, until)`, optionally of one building, per
/// building.
pub fn workorders(
    c: &dyn Db,
    from: Millis,
    until: Millis,
    building: Option<&str>,
) -> Result<Vec<WorkorderRow>> {
    let rows = c.rows(
        "SELECT w.building, w.auto, w.created_at, w.closed_at, w.overdue_at IS NOT NULL,
                (SELECT min(h.at) FROM workorder_history h WHERE h.workorder_id = w.id
                    AND h.what = 'rectified'),
                (SELECT count(*) FROM workorder_history h WHERE h.workorder_id = w.id
                    AND h.what = 'sent_back')
         FROM workorders w
         WHERE w.created_at >= ?1 AND w.created_at < ?2 AND (?3 IS NULL OR w.building = ?3)",
        args![from, until, building],
    )?;
    type Raw = (
        String,
        bool,
        Millis,
        Option<Millis>,
        bool,
        Option<Millis>,
        u64,
    );
    let raws = rows
        .iter()
        .map(|r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                count(r, 6)?,
            ))
        })
        .collect::<Result<Vec<Raw>>>()?;
    let mut groups: BTreeMap<String, (WorkorderRow, Vec<Millis>, Vec<Millis>)> = BTreeMap::new();
    for (b, auto, created, closed, overdue, rectified, sent_back) in raws {
        let (row, rect, close) = groups.entry(b.clone()).or_insert_with(|| {
            let row = WorkorderRow {
                building: b,
                raised: 0,
                auto: 0,
                rectified: 0,
                sent_back: 0,
                closed: 0,
                overdue: 0,
                open: 0,
                rectify_median_s: None,
                rectify_worst_s: None,
                close_median_s: None,
                close_worst_s: None,
            };
            (row, Vec::new(), Vec::new())
        });
        row.raised += 1;
        row.auto += u64::from(auto);
        row.overdue += u64::from(overdue);
        row.sent_back += sent_back;
        if let Some(r) = rectified {
            row.rectified += 1;
            rect.push((r - created).max(0));
        }
        match closed {
            Some(x) => {
                row.closed += 1;
                close.push((x - created).max(0));
            }
            None => row.open += 1,
        }
    }
    Ok(groups
        .into_values()
        .map(|(mut row, rect, close)| {
            (row.rectify_median_s, row.rectify_worst_s) = median_worst(rect);
            (row.close_median_s, row.close_worst_s) = median_worst(close);
            row
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_worst_in_seconds() {
        assert_eq!(median_worst(vec![]), (None, None));
        assert_eq!(median_worst(vec![3000, 1000, 2000]), (Some(2.0), Some(3.0)));
        assert_eq!(median_worst(vec![1000, 4000]), (Some(2.5), Some(4.0)));
    }
}
