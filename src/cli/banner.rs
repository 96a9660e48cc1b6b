//! The start-up banner: where the appliance listens and what to do next.

use crate::app::StartInfo;

/// Adds one line to `$out`.
macro_rules! say {
    ($out:ident, $($arg:tt)*) => {{
        $out.push_str(&format!($($arg)*));
        $out.push('\n');
    }};
}

/// Prints where the appliance listens and what to do next.
pub(crate) fn print(info: &StartInfo) {
    print!("{}", render(info));
}

/// Where the appliance listens and what to do next, as printed at start.
pub fn render(info: &StartInfo) -> String {
    let mut out = String::new();
    say!(out, "Top Dog appliance {} is running.", env!("CARGO_PKG_VERSION"));
    say!(out, "Listening on {}", info.api_url);
    say!(out, "  Admin console   {}/  (sign in with the admin token)", info.api_url);
    say!(out, "  MQTT/TLS        {}", info.mqtt_url);
    say!(out, "  Pairing links   {}/pair?code=…", info.base_url);
    match info.acme_domains.as_slice() {
        [] => say!(out, "  CA certificate  {}  (trust it in the IDE and on phones)", info.ca_file.display()),
        domains => {
            say!(out, "  Certificate     by ACME for {} (until it is issued, the appliance CA's)", domains.join(", "));
            say!(out, "  CA certificate  {}  (MQTT and the phones' client certificates)", info.ca_file.display());
        }
    }
    say!(out, "  Admin socket    {}", info.admin_socket.display());
    say!(out, "  SMS provider    {}", info.sms_provider);
    say!(out, "  Data directory  {}", info.data_dir.display());
    match &info.new_admin_token {
        Some(token) => {
            out.push('\n');
            say!(out, "Admin token (shown only this once; only its hash is stored):");
            say!(out, "  {token}");
        }
        None => say!(out, "  Admin token     unchanged (set ADMIN_TOKEN to replace it)"),
    }
    out.push('\n');
    say!(out, "Next: pair a phone in the admin console, or");
    say!(out, "  cargo run --release -- invite send +14155552671 --user alice --name \"Alice\"");
    say!(out, "  cargo run --release -- invite qr --user alice");
    say!(out, "or over HTTPS:");
    let (trust, url) = match info.acme_domains.is_empty() {
        true => (format!("--cacert {} ", info.ca_file.display()), &info.api_url),
        false => (String::new(), &info.base_url),
    };
    say!(
        out,
        "  curl {trust}-H \"x-admin-token: $TOKEN\" -H 'content-type: application/json' \\\n    -d '{{\"phone_number\":\"+14155552671\",\"user_id\":\"alice\",\"user_name\":\"Alice\"}}' {url}/phone/pairing/send-sms"
    );
    out
}
