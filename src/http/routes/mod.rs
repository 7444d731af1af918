//! One file per resource.

pub mod checks;
pub mod events;
pub mod export;
pub mod health;
pub mod keys;
pub mod log;
pub mod purposes;
pub mod subjects;
