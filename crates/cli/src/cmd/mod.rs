//! One module per `kaas` subcommand.

pub mod check;
pub mod crds;
pub mod dev;
pub mod operator;
pub mod render;
pub mod validate;
