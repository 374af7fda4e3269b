//! firewatch keeps watch over the fire-safety sensors of high-rise buildings: it takes their
//! MQTT messages, checks them against the wire contract, evaluates threshold and event rules,
//! keeps alerts through their whole life (fired → acknowledged → closed with a
//! classification), notifies the people on duty, and writes a time series.
//!
//! # Layout
//!
//! Modules in data order; each imports only modules above it in this list (docs/architecture.md
//! has the map and the path of one reading and one fire alarm, file by file):
//!
//! - [`settings`], [`clock`], [`model`]: shared vocabulary — secrets and problems, the one
//!   clock, the contract types and pure contract decoding ([`model::decode`]);
//! - [`bus`]: the change feed after each commit (alerts, devices, notifications, commands);
//! - [`metrics`]: process counters;
//! - [`registry`]: buildings and devices;
//! - [`duty`]: duty rosters (control rooms, shifts, rotations, overrides) and who is on duty;
//! - [`rules`]: rule definitions and the pure rule/health [`rules::engine`];
//! - [`store`]: all SQL — the embedded SQLite store (readings, devices, conditions, alerts,
//!   notification outbox, change log, commands to devices);
//! - [`inventory`]: devices, building summaries and coverage as people read them (read-only,
//!   for the API, `/metrics` and `firewatch report`);
//! - [`summary`]: (added) the daily summary to each building's fire-safety manager: its
//!   settings, its schedule (pure) and what it says, read from the store;
//! - [`alerts`]: routing alert transitions to channels and targets ([`alerts::route`]);
//! - [`notify`]: the [`notify::Channel`]s (e-mail, webhook) and one outbox sender per channel;
//! - [`tsdb`]: forwarding readings to the InfluxDB v2 write API, with the store as spool;
//! - [`northbound`]: (added) forwarding alerts, device states and readings to upstream (city)
//!   platforms over MQTT or HTTP, store and forward after per-target cursors;
//! - [`rollup`]: the rollup worker, keeping 5 min, 1 h and 1 day rollups of the readings as
//!   they arrive (merged by the single writer);
//! - [`pipeline`]: the single writer: decode → engine → alerts → one group commit → acks;
//! - [`ingest`]: the embedded broker, the MQTT event loop with manual acks, and the command
//!   publisher on the same connection;
//! - [`api`]: the HTTP API, `/healthz`, `/metrics`;
//! - [`config`]: the layered configuration, gathering each stage's settings;
//! - [`app`]: the wiring and ordered shutdown;
//! - [`report`]: `firewatch report` on the command line, read-only on the store.

pub mod accounts;
pub mod alerts;
pub mod api;
pub mod app;
pub mod auth;
pub mod bus;
pub mod clock;
pub mod config;
pub mod duty;
pub mod ingest;
pub mod inventory;
pub mod metrics;
pub mod model;
pub mod northbound;
pub mod notify;
pub mod pipeline;
pub mod registry;
pub mod report;
pub mod rollup;
pub mod rules;
pub mod settings;
pub mod store;
pub mod summary;
pub mod tls;
pub mod tsdb;
