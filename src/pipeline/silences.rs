//! (added) The silence stage between the alert lifecycle and the outbox: the silences in
//! force and the alerts they hold back, in memory, written through to the store in the
//! pipeline's transactions. A new alert a silence covers is recorded and marked, and nobody is
//! told (nor escalated to); when the silence stops covering it (its end, the end of its weekly
//! window, an early expiry) the mark goes, and with `notify_on_exit` an alert still open and
//! active is notified then, and its escalation starts.

use crate::model::alert::Alert;
use crate::model::silence::{Silence, State};
use crate::model::Millis;
use crate::store::{self, StoreError};
use rusqlite::Connection;
use std::collections::HashMap;

/// What went wrong with a silence request (the caller's mistakes).
#[derive(Debug)]
pub enum SilenceError {
    /// No such silence.
    NotFound(String),
    /// It is over already.
    Expired(String),
    /// The store failed.
    Store(StoreError),
}

/// A silence request from the API.
#[derive(Debug)]
pub enum SilenceOp {
    /// Set a new one (already validated).
    Create(Silence),
    /// End one now.
    Expire {
        /// Which.
        id: i64,
        /// Who.
        by: String,
    },
}

/// The answer: the silence as stored.
pub type SilenceReply = tokio::sync::oneshot::Sender<Result<Silence, SilenceError>>;

/// The silences in force and the alerts they hold back.
#[derive(Debug, Default)]
pub struct Silences {
    list: Vec<Silence>,
    /// Held-back alert → its silence.
    held: HashMap<i64, i64>,
}

impl Silences {
    /// Loads what is in force at `now`, and every mark.
    pub fn load(c: &Connection, now: Millis) -> Result<Silences, StoreError> {
        let mut list = store::silences::in_force(c, now)?;
        let held: HashMap<i64, i64> = store::silences::marks(c)?.into_iter().collect();
        // A silence that ended while firewatch was stopped still releases what it held.
        for sid in held.values() {
            if !list.iter().any(|s| s.id == *sid) {
                if let Some(s) = store::silences::get(c, *sid)? {
                    list.push(s);
                }
            }
        }
        list.sort_by_key(|s| std::cmp::Reverse(s.id));
        list.dedup_by_key(|s| s.id);
        Ok(Silences { list, held })
    }

    /// The silence covering `alert` at `at`, if one does (the oldest).
    pub fn covering(&self, a: &Alert, at: Millis) -> Option<&Silence> {
        self.list.iter().rev().find(|s| s.covers(a, at))
    }

    /// Whether a silence holds `alert` back now.
    pub fn holds(&self, alert: i64) -> bool {
        self.held.contains_key(&alert)
    }

    /// Records that `silence` holds `alert` back.
    pub fn hold(&mut self, alert: i64, silence: i64) {
        self.held.insert(alert, silence);
    }

    /// Applies a request in `tx`.
    pub fn apply(
        &mut self,
        tx: &Connection,
        op: SilenceOp,
        now: Millis,
    ) -> Result<Result<Silence, SilenceError>, StoreError> {
        match op {
            SilenceOp::Create(s) => {
                let s = store::silences::insert(tx, &s)?;
                self.list.insert(0, s.clone());
                Ok(Ok(s))
            }
            SilenceOp::Expire { id, by } => {
                let shown = crate::model::silence::silence_id(id);
                let Some(mut s) = store::silences::get(tx, id)? else {
                    return Ok(Err(SilenceError::NotFound(format!("no silence {shown}"))));
                };
                if s.state(now) == State::Expired {
                    return Ok(Err(SilenceError::Expired(format!(
                        "silence {shown} is over already"
                    ))));
                }
                s.expired_at = Some(now);
                s.expired_by = Some(by);
                store::silences::update(tx, &s)?;
                if let Some(m) = self.list.iter_mut().find(|m| m.id == id) {
                    *m = s.clone();
                }
                Ok(Ok(s))
            }
        }
    }

    /// The held-back alerts whose silence no longer covers them at `now`, with the silence
    /// and whether to notify them: taken out of the held set. Silences over for good are
    /// dropped from memory once they hold nothing back.
    pub fn releases(&mut self, now: Millis) -> Vec<(i64, i64, bool)> {
        let mut out = Vec::new();
        for (alert, sid) in &self.held {
            match self.list.iter().find(|s| s.id == *sid) {
                Some(s) if s.state(now) == State::Active => {}
                Some(s) => out.push((*alert, *sid, s.notify_on_exit)),
                None => out.push((*alert, *sid, false)),
            }
        }
        for (alert, _, _) in &out {
            self.held.remove(alert);
        }
        let held: std::collections::HashSet<i64> = self.held.values().copied().collect();
        self.list
            .retain(|s| s.state(now) != State::Expired || held.contains(&s.id));
        out.sort_unstable();
        out
    }
}
