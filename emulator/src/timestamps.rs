//! The clock and the timestamp formats of AWS events and APIs.

use std::time::{SystemTime, UNIX_EPOCH};

use time::{OffsetDateTime, format_description::BorrowedFormatItem, macros::format_description};

pub(crate) fn now_epoch_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn datetime_from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

const REQUEST_TIME: &[BorrowedFormatItem<'_>] =
    format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000");
const ISO_MS: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// `requestTime` / `time` of API Gateway events: `05/Apr/2020:05:20:58 +0000`.
pub(crate) fn request_time(ms: i64) -> String {
    datetime_from_ms(ms)
        .format(REQUEST_TIME)
        .unwrap_or_default()
}

/// ISO-8601 as the management API writes it: `2020-04-05T05:20:58.123Z`.
pub(crate) fn iso8601(ms: i64) -> String {
    datetime_from_ms(ms).format(ISO_MS).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_like_aws() {
        // 2020-04-05T05:20:58.123Z
        let ms = 1_586_064_058_123;
        assert_eq!(request_time(ms), "05/Apr/2020:05:20:58 +0000");
        assert_eq!(iso8601(ms), "2020-04-05T05:20:58.123Z");
    }
}
