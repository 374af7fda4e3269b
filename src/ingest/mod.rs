//! Ingest: the embedded broker, the MQTT client event loop with manual acknowledgements, and
//! contract decoding.

pub mod broker;
pub mod decode;
pub mod mqtt;
