//! `GET /api/v1/devices/{id}/readings`: a device's history, as raw readings or as buckets of
//! the rollups (`store::rollups`).
//!
//! `step` chooses: `raw`, `5m`, `1h`, `1d`, or `auto` (the default): the finest resolution
//! that returns at most `limit` rows ([`AUTO_POINTS`] when no `limit` is given), raw readings
//! when they fit and are all still kept, so a short range answers as before rollups existed and
//! a range beyond the raw retention comes from the rollups.
//!
//! A month of five-minute buckets is 8,641 rows, so the answer is written the cheap way: each
//! row goes from the SQLite statement straight into one byte buffer through a
//! `#[derive(Serialize)]` struct that borrows its strings from the row, with the time formatted
//! by integer arithmetic ([`Rfc3339`]), all on the blocking pool. The bytes are those of the
//! `serde_json::Value` maps the answer was first built from (the tests hold both side by side).

use super::{parse_limit, parse_time, read, ApiError, ApiResult, ApiState};
use crate::auth::Principal;
use crate::model::Rfc3339;
use crate::store::rollups::{self, BucketRef, Range, RawReadingRef, Step};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Router};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// The default `limit`: rows at most.
const DEFAULT_LIMIT: u32 = 10_000;

/// The point budget of `step=auto` without a `limit`: about the widest chart's width in pixels
/// (more points than a chart has pixel columns draw nothing more), and more than a day of
/// readings once a minute (1,440), so such a day still answers with its raw readings. Over 30
/// days it picks hourly buckets (721) instead of 8,641 five-minute ones.
pub const AUTO_POINTS: u32 = 1_500;

/// The route.
pub(super) fn routes() -> Router<ApiState> {
    Router::new().route("/api/v1/devices/{id}/readings", get(readings))
}

/// What `step` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Raw,
    Step(Step),
    Auto,
}

fn parse_step(s: &str) -> Result<Want, ApiError> {
    match s {
        "raw" => Ok(Want::Raw),
        "auto" => Ok(Want::Auto),
        _ => Step::parse(s).map(Want::Step).ok_or_else(|| {
            ApiError::BadRequest(format!("step: {s:?} is not raw, 5m, 1h, 1d or auto"))
        }),
    }
}

async fn readings(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let now = s.clock.now_ms();
    let mut range = Range {
        device: id,
        metric: None,
        since: now - 86_400_000,
        until: now + 86_400_000,
        limit: parse_limit(q.get("limit"), DEFAULT_LIMIT, 100_000)?,
    };
    let budget = if q.contains_key("limit") {
        range.limit
    } else {
        AUTO_POINTS
    };
    let mut want = Want::Auto;
    for (k, v) in &q {
        match k.as_str() {
            "metric" => range.metric = Some(v.clone()),
            "since" => range.since = parse_time(v, k)?,
            "until" => range.until = parse_time(v, k)?,
            "step" => want = parse_step(v)?,
            "limit" => {}
            other => return Err(ApiError::BadRequest(format!("unknown parameter {other:?}"))),
        }
    }
    let (reg, rules) = (s.registry.get(), Arc::clone(&s.rules));
    let body = read(&s, move |c| {
        if p.scope.buildings().is_some() {
            // A manager reads only the devices of their buildings; any other is not found.
            let building = crate::inventory::device(c, &reg, &rules, &range.device)?
                .and_then(|d| d["building"].as_str().map(str::to_owned));
            if !building.is_some_and(|b| p.scope.allows(&b)) {
                return Err(ApiError::NotFound(format!(
                    "device {} not found",
                    range.device
                )));
            }
        }
        let step = match want {
            Want::Raw => None,
            Want::Step(st) => Some(st),
            Want::Auto => rollups::auto_step(
                c,
                &Range {
                    limit: budget,
                    ..range.clone()
                },
            )?,
        };
        let mut out = JsonArray::default();
        match step {
            None => rollups::each_raw(c, &range, |r| out.push(&ReadingRow::of(r)))?,
            Some(st) => rollups::each_bucket(c, st, &range, |b| out.push(&BucketRow::of(b, st)))?,
        };
        out.finish()
    })
    .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// A raw reading as the API writes it. The fields are in name order: the order of the
/// `serde_json::Value` map (a `BTreeMap`) the rows were first written with, kept so the bytes
/// stay the same.
#[derive(Debug, Serialize)]
struct ReadingRow<'a> {
    channel: Option<&'a str>,
    metric: &'a str,
    ts: Rfc3339,
    value: f64,
}

impl<'a> ReadingRow<'a> {
    fn of(r: RawReadingRef<'a>) -> Self {
        ReadingRow {
            channel: r.channel,
            metric: r.metric,
            ts: Rfc3339(r.ts),
            value: r.value,
        }
    }
}

/// A bucket as the API writes it; fields in name order, as [`ReadingRow`]'s. A value that is
/// not finite is written as `null` (as `serde_json::Value` does; the rollups never hold one).
#[derive(Debug, Serialize)]
struct BucketRow<'a> {
    channel: Option<&'a str>,
    count: i64,
    max: f64,
    mean: f64,
    metric: &'a str,
    min: f64,
    step: &'static str,
    ts: Rfc3339,
}

impl<'a> BucketRow<'a> {
    fn of(b: BucketRef<'a>, step: Step) -> Self {
        BucketRow {
            channel: b.channel,
            count: b.agg.count,
            max: b.agg.max,
            mean: b.agg.sum / b.agg.count.max(1) as f64,
            metric: b.metric,
            min: b.agg.min,
            step: step.as_str(),
            ts: Rfc3339(b.ts),
        }
    }
}

/// A JSON array written row by row into one buffer.
#[derive(Debug, Default)]
struct JsonArray {
    buf: Vec<u8>,
    rows: usize,
    err: Option<serde_json::Error>,
}

impl JsonArray {
    /// Appends one row (after the first error, nothing).
    fn push(&mut self, row: &impl Serialize) {
        if self.err.is_some() {
            return;
        }
        if self.buf.is_empty() {
            // Room for a few hundred rows at once (a bucket is about 135 bytes).
            self.buf.reserve(64 * 1024);
        }
        self.buf.push(if self.rows == 0 { b'[' } else { b',' });
        if let Err(e) = serde_json::to_writer(&mut self.buf, row) {
            self.err = Some(e);
        }
        self.rows += 1;
    }

    /// The array's bytes, or why a row could not be written.
    fn finish(mut self) -> Result<Vec<u8>, ApiError> {
        if let Some(e) = self.err {
            return Err(ApiError::Internal(format!("readings: {e}")));
        }
        if self.rows == 0 {
            self.buf.push(b'[');
        }
        self.buf.push(b']');
        Ok(self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::rfc3339;
    use crate::store::rollups::Agg;
    use serde_json::{json, Value};

    /// A bucket the way the answer was first built: a `serde_json::Value` map.
    fn value_map_bucket(b: &BucketRef<'_>, st: Step) -> Value {
        json!({
            "ts": rfc3339(b.ts),
            "metric": b.metric,
            "channel": b.channel,
            "min": b.agg.min,
            "max": b.agg.max,
            "mean": b.agg.sum / b.agg.count.max(1) as f64,
            "count": b.agg.count,
            "step": st.as_str(),
        })
    }

    /// A raw reading the way it was first built.
    fn value_map_reading(r: &RawReadingRef<'_>) -> Value {
        json!({
            "ts": rfc3339(r.ts),
            "metric": r.metric,
            "channel": r.channel,
            "value": r.value,
        })
    }

    fn agg(min: f64, max: f64, sum: f64, count: i64) -> Agg {
        Agg {
            min,
            max,
            sum,
            count,
        }
    }

    fn buckets() -> Vec<BucketRef<'static>> {
        let b = |ts, metric, channel, agg| BucketRef {
            ts,
            metric,
            channel,
            agg,
        };
        vec![
            b(
                1_795_910_400_000,
                "pressure_mpa",
                None,
                agg(0.1, 0.5, 0.9, 3),
            ),
            b(
                1_795_910_400_000,
                "temperature_c",
                Some("loop-1"),
                agg(-0.0, 21.5, 0.30000000000000004, 7),
            ),
            b(0, "level_m", Some("tank/2"), agg(1e-7, 1e21, 1.5e300, 1)),
            b(
                -300_000,
                "smoke_obscuration",
                Some("ch \"a\" \\ \u{1} 区"),
                agg(
                    f64::MIN_POSITIVE,
                    f64::MAX,
                    123_456_789.123,
                    9_007_199_254_740_993,
                ),
            ),
            // No readings (never stored, but the mean is guarded).
            b(253_402_300_799_999, "x", None, agg(0.0, 0.0, 0.0, 0)),
            // Past the year 9999: the time crate's text.
            b(253_402_300_800_000, "x", None, agg(1.0, 1.0, 1.0, 1)),
        ]
    }

    fn written(rows: impl IntoIterator<Item = impl Serialize>) -> Vec<u8> {
        let mut out = JsonArray::default();
        for r in rows {
            out.push(&r);
        }
        out.finish().unwrap()
    }

    #[test]
    fn buckets_are_written_byte_for_byte_as_the_value_maps_were() {
        for st in Step::ALL {
            let rows = buckets();
            let before: Vec<Value> = rows.iter().map(|b| value_map_bucket(b, st)).collect();
            let now = written(rows.iter().map(|b| BucketRow::of(*b, st)));
            assert_eq!(
                String::from_utf8(now).unwrap(),
                serde_json::to_string(&before).unwrap()
            );
        }
        // Field names and their order, spelled out once.
        let one = written([BucketRow::of(buckets()[0], Step::FiveMinutes)]);
        assert_eq!(
            String::from_utf8(one).unwrap(),
            r#"[{"channel":null,"count":3,"max":0.5,"mean":0.3,"metric":"pressure_mpa","min":0.1,"step":"5m","ts":"2026-11-29T00:00:00.000Z"}]"#
        );
    }

    #[test]
    fn raw_readings_are_written_byte_for_byte_as_the_value_maps_were() {
        let r = |ts, metric, channel, value| RawReadingRef {
            ts,
            metric,
            channel,
            value,
        };
        let rows = [
            r(1_795_944_600_123, "pressure_mpa", None, 0.32),
            r(1_795_944_660_000, "battery_pct", Some("ch-2"), 87.0),
            r(-1, "rssi_dbm", Some("\u{7f}\t"), -0.0),
            r(42, "level_m", None, 1e-300),
        ];
        let before: Vec<Value> = rows.iter().map(value_map_reading).collect();
        let now = written(rows.iter().map(|x| ReadingRow::of(*x)));
        assert_eq!(
            String::from_utf8(now).unwrap(),
            serde_json::to_string(&before).unwrap()
        );
        let one = written([ReadingRow::of(rows[0])]);
        assert_eq!(
            String::from_utf8(one).unwrap(),
            r#"[{"channel":null,"metric":"pressure_mpa","ts":"2026-11-29T09:30:00.123Z","value":0.32}]"#
        );
    }

    #[test]
    fn no_rows_are_an_empty_array() {
        assert_eq!(written(Vec::<BucketRow<'_>>::new()), b"[]");
        assert_eq!(
            written(Vec::<BucketRow<'_>>::new()),
            serde_json::to_vec(&Vec::<Value>::new()).unwrap()
        );
    }

    #[test]
    fn a_value_that_is_not_finite_is_null_never_nan() {
        let b = BucketRef {
            ts: 0,
            metric: "pressure_mpa",
            channel: None,
            agg: agg(f64::NEG_INFINITY, f64::INFINITY, f64::NAN, 2),
        };
        let now = String::from_utf8(written([BucketRow::of(b, Step::Hour)])).unwrap();
        let before = serde_json::to_string(&vec![value_map_bucket(&b, Step::Hour)]).unwrap();
        assert_eq!(now, before);
        for bad in ["NaN", "nan", "inf", "Infinity"] {
            assert!(!now.contains(bad), "{now}");
        }
        let v: Value = serde_json::from_str(&now).unwrap();
        for k in ["min", "max", "mean"] {
            assert_eq!(v[0][k], Value::Null, "{k}: {now}");
        }
        let r = RawReadingRef {
            ts: 0,
            metric: "m",
            channel: None,
            value: f64::NAN,
        };
        let now = String::from_utf8(written([ReadingRow::of(r)])).unwrap();
        assert_eq!(
            now,
            r#"[{"channel":null,"metric":"m","ts":"1970-01-01T00:00:00.000Z","value":null}]"#
        );
    }
}
