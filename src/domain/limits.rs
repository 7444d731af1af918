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
/// Longest notice version label, in characters.
pub const MAX_NOTICE_VERSION: usize = 64;
/// Longest notice URL, in bytes.
pub const MAX_NOTICE_URL: usize = 2000;
/// Longest notice text the ledger keeps, in bytes (256 KiB; a housing privacy notice is 6 to
/// 16 KB).
pub const MAX_NOTICE_TEXT: usize = 256 * 1024;
