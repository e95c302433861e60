//! Service items, disclosure rules and principals applied to a real RocksDB store: the
//! registry keeps rules and verifier principals consistent with the items they name; revoked
//! tokens are kept until the leader forgets them.

mod common;

use common::entries;
use licstore_model::TemplateRegistry;
use licstore_store::{
    Command, CommandResult, DisclosureRule, Principal, Reader, RejectCode, Role, ServiceItem,
    StateMachine,
};

const ITEM: &str = "婚姻登记档案查询";
const ID_CARD: &str = "resident-id-card";
const PERMIT: &str = "shanghai-residence-permit";

struct Fixture {
    _dir: tempfile::TempDir,
    sm: StateMachine,
    reader: Reader,
    index: u64,
}

type Refusal = (RejectCode, String);

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = licstore_store::open(dir.path()).expect("open");
        Fixture {
            reader: Reader::new(storage.db.clone()),
            sm: storage.state_machine,
            _dir: dir,
            index: 0,
        }
    }

    fn run(&mut self, cmds: Vec<Command>) -> Vec<CommandResult> {
        let first = self.index + 1;
        self.index += cmds.len() as u64;
        self.sm.apply_batch(entries(first, cmds)).expect("apply")
    }

    fn item(&mut self, cmd: Command) -> Result<ServiceItem, Refusal> {
        match self.run(vec![cmd]).remove(0) {
            CommandResult::ServiceItem(r) => r.map_err(|r| (r.code, r.field)),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn rule(&mut self, item: &str, type_code: &str) -> Result<DisclosureRule, Refusal> {
        let rule = DisclosureRule {
            service_item: item.into(),
            type_code: type_code.into(),
            fields: vec!["@holder.name".into()],
        };
        match self.run(vec![Command::SetDisclosure(rule)]).remove(0) {
            CommandResult::Disclosure(r) => r.map_err(|r| (r.code, r.field)),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn verifier(&mut self, items: &[&str]) -> Result<Principal, Refusal> {
        let principal = Principal {
            name: "archives".into(),
            roles: vec![Role::Verifier],
            issuer_codes: vec![],
            type_codes: vec![],
            service_items: items.iter().map(|i| (*i).to_owned()).collect(),
        };
        match self.run(vec![Command::PutPrincipal(principal)]).remove(0) {
            CommandResult::Principal(r) => r.map_err(|r| (r.code, r.field)),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn rules_of(&self, item: &str) -> Vec<String> {
        let rules = self.reader.disclosure_rules().expect("rules");
        rules
            .into_iter()
            .filter(|r| r.service_item == item)
            .map(|r| r.type_code)
            .collect()
    }
}

fn put(name: &str, types: &[&str]) -> Command {
    Command::PutServiceItem(ServiceItem {
        name: name.into(),
        department: "市档案局".into(),
        type_codes: types.iter().map(|t| (*t).to_owned()).collect(),
    })
}

fn remove(name: &str) -> Command {
    Command::RemoveServiceItem { name: name.into() }
}

fn code(key: &str) -> String {
    let templates = TemplateRegistry::builtin();
    templates.get(key).expect("template").type_code.clone()
}

fn failed(field: &str) -> Refusal {
    (RejectCode::FailedPrecondition, field.to_owned())
}

#[test]
fn items_are_stored_listed_replaced_and_removed() {
    let mut f = Fixture::new();
    let stored = f.item(put(ITEM, &[ID_CARD])).expect("put");
    assert_eq!(stored.type_codes, [code(ID_CARD)]);
    assert_eq!(f.reader.service_item(ITEM).unwrap(), Some(stored));
    let both = f.item(put(ITEM, &[PERMIT, ID_CARD])).expect("replace");
    assert_eq!(f.reader.service_items().unwrap(), vec![both.clone()]);
    assert_eq!(f.item(remove(ITEM)), Ok(both));
    assert_eq!(f.reader.service_item(ITEM).unwrap(), None);
    let gone = (RejectCode::NotFound, "name".to_owned());
    assert_eq!(f.item(remove(ITEM)), Err(gone));
    let bad = (RejectCode::InvalidArgument, "type_codes[0]".to_owned());
    assert_eq!(f.item(put(ITEM, &["no-such-type"])), Err(bad));
}

#[test]
fn disclosure_rules_follow_the_types_their_item_accepts() {
    let mut f = Fixture::new();
    assert_eq!(f.rule(ITEM, ID_CARD), Err(failed("service_item")));
    f.item(put(ITEM, &[ID_CARD, PERMIT])).expect("put");
    f.rule(ITEM, ID_CARD).expect("card rule");
    f.rule(ITEM, PERMIT).expect("permit rule");
    let mut both = vec![code(ID_CARD), code(PERMIT)];
    both.sort();
    assert_eq!(f.rules_of(ITEM), both);
    // Dropping a type drops its rule, and a rule for it is refused from then on.
    f.item(put(ITEM, &[ID_CARD])).expect("narrow");
    assert_eq!(f.rules_of(ITEM), [code(ID_CARD)]);
    assert_eq!(f.rule(ITEM, PERMIT), Err(failed("type_code")));
    f.item(remove(ITEM)).expect("remove");
    assert!(f.rules_of(ITEM).is_empty());
    // Removing a rule needs no registered item: none can outlive the means to remove it.
    let removal = DisclosureRule {
        service_item: ITEM.into(),
        type_code: ID_CARD.into(),
        fields: vec![],
    };
    match f.run(vec![Command::SetDisclosure(removal)]).remove(0) {
        CommandResult::Disclosure(r) => assert!(r.is_ok(), "{r:?}"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn verifiers_name_only_registered_items_that_stay_while_named() {
    let mut f = Fixture::new();
    assert_eq!(f.verifier(&[ITEM]), Err(failed("service_items[0]")));
    f.item(put(ITEM, &[ID_CARD])).expect("put");
    f.verifier(&[ITEM]).expect("verifier");
    assert_eq!(f.item(remove(ITEM)), Err(failed("name")));
    f.item(put("户口迁移", &[ID_CARD])).expect("other item");
    f.verifier(&["户口迁移"]).expect("moved");
    f.item(remove(ITEM)).expect("no longer named");
}

#[test]
fn one_batch_sees_its_own_registrations() {
    let mut f = Fixture::new();
    let rule = DisclosureRule {
        service_item: ITEM.into(),
        type_code: ID_CARD.into(),
        fields: vec!["@valid_until".into()],
    };
    let results = f.run(vec![
        put(ITEM, &[ID_CARD]),
        Command::SetDisclosure(rule),
        remove(ITEM),
    ]);
    let outcomes: Vec<bool> = results
        .iter()
        .map(|r| match r {
            CommandResult::ServiceItem(r) => r.is_ok(),
            CommandResult::Disclosure(r) => r.is_ok(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(outcomes, [true, true, true]);
    assert!(f.rules_of(ITEM).is_empty());
    assert_eq!(f.reader.service_items().unwrap(), vec![]);
}

#[test]
fn revoked_tokens_keep_their_latest_expiry_until_forgotten_past_it() {
    use licstore_store::revoked_tokens::RevokedToken;
    let revoke = |jti: &str, expires_at_s: u64| Command::RevokeToken {
        jti: jti.into(),
        expires_at_s,
    };
    let mut f = Fixture::new();
    // Revoked twice in one batch, the later expiry is kept.
    let results = f.run(vec![
        revoke("t-1", 100),
        revoke("t-1", 50),
        revoke("t-2", 70),
    ]);
    let kept: Vec<u64> = results
        .into_iter()
        .map(|r| match r {
            CommandResult::TokenRevoked(Ok(k)) => k.expires_at_s,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(kept, [100, 100, 70]);
    assert!(f.reader.token_revoked("t-1").expect("read"));
    assert!(!f.reader.token_revoked("t-3").expect("read"));
    let refused = f.run(vec![revoke("two words", 10), revoke("t-4", 0)]);
    let fields: Vec<String> = refused
        .into_iter()
        .map(|r| match r {
            CommandResult::TokenRevoked(Err(r)) => r.field,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(fields, ["jti", "expires_at_s"]);
    // Only those kept until before the leader's bound go: t-1 was renewed past it.
    let forget = Command::ForgetRevokedTokens {
        jtis: vec!["t-2".into(), "never-revoked".into(), "t-1".into()],
        expired_before_s: 80,
    };
    match f.run(vec![forget]).remove(0) {
        CommandResult::RevocationsForgotten(n) => assert_eq!(n, 1),
        other => panic!("unexpected {other:?}"),
    }
    let left = f.reader.revoked_tokens().expect("list");
    let t1 = RevokedToken {
        jti: "t-1".into(),
        expires_at_s: 100,
    };
    assert_eq!(left, [t1]);
}
