"""The imaging stage on real files shipped in packages (pydicom, pydicom-data, deid-data, scikit-image).

References are computed independently here with plain numpy (float64) from pydicom's decoded stored
values and the DICOM standard's formulas, then resized the same way, so a wrong order of operations, a
double MONOCHROME1 flip or a wrong window formula shows up as a large grey-level difference.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import pickle
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from PIL import Image
from pydicom.dataset import Dataset

import mgll_data.imaging.render as render_module
from mgll_data.imaging import (
    GrayTransform,
    Window,
    apply_window,
    render_file,
    resize_long_side,
    target_size,
    to_display,
    to_uint8,
)
from mgll_data.imaging.dicom import stored_from_simpleitk
from mgll_data.imaging.volume import read_middle_slice
from mgll_data.pipeline import ImageSettings
from mgll_data.records import StageError

PYDICOM_FILES = Path(pydicom.data.__file__).parent / "test_files"


def data_file(name: str) -> Path:
    """A test file from pydicom or pydicom-data, located on disk (get_testdata_file may try the network)."""
    import data_store

    for root in (PYDICOM_FILES, Path(data_store.__file__).parent / "data"):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(name)


def deid_file(*parts: str) -> Path:
    import deid_data

    return Path(deid_data.__path__[0]) / "data" / Path(*parts)


def settings(size: int = 256, **kw) -> ImageSettings:
    return ImageSettings(size=size, **kw)


def pixels_of(rendered) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(rendered.data)))


def reject_of(path: Path, size: int = 64) -> StageError:
    with pytest.raises(StageError) as info:
        render_file(path, settings(size))
    return info.value


def reference_render(display: np.ndarray, size: int) -> np.ndarray:
    """float64 [0, 1] -> uint8 -> the same Lanczos resize the stage documents."""
    as_uint8 = np.rint(np.clip(display, 0, 1) * 255).astype(np.uint8)
    height, width = target_size(*as_uint8.shape[:2], size)
    return np.asarray(Image.fromarray(as_uint8).resize((width, height), Image.Resampling.LANCZOS))


def standard_window(x: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 (LINEAR), C.11.2.1.3.2 (LINEAR_EXACT, SIGMOID), output range [0, 1], float64."""
    x = x.astype(np.float64)
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    if function == "LINEAR_EXACT":
        y = (x - center) / width + 0.5
        y[x <= center - width / 2] = 0.0
        y[x > center + width / 2] = 1.0
        return y
    y = (x - (center - 0.5)) / (width - 1) + 0.5
    y[x <= center - 0.5 - (width - 1) / 2] = 0.0
    y[x > center - 0.5 + (width - 1) / 2] = 1.0
    return y


def save_modified(src: Path, out: Path, **elements) -> Path:
    ds = pydicom.dcmread(src)
    for keyword, value in elements.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
            if ds[keyword].VR == "US or SS":
                ds[keyword].VR = "SS" if ds.PixelRepresentation else "US"
    ds.save_as(out)
    return out


# --- transfer syntaxes -------------------------------------------------------------------------------

LOSSLESS_MR_SMALL = [
    "MR_small_bigendian.dcm",  # explicit VR big endian
    "MR_small_implicit.dcm",  # implicit VR little endian
    "MR_small_RLE.dcm",  # RLE lossless
    "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS lossless
    "MR_small_jp2klossless.dcm",  # JPEG 2000 lossless
]


@pytest.mark.parametrize("name", LOSSLESS_MR_SMALL)
def test_lossless_encodings_render_identically_to_uncompressed(name):
    reference = render_file(data_file("MR_small.dcm"), settings(64))
    rendered = render_file(data_file(name), settings(64))
    assert rendered.decoder == "pydicom"
    assert np.array_equal(pixels_of(rendered), pixels_of(reference))


@pytest.mark.parametrize(
    "name, channels",
    [
        ("CT_small.dcm", 1),  # explicit VR little endian, rescale slope/intercept
        ("image_dfl.dcm", 1),  # deflated explicit VR little endian
        ("SC_rgb_jpeg_dcmtk.dcm", 3),  # JPEG baseline, YBR_FULL
        ("JPGExtended.dcm", 1),  # JPEG extended (process 2 and 4)
        ("JPEG-LL.dcm", 1),  # JPEG lossless, process 14 SV1
        ("emri_small_jpeg_ls_lossless.dcm", 1),  # JPEG-LS, multi-frame
        ("US1_J2KR.dcm", 3),  # JPEG 2000 lossless, YBR_RCT colour
        ("SC_ybr_full_uncompressed.dcm", 3),
        ("OBXXXX1A.dcm", 3),  # PALETTE COLOR
    ],
)
def test_common_transfer_syntaxes_decode_to_a_real_picture(name, channels):
    path = data_file(name)
    rendered = render_file(path, settings(128))
    pixels = pixels_of(rendered)
    assert rendered.format == "png" and rendered.data.startswith(b"\x89PNG")
    assert rendered.channels == channels == (1 if pixels.ndim == 2 else pixels.shape[2])
    assert max(rendered.height, rendered.width) == 128 == max(pixels.shape[:2])
    assert pixels.std() > 10, "a decoded picture has contrast"
    assert rendered.source_format == "dicom"
    assert rendered.content_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    header = rendered.header
    assert isinstance(header, Dataset) and "PixelData" not in header
    assert header.Rows == rendered.original_height and header.Columns == rendered.original_width
    pickle.loads(pickle.dumps(header))


def test_dicom_without_preamble_or_file_meta_still_decodes():
    path = data_file("OT-PAL-8-face.dcm")  # no 128-byte preamble, no "DICM", no transfer syntax
    assert path.read_bytes()[128:132] != b"DICM"
    rendered = render_file(path, settings(128))
    assert (rendered.source_format, rendered.decoder, rendered.channels) == ("dicom", "pydicom", 3)


def test_12_bit_jpeg_extended_falls_back_to_simpleitk():
    """No pydicom plugin decodes 12-bit JPEG extended; ITK's GDCM does."""
    rendered = render_file(data_file("JPEG-lossy.dcm"), settings(128))
    assert rendered.decoder == "simpleitk"
    assert (rendered.height, rendered.width) == (128, 32)
    assert pixels_of(rendered).std() > 10


def test_ycbcr_is_converted_to_the_same_rgb_pydicom_gives():
    path = data_file("SC_ybr_full_uncompressed.dcm")
    expected = pydicom.dcmread(path).pixel_array  # pydicom converts YBR_FULL -> RGB
    rendered = render_file(path, settings(100))  # native size: no resampling
    assert np.array_equal(pixels_of(rendered), expected)


def test_colour_jpeg_decoded_by_pillow_matches_pydicom():
    """The reduced-scale Pillow path for colour JPEG baseline gives pydicom's pixels at full size and a
    close match to pydicom + Lanczos when shrinking (middle frame of a 120-frame cine)."""
    path = data_file("color3d_jpeg_baseline.dcm")
    ds = pydicom.dcmread(path)
    ds.pixel_array_options(index=60)
    expected_full = ds.pixel_array
    full = render_file(path, settings(640))
    assert full.decoder == "pillow" and (full.frames, full.frame_index) == (120, 60)
    assert np.array_equal(pixels_of(full), expected_full)
    small = pixels_of(render_file(path, settings(160)))
    expected_small = np.asarray(Image.fromarray(expected_full).resize((160, 120), Image.Resampling.LANCZOS))
    assert small.shape == expected_small.shape
    assert np.abs(small.astype(float) - expected_small).mean() < 3


def test_palette_colour_maps_through_the_lut():
    path = data_file("OBXXXX1A.dcm")
    ds = pydicom.dcmread(path)
    rgb = pydicom.pixels.apply_color_lut(ds.pixel_array, ds).astype(np.float64)
    expected = np.rint(rgb * 255 / (2 ** max(int(rgb.max()).bit_length(), 8) - 1)).astype(np.uint8)
    rendered = pixels_of(render_file(path, settings(800)))
    assert rendered.shape == expected.shape
    assert np.abs(rendered.astype(int) - expected).max() <= 1


def test_one_bit_segmentation_renders_black_and_white():
    rendered = pixels_of(render_file(data_file("liver_1frame.dcm"), settings(512)))
    assert set(np.unique(rendered)) == {0, 255}


# --- multi-frame and volumes --------------------------------------------------------------------------


def test_multi_frame_dicom_contributes_its_middle_frame(tmp_path):
    path = data_file("emri_small.dcm")
    ds = pydicom.dcmread(path)
    frames = ds.pixel_array
    single = save_modified(path, tmp_path / "frame5.dcm", NumberOfFrames=1, PixelData=frames[5].tobytes())
    rendered = render_file(path, settings(64))
    assert (rendered.frames, rendered.frame_index) == (10, 5)
    assert np.array_equal(pixels_of(rendered), pixels_of(render_file(single, settings(64))))
    assert pixels_of(rendered).std() > 10


def test_large_cine_reads_only_its_middle_frame_and_detects_truncation(tmp_path):
    """deid-data's 30-frame RGB ultrasound (43 MB): pixel data is left on disk and one frame is read."""
    path = deid_file("ultrasounds", "ultrasound-multiframe.dcm")
    ds = pydicom.dcmread(path)
    ds.pixel_array_options(index=15)
    rendered = render_file(path, settings(800))
    assert (rendered.frames, rendered.frame_index, rendered.channels) == (30, 15, 3)
    assert np.array_equal(pixels_of(rendered), ds.pixel_array)
    data = path.read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[: int(len(data) * 0.6)])
    assert reject_of(tmp_path / "cut.dcm").reject.reason == "truncated-file"


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".mha", ".nrrd"])
def test_volumes_contribute_their_middle_slice(tmp_path, suffix):
    rng = np.random.default_rng(0)
    volume = rng.integers(0, 4000, size=(5, 20, 30)).astype(np.int16)
    volume[2, :10] = 0  # a slice unlike the others
    path = tmp_path / f"vol{suffix}"
    sitk.WriteImage(sitk.GetImageFromArray(volume), str(path))
    rendered = render_file(path, settings(30))
    assert rendered.source_format == {".nii": "nifti", ".nii.gz": "nifti", ".mha": "mha", ".nrrd": "nrrd"}[suffix]
    assert (rendered.frames, rendered.frame_index, rendered.height, rendered.width) == (5, 2, 20, 30)
    slice2 = volume[2].astype(np.float64)
    low, high = np.percentile(slice2, [0.5, 99.5])
    expected = np.rint(np.clip((slice2 - low) / (high - low), 0, 1) * 255)
    assert np.abs(pixels_of(rendered).astype(int) - expected).max() <= 1


def test_all_nan_volume_is_a_render_failure(tmp_path):
    path = tmp_path / "nan.mha"  # (ITK's NIfTI writer turns NaN into 0)
    sitk.WriteImage(sitk.GetImageFromArray(np.full((3, 8, 8), np.nan, dtype=np.float32)), str(path))
    assert reject_of(path).reject.reason == "render-failed"


def test_partial_nan_renders_black_where_undefined(tmp_path):
    data = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    data[0, :4] = np.nan
    path = tmp_path / "partial.mha"
    sitk.WriteImage(sitk.GetImageFromArray(data), str(path))
    pixels = pixels_of(render_file(path, settings(8)))
    assert (pixels[0, :4] == 0).all() and pixels[-1, -1] == 255


# --- the grey-level chain ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["RG1_UNCR.dcm"])
def test_monochrome1_with_window_matches_an_independent_reference(name):
    path = data_file(name)
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    stored = ds.pixel_array.astype(np.float64)
    values = stored * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    windowed = standard_window(values, float(ds.WindowCenter), float(ds.WindowWidth), "LINEAR")
    expected = reference_render(1.0 - windowed, 256)
    not_inverted = reference_render(windowed, 256)
    rendered = render_file(path, settings(256))
    got = pixels_of(rendered)
    assert rendered.window_source == "window"
    assert got.shape == expected.shape
    assert np.abs(got.astype(float) - expected).mean() < 3
    assert np.abs(got.astype(int) - expected).max() <= 2
    assert np.abs(got.astype(float) - not_inverted).mean() > 30, "the flip happened (once)"


def test_monochrome1_without_window_uses_the_percentile_window(tmp_path):
    path = save_modified(data_file("RG3_UNCR.dcm"), tmp_path / "nowindow.dcm", WindowCenter=None, WindowWidth=None)
    stored = pydicom.dcmread(path).pixel_array.astype(np.float64)
    low, high = np.percentile(stored, [0.5, 99.5])
    expected = reference_render(1.0 - np.clip((stored - low) / (high - low), 0, 1), 256)
    rendered = render_file(path, settings(256))
    assert rendered.window_source == "percentile"
    assert np.abs(pixels_of(rendered).astype(float) - expected).mean() < 3


def test_simpleitk_presents_monochrome1_inverted_and_we_undo_it_exactly():
    """ITK's GDCM reader flips MONOCHROME1 itself; recovering the stored values makes the fallback path
    render exactly like the pydicom path instead of flipping twice."""
    path = data_file("RG1_UNCR.dcm")
    ds = pydicom.dcmread(path)
    from_itk, _, _, _ = read_middle_slice(path, dicom=True)
    assert not np.array_equal(from_itk, ds.pixel_array), "ITK changed the values"
    assert np.array_equal(stored_from_simpleitk(from_itk, ds, "MONOCHROME1"), ds.pixel_array)


def test_simpleitk_fallback_renders_like_pydicom(monkeypatch):
    path = data_file("RG1_UNCR.dcm")
    via_pydicom = render_file(path, settings(128))

    def no_plugin(self):
        raise RuntimeError("no plugin")

    monkeypatch.setattr(Dataset, "pixel_array", property(no_plugin))
    via_itk = render_file(path, settings(128))
    assert (via_pydicom.decoder, via_itk.decoder) == ("pydicom", "simpleitk")
    assert np.array_equal(pixels_of(via_itk), pixels_of(via_pydicom))


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_each_voi_lut_function_follows_the_standard(tmp_path, function):
    src = data_file("CT_small.dcm")  # 128 x 128, rescale slope 1 intercept -1024
    path = save_modified(src, tmp_path / "w.dcm", WindowCenter=[40, 400], WindowWidth=[350, 2000],
                         VOILUTFunction=function, PixelPaddingValue=None)
    ds = pydicom.dcmread(path)
    values = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    expected = np.rint(standard_window(values, 40.0, 350.0, function) * 255)  # the FIRST window
    rendered = render_file(path, settings(128))  # native size: no resampling
    assert rendered.window_source == "window"
    diff = np.abs(pixels_of(rendered).astype(int) - expected)
    assert diff.max() <= 1


def test_window_functions_agree_with_the_standard_on_edge_values():
    x = np.array([-1000, 39.5 - 174.5, 39.5 - 174.0, 40, 39.5 + 174.5, 39.5 + 175, 1000], dtype=np.float32)
    for function in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        got = apply_window(x, Window(40.0, 350.0, function))
        assert np.allclose(got, standard_window(x, 40.0, 350.0, function), atol=1e-5)


def test_voi_lut_sequence_is_applied_instead_of_a_percentile_window():
    path = data_file("vlut_04.dcm")
    ds = pydicom.dcmread(path)
    item = ds.VOILUTSequence[0]
    entries, first, _ = (int(v) for v in item.LUTDescriptor)
    lut = np.asarray(item.LUTData, dtype=np.float64)
    index = np.clip(ds.pixel_array.astype(np.int64) - first, 0, (entries or 65536) - 1)
    out = lut[index]
    expected = np.rint(out / (2 ** int(lut.max()).bit_length() - 1) * 255)
    rendered = render_file(path, settings(512))
    assert rendered.window_source == "voi-lut"
    assert np.abs(pixels_of(rendered).astype(int) - expected).max() <= 1


def test_modality_lut_sequence_feeds_the_window():
    path = data_file("mlut_18.dcm")
    ds = pydicom.dcmread(path)
    modality = pydicom.pixels.apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    low, high = np.percentile(modality, [0.5, 99.5])
    expected = np.rint(np.clip((modality - low) / (high - low), 0, 1) * 255)
    rendered = pixels_of(render_file(path, settings(512)))
    assert np.abs(rendered.astype(int) - expected).mean() < 1.5


@pytest.mark.parametrize(
    "photometric, pad, limit",
    # padding brighter than anything (MONOCHROME2) / darker than anything (MONOCHROME1, then inverted):
    # either way it would render white without the mask
    [("MONOCHROME2", 30000, 29990), ("MONOCHROME1", -2000, -1990)],
)
def test_pixel_padding_renders_black(tmp_path, photometric, pad, limit):
    src = data_file("CT_small.dcm")
    stored = pydicom.dcmread(src).pixel_array.copy()
    stored[:20, :] = pad  # a padded border, as CT scanners write outside the scan circle
    stored[20:25, :] = limit
    path = save_modified(src, tmp_path / "pad.dcm", PixelData=stored.tobytes(), PixelPaddingValue=pad,
                         PixelPaddingRangeLimit=limit, PhotometricInterpretation=photometric)
    pixels = pixels_of(render_file(path, settings(128)))
    assert (pixels[:25] == 0).all()
    assert pixels[25:].mean() > 20, "the rest of the image is not black"


def test_lookup_fast_path_equals_the_float_chain():
    rng = np.random.default_rng(1)
    stored = rng.integers(0, 4096, size=(64, 80)).astype(np.uint16)
    transform = GrayTransform(rescale_slope=2.0, rescale_intercept=-100.0, padding=(0.0, 5.0), invert=True)
    fast, resolved = to_uint8(stored, transform, (1.0, 99.0))
    slow = np.rint(to_display(stored.astype(np.float32), resolved) * 255)
    assert resolved.window_source == "percentile"
    assert np.abs(fast.astype(int) - slow).max() <= 1


def test_constant_image_renders_black_not_rejected(tmp_path):
    path = tmp_path / "flat.png"
    Image.fromarray(np.full((40, 50), 1234, dtype=np.uint16)).save(path)
    pixels = pixels_of(render_file(path, settings(50)))
    assert pixels.shape == (40, 50) and (pixels == 0).all()


# --- rasters --------------------------------------------------------------------------------------------


def test_png_8bit_grey_is_display_ready(tmp_path):
    data = np.arange(40 * 50, dtype=np.uint32).reshape(40, 50) % 256
    path = tmp_path / "g.png"
    Image.fromarray(data.astype(np.uint8)).save(path)
    rendered = render_file(path, settings(50))
    assert rendered.window_source == "display-ready" and rendered.header is None
    assert np.array_equal(pixels_of(rendered), data)


@pytest.mark.parametrize("suffix", [".png", ".tiff"])
def test_16bit_grey_raster_gets_the_percentile_window(tmp_path, suffix):
    ramp = (np.arange(60 * 80, dtype=np.float64).reshape(60, 80) * 0.5 + 1000).astype(np.uint16)
    path = tmp_path / f"g16{suffix}"
    Image.fromarray(ramp).save(path)
    rendered = render_file(path, settings(80))
    low, high = np.percentile(ramp.astype(np.float64), [0.5, 99.5])
    expected = np.rint(np.clip((ramp - low) / (high - low), 0, 1) * 255)
    assert rendered.bits_stored == 16 and rendered.window_source == "percentile"
    assert np.abs(pixels_of(rendered).astype(int) - expected).max() <= 1


def test_rgb_png_and_jpeg_keep_colour(tmp_path):
    rgb = np.zeros((30, 40, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    rgb[:, 20:, 2] = 150
    Image.fromarray(rgb).save(tmp_path / "c.png")
    Image.fromarray(rgb).save(tmp_path / "c.jpg", quality=95)
    png = render_file(tmp_path / "c.png", settings(40))
    jpg = render_file(tmp_path / "c.jpg", settings(40))
    assert png.channels == jpg.channels == 3
    assert np.array_equal(pixels_of(png), rgb)
    assert np.abs(pixels_of(jpg).astype(int) - rgb).mean() < 4


def test_fundus_photo_stays_colour_and_scales_to_the_long_side(tmp_path):
    from skimage import data

    retina = data.retina()
    path = tmp_path / "fundus.jpg"
    Image.fromarray(retina).save(path, quality=92)
    rendered = render_file(path, settings(384, format="jpeg", jpeg_quality=90))
    pixels = pixels_of(rendered)
    assert rendered.data.startswith(b"\xff\xd8") and rendered.format == "jpeg"
    assert pixels.shape == (384, 384, 3) and rendered.original_height == retina.shape[0]
    assert pixels[..., 0].mean() > pixels[..., 2].mean() + 20, "a fundus is red, not grey"


def test_multipage_tiff_contributes_its_middle_page(tmp_path):
    pages = [Image.fromarray(np.full((10, 12), value, dtype=np.uint8)) for value in (10, 128, 240)]
    path = tmp_path / "pages.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:])
    rendered = render_file(path, settings(12))
    assert (rendered.frames, rendered.frame_index) == (3, 1)
    assert (pixels_of(rendered) == 128).all()


# --- resizing ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, size, expected",
    [
        ((1955, 1841), 512, (512, 482)),
        ((1024, 256), 256, (256, 64)),
        ((64, 64), 128, (128, 128)),
        ((3, 2000), 100, (1, 100)),
    ],
)
def test_target_size_keeps_aspect_and_sets_the_long_side(shape, size, expected):
    assert target_size(*shape, size) == expected


def test_small_images_are_upscaled_and_large_ones_antialiased():
    checker = (np.indices((512, 512)).sum(axis=0) % 2 * 255).astype(np.uint8)
    down = np.asarray(resize_long_side(checker, 64))
    assert down.shape == (64, 64) and abs(float(down.mean()) - 127.5) < 3 and down.std() < 10
    up = np.asarray(resize_long_side(np.array([[0, 255]], dtype=np.uint8), 16))
    assert up.shape == (8, 16)


def test_non_square_dicom_keeps_its_aspect():
    rendered = render_file(data_file("JPEG-LL.dcm"), settings(256))
    assert (rendered.original_height, rendered.original_width) == (1024, 256)
    assert (rendered.height, rendered.width) == (256, 64)


# --- bad input ----------------------------------------------------------------------------------------------


def test_missing_path(tmp_path):
    assert reject_of(tmp_path / "nope.dcm").reject.reason == "file-missing"


def test_empty_file(tmp_path):
    (tmp_path / "e.dcm").write_bytes(b"")
    assert reject_of(tmp_path / "e.dcm").reject.reason == "empty-file"


def test_text_named_dcm_and_random_png_are_not_images(tmp_path):
    (tmp_path / "x.dcm").write_text("Patient: John Smith\nThis is a report, not an image.\n")
    (tmp_path / "r.png").write_bytes(np.random.default_rng(0).bytes(5000))
    assert reject_of(tmp_path / "x.dcm").reject.reason == "not-an-image"
    assert reject_of(tmp_path / "r.png").reject.reason == "not-an-image"


@pytest.mark.timeout(60)
def test_only_regular_files_are_opened(tmp_path):
    """A FIFO would block its reader forever; every kind but a regular file is rejected before opening."""
    import socket

    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "folder.dcm").mkdir()
    (tmp_path / "gone.dcm").symlink_to(tmp_path / "deleted.dcm")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "sock.dcm"))
        kinds = {name: reject_of(tmp_path / name).reject for name in ("pipe.png", "folder.dcm", "gone.dcm", "sock.dcm")}
    assert {name: r.reason for name, r in kinds.items()} == {
        "pipe.png": "not-a-regular-file", "folder.dcm": "not-a-regular-file", "gone.dcm": "broken-symlink",
        "sock.dcm": "not-a-regular-file",
    }
    assert "named pipe (FIFO)" in kinds["pipe.png"].error and "socket" in kinds["sock.dcm"].error
    assert all(str(tmp_path) not in r.error for r in kinds.values())
    (tmp_path / "link.dcm").symlink_to(data_file("CT_small.dcm"))
    assert render_file(tmp_path / "link.dcm", settings(64)).source_format == "dicom", "links to files are fine"


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_RLE.dcm", "US1_J2KR.dcm", "emri_small.dcm"])
def test_dicom_cut_at_60_percent_is_truncated(tmp_path, name):
    data = data_file(name).read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: int(len(data) * 0.6)])
    error = reject_of(path)
    assert error.reject.reason == "truncated-file"
    assert str(tmp_path) not in error.reject.error


def test_truncated_jpeg(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((200, 200)) * 255).astype(np.uint8)).save(buffer, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    assert reject_of(tmp_path / "cut.jpg").reject.reason == "truncated-file"


def test_dicom_without_pixel_data():
    error = reject_of(data_file("rtplan.dcm"))
    assert error.reject.reason == "no-pixel-data" and error.reject.stage == "imaging"


def test_unexpected_errors_become_decode_failed(monkeypatch, tmp_path):
    def boom(path, output_size=None):
        raise KeyError("secret header value")

    monkeypatch.setattr(render_module, "read_dicom", boom)
    error = reject_of(data_file("CT_small.dcm"))
    assert error.reject.reason == "decode-failed"
    assert "KeyError" in error.reject.error and "secret" not in error.reject.error


def test_reject_messages_are_one_line_without_paths_or_header_values(tmp_path):
    (tmp_path / "John_Smith.dcm").write_text("not dicom")
    for path in (tmp_path / "John_Smith.dcm", tmp_path / "missing_John_Smith.png"):
        message = reject_of(path).reject.error
        assert "\n" not in message and "John" not in message and str(tmp_path) not in message


def test_dicom_header_is_returned_without_pixel_data_and_png_has_none(tmp_path):
    rendered = render_file(data_file("CT_small.dcm"), settings(64))
    assert rendered.header.PatientName is not None  # deid decides what to keep, not imaging
    assert not any(k in rendered.header for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))
    assert getattr(rendered.header, "_pixel_array", None) is None


def test_jpeg_output_settings(tmp_path):
    rendered = render_file(data_file("MR_small.dcm"), replace(settings(64), format="jpeg", jpeg_quality=80))
    assert rendered.format == "jpeg" and rendered.data.startswith(b"\xff\xd8")
    assert math.isclose(
        pixels_of(rendered).mean(), pixels_of(render_file(data_file("MR_small.dcm"), settings(64))).mean(), abs_tol=3
    )


# --- pixel limit: headers that claim more pixels than a worker should decode ---------------------------------


def _claims(tmp_path: Path, source: str, **header) -> Path:
    """A real DICOM file whose header is edited to claim another size; its pixel data is untouched."""
    ds = pydicom.dcmread(data_file(source))
    for keyword, value in header.items():
        setattr(ds, keyword, value)
    path = tmp_path / f"claims-{source}"
    ds.save_as(path)
    return path


@pytest.mark.parametrize("source, header", [
    ("MR_small_RLE.dcm", {"Rows": 25000, "Columns": 25000}),  # the reported file: RLE, 1.2 GB once decoded
    ("CT_small.dcm", {"Rows": 20000, "Columns": 20000}),  # uncompressed
    ("SC_rgb_jpeg_dcmtk.dcm", {"Rows": 14000, "Columns": 14000}),  # 3 samples of 8 bits: 561 MiB
    ("JPEG-lossy.dcm", {"NumberOfFrames": 4000}),  # only SimpleITK decodes it, and it decodes every frame
])
def test_a_dicom_claiming_too_many_pixels_is_rejected_before_decoding(tmp_path, source, header):
    path = _claims(tmp_path, source, **header)
    assert path.stat().st_size < 200_000
    rejected = reject_of(path)
    assert rejected.reject.reason == "too-many-pixels", rejected.reject.error
    assert "MiB" in rejected.reject.error and str(tmp_path) not in rejected.reject.error


def test_limit_counts_decoded_bytes_of_every_frame_decoded_together(monkeypatch):
    from mgll_data.imaging import decoded

    monkeypatch.setattr(decoded, "MAX_DECODED_BYTES", 64 * 64 * 2 * 3)
    decoded.check_decoded_size(64, 64, samples=1, bytes_per_sample=2, frames=3)
    decoded.check_decoded_size(64, 64, samples=3, bytes_per_sample=2)
    with pytest.raises(StageError, match=r"too many pixels .*64 x 64 x 4 frames"):
        decoded.check_decoded_size(64, 64, samples=1, bytes_per_sample=2, frames=4)
    with pytest.raises(StageError, match="too many pixels"):
        decoded.check_decoded_size(64, 64, samples=3, bytes_per_sample=4)


def _volume_claiming(tmp_path: Path, suffix: str, dims: tuple[int, int, int]) -> Path:
    """A real 16-bit volume written by SimpleITK, its header edited to claim `dims` (x, y, z)."""
    small = tmp_path / f"small{suffix}"
    sitk.WriteImage(sitk.Image(16, 16, 3, sitk.sitkInt16), str(small))
    raw = small.read_bytes()
    if suffix == ".nrrd":
        raw = raw.replace(b"sizes: 16 16 3", b"sizes: " + " ".join(map(str, dims)).encode())
    else:  # NIfTI-1: dim[1..3] are little-endian int16 at bytes 42-47
        raw = raw[:42] + np.array(dims, dtype="<i2").tobytes() + raw[48:]
    claims = tmp_path / f"claims{suffix}"
    claims.write_bytes(raw)
    return claims


def test_a_volume_claiming_too_many_voxels_is_rejected_from_its_header(tmp_path):
    # NRRD decodes the whole volume whatever slice is asked for: 4000 x 4000 x 100 x 2 bytes = 3 GB
    assert reject_of(_volume_claiming(tmp_path, ".nrrd", (4000, 4000, 100))).reject.reason == "too-many-pixels"
    # NIfTI streams the middle slice, but this slice alone is 763 MiB
    assert reject_of(_volume_claiming(tmp_path, ".nii", (20000, 20000, 3))).reject.reason == "too-many-pixels"
    # ... and a deep NIfTI with small slices is not refused for its depth (it fails later: no voxel data)
    deep = reject_of(_volume_claiming(tmp_path, ".nii", (2000, 2000, 30000)))
    assert deep.reject.reason != "too-many-pixels"


def _png_claiming(path: Path, side: int) -> Path:
    """A real 8 x 8 RGBA PNG whose IHDR (CRC fixed) claims side x side pixels."""
    buffer = io.BytesIO()
    Image.new("RGBA", (8, 8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = side.to_bytes(4, "big") * 2
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    path.write_bytes(bytes(data))
    return path


def test_a_png_claiming_too_many_pixels_is_rejected_before_decoding(tmp_path):
    # 12000 x 12000 RGBA: under Pillow's own pixel limit, but 549 MiB once decoded
    assert reject_of(_png_claiming(tmp_path / "huge.png", 12000)).reject.reason == "too-many-pixels"
    # over Pillow's decompression-bomb limit too: same reason
    assert reject_of(_png_claiming(tmp_path / "bomb.png", 30000)).reject.reason == "too-many-pixels"
