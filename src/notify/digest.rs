//! What a person reads when several notifications go out as one message ([`Batch`] of more
//! than one row): per building, how many new alarms and how many of them critical, then the
//! alarms themselves, most severe first. Chat robots and text messages get the counts and the
//! first few titles; e-mail lists every row.
//!
//! One building: `【告警汇总】town-012：新告警 14 条，紧急 3 条` /
//! `[Digest] town-012: 14 new alerts, 3 critical`. Several (a rate limit folded them):
//! `【告警汇总】5 栋楼：新告警 120 条，紧急 9 条`, with a line per building
//! (`town-012：新告警 14 条，紧急 3 条：火灾报警 东塔 3F；…`).

use super::group::{building, is_new_alarm, severity, Batch};
use super::render::{Context, Lang, Rendered};
use crate::model::notification::{Notification, Subject};
use crate::model::Severity;

/// Titles listed per building in a chat message or a fact line.
const TITLES_PER_BUILDING: usize = 3;
/// Buildings with a line of their own in the facts; the rest are counted.
const BUILDING_LINES: usize = 30;
/// Rows listed one by one in the facts of a single building's digest.
const ROW_LINES: usize = 20;

/// The language a row reads in: its own (set by the routing) or the deployment's.
pub fn lang_of(ctx: &Context, n: &Notification) -> Lang {
    match n.lang.as_deref() {
        Some("en") => Lang::En,
        Some("zh") => Lang::Zh,
        _ => ctx.lang,
    }
}

/// Counts of one building's rows.
#[derive(Debug, Default)]
struct Counts {
    rows: usize,
    new: usize,
    critical: usize,
}

impl Counts {
    fn add(&mut self, n: &Notification) {
        self.rows += 1;
        if is_new_alarm(n.event) && matches!(n.subject, Subject::Alert(_)) {
            self.new += 1;
            if severity(n) == Some(Severity::Critical) {
                self.critical += 1;
            }
        }
    }

    /// `新告警 14 条，紧急 3 条` (and `另有 2 条其他通知`) / `14 new alerts, 3 critical`.
    fn words(&self, lang: Lang) -> String {
        let other = self.rows - self.new;
        match lang {
            Lang::Zh => {
                let mut s = format!("新告警 {} 条", self.new);
                if self.critical > 0 {
                    s.push_str(&format!("，紧急 {} 条", self.critical));
                }
                if other > 0 {
                    s.push_str(&format!("，另有 {other} 条其他通知"));
                }
                s
            }
            Lang::En => {
                let mut s = format!(
                    "{} new alert{}",
                    self.new,
                    if self.new == 1 { "" } else { "s" }
                );
                if self.critical > 0 {
                    s.push_str(&format!(", {} critical", self.critical));
                }
                if other > 0 {
                    s.push_str(&format!(
                        ", {other} other notification{}",
                        if other == 1 { "" } else { "s" }
                    ));
                }
                s
            }
        }
    }
}

/// Most severe first, then new alarms before follow-ups, then oldest first.
fn order_key(n: &Notification) -> (std::cmp::Reverse<Option<Severity>>, bool, i64) {
    (std::cmp::Reverse(severity(n)), !is_new_alarm(n.event), n.id)
}

/// Renders batch `b` of several rows in the language and time zone of its first row.
pub fn render(ctx: &Context, b: &Batch) -> Rendered {
    let lang = b.rows.first().map_or(ctx.lang, |n| lang_of(ctx, n));
    let zh = lang == Lang::Zh;
    let buildings = b.buildings();
    let mut total = Counts::default();
    let mut per: Vec<(&str, Counts, Vec<&Notification>)> = buildings
        .iter()
        .map(|name| (*name, Counts::default(), Vec::new()))
        .collect();
    for n in &b.rows {
        total.add(n);
        if let Some(e) = per.iter_mut().find(|(name, _, _)| *name == building(n)) {
            e.1.add(n);
            e.2.push(n);
        }
    }
    for (_, _, rows) in &mut per {
        rows.sort_by_key(|n| order_key(n));
    }
    let titles: std::collections::HashMap<i64, Rendered> =
        b.rows.iter().map(|n| (n.id, ctx.render_for(n))).collect();
    let title_of = |n: &Notification| titles.get(&n.id).map_or("", |r| r.title.as_str());

    let base = ctx.public_url.trim_end_matches('/');
    let (title, link) = match per.as_slice() {
        [(name, counts, _)] => (
            if zh {
                format!("【告警汇总】{name}：{}", counts.words(lang))
            } else {
                format!("[Digest] {name}: {}", counts.words(lang))
            },
            format!("{base}/buildings/{name}"),
        ),
        _ => (
            if zh {
                format!("【告警汇总】{} 栋楼：{}", per.len(), total.words(lang))
            } else {
                format!("[Digest] {} buildings: {}", per.len(), total.words(lang))
            },
            format!("{base}/board"),
        ),
    };

    let mut facts = Vec::new();
    if let [(_, _, rows)] = per.as_slice() {
        for n in rows.iter().take(ROW_LINES) {
            facts.push(format!("{}（{}）", title_of(n), n.subject.id()));
        }
        if rows.len() > ROW_LINES {
            let more = rows.len() - ROW_LINES;
            facts.push(if zh {
                format!("……还有 {more} 条")
            } else {
                format!("… and {more} more")
            });
        }
    } else {
        for (name, counts, rows) in per.iter().take(BUILDING_LINES) {
            let first: Vec<&str> = rows
                .iter()
                .take(TITLES_PER_BUILDING)
                .map(|n| title_of(n))
                .collect();
            let more = if rows.len() > TITLES_PER_BUILDING {
                if zh {
                    "；……"
                } else {
                    "; …"
                }
            } else {
                ""
            };
            facts.push(if zh {
                format!("{name}：{}：{}{more}", counts.words(lang), first.join("；"))
            } else {
                format!("{name}: {}: {}{more}", counts.words(lang), first.join("; "))
            });
        }
        if per.len() > BUILDING_LINES {
            let more = per.len() - BUILDING_LINES;
            facts.push(if zh {
                format!("……还有 {more} 栋楼")
            } else {
                format!("… and {more} more buildings")
            });
        }
    }

    // E-mail: every row, building by building.
    let sections = per
        .iter()
        .map(|(name, counts, rows)| {
            let heading = if zh {
                format!("{name}（{}）", counts.words(lang))
            } else {
                format!("{name} ({})", counts.words(lang))
            };
            let items = rows
                .iter()
                .map(|n| format!("{} — {base}/alerts/{}", title_of(n), n.subject.id()))
                .collect();
            (heading, items)
        })
        .collect();

    let action = if zh {
        "请在值班台逐条查看、确认和处置".to_owned()
    } else {
        "Open the board to see, acknowledge and handle each one".to_owned()
    };
    let link_label = if zh {
        "打开值班台"
    } else {
        "Open the board"
    }
    .to_owned();
    let subject = format!("{title} DIGEST {}", b.rows.len());
    let short = if zh {
        format!("{title}，详见值班台")
    } else {
        format!("{title}; see the board")
    };
    Rendered {
        title,
        facts,
        sections,
        action,
        link,
        link_label,
        ack: None,
        subject,
        short,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::notification::{ChannelKind, Event};
    use serde_json::json;

    fn row(id: i64, b: &str, sev: &str, event: Event) -> Notification {
        Notification {
            id,
            subject: Subject::Alert(id),
            key: format!("k{id}"),
            event,
            channel: ChannelKind::Wecom,
            target: "duty".into(),
            created_at: 0,
            attempts: 0,
            snapshot: json!({"id": format!("a-{id:06}"), "building": b, "severity": sev,
                "rule": "transmitter.fire_alarm", "device": "d1", "kind": "transmitter"}),
            lang: None,
            tz: None,
        }
    }

    fn batch(rows: Vec<Notification>) -> Batch {
        Batch {
            key: "digest".into(),
            rows,
        }
    }

    #[test]
    fn one_building_counts_and_lists_most_severe_first() {
        let b = batch(vec![
            row(1, "town-012", "major", Event::Fired),
            row(2, "town-012", "critical", Event::Fired),
            row(3, "town-012", "minor", Event::Cleared),
        ]);
        let r = render(&Context::default(), &b);
        assert_eq!(
            r.title,
            "【告警汇总】town-012：新告警 2 条，紧急 1 条，另有 1 条其他通知"
        );
        assert!(
            r.facts[0].contains("紧急") && r.facts[0].ends_with("（a-000002）"),
            "{:?}",
            r.facts
        );
        assert_eq!(r.facts.len(), 3);
        assert!(r.link.ends_with("/buildings/town-012"));
        assert_eq!(r.sections.len(), 1);
        assert_eq!(r.sections[0].1.len(), 3);
    }

    #[test]
    fn several_buildings_get_a_line_each_in_english_too() {
        let mut rows: Vec<_> = (1..=14)
            .map(|i| {
                row(
                    i,
                    "town-012",
                    if i <= 3 { "critical" } else { "major" },
                    Event::Fired,
                )
            })
            .collect();
        rows.push(row(20, "town-003", "minor", Event::Fired));
        for r in &mut rows {
            r.lang = Some("en".into());
        }
        let r = render(&Context::default(), &batch(rows));
        assert_eq!(r.title, "[Digest] 2 buildings: 15 new alerts, 3 critical");
        assert!(
            r.facts[0].starts_with("town-012: 14 new alerts, 3 critical: [Critical alarm]"),
            "{}",
            r.facts[0]
        );
        assert!(r.facts[0].ends_with("; …"));
        assert!(r.facts[1].starts_with("town-003: 1 new alert: "));
        assert!(r.link.ends_with("/board"));
        assert_eq!(
            r.subject,
            "[Digest] 2 buildings: 15 new alerts, 3 critical DIGEST 15"
        );
    }
}
