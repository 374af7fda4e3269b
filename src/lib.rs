//! firewatch keeps watch over the fire-safety sensors of high-rise buildings: it takes their
//! MQTT messages, checks them against the wire contract, evaluates threshold and event rules,
//! keeps alerts through their whole life (fired → acknowledged → closed with a
//! classification), e-mails the people on duty, and writes a time series.
//!
//! # Layout
//!
//! - [`config`]: layered configuration and its validation;
//! - [`model`]: kinds, metrics, events, severities, decoded messages;
//! - [`ingest`]: the embedded broker, the MQTT event loop with manual acks, contract decoding;
//! - [`rules`]: rule definitions, the registry, and the pure rule/health [`rules::engine`];
//! - [`pipeline`]: the core thread: decode → engine → alerts → one group commit → acks;
//! - [`store`]: the embedded SQLite store (readings, devices, conditions, alerts, outbox);
//! - [`tsdb`]: forwarding readings to the InfluxDB v2 write API, with the store as spool;
//! - [`notify`]: e-mail rendering and the persisted outbox sender;
//! - [`api`]: the HTTP API, `/healthz`, `/metrics`;
//! - [`app`]: the wiring and ordered shutdown.

pub mod api;
pub mod app;
pub mod config;
pub mod ingest;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod pipeline;
pub mod rules;
pub mod store;
pub mod tsdb;
