//! Paging of REST listings, the same rule for every route.

use pinkpage_actors::{AppError, ErrorCode};

/// A listing's `limit`: `default` when absent, else 1-1000 (10001).
pub fn page_limit(limit: Option<u32>, default: u32) -> Result<u32, AppError> {
    let limit = limit.unwrap_or(default);
    if (1..=1000).contains(&limit) {
        Ok(limit)
    } else {
        Err(AppError::with_detail(
            ErrorCode::Validation,
            "limit must be between 1 and 1000",
        ))
    }
}
