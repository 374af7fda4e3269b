//! Ingest: the embedded broker, the MQTT client event loop with manual acknowledgements.

pub mod broker;
pub mod mqtt;
