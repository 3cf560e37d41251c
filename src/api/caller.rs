//! The [`Caller`] extractor: what admission found about a request, read by
//! handlers, with the access table asked once more for the route the
//! router took.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use pinkpage_actors::{AppError, ErrorCode};

use super::error::ApiError;
use crate::auth::{check_need, table, Caller};

impl FromRequest for Caller {
    type Error = actix_web::Error;
    type Future = Ready<Result<Caller, actix_web::Error>>;

    /// Also asks the access table again, now with the route the router
    /// actually took: a second, independent check behind admission's, so
    /// a path that admission saw differently from the router (an encoding
    /// trick) still cannot reach a handler above the caller's role.
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = req.extensions().get::<Caller>().cloned();
        ready(match caller {
            None => Err(ApiError::from(AppError::with_detail(
                ErrorCode::Internal,
                "request did not pass admission",
            ))
            .into()),
            Some(caller) => {
                let need = table::route_need(req.method(), req.match_pattern().as_deref());
                match check_need(need, caller.principal.as_ref(), false) {
                    Ok(()) => Ok(caller),
                    Err(e) => Err(ApiError::from(e).into()),
                }
            }
        })
    }
}
