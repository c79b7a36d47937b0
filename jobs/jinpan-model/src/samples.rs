//! Hand-written order messages for the jobs' cases and tests: one
//! borrower's reports in three variants, and orders around them.

use serde_json::{Value, json};

/// 2024-03-15 10:00:00 +08:00.
pub const T0: i64 = 1_710_468_000_000;

/// A credit report of user 10000001; `variant` changes what a later
/// report of the same user says.
pub fn report(variant: u8) -> Value {
    let home = if variant >= 2 { "浦东新区世纪大道88号" } else { "南山区科技园路12号3栋1502室" };
    let mut cards = vec![
        json!({ "card_no": "6222021234567890128", "bank_name": "中国工商银行", "card_type": "DEBIT", "mobile": "13800138000" }),
        // a card without its number: cannot be keyed
        json!({ "card_no": null, "bank_name": "招商银行", "card_type": "CREDIT", "mobile": "13800138000" }),
    ];
    if variant >= 1 {
        cards.push(json!({ "card_no": "6217001234567890125", "bank_name": "中国建设银行", "card_type": "DEBIT", "mobile": "13800138000" }));
    }
    json!({
        "report_id": format!("CR-{variant}"),
        "source": 2,
        "identity": {
            "name": "张伟", "id_card": "440305199003071235", "gender": "男", "birthday": "1990-03-07",
            "nation": "汉族", "id_address": "广东省深圳市南山区桃园路1号",
        },
        "addresses": [
            { "type": "ID_CARD", "province": "广东省", "city": "深圳市", "district": "南山区", "detail": "桃园路1号" },
            { "type": "HOME", "province": if variant >= 2 { "上海市" } else { "广东省" },
              "city": if variant >= 2 { "上海市" } else { "深圳市" }, "district": "", "detail": home },
        ],
        "bank_cards": cards,
        "company": { "name": if variant >= 1 { Value::Null } else { "深圳华信科技有限公司".into() },
                     "phone": "0755-86001234", "address": "广东省深圳市南山区科技园路12号", "industry": "信息技术" },
        "contacts": [
            { "name": "李娜", "mobile": "13900139000", "relation": "配偶" },
            { "name": "张建国", "mobile": "13700137000", "relation": "父亲" },
        ],
        "phones": [
            { "mobile": "13800138000", "carrier": "中国移动", "location": "广东省深圳市", "primary": true },
            { "mobile": "18600186000", "carrier": "中国联通", "location": "北京市", "primary": false },
            // listed twice, as the carrier report and the application both have it
            { "mobile": "13800138000", "carrier": "中国移动", "location": "广东省深圳市", "primary": true },
        ],
        "devices": [
            { "device_id": "a1b2c3d4e5f60718", "os": "Android", "model": "HUAWEI P30", "app_version": "3.2.1" },
            { "device_id": "", "os": "iOS", "model": "iPhone 13", "app_version": "3.2.4" },
        ],
        "platform_accounts": [
            { "platform": "wechat", "account": "wxid_abc123def456gh" },
            { "platform": "qq", "account": if variant >= 2 { "87654321" } else { "12345678" } },
        ],
    })
}

/// An order message. `APPROVED` ones carry a three-month plan.
pub fn order(order_id: &str, user_id: i64, gmt_modified: i64, status: &str, report: Value) -> Value {
    let plan: Vec<Value> = if status == "APPROVED" {
        (1..=3)
            .map(|p| json!({ "period": p, "due_date": format!("2024-0{}-15", 3 + p), "principal": "1000.00", "interest": "60.00" }))
            .collect()
    } else {
        Vec::new()
    };
    json!({
        "order_id": order_id,
        "user_id": user_id,
        "merchant_id": "M0003",
        "loan_id": if status == "APPROVED" { Value::from(format!("LN{}", &order_id[2..])) } else { Value::Null },
        "product": "分期贷",
        "amount": "3000.00",
        "periods": 3,
        "annual_rate": "0.2400",
        "status": status,
        "apply_time": T0,
        "gmt_modified": gmt_modified,
        "credit_report": report,
        "repayment_plan": plan,
    })
}
