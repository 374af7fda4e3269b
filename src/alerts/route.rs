//! Routing: for an alert, which (channel, target) pairs are told. A first alarm goes to the
//! first step of its escalation policy ([`super::escalate`]); later steps to theirs; follow-ups
//! (cleared, reminders, acknowledged, closed) to whoever was told before (the store keeps
//! that). A target is what its channel addresses: an e-mail address, a webhook's or robot's
//! name, a phone number. Without a duty roster, the operators on duty are every address of
//! `email.to`, every configured webhook and chat robot, and the phones of `sms.to` for
//! critical alerts only; info alerts are recorded, not sent.

use super::escalate::{Audience, EscalationConfig};
use crate::model::alert::Alert;
use crate::model::notification::{ChannelKind, Event};
use crate::model::Severity;
use crate::registry::Registry;
use crate::store::alerts::Routed;

/// The routing table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Router {
    /// E-mail recipients (`email.to`).
    pub email_to: Vec<String>,
    /// Names of the configured webhooks (`webhook[].name`).
    pub webhooks: Vec<String>,
    /// Escalation policies.
    pub escalation: EscalationConfig,
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
                .policy_for(alert, None)
                .steps
                .first()
                .map(|s| s.notify.clone())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        self.to(registry, alert, &first)
    }

    /// The contacts of `audiences` for `alert`.
    pub fn to(&self, registry: &Registry, alert: &Alert, audiences: &[Audience]) -> Routed {
        let location = registry
            .device(&alert.device)
            .and_then(|d| d.location.clone());
        let building_name = registry
            .building(&alert.building)
            .and_then(|b| b.name.clone());
        if alert.severity == Severity::Info {
            return Routed {
                targets: Vec::new(),
                location,
                building_name,
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
            match a {
                Audience::OnDuty => {
                    targets.extend(all(ChannelKind::Email, &self.email_to));
                    targets.extend(all(ChannelKind::Webhook, &self.webhooks));
                    targets.extend(all(ChannelKind::Wecom, &self.wecom));
                    targets.extend(all(ChannelKind::Dingtalk, &self.dingtalk));
                    if alert.severity == Severity::Critical {
                        targets.extend(all(ChannelKind::Sms, &self.sms_to));
                    }
                }
                // Known from a duty roster only.
                Audience::Manager | Audience::Maintenance | Audience::FireOffice => {}
            }
        }
        let mut seen = std::collections::HashSet::new();
        targets.retain(|t| seen.insert(t.clone()));
        Routed {
            targets,
            location,
            building_name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::alert::Status;
    use crate::model::Kind;

    fn alert(severity: Severity) -> Alert {
        Alert {
            id: 1,
            rule: "r".into(),
            severity,
            building: "b".into(),
            kind: Kind::Transmitter,
            device: "d".into(),
            channel: None,
            active: true,
            status: Status::Open,
            value: None,
            threshold: None,
            message: "m".into(),
            started_at: 0,
            updated_at: 0,
            cleared_at: None,
            acknowledged_at: None,
            acknowledged_by: None,
            closed_at: None,
            closed_by: None,
            classification: None,
            sla_missed_at: None,
        }
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
}
