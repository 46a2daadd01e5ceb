//! Architecture support. Rexo runs on x86-64 only.

pub mod x86_64;

pub use x86_64::*;
