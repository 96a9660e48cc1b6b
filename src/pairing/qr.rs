//! QR codes for pairing links, in the three forms the appliance hands out:
//! SVG (for the IDE and the admin console), PNG as base64 (for clients that
//! cannot draw SVG), and Unicode blocks for a terminal.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use qrcode::render::{svg, unicode, Canvas, Pixel};
use qrcode::{Color, EcLevel, QrCode};

/// Why a QR code could not be drawn (the link was too long).
#[derive(Debug, thiserror::Error)]
#[error("cannot draw a QR code: {0}")]
pub(crate) struct QrError(String);

fn code(data: &str) -> Result<QrCode, QrError> {
    QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M).map_err(|e| QrError(e.to_string()))
}

/// An SVG image of `data`.
pub(crate) fn svg(data: &str) -> Result<String, QrError> {
    Ok(code(data)?.render::<svg::Color<'_>>().min_dimensions(256, 256).quiet_zone(true).build())
}

/// A PNG image of `data`, base64-encoded.
pub(crate) fn png_base64(data: &str) -> Result<String, QrError> {
    let image = code(data)?.render::<Grey>().min_dimensions(256, 256).build();
    let failed = |e: png::EncodingError| QrError(e.to_string());
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, image.width, image.height);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(failed)?;
    writer.write_image_data(&image.pixels).map_err(failed)?;
    writer.finish().map_err(failed)?;
    Ok(STANDARD.encode(png))
}

/// An 8-bit grey pixel, for qrcode's renderer: the code is drawn into a
/// plain buffer of them, which `png` encodes.
#[derive(Clone, Copy)]
struct Grey(u8);

/// The drawing, row by row.
struct GreyImage {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

struct GreyCanvas {
    dark: u8,
    image: GreyImage,
}

impl Pixel for Grey {
    type Image = GreyImage;
    type Canvas = GreyCanvas;

    fn default_color(color: Color) -> Self {
        Grey(color.select(0, 255))
    }
}

impl Canvas for GreyCanvas {
    type Pixel = Grey;
    type Image = GreyImage;

    fn new(width: u32, height: u32, dark: Grey, light: Grey) -> Self {
        let pixels = vec![light.0; width as usize * height as usize];
        GreyCanvas { dark: dark.0, image: GreyImage { width, height, pixels } }
    }

    fn draw_dark_pixel(&mut self, x: u32, y: u32) {
        let at = y as usize * self.image.width as usize + x as usize;
        if let Some(pixel) = self.image.pixels.get_mut(at) {
            *pixel = self.dark;
        }
    }

    fn into_image(self) -> GreyImage {
        self.image
    }
}

/// `data` drawn with Unicode half blocks, for a terminal.
pub(crate) fn terminal(data: &str) -> Result<String, QrError> {
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
