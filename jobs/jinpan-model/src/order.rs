//! An order message of 盘宝 as it arrives (the `jinpan_order` stream):
//! the order, the borrower's credit report and, once approved, the
//! repayment plan. Fields the tables do not need are ignored; fields that
//! may be missing in real reports are `Option`s.

use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize, Serializer};
use sluice_sdk::{Error, Result};

/// One version of an order.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderEvent {
    pub order_id: String,
    pub user_id: i64,
    pub merchant_id: Option<String>,
    pub loan_id: Option<String>,
    pub product: Option<String>,
    pub amount: Option<Decimal>,
    pub periods: Option<i64>,
    pub annual_rate: Option<Decimal>,
    /// `PENDING`, `APPROVED` or `REJECTED`.
    pub status: Option<String>,
    pub apply_time: Option<i64>,
    /// When this version was written (ms); the version's time.
    pub gmt_modified: i64,
    pub credit_report: Option<CreditReport>,
    #[serde(default, deserialize_with = "list")]
    pub repayment_plan: Vec<Installment>,
}

impl OrderEvent {
    /// An order from JSON: an object, or JSON text holding one (how a JSON
    /// column reads back from MariaDB).
    pub fn from_json(value: serde_json::Value) -> Result<Self> {
        let order: OrderEvent = match value {
            serde_json::Value::String(text) => serde_json::from_str(&text)?,
            other => serde_json::from_value(other)?,
        };
        order.check()?;
        Ok(order)
    }

    /// What serde cannot check: the keys every table needs.
    pub fn check(&self) -> Result<()> {
        if self.order_id.trim().is_empty() {
            return Err(Error::record("order_id is empty"));
        }
        if self.user_id <= 0 {
            return Err(Error::record(format!("user_id {} is not a user id", self.user_id)));
        }
        Ok(())
    }
}

/// The credit report pulled for the order (one per order).
#[derive(Debug, Clone, Deserialize)]
pub struct CreditReport {
    pub report_id: Option<String>,
    /// The carrier-report vendor: 1 魔蝎, 2 聚信立, 3 贷后帮, 4 量化派.
    pub source: Option<i64>,
    pub identity: Option<Identity>,
    #[serde(default, deserialize_with = "list")]
    pub addresses: Vec<Address>,
    #[serde(default, deserialize_with = "list")]
    pub bank_cards: Vec<BankCard>,
    pub company: Option<Company>,
    #[serde(default, deserialize_with = "list")]
    pub contacts: Vec<Contact>,
    #[serde(default, deserialize_with = "list")]
    pub phones: Vec<Phone>,
    #[serde(default, deserialize_with = "list")]
    pub devices: Vec<Device>,
    #[serde(default, deserialize_with = "list")]
    pub platform_accounts: Vec<PlatformAccount>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Identity {
    pub name: Option<String>,
    pub id_card: Option<String>,
    pub gender: Option<String>,
    /// `YYYY-MM-DD`.
    pub birthday: Option<String>,
    pub nation: Option<String>,
    pub id_address: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Address {
    /// `ID_CARD`, `HOME`, `WORK` or `SHIPPING`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub province: Option<String>,
    pub city: Option<String>,
    pub district: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BankCard {
    pub card_no: Option<String>,
    pub bank_name: Option<String>,
    /// `DEBIT` or `CREDIT`.
    pub card_type: Option<String>,
    /// The mobile registered with the bank (预留手机号).
    pub mobile: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Company {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub industry: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Contact {
    pub name: Option<String>,
    pub mobile: Option<String>,
    pub relation: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Phone {
    pub mobile: Option<String>,
    pub carrier: Option<String>,
    /// Where the number is registered (归属地).
    pub location: Option<String>,
    pub primary: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Device {
    pub device_id: Option<String>,
    pub os: Option<String>,
    pub model: Option<String>,
    pub app_version: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PlatformAccount {
    /// `qq`, `wechat`, `alipay`.
    pub platform: Option<String>,
    pub account: Option<String>,
}

/// One installment of the repayment plan.
#[derive(Debug, Clone, Deserialize)]
pub struct Installment {
    pub period: i64,
    /// `YYYY-MM-DD`.
    pub due_date: Option<String>,
    pub principal: Option<Decimal>,
    pub interest: Option<Decimal>,
}

/// A decimal amount, kept as its exact text (`"5000.00"`) so it reaches
/// the NUMERIC column without a float in between. It arrives as a JSON
/// string or number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal(String);

impl Decimal {
    pub fn parse(text: &str) -> Option<Decimal> {
        let digits = text.strip_prefix('-').unwrap_or(text);
        let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        (all_digits(int) && all_digits(frac)).then(|| Decimal(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            other => return Err(D::Error::custom(format!("expected a decimal amount, found {other}"))),
        };
        Decimal::parse(text.trim()).ok_or_else(|| D::Error::custom(format!("`{text}` is not a decimal amount")))
    }
}

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A list that may also be `null`.
fn list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> std::result::Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// `Some` non-blank text: what a key column needs.
pub(crate) fn key_text(text: &Option<String>) -> Option<&str> {
    text.as_deref().map(str::trim).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_keep_their_text() {
        assert_eq!(Decimal::parse("5000.00").unwrap().as_str(), "5000.00");
        assert_eq!(Decimal::parse("-0.5").unwrap().as_str(), "-0.5");
        assert!(Decimal::parse("1e3").is_none() && Decimal::parse("").is_none() && Decimal::parse("1.").is_none());
        let d: Decimal = serde_json::from_str("933.33").unwrap();
        assert_eq!(d.as_str(), "933.33");
        let err = serde_json::from_str::<Decimal>("\"about 5k\"").unwrap_err().to_string();
        assert!(err.contains("`about 5k` is not a decimal amount"), "{err}");
    }

    #[test]
    fn orders_come_as_objects_or_text_and_need_their_keys() {
        let doc = serde_json::json!({ "order_id": "JP1", "user_id": 7, "gmt_modified": 1, "repayment_plan": null });
        let order = OrderEvent::from_json(doc.clone()).unwrap();
        assert!(order.repayment_plan.is_empty() && order.credit_report.is_none());
        assert_eq!(OrderEvent::from_json(doc.to_string().into()).unwrap().order_id, "JP1");
        let blank = serde_json::json!({ "order_id": " ", "user_id": 7, "gmt_modified": 1 });
        assert!(OrderEvent::from_json(blank).is_err());
        let nobody = serde_json::json!({ "order_id": "JP2", "user_id": 0, "gmt_modified": 1 });
        assert!(OrderEvent::from_json(nobody).is_err());
    }
}
