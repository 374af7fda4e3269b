//! Alert stages that sit between the store and the pipeline: [`route`] decides who is told of
//! an alert transition; [`escalate`] decides when the next people are told.

pub mod escalate;
pub mod route;
