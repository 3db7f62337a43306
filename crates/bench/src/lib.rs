//! The library part of `kaas-bench`: the fault-injection scenarios ([`chaos`]), shared by the
//! `kaas-bench chaos` command (figures for `RELIABILITY.md`) and the CI tests that run the same
//! scenarios with small counts (`crates/cli/tests/chaos.rs`).

pub mod chaos;
