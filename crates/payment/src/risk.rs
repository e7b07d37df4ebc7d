//! Local risk rules (docs/ARCHITECTURE.md cause 9) and the policy table (cause 10), applied before a
//! payment leaves the terminal. A rule either blocks the sale — and is named in the
//! explanation — or switches funding channels off at the acquirer, and is then named in the
//! journal note of the attempt.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::classify::Scheme;
use crate::config::{Config, PolicyRule};
use crate::explain::{Cause, Explanation};
use crate::model::{FundingChannel, SaleOptions};

/// What the rules look at; the figures come from the journal.
#[derive(Debug, Clone)]
pub struct RiskInput<'a> {
    pub amount_fen: i64,
    pub scheme: Scheme,
    pub options: &'a SaleOptions,
    /// Money taken or in flight today (China business day), this sale excluded.
    pub committed_today_fen: i64,
    /// Payments sent within the velocity window.
    pub recent_submissions: i64,
    /// Payments of exactly this amount sent within `repeat_window_s`.
    pub same_amount_recent: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RiskDecision {
    Allow {
        /// Funding to switch off at the acquirer for this payment.
        disabled: Vec<FundingChannel>,
        /// Names of the rules that shaped it, for the journal.
        applied: Vec<String>,
    },
    Block(Explanation),
}

const CREDIT: [FundingChannel; 3] = [
    FundingChannel::Huabei,
    FundingChannel::HuabeiInstalments,
    FundingChannel::CreditCard,
];

pub fn velocity_window(cfg: &Config) -> Duration {
    Duration::from_secs(cfg.risk.velocity_window_s)
}

fn per_sale_limit() -> Explanation {
    Explanation::new(
        Cause::RiskControl,
        "risk.per_sale_limit",
        "超过本终端单笔限额,请分开付款或联系店长",
        "above this terminal's per-sale limit: split the payment or call the manager",
    )
}

fn no_funding_left() -> Explanation {
    Explanation::new(
        Cause::MerchantConfig,
        "config.no_funding_left",
        "按商户配置和规则,没有可用的付款渠道,请联系服务商",
        "merchant settings and rules leave no funding channel: call the service provider",
    )
}

fn policy_limit(rule: &PolicyRule) -> Explanation {
    let mut e = Explanation::new(
        Cause::Compliance,
        format!("policy.{}", rule.name),
        "超过合规限额,请分开付款或换一种方式",
        "above a compliance limit: split the payment or pay another way",
    );
    if let Some(zh) = &rule.reason_zh {
        e.zh = zh.clone().into();
    }
    if let Some(en) = &rule.reason_en {
        e.en = en.clone().into();
    }
    e
}

/// What can be refused when the sale is created, before any code is scanned, because it
/// would be refused whatever wallet the customer then shows: above the per-sale limit, above
/// a compliance limit that applies to every wallet, or no funding channel left by the
/// merchant's matrix, the wallet-independent policies and the sale's own options. The rules
/// that depend on the day's history (daily limit, velocity, repeats) wait for the payment.
pub fn precheck(cfg: &Config, amount_fen: i64, options: &SaleOptions) -> Option<Explanation> {
    if amount_fen > cfg.risk.max_per_sale_fen {
        return Some(per_sale_limit());
    }
    let mut disabled: BTreeSet<FundingChannel> =
        cfg.merchant_disabled_funding().into_iter().collect();
    for rule in &cfg.policy {
        let applies = rule.schemes.is_empty()
            && (rule.categories.is_empty() || rule.categories.contains(&cfg.merchant.category))
            && (!rule.virtual_goods_only || options.virtual_goods);
        if !applies {
            continue;
        }
        if rule.max_per_sale_fen.is_some_and(|max| amount_fen > max) {
            return Some(policy_limit(rule));
        }
        disabled.extend(rule.deny_funding.iter().copied());
    }
    if options.virtual_goods {
        disabled.extend(CREDIT);
    }
    disabled.extend(options.disable_funding.iter().copied());
    (disabled.len() == FundingChannel::ALL.len()).then(no_funding_left)
}

pub fn evaluate(cfg: &Config, input: &RiskInput<'_>) -> RiskDecision {
    let risk = &cfg.risk;
    if input.amount_fen > risk.max_per_sale_fen {
        return RiskDecision::Block(per_sale_limit());
    }
    if input.committed_today_fen.saturating_add(input.amount_fen) > risk.max_daily_fen {
        return RiskDecision::Block(Explanation::new(
            Cause::RiskControl,
            "risk.daily_limit",
            "已达本终端当日收款上限,请联系店长",
            "this terminal's daily limit is reached: call the manager",
        ));
    }
    if risk.velocity_max_sales > 0 && input.recent_submissions >= i64::from(risk.velocity_max_sales)
    {
        return RiskDecision::Block(Explanation::new(
            Cause::RiskControl,
            "risk.velocity",
            "短时间内收款过于频繁,请稍候一分钟再试",
            "too many payments in a short time: wait a minute and try again",
        ));
    }

    let mut disabled: BTreeSet<FundingChannel> =
        cfg.merchant_disabled_funding().into_iter().collect();
    let mut applied = Vec::new();
    if !disabled.is_empty() {
        applied.push("merchant.funding".to_owned());
    }
    for rule in &cfg.policy {
        let category_matches =
            rule.categories.is_empty() || rule.categories.contains(&cfg.merchant.category);
        let scheme_matches = rule.schemes.is_empty() || rule.schemes.contains(&input.scheme);
        let goods_match = !rule.virtual_goods_only || input.options.virtual_goods;
        if !(category_matches && scheme_matches && goods_match) {
            continue;
        }
        if let Some(max) = rule.max_per_sale_fen
            && input.amount_fen > max
        {
            return RiskDecision::Block(policy_limit(rule));
        }
        if !rule.deny_funding.is_empty() {
            disabled.extend(rule.deny_funding.iter().copied());
            applied.push(format!("policy.{}", rule.name));
        }
    }
    // docs/acquirers.md §4: virtual goods take no Huabei and no credit card (cash-out prevention).
    if input.options.virtual_goods {
        disabled.extend(CREDIT);
        applied.push("policy.virtual_goods_no_credit".to_owned());
    }
    if risk.cashout_round_amount_fen > 0
        && input.amount_fen >= risk.cashout_round_amount_fen
        && input.amount_fen % 10_000 == 0
    {
        disabled.extend(CREDIT);
        applied.push("risk.cashout_round_amount".to_owned());
    }
    if risk.repeat_amount_max > 0 && input.same_amount_recent >= i64::from(risk.repeat_amount_max) {
        disabled.extend(CREDIT);
        applied.push("risk.repeated_amount".to_owned());
    }
    if !input.options.disable_funding.is_empty() {
        disabled.extend(input.options.disable_funding.iter().copied());
        applied.push("sale.disable_funding".to_owned());
    }
    if disabled.len() == FundingChannel::ALL.len() {
        return RiskDecision::Block(no_funding_left());
    }
    RiskDecision::Allow {
        disabled: disabled.into_iter().collect(),
        applied,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::parse(include_str!("../config/merchant.example.toml")).expect("example")
    }

    fn input<'a>(amount_fen: i64, options: &'a SaleOptions) -> RiskInput<'a> {
        RiskInput {
            amount_fen,
            scheme: Scheme::Alipay,
            options,
            committed_today_fen: 0,
            recent_submissions: 0,
            same_amount_recent: 0,
        }
    }

    #[test]
    fn an_ordinary_grocery_sale_keeps_huabei() {
        let o = SaleOptions::default();
        assert_eq!(
            evaluate(&cfg(), &input(2_350, &o)),
            RiskDecision::Allow {
                disabled: vec![],
                applied: vec![]
            }
        );
    }

    #[test]
    fn a_pawn_shop_takes_no_credit_and_the_policy_is_named() {
        let mut c = cfg();
        c.merchant.category = "5933".into();
        let o = SaleOptions::default();
        let RiskDecision::Allow { disabled, applied } = evaluate(&c, &input(2_350, &o)) else {
            panic!("should be allowed without credit");
        };
        assert_eq!(disabled, CREDIT.to_vec());
        assert_eq!(applied, ["policy.no-credit-for-quasi-cash"]);
    }

    #[test]
    fn a_round_thousand_on_credit_looks_like_cash_out() {
        let o = SaleOptions::default();
        let RiskDecision::Allow { disabled, applied } = evaluate(&cfg(), &input(200_000, &o))
        else {
            panic!("allowed without credit");
        };
        assert!(disabled.contains(&FundingChannel::Huabei));
        assert_eq!(applied, ["risk.cashout_round_amount"]);
        // 2000.50 is not round: credit stays.
        assert!(matches!(
            evaluate(&cfg(), &input(200_050, &o)),
            RiskDecision::Allow { ref disabled, .. } if disabled.is_empty()
        ));
    }

    #[test]
    fn limits_block_and_say_which_rule() {
        let o = SaleOptions::default();
        let c = cfg();
        let block = |i: RiskInput<'_>| match evaluate(&c, &i) {
            RiskDecision::Block(e) => e.code,
            other => panic!("expected a block, got {other:?}"),
        };
        assert_eq!(
            block(input(c.risk.max_per_sale_fen + 1, &o)),
            "risk.per_sale_limit"
        );
        let mut today = input(100, &o);
        today.committed_today_fen = c.risk.max_daily_fen - 50;
        assert_eq!(block(today), "risk.daily_limit");
        let mut busy = input(100, &o);
        busy.recent_submissions = i64::from(c.risk.velocity_max_sales);
        assert_eq!(block(busy), "risk.velocity");
    }

    #[test]
    fn the_same_amount_again_and_again_loses_credit_funding() {
        let o = SaleOptions::default();
        let mut i = input(4_999, &o);
        i.same_amount_recent = 2;
        assert!(
            matches!(evaluate(&cfg(), &i), RiskDecision::Allow { ref disabled, .. } if disabled.is_empty())
        );
        i.same_amount_recent = 3;
        let RiskDecision::Allow { disabled, applied } = evaluate(&cfg(), &i) else {
            panic!("allowed without credit");
        };
        assert_eq!(disabled, CREDIT.to_vec());
        assert_eq!(applied, ["risk.repeated_amount"]);
    }

    #[test]
    fn a_policy_limit_blocks_as_compliance() {
        let mut c = cfg();
        c.merchant.category = "0000".into();
        let o = SaleOptions::default();
        match evaluate(&c, &input(60_000, &o)) {
            RiskDecision::Block(e) => {
                assert_eq!(e.cause, Cause::Compliance);
                assert_eq!(e.code, "policy.pboc-296-static-level");
                assert!(e.zh.contains("296"));
            }
            other => panic!("expected a block, got {other:?}"),
        }
    }

    #[test]
    fn a_sale_every_wallet_would_refuse_is_refused_when_it_is_created() {
        let c = cfg();
        let o = SaleOptions::default();
        assert_eq!(
            precheck(&c, c.risk.max_per_sale_fen + 1, &o).map(|e| e.code),
            Some("risk.per_sale_limit".to_owned())
        );
        assert_eq!(precheck(&c, 2_350, &o), None);
        let all_off = SaleOptions {
            disable_funding: FundingChannel::ALL.to_vec(),
            ..SaleOptions::default()
        };
        assert_eq!(
            precheck(&c, 2_350, &all_off).map(|e| e.code),
            Some("config.no_funding_left".to_owned())
        );
        // Virtual goods lose credit; the app switching off the rest leaves nothing.
        let virtual_no_debit = SaleOptions {
            virtual_goods: true,
            disable_funding: vec![FundingChannel::Balance, FundingChannel::BankCard],
            ..SaleOptions::default()
        };
        assert_eq!(
            precheck(&c, 2_350, &virtual_no_debit).map(|e| e.code),
            Some("config.no_funding_left".to_owned())
        );
    }

    #[test]
    fn virtual_goods_never_use_huabei() {
        let o = SaleOptions {
            virtual_goods: true,
            ..SaleOptions::default()
        };
        let RiskDecision::Allow { disabled, .. } = evaluate(&cfg(), &input(2_350, &o)) else {
            panic!("allowed");
        };
        assert!(disabled.contains(&FundingChannel::Huabei));
        assert!(disabled.contains(&FundingChannel::HuabeiInstalments));
    }
}
