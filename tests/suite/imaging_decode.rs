//! Decoding real files of every accepted kind, and refusing bad ones with their specific errors.

use std::io::Cursor;

use countersign::imaging::ImagingError;
use countersign::imaging::decode::{DecodeLimits, decode_bytes, decode_path};
use image::{DynamicImage, GrayImage, ImageFormat, Luma, Rgb, RgbImage};

/// A small test picture: a dark diagonal band on light paper, asymmetric so orientation shows.
fn picture(w: u32, h: u32) -> GrayImage {
    GrayImage::from_fn(w, h, |x, y| {
        if x < w / 4 && y < h / 4 {
            Luma([10]) // a dark block in the top-left corner marks orientation
        } else if (x as i64 - 2 * y as i64).abs() < 3 {
            Luma([60])
        } else {
            Luma([230])
        }
    })
}

fn encode(img: &DynamicImage, fmt: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, fmt).expect("encode");
    out.into_inner()
}

fn lim() -> DecodeLimits {
    DecodeLimits::default()
}

#[test]
fn decodes_png_jpeg_tiff_bmp_in_gray_and_colour() {
    let g = picture(64, 40);
    let rgb = DynamicImage::ImageRgb8(DynamicImage::ImageLuma8(g.clone()).to_rgb8());
    let rgba = DynamicImage::ImageRgba8(DynamicImage::ImageLuma8(g.clone()).to_rgba8());
    let luma16 = DynamicImage::ImageLuma16(DynamicImage::ImageLuma8(g.clone()).to_luma16());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "gray.png",
            encode(&DynamicImage::ImageLuma8(g.clone()), ImageFormat::Png),
        ),
        ("rgb.png", encode(&rgb, ImageFormat::Png)),
        ("rgba.png", encode(&rgba, ImageFormat::Png)),
        ("gray16.png", encode(&luma16, ImageFormat::Png)),
        ("gray16.tif", encode(&luma16, ImageFormat::Tiff)),
        ("rgb.tif", encode(&rgb, ImageFormat::Tiff)),
        (
            "gray.tif",
            encode(&DynamicImage::ImageLuma8(g.clone()), ImageFormat::Tiff),
        ),
        ("rgb.bmp", encode(&rgb, ImageFormat::Bmp)),
        ("rgb.jpg", encode(&rgb, ImageFormat::Jpeg)),
        (
            "gray.jpg",
            encode(&DynamicImage::ImageLuma8(g.clone()), ImageFormat::Jpeg),
        ),
    ];
    for (name, bytes) in cases {
        let out = decode_bytes(&bytes, name, &lim()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(out.dimensions(), (64, 40), "{name}");
        let lossy = name.ends_with(".jpg");
        let tol = if lossy { 40 } else { 1 };
        // Compare the marker block and the paper, which survive JPEG well.
        for &(x, y) in &[(3u32, 3u32), (40, 30), (60, 5)] {
            let a = i32::from(out.get_pixel(x, y).0[0]);
            let b = i32::from(g.get_pixel(x, y).0[0]);
            assert!((a - b).abs() <= tol, "{name} at ({x},{y}): {a} vs {b}");
        }
    }
}

/// Writes a minimal PNG by hand (so bit depth and colour type are exactly what the test wants).
fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut crc_input = kind.to_vec();
    crc_input.extend_from_slice(data);
    out.extend_from_slice(&crc_input);
    out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit grayscale
    png_chunk(&mut out, b"IHDR", &ihdr);
    // A tiny (invalid for this size) IDAT and IEND: the decoder must refuse before reading them.
    png_chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    png_chunk(&mut out, b"IEND", &[]);
    out
}

#[test]
fn one_bit_and_palette_pngs_decode() {
    // 1-bit: encode via a raw PNG stream using the png crate's encoder through `image` is not
    // possible, so build the zlib stream with stored (uncompressed) deflate blocks by hand.
    fn zlib_stored(raw: &[u8]) -> Vec<u8> {
        let mut z = vec![0x78, 0x01];
        z.push(1);
        let len = raw.len() as u16;
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(raw);
        let (mut a, mut b) = (1u32, 0u32);
        for &x in raw {
            a = (a + u32::from(x)) % 65521;
            b = (b + a) % 65521;
        }
        z.extend_from_slice(&((b << 16) | a).to_be_bytes());
        z
    }
    let (w, h) = (16u32, 4u32);
    // 1-bit gray: row filter byte 0 then 2 bytes; left half black (0 bits), right half white.
    let mut raw = Vec::new();
    for _ in 0..h {
        raw.extend_from_slice(&[0, 0x00, 0xff]);
    }
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[1, 0, 0, 0, 0]);
    png_chunk(&mut png, b"IHDR", &ihdr);
    png_chunk(&mut png, b"IDAT", &zlib_stored(&raw));
    png_chunk(&mut png, b"IEND", &[]);
    let img = decode_bytes(&png, "bilevel.png", &lim()).expect("1-bit png");
    assert_eq!(img.dimensions(), (16, 4));
    assert_eq!(img.get_pixel(0, 0).0[0], 0);
    assert_eq!(img.get_pixel(15, 3).0[0], 255);

    // Palette: 8-bit indices into red / white.
    let mut raw = Vec::new();
    for _ in 0..h {
        raw.push(0);
        raw.extend((0..w).map(|x| u8::from(x >= 8)));
    }
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 3, 0, 0, 0]);
    png_chunk(&mut png, b"IHDR", &ihdr);
    png_chunk(&mut png, b"PLTE", &[200, 0, 0, 255, 255, 255]);
    png_chunk(&mut png, b"IDAT", &zlib_stored(&raw));
    png_chunk(&mut png, b"IEND", &[]);
    let img = decode_bytes(&png, "palette.png", &lim()).expect("palette png");
    assert!(img.get_pixel(0, 0).0[0] < 100, "red maps to a darkish gray");
    assert_eq!(img.get_pixel(15, 0).0[0], 255);
}

#[test]
fn jpeg_exif_orientation_is_honoured() {
    let g = picture(48, 32);
    let jpeg = encode(&DynamicImage::ImageLuma8(g), ImageFormat::Jpeg);
    // Insert an APP1 Exif segment right after SOI saying "rotate 90 degrees clockwise" (orientation 6).
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
    tiff.extend_from_slice(&[0, 1]); // one IFD entry
    tiff.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0]); // Orientation, SHORT, 1, value 6
    tiff.extend_from_slice(&[0, 0, 0, 0]); // no next IFD
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xff, 0xe1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    let img = decode_bytes(&out, "rotated.jpg", &lim()).expect("jpeg");
    assert_eq!(img.dimensions(), (32, 48), "rotated by 90 degrees");
    // The dark top-left block of the stored image is now top-right.
    assert!(img.get_pixel(29, 2).0[0] < 80);
    assert!(img.get_pixel(2, 2).0[0] > 150);
}

#[test]
fn content_wins_over_extension() {
    let png = encode(&DynamicImage::ImageLuma8(picture(20, 10)), ImageFormat::Png);
    let img = decode_bytes(&png, "really-a-png.jpg", &lim()).expect("png named .jpg");
    assert_eq!(img.dimensions(), (20, 10));
    let err = decode_bytes(
        b"this is not an image at all, just text",
        "garbage.png",
        &lim(),
    )
    .expect_err("garbage");
    assert!(
        matches!(err, ImagingError::UnsupportedFormat { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("garbage.png"), "{err}");
}

#[test]
fn truncated_png_and_jpeg_are_truncated_errors() {
    let rgb = DynamicImage::ImageRgb8(RgbImage::from_fn(200, 120, |x, y| {
        Rgb([
            (x * 3 % 256) as u8,
            (y * 5 % 256) as u8,
            ((x + y) % 256) as u8,
        ])
    }));
    for (name, fmt) in [
        ("cut.png", ImageFormat::Png),
        ("cut.jpg", ImageFormat::Jpeg),
    ] {
        let full = encode(&rgb, fmt);
        let cut = &full[..full.len() / 2];
        let err = decode_bytes(cut, name, &lim()).expect_err(name);
        assert!(
            matches!(err, ImagingError::Truncated { .. }),
            "{name}: {err:?}"
        );
        assert!(err.to_string().contains(name));
    }
}

#[test]
fn zero_size_file_and_zero_size_header() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.png");
    std::fs::write(&empty, b"").expect("write");
    let err = decode_path(&empty, &lim()).expect_err("empty");
    assert!(matches!(err, ImagingError::Empty { .. }), "{err:?}");
    assert!(err.to_string().contains("empty.png"));

    let err = decode_bytes(&png_header_only(0, 0), "zero.png", &lim()).expect_err("0x0");
    assert!(
        matches!(
            err,
            ImagingError::ZeroSize {
                width: 0,
                height: 0,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn huge_header_fails_fast_without_allocating() {
    let bytes = png_header_only(100_000, 100_000);
    let err = decode_bytes(&bytes, "bomb.png", &lim()).expect_err("bomb");
    match err {
        ImagingError::TooManyPixels { width, height, .. } => {
            assert_eq!((width, height), (100_000, 100_000))
        }
        other => panic!("expected TooManyPixels, got {other:?}"),
    }
    // A TIFF header claiming a huge image is refused from its header too.
    let big = GrayImage::new(30_000, 2);
    let tiff = encode(&DynamicImage::ImageLuma8(big), ImageFormat::Tiff);
    let err = decode_bytes(&tiff, "wide.tif", &lim()).expect_err("wide");
    assert!(
        matches!(err, ImagingError::TooManyPixels { width: 30_000, .. }),
        "{err:?}"
    );
}

#[test]
fn byte_limit_is_checked_before_reading() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.png");
    let png = encode(&DynamicImage::ImageLuma8(picture(64, 64)), ImageFormat::Png);
    std::fs::write(&path, &png).expect("write");
    let small = DecodeLimits {
        max_bytes: 100,
        ..DecodeLimits::default()
    };
    let err = decode_path(&path, &small).expect_err("too big");
    assert!(
        matches!(err, ImagingError::TooManyBytes { max_bytes: 100, .. }),
        "{err:?}"
    );
    let ok = decode_path(&path, &lim()).expect("decodes");
    assert_eq!(ok.dimensions(), (64, 64));
    let missing = decode_path(&dir.path().join("nope.png"), &lim()).expect_err("missing");
    assert!(matches!(missing, ImagingError::Io { .. }));
    assert!(missing.to_string().contains("nope.png"));
}

#[test]
fn sixteen_bit_tiff_keeps_its_levels() {
    let img16 =
        image::ImageBuffer::<Luma<u16>, Vec<u16>>::from_fn(32, 8, |x, _| Luma([(x as u16) * 2048]));
    let tiff = encode(&DynamicImage::ImageLuma16(img16), ImageFormat::Tiff);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("scan16.tif");
    std::fs::write(&path, tiff).expect("write");
    let g = decode_path(&path, &lim()).expect("16-bit tiff");
    assert_eq!(g.dimensions(), (32, 8));
    assert_eq!(g.get_pixel(0, 0).0[0], 0);
    // 31 * 2048 = 63488 of 65535 -> about 247 of 255.
    assert!((245..=249).contains(&g.get_pixel(31, 0).0[0]));
    assert!(g.get_pixel(16, 0).0[0] > g.get_pixel(8, 0).0[0]);
}

/// Encodes a bitonal image (ink = value < 128) as a CCITT Group 4 TIFF, the cheque-archive format.
fn g4_tiff(img: &GrayImage) -> Vec<u8> {
    use fax::{Color, VecWriter, encoder::Encoder};
    let (w, h) = img.dimensions();
    let mut enc = Encoder::new(VecWriter::new());
    for y in 0..h {
        let line = (0..w).map(|x| {
            if img.get_pixel(x, y).0[0] < 128 {
                Color::Black
            } else {
                Color::White
            }
        });
        enc.encode_line(line, w as u16).expect("encode line");
    }
    let data = enc.finish().expect("finish").finish();
    fax::tiff::wrap(&data, w, h)
}

#[test]
fn group4_bitonal_tiff_decodes_exactly() {
    let cheque = countersign::imaging::sample::sample_cheque(3, 1700, 760, true);
    let bitonal = GrayImage::from_fn(1700, 760, |x, y| {
        Luma([if cheque.image.get_pixel(x, y).0[0] < 150 {
            0
        } else {
            255
        }])
    });
    let tiff = g4_tiff(&bitonal);
    assert!(
        tiff.len() < 1700 * 760 / 8 / 4,
        "G4 should compress a cheque well"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cheque-g4.tif");
    std::fs::write(&path, &tiff).expect("write");
    let decoded = decode_path(&path, &lim()).expect("G4 TIFF");
    assert_eq!(decoded.dimensions(), (1700, 760));
    let diff = decoded
        .as_raw()
        .iter()
        .zip(bitonal.as_raw())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(diff, 0, "G4 round trip changed {diff} pixels");

    // The finder works on the bitonal scan as on the gray one.
    let truth = cheque.signature_box.expect("box");
    let f = countersign::imaging::cheque::find_signature(
        &decoded,
        &countersign::imaging::cheque::ChequeLayout::default(),
    )
    .expect("find");
    assert!(f.found && f.bbox.iou(&truth) >= 0.8, "{f:?} vs {truth:?}");

    // A G4 TIFF cut short is reported as truncated or corrupt, never as an image.
    let cut = &tiff[..tiff.len() * 2 / 3];
    let err = decode_bytes(cut, "cut-g4.tif", &lim()).expect_err("cut");
    assert!(
        matches!(
            err,
            ImagingError::Truncated { .. } | ImagingError::Corrupt { .. }
        ),
        "{err:?}"
    );
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn seeds() -> Vec<Vec<u8>> {
        let g = DynamicImage::ImageLuma8(picture(24, 16));
        vec![
            encode(&g, ImageFormat::Png),
            encode(&g, ImageFormat::Jpeg),
            encode(&g, ImageFormat::Tiff),
            encode(&g, ImageFormat::Bmp),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Corrupting bytes anywhere in a valid file of any accepted format gives an image or a typed
        /// error, never a panic, and never an image larger than the limits.
        #[test]
        fn corrupted_files_never_panic(
            which in 0usize..4,
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<Option<usize>>(),
        ) {
            let mut bytes = seeds()[which].clone();
            for (pos, val) in edits {
                let i = pos % bytes.len();
                bytes[i] = val;
            }
            if let Some(c) = cut {
                bytes.truncate(c % (bytes.len() + 1));
            }
            let small = DecodeLimits { max_pixels: 1_000_000, max_side: 4000, ..DecodeLimits::default() };
            if let Ok(img) = decode_bytes(&bytes, "fuzz", &small) {
                prop_assert!(img.width() > 0 && img.height() > 0);
                prop_assert!(u64::from(img.width()) * u64::from(img.height()) <= 1_000_000);
            }
        }

        /// Normalisation accepts any small gray image: a signature or a typed error.
        #[test]
        fn normalise_never_panics(w in 1u32..64, h in 1u32..64, seed in any::<u64>()) {
            let img = GrayImage::from_fn(w, h, |x, y| {
                let v = seed.wrapping_mul(u64::from(x * 31 + y * 17 + 1)).rotate_left(x + y) as u8;
                Luma([v])
            });
            let p = countersign::imaging::normalise::NormaliseParams::default();
            match countersign::imaging::normalise::normalise(&img, &p) {
                Ok(n) => prop_assert!(n.pixels.iter().all(|v| (0.0..=1.0).contains(v))),
                Err(e) => prop_assert!(matches!(e, ImagingError::NoSignature(_))),
            }
        }
    }
}
