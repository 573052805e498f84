//! Registration of the embedded DejaVu fonts with plotters.
//!
//! With plotters' `ab_glyph` feature there is no system-font lookup: text can
//! only be drawn in families registered through
//! [`plotters::style::register_font`]. Embedding DejaVu (via the `dejavu`
//! crate) makes plots render identically on headless CI / GPU boxes that have
//! no fonts installed.

use std::sync::OnceLock;

use plotters::style::{register_font, FontStyle};

use crate::EvalError;

/// Register DejaVu under the generic family names plotters uses
/// (`"sans-serif"` is the default for axis labels, legends and captions).
/// Idempotent and thread-safe; the outcome of the first call is cached.
pub(crate) fn ensure_fonts_registered() -> Result<(), EvalError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let fonts: [(&str, FontStyle, &'static [u8]); 6] = [
        ("sans-serif", FontStyle::Normal, dejavu::sans::regular()),
        ("sans-serif", FontStyle::Bold, dejavu::sans::bold()),
        ("sans-serif", FontStyle::Oblique, dejavu::sans::oblique()),
        ("sans-serif", FontStyle::Italic, dejavu::sans::oblique()),
        ("serif", FontStyle::Normal, dejavu::sans::regular()),
        ("monospace", FontStyle::Normal, dejavu::sans_mono::regular()),
    ];
    let ok = *REGISTERED.get_or_init(|| {
        fonts
            .iter()
            .all(|&(family, style, bytes)| register_font(family, style, bytes).is_ok())
    });
    if ok {
        Ok(())
    } else {
        Err(EvalError::Font)
    }
}
