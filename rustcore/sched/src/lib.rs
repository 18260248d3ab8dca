//! Placeholder while the core is written.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
