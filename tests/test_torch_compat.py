"""pconv_lib.util.torch_compat: the same behaviour on torch 2.2 (make test-oldest) and the newest torch."""

from __future__ import annotations

import torch

from pconv_lib.util.torch_compat import grad_scaler, is_compiling


def test_is_compiling_is_false_in_eager_mode():
    assert is_compiling() is False


def test_a_disabled_scaler_passes_the_loss_and_the_step_through():
    scaler = grad_scaler(False)
    assert not scaler.is_enabled()
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([weight], lr=0.5)
    loss = (weight * 2).sum()
    assert scaler.scale(loss) is loss
    loss.backward()
    scaler.step(optimizer)
    scaler.update()
    assert torch.equal(weight.detach(), torch.zeros(3))  # 1 - 0.5 * 2
    assert set(scaler.state_dict()) <= {
        "scale",
        "growth_factor",
        "backoff_factor",
        "growth_interval",
        "_growth_tracker",
    }
