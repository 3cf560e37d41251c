//! Paging of REST listings, the same rule for every route.

use pinkpage_actors::{AppError, ErrorCode};

/// The largest `limit` of a listing (each `limit` parameter declares it as
/// its `maximum`; a unit test holds the two together).
pub const MAX_PAGE: u32 = 1000;

/// A listing's `limit`: `default` when absent, else 1-1000 (10001).
pub fn page_limit(limit: Option<u32>, default: u32) -> Result<u32, AppError> {
    let limit = limit.unwrap_or(default);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(AppError::with_detail(
            ErrorCode::Validation,
            format!("limit must be between 1 and {MAX_PAGE}"),
        ))
    }
}
