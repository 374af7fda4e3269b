//! Ingest: the embedded broker, the MQTT client event loop with manual acknowledgements, and
//! the command publisher sharing its connection, and who may publish and read what.

pub mod access;
pub mod broker;
pub mod commands;
pub mod gate;
pub mod gbt26875;
pub mod mqtt;
