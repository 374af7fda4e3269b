//! The pure parts of a northbound target: the record it forwards, the configured field mapping
//! (output name → path in the record, plus constants) and the MQTT topic template.

use crate::store::northbound::Source;
use serde_json::{Map, Value};

/// What a record is about (`{type}` in a topic template).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    /// An alert transition or a people action.
    Alert,
    /// A device's connection state change.
    Device,
    /// One reading.
    Reading,
}

impl RecordType {
    /// The name in `include` and topics.
    pub const fn as_str(self) -> &'static str {
        match self {
            RecordType::Alert => "alert",
            RecordType::Device => "device",
            RecordType::Reading => "reading",
        }
    }

    /// Parses an `include` entry.
    pub fn parse(s: &str) -> Option<RecordType> {
        match s {
            "alert" => Some(RecordType::Alert),
            "device" => Some(RecordType::Device),
            "reading" => Some(RecordType::Reading),
            _ => None,
        }
    }
}

/// One record to forward: the change or reading as JSON, with `key`, `building`, `device` and
/// `kind` at its top level.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Source table.
    pub source: Source,
    /// Row id there (the cursor).
    pub id: i64,
    /// What it is about.
    pub kind: RecordType,
    /// Time of the change or reading, epoch ms (the lag).
    pub at: i64,
    /// The record.
    pub body: Value,
}

impl Record {
    /// The idempotency key: `firewatch:{source}:{id}`, the same on every attempt and after
    /// restarts.
    pub fn key(source: Source, id: i64) -> String {
        format!("firewatch:{}:{id}", source.as_str())
    }

    /// Builds a record from `body` (an object), adding `key` and the top-level `building`,
    /// `device` and `kind` of an alert (from `alert.…`).
    pub fn new(source: Source, id: i64, kind: RecordType, at: i64, mut body: Value) -> Record {
        if let Value::Object(m) = &mut body {
            if kind == RecordType::Alert {
                for f in ["building", "device", "kind"] {
                    let v = m
                        .get("alert")
                        .and_then(|a| a.get(f))
                        .cloned()
                        .unwrap_or(Value::Null);
                    m.entry(f).or_insert(v);
                }
            }
            m.insert("key".into(), Record::key(source, id).into());
        }
        Record {
            source,
            id,
            kind,
            at,
            body,
        }
    }

    /// A top-level string field, or "".
    pub fn field(&self, name: &str) -> &str {
        self.body.get(name).and_then(Value::as_str).unwrap_or("")
    }
}

/// Checks a record path: dot-separated names of letters, digits, `_` and `-`.
pub fn check_path(path: &str) -> Result<(), String> {
    if path.split('.').all(|s| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
    }) {
        Ok(())
    } else {
        Err(format!(
            "{path:?} is not a path of dot-separated names (letters, digits, _ and -)"
        ))
    }
}

/// The value at a dotted path (`alert.severity`), if there is one.
pub fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, s| v.get(s))
}

/// The configured mapping: each output field from a path in the record (null where the record
/// has none), then the constants; the idempotency key always goes under `key_field`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mapping {
    /// (output name, record path).
    pub fields: Vec<(String, String)>,
    /// (output name, value).
    pub constants: Vec<(String, Value)>,
    /// Output name of the idempotency key.
    pub key_field: String,
}

impl Mapping {
    /// The record as the platform receives it: as is without a mapping, else the mapped
    /// fields and constants; either way with its key under `key_field`.
    pub fn apply(&self, r: &Record) -> Value {
        let key = Value::from(Record::key(r.source, r.id));
        if self.fields.is_empty() && self.constants.is_empty() {
            let mut body = r.body.clone();
            if let Value::Object(m) = &mut body {
                if self.key_field != "key" {
                    m.remove("key");
                }
                m.insert(self.key_field.clone(), key);
            }
            return body;
        }
        let mut out = Map::new();
        for (name, path) in &self.fields {
            let v = lookup(&r.body, path).cloned().unwrap_or(Value::Null);
            out.insert(name.clone(), v);
        }
        for (name, v) in &self.constants {
            out.insert(name.clone(), v.clone());
        }
        out.insert(self.key_field.clone(), key);
        Value::Object(out)
    }
}

/// One piece of a topic template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Building,
    Type,
    Device,
    Kind,
}

/// An MQTT topic template: text with `{building}`, `{type}`, `{device}` and `{kind}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    parts: Vec<Part>,
}

impl Topic {
    /// Parses a template; unknown names, unbalanced braces and the wildcards `+` and `#` are
    /// errors.
    pub fn parse(s: &str) -> Result<Topic, String> {
        if s.is_empty() {
            return Err("is empty".into());
        }
        if s.contains(['+', '#']) {
            return Err(format!("{s:?} holds an MQTT wildcard (+ or #)"));
        }
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find(['{', '}']) {
            if rest[open..].starts_with('}') {
                return Err(format!("{s:?}: a '}}' without its '{{'"));
            }
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                return Err(format!("{s:?}: a '{{' without its '}}'"));
            };
            parts.push(match &after[..close] {
                "building" => Part::Building,
                "type" => Part::Type,
                "device" => Part::Device,
                "kind" => Part::Kind,
                other => {
                    return Err(format!(
                    "{s:?}: unknown name {{{other}}} (known: {{building}}, {{type}}, {{device}}, {{kind}})"
                ))
                }
            });
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Topic { parts })
    }

    /// The topic of a record. A value that is missing becomes `_`; `/`, `+` and `#` in a value
    /// become `_`, so a value never adds a topic level or a wildcard.
    pub fn render(&self, r: &Record) -> String {
        let clean = |v: &str| -> String {
            if v.is_empty() {
                "_".into()
            } else {
                v.replace(['/', '+', '#'], "_")
            }
        };
        let mut t = String::new();
        for p in &self.parts {
            match p {
                Part::Text(s) => t.push_str(s),
                Part::Building => t.push_str(&clean(r.field("building"))),
                Part::Type => t.push_str(r.kind.as_str()),
                Part::Device => t.push_str(&clean(r.field("device"))),
                Part::Kind => t.push_str(&clean(r.field("kind"))),
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alert() -> Record {
        Record::new(
            Source::Changes,
            42,
            RecordType::Alert,
            1_000,
            json!({"type": "alert", "what": "fired", "id": 42, "at": "2024-01-01T00:00:00.000Z",
                   "alert": {"id": "a-000007", "building": "bsy-0012", "device": "tx/1",
                             "kind": "transmitter", "severity": "critical"}}),
        )
    }

    #[test]
    fn without_a_mapping_the_record_goes_as_is_with_its_key() {
        let r = alert();
        let out = Mapping {
            key_field: "key".into(),
            ..Mapping::default()
        }
        .apply(&r);
        assert_eq!(out["key"], "firewatch:change:42");
        assert_eq!(out["building"], "bsy-0012");
        assert_eq!(out["alert"]["severity"], "critical");
        assert_eq!(out["what"], "fired");
        let renamed = Mapping {
            key_field: "requestId".into(),
            ..Mapping::default()
        }
        .apply(&r);
        assert_eq!(renamed["requestId"], "firewatch:change:42");
        assert!(renamed.get("key").is_none());
    }

    #[test]
    fn mapped_fields_take_nested_paths_constants_and_null_for_missing() {
        let m = Mapping {
            fields: vec![
                ("platformBuildingId".into(), "building".into()),
                ("level".into(), "alert.severity".into()),
                ("eventTime".into(), "at".into()),
                ("state".into(), "state".into()),
            ],
            constants: vec![
                ("source".into(), json!("firewatch")),
                ("v".into(), json!(2)),
            ],
            key_field: "requestId".into(),
        };
        let out = m.apply(&alert());
        assert_eq!(
            out,
            json!({"platformBuildingId": "bsy-0012", "level": "critical",
                   "eventTime": "2024-01-01T00:00:00.000Z", "state": null,
                   "source": "firewatch", "v": 2, "requestId": "firewatch:change:42"})
        );
    }

    #[test]
    fn paths_are_checked() {
        assert!(check_path("alert.severity").is_ok());
        assert!(check_path("building").is_ok());
        for bad in ["", "alert.", ".x", "a b", "a..b"] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_topic_template_fills_in_the_record_and_keeps_its_levels() {
        let t = Topic::parse("city/v1/{building}/{type}/{kind}/{device}").unwrap();
        // The device id's slash does not add a level.
        assert_eq!(
            t.render(&alert()),
            "city/v1/bsy-0012/alert/transmitter/tx_1"
        );
        let reading = Record::new(
            Source::Readings,
            3,
            RecordType::Reading,
            0,
            json!({"building": "", "device": "wp-1", "kind": "water_pressure"}),
        );
        assert_eq!(t.render(&reading), "city/v1/_/reading/water_pressure/wp-1");
        assert_eq!(Topic::parse("plain").unwrap().render(&reading), "plain");
    }

    #[test]
    fn bad_topic_templates_are_refused_with_the_reason() {
        for (bad, why) in [
            ("", "empty"),
            ("city/#", "wildcard"),
            ("city/+/x", "wildcard"),
            ("city/{building", "without its '}'"),
            ("city/building}", "without its '{'"),
            ("city/{floor}", "unknown name {floor}"),
        ] {
            let e = Topic::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
