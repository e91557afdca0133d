import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dsod_depth.detection.boxes import cxcywh_to_xyxy, xywh_to_xyxy, xyxy_to_cxcywh, xyxy_to_xywh
from dsod_depth.detection.coder import decode, encode
from dsod_depth.detection.priors import default_boxes, dsod300_voc


def random_boxes(gen: torch.Generator, n: int) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=gen, dtype=torch.float64)
    wh = torch.rand(n, 2, generator=gen, dtype=torch.float64) * 0.8 + 0.01
    return torch.cat((xy, xy + wh), dim=1)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 50))
def test_decode_inverts_encode(seed, n):
    gen = torch.Generator().manual_seed(seed)
    boxes = random_boxes(gen, n)
    priors = xyxy_to_cxcywh(random_boxes(gen, n))
    torch.testing.assert_close(decode(encode(boxes, priors), priors), boxes, rtol=0, atol=1e-12)


def test_encode_of_prior_is_zero_and_batched_decode():
    priors = default_boxes(dsod300_voc())[:100].double()
    zeros = encode(cxcywh_to_xyxy(priors), priors)
    torch.testing.assert_close(zeros, torch.zeros_like(zeros), rtol=0, atol=1e-12)
    loc = torch.randn(3, 100, 4, dtype=torch.float64)
    batched = decode(loc, priors)
    assert batched.shape == (3, 100, 4)
    torch.testing.assert_close(batched[1], decode(loc[1], priors))


def test_variances_scale_targets():
    prior = torch.tensor([[0.5, 0.5, 0.2, 0.2]])
    box = torch.tensor([[0.42, 0.4, 0.62, 0.6]])  # centre shifted by +0.02 in x, same size
    torch.testing.assert_close(encode(box, prior), torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    torch.testing.assert_close(encode(box, prior, (1, 1, 1, 1)), torch.tensor([[0.1, 0.0, 0.0, 0.0]]))


def test_format_round_trips():
    boxes = torch.tensor([[1.0, 2.0, 4.0, 8.0]])
    torch.testing.assert_close(xyxy_to_xywh(boxes), torch.tensor([[1.0, 2.0, 3.0, 6.0]]))
    torch.testing.assert_close(xywh_to_xyxy(xyxy_to_xywh(boxes)), boxes)
    torch.testing.assert_close(cxcywh_to_xyxy(xyxy_to_cxcywh(boxes)), boxes)
