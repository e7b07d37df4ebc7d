//! What a front end hands back to the HTTP layer.

use crate::scenario::{Delivery, Scenario};

/// An HTTP answer plus how to deliver it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Content type.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
    /// Drop, delay or answer.
    pub delivery: Delivery,
}

impl Reply {
    /// A JSON answer (Alipay, control API).
    pub fn json(body: String) -> Self {
        Self {
            status: 200,
            content_type: "application/json;charset=utf-8",
            body,
            delivery: Delivery::Normal,
        }
    }

    /// An XML answer (WeChat, QRA).
    pub fn xml(body: String) -> Self {
        Self {
            status: 200,
            content_type: "text/xml;charset=utf-8",
            body,
            delivery: Delivery::Normal,
        }
    }

    /// With an HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// With a delivery.
    pub fn with_delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }
}

/// How a charged answer in `scenario` is delivered; `slow_ms` is the configured delay.
pub fn delivery_for(scenario: Scenario, slow_ms: u64) -> Delivery {
    match scenario {
        Scenario::LostResponse => Delivery::Drop,
        Scenario::Slow => Delivery::Delay(slow_ms),
        Scenario::BadSignature => Delivery::BadSignature,
        Scenario::EscapedSlashes => Delivery::EscapedSlashes,
        _ => Delivery::Normal,
    }
}

/// `yyyyMMddHHmmss` in GMT+8 (WeChat `time_end`).
pub fn compact_time_gmt8(ms: u64) -> String {
    let ts = smartpos_acquirer::alipay::timestamp_gmt8((ms / 1000) as i64);
    ts.chars().filter(char::is_ascii_digit).collect()
}

/// `yyyy-MM-dd HH:mm:ss` in GMT+8 (Alipay dates).
pub fn alipay_time(ms: u64) -> String {
    smartpos_acquirer::alipay::timestamp_gmt8((ms / 1000) as i64)
}
