//! Shared look and small widgets: colours, the decision badge, textures from rasters, field rows.

use egui::{Color32, RichText, TextureHandle, TextureOptions};

use super::backend::{Gray, Rgba};
use crate::scoring::Decision;

pub const BRAND: Color32 = Color32::from_rgb(0x1f, 0x4e, 0x79);
pub const GREEN: Color32 = Color32::from_rgb(0x1b, 0x7f, 0x3b);
pub const AMBER: Color32 = Color32::from_rgb(0xc7, 0x7c, 0x02);
pub const RED: Color32 = Color32::from_rgb(0xb3, 0x26, 0x1e);
pub const BLUE: Color32 = Color32::from_rgb(0x1f, 0x5f, 0xbf);
pub const ERROR_FILL: Color32 = Color32::from_rgb(0xfd, 0xe4, 0xe1);
pub const NOTICE_FILL: Color32 = Color32::from_rgb(0xe3, 0xee, 0xfb);

/// A light theme with larger text: the application is read at a counter, often quickly.
pub fn install_style(ctx: &egui::Context) {
    ctx.set_theme(egui::Theme::Light);
    ctx.all_styles_mut(|style| {
        use egui::{FontId, TextStyle};
        style
            .text_styles
            .insert(TextStyle::Body, FontId::proportional(15.0));
        style
            .text_styles
            .insert(TextStyle::Button, FontId::proportional(15.0));
        style
            .text_styles
            .insert(TextStyle::Heading, FontId::proportional(22.0));
        style
            .text_styles
            .insert(TextStyle::Small, FontId::proportional(12.0));
        style
            .text_styles
            .insert(TextStyle::Monospace, FontId::monospace(14.0));
        style.spacing.item_spacing = egui::vec2(8.0, 6.0);
        style.spacing.button_padding = egui::vec2(10.0, 5.0);
    });
}

pub fn decision_color(d: Decision) -> Color32 {
    match d {
        Decision::Accept => GREEN,
        Decision::Refer => AMBER,
        Decision::Reject => RED,
    }
}

/// What each decision asks the clerk to do, in one line.
pub fn decision_advice(d: Decision) -> &'static str {
    match d {
        Decision::Accept => "The signature matches the reference. Pay the cheque.",
        Decision::Refer => "Not sure. Pass the cheque to a supervisor.",
        Decision::Reject => "The signature does not match. Do not pay; follow the fraud procedure.",
    }
}

/// The large coloured ACCEPT / REFER / REJECT badge.
pub fn decision_badge(ui: &mut egui::Ui, d: Decision) {
    egui::Frame::new()
        .fill(decision_color(d))
        .corner_radius(6.0)
        .inner_margin(egui::Margin::symmetric(18, 8))
        .show(ui, |ui| {
            ui.label(
                RichText::new(d.as_str())
                    .size(40.0)
                    .strong()
                    .color(Color32::WHITE),
            );
        });
}

/// Uploads a grayscale raster as a texture.
pub fn gray_texture(ctx: &egui::Context, name: &str, img: &Gray) -> Option<TextureHandle> {
    if img.width == 0 || img.height == 0 || img.pixels.len() != img.width * img.height {
        return None;
    }
    let color = egui::ColorImage::from_gray([img.width, img.height], &img.pixels);
    Some(ctx.load_texture(name, color, TextureOptions::LINEAR))
}

/// Uploads an RGBA raster as a texture.
pub fn rgba_texture(ctx: &egui::Context, name: &str, img: &Rgba) -> Option<TextureHandle> {
    if img.width == 0 || img.height == 0 || img.pixels.len() != img.width * img.height * 4 {
        return None;
    }
    let color = egui::ColorImage::from_rgba_unmultiplied([img.width, img.height], &img.pixels);
    Some(ctx.load_texture(name, color, TextureOptions::LINEAR))
}

/// Shows a texture scaled to fit `max` while keeping its aspect ratio, on a white card.
pub fn fit_image(ui: &mut egui::Ui, tex: &TextureHandle, max: egui::Vec2) -> egui::Response {
    let size = tex.size_vec2();
    let scale = (max.x / size.x).min(max.y / size.y).min(4.0);
    let shown = size * scale;
    egui::Frame::new()
        .fill(Color32::WHITE)
        .stroke(egui::Stroke::new(1.0, Color32::from_gray(190)))
        .show(ui, |ui| {
            ui.add(egui::Image::from_texture((tex.id(), shown)))
        })
        .inner
}

/// A labelled single-line text field whose label is its accessible name (tests find it by label).
pub fn text_field(
    ui: &mut egui::Ui,
    label: &str,
    value: &mut String,
    hint: &str,
    width: f32,
) -> egui::Response {
    ui.horizontal(|ui| {
        let l = ui.label(label);
        ui.add(
            egui::TextEdit::singleline(value)
                .hint_text(hint.to_string())
                .desired_width(width),
        )
        .labelled_by(l.id)
    })
    .inner
}

/// A percentage with one decimal, for FAR/FRR figures.
pub fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// A small grey caption.
pub fn caption(ui: &mut egui::Ui, text: impl Into<String>) {
    let c = ui.visuals().weak_text_color();
    ui.label(RichText::new(text.into()).small().color(c));
}
