//! The borrowers of the 金盘 scenario and what their credit reports say
//! about them: identities with valid 18-digit ID-card numbers, addresses,
//! bank cards with valid Luhn digits, employers, contacts, phone numbers,
//! devices and platform accounts.
//!
//! A borrower's profile lives across orders and changes a little between
//! them (a new card, a new phone, a move), so that the same user's reports
//! disagree the way real ones do. The holes the seed counts are here too:
//! cards without a number, employers without a name, devices without an id,
//! and phone lists with the same number twice.

use serde_json::{Value, json};

use crate::Dice;

/// A district: its ID-card area code, names and telephone area code.
struct Region {
    code: &'static str,
    province: &'static str,
    city: &'static str,
    district: &'static str,
    phone_area: &'static str,
}

const fn region(
    code: &'static str,
    province: &'static str,
    city: &'static str,
    district: &'static str,
    phone_area: &'static str,
) -> Region {
    Region { code, province, city, district, phone_area }
}

const REGIONS: &[Region] = &[
    region("110105", "北京市", "北京市", "朝阳区", "010"),
    region("310115", "上海市", "上海市", "浦东新区", "021"),
    region("440106", "广东省", "广州市", "天河区", "020"),
    region("440305", "广东省", "深圳市", "南山区", "0755"),
    region("330106", "浙江省", "杭州市", "西湖区", "0571"),
    region("320106", "江苏省", "南京市", "鼓楼区", "025"),
    region("510107", "四川省", "成都市", "武侯区", "028"),
    region("420111", "湖北省", "武汉市", "洪山区", "027"),
    region("430104", "湖南省", "长沙市", "岳麓区", "0731"),
    region("370202", "山东省", "青岛市", "市南区", "0532"),
    region("350203", "福建省", "厦门市", "思明区", "0592"),
    region("410105", "河南省", "郑州市", "金水区", "0371"),
    region("610113", "陕西省", "西安市", "雁塔区", "029"),
    region("500103", "重庆市", "重庆市", "渝中区", "023"),
    region("450103", "广西壮族自治区", "南宁市", "青秀区", "0771"),
];

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "高", "林",
    "罗",
];
const GIVEN_NAMES: &[&str] = &[
    "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超",
    "秀兰", "霞", "平", "刚", "桂英", "浩然", "子轩", "欣怡", "梓涵", "宇航", "建国", "晓燕",
];
const MINORITIES: &[&str] = &["壮族", "回族", "满族", "维吾尔族", "苗族", "土家族"];
const STREETS: &[&str] =
    &["人民路", "解放路", "中山路", "建设路", "和平路", "科技园路", "长江路", "文化路", "新华街", "胜利街"];
/// (bank, BIN of its debit cards, BIN of its credit cards)
const BANKS: &[(&str, &str, &str)] = &[
    ("中国工商银行", "622202", "625330"),
    ("中国建设银行", "621700", "552801"),
    ("中国农业银行", "622848", "622836"),
    ("中国银行", "621661", "625905"),
    ("招商银行", "622588", "439225"),
    ("交通银行", "622260", "521899"),
    ("中国邮政储蓄银行", "621799", "625919"),
    ("平安银行", "622155", "622156"),
    ("兴业银行", "622909", "451289"),
    ("浦发银行", "622521", "456351"),
];
/// (carrier, mobile prefixes)
const CARRIERS: &[(&str, &[&str])] = &[
    (
        "中国移动",
        &["134", "135", "136", "137", "138", "139", "150", "151", "152", "157", "158", "159", "182", "187", "188"],
    ),
    ("中国联通", &["130", "131", "132", "155", "156", "166", "185", "186"]),
    ("中国电信", &["133", "153", "180", "181", "189", "199"]),
];
const COMPANY_WORDS: &[&str] = &["华信", "鼎盛", "恒通", "金穗", "宏达", "瑞丰", "新峰", "启航", "东方", "天诚"];
const COMPANY_KINDS: &[&str] =
    &["科技有限公司", "贸易有限公司", "建筑工程有限公司", "餐饮管理有限公司", "物流有限公司", "电子商务有限公司"];
const INDUSTRIES: &[&str] = &["信息技术", "批发零售", "建筑业", "住宿餐饮", "交通运输", "制造业", "教育", "居民服务"];
const RELATIONS: &[&str] = &["父亲", "母亲", "配偶", "兄弟", "姐妹", "朋友", "同事"];
const ANDROID_MODELS: &[&str] =
    &["HUAWEI Mate 40", "HUAWEI P30", "Xiaomi 13", "Redmi K60", "OPPO Reno9", "vivo X90", "Honor 80", "OnePlus 11"];
const IPHONE_MODELS: &[&str] = &["iPhone 12", "iPhone 13", "iPhone 14 Pro", "iPhone 15"];
const APP_VERSIONS: &[&str] = &["3.1.0", "3.2.1", "3.2.4", "3.3.0"];

/// The share of bank cards reported without a number (the seed: 20,000 of
/// 8.37 million; raised so that small runs have some).
const CARD_WITHOUT_NUMBER: f64 = 0.03;
/// The share of employers without a name (60,000 of 8.6 million, raised).
const COMPANY_WITHOUT_NAME: f64 = 0.05;
/// The share of devices without an id (150,000 of 1.1 million).
const DEVICE_WITHOUT_ID: f64 = 0.12;
/// The share of reports that list the primary mobile twice.
const PHONE_LISTED_TWICE: f64 = 0.3;

/// One borrower, as the credit reports of their orders describe them.
#[derive(Debug, Clone)]
pub(super) struct Profile {
    pub user_id: i64,
    identity: Value,
    mobile: String,
    addresses: Vec<Value>,
    bank_cards: Vec<Value>,
    company: Option<Value>,
    contacts: Vec<Value>,
    phones: Vec<Value>,
    devices: Vec<Value>,
    accounts: Vec<Value>,
}

impl Profile {
    /// A new borrower aged 20 to 55 in `year`.
    pub fn new(dice: &mut Dice, user_id: i64, year: i64) -> Profile {
        let home = dice.below(REGIONS.len() as u64) as usize;
        let name = person_name(dice);
        let birth_year = year - 20 - dice.below(36) as i64;
        let (month, day) = (1 + dice.below(12), 1 + dice.below(28));
        let sequence = dice.below(1000);
        let id_card = id_card(REGIONS[home].code, birth_year, month, day, sequence);
        let gender = if sequence % 2 == 1 { "男" } else { "女" };
        let nation = if dice.chance(0.9) { "汉族" } else { *dice.pick(MINORITIES) };
        let id_address = street_address(dice, &REGIONS[home]);
        let identity = json!({
            "name": name,
            "id_card": id_card,
            "gender": gender,
            "birthday": format!("{birth_year:04}-{month:02}-{day:02}"),
            "nation": nation,
            "id_address": id_address,
        });
        let (carrier, mobile) = mobile(dice);
        let id_card_address = address(dice, "ID_CARD", home);
        let lives = nearby(dice, home);
        let home_address = address(dice, "HOME", lives);
        let mut profile = Profile {
            user_id,
            identity,
            mobile: mobile.clone(),
            addresses: vec![id_card_address, home_address],
            bank_cards: Vec::new(),
            company: None,
            contacts: Vec::new(),
            phones: vec![phone(&mobile, carrier, &REGIONS[home], true)],
            devices: Vec::new(),
            accounts: Vec::new(),
        };
        for _ in 0..1 + dice.below(3) {
            profile.add_card(dice);
        }
        if dice.chance(0.85) {
            profile.change_job(dice, home);
        }
        for _ in 0..2 + dice.below(4) {
            profile.add_contact(dice);
        }
        if dice.chance(0.3) {
            profile.add_phone(dice);
        }
        for _ in 0..1 + dice.below(2) {
            profile.add_device(dice);
        }
        for platform in ["qq", "wechat", "alipay"] {
            if dice.chance(0.7) {
                profile.accounts.push(json!({ "platform": platform, "account": account(dice, platform, &mobile) }));
            }
        }
        profile
    }

    /// What changes between two applications of the same borrower.
    pub fn evolve(&mut self, dice: &mut Dice) {
        if dice.chance(0.15) {
            self.add_card(dice);
        }
        if dice.chance(0.1) {
            self.add_device(dice);
        }
        if dice.chance(0.1) {
            let home = dice.below(REGIONS.len() as u64) as usize;
            self.change_job(dice, home);
        }
        if dice.chance(0.1) {
            let home = dice.below(REGIONS.len() as u64) as usize;
            let moved = address(dice, "HOME", home);
            self.addresses.retain(|a| a["type"] != "HOME");
            self.addresses.push(moved);
        }
        if dice.chance(0.1) {
            self.add_contact(dice);
        }
        if dice.chance(0.05) {
            self.add_phone(dice);
        }
        if dice.chance(0.05) && !self.accounts.iter().any(|a| a["platform"] == "wechat") {
            self.accounts.push(json!({ "platform": "wechat", "account": account(dice, "wechat", &self.mobile) }));
        }
    }

    /// The credit report of one order: everything the profile holds now.
    pub fn report(&self, dice: &mut Dice, report_id: String) -> Value {
        let mut phones = self.phones.clone();
        if dice.chance(PHONE_LISTED_TWICE) {
            // The carrier report and the application both list the mobile.
            phones.push(phones[0].clone());
        }
        let mut addresses = self.addresses.clone();
        if dice.chance(0.2) {
            // The shipping address is the home address, written again.
            let mut shipping = addresses.iter().find(|a| a["type"] == "HOME").cloned().unwrap_or(Value::Null);
            shipping["type"] = "SHIPPING".into();
            addresses.push(shipping);
        }
        json!({
            "report_id": report_id,
            // 1 魔蝎, 2 聚信立, 3 贷后帮, 4 量化派
            "source": 1 + dice.below(4),
            "identity": self.identity,
            "addresses": addresses,
            "bank_cards": self.bank_cards,
            "company": self.company,
            "contacts": self.contacts,
            "phones": phones,
            "devices": self.devices,
            "platform_accounts": self.accounts,
        })
    }

    fn add_card(&mut self, dice: &mut Dice) {
        let (bank, debit_bin, credit_bin) = *dice.pick(BANKS);
        let credit = dice.chance(0.25);
        let number = if credit { card_number(dice, credit_bin, 16) } else { card_number(dice, debit_bin, 19) };
        let card_no = if dice.chance(CARD_WITHOUT_NUMBER) { Value::Null } else { number.into() };
        self.bank_cards.push(json!({
            "card_no": card_no,
            "bank_name": bank,
            "card_type": if credit { "CREDIT" } else { "DEBIT" },
            "mobile": self.mobile,
        }));
    }

    fn change_job(&mut self, dice: &mut Dice, near: usize) {
        let at = nearby(dice, near);
        let r = &REGIONS[at];
        let name = format!("{}{}{}", short_city(r.city), dice.pick(COMPANY_WORDS), dice.pick(COMPANY_KINDS));
        let name = if dice.chance(COMPANY_WITHOUT_NAME) { Value::Null } else { name.into() };
        self.company = Some(json!({
            "name": name,
            "phone": format!("{}-{}", r.phone_area, 80_000_000 + dice.below(10_000_000)),
            "address": format!("{}{}{}", r.province, r.city, street_address(dice, r)),
            "industry": dice.pick(INDUSTRIES),
        }));
        self.addresses.retain(|a| a["type"] != "WORK");
        self.addresses.push(address(dice, "WORK", at));
    }

    fn add_contact(&mut self, dice: &mut Dice) {
        let (_, mobile) = mobile(dice);
        self.contacts.push(json!({ "name": person_name(dice), "mobile": mobile, "relation": dice.pick(RELATIONS) }));
    }

    fn add_phone(&mut self, dice: &mut Dice) {
        let (carrier, mobile) = mobile(dice);
        let r = &REGIONS[dice.below(REGIONS.len() as u64) as usize];
        self.phones.push(phone(&mobile, carrier, r, false));
    }

    fn add_device(&mut self, dice: &mut Dice) {
        let ios = dice.chance(0.3);
        let id = if ios {
            let h = |dice: &mut Dice, n: usize| hex(dice, n).to_uppercase();
            format!("{}-{}-{}-{}-{}", h(dice, 8), h(dice, 4), h(dice, 4), h(dice, 4), h(dice, 12))
        } else {
            hex(dice, 16)
        };
        let device_id = if dice.chance(DEVICE_WITHOUT_ID) { String::new() } else { id };
        self.devices.push(json!({
            "device_id": device_id,
            "os": if ios { "iOS" } else { "Android" },
            "model": if ios { dice.pick(IPHONE_MODELS) } else { dice.pick(ANDROID_MODELS) },
            "app_version": dice.pick(APP_VERSIONS),
        }));
    }
}

fn person_name(dice: &mut Dice) -> String {
    format!("{}{}", dice.pick(SURNAMES), dice.pick(GIVEN_NAMES))
}

/// A region, usually the same one (people work and live near home).
fn nearby(dice: &mut Dice, home: usize) -> usize {
    if dice.chance(0.7) { home } else { dice.below(REGIONS.len() as u64) as usize }
}

fn short_city(city: &str) -> &str {
    city.strip_suffix('市').unwrap_or(city)
}

fn street_address(dice: &mut Dice, r: &Region) -> String {
    format!(
        "{}{}{}号{}栋{}单元{}{:02}室",
        r.district,
        dice.pick(STREETS),
        1 + dice.below(300),
        1 + dice.below(20),
        1 + dice.below(4),
        1 + dice.below(30),
        1 + dice.below(6)
    )
}

fn address(dice: &mut Dice, kind: &str, at: usize) -> Value {
    let r = &REGIONS[at];
    json!({
        "type": kind,
        "province": r.province,
        "city": r.city,
        "district": r.district,
        "detail": street_address(dice, r),
    })
}

fn mobile(dice: &mut Dice) -> (&'static str, String) {
    let (carrier, prefixes) = *dice.pick(CARRIERS);
    (carrier, format!("{}{:08}", dice.pick(prefixes), dice.below(100_000_000)))
}

fn phone(mobile: &str, carrier: &str, r: &Region, primary: bool) -> Value {
    json!({
        "mobile": mobile,
        "carrier": carrier,
        "location": format!("{}{}", r.province, if r.province == r.city { "" } else { r.city }),
        "primary": primary,
    })
}

fn account(dice: &mut Dice, platform: &str, mobile: &str) -> String {
    match platform {
        "qq" => (10_000 + dice.below(3_000_000_000)).to_string(),
        "wechat" => {
            let tail: String =
                (0..14).map(|_| *dice.pick(&b"abcdefghijklmnopqrstuvwxyz0123456789"[..]) as char).collect();
            format!("wxid_{tail}")
        }
        _ => mobile.to_owned(),
    }
}

fn hex(dice: &mut Dice, len: usize) -> String {
    (0..len).map(|_| *dice.pick(&b"0123456789abcdef"[..]) as char).collect()
}

/// An 18-digit resident ID number: area, birth date, sequence (odd for
/// men), and the ISO 7064 MOD 11-2 check character.
pub(super) fn id_card(area: &str, year: i64, month: u64, day: u64, sequence: u64) -> String {
    let body = format!("{area}{year:04}{month:02}{day:02}{sequence:03}");
    format!("{body}{}", id_check(&body))
}

/// The check character of the first 17 digits of an ID number.
pub(super) fn id_check(body: &str) -> char {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body.bytes().zip(WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    b"10X98765432"[(sum % 11) as usize] as char
}

/// A card number of `len` digits starting with `bin`, with its Luhn digit.
fn card_number(dice: &mut Dice, bin: &str, len: usize) -> String {
    let mut digits = bin.to_owned();
    while digits.len() < len - 1 {
        digits.push((b'0' + dice.below(10) as u8) as char);
    }
    let check = luhn_check(&digits);
    digits.push(check);
    digits
}

/// The Luhn check digit to append to `digits`.
pub(super) fn luhn_check(digits: &str) -> char {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    (b'0' + ((10 - sum % 10) % 10) as u8) as char
}
