//! Every case of Project Wycheproof's `ed25519_test.json` gives the expected result.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use kest_crypto::VerifyingKey;
use kest_testkit::load_json;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Suite {
    number_of_tests: usize,
    test_groups: Vec<Group>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Group {
    public_key: PublicKey,
    tests: Vec<Case>,
}

#[derive(Deserialize)]
struct PublicKey {
    pk: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Case {
    tc_id: u32,
    comment: String,
    msg: String,
    sig: String,
    result: String,
}

#[test]
fn ed25519_wycheproof() {
    let suite: Suite = load_json("wycheproof/ed25519_test.json");
    let (mut valid, mut invalid) = (0, 0);
    for group in &suite.test_groups {
        let key =
            VerifyingKey::from_ed25519_bytes(&hex::decode(&group.public_key.pk).unwrap()).unwrap();
        for case in &group.tests {
            let msg = hex::decode(&case.msg).unwrap();
            let sig = hex::decode(&case.sig).unwrap();
            let outcome = key.verify(&msg, &sig);
            match case.result.as_str() {
                "valid" => {
                    assert!(
                        outcome.is_ok(),
                        "tc {} ({}): {outcome:?}",
                        case.tc_id,
                        case.comment
                    );
                    valid += 1;
                }
                "invalid" => {
                    assert!(
                        outcome.is_err(),
                        "tc {} ({}) verified",
                        case.tc_id,
                        case.comment
                    );
                    invalid += 1;
                }
                other => panic!("tc {}: result {other} is not used by this file", case.tc_id),
            }
        }
    }
    assert_eq!(valid + invalid, suite.number_of_tests);
    assert!(valid > 0 && invalid > 0);
}
