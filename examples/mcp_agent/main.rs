//! The agent story at the MCP boundary. An rmcp tool server (`fetch_page`, `summarize`,
//! `send_email`) sits behind Kest; a scripted agent fetches a page that carries a prompt
//! injection, then tries to send email: refused, and the email is never sent. After
//! `summarize`, the email goes. The passport is written to `mcp_passport.json` (or the
//! path given), verified offline, and `kest tree --format html` draws it.
//!
//! ```text
//! cargo run --example mcp_agent
//! cargo run -p kest-cli -- tree mcp_passport.json --format html > lineage.html
//! ```
//!
//! The same story through `kest mcp proxy` in front of a Python server built on the
//! official SDK is in `examples/mcp_agent/README.md`.

#![allow(clippy::print_stdout, reason = "an example that reports on stdout")]

use kest_examples::mcp;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "mcp_passport.json".to_owned());
    let story = mcp::run_story().await?;
    match &story.refused {
        Some(message) => println!("send_email after fetch_page: refused\n  {message}"),
        None => return Err("send_email after fetch_page was not refused".into()),
    }
    for email in &story.sent {
        println!("sent to {}: {}", email.to, email.body);
    }
    let entries = mcp::verify(&story.passport, &story.key)?;
    std::fs::write(&out, story.passport.to_json())?;
    println!("passport: {entries} entries, verified offline; written to {out}");
    for entry in story.passport.entries() {
        let e = entry.entry();
        println!(
            "  {:<11} trust {:>3}  taints {:?}",
            e.operation(),
            e.trust_score().get(),
            e.taints().iter().collect::<Vec<_>>()
        );
    }
    Ok(())
}
