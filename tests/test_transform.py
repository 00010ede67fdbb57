import io

import numpy as np
import pytest
import torch
from PIL import Image

from mgll_train.transform import (
    CorruptImage,
    View,
    decode_image,
    finish_batch,
    load_pixels,
    random_view,
    stack_pixels,
    view_tensor,
)


def _encode(array, fmt="PNG", **options):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _radiograph(size=(300, 260), seed=0):
    """Smooth structure plus noise, like a downsized chest film (a pure-noise image would hide resampling errors)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: size[0], : size[1]]
    smooth = 120 + 60 * np.sin(xx / 23.0) * np.cos(yy / 31.0) + 40 * (yy / size[0])
    return np.clip(smooth + rng.normal(0, 4, size), 0, 255).astype(np.uint8)


def test_decode_image_grayscale_colour_and_16_bit():
    gray = decode_image(_encode(np.full((40, 30), 255, np.uint8)), 32, train=False, mean=(0, 0, 0), std=(1, 1, 1))
    assert gray.shape == (3, 32, 32) and torch.allclose(gray, torch.ones_like(gray))
    rgb = np.zeros((20, 20, 3), np.uint8)
    rgb[..., 0] = 255
    colour = decode_image(_encode(rgb), 16, train=False, mean=(0, 0, 0), std=(1, 1, 1))
    assert colour[0].min() == 1.0 and colour[1].max() == 0.0
    deep = decode_image(_encode(np.full((8, 8), 65535, np.uint16)), 8, train=False, mean=(0, 0, 0), std=(1, 1, 1))
    assert torch.allclose(deep, torch.ones_like(deep))


def test_decode_image_augmentation_is_seeded_and_rejects_bad_bytes():
    data = _encode(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    one = decode_image(data, 32, train=True, rng=np.random.default_rng(1))
    again = decode_image(data, 32, train=True, rng=np.random.default_rng(1))
    other = decode_image(data, 32, train=True, rng=np.random.default_rng(2))
    assert torch.equal(one, again) and not torch.equal(one, other)
    with pytest.raises(CorruptImage):
        decode_image(data[:100], 32, train=False)
    with pytest.raises(CorruptImage):
        decode_image(b"", 32, train=False)


def test_workers_hand_over_8_bit_pixels_one_channel_for_grey():
    grey, view = load_pixels(_encode(_radiograph()), 64)
    assert grey.shape == (1, 64, 64) and grey.dtype == torch.uint8
    assert view == View((0.0, 0.0, 260.0, 300.0))
    colour, _ = load_pixels(_encode(np.stack([_radiograph()] * 3, axis=-1)), 64)
    assert colour.shape == (3, 64, 64) and colour.dtype == torch.uint8
    deep, _ = load_pixels(_encode(_radiograph().astype(np.uint16) * 257), 64)
    assert deep.dtype == torch.float32 and float(deep.min()) >= 0.0 and float(deep.max()) <= 1.0


def test_the_worker_crops_and_resizes_in_one_step():
    data = _encode(_radiograph())
    pixels, view = load_pixels(data, 128, np.random.default_rng(5))
    left, top, width, height = view.box
    image = Image.open(io.BytesIO(data))
    reference = image.crop((int(left), int(top), int(left + width), int(top + height))).resize(
        (128, 128), Image.BILINEAR
    )
    assert np.abs(np.asarray(reference, dtype=float) - pixels[0].numpy()).mean() < 1.0


def test_batch_rotation_matches_pillow_rotate():
    image = Image.fromarray(_radiograph((96, 96)))
    pixels = torch.from_numpy(np.array(image)).view(1, 1, 96, 96)
    views = torch.tensor([[6.0, 1.0, 1.0]])
    rotated = finish_batch(pixels, views, torch.zeros(3), torch.ones(3))[0, 0] * 255
    reference = np.asarray(image.rotate(6.0, resample=Image.BILINEAR), dtype=float)
    centre = slice(16, 80)
    assert np.abs(rotated.numpy()[centre, centre] - reference[centre, centre]).mean() < 2.0
    assert float(rotated[0, 0]) == 0.0  # corners turned in from outside the image are black


def test_reduced_jpeg_decode_matches_the_full_decode():
    """A view far larger than the output decodes the JPEG at 1/2 or less (DCT scaling); same picture."""
    image = np.kron(_radiograph((200, 180)), np.ones((4, 4), np.uint8))  # 800 x 720, so 1/2 and 1/4 apply
    jpeg, png = _encode(image, "JPEG", quality=95), _encode(image)
    from_jpeg, _ = load_pixels(jpeg, 96)
    from_png, _ = load_pixels(png, 96)
    assert np.abs(from_jpeg.numpy().astype(float) - from_png.numpy()).mean() < 2.0


def test_random_views_stay_inside_the_image_and_within_the_augmentation_ranges():
    rng = np.random.default_rng(0)
    for _ in range(200):
        view = random_view(rng, 400, 300)
        left, top, width, height = view.box
        assert left >= 0 and left + width <= 400 and top >= 0 and top + height <= 300
        assert 0.69 <= width * height / (400 * 300) <= 1.0
        assert abs(view.angle) <= 7.0 and 0.8 <= view.contrast <= 1.2 and 0.8 <= view.brightness <= 1.2


def test_batch_finishing_applies_each_samples_jitter_and_expands_grey():
    pixels = torch.stack(
        [torch.full((1, 4, 4), 100, dtype=torch.uint8), torch.arange(16, dtype=torch.uint8).view(1, 4, 4) * 10]
    )
    plain = finish_batch(pixels, torch.tensor([[0.0, 1.0, 1.0]] * 2), torch.zeros(3), torch.ones(3), rotate=False)
    assert plain.shape == (2, 3, 4, 4) and torch.allclose(plain[1, 0], pixels[1, 0].float() / 255)
    views = view_tensor([View((0, 0, 4, 4)), View((0, 0, 4, 4), contrast=2.0, brightness=0.5)])
    jittered = finish_batch(pixels, views, torch.zeros(3), torch.ones(3), rotate=False)
    torch.testing.assert_close(jittered[0], plain[0])
    x = pixels[1, 0].float() / 255
    torch.testing.assert_close(jittered[1, 2], (((x - x.mean()) * 2.0 + x.mean()) * 0.5).clamp(0, 1))
    normalised = finish_batch(
        pixels, views[:1].repeat(2, 1), torch.tensor([0.5, 0.4, 0.3]), torch.tensor([0.2, 0.2, 0.1]), rotate=False
    )
    torch.testing.assert_close(normalised[0, 2], (plain[0, 2] - 0.3) / 0.1)
    unrotated = finish_batch(pixels, views[:1].repeat(2, 1), torch.zeros(3), torch.ones(3), rotate=True)
    torch.testing.assert_close(unrotated, plain, atol=1e-6, rtol=0)


def test_stacking_keeps_uint8_and_widens_only_mixed_batches():
    grey = torch.zeros(1, 4, 4, dtype=torch.uint8)
    assert stack_pixels([grey, grey]).shape == (2, 1, 4, 4)
    mixed = stack_pixels([grey, torch.full((3, 4, 4), 255, dtype=torch.uint8)])
    assert mixed.shape == (2, 3, 4, 4) and mixed.dtype == torch.uint8
    deep = stack_pixels([torch.full((1, 4, 4), 255, dtype=torch.uint8), torch.ones(1, 4, 4)])
    assert deep.dtype == torch.float32 and torch.equal(deep, torch.ones(2, 1, 4, 4))
