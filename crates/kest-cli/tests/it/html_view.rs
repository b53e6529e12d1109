//! `kest tree --format html` in a real browser: Debian's `chromium`, headless, installed
//! by `cargo xtask services`. Live tier: without `KEST_LIVE=1` the test says so and does
//! nothing; with it, a missing browser fails the test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use kest_crypto::{KeySigner, SigningKey};
use kest_passport::{EntryBuilder, Passport};
use kest_trust::{TrustScore, WeakestLink};
use serde_json::Value;

const W: &str = "spiffe://kest.test/html";
/// A label that tries to break out of the page's data block and run script.
const HOSTILE: &str =
    "</script><script>window.pwned = 1</script><img src=x onerror=\"window.pwned=2\">";

/// A 50-entry passport: a fork and a join, taints, a declared trust raise (a sanitizer)
/// and one hostile label.
fn passport() -> Passport {
    let key = SigningKey::from_ed25519_seed(&[7; 32]).unwrap();
    let signer = KeySigner::new(key, W);
    let mut passport = Passport::new();
    for i in 0..50 {
        let mut step = EntryBuilder::new(format!("step{i}"))
            .principal(W)
            .label("n", i.to_string());
        if i == 3 {
            step = step.label("note", HOSTILE);
        }
        if i == 10 {
            step = step
                .added_taints(["pii"])
                .origin_score(TrustScore::new(40).unwrap());
        }
        if i == 30 {
            step = step
                .removed_taints(["pii"])
                .trust_override(TrustScore::new(90).unwrap());
        }
        passport.append(step, &signer, &WeakestLink).unwrap();
    }
    passport
}

fn chromium() -> Option<PathBuf> {
    let name = std::env::var("KEST_CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
    Command::new(&name)
        .arg("--version")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|_| PathBuf::from(name))
}

fn browser(chromium: &Path, args: &[&str], page: &Path) -> String {
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--allow-file-access-from-files",
        ])
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Loads `page` with `probe` (a script that writes its findings into `pre#kest-probe`)
/// appended, in the browser, and returns what the probe wrote.
fn run_probe(chromium: &Path, dir: &Path, name: &str, page: &str, probe: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, page.replace("</body>", &format!("{probe}\n</body>"))).unwrap();
    let dom = browser(
        chromium,
        &["--dump-dom", "--virtual-time-budget=5000"],
        &path,
    );
    let start = dom
        .find("<pre id=\"kest-probe\">")
        .expect("the probe did not run")
        + 21;
    dom[start..start + dom[start..].find("</pre>").unwrap()]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// What the page shows after it loaded and entry 7 was clicked, read back by a script the
/// test appends to a copy of the page.
const PROBE: &str = r#"<script>
(function () {
  var nodes = document.querySelectorAll('.kest-node[data-entry-index]');
  var shown = Array.prototype.filter.call(nodes, function (n) {
    var r = n.getBoundingClientRect(); return r.width > 0 && r.height > 0;
  }).length;
  var before = document.querySelector('.kest-entry-details').getAttribute('data-entry-index');
  document.querySelector('.kest-node[data-entry-index="7"]').click();
  var details = document.querySelector('.kest-entry-details');
  var raised = Array.prototype.map.call(document.querySelectorAll('.kest-node.raised'),
    function (n) { return n.getAttribute('data-entry-index'); });
  document.querySelector('.kest-node[data-entry-index="3"]').click();
  var hostile = document.querySelector('.kest-labels').textContent;
  var out = {
    nodes: nodes.length, shown: shown, before: before,
    selected: details.getAttribute('data-entry-index'), details: details.textContent,
    ids: Array.prototype.map.call(nodes, function (n) { return n.getAttribute('data-entry-id'); }),
    raised: raised, hostile: hostile, pwned: typeof window.pwned
  };
  var pre = document.createElement('pre');
  pre.id = 'kest-probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"#;

#[test]
fn the_html_view_draws_50_entries_and_shows_details_on_click() {
    if !kest_testkit::live() {
        return;
    }
    let chromium = chromium().expect("KEST_LIVE=1 but no `chromium`: run `cargo xtask services`");
    let dir = tempfile::tempdir().unwrap();
    let passport = passport();
    let input = dir.path().join("passport.json");
    std::fs::write(&input, passport.to_json()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kest"))
        .args(["tree", "--format", "html"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = String::from_utf8(out.stdout).unwrap();
    // Self-contained: nothing is fetched, and the page's policy forbids it anyway.
    assert!(page.contains("default-src 'none'"));
    for fetch in [
        "<link",
        "<img",
        "src=\"",
        "href=\"",
        "@import",
        "url(",
        "fetch(",
        "XMLHttpRequest",
        "import(",
    ] {
        assert!(!page.contains(fetch), "the page references `{fetch}`");
    }
    assert!(
        !page.contains(HOSTILE),
        "the hostile label is in the page unescaped"
    );

    let text = run_probe(&chromium, dir.path(), "probed.html", &page, PROBE);
    let probe: Value = serde_json::from_str(&text).unwrap();

    assert_eq!(probe["nodes"], 50, "{probe}");
    assert_eq!(probe["shown"], 50, "every node has a size on screen");
    assert_eq!(probe["before"], "49", "the tip is shown first");
    assert_eq!(probe["selected"], "7", "clicking entry 7 shows entry 7");
    let entries = passport.entries();
    let seventh = entries[7];
    let details = probe["details"].as_str().unwrap();
    assert!(
        details.contains(&seventh.hash().to_hex()),
        "hash: {details}"
    );
    assert!(details.contains(&seventh.entry().entry_id().to_string()));
    assert!(
        details.contains(&entries[6].hash().to_hex()[..16]),
        "parent: {details}"
    );
    assert!(details.contains("\"n\": \"7\""), "labels: {details}");
    assert!(
        details.contains("enterprise_policies"),
        "policy context: {details}"
    );
    let ids: Vec<String> = entries
        .iter()
        .map(|e| e.entry().entry_id().to_string())
        .collect();
    assert_eq!(probe["ids"], serde_json::json!(ids));
    assert_eq!(
        probe["raised"],
        serde_json::json!(["30"]),
        "the sanitizer's raise is marked"
    );
    assert_eq!(probe["pwned"], "undefined", "a label ran script");
    assert!(
        probe["hostile"]
            .as_str()
            .unwrap()
            .contains("window.pwned = 1")
    );

    // The screenshot, kept as an artifact of the run.
    let artifacts = kest_testkit::workspace_root().join("target/kest-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("lineage-50.png");
    let _ = std::fs::remove_file(&shot);
    let page_path = dir.path().join("page.html");
    std::fs::write(&page_path, &page).unwrap();
    browser(
        &chromium,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,900",
        ],
        &page_path,
    );
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        png.len() > 20_000,
        "a blank screenshot is small: {} bytes",
        png.len()
    );
}

#[test]
fn long_linear_runs_collapse_at_1000_entries() {
    if !kest_testkit::live() {
        return;
    }
    let chromium = chromium().expect("KEST_LIVE=1 but no `chromium`: run `cargo xtask services`");
    let key = SigningKey::from_ed25519_seed(&[8; 32]).unwrap();
    let signer = KeySigner::new(key, W);
    let mut passport = Passport::new();
    for i in 0..1000 {
        passport
            .append(
                EntryBuilder::new(format!("s{i}")).principal(W),
                &signer,
                &WeakestLink,
            )
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let page = kest_passport::render::html(&passport);
    let probe = r#"<script>
var before = document.querySelectorAll('.kest-node').length;
document.querySelector('.kest-run').click();
var after = document.querySelectorAll('.kest-node').length;
var pre = document.createElement('pre'); pre.id = 'kest-probe';
pre.textContent = before + ' ' + after; document.body.appendChild(pre);
</script>"#;
    let counts: Vec<usize> = run_probe(&chromium, dir.path(), "long.html", &page, probe)
        .split(' ')
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(
        counts[0], 7,
        "a 1,000-entry line shows the root, 3 entries after it and the last 3"
    );
    assert_eq!(counts[1], 1000, "clicking the run shows the rest");
}

/// Finding 7a: an entry whose `timestamp_ms` is 2^53 - 1 (valid, and beyond what a
/// JavaScript `Date` holds) stopped the page drawing; in `kest audit --format html` the
/// passports after it were not drawn. Every node and its details are drawn now, in every
/// section.
#[test]
fn extreme_values_of_a_verified_entry_never_stop_the_drawing() {
    if !kest_testkit::live() {
        return;
    }
    let chromium = chromium().expect("KEST_LIVE=1 but no `chromium`: run `cargo xtask services`");
    let key = SigningKey::from_ed25519_seed(&[7; 32]).unwrap();
    let signer = KeySigner::new(key, W);
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (name, ms) in [("a", (1_u64 << 53) - 1), ("b", 0), ("c", 1_700_000_000_000)] {
        let mut passport = Passport::new();
        for i in 0..3 {
            passport
                .append(
                    EntryBuilder::new(format!("{name}{i}"))
                        .principal(W)
                        .timestamp_ms(ms)
                        .label("n", "\u{202e}reversed"),
                    &signer,
                    &WeakestLink,
                )
                .unwrap();
        }
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, passport.to_json()).unwrap();
        paths.push(path);
    }
    let jwk = dir.path().join("k.jwk");
    std::fs::write(
        &jwk,
        serde_json::to_string(&signer.key().verifying_key().to_jwk()).unwrap(),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kest"))
        .args(["audit", "--format", "html", "--key"])
        .arg(format!("{W}={}", jwk.display()))
        .args(&paths)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = String::from_utf8(out.stdout).unwrap();
    let probe = r#"<script>
var sections = document.querySelectorAll('script.kest-data').length;
var nodes = document.querySelectorAll('.kest-node').length;
var details = Array.prototype.map.call(document.querySelectorAll('.kest-entry-details'),
  function (d) { return d.textContent; });
var errors = document.querySelectorAll('.kest-draw-error').length;
var pre = document.createElement('pre'); pre.id = 'kest-probe';
pre.textContent = JSON.stringify({sections: sections, nodes: nodes, details: details, errors: errors});
document.body.appendChild(pre);
</script>"#;
    let text = run_probe(&chromium, dir.path(), "audit.html", &page, probe);
    let probe: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(probe["sections"], 3, "{probe}");
    assert_eq!(probe["nodes"], 9, "every node of every passport: {probe}");
    assert_eq!(probe["errors"], 0, "{probe}");
    let details = probe["details"].as_array().unwrap();
    assert_eq!(details.len(), 3, "a details panel per passport: {probe}");
    let shows = |text: &str| details.iter().any(|d| d.as_str().unwrap().contains(text));
    assert!(shows("9007199254740991"), "{probe}");
    assert!(shows("1970-01-01T00:00:00.000Z"), "{probe}");
    assert!(shows("2023-11-14T22:13:20.000Z"), "{probe}");
}
