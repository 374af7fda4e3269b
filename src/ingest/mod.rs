//! Ingest: the embedded broker, the MQTT client event loop with manual acknowledgements, and
//! the command publisher sharing its connection.

pub mod broker;
pub mod commands;
pub mod gbt26875;
pub mod mqtt;
