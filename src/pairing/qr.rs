//! QR codes for pairing links, in the three forms the appliance hands out:
//! SVG (for the IDE and the admin console), PNG as base64 (for clients that
//! cannot draw SVG), and Unicode blocks for a terminal.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use qrcode::render::{svg, unicode};
use qrcode::{EcLevel, QrCode};

/// Why a QR code could not be drawn (the link was too long).
#[derive(Debug, thiserror::Error)]
#[error("cannot draw a QR code: {0}")]
pub struct QrError(String);

fn code(data: &str) -> Result<QrCode, QrError> {
    QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M).map_err(|e| QrError(e.to_string()))
}

/// An SVG image of `data`.
pub fn svg(data: &str) -> Result<String, QrError> {
    Ok(code(data)?.render::<svg::Color<'_>>().min_dimensions(256, 256).quiet_zone(true).build())
}

/// A PNG image of `data`, base64-encoded.
pub fn png_base64(data: &str) -> Result<String, QrError> {
    let image = code(data)?.render::<image::Luma<u8>>().min_dimensions(256, 256).build();
    let mut png = std::io::Cursor::new(Vec::new());
    image.write_to(&mut png, image::ImageFormat::Png).map_err(|e| QrError(e.to_string()))?;
    Ok(STANDARD.encode(png.into_inner()))
}

/// `data` drawn with Unicode half blocks, for a terminal.
pub fn terminal(data: &str) -> Result<String, QrError> {
    Ok(code(data)?
        .render::<unicode::Dense1x2>()
        .dark_color(unicode::Dense1x2::Light)
        .light_color(unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_all_three_forms() {
        let url = "https://topdog.example.com:8443/pair?code=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
        assert!(svg(url).unwrap().starts_with("<?xml"));
        let png = STANDARD.decode(png_base64(url).unwrap()).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(terminal(url).unwrap().contains('█'));
        assert!(svg(&"x".repeat(5000)).is_err());
    }
}
