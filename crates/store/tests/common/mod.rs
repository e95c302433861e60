//! Helpers shared by the storage tests: valid licenses, log entries, applying them.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io;

use futures::stream;
use licstore_model::{
    citizen_id_check_char, uscc_check_char, Date, Holder, HolderKind, Issuer, LicenseStatus,
    NewLicense, TemplateRegistry,
};
use licstore_store::{Command, ImportItem, TypeConfig};
use openraft::alias::EntryOf;
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::testing::log_id;

pub fn citizen(seq: u32) -> String {
    let first17 = format!("31011519850612{:03}", seq % 1000);
    format!(
        "{first17}{}",
        citizen_id_check_char(&first17).expect("digits")
    )
}

pub fn issuer_code() -> String {
    let first17 = "11310000002421234";
    format!("{first17}{}", uscc_check_char(first17).expect("chars"))
}

pub fn new_card(seq: u32) -> NewLicense {
    let t = TemplateRegistry::builtin();
    let t = t.get("resident-id-card").expect("template");
    let face: BTreeMap<String, String> = [
        ("name", "李四"),
        ("sex", "男"),
        ("ethnicity", "汉"),
        ("birth_date", "1985-06-12"),
        ("address", "上海市浦东新区"),
        ("issuing_authority", "上海市公安局浦东分局"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    NewLicense {
        type_code: t.type_code.clone(),
        holder: Holder {
            kind: HolderKind::CitizenId,
            id: citizen(seq),
            name: "李四".into(),
            legacy_checksum: false,
        },
        license_number: citizen(seq),
        issuer: Issuer {
            code: issuer_code(),
            name: "上海市公安局浦东分局".into(),
        },
        issue_date: Date::parse("2020-01-15").expect("date"),
        valid_from: Date::parse("2020-01-15").expect("date"),
        valid_until: Some(Date::parse("2040-01-15").expect("date")),
        region_code: "310115".into(),
        face,
        serial: None,
    }
}

pub fn issue(seq: u32) -> Command {
    Command::Issue(ImportItem {
        request_id: format!("r{seq}"),
        identifier: None,
        license: new_card(seq),
        legacy_checksum: false,
        status: LicenseStatus::Valid,
        status_reason: None,
        seal: Vec::new(),
        serial_derived: false,
    })
}

pub fn entries(first_index: u64, cmds: Vec<Command>) -> Vec<EntryOf<TypeConfig>> {
    cmds.into_iter()
        .enumerate()
        .map(|(i, c)| {
            EntryOf::<TypeConfig>::new_normal(log_id::<TypeConfig>(1, 1, first_index + i as u64), c)
        })
        .collect()
}

pub async fn apply(sm: &mut licstore_store::StateMachine, entries: Vec<EntryOf<TypeConfig>>) {
    let items: Vec<Result<EntryResponder<TypeConfig>, io::Error>> =
        entries.into_iter().map(|e| Ok((e, None))).collect();
    sm.apply(stream::iter(items)).await.expect("apply");
}

/// A store in `dir` with cards 0..`n` issued (log indexes 1..=n), and a reader over it.
pub async fn store_with_cards(
    dir: &std::path::Path,
    n: u32,
) -> (licstore_store::Storage, licstore_store::Reader) {
    let mut s = licstore_store::open(dir).expect("open");
    apply(
        &mut s.state_machine,
        entries(1, (0..n).map(issue).collect()),
    )
    .await;
    let reader = licstore_store::Reader::new(s.db.clone());
    (s, reader)
}
