//! Lambda's HTTP payload format 2.0, shared by the HTTP API and Function
//! URLs: the request event ([`event`]) and the mapping of a function's
//! result to the client's response ([`response`]). What differs between the
//! two entries is passed in ([`event::Entry`]), not copied.

pub(crate) mod event;
pub(crate) mod response;

pub(crate) use event::{Entry, RequestParts, parse_query};
pub(crate) use response::{HeaderValues, map_response, response_head};
