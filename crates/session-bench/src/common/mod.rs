//! What the harness and the peer crate (`bench/peer`, which includes this directory with
//! `#[path]`) share, so both measure, check and print the same way: the record shape, the concurrent
//! runner, latency statistics and the report. Depends on std, tokio, serde and serde_json only.

pub mod report;
pub mod runner;
pub mod shape;
pub mod stats;
