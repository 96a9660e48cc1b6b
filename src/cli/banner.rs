//! The start-up banner: where the appliance listens and what to do next.

use crate::app::StartInfo;

/// Prints where the appliance listens and what to do next.
pub fn print(info: &StartInfo) {
    println!("Top Dog appliance {} is running.", env!("CARGO_PKG_VERSION"));
    println!("Listening on {}", info.api_url);
    println!("  Admin console   {}/  (sign in with the admin token)", info.api_url);
    println!("  MQTT/TLS        {}", info.mqtt_url);
    println!("  Pairing links   {}/pair?code=…", info.base_url);
    match info.acme_domains.as_slice() {
        [] => println!("  CA certificate  {}  (trust it in the IDE and on phones)", info.ca_file.display()),
        domains => {
            println!("  Certificate     by ACME for {} (until it is issued, the appliance CA's)", domains.join(", "));
            println!("  CA certificate  {}  (MQTT and the phones' client certificates)", info.ca_file.display());
        }
    }
    println!("  Admin socket    {}", info.admin_socket.display());
    println!("  SMS provider    {}", info.sms_provider);
    println!("  Data directory  {}", info.data_dir.display());
    match &info.new_admin_token {
        Some(token) => {
            println!();
            println!("Admin token (shown only this once; only its hash is stored):");
            println!("  {token}");
        }
        None => println!("  Admin token     unchanged (set ADMIN_TOKEN to replace it)"),
    }
    println!();
    println!("Next: pair a phone in the admin console, or");
    println!("  cargo run --release -- invite send +14155552671 --user alice --name \"Alice\"");
    println!("  cargo run --release -- invite qr --user alice");
    println!("or over HTTPS:");
    let (trust, url) = match info.acme_domains.is_empty() {
        true => (format!("--cacert {} ", info.ca_file.display()), &info.api_url),
        false => (String::new(), &info.base_url),
    };
    println!(
        "  curl {trust}-H \"x-admin-token: $TOKEN\" -H 'content-type: application/json' \\\n    -d '{{\"phone_number\":\"+14155552671\",\"user_id\":\"alice\",\"user_name\":\"Alice\"}}' {url}/phone/pairing/send-sms"
    );
}
