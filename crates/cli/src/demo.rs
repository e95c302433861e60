//! `licctl demo-issue`: two fixed demo holders and their licenses, for the demo script.
//!
//! * A Pudong citizen born 1988-08-08 (`310115 19880808 042` and the GB 11643 check
//!   character; the even sequence digit makes her female), holding a 居民身份证
//!   (`resident-id-card`) issued 2016-05-20 at 27, so valid 20 years.
//! * A Pudong company set up 2019-03-18 (`91 310115` with the organisation code
//!   `MA1G7LXK` and its GB 11714 check character, then the GB 32100 check character), holding
//!   a 营业执照 (`business-license`), long-term.
//!
//! The issuers are the generator's Pudong offices ([`crate::gen::Issuers`]), so the demo
//! records look like the rest of a generated dataset. Each license is issued with a fresh
//! request id; when the holder already holds one (`FAILED_PRECONDITION`, e.g. on a second
//! run) the stored one is fetched with a linearizable Get instead. The holders' ids and the
//! two identifiers go to `--out` as `DEMO_CITIZEN=…`, `DEMO_COMPANY=…`, `DEMO_CARD=…` and
//! `DEMO_LICENSE=…` lines that a shell can `source`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use licstore_client::{new_request_id, Client, ClientError};
use licstore_model::{citizen_id_check_char, uscc_check_char, HolderKind};
use licstore_proto::v1 as pb;
use licstore_proto::v1::licenses_client::LicensesClient;
use serde::Serialize;
use tonic::Code;

use crate::args::DemoIssueArgs;
use crate::dataset::{HolderInput, IssuerInput, LicenseInput};
use crate::gen::ids::org_code_check;
use crate::gen::Issuers;
use crate::output::{emit, Render, Table};
use crate::{convert, types, Ctx};

/// Region (Pudong New Area) of both demo holders and their issuers.
const REGION: &str = "310115";
/// Birth date part of the demo citizen's ID number.
const CITIZEN_BIRTH: &str = "19880808";
/// Order and sequence digits; the last is even, so the holder is female.
const CITIZEN_SEQUENCE: &str = "042";
/// Body of the demo company's organisation code (the modern `MA1…` shape).
const COMPANY_ORG_BODY: &str = "MA1G7LXK";
const CITIZEN_NAME: &str = "林晓雯";
const COMPANY_NAME: &str = "上海示证数据科技有限公司";

/// The demo citizen's ID number, with its check character.
pub fn demo_citizen_id() -> String {
    let first17 = format!("{REGION}{CITIZEN_BIRTH}{CITIZEN_SEQUENCE}");
    let check = citizen_id_check_char(&first17).unwrap_or('0');
    format!("{first17}{check}")
}

/// The demo company's USCC, with both check characters.
pub fn demo_company_uscc() -> String {
    let org = format!("{COMPANY_ORG_BODY}{}", org_code_check(COMPANY_ORG_BODY));
    let first17 = format!("91{REGION}{org}");
    let check = uscc_check_char(&first17).unwrap_or('0');
    format!("{first17}{check}")
}

fn face(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The demo resident ID card.
pub fn demo_id_card(issuers: &Issuers) -> anyhow::Result<LicenseInput> {
    let police = issuers
        .police_of(REGION)
        .context("no police sub-bureau for the demo district")?;
    let id = demo_citizen_id();
    Ok(LicenseInput {
        type_code: types::resolve("resident-id-card"),
        holder: HolderInput {
            kind: HolderKind::CitizenId.as_str().to_owned(),
            id: id.clone(),
            name: CITIZEN_NAME.to_owned(),
        },
        license_number: id,
        issuer: IssuerInput {
            code: police.code.clone(),
            name: police.name.clone(),
        },
        issue_date: "2016-05-20".to_owned(),
        valid_from: "2016-05-20".to_owned(),
        valid_until: "2036-05-20".to_owned(),
        region_code: REGION.to_owned(),
        face: face(&[
            ("name", CITIZEN_NAME),
            ("sex", "女"),
            ("ethnicity", "汉"),
            ("birth_date", "1988-08-08"),
            ("address", "上海市浦东新区锦绣路1088弄12号602室"),
            ("issuing_authority", &police.name),
        ]),
        serial: String::new(),
    })
}

/// The demo business license.
pub fn demo_business_license(issuers: &Issuers) -> anyhow::Result<LicenseInput> {
    let market = issuers
        .market_of(REGION)
        .context("no market supervision bureau for the demo district")?;
    let code = demo_company_uscc();
    let scope = "一般项目:技术服务、技术开发、技术咨询、\
                 技术交流、技术转让、技术推广;软件开发;\
                 数据处理服务;信息系统集成服务。\
                 (除依法须经批准的项目外,\
                 凭营业执照依法自主开展经营活动)";
    Ok(LicenseInput {
        type_code: types::resolve("business-license"),
        holder: HolderInput {
            kind: HolderKind::Uscc.as_str().to_owned(),
            id: code.clone(),
            name: COMPANY_NAME.to_owned(),
        },
        license_number: code,
        issuer: IssuerInput {
            code: market.code.clone(),
            name: market.name.clone(),
        },
        issue_date: "2019-03-18".to_owned(),
        valid_from: "2019-03-18".to_owned(),
        valid_until: String::new(),
        region_code: REGION.to_owned(),
        face: face(&[
            ("company_name", COMPANY_NAME),
            ("company_type", "有限责任公司(自然人投资或控股)"),
            ("legal_representative", "周建国"),
            ("registered_capital", "500万元人民币"),
            ("established_date", "2019-03-18"),
            ("business_term", "2019-03-18至无固定期限"),
            ("business_scope", scope),
            ("address", "上海市浦东新区张江路88号3幢501室"),
            ("registration_authority", &market.name),
        ]),
        serial: String::new(),
    })
}

/// One demo license as issued or found.
#[derive(Clone, Debug, Serialize)]
pub struct DemoRow {
    pub holder_kind: String,
    pub holder_id: String,
    pub holder_name: String,
    pub type_key: String,
    pub identifier: String,
    pub status: String,
    /// `issued`, `issued (duplicate)` or `already held`.
    pub outcome: String,
}

/// What `demo-issue` prints.
#[derive(Clone, Debug, Serialize)]
pub struct DemoReport {
    pub env_file: String,
    pub licenses: Vec<DemoRow>,
}

impl Render for DemoReport {
    fn table(&self) -> Table {
        let headers = ["holder", "name", "type", "identifier", "status", "outcome"];
        let mut t = Table::new(&headers);
        for r in &self.licenses {
            t.row([
                format!("{} {}", r.holder_kind, r.holder_id),
                r.holder_name.clone(),
                r.type_key.clone(),
                r.identifier.clone(),
                r.status.clone(),
                r.outcome.clone(),
            ]);
        }
        t
    }
}

/// Issues `content`, or fetches the holder's stored license of that type when they already
/// hold one.
async fn issue_or_get(
    client: &mut Client,
    content: &LicenseInput,
) -> anyhow::Result<(pb::License, &'static str)> {
    let license = content.to_proto().map_err(|e| anyhow::anyhow!("{e}"))?;
    let request = pb::IssueRequest {
        request_id: new_request_id(),
        license: Some(license.clone()),
        lenient_holder_check: false,
        seal_bundle: Vec::new(),
    };
    let issued = client
        .retrying(|ch| {
            let request = request.clone();
            async move { LicensesClient::new(ch).issue(request).await }
        })
        .await;
    match issued {
        Ok(r) => {
            let outcome = if r.duplicate {
                "issued (duplicate)"
            } else {
                "issued"
            };
            let license = r
                .license
                .context("the server acknowledged with no license")?;
            Ok((license, outcome))
        }
        Err(ClientError::Status(s))
            if s.code() == Code::FailedPrecondition
                && s.metadata()
                    .get("licstore-field")
                    .is_some_and(|f| f == "license.holder.id") =>
        {
            let holder = license.holder.unwrap_or_default();
            let request = pb::GetRequest {
                holder_kind: holder.kind,
                holder_id: holder.id,
                type_code: license.type_code,
                consistency: convert::consistency(false),
                max_staleness_ms: 0,
            };
            let found = client
                .retrying(|ch| {
                    let request = request.clone();
                    async move { LicensesClient::new(ch).get(request).await }
                })
                .await
                .context("the holder already holds one; fetching it failed")?;
            let license = found
                .license
                .context("the holder already holds one, but Get returned none")?;
            Ok((license, "already held"))
        }
        Err(e) => Err(e.into()),
    }
}

/// `'text'` unless the text is made of characters a shell leaves alone.
pub fn shell_quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-:/+,@%".contains(c));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// The env file: one `NAME=value` line per pair.
pub fn env_lines(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={}\n", shell_quote(value)))
        .collect()
}

fn write_env(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

/// `licctl demo-issue`.
pub async fn run(ctx: &Ctx, args: DemoIssueArgs) -> anyhow::Result<()> {
    let issuers = Issuers::shanghai();
    let demos = [
        ("resident-id-card", demo_id_card(&issuers)?),
        ("business-license", demo_business_license(&issuers)?),
    ];
    let mut client = ctx.client()?;
    let card_issuer = demos[0].1.issuer.code.clone();
    if let Some(path) = &args.seal_key {
        crate::seals::register_key(ctx, card_issuer.clone(), path).await?;
    }
    let mut rows = Vec::new();
    for (key, content) in &demos {
        let (license, outcome) = issue_or_get(&mut client, content)
            .await
            .with_context(|| format!("demo {key} for {}", content.holder.id))?;
        rows.push(DemoRow {
            holder_kind: content.holder.kind.clone(),
            holder_id: content.holder.id.clone(),
            holder_name: content.holder.name.clone(),
            type_key: (*key).to_owned(),
            identifier: license.identifier.clone(),
            status: convert::status_name(license.status),
            outcome: outcome.to_owned(),
        });
    }
    let env = env_lines(&[
        ("DEMO_CITIZEN", &rows[0].holder_id),
        ("DEMO_COMPANY", &rows[1].holder_id),
        ("DEMO_CARD", &rows[0].identifier),
        ("DEMO_LICENSE", &rows[1].identifier),
        ("DEMO_CARD_ISSUER", &card_issuer),
    ]);
    write_env(&args.out, &env)?;
    let report = DemoReport {
        env_file: args.out.display().to_string(),
        licenses: rows,
    };
    emit(ctx.output, &report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use licstore_model::{validate_holder_id, validate_new_license, CheckMode, Date};

    #[test]
    fn demo_holders_have_valid_check_characters() {
        let today = Date::new(2026, 1, 1).expect("date");
        let citizen = demo_citizen_id();
        assert!(citizen.starts_with("31011519880808042"), "{citizen}");
        let check = validate_holder_id(HolderKind::CitizenId, &citizen, CheckMode::Strict, today);
        assert!(check.is_ok(), "{citizen}: {check:?}");
        let company = demo_company_uscc();
        assert!(company.starts_with("91310115MA1G7LXK"), "{company}");
        let check = validate_holder_id(HolderKind::Uscc, &company, CheckMode::Strict, today);
        assert!(check.is_ok(), "{company}: {check:?}");
    }

    #[test]
    fn demo_licenses_pass_model_validation() {
        let issuers = Issuers::shanghai();
        let today = Date::new(2026, 1, 1).expect("date");
        let registry = types::registry();
        for content in [
            demo_id_card(&issuers).expect("card"),
            demo_business_license(&issuers).expect("license"),
        ] {
            let new = content.to_model();
            let checked = validate_new_license(&new, registry, CheckMode::Strict, today);
            assert!(checked.is_ok(), "{checked:?}\n{content:?}");
            assert!(content.to_proto().is_ok());
        }
    }

    #[test]
    fn env_lines_are_shell_safe() {
        let cases = [
            (
                "DEMO_CARD",
                "1.2.156.3005.2.X.Y.001.K",
                "DEMO_CARD=1.2.156.3005.2.X.Y.001.K\n",
            ),
            ("A", "two words", "A='two words'\n"),
            ("A", "it's", "A='it'\\''s'\n"),
            ("A", "", "A=''\n"),
            ("A", "$(rm)", "A='$(rm)'\n"),
        ];
        for (name, value, want) in cases {
            assert_eq!(env_lines(&[(name, value)]), want, "{value}");
        }
    }
}
