//! Splitting one order version into rows of the normalised tables. Each
//! row goes to the sink named after its table, keyed as [`crate::tables`]
//! says, and only when [`Versions::claim`] lets it replace the row there.
//!
//! Rows without a usable key are not written (a bank card without its
//! number, a device without an id: 金盘 cannot tell them apart) and are
//! counted. Within one report the first row of a key wins: a phone listed
//! twice is written once.

use serde::Serialize;
use sluice_sdk::prelude::*;

use crate::order::{CreditReport, key_text};
use crate::tables::*;
use crate::versions::{Version, Versions};
use crate::{Decimal, OrderEvent};

/// What splitting one order did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Split {
    /// Rows emitted.
    pub written: u64,
    /// Rows not emitted because the table has a newer (or the same) version.
    pub superseded: u64,
    /// Rows without their key (card number, device id, ...): not stored.
    pub without_key: u64,
}

/// Emits the rows of `order` that are newer than what the tables hold.
/// Checked orders only ([`OrderEvent::check`]): nothing is rejected here, so
/// no row of an order is emitted before it would be rejected.
pub fn emit_order(ctx: &mut Context, versions: &Versions, order: &OrderEvent) -> Result<Split> {
    let mut out = Out { ctx, versions, version: Version::of(order), split: Split::default() };
    let user = order.user_id;
    let report = order.credit_report.as_ref();
    out.row(
        ORDER,
        &order.order_id,
        &OrderRow {
            user_id: user,
            merchant_id: order.merchant_id.as_deref(),
            loan_id: order.loan_id.as_deref(),
            product: order.product.as_deref(),
            amount: order.amount.as_ref(),
            periods: order.periods,
            annual_rate: order.annual_rate.as_ref(),
            status: order.status.as_deref(),
            apply_time: order.apply_time,
            report_id: report.and_then(|r| r.report_id.as_deref()),
            report_source: report.and_then(|r| r.source),
        },
    )?;
    if let Some(report) = report {
        out.report(user, report)?;
    }
    for item in &order.repayment_plan {
        if item.period < 1 {
            out.split.without_key += 1;
            continue;
        }
        let row = PlanRow {
            period: item.period,
            user_id: user,
            due_date: item.due_date.as_deref(),
            principal: item.principal.as_ref(),
            interest: item.interest.as_ref(),
        };
        out.row(REPAYMENT, &(order.order_id.as_str(), item.period), &row)?;
    }
    Ok(out.split)
}

struct Out<'c, 'v> {
    ctx: &'c mut Context,
    versions: &'v Versions,
    version: Version,
    split: Split,
}

impl Out<'_, '_> {
    /// Emits `row` to `table` if this version may replace the row of `key`.
    fn row<R: Serialize>(&mut self, table: &str, key: &(impl Key + ?Sized), row: &R) -> Result<()> {
        if self.versions.claim(self.ctx, table, key, &self.version)? {
            self.ctx
                .emit(table, &Versioned { row, order_id: &self.version.order_id, gmt: self.version.gmt_modified })?;
            self.split.written += 1;
        } else {
            self.split.superseded += 1;
        }
        Ok(())
    }

    /// A row of a table keyed by (user, `part`), when `part` is there.
    fn user_row<R: Serialize>(&mut self, table: &str, user: i64, part: Option<&str>, row: &R) -> Result<()> {
        match part {
            Some(part) => self.row(table, &(user, part), row),
            None => {
                self.split.without_key += 1;
                Ok(())
            }
        }
    }

    fn report(&mut self, user: i64, r: &CreditReport) -> Result<()> {
        if let Some(id) = &r.identity {
            let row = IdentityRow {
                user_id: user,
                name: id.name.as_deref(),
                id_card: id.id_card.as_deref(),
                gender: id.gender.as_deref(),
                birthday: id.birthday.as_deref(),
                nation: id.nation.as_deref(),
                id_address: id.id_address.as_deref(),
            };
            self.row(IDENTITY, &user, &row)?;
        }
        for a in &r.addresses {
            let kind = key_text(&a.kind);
            let row = AddressRow {
                user_id: user,
                address_type: kind,
                province: a.province.as_deref(),
                city: a.city.as_deref(),
                district: a.district.as_deref(),
                detail: a.detail.as_deref(),
            };
            self.user_row(ADDRESS, user, kind, &row)?;
        }
        for c in &r.bank_cards {
            let card_no = key_text(&c.card_no);
            let row = BankCardRow {
                user_id: user,
                card_no,
                bank_name: c.bank_name.as_deref(),
                card_type: c.card_type.as_deref(),
                reserved_mobile: c.mobile.as_deref(),
            };
            self.user_row(BANK_CARD, user, card_no, &row)?;
        }
        if let Some(c) = &r.company {
            let row = CompanyRow {
                user_id: user,
                company_name: c.name.as_deref(),
                company_phone: c.phone.as_deref(),
                company_address: c.address.as_deref(),
                industry: c.industry.as_deref(),
            };
            self.row(COMPANY, &user, &row)?;
        }
        for c in &r.contacts {
            let mobile = key_text(&c.mobile);
            let row = ContactRow {
                user_id: user,
                contact_mobile: mobile,
                contact_name: c.name.as_deref(),
                relation: c.relation.as_deref(),
            };
            self.user_row(CONTACT, user, mobile, &row)?;
        }
        for p in &r.phones {
            let mobile = key_text(&p.mobile);
            let row = PhoneRow {
                user_id: user,
                mobile,
                carrier: p.carrier.as_deref(),
                location: p.location.as_deref(),
                is_primary: p.primary,
            };
            self.user_row(PHONE, user, mobile, &row)?;
        }
        for d in &r.devices {
            let device_id = key_text(&d.device_id);
            let row = DeviceRow {
                user_id: user,
                device_id,
                os: d.os.as_deref(),
                model: d.model.as_deref(),
                app_version: d.app_version.as_deref(),
            };
            self.user_row(DEVICE, user, device_id, &row)?;
        }
        for a in &r.platform_accounts {
            let platform = key_text(&a.platform);
            let row = AccountRow { user_id: user, platform, account: a.account.as_deref() };
            self.user_row(PLATFORM_ACCOUNT, user, platform, &row)?;
        }
        Ok(())
    }
}

/// A row with the version columns every table has.
#[derive(Serialize)]
struct Versioned<'a, R> {
    #[serde(flatten)]
    row: &'a R,
    order_id: &'a str,
    #[serde(rename = "gmt_modified")]
    gmt: i64,
}

/// `jp_order` (its `order_id` and `gmt_modified` are the version's).
#[derive(Serialize)]
struct OrderRow<'a> {
    user_id: i64,
    merchant_id: Option<&'a str>,
    loan_id: Option<&'a str>,
    product: Option<&'a str>,
    amount: Option<&'a Decimal>,
    periods: Option<i64>,
    annual_rate: Option<&'a Decimal>,
    status: Option<&'a str>,
    apply_time: Option<i64>,
    report_id: Option<&'a str>,
    report_source: Option<i64>,
}

#[derive(Serialize)]
struct IdentityRow<'a> {
    user_id: i64,
    name: Option<&'a str>,
    id_card: Option<&'a str>,
    gender: Option<&'a str>,
    birthday: Option<&'a str>,
    nation: Option<&'a str>,
    id_address: Option<&'a str>,
}

#[derive(Serialize)]
struct AddressRow<'a> {
    user_id: i64,
    address_type: Option<&'a str>,
    province: Option<&'a str>,
    city: Option<&'a str>,
    district: Option<&'a str>,
    detail: Option<&'a str>,
}

#[derive(Serialize)]
struct BankCardRow<'a> {
    user_id: i64,
    card_no: Option<&'a str>,
    bank_name: Option<&'a str>,
    card_type: Option<&'a str>,
    reserved_mobile: Option<&'a str>,
}

#[derive(Serialize)]
struct CompanyRow<'a> {
    user_id: i64,
    company_name: Option<&'a str>,
    company_phone: Option<&'a str>,
    company_address: Option<&'a str>,
    industry: Option<&'a str>,
}

#[derive(Serialize)]
struct ContactRow<'a> {
    user_id: i64,
    contact_mobile: Option<&'a str>,
    contact_name: Option<&'a str>,
    relation: Option<&'a str>,
}

#[derive(Serialize)]
struct PhoneRow<'a> {
    user_id: i64,
    mobile: Option<&'a str>,
    carrier: Option<&'a str>,
    location: Option<&'a str>,
    is_primary: Option<bool>,
}

#[derive(Serialize)]
struct DeviceRow<'a> {
    user_id: i64,
    device_id: Option<&'a str>,
    os: Option<&'a str>,
    model: Option<&'a str>,
    app_version: Option<&'a str>,
}

#[derive(Serialize)]
struct AccountRow<'a> {
    user_id: i64,
    platform: Option<&'a str>,
    account: Option<&'a str>,
}

/// The plan columns of `jp_repayment` (with the version's `order_id`).
#[derive(Serialize)]
struct PlanRow<'a> {
    period: i64,
    user_id: i64,
    due_date: Option<&'a str>,
    principal: Option<&'a Decimal>,
    interest: Option<&'a Decimal>,
}
