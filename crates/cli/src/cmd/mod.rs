//! One module per `kaas` subcommand.

pub mod crds;
pub mod render;
pub mod validate;
