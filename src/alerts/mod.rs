//! Alert stages that sit between the store and the pipeline: [`route`] decides who is told of
//! an alert transition.

pub mod route;
