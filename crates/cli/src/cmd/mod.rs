//! One module per `kaas` subcommand.

pub mod adopt;
pub mod check;
pub mod crds;
pub mod describe;
pub mod dev;
pub mod doctor;
pub mod hosted_runtime;
pub mod kubeconfig;
pub mod migrate;
pub mod operator;
pub mod plan;
pub mod render;
pub mod serve;
pub mod validate;
