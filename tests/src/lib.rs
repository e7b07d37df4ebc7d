//! The integration-test harness (see `bus` once it lands).
