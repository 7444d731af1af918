//! The domain's limits, in one leaf that the parsers and the error messages both read.

/// Longest postal address we accept, in bytes.
pub const MAX_POST_LEN: usize = 512;
/// Longest purpose title, in characters.
pub const MAX_TITLE_LEN: usize = 200;
/// Longest purpose description, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 2000;
/// Longest consent validity we accept (ten years).
pub const MAX_CONSENT_VALID_DAYS: u32 = 3650;
/// Most recipients one sharing purpose may list.
pub const MAX_RECIPIENTS: usize = 64;
