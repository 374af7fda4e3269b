//! Routing: for an alert, which (channel, target) pairs are told. A first alarm goes to the
//! first step of its escalation policy ([`super::escalate`]); later steps to theirs; follow-ups
//! (cleared, reminders, acknowledged, closed) to whoever was told before (the store keeps
//! that). A target is what its channel addresses: an e-mail address, a webhook's or robot's
//! name, a phone number. Without a duty roster, the operators on duty are every address of
//! `email.to`, every configured webhook and chat robot, and the phones of `sms.to` for
//! critical alerts only; info alerts are recorded, not sent.

use super::escalate::{Audience, EscalationConfig};
use crate::duty::{Duty, Live, Party, Person};
use crate::model::alert::Alert;
use crate::model::notification::{ChannelKind, Event, Look};
use crate::model::workorder::Workorder;
use crate::model::Severity;
use crate::registry::Registry;
use crate::store::alerts::Routed;

/// The routing table.
#[derive(Debug, Clone, Default)]
pub struct Router {
    /// E-mail recipients (`email.to`).
    pub email_to: Vec<String>,
    /// Names of the configured webhooks (`webhook[].name`).
    pub webhooks: Vec<String>,
    /// Escalation policies.
    pub escalation: EscalationConfig,
    /// The duty roster with the overrides in force.
    pub duty: std::sync::Arc<Live>,
    /// An SMS gateway is configured (`[sms]`): people's phones can be texted.
    pub sms: bool,
    /// Names of the WeCom robots (`wecom[].name`).
    pub wecom: Vec<String>,
    /// Names of the DingTalk robots (`dingtalk[].name`).
    pub dingtalk: Vec<String>,
    /// Phones told of critical alerts by SMS (`sms.to`).
    pub sms_to: Vec<String>,
}

impl Router {
    /// Who is told of `event` on `alert` (the first step of its policy for a new alarm;
    /// follow-ups are the store's), with the device's location from `registry`.
    pub fn route(&self, registry: &Registry, alert: &Alert, event: Event) -> Routed {
        let first = match event {
            Event::Fired | Event::Refired => self
                .escalation
                .policy_for(alert, self.local_minute(alert, alert.updated_at))
                .steps
                .first()
                .map(|s| s.notify.clone())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        self.to(registry, alert, &first, alert.updated_at)
    }

    /// (added) Who is told of a new alert during a drill of its building: the control room on
    /// duty (the roster's operators, or the deployment's lists standing for them), no
    /// integration (webhooks) and nobody further up.
    pub fn control_room(&self, registry: &Registry, alert: &Alert) -> Routed {
        let mut r = self.to(registry, alert, &[Audience::OnDuty], alert.updated_at);
        r.targets.retain(|(c, _)| *c != ChannelKind::Webhook);
        r
    }

    /// The minute of the local day at `at` in the time zone of the control room covering the
    /// alert's building (`None` without one), for policies with `hours`.
    pub fn local_minute(&self, alert: &Alert, at: crate::model::Millis) -> Option<u16> {
        let duty = self.duty.get().on_duty(&alert.building, at)?;
        let tz = jiff::tz::TimeZone::get(&duty.room.tz).ok()?;
        let t = jiff::Timestamp::from_millisecond(at)
            .ok()?
            .to_zoned_datetime(tz);
        u16::try_from(i32::from(t.hour()) * 60 + i32::from(t.minute())).ok()
    }

    /// The contacts of `audiences` for `alert` at `at`: from the duty roster when a control
    /// room covers the building, else the deployment's lists (`email.to`, robots, `sms.to`)
    /// stand for the operators on duty. Webhooks are integrations: they get every first
    /// alarm, roster or not.
    pub fn to(
        &self,
        registry: &Registry,
        alert: &Alert,
        audiences: &[Audience],
        at: crate::model::Millis,
    ) -> Routed {
        let location = registry
            .device(&alert.device)
            .and_then(|d| d.location.clone());
        Routed {
            location,
            ..self.to_building(registry, &alert.building, alert.severity, audiences, at)
        }
    }

    /// Who is told of `event` on the work order `w` at `at`: a new or sent-back order goes to
    /// the building's fire-safety manager, a rectified one to the operators on duty (who
    /// check it), an overdue one to the manager and — unless it was raised for an alert,
    /// which escalates itself — the fire office; a closed one only to those told before (the
    /// store adds them). When the roster names nobody, the operators on duty stand in, so a
    /// work order never goes unseen. Webhooks are integrations of alerts and are not told;
    /// the change feed carries every work-order step.
    pub fn workorder_to(
        &self,
        registry: &Registry,
        w: &Workorder,
        event: Event,
        at: crate::model::Millis,
    ) -> Routed {
        let audiences: &[Audience] = match event {
            Event::WorkorderCreated | Event::WorkorderSentBack => &[Audience::Manager],
            Event::WorkorderRectified => &[Audience::OnDuty],
            Event::WorkorderOverdue if w.alert.is_some() => &[Audience::Manager],
            Event::WorkorderOverdue => &[Audience::Manager, Audience::FireOffice],
            _ => &[],
        };
        let hazard = Severity::Major;
        let mut routed = self.to_building(registry, &w.building, hazard, audiences, at);
        routed.targets.retain(|(c, _)| *c != ChannelKind::Webhook);
        if routed.targets.is_empty() && !audiences.is_empty() {
            let on_duty = self.to_building(registry, &w.building, hazard, &[Audience::OnDuty], at);
            routed.targets = on_duty.targets;
            routed.targets.retain(|(c, _)| *c != ChannelKind::Webhook);
        }
        routed
    }

    /// (added) The fire-safety manager of `building`: the person the duty roster names for it
    /// (`[[building]] manager`), else the registry's `manager` when it is the id of a roster
    /// person. A manager the registry knows by name only has no contact: `None`.
    pub fn manager(&self, registry: &Registry, building: &str) -> Option<Person> {
        let roster = self.duty.get();
        if let Some(p) = roster.manager_of(building) {
            return Some(p.clone());
        }
        registry
            .building(building)
            .and_then(|b| b.manager.as_deref())
            .and_then(|m| roster.person(m).cloned())
    }

    /// (added) Who gets the daily summary of `building` at `at`: its manager `p`, on
    /// `channels` (`None`: the manager's own — e-mail, and SMS when a gateway is configured);
    /// `wecom` and `dingtalk` reach the robots of the control room watching the building, when
    /// they are configured. The messages read in the room's time zone, in English for a
    /// manager who reads it.
    pub fn summary_to(
        &self,
        registry: &Registry,
        building: &str,
        p: &Person,
        channels: Option<&[ChannelKind]>,
        at: crate::model::Millis,
    ) -> Routed {
        let duty = self.duty.get().on_duty(building, at);
        let mut targets = Vec::new();
        match channels {
            None => self.person(p, true, &mut targets),
            Some(chs) => {
                for ch in chs {
                    match ch {
                        ChannelKind::Email => {
                            targets.extend(p.email.iter().map(|e| (ChannelKind::Email, e.clone())));
                        }
                        ChannelKind::Sms if self.sms => {
                            targets.extend(p.phone.iter().map(|t| (ChannelKind::Sms, t.clone())));
                        }
                        ChannelKind::Wecom | ChannelKind::Dingtalk => {
                            if let Some(d) = &duty {
                                let mut robots = Vec::new();
                                self.room_robots(d, &mut robots);
                                targets.extend(robots.into_iter().filter(|(c, _)| c == ch));
                            }
                        }
                        // No gateway; webhooks are refused by the settings' validation.
                        ChannelKind::Sms | ChannelKind::Webhook => {}
                    }
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        targets.retain(|t| seen.insert(t.clone()));
        let mut look = Look {
            tz: duty.as_ref().map(|d| d.room.tz.clone()),
            english: Vec::new(),
        };
        if p.lang == crate::duty::Lang::En {
            look.english = p.email.iter().chain(p.phone.iter()).cloned().collect();
        }
        Routed {
            targets,
            location: None,
            building_name: registry.building(building).and_then(|b| b.name.clone()),
            look,
            quiet: false,
        }
    }

    /// The contacts of `audiences` for a building's message of `severity` at `at` (see
    /// [`Router::to`]); `location` is left empty.
    fn to_building(
        &self,
        registry: &Registry,
        building: &str,
        severity: Severity,
        audiences: &[Audience],
        at: crate::model::Millis,
    ) -> Routed {
        let location = None;
        let building_name = registry.building(building).and_then(|b| b.name.clone());
        let duty = self.duty.get().on_duty(building, at);
        let look = duty.as_ref().map(look_of).unwrap_or_default();
        if severity == Severity::Info {
            return Routed {
                targets: Vec::new(),
                location,
                building_name,
                look,
                quiet: false,
            }; // recorded, not sent
        }
        let all = |kind: ChannelKind, targets: &[String]| {
            targets
                .iter()
                .map(move |t| (kind, t.clone()))
                .collect::<Vec<_>>()
        };
        let mut targets = Vec::new();
        for a in audiences {
            match (a, &duty) {
                (Audience::OnDuty, None) => {
                    targets.extend(all(ChannelKind::Email, &self.email_to));
                    targets.extend(all(ChannelKind::Webhook, &self.webhooks));
                    targets.extend(all(ChannelKind::Wecom, &self.wecom));
                    targets.extend(all(ChannelKind::Dingtalk, &self.dingtalk));
                    if severity == Severity::Critical {
                        targets.extend(all(ChannelKind::Sms, &self.sms_to));
                    }
                }
                (Audience::OnDuty, Some(d)) => {
                    targets.extend(all(ChannelKind::Webhook, &self.webhooks));
                    self.room_robots(d, &mut targets);
                    for p in &d.operators {
                        self.person(p, severity == Severity::Critical, &mut targets);
                    }
                    if d.operators.is_empty() {
                        // Nobody on duty (a gap, everyone on leave): the deployment's
                        // addresses stand in, so the alarm still reaches someone.
                        targets.extend(all(ChannelKind::Email, &self.email_to));
                        targets.extend(all(ChannelKind::Wecom, &self.wecom));
                        targets.extend(all(ChannelKind::Dingtalk, &self.dingtalk));
                        targets.extend(all(ChannelKind::Sms, &self.sms_to));
                    }
                }
                (Audience::Manager, Some(d)) => {
                    if let Some(p) = &d.manager {
                        self.person(p, true, &mut targets);
                    }
                }
                (Audience::Maintenance, Some(d)) => {
                    if let Some(m) = &d.maintenance {
                        self.party(m, &mut targets);
                    }
                }
                (Audience::FireOffice, Some(d)) => {
                    if let Some(f) = &d.fire_office {
                        self.party(f, &mut targets);
                    }
                }
                // Known from a duty roster only.
                (Audience::Manager | Audience::Maintenance | Audience::FireOffice, None) => {}
            }
        }
        let mut seen = std::collections::HashSet::new();
        targets.retain(|t| seen.insert(t.clone()));
        Routed {
            targets,
            location,
            building_name,
            look,
            quiet: false,
        }
    }

    /// The control room's chat robots, when they are configured.
    fn room_robots(&self, d: &Duty, out: &mut Vec<(ChannelKind, String)>) {
        if let Some(w) = d.room.wecom.as_ref().filter(|w| self.wecom.contains(w)) {
            out.push((ChannelKind::Wecom, w.clone()));
        }
        if let Some(w) = d
            .room
            .dingtalk
            .as_ref()
            .filter(|w| self.dingtalk.contains(w))
        {
            out.push((ChannelKind::Dingtalk, w.clone()));
        }
    }

    /// A person: by e-mail, and by SMS when `text` and a gateway is configured.
    fn person(&self, p: &Person, text: bool, out: &mut Vec<(ChannelKind, String)>) {
        if let Some(e) = &p.email {
            out.push((ChannelKind::Email, e.clone()));
        }
        if let (Some(phone), true, true) = (&p.phone, text, self.sms) {
            out.push((ChannelKind::Sms, phone.clone()));
        }
    }

    /// A company or office: its own contacts and its people's.
    fn party(&self, p: &Party, out: &mut Vec<(ChannelKind, String)>) {
        if let Some(e) = &p.email {
            out.push((ChannelKind::Email, e.clone()));
        }
        if let (Some(phone), true) = (&p.phone, self.sms) {
            out.push((ChannelKind::Sms, phone.clone()));
        }
        for person in &p.people {
            self.person(person, true, out);
        }
    }
}

/// How the messages about a building read: its control room's time zone, and the
/// addresses and phones of the people in its duty who read English.
fn look_of(d: &Duty) -> Look {
    let mut people: Vec<&Person> = d.operators.iter().chain(d.manager.as_ref()).collect();
    for p in [&d.maintenance, &d.fire_office].into_iter().flatten() {
        people.extend(p.people.iter());
    }
    let english = people
        .into_iter()
        .filter(|p| p.lang == crate::duty::Lang::En)
        .flat_map(|p| p.email.iter().chain(p.phone.iter()).cloned())
        .collect();
    Look {
        tz: Some(d.room.tz.clone()),
        english,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;

    fn alert(severity: Severity) -> Alert {
        Alert::sample(severity, Kind::Transmitter, "b")
    }

    #[test]
    fn every_address_and_webhook_is_told_except_of_info() {
        let r = Router {
            email_to: vec!["a@x.org".into(), "b@x.org".into()],
            webhooks: vec!["ops".into()],
            ..Router::default()
        };
        let reg = Registry::default();
        let routed = r.route(&reg, &alert(Severity::Critical), Event::Fired);
        assert_eq!(
            routed.targets,
            vec![
                (ChannelKind::Email, "a@x.org".to_owned()),
                (ChannelKind::Email, "b@x.org".to_owned()),
                (ChannelKind::Webhook, "ops".to_owned()),
            ]
        );
        assert!(r
            .route(&reg, &alert(Severity::Info), Event::Fired)
            .targets
            .is_empty());
    }

    #[test]
    fn robots_hear_of_every_alert_and_phones_of_critical_ones() {
        let r = Router {
            wecom: vec!["duty-room".into()],
            dingtalk: vec!["estate".into()],
            sms_to: vec!["13800000000".into()],
            ..Router::default()
        };
        let reg = Registry::default();
        let routed = r.route(&reg, &alert(Severity::Critical), Event::Fired);
        assert_eq!(
            routed.targets,
            vec![
                (ChannelKind::Wecom, "duty-room".to_owned()),
                (ChannelKind::Dingtalk, "estate".to_owned()),
                (ChannelKind::Sms, "13800000000".to_owned()),
            ]
        );
        let routed = r.route(&reg, &alert(Severity::Major), Event::Fired);
        assert_eq!(
            routed.targets,
            vec![
                (ChannelKind::Wecom, "duty-room".to_owned()),
                (ChannelKind::Dingtalk, "estate".to_owned()),
            ]
        );
    }

    #[test]
    fn a_night_policy_matches_by_the_control_rooms_local_time() {
        let roster = crate::duty::Roster::parse(
            r#"
[[person]]
id = "p"
name = "P"
email = "p@x.org"
[[control_room]]
id = "cr"
name = "CR"
tz = "Asia/Shanghai"
buildings = ["b"]
  [[control_room.shift]]
  name = "all day"
  start = "08:00"
  end = "08:00"
  people = ["p"]
"#,
        )
        .unwrap();
        let r = Router {
            duty: Live::new(roster),
            ..Router::default()
        };
        let a = alert(Severity::Major);
        // 2026-12-01T15:30:00Z is 23:30 in Shanghai.
        let at = 1_796_139_000_000;
        assert_eq!(r.local_minute(&a, at), Some(23 * 60 + 30));
        let elsewhere = Alert {
            building: "other".into(),
            ..a
        };
        assert_eq!(
            r.local_minute(&elsewhere, at),
            None,
            "no control room covers it"
        );
        // The on-duty operator's address replaces the deployment's list.
        let routed = r.to(
            &Registry::default(),
            &alert(Severity::Major),
            &[Audience::OnDuty],
            at,
        );
        assert_eq!(
            routed.targets,
            vec![(ChannelKind::Email, "p@x.org".to_owned())]
        );
    }
    #[test]
    fn the_summary_goes_to_the_manager_on_the_chosen_channels() {
        let roster = crate::duty::Roster::parse(
            r#"
[[person]]
id = "op"
name = "Op"
email = "op@x.org"
[[person]]
id = "mgr"
name = "刘强"
email = "m@x.org"
phone = "13800000001"
[[person]]
id = "lee"
name = "Lee"
email = "lee@x.org"
lang = "en"
[[control_room]]
id = "cr"
name = "CR"
tz = "Asia/Shanghai"
wecom = "room"
buildings = ["b1"]
  [[control_room.shift]]
  name = "all day"
  start = "08:00"
  end = "08:00"
  people = ["op"]
[[building]]
id = "b1"
manager = "mgr"
"#,
        )
        .unwrap();
        let registry = Registry::parse(
            r#"
[[building]]
id = "b1"
name = "滨江大厦"
[[building]]
id = "b2"
manager = "lee"
[[building]]
id = "b3"
manager = "王经理"
"#,
        )
        .unwrap();
        let r = Router {
            duty: Live::new(roster),
            sms: true,
            wecom: vec!["room".into()],
            ..Router::default()
        };
        // The roster's manager; the registry's when it names a roster person; a name is no
        // contact.
        let m = r.manager(&registry, "b1").unwrap();
        assert_eq!(m.id, "mgr");
        let lee = r.manager(&registry, "b2").unwrap();
        assert_eq!(lee.id, "lee");
        assert!(r.manager(&registry, "b3").is_none());
        assert!(r.manager(&registry, "nowhere").is_none());
        let at = 1_796_139_000_000;
        let routed = r.summary_to(&registry, "b1", &m, None, at);
        assert_eq!(
            routed.targets,
            vec![
                (ChannelKind::Email, "m@x.org".to_owned()),
                (ChannelKind::Sms, "13800000001".to_owned()),
            ]
        );
        assert_eq!(routed.look.tz.as_deref(), Some("Asia/Shanghai"));
        assert_eq!(routed.building_name.as_deref(), Some("滨江大厦"));
        let chosen = [ChannelKind::Wecom, ChannelKind::Email];
        let routed = r.summary_to(&registry, "b1", &m, Some(&chosen), at);
        assert_eq!(
            routed.targets,
            vec![
                (ChannelKind::Wecom, "room".to_owned()),
                (ChannelKind::Email, "m@x.org".to_owned()),
            ]
        );
        // Outside any control room: no robots, the deployment's zone, English for Lee.
        let routed = r.summary_to(&registry, "b2", &lee, Some(&chosen), at);
        assert_eq!(
            routed.targets,
            vec![(ChannelKind::Email, "lee@x.org".to_owned())]
        );
        assert_eq!(routed.look.tz, None);
        assert_eq!(routed.look.english, vec!["lee@x.org".to_owned()]);
    }
}
