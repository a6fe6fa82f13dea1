//! SVG → PNG with resvg and a font compiled into the binary (Ubuntu Light, from
//! `epaint_default_fonts`), so PNGs have their text on machines with no fonts installed.

use anyhow::{Context, Result};
use resvg::{tiny_skia, usvg};

pub fn render_png(svg: &str, scale: f32) -> Result<Vec<u8>> {
    let mut options = usvg::Options::default();
    let db = options.fontdb_mut();
    db.load_font_data(epaint_default_fonts::UBUNTU_LIGHT.to_vec());
    // Every generic family resolves to the embedded face.
    let family = db.faces().next().and_then(|f| f.families.first().map(|(name, _)| name.clone())).context("the embedded font did not load")?;
    db.set_sans_serif_family(family.clone());
    db.set_serif_family(family.clone());
    db.set_monospace_family(family);
    options.font_family = "sans-serif".into();
    let tree = usvg::Tree::from_str(svg, &options).context("reading the chart's SVG")?;
    let size = tree.size().to_int_size().scale_by(scale).context("chart size")?;
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height()).context("allocating the image")?;
    resvg::render(&tree, tiny_skia::Transform::from_scale(scale, scale), &mut pixmap.as_mut());
    pixmap.encode_png().context("encoding PNG")
}
