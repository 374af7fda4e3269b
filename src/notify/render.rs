//! What a person reads: one alert event rendered for the people on duty, in Chinese (the
//! default) or English, with times in the control room's time zone. Every channel uses it:
//! e-mail takes [`Rendered::subject`] and [`Rendered::plain`], the chat robots
//! [`Rendered::markdown`], SMS [`Rendered::short`].
//!
//! A message says what happened (the rule's name, the severity and the event: 紧急/重要/一般/提示
//! and 报警/恢复/提醒/已关闭), where (building, device location, zone or point, device), since
//! when, the value against its threshold with units, what to do next, and carries a link to
//! the alert and, when the alert has one, its acknowledgement code (`ack_code`).
//!
//! The words for each rule (its name, the measured quantity and unit, which side of the
//! threshold is bad, the next step) are in one table, [`RULES`]. A rule it does not list is
//! shown by its id with a generic next step.
//!
//! A work order's step ([`workorder`]) reads the same way: what is to be rectified, where, by
//! when, who did the step and what they said, and what the reader is to do next.
//!
//! (added) A building's daily summary ([`summary`]) gives the counts as its facts (what the
//! chat robots and SMS show) and, for e-mail, the lists behind them as [`Rendered::sections`]:
//! devices offline and never seen, data-quality findings, open alerts, open work orders
//! (overdue marked), the false alarms of the last 24 hours.
//!
//! Rendering is pure: the alert snapshot, the event, the language and the time zone go in, text
//! comes out. The language and zone are arguments so that a recipient's own can be passed when
//! recipients have them; today they come from `notify.lang` and `notify.tz`.

use crate::model::notification::{Event, Subject};
use jiff::tz::TimeZone;
use serde::Deserialize;
use serde_json::Value;

/// The language of a message (`notify.lang`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    /// 简体中文.
    #[default]
    Zh,
    /// English.
    En,
}

/// Which side of its threshold a rule's bad value is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Bad below the threshold (pressure, level).
    Below,
    /// Bad above it (current, temperature).
    Above,
    /// Bad when it falls by the threshold or more.
    Drop,
    /// No threshold (events).
    None,
}

/// The words for one rule.
#[derive(Debug, Clone, Copy)]
pub struct RuleText {
    /// Rule id (`config/rules.toml`).
    pub id: &'static str,
    /// Name, Chinese.
    pub zh: &'static str,
    /// Name, English.
    pub en: &'static str,
    /// The measured quantity, Chinese and English (empty for events).
    pub quantity: (&'static str, &'static str),
    /// Unit of the value and threshold (empty for none).
    pub unit: &'static str,
    /// Decimals shown.
    pub decimals: usize,
    /// Which side of the threshold is bad.
    pub side: Side,
    /// What to do next, Chinese.
    pub action_zh: &'static str,
    /// What to do next, English.
    pub action_en: &'static str,
}

const fn rule(
    id: &'static str,
    zh: &'static str,
    en: &'static str,
    action_zh: &'static str,
    action_en: &'static str,
) -> RuleText {
    RuleText {
        id,
        zh,
        en,
        quantity: ("", ""),
        unit: "",
        decimals: 0,
        side: Side::None,
        action_zh,
        action_en,
    }
}

const fn measured(
    r: RuleText,
    quantity: (&'static str, &'static str),
    unit: &'static str,
    decimals: usize,
    side: Side,
) -> RuleText {
    RuleText {
        quantity,
        unit,
        decimals,
        side,
        ..r
    }
}

const FIRE_ZH: &str = "立即现场确认，确认真实火警后拨打119，启动应急预案并报告消防安全责任人";
const FIRE_EN: &str = "Confirm on site at once; if the fire is real, call 119, start the emergency plan and tell the fire-safety officer";
const PRESSURE: (&str, &str) = ("管网压力", "Fire-water pressure");
const LEVEL: (&str, &str) = ("液位", "Water level");

/// The words for every rule of `config/rules.toml` (and those the engine raises itself).
pub const RULES: &[RuleText] = &[
    measured(
        rule(
            "water_pressure.low",
            "消防水压过低",
            "Fire-water pressure low",
            "检查消防泵和阀门（是否关闭、泄漏），必要时启动消防泵",
            "Check the fire pumps and valves (closed, leaking); start the pump if needed",
        ),
        PRESSURE,
        "MPa",
        2,
        Side::Below,
    ),
    measured(
        rule(
            "water_pressure.high",
            "消防水压过高",
            "Fire-water pressure high",
            "检查减压阀和稳压设备，防止管网超压",
            "Check the pressure-reducing valves and the jockey pump",
        ),
        PRESSURE,
        "MPa",
        2,
        Side::Above,
    ),
    measured(
        rule(
            "water_pressure.drop",
            "消防水压骤降",
            "Fire-water pressure dropping",
            "检查管网是否泄漏、爆管或有人放水，检查消防泵",
            "Check the pipes for a leak or a burst and the fire pumps",
        ),
        PRESSURE,
        "MPa",
        2,
        Side::Drop,
    ),
    measured(
        rule(
            "water_level.low",
            "消防水池/水箱液位过低",
            "Fire-water tank level low",
            "检查补水阀和补水管路，确认消防水源",
            "Check the refill valve and pipe; make sure of the water supply",
        ),
        LEVEL,
        "m",
        2,
        Side::Below,
    ),
    measured(
        rule(
            "water_level.high",
            "消防水池/水箱液位过高",
            "Fire-water tank level high",
            "检查补水阀和浮球阀是否失灵、溢流",
            "Check the refill and float valves for a fault or an overflow",
        ),
        LEVEL,
        "m",
        2,
        Side::Above,
    ),
    measured(
        rule(
            "electrical.residual_current",
            "剩余电流超限",
            "Residual current high",
            "通知电工检查线路绝缘和漏电，必要时断电",
            "Have an electrician check the insulation; switch off if needed",
        ),
        ("剩余电流", "Residual current"),
        "mA",
        0,
        Side::Above,
    ),
    measured(
        rule(
            "electrical.temperature",
            "线缆温度过高",
            "Cable temperature high",
            "通知电工检查负载和接线端子，必要时断电",
            "Have an electrician check the load and the terminals; switch off if needed",
        ),
        ("线缆温度", "Cable temperature"),
        "°C",
        1,
        Side::Above,
    ),
    measured(
        rule(
            "electrical.arc",
            "故障电弧",
            "Arc fault",
            "立即通知电工检查线路，必要时断电",
            "Have an electrician check the circuit at once; switch off if needed",
        ),
        ("电弧次数", "Arcing"),
        "次/秒",
        0,
        Side::Above,
    ),
    rule(
        "electrical.device_alarm",
        "电气火灾探测器报警",
        "Electrical fire detector alarm",
        "通知电工现场检查报警回路，必要时断电",
        "Have an electrician check the alarming circuit; switch off if needed",
    ),
    rule(
        "fire_lane.blocked",
        "消防通道/安全出口堵塞",
        "Fire lane or exit blocked",
        "通知物业清理，确保消防车通道和疏散通道畅通",
        "Have the property staff clear it; keep the lane and exits free",
    ),
    rule(
        "fire_lane.ebike",
        "电动车违规进梯/充电",
        "E-bike in a lift or charging indoors",
        "通知物业劝离电动车，制止违规充电",
        "Have the property staff remove the e-bike and stop the charging",
    ),
    rule(
        "fire_lane.fire",
        "视频发现烟火",
        "Smoke or flame on camera",
        FIRE_ZH,
        FIRE_EN,
    ),
    rule(
        "transmitter.fire_alarm",
        "火灾报警",
        "Fire alarm",
        FIRE_ZH,
        FIRE_EN,
    ),
    rule(
        "transmitter.fault",
        "消防设施故障",
        "Fire system fault",
        "通知维保单位检修，记录故障",
        "Call the maintenance contractor; log the fault",
    ),
    rule(
        "transmitter.supervisory",
        "监管信号",
        "Supervisory signal",
        "核实监管信号原因，尽快恢复",
        "Find out why the point is supervised; restore it soon",
    ),
    rule(
        "transmitter.shielded",
        "点位长时间屏蔽",
        "Point shielded too long",
        "核实屏蔽原因，督促维保单位修复后解除屏蔽",
        "Find out why the point is shielded; have it repaired and unshielded",
    ),
    rule(
        "transmitter.mains_fault",
        "消防主电故障（备电运行）",
        "Fire system mains failed (on backup power)",
        "检查建筑供电和消防电源，备电耗尽前恢复主电",
        "Check the building's mains and the fire system's supply; restore it before the backup runs out",
    ),
    rule(
        "transmitter.link_fault",
        "传输装置与火灾报警控制器通讯故障",
        "Transmitter lost the fire alarm panel",
        "检查传输装置与控制器之间的连线，恢复前控制器报警无法上传",
        "Check the line between transmitter and panel; until then the panel's alarms cannot arrive",
    ),
    rule(
        "transmitter.duty_unanswered",
        "查岗未应答",
        "Duty check not answered",
        "控制室可能脱岗，立即电话联系值班人员并派人到场",
        "The control room may be unattended: phone the operators now and send someone there",
    ),
    rule(
        "device.offline",
        "设备离线",
        "Device offline",
        "检查设备供电和网络",
        "Check the device's power and network",
    ),
    rule(
        "device.flapping",
        "设备频繁上下线",
        "Device flapping online/offline",
        "检查设备供电、网络信号和接线是否松动",
        "Check the device's power, signal and wiring",
    ),
    rule(
        "device.battery_low",
        "设备电量低",
        "Device battery low",
        "安排维保单位更换电池",
        "Have the maintenance contractor replace the battery",
    ),
    rule(
        "device.stuck",
        "传感器读数长时间不变",
        "Sensor reading stuck",
        "到现场对照仪表核实实际读数，检查传感器是否失效（水压读数为0时还要检查阀门是否关闭）",
        "Compare with the instrument on site; check whether the sensor is dead (at a pressure of 0, also whether a valve is closed)",
    ),
    rule(
        "device.implausible",
        "传感器读数不合理",
        "Implausible sensor reading",
        "对照现场仪表核实读数，检查传感器量程、单位设置和接线",
        "Compare with the instrument on site; check the sensor's range, unit setting and wiring",
    ),
    rule(
        "device.sensor_fault",
        "传感器故障/被拆",
        "Sensor fault or tamper",
        "通知维保单位现场检查",
        "Have the maintenance contractor check it on site",
    ),
];

/// The words for `rule`, if the table has them.
pub fn rule_text(rule: &str) -> Option<&'static RuleText> {
    RULES.iter().find(|r| r.id == rule)
}

/// A time zone by IANA name (`Asia/Shanghai`), from the system's database or the copy built
/// into the binary (so it works without `/usr/share/zoneinfo`).
pub fn time_zone(name: &str) -> Result<TimeZone, String> {
    jiff::tz::db()
        .get(name)
        .or_else(|_| jiff::tz::TimeZoneDatabase::bundled().get(name))
        .map_err(|e| format!("unknown time zone {name:?}: {e}"))
}

/// How every message of a deployment is rendered: language, time zone and the address of the
/// dashboard the links point to.
#[derive(Debug, Clone)]
pub struct Context {
    /// Language.
    pub lang: Lang,
    /// The control room's time zone.
    pub tz: TimeZone,
    /// Base of the links (`http.public_url`).
    pub public_url: String,
}

impl Default for Context {
    fn default() -> Self {
        Context {
            lang: Lang::Zh,
            // UTC+8 when even the built-in database cannot say.
            tz: time_zone("Asia/Shanghai")
                .unwrap_or_else(|_| TimeZone::fixed(jiff::tz::Offset::constant(8))),
            public_url: "http://127.0.0.1:8080".into(),
        }
    }
}

impl Context {
    /// [`render`] with this context.
    pub fn render(&self, alert: &Value, event: Event) -> Rendered {
        render(alert, event, self.lang, &self.tz, &self.public_url)
    }

    /// A notification as its recipient reads it: the row's language and the control room's
    /// time zone where the routing set them, this context's otherwise.
    pub fn render_for(&self, n: &crate::model::notification::Notification) -> Rendered {
        let lang = super::digest::lang_of(self, n);
        let tz =
            n.tz.as_deref()
                .and_then(|t| time_zone(t).ok())
                .unwrap_or_else(|| self.tz.clone());
        match n.subject {
            Subject::Alert(_) => render(&n.snapshot, n.event, lang, &tz, &self.public_url),
            Subject::Workorder(_) => workorder(&n.snapshot, n.event, lang, &tz, &self.public_url),
            Subject::Summary(_) => summary(&n.snapshot, lang, &tz, &self.public_url),
        }
    }
}

impl Context {
    /// A message as its recipient reads it: one notification as itself, several as a digest
    /// ([`super::digest`]).
    pub fn render_batch(&self, b: &super::Batch) -> Rendered {
        match b.single() {
            Some(n) => self.render_for(n),
            None => super::digest::render(self, b),
        }
    }
}

/// A rendered message, in the forms the channels take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line: severity, event, what and where, e.g. `【紧急·报警】火灾报警 东塔 3F`.
    pub title: String,
    /// The facts, one per line, each `label：value`.
    pub facts: Vec<String>,
    /// (added) Titled lists shown after the facts in e-mail only (a daily summary's devices,
    /// alerts and work orders); empty for alerts and work orders.
    pub sections: Vec<(String, Vec<String>)>,
    /// What to do next.
    pub action: String,
    /// Link to the alert.
    pub link: String,
    /// The link's text: `查看告警 a-000123`.
    pub link_label: String,
    /// `回复确认码 K7Q2`, when the alert has an acknowledgement code.
    pub ack: Option<String>,
    /// E-mail subject: the title, then the event and severity in English capitals, the rule
    /// and the alert id (`ALERT CRITICAL transmitter.fire_alarm a-000123`), for mail filters.
    pub subject: String,
    /// A text message: at most about 70 characters before the acknowledgement code and the
    /// link.
    pub short: String,
}

impl Rendered {
    /// Plain text (e-mail).
    pub fn plain(&self) -> String {
        let mut s = format!("{}\n\n", self.title);
        for f in &self.facts {
            s.push_str(f);
            s.push('\n');
        }
        s.push('\n');
        for (heading, items) in &self.sections {
            s.push_str(heading);
            s.push('\n');
            for i in items {
                s.push_str("- ");
                s.push_str(i);
                s.push('\n');
            }
            s.push('\n');
        }
        s.push_str(&self.action);
        s.push('\n');
        if let Some(a) = &self.ack {
            s.push_str(a);
            s.push('\n');
        }
        s.push_str(&self.link);
        s.push('\n');
        s
    }

    /// Markdown of the subset WeCom and DingTalk robots both show: a heading, quoted facts,
    /// bold, a link.
    pub fn markdown(&self) -> String {
        let mut s = format!("### {}\n", self.title);
        for f in &self.facts {
            s.push_str(&format!("> {f}\n"));
        }
        s.push_str(&format!("\n**{}**\n", self.action));
        if let Some(a) = &self.ack {
            s.push_str(&format!("\n**{a}**\n"));
        }
        s.push_str(&format!("\n[{}]({})\n", self.link_label, self.link));
        s
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
pub fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn cut_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn text<'a>(a: &'a Value, k: &str) -> Option<&'a str> {
    a.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn number(a: &Value, k: &str) -> Option<f64> {
    a.get(k).and_then(Value::as_f64)
}

/// An RFC 3339 time of the snapshot in `tz`: `2026-11-29 09:30:00 (UTC+08:00)`.
pub fn local_time(rfc3339: &str, tz: &TimeZone) -> String {
    match rfc3339.parse::<jiff::Timestamp>() {
        Ok(t) => t
            .to_zoned_datetime(tz.clone())
            .strftime("%Y-%m-%d %H:%M:%S (UTC%:z)")
            .to_string(),
        Err(_) => rfc3339.to_owned(),
    }
}

fn short_time(rfc3339: &str, tz: &TimeZone) -> String {
    match rfc3339.parse::<jiff::Timestamp>() {
        Ok(t) => t
            .to_zoned_datetime(tz.clone())
            .strftime("%m-%d %H:%M")
            .to_string(),
        Err(_) => rfc3339.to_owned(),
    }
}

fn severity_word(severity: &str, lang: Lang) -> &'static str {
    match (severity, lang) {
        ("critical", Lang::Zh) => "紧急",
        ("major", Lang::Zh) => "重要",
        ("minor", Lang::Zh) => "一般",
        ("info", Lang::Zh) => "提示",
        ("critical", Lang::En) => "Critical",
        ("major", Lang::En) => "Major",
        ("minor", Lang::En) => "Minor",
        ("info", Lang::En) => "Info",
        _ => "?",
    }
}

fn event_word(event: Event, lang: Lang) -> &'static str {
    match (event, lang) {
        (Event::Fired | Event::Refired, Lang::Zh) => "报警",
        (Event::Cleared, Lang::Zh) => "恢复",
        (Event::Repeat, Lang::Zh) => "提醒",
        (Event::Closed, Lang::Zh) => "已关闭",
        (Event::Acknowledged, Lang::Zh) => "已确认",
        (Event::Escalated, Lang::Zh) => "升级通知",
        (Event::Fired | Event::Refired, Lang::En) => "alarm",
        (Event::Cleared, Lang::En) => "cleared",
        (Event::Repeat, Lang::En) => "reminder",
        (Event::Closed, Lang::En) => "closed",
        (Event::Acknowledged, Lang::En) => "acknowledged",
        (Event::Escalated, Lang::En) => "escalated",
        (Event::WorkorderCreated, Lang::Zh) => "新工单",
        (Event::WorkorderRectified, Lang::Zh) => "待复查",
        (Event::WorkorderSentBack, Lang::Zh) => "退回重改",
        (Event::WorkorderOverdue, Lang::Zh) => "已超期",
        (Event::WorkorderClosed, Lang::Zh) => "已销号",
        (Event::WorkorderCreated, Lang::En) => "new work order",
        (Event::WorkorderRectified, Lang::En) => "to verify",
        (Event::WorkorderSentBack, Lang::En) => "sent back",
        (Event::WorkorderOverdue, Lang::En) => "overdue",
        (Event::WorkorderClosed, Lang::En) => "closed",
        (Event::DailySummary, Lang::Zh) => "每日汇总",
        (Event::DailySummary, Lang::En) => "daily summary",
    }
}

/// The English word mail filters look for (`ALERT`, `CLEARED`, …).
fn event_tag(event: Event) -> &'static str {
    match event {
        Event::Fired | Event::Refired => "ALERT",
        Event::Cleared => "CLEARED",
        Event::Repeat => "STILL ACTIVE",
        Event::Closed => "CLOSED",
        Event::Acknowledged => "ACKNOWLEDGED",
        Event::Escalated => "ESCALATED",
        Event::WorkorderCreated => "WORK ORDER",
        Event::WorkorderRectified => "RECTIFIED",
        Event::WorkorderSentBack => "SENT BACK",
        Event::WorkorderOverdue => "OVERDUE",
        Event::WorkorderClosed => "CLOSED",
        Event::DailySummary => "DAILY SUMMARY",
    }
}

fn kind_word(kind: &str, lang: Lang) -> &str {
    match (kind, lang) {
        ("water_pressure", Lang::Zh) => "消防水压监测",
        ("water_level", Lang::Zh) => "消防水箱/水池液位监测",
        ("electrical", Lang::Zh) => "电气火灾监控",
        ("fire_lane", Lang::Zh) => "生命通道视频监控",
        ("transmitter", Lang::Zh) => "用户信息传输装置",
        ("water_pressure", Lang::En) => "pressure monitor",
        ("water_level", Lang::En) => "level monitor",
        ("electrical", Lang::En) => "electrical fire monitor",
        ("fire_lane", Lang::En) => "camera",
        ("transmitter", Lang::En) => "transmitter",
        (other, _) => other,
    }
}

fn classification_word(c: &str, lang: Lang) -> &str {
    match (c, lang) {
        ("real", Lang::Zh) => "真实警情",
        ("false_alarm", Lang::Zh) => "误报",
        ("test", Lang::Zh) => "测试",
        ("fault", Lang::Zh) => "设备故障",
        ("resolved", Lang::Zh) => "隐患已消除",
        ("false_alarm", Lang::En) => "false alarm",
        ("resolved", Lang::En) => "hazard removed",
        (other, _) => other,
    }
}

/// The on-site check (现场核实), when the alert has one: the result, who, and the 119 call.
fn verification_line(a: &Value, lang: Lang, tz: &TimeZone) -> Option<String> {
    let v = text(a, "verification")?;
    let by = text(a, "verified_by").unwrap_or("?");
    let called = text(a, "called_119_at").map(|t| clock_time(t, tz));
    let zh = lang == Lang::Zh;
    let what = match (v, zh) {
        ("real", true) => "真实火警",
        ("false_alarm", true) => "误报",
        ("test", true) => "测试",
        ("fault", true) => "设备故障",
        ("real", false) => "real fire",
        ("false_alarm", false) => "false alarm",
        ("test", false) => "test",
        ("fault", false) => "device fault",
        (other, _) => other,
    };
    Some(match (called, zh) {
        (Some(t), true) => format!("{what}（{by}，已于 {t} 拨打119）"),
        (None, true) => format!("{what}（{by}）"),
        (Some(t), false) => format!("{what} ({by}, 119 called at {t})"),
        (None, false) => format!("{what} ({by})"),
    })
}

/// `HH:MM` in the control room's zone.
fn clock_time(rfc3339: &str, tz: &TimeZone) -> String {
    match rfc3339.parse::<jiff::Timestamp>() {
        Ok(t) => t
            .to_zoned_datetime(tz.clone())
            .strftime("%H:%M")
            .to_string(),
        Err(_) => rfc3339.to_owned(),
    }
}

fn fmt_num(v: f64, decimals: usize) -> String {
    format!("{v:.decimals$}")
}

/// `管网压力 0.05 MPa，低于 0.10 MPa`: the value against its threshold, when the alert has them.
fn value_line(a: &Value, r: Option<&RuleText>, event: Event, lang: Lang) -> Option<String> {
    let value = number(a, "value");
    let threshold = number(a, "threshold");
    if value.is_none() && threshold.is_none() {
        return None;
    }
    let (quantity, unit, decimals, side) = match r {
        Some(r) => (
            match lang {
                Lang::Zh => r.quantity.0,
                Lang::En => r.quantity.1,
            },
            r.unit,
            r.decimals,
            r.side,
        ),
        None => ("", "", 2, Side::None),
    };
    let quantity = if quantity.is_empty() {
        match lang {
            Lang::Zh => "数值",
            Lang::En => "Value",
        }
    } else {
        quantity
    };
    let with_unit = |v: f64| {
        let n = fmt_num(v, decimals);
        if unit.is_empty() {
            n
        } else {
            format!("{n} {unit}")
        }
    };
    let (comma, colon) = match lang {
        Lang::Zh => ("，", " "),
        Lang::En => (", ", " "),
    };
    let mut s = match value {
        Some(v) => format!("{quantity}{colon}{}", with_unit(v)),
        None => quantity.to_owned(),
    };
    if let Some(t) = threshold {
        // A cleared alert's value is back on the good side: name the threshold only.
        let relation = match (side, lang, event == Event::Cleared || value.is_none()) {
            (_, Lang::Zh, true) => "阈值",
            (_, Lang::En, true) => "threshold",
            (Side::Below, Lang::Zh, false) => "低于",
            (Side::Above, Lang::Zh, false) => "高于",
            (Side::Drop, Lang::Zh, false) => "下降超过",
            (Side::None, Lang::Zh, false) => "阈值",
            (Side::Below, Lang::En, false) => "below",
            (Side::Above, Lang::En, false) => "above",
            (Side::Drop, Lang::En, false) => "fell by more than",
            (Side::None, Lang::En, false) => "threshold",
        };
        s.push_str(&format!("{comma}{relation} {}", with_unit(t)));
    }
    Some(s)
}

/// Renders `event` of the alert snapshot `a` (contract JSON, plus `location`, `building_name`
/// and `ack_code` when present) in `lang`, with times in `tz` and the link under
/// `public_url`.
pub fn render(a: &Value, event: Event, lang: Lang, tz: &TimeZone, public_url: &str) -> Rendered {
    let zh = lang == Lang::Zh;
    let id = text(a, "id").unwrap_or("?");
    let rule_id = text(a, "rule").unwrap_or("?");
    let r = rule_text(rule_id);
    let name = match (r, lang) {
        (Some(r), Lang::Zh) => r.zh,
        (Some(r), Lang::En) => r.en,
        (None, _) => rule_id,
    };
    let severity = text(a, "severity").unwrap_or("?");
    let sev = severity_word(severity, lang);
    let ev = event_word(event, lang);
    let building = text(a, "building").unwrap_or("?");
    let building_label = match text(a, "building_name") {
        Some(n) if zh => format!("{n}（{building}）"),
        Some(n) => format!("{n} ({building})"),
        None => building.to_owned(),
    };
    let location = text(a, "location");
    let zone = text(a, "channel");
    let device = text(a, "device").unwrap_or("?");
    let kind = kind_word(text(a, "kind").unwrap_or("?"), lang);
    // Where, most telling first: the building, the device's place, the zone or point.
    let mut place = vec![text(a, "building_name").unwrap_or(building).to_owned()];
    place.extend(location.map(str::to_owned));
    place.extend(zone.map(str::to_owned));
    let place = place.join(" ");

    let title = if zh {
        format!("【{sev}·{ev}】{name} {place}")
    } else {
        format!("[{sev} {ev}] {name} at {place}")
    };
    let mut facts = Vec::new();
    let label = |zh_label: &str, en_label: &str, v: String| {
        if zh {
            format!("{zh_label}：{v}")
        } else {
            format!("{en_label}: {v}")
        }
    };
    let mut where_ = building_label.clone();
    if let Some(l) = location {
        where_.push_str(&format!(" {l}"));
    }
    if let Some(z) = zone {
        where_.push_str(&if zh {
            format!("，区域/点位 {z}")
        } else {
            format!(", zone/point {z}")
        });
    }
    facts.push(label("位置", "Where", where_));
    facts.push(if zh {
        format!("设备：{device}（{kind}）")
    } else {
        format!("Device: {device} ({kind})")
    });
    let started = text(a, "started_at").unwrap_or("?");
    facts.push(label("开始", "Since", local_time(started, tz)));
    match event {
        Event::Cleared => {
            if let Some(c) = text(a, "cleared_at") {
                facts.push(label("恢复", "Cleared", local_time(c, tz)));
            }
        }
        Event::Closed => {
            if let Some(c) = text(a, "closed_at") {
                facts.push(label("关闭", "Closed", local_time(c, tz)));
            }
        }
        Event::Acknowledged => {
            if let Some(c) = text(a, "acknowledged_at") {
                facts.push(label("确认", "Acknowledged", local_time(c, tz)));
            }
        }
        _ => {}
    }
    if let Some(v) = value_line(a, r, event, lang) {
        facts.push(label("数值", "Value", v));
    }
    let status = match text(a, "status") {
        Some("acknowledged") => {
            let by = text(a, "acknowledged_by").unwrap_or("?");
            if zh {
                format!("已确认（{by}）")
            } else {
                format!("acknowledged by {by}")
            }
        }
        Some("closed") => {
            let by = text(a, "closed_by").unwrap_or("?");
            let c = classification_word(text(a, "classification").unwrap_or("?"), lang);
            if zh {
                format!("已关闭（{by}，结论：{c}）")
            } else {
                format!("closed by {by} as {c}")
            }
        }
        _ if zh => "待确认".to_owned(),
        _ => "open, not acknowledged".to_owned(),
    };
    // The engine's own words: they carry what the device said (a point's description).
    if let Some(m) = text(a, "message") {
        facts.push(label("详情", "Detail", m.to_owned()));
    }
    facts.push(label("状态", "Status", status));
    // (added) A flapping alert is told once; what follows is quiet until it is stable.
    if let Some(f) = a.get("flapping").filter(|f| f.is_object()) {
        let n = f["changes"].as_i64().unwrap_or(0);
        facts.push(if zh {
            format!("频繁波动：近期已触发 {n} 次，稳定前不再逐次通知")
        } else {
            format!("Flapping: fired {n} times lately; no further messages until it is stable")
        });
    }
    // (added) A link-down or mains alert stands for the alerts it holds back.
    let inhibits = a["inhibits"].as_i64().unwrap_or(0);
    if inhibits > 0 {
        facts.push(if zh {
            format!("已合并：其后 {inhibits} 条告警（离线等）暂不逐条通知")
        } else {
            format!("Folded: {inhibits} alerts behind it (offline and the like) are not sent one by one")
        });
    }
    if let Some(v) = verification_line(a, lang, tz) {
        facts.push(label("现场核实", "Verified on site", v));
    }
    facts.push(label("编号", "Alert", id.to_owned()));

    let action = match (event, r) {
        (Event::Cleared, _) if zh => "条件已恢复：请核实现场并在系统中关闭告警。".to_owned(),
        (Event::Cleared, _) => "The condition is over: check on site and close the alert.".into(),
        (Event::Closed, _) if zh => "告警已关闭，无需处理。".to_owned(),
        (Event::Closed, _) => "The alert is closed; nothing to do.".to_owned(),
        (Event::Acknowledged, _) if zh => format!(
            "{} 已确认并负责处置，其他人无需重复处理。",
            text(a, "acknowledged_by").unwrap_or("?")
        ),
        (Event::Acknowledged, _) => format!(
            "{} took it; nothing for others to do.",
            text(a, "acknowledged_by").unwrap_or("?")
        ),
        (Event::Escalated, _) if a.get("workorder_overdue").is_some() => {
            let wo = a["workorder_overdue"]["workorder"].as_str().unwrap_or("?");
            if zh {
                format!(
                    "隐患整改工单 {wo} 已超过整改期限仍未整改，现上报消防监管部门，请督促整改。"
                )
            } else {
                format!("Work order {wo} is past its deadline unrectified; reported to the fire office.")
            }
        }
        (Event::Escalated, Some(r)) if zh => {
            format!(
                "值班人员未在规定时间内确认，现升级通知您。处置：{}。",
                r.action_zh
            )
        }
        (Event::Escalated, Some(r)) => format!(
            "Nobody on duty acknowledged in time, so you are told now. Next: {}.",
            r.action_en
        ),
        (_, Some(r)) if zh => format!("处置：{}。", r.action_zh),
        (_, Some(r)) => format!("Next: {}.", r.action_en),
        (_, None) if zh => "处置：请尽快现场核实。".to_owned(),
        (_, None) => "Next: check on site soon.".to_owned(),
    };
    let link = format!("{}/alerts/{id}", public_url.trim_end_matches('/'));
    let link_label = if zh {
        format!("查看告警 {id}")
    } else {
        format!("Open alert {id}")
    };
    let ack = text(a, "ack_code").map(|c| {
        if zh {
            format!("回复确认码 {c}")
        } else {
            format!("Reply {c} to acknowledge")
        }
    });
    let subject = format!(
        "[firewatch] {title} ({} {} {rule_id} {id})",
        event_tag(event),
        severity.to_uppercase()
    );

    // The text message: short, most important first.
    let value = value_line(a, r, event, lang);
    let when = short_time(
        match event {
            Event::Cleared => text(a, "cleared_at").unwrap_or(started),
            _ => started,
        },
        tz,
    );
    let core = if zh {
        let mut s = format!("【{sev}{ev}】{name}：{place}");
        if let Some(v) = &value {
            s.push_str(&format!("，{v}"));
        }
        s.push_str(&format!("，{when}。"));
        if matches!(event, Event::Fired | Event::Refired | Event::Repeat) {
            s.push_str(r.map_or("请尽快现场核实", |r| r.action_zh));
            s.push('。');
        }
        cut_chars(&s, 70)
    } else {
        let mut s = format!("[{sev} {ev}] {name}: {place}");
        if let Some(v) = &value {
            s.push_str(&format!(", {v}"));
        }
        s.push_str(&format!(", {when}."));
        if matches!(event, Event::Fired | Event::Refired | Event::Repeat) {
            s.push_str(&format!(
                " {}.",
                r.map_or("Check on site soon", |r| r.action_en)
            ));
        }
        cut_chars(&s, 160)
    };
    let mut short = core;
    if let Some(a) = &ack {
        short.push_str(a);
        short.push_str(if zh { "。" } else { ". " });
    }
    short.push_str(&link);
    Rendered {
        title,
        facts,
        action,
        link,
        link_label,
        ack,
        subject,
        short,
        sections: Vec::new(),
    }
}

/// Renders `event` of the work-order snapshot `w` (contract JSON, plus `building_name` and
/// `step`: the person, note and photo of the step told of) in `lang`, with times in `tz`.
pub fn workorder(w: &Value, event: Event, lang: Lang, tz: &TimeZone, public_url: &str) -> Rendered {
    let zh = lang == Lang::Zh;
    let id = text(w, "id").unwrap_or("?");
    let building = text(w, "building").unwrap_or("?");
    let place = text(w, "building_name").unwrap_or(building);
    let ev = event_word(event, lang);
    let hazard = text(w, "rule")
        .map(|r| match (rule_text(r), lang) {
            (Some(t), Lang::Zh) => t.zh,
            (Some(t), Lang::En) => t.en,
            (None, _) => r,
        })
        .unwrap_or(if zh { "隐患" } else { "hazard" });
    let title = if zh {
        format!("【隐患整改·{ev}】{hazard} {place}")
    } else {
        format!("[Work order {ev}] {hazard} at {place}")
    };
    let label = |zh_label: &str, en_label: &str, v: &str| {
        if zh {
            format!("{zh_label}：{v}")
        } else {
            format!("{en_label}: {v}")
        }
    };
    let building_label = match text(w, "building_name") {
        Some(n) if zh => format!("{n}（{building}）"),
        Some(n) => format!("{n} ({building})"),
        None => building.to_owned(),
    };
    let deadline = text(w, "deadline_at").map(|d| local_time(d, tz));
    let mut facts = vec![
        label("楼宇", "Building", &building_label),
        label("隐患", "Hazard", text(w, "description").unwrap_or("?")),
    ];
    if let Some(d) = &deadline {
        facts.push(label("整改期限", "Deadline", d));
    }
    if let Some(p) = text(w, "photo_url") {
        facts.push(label("隐患照片", "Photo", p));
    }
    let step = &w["step"];
    let by = text(step, "by");
    if event != Event::WorkorderCreated || by != Some("firewatch") {
        if let Some(by) = by {
            facts.push(label("经办人", "By", by));
        }
    }
    if event != Event::WorkorderCreated {
        if let Some(n) = text(step, "note") {
            facts.push(label("说明", "Note", n));
        }
        if let Some(p) = text(step, "photo_url") {
            facts.push(label("整改照片", "Photo of the work", p));
        }
    }
    if let Some(a) = text(w, "alert") {
        facts.push(label("来源告警", "From alert", a));
    }
    facts.push(label("工单", "Work order", id));
    let action = match (event, zh) {
        (Event::WorkorderCreated, true) => {
            "请在整改期限前完成整改，并在平台上报整改结果（附说明和照片）。"
        }
        (Event::WorkorderCreated, false) => {
            "Rectify it before the deadline and report it done on the platform, with a note and a photo."
        }
        (Event::WorkorderRectified, true) => "管理人已上报整改完成：请复查现场，通过或退回。",
        (Event::WorkorderRectified, false) => {
            "The manager reports it rectified: check on site, then accept it or send it back."
        }
        (Event::WorkorderSentBack, true) => "复查未通过：请按说明重新整改并再次上报。",
        (Event::WorkorderSentBack, false) => {
            "The check did not pass: rectify again as noted and report it once more."
        }
        (Event::WorkorderOverdue, true) => "已超过整改期限仍未整改，请立即整改并上报；已报消防监管部门。",
        (Event::WorkorderOverdue, false) => {
            "Past its deadline unrectified: rectify and report it now; the fire office is told."
        }
        (_, true) => "复查通过，工单已销号，无需处理。",
        (_, false) => "Checked and accepted: the work order is closed; nothing to do.",
    }
    .to_owned();
    let link = format!("{}/workorders/{id}", public_url.trim_end_matches('/'));
    let link_label = if zh {
        format!("查看工单 {id}")
    } else {
        format!("Open work order {id}")
    };
    let subject = format!(
        "[firewatch] {title} ({} {} {id})",
        event_tag(event),
        text(w, "rule").unwrap_or("workorder")
    );
    let due = text(w, "deadline_at").map(|d| short_time(d, tz));
    let mut short = if zh {
        let mut s = format!("【隐患整改·{ev}】{place}：{hazard}");
        if let (Some(d), true) = (&due, event != Event::WorkorderClosed) {
            s.push_str(&format!("，期限{d}"));
        }
        s.push('。');
        cut_chars(&s, 70)
    } else {
        let mut s = format!("[Work order {ev}] {place}: {hazard}");
        if let (Some(d), true) = (&due, event != Event::WorkorderClosed) {
            s.push_str(&format!(", due {d}"));
        }
        s.push_str(". ");
        cut_chars(&s, 160)
    };
    short.push_str(&link);
    Rendered {
        title,
        facts,
        action,
        link,
        link_label,
        ack: None,
        subject,
        short,
        sections: Vec::new(),
    }
}

/// The words for a data-quality finding (`DeviceRecord::quality`, contract section 4).
fn finding_word(f: &str, lang: Lang) -> &str {
    match (f, lang) {
        ("clock_skew", Lang::Zh) => "时钟偏差",
        ("out_of_order", Lang::Zh) => "消息乱序",
        ("gaps", Lang::Zh) => "数据缺失",
        ("loss_rate", Lang::Zh) => "丢包率高",
        ("low_battery", Lang::Zh) => "电量低",
        ("weak_signal", Lang::Zh) => "信号弱",
        ("flapping", Lang::Zh) => "频繁上下线",
        ("stuck", Lang::Zh) => "数值长时间不变",
        ("implausible", Lang::Zh) => "数值超出合理范围",
        ("clock_skew", Lang::En) => "clock skew",
        ("out_of_order", Lang::En) => "out of order",
        ("gaps", Lang::En) => "gaps in the data",
        ("loss_rate", Lang::En) => "high loss",
        ("low_battery", Lang::En) => "low battery",
        ("weak_signal", Lang::En) => "weak signal",
        ("flapping", Lang::En) => "goes on and off line",
        ("stuck", Lang::En) => "stuck value",
        ("implausible", Lang::En) => "implausible value",
        (other, _) => other,
    }
}

fn rule_name(rule: &str, lang: Lang) -> &str {
    match (rule_text(rule), lang) {
        (Some(t), Lang::Zh) => t.zh,
        (Some(t), Lang::En) => t.en,
        (None, _) => rule,
    }
}

fn count(v: &Value, k: &str) -> u64 {
    v["counts"][k].as_u64().unwrap_or(0)
}

/// Renders the daily summary snapshot `s` (see `summary::compose`, plus its `id`) in `lang`,
/// with times in `tz` and the link under `public_url`. The facts are the counts (with the
/// first few offline devices): the compact form the robots and SMS take; e-mail adds every
/// list as a section.
pub fn summary(s: &Value, lang: Lang, tz: &TimeZone, public_url: &str) -> Rendered {
    let zh = lang == Lang::Zh;
    let id = text(s, "id").unwrap_or("?");
    let building = text(s, "building").unwrap_or("?");
    let place = text(s, "building_name").unwrap_or(building);
    let day = text(s, "day").unwrap_or("?");
    let when = |k: &Value| k.as_str().map(|t| local_time(t, tz)).unwrap_or_default();
    let ids = |list: &Value| -> String {
        let all: Vec<&str> = list
            .as_array()
            .map(|a| a.iter().filter_map(|d| d["id"].as_str()).collect())
            .unwrap_or_default();
        let mut shown =
            all.iter()
                .take(5)
                .copied()
                .collect::<Vec<_>>()
                .join(if zh { "、" } else { ", " });
        if all.len() > 5 {
            shown.push_str(if zh { " 等" } else { " …" });
        }
        shown
    };
    let c = |k: &str| count(s, k);
    let title = if zh {
        format!("【每日汇总】{place} {day}")
    } else {
        format!("[Daily summary] {place} {day}")
    };
    let building_label = match text(s, "building_name") {
        Some(n) if zh => format!("{n}（{building}）"),
        Some(n) => format!("{n} ({building})"),
        None => building.to_owned(),
    };
    let with_ids = |n: u64, unit_zh: &str, unit_en: &str, list: &Value| {
        let listed = ids(list);
        match (zh, n, listed.is_empty()) {
            (true, 0, _) => "无".to_owned(),
            (false, 0, _) => "none".to_owned(),
            (true, n, true) => format!("{n} {unit_zh}"),
            (false, n, true) => format!("{n} {unit_en}"),
            (true, n, false) => format!("{n} {unit_zh}（{listed}）"),
            (false, n, false) => format!("{n} {unit_en} ({listed})"),
        }
    };
    let facts = if zh {
        vec![
            format!("楼宇：{building_label}"),
            format!("消防安全管理人：{}", text(s, "manager").unwrap_or("?")),
            format!("统计时间：{}", when(&s["created_at"])),
            format!(
                "设备：共 {} 台，在线 {} 台，离线 {} 台，未接入 {} 台",
                c("devices"),
                c("online"),
                c("offline"),
                c("never_seen")
            ),
            format!(
                "离线设备：{}",
                with_ids(c("offline"), "台", "", &s["offline"])
            ),
            format!(
                "数据质量：{}",
                with_ids(c("quality"), "台", "", &s["quality"])
            ),
            format!(
                "未关闭告警：{} 条（紧急 {} 条）",
                c("open_alerts"),
                c("open_critical")
            ),
            format!(
                "未完成工单：{} 张（超期 {} 张）",
                c("workorders"),
                c("workorders_overdue")
            ),
            format!("近24小时误报：{} 次", c("false_alarms")),
            format!("近24小时新告警：{} 条", c("alerts_fired")),
        ]
    } else {
        vec![
            format!("Building: {building_label}"),
            format!("Fire-safety manager: {}", text(s, "manager").unwrap_or("?")),
            format!("As of: {}", when(&s["created_at"])),
            format!(
                "Devices: {} in all, {} online, {} offline, {} never seen",
                c("devices"),
                c("online"),
                c("offline"),
                c("never_seen")
            ),
            format!(
                "Offline: {}",
                with_ids(c("offline"), "", "devices", &s["offline"])
            ),
            format!(
                "Data quality: {}",
                with_ids(c("quality"), "", "devices", &s["quality"])
            ),
            format!(
                "Open alerts: {} ({} critical)",
                c("open_alerts"),
                c("open_critical")
            ),
            format!(
                "Open work orders: {} ({} overdue)",
                c("workorders"),
                c("workorders_overdue")
            ),
            format!("False alarms, last 24 h: {}", c("false_alarms")),
            format!("New alerts, last 24 h: {}", c("alerts_fired")),
        ]
    };

    // The lists, for e-mail.
    let items = |k: &str, f: &dyn Fn(&Value) -> String| -> Vec<String> {
        let list = s[k].as_array().cloned().unwrap_or_default();
        let mut v: Vec<String> = list.iter().map(f).collect();
        let total = match k {
            "open_alerts" | "workorders" | "false_alarms" | "offline" | "quality"
            | "never_seen" => c(k),
            _ => v.len() as u64,
        };
        let more = total.saturating_sub(v.len() as u64);
        if more > 0 {
            v.push(if zh {
                format!("……另有 {more} 项未列出")
            } else {
                format!("… and {more} more")
            });
        }
        if v.is_empty() {
            v.push(if zh { "无" } else { "none" }.to_owned());
        }
        v
    };
    // A device and its location; `key` names the device's field (`id` in device lists).
    let place_at = |d: &Value, key: &str| -> String {
        let id = d[key].as_str().unwrap_or("?");
        match d["location"].as_str() {
            Some(l) => format!("{id} {l}"),
            None => id.to_owned(),
        }
    };
    let place_of = |d: &Value| place_at(d, "id");
    let heading = |zh_h: &str, en_h: &str, k: &str, unit_zh: &str| {
        if zh {
            format!("【{zh_h}】{} {unit_zh}", c(k))
        } else {
            format!("[{en_h}] {}", c(k))
        }
    };
    let offline = items("offline", &|d| {
        let last = when(&d["last_seen"]);
        if zh {
            format!("{}，最后上报 {last}", place_of(d))
        } else {
            format!("{}, last seen {last}", place_of(d))
        }
    });
    let never = items("never_seen", &|d| place_of(d));
    let quality = items("quality", &|d| {
        let f: Vec<&str> = d["quality"]
            .as_array()
            .map(|q| {
                q.iter()
                    .filter_map(Value::as_str)
                    .map(|x| finding_word(x, lang))
                    .collect()
            })
            .unwrap_or_default();
        if zh {
            format!("{}：{}", place_of(d), f.join("、"))
        } else {
            format!("{}: {}", place_of(d), f.join(", "))
        }
    });
    let alerts = items("open_alerts", &|a| {
        let sev = severity_word(a["severity"].as_str().unwrap_or("?"), lang);
        let name = rule_name(a["rule"].as_str().unwrap_or("?"), lang);
        let mut at = a["device"].as_str().unwrap_or("?").to_owned();
        if let Some(l) = a["location"].as_str() {
            at.push(' ');
            at.push_str(l);
        }
        let since = when(&a["started_at"]);
        let acked = a["status"] == "acknowledged";
        let id = a["id"].as_str().unwrap_or("?");
        if zh {
            let st = if acked { "已确认" } else { "待确认" };
            format!("{id} 【{sev}】{name} {at}，开始 {since}，{st}")
        } else {
            let st = if acked {
                "acknowledged"
            } else {
                "not acknowledged"
            };
            format!("{id} [{sev}] {name} at {at}, since {since}, {st}")
        }
    });
    let orders = items("workorders", &|w| {
        let id = w["id"].as_str().unwrap_or("?");
        let what = w["description"].as_str().unwrap_or("?");
        let due = when(&w["deadline_at"]);
        let overdue = w["overdue"] == true;
        let rectified = w["status"] == "rectified";
        if zh {
            let st = if rectified { "待复查" } else { "待整改" };
            let late = if overdue { "【已超期】" } else { "" };
            format!("{id} {st}：{what}，期限 {due}{late}")
        } else {
            let st = if rectified { "to verify" } else { "to rectify" };
            let late = if overdue { " [OVERDUE]" } else { "" };
            format!("{id} {st}: {what}, due {due}{late}")
        }
    });
    let false_alarms = items("false_alarms", &|a| {
        let id = a["id"].as_str().unwrap_or("?");
        let name = rule_name(a["rule"].as_str().unwrap_or("?"), lang);
        let closed = when(&a["closed_at"]);
        let by = a["closed_by"].as_str().unwrap_or("?");
        if zh {
            format!(
                "{id} {name} {}，{closed} 由 {by} 确认为误报",
                place_at(a, "device")
            )
        } else {
            format!(
                "{id} {name} at {}, closed as a false alarm at {closed} by {by}",
                place_at(a, "device")
            )
        }
    });
    let sections = vec![
        (
            heading("离线设备", "Offline devices", "offline", "台"),
            offline,
        ),
        (
            heading("未接入设备", "Registered, never seen", "never_seen", "台"),
            never,
        ),
        (
            heading("数据质量", "Data quality", "quality", "台"),
            quality,
        ),
        (
            heading("未关闭告警", "Open alerts", "open_alerts", "条"),
            alerts,
        ),
        (
            heading("未完成工单", "Open work orders", "workorders", "张"),
            orders,
        ),
        (
            heading(
                "近24小时误报",
                "False alarms, last 24 h",
                "false_alarms",
                "次",
            ),
            false_alarms,
        ),
    ];

    let mut todo: Vec<&str> = Vec::new();
    if c("offline") + c("never_seen") > 0 {
        todo.push(if zh {
            "检查离线和未接入设备的供电与网络"
        } else {
            "check the power and network of the devices offline or never seen"
        });
    }
    if c("quality") > 0 {
        todo.push(if zh {
            "安排维保单位处理数据质量问题"
        } else {
            "have the maintenance contractor look at the data-quality findings"
        });
    }
    if c("workorders_overdue") > 0 {
        todo.push(if zh {
            "立即完成已超期的整改工单"
        } else {
            "rectify the overdue work orders now"
        });
    } else if c("workorders") > 0 {
        todo.push(if zh {
            "按期完成整改工单"
        } else {
            "rectify the open work orders by their deadlines"
        });
    }
    if c("open_alerts") > 0 {
        todo.push(if zh {
            "配合控制室处置未关闭的告警"
        } else {
            "help the control room close the open alerts"
        });
    }
    let action = match (todo.is_empty(), zh) {
        (true, true) => "今日无异常，无需处理。".to_owned(),
        (true, false) => "Nothing out of order today; nothing to do.".to_owned(),
        (false, true) => format!("请{}。", todo.join("；")),
        (false, false) => {
            let mut t = todo.join("; ");
            if let Some(first) = t.get(..1) {
                t = first.to_uppercase() + &t[1..];
            }
            format!("{t}.")
        }
    };
    let link = format!("{}/api/v1/summaries/{id}", public_url.trim_end_matches('/'));
    let link_label = if zh {
        format!("查看汇总 {id}")
    } else {
        format!("Open summary {id}")
    };
    let subject = if zh {
        format!("[firewatch] 每日消防物联汇总 · {place} · {day}")
    } else {
        format!("[firewatch] Daily fire-safety IoT summary · {place} · {day}")
    };
    let short_day = day.get(5..).unwrap_or(day);
    let mut short = if zh {
        let s = format!(
            "【每日汇总】{place} {short_day}：离线{}台，数据质量{}台，未关闭告警{}条，工单{}张（超期{}），误报{}次。",
            c("offline"),
            c("quality"),
            c("open_alerts"),
            c("workorders"),
            c("workorders_overdue"),
            c("false_alarms")
        );
        cut_chars(&s, 70)
    } else {
        let s = format!(
            "[Daily summary] {place} {short_day}: {} offline, {} with quality findings, {} open alerts, {} work orders ({} overdue), {} false alarms. ",
            c("offline"),
            c("quality"),
            c("open_alerts"),
            c("workorders"),
            c("workorders_overdue"),
            c("false_alarms")
        );
        cut_chars(&s, 160)
    };
    short.push_str(&link);
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
    use serde_json::json;

    fn shanghai() -> TimeZone {
        time_zone("Asia/Shanghai").unwrap()
    }

    #[test]
    fn a_work_order_tells_the_manager_what_where_and_by_when() {
        let w = json!({"id": "w-000003", "alert": "a-000007", "building": "bsy-0012",
            "building_name": "滨江大厦", "rule": "fire_lane.blocked",
            "description": "东侧消防车道被货车占用", "photo_url": null, "status": "open",
            "deadline_at": "2026-12-01T02:00:00Z",
            "step": {"by": "firewatch", "note": "东侧消防车道被货车占用", "photo_url": null}});
        let r = workorder(
            &w,
            Event::WorkorderCreated,
            Lang::Zh,
            &shanghai(),
            "http://x/",
        );
        let t = r.plain();
        for needle in [
            "【隐患整改·新工单】",
            "滨江大厦（bsy-0012）",
            "东侧消防车道被货车占用",
            "整改期限：2026-12-01 10:00:00 (UTC+08:00)",
            "来源告警：a-000007",
            "http://x/workorders/w-000003",
            "上报整改结果",
        ] {
            assert!(t.contains(needle), "{needle} missing from {t}");
        }
        assert!(!t.contains("经办人"), "the system is not a person: {t}");
        assert!(
            r.subject.contains("WORK ORDER fire_lane.blocked w-000003"),
            "{}",
            r.subject
        );
        assert!(r.short.chars().count() < 110, "{}", r.short);

        let mut back = w.clone();
        back["step"] =
            json!({"by": "李四", "note": "车道仍有杂物", "photo_url": "https://p/1.jpg"});
        let t = workorder(
            &back,
            Event::WorkorderSentBack,
            Lang::En,
            &shanghai(),
            "http://x",
        )
        .plain();
        for needle in [
            "[Work order sent back]",
            "By: 李四",
            "Note: 车道仍有杂物",
            "Photo of the work: https://p/1.jpg",
            "rectify again",
        ] {
            assert!(t.contains(needle), "{needle} missing from {t}");
        }
    }

    fn daily() -> Value {
        json!({"id": "s-000002", "building": "bsy-0012", "building_name": "滨江大厦",
            "day": "2026-12-01", "reason": "scheduled", "manager": "刘强",
            "created_at": "2026-12-01T00:00:00Z",
            "counts": {"devices": 9, "online": 6, "offline": 2, "never_seen": 1, "quality": 1,
                "open_alerts": 1, "open_critical": 1, "workorders": 1,
                "workorders_overdue": 1, "false_alarms": 1, "alerts_fired": 3},
            "offline": [
                {"id": "wp-1", "kind": "water_pressure", "location": "B1 泵房",
                 "last_seen": "2026-11-30T20:00:00Z"},
                {"id": "cam-2", "kind": "fire_lane", "location": null,
                 "last_seen": "2026-11-30T22:00:00Z"}],
            "never_seen": [{"id": "el-1", "kind": "electrical", "location": "3F 电井"}],
            "quality": [{"id": "wp-2", "kind": "water_pressure", "location": "屋顶水箱",
                "quality": ["low_battery", "gaps"]}],
            "open_alerts": [{"id": "a-000007", "rule": "transmitter.fire_alarm",
                "severity": "critical", "status": "acknowledged", "device": "uitd-1",
                "location": "消防控制室", "started_at": "2026-11-30T23:30:00Z",
                "message": "fire_alarm at 3F"}],
            "workorders": [{"id": "w-000003", "status": "open", "rule": null,
                "description": "消防通道堆放杂物", "deadline_at": "2026-11-30T23:00:00Z",
                "overdue": true, "alert": null}],
            "false_alarms": [{"id": "a-000005", "rule": "transmitter.fire_alarm",
                "severity": "critical", "device": "uitd-1", "location": "消防控制室",
                "started_at": "2026-11-30T12:00:00Z", "closed_at": "2026-11-30T12:20:00Z",
                "closed_by": "张三"}],
            "alerts_fired": {"critical": 2, "minor": 1}})
    }

    #[test]
    fn every_quality_finding_has_a_word_in_both_languages() {
        use crate::rules::engine::DeviceRecord;
        for f in DeviceRecord::FINDINGS {
            for lang in [Lang::Zh, Lang::En] {
                assert_ne!(finding_word(f, lang), f, "{f} in {lang:?}");
            }
        }
    }

    #[test]
    fn a_daily_summary_counts_in_chat_and_lists_in_mail() {
        let r = summary(&daily(), Lang::Zh, &shanghai(), "http://x/");
        assert_eq!(
            r.subject,
            "[firewatch] 每日消防物联汇总 · 滨江大厦 · 2026-12-01"
        );
        let t = r.plain();
        for needle in [
            "【每日汇总】滨江大厦 2026-12-01",
            "楼宇：滨江大厦（bsy-0012）",
            "消防安全管理人：刘强",
            "统计时间：2026-12-01 08:00:00 (UTC+08:00)",
            "设备：共 9 台，在线 6 台，离线 2 台，未接入 1 台",
            "离线设备：2 台（wp-1、cam-2）",
            "未关闭告警：1 条（紧急 1 条）",
            "未完成工单：1 张（超期 1 张）",
            "近24小时误报：1 次",
            "【离线设备】2 台",
            "- wp-1 B1 泵房，最后上报 2026-12-01 04:00:00 (UTC+08:00)",
            "- el-1 3F 电井",
            "- wp-2 屋顶水箱：电量低、数据缺失",
            "- a-000007 【紧急】火灾报警 uitd-1 消防控制室，开始 2026-12-01 07:30:00 (UTC+08:00)，已确认",
            "- w-000003 待整改：消防通道堆放杂物，期限 2026-12-01 07:00:00 (UTC+08:00)【已超期】",
            "- a-000005 火灾报警 uitd-1 消防控制室，2026-11-30 20:20:00 (UTC+08:00) 由 张三 确认为误报",
            "立即完成已超期的整改工单",
            "http://x/api/v1/summaries/s-000002",
        ] {
            assert!(t.contains(needle), "{needle:?} missing from\n{t}");
        }
        // Chat gets the counts, not the lists.
        let md = r.markdown();
        assert!(
            md.starts_with("### 【每日汇总】滨江大厦 2026-12-01"),
            "{md}"
        );
        assert!(md.contains("> 离线设备：2 台（wp-1、cam-2）"), "{md}");
        assert!(!md.contains("最后上报"), "{md}");
        assert!(md.contains("[查看汇总 s-000002](http://x/api/v1/summaries/s-000002)"));
        let before_link = r.short.split("http").next().unwrap();
        assert!(before_link.chars().count() <= 70, "{}", r.short);
        assert!(
            r.short.starts_with("【每日汇总】滨江大厦 12-01：离线2台"),
            "{}",
            r.short
        );

        let en = summary(&daily(), Lang::En, &shanghai(), "http://x").plain();
        for needle in [
            "[Daily summary] 滨江大厦 2026-12-01",
            "Offline: 2 devices (wp-1, cam-2)",
            "w-000003 to rectify: 消防通道堆放杂物, due 2026-12-01 07:00:00 (UTC+08:00) [OVERDUE]",
            "wp-2 屋顶水箱: low battery, gaps",
            "; rectify the overdue work orders now",
        ] {
            assert!(en.contains(needle), "{needle:?} missing from\n{en}");
        }
        // A quiet day, and lists cut short say so.
        let mut quiet = daily();
        for k in [
            "offline",
            "never_seen",
            "quality",
            "open_alerts",
            "workorders",
            "false_alarms",
        ] {
            quiet["counts"][k] = 0.into();
            quiet[k] = json!([]);
        }
        quiet["counts"]["workorders_overdue"] = 0.into();
        let t = summary(&quiet, Lang::Zh, &shanghai(), "http://x").plain();
        assert!(t.contains("今日无异常"), "{t}");
        assert!(t.contains("离线设备：无"), "{t}");
        let mut long = daily();
        long["counts"]["offline"] = 60.into();
        let t = summary(&long, Lang::Zh, &shanghai(), "http://x").plain();
        assert!(t.contains("……另有 58 项未列出"), "{t}");
    }

    fn fire_alarm() -> Value {
        json!({"id": "a-000007", "rule": "transmitter.fire_alarm", "severity": "critical",
               "building": "bsy-0012", "building_name": "滨江大厦", "kind": "transmitter",
               "device": "uitd-0012", "channel": "3F-东走廊", "active": true, "status": "open",
               "value": null, "threshold": null, "message": "manual_alarm at 3F",
               "started_at": "2026-11-29T01:30:00.000Z", "location": "消防控制室",
               "ack_code": "K7Q2"})
    }

    fn pressure() -> Value {
        json!({"id": "a-000123", "rule": "water_pressure.low", "severity": "major",
               "building": "bsy-0012", "kind": "water_pressure", "device": "wp-0012-03",
               "channel": null, "active": true, "status": "open", "value": 0.05,
               "threshold": 0.1, "message": "Fire-water pressure 0.05 MPa below 0.1 MPa for 60 s",
               "started_at": "2026-11-29T01:30:00.000Z", "cleared_at": null,
               "location": "B1 泵房"})
    }

    #[test]
    fn a_fire_alarm_says_what_where_when_and_what_to_do() {
        let r = render(
            &fire_alarm(),
            Event::Fired,
            Lang::Zh,
            &shanghai(),
            "https://fw.example.org/",
        );
        assert_eq!(
            r.title,
            "【紧急·报警】火灾报警 滨江大厦 消防控制室 3F-东走廊"
        );
        let text = r.plain();
        for needle in [
            "位置：滨江大厦（bsy-0012） 消防控制室，区域/点位 3F-东走廊",
            "设备：uitd-0012（用户信息传输装置）",
            "开始：2026-11-29 09:30:00 (UTC+08:00)",
            "状态：待确认",
            "详情：manual_alarm at 3F",
            "处置：立即现场确认，确认真实火警后拨打119",
            "回复确认码 K7Q2",
            "https://fw.example.org/alerts/a-000007",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
        assert!(!text.contains("数值"), "{text}");
        assert!(
            r.subject
                .contains("ALERT CRITICAL transmitter.fire_alarm a-000007"),
            "{}",
            r.subject
        );
        assert!(r.subject.contains("【紧急·报警】"), "{}", r.subject);
        let md = r.markdown();
        assert!(md.starts_with("### 【紧急·报警】火灾报警"), "{md}");
        assert!(
            md.contains("[查看告警 a-000007](https://fw.example.org/alerts/a-000007)"),
            "{md}"
        );
        // The text message: the gist in about 70 characters, then the code and the link.
        assert!(
            r.short.starts_with("【紧急报警】火灾报警：滨江大厦"),
            "{}",
            r.short
        );
        assert!(r
            .short
            .ends_with("回复确认码 K7Q2。https://fw.example.org/alerts/a-000007"));
        let before_code = r.short.split("回复确认码").next().unwrap();
        assert!(before_code.chars().count() <= 70, "{}", r.short);
    }

    #[test]
    fn a_verified_fire_shows_the_check_and_the_119_call() {
        let mut a = fire_alarm();
        a["status"] = "closed".into();
        a["closed_by"] = "张三".into();
        a["classification"] = "real".into();
        a["verification"] = "real".into();
        a["verified_by"] = "张三".into();
        a["called_119_at"] = "2026-11-29T01:33:00.000Z".into();
        let zh = render(&a, Event::Closed, Lang::Zh, &shanghai(), "http://x").plain();
        assert!(
            zh.contains("现场核实：真实火警（张三，已于 09:33 拨打119）"),
            "{zh}"
        );
        let en = render(&a, Event::Closed, Lang::En, &shanghai(), "http://x").plain();
        assert!(
            en.contains("Verified on site: real fire (张三, 119 called at 09:33)"),
            "{en}"
        );
        let plain = render(
            &fire_alarm(),
            Event::Fired,
            Lang::Zh,
            &shanghai(),
            "http://x",
        );
        assert!(!plain.plain().contains("现场核实"));
    }

    #[test]
    fn an_overdue_work_order_says_so() {
        let mut a = pressure();
        a["workorder_overdue"] = json!({"workorder": "w-000003"});
        let t = render(&a, Event::Escalated, Lang::Zh, &shanghai(), "http://x").plain();
        assert!(t.contains("隐患整改工单 w-000003 已超过整改期限"), "{t}");
    }

    #[test]
    fn a_pressure_reading_is_shown_against_its_threshold_with_units() {
        let r = render(&pressure(), Event::Fired, Lang::Zh, &shanghai(), "http://x");
        let text = r.plain();
        assert!(
            text.contains("数值：管网压力 0.05 MPa，低于 0.10 MPa"),
            "{text}"
        );
        assert!(text.contains("处置：检查消防泵和阀门"), "{text}");
        assert!(text.contains("位置：bsy-0012 B1 泵房"), "{text}");
        assert!(
            r.title.starts_with("【重要·报警】消防水压过低"),
            "{}",
            r.title
        );
        assert!(r.ack.is_none());
        assert!(!text.contains("确认码"), "{text}");
        // Cleared: the threshold is named, not "below".
        let mut cleared = pressure();
        cleared["active"] = false.into();
        cleared["value"] = 0.31.into();
        cleared["cleared_at"] = "2026-11-29T02:00:00.000Z".into();
        let r = render(&cleared, Event::Cleared, Lang::Zh, &shanghai(), "http://x");
        assert!(r.title.starts_with("【重要·恢复】"), "{}", r.title);
        assert!(
            r.subject
                .contains("CLEARED MAJOR water_pressure.low a-000123"),
            "{}",
            r.subject
        );
        let text = r.plain();
        assert!(text.contains("管网压力 0.31 MPa，阈值 0.10 MPa"), "{text}");
        assert!(text.contains("恢复：2026-11-29 10:00:00"), "{text}");
    }

    #[test]
    fn english_on_request() {
        let r = render(&pressure(), Event::Fired, Lang::En, &shanghai(), "http://x");
        assert_eq!(
            r.title,
            "[Major alarm] Fire-water pressure low at bsy-0012 B1 泵房"
        );
        let text = r.plain();
        for needle in [
            "Value: Fire-water pressure 0.05 MPa, below 0.10 MPa",
            "Since: 2026-11-29 09:30:00 (UTC+08:00)",
            "Device: wp-0012-03 (pressure monitor)",
            "Next: Check the fire pumps and valves",
            "http://x/alerts/a-000123",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
        let r = render(
            &fire_alarm(),
            Event::Fired,
            Lang::En,
            &shanghai(),
            "http://x",
        );
        assert_eq!(r.ack.as_deref(), Some("Reply K7Q2 to acknowledge"));
        assert!(r.plain().contains("call 119"));
    }

    #[test]
    fn times_are_in_the_given_zone() {
        let berlin = time_zone("Europe/Berlin").unwrap();
        let text = render(&pressure(), Event::Fired, Lang::Zh, &berlin, "http://x").plain();
        assert!(
            text.contains("开始：2026-11-29 02:30:00 (UTC+01:00)"),
            "{text}"
        );
        let ny = time_zone("America/New_York").unwrap();
        let text = render(&pressure(), Event::Fired, Lang::En, &ny, "http://x").plain();
        assert!(
            text.contains("Since: 2026-11-28 20:30:00 (UTC-05:00)"),
            "{text}"
        );
        assert!(time_zone("Mars/Olympus").is_err());
    }

    #[test]
    fn unknown_rules_and_truncation_are_safe() {
        let mut a = pressure();
        a["rule"] = "quality.stuck".into();
        let r = render(&a, Event::Repeat, Lang::Zh, &shanghai(), "http://x");
        assert!(
            r.title.contains("【重要·提醒】quality.stuck"),
            "{}",
            r.title
        );
        assert!(r.action.contains("请尽快现场核实"));
        let s = "消防水压过低";
        assert_eq!(truncate_bytes(s, 7), "消防");
        assert_eq!(truncate_bytes(s, 100), s);
        assert_eq!(truncate_bytes(s, 2), "");
    }

    #[test]
    fn every_rule_of_the_shipped_rule_file_has_words() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/rules.toml"))
                .unwrap();
        for line in text.lines() {
            if let Some(id) = line.strip_prefix("id = \"") {
                let id = id.trim_end_matches('"');
                assert!(rule_text(id).is_some(), "{id} has no words in RULES");
            }
        }
    }
}
