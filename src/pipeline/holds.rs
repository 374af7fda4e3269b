//! (added) The stages that keep an alert quiet besides silences, between the alert lifecycle
//! and the outbox (the order of Alertmanager's pipeline: inhibit, then silence, then group):
//!
//! - **Inhibition by topology** (rules `[[inhibit]]`): while an alert of a source rule is open
//!   and active, a new alert of a target rule in its scope (a device behind the source's device,
//!   registry `via`; or the same building) is recorded, marked inhibited and told to nobody.
//!   The source is the one "link down" or "mains failed" alert people get.
//! - **Shielded points**: an alert on a point the transmitter reported shielded is recorded,
//!   marked and told to nobody until the point is unshielded.
//! - **Release**: at every tick, holds whose source alert cleared or was closed, or whose shield
//!   ended, are released; what is still open and active is notified then.
//! - **Flapping** (rules `[flapping]`): an alert that fires more than `changes` times within
//!   `window_s` is marked flapping, and that change is told (with the mark); its further clears
//!   and re-fires are told to nobody until it has not changed for `stable_s`, when its state
//!   then is told.
//!
//! The decisions are pure reads of the store inside the pipeline's transaction, so sources
//! opened earlier in the same batch count (the batch applies source rules' transitions first).

use crate::model::alert::{Alert, Transition};
use crate::model::{Kind, Millis};
use crate::registry::Registry;
use crate::rules::{FlappingRule, InhibitRule, Rules, Scope};
use crate::store::holds::{self, Hold, Why};
use crate::store::StoreError;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::{HashMap, HashSet, VecDeque};

/// The quiet stages' settings and memory.
#[derive(Debug, Default)]
pub struct Quiet {
    inhibit: Vec<InhibitRule>,
    sources: HashSet<String>,
    /// Rules of the `shield` event: their alerts are about the shield itself.
    shield_rules: HashSet<String>,
    flapping: FlappingRule,
    /// Recent fires of each alert (within the window).
    fires: HashMap<i64, VecDeque<Millis>>,
    /// Flapping alerts: alert → (last change, changes).
    flaps: HashMap<i64, holds::Flap>,
}

/// What the flapping stage says of a fire or clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flap {
    /// Not flapping: told as usual.
    Normal,
    /// It just became flapping: told, with the mark.
    Marked,
    /// Flapping: recorded, told to nobody.
    Quiet,
}

impl Quiet {
    /// The stages for `rules`, with the flapping marks in the store.
    pub fn load(c: &Connection, rules: &Rules) -> Result<Quiet, StoreError> {
        let mut q = Quiet::default();
        q.set_rules(rules);
        q.flaps = holds::flapping(c)?
            .into_iter()
            .map(|f| (f.alert, f))
            .collect();
        Ok(q)
    }

    /// New rules (a reload).
    pub fn set_rules(&mut self, rules: &Rules) {
        self.inhibit = rules.inhibit.clone();
        self.sources = rules
            .inhibit
            .iter()
            .flat_map(|r| r.source.iter().cloned())
            .collect();
        self.shield_rules = rules
            .event
            .iter()
            .filter(|r| r.events.iter().any(|e| e == "shield"))
            .map(|r| r.id.clone())
            .collect();
        self.flapping = rules.flapping.clone();
    }

    /// Puts the transitions of source rules first (keeping every key's own order), so a
    /// gateway's offline alert exists before those of the devices behind it in one batch.
    pub fn sources_first(&self, transitions: &mut [Transition]) {
        if !self.sources.is_empty() {
            transitions.sort_by_key(|t| !self.sources.contains(&t.rule));
        }
    }

    /// What holds a firing alert back, if anything: an inhibiting alert, or its shielded point.
    pub fn hold_for(
        &self,
        c: &Connection,
        registry: &Registry,
        a: &Alert,
        at: Millis,
    ) -> Result<Option<Hold>, StoreError> {
        for r in self.inhibit.iter().filter(|r| r.target.contains(&a.rule)) {
            if let Some(p) = r.power {
                if registry.device(&a.device).and_then(|d| d.power) != Some(p) {
                    continue;
                }
            }
            if let Some(source) = source_of(c, registry, r, a)? {
                return Ok(Some(Hold {
                    alert: a.id,
                    why: Why::Inhibited,
                    source: source.to_string(),
                    reason: r.name.clone(),
                    since: at,
                }));
            }
        }
        if let (Kind::Transmitter, Some(ch)) = (a.kind, a.channel.as_deref()) {
            if !self.shield_rules.contains(&a.rule) && holds::is_shielded(c, &a.device, ch)? {
                return Ok(Some(Hold {
                    alert: a.id,
                    why: Why::Shielded,
                    source: holds::point_key(&a.device, ch),
                    reason: "shield".into(),
                    since: at,
                }));
            }
        }
        Ok(None)
    }

    /// A fire (`fired`) or clear of alert `id` at `at`: whether it is told.
    pub fn on_change(&mut self, id: i64, fired: bool, at: Millis) -> Flap {
        let f = &self.flapping;
        if f.changes == 0 {
            return Flap::Normal;
        }
        if let Some(m) = self.flaps.get_mut(&id) {
            m.last_change = m.last_change.max(at);
            m.changes += 1;
            return Flap::Quiet;
        }
        if !fired {
            return Flap::Normal;
        }
        let window = (f.window_s * 1000.0) as Millis;
        let fires = self.fires.entry(id).or_default();
        fires.push_back(at);
        while fires.front().is_some_and(|t| *t <= at - window) {
            fires.pop_front();
        }
        if fires.len() as u64 <= u64::from(f.changes) {
            return Flap::Normal;
        }
        let changes = fires.len() as i64;
        self.fires.remove(&id);
        self.flaps.insert(
            id,
            holds::Flap {
                alert: id,
                since: at,
                last_change: at,
                changes,
            },
        );
        Flap::Marked
    }

    /// The mark of a flapping alert, to be written.
    pub fn flap(&self, id: i64) -> Option<&holds::Flap> {
        self.flaps.get(&id)
    }

    /// Flapping alerts stable since `stable_s` at `now`: taken out of memory. Fire times of
    /// alerts quiet for a window are forgotten.
    pub fn settled(&mut self, now: Millis) -> Vec<i64> {
        let f = &self.flapping;
        let stable = (f.stable_s * 1000.0) as Millis;
        let window = (f.window_s * 1000.0) as Millis;
        let mut out: Vec<i64> = self
            .flaps
            .values()
            .filter(|m| m.last_change <= now - stable)
            .map(|m| m.alert)
            .collect();
        out.sort_unstable();
        for id in &out {
            self.flaps.remove(id);
        }
        self.fires
            .retain(|_, t| t.back().is_some_and(|last| *last > now - window));
        out
    }
}

/// The open, active alert of one of `r`'s source rules that explains `a`, if there is one.
fn source_of(
    c: &Connection,
    registry: &Registry,
    r: &InhibitRule,
    a: &Alert,
) -> Result<Option<i64>, StoreError> {
    match r.scope {
        Scope::Via => {
            let Some(via) = registry.device(&a.device).and_then(|d| d.via.as_deref()) else {
                return Ok(None);
            };
            let mut st = c.prepare_cached(
                "SELECT id FROM alerts WHERE rule = ?1 AND device = ?2 AND status != 'closed'
                 AND active = 1 AND id != ?3 ORDER BY id LIMIT 1",
            )?;
            for rule in &r.source {
                let id: Option<i64> = st
                    .query_row(params![rule, via, a.id], |row| row.get(0))
                    .optional()?;
                if id.is_some() {
                    return Ok(id);
                }
            }
            Ok(None)
        }
        Scope::Building => {
            // The earliest: of two alerts of one rule, the first holds the second back.
            let mut st = c.prepare_cached(
                "SELECT id FROM alerts WHERE building = ?1 AND id < ?3 AND rule = ?2
                 AND status != 'closed' AND active = 1 ORDER BY id LIMIT 1",
            )?;
            let mut best: Option<i64> = None;
            for rule in &r.source {
                let id: Option<i64> = st
                    .query_row(params![a.building, rule, a.id], |row| row.get(0))
                    .optional()?;
                best = match (best, id) {
                    (Some(b), Some(i)) => Some(b.min(i)),
                    (b, i) => b.or(i),
                };
            }
            Ok(best)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet(changes: u32) -> Quiet {
        Quiet {
            flapping: FlappingRule {
                changes,
                window_s: 600.0,
                stable_s: 300.0,
            },
            ..Quiet::default()
        }
    }

    const MIN: Millis = 60_000;

    #[test]
    fn flapping_after_more_than_n_fires_in_the_window_then_stable() {
        let mut q = quiet(3);
        // Three fire/clear cycles in 10 min: still normal.
        for i in 0..3 {
            assert_eq!(q.on_change(7, true, i * 2 * MIN), Flap::Normal);
            assert_eq!(q.on_change(7, false, i * 2 * MIN + MIN), Flap::Normal);
        }
        // The fourth fire within the window marks it, and what follows is quiet.
        assert_eq!(q.on_change(7, true, 6 * MIN), Flap::Marked);
        assert_eq!(q.flap(7).map(|f| f.changes), Some(4));
        assert_eq!(q.on_change(7, false, 7 * MIN), Flap::Quiet);
        assert_eq!(q.on_change(7, true, 8 * MIN), Flap::Quiet);
        assert_eq!(
            q.flap(7).map(|f| (f.changes, f.last_change)),
            Some((6, 8 * MIN))
        );
        // Not stable yet 4 min 59 s after the last change; stable at 5 min.
        assert!(q.settled(13 * MIN - 1).is_empty());
        assert_eq!(q.settled(13 * MIN), vec![7]);
        assert!(q.flap(7).is_none());
        // Re-armed: a single fire is told again.
        assert_eq!(q.on_change(7, true, 14 * MIN), Flap::Normal);
    }

    #[test]
    fn fires_spread_wider_than_the_window_never_flap() {
        let mut q = quiet(2);
        for i in 0..10 {
            // One fire every 6 min: at most 2 in any 10-min window.
            assert_eq!(q.on_change(1, true, i * 6 * MIN), Flap::Normal, "fire {i}");
            assert_eq!(q.on_change(1, false, i * 6 * MIN + MIN), Flap::Normal);
        }
    }

    #[test]
    fn off_when_changes_is_zero() {
        let mut q = quiet(0);
        for i in 0..50 {
            assert_eq!(q.on_change(1, i % 2 == 0, i * 1000), Flap::Normal);
        }
    }
}
