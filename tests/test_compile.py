"""The torch.compile path of PartialConv2d / PConvUNet: one graph, same numbers as eager.

CPU-only and fast: the ``eager`` backend (dynamo tracing only) proves there is no graph break,
``aot_eager`` (AOT autograd, decomposed ops, no code generation) checks forward and backward
numerics. Inductor would generate C++ and is left to ``bench/`` and GPU sessions.
"""

from __future__ import annotations

import pytest
import torch

from pconv_lib.layers import PartialConv2d, check_mask_values
from pconv_lib.model import PConvUNet

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _mask(shape, seed=0):
    return (torch.rand(shape, generator=torch.Generator().manual_seed(seed)) > 0.4).float()


@pytest.mark.parametrize(
    "groups, mask_channels, kwargs",
    [(1, 1, {}), (1, 4, {}), (2, 4, {}), (1, 1, {"stride": 2}), (1, 1, {"dilation": 2, "padding": 2})],
)
def test_layer_is_one_graph_and_equals_eager(groups, mask_channels, kwargs):
    torch.manual_seed(0)
    kwargs = {"padding": 1, **kwargs}
    layer = PartialConv2d(4, 6, 3, groups=groups, **kwargs)  # check_mask=True: skipped when compiled
    x = torch.randn(2, 4, 12, 12)
    mask = _mask((2, mask_channels, 12, 12))
    compiled = torch.compile(layer, backend="eager", fullgraph=True)  # raises on a graph break
    out, new_mask = compiled(x, mask)
    ref, ref_mask = layer(x, mask)
    assert torch.equal(out, ref) and torch.equal(new_mask, ref_mask)
    out, new_mask = compiled(x, None)  # partial-convolution padding, cache bypassed
    ref, ref_mask = layer(x, None)
    assert torch.equal(out, ref) and torch.equal(new_mask, ref_mask)


def test_explain_reports_no_graph_break_for_the_unet():
    model = PConvUNet(depth=3, width=0.125)
    image, mask = torch.rand(2, 3, 16, 16), _mask((2, 1, 16, 16))
    report = torch._dynamo.explain(model)(image, mask)
    assert report.graph_break_count == 0, report.break_reasons
    assert report.graph_count == 1


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_compiled_training_step_equals_eager_fp32():
    torch.manual_seed(0)
    eager = PConvUNet(depth=3, width=0.125).train()
    twin = PConvUNet(depth=3, width=0.125).train()
    twin.load_state_dict(eager.state_dict())
    compiled = torch.compile(twin, backend="aot_eager", fullgraph=True)
    image, mask = torch.rand(2, 3, 16, 16), _mask((2, 1, 16, 16), 1)
    out, out_mask = eager(image, mask)
    out.square().mean().backward()
    got, got_mask = compiled(image, mask)
    got.square().mean().backward()
    torch.testing.assert_close(got, out, rtol=1e-5, atol=1e-6)
    assert torch.equal(got_mask, out_mask)
    ref_grads, got_grads = _grads(eager), _grads(twin)
    assert ref_grads.keys() == got_grads.keys() and ref_grads
    for name, g in ref_grads.items():
        torch.testing.assert_close(got_grads[name], g, rtol=1e-4, atol=1e-6, msg=name)


def test_compiled_bfloat16_autocast_is_close_to_eager():
    torch.manual_seed(0)
    model = PConvUNet(depth=3, width=0.25).eval()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    image, mask = torch.rand(2, 3, 16, 16), _mask((2, 1, 16, 16), 2)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        ref, ref_mask = model(image, mask)
        got, got_mask = compiled(image, mask)
    with torch.no_grad():
        full, _ = model(image, mask)
    assert got.dtype == ref.dtype == torch.bfloat16
    assert torch.equal(got_mask, ref_mask)
    torch.testing.assert_close(got.float(), ref.float(), rtol=0.02, atol=0.02)
    torch.testing.assert_close(got.float(), full, rtol=0.05, atol=0.05)  # and near fp32


def test_compiled_path_skips_the_value_check_which_moves_to_the_data_side():
    layer = PartialConv2d(3, 4, 3, padding=1)
    x, bad = torch.rand(1, 3, 8, 8), torch.full((1, 1, 8, 8), 0.5)
    with pytest.raises(ValueError, match="1 = valid, 0 = hole"):
        layer(x, bad)  # eager: checked
    compiled = torch.compile(layer, backend="eager", fullgraph=True)
    compiled(x, bad)  # compiled: no host sync, no check
    with pytest.raises(ValueError, match="1 = valid, 0 = hole"):
        check_mask_values(bad)  # what the data side calls once per batch
    check_mask_values(torch.ones(2, 1, 4, 4))
