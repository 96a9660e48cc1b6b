//! `topdog serve --ready-file PATH`: once the appliance listens, its
//! addresses as JSON (never a secret), for scripts and tests that start it.

use crate::app::StartInfo;

/// Writes the ready file whole (a temporary file renamed into place), so a
/// reader never sees half of it.
pub(super) fn write(path: &std::path::Path, info: &StartInfo) -> anyhow::Result<()> {
    let ready = serde_json::json!({
        "api_url": info.api_url,
        "base_url": info.base_url,
        "mqtt_url": info.mqtt_url,
        "ca_file": info.ca_file,
        "admin_socket": info.admin_socket,
        "data_dir": info.data_dir,
        "pid": std::process::id(),
    });
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut file, format!("{ready:#}\n").as_bytes())?;
    file.persist(path).map_err(|e| anyhow::anyhow!("writing the ready file {}: {}", path.display(), e.error))?;
    Ok(())
}
