//! Small tables from which synthetic names, addresses and business details are drawn.
//!
//! Surnames are weighted roughly by frequency (common Shanghai surnames first); given names are
//! one or two characters from sex-leaning tables. Companies are `上海` + a two-syllable trade
//! name + an industry + an organisational suffix. Road names are ordinary Shanghai road names
//! used only as address filler.

use rand::Rng;

use super::ids::Sex;

/// (surname, weight).
const SURNAMES: [(&str, u32); 60] = [
    ("张", 60),
    ("王", 60),
    ("陈", 55),
    ("李", 50),
    ("徐", 40),
    ("朱", 35),
    ("沈", 30),
    ("陆", 30),
    ("顾", 25),
    ("吴", 30),
    ("周", 28),
    ("杨", 28),
    ("刘", 28),
    ("黄", 25),
    ("金", 20),
    ("钱", 18),
    ("孙", 18),
    ("胡", 18),
    ("赵", 16),
    ("蒋", 14),
    ("施", 14),
    ("姚", 12),
    ("郁", 10),
    ("曹", 12),
    ("许", 12),
    ("马", 12),
    ("邱", 8),
    ("倪", 10),
    ("汤", 8),
    ("唐", 10),
    ("林", 12),
    ("高", 12),
    ("何", 10),
    ("郭", 10),
    ("罗", 8),
    ("郑", 10),
    ("梁", 8),
    ("谢", 8),
    ("宋", 8),
    ("韩", 6),
    ("冯", 6),
    ("邓", 6),
    ("彭", 5),
    ("曾", 5),
    ("潘", 8),
    ("袁", 6),
    ("蔡", 8),
    ("叶", 8),
    ("程", 6),
    ("魏", 5),
    ("苏", 6),
    ("丁", 6),
    ("任", 5),
    ("汪", 6),
    ("范", 6),
    ("戴", 6),
    ("严", 6),
    ("费", 4),
    ("欧阳", 2),
    ("司马", 1),
];

#[rustfmt::skip]
const GIVEN_MALE: &[&str] = &[
    "伟", "强", "磊", "军", "勇", "杰", "涛", "斌", "超", "明", "刚", "平",
    "辉", "鹏", "华", "飞", "鑫", "波", "宇", "浩", "俊", "峰", "建", "国",
    "志", "文", "晨", "轩", "昊", "然", "子", "博", "一", "嘉", "天", "佳",
    "睿", "泽", "凯", "逸",
];

#[rustfmt::skip]
const GIVEN_FEMALE: &[&str] = &[
    "芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "燕", "玲", "婷", "雪",
    "慧", "颖", "洁", "琳", "倩", "蕾", "萍", "红", "梅", "瑶", "欣", "怡",
    "琪", "雨", "诗", "涵", "佳", "晓", "子", "思", "可", "梦", "悦", "雯",
    "佩", "丹", "妍", "一",
];

/// (ethnicity as printed on the card, weight).
const ETHNICITIES: [(&str, u32); 10] = [
    ("汉", 955),
    ("回", 8),
    ("满", 7),
    ("蒙古", 5),
    ("壮", 5),
    ("土家", 4),
    ("苗", 4),
    ("朝鲜", 5),
    ("维吾尔", 4),
    ("藏", 3),
];

/// Shanghai road names used as address filler.
pub const ROADS: &[&str] = &[
    "南京西路",
    "淮海中路",
    "世纪大道",
    "张江路",
    "漕溪北路",
    "四平路",
    "长寿路",
    "大渡河路",
    "虹桥路",
    "江场路",
    "吴中路",
    "莘庄路",
    "浦东南路",
    "曹杨路",
    "控江路",
    "共和新路",
    "天山路",
    "龙华中路",
    "中山北路",
    "杨高南路",
    "周家嘴路",
    "沪太路",
    "宜山路",
    "真北路",
    "古北路",
    "罗秀路",
    "金科路",
    "祖冲之路",
    "华夏东路",
    "松江路",
];

#[rustfmt::skip]
const TRADE_SYLLABLES: &[&str] = &[
    "华", "鑫", "恒", "达", "联", "创", "博", "瑞", "泰", "盛", "丰", "信",
    "通", "海", "德", "嘉", "安", "宏", "新", "和", "汇", "隆", "锦", "源",
    "辰", "启", "卓", "致", "远", "祥",
];

/// (industry word in the company name, business scope phrases).
pub const INDUSTRIES: [(&str, &[&str]); 8] = [
    (
        "信息科技",
        &[
            "从事信息科技领域内的技术开发、技术咨询、技术服务",
            "软件开发",
            "数据处理服务",
        ],
    ),
    (
        "贸易",
        &["货物进出口", "技术进出口", "日用百货销售", "服装服饰批发"],
    ),
    ("餐饮管理", &["餐饮服务", "餐饮管理", "食品销售"]),
    (
        "建筑工程",
        &["建设工程施工", "建筑装饰材料销售", "工程管理服务"],
    ),
    (
        "文化传播",
        &["组织文化艺术交流活动", "广告设计、代理", "会议及展览服务"],
    ),
    (
        "物流",
        &[
            "道路货物运输(不含危险货物)",
            "国内货物运输代理",
            "普通货物仓储服务",
        ],
    ),
    (
        "企业管理咨询",
        &[
            "企业管理咨询",
            "信息咨询服务(不含许可类信息咨询服务)",
            "市场营销策划",
        ],
    ),
    (
        "生物科技",
        &[
            "从事生物科技领域内的技术开发、技术转让",
            "第一类医疗器械销售",
            "化妆品批发",
        ],
    ),
];

/// (company type as printed, weight).
pub const COMPANY_TYPES: [(&str, u32); 5] = [
    ("有限责任公司(自然人投资或控股)", 50),
    ("有限责任公司(自然人独资)", 25),
    ("有限责任公司(外商投资、非独资)", 5),
    ("股份有限公司(非上市、自然人投资或控股)", 5),
    ("有限责任公司(国有独资)", 2),
];

/// Registered capital amounts, in 万元.
pub const CAPITALS_WAN: [u32; 8] = [10, 50, 100, 200, 300, 500, 1000, 5000];

/// Shop words of individual businesses (个体工商户).
#[rustfmt::skip]
pub const SHOPS: &[&str] = &[
    "便利店", "小吃店", "理发店", "五金店", "水果店", "服装店",
];

/// An index drawn with the given weights.
pub fn pick_weighted<T: Copy>(rng: &mut impl Rng, table: &[(T, u32)]) -> T {
    let total: u32 = table.iter().map(|(_, w)| w).sum();
    let mut ticket = rng.random_range(0..total);
    for &(item, weight) in table {
        if ticket < weight {
            return item;
        }
        ticket -= weight;
    }
    table[table.len() - 1].0
}

/// A uniform draw from a non-empty slice.
pub fn pick<'a, T>(rng: &mut impl Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// A surname.
pub fn surname(rng: &mut impl Rng) -> &'static str {
    pick_weighted(rng, &SURNAMES)
}

/// A one- or two-character given name leaning to the sex.
pub fn given_name(rng: &mut impl Rng, sex: Sex) -> String {
    let table = match sex {
        Sex::Male => GIVEN_MALE,
        Sex::Female => GIVEN_FEMALE,
    };
    let first = *pick(rng, table);
    if rng.random_bool(0.3) {
        return first.to_owned();
    }
    format!("{first}{}", pick(rng, table))
}

/// A full personal name.
pub fn person_name(rng: &mut impl Rng, sex: Sex) -> String {
    format!("{}{}", surname(rng), given_name(rng, sex))
}

/// An ethnicity as printed on ID cards.
pub fn ethnicity(rng: &mut impl Rng) -> &'static str {
    pick_weighted(rng, &ETHNICITIES)
}

/// A two-syllable trade name (字号).
pub fn trade_name(rng: &mut impl Rng) -> String {
    format!(
        "{}{}",
        pick(rng, TRADE_SYLLABLES),
        pick(rng, TRADE_SYLLABLES)
    )
}

/// A Shanghai street address in a district, e.g. `上海市浦东新区张江路12弄3号502室`.
pub fn shanghai_address(rng: &mut impl Rng, district: &str) -> String {
    let road = pick(rng, ROADS);
    let lane = rng.random_range(1..1500u32);
    let building = rng.random_range(1..40u32);
    let room = rng.random_range(1..25u32) * 100 + rng.random_range(1..5u32);
    format!("上海市{district}{road}{lane}弄{building}号{room}室")
}

/// A rural or town household address elsewhere, e.g. `安徽省阜南县王家镇李村12号`.
pub fn household_address(rng: &mut impl Rng, province: &str, county: &str) -> String {
    let town = format!("{}{}", surname(rng), pick(rng, &["家", "庄", "集", "桥"]));
    let village = format!(
        "{}{}",
        pick(rng, TRADE_SYLLABLES),
        pick(rng, &["村", "组", "社区"])
    );
    format!(
        "{province}{county}{town}镇{village}{}号",
        rng.random_range(1..200u32)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn weighted_picks_follow_weights() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let table = [("a", 1), ("b", 3)];
        let draws = 10_000;
        let b = (0..draws)
            .filter(|_| pick_weighted(&mut rng, &table) == "b")
            .count();
        let share = b as f64 / draws as f64;
        assert!((0.72..0.78).contains(&share), "{share}");
    }

    #[test]
    fn names_are_han_and_short() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for i in 0..200 {
            let sex = if i % 2 == 0 { Sex::Male } else { Sex::Female };
            let name = person_name(&mut rng, sex);
            let chars = name.chars().count();
            assert!((2..=4).contains(&chars), "{name}");
            assert!(
                name.chars().all(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
                "{name}"
            );
        }
    }
}
