//! One file per resource.

pub mod backups;
pub mod bulk;
pub mod check_request;
pub mod checks;
pub mod downstream;
pub mod events;
pub mod export;
pub mod feed;
pub mod health;
pub mod imports;
pub mod inbound;
pub mod keys;
pub mod log;
pub mod notices;
pub mod preference_page;
pub mod purposes;
pub mod retention;
pub mod subjects;
pub mod unsubscribe;
