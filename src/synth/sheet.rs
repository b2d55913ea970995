//! Contact sheets: a grid of samples so a person can see at a glance what the generator makes.

use image::GrayImage;
use image::imageops::{FilterType, overlay, resize};

/// Lays out rows of images (one row per writer, say genuine samples then forgeries) in cells of
/// `cell_w` x `cell_h` pixels, each image scaled down to fit its cell keeping its aspect ratio, with a
/// thin grey rule between rows.
pub fn contact_sheet(rows: &[Vec<GrayImage>], cell_w: u32, cell_h: u32) -> GrayImage {
    let cell_w = cell_w.max(8);
    let cell_h = cell_h.max(8);
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0).max(1) as u32;
    let n_rows = (rows.len() as u32).max(1);
    let pad = 4;
    let mut sheet = GrayImage::from_pixel(cols * cell_w, n_rows * cell_h, image::Luma([255]));
    for (r, row) in rows.iter().enumerate() {
        for (c, img) in row.iter().enumerate() {
            if img.width() == 0 || img.height() == 0 {
                continue;
            }
            let avail_w = (cell_w - 2 * pad) as f32;
            let avail_h = (cell_h - 2 * pad) as f32;
            let scale = (avail_w / img.width() as f32)
                .min(avail_h / img.height() as f32)
                .min(1.0);
            let w = ((img.width() as f32 * scale).round() as u32).max(1);
            let h = ((img.height() as f32 * scale).round() as u32).max(1);
            let small = resize(img, w, h, FilterType::Triangle);
            let x = c as u32 * cell_w + (cell_w - w) / 2;
            let y = r as u32 * cell_h + (cell_h - h) / 2;
            overlay(&mut sheet, &small, x as i64, y as i64);
        }
        if r > 0 {
            let y = r as u32 * cell_h;
            for x in 0..sheet.width() {
                sheet.put_pixel(x, y, image::Luma([190]));
            }
        }
    }
    sheet
}
