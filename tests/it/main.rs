//! The integration tests, one binary: each module is one area, against real services
//! (Mosquitto, VictoriaMetrics, an SMTP server) and the real `firewatch` binary. One binary
//! links once, which keeps a fresh build small and fast.

#![allow(clippy::unwrap_used)]

mod access;
mod auth;
mod channels;
mod chat_channels;
mod commands;
mod common;
mod coverage;
mod dashboard;
mod drills;
mod duty;
mod duty_checks;
mod escalation;
mod events;
mod false_alarms;
mod faults;
mod gateway;
mod https;
mod northbound;
mod pipeline;
mod quality;
mod quiet;
mod registry;
mod rollups;
mod secrets;
mod silences;
mod store_engines;
mod store_engines_more;
mod storms;
mod summaries;
mod tsdb;
mod workflow;
