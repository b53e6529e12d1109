//! Fuzz target: the identity layer's claims. A bearer token's claims (read unverified, any
//! JSON) and the caller baggage claims go through the layer's decision. Whatever it
//! accepts must obey the identity rule: every value comes from the token (or a default),
//! never from baggage, and a baggage value that was kept is the token's.
#![no_main]

use kest_propagation::middleware::decide_caller;
use kest_propagation::{Baggage, Caller, ClaimDefaults, ClaimNames, keys};

libfuzzer_sys::fuzz_target!(|data: &str| {
    // The first line is the token's payload (JSON, base64url-encoded here), the rest a
    // baggage header.
    let (claims, header) = data.split_once('\n').unwrap_or((data, ""));
    let token = format!(
        "e30.{}.c2ln",
        kest_canon::b64url_encode(claims.as_bytes())
    );
    let Ok(baggage) = Baggage::parse(header, &Default::default()) else {
        return;
    };
    let value = |key: &str| baggage.get(key).filter(|v| !v.is_empty()).map(str::to_owned);
    let claimed = Caller {
        user: value(keys::USER),
        agent: value(keys::AGENT),
        task: value(keys::TASK),
        jwt: value(keys::JWT),
    };
    let defaults = ClaimDefaults {
        user: None,
        agent: None,
        task: Some("default-task".into()),
    };
    let names = ClaimNames::default();
    let Ok(caller) = decide_caller(&token, &claimed, &names, &defaults) else {
        return;
    };
    let parsed: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(claims).expect("accepted claims are a JSON object");
    let from_token = |name: &str| match parsed.get(name) {
        Some(serde_json::Value::String(text)) if !text.is_empty() => Some(text.clone()),
        Some(serde_json::Value::Array(items)) => {
            let joined: Vec<&str> = items.iter().filter_map(|v| v.as_str()).collect();
            (!joined.is_empty()).then(|| joined.join(" "))
        }
        _ => None,
    };
    assert_eq!(caller.user, from_token("sub"));
    assert_eq!(caller.agent, from_token("client_id"));
    assert_eq!(
        caller.task,
        from_token("scope").or_else(|| defaults.task.clone())
    );
    assert_eq!(caller.jwt.as_deref(), Some(token.as_str()));
    for (claimed, known) in [
        (&claimed.user, &caller.user),
        (&claimed.agent, &caller.agent),
        (&claimed.task, &caller.task),
    ] {
        if claimed.is_some() {
            assert_eq!(claimed, known, "a baggage value that disagrees was accepted");
        }
    }
});
