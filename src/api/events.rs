//! `GET /api/v1/events`: the change feed as Server-Sent Events, with resume.
//!
//! Each event carries `id:` (the change id), `event:` (the change type) and `data:` (the change
//! as JSON). A client that sends `Last-Event-ID: N` (browsers do on reconnect) or `?since=N`
//! first gets every stored change after `N`, in order, then the live ones. No gap and no
//! duplicate at the switch: the handler subscribes to the bus *before* it reads the store, and
//! skips live changes whose id it has already sent (every change is in the store before it is
//! on the bus). A subscriber that lags behind the bus catches up from the store the same way;
//! when what it missed was pruned it gets an `event: reset` instead (reload, then go on) —
//! never a silent gap.

use super::{ApiError, ApiState};
use crate::auth::Principal;
use crate::bus::{envelope, Published};
use crate::metrics::Metrics;
use crate::store::changes::{self, StoredChange};
use crate::store::{self, StoreError};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

/// Stored changes read per store query while catching up.
const PAGE: usize = 1000;
/// A comment line this often keeps proxies and clients from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Counts a connected subscriber for as long as it lives.
struct Subscribed(Arc<Metrics>);

impl Subscribed {
    fn new(m: &Arc<Metrics>) -> Subscribed {
        m.events_subscribers.fetch_add(1, Relaxed);
        Subscribed(Arc::clone(m))
    }
}

impl Drop for Subscribed {
    fn drop(&mut self) {
        self.0.events_subscribers.fetch_sub(1, Relaxed);
    }
}

/// What one read of the store gave.
enum Backlog {
    /// Changes after the cursor; `upto` is set when nothing more is stored (the cursor may move
    /// there: the rest of the ids up to it belong to other buildings).
    Page {
        rows: Vec<StoredChange>,
        upto: Option<i64>,
    },
    /// The changes after the cursor are gone (pruned) or the cursor is not one of this store's
    /// ids: the client must reload; it resumes after `newest`.
    Reset { reason: &'static str, newest: i64 },
}

/// Reads the next page after `last`, in one read transaction (one snapshot).
fn read_backlog(dir: &Path, last: i64, building: Option<&str>) -> Result<Backlog, StoreError> {
    let conn = store::open_reader(dir)?;
    conn.execute_batch("BEGIN")?;
    let span = changes::span(&conn)?;
    let out = if last > span.newest {
        Backlog::Reset {
            reason: "unknown_id",
            newest: span.newest,
        }
    } else if span.oldest > last.saturating_add(1) {
        Backlog::Reset {
            reason: "pruned",
            newest: span.newest,
        }
    } else {
        let rows = changes::after(&conn, last, building, PAGE)?;
        let upto = (rows.len() < PAGE).then_some(span.newest);
        Backlog::Page { rows, upto }
    };
    conn.execute_batch("COMMIT")?;
    Ok(out)
}

/// One event of the stream: `id:`, `event:`, `data:`.
#[derive(Debug, Clone, PartialEq)]
struct Item {
    id: i64,
    kind: String,
    data: Value,
}

impl Item {
    fn event(&self) -> Event {
        Event::default()
            .id(self.id.to_string())
            .event(&self.kind)
            .data(self.data.to_string())
    }

    fn stored(row: &StoredChange) -> Item {
        // Stored bodies were written by the pipeline from the type the bus carries; one that
        // no longer parses still goes out (as a string), so the id sequence has no hole.
        let body = serde_json::from_str::<Value>(&row.body).unwrap_or_else(|_| json!(row.body));
        Item {
            id: row.id,
            kind: row.kind.clone(),
            data: envelope(row.id, row.at, body),
        }
    }

    fn live(p: &Published) -> Item {
        Item {
            id: p.id,
            kind: p.change.kind().to_owned(),
            data: p.to_json(),
        }
    }
}

/// One subscriber's position in the feed.
struct Feed {
    dir: PathBuf,
    metrics: Arc<Metrics>,
    rx: broadcast::Receiver<Arc<Published>>,
    shutdown: CancellationToken,
    building: Option<String>,
    /// The last change id sent or passed over (filtered out).
    last: i64,
    /// Read the store from `last` before going on with the bus.
    catch_up: bool,
    pending: VecDeque<Item>,
    _subscribed: Subscribed,
}

impl Feed {
    /// The next event; `None` ends the stream (shutdown, or a store failure: the client then
    /// reconnects with its `Last-Event-ID` and misses nothing).
    async fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if self.catch_up {
                let (dir, last, building) = (self.dir.clone(), self.last, self.building.clone());
                let read = tokio::task::spawn_blocking(move || {
                    read_backlog(&dir, last, building.as_deref())
                })
                .await;
                match read {
                    Ok(Ok(Backlog::Page { rows, upto })) => {
                        for row in &rows {
                            self.pending.push_back(Item::stored(row));
                            self.last = row.id;
                        }
                        if let Some(upto) = upto {
                            self.last = self.last.max(upto);
                            self.catch_up = false;
                        }
                    }
                    Ok(Ok(Backlog::Reset { reason, newest })) => {
                        tracing::info!(
                            last = self.last,
                            newest,
                            reason,
                            "Event subscriber must reload."
                        );
                        self.pending.push_back(Item {
                            id: newest,
                            kind: "reset".into(),
                            data: json!({"reason": reason, "resume_after": newest}),
                        });
                        self.last = newest;
                        self.catch_up = false;
                    }
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "Event feed: reading stored changes failed.");
                        return None;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "Event feed: store task failed.");
                        return None;
                    }
                }
                continue;
            }
            tokio::select! {
                () = self.shutdown.cancelled() => return None,
                r = self.rx.recv() => match r {
                    Ok(p) => {
                        if p.id <= self.last {
                            continue; // already sent from the store
                        }
                        self.last = p.id;
                        if self.building.as_deref().is_some_and(|b| b != p.change.building()) {
                            continue;
                        }
                        return Some(Item::live(&p));
                    }
                    Err(RecvError::Lagged(n)) => {
                        self.metrics.events_lagged.fetch_add(1, Relaxed);
                        tracing::warn!(missed = n, last = self.last, "Event subscriber lagged; catching up from the store.");
                        self.catch_up = true;
                    }
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    }
}

fn parse_id(s: &str, what: &str) -> Result<i64, ApiError> {
    s.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| ApiError::BadRequest(format!("{what}: {s:?} is not a change id")))
}

/// `GET /api/v1/events[?since=N][&building=B]`, `Last-Event-ID: N`.
pub async fn events(
    State(s): State<ApiState>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let mut since = None;
    let mut building = None;
    for (k, v) in &q {
        match k.as_str() {
            "since" => since = Some(parse_id(v, k)?),
            "building" => building = Some(v.clone()),
            other => return Err(ApiError::BadRequest(format!("unknown parameter {other:?}"))),
        }
    }
    // A manager follows one of their buildings (the only one when they have one).
    let building = super::auth::one_building(&p, building)?;
    // The header is what a reconnecting client says it has; it wins over the URL's `since`.
    if let Some(h) = headers.get("last-event-id") {
        let v = h
            .to_str()
            .map_err(|_| ApiError::BadRequest("Last-Event-ID is not text".into()))?;
        if !v.trim().is_empty() {
            since = Some(parse_id(v, "Last-Event-ID")?);
        }
    }
    // Subscribe first, then read the store: nothing committed in between is missed.
    let rx = s.changes.subscribe();
    let feed = Feed {
        dir: s.dir.clone(),
        metrics: Arc::clone(&s.metrics),
        rx,
        shutdown: s.shutdown.clone(),
        building,
        last: since.unwrap_or(0),
        catch_up: since.is_some(),
        pending: VecDeque::new(),
        _subscribed: Subscribed::new(&s.metrics),
    };
    let stream = futures::stream::unfold(feed, |mut f| async move {
        f.next().await.map(|i| (Ok::<_, Infallible>(i.event()), f))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{Bus, Change};

    fn command(n: i64, building: &str) -> Change {
        Change::Command {
            command: format!("c-{n}"),
            building: building.into(),
            device: "d1".into(),
            status: "sent".into(),
        }
    }

    /// Commits a change the way the pipeline does: into the store, then onto the bus.
    fn commit(conn: &rusqlite::Connection, bus: &Bus, n: i64, building: &str) -> i64 {
        let change = command(n, building);
        let id = changes::insert(conn, n, change.kind(), change.building(), &change).unwrap();
        bus.publish(Published { id, at: n, change });
        id
    }

    fn feed(dir: &Path, bus: &Bus, since: Option<i64>, building: Option<&str>) -> Feed {
        let metrics = Arc::new(Metrics::default());
        Feed {
            dir: dir.to_owned(),
            metrics: Arc::clone(&metrics),
            rx: bus.subscribe(),
            shutdown: CancellationToken::new(),
            building: building.map(str::to_owned),
            last: since.unwrap_or(0),
            catch_up: since.is_some(),
            pending: VecDeque::new(),
            _subscribed: Subscribed::new(&metrics),
        }
    }

    /// A subscriber that fell far behind the bus (capacity 8, 100 changes unread) is told it
    /// lagged, reads what it missed from the store and goes on live: every id once, in order.
    #[tokio::test]
    async fn a_lagging_subscriber_catches_up_from_the_store_without_gap_or_duplicate() {
        let dir = tempfile::tempdir().unwrap();
        let conn = store::open_writer(dir.path(), "normal").unwrap();
        let bus = Bus::new(8);
        let mut f = feed(dir.path(), &bus, None, None);
        let mut ids: Vec<i64> = (1..=100).map(|n| commit(&conn, &bus, n, "b1")).collect();
        let mut got = Vec::new();
        for _ in 0..100 {
            got.push(f.next().await.unwrap().id);
        }
        assert_eq!(got, ids);
        assert_eq!(f.metrics.events_lagged.load(Relaxed), 1);
        // Changes still on the bus that the catch-up already sent are skipped: the next one
        // read is the next committed.
        ids.push(commit(&conn, &bus, 101, "b1"));
        let next = f.next().await.unwrap();
        assert_eq!(next.id, *ids.last().unwrap());
        assert_eq!(next.kind, "command");
        assert_eq!(next.data["command"], "c-101");
        assert_eq!(next.data["id"], next.id);
    }

    /// Resuming: the stored changes after the id, of the building asked for, then the live
    /// ones; ids already sent from the store are not sent again when the bus has them too.
    #[tokio::test]
    async fn resume_reads_the_store_then_goes_live_and_filters_by_building() {
        let dir = tempfile::tempdir().unwrap();
        let conn = store::open_writer(dir.path(), "normal").unwrap();
        let bus = Bus::new(64);
        let early: Vec<i64> = (1..=6)
            .map(|n| commit(&conn, &bus, n, if n % 2 == 0 { "b1" } else { "b2" }))
            .collect();
        // Subscribed now; the first two changes were seen before.
        let mut f = feed(dir.path(), &bus, Some(early[1]), Some("b1"));
        // Committed after the subscription: on the bus *and* in the store.
        let late = commit(&conn, &bus, 7, "b1");
        let _ = commit(&conn, &bus, 8, "b2");
        let live = commit(&conn, &bus, 9, "b1");
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(f.next().await.unwrap().id);
        }
        assert_eq!(got, vec![early[3], early[5], late, live]);
        assert!(f.pending.is_empty());
    }

    /// A resume point older than what is kept is a `reset`, never a silent gap.
    #[tokio::test]
    async fn a_pruned_resume_point_is_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        let conn = store::open_writer(dir.path(), "normal").unwrap();
        let bus = Bus::new(64);
        for n in 1..=10 {
            commit(&conn, &bus, n, "b1");
        }
        changes::prune(&conn, 3).unwrap();
        let mut f = feed(dir.path(), &bus, Some(2), None);
        let r = f.next().await.unwrap();
        assert_eq!((r.kind.as_str(), r.id), ("reset", 10));
        assert_eq!(r.data["reason"], "pruned");
        // It goes on after the newest id.
        let id = commit(&conn, &bus, 11, "b1");
        assert_eq!(f.next().await.unwrap().id, id);
    }
}
