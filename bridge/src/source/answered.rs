//! A bound on TDengine requests that must be answered promptly.
//!
//! taos-ws 0.12.3 answers every request through one reader task per connection. When the server closes
//! the connection, that task fails the requests waiting then and ends; a request sent after that is never
//! answered, and the client waits for it for ever — a bridge whose TDengine connection dropped between two
//! requests stalled without an error (found by `harness explore --seed 404`, run 106). So every request
//! except a poll that may wait for data is given [`REQUEST_TIMEOUT`]; past it the connection is taken as
//! lost, and the consumer resubscribes as after any other connection error.

use std::{future::Future, time::Duration};

/// How long a request (position, assignment, commit, seek, a block of a message) may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// `request`, or an error once [`REQUEST_TIMEOUT`] has passed without an answer.
pub async fn answered<T>(
    what: &str,
    request: impl Future<Output = Result<T, taos::Error>>,
) -> Result<T, taos::Error> {
    within(REQUEST_TIMEOUT, what, request).await
}

/// [`answered`] for a poll allowed to wait `wait` for data first.
pub async fn answered_poll<T>(
    wait: Duration,
    request: impl Future<Output = Result<T, taos::Error>>,
) -> Result<T, taos::Error> {
    within(wait + REQUEST_TIMEOUT, "poll", request).await
}

/// [`answered`] for a request that has no error of its own (0.12.3's `topic_assignment`).
pub async fn answered_plain<T>(what: &str, request: impl Future<Output = T>) -> Result<T, taos::Error> {
    answered(what, async { Ok(request.await) }).await
}

async fn within<T>(
    limit: Duration,
    what: &str,
    request: impl Future<Output = Result<T, taos::Error>>,
) -> Result<T, taos::Error> {
    tokio::time::timeout(limit, request).await.unwrap_or_else(|_| {
        Err(taos::Error::from_string(format!(
            "TDengine did not answer `{what}` within {limit:?}; taking the connection as lost"
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_never_answered_is_an_error_naming_it() {
        let never = std::future::pending::<Result<(), taos::Error>>();
        let err = within(Duration::from_millis(20), "position", never)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("did not answer `position` within 20ms"),
            "{err}"
        );
        assert_eq!(answered_plain("assignment", async { 7 }).await.unwrap(), 7);
    }
}
